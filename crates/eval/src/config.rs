//! The `eval:` section of a pipeline config: what the test report computes, and the deployment
//! gate, whose metric is a [`MetricName`] — the one list of the metrics a gate, a comparison or
//! a cross-validation table can name, with their direction.

use pipeline_core::Direction;
use pipeline_core::config::Issue;
use serde::{Deserialize, Serialize};

/// A headline metric of a test report, as configs and reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Fraction of correct predictions.
    Accuracy,
    /// Mean per-class recall.
    BalancedAccuracy,
    /// Unweighted mean of the per-class F1 scores.
    MacroF1,
    /// Support-weighted mean of the per-class F1 scores.
    WeightedF1,
    /// Matthews correlation coefficient.
    Mcc,
    /// Area under the ROC curve (one-vs-rest, macro, for several classes).
    RocAuc,
    /// Average precision (area under the precision-recall curve).
    AveragePrecision,
    /// Cross-entropy of the predicted probabilities.
    LogLoss,
    /// Fraction of examples whose class is among the `eval.top_k` most probable.
    TopKAccuracy,
    /// Root mean squared error.
    Rmse,
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    Mae,
    /// Coefficient of determination.
    R2,
    /// Mean absolute percentage error.
    Mape,
    /// Symmetric mean absolute percentage error (forecasts).
    Smape,
    /// Mean absolute scaled error (forecasts).
    Mase,
}

impl MetricName {
    /// Classification metrics, in the order reports show them.
    pub const CLASSIFICATION: [MetricName; 9] = [
        MetricName::Accuracy,
        MetricName::BalancedAccuracy,
        MetricName::MacroF1,
        MetricName::WeightedF1,
        MetricName::Mcc,
        MetricName::RocAuc,
        MetricName::AveragePrecision,
        MetricName::LogLoss,
        MetricName::TopKAccuracy,
    ];
    /// Regression metrics, in the order reports show them.
    pub const REGRESSION: [MetricName; 5] =
        [MetricName::Rmse, MetricName::Mse, MetricName::Mae, MetricName::R2, MetricName::Mape];
    /// Forecast metrics, in the order reports show them.
    pub const FORECAST: [MetricName; 5] =
        [MetricName::Mase, MetricName::Mae, MetricName::Rmse, MetricName::Mape, MetricName::Smape];

    /// Every metric, each once.
    pub fn all() -> impl Iterator<Item = MetricName> {
        MetricName::CLASSIFICATION
            .into_iter()
            .chain(MetricName::REGRESSION)
            .chain([MetricName::Smape, MetricName::Mase])
    }

    /// The name configs and reports use.
    pub fn name(self) -> &'static str {
        match self {
            MetricName::Accuracy => "accuracy",
            MetricName::BalancedAccuracy => "balanced_accuracy",
            MetricName::MacroF1 => "macro_f1",
            MetricName::WeightedF1 => "weighted_f1",
            MetricName::Mcc => "mcc",
            MetricName::RocAuc => "roc_auc",
            MetricName::AveragePrecision => "average_precision",
            MetricName::LogLoss => "log_loss",
            MetricName::TopKAccuracy => "top_k_accuracy",
            MetricName::Rmse => "rmse",
            MetricName::Mse => "mse",
            MetricName::Mae => "mae",
            MetricName::R2 => "r2",
            MetricName::Mape => "mape",
            MetricName::Smape => "smape",
            MetricName::Mase => "mase",
        }
    }

    /// Which way it improves.
    pub fn direction(self) -> Direction {
        match self.lower_is_better() {
            true => Direction::Minimize,
            false => Direction::Maximize,
        }
    }

    /// Whether a smaller value is better (losses and errors).
    pub fn lower_is_better(self) -> bool {
        matches!(
            self,
            MetricName::LogLoss
                | MetricName::Rmse
                | MetricName::Mse
                | MetricName::Mae
                | MetricName::Mape
                | MetricName::Smape
                | MetricName::Mase
        )
    }

    /// Whether computing it needs the predicted probabilities, not only the labels.
    pub fn needs_probabilities(self) -> bool {
        matches!(
            self,
            MetricName::RocAuc | MetricName::AveragePrecision | MetricName::LogLoss | MetricName::TopKAccuracy
        )
    }
}

impl std::fmt::Display for MetricName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MetricName {
    type Err = String;
    /// Parses a metric's name; the error lists the names.
    fn from_str(s: &str) -> Result<Self, String> {
        MetricName::all().find(|m| m.name() == s).ok_or_else(|| {
            let all: Vec<String> = MetricName::all().map(|m| format!("`{m}`")).collect();
            format!("unknown metric `{s}`, expected one of {}", all.join(", "))
        })
    }
}

/// The `eval:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// The `k` of top-k accuracy, reported when there are more than `k` classes.
    pub top_k: usize,
    /// Train and score the baselines (class prior or mean, logistic or ridge regression).
    pub baselines: bool,
    /// Resamples of the paired bootstrap that compares two models.
    pub bootstrap_resamples: usize,
    /// How many of the most confidently wrong test examples the report shows.
    pub error_examples: usize,
    /// The deployment gate; absent, nothing is gated.
    pub gate: Option<Gate>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self { top_k: 5, baselines: true, bootstrap_resamples: 1000, error_examples: 24, gate: None }
    }
}

/// `eval.gate`: when the model is not good enough to deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// The metric gated on; `accuracy` or `rmse` when absent.
    #[serde(default)]
    pub metric: Option<MetricName>,
    /// The metric must reach this: at least this value, or at most for error metrics.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The model may trail the best baseline by at most this much.
    #[serde(default)]
    pub vs_baseline: Option<f64>,
    /// The model may trail the previous model (`--compare`) by at most this much.
    #[serde(default)]
    pub vs_previous: Option<f64>,
}

impl EvalConfig {
    /// Problems with the section, keyed under `eval`.
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.top_k == 0 {
            issues.push(Issue::new("eval.top_k", "must be at least 1"));
        }
        if self.bootstrap_resamples == 0 {
            issues.push(Issue::new("eval.bootstrap_resamples", "must be at least 1"));
        }
        if let Some(g) = &self.gate {
            for (key, v) in [("threshold", g.threshold), ("vs_baseline", g.vs_baseline), ("vs_previous", g.vs_previous)]
            {
                if v.is_some_and(|v| !v.is_finite()) {
                    issues.push(Issue::new(format!("eval.gate.{key}"), "must be a finite number"));
                }
            }
            for (key, v) in [("vs_baseline", g.vs_baseline), ("vs_previous", g.vs_previous)] {
                if v.is_some_and(|v| v < 0.0) {
                    issues.push(Issue::new(format!("eval.gate.{key}"), "a margin must be 0 or more"));
                }
            }
            if g.threshold.is_none() && g.vs_baseline.is_none() && g.vs_previous.is_none() {
                issues
                    .push(Issue::new("eval.gate", "a gate needs at least one of threshold, vs_baseline, vs_previous"));
            }
        }
        issues
    }
}
