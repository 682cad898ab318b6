//! Classification and regression metrics, one function each, matching scikit-learn 1.9.1 to
//! 1e-6, and [`Metric`] implementations of them for model selection and tuning.
//!
//! Class ids run from 0 to `classes - 1`; class scores are [`Predictions::Classes`]
//! probabilities, row-major. How each function matches scikit-learn, edge cases included:
//!
//! - [`accuracy`] — `accuracy_score`.
//! - [`balanced_accuracy`] — `balanced_accuracy_score`: the mean recall over the classes that
//!   occur in `actual`; a class that is only predicted is left out (scikit-learn warns "y_pred
//!   contains classes not in y_true" and drops it), as is a class in neither.
//! - [`precision_recall_f1`] — `precision_recall_fscore_support(labels=range(k),
//!   zero_division=0)` per class and with `average="macro"`, `"micro"` and `"weighted"`: a
//!   class never predicted has precision 0, a class without examples recall 0, F1 is
//!   `2·tp / (2·tp + fp + fn)` and 0 when that is 0/0; absent classes count in the macro mean.
//! - [`roc_auc`] / [`roc_auc_binary`] / [`roc_auc_per_class`] — `roc_auc_score(y, p[:, 1])` for
//!   two classes, `roc_auc_score(y, p, multi_class="ovr", average="macro", labels=range(k))`
//!   for more (which also requires each row to sum to one, `numpy.allclose`). Tied scores
//!   count half, as the trapezoid through a tie's single ROC point does. A class without true
//!   examples makes the area undefined: scikit-learn 1.9.1 warns and returns NaN (for the whole
//!   macro mean); here it is [`Error::AbsentClass`].
//! - [`average_precision`] / [`average_precision_binary`] / [`average_precision_per_class`] —
//!   `average_precision_score(y, p[:, 1])`, and for more classes its macro one-vs-rest
//!   `average_precision_score(y, p)` — the step-wise `Σ (R_n − R_{n−1}) P_n` with tied scores
//!   as one step. A class without true examples is [`Error::AbsentClass`]: scikit-learn's
//!   multiclass call rejects the shape, its binary call warns and returns 0.
//! - [`log_loss`] — `log_loss(y, p, labels=range(k))` with `p` as `float32`: probabilities are
//!   clipped to `[ε, 1 − ε]` with ε the machine epsilon of `f32` (1.1920929e-07), so a
//!   probability of exactly 0 for the true class costs `−ln ε ≈ 15.94`, not infinity; rows are
//!   not renormalised (scikit-learn only warns when they do not sum to one); values outside
//!   [0, 1] are errors, as in scikit-learn.
//! - [`top_k_accuracy`] — `top_k_accuracy_score(y, p, k=k, labels=range(k))`. With more than two
//!   classes a tie at the k-th place goes to the class with the **larger** id (scikit-learn
//!   ranks by a stable ascending argsort, reversed), so the true class is a hit when fewer than
//!   `k` classes score above it, counting tied classes with a larger id as above. With two
//!   classes scikit-learn takes the binary path on `p[:, 1]`: class 1 is predicted when its
//!   probability is `> 0.5` (a tie at 0.5 predicts class 0), and any `k ≥ 2` is a hit.
//! - [`matthews_corrcoef`] — `matthews_corrcoef`, multiclass (Gorodkin's R_K); 0 when the
//!   denominator is 0 (a single class predicted or true), as scikit-learn returns.
//!
//! Regression ([`RegressionMetric`]): MSE, RMSE, MAE, R² and MAPE of [`RegressionReport`].
//!
//! Empty inputs are [`Error::Empty`] everywhere.

use pipeline_core::{Direction, Metric, Predictions, Targets};
use serde::{Deserialize, Serialize};

use crate::confusion::confusion_matrix;
use crate::curves::{PrCurve, RocCurve, counts};
use crate::{Error, RegressionReport, Result, input};

/// Fraction of examples predicted correctly (`accuracy_score`). Errors on different lengths or
/// no examples.
pub fn accuracy(actual: &[u32], predicted: &[u32]) -> Result<f64> {
    if actual.len() != predicted.len() {
        return Err(Error::Length { predictions: predicted.len(), targets: actual.len() });
    }
    if actual.is_empty() {
        return Err(Error::Empty);
    }
    let correct = actual.iter().zip(predicted).filter(|(a, p)| a == p).count();
    Ok(correct as f64 / actual.len() as f64)
}

/// Mean recall over the classes that occur in `actual` (`balanced_accuracy_score`); classes
/// only predicted, or absent from both, are left out. Errors on different lengths, no
/// examples, or an id at or above `classes`.
pub fn balanced_accuracy(actual: &[u32], predicted: &[u32], classes: usize) -> Result<f64> {
    let cm = confusion_matrix(actual, predicted, classes)?;
    let recalls: Vec<f64> = cm
        .iter()
        .enumerate()
        .filter_map(|(c, row)| {
            let support: u64 = row.iter().sum();
            (support > 0).then(|| row[c] as f64 / support as f64)
        })
        .collect();
    Ok(recalls.iter().sum::<f64>() / recalls.len() as f64)
}

/// Precision, recall, F1 and support of one class, or an average of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    /// `tp / (tp + fp)`, 0 when nothing was predicted as the class.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when the class has no examples.
    pub recall: f64,
    /// `2·tp / (2·tp + fp + fn)`, 0 when the class is neither true nor predicted.
    pub f1: f64,
    /// True examples of the class (of all classes, for an average).
    pub support: u64,
}

/// How per-class scores are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// Unweighted mean over all classes, absent ones included.
    Macro,
    /// Scores of the pooled counts (for single-label data, precision = recall = F1 = accuracy).
    Micro,
    /// Mean over classes weighted by support.
    Weighted,
}

/// Per-class precision, recall and F1 and their averages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecallF1 {
    /// One entry per class, in class-id order.
    pub per_class: Vec<Prf>,
    /// Unweighted mean over all classes.
    pub macro_avg: Prf,
    /// Scores of the counts pooled over classes.
    pub micro_avg: Prf,
    /// Mean weighted by support.
    pub weighted_avg: Prf,
}

impl PrecisionRecallF1 {
    /// The average of the given kind.
    pub fn average(&self, average: Average) -> &Prf {
        match average {
            Average::Macro => &self.macro_avg,
            Average::Micro => &self.micro_avg,
            Average::Weighted => &self.weighted_avg,
        }
    }
}

