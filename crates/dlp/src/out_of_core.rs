//! Data larger than memory: a CSV table bigger than `data.memory_limit` is read in chunks, its
//! preprocessing fitted in a streaming pass, and its transformed rows written to row files in
//! the run directory (`<run>/rows/{train,validation,test}.f32`), which training and evaluation
//! read back by position.
//!
//! The files are read four times, one chunk (a block of a few MiB) at a time:
//!
//! 1. clean each chunk (records without a target, or missing a value under a `drop` policy, go)
//!    and keep the targets: the split needs only them, so it is the in-memory split exactly;
//! 2. fit the preprocessing on the training records ([`preprocess::stream::TableFit`]);
//! 3. sum squared deviations, for standard scaling (skipped otherwise);
//! 4. transform every record and write it to its part's row file, at its position in the part
//!    (the parts are in record order, as in memory); keep a seeded uniform sample of the
//!    training records for the drift reference and the evaluation's linear baseline.
//!
//! What stays in memory is proportional to the number of records, not to their width: the
//! targets, the split's indices and the source position of each cleaned record (about 30 bytes
//! a record), plus one chunk, the samples and the model. The datasets are the in-memory
//! pipeline's, row for row: the same split, the same preprocessor (exactly, but for a median
//! fill and, with missing values, standard scaling's last bits), so training sees the same
//! batches and a resumed run continues bit-identically.

use std::path::Path;

use anyhow::{Context, Result, bail};
use bundle::reference::{Reference, ReferenceOptions};
use data_ingest::CsvConfig;
use pipeline_core::raw::{Column, RawDataset, RawInputs, Table};
use pipeline_core::rows::{RowFile, RowWriter};
use pipeline_core::run::InputFile;
use pipeline_core::{Dataset, rng};
use preprocess::{CleanReport, Preprocessor, Split, TargetEncoder};
use rand::seq::index::sample;

use crate::config::PipelineConfig;

/// The most training records kept for the drift reference's statistics (a seeded uniform
/// sample, smaller when their raw values would take more than a sixteenth of the budget, and at
/// least 1,000).
pub const REFERENCE_SAMPLE: usize = 50_000;

/// The data of an out-of-core run, prepared: what [`crate::pipeline::Prepared`] holds, with
/// datasets on disk.
pub struct Streamed {
    /// The files read.
    pub inputs: Vec<InputFile>,
    /// What reading found.
    pub read_report: data_ingest::ReadReport,
    /// What cleaning removed.
    pub cleaning: CleanReport,
    /// The parts, as indices of source records.
    pub split: Split,
    /// The fitted preprocessing.
    pub preprocessor: Preprocessor,
    /// The parts, their rows in `<run>/rows/`.
    pub train: Dataset,
    /// The validation part (possibly empty).
    pub validation: Dataset,
    /// The test part.
    pub test: Dataset,
    /// The raw columns, without records (a sample of the test records is not kept).
    pub test_raw: RawDataset,
    /// The drift reference of the training sample.
    pub reference: Reference,
    /// The training sample, transformed (for the reference's prediction statistics).
    pub reference_rows: Dataset,
}

/// Whether `config`'s data goes out of core: CSV files larger than `data.memory_limit`.
pub fn applies(config: &PipelineConfig) -> Option<&CsvConfig> {
    match &config.data {
        data_ingest::DataConfig::Csv(c) if config.preprocess.series.is_none() && c.out_of_core() => Some(c),
        _ => None,
    }
}

/// Refuses, in one line, a command that reads the data into memory when the data is larger
/// than the budget (`what` names the command).
pub fn refuse_in_memory(config: &PipelineConfig, what: &str) -> Result<()> {
    if let Some(c) = applies(config) {
        bail!(
            "data.memory_limit: the data ({} bytes) is larger than the memory limit ({}), and {what} reads it into \
             memory; `dlp run` trains on it out of core, or raise data.memory_limit",
            c.data_size().unwrap_or_default(),
            c.memory_budget()
        );
    }
    Ok(())
}

/// Refuses a resumed or new run whose data files differ from `expect`'s.
pub fn check_inputs(expect: Option<&[InputFile]>, inputs: &[InputFile]) -> Result<()> {
    let Some(expect) = expect else { return Ok(()) };
    let paths = |files: &[InputFile]| files.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
    if expect.is_empty() {
        bail!(
            "the run's manifest records no data files (it was interrupted before reading them, or by an older \
             version), so unchanged data cannot be checked; start a new run instead"
        );
    }
    if paths(expect) != paths(inputs) {
        bail!(
            "the data files changed since the run started ({} then, {} now); start a new run instead",
            paths(expect).join(", "),
            paths(inputs).join(", ")
        );
    }
    for (now, then) in inputs.iter().zip(expect) {
        if now.sha256 != then.sha256 {
            bail!(
                "{}: the data changed since the run started (sha256 {} then, {} now); start a new run instead",
                now.path,
                then.sha256,
                now.sha256
            );
        }
    }
    Ok(())
}

