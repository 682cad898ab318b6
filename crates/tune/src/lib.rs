//! Hyperparameter tuning: search spaces, samplers, pruners, study storage and the study loop.
//!
//! A study varies config keys over a [`Space`](space::Space) (`train.optimizer.lr:
//! {loguniform: [1e-4, 1e-1]}`), chooses each trial's parameters with a
//! [`Sampler`](sampler::Sampler) — grid, random, or the tree-structured Parzen estimator —,
//! stops unpromising trials with a [`Pruner`](pruner::Pruner) — Optuna's median rule or
//! asynchronous successive halving — from the intermediate values the trial reports after
//! each epoch, runs several trials at once, and records everything in a
//! [`Storage`](storage::Storage) (SQLite in the study directory), so that a killed study
//! resumes where it stopped.
//!
//! - [`config`]: the `tune:` section ([`TuneConfig`]);
//! - [`space`]: distributions and the space;
//! - [`sampler`]: grid, random, TPE;
//! - [`pruner`]: median, ASHA;
//! - [`storage`]: the storage trait, SQLite and in-memory implementations;
//! - [`study`]: the study loop, parallel workers, resume;
//! - [`report`]: trials tables (Markdown, CSV), the optimization history, totals;
//! - [`bench`]: the Branin benchmark of TPE against random search.
//!
//! What it must not do: train. A trial is a closure that receives its parameters and a
//! [`Trial`](study::Trial) to report to; the CLI's closure runs the pipeline's own fit loop
//! (crate `train`) with the trial's config, so tuning never duplicates training code.

pub mod bench;
pub mod config;
pub mod pruner;
pub mod report;
pub mod sampler;
pub mod space;
pub mod storage;
pub mod study;

pub use config::{Objective, TuneConfig};
pub use pipeline_core::Direction;
pub use space::{Distribution, Params, Space, Value};
pub use storage::{MemoryStorage, Outcome, SqliteStorage, Storage, TrialRecord, TrialState};
pub use study::{Study, StudyOptions, Trial, TrialError, best};

/// What can go wrong in a study (the objective's own errors fail single trials instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The study storage failed.
    #[error("study storage: {0}")]
    Storage(String),
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;
