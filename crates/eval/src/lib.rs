//! Evaluation: metrics on held-out data, computed as scikit-learn computes them.
//!
//! - [`ClassificationReport`] — per-class precision, recall, F1 and support, their macro and
//!   support-weighted averages, and the confusion matrix — matching
//!   `sklearn.metrics.precision_recall_fscore_support(..., labels=all classes, zero_division=0)`
//!   and `confusion_matrix`; [`RegressionReport`] (MSE, RMSE, MAE, R², MAPE); [`Accuracy`].
//! - [`metrics`] — the classification metrics one by one (accuracy, balanced accuracy,
//!   precision / recall / F1 with macro, micro and weighted averages, ROC AUC, average
//!   precision, log loss, top-k accuracy, Matthews correlation) and [`Metric`]
//!   implementations of them and of the regression metrics.
//! - [`curves`] — ROC and precision-recall curve points, binary and one-vs-rest.
//! - [`confusion`] — confusion matrices, row-normalised, and the most confused class pairs.
//! - [`stats`] — comparing two models on the same examples: a seeded paired bootstrap
//!   confidence interval and McNemar's test.
//! - [`drift`] — data drift: population stability index, Kolmogorov–Smirnov and chi-squared
//!   tests of live values against a training reference.
//! - [`forecast`] — forecast metrics (MAE, RMSE, MAPE, sMAPE, MASE) and baselines (naive,
//!   seasonal naive, a least-squares autoregression as statsmodels' `AutoReg`), for the coming
//!   time-series pipeline.
//! - [`config`] — the `eval:` section and its deployment gate, and [`MetricName`](config::MetricName),
//!   the metrics a gate or comparison can name.
//! - [`plot`] draws PNG charts (training curves, histograms, confusion heat maps, ROC and PR
//!   curves) with an embedded font.
//!
//! Every function checks its input and returns an [`Error`] rather than panicking; each
//! module's docs say where it departs from scikit-learn (undefined cases are errors here, where
//! scikit-learn warns and returns NaN or 0).
//!
//! What it must not do: train.

pub mod config;
pub mod confusion;
pub mod curves;
pub mod drift;
pub mod forecast;
mod input;
pub mod metrics;
pub mod plot;
pub mod stats;

use pipeline_core::{Direction, Metric, Predictions, Targets};
use serde::{Deserialize, Serialize};

/// What can go wrong evaluating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Predictions and targets of different lengths.
    #[error("{predictions} predictions for {targets} targets")]
    Length {
        /// Number of predictions.
        predictions: usize,
        /// Number of targets.
        targets: usize,
    },
    /// A class id at or above the number of labels.
    #[error("class id {id} is outside the {classes} labels")]
    ClassId {
        /// The id.
        id: u32,
        /// The number of labels.
        classes: usize,
    },
    /// Nothing to evaluate.
    #[error("no examples to evaluate")]
    Empty,
    /// Predictions of the wrong kind, e.g. regression values given to a classification metric.
    #[error("expected {expected}")]
    Kind {
        /// What was expected.
        expected: &'static str,
    },
    /// Sizes that do not fit together, e.g. probabilities that do not fill whole rows.
    #[error("{what}: expected {expected}, found {found}")]
    Shape {
        /// What was being checked.
        what: &'static str,
        /// The size needed.
        expected: usize,
        /// The size found.
        found: usize,
    },
    /// A score that is not a finite number, or a probability outside [0, 1].
    #[error("{what} {value} at example {index}")]
    BadScore {
        /// What is wrong with it.
        what: &'static str,
        /// The example (row) it belongs to.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A row of class scores that does not sum to one where the metric needs probabilities.
    #[error("{metric} needs probabilities: the scores of example {index} sum to {sum}, not 1")]
    NotProbabilities {
        /// The metric.
        metric: &'static str,
        /// The example (row).
        index: usize,
        /// Its sum.
        sum: f64,
    },
    /// A ranking metric that is undefined because a class has no true examples: one-vs-rest
    /// needs positives and negatives of every class (scikit-learn warns and returns NaN or 0).
    #[error("{metric} is undefined: class {class} never occurs in the true labels")]
    AbsentClass {
        /// The metric.
        metric: &'static str,
        /// The class without examples.
        class: u32,
    },
    /// A parameter out of its range.
    #[error("{name} {reason}")]
    Parameter {
        /// The parameter.
        name: &'static str,
        /// What its value must be.
        reason: String,
    },
    /// A metric gave a value that is not a finite number.
    #[error("{what} is not finite ({value})")]
    NotFinite {
        /// Which value.
        what: &'static str,
        /// The value.
        value: f64,
    },
}

