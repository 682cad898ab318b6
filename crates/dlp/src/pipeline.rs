//! `dlp run` and `dlp train --resume`: one pipeline, end to end, into one run directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use eval::plot::{Chart, Series};
use models::ModelSpec;
use pipeline_core::raw::{RawDataset, RawInputs};
use pipeline_core::run::{Host, Manifest, PhaseTiming, read_json, write_atomic, write_json};
use pipeline_core::{BundleIndex, Predictions, RunDir, Targets, Task, rng};
use preprocess::{Preprocessor, TargetEncoder};
use rayon::prelude::*;
use train::{Checkpoint, EpochMetrics, MetricsLog, Progress};

use crate::config::PipelineConfig;
pub use crate::evaluate::TestReport;
use crate::evaluate::{EvalInput, Evaluation, GateOutcome};
use crate::experiment::Experiment;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The parent of run directories.
    pub runs_dir: PathBuf,
    /// A previous run whose model is scored on the same test records, beside the new one.
    pub compare: Option<PathBuf>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The evaluation of the test part (`None` for a generative model).
    pub evaluation: Option<Evaluation>,
    /// The grid of generated images (generative models).
    pub samples: Option<PathBuf>,
}

impl RunSummary {
    /// The lines `dlp run` prints: the headline, the baselines, the comparison and the gate.
    pub fn lines(&self) -> Vec<String> {
        let Some(e) = &self.evaluation else {
            return self.samples.iter().map(|s| format!("generated samples: {}", s.display())).collect();
        };
        let mut lines = vec![e.test.headline()];
        let metric = e.test.default_metric();
        for b in &e.baselines {
            if let Some(v) = b.report.metric(metric) {
                lines.push(format!("baseline {}: {metric} {v:.4}", b.name));
            }
        }
        if let Some(c) = &e.comparison {
            let d = &c.difference;
            lines.push(format!(
                "against {}: {} {:+.4} (95% CI [{:+.4}, {:+.4}]){}",
                c.previous_run.display(),
                c.metric,
                d.observed,
                d.low,
                d.high,
                c.mcnemar.as_ref().map(|m| format!(", McNemar p = {:.4}", m.result.p_value)).unwrap_or_default()
            ));
        }
        if let Some(g) = &e.gate {
            lines.push(format!("gate on {}: {}", g.metric, if g.passed { "passed" } else { "FAILED" }));
        }
        lines.push(format!("report: {}", self.run_dir.join("report.html").display()));
        lines
    }

    /// The gate's verdict, when the config has a gate.
    pub fn gate(&self) -> Option<&GateOutcome> {
        self.evaluation.as_ref().and_then(|e| e.gate.as_ref())
    }
}

/// `eval.json`.
#[derive(Debug, serde::Serialize)]
struct EvalFile<'a> {
    split: &'static str,
    #[serde(flatten)]
    evaluation: &'a Evaluation,
}

/// Runs the pipeline `config` (read from `config_path`) into a new run directory.
pub fn run(config_path: &Path, config: &PipelineConfig, options: &RunOptions) -> Result<RunSummary> {
    if let Some(previous) = &options.compare {
        let index = pipeline_core::BundleDir::new(previous.join("bundle")).index();
        if !index.is_file() {
            bail!("--compare {}: not a finished run directory (no {})", previous.display(), index.display());
        }
    }
    let now = chrono::Utc::now();
    let stem = format!("{}-{}", config.name, now.format("%Y%m%d-%H%M%S"));
    let run = RunDir::create(&options.runs_dir, &stem).context("creating the run directory")?;
    write_atomic(&run.config(), config.to_yaml().as_bytes())?;
    let manifest = Manifest {
        pipeline: config.name.clone(),
        config_file: config_path.display().to_string(),
        seed: config.seed,
        started_at: timestamp(now),
        finished_at: None,
        resumed_at: Vec::new(),
        inputs: Vec::new(),
        data_report: None,
        versions: BTreeMap::from([
            ("dlp".to_string(), pipeline_core::VERSION.to_string()),
            ("candle-core".to_string(), env!("DLP_CANDLE_VERSION").to_string()),
        ]),
        git_revision: Some(env!("DLP_GIT_REVISION").to_string()).filter(|r| !r.is_empty()),
        host: Host::current(),
        timings: Vec::new(),
        failed: None,
        peak_memory_bytes: None,
    };
    write_json(&run.manifest(), &manifest)?;
    let result = execute(&run, config, config_path, manifest.clone(), None, options.compare.as_deref());
    mark_if_failed(&run, manifest, result)
}

