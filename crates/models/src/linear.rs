//! Linear models as first-class architectures: `arch: logistic` (binary or softmax logistic
//! regression) and `arch: ridge` (least squares with an L2 penalty).
//!
//! Both are one linear layer — built as an [`Mlp`](crate::mlp::Mlp) without hidden layers, so
//! bundles, serving, ONNX export and the summary treat them like any MLP (weights
//! `layers.0.weight` / `.bias`) — but they are not trained by gradient descent: `train` solves
//! their convex objectives exactly, as scikit-learn's `LogisticRegression(solver="lbfgs")` and
//! `Ridge` define them (`train::baseline`), so the simple model is a strong one.

use pipeline_core::config::Issue;
use serde::{Deserialize, Serialize};

use crate::mlp::MlpConfig;

/// `model: {arch: logistic, c: 1.0}`: multinomial (binary for two classes) logistic regression,
/// minimising `C · Σ log-loss + ½‖W‖²` (the intercepts are not penalised), scikit-learn's
/// objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticConfig {
    /// Inverse regularisation strength (scikit-learn's `C`): larger fits the training data more
    /// closely.
    #[serde(default = "one")]
    pub c: f64,
    /// Most L-BFGS iterations.
    #[serde(default = "default_max_iter")]
    pub max_iter: usize,
    /// Stop when the largest gradient entry, per training example, falls below this.
    #[serde(default = "default_tol")]
    pub tol: f64,
}

/// `model: {arch: ridge, alpha: 1.0}`: least squares with penalty `alpha · ‖w‖²` on the weights
/// (not the intercept), solved in closed form: scikit-learn's `Ridge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RidgeConfig {
    /// Penalty strength (scikit-learn's `alpha`), on the training targets as the model sees
    /// them (standardized when `preprocess.scale_target` is on).
    #[serde(default = "one")]
    pub alpha: f64,
}

fn one() -> f64 {
    1.0
}
fn default_max_iter() -> usize {
    500
}
fn default_tol() -> f64 {
    1e-6
}

impl Default for LogisticConfig {
    fn default() -> Self {
        Self { c: one(), max_iter: default_max_iter(), tol: default_tol() }
    }
}

impl Default for RidgeConfig {
    fn default() -> Self {
        Self { alpha: one() }
    }
}

impl LogisticConfig {
    pub(crate) fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if !(self.c.is_finite() && self.c > 0.0) {
            issues.push(Issue::new(format!("{key}.c"), format!("must be a positive number, got {}", self.c)));
        }
        if self.max_iter == 0 {
            issues.push(Issue::new(format!("{key}.max_iter"), "must be at least 1, got 0"));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            issues.push(Issue::new(format!("{key}.tol"), format!("must be a positive number, got {}", self.tol)));
        }
        issues
    }
}

impl RidgeConfig {
    pub(crate) fn validate(&self, key: &str) -> Vec<Issue> {
        if self.alpha.is_finite() && self.alpha >= 0.0 {
            Vec::new()
        } else {
            vec![Issue::new(format!("{key}.alpha"), format!("must be a number >= 0, got {}", self.alpha))]
        }
    }
}

/// The network a linear model is: an MLP without hidden layers.
pub(crate) fn as_mlp() -> MlpConfig {
    MlpConfig::default()
}
