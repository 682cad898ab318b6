//! The training loop.
//!
//! [`Trainer::fit`] trains a [`Model`](pipeline_core::Model) whose weights live in
//! [`Params`](models::Params) on a training [`Dataset`](pipeline_core::Dataset), validating
//! on a validation part after every epoch, as the `train:` section ([`TrainConfig`]) says.
//! Everything that watches a run — the progress display ([`Progress`]), the JSON-lines metrics
//! log ([`MetricsLog`]), and later early stopping and the tuner's pruning — is a [`Callback`]
//! called after every batch and epoch, which may stop the run.
//!
//! Randomness (shuffling, dropout) comes from seeded streams, so the same config, data and seed
//! give the same weights.
//!
//! What it must not do: read files other than its own checkpoints (data arrives as datasets).

mod config;
mod fit;
mod log;
mod progress;

pub use config::{AdamWConfig, CosineConfig, LossConfig, OptimizerConfig, Schedule, TrainConfig};
pub use fit::loss;
pub use fit::{BatchEnd, Callback, Control, EpochMetrics, FitReport, Trainer};
pub use log::MetricsLog;
pub use progress::Progress;

/// What can stop training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Assembling a batch failed.
    #[error(transparent)]
    Data(#[from] pipeline_core::Error),
    /// Running the model failed.
    #[error(transparent)]
    Model(#[from] models::Error),
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, batch {batch}: the loss is {loss}; lower the learning rate")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The non-finite loss.
        loss: f32,
    },
    /// The training part has no examples.
    #[error("the training part is empty")]
    NoData,
    /// A callback failed (e.g. the metrics log could not be written).
    #[error("{0}")]
    Callback(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
