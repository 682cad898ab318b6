//! The evaluation phase of `dlp run` and `dlp cv`: every metric of the test predictions, the
//! baselines trained and scored on the same split, the comparison with a previous run, the
//! deployment gate, and the plots the report shows.
//!
//! The `eval:` section of the config ([`EvalConfig`]) sets top-k, the bootstrap, how many wrong
//! examples to show, and the [`Gate`]: a metric, a floor (or ceiling, for error metrics), the
//! margin by which the model may trail the best baseline, and the margin by which it may trail
//! the previous model given with `--compare`. A failed gate makes `dlp` exit non-zero after the
//! run directory is complete, so the team can read why.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use eval::plot::Tile;
use eval::stats::{BootstrapInterval, TestResult};
use eval::{ClassificationReport, RegressionReport};
use pipeline_core::data::FeatureKind;
use pipeline_core::raw::{RawDataset, RawInputs};
use pipeline_core::{Dataset, InputSchema, Predictions, Targets, Task};
use preprocess::Preprocessor;
use serde::{Deserialize, Serialize};

pub use eval::config::{EvalConfig, Gate, MetricName};

/// The series behind a forecasting run's windows, for its evaluation.
#[derive(Debug, Clone)]
pub struct SeriesData {
    /// The target series in its own units, in time order.
    pub values: Vec<f64>,
    /// Each step's time label.
    pub times: Vec<String>,
    /// The temporal split.
    pub windows: preprocess::series::Windows,
    /// The fitted transform (its configuration: horizon, season, lags).
    pub transform: preprocess::series::SeriesTransform,
}

/// The test-set metrics of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant, reason = "a handful per run; boxing would only obscure the match arms")]
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
    /// Forecast metrics.
    Forecast(eval::forecast::ForecastScores),
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
            TestReport::Forecast(f) => format!(
                "test MASE: {:.4} ({} forecasts of {} steps), MAE: {:.4}, RMSE: {:.4}, sMAPE: {:.4}",
                f.overall.mase, f.examples, f.horizon, f.overall.mae, f.overall.rmse, f.overall.smape
            ),
        }
    }

    /// The value of `metric`, when this report has it.
    pub fn metric(&self, metric: MetricName) -> Option<f64> {
        use MetricName as M;
        match self {
            TestReport::Classification { report: r, .. } => {
                let p = r.probability_scores.as_ref();
                match metric {
                    M::Accuracy => Some(r.accuracy),
                    M::BalancedAccuracy => Some(r.balanced_accuracy),
                    M::MacroF1 => Some(r.macro_avg.f1),
                    M::WeightedF1 => Some(r.weighted_avg.f1),
                    M::Mcc => Some(r.mcc),
                    M::RocAuc => p.and_then(|p| p.roc_auc),
                    M::AveragePrecision => p.and_then(|p| p.average_precision),
                    M::LogLoss => p.map(|p| p.log_loss),
                    M::TopKAccuracy => p.and_then(|p| p.top_k).map(|t| t.accuracy),
                    _ => None,
                }
            }
            TestReport::Regression(r) => match metric {
                M::Rmse => Some(r.rmse),
                M::Mse => Some(r.mse),
                M::Mae => Some(r.mae),
                M::R2 => Some(r.r2),
                M::Mape => Some(r.mape),
                _ => None,
            },
            TestReport::Forecast(f) => match metric {
                M::Mase => Some(f.overall.mase).filter(|v| v.is_finite()),
                M::Mae => Some(f.overall.mae),
                M::Rmse => Some(f.overall.rmse),
                M::Mape => Some(f.overall.mape),
                M::Smape => Some(f.overall.smape),
                _ => None,
            },
        }
    }

    /// The metric gates and comparisons use when none is named.
    pub fn default_metric(&self) -> MetricName {
        match self {
            TestReport::Classification { .. } => MetricName::Accuracy,
            TestReport::Regression(_) => MetricName::Rmse,
            TestReport::Forecast(_) => MetricName::Mase,
        }
    }

    /// The headline metrics, in the order tables show them.
    pub fn headline_metrics(&self) -> &'static [MetricName] {
        match self {
            TestReport::Classification { .. } => &MetricName::CLASSIFICATION,
            TestReport::Regression(_) => &MetricName::REGRESSION,
            TestReport::Forecast(_) => &MetricName::FORECAST,
        }
    }
}