/// Precision, recall and F1 per class and averaged, as `precision_recall_fscore_support(y,
/// p, labels=range(classes), zero_division=0)` with `average=None / "macro" / "micro" /
/// "weighted"`. Errors on different lengths, no examples, or an id at or above `classes`.
pub fn precision_recall_f1(actual: &[u32], predicted: &[u32], classes: usize) -> Result<PrecisionRecallF1> {
    let cm = confusion_matrix(actual, predicted, classes)?;
    let ratio = |n: f64, d: f64| if d == 0.0 { 0.0 } else { n / d };
    let scores = |tp: u64, true_sum: u64, pred_sum: u64| {
        let (tp, t, p) = (tp as f64, true_sum as f64, pred_sum as f64);
        Prf { precision: ratio(tp, p), recall: ratio(tp, t), f1: ratio(2.0 * tp, t + p), support: true_sum }
    };
    let counts: Vec<(u64, u64, u64)> =
        (0..classes).map(|c| (cm[c][c], cm[c].iter().sum(), cm.iter().map(|row| row[c]).sum())).collect();
    let per_class: Vec<Prf> = counts.iter().map(|&(tp, t, p)| scores(tp, t, p)).collect();
    let total: u64 = counts.iter().map(|c| c.1).sum();
    let mean = |weight: &dyn Fn(&Prf) -> f64| {
        let wsum: f64 = per_class.iter().map(weight).sum();
        let avg = |f: fn(&Prf) -> f64| ratio(per_class.iter().map(|s| weight(s) * f(s)).sum(), wsum);
        Prf { precision: avg(|s| s.precision), recall: avg(|s| s.recall), f1: avg(|s| s.f1), support: total }
    };
    let pooled = counts.iter().fold((0, 0, 0), |acc, c| (acc.0 + c.0, acc.1 + c.1, acc.2 + c.2));
    Ok(PrecisionRecallF1 {
        macro_avg: mean(&|_| 1.0),
        micro_avg: scores(pooled.0, pooled.1, pooled.2),
        weighted_avg: mean(&|s| s.support as f64),
        per_class,
    })
}

/// The positive flags of a binary `actual` (ids 0 and 1 only), with both classes present.
fn binary_flags(metric: &'static str, actual: &[u32], scores: &[f32]) -> Result<Vec<bool>> {
    input::scores(actual.len(), scores)?;
    input::class_ids(actual, 2)?;
    for class in [0, 1] {
        if !actual.contains(&class) {
            return Err(Error::AbsentClass { metric, class });
        }
    }
    Ok(actual.iter().map(|&a| a == 1).collect())
}

const ROC_AUC: &str = "ROC AUC";
const AVERAGE_PRECISION: &str = "average precision";

/// Area under the ROC curve of `scores` (the score or probability of class 1) for `actual`
/// ids 0 and 1 (`roc_auc_score(y, scores)`). Errors on different lengths, no examples, ids
/// other than 0 and 1, non-finite scores, or a class without examples.
pub fn roc_auc_binary(actual: &[u32], scores: &[f32]) -> Result<f64> {
    let flags = binary_flags(ROC_AUC, actual, scores)?;
    Ok(RocCurve::from_counts(counts(&flags, scores), true).area())
}

/// One-vs-rest ROC AUC of every class (`roc_auc_score(..., multi_class="ovr", average=None,
/// labels=range(k))`; with two classes, `roc_auc_score(y == c, p[:, c])` for each). With more
/// than two classes each row must sum to one. Errors as [`roc_auc`].
pub fn roc_auc_per_class(actual: &[u32], predictions: &Predictions) -> Result<Vec<f64>> {
    ovr(ROC_AUC, actual, predictions, |flags, scores| RocCurve::from_counts(counts(flags, scores), true).area())
}

/// ROC AUC: binary on the probability of class 1 for two classes, the macro mean of the
/// one-vs-rest areas for more (whose rows must sum to one). Errors on predictions that are not
/// class probabilities, fewer than two classes, a row count other than `actual.len()`, no
/// examples, an id at or above the number of classes, non-finite scores, rows not summing to
/// one (more than two classes), or a class without examples ([`Error::AbsentClass`]).
pub fn roc_auc(actual: &[u32], predictions: &Predictions) -> Result<f64> {
    binary_or_macro(actual, predictions, roc_auc_binary, roc_auc_per_class)
}

/// Average precision of `scores` (the score or probability of class 1) for `actual` ids 0 and
/// 1 (`average_precision_score(y, scores)`). Errors as [`roc_auc_binary`] (a class without
/// examples included: scikit-learn warns and returns 0 when there is no positive).
pub fn average_precision_binary(actual: &[u32], scores: &[f32]) -> Result<f64> {
    let flags = binary_flags(AVERAGE_PRECISION, actual, scores)?;
    Ok(PrCurve::from_counts(counts(&flags, scores), false).average_precision())
}

/// One-vs-rest average precision of every class (`average_precision_score(y, p,
/// average=None)`). Errors as [`average_precision`].
pub fn average_precision_per_class(actual: &[u32], predictions: &Predictions) -> Result<Vec<f64>> {
    ovr(AVERAGE_PRECISION, actual, predictions, |flags, scores| {
        PrCurve::from_counts(counts(flags, scores), false).average_precision()
    })
}

/// Average precision: binary on the probability of class 1 for two classes, the macro mean
/// of the one-vs-rest values for more (`average_precision_score(y, p)`). Errors as
/// [`roc_auc`], except that rows need not sum to one.
pub fn average_precision(actual: &[u32], predictions: &Predictions) -> Result<f64> {
    binary_or_macro(actual, predictions, average_precision_binary, average_precision_per_class)
}

/// `binary(actual, p[:, 1])` for two classes, the mean of `per_class` for more.
fn binary_or_macro(
    actual: &[u32],
    predictions: &Predictions,
    binary: fn(&[u32], &[f32]) -> Result<f64>,
    per_class: fn(&[u32], &Predictions) -> Result<Vec<f64>>,
) -> Result<f64> {
    let (probs, classes) = input::class_scores(predictions, actual.len())?;
    if classes == 2 {
        let positive: Vec<f32> = probs.chunks_exact(2).map(|row| row[1]).collect();
        return binary(actual, &positive);
    }
    let values = per_class(actual, predictions)?;
    Ok(values.iter().sum::<f64>() / values.len() as f64)
}

