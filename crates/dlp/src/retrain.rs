//! `dlp retrain <bundle> --data <file>`: train on new data, and promote the result only when it
//! beats the version being served.
//!
//! 1. The pipeline config is the bundle's own `config.yaml` (the resolved config `dlp run`
//!    wrote into it) or `--config`; its data file is replaced by `--data`, which must have the
//!    layout the config's `data:` section describes.
//! 2. The new data is cleaned and split as the config says (seeded, stratified); its test part
//!    is the **holdout** on which both models are judged.
//! 3. `--mode fine-tune` (the default) keeps the bundle's fitted preprocessing and continues
//!    training from its weights; `--mode from-scratch` refits the preprocessing on the new
//!    training part and trains from a fresh initialisation. `--epochs` overrides
//!    `train.epochs`.
//! 4. The new model and the current version (the newest version in the repository, or the
//!    bundle itself with `--output`) predict the same holdout records; the comparison is the
//!    one of `dlp run --compare` (paired bootstrap, McNemar), and the gate is the config's
//!    `eval.gate` with `vs_previous` set (`--tolerance`, else the config's, else 0: the new
//!    model may not be worse).
//! 5. Only when the gate passes is the new bundle written — with its own reference statistics
//!    and config, and `retrain.json` saying what it was trained on and how it compared — into a
//!    hidden staging directory that is then renamed to `<repository>/<name>/<n+1>/` (or the
//!    `--output` directory), so a server polling the repository never sees half a version.
//!    When it fails, nothing is written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use models::Params;
use pipeline_core::run::{BUNDLE_FORMAT_VERSION, write_json};
use pipeline_core::{BundleDir, BundleIndex, Predictions, rng};
use serde::Serialize;
use train::Progress;

use crate::config::{self, PipelineConfig};
use crate::device;
use crate::evaluate::{self, Actual, Comparison, Current, Gate, GateOutcome, TestReport};
use crate::experiment::Experiment;
use crate::pipeline::{self, BUNDLE_CONFIG, Prepared};

/// How the new model starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// From the bundle's weights, with its fitted preprocessing.
    FineTune,
    /// From a fresh initialisation, with preprocessing refitted on the new data.
    FromScratch,
}

/// Where a promoted model goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Version `n + 1` of `<root>/<name>/`, compared with version `n`.
    Repository {
        /// The model repository.
        root: PathBuf,
        /// The model's name in it.
        name: String,
    },
    /// A bundle directory (which must not exist), compared with the bundle retrained.
    Output(PathBuf),
}

/// What `dlp retrain` was asked.
#[derive(Debug, Clone)]
pub struct RetrainOptions {
    /// The bundle to retrain.
    pub bundle: PathBuf,
    /// The new data.
    pub data: PathBuf,
    /// Fine-tune or train from scratch.
    pub mode: Mode,
    /// Where the promoted model goes.
    pub destination: Destination,
    /// The pipeline config, when not the bundle's own.
    pub config: Option<PathBuf>,
    /// Overrides `train.epochs`.
    pub epochs: Option<usize>,
    /// How far the new model may trail the current one on the gate's metric.
    pub tolerance: Option<f64>,
}

/// What a retrain found, promoted or not.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainOutcome {
    /// How the new model started.
    pub mode: Mode,
    /// The new data.
    pub data: PathBuf,
    /// Records trained on.
    pub train_records: usize,
    /// Records of the holdout both models were scored on.
    pub holdout_records: usize,
    /// The current version compared with.
    pub current: PathBuf,
    /// The new model's holdout metrics.
    pub new: TestReport,
    /// The comparison with the current version (whose metrics it holds).
    pub comparison: Comparison,
    /// The gate's verdict.
    pub gate: GateOutcome,
    /// The new version's directory, when promoted.
    pub written: Option<PathBuf>,
}