/// The true targets of a test part, in the units predictions are decoded to.
#[derive(Debug, Clone, PartialEq)]
pub enum Actual {
    /// Class ids.
    Classes(Vec<u32>),
    /// Values in the target's own units.
    Values(Vec<f32>),
}

impl Actual {
    /// The targets of `part`, undoing the target scaling the model trained on.
    pub fn of(part: &Dataset, preprocessor: &Preprocessor) -> Result<Self> {
        Ok(match part.targets() {
            Targets::Classes(c) => Actual::Classes(c.clone()),
            Targets::Values(v) | Targets::Steps { values: v, .. } => {
                match preprocessor.target.decode(Predictions::Values(v.clone())) {
                    Predictions::Values(v) => Actual::Values(v),
                    Predictions::Classes { .. } => bail!("regression targets decode to values"),
                }
            }
        })
    }
}

/// Scores decoded `predictions` against `actual`.
pub fn score(task: &Task, predictions: &Predictions, actual: &Actual, top_k: usize) -> Result<TestReport> {
    Ok(match (task, predictions, actual) {
        (Task::Classification { labels }, Predictions::Classes { .. }, Actual::Classes(actual)) => {
            TestReport::Classification {
                labels: labels.clone(),
                report: ClassificationReport::from_probabilities(actual, predictions, labels, top_k)?,
            }
        }
        (Task::Forecast { horizon }, Predictions::Values(predicted), Actual::Values(actual)) => {
            let (a, p): (Vec<f64>, Vec<f64>) =
                actual.iter().zip(predicted).map(|(&a, &p)| (f64::from(a), f64::from(p))).unzip();
            TestReport::Forecast(
                eval::forecast::ForecastScores::compute(&a, &p, *horizon, None)
                    .context("forecasts that do not fit the targets")?,
            )
        }
        (_, Predictions::Values(predicted), Actual::Values(actual)) => {
            TestReport::Regression(RegressionReport::compute(actual, predicted)?)
        }
        _ => bail!("the predictions do not fit the task"),
    })
}

/// A baseline's scores on the test part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineScore {
    /// Short name: `majority`, `mean`, `logistic_regression`, `ridge`.
    pub name: String,
    /// What it is, for the report.
    pub description: String,
    /// Its metrics.
    #[serde(flatten)]
    pub report: TestReport,
}