/// `score(flags, column)` for each class against the rest, after the checks of [`roc_auc`].
fn ovr(
    metric: &'static str,
    actual: &[u32],
    predictions: &Predictions,
    score: impl Fn(&[bool], &[f32]) -> f64,
) -> Result<Vec<f64>> {
    let (probs, classes) = input::class_scores(predictions, actual.len())?;
    if classes < 2 {
        return Err(Error::Shape { what: "classes (at least two)", expected: 2, found: classes });
    }
    input::class_ids(actual, classes)?;
    if metric == ROC_AUC && classes > 2 {
        input::rows_sum_to_one(metric, probs, classes)?;
    }
    if let Some(class) = (0..classes as u32).find(|c| !actual.contains(c)) {
        return Err(Error::AbsentClass { metric, class });
    }
    Ok(crate::curves::one_vs_rest(actual, predictions)?.iter().map(|(flags, scores)| score(flags, scores)).collect())
}

/// Mean negative log-probability of the true class (`log_loss(y, p, labels=range(k))` with
/// `p` in `float32`), probabilities clipped to `[f32::EPSILON, 1 − f32::EPSILON]` first; rows
/// are used as given, not renormalised. Errors on predictions that are not class
/// probabilities, fewer than two classes, a row count other than `actual.len()`, no examples,
/// an id at or above the number of classes, or a value outside [0, 1] or not finite.
pub fn log_loss(actual: &[u32], predictions: &Predictions) -> Result<f64> {
    let (probs, classes) = input::class_scores(predictions, actual.len())?;
    if classes < 2 {
        return Err(Error::Shape { what: "classes (at least two)", expected: 2, found: classes });
    }
    input::class_ids(actual, classes)?;
    input::unit_interval(probs, classes)?;
    let total: f64 = actual
        .iter()
        .zip(probs.chunks_exact(classes))
        .map(|(&a, row)| -f64::from(row[a as usize].clamp(f32::EPSILON, 1.0 - f32::EPSILON)).ln())
        .sum();
    Ok(total / actual.len() as f64)
}

/// Fraction of examples whose true class is among the `k` highest-scored
/// (`top_k_accuracy_score(y, p, k=k, labels=range(classes))`), with scikit-learn's tie rule:
/// see the [module docs](self). Errors on `k == 0`, predictions that are not class scores,
/// fewer than two classes, a row count other than `actual.len()`, no examples, an id at or
/// above the number of classes, or non-finite scores.
pub fn top_k_accuracy(actual: &[u32], predictions: &Predictions, k: usize) -> Result<f64> {
    if k == 0 {
        return Err(Error::Parameter { name: "k", reason: "must be at least 1".into() });
    }
    let (probs, classes) = input::class_scores(predictions, actual.len())?;
    if classes < 2 {
        return Err(Error::Shape { what: "classes (at least two)", expected: 2, found: classes });
    }
    input::class_ids(actual, classes)?;
    let rows = probs.chunks_exact(classes);
    let hits = if classes == 2 {
        // scikit-learn's binary path on the score of class 1.
        let positive: Vec<f32> = rows.map(|row| row[1]).collect();
        let unit = positive.iter().all(|p| (0.0..=1.0).contains(p));
        let threshold = if unit { 0.5 } else { 0.0 };
        actual.iter().zip(&positive).filter(|&(&a, &p)| k >= 2 || u32::from(p > threshold) == a).count()
    } else {
        actual
            .iter()
            .zip(rows)
            .filter(|&(&a, row)| {
                let t = a as usize;
                let above = row.iter().enumerate().filter(|&(j, &s)| s > row[t] || (s == row[t] && j > t)).count();
                above < k
            })
            .count()
    };
    Ok(hits as f64 / actual.len() as f64)
}

/// Matthews correlation coefficient, multiclass (`matthews_corrcoef`): 0 when all true or all
/// predicted ids are one class. Errors on different lengths, no examples, or an id at or
/// above `classes`.
pub fn matthews_corrcoef(actual: &[u32], predicted: &[u32], classes: usize) -> Result<f64> {
    let cm = confusion_matrix(actual, predicted, classes)?;
    let t_sum: Vec<f64> = cm.iter().map(|row| row.iter().sum::<u64>() as f64).collect();
    let p_sum: Vec<f64> = (0..classes).map(|c| cm.iter().map(|row| row[c]).sum::<u64>() as f64).collect();
    let correct: f64 = (0..classes).map(|c| cm[c][c] as f64).sum();
    let n: f64 = p_sum.iter().sum();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let cov_ytyp = correct * n - dot(&t_sum, &p_sum);
    let cov_ypyp = n * n - dot(&p_sum, &p_sum);
    let cov_ytyt = n * n - dot(&t_sum, &t_sum);
    let denominator = cov_ypyp * cov_ytyt;
    Ok(if denominator == 0.0 { 0.0 } else { cov_ytyp / denominator.sqrt() })
}

/// The class targets of a classification [`Metric`], checked against the kind and number of
/// predictions.
fn class_inputs<'a>(targets: &'a Targets, predictions: &Predictions) -> pipeline_core::Result<&'a [u32]> {
    let (Some(actual), Predictions::Classes { .. }) = (targets.classes(), predictions) else {
        return Err(pipeline_core::Error::KindMismatch { expected: "class predictions and class targets" });
    };
    if actual.len() != predictions.len() {
        return Err(pipeline_core::Error::SizeMismatch {
            what: "predictions per target",
            expected: actual.len(),
            found: predictions.len(),
        });
    }
    Ok(actual)
}

/// The argmax class ids of `predictions` and the number of classes.
fn predicted_ids(predictions: &Predictions) -> pipeline_core::Result<(Vec<u32>, usize)> {
    match (predictions.argmax(), predictions) {
        (Some(ids), Predictions::Classes { classes, .. }) => Ok((ids, *classes)),
        _ => Err(pipeline_core::Error::KindMismatch { expected: "class predictions" }),
    }
}

/// [`balanced_accuracy`] of the most probable classes, as a [`Metric`] (`balanced_accuracy`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BalancedAccuracy;

impl Metric for BalancedAccuracy {
    fn name(&self) -> &str {
        "balanced_accuracy"
    }

    fn direction(&self) -> Direction {
        Direction::Maximize
    }

