//! Hyperparameter tuning. **Not built yet.**
//!
//! This crate will own studies: a `tune:` section with an objective (a validation metric and its
//! [`Direction`]), a trial budget and a search space over config key paths; grid, random and
//! Bayesian samplers; pruning from the per-epoch metrics that the training loop's callbacks
//! report; parallel trials; and a resumable study stored in SQLite. Each trial runs the `train`
//! crate's fit loop, which it calls rather than duplicates.
//!
//! Until then the pipeline has no `tune:` section (using one is a config error), and this crate
//! holds only the objective type studies will optimise.

pub use pipeline_core::Direction;
use serde::{Deserialize, Serialize};

/// What a study optimises: a metric reported by training (e.g. `val_accuracy`) and whether to
/// maximise or minimise it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The metric's name in the per-epoch metrics.
    pub metric: String,
    /// Maximise or minimise.
    pub direction: Direction,
}
