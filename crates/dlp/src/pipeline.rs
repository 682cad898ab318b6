//! `dlp run` and `dlp train --resume`: one pipeline, end to end, into one run directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use eval::plot::{Chart, Series};
use eval::{ClassificationReport, RegressionReport};
use models::{ModelSpec, Params};
use pipeline_core::run::{Host, Manifest, PhaseTiming, read_json, write_atomic, write_json};
use pipeline_core::{BundleIndex, Predictions, RunDir, Targets, Task, rng};
use preprocess::{Preprocessor, TargetEncoder};
use serde::Serialize;
use train::{Checkpoint, EpochMetrics, MetricsLog, Progress, Trainer};

use crate::config::PipelineConfig;
use crate::device;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The parent of run directories.
    pub runs_dir: PathBuf,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The test-set evaluation.
    pub test: TestReport,
}

/// The evaluation on the held-out test part.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum TestReport {
    /// Classification metrics.
    Classification {
        /// Class names.
        labels: Vec<String>,
        /// The metrics.
        #[serde(flatten)]
        report: ClassificationReport,
    },
    /// Regression metrics.
    Regression(RegressionReport),
}

impl TestReport {
    /// One line of headline figures.
    pub fn headline(&self) -> String {
        match self {
            TestReport::Classification { report, .. } => format!(
                "test accuracy: {:.4} ({} examples), macro F1: {:.4}",
                report.accuracy, report.examples, report.macro_avg.f1
            ),
            TestReport::Regression(r) => {
                format!("test RMSE: {:.4} ({} examples), MAE: {:.4}, R²: {:.4}", r.rmse, r.examples, r.mae, r.r2)
            }
        }
    }
}

/// `eval.json`.
#[derive(Debug, Serialize)]
struct EvalFile<'a> {
    split: &'static str,
    #[serde(flatten)]
    report: &'a TestReport,
}

/// Runs the pipeline `config` (read from `config_path`) into a new run directory.
pub fn run(config_path: &Path, config: &PipelineConfig, options: &RunOptions) -> Result<RunSummary> {
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
    };
    write_json(&run.manifest(), &manifest)?;
    execute(&run, config, config_path, manifest, None)
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
    let device = device::open(device::parse(&config.device).map_err(anyhow::Error::msg)?)?;
    let ck = match checkpoint {
        Some(p) => train::checkpoint::read(p, &device)?,
        None => newest_checkpoint(&run, &device)?,
    };
    execute(&run, config, &run.config(), manifest, Some(ck))
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
) -> Result<RunSummary> {
    let mut clock = Clock::start();
    let seed = config.seed;
    let device = device::open(device::parse(&config.device).map_err(anyhow::Error::msg)?)?;

    let prepared = prepare(config, resume.as_ref().map(|_| manifest.inputs.as_slice()), &mut clock)?;
    let Prepared {
        inputs,
        read_report,
        cleaning,
        split,
        preprocessor,
        train: train_part,
        validation: val_part,
        test: test_part,
    } = prepared;
    manifest.inputs = inputs;
    manifest.data_report = Some(serde_json::json!({ "read": read_report, "cleaning": cleaning }));
    write_json(&run.root().join("split.json"), &split)?;

    let schema = train_part.schema().clone();
    let (head, spec) = model_spec(config, &schema, config_path)?;
    let params = Params::new(rng(seed, "init"));
    let (model, _) =
        models::build_for_training(&config.model, &spec, &params, &device).context("building the model")?;
    let mut progress = Progress::auto();
    let mut log = match &resume {
        Some(ck) => MetricsLog::resume(&run.metrics_log(), &ck.state.history),
        None => MetricsLog::create(&run.metrics_log()),
    }
    .with_context(|| run.metrics_log().display().to_string())?;
    let validation = (!val_part.is_empty()).then_some(&val_part);
    let checkpoints = run.checkpoints();
    let trainer = Trainer {
        model: model.as_ref(),
        params: &params,
        config: &config.train,
        seed,
        device: &device,
        checkpoint_dir: Some(&checkpoints),
    };
    let callbacks: &mut [&mut dyn train::Callback] = &mut [&mut progress, &mut log];
    let report = match resume {
        Some(ck) => trainer.resume(ck, &train_part, validation, callbacks)?,
        None => trainer.fit(&train_part, validation, callbacks)?,
    };
    training_curves(&report.history, &run.curves())?;
    clock.lap("train");

    let preds = models::predict(model.as_ref(), test_part.features(), &spec.input_shape, head, 512, &device)?;
    let preds = preprocessor.target.decode(preds);
    let report = match (&schema.target.task, &preds, test_part.targets()) {
        (Task::Classification { labels }, _, Targets::Classes(actual)) => TestReport::Classification {
            labels: labels.clone(),
            report: ClassificationReport::compute(actual, &preds.argmax().unwrap_or_default(), labels)?,
        },
        (_, Predictions::Values(predicted), Targets::Values(encoded)) => {
            // Targets in their own units: undo the standardization the model trained on.
            let Predictions::Values(actual) = preprocessor.target.decode(Predictions::Values(encoded.clone())) else {
                bail!("regression targets decode to values");
            };
            TestReport::Regression(RegressionReport::compute(&actual, predicted)?)
        }
        _ => bail!("the predictions do not fit the task"),
    };
    write_json(&run.eval(), &EvalFile { split: "test", report: &report })?;
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
    let csv = serve::predictions_csv(&schema.target.task, &preds, Some(&split.test), Some(&actual))
        .map_err(anyhow::Error::msg)?;
    write_atomic(&run.predictions(), &csv)?;
    clock.lap("eval");

    let staged = run.stage_bundle()?;
    let index = BundleIndex {
        format_version: pipeline_core::run::BUNDLE_FORMAT_VERSION,
        name: config.name.clone(),
        schema,
        head,
        pipeline_version: pipeline_core::VERSION.to_string(),
        created_at: timestamp(chrono::Utc::now()),
        seed,
    };
    let model_config = config.model.for_bundle().map_err(anyhow::Error::msg)?;
    serve::write_bundle(&staged, &index, &model_config, &preprocessor, &params)?;
    run.publish_bundle(staged)?;
    clock.lap("bundle");

    manifest.timings.extend(clock.laps);
    manifest.finished_at = Some(timestamp(chrono::Utc::now()));
    write_json(&run.manifest(), &manifest)?;
    Ok(RunSummary { run_dir: run.root().to_path_buf(), test: report })
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
}