/// On an error, records it in the run's manifest (`failed`: when and why), so a run directory
/// never looks like one still in progress; the error is passed on.
fn mark_if_failed(run: &RunDir, fallback: Manifest, result: Result<RunSummary>) -> Result<RunSummary> {
    let Err(e) = result else { return result };
    // The newest manifest on disk has what the run recorded before failing (its inputs).
    let mut manifest: Manifest = read_json(&run.manifest()).unwrap_or(fallback);
    manifest.failed =
        Some(pipeline_core::run::RunFailure { at: timestamp(chrono::Utc::now()), error: format!("{e:#}") });
    match write_json(&run.manifest(), &manifest) {
        Ok(()) => Err(e),
        Err(w) => Err(anyhow::anyhow!("{e:#} (recording the failure in the manifest failed too: {w})")),
    }
}

/// Continues the run in `run_dir` (whose resolved `config.yaml` is `config`) from its newest
/// checkpoint, or from `checkpoint`.
pub fn resume(run_dir: &Path, config: &PipelineConfig, checkpoint: Option<&Path>) -> Result<RunSummary> {
    let run = RunDir::open(run_dir)?;
    if run.bundle().root().exists() {
        bail!("{}: this run is complete (it has a bundle); there is nothing to resume", run_dir.display());
    }
    let mut manifest: Manifest = read_json(&run.manifest())?;
    manifest.resumed_at.push(timestamp(chrono::Utc::now()));
    manifest.failed = None;
    let device = config.device.open()?;
    let ck = match checkpoint {
        Some(p) => train::checkpoint::read(p, &device)?,
        None => newest_checkpoint(&run, &device)?,
    };
    let result = execute(&run, config, &run.config(), manifest.clone(), Some(ck), None);
    mark_if_failed(&run, manifest, result)
}