impl Error {
    /// The closest [`pipeline_core::Error`], for [`Metric`] implementations (which return it).
    /// `pipeline_core` has no free-form variant, so the message is fixed per kind of error.
    pub fn into_core(self) -> pipeline_core::Error {
        use pipeline_core::Error as E;
        match self {
            Error::Length { predictions, targets } => {
                E::SizeMismatch { what: "predictions per target", expected: targets, found: predictions }
            }
            Error::Shape { what, expected, found } => E::SizeMismatch { what, expected, found },
            Error::ClassId { .. } => E::KindMismatch { expected: "class ids below the number of classes" },
            Error::Empty => E::KindMismatch { expected: "at least one example" },
            Error::Kind { expected } => E::KindMismatch { expected },
            Error::BadScore { .. } => E::KindMismatch { expected: "finite scores (probabilities within [0, 1])" },
            Error::NotProbabilities { .. } => {
                E::KindMismatch { expected: "class probabilities that sum to one for every example" }
            }
            Error::AbsentClass { .. } => E::KindMismatch {
                expected: "targets containing every class (the metric is undefined for a class without examples)",
            },
            Error::Parameter { .. } => E::KindMismatch { expected: "metric parameters within range" },
            Error::NotFinite { .. } => E::KindMismatch { expected: "a finite metric value" },
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Precision, recall, F1 and support of one class (or an average of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// Class name (or `macro avg` / `weighted avg`).
    pub label: String,
    /// `tp / (tp + fp)`, 0 when nothing was predicted as the class.
    pub precision: f64,
    /// `tp / (tp + fn)`, 0 when the class has no examples.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// Number of true examples of the class.
    pub support: u64,
}

/// The evaluation of a classifier on one set of examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Number of examples.
    pub examples: usize,
    /// Fraction predicted correctly.
    pub accuracy: f64,
    /// One entry per class, in class-id order.
    pub per_class: Vec<ClassScores>,
    /// Unweighted mean over all classes.
    pub macro_avg: ClassScores,
    /// Mean over classes weighted by support.
    pub weighted_avg: ClassScores,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Mean recall over the classes that occur (`balanced_accuracy_score`).
    #[serde(default)]
    pub balanced_accuracy: f64,
    /// Scores of the counts pooled over classes (for single-label data all three equal the
    /// accuracy).
    #[serde(default)]
    pub micro_avg: Option<ClassScores>,
    /// Matthews correlation coefficient (multiclass R_K).
    #[serde(default)]
    pub mcc: f64,
    /// Each row of `confusion` divided by its sum (`normalize="true"`).
    #[serde(default)]
    pub confusion_normalized: Vec<Vec<f64>>,
    /// The off-diagonal cells with the most examples, largest first (at most ten).
    #[serde(default)]
    pub most_confused: Vec<confusion::ConfusedPair>,
    /// Scores of the predicted probabilities; absent when only labels were scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability_scores: Option<ProbabilityScores>,
}

/// Top-k accuracy for one `k`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TopK {
    /// How many of the highest-scored classes count as a hit.
    pub k: usize,
    /// The fraction of hits (`top_k_accuracy_score`).
    pub accuracy: f64,
}

/// The metrics of a classifier that need its class probabilities, not only its labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbabilityScores {
    /// ROC AUC: binary, or the macro one-vs-rest mean; `None` when undefined (a class without
    /// examples), with the reason in `notes`.
    pub roc_auc: Option<f64>,
    /// Average precision (PR AUC), binary or macro one-vs-rest; `None` when undefined.
    pub average_precision: Option<f64>,
    /// Mean negative log-probability of the true class.
    pub log_loss: f64,
    /// Top-k accuracy, for more than `k` classes.
    pub top_k: Option<TopK>,
    /// Why a score is missing.
    pub notes: Vec<String>,
}