/// What the model stack cannot take from a row file: checked before the data is read.
fn check_config(config: &PipelineConfig) -> Result<()> {
    let refuse = |key: &str, why: &str| -> Result<()> {
        bail!(
            "{key}: {why}, and the data is larger than data.memory_limit ({}): raise the limit, or change {key}",
            match &config.data {
                data_ingest::DataConfig::Csv(c) => c.memory_budget().to_string(),
                _ => String::new(),
            }
        )
    };
    if train::linear::Solver::for_model(&config.model).is_some() {
        return refuse("model", "a linear model is fitted in closed form on the whole training matrix in memory");
    }
    if matches!(config.model, models::ModelConfig::Gan(_)) {
        return refuse("model", "a GAN trains on images in memory");
    }
    if config.preprocess.split.from_data {
        return refuse("preprocess.split.from_data", "CSV files name no parts");
    }
    if config.train.augment_audio.is_some() {
        return refuse("train.augment_audio", "augmented recordings are made in memory");
    }
    Ok(())
}

/// The records of a chunk that cleaning keeps, and what it removed.
fn clean(chunk: &RawDataset, config: &PipelineConfig) -> (RawDataset, CleanReport) {
    let (kept, _, report) = preprocess::clean(chunk, &config.preprocess);
    (kept, report)
}

fn add_report(to: &mut CleanReport, r: &CleanReport) {
    to.missing_target += r.missing_target;
    to.duplicates += r.duplicates;
    to.missing_values += r.missing_values;
}

/// Reads every chunk of the data, cleaned, with the index of its first cleaned record.
fn each_cleaned(
    csv: &CsvConfig,
    config: &PipelineConfig,
    f: &mut dyn FnMut(usize, &RawDataset) -> Result<()>,
) -> Result<data_ingest::Ingested> {
    let mut at = 0;
    let mut failure: Option<anyhow::Error> = None;
    let read = data_ingest::stream(csv, &mut |chunk| {
        let (kept, _) = clean(&chunk, config);
        if let Err(e) = f(at, &kept) {
            failure = Some(e);
            // Stops the read; the error returned is `failure`.
            return Err(data_ingest::Error::Invalid { path: csv.path.clone(), message: "stopped".into() });
        }
        at += kept.rows();
        Ok(())
    });
    match (read, failure) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(anyhow::Error::new(e).context("reading the data")),
        (Ok(r), None) => Ok(r),
    }
}

/// The indices of `part` (ascending) within `start..start + len`, relative to `start`; `cursor`
/// walks `part` across consecutive chunks.
fn local(part: &[usize], cursor: &mut usize, start: usize, len: usize) -> Vec<usize> {
    let mut out = Vec::new();
    while *cursor < part.len() && part[*cursor] < start + len {
        out.push(part[*cursor] - start);
        *cursor += 1;
    }
    out
}

fn table(d: &RawDataset) -> Result<&Table> {
    match &d.inputs {
        RawInputs::Table(t) => Ok(t),
        _ => bail!("a CSV chunk is a table"),
    }
}

fn append(to: &mut Option<RawDataset>, chunk: RawDataset) -> Result<()> {
    let Some(all) = to.as_mut() else {
        *to = Some(chunk);
        return Ok(());
    };
    let (RawInputs::Table(a), RawInputs::Table(b)) = (&mut all.inputs, chunk.inputs) else {
        bail!("a CSV chunk is a table")
    };
    for (x, y) in a.columns.iter_mut().zip(b.columns) {
        x.values.append(y.values)?;
    }
    if let (Some(x), Some(y)) = (all.target.as_mut(), chunk.target) {
        x.values.append(y.values)?;
    }
    Ok(())
}

