//! A cheap objective with a known optimum, for checking samplers: the Branin function.
//!
//! `branin(x1, x2) = (x2 − 5.1/(4π²)·x1² + 5/π·x1 − 6)² + 10·(1 − 1/(8π))·cos(x1) + 10` over
//! `x1 ∈ [−5, 10]`, `x2 ∈ [0, 15]`, whose minimum 0.397887 is reached at `(−π, 12.275)`,
//! `(π, 2.275)` and `(9.42478, 2.475)`. The study searches `x1: {uniform: [-5, 10]}` and
//! `y: {loguniform: [1, 16]}` with `x2 = y − 1`, so that one of the two parameters is
//! log-scaled. `cargo run --release -p tune --example branin` (or `cargo xtask bench tune`)
//! prints the table in `docs/tuning.md`.

use std::f64::consts::PI;

use pipeline_core::Direction;

use crate::Result;
use crate::pruner::NoPruner;
use crate::sampler::{RandomSampler, Sampler, TpeSampler};
use crate::space::{Distribution, Space};
use crate::storage::MemoryStorage;
use crate::study::{Study, StudyOptions, best};

/// The Branin function's global minimum.
pub const BRANIN_MIN: f64 = 0.397_887_357_729_738;

/// The Branin function.
pub fn branin(x1: f64, x2: f64) -> f64 {
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

/// The benchmark's search space: `x1` uniform on `[−5, 10]`, `y = x2 + 1` log-uniform on `[1, 16]`.
pub fn branin_space() -> Space {
    Space(vec![
        ("x1".into(), Distribution::Uniform { low: -5.0, high: 10.0 }),
        ("y".into(), Distribution::LogUniform { low: 1.0, high: 16.0 }),
    ])
}

/// The best Branin value that `sampler` finds in `trials` trials (one at a time).
pub fn branin_best(sampler: Box<dyn Sampler>, trials: usize) -> Result<f64> {
    let storage = MemoryStorage::new();
    let space = branin_space();
    let study = Study {
        storage: &storage,
        space: &space,
        direction: Direction::Minimize,
        sampler,
        pruner: Box::new(NoPruner),
        options: StudyOptions { trials, time: None, workers: 1, threads_per_trial: 0 },
    };
    let all = study.optimize(
        |t| {
            let x1 = t.params()["x1"].as_f64().ok_or("x1 is not a number")?;
            let y = t.params()["y"].as_f64().ok_or("y is not a number")?;
            Ok(branin(x1, y - 1.0))
        },
        &|_| {},
    )?;
    Ok(best(&all, Direction::Minimize).and_then(|t| t.value).unwrap_or(f64::NAN))
}

/// For each seed, the best value after `trials` trials of TPE (Optuna's defaults) and of
/// random search: `(seed, tpe, random)`.
pub fn branin_compare(trials: usize, seeds: std::ops::Range<u64>) -> Result<Vec<(u64, f64, f64)>> {
    seeds
        .map(|seed| {
            let tpe = branin_best(Box::new(TpeSampler::new(seed, Direction::Minimize)), trials)?;
            let random = branin_best(Box::new(RandomSampler::new(seed)), trials)?;
            Ok((seed, tpe, random))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branin_minima() {
        for (x1, x2) in [(-PI, 12.275), (PI, 2.275), (9.42478, 2.475)] {
            assert!((branin(x1, x2) - BRANIN_MIN).abs() < 1e-5, "{x1}, {x2}");
        }
        assert!((branin(0.0, 0.0) - 55.602112642270262).abs() < 1e-9);
    }
}
