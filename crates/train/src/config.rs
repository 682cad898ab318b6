//! The `train:` section.

use pipeline_core::config::Issue;
pub use pipeline_core::config::NoOptions;
use pipeline_core::{Head, Task};
use serde::{Deserialize, Serialize};

pub use crate::history::Monitor;
use crate::optim::OptimizerConfig;
use crate::schedule::{Schedule, Warmup};

/// `train:`: how long and how to fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training part.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Examples per forward / backward pass.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Reshuffle the training part every epoch (seeded).
    #[serde(default = "default_true")]
    pub shuffle: bool,
    /// The optimizer and its hyperparameters.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over the run.
    #[serde(default)]
    pub schedule: Schedule,
    /// A linear warm-up before the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
    /// The loss minimised; absent, the task's usual one (cross-entropy or mean squared error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossConfig>,
    /// L1 / L2 penalties on the weights, added to the loss.
    #[serde(default)]
    pub penalty: Penalty,
    /// Rescale the gradients so that their global L2 norm is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_norm: Option<f64>,
    /// Clamp every gradient component to `[-v, v]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_value: Option<f64>,
    /// Sum the gradients of this many batches before each optimizer step (each batch's loss is
    /// divided by it, so the step sees their mean).
    #[serde(default = "default_one")]
    pub accumulate: usize,
    /// Stop when a monitored metric stops improving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStopping>,
    /// When to write checkpoints.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// Learning-rate multipliers by weight-name prefix (the longest match wins), e.g.
    /// `{"head.": 20}` to train a fresh head faster than a pre-trained encoder.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub lr_scale: std::collections::BTreeMap<String, f64>,
    /// Drop an epoch's last batch when it is shorter than `batch_size`.
    #[serde(default)]
    pub drop_last: bool,
    /// Random transforms of the training examples, applied in order, drawn anew every epoch
    /// (crate `augment`; never applied to validation, test or serving).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub augment: Vec<augment::Transform>,
    /// Augmented copies of the training recordings (audio data only), made before their features
    /// are computed: noise at an SNR, gain, shift, speed, pitch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment_audio: Option<augment::audio::WaveAugment>,
    /// How training batches are prepared: background workers and their queue.
    #[serde(default)]
    pub loader: augment::LoaderConfig,
    /// How a GAN is trained (`model: {arch: gan}` only; absent there, the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gan: Option<GanTraining>,
}

/// `train.gan`: the settings of the two-network loop of [`crate::gan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GanTraining {
    /// The discriminator's target for real examples (one-sided label smoothing; 1 is none).
    #[serde(default = "default_real_label")]
    pub real_label: f64,
    /// Decay of an exponential moving average of the generator's weights, updated after every
    /// generator step (0: none). With it, the run ends with the averaged weights, and the
    /// generator's batch-norm running statistics are then re-estimated from
    /// [`BN_RECALIBRATION_BATCHES`](crate::gan::BN_RECALIBRATION_BATCHES) batches of noise.
    #[serde(default)]
    pub ema: f64,
}

fn default_real_label() -> f64 {
    0.9
}

impl Default for GanTraining {
    fn default() -> Self {
        Self { real_label: default_real_label(), ema: 0.0 }
    }
}