/// Prepares the data of `config` out of core, writing the row files under `run_root`. With
/// `expect`, the files read must have those hashes.
pub fn prepare(
    config: &PipelineConfig,
    csv: &CsvConfig,
    run_root: &Path,
    expect: Option<&[InputFile]>,
    reference_options: &ReferenceOptions,
) -> Result<Streamed> {
    check_config(config)?;
    // Pass 1: clean, keep the targets and where each kept record came from.
    let mut cleaning = CleanReport::default();
    let mut kept_rows: Vec<usize> = Vec::new();
    let mut source = 0;
    let mut target: Option<Column> = None;
    let mut failure: Option<anyhow::Error> = None;
    let first = data_ingest::stream(csv, &mut |chunk| {
        let (kept, offsets, report) = preprocess::clean(&chunk, &config.preprocess);
        add_report(&mut cleaning, &report);
        kept_rows.extend(offsets.iter().map(|&i| source + i));
        source += chunk.rows();
        match (target.as_mut(), kept.target) {
            (_, None) => {}
            (None, Some(t)) => target = Some(t),
            (Some(all), Some(t)) => {
                if let Err(e) = all.values.append(t.values) {
                    failure = Some(e.into());
                }
            }
        }
        Ok(())
    })
    .context("reading the data")?;
    if let Some(e) = failure {
        return Err(e);
    }
    check_inputs(expect, &first.inputs)?;
    let target = target.or_else(|| first.data.target.clone()).context("the data has no target column (data.target)")?;
    let encoder = TargetEncoder::fit(&target, &config.data.target_spec())?;
    let targets = encoder.encode(&target)?;
    let split = preprocess::split_records(&targets, None, &config.preprocess.split, &mut rng(config.seed, "split"))?;
    let schema: Vec<pipeline_core::Feature> = table(&first.data)?.columns.iter().map(Column::feature).collect();

    // Passes 2 and 3: the streaming fit on the training records.
    let mut fit = preprocess::stream::TableFit::new(&config.preprocess, &schema, rng(config.seed, "median"))?;
    let mut cursor = 0;
    each_cleaned(csv, config, &mut |start, chunk| {
        let rows = local(&split.train, &mut cursor, start, chunk.rows());
        Ok(fit.add(table(chunk)?, &rows)?)
    })?;
    if fit.needs_second_pass() {
        let mut cursor = 0;
        each_cleaned(csv, config, &mut |start, chunk| {
            let rows = local(&split.train, &mut cursor, start, chunk.rows());
            Ok(fit.add_deviations(table(chunk)?, &rows)?)
        })?;
    }
    let train_target = Column { values: target.values.select(&split.train), ..target.clone() };
    let preprocessor = fit.finish(encoder, &train_target)?;
    drop(train_target);
    // Encoded again with the fitted encoder: with `scale_target`, regression targets are
    // standardized on the training part, as `Preprocessor::transform` does in memory.
    let targets = preprocessor.target.encode(&target)?;
    drop(target);
    let width = preprocessor.output.width();

    // Pass 4: transform every record into its part's row file; sample the training records.
    let dir = run_root.join("rows");
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let parts = [&split.train, &split.validation, &split.test];
    let names = ["train", "validation", "test"];
    let mut writers = Vec::new();
    for (part, name) in parts.iter().zip(names) {
        writers.push(RowWriter::create(&dir.join(format!("{name}.f32")), part.len(), width)?);
    }
    // The sample's raw values take at most a sixteenth of the budget.
    let fits = csv.memory_budget().0 as usize / 16 / (8 * schema.len().max(1));
    let n = REFERENCE_SAMPLE.min(fits.max(1_000)).min(split.train.len());
    let mut sampled: Vec<usize> = sample(&mut rng(config.seed, "reference-sample"), split.train.len(), n).into_vec();
    sampled.sort_unstable();
    let sampled: Vec<usize> = sampled.into_iter().map(|p| split.train[p]).collect();
    let mut sample_raw: Option<RawDataset> = None;
    let (mut cursors, mut written, mut sample_cursor) = ([0usize; 3], [0usize; 3], 0);
    each_cleaned(csv, config, &mut |start, chunk| {
        for p in 0..3 {
            let rows = local(parts[p], &mut cursors[p], start, chunk.rows());
            if rows.is_empty() {
                continue;
            }
            let values = preprocessor.transform_inputs(&chunk.select(&rows).inputs)?;
            writers[p].write_at(written[p], &values)?;
            written[p] += rows.len();
        }
        let picked = local(&sampled, &mut sample_cursor, start, chunk.rows());
        append(&mut sample_raw, chunk.select(&picked))
    })?;
    let mut files: Vec<RowFile> = Vec::new();
    for (p, part) in parts.iter().enumerate() {
        if written[p] != part.len() {
            bail!(
                "{}: the data changed while it was read ({} of the {} {} records found); start the run again",
                csv.path.display(),
                written[p],
                part.len(),
                names[p]
            );
        }
    }
    for w in writers {
        files.push(w.finish()?);
    }
    let sample_raw = sample_raw.context("the data has no records")?;
    let reference = Reference::fit_inputs(&sample_raw.inputs, reference_options)
        .context("fitting the drift reference statistics")?;
    let reference_rows = preprocessor.transform(&sample_raw)?;
    drop(sample_raw);

    let out_schema = preprocessor.schema();
    let mut datasets = Vec::new();
    for (file, part) in files.into_iter().zip(parts) {
        datasets.push(Dataset::on_disk(out_schema.clone(), file, targets.select(part))?);
    }
    let [train, validation, test]: [Dataset; 3] =
        datasets.try_into().map_err(|_| anyhow::anyhow!("three parts were written"))?;
    let split = split.mapped(&kept_rows);
    let mut read_report = first.report;
    read_report.records = source;
    Ok(Streamed {
        inputs: first.inputs,
        read_report,
        cleaning,
        split,
        preprocessor,
        train,
        validation,
        test,
        test_raw: first.data,
        reference,
        reference_rows,
    })
}