    fn compute(&self, targets: &Targets, predictions: &Predictions) -> pipeline_core::Result<f64> {
        let actual = class_inputs(targets, predictions)?;
        let (predicted, classes) = predicted_ids(predictions)?;
        balanced_accuracy(actual, &predicted, classes).map_err(Error::into_core)
    }
}

/// Which of precision, recall and F1 a [`PrfMetric`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrfScore {
    /// Precision.
    Precision,
    /// Recall.
    Recall,
    /// F1.
    F1,
}

/// An averaged precision, recall or F1 of the most probable classes, as a [`Metric`] named as
/// scikit-learn's scorers are (`f1_macro`, `precision_weighted`, `recall_micro`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrfMetric {
    /// The score.
    pub score: PrfScore,
    /// The average over classes.
    pub average: Average,
}

impl Metric for PrfMetric {
    fn name(&self) -> &str {
        use {Average::*, PrfScore::*};
        match (self.score, self.average) {
            (Precision, Macro) => "precision_macro",
            (Precision, Micro) => "precision_micro",
            (Precision, Weighted) => "precision_weighted",
            (Recall, Macro) => "recall_macro",
            (Recall, Micro) => "recall_micro",
            (Recall, Weighted) => "recall_weighted",
            (F1, Macro) => "f1_macro",
            (F1, Micro) => "f1_micro",
            (F1, Weighted) => "f1_weighted",
        }
    }

    fn direction(&self) -> Direction {
        Direction::Maximize
    }

    fn compute(&self, targets: &Targets, predictions: &Predictions) -> pipeline_core::Result<f64> {
        let actual = class_inputs(targets, predictions)?;
        let (predicted, classes) = predicted_ids(predictions)?;
        let prf = precision_recall_f1(actual, &predicted, classes).map_err(Error::into_core)?;
        let avg = prf.average(self.average);
        Ok(match self.score {
            PrfScore::Precision => avg.precision,
            PrfScore::Recall => avg.recall,
            PrfScore::F1 => avg.f1,
        })
    }
}

/// [`roc_auc`] as a [`Metric`] (`roc_auc`): binary, or one-vs-rest macro.
#[derive(Debug, Clone, Copy, Default)]
pub struct RocAuc;

impl Metric for RocAuc {
    fn name(&self) -> &str {
        "roc_auc"
    }

    fn direction(&self) -> Direction {
        Direction::Maximize
    }

    fn compute(&self, targets: &Targets, predictions: &Predictions) -> pipeline_core::Result<f64> {
        roc_auc(class_inputs(targets, predictions)?, predictions).map_err(Error::into_core)
    }
}

/// [`average_precision`] as a [`Metric`] (`average_precision`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AveragePrecision;

impl Metric for AveragePrecision {
    fn name(&self) -> &str {
        "average_precision"
    }

    fn direction(&self) -> Direction {
        Direction::Maximize
    }

    fn compute(&self, targets: &Targets, predictions: &Predictions) -> pipeline_core::Result<f64> {
        average_precision(class_inputs(targets, predictions)?, predictions).map_err(Error::into_core)
    }
}

/// [`log_loss`] as a [`Metric`] (`log_loss`, minimised).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogLoss;

impl Metric for LogLoss {
    fn name(&self) -> &str {
        "log_loss"
    }

    fn direction(&self) -> Direction {
        Direction::Minimize
    }

    fn compute(&self, targets: &Targets, predictions: &Predictions) -> pipeline_core::Result<f64> {
        log_loss(class_inputs(targets, predictions)?, predictions).map_err(Error::into_core)
    }
}

/// [`top_k_accuracy`] as a [`Metric`] (`top_<k>_accuracy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopKAccuracy {
    k: usize,
    name: String,
}

impl TopKAccuracy {
    /// Top-`k` accuracy; a `k` of 0 is an error when computed.
    pub fn new(k: usize) -> Self {
        Self { k, name: format!("top_{k}_accuracy") }
    }

    /// The `k`.
    pub fn k(&self) -> usize {
        self.k
    }
}

impl Metric for TopKAccuracy {
    fn name(&self) -> &str {
        &self.name
    }

    fn direction(&self) -> Direction {
        Direction::Maximize
    }

    fn compute(&self, targets: &Targets, predictions: &Predictions) -> pipeline_core::Result<f64> {
        top_k_accuracy(class_inputs(targets, predictions)?, predictions, self.k).map_err(Error::into_core)
    }
}

/// [`matthews_corrcoef`] of the most probable classes, as a [`Metric`] (`matthews_corrcoef`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MatthewsCorrcoef;

impl Metric for MatthewsCorrcoef {
    fn name(&self) -> &str {
        "matthews_corrcoef"
    }

    fn direction(&self) -> Direction {
        Direction::Maximize
    }

    fn compute(&self, targets: &Targets, predictions: &Predictions) -> pipeline_core::Result<f64> {
        let actual = class_inputs(targets, predictions)?;
        let (predicted, classes) = predicted_ids(predictions)?;
        matthews_corrcoef(actual, &predicted, classes).map_err(Error::into_core)
    }
}

/// A regression metric of [`RegressionReport`] as a [`Metric`]; R² is maximised, the errors
/// minimised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionMetric {
    /// Mean squared error (`mse`).
    Mse,
    /// Root mean squared error (`rmse`).
    Rmse,
    /// Mean absolute error (`mae`).
    Mae,
    /// Coefficient of determination (`r2`).
    R2,
    /// Mean absolute percentage error, as a fraction (`mape`).
    Mape,
}

impl Metric for RegressionMetric {
    fn name(&self) -> &str {
        match self {
            RegressionMetric::Mse => "mse",
            RegressionMetric::Rmse => "rmse",
            RegressionMetric::Mae => "mae",
            RegressionMetric::R2 => "r2",
            RegressionMetric::Mape => "mape",
        }
    }

    fn direction(&self) -> Direction {
        match self {
            RegressionMetric::R2 => Direction::Maximize,
            _ => Direction::Minimize,
        }
    }

