//! `dlp cv <config.yaml> --folds K`: k-fold cross-validation of a pipeline.
//!
//! The cleaned records are dealt into `K` folds (stratified by class for classification when
//! `preprocess.split.stratify` is on, plain k-fold otherwise, seeded by the config's seed). For
//! each fold the model is trained on the other folds — with the config's validation share of
//! them held out for per-epoch validation and early stopping — with preprocessing fitted on
//! that training part only, and scored on the fold, beside the baselines trained on the same
//! part. Each metric is reported as the mean ± standard deviation over folds (numpy's default
//! `ddof = 0`, as `cross_val_score(...).std()`), in `cv.json` and `cv.md` in a new directory
//! `<runs-dir>/<name>-cv<K>-<timestamp>/`.
//!
//! A forecasting config (`preprocess.series`) is backtested instead ([`crate::forecast::backtest`]):
//! the folds are `K` rolling origins, each test window the `K`-th last test-sized stretch of the
//! series, trained on everything before it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pipeline_core::run::{write_atomic, write_json};
use pipeline_core::{RunDir, rng};
use preprocess::{Split, SplitConfig};
use serde::Serialize;

use crate::config::PipelineConfig;
use crate::evaluate::{EvalConfig, EvalInput, MetricName, TestReport};
use crate::experiment::Experiment;
use crate::pipeline::{fit_parts, load};

/// One fold's scores.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    /// 1-based fold number.
    pub fold: usize,
    /// Examples trained on, validated on, and scored.
    pub parts: (usize, usize, usize),
    /// The model's metrics on the fold.
    pub model: TestReport,
    /// The baselines' metrics on the fold, by name.
    pub baselines: Vec<(String, TestReport)>,
}

/// A metric over the folds.
#[derive(Debug, Clone, Serialize)]
pub struct MetricSummary {
    /// The metric.
    pub metric: MetricName,
    /// Whether lower is better.
    pub lower_is_better: bool,
    /// The model's mean and standard deviation.
    pub model: MeanStd,
    /// Each baseline's, by name.
    pub baselines: Vec<(String, MeanStd)>,
}

/// Mean and standard deviation (`ddof = 0`) of per-fold values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStd {
    /// The mean.
    pub mean: f64,
    /// The population standard deviation.
    pub std: f64,
}

impl MeanStd {
    /// Of `values` (NaN for none).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        Self { mean, std }
    }
}

/// The result of a cross-validation: `cv.json`.
#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    /// The pipeline.
    pub pipeline: String,
    /// The config file.
    pub config_file: String,
    /// Number of folds.
    pub folds: usize,
    /// Whether folds keep the class proportions.
    pub stratified: bool,
    /// The seed.
    pub seed: u64,
    /// Per metric, over folds.
    pub summary: Vec<MetricSummary>,
    /// Per fold.
    pub per_fold: Vec<Fold>,
    /// Where `cv.json` and `cv.md` are.
    #[serde(skip)]
    pub dir: PathBuf,
}

impl CvReport {
    /// The summary of `metric`.
    pub fn get(&self, metric: MetricName) -> Option<&MetricSummary> {
        self.summary.iter().find(|m| m.metric == metric)
    }
}