/// Trains the baselines on `train` and scores them on `test`; a baseline that cannot be fitted
/// to this kind of input leaves a note instead.
pub fn baselines(
    task: &Task,
    train: &Dataset,
    test: &Dataset,
    preprocessor: &Preprocessor,
    actual: &Actual,
    top_k: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<BaselineScore>> {
    let mut out = Vec::new();
    let rows = test.len();
    let linear_ok = !matches!(train.schema().input, InputSchema::Sequence { .. });
    // Out of core, the linear baseline is fitted on a seeded sample of the training part (a few
    // MiB of rows) and predicts the test part in chunks; the trivial baseline sees every target.
    let sampled;
    let fit_on = match train.in_memory() {
        true => train,
        false => {
            let n = (8 << 20) / (4 * train.width().max(1));
            let n = n.clamp(1_000, 20_000).min(train.len());
            let mut picked =
                rand::seq::index::sample(&mut pipeline_core::rng(0, "baseline-sample"), train.len(), n).into_vec();
            picked.sort_unstable();
            notes.push(format!(
                "The linear baseline was fitted on a uniform sample of {n} of the {} training examples (the data is \
                 larger than data.memory_limit).",
                train.len()
            ));
            sampled = train.take(&picked)?;
            &sampled
        }
    };
    let predict_test = |predict: &dyn Fn(&[f32]) -> Predictions| -> Result<Predictions> {
        match test.in_memory() {
            true => Ok(predict(test.features())),
            false => pipeline_core::metric::predict_in_chunks(test, 8192, &mut |rows| Ok(predict(rows))),
        }
    };
    let mut add = |name: &str, description: String, predictions: Predictions| -> Result<()> {
        let report = score(task, &predictions, actual, top_k)?;
        out.push(BaselineScore { name: name.into(), description, report });
        Ok(())
    };
    match (task, train.targets()) {
        (Task::Classification { labels }, Targets::Classes(y)) => {
            add(
                "majority",
                "predicts the training part's class frequencies for every example (scikit-learn's \
                 DummyClassifier, strategy=\"prior\")"
                    .into(),
                train::baseline::majority(y, labels.len(), rows),
            )?;
            if linear_ok {
                let options = train::baseline::LogisticOptions::default();
                let y_fit = fit_on.targets().classes().context("class targets")?;
                let m = train::baseline::LogisticRegression::fit(
                    fit_on.features(),
                    fit_on.width(),
                    y_fit,
                    labels.len(),
                    options,
                )
                .context("fitting the logistic regression baseline")?;
                let mut description =
                    "multinomial logistic regression (L2, C = 1, L-BFGS) on the same preprocessed features".to_string();
                if !m.converged {
                    description.push_str(&format!(" — stopped after {} iterations before converging", m.iterations));
                }
                add("logistic_regression", description, predict_test(&|rows| m.predict(rows))?)?;
            }
        }
        (Task::Regression, Targets::Values(encoded)) => {
            let Predictions::Values(y) = preprocessor.target.decode(Predictions::Values(encoded.clone())) else {
                bail!("regression targets decode to values");
            };
            add(
                "mean",
                "predicts the training part's mean target (DummyRegressor)".into(),
                train::baseline::mean(&y, rows),
            )?;
            if linear_ok {
                let y_fit = match fit_on.in_memory() && std::ptr::eq(fit_on, train) {
                    true => y.clone(),
                    false => match preprocessor
                        .target
                        .decode(Predictions::Values(fit_on.targets().values().context("value targets")?.to_vec()))
                    {
                        Predictions::Values(v) => v,
                        Predictions::Classes { .. } => bail!("regression targets decode to values"),
                    },
                };
                let m = train::baseline::Ridge::fit(fit_on.features(), fit_on.width(), &y_fit, 1.0)
                    .context("fitting the ridge regression baseline")?;
                add(
                    "ridge",
                    "ridge regression (alpha = 1) on the same preprocessed features".into(),
                    predict_test(&|rows| m.predict(rows))?,
                )?;
            }
        }
        _ => bail!("the training targets do not fit the task"),
    }
    if !linear_ok {
        notes.push(
            "No linear baseline: the inputs are token ids, which a linear model cannot read as features; the \
             trivial baseline is shown."
                .into(),
        );
    }
    Ok(out)
}

/// The new model against a previous one on the same test examples.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// The previous run directory.
    pub previous_run: PathBuf,
    /// Whether the previous run held out exactly these test examples (otherwise it may have
    /// trained on some of them, and the comparison flatters it).
    pub same_split: bool,
    /// The previous model's metrics on these examples.
    pub previous: TestReport,
    /// The metric compared.
    pub metric: MetricName,
    /// Paired bootstrap of `new − previous` for `metric`.
    pub difference: BootstrapInterval,
    /// McNemar's test of the two classifiers' error rates (classification).
    pub mcnemar: Option<McNemar>,
}

/// McNemar's test, with its 2×2 table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct McNemar {
    /// `[new right/wrong][previous right/wrong]` counts.
    pub table: [[u64; 2]; 2],
    /// Whether the exact binomial test was used (fewer than 25 discordant examples) rather
    /// than chi-squared with continuity correction.
    pub exact: bool,
    /// The statistic and p-value.
    pub result: TestResult,
}

/// What the comparison needs of the current run.
pub struct Current<'a> {
    /// The task.
    pub task: &'a Task,
    /// The test records as read, before preprocessing.
    pub test_raw: &'a RawDataset,
    /// Their positions in the source.
    pub test_rows: &'a [usize],
    /// The true targets.
    pub actual: &'a Actual,
    /// The new model's decoded predictions.
    pub predictions: &'a Predictions,
    /// The new model's report.
    pub report: &'a TestReport,
}

