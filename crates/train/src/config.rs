//! The `train:` section.

use pipeline_core::config::{Issue, Tagged};
use serde::{Deserialize, Serialize};

/// `train:`: how long and how to fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training part.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Examples per optimizer step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Reshuffle the training part every epoch (seeded).
    #[serde(default = "default_true")]
    pub shuffle: bool,
    /// The optimizer and its hyperparameters.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over epochs.
    #[serde(default)]
    pub schedule: Schedule,
    /// The loss minimised; the default fits the task (cross-entropy or mean squared error).
    #[serde(default)]
    pub loss: LossConfig,
}

/// `train.loss`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Cross-entropy label smoothing in `[0, 1)`: the target puts `1 - ε` on the true class and
    /// spreads `ε` uniformly over all classes, as PyTorch's `CrossEntropyLoss(label_smoothing=ε)`.
    #[serde(default)]
    pub label_smoothing: f64,
}

/// `train.schedule`: the learning rate of each epoch, tagged by `kind`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The optimizer's learning rate throughout.
    #[default]
    Constant,
    /// Cosine annealing from the optimizer's learning rate to `min_lr` over the run, stepped
    /// once per epoch, as PyTorch's `CosineAnnealingLR(T_max=epochs, eta_min=min_lr)`.
    Cosine(CosineConfig),
}

/// `kind: cosine`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineConfig {
    /// The learning rate reached at the end.
    #[serde(default)]
    pub min_lr: f64,
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Tagged::read(d, "kind", &["constant", "cosine"])?;
        match t.variant.as_str() {
            "constant" => t.parse::<Empty, _>().map(|_| Schedule::Constant),
            "cosine" => t.parse().map(Schedule::Cosine),
            other => unreachable!("Tagged::read admits only listed variants, got {other}"),
        }
    }
}

/// A variant without options: any key besides the tag is an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl Schedule {
    /// The learning rate of 0-based `epoch` of `epochs`, from the base rate `lr`.
    pub fn lr(&self, lr: f64, epoch: usize, epochs: usize) -> f64 {
        match self {
            Schedule::Constant => lr,
            Schedule::Cosine(c) => {
                let t = epoch as f64 / epochs.max(1) as f64;
                c.min_lr + (lr - c.min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
        }
    }
}

fn default_epochs() -> usize {
    10
}
fn default_batch_size() -> usize {
    64
}
fn default_true() -> bool {
    true
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            shuffle: true,
            optimizer: Default::default(),
            schedule: Default::default(),
            loss: Default::default(),
        }
    }
}

/// `train.optimizer`, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's `torch.optim.AdamW`.
    #[serde(rename = "adamw")]
    AdamW(AdamWConfig),
}

impl<'de> Deserialize<'de> for OptimizerConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Tagged::read(d, "kind", &["adamw"])?;
        match t.variant.as_str() {
            "adamw" => t.parse().map(OptimizerConfig::AdamW),
            other => unreachable!("Tagged::read admits only listed variants, got {other}"),
        }
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::AdamW(AdamWConfig::default())
    }
}

/// `kind: adamw`. Defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// Learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Decay of the first-moment estimate.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Decay of the second-moment estimate.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Term added to the denominator for stability.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Decoupled weight decay.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
}

fn default_lr() -> f64 {
    1e-3
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_weight_decay() -> f64 {
    0.01
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: default_lr(),
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: default_weight_decay(),
        }
    }
}

impl TrainConfig {
    /// Checks the values serde cannot: at least one epoch, a positive batch, sane optimizer
    /// hyperparameters.
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.epochs == 0 {
            issues.push(Issue::new("train.epochs", "must be at least 1, got 0"));
        }
        if self.batch_size == 0 {
            issues.push(Issue::new("train.batch_size", "must be at least 1, got 0"));
        }
        if !(0.0..1.0).contains(&self.loss.label_smoothing) {
            issues.push(Issue::new(
                "train.loss.label_smoothing",
                format!("must be in [0, 1), got {}", self.loss.label_smoothing),
            ));
        }
        if let Schedule::Cosine(c) = &self.schedule
            && !(c.min_lr.is_finite() && c.min_lr >= 0.0)
        {
            issues.push(Issue::new("train.schedule.min_lr", format!("must be zero or positive, got {}", c.min_lr)));
        }
        match &self.optimizer {
            OptimizerConfig::AdamW(c) => {
                let k = "train.optimizer";
                if !(c.lr.is_finite() && c.lr > 0.0) {
                    issues.push(Issue::new(format!("{k}.lr"), format!("must be a positive number, got {}", c.lr)));
                }
                for (name, v) in [("beta1", c.beta1), ("beta2", c.beta2)] {
                    if !(0.0..1.0).contains(&v) {
                        issues.push(Issue::new(format!("{k}.{name}"), format!("must be in [0, 1), got {v}")));
                    }
                }
                if !(c.eps.is_finite() && c.eps > 0.0) {
                    issues.push(Issue::new(format!("{k}.eps"), format!("must be a positive number, got {}", c.eps)));
                }
                if !(c.weight_decay.is_finite() && c.weight_decay >= 0.0) {
                    issues.push(Issue::new(
                        format!("{k}.weight_decay"),
                        format!("must be zero or positive, got {}", c.weight_decay),
                    ));
                }
            }
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_matches_pytorch() {
        // PyTorch 2.15: opt = AdamW([p], lr=0.1); s = CosineAnnealingLR(opt, T_max=5, eta_min=0.01)
        // [opt.param_groups[0]["lr"] after 0..4 calls of s.step()]
        let want = [0.1, 0.09140576474687263, 0.06890576474687263, 0.04109423525312736, 0.018594235253127367];
        let s = Schedule::Cosine(CosineConfig { min_lr: 0.01 });
        for (e, w) in want.iter().enumerate() {
            assert!((s.lr(0.1, e, 5) - w).abs() < 1e-12, "epoch {e}: {} vs {w}", s.lr(0.1, e, 5));
        }
        assert_eq!(Schedule::Constant.lr(0.1, 3, 5), 0.1);
    }

    #[test]
    fn validate_names_keys() {
        let mut c = TrainConfig { epochs: 0, ..Default::default() };
        c.optimizer = OptimizerConfig::AdamW(AdamWConfig { lr: -1.0, beta2: 1.0, ..Default::default() });
        let got: Vec<String> = c.validate().iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                "train.epochs: must be at least 1, got 0",
                "train.optimizer.lr: must be a positive number, got -1",
                "train.optimizer.beta2: must be in [0, 1), got 1",
            ]
        );
        assert!(TrainConfig::default().validate().is_empty());
    }
}