impl ClassificationReport {
    /// Scores class `probabilities` against `actual` ids: every label metric of
    /// [`compute`](Self::compute) on the most probable classes, plus ROC AUC, average
    /// precision, log loss and (with more than `top_k` classes) top-`top_k` accuracy.
    pub fn from_probabilities(
        actual: &[u32],
        probabilities: &Predictions,
        labels: &[String],
        top_k: usize,
    ) -> Result<Self> {
        let predicted = probabilities.argmax().ok_or(Error::Kind { expected: "class probabilities" })?;
        let mut report = Self::compute(actual, &predicted, labels)?;
        let mut notes = Vec::new();
        let mut optional = |name: &str, r: Result<f64>| match r {
            Ok(v) => Some(v),
            Err(e) => {
                notes.push(format!("{name}: {e}"));
                None
            }
        };
        let roc_auc = optional("ROC AUC", metrics::roc_auc(actual, probabilities));
        let average_precision = optional("average precision", metrics::average_precision(actual, probabilities));
        let log_loss = metrics::log_loss(actual, probabilities)?;
        let top_k = if top_k >= 1 && labels.len() > top_k {
            Some(TopK { k: top_k, accuracy: metrics::top_k_accuracy(actual, probabilities, top_k)? })
        } else {
            None
        };
        report.probability_scores = Some(ProbabilityScores { roc_auc, average_precision, log_loss, top_k, notes });
        Ok(report)
    }

    /// Scores `predicted` class ids against `actual` ones; `labels` names the classes.
    pub fn compute(actual: &[u32], predicted: &[u32], labels: &[String]) -> Result<Self> {
        if actual.len() != predicted.len() {
            return Err(Error::Length { predictions: predicted.len(), targets: actual.len() });
        }
        let k = labels.len();
        let mut confusion = vec![vec![0u64; k]; k];
        for (&a, &p) in actual.iter().zip(predicted) {
            for id in [a, p] {
                if id as usize >= k {
                    return Err(Error::ClassId { id, classes: k });
                }
            }
            confusion[a as usize][p as usize] += 1;
        }
        let ratio = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let per_class: Vec<ClassScores> = (0..k)
            .map(|c| {
                let tp = confusion[c][c];
                let support: u64 = confusion[c].iter().sum();
                let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
                ClassScores { label: labels[c].clone(), precision, recall, f1, support }
            })
            .collect();
        let total: u64 = per_class.iter().map(|s| s.support).sum();
        let avg = |label: &str, weight: &dyn Fn(&ClassScores) -> f64| {
            let wsum: f64 = per_class.iter().map(weight).sum();
            let mean = |f: fn(&ClassScores) -> f64| {
                if wsum == 0.0 { 0.0 } else { per_class.iter().map(|s| weight(s) * f(s)).sum::<f64>() / wsum }
            };
            ClassScores {
                label: label.into(),
                precision: mean(|s| s.precision),
                recall: mean(|s| s.recall),
                f1: mean(|s| s.f1),
                support: total,
            }
        };
        let macro_avg = avg("macro avg", &|_| 1.0);
        let weighted_avg = avg("weighted avg", &|s| s.support as f64);
        let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();
        let accuracy = ratio(correct, total);
        let (balanced_accuracy, mcc) = if actual.is_empty() {
            (0.0, 0.0)
        } else {
            (metrics::balanced_accuracy(actual, predicted, k)?, metrics::matthews_corrcoef(actual, predicted, k)?)
        };
        let micro = ClassScores {
            label: "micro avg".into(),
            precision: accuracy,
            recall: accuracy,
            f1: accuracy,
            support: total,
        };
        Ok(Self {
            examples: actual.len(),
            accuracy,
            per_class,
            macro_avg,
            weighted_avg,
            confusion_normalized: confusion::normalize_rows(&confusion),
            most_confused: confusion::most_confused(&confusion, 10),
            confusion,
            balanced_accuracy,
            micro_avg: Some(micro),
            mcc,
            probability_scores: None,
        })
    }
}