impl GanTraining {
    /// Checks the values serde cannot.
    pub fn validate(&self, issues: &mut Vec<Issue>) {
        if !(self.real_label > 0.5 && self.real_label <= 1.0) {
            issues.push(Issue::new("train.gan.real_label", format!("must be in (0.5, 1], got {}", self.real_label)));
        }
        if !(0.0..1.0).contains(&self.ema) {
            issues.push(Issue::new("train.gan.ema", format!("must be in [0, 1), got {}", self.ema)));
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
fn default_one() -> usize {
    1
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            shuffle: true,
            optimizer: OptimizerConfig::default(),
            schedule: Schedule::default(),
            warmup: None,
            loss: None,
            penalty: Penalty::default(),
            clip_norm: None,
            clip_value: None,
            accumulate: 1,
            early_stopping: None,
            checkpoint: CheckpointConfig::default(),
            lr_scale: Default::default(),
            drop_last: false,
            augment: Vec::new(),
            augment_audio: None,
            loader: augment::LoaderConfig::default(),
            gan: None,
        }
    }
}

/// `train.loss`, tagged by `kind`. The reductions and formulas are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossConfig {
    /// Cross-entropy on logits (`nn.CrossEntropyLoss`), for classification.
    CrossEntropy(CrossEntropyConfig),
    /// Binary cross-entropy on one logit (`nn.BCEWithLogitsLoss`), for two-class tasks: the
    /// model gets a single output and a sigmoid head.
    BceWithLogits(BceConfig),
    /// Mean squared error, for regression.
    Mse(NoOptions),
    /// Mean absolute error (`nn.L1Loss`), for regression.
    Mae(NoOptions),
    /// Huber loss (`nn.HuberLoss`), for regression.
    Huber(HuberConfig),
}

/// `kind: cross_entropy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossEntropyConfig {
    /// In `[0, 1)`: the target puts `1 - ε` on the true class and spreads `ε` over all classes.
    #[serde(default)]
    pub label_smoothing: f64,
    /// One weight per class (rescales each class's contribution); absent, all 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<Vec<f64>>,
}

/// `kind: bce_with_logits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BceConfig {
    /// Weight of the positive (second) class's examples; absent, 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_weight: Option<f64>,
}

/// `kind: huber`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuberConfig {
    /// Where the loss turns from quadratic to linear.
    #[serde(default = "default_delta")]
    pub delta: f64,
}

fn default_delta() -> f64 {
    1.0
}

pipeline_core::tagged_enum!(LossConfig, "kind", [
    "cross_entropy" => LossConfig::CrossEntropy,
    "bce_with_logits" => LossConfig::BceWithLogits,
    "mse" => LossConfig::Mse,
    "mae" => LossConfig::Mae,
    "huber" => LossConfig::Huber,
]);

impl LossConfig {
    /// The task's usual loss: cross-entropy for classification, mean squared error otherwise.
    pub fn default_for(task: &Task) -> Self {
        match task {
            Task::Classification { .. } => LossConfig::CrossEntropy(CrossEntropyConfig::default()),
            _ => LossConfig::Mse(NoOptions {}),
        }
    }

    /// The output head this loss trains, or why it does not fit `task`.
    pub fn head(&self, task: &Task) -> Result<Head, Issue> {
        let key = "train.loss.kind";
        match (self, task) {
            (LossConfig::CrossEntropy(c), Task::Classification { labels }) => {
                if let Some(w) = &c.class_weights
                    && w.len() != labels.len()
                {
                    return Err(Issue::new(
                        "train.loss.class_weights",
                        format!("has {} weights for {} classes", w.len(), labels.len()),
                    ));
                }
                Ok(Head::Softmax)
            }
            (LossConfig::BceWithLogits(_), Task::Classification { labels }) if labels.len() == 2 => Ok(Head::Sigmoid),
            (LossConfig::BceWithLogits(_), Task::Classification { labels }) => Err(Issue::new(
                key,
                format!("bce_with_logits needs a two-class task, the data has {} classes", labels.len()),
            )),
            (
                LossConfig::Mse(_) | LossConfig::Mae(_) | LossConfig::Huber(_),
                Task::Regression | Task::Forecast { .. },
            ) => Ok(Head::Identity),
            (l, t) => Err(Issue::new(key, format!("{} does not fit a {} task", l.name(), task_name(t)))),
        }
    }

    /// The `kind` name.
    pub fn name(&self) -> &'static str {
        match self {
            LossConfig::CrossEntropy(_) => "cross_entropy",
            LossConfig::BceWithLogits(_) => "bce_with_logits",
            LossConfig::Mse(_) => "mse",
            LossConfig::Mae(_) => "mae",
            LossConfig::Huber(_) => "huber",
        }
    }
}

fn task_name(task: &Task) -> &'static str {
    match task {
        Task::Classification { .. } => "classification",
        Task::Regression => "regression",
        Task::Forecast { .. } => "forecasting",
        Task::Generation => "generation",
    }
}