/// Reads the newest checkpoint of `run`; if it is damaged, the error names the newest one that
/// reads correctly, to resume from explicitly.
fn newest_checkpoint(run: &RunDir, device: &candle_core::Device) -> Result<Checkpoint> {
    let all = train::checkpoint::list(&run.checkpoints());
    let Some(newest) = all.last() else {
        bail!("{}: no checkpoint to resume from", run.checkpoints().display());
    };
    match train::checkpoint::read(newest, device) {
        Ok(ck) => Ok(ck),
        Err(e) => {
            let previous = all.iter().rev().skip(1).find(|p| train::checkpoint::read(p, device).is_ok());
            match previous {
                Some(p) => bail!(
                    "{e}; the previous checkpoint {} is intact: resume from it with `dlp train --resume {} --checkpoint {}`",
                    p.display(),
                    run.root().display(),
                    p.display()
                ),
                None => bail!("{e}; no earlier checkpoint is intact"),
            }
        }
    }
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The phases, for a fresh run or (with `resume`) a continued one.
fn execute(
    run: &RunDir,
    config: &PipelineConfig,
    config_path: &Path,
    mut manifest: Manifest,
    resume: Option<Checkpoint>,
    compare: Option<&Path>,
) -> Result<RunSummary> {
    let mut clock = Clock::start();
    let seed = config.seed;
    let device = config.device.open()?;
    // An API's responses are kept in the run directory, and a resumed run reads them from there.
    let with_cache;
    let config = match &config.data {
        data_ingest::DataConfig::Http(h) if h.cache.is_none() => {
            let mut c = config.clone();
            if let data_ingest::DataConfig::Http(h) = &mut c.data {
                h.cache = Some(run.root().join("data-cache"));
            }
            with_cache = c;
            &with_cache
        }
        _ => config,
    };

    let expect = resume.as_ref().map(|_| manifest.inputs.as_slice());
    let prepared = match crate::out_of_core::applies(config) {
        Some(csv) => {
            if compare.is_some() {
                bail!(
                    "--compare: scores the previous model on the test records in memory, and the data is larger \
                     than data.memory_limit ({})",
                    csv.memory_budget()
                );
            }
            let s = crate::out_of_core::prepare(config, csv, run.root(), expect, &reference_options(config))?;
            clock.lap("ingest and preprocess (out of core)");
            Prepared::from(s)
        }
        None => prepare(config, expect, &mut clock)?,
    };
    let Prepared {
        inputs,
        read_report,
        cleaning,
        split,
        preprocessor,
        train: train_part,
        validation: val_part,
        test: test_part,
        test_raw,
        reference,
        series,
        reference_rows,
    } = prepared;
    manifest.inputs = inputs;
    let mut data_report = serde_json::json!({ "read": read_report, "cleaning": cleaning });
    if !train_part.in_memory() {
        data_report["out_of_core"] = serde_json::json!({
            "rows": run.root().join("rows").display().to_string(),
            "memory_limit": match &config.data {
                data_ingest::DataConfig::Csv(c) => c.memory_budget().to_string(),
                _ => String::new(),
            },
        });
    }
    manifest.data_report = Some(data_report);
    // Recorded now, not at the end: a run killed while training must still name the data it
    // read, so that resuming it on changed data is refused.
    write_json(&run.manifest(), &manifest)?;
    write_json(&run.root().join("split.json"), &split)?;

    if let models::ModelConfig::Gan(gan) = &config.model {
        let issues = config.model.check(&ModelSpec::new(&train_part.schema().input, 0));
        if !issues.is_empty() {
            return Err(crate::config::located(config_path, issues).into());
        }
        let (generator, discriminator, summary) =
            crate::generate::train_gan(run, config, gan, &train_part, &device, resume)?;
        clock.lap("train");
        let staged = run.stage_bundle()?;
        let index = crate::generate::bundle_index(config, &train_part.schema().input, timestamp(chrono::Utc::now()));
        bundle::write_bundle(&staged, &index, &config.model.for_bundle()?, &preprocessor, &generator)?;
        models::save_weights(&discriminator, &staged.root().join("discriminator.safetensors"))?;
        run.publish_bundle(staged)?;
        clock.lap("bundle");
        manifest.timings.extend(clock.laps);
        manifest.finished_at = Some(timestamp(chrono::Utc::now()));
        manifest.peak_memory_bytes = pipeline_core::run::peak_memory_bytes();
        write_json(&run.manifest(), &manifest)?;
        return Ok(RunSummary { run_dir: run.root().to_path_buf(), evaluation: None, samples: Some(summary.samples) });
    }
    let schema = train_part.schema().clone();
    let exp = Experiment::build(config, &schema, &device, config_path)?;
    let mut progress = Progress::auto();
    let mut log = match &resume {
        Some(ck) => MetricsLog::resume(&run.metrics_log(), &ck.state.history),
        None => MetricsLog::create(&run.metrics_log()),
    }
    .with_context(|| run.metrics_log().display().to_string())?;
    let validation = (!val_part.is_empty()).then_some(&val_part);
    let checkpoints = run.checkpoints();
    let trainer = exp.trainer(Some(&checkpoints));
    let callbacks: &mut [&mut dyn train::Callback] = &mut [&mut progress, &mut log];
    let fit = match resume {
        Some(ck) => trainer.resume(ck, &train_part, validation, callbacks)?,
        None => trainer.fit(&train_part, validation, callbacks)?,
    };
    training_curves(&fit.history, &run.curves())?;
    clock.lap("train");

    let preds = exp.predict(&test_part)?;
    let preds = preprocessor.target.decode(preds);
    let input = EvalInput {
        task: &schema.target.task,
        preprocessor: &preprocessor,
        train: &train_part,
        test: &test_part,
        test_raw: &test_raw,
        test_rows: &split.test,
        predictions: &preds,
        seed,
        plot_dir: Some(run.root()),
        compare,
    };
    let evaluation = match &series {
        Some(s) => crate::forecast::evaluate(&config.eval, &input, s)?,
        None => crate::evaluate::evaluate(&config.eval, &input)?,
    };
    write_json(&run.eval(), &EvalFile { split: "test", evaluation: &evaluation })?;
    let actual: Vec<String> = match (test_part.targets(), &schema.target.task) {
        (Targets::Classes(c), Task::Classification { labels }) => {
            c.iter().map(|&i| labels[i as usize].clone()).collect()
        }
        (Targets::Values(v), _) => match preprocessor.target.decode(Predictions::Values(v.clone())) {
            Predictions::Values(v) => v.iter().map(ToString::to_string).collect(),
            Predictions::Classes { .. } => Vec::new(),
        },
        _ => Vec::new(),
    };
    let csv = match &series {
        Some(s) => crate::forecast::predictions_csv(s, &split.test, &preds)?,
        None => bundle::predictions_csv(&schema.target.task, &preds, Some(&split.test), Some(&actual))?,
    };
    write_atomic(&run.predictions(), &csv)?;
    clock.lap("eval");

    let staged = run.stage_bundle()?;
    let index = BundleIndex {
        format_version: pipeline_core::run::BUNDLE_FORMAT_VERSION,
        name: config.name.clone(),
        schema: schema.clone(),
        head: exp.head,
        pipeline_version: pipeline_core::VERSION.to_string(),
        created_at: timestamp(chrono::Utc::now()),
        seed,
    };
    let model_config = config.model.for_bundle()?;
    bundle::write_bundle(&staged, &index, &model_config, &preprocessor, &exp.params)?;
    // Out of core, the reference's prediction statistics come from its sample of the training part.
    let train_preds = exp.predict(reference_rows.as_ref().unwrap_or(&train_part))?;
    let train_preds = preprocessor.target.decode(train_preds);
    write_monitoring(&staged, config, reference, &train_preds, &schema.target.task)?;
    run.publish_bundle(staged)?;
    clock.lap("bundle");

    manifest.timings.extend(clock.laps);
    manifest.finished_at = Some(timestamp(chrono::Utc::now()));
    manifest.peak_memory_bytes = pipeline_core::run::peak_memory_bytes();
    write_json(&run.manifest(), &manifest)?;

    let model_summary = exp.summary();
    let classes = match (&schema.target.task, train_part.targets(), test_part.targets()) {
        (Task::Classification { labels }, Targets::Classes(tr), Targets::Classes(te)) => labels
            .iter()
            .enumerate()
            .map(|(c, l)| {
                let count = |v: &[u32]| v.iter().filter(|&&x| x as usize == c).count();
                (l.clone(), count(tr), count(te))
            })
            .collect(),
        _ => Vec::new(),
    };
    let report_input = crate::report::ReportInput {
        name: &config.name,
        config_yaml: &config.to_yaml(),
        manifest: &manifest,
        data: crate::report::DataSummary {
            records: read_report.records,
            skipped: read_report.skipped,
            cleaning: &cleaning,
            parts: (train_part.len(), val_part.len(), test_part.len()),
            input: &schema.input,
            classes,
        },
        model_summary: &model_summary,
        fit: &fit,
        evaluation: &evaluation,
    };
    crate::report::write(run, &report_input).context("writing the report")?;
    Ok(RunSummary { run_dir: run.root().to_path_buf(), evaluation: Some(evaluation), samples: None })
}

/// The data, cleaned, split and preprocessed: what training sees.
pub struct Prepared {
    /// The files read.
    pub inputs: Vec<pipeline_core::run::InputFile>,
    /// What reading found (bad records, unparsable values).
    pub read_report: data_ingest::ReadReport,
    /// What cleaning removed.
    pub cleaning: preprocess::CleanReport,
    /// The parts, as indices of source records.
    pub split: preprocess::Split,
    /// The fitted preprocessing.
    pub preprocessor: Preprocessor,
    /// The training part.
    pub train: pipeline_core::Dataset,
    /// The validation part (possibly empty).
    pub validation: pipeline_core::Dataset,
    /// The test part.
    pub test: pipeline_core::Dataset,
    /// The test records as read, before preprocessing (for comparing with another bundle and
    /// showing wrong examples).
    pub test_raw: RawDataset,
    /// The training records' distributions, for drift monitoring (the model's predictions are
    /// added once it is trained).
    pub reference: bundle::reference::Reference,
    /// For a forecasting model: the series the windows were cut from.
    pub series: Option<crate::evaluate::SeriesData>,
    /// Out of core: the transformed sample of training records the reference was fitted on
    /// (`None`: the reference covers the whole training part).
    pub reference_rows: Option<pipeline_core::Dataset>,
}

impl From<crate::out_of_core::Streamed> for Prepared {
    fn from(s: crate::out_of_core::Streamed) -> Self {
        Prepared {
            inputs: s.inputs,
            read_report: s.read_report,
            cleaning: s.cleaning,
            split: s.split,
            preprocessor: s.preprocessor,
            train: s.train,
            validation: s.validation,
            test: s.test,
            test_raw: s.test_raw,
            reference: s.reference,
            series: None,
            reference_rows: Some(s.reference_rows),
        }
    }
}

/// The data as read and cleaned, with encoded targets, before any split.
pub struct Loaded {
    /// The files read.
    pub inputs: Vec<pipeline_core::run::InputFile>,
    /// What reading found.
    pub read_report: data_ingest::ReadReport,
    /// What cleaning removed (outliers are counted per split, later).
    pub cleaning: preprocess::CleanReport,
    /// The cleaned records.
    pub data: RawDataset,
    /// For each cleaned record, its position in the source.
    pub kept_rows: Vec<usize>,
    /// The fitted target encoding.
    pub encoder: TargetEncoder,
    /// The encoded targets of the cleaned records.
    pub targets: Targets,
}

/// Reads and cleans the data of `config` and encodes its targets. With `expect`, the files
/// read must have those hashes (resuming a run on changed data is refused).
pub fn load(config: &PipelineConfig, expect: Option<&[pipeline_core::run::InputFile]>) -> Result<Loaded> {
    let ingested = ingest(config, expect)?;
    let (data, kept_rows, cleaning) = preprocess::clean(&ingested.data, &config.preprocess);
    drop(ingested.data);
    let target = data.target.as_ref().context("the data has no target column")?;
    let encoder = TargetEncoder::fit(target, &config.data.target_spec())?;
    let targets = encoder.encode(target)?;
    Ok(Loaded { inputs: ingested.inputs, read_report: ingested.report, cleaning, data, kept_rows, encoder, targets })
}

/// Reads the data of `config`, as it is. With `expect`, the files read must have those hashes.
pub fn ingest(
    config: &PipelineConfig,
    expect: Option<&[pipeline_core::run::InputFile]>,
) -> Result<data_ingest::Ingested> {
    crate::out_of_core::refuse_in_memory(config, "this command")?;
    let ingested = data_ingest::load(&config.data).context("reading the data")?;
    crate::out_of_core::check_inputs(expect, &ingested.inputs)?;
    Ok(ingested)
}

/// Fits the preprocessing on the training part of `split` (indices of `loaded`'s cleaned
/// records) and transforms every part.
pub fn fit_parts(config: &PipelineConfig, loaded: &Loaded, split: &preprocess::Split) -> Result<Prepared> {
    let data = &loaded.data;
    let mut cleaning = loaded.cleaning.clone();
    let train_raw = data.select(&split.train);
    let (preprocessor, kept) = Preprocessor::fit(&config.preprocess, &train_raw, loaded.encoder.clone())?;
    cleaning.outliers = train_raw.rows() - kept.len();
    let train_raw = if cleaning.outliers > 0 { train_raw.select(&kept) } else { train_raw };
    let train = preprocessor.transform(with_audio_copies(config, &train_raw)?.as_ref())?;
    let reference = bundle::reference::Reference::fit_inputs(&train_raw.inputs, &reference_options(config))
        .context("fitting the drift reference statistics")?;
    let validation = preprocessor.transform(&data.select(&split.validation))?;
    let test_raw = data.select(&split.test);
    let test = preprocessor.transform(&test_raw)?;
    // Parts are named by their position in the source, before cleaning.
    let split = split.mapped(&loaded.kept_rows);
    Ok(Prepared {
        inputs: loaded.inputs.clone(),
        read_report: loaded.read_report.clone(),
        cleaning,
        split,
        preprocessor,
        train,
        validation,
        test,
        test_raw,
        reference,
        series: None,
        reference_rows: None,
    })
}

/// The training records with `train.augment_audio`'s copies appended (after the originals, in
/// copy order): augmented recordings are features' input, so they are made before the
/// preprocessing transforms them, and never fitted on.
fn with_audio_copies<'a>(config: &PipelineConfig, train: &'a RawDataset) -> Result<std::borrow::Cow<'a, RawDataset>> {
    use std::borrow::Cow;
    let Some(aug) = &config.train.augment_audio else { return Ok(Cow::Borrowed(train)) };
    let RawInputs::Audio(clips) = &train.inputs else {
        bail!("train.augment_audio: augments recordings, but the data is not audio (use train.augment)")
    };
    let n = clips.rows();
    let mut out = clips.clone();
    for copy in 1..=aug.copies {
        let made: Vec<Vec<f32>> = (0..n)
            .into_par_iter()
            .map(|i| aug.augmented(clips.clip(i), clips.sample_rate, config.seed, copy, i))
            .collect();
        for c in made {
            out.values.extend(c);
        }
        out.durations.extend_from_slice(&clips.durations);
    }
    // Copy k of clip i keeps clip i's target and part.
    let all: Vec<usize> = (0..n).cycle().take(n * (aug.copies + 1)).collect();
    Ok(Cow::Owned(RawDataset {
        inputs: RawInputs::Audio(out),
        target: train
            .target
            .as_ref()
            .map(|t| pipeline_core::raw::Column { values: t.values.select(&all), ..t.clone() }),
        parts: train.parts.as_ref().map(|p| all.iter().map(|&i| p[i]).collect()),
    }))
}