/// Scores the bundle of `previous_run` on the current test records and compares.
pub fn compare(previous_run: &Path, current: &Current<'_>, config: &EvalConfig, seed: u64) -> Result<Comparison> {
    let bundle_dir = previous_run.join("bundle");
    let bundle = bundle::Bundle::load(&bundle_dir, &candle_core::Device::Cpu)
        .with_context(|| format!("--compare {}: loading its bundle", previous_run.display()))?;
    if bundle.task() != current.task {
        bail!(
            "--compare {}: that model predicts {}, this one {}",
            previous_run.display(),
            describe(bundle.task()),
            describe(current.task)
        );
    }
    let previous_predictions = bundle
        .predict(&current.test_raw.inputs)
        .with_context(|| format!("--compare {}: predicting the test records", previous_run.display()))?;
    let same_split = std::fs::read(previous_run.join("split.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<preprocess::Split>(&b).ok())
        .is_some_and(|s| s.test == current.test_rows);
    compare_predictions(previous_run, &previous_predictions, same_split, current, config, seed)
}

/// Compares the current model with another model's `previous_predictions` on the same test
/// records (`previous` names that model in reports; `same_split`: whether it held out exactly
/// these records): the previous model's scores, the paired bootstrap of the difference in the
/// gate's metric, and McNemar's test.
pub fn compare_predictions(
    previous: &Path,
    previous_predictions: &Predictions,
    same_split: bool,
    current: &Current<'_>,
    config: &EvalConfig,
    seed: u64,
) -> Result<Comparison> {
    let previous_run = previous;
    let previous = score(current.task, previous_predictions, current.actual, config.top_k)?;
    let metric = config.gate.as_ref().and_then(|g| g.metric).unwrap_or_else(|| current.report.default_metric());
    let top_k = config.top_k;
    let subset_metric = |predictions: &Predictions, idx: &[usize]| -> eval::Result<f64> {
        let actual = match current.actual {
            Actual::Classes(c) => Actual::Classes(idx.iter().map(|&i| c[i]).collect()),
            Actual::Values(v) => Actual::Values(idx.iter().map(|&i| v[i]).collect()),
        };
        let predictions = match predictions {
            Predictions::Classes { probs, classes } => Predictions::Classes {
                probs: idx.iter().flat_map(|&i| probs[i * classes..(i + 1) * classes].iter().copied()).collect(),
                classes: *classes,
            },
            Predictions::Values(v) => Predictions::Values(idx.iter().map(|&i| v[i]).collect()),
        };
        let report = match (current.task, &actual) {
            // Label metrics do not need the (slower) probability scores.
            (Task::Classification { labels }, Actual::Classes(a)) if !metric.needs_probabilities() => {
                TestReport::Classification {
                    labels: labels.clone(),
                    report: ClassificationReport::compute(a, &predictions.argmax().unwrap_or_default(), labels)?,
                }
            }
            _ => score(current.task, &predictions, &actual, top_k)
                .map_err(|_| eval::Error::Kind { expected: "predictions that fit the task" })?,
        };
        report.metric(metric).ok_or(eval::Error::Kind { expected: "a defined metric on every resample" })
    };
    let difference = eval::stats::paired_bootstrap(
        current.actual_len(),
        config.bootstrap_resamples,
        seed,
        |idx| subset_metric(current.predictions, idx),
        |idx| subset_metric(previous_predictions, idx),
    )
    .with_context(|| format!("bootstrapping the difference in {metric}"))?;
    let mcnemar = match (current.actual, current.predictions.argmax(), previous_predictions.argmax()) {
        (Actual::Classes(a), Some(new), Some(old)) => {
            let table = eval::stats::mcnemar_table(a, &new, &old)?;
            let exact = table[0][1] + table[1][0] < 25;
            Some(McNemar { table, exact, result: eval::stats::mcnemar(table, exact) })
        }
        _ => None,
    };
    Ok(Comparison { previous_run: previous_run.to_path_buf(), same_split, previous, metric, difference, mcnemar })
}

impl Current<'_> {
    fn actual_len(&self) -> usize {
        match self.actual {
            Actual::Classes(c) => c.len(),
            Actual::Values(v) => v.len(),
        }
    }
}

fn describe(task: &Task) -> String {
    match task {
        Task::Classification { labels } => format!("the classes [{}]", labels.join(", ")),
        Task::Regression => "a value (regression)".into(),
        Task::Forecast { horizon } => format!("the next {horizon} values of a series (forecasting)"),
        Task::Generation => "images (a generative model)".into(),
    }
}

/// The gate's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateOutcome {
    /// The metric gated on.
    pub metric: MetricName,
    /// The model's value of it.
    pub value: f64,
    /// Each rule checked.
    pub checks: Vec<GateCheck>,
    /// Whether every check passed.
    pub passed: bool,
}

/// One rule of the gate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateCheck {
    /// `threshold`, `vs_baseline` or `vs_previous`.
    pub rule: String,
    /// The value the model must reach (at least, or at most for error metrics).
    pub limit: f64,
    /// Whether it did.
    pub passed: bool,
    /// One sentence saying what was compared.
    pub detail: String,
}