/// `train.penalty`: `l1 · Σ|w| + l2 · Σw²` over the weight tensors (names ending in `weight`;
/// biases and normalisation offsets are not penalised), added to the loss.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Penalty {
    /// L1 coefficient.
    #[serde(default)]
    pub l1: f64,
    /// L2 coefficient.
    #[serde(default)]
    pub l2: f64,
}

/// `train.early_stopping`, as Keras' `EarlyStopping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// The metric watched.
    #[serde(default = "default_monitor")]
    pub monitor: Monitor,
    /// Epochs without improvement before stopping.
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// The least change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
    /// At the end, put back the weights of the best epoch.
    #[serde(default = "default_true")]
    pub restore_best: bool,
}

fn default_monitor() -> Monitor {
    Monitor::ValLoss
}
fn default_patience() -> usize {
    5
}

/// `train.checkpoint`: checkpoints go to the run directory's `checkpoints/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Write one after every this many epochs (0: only the last).
    #[serde(default = "default_one")]
    pub every_epochs: usize,
    /// Also write one every this many optimizer steps inside an epoch (0: never).
    #[serde(default)]
    pub every_steps: usize,
    /// How many periodic checkpoints to keep (the best one, `best.ckpt`, is kept besides).
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_keep() -> usize {
    2
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { every_epochs: 1, every_steps: 0, keep: default_keep() }
    }
}

fn positive(issues: &mut Vec<Issue>, key: &str, v: f64) {
    if !(v.is_finite() && v > 0.0) {
        issues.push(Issue::new(key, format!("must be a positive number, got {v}")));
    }
}

fn non_negative(issues: &mut Vec<Issue>, key: &str, v: f64) {
    if !(v.is_finite() && v >= 0.0) {
        issues.push(Issue::new(key, format!("must be zero or positive, got {v}")));
    }
}

fn fraction(issues: &mut Vec<Issue>, key: &str, v: f64) {
    if !(0.0..1.0).contains(&v) {
        issues.push(Issue::new(key, format!("must be in [0, 1), got {v}")));
    }
}

impl TrainConfig {
    /// Checks the values serde cannot. `has_validation` says whether the split leaves a
    /// validation part (metrics named `val_*` need one).
    pub fn validate(&self, has_validation: bool) -> Vec<Issue> {
        let mut issues = Vec::new();
        for (key, v) in [
            ("train.epochs", self.epochs),
            ("train.batch_size", self.batch_size),
            ("train.accumulate", self.accumulate),
        ] {
            if v == 0 {
                issues.push(Issue::new(key, "must be at least 1, got 0"));
            }
        }
        self.optimizer.validate(&mut issues);
        if let Some(g) = &self.gan {
            g.validate(&mut issues);
        }
        self.schedule.validate(&mut issues, has_validation);
        if let Some(w) = &self.warmup {
            w.validate(&mut issues, self.epochs);
        }
        match &self.loss {
            Some(LossConfig::CrossEntropy(c)) => {
                fraction(&mut issues, "train.loss.label_smoothing", c.label_smoothing);
                for (i, &w) in c.class_weights.iter().flatten().enumerate() {
                    non_negative(&mut issues, &format!("train.loss.class_weights[{i}]"), w);
                }
            }
            Some(LossConfig::BceWithLogits(BceConfig { pos_weight: Some(w) })) => {
                positive(&mut issues, "train.loss.pos_weight", *w);
            }
            Some(LossConfig::Huber(h)) => positive(&mut issues, "train.loss.delta", h.delta),
            _ => {}
        }
        for (prefix, &f) in &self.lr_scale {
            positive(&mut issues, &format!("train.lr_scale.{prefix}"), f);
        }
        issues.extend(augment::config::validate(&self.augment, "train.augment"));
        if let Some(a) = &self.augment_audio {
            issues.extend(a.validate("train.augment_audio"));
        }
        issues.extend(self.loader.validate("train.loader"));
        non_negative(&mut issues, "train.penalty.l1", self.penalty.l1);
        non_negative(&mut issues, "train.penalty.l2", self.penalty.l2);
        if let Some(v) = self.clip_norm {
            positive(&mut issues, "train.clip_norm", v);
        }
        if let Some(v) = self.clip_value {
            positive(&mut issues, "train.clip_value", v);
        }
        if let Some(es) = &self.early_stopping {
            non_negative(&mut issues, "train.early_stopping.min_delta", es.min_delta);
            if es.monitor.needs_validation() && !has_validation {
                issues.push(Issue::new(
                    "train.early_stopping.monitor",
                    format!("{} needs a validation part, but preprocess.split.validation is 0", es.monitor.name()),
                ));
            }
        }
        issues
    }