impl RetrainOutcome {
    /// The lines `dlp retrain` prints.
    pub fn lines(&self) -> Vec<String> {
        let metric = self.comparison.metric;
        let d = &self.comparison.difference;
        let value = |r: &TestReport| r.metric(metric).map_or("-".into(), |v| format!("{v:.4}"));
        let mut lines = vec![
            format!(
                "{} on {}: {} training records, {} holdout records",
                match self.mode {
                    Mode::FineTune => "fine-tuned",
                    Mode::FromScratch => "trained from scratch",
                },
                self.data.display(),
                self.train_records,
                self.holdout_records
            ),
            format!("new model: {metric} {}", value(&self.new)),
            format!("current model ({}): {metric} {}", self.current.display(), value(&self.comparison.previous)),
            format!(
                "difference: {:+.4} (95% CI [{:+.4}, {:+.4}]){}",
                d.observed,
                d.low,
                d.high,
                self.comparison
                    .mcnemar
                    .as_ref()
                    .map(|m| format!(", McNemar p = {:.4}", m.result.p_value))
                    .unwrap_or_default()
            ),
            format!("gate on {}: {}", self.gate.metric, if self.gate.passed { "passed" } else { "FAILED" }),
        ];
        if let Some(w) = &self.written {
            lines.push(format!("promoted: wrote {}", w.display()));
        }
        lines
    }

    /// Why the gate refused the new model, in one line.
    pub fn refusal(&self) -> String {
        let failed: Vec<&str> = self.gate.checks.iter().filter(|c| !c.passed).map(|c| c.detail.as_str()).collect();
        failed.join("; ")
    }
}

/// `retrain.json`: how a promoted version came to be.
#[derive(Serialize)]
struct RetrainRecord<'a> {
    parent: &'a Path,
    inputs: &'a [pipeline_core::run::InputFile],
    epochs: usize,
    #[serde(flatten)]
    outcome: &'a RetrainOutcome,
}