/// Applies `gate` to the model's report; `None` without a gate. Errors when the gate's metric
/// does not exist for this task.
pub fn apply_gate(
    gate: &Gate,
    report: &TestReport,
    baselines: &[BaselineScore],
    comparison: Option<&Comparison>,
) -> Result<GateOutcome> {
    let metric = gate.metric.unwrap_or_else(|| report.default_metric());
    let Some(value) = report.metric(metric) else {
        bail!(
            "eval.gate.metric: `{metric}` is not available for this model (expected one of {})",
            report.headline_metrics().iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
        );
    };
    let lower = metric.lower_is_better();
    // The limit `reference` minus (or, for error metrics, plus) `margin`.
    let limit = |reference: f64, margin: f64| if lower { reference + margin } else { reference - margin };
    let reaches = |limit: f64| if lower { value <= limit } else { value >= limit };
    let (word, side) = if lower { ("at most", "above") } else { ("at least", "below") };
    let mut checks = Vec::new();
    if let Some(t) = gate.threshold {
        checks.push(GateCheck {
            rule: "threshold".into(),
            limit: t,
            passed: reaches(t),
            detail: format!("{metric} {value:.4} must be {word} {t:.4}"),
        });
    }
    if let Some(margin) = gate.vs_baseline {
        let best = baselines
            .iter()
            .filter_map(|b| b.report.metric(metric).map(|v| (b, v)))
            .reduce(|a, b| if (lower && b.1 < a.1) || (!lower && b.1 > a.1) { b } else { a });
        match best {
            Some((b, v)) => {
                let l = limit(v, margin);
                checks.push(GateCheck {
                    rule: "vs_baseline".into(),
                    limit: l,
                    passed: reaches(l),
                    detail: format!(
                        "{metric} {value:.4} may be at most {margin} {side} the best baseline's ({}: {v:.4})",
                        b.name
                    ),
                });
            }
            None => bail!("eval.gate.vs_baseline: no baseline has {metric} (are baselines switched off?)"),
        }
    }
    if let Some(margin) = gate.vs_previous {
        match comparison {
            Some(c) => {
                let Some(v) = c.previous.metric(metric) else {
                    bail!("eval.gate.vs_previous: the previous model has no {metric}");
                };
                let l = limit(v, margin);
                checks.push(GateCheck {
                    rule: "vs_previous".into(),
                    limit: l,
                    passed: reaches(l),
                    detail: format!(
                        "{metric} {value:.4} may be at most {margin} {side} the previous model's ({}: {v:.4})",
                        c.previous_run.display()
                    ),
                });
            }
            None => checks.push(GateCheck {
                rule: "vs_previous".into(),
                limit: f64::NAN,
                passed: true,
                detail: "not checked: no previous run was given (--compare <run-dir>)".into(),
            }),
        }
    }
    let passed = checks.iter().all(|c| c.passed);
    Ok(GateOutcome { metric, value, checks, passed })
}

/// One of the most confidently wrong test predictions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorExample {
    /// The record's position in the source (0-based, before cleaning).
    pub row: usize,
    /// The true class.
    pub actual: String,
    /// The predicted class.
    pub predicted: String,
    /// The predicted class's probability.
    pub confidence: f64,
    /// The beginning of the record's text, for text data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The wrong predictions with the highest confidence, most confident first (classification):
/// `(index in the test part, example)`.
pub fn confident_errors(
    labels: &[String],
    actual: &[u32],
    predictions: &Predictions,
    test_raw: &RawDataset,
    test_rows: &[usize],
    limit: usize,
) -> Vec<(usize, ErrorExample)> {
    let Predictions::Classes { probs, classes } = predictions else { return Vec::new() };
    let Some(predicted) = predictions.argmax() else { return Vec::new() };
    let mut wrong: Vec<(usize, f64)> = (0..actual.len())
        .filter(|&i| predicted[i] != actual[i])
        .map(|i| (i, f64::from(probs[i * classes + predicted[i] as usize])))
        .collect();
    wrong.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let text_column = match &test_raw.inputs {
        RawInputs::Table(t) => t.columns.iter().find(|c| c.kind == FeatureKind::Text),
        RawInputs::Images(_) | RawInputs::Audio(_) => None,
    };
    wrong
        .into_iter()
        .take(limit)
        .map(|(i, confidence)| {
            let name = |c: u32| labels.get(c as usize).cloned().unwrap_or_else(|| c.to_string());
            let text = text_column.and_then(|c| c.values.text(i)).map(|t| {
                let short: String = t.chars().take(120).collect();
                if short.len() < t.len() { format!("{short}…") } else { short }
            });
            let row = test_rows.get(i).copied().unwrap_or(i);
            (i, ErrorExample { row, actual: name(actual[i]), predicted: name(predicted[i]), confidence, text })
        })
        .collect()
}