    /// Problems that show only with the data: transforms that do not fit its inputs, or
    /// `drop_last` leaving no batch.
    pub fn check_data(&self, input: &pipeline_core::InputSchema, train_examples: usize) -> Vec<Issue> {
        let mut issues = augment::config::check(&self.augment, "train.augment", input);
        if self.drop_last && train_examples < self.batch_size {
            issues.push(Issue::new(
                "train.drop_last",
                format!(
                    "leaves no batch: the training part has {train_examples} examples, fewer than batch_size ({})",
                    self.batch_size
                ),
            ));
        }
        issues
    }

    /// The loss to train with on `task`: the configured one or the task's usual one.
    pub fn loss_for(&self, task: &Task) -> LossConfig {
        self.loss.clone().unwrap_or_else(|| LossConfig::default_for(task))
    }

    /// The metric that decides the "best" epoch: early stopping's, or the validation loss when
    /// there is a validation part, else the training loss.
    pub fn best_monitor(&self, has_validation: bool) -> Monitor {
        match &self.early_stopping {
            Some(es) => es.monitor,
            None if has_validation => Monitor::ValLoss,
            None => Monitor::TrainLoss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::AdamWConfig;

    #[test]
    fn validate_names_keys() {
        let c = TrainConfig {
            epochs: 0,
            optimizer: OptimizerConfig::AdamW(AdamWConfig { lr: -1.0, beta2: 1.0, ..Default::default() }),
            early_stopping: Some(EarlyStopping {
                monitor: Monitor::ValAccuracy,
                patience: 3,
                min_delta: 0.0,
                restore_best: true,
            }),
            ..Default::default()
        };
        let got: Vec<String> = c.validate(false).iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            vec![
                "train.epochs: must be at least 1, got 0",
                "train.optimizer.lr: must be a positive number, got -1",
                "train.optimizer.beta2: must be in [0, 1), got 1",
                "train.early_stopping.monitor: val_accuracy needs a validation part, but preprocess.split.validation is 0",
            ]
        );
        assert!(TrainConfig::default().validate(true).is_empty());
    }

    #[test]
    fn losses_fit_their_tasks() {
        let two = Task::Classification { labels: vec!["no".into(), "yes".into()] };
        let three = Task::Classification { labels: vec!["a".into(), "b".into(), "c".into()] };
        assert_eq!(LossConfig::default_for(&three).head(&three), Ok(Head::Softmax));
        assert_eq!(LossConfig::BceWithLogits(BceConfig::default()).head(&two), Ok(Head::Sigmoid));
        assert_eq!(
            LossConfig::BceWithLogits(BceConfig::default()).head(&three).unwrap_err().to_string(),
            "train.loss.kind: bce_with_logits needs a two-class task, the data has 3 classes"
        );
        assert_eq!(
            LossConfig::Mse(NoOptions {}).head(&three).unwrap_err().to_string(),
            "train.loss.kind: mse does not fit a classification task"
        );
        assert_eq!(LossConfig::Huber(HuberConfig { delta: 1.0 }).head(&Task::Regression), Ok(Head::Identity));
        let weighted =
            LossConfig::CrossEntropy(CrossEntropyConfig { label_smoothing: 0.0, class_weights: Some(vec![1.0]) });
        assert_eq!(
            weighted.head(&two).unwrap_err().to_string(),
            "train.loss.class_weights: has 1 weights for 2 classes"
        );
    }
}