/// The newest numbered version under `dir` (0 when there is none, or no `dir`).
fn newest_version(dir: &Path) -> Result<Option<(u64, PathBuf)>> {
    if !dir.exists() {
        return Ok(None);
    }
    let found = serve::repository::versions(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(found.into_iter().next())
}

fn describe(task: &pipeline_core::Task) -> String {
    match task {
        pipeline_core::Task::Classification { labels } => format!("the classes [{}]", labels.join(", ")),
        pipeline_core::Task::Regression => "a value".into(),
        pipeline_core::Task::Forecast { horizon } => format!("{horizon} steps of a series"),
        pipeline_core::Task::Generation => "images".into(),
    }
}

/// Retrains as `options` say; writes the new version only when the gate passes (the outcome
/// says which).
pub fn retrain(options: &RetrainOptions) -> Result<RetrainOutcome> {
    let cpu = candle_core::Device::Cpu;
    let bundle = bundle::Bundle::load(&options.bundle, &cpu)?;
    if bundle.preprocess.series().is_some() {
        bail!(
            "{}: dlp retrain does not retrain forecasting models yet; run the bundle's config.yaml on the extended \
             series with `dlp run` (the report compares it with the baselines on the new test window)",
            options.bundle.display()
        );
    }
    let config_path = options.config.clone().unwrap_or_else(|| options.bundle.join(BUNDLE_CONFIG));
    if !config_path.is_file() {
        bail!(
            "{}: the bundle has no {BUNDLE_CONFIG} (bundles written before `dlp retrain` existed lack it): give the \
             pipeline config with --config",
            options.bundle.display()
        );
    }
    let data = std::path::absolute(&options.data).unwrap_or_else(|_| options.data.clone());
    if !data.is_file() {
        bail!("--data {}: no such file", options.data.display());
    }
    let mut config = config::with_data(&config_path, &data)?;
    if let Some(e) = options.epochs {
        if e == 0 {
            bail!("--epochs must be at least 1");
        }
        config.train.epochs = e;
    }
    if options.tolerance.is_some_and(|t| !t.is_finite()) {
        bail!("--tolerance must be a finite number");
    }
    if config.preprocess.split.test <= 0.0 {
        bail!("{}: preprocess.split.test is 0, so the new data has no holdout to judge on", config_path.display());
    }
    if matches!(config.model, models::ModelConfig::Gan(_)) {
        bail!("a generative model (arch: gan) has no evaluation gate to retrain against");
    }

    // Where the result goes and what it must beat.
    let (current_dir, final_dir) = match &options.destination {
        Destination::Repository { root, name } => {
            let model_dir = root.join(name);
            match newest_version(&model_dir)? {
                Some((n, dir)) => (dir, model_dir.join((n + 1).to_string())),
                None => (options.bundle.clone(), model_dir.join("1")),
            }
        }
        Destination::Output(dir) => {
            if dir.exists() {
                bail!("--output {}: already exists", dir.display());
            }
            (options.bundle.clone(), dir.clone())
        }
    };
    let current = if current_dir == options.bundle {
        None
    } else {
        Some(bundle::Bundle::load(&current_dir, &cpu).with_context(|| format!("loading {}", current_dir.display()))?)
    };
    let current_bundle = current.as_ref().unwrap_or(&bundle);

    device::set_threads(config.threads);
    let device = config.device.open()?;
    let seed = config.seed;
    let loaded = pipeline::load(&config, None)?;
    let split = preprocess::split_records(
        &loaded.targets,
        loaded.data.parts.as_deref(),
        &config.preprocess.split,
        &mut rng(seed, "split"),
    )?;
    let prepared = match options.mode {
        Mode::FromScratch => pipeline::fit_parts(&config, &loaded, &split)?,
        Mode::FineTune => fine_tune_parts(&config, &loaded, &split, &bundle)?,
    };
    let Prepared { preprocessor, train, validation, test, test_raw, reference, split, inputs, .. } = prepared;
    let schema = train.schema().clone();
    if current_bundle.task() != &schema.target.task {
        bail!(
            "the new data's targets are {}, the current model ({}) predicts {}: they cannot be compared",
            describe(&schema.target.task),
            current_dir.display(),
            describe(current_bundle.task())
        );
    }

    let exp = Experiment::build(&config, &schema, &device, &config_path)?;
    if options.mode == Mode::FineTune {
        let model_config = config.model.for_bundle()?;
        if model_config != bundle.model_config || exp.head != bundle.index.head {
            bail!(
                "{}: the config's model is not the bundle's, so its weights cannot be fine-tuned: use --mode \
                 from-scratch",
                config_path.display()
            );
        }
        load_into(&exp.params, &BundleDir::new(&options.bundle).weights(), &device)?;
    }
    let trainer = exp.trainer(None);
    let mut progress = Progress::auto();
    let val = (!validation.is_empty()).then_some(&validation);
    trainer.fit(&train, val, &mut [&mut progress])?;

    let predict = |part: &pipeline_core::Dataset| -> Result<Predictions> {
        let p = exp.predict(part)?;
        Ok(preprocessor.target.decode(p))
    };
    let new_predictions = predict(&test)?;
    let current_predictions = current_bundle
        .predict(&test_raw.inputs)
        .with_context(|| format!("predicting the holdout with {}", current_dir.display()))?;
    let actual = Actual::of(&test, &preprocessor)?;
    let new = evaluate::score(&schema.target.task, &new_predictions, &actual, config.eval.top_k)?;
    let now = Current {
        task: &schema.target.task,
        test_raw: &test_raw,
        test_rows: &split.test,
        actual: &actual,
        predictions: &new_predictions,
        report: &new,
    };
    let comparison =
        evaluate::compare_predictions(&current_dir, &current_predictions, false, &now, &config.eval, seed)?;
    let mut gate = config.eval.gate.clone().unwrap_or(Gate {
        metric: None,
        threshold: None,
        vs_baseline: None,
        vs_previous: None,
    });
    gate.vs_previous = Some(options.tolerance.or(gate.vs_previous).unwrap_or(0.0));
    let mut notes = Vec::new();
    let baselines = if gate.vs_baseline.is_some() {
        evaluate::baselines(&schema.target.task, &train, &test, &preprocessor, &actual, config.eval.top_k, &mut notes)?
    } else {
        Vec::new()
    };
    let verdict = evaluate::apply_gate(&gate, &new, &baselines, Some(&comparison))?;
    let mut outcome = RetrainOutcome {
        mode: options.mode,
        data: options.data.clone(),
        train_records: train.len(),
        holdout_records: test.len(),
        current: current_dir.clone(),
        new,
        comparison,
        gate: verdict,
        written: None,
    };
    if !outcome.gate.passed {
        return Ok(outcome);
    }

    // Promote: stage beside the destination, then one rename.
    let parent = final_dir.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let leaf = final_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = parent.join(format!(".{leaf}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let written = (|| -> Result<()> {
        std::fs::create_dir_all(&staging)?;
        let staged = BundleDir::new(&staging);
        let index = BundleIndex {
            format_version: BUNDLE_FORMAT_VERSION,
            name: bundle.index.name.clone(),
            schema: schema.clone(),
            head: exp.head,
            pipeline_version: pipeline_core::VERSION.to_string(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            seed,
        };
        let model_config = config.model.for_bundle()?;
        bundle::write_bundle(&staged, &index, &model_config, &preprocessor, &exp.params)?;
        let train_predictions = predict(&train)?;
        pipeline::write_monitoring(&staged, &config, reference, &train_predictions, &schema.target.task)?;
        outcome.written = Some(final_dir.clone());
        let record =
            RetrainRecord { parent: &options.bundle, inputs: &inputs, epochs: config.train.epochs, outcome: &outcome };
        write_json(&staging.join("retrain.json"), &record)?;
        std::fs::rename(&staging, &final_dir)
            .with_context(|| format!("renaming {} to {}", staging.display(), final_dir.display()))?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        outcome.written = None;
        return Err(e.context(format!("writing {}", final_dir.display())));
    }
    Ok(outcome)
}

/// The parts for fine-tuning: the bundle's fitted preprocessing applied to the new data (its
/// class list encodes the targets, so a class it does not know is an error).
fn fine_tune_parts(
    config: &PipelineConfig,
    loaded: &pipeline::Loaded,
    split: &preprocess::Split,
    bundle: &bundle::Bundle,
) -> Result<Prepared> {
    let preprocessor = bundle.preprocess.clone();
    let data = &loaded.data;
    let part = |idx: &[usize]| {
        preprocessor.transform(&data.select(idx)).context(
            "applying the bundle's preprocessing to the new data (fine-tuning keeps the bundle's columns and \
             classes; use --mode from-scratch to refit them)",
        )
    };
    let train_raw = data.select(&split.train);
    let reference = bundle::reference::Reference::fit_inputs(&train_raw.inputs, &pipeline::reference_options(config))
        .context("fitting the drift reference statistics")?;
    let (train, validation, test) = (part(&split.train)?, part(&split.validation)?, part(&split.test)?);
    Ok(Prepared {
        inputs: loaded.inputs.clone(),
        read_report: loaded.read_report.clone(),
        cleaning: loaded.cleaning.clone(),
        split: split.mapped(&loaded.kept_rows),
        preprocessor,
        train,
        validation,
        test,
        test_raw: data.select(&split.test),
        series: None,
        reference,
        reference_rows: None,
    })
}

/// Sets every parameter to its value in the safetensors file at `path`.
fn load_into(params: &Params, path: &Path, device: &candle_core::Device) -> Result<()> {
    let tensors =
        candle_core::safetensors::load(path, device).with_context(|| format!("reading {}", path.display()))?;
    for (name, var) in params.named_vars() {
        let t = tensors.get(&name).with_context(|| format!("{}: no tensor `{name}`", path.display()))?;
        var.set(t).with_context(|| format!("{}: tensor `{name}`", path.display()))?;
    }
    Ok(())
}