/// A plot written into the run directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plot {
    /// What it shows.
    pub title: String,
    /// The file name, relative to the run directory.
    pub file: String,
}

/// Draws the plots of a test report into `dir`: the confusion matrix (counts and normalized),
/// ROC and precision-recall curves, and a grid of the most confidently wrong images
/// (classification); predicted against actual values and the residuals (regression).
pub fn plots(
    dir: &Path,
    report: &TestReport,
    actual: &Actual,
    predictions: &Predictions,
    test_raw: &RawDataset,
    errors: &[(usize, ErrorExample)],
) -> Result<Vec<Plot>> {
    let mut out = Vec::new();
    let mut add = |title: &str, file: &str| out.push(Plot { title: title.into(), file: file.into() });
    match (report, actual) {
        (TestReport::Classification { labels, report }, Actual::Classes(a)) => {
            eval::plot::confusion_png(
                "Confusion matrix (counts)",
                &report.confusion,
                labels,
                false,
                &dir.join("confusion.png"),
            )?;
            add("Confusion matrix (counts)", "confusion.png");
            eval::plot::confusion_png(
                "Confusion matrix (share of each true class)",
                &report.confusion,
                labels,
                true,
                &dir.join("confusion_normalized.png"),
            )?;
            add("Confusion matrix (share of each true class)", "confusion_normalized.png");
            if let Predictions::Classes { probs, classes } = predictions {
                let (rocs, prs, names): (Vec<_>, Vec<_>, Vec<String>) = if *classes == 2 {
                    let scores: Vec<f32> = probs.chunks_exact(2).map(|r| r[1]).collect();
                    (
                        eval::curves::roc_curve(a, &scores, 1, true).ok().into_iter().collect(),
                        eval::curves::precision_recall_curve(a, &scores, 1, true).ok().into_iter().collect(),
                        vec![labels[1].clone()],
                    )
                } else {
                    (
                        eval::curves::roc_curves_ovr(a, predictions, true).unwrap_or_default(),
                        eval::curves::precision_recall_curves_ovr(a, predictions, true).unwrap_or_default(),
                        labels.clone(),
                    )
                };
                let limit = 10;
                if !rocs.is_empty() {
                    let legends: Vec<String> =
                        rocs.iter().zip(&names).map(|(c, n)| format!("{n} (AUC {:.3})", c.area())).collect();
                    let curves: Vec<(&str, &eval::curves::RocCurve)> =
                        legends.iter().map(String::as_str).zip(&rocs).take(limit).collect();
                    let title = if *classes == 2 { "ROC curve" } else { "ROC curves (one class against the rest)" };
                    eval::plot::roc_png(title, &curves, &dir.join("roc.png"))?;
                    add(title, "roc.png");
                }
                if !prs.is_empty() {
                    let legends: Vec<String> =
                        prs.iter().zip(&names).map(|(c, n)| format!("{n} (AP {:.3})", c.average_precision())).collect();
                    let curves: Vec<(&str, &eval::curves::PrCurve)> =
                        legends.iter().map(String::as_str).zip(&prs).take(limit).collect();
                    let title = if *classes == 2 {
                        "Precision-recall curve"
                    } else {
                        "Precision-recall curves (one class against the rest)"
                    };
                    eval::plot::precision_recall_png(title, &curves, &dir.join("pr.png"))?;
                    add(title, "pr.png");
                }
            }
            if let RawInputs::Images(images) = &test_raw.inputs
                && !errors.is_empty()
            {
                let w = images.width_values();
                let tiles: Vec<Tile> = errors
                    .iter()
                    .map(|(i, e)| Tile {
                        channels: images.channels,
                        height: images.height,
                        width: images.width,
                        pixels: images.pixels[i * w..(i + 1) * w].to_vec(),
                        caption: format!("{} → {} ({:.2})", e.actual, e.predicted, e.confidence),
                    })
                    .collect();
                let title = "Most confident errors (true → predicted, confidence)";
                eval::plot::image_grid_png(title, &tiles, 8, &dir.join("errors.png"))?;
                add(title, "errors.png");
            }
            if let RawInputs::Audio(clips) = &test_raw.inputs
                && !errors.is_empty()
            {
                let tiles: Vec<Tile> = errors
                    .iter()
                    .map(|(i, e)| {
                        let (pixels, height, width) =
                            preprocess::audio::spectrogram_picture(clips.clip(*i), clips.sample_rate);
                        Tile {
                            channels: 1,
                            height,
                            width,
                            pixels,
                            caption: format!("{} → {} ({:.2})", e.actual, e.predicted, e.confidence),
                        }
                    })
                    .collect();
                let title = "Most confident errors: log-mel spectrograms (true → predicted, confidence)";
                eval::plot::image_grid_png(title, &tiles, 6, &dir.join("errors.png"))?;
                add(title, "errors.png");
            }
        }
        (TestReport::Regression(_), Actual::Values(a)) => {
            let Predictions::Values(p) = predictions else { bail!("regression predictions are values") };
            let points: Vec<(f64, f64)> = a.iter().zip(p).map(|(&a, &p)| (f64::from(a), f64::from(p))).collect();
            eval::plot::scatter_png(
                "Predicted against actual",
                ("actual", "predicted"),
                &points,
                true,
                &dir.join("predicted_vs_actual.png"),
            )?;
            add("Predicted against actual", "predicted_vs_actual.png");
            let residuals: Vec<f64> = points.iter().map(|(a, p)| p - a).collect();
            // Regression predictions and targets are finite, so there is always a histogram.
            if let Some(h) = data_ingest::summary::histogram(&residuals, 30) {
                let title = "Residuals (predicted − actual)";
                eval::plot::histogram_png(title, "residual", &h.edges, &h.counts, &dir.join("residuals.png"))?;
                add(title, "residuals.png");
            }
        }
        _ => bail!("the test report does not fit the targets"),
    }
    Ok(out)
}

