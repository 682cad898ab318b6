//! The `dlp` command-line interface: one binary that parses the pipeline YAML into each phase
//! crate's config, wires the phases together, and prints what a person needs to see.
//!
//! - `dlp run <config.yaml> [--compare <run-dir>]`: ingest → preprocess → train → evaluate
//!   ([`evaluate`]: metrics, baselines, comparison, gate) → report ([`report`]) → bundle, into a
//!   new run directory ([`pipeline`]); a failed gate exits 1 after the run directory is
//!   complete; `dlp train --resume <run-dir>` (`train` is an alias of `run`) continues an
//!   interrupted run from its newest checkpoint;
//! - `dlp cv <config.yaml> --folds K`: k-fold cross-validation, mean ± std per metric ([`cv`]);
//! - `dlp tune <config.yaml>`: a hyperparameter study of the config's `tune:` section;
//!   `dlp tune --resume <study-dir>` continues a killed one, `dlp tune status <study-dir>` prints
//!   its trials ([`tuning`]);
//! - `dlp init --data <file> --out config.yaml`: a commented, checked config written from the
//!   data ([`init`]);
//! - `dlp auto <config|data> --budget 10m`: model families searched by cross-validation on the
//!   training part, the best fitted and reported ([`auto`]);
//! - `dlp inspect <config.yaml>`: summarize the data before any training ([`inspect`]);
//! - `dlp model summary <config.yaml>`: layers, output shapes and parameter counts;
//! - `dlp sample <bundle> --out grid.png [--classify <bundle>]`: images from a GAN's generator
//!   ([`generate`]);
//! - `dlp check <config.yaml>`: validate a config without running it;
//! - `dlp augment-preview <config.yaml> --out grid.png`: training images beside their
//!   augmented versions ([`preview`]);
//! - `dlp evaluate <bundle> --data <file>`: a saved model's test report on new labelled data
//!   ([`assess`]);
//! - `dlp predict <bundle> --input <file> --output <file.csv>`: batch prediction with a bundle,
//!   streamed in constant memory;
//! - `dlp serve <bundle-or-repository>`: the HTTP inference server ([`serve::server`]);
//! - `dlp export <bundle> --format safetensors|onnx --output <file>`: the model for other tools;
//! - `dlp drift <bundle> --data <file>`: the server's drift check over a file ([`drift`]);
//! - `dlp retrain <bundle> --data <file>`: fine-tune or retrain on new data and write a new
//!   repository version only when it beats the current one ([`retrain`]).
//!
//! Config problems are reported one per line as `file:line:column: key: message`, with exit
//! code 2; other failures as one `error:` line (the cause chain joined by `: `) with exit
//! code 1. Two verdicts have codes of their own: `dlp drift` exits 3 when a feature is
//! flagged, and `dlp retrain` exits 4 when the gate refuses the new model. Nothing a user
//! types makes it panic.
//!
//! What it must not do: hold pipeline logic. It only parses, wires and prints; the library is
//! split so the end-to-end tests can run the same `main`.

pub mod assess;
pub mod auto;
pub mod config;
pub mod cv;
pub mod device;
pub mod drift;
pub mod evaluate;
pub mod experiment;
pub mod forecast;
pub mod generate;
pub mod init;
pub mod inspect;
mod locate;
pub mod out_of_core;
pub mod pipeline;
pub mod preview;
pub mod report;
pub mod retrain;
pub mod tuning;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::ConfigError;

