//! What training measures, epoch by epoch: [`EpochMetrics`] (a line of `metrics.jsonl`, kept
//! in checkpoints) and the [`Monitor`]ed metric that early stopping, best checkpoints and
//! reduce-on-plateau watch. Below the loop, the schedules and the checkpoints, which all read it.

use std::collections::BTreeMap;

use pipeline_core::Direction;
use serde::{Deserialize, Serialize};

/// What one epoch measured. Accuracies are `None` for regression; validation figures are
/// `None` without a validation part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size, penalty excluded).
    pub train_loss: f64,
    /// Training accuracy over the epoch (as the weights were at each batch).
    pub train_accuracy: Option<f64>,
    /// Loss on the validation part after the epoch.
    pub val_loss: Option<f64>,
    /// Accuracy on the validation part after the epoch.
    pub val_accuracy: Option<f64>,
    /// Learning rate of the epoch's first step.
    pub lr: f64,
    /// Wall time of the training batches (validation excluded).
    pub train_seconds: f64,
    /// Training throughput.
    pub samples_per_sec: f64,
    /// Figures particular to a [`Step`](crate::Step), by name: a GAN's `d_loss`, `g_loss`,
    /// `d_real`, `d_fake` (means over the epoch's batches). Written beside the others in
    /// `metrics.jsonl`.
    #[serde(default, flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
}

impl EpochMetrics {
    /// The value of a monitored metric, if this epoch has it.
    pub fn get(&self, m: Monitor) -> Option<f64> {
        match m {
            Monitor::ValLoss => self.val_loss,
            Monitor::ValAccuracy => self.val_accuracy,
            Monitor::TrainLoss => Some(self.train_loss),
            Monitor::TrainAccuracy => self.train_accuracy,
        }
    }
}

/// A per-epoch metric that early stopping, best checkpoints and reduce-on-plateau can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Loss on the validation part.
    ValLoss,
    /// Accuracy on the validation part.
    ValAccuracy,
    /// Mean training loss of the epoch.
    TrainLoss,
    /// Training accuracy of the epoch.
    TrainAccuracy,
}

impl Monitor {
    /// Whether the metric improves upwards or downwards.
    pub fn direction(self) -> Direction {
        match self {
            Monitor::ValLoss | Monitor::TrainLoss => Direction::Minimize,
            Monitor::ValAccuracy | Monitor::TrainAccuracy => Direction::Maximize,
        }
    }

    /// Whether it needs a validation part.
    pub fn needs_validation(self) -> bool {
        matches!(self, Monitor::ValLoss | Monitor::ValAccuracy)
    }

    /// The metric's name in `metrics.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValLoss => "val_loss",
            Monitor::ValAccuracy => "val_accuracy",
            Monitor::TrainLoss => "train_loss",
            Monitor::TrainAccuracy => "train_accuracy",
        }
    }
}