    fn compute(&self, targets: &Targets, predictions: &Predictions) -> pipeline_core::Result<f64> {
        let (Targets::Values(actual), Predictions::Values(predicted)) = (targets, predictions) else {
            return Err(pipeline_core::Error::KindMismatch { expected: "value predictions and value targets" });
        };
        if actual.is_empty() {
            return Err(Error::Empty.into_core());
        }
        let r = RegressionReport::compute(actual, predicted).map_err(Error::into_core)?;
        Ok(match self {
            RegressionMetric::Mse => r.mse,
            RegressionMetric::Rmse => r.rmse,
            RegressionMetric::Mae => r.mae,
            RegressionMetric::R2 => r.r2,
            RegressionMetric::Mape => r.mape,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{got} vs {want}");
    }

    fn close_all(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (&g, &w) in got.iter().zip(want) {
            close(g, w);
        }
    }

    fn probs(rows: &[&[f32]]) -> Predictions {
        Predictions::Classes { probs: rows.iter().flat_map(|r| r.iter().copied()).collect(), classes: rows[0].len() }
    }

    // The multiclass example, with tied scores within rows (rows 4 and 8 tie classes 0 and 1)
    // and across rows (0.3, 0.4, ... recur in every column):
    // ```python
    // import numpy as np; from sklearn.metrics import *
    // y3 = [0, 1, 2, 2, 1, 0, 1, 2, 0, 1, 2, 2]
    // p3 = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.3, 0.3, 0.4],
    //                [0.4, 0.4, 0.2], [0.5, 0.25, 0.25], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6],
    //                [0.4, 0.4, 0.2], [0.25, 0.5, 0.25], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]],
    //               dtype=np.float32)
    // pred3 = p3.argmax(axis=1)  # [0, 1, 2, 2, 0, 0, 2, 2, 0, 1, 1, 2]
    // ```
    const Y3: [u32; 12] = [0, 1, 2, 2, 1, 0, 1, 2, 0, 1, 2, 2];
    const P3: [[f32; 3]; 12] = [
        [0.6, 0.3, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.3, 0.6],
        [0.3, 0.3, 0.4],
        [0.4, 0.4, 0.2],
        [0.5, 0.25, 0.25],
        [0.3, 0.3, 0.4],
        [0.2, 0.2, 0.6],
        [0.4, 0.4, 0.2],
        [0.25, 0.5, 0.25],
        [0.1, 0.6, 0.3],
        [0.3, 0.3, 0.4],
    ];

    fn p3() -> Predictions {
        probs(&P3.iter().map(|r| r.as_slice()).collect::<Vec<_>>())
    }

    /// scikit-learn 1.9.1 on `y3`, `p3` above:
    /// ```python
    /// roc_auc_score(y3, p3, multi_class="ovr", average="macro", labels=range(3))  # 0.8918926366843033
    /// roc_auc_score(y3, p3, multi_class="ovr", average=None, labels=range(3))
    ///     # [0.9814814814814814, 0.765625, 0.9285714285714286]
    /// average_precision_score(y3, p3)                # 0.7876190476190476
    /// average_precision_score(y3, p3, average=None)  # [0.9166666666666665, 0.5833333333333333, 0.8628571428571429]
    /// log_loss(y3, p3, labels=range(3))              # 0.8070855140686035
    /// top_k_accuracy_score(y3, p3, k=k, labels=range(3))  # k=1: 0.75, k=2: 1.0, k=3: 1.0
    /// ```
    #[test]
    fn multiclass_scores_match_scikit_learn() {
        let p = p3();
        close(roc_auc(&Y3, &p).unwrap(), 0.8918926366843033);
        close_all(&roc_auc_per_class(&Y3, &p).unwrap(), &[0.9814814814814814, 0.765625, 0.9285714285714286]);
        close(average_precision(&Y3, &p).unwrap(), 0.7876190476190476);
        close_all(
            &average_precision_per_class(&Y3, &p).unwrap(),
            &[0.9166666666666665, 0.5833333333333333, 0.8628571428571429],
        );
        close(log_loss(&Y3, &p).unwrap(), 0.8070855140686035);
        close(top_k_accuracy(&Y3, &p, 1).unwrap(), 0.75);
        close(top_k_accuracy(&Y3, &p, 2).unwrap(), 1.0);
        close(top_k_accuracy(&Y3, &p, 3).unwrap(), 1.0);
        // Top-1 is not the argmax accuracy row by row: the tie in rows 4 and 8 goes to class 1
        // (scikit-learn) rather than class 0 (argmax); here the two differences cancel.
        assert_eq!(p.argmax().unwrap(), [0, 1, 2, 2, 0, 0, 2, 2, 0, 1, 1, 2]);
    }

    /// scikit-learn 1.9.1 on `y3` and `pred3 = p3.argmax(axis=1)`:
    /// ```python
    /// accuracy_score(y3, pred3)           # 0.75
    /// balanced_accuracy_score(y3, pred3)  # 0.7666666666666666
    /// matthews_corrcoef(y3, pred3)        # 0.6276595744680851
    /// precision_recall_fscore_support(y3, pred3, labels=range(3), average=avg, zero_division=0)[:3]
    ///     # macro:    0.7388888888888889, 0.7666666666666666, 0.7428571428571429
    ///     # micro:    0.75, 0.75, 0.75
    ///     # weighted: 0.7430555555555555, 0.75, 0.7380952380952381
    /// ```
    #[test]
    fn multiclass_label_scores_match_scikit_learn() {
        let pred = p3().argmax().unwrap();
        close(accuracy(&Y3, &pred).unwrap(), 0.75);
        close(balanced_accuracy(&Y3, &pred, 3).unwrap(), 0.7666666666666666);
        close(matthews_corrcoef(&Y3, &pred, 3).unwrap(), 0.6276595744680851);
        let prf = precision_recall_f1(&Y3, &pred, 3).unwrap();
        let triple = |s: &Prf| [s.precision, s.recall, s.f1];
        close_all(&triple(&prf.macro_avg), &[0.7388888888888889, 0.7666666666666666, 0.7428571428571429]);
        close_all(&triple(&prf.micro_avg), &[0.75, 0.75, 0.75]);
        close_all(&triple(&prf.weighted_avg), &[0.7430555555555555, 0.75, 0.7380952380952381]);
        assert_eq!(prf.macro_avg.support, 12);
    }

    /// Classes absent from `y_true` and `y_pred` (scikit-learn 1.9.1):
    /// ```python
    /// y5 = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 0, 1]
    /// p5 = [0, 0, 1, 3, 1, 1, 0, 2, 2, 0, 0, 1, 0, 1]   # 3 only predicted, 4 in neither
    /// accuracy_score(y5, p5)           # 0.5714285714285714
    /// balanced_accuracy_score(y5, p5)  # 0.5833333333333334 (warns: y_pred contains classes not in y_true)
    /// matthews_corrcoef(y5, p5)        # 0.4
    /// precision_recall_fscore_support(y5, p5, labels=range(5), zero_division=0)
    ///     # P [0.5, 0.6, 1.0, 0.0, 0.0]; R [0.6, 0.75, 0.4, 0.0, 0.0]; S [5, 4, 5, 0, 0]
    ///     # F [0.5454545454545454, 0.6666666666666666, 0.5714285714285714, 0.0, 0.0]
    /// precision_recall_fscore_support(..., average=avg)[:3]
    ///     # macro:    0.42000000000000004, 0.35, 0.35670995670995664
    ///     # micro:    0.5714285714285714 (all three)
    ///     # weighted: 0.7071428571428572, 0.5714285714285714, 0.5893630179344465
    /// y6 = [0, 0, 1, 1, 2, 2]; p6 = [0, 3, 0, 0, 2, 3]     # class 1 never predicted, 3 never true
    /// balanced_accuracy_score(y6, p6)  # 0.3333333333333333 (warns)
    /// matthews_corrcoef(y6, p6)        # 0.17407765595569785
    /// matthews_corrcoef([0, 1, 2], [1, 1, 1])  # 0.0
    /// ```
    #[test]
    fn absent_classes_match_scikit_learn() {
        let y5 = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 0, 1];
        let p5 = [0, 0, 1, 3, 1, 1, 0, 2, 2, 0, 0, 1, 0, 1];
        close(accuracy(&y5, &p5).unwrap(), 0.5714285714285714);
        close(balanced_accuracy(&y5, &p5, 5).unwrap(), 0.5833333333333334);
        close(matthews_corrcoef(&y5, &p5, 5).unwrap(), 0.4);
        let prf = precision_recall_f1(&y5, &p5, 5).unwrap();
        let col = |f: fn(&Prf) -> f64| prf.per_class.iter().map(f).collect::<Vec<f64>>();
        close_all(&col(|s| s.precision), &[0.5, 0.6, 1.0, 0.0, 0.0]);
        close_all(&col(|s| s.recall), &[0.6, 0.75, 0.4, 0.0, 0.0]);
        close_all(&col(|s| s.f1), &[0.5454545454545454, 0.6666666666666666, 0.5714285714285714, 0.0, 0.0]);
        assert_eq!(prf.per_class.iter().map(|s| s.support).collect::<Vec<_>>(), [5, 4, 5, 0, 0]);
        let triple = |s: &Prf| [s.precision, s.recall, s.f1];
        close_all(&triple(prf.average(Average::Macro)), &[0.42000000000000004, 0.35, 0.35670995670995664]);
        close_all(&triple(prf.average(Average::Micro)), &[0.5714285714285714; 3]);
        close_all(
            &triple(prf.average(Average::Weighted)),
            &[0.7071428571428572, 0.5714285714285714, 0.5893630179344465],
        );

        let (y6, p6) = ([0, 0, 1, 1, 2, 2], [0, 3, 0, 0, 2, 3]);
        close(balanced_accuracy(&y6, &p6, 4).unwrap(), 0.3333333333333333);
        close(matthews_corrcoef(&y6, &p6, 4).unwrap(), 0.17407765595569785);
        assert_eq!(matthews_corrcoef(&[0, 1, 2], &[1, 1, 1], 3).unwrap(), 0.0);
    }

    /// Binary, with three examples tied at 0.4 (scikit-learn 1.9.1):
    /// ```python
    /// yb = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    /// sb = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.7, 0.9, 0.2, 0.05], dtype=np.float32)
    /// roc_auc_score(yb, sb)            # 0.68
    /// average_precision_score(yb, sb)  # 0.7392857142857143
    /// Pb = np.stack([1 - sb, sb], axis=1)  # float32
    /// log_loss(yb, Pb, labels=[0, 1])  # 0.6286333203315735
    /// top_k_accuracy_score(yb, sb, k=1, labels=[0, 1])  # 0.6 (k=2: 1.0)
    /// top_k_accuracy_score([0, 1, 1, 0], np.float32([0.5, 0.5, 0.7, 0.2]), k=1, labels=[0, 1])  # 0.75
    /// top_k_accuracy_score([0, 1, 1, 0], np.float32([-1.0, 0.5, 2.0, 0.0]), k=1, labels=[0, 1])  # 1.0
    /// ```
    #[test]
    fn binary_scores_match_scikit_learn() {
        let yb = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0];
        let sb: [f32; 10] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.7, 0.9, 0.2, 0.05];
        close(roc_auc_binary(&yb, &sb).unwrap(), 0.68);
        close(average_precision_binary(&yb, &sb).unwrap(), 0.7392857142857143);
        let two =
            |s: &[f32]| Predictions::Classes { probs: s.iter().flat_map(|&p| [1.0 - p, p]).collect(), classes: 2 };
        let pb = two(&sb);
        // Two classes: the binary path on the probability of class 1.
        close(roc_auc(&yb, &pb).unwrap(), 0.68);
        close(average_precision(&yb, &pb).unwrap(), 0.7392857142857143);
        close(log_loss(&yb, &pb).unwrap(), 0.6286333203315735);
        close(top_k_accuracy(&yb, &pb, 1).unwrap(), 0.6);
        close(top_k_accuracy(&yb, &pb, 2).unwrap(), 1.0);
        // A probability of exactly 0.5 predicts class 0 (`p > 0.5`), unlike the multiclass tie rule.
        close(top_k_accuracy(&[0, 1, 1, 0], &two(&[0.5, 0.5, 0.7, 0.2]), 1).unwrap(), 0.75);
        // Scores outside [0, 1] are thresholded at 0.
        let raw = Predictions::Classes { probs: vec![0.0, -1.0, 0.0, 0.5, 0.0, 2.0, 0.0, 0.0], classes: 2 };
        close(top_k_accuracy(&[0, 1, 1, 0], &raw, 1).unwrap(), 1.0);
    }

    /// Ties at the k-th place go to the larger class id (scikit-learn 1.9.1):
    /// ```python
    /// yt = [0, 1, 2, 3, 3, 0]
    /// pt = np.array([[0.25, 0.25, 0.25, 0.25], [0.4, 0.4, 0.1, 0.1], [0.4, 0.4, 0.1, 0.1],
    ///                [0.1, 0.2, 0.3, 0.4], [0.3, 0.3, 0.3, 0.1], [0.1, 0.1, 0.4, 0.4]], dtype=np.float32)
    /// top_k_accuracy_score(yt, pt, k=k, labels=range(4))
    ///     # k=1: 0.3333333333333333, k=2: 0.3333333333333333, k=3: 0.3333333333333333, k=4: 1.0
    /// ```
    #[test]
    fn top_k_ties_match_scikit_learn() {
        let yt = [0, 1, 2, 3, 3, 0];
        let pt = probs(&[
            &[0.25, 0.25, 0.25, 0.25],
            &[0.4, 0.4, 0.1, 0.1],
            &[0.4, 0.4, 0.1, 0.1],
            &[0.1, 0.2, 0.3, 0.4],
            &[0.3, 0.3, 0.3, 0.1],
            &[0.1, 0.1, 0.4, 0.4],
        ]);
        for (k, want) in [(1, 0.3333333333333333), (2, 0.3333333333333333), (3, 0.3333333333333333), (4, 1.0)] {
            close(top_k_accuracy(&yt, &pt, k).unwrap(), want);
        }
        assert!(matches!(top_k_accuracy(&yt, &pt, 0), Err(Error::Parameter { name: "k", .. })));
    }

    /// Clipping at the `float32` machine epsilon (scikit-learn 1.9.1):
    /// ```python
    /// yl = [0, 1, 2, 1, 0]
    /// pl = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5], [0.1, 0.9, 0.0],
    ///                [0.3, 0.3, 0.3]], dtype=np.float32)   # the last row sums to 0.9: a warning only
    /// log_loss(yl, pl, labels=range(3))                  # 3.5889732837677
    /// log_loss(yl, pl.astype(np.float64), labels=range(3))  # 7.609226775283078 (float64 epsilon; not ours)
    /// log_loss([0, 1], np.float32([[1.0, 0.0], [0.0, 1.0]]), labels=[0, 1])  # 1.1920930376163597e-07
    /// log_loss([0, 0, 1], np.float32([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25], [0.2, 0.6, 0.2]]),
    ///          labels=range(3))                          # 0.5202159285545349 (class 2 absent)
    /// ```
    #[test]
    fn log_loss_clips_like_scikit_learn() {
        let pl = probs(&[&[1.0, 0.0, 0.0], &[0.0, 0.0, 1.0], &[0.2, 0.3, 0.5], &[0.1, 0.9, 0.0], &[0.3, 0.3, 0.3]]);
        close(log_loss(&[0, 1, 2, 1, 0], &pl).unwrap(), 3.5889732837677);
        close(log_loss(&[0, 1], &probs(&[&[1.0, 0.0], &[0.0, 1.0]])).unwrap(), 1.1920930376163597e-07);
        let absent = probs(&[&[0.7, 0.2, 0.1], &[0.5, 0.25, 0.25], &[0.2, 0.6, 0.2]]);
        close(log_loss(&[0, 0, 1], &absent).unwrap(), 0.5202159285545349);
        // Out-of-range and non-finite values are errors, as in scikit-learn.
        let e = log_loss(&[0], &probs(&[&[1.5, -0.5]])).unwrap_err();
        assert_eq!(e.to_string(), "probability outside [0, 1]: 1.5 at example 0");
        let e = log_loss(&[0], &probs(&[&[f32::NAN, 0.5]])).unwrap_err();
        assert_eq!(e.to_string(), "non-finite score NaN at example 0");
        assert!(matches!(log_loss(&[0], &probs(&[&[1.0]])), Err(Error::Shape { .. })));
    }

    /// A class without true examples makes ROC AUC and average precision undefined. scikit-learn
    /// 1.9.1 on `ya = [0, 1, 0, 1, 1]` and a 3-column `pa`:
    /// `roc_auc_score(ya, pa, multi_class="ovr", average="macro", labels=range(3))` warns "Only
    /// one class is present in y_true" and returns `nan`; `average_precision_score(ya, pa)`
    /// raises "y should be a 1d array"; `roc_auc_score([1, 1, 1], [.2, .3, .4])` is `nan`,
    /// `average_precision_score([0, 0, 0], [.2, .3, .4])` is 0.0 with a warning. Here: errors.
    #[test]
    fn absent_classes_make_ranking_metrics_errors() {
        let pa = probs(&[&[0.5, 0.3, 0.2], &[0.2, 0.5, 0.3], &[0.6, 0.2, 0.2], &[0.1, 0.1, 0.8], &[0.3, 0.4, 0.3]]);
        let ya = [0, 1, 0, 1, 1];
        let e = roc_auc(&ya, &pa).unwrap_err();
        assert!(matches!(e, Error::AbsentClass { class: 2, .. }));
        assert_eq!(e.to_string(), "ROC AUC is undefined: class 2 never occurs in the true labels");
        assert!(matches!(roc_auc_per_class(&ya, &pa), Err(Error::AbsentClass { class: 2, .. })));
        let e = average_precision(&ya, &pa).unwrap_err();
        assert_eq!(e.to_string(), "average precision is undefined: class 2 never occurs in the true labels");
        let e = roc_auc_binary(&[1, 1, 1], &[0.2, 0.3, 0.4]).unwrap_err();
        assert_eq!(e.to_string(), "ROC AUC is undefined: class 0 never occurs in the true labels");
        assert!(matches!(average_precision_binary(&[0, 0, 0], &[0.2, 0.3, 0.4]), Err(Error::AbsentClass { .. })));
    }

    /// scikit-learn 1.9.1 rejects multiclass scores whose rows do not sum to one:
    /// `roc_auc_score([0, 1, 2], [[.5, .3, .3], ...], multi_class="ovr", labels=range(3))` raises
    /// "Target scores need to be probabilities for multiclass roc_auc".
    #[test]
    fn multiclass_roc_auc_needs_probabilities() {
        let p = probs(&[&[0.5, 0.3, 0.3], &[0.2, 0.5, 0.3], &[0.6, 0.2, 0.2]]);
        let e = roc_auc(&[0, 1, 2], &p).unwrap_err();
        assert!(matches!(e, Error::NotProbabilities { index: 0, .. }), "{e}");
        // Average precision has no such requirement.
        assert!(average_precision(&[0, 1, 2], &p).is_ok());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(accuracy(&[], &[]), Err(Error::Empty)));
        assert!(matches!(accuracy(&[0], &[0, 1]), Err(Error::Length { .. })));
        assert!(matches!(balanced_accuracy(&[0, 3], &[0, 1], 3), Err(Error::ClassId { id: 3, classes: 3 })));
        assert!(matches!(precision_recall_f1(&[0], &[5], 2), Err(Error::ClassId { id: 5, .. })));
        assert!(matches!(roc_auc_binary(&[0, 2], &[0.1, 0.2]), Err(Error::ClassId { id: 2, .. })));
        assert!(matches!(roc_auc_binary(&[0, 1], &[0.1]), Err(Error::Length { .. })));
        assert!(matches!(roc_auc_binary(&[0, 1], &[0.1, f32::INFINITY]), Err(Error::BadScore { index: 1, .. })));
        assert!(matches!(roc_auc(&[0, 1], &Predictions::Values(vec![0.1, 0.2])), Err(Error::Kind { .. })));
        let ragged = Predictions::Classes { probs: vec![0.5; 5], classes: 2 };
        assert!(matches!(roc_auc(&[0, 1], &ragged), Err(Error::Shape { expected: 6, found: 5, .. })));
        let rows = Predictions::Classes { probs: vec![0.5; 6], classes: 2 };
        assert!(matches!(log_loss(&[0, 1], &rows), Err(Error::Length { predictions: 3, targets: 2 })));
        assert!(matches!(top_k_accuracy(&[0, 4], &rows, 1), Err(Error::Length { .. })));
        assert!(matches!(log_loss(&[0, 4, 1], &rows), Err(Error::ClassId { id: 4, .. })));
        let none = Predictions::Classes { probs: vec![], classes: 2 };
        assert!(matches!(log_loss(&[], &none), Err(Error::Empty)));
        assert!(matches!(matthews_corrcoef(&[], &[], 2), Err(Error::Empty)));
    }

    #[test]
    fn metric_impls_agree_with_the_functions() {
        let targets = Targets::Classes(Y3.to_vec());
        let p = p3();
        let pred = p.argmax().unwrap();
        let check = |m: &dyn Metric, want: f64, dir: Direction| {
            close(m.compute(&targets, &p).unwrap(), want);
            assert_eq!(m.direction(), dir, "{}", m.name());
        };
        check(&BalancedAccuracy, balanced_accuracy(&Y3, &pred, 3).unwrap(), Direction::Maximize);
        check(&RocAuc, 0.8918926366843033, Direction::Maximize);
        check(&AveragePrecision, 0.7876190476190476, Direction::Maximize);
        check(&LogLoss, 0.8070855140686035, Direction::Minimize);
        check(&TopKAccuracy::new(2), 1.0, Direction::Maximize);
        check(&MatthewsCorrcoef, 0.6276595744680851, Direction::Maximize);
        let f1 = PrfMetric { score: PrfScore::F1, average: Average::Macro };
        check(&f1, 0.7428571428571429, Direction::Maximize);
        let recall = PrfMetric { score: PrfScore::Recall, average: Average::Weighted };
        check(&recall, 0.75, Direction::Maximize);
        assert_eq!(f1.name(), "f1_macro");
        assert_eq!(recall.name(), "recall_weighted");
        assert_eq!(TopKAccuracy::new(3).name(), "top_3_accuracy");
        assert_eq!(LogLoss.name(), "log_loss");
        // Wrong kinds and sizes are errors, not panics.
        assert!(RocAuc.compute(&Targets::Values(vec![1.0]), &p).is_err());
        assert!(RocAuc.compute(&Targets::Classes(vec![0, 1]), &p).is_err());
        assert!(LogLoss.compute(&targets, &Predictions::Values(vec![0.0; 12])).is_err());
        assert!(TopKAccuracy::new(0).compute(&targets, &p).is_err());
        // An undefined score surfaces as an error of the trait's type.
        let absent = Targets::Classes(vec![0; 12]);
        assert!(matches!(RocAuc.compute(&absent, &p), Err(pipeline_core::Error::KindMismatch { .. })));
    }

    /// scikit-learn 1.9.1, on `float32` inputs widened to `float64` as the report does:
    /// ```python
    /// y = np.float32([0.0, 1.5, -2.0, 3.25, 0.0]).astype(np.float64)
    /// p = np.float32([0.1, 1.0, -2.5, 3.0, 0.0]).astype(np.float64)
    /// mean_squared_error(y, p), root_mean_squared_error(y, p), mean_absolute_error(y, p),
    /// r2_score(y, p), mean_absolute_percentage_error(y, p)
    /// r2_score([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]), r2_score([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    /// ```
    /// A zero target divides by float64's epsilon in MAPE (a huge value, as in scikit-learn);
    /// a constant target gives R² 1 for a perfect fit and 0 otherwise (`force_finite=True`).
    #[test]
    fn regression_metrics_match_scikit_learn() {
        let targets = Targets::Values(vec![0.0, 1.5, -2.0, 3.25, 0.0]);
        let preds = Predictions::Values(vec![0.1, 1.0, -2.5, 3.0, 0.0]);
        for (m, want) in [
            (RegressionMetric::Mse, REG[0]),
            (RegressionMetric::Rmse, REG[1]),
            (RegressionMetric::Mae, REG[2]),
            (RegressionMetric::R2, REG[3]),
            (RegressionMetric::Mape, REG[4]),
        ] {
            close(m.compute(&targets, &preds).unwrap(), want);
        }
        let constant = Targets::Values(vec![2.0; 3]);
        close(RegressionMetric::R2.compute(&constant, &Predictions::Values(vec![2.0; 3])).unwrap(), REG[5]);
        close(RegressionMetric::R2.compute(&constant, &Predictions::Values(vec![1.0, 2.0, 3.0])).unwrap(), REG[6]);
        assert_eq!(RegressionMetric::R2.direction(), Direction::Maximize);
        assert_eq!(RegressionMetric::Mape.direction(), Direction::Minimize);
        assert_eq!(RegressionMetric::Rmse.name(), "rmse");
        assert!(RegressionMetric::Mse.compute(&Targets::Values(vec![]), &Predictions::Values(vec![])).is_err());
        assert!(RegressionMetric::Mse.compute(&targets, &Predictions::Values(vec![1.0])).is_err());
        assert!(RegressionMetric::Mse.compute(&Targets::Classes(vec![0]), &preds).is_err());
    }

    const REG: [f64; 7] = [
        0.11450000005960463,
        0.33837848640184653,
        0.27000000029802323,
        0.9625816993269266,
        90071993889587.33,
        1.0,
        0.0,
    ];
}