/// Cross-validates `config` (read from `config_path`) over `folds` folds.
pub fn cross_validate(config_path: &Path, config: &PipelineConfig, folds: usize, runs_dir: &Path) -> Result<CvReport> {
    if folds < 2 {
        bail!("--folds must be at least 2, got {folds}");
    }
    let device = config.device.open()?;
    let stem = format!("{}-cv{folds}-{}", config.name, chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    if let Some(series) = &config.preprocess.series {
        let per_fold = backtest(config, config_path, series, folds, &device)?;
        let dir = RunDir::create(runs_dir, &stem).context("creating the cross-validation directory")?;
        return finish(config, config_path, folds, false, per_fold, &dir);
    }
    let loaded = load(config, None)?;
    let n = loaded.targets.len();
    if n < folds {
        bail!("{folds} folds need at least {folds} examples, the data has {n}");
    }
    let stratified = config.preprocess.split.stratify && loaded.targets.classes().is_some();
    let assignments = preprocess::kfold(&loaded.targets, folds, stratified, &mut rng(config.seed, "cv"));
    let split_config = &config.preprocess.split;
    let share = split_config.validation / (split_config.train + split_config.validation);
    let eval_config = EvalConfig { gate: None, ..config.eval.clone() };
    let dir = RunDir::create(runs_dir, &stem).context("creating the cross-validation directory")?;
    let mut per_fold = Vec::with_capacity(folds);
    for (f, (train_idx, test_idx)) in assignments.into_iter().enumerate() {
        let (train, validation) = if share > 0.0 {
            let inner = SplitConfig {
                train: 1.0 - share,
                validation: share,
                test: 0.0,
                stratify: split_config.stratify,
                from_data: false,
                gap: 0,
            };
            let sub = preprocess::split(
                &loaded.targets.select(&train_idx),
                &inner,
                &mut rng(config.seed, &format!("cv-fold-{f}-validation")),
            )?;
            let pick = |v: &[usize]| v.iter().map(|&i| train_idx[i]).collect::<Vec<_>>();
            (pick(&sub.train), pick(&sub.validation))
        } else {
            (train_idx, Vec::new())
        };
        let split = Split { train, validation, test: test_idx };
        let p = fit_parts(config, &loaded, &split).with_context(|| format!("fold {}", f + 1))?;
        let schema = p.train.schema().clone();
        let exp = Experiment::build(config, &schema, &device, config_path)?;
        let validation = (!p.validation.is_empty()).then_some(&p.validation);
        exp.trainer(None).fit(&p.train, validation, &mut []).with_context(|| format!("training fold {}", f + 1))?;
        let preds = exp.predict(&p.test)?;
        let preds = p.preprocessor.target.decode(preds);
        let e = crate::evaluate::evaluate(
            &eval_config,
            &EvalInput {
                task: &schema.target.task,
                preprocessor: &p.preprocessor,
                train: &p.train,
                test: &p.test,
                test_raw: &p.test_raw,
                test_rows: &p.split.test,
                predictions: &preds,
                seed: config.seed,
                plot_dir: None,
                compare: None,
            },
        )?;
        eprintln!("fold {}/{folds}: {}", f + 1, e.test.headline());
        per_fold.push(Fold {
            fold: f + 1,
            parts: (p.train.len(), p.validation.len(), p.test.len()),
            model: e.test,
            baselines: e.baselines.into_iter().map(|b| (b.name, b.report)).collect(),
        });
    }
    finish(config, config_path, folds, stratified, per_fold, &dir)
}

/// Summarizes the folds and writes `cv.json` and `cv.md` into `dir`.
fn finish(
    config: &PipelineConfig,
    config_path: &Path,
    folds: usize,
    stratified: bool,
    per_fold: Vec<Fold>,
    dir: &RunDir,
) -> Result<CvReport> {
    let summary = summarize(&per_fold);
    let report = CvReport {
        pipeline: config.name.clone(),
        config_file: config_path.display().to_string(),
        folds,
        stratified,
        seed: config.seed,
        summary,
        per_fold,
        dir: dir.root().to_path_buf(),
    };
    write_json(&dir.root().join("cv.json"), &report)?;
    write_atomic(&dir.root().join("cv.md"), markdown(&report).as_bytes())?;
    Ok(report)
}

/// Rolling-origin backtest (`dlp cv` of a forecasting config): fold `f` of `folds` cuts the series
/// after `n - (folds - f) × n_test` steps and runs the config's temporal split on that: its last
/// `n_test` steps are the fold's test window, validation and gap before them as configured, and
/// everything earlier is trained on (an expanding window). The last fold is `dlp run`'s split.
fn backtest(
    config: &PipelineConfig,
    config_path: &Path,
    series: &preprocess::series::SeriesConfig,
    folds: usize,
    device: &candle_core::Device,
) -> Result<Vec<Fold>> {
    let ingested = crate::pipeline::ingest(config, None)?;
    let n = ingested.data.rows();
    let split = &config.preprocess.split;
    let (n_test, n_val) = ((n as f64 * split.test).round() as usize, (n as f64 * split.validation).round() as usize);
    let eval_config = EvalConfig { gate: None, ..config.eval.clone() };
    let mut out = Vec::with_capacity(folds);
    for f in 0..folds {
        let end = n.checked_sub((folds - 1 - f) * n_test).filter(|&e| e > n_test + n_val).with_context(|| {
            format!("{folds} backtest folds of {n_test} test steps do not fit in the {n} steps of the series")
        })?;
        let mut pre = config.preprocess.clone();
        pre.split.test = n_test as f64 / end as f64;
        pre.split.validation = n_val as f64 / end as f64;
        pre.split.train = 1.0 - pre.split.test - pre.split.validation;
        let rows: Vec<usize> = (0..end).collect();
        let fit = preprocess::series::fit(&pre, series, &ingested.data.select(&rows))
            .with_context(|| format!("fold {}: the series up to step {end}", f + 1))?;
        let exp = Experiment::build(config, fit.train.schema(), device, config_path)?;
        let validation = (!fit.validation.is_empty()).then_some(&fit.validation);
        exp.trainer(None).fit(&fit.train, validation, &mut []).with_context(|| format!("training fold {}", f + 1))?;
        let preds = fit.preprocessor.target.decode(exp.predict(&fit.test)?);
        let Some(transform) = fit.preprocessor.series().cloned() else { bail!("a series fit has a series transform") };
        let data = crate::evaluate::SeriesData {
            values: fit.values.clone(),
            times: fit.times.clone(),
            windows: fit.windows,
            transform,
        };
        let test_raw = ingested.data.select(&fit.split.test);
        let e = crate::forecast::evaluate(
            &eval_config,
            &EvalInput {
                task: &fit.test.schema().target.task,
                preprocessor: &fit.preprocessor,
                train: &fit.train,
                test: &fit.test,
                test_raw: &test_raw,
                test_rows: &fit.split.test,
                predictions: &preds,
                seed: config.seed,
                plot_dir: None,
                compare: None,
            },
            &data,
        )?;
        eprintln!("fold {}/{folds} (test from {}): {}", f + 1, fit.times[fit.windows.test_start], e.test.headline());
        out.push(Fold {
            fold: f + 1,
            parts: (fit.train.len(), fit.validation.len(), fit.test.len()),
            model: e.test,
            baselines: e.baselines.into_iter().map(|b| (b.name, b.report)).collect(),
        });
    }
    Ok(out)
}

fn summarize(folds: &[Fold]) -> Vec<MetricSummary> {
    let Some(first) = folds.first() else { return Vec::new() };
    first
        .model
        .headline_metrics()
        .iter()
        .filter_map(|&metric| {
            let values: Option<Vec<f64>> = folds.iter().map(|f| f.model.metric(metric)).collect();
            let model = MeanStd::of(&values?);
            let baselines = first
                .baselines
                .iter()
                .enumerate()
                .filter_map(|(i, (name, _))| {
                    let v: Option<Vec<f64>> = folds.iter().map(|f| f.baselines.get(i)?.1.metric(metric)).collect();
                    Some((name.clone(), MeanStd::of(&v?)))
                })
                .collect();
            Some(MetricSummary { metric, lower_is_better: metric.lower_is_better(), model, baselines })
        })
        .collect()
}

/// `cv.md`: the summary table, then each fold.
pub fn markdown(r: &CvReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {}: {}-fold cross-validation\n\nConfig `{}`, seed {}, {} folds. Mean ± standard deviation over folds.\n",
        r.pipeline,
        r.folds,
        r.config_file,
        r.seed,
        if r.stratified { "stratified" } else { "plain (unstratified)" }
    );
    let names: Vec<&str> =
        r.summary.first().map(|m| m.baselines.iter().map(|(n, _)| n.as_str()).collect()).unwrap_or_default();
    let _ = write!(s, "| metric | model |");
    for n in &names {
        let _ = write!(s, " baseline: {n} |");
    }
    let _ = writeln!(s, "\n|---|---|{}", "---|".repeat(names.len()));
    for m in &r.summary {
        let _ = write!(
            s,
            "| {}{} | **{:.4} ± {:.4}** |",
            m.metric,
            if m.lower_is_better { " (lower is better)" } else { "" },
            m.model.mean,
            m.model.std
        );
        for (_, b) in &m.baselines {
            let _ = write!(s, " {:.4} ± {:.4} |", b.mean, b.std);
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "\n## Folds\n\n| fold | train / validation / test | {} |\n|---|---|---|",
        r.summary.first().map_or("", |m| m.metric.name())
    );
    let headline = r.summary.first().map_or(MetricName::Accuracy, |m| m.metric);
    for f in &r.per_fold {
        let _ = writeln!(
            s,
            "| {} | {} / {} / {} | {:.4} |",
            f.fold,
            f.parts.0,
            f.parts.1,
            f.parts.2,
            f.model.metric(headline).unwrap_or(f64::NAN)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_population_std_as_numpy() {
        // numpy: np.mean([0.9, 0.95, 1.0]) = 0.95, np.std([0.9, 0.95, 1.0]) = 0.0408248290463863
        let m = MeanStd::of(&[0.9, 0.95, 1.0]);
        assert!((m.mean - 0.95).abs() < 1e-12);
        assert!((m.std - 0.040_824_829_046_386_3).abs() < 1e-12);
    }
}
