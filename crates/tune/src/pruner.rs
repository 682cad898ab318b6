//! Pruners: whether a running trial should stop, from its intermediate values (one per epoch)
//! and those of the other trials.
//!
//! - [`MedianPruner`], Optuna's `MedianPruner` (a 50th-percentile `PercentilePruner`): after
//!   `startup_trials` complete trials and from step `warmup_steps` on, a trial stops when its
//!   best intermediate value so far is worse than the median of the complete trials' values at
//!   the same step.
//! - [`AshaPruner`], asynchronous successive halving (Li et al., *A System for Massively
//!   Parallel Hyperparameter Tuning*, MLSys 2020) as Optuna's `SuccessiveHalvingPruner`: rungs at
//!   steps `min_resource · η^(min_early_stopping_rate + k)`; a trial reaching a rung is compared
//!   with every trial that reached it before (any state), and goes on only when it is in the top
//!   `1/η` of them (the best so far while fewer than `η` have reached it).

use pipeline_core::Direction;

use crate::storage::{TrialRecord, TrialState};

/// Decides, after each report, whether a trial stops.
pub trait Pruner: Send + Sync {
    /// Whether `trial` (whose intermediate values include the one just reported at `step`)
    /// should stop, given every trial of the study (`trial` among them, possibly stale).
    fn prune(&self, direction: Direction, trial: &TrialRecord, step: usize, trials: &[TrialRecord]) -> bool;
}

/// Never prunes.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPruner;

impl Pruner for NoPruner {
    fn prune(&self, _: Direction, _: &TrialRecord, _: usize, _: &[TrialRecord]) -> bool {
        false
    }
}

/// numpy's default (linear) percentile of `values`, `q` in `[0, 100]`.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

/// The best of a trial's intermediate values so far (NaN when it reported none or only NaN).
fn best_so_far(direction: Direction, t: &TrialRecord) -> f64 {
    t.intermediate
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| !v.is_nan())
        .fold(f64::NAN, |acc, v| if acc.is_nan() || direction.better(v, acc) { v } else { acc })
}

/// Optuna's `MedianPruner` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianPruner {
    /// Complete trials needed before anything is pruned.
    pub startup_trials: usize,
    /// Steps before this are never pruned.
    pub warmup_steps: usize,
}

impl Pruner for MedianPruner {
    fn prune(&self, direction: Direction, trial: &TrialRecord, step: usize, trials: &[TrialRecord]) -> bool {
        if step < self.warmup_steps {
            return false;
        }
        let complete: Vec<&TrialRecord> =
            trials.iter().filter(|t| t.state == TrialState::Complete && t.number != trial.number).collect();
        if complete.is_empty() || complete.len() < self.startup_trials {
            return false;
        }
        let best = best_so_far(direction, trial);
        if best.is_nan() {
            return true;
        }
        let mut at_step: Vec<f64> = complete.iter().filter_map(|t| t.at(step)).filter(|v| !v.is_nan()).collect();
        if at_step.is_empty() {
            return false;
        }
        let median = percentile(&mut at_step, 50.0);
        direction.better(median, best)
    }
}

/// Asynchronous successive halving (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AshaPruner {
    /// The first rung's step.
    pub min_resource: usize,
    /// η: each rung keeps the top `1/η`.
    pub reduction_factor: usize,
    /// Skips the first rungs: rung `k` is at `min_resource · η^(rate + k)`.
    pub min_early_stopping_rate: u32,
}

impl AshaPruner {
    /// The step of rung `k`.
    pub fn rung_step(&self, k: u32) -> usize {
        let eta = self.reduction_factor.max(2);
        self.min_resource.max(1).saturating_mul(eta.saturating_pow(self.min_early_stopping_rate + k))
    }

    /// A trial's value at rung `k`: its value at the rung's step.
    fn rung_value(&self, t: &TrialRecord, k: u32) -> Option<f64> {
        t.at(self.rung_step(k))
    }
}

