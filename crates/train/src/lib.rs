//! The training loop and everything it needs: optimizers, losses, schedules, clipping,
//! gradient accumulation, early stopping, checkpoints and exact resume.
//!
//! [`Trainer::fit`] trains a [`Model`](pipeline_core::Model) whose weights live in
//! [`Params`](models::Params) on a training [`Dataset`](pipeline_core::Dataset), validating on a
//! validation part after every epoch, as the `train:` section ([`TrainConfig`]) says:
//!
//! - [`optim`]: SGD, Adam, AdamW, RMSprop, Adagrad, step for step as PyTorch;
//! - [`loss`]: cross-entropy (class weights, label smoothing), binary cross-entropy on logits,
//!   MSE, MAE, Huber, and L1 / L2 penalties;
//! - [`schedule`]: step, exponential, cosine, linear warm-up, one-cycle, reduce-on-plateau;
//! - [`checkpoint`]: atomic, checksummed checkpoints holding weights, optimizer moments,
//!   schedule state, random streams and the loader position, so that [`Trainer::resume`]
//!   continues bit for bit;
//! - [`Step`]: what one batch does, driven by the one loop ([`Loop`]): [`Supervised`] for every
//!   classifier and regressor, [`gan::GanStep`] (in [`gan`]) the two-optimizer step of a
//!   generative adversarial network, which so gets checkpoints and exact resume too;
//! - [`baseline`]: the trivial and linear models every report compares against;
//! - [`linear`]: the exact solves of the linear architectures (`arch: logistic | ridge`), which
//!   [`Trainer`] runs instead of the loop.
//!
//! Training batches come from [`augment::Loader`]: the seeded per-epoch shuffle, `drop_last`,
//! the configured augmentation (`train.augment`) and background workers that prepare batches
//! ahead of the step (`train.loader`). Validation batches are read directly, never augmented.
//!
//! Observers — the progress display ([`Progress`]), the JSON-lines metrics log ([`MetricsLog`]),
//! the tuner's pruning — are [`Callback`]s called after every batch and epoch; any of them may
//! stop the run. Randomness (shuffling, dropout) comes from seeded streams, so the same config,
//! data and seed give the same weights.
//!
//! What it must not do: read files other than its own checkpoints (data arrives as datasets).

pub mod baseline;
pub mod checkpoint;
mod config;
mod fit;
pub mod gan;
mod history;
pub mod linear;
mod log;
pub mod loss;
pub mod optim;
mod progress;
pub mod schedule;
mod step;

use std::path::PathBuf;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use config::{
    BceConfig, CheckpointConfig, CrossEntropyConfig, EarlyStopping, GanTraining, HuberConfig, LossConfig, Monitor,
    NoOptions, Penalty, TrainConfig,
};
pub use fit::{BatchEnd, Callback, Control, FitReport, Loop, Trainer};
pub use history::EpochMetrics;
pub use log::MetricsLog;
pub use optim::OptimizerConfig;
pub use progress::Progress;
pub use schedule::{Schedule, Warmup};
pub use step::{BatchResult, Step, Supervised, clip};

/// What can stop training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Running the model failed.
    #[error(transparent)]
    Model(#[from] models::Error),
    /// Assembling a batch failed.
    #[error(transparent)]
    Data(#[from] pipeline_core::Error),
    /// The config does not fit the data (e.g. a regression loss for a classification task).
    #[error("{0}")]
    Config(String),
    /// Preparing a training batch failed.
    #[error(transparent)]
    Loader(#[from] augment::Error),
    /// The loss became NaN or infinite.
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: the loss is {loss}; lower the learning rate \
         (or clip the gradients); {}",
        match checkpoint {
            Some(p) => format!("the last good checkpoint is {}", p.display()),
            None => "no checkpoint was written before it".to_string(),
        }
    )]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The non-finite loss.
        loss: f32,
        /// The newest checkpoint written before it, if any.
        checkpoint: Option<PathBuf>,
    },
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A checkpoint does not fit the run being resumed.
    #[error("cannot resume from {}: {reason}", path.display())]
    Resume {
        /// The checkpoint.
        path: PathBuf,
        /// Why not.
        reason: String,
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
