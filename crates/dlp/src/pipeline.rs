//! `dlp run`: one pipeline, end to end, into one run directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use eval::ClassificationReport;
use models::{ModelSpec, Params};
use pipeline_core::run::{Host, Manifest, PhaseTiming, write_atomic, write_json};
use pipeline_core::{BundleIndex, RunDir, Task, rng};
use preprocess::Preprocessor;
use serde::Serialize;
use train::{MetricsLog, Progress};

use crate::config::PipelineConfig;

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
    pub test: ClassificationReport,
}

/// `eval.json`: the evaluation on the held-out test part.
#[derive(Debug, Serialize)]
struct EvalFile<'a> {
    split: &'static str,
    labels: &'a [String],
    #[serde(flatten)]
    report: &'a ClassificationReport,
}

/// Runs the pipeline `config` (read from `config_path`).
pub fn run(config_path: &Path, config: &PipelineConfig, options: &RunOptions) -> Result<RunSummary> {
    let now = chrono::Utc::now();
    let stem = format!("{}-{}", config.name, now.format("%Y%m%d-%H%M%S"));
    let run = RunDir::create(&options.runs_dir, &stem).context("creating the run directory")?;
    write_atomic(&run.config(), config.to_yaml().as_bytes())?;
    let mut manifest = Manifest {
        pipeline: config.name.clone(),
        config_file: config_path.display().to_string(),
        seed: config.seed,
        started_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        finished_at: None,
        inputs: Vec::new(),
        versions: BTreeMap::from([
            ("dlp".to_string(), pipeline_core::VERSION.to_string()),
            ("candle-core".to_string(), env!("DLP_CANDLE_VERSION").to_string()),
        ]),
        git_revision: Some(env!("DLP_GIT_REVISION").to_string()).filter(|r| !r.is_empty()),
        host: Host::current(),
        timings: Vec::new(),
    };
    write_json(&run.manifest(), &manifest)?;
    let mut clock = Clock::start();
    let seed = config.seed;

    let ingested = data_ingest::load(&config.data).context("reading the data")?;
    manifest.inputs = ingested.inputs;
    let data = ingested.dataset;
    clock.lap("ingest");

    let split = preprocess::split(data.targets(), &config.preprocess.split, &mut rng(seed, "split"))?;
    write_json(&run.root().join("split.json"), &split)?;
    let (mut train_part, mut val_part, mut test_part) =
        (data.select(&split.train), data.select(&split.validation), data.select(&split.test));
    drop(data);
    let preprocessor = Preprocessor::fit(&config.preprocess, &train_part);
    for part in [&mut train_part, &mut val_part, &mut test_part] {
        preprocessor.transform(part)?;
    }
    clock.lap("preprocess");

    let device = Device::Cpu;
    let schema = train_part.schema().clone();
    let spec = ModelSpec { input_shape: schema.input.shape(), outputs: schema.target.task.outputs() };
    let params = Params::new(rng(seed, "init"));
    let model = models::build(&config.model, &spec, params.var_builder(&device)).context("building the model")?;
    let mut progress = Progress::auto();
    let mut log = MetricsLog::create(&run.metrics_log()).with_context(|| run.metrics_log().display().to_string())?;
    let validation = (!val_part.is_empty()).then_some(&val_part);
    let trainer =
        train::Trainer { model: model.as_ref(), params: &params, config: &config.train, seed, device: &device };
    trainer.fit(&train_part, validation, &mut [&mut progress, &mut log])?;
    clock.lap("train");

    let Task::Classification { labels } = &schema.target.task else {
        bail!("only classification pipelines are supported so far");
    };
    let preds =
        models::predict(model.as_ref(), test_part.features(), &spec.input_shape, &schema.target.task, 512, &device)?;
    let predicted = preds.argmax().unwrap_or_default();
    let actual = test_part.targets().classes().unwrap_or_default();
    let report = ClassificationReport::compute(actual, &predicted, labels)?;
    write_json(&run.eval(), &EvalFile { split: "test", labels, report: &report })?;
    clock.lap("eval");

    let staged = run.stage_bundle()?;
    let index = BundleIndex {
        format_version: pipeline_core::run::BUNDLE_FORMAT_VERSION,
        name: config.name.clone(),
        schema,
        pipeline_version: pipeline_core::VERSION.to_string(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        seed,
    };
    serve::write_bundle(&staged, &index, &config.model, &preprocessor, &params)?;
    run.publish_bundle(staged)?;
    clock.lap("bundle");

    manifest.timings = clock.laps;
    manifest.finished_at = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    write_json(&run.manifest(), &manifest)?;
    Ok(RunSummary { run_dir: run.root().to_path_buf(), test: report })
}

/// Wall time per phase, for the manifest.
struct Clock {
    last: Instant,
    laps: Vec<PhaseTiming>,
}

impl Clock {
    fn start() -> Self {
        Self { last: Instant::now(), laps: Vec::new() }
    }

    fn lap(&mut self, phase: &str) {
        let now = Instant::now();
        self.laps.push(PhaseTiming { phase: phase.into(), seconds: (now - self.last).as_secs_f64() });
        self.last = now;
    }
}