impl Pruner for AshaPruner {
    fn prune(&self, direction: Direction, trial: &TrialRecord, step: usize, trials: &[TrialRecord]) -> bool {
        let eta = self.reduction_factor.max(2);
        // Only a report exactly at a rung's step is judged (the loop reports every epoch).
        let Some(k) = (0..64u32).take_while(|&k| self.rung_step(k) <= step).find(|&k| self.rung_step(k) == step) else {
            return false;
        };
        let Some(value) = trial.at(step) else { return false };
        if value.is_nan() {
            return true;
        }
        let mut competing: Vec<f64> = trials
            .iter()
            .filter(|t| t.number != trial.number && t.state != TrialState::Interrupted)
            .filter_map(|t| self.rung_value(t, k))
            .filter(|v| !v.is_nan())
            .collect();
        competing.push(value);
        competing.sort_by(f64::total_cmp);
        let idx = (competing.len() / eta).max(1) - 1;
        let promotable = match direction {
            Direction::Maximize => value >= competing[competing.len() - 1 - idx],
            Direction::Minimize => value <= competing[idx],
        };
        !promotable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Params;

    fn trial(number: usize, state: TrialState, values: &[f64]) -> TrialRecord {
        TrialRecord {
            state,
            intermediate: values.iter().enumerate().map(|(i, v)| (i + 1, *v)).collect(),
            ..TrialRecord::new(number, Params::new())
        }
    }

    #[test]
    fn percentile_as_numpy() {
        // np.percentile([3, 1, 2, 10], 50) = 2.5; np.percentile([1, 2, 3], 25) = 1.5
        assert_eq!(percentile(&mut [3.0, 1.0, 2.0, 10.0], 50.0), 2.5);
        assert_eq!(percentile(&mut [1.0, 2.0, 3.0], 25.0), 1.5);
    }

    #[test]
    fn median_pruner_as_optuna() {
        let p = MedianPruner { startup_trials: 2, warmup_steps: 2 };
        let done = vec![
            trial(0, TrialState::Complete, &[0.5, 0.6, 0.7]),
            trial(1, TrialState::Complete, &[0.3, 0.4, 0.9]),
            trial(2, TrialState::Pruned, &[0.1, 0.1]),
        ];
        let max = Direction::Maximize;
        // Median at step 2 of the complete trials: (0.6 + 0.4) / 2 = 0.5.
        let worse = trial(3, TrialState::Running, &[0.2, 0.45]);
        let better = trial(3, TrialState::Running, &[0.2, 0.55]);
        assert!(p.prune(max, &worse, 2, &done));
        assert!(!p.prune(max, &better, 2, &done));
        // Warm-up: step 1 is never pruned; too few complete trials: never pruned.
        assert!(!p.prune(max, &trial(3, TrialState::Running, &[0.0]), 1, &done));
        assert!(!p.prune(max, &worse, 2, &done[..1]));
        // The best value so far counts, not the last: 0.52 at step 1 beats the median at step 2.
        assert!(!p.prune(max, &trial(3, TrialState::Running, &[0.52, 0.1]), 2, &done));
        // Minimising flips it.
        assert!(!p.prune(Direction::Minimize, &worse, 2, &done));
    }

    #[test]
    fn asha_keeps_the_top_fraction_at_each_rung() {
        let p = AshaPruner { min_resource: 1, reduction_factor: 2, min_early_stopping_rate: 0 };
        assert_eq!([p.rung_step(0), p.rung_step(1), p.rung_step(2)], [1, 2, 4]);
        let min = Direction::Minimize;
        let others = vec![trial(0, TrialState::Complete, &[5.0, 4.0, 3.0, 2.0]), trial(1, TrialState::Pruned, &[6.0])];
        // Rung 0 (step 1) values 5, 6 and ours: with 3 values, keep the best 3 / 2 = 1.
        assert!(p.prune(min, &trial(2, TrialState::Running, &[5.5]), 1, &others));
        assert!(!p.prune(min, &trial(2, TrialState::Running, &[4.0]), 1, &others));
        // Step 3 is not a rung.
        assert!(!p.prune(min, &trial(2, TrialState::Running, &[4.0, 3.0, 9.0]), 3, &others));
        // Rung 1 (step 2): only trial 0 reached it (4.0); with 2 values keep 1.
        assert!(p.prune(min, &trial(2, TrialState::Running, &[4.0, 4.5]), 2, &others));
        // The first trial at a rung always goes on.
        assert!(!p.prune(min, &trial(0, TrialState::Running, &[9.0]), 1, &[]));
    }
}