/// The evaluation of a regressor on one set of examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionReport {
    /// Number of examples.
    pub examples: usize,
    /// Mean squared error.
    pub mse: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination (1 − SSE / SST; 1 for a perfect fit, 0 for the mean).
    pub r2: f64,
    /// Mean absolute percentage error, as a fraction (scikit-learn's: |y − p| / max(|y|, ε)).
    pub mape: f64,
}

impl RegressionReport {
    /// Scores `predicted` values against `actual` ones.
    pub fn compute(actual: &[f32], predicted: &[f32]) -> Result<Self> {
        if actual.len() != predicted.len() {
            return Err(Error::Length { predictions: predicted.len(), targets: actual.len() });
        }
        let n = actual.len().max(1) as f64;
        let (y, p): (Vec<f64>, Vec<f64>) =
            actual.iter().zip(predicted).map(|(a, b)| (f64::from(*a), f64::from(*b))).unzip();
        let mse = y.iter().zip(&p).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n;
        let mae = y.iter().zip(&p).map(|(a, b)| (a - b).abs()).sum::<f64>() / n;
        let mean = y.iter().sum::<f64>() / n;
        let sst: f64 = y.iter().map(|a| (a - mean).powi(2)).sum();
        let r2 = if sst == 0.0 { if mse == 0.0 { 1.0 } else { 0.0 } } else { 1.0 - mse * n / sst };
        let mape = y.iter().zip(&p).map(|(a, b)| (a - b).abs() / a.abs().max(f64::EPSILON)).sum::<f64>() / n;
        Ok(Self { examples: actual.len(), mse, rmse: mse.sqrt(), mae, r2, mape })
    }
}

/// The fraction of examples whose most probable class is the true one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accuracy;

impl Metric for Accuracy {
    fn name(&self) -> &str {
        "accuracy"
    }

    fn direction(&self) -> Direction {
        Direction::Maximize
    }