/// Everything the evaluation phase found: `eval.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// The model's metrics on the test part.
    #[serde(flatten)]
    pub test: TestReport,
    /// The baselines' metrics on the same part.
    pub baselines: Vec<BaselineScore>,
    /// The comparison with a previous run (`--compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The gate's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateOutcome>,
    /// The most confidently wrong predictions (classification).
    pub errors: Vec<ErrorExample>,
    /// The plots written.
    pub plots: Vec<Plot>,
    /// Whatever could not be computed, and why.
    pub notes: Vec<String>,
}

/// What the evaluation phase reads.
pub struct EvalInput<'a> {
    /// The task.
    pub task: &'a Task,
    /// The fitted preprocessing (to decode targets).
    pub preprocessor: &'a Preprocessor,
    /// The training part (for the baselines).
    pub train: &'a Dataset,
    /// The test part.
    pub test: &'a Dataset,
    /// The test records as read.
    pub test_raw: &'a RawDataset,
    /// Their positions in the source.
    pub test_rows: &'a [usize],
    /// The model's decoded predictions for the test part.
    pub predictions: &'a Predictions,
    /// Seeds the bootstrap.
    pub seed: u64,
    /// Where plots go (`None`: no plots, as in cross-validation).
    pub plot_dir: Option<&'a Path>,
    /// A previous run to compare with.
    pub compare: Option<&'a Path>,
}