/// How the drift reference is fitted: seeded by the config.
pub fn reference_options(config: &PipelineConfig) -> bundle::reference::ReferenceOptions {
    bundle::reference::ReferenceOptions { seed: config.seed, ..Default::default() }
}

/// Completes `reference` with `model`'s predictions on the training part and writes it, with
/// the resolved config (what `dlp retrain` trains with), into the staged bundle.
pub fn write_monitoring(
    staged: &pipeline_core::BundleDir,
    config: &PipelineConfig,
    mut reference: bundle::reference::Reference,
    train_predictions: &Predictions,
    task: &Task,
) -> Result<()> {
    reference
        .add_predictions(train_predictions, task, &reference_options(config))
        .context("fitting the drift reference statistics")?;
    bundle::write_reference(staged, &reference)?;
    write_atomic(&staged.root().join(BUNDLE_CONFIG), config.to_yaml().as_bytes())?;
    Ok(())
}

/// The resolved pipeline config inside a bundle (what `dlp retrain` trains with).
pub const BUNDLE_CONFIG: &str = "config.yaml";

/// Reads, cleans, splits and preprocesses the data of `config`. With `expect`, the files read
/// must have those hashes (resuming a run on changed data is refused).
pub fn prepare(
    config: &PipelineConfig,
    expect: Option<&[pipeline_core::run::InputFile]>,
    clock: &mut Clock,
) -> Result<Prepared> {
    if let Some(series) = &config.preprocess.series {
        return prepare_series(config, series, expect, clock);
    }
    let loaded = load(config, expect)?;
    clock.lap("ingest");
    let split = preprocess::split_records(
        &loaded.targets,
        loaded.data.parts.as_deref(),
        &config.preprocess.split,
        &mut rng(config.seed, "split"),
    )?;
    let prepared = fit_parts(config, &loaded, &split)?;
    clock.lap("preprocess");
    Ok(prepared)
}