    fn compute(&self, targets: &Targets, predictions: &Predictions) -> pipeline_core::Result<f64> {
        let (Some(actual), Some(predicted)) = (targets.classes(), predictions.argmax()) else {
            return Err(pipeline_core::Error::KindMismatch { expected: "class predictions and class targets" });
        };
        if actual.len() != predicted.len() {
            return Err(pipeline_core::Error::SizeMismatch {
                what: "predictions per target",
                expected: actual.len(),
                found: predicted.len(),
            });
        }
        let correct = actual.iter().zip(&predicted).filter(|(a, p)| a == p).count();
        Ok(if actual.is_empty() { 0.0 } else { correct as f64 / actual.len() as f64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// scikit-learn 1.9.1:
    /// ```python
    /// y_true = [0,0,0,0,1,1,1,2,2,2,2,2,0,1]
    /// y_pred = [0,0,1,3,1,1,0,2,2,0,0,1,0,1]
    /// labels = [0,1,2,3,4]
    /// precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    /// precision_recall_fscore_support(..., average='macro' / 'weighted')
    /// accuracy_score(y_true, y_pred); confusion_matrix(y_true, y_pred, labels=labels)
    /// ```
    /// Class 3 is predicted but never true; class 4 is absent from both.
    #[test]
    fn matches_scikit_learn_with_absent_classes() {
        let y_true = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 0, 1];
        let y_pred = [0, 0, 1, 3, 1, 1, 0, 2, 2, 0, 0, 1, 0, 1];
        let labels: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        let r = ClassificationReport::compute(&y_true, &y_pred, &labels).unwrap();
        close(r.accuracy, 0.5714285714285714);
        let p = [0.5, 0.6, 1.0, 0.0, 0.0];
        let rc = [0.6, 0.75, 0.4, 0.0, 0.0];
        let f = [0.5454545454545454, 0.6666666666666666, 0.5714285714285714, 0.0, 0.0];
        let s = [5, 4, 5, 0, 0];
        for (i, c) in r.per_class.iter().enumerate() {
            close(c.precision, p[i]);
            close(c.recall, rc[i]);
            close(c.f1, f[i]);
            assert_eq!(c.support, s[i]);
        }
        close(r.macro_avg.precision, 0.42000000000000004);
        close(r.macro_avg.recall, 0.35);
        close(r.macro_avg.f1, 0.35670995670995664);
        close(r.weighted_avg.precision, 0.7071428571428572);
        close(r.weighted_avg.recall, 0.5714285714285714);
        close(r.weighted_avg.f1, 0.5893630179344465);
        assert_eq!(
            r.confusion,
            vec![vec![3, 1, 0, 1, 0], vec![1, 3, 0, 0, 0], vec![2, 1, 2, 0, 0], vec![0; 5], vec![0; 5]]
        );
    }

    /// scikit-learn 1.9.1, `y = [3.0, -0.5, 2.0, 7.0, 4.2]; p = [2.5, 0.0, 2.1, 7.8, 3.9]`:
    /// `mean_squared_error` 0.24799999999999994, its root 0.49799598391954925,
    /// `mean_absolute_error` 0.44000000000000006, `r2_score` 0.9594665271966527,
    /// `mean_absolute_percentage_error` 0.2804761904761905.
    #[test]
    fn regression_matches_scikit_learn() {
        let r = RegressionReport::compute(&[3.0, -0.5, 2.0, 7.0, 4.2], &[2.5, 0.0, 2.1, 7.8, 3.9]).unwrap();
        for (got, want) in [
            (r.mse, 0.24799999999999994),
            (r.rmse, 0.49799598391954925),
            (r.mae, 0.44000000000000006),
            (r.r2, 0.9594665271966527),
            (r.mape, 0.2804761904761905),
        ] {
            // f32 inputs: agreement to float precision.
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    fn close6(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-6, "{a} != {b}");
    }

    /// scikit-learn 1.9.1 (`p` as `float32`, ties in the argmax go to the first class as in
    /// `numpy.argmax`):
    /// ```python
    /// y = [0,1,2,2,1,0,3,3,1,2]
    /// p = np.array([[.7,.1,.1,.1],[.2,.5,.2,.1],[.1,.2,.6,.1],[.3,.3,.3,.1],[.25,.25,.25,.25],
    ///               [.4,.4,.1,.1],[.1,.1,.1,.7],[.1,.1,.5,.3],[.6,.2,.1,.1],[.05,.05,.8,.1]], dtype=np.float32)
    /// pred = p.argmax(1)
    /// accuracy_score(y, pred), balanced_accuracy_score(y, pred), matthews_corrcoef(y, pred)
    /// roc_auc_score(y, p, multi_class="ovr", labels=[0,1,2,3]), average_precision_score(np.eye(4)[y], p)
    /// log_loss(y, p, labels=[0,1,2,3]), top_k_accuracy_score(y, p, k=2, labels=[0,1,2,3])
    /// precision_recall_fscore_support(y, pred, average="micro")
    /// ```
    #[test]
    fn probability_report_matches_scikit_learn_multiclass() {
        let y = [0, 1, 2, 2, 1, 0, 3, 3, 1, 2];
        let p: Vec<f32> = vec![
            0.7, 0.1, 0.1, 0.1, 0.2, 0.5, 0.2, 0.1, 0.1, 0.2, 0.6, 0.1, 0.3, 0.3, 0.3, 0.1, 0.25, 0.25, 0.25, 0.25,
            0.4, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.7, 0.1, 0.1, 0.5, 0.3, 0.6, 0.2, 0.1, 0.1, 0.05, 0.05, 0.8, 0.1,
        ];
        let labels: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let preds = Predictions::Classes { probs: p, classes: 4 };
        let r = ClassificationReport::from_probabilities(&y, &preds, &labels, 2).unwrap();
        close6(r.accuracy, 0.6);
        close6(r.balanced_accuracy, 0.625);
        close6(r.mcc, 0.5231143743471868);
        let micro = r.micro_avg.as_ref().unwrap();
        close6(micro.precision, 0.6);
        close6(micro.f1, 0.6);
        let s = r.probability_scores.as_ref().unwrap();
        close6(s.roc_auc.unwrap(), 0.9188988095238095);
        close6(s.average_precision.unwrap(), 0.8541666666666666);
        close6(s.log_loss, 0.8460434675216675);
        assert_eq!(s.top_k, Some(TopK { k: 2, accuracy: 0.9 }));
        assert!(s.notes.is_empty());
        // Rows: true 0 → predicted 0 twice; true 1 → 0 twice and 1 once; true 2 → 0 once, 2 twice;
        // true 3 → 2 once, 3 once.
        assert_eq!(r.confusion, vec![vec![2, 0, 0, 0], vec![2, 1, 0, 0], vec![1, 0, 2, 0], vec![0, 0, 1, 1]]);
        assert_eq!(r.most_confused[0], confusion::ConfusedPair { actual: 1, predicted: 0, count: 2 });
        close6(r.confusion_normalized[1][0], 2.0 / 3.0);
    }

    /// scikit-learn 1.9.1, binary, `P = np.stack([1 - pb, pb], 1)` in `float32`:
    /// ```python
    /// yb = [0,1,1,0,1,0,0,1]; pb = np.array([.2,.8,.4,.4,.9,.1,.6,.55], dtype=np.float32)
    /// pred = P.argmax(1)
    /// accuracy_score, balanced_accuracy_score, matthews_corrcoef on (yb, pred)
    /// roc_auc_score(yb, pb), average_precision_score(yb, pb), log_loss(yb, P)
    /// ```
    #[test]
    fn probability_report_matches_scikit_learn_binary() {
        let y = [0, 1, 1, 0, 1, 0, 0, 1];
        let pb = [0.2f32, 0.8, 0.4, 0.4, 0.9, 0.1, 0.6, 0.55];
        let probs: Vec<f32> = pb.iter().flat_map(|&p| [1.0 - p, p]).collect();
        let labels: Vec<String> = ["ham", "spam"].map(String::from).to_vec();
        let r = ClassificationReport::from_probabilities(&y, &Predictions::Classes { probs, classes: 2 }, &labels, 5)
            .unwrap();
        close6(r.accuracy, 0.75);
        close6(r.balanced_accuracy, 0.75);
        close6(r.mcc, 0.5);
        let s = r.probability_scores.as_ref().unwrap();
        close6(s.roc_auc.unwrap(), 0.84375);
        close6(s.average_precision.unwrap(), 0.8541666666666666);
        close6(s.log_loss, 0.44978153705596924);
        assert_eq!(s.top_k, None, "top-5 of two classes is not reported");
    }

    #[test]
    fn an_absent_class_leaves_roc_auc_undefined_with_a_note() {
        let preds = Predictions::Classes { probs: vec![0.8, 0.1, 0.1, 0.2, 0.7, 0.1, 0.6, 0.3, 0.1], classes: 3 };
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let r = ClassificationReport::from_probabilities(&[0, 1, 0], &preds, &labels, 5).unwrap();
        let s = r.probability_scores.unwrap();
        assert_eq!(s.roc_auc, None);
        assert_eq!(s.average_precision, None);
        assert_eq!(s.notes.len(), 2);
        assert!(s.notes[0].starts_with("ROC AUC: "), "{}", s.notes[0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let labels = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            ClassificationReport::compute(&[0], &[0, 1], &labels).unwrap_err().to_string(),
            "2 predictions for 1 targets"
        );
        assert_eq!(
            ClassificationReport::compute(&[0], &[2], &labels).unwrap_err().to_string(),
            "class id 2 is outside the 2 labels"
        );
    }

    #[test]
    fn accuracy_metric_uses_argmax() {
        let preds = Predictions::Classes { probs: vec![0.9, 0.1, 0.3, 0.7, 0.6, 0.4], classes: 2 };
        let acc = Accuracy.compute(&Targets::Classes(vec![0, 1, 1]), &preds).unwrap();
        close(acc, 2.0 / 3.0);
        assert!(Accuracy.compute(&Targets::Values(vec![1.0]), &preds).is_err());
    }
}