/// Reads, cleans, splits and preprocesses the data of `config`. With `expect`, the files read
/// must have those hashes (resuming a run on changed data is refused).
pub fn prepare(
    config: &PipelineConfig,
    expect: Option<&[pipeline_core::run::InputFile]>,
    clock: &mut Clock,
) -> Result<Prepared> {
    let ingested = data_ingest::load(&config.data).context("reading the data")?;
    for (now, then) in ingested.inputs.iter().zip(expect.unwrap_or_default()) {
        if now.sha256 != then.sha256 {
            bail!(
                "{}: the data changed since the run started (sha256 {} then, {} now); start a new run instead",
                now.path,
                then.sha256,
                now.sha256
            );
        }
    }
    clock.lap("ingest");
    let (data, kept_rows, mut cleaning) = preprocess::clean(&ingested.data, &config.preprocess);
    drop(ingested.data);
    let target = data.target.as_ref().context("the data has no target column")?;
    let encoder = TargetEncoder::fit(target, &config.data.target_spec())?;
    let targets = encoder.encode(target)?;
    let split = preprocess::split(&targets, &config.preprocess.split, &mut rng(config.seed, "split"))?;
    let train_raw = data.select(&split.train);
    let (preprocessor, kept) = Preprocessor::fit(&config.preprocess, &train_raw, encoder)?;
    cleaning.outliers = train_raw.rows() - kept.len();
    let train_raw = if cleaning.outliers > 0 { train_raw.select(&kept) } else { train_raw };
    let train = preprocessor.transform(&train_raw)?;
    let validation = preprocessor.transform(&data.select(&split.validation))?;
    let test = preprocessor.transform(&data.select(&split.test))?;
    // Parts are named by their position in the source, before cleaning.
    let source_rows = |part: &[usize]| part.iter().map(|&i| kept_rows[i]).collect::<Vec<_>>();
    let split = preprocess::Split {
        train: source_rows(&split.train),
        validation: source_rows(&split.validation),
        test: source_rows(&split.test),
    };
    clock.lap("preprocess");
    Ok(Prepared {
        inputs: ingested.inputs,
        read_report: ingested.report,
        cleaning,
        split,
        preprocessor,
        train,
        validation,
        test,
    })
}

/// The output head and model spec for data of `schema`, after checking the architecture fits
/// the data's shapes (problems are config errors located in `config_path`).
pub fn model_spec(
    config: &PipelineConfig,
    schema: &pipeline_core::Schema,
    config_path: &Path,
) -> Result<(pipeline_core::Head, ModelSpec)> {
    let head = Trainer::head(&config.train, &schema.target.task)?;
    let spec = ModelSpec::new(&schema.input, head.outputs(&schema.target.task));
    let issues = config.model.check(&spec);
    if !issues.is_empty() {
        return Err(crate::config::located(config_path, issues).into());
    }
    Ok((head, spec))
}

/// `dlp model summary`: prepares the data (the model's input shape depends on it) and lists
/// the layers of the configured model.
pub fn summary(config: &PipelineConfig, config_path: &Path) -> Result<String> {
    let device = device::open(device::parse(&config.device).map_err(anyhow::Error::msg)?)?;
    let prepared = prepare(config, None, &mut Clock::start())?;
    let schema = prepared.train.schema().clone();
    let (_, spec) = model_spec(config, &schema, config_path)?;
    let params = Params::new(rng(config.seed, "init"));
    let (model, _) =
        models::build_for_training(&config.model, &spec, &params, &device).context("building the model")?;
    let s = models::summarize(model.as_ref(), &params, &spec.input_shape);
    Ok(s.table(&spec.input_shape))
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