/// Deep learning pipelines from one YAML file: ingest, preprocess, train, evaluate, serve.
#[derive(Debug, Parser)]
#[command(name = "dlp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline end to end into a new run directory, or resume an interrupted run.
    #[command(visible_alias = "train")]
    Run {
        /// The pipeline config (YAML).
        #[arg(required_unless_present = "resume", conflicts_with = "resume")]
        config: Option<PathBuf>,
        /// Where run directories are created.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Continue the interrupted run in this directory from its newest checkpoint.
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// With --resume: the checkpoint to continue from instead of the newest.
        #[arg(long, requires = "resume")]
        checkpoint: Option<PathBuf>,
        /// Score this previous run's model on the same test records and compare (paired
        /// bootstrap, McNemar); the config's `eval.gate.vs_previous` gates on it.
        #[arg(long, value_name = "RUN_DIR")]
        compare: Option<PathBuf>,
    },
    /// Cross-validate a pipeline: train and score it on K folds (stratified for classification),
    /// beside its baselines, and report each metric as mean ± standard deviation.
    Cv {
        /// The pipeline config (YAML).
        config: PathBuf,
        /// Number of folds.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Where the cross-validation directory is created.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
    /// Search hyperparameters: run the trials of the config's `tune:` section into a new study
    /// directory (SQLite study, best config, trials table, history plot), or resume a study.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Tune {
        #[command(subcommand)]
        command: Option<TuneCommand>,
        /// The pipeline config (YAML) with a `tune:` section.
        #[arg(required_unless_present = "resume", conflicts_with = "resume")]
        config: Option<PathBuf>,
        /// Where the study directory is created.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Continue the study in this directory: finished trials are kept, interrupted ones re-run.
        #[arg(long, value_name = "STUDY_DIR")]
        resume: Option<PathBuf>,
    },
    /// Search model families and their key hyperparameters by cross-validation on the training
    /// part (TPE, ASHA pruning over folds), then fit the best and write its full test report.
    Auto {
        /// A pipeline config (YAML), or a data file / folder (its config is the one `dlp init`
        /// writes).
        source: PathBuf,
        /// How long to search (`10m`, `90s`) or how many trials in all (`40`).
        #[arg(long, default_value = "10m")]
        budget: auto::Budget,
        /// Folds of the cross-validation each trial is scored by.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// The target column, when `source` is a data file.
        #[arg(long)]
        target: Option<String>,
        /// Where the study directory is created.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
    /// Write a commented, valid pipeline config for a data file or folder: format, column
    /// kinds, task and class balance inferred from the data, preprocessing, a model family and
    /// training settings chosen for the data's kind and size.
    Init {
        /// The data: a delimited file (CSV / TSV / whitespace, gzip or plain), a
        /// `label<TAB>text` file, an IDX image file, or a folder of class sub-folders.
        #[arg(long)]
        data: PathBuf,
        /// The target column (name or 0-based index); default: a column named like a target,
        /// else the last.
        #[arg(long)]
        target: Option<String>,
        /// Targets in a file of their own (one per line), or an IDX file's labels.
        #[arg(long)]
        target_file: Option<PathBuf>,
        /// `classification` or `regression`; default: decided from the target.
        #[arg(long)]
        task: Option<String>,
        /// The pipeline's name; default: the data file's name.
        #[arg(long)]
        name: Option<String>,
        /// Where the config is written.
        #[arg(long, default_value = "config.yaml")]
        out: PathBuf,
    },
    /// Summarize the data of a pipeline before any training: per-column statistics, class
    /// balance, duplicates, the features most associated with the target, histograms.
    Inspect {
        /// The pipeline config (YAML).
        config: PathBuf,
        /// Where the report directory is created.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
    /// Model tools.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Draw images from a generative model's bundle (`arch: gan`) into a PNG grid.
    Sample {
        /// The bundle directory (`<run>/bundle`).
        bundle: PathBuf,
        /// The PNG file to write.
        #[arg(long)]
        out: PathBuf,
        /// How many images.
        #[arg(long, default_value_t = 64)]
        count: usize,
        /// Seeds the noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A classifier bundle that labels each image (prints the class counts and the mean
        /// confidence, and writes them beside the PNG as JSON).
        #[arg(long, value_name = "BUNDLE")]
        classify: Option<PathBuf>,
    },
    /// Draw a PNG grid of training images (one per class) beside the augmented versions that
    /// the first epochs will train on (`train.augment`).
    AugmentPreview {
        /// The pipeline config (YAML).
        config: PathBuf,
        /// The PNG file to write.
        #[arg(long)]
        out: PathBuf,
        /// Images to show (the first training image of each class, up to this many).
        #[arg(long, default_value_t = 10)]
        rows: usize,
        /// Augmented versions of each image (epochs 1, 2, …).
        #[arg(long, default_value_t = 8)]
        draws: usize,
        /// Pixels per image pixel.
        #[arg(long, default_value_t = 3)]
        zoom: u32,
    },
    /// Check a pipeline config without running it.
    Check {
        /// The pipeline config (YAML).
        config: PathBuf,
    },
    /// Score a saved model on new labelled data: the test report (metrics, plots, errors, the
    /// config's gate) in a new directory.
    Evaluate {
        /// The bundle.
        bundle: PathBuf,
        /// The labelled data, in the layout of the config's `data:` section.
        #[arg(long)]
        data: PathBuf,
        /// The pipeline config (default: the bundle's own config.yaml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where the evaluation directory goes.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
    /// Predict with a model bundle, writing one CSV row per input record (streamed: memory
    /// does not grow with the input).
    Predict {
        /// The bundle directory (`<run>/bundle`).
        bundle: PathBuf,
        /// Records to predict: IDX (gzip or plain), CSV / TSV with the columns the model reads,
        /// text lines (`.txt`) for text models, or a folder of images for image models.
        #[arg(long)]
        input: PathBuf,
        /// The CSV file to write.
        #[arg(long)]
        output: PathBuf,
        /// The input format; guessed when absent (a directory → image folder, `.csv` / `.tsv`
        /// → CSV, `.txt` → text, else IDX).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Records per chunk.
        #[arg(long, default_value_t = 1024)]
        chunk: usize,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Serve a bundle, or a model repository (`<repo>/<model>/<version>/`), over HTTP: the Open
    /// Inference Protocol (KServe V2), raw-record prediction, Prometheus metrics.
    Serve {
        /// A bundle directory, or a repository of numbered bundle versions.
        source: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// How long the first request of a batch waits for others, in milliseconds.
        #[arg(long, default_value_t = 2)]
        batch_window_ms: u64,
        /// The most rows in one forward pass.
        #[arg(long, default_value_t = 64)]
        max_batch: usize,
        /// Largest request body, in bytes.
        #[arg(long, default_value_t = 8 << 20)]
        body_limit: usize,
        /// Per-request timeout, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
        /// How often a repository is checked for new versions, in milliseconds.
        #[arg(long, default_value_t = 2_000)]
        poll_ms: u64,
        /// Longest a client may take to send a request's headers, and longest an idle
        /// keep-alive connection is kept, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        header_timeout_ms: u64,
        /// Longest a request's body may take to arrive, in milliseconds (longer: 408).
        #[arg(long, default_value_t = 10_000)]
        body_timeout_ms: u64,
        /// Require `Authorization: Bearer <token>` on every endpoint but the health checks.
        /// Also read from the DLP_SERVE_TOKEN environment variable. An empty token is refused
        /// (an unset shell variable must not turn authentication off).
        #[arg(long, env = "DLP_SERVE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(flatten)]
        drift: DriftArgs,
        /// Records kept per model version for drift monitoring (0: no monitoring).
        #[arg(long, default_value_t = 1000)]
        drift_window: usize,
        /// The shortest time between two drift recomputations, in milliseconds.
        #[arg(long, default_value_t = 500)]
        drift_interval_ms: u64,
        /// Log every prediction to this JSON-lines file (appended; rotated by size).
        #[arg(long, value_name = "FILE")]
        log_predictions: Option<PathBuf>,
        /// Rotate the prediction log when it would grow past this many bytes.
        #[arg(long, default_value_t = 100 << 20)]
        log_max_bytes: u64,
        /// Rotated prediction logs kept (<file>.1 … <file>.N).
        #[arg(long, default_value_t = 5)]
        log_keep: usize,
    },
    /// Compare a file of records with a bundle's training data: PSI and Kolmogorov-Smirnov per
    /// numeric feature, PSI and chi-squared per categorical one and for the predicted class.
    /// Exits 3 when a feature is flagged.
    Drift {
        /// The bundle directory.
        bundle: PathBuf,
        /// The records: CSV / TSV with the columns the model reads, IDX, or text lines.
        #[arg(long)]
        data: PathBuf,
        /// The input format; guessed from the file name when absent.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// The report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        drift: DriftArgs,
    },
    /// Fine-tune (or retrain from scratch) a bundle on new data, judge it against the current
    /// version on a holdout of that data, and write it as the next repository version only when
    /// the evaluation gate passes. Exits 4 when the gate refuses it.
    Retrain {
        /// The bundle to retrain (usually the version being served).
        bundle: PathBuf,
        /// The new data, in the layout of the config's `data:` section (targets included).
        #[arg(long)]
        data: PathBuf,
        /// Start from the bundle's weights and preprocessing, or from scratch.
        #[arg(long, value_enum, default_value = "fine-tune")]
        mode: RetrainMode,
        /// The model repository to write the new version into.
        #[arg(long, requires = "name", conflicts_with = "output")]
        repository: Option<PathBuf>,
        /// The model's name in the repository.
        #[arg(long, requires = "repository")]
        name: Option<String>,
        /// Write the promoted bundle here instead (a directory that must not exist).
        #[arg(long, required_unless_present = "repository")]
        output: Option<PathBuf>,
        /// The pipeline config (default: the bundle's own config.yaml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override train.epochs.
        #[arg(long)]
        epochs: Option<usize>,
        /// How far the new model may trail the current one on the gate's metric (default: the
        /// config's eval.gate.vs_previous, else 0; negative: the improvement it must show).
        #[arg(long)]
        tolerance: Option<f64>,
    },
    /// Export a bundle's model for other tools.
    Export {
        /// The bundle directory.
        bundle: PathBuf,
        /// `safetensors` (weights with documented names and metadata) or `onnx` (MLP, CNN,
        /// LeNet-5, ResNet).
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The file to write.
        #[arg(long)]
        output: PathBuf,
    },
}

/// Drift thresholds, shared by `serve` and `drift`.
#[derive(Debug, clap::Args)]
struct DriftArgs {
    /// Flag a feature whose population stability index is above this.
    #[arg(long, default_value_t = 0.2)]
    drift_psi: f64,
    /// Flag a feature whose KS or chi-squared p-value is below this.
    #[arg(long, default_value_t = 0.01)]
    drift_p_value: f64,
    /// Flag nothing before this many records.
    #[arg(long, default_value_t = 100)]
    drift_min_rows: usize,
}

impl DriftArgs {
    fn thresholds(&self) -> serve::drift::Thresholds {
        serve::drift::Thresholds { psi: self.drift_psi, p_value: self.drift_p_value, min_rows: self.drift_min_rows }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RetrainMode {
    FineTune,
    FromScratch,
}

/// A verdict with an exit code of its own (`dlp drift` finding drift, `dlp retrain` refused):
/// its message is printed as it is.
#[derive(Debug)]
struct Verdict {
    code: u8,
    message: String,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Verdict {}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    Safetensors,
    Onnx,
}

#[derive(Debug, Subcommand)]
enum TuneCommand {
    /// Print a study's trials table (also while it runs).
    Status {
        /// The study directory.
        study: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Each layer of the configured model with its output shape and parameter count, and the
    /// totals (reads the data: the input shape depends on it).
    Summary {
        /// The pipeline config (YAML).
        config: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Idx,
    Csv,
    Text,
    Images,
    Jsonl,
    Parquet,
    Arrow,
}

/// Runs the CLI with the process arguments; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            if let Some(v) = e.downcast_ref::<Verdict>() {
                let _ = writeln!(err, "{}", v.message);
                ExitCode::from(v.code)
            } else if let Some(c) = e.downcast_ref::<ConfigError>() {
                for line in &c.0 {
                    let _ = writeln!(err, "error: {line}");
                }
                ExitCode::from(2)
            } else {
                let _ = writeln!(err, "error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

fn dispatch(command: Command) -> Result<()> {
    // Thread settings for the commands without a config (predict, serve, sample, drift); the
    // others set the config's `threads` below, which overrides these.
    device::set_threads(0);
    let mut out = std::io::stdout().lock();
    match command {
        Command::Run { config: path, runs_dir, resume, checkpoint, compare } => {
            let summary = match (path, resume) {
                (_, Some(run_dir)) => {
                    let config = config::load(&run_dir.join("config.yaml"))?;
                    device::set_threads(config.threads);
                    pipeline::resume(&run_dir, &config, checkpoint.as_deref())?
                }
                (Some(path), None) => {
                    let config = config::load(&path)?;
                    device::set_threads(config.threads);
                    pipeline::run(&path, &config, &pipeline::RunOptions { runs_dir, compare })?
                }
                (None, None) => unreachable!("clap requires a config or --resume"),
            };
            writeln!(out, "run directory: {}", summary.run_dir.display())?;
            for line in summary.lines() {
                writeln!(out, "{line}")?;
            }
            if let Some(g) = summary.gate().filter(|g| !g.passed) {
                let failed: Vec<&str> = g.checks.iter().filter(|c| !c.passed).map(|c| c.detail.as_str()).collect();
                anyhow::bail!("the evaluation gate failed: {}", failed.join("; "));
            }
        }
        Command::Evaluate { bundle, data, config, runs_dir } => {
            let a = assess::assess(&assess::AssessOptions { bundle, data, config, runs_dir })?;
            writeln!(out, "evaluation directory: {}", a.dir.display())?;
            writeln!(out, "{}", a.evaluation.test.headline())?;
            writeln!(out, "report: {}", a.dir.join("report.html").display())?;
            if let Some(g) = a.evaluation.gate.as_ref() {
                writeln!(out, "gate on {}: {}", g.metric, if g.passed { "passed" } else { "FAILED" })?;
                if !g.passed {
                    let failed: Vec<&str> = g.checks.iter().filter(|c| !c.passed).map(|c| c.detail.as_str()).collect();
                    anyhow::bail!("the evaluation gate failed: {}", failed.join("; "));
                }
            }
        }
        Command::Cv { config: path, folds, runs_dir } => {
            let config = config::load(&path)?;
            device::set_threads(config.threads);
            let report = cv::cross_validate(&path, &config, folds, &runs_dir)?;
            for m in &report.summary {
                let baselines: Vec<String> =
                    m.baselines.iter().map(|(n, b)| format!("{n} {:.4} ± {:.4}", b.mean, b.std)).collect();
                writeln!(
                    out,
                    "{}: {:.4} ± {:.4} (baselines: {})",
                    m.metric,
                    m.model.mean,
                    m.model.std,
                    baselines.join(", ")
                )?;
            }
            writeln!(out, "report: {}", report.dir.join("cv.md").display())?;
        }
        Command::Tune { command: Some(TuneCommand::Status { study }), .. } => {
            write!(out, "{}", tuning::status(&study)?)?;
        }
        Command::Tune { command: None, config: path, runs_dir, resume } => {
            let summary = match (path, resume) {
                (_, Some(dir)) => tuning::resume(&dir)?,
                (Some(path), None) => {
                    let config = config::load(&path)?;
                    device::set_threads(config.threads);
                    tuning::tune(&path, &config, &runs_dir)?
                }
                (None, None) => unreachable!("clap requires a config or --resume"),
            };
            writeln!(out, "study directory: {}", summary.dir.display())?;
            for line in summary.lines() {
                writeln!(out, "{line}")?;
            }
            if summary.best.is_none() {
                let why = summary.trials.iter().find_map(|t| t.error.as_deref()).unwrap_or("every trial was pruned");
                anyhow::bail!("no trial completed ({why})");
            }
        }
        Command::Auto { source, budget, folds, target, runs_dir } => {
            let summary = auto::auto(&source, target, budget, folds, &runs_dir)?;
            for line in summary.lines() {
                writeln!(out, "{line}")?;
            }
        }
        Command::Init { data, target, target_file, task, name, out: path } => {
            let outcome = init::init(&init::InitOptions { data, target, target_file, task, name, out: path })?;
            for d in &outcome.decisions {
                writeln!(out, "{d}")?;
            }
            writeln!(out, "wrote {} (check it with `dlp check`, run it with `dlp run`)", outcome.path.display())?;
        }
        Command::Inspect { config: path, runs_dir } => {
            let config = config::load(&path)?;
            let report = inspect::inspect(&config, &runs_dir)?;
            write!(out, "{}", report.table)?;
            writeln!(out, "report: {}", report.dir.display())?;
        }
        Command::Model { command: ModelCommand::Summary { config: path } } => {
            let config = config::load(&path)?;
            device::set_threads(config.threads);
            write!(out, "{}", pipeline::summary(&config, &path)?)?;
        }
        Command::Sample { bundle, out: png, count, seed, classify } => {
            let classified = generate::sample(&bundle, &png, count, seed, classify.as_deref())?;
            writeln!(out, "wrote {count} samples to {}", png.display())?;
            if let Some(c) = classified {
                let counts: Vec<String> = c.counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                writeln!(out, "classified: {} of {} classes; counts {}", c.covered, c.counts.len(), counts.join(", "))?;
                writeln!(out, "mean top-class confidence: {:.4}", c.mean_confidence)?;
            }
        }
        Command::AugmentPreview { config: path, out: png, rows, draws, zoom } => {
            let config = config::load(&path)?;
            device::set_threads(config.threads);
            let options = preview::PreviewOptions { rows, draws, zoom };
            let n = preview::augment_preview(&config, &path, &png, options)?;
            writeln!(out, "wrote {} ({n} images, each with {draws} augmented versions)", png.display())?;
        }
        Command::Check { config: path } => {
            config::load(&path)?;
            writeln!(out, "{}: ok", path.display())?;
        }
        Command::Predict { bundle, input, output, format, chunk, quiet } => {
            let device = candle_core::Device::Cpu;
            let b = bundle::Bundle::load(&bundle, &device)?;
            let format = input_format(format, &input);
            let options = serve::stream::StreamOptions { chunk, progress: !quiet };
            let n = serve::stream::predict_stream(&b, &input, format, &output, &options)
                .with_context(|| format!("predicting {}", input.display()))?;
            writeln!(out, "wrote {n} predictions to {}", output.display())?;
        }
        Command::Serve {
            source,
            addr,
            batch_window_ms,
            max_batch,
            body_limit,
            timeout_ms,
            header_timeout_ms,
            body_timeout_ms,
            poll_ms,
            token,
            drift,
            drift_window,
            drift_interval_ms,
            log_predictions,
            log_max_bytes,
            log_keep,
        } => {
            use std::time::Duration;
            if let Some(t) = &token
                && t.trim().is_empty()
            {
                return Err(Verdict {
                    code: 2,
                    message: "error: --token (or DLP_SERVE_TOKEN) is empty: give the token, or leave both out to \
                              serve without authentication"
                        .into(),
                }
                .into());
            }
            let options = serve::server::ServeOptions {
                batch: serve::batcher::BatchConfig {
                    window: Duration::from_millis(batch_window_ms),
                    max_batch: max_batch.max(1),
                    ..Default::default()
                },
                body_limit,
                timeout: Duration::from_millis(timeout_ms.max(1)),
                header_timeout: Duration::from_millis(header_timeout_ms.max(1)),
                body_timeout: Duration::from_millis(body_timeout_ms.max(1)),
                token,
                poll: Duration::from_millis(poll_ms.max(10)),
                observers: Vec::new(),
                drift: (drift_window > 0).then(|| serve::drift::DriftOptions {
                    window: drift_window,
                    thresholds: drift.thresholds(),
                    interval: Duration::from_millis(drift_interval_ms),
                    log: std::sync::Arc::new(|line: &str| {
                        let _ = writeln!(std::io::stderr(), "dlp serve: {line}");
                    }),
                }),
                prediction_log: log_predictions.map(|path| serve::predlog::PredictionLogOptions {
                    max_bytes: log_max_bytes.max(1),
                    keep: log_keep,
                    ..serve::predlog::PredictionLogOptions::new(path)
                }),
            };
            let log = std::sync::Arc::new(|e: &serve::repository::Event| {
                let _ = writeln!(std::io::stderr(), "dlp serve: {e}");
            });
            drop(out);
            serve::server::run(&source, &addr, options, log, |a| {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "listening on http://{a}");
                let _ = o.flush();
            })?;
            let _ = writeln!(std::io::stderr(), "dlp serve: stopped");
            return Ok(());
        }
        Command::Drift { bundle, data, format, json, drift: args } => {
            let format = input_format(format, &data);
            let report = drift::check(&bundle, &data, format, &args.thresholds())?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                write!(out, "{}", drift::table(&report))?;
            }
            if report.flagged {
                let flagged: Vec<&str> =
                    report.features.iter().filter(|f| f.flagged).map(|f| f.name.as_str()).collect();
                return Err(Verdict { code: 3, message: format!("drift: flagged {}", flagged.join(", ")) }.into());
            }
        }
        Command::Retrain { bundle, data, mode, repository, name, output, config, epochs, tolerance } => {
            let destination = match (repository, name, output) {
                (Some(root), Some(name), _) => retrain::Destination::Repository { root, name },
                (_, _, Some(dir)) => retrain::Destination::Output(dir),
                _ => unreachable!("clap requires --repository with --name, or --output"),
            };
            let options = retrain::RetrainOptions {
                bundle,
                data,
                mode: match mode {
                    RetrainMode::FineTune => retrain::Mode::FineTune,
                    RetrainMode::FromScratch => retrain::Mode::FromScratch,
                },
                destination,
                config,
                epochs,
                tolerance,
            };
            let outcome = retrain::retrain(&options)?;
            for line in outcome.lines() {
                writeln!(out, "{line}")?;
            }
            if !outcome.gate.passed {
                return Err(Verdict {
                    code: 4,
                    message: format!("retrain refused: {}; nothing was written", outcome.refusal()),
                }
                .into());
            }
        }
        Command::Export { bundle, format, output } => {
            let b = bundle::Bundle::load(&bundle, &candle_core::Device::Cpu)?;
            match format {
                ExportFormat::Safetensors => {
                    let n = serve::export::export_safetensors(&b, &output)?;
                    writeln!(out, "wrote {n} tensors to {}", output.display())?;
                }
                ExportFormat::Onnx => {
                    serve::export::export_onnx(&b, &output)?;
                    writeln!(out, "wrote {}", output.display())?;
                }
            }
        }
    }
    Ok(())
}

fn input_format(format: Option<Format>, path: &std::path::Path) -> serve::InputFormat {
    match format {
        Some(Format::Idx) => serve::InputFormat::Idx,
        Some(Format::Csv) => serve::InputFormat::Csv,
        Some(Format::Text) => serve::InputFormat::Text,
        Some(Format::Images) => serve::InputFormat::ImageFolder,
        Some(Format::Jsonl) => serve::InputFormat::Jsonl,
        Some(Format::Parquet) => serve::InputFormat::Parquet,
        Some(Format::Arrow) => serve::InputFormat::Arrow,
        None => serve::InputFormat::from_path(path),
    }
}