/// Runs the whole evaluation phase.
pub fn evaluate(config: &EvalConfig, input: &EvalInput<'_>) -> Result<Evaluation> {
    let actual = Actual::of(input.test, input.preprocessor)?;
    let test = score(input.task, input.predictions, &actual, config.top_k)?;
    let mut notes = Vec::new();
    let baselines = if config.baselines {
        baselines(input.task, input.train, input.test, input.preprocessor, &actual, config.top_k, &mut notes)?
    } else {
        Vec::new()
    };
    let comparison = match input.compare {
        Some(previous) => {
            let current = Current {
                task: input.task,
                test_raw: input.test_raw,
                test_rows: input.test_rows,
                actual: &actual,
                predictions: input.predictions,
                report: &test,
            };
            Some(compare(previous, &current, config, input.seed)?)
        }
        None => None,
    };
    let gate = match &config.gate {
        Some(g) => Some(apply_gate(g, &test, &baselines, comparison.as_ref())?),
        None => None,
    };
    let errors = match (&test, &actual) {
        (TestReport::Classification { labels, .. }, Actual::Classes(a)) => {
            confident_errors(labels, a, input.predictions, input.test_raw, input.test_rows, config.error_examples)
        }
        _ => Vec::new(),
    };
    let plots = match input.plot_dir {
        Some(dir) => plots(dir, &test, &actual, input.predictions, input.test_raw, &errors)?,
        None => Vec::new(),
    };
    if let TestReport::Classification { report, .. } = &test
        && let Some(p) = &report.probability_scores
    {
        notes.extend(p.notes.iter().cloned());
    }
    Ok(Evaluation {
        test,
        baselines,
        comparison,
        gate,
        errors: errors.into_iter().map(|(_, e)| e).collect(),
        plots,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classification(accuracy_like: f64) -> TestReport {
        let labels = vec!["a".to_string(), "b".to_string()];
        let n = 100;
        let right = (accuracy_like * n as f64).round() as usize;
        let actual: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        let predicted: Vec<u32> = actual.iter().enumerate().map(|(i, &c)| if i < right { c } else { 1 - c }).collect();
        TestReport::Classification {
            report: ClassificationReport::compute(&actual, &predicted, &labels).unwrap(),
            labels,
        }
    }

    fn baseline(accuracy: f64) -> BaselineScore {
        BaselineScore { name: "majority".into(), description: String::new(), report: classification(accuracy) }
    }

    #[test]
    fn gate_rules_pass_and_fail_on_their_limits() {
        let gate = Gate { metric: None, threshold: Some(0.9), vs_baseline: Some(0.0), vs_previous: Some(0.01) };
        let good = apply_gate(&gate, &classification(0.95), &[baseline(0.5)], None).unwrap();
        assert!(good.passed, "{good:?}");
        assert_eq!(good.metric, MetricName::Accuracy);
        assert_eq!(good.checks.len(), 3);
        assert_eq!(good.checks[2].detail, "not checked: no previous run was given (--compare <run-dir>)");

        let bad = apply_gate(&gate, &classification(0.5), &[baseline(0.6)], None).unwrap();
        assert!(!bad.passed);
        assert!(!bad.checks[0].passed && !bad.checks[1].passed, "{bad:?}");
        assert_eq!(bad.checks[1].limit, 0.6);

        // A margin lets the model trail the baseline by that much, no more.
        let margin = Gate { metric: None, threshold: None, vs_baseline: Some(0.1), vs_previous: None };
        assert!(apply_gate(&margin, &classification(0.55), &[baseline(0.6)], None).unwrap().passed);
        assert!(!apply_gate(&margin, &classification(0.45), &[baseline(0.6)], None).unwrap().passed);
    }

    #[test]
    fn error_metrics_gate_from_above() {
        let r = TestReport::Regression(RegressionReport::compute(&[1.0, 2.0, 3.0], &[1.5, 2.0, 3.5]).unwrap());
        let rmse = r.metric(MetricName::Rmse).unwrap();
        let pass =
            Gate { metric: Some(MetricName::Rmse), threshold: Some(rmse + 0.01), vs_baseline: None, vs_previous: None };
        assert!(apply_gate(&pass, &r, &[], None).unwrap().passed);
        let fail = Gate { threshold: Some(rmse - 0.01), ..pass.clone() };
        assert!(!apply_gate(&fail, &r, &[], None).unwrap().passed);
        let wrong_task = Gate { metric: Some(MetricName::Accuracy), ..pass };
        let e = apply_gate(&wrong_task, &r, &[], None).unwrap_err().to_string();
        assert!(e.contains("`accuracy` is not available"), "{e}");
    }

    #[test]
    fn config_problems_name_the_key() {
        let c = EvalConfig {
            top_k: 0,
            gate: Some(Gate { metric: None, threshold: None, vs_baseline: Some(-1.0), vs_previous: None }),
            ..Default::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["eval.top_k", "eval.gate.vs_baseline"]);
        // A metric's config name is its report name; an unknown one does not parse, and the
        // error lists the names.
        for m in MetricName::CLASSIFICATION.into_iter().chain(MetricName::REGRESSION) {
            assert_eq!(serde_yaml::to_value(m).unwrap(), serde_yaml::Value::from(m.name()));
            assert_eq!(m.name().parse::<MetricName>(), Ok(m));
        }
        let err = serde_yaml::from_str::<Gate>("{metric: acuracy, threshold: 0.9}").unwrap_err().to_string();
        assert!(err.contains("unknown variant `acuracy`, expected one of `accuracy`"), "{err}");
        assert!("acuracy".parse::<MetricName>().unwrap_err().starts_with("unknown metric `acuracy`, expected one of"));
        let empty = EvalConfig {
            gate: Some(Gate { metric: None, threshold: None, vs_baseline: None, vs_previous: None }),
            ..Default::default()
        };
        assert_eq!(empty.validate()[0].key, "eval.gate");
    }
}
