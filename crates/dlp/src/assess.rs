//! `dlp evaluate <bundle> --data <file>`: the test report of a saved model on new labelled data.
//!
//! The bundle's own `config.yaml` (or `--config`) says how the data is read, with its data file
//! replaced by `--data`; the records are cleaned as in training (missing targets dropped), then
//! transformed by the bundle's fitted preprocessing — nothing is re-fitted, and a class the
//! model does not know is an error — and every record is scored, as the test part of a run is:
//! the metrics, the plots, the most confident errors and the config's gate. The baselines need
//! the training data, which a bundle does not keep, so they are not computed and the gate's
//! `vs_baseline` rule is left out (both said in the report). Everything goes into a new
//! directory `<runs-dir>/<name>-evaluate-<timestamp>/`: `eval.json`, `predictions.csv`, the plots,
//! `report.md` and a self-contained `report.html`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use pipeline_core::run::{write_atomic, write_json};
use pipeline_core::{Predictions, RunDir, Targets, Task};

use crate::evaluate::{EvalInput, Evaluation};

/// What `dlp evaluate` was asked.
pub struct AssessOptions {
    /// The bundle.
    pub bundle: PathBuf,
    /// The labelled data, in the layout of the config's `data:` section.
    pub data: PathBuf,
    /// The pipeline config (default: the bundle's own `config.yaml`).
    pub config: Option<PathBuf>,
    /// The parent of the output directory.
    pub runs_dir: PathBuf,
}

/// What it found.
pub struct Assessment {
    /// The output directory.
    pub dir: PathBuf,
    /// The evaluation.
    pub evaluation: Evaluation,
}

/// Scores the bundle on the data.
pub fn assess(options: &AssessOptions) -> Result<Assessment> {
    let cpu = candle_core::Device::Cpu;
    let bundle = bundle::Bundle::load(&options.bundle, &cpu)?;
    if bundle.preprocess.series().is_some() {
        bail!(
            "{}: a forecasting model is evaluated on a series' test window: run its config.yaml on the new series \
             with `dlp run` (or backtest it with `dlp cv`)",
            options.bundle.display()
        );
    }
    if matches!(bundle.task(), Task::Generation) {
        bail!("{}: a generative model has no labels to be scored against", options.bundle.display());
    }
    let config_path = options.config.clone().unwrap_or_else(|| options.bundle.join(crate::pipeline::BUNDLE_CONFIG));
    if !config_path.is_file() {
        bail!("{}: the bundle has no config.yaml: give the pipeline config with --config", options.bundle.display());
    }
    let data = std::path::absolute(&options.data).unwrap_or_else(|_| options.data.clone());
    if !data.exists() {
        bail!("--data {}: no such file", options.data.display());
    }
    let config = crate::config::with_data(&config_path, &data)?;
    let loaded = crate::pipeline::load(&config, None)?;
    let test = bundle.preprocess.transform(&loaded.data).context(
        "applying the bundle's preprocessing to the data (it must have the training columns, and only classes the \
         model knows)",
    )?;
    let predictions = bundle.predict_rows(test.features())?;
    let task = bundle.task().clone();
    let mut eval_config = config.eval.clone();
    eval_config.baselines = false;
    let mut notes = vec![
        "No baselines: they are fitted on the training data, which a bundle does not keep (`dlp run` reports them)."
            .to_string(),
    ];
    if let Some(g) = eval_config.gate.as_mut()
        && g.vs_baseline.take().is_some()
    {
        notes.push("The gate's vs_baseline rule is left out: there are no baselines.".into());
        if g.threshold.is_none() && g.vs_previous.is_none() {
            eval_config.gate = None;
        }
    }
    let stem = format!("{}-evaluate-{}", config.name, chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    let run = RunDir::create(&options.runs_dir, &stem).context("creating the evaluation directory")?;
    let rows: Vec<usize> = loaded.kept_rows.clone();
    let mut evaluation = crate::evaluate::evaluate(
        &eval_config,
        &EvalInput {
            task: &task,
            preprocessor: &bundle.preprocess,
            // Only the baselines read the training part, and they are off.
            train: &test,
            test: &test,
            test_raw: &loaded.data,
            test_rows: &rows,
            predictions: &predictions,
            seed: config.seed,
            plot_dir: Some(run.root()),
            compare: None,
        },
    )?;
    evaluation.notes.splice(0..0, notes);
    write_json(&run.eval(), &evaluation)?;
    let actual: Vec<String> = match (test.targets(), &task) {
        (Targets::Classes(c), Task::Classification { labels }) => {
            c.iter().map(|&i| labels[i as usize].clone()).collect()
        }
        (Targets::Values(v), _) => match bundle.preprocess.target.decode(Predictions::Values(v.clone())) {
            Predictions::Values(v) => v.iter().map(ToString::to_string).collect(),
            Predictions::Classes { .. } => Vec::new(),
        },
        _ => Vec::new(),
    };
    let csv = bundle::predictions_csv(&task, &predictions, Some(&rows), Some(&actual))?;
    write_atomic(&run.predictions(), &csv)?;
    write_report(
        run.root(),
        &config.name,
        &options.bundle,
        &data,
        loaded.data.rows(),
        &loaded.read_report,
        &evaluation,
    )?;
    Ok(Assessment { dir: run.root().to_path_buf(), evaluation })
}

fn write_report(
    dir: &Path,
    name: &str,
    bundle: &Path,
    data: &Path,
    records: usize,
    read: &data_ingest::ReadReport,
    e: &Evaluation,
) -> Result<()> {
    let page = |image: &dyn Fn(&str) -> String| {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "# {name}: evaluation of a saved model on new data\n");
        let _ = writeln!(w, "Bundle `{}`; data `{}`.\n", bundle.display(), data.display());
        let _ = writeln!(w, "**{}**\n", e.test.headline());
        if let Some(g) = &e.gate {
            let _ = writeln!(w, "Gate on {}: **{}**.\n", g.metric, if g.passed { "PASSED" } else { "FAILED" });
            for c in &g.checks {
                let _ = writeln!(w, "- {}: {} — {}", c.rule, if c.passed { "passed" } else { "failed" }, c.detail);
            }
            let _ = writeln!(w);
        }
        let _ = writeln!(
            w,
            "{records} records scored ({} read, {} malformed records skipped).\n",
            read.records, read.skipped
        );
        crate::report::test_sections(w, e, image);
        s
    };
    write_atomic(&dir.join("report.md"), page(&|f: &str| f.to_string()).as_bytes())?;
    let embedded = page(&|f: &str| match std::fs::read(dir.join(f)) {
        Ok(bytes) => format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)),
        Err(_) => f.to_string(),
    });
    write_atomic(&dir.join("report.html"), crate::report::html(name, &embedded).as_bytes())?;
    Ok(())
}