/// [`prepare`] of a forecasting config: the series is read as it is (no cleaning: dropping a
/// row would shift time) and cut into windows by [`preprocess::series::fit`]; the series is kept
/// for the forecast evaluation.
fn prepare_series(
    config: &PipelineConfig,
    series: &preprocess::series::SeriesConfig,
    expect: Option<&[pipeline_core::run::InputFile]>,
    clock: &mut Clock,
) -> Result<Prepared> {
    let ingested = ingest(config, expect)?;
    clock.lap("ingest");
    let fit = preprocess::series::fit(&config.preprocess, series, &ingested.data)?;
    let reference = bundle::reference::Reference::fit_inputs(&fit.train_rows.inputs, &reference_options(config))
        .context("fitting the drift reference statistics")?;
    let test_raw = ingested.data.select(&fit.split.test);
    let preprocess::series::SeriesFit { preprocessor, train, validation, test, split, values, times, windows, .. } =
        fit;
    let Some(transform) = preprocessor.series().cloned() else { bail!("a series fit has a series transform") };
    clock.lap("preprocess");
    Ok(Prepared {
        inputs: ingested.inputs,
        read_report: ingested.report,
        cleaning: preprocess::CleanReport::default(),
        split,
        preprocessor,
        train,
        validation,
        test,
        test_raw,
        reference,
        series: Some(crate::evaluate::SeriesData { values, times, windows, transform }),
        reference_rows: None,
    })
}

/// `dlp model summary`: prepares the data (the model's input shape depends on it) and lists
/// the layers of the configured model.
pub fn summary(config: &PipelineConfig, config_path: &Path) -> Result<String> {
    let device = config.device.open()?;
    let prepared = prepare(config, None, &mut Clock::start())?;
    Ok(Experiment::build(config, prepared.train.schema(), &device, config_path)?.summary())
}

/// `training_curves.png`: loss, accuracy (classification) and learning rate by epoch.
fn training_curves(history: &[EpochMetrics], path: &Path) -> Result<()> {
    let series = |name: &str, f: &dyn Fn(&EpochMetrics) -> Option<f64>| Series {
        name: name.into(),
        points: history.iter().filter_map(|m| f(m).map(|v| (m.epoch as f64, v))).collect(),
    };
    let chart = |title: &str, y: &str, series: Vec<Series>| Chart {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: y.into(),
        series: series.into_iter().filter(|s| !s.points.is_empty()).collect(),
    };
    let mut charts = vec![chart(
        "Loss",
        "loss",
        vec![series("train", &|m| Some(m.train_loss)), series("validation", &|m| m.val_loss)],
    )];
    if history.iter().any(|m| m.train_accuracy.is_some()) {
        charts.push(chart(
            "Accuracy",
            "accuracy",
            vec![series("train", &|m| m.train_accuracy), series("validation", &|m| m.val_accuracy)],
        ));
    }
    charts.push(chart("Learning rate", "learning rate", vec![series("lr", &|m| Some(m.lr))]));
    Ok(eval::plot::charts_png(&charts, (480, 360), path)?)
}

/// Wall time per phase, for the manifest.
pub struct Clock {
    last: Instant,
    laps: Vec<PhaseTiming>,
}

impl Clock {
    /// Starts timing.
    pub fn start() -> Self {
        Self { last: Instant::now(), laps: Vec::new() }
    }

    /// Ends the current phase.
    pub fn lap(&mut self, phase: &str) {
        let now = Instant::now();
        self.laps.push(PhaseTiming { phase: phase.into(), seconds: (now - self.last).as_secs_f64() });
        self.last = now;
    }
}
