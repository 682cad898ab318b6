//! Learning-rate schedules, each matching its PyTorch scheduler.

use pipeline_core::Direction;
use pipeline_core::config::{Issue, NoOptions};
use serde::{Deserialize, Serialize};

use crate::history::{EpochMetrics, Monitor};

/// `train.schedule`, tagged by `kind`. All but `one_cycle` change the rate once per epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The optimizer's learning rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_size` epochs (`StepLR`).
    Step(StepConfig),
    /// Multiply by `gamma` every epoch (`ExponentialLR`).
    Exponential(ExponentialConfig),
    /// Cosine annealing to `min_lr` over the epochs after warm-up (`CosineAnnealingLR`).
    Cosine(CosineConfig),
    /// One cycle, stepped every optimizer step (`OneCycleLR` with `cycle_momentum=False`).
    OneCycle(OneCycleConfig),
    /// Divide by `1/factor` when a metric stops improving (`ReduceLROnPlateau`).
    ReduceOnPlateau(PlateauConfig),
}

pipeline_core::tagged_enum!(Schedule, "kind", [
    "constant" => |_: NoOptions| Schedule::Constant,
    "step" => Schedule::Step,
    "exponential" => Schedule::Exponential,
    "cosine" => Schedule::Cosine,
    "one_cycle" => Schedule::OneCycle,
    "reduce_on_plateau" => Schedule::ReduceOnPlateau,
]);

/// `kind: step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Epochs between decays.
    pub step_size: usize,
    /// Decay factor.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
}

fn default_gamma() -> f64 {
    0.1
}

/// `kind: exponential`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialConfig {
    /// Decay factor per epoch.
    pub gamma: f64,
}

/// `kind: cosine`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineConfig {
    /// The rate reached at the end.
    #[serde(default)]
    pub min_lr: f64,
}

/// `kind: one_cycle`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneCycleConfig {
    /// The peak rate; absent, the optimizer's `lr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lr: Option<f64>,
    /// Fraction of the steps spent rising.
    #[serde(default = "default_pct_start")]
    pub pct_start: f64,
    /// The start rate is `max_lr / div_factor`.
    #[serde(default = "default_div_factor")]
    pub div_factor: f64,
    /// The final rate is the start rate `/ final_div_factor`.
    #[serde(default = "default_final_div_factor")]
    pub final_div_factor: f64,
}

fn default_pct_start() -> f64 {
    0.3
}
fn default_div_factor() -> f64 {
    25.0
}
fn default_final_div_factor() -> f64 {
    1e4
}

/// `kind: reduce_on_plateau`. Improvement is relative: better than `best · (1 ∓ threshold)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlateauConfig {
    /// The metric watched.
    #[serde(default = "default_plateau_monitor")]
    pub monitor: Monitor,
    /// Multiply the rate by this when the metric plateaus.
    #[serde(default = "default_gamma")]
    pub factor: f64,
    /// Epochs without improvement tolerated.
    #[serde(default = "default_patience")]
    pub patience: usize,
    /// Relative improvement that counts.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Epochs to wait after a reduction before counting again.
    #[serde(default)]
    pub cooldown: usize,
    /// The rate never goes below this.
    #[serde(default)]
    pub min_lr: f64,
}

fn default_plateau_monitor() -> Monitor {
    Monitor::ValLoss
}
fn default_patience() -> usize {
    10
}
fn default_threshold() -> f64 {
    1e-4
}

/// `train.warmup`: the rate rises linearly from `start_factor · lr` to `lr` over the first
/// `epochs` epochs, then the schedule runs over the remaining epochs (PyTorch's
/// `SequentialLR([LinearLR(start_factor, total_iters=epochs), schedule], milestones=[epochs])`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    /// Warm-up epochs.
    pub epochs: usize,
    /// The first epoch's fraction of the rate.
    #[serde(default = "default_start_factor")]
    pub start_factor: f64,
}

fn default_start_factor() -> f64 {
    1.0 / 3.0
}

impl Warmup {
    pub(crate) fn validate(&self, issues: &mut Vec<Issue>, epochs: usize) {
        if self.epochs == 0 || self.epochs >= epochs {
            issues.push(Issue::new(
                "train.warmup.epochs",
                format!("must be at least 1 and below train.epochs ({epochs}), got {}", self.epochs),
            ));
        }
        if !(self.start_factor > 0.0 && self.start_factor <= 1.0) {
            issues
                .push(Issue::new("train.warmup.start_factor", format!("must be in (0, 1], got {}", self.start_factor)));
        }
    }
}

impl Schedule {
    pub(crate) fn validate(&self, issues: &mut Vec<Issue>, has_validation: bool) {
        let k = "train.schedule";
        let mut check = |name: &str, ok: bool, what: &str, v: f64| {
            if !ok {
                issues.push(Issue::new(format!("{k}.{name}"), format!("must be {what}, got {v}")));
            }
        };
        match self {
            Schedule::Constant => {}
            Schedule::Step(c) => {
                check("step_size", c.step_size > 0, "at least 1", c.step_size as f64);
                check("gamma", c.gamma > 0.0 && c.gamma.is_finite(), "a positive number", c.gamma);
            }
            Schedule::Exponential(c) => {
                check("gamma", c.gamma > 0.0 && c.gamma.is_finite(), "a positive number", c.gamma)
            }
            Schedule::Cosine(c) => {
                check("min_lr", c.min_lr >= 0.0 && c.min_lr.is_finite(), "zero or positive", c.min_lr)
            }
            Schedule::OneCycle(c) => {
                if let Some(m) = c.max_lr {
                    check("max_lr", m > 0.0 && m.is_finite(), "a positive number", m);
                }
                check("pct_start", c.pct_start > 0.0 && c.pct_start < 1.0, "in (0, 1)", c.pct_start);
                check("div_factor", c.div_factor > 0.0, "a positive number", c.div_factor);
                check("final_div_factor", c.final_div_factor > 0.0, "a positive number", c.final_div_factor);
            }
            Schedule::ReduceOnPlateau(c) => {
                check("factor", c.factor > 0.0 && c.factor < 1.0, "in (0, 1)", c.factor);
                check("threshold", c.threshold >= 0.0, "zero or positive", c.threshold);
                check("min_lr", c.min_lr >= 0.0, "zero or positive", c.min_lr);
                if c.monitor.needs_validation() && !has_validation {
                    issues.push(Issue::new(
                        format!("{k}.monitor"),
                        format!("{} needs a validation part, but preprocess.split.validation is 0", c.monitor.name()),
                    ));
                }
            }
        }
    }
}

/// What a schedule remembers between epochs (only reduce-on-plateau remembers anything).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The current rate of reduce-on-plateau.
    pub plateau_lr: Option<f64>,
    /// Its best metric so far.
    pub best: Option<f64>,
    /// Its epochs without improvement.
    pub bad_epochs: usize,
    /// Its remaining cooldown epochs.
    pub cooldown: usize,
}

/// A schedule bound to a run: the base rate, the epochs and the optimizer steps per epoch.
#[derive(Debug, Clone)]
pub struct Scheduler {
    schedule: Schedule,
    warmup: Option<Warmup>,
    base_lr: f64,
    epochs: usize,
    steps_per_epoch: usize,
    /// The state, saved in checkpoints.
    pub state: ScheduleState,
}

impl Scheduler {
    /// Binds `schedule` (after an optional warm-up) to a run.
    pub fn new(
        schedule: Schedule,
        warmup: Option<Warmup>,
        base_lr: f64,
        epochs: usize,
        steps_per_epoch: usize,
    ) -> Self {
        Self {
            schedule,
            warmup,
            base_lr,
            epochs,
            steps_per_epoch: steps_per_epoch.max(1),
            state: ScheduleState::default(),
        }
    }

    /// The rate for 0-based `epoch` and 0-based optimizer `step` within it.
    pub fn lr(&self, epoch: usize, step: usize) -> f64 {
        let w = self.warmup.as_ref().map_or(0, |w| w.epochs);
        if let Some(warm) = &self.warmup
            && epoch < w
        {
            let f = warm.start_factor + (1.0 - warm.start_factor) * epoch as f64 / w as f64;
            return self.base_lr * f;
        }
        let e = epoch - w;
        let total = self.epochs - w;
        let base = self.base_lr;
        match &self.schedule {
            Schedule::Constant => base,
            Schedule::Step(c) => base * c.gamma.powi((e / c.step_size.max(1)) as i32),
            Schedule::Exponential(c) => base * c.gamma.powi(e as i32),
            Schedule::Cosine(c) => {
                let t = e as f64 / total.max(1) as f64;
                c.min_lr + (base - c.min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
            Schedule::OneCycle(c) => {
                let max = c.max_lr.unwrap_or(base);
                let initial = max / c.div_factor;
                let min = initial / c.final_div_factor;
                let total_steps = (total * self.steps_per_epoch) as f64;
                let s = (e * self.steps_per_epoch + step) as f64;
                let end_up = c.pct_start * total_steps - 1.0;
                let cos =
                    |from: f64, to: f64, pct: f64| to + (from - to) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0);
                if s <= end_up {
                    cos(initial, max, s / end_up)
                } else {
                    cos(max, min, (s - end_up) / (total_steps - 1.0 - end_up))
                }
            }
            Schedule::ReduceOnPlateau(_) => self.state.plateau_lr.unwrap_or(base),
        }
    }

    /// Tells the schedule an epoch's metrics (reduce-on-plateau acts on them).
    pub fn on_epoch_end(&mut self, metrics: &EpochMetrics) {
        let Schedule::ReduceOnPlateau(c) = &self.schedule else { return };
        let Some(current) = metrics.get(c.monitor) else { return };
        let st = &mut self.state;
        let better = match (st.best, c.monitor.direction()) {
            (None, _) => true,
            (Some(b), Direction::Minimize) => current < b * (1.0 - c.threshold),
            (Some(b), Direction::Maximize) => current > b * (1.0 + c.threshold),
        };
        if better {
            st.best = Some(current);
            st.bad_epochs = 0;
        } else {
            st.bad_epochs += 1;
        }
        if st.cooldown > 0 {
            st.cooldown -= 1;
            st.bad_epochs = 0;
        }
        if st.bad_epochs > c.patience {
            let old = st.plateau_lr.unwrap_or(self.base_lr);
            let new = (old * c.factor).max(c.min_lr);
            if old - new > 1e-8 {
                st.plateau_lr = Some(new);
            }
            st.cooldown = c.cooldown;
            st.bad_epochs = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(s: &Scheduler, n: usize) -> Vec<f64> {
        (0..n).map(|e| s.lr(e, 0)).collect()
    }

    fn close(got: &[f64], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{what}: {got:?} vs {want:?}");
        }
    }

    fn metrics(val_loss: f64) -> EpochMetrics {
        EpochMetrics {
            epoch: 0,
            train_loss: 0.0,
            train_accuracy: None,
            val_loss: Some(val_loss),
            val_accuracy: None,
            lr: 0.0,
            train_seconds: 0.0,
            samples_per_sec: 0.0,
            extra: Default::default(),
        }
    }

    /// PyTorch 2.15: `opt = SGD([p], lr=0.1)`, then the rate before each `scheduler.step()`:
    /// ```python
    /// StepLR(o, step_size=2, gamma=0.5)                       # 7 epochs
    /// ExponentialLR(o, gamma=0.9)                             # 5 epochs
    /// CosineAnnealingLR(o, T_max=6, eta_min=0.01)             # 6 epochs
    /// SequentialLR(o, [LinearLR(o, start_factor=0.1, total_iters=3),
    ///                  CosineAnnealingLR(o, T_max=5, eta_min=0.0)], milestones=[3])  # 8 epochs
    /// LinearLR(o, start_factor=0.25, total_iters=4)           # 6 epochs
    /// OneCycleLR(o, max_lr=0.1, total_steps=12, pct_start=0.3, cycle_momentum=False)  # 12 steps
    /// ReduceLROnPlateau(o, mode="min", factor=0.5, patience=2, threshold=1e-4, min_lr=0.02, cooldown=1)
    ///   stepped with [1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.80, 0.85, 0.86, 0.87, 0.88, 0.89]
    /// ```
    #[test]
    fn schedules_match_pytorch() {
        let s = |schedule, warmup, epochs, steps| Scheduler::new(schedule, warmup, 0.1, epochs, steps);
        close(
            &epochs(&s(Schedule::Step(StepConfig { step_size: 2, gamma: 0.5 }), None, 7, 1), 7),
            &[0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125],
            "step",
        );
        close(
            &epochs(&s(Schedule::Exponential(ExponentialConfig { gamma: 0.9 }), None, 5, 1), 5),
            &[0.1, 0.09000000000000001, 0.08100000000000002, 0.07290000000000002, 0.06561000000000002],
            "exponential",
        );
        close(
            &epochs(&s(Schedule::Cosine(CosineConfig { min_lr: 0.01 }), None, 6, 1), 6),
            &[
                0.1,
                0.09397114317029975,
                0.07750000000000001,
                0.055000000000000014,
                0.032500000000000015,
                0.01602885682970026,
            ],
            "cosine",
        );
        let warm = |epochs, start_factor| Some(Warmup { epochs, start_factor });
        close(
            &epochs(&s(Schedule::Cosine(CosineConfig { min_lr: 0.0 }), warm(3, 0.1), 8, 1), 8),
            &[
                0.010000000000000002,
                0.04,
                0.07,
                0.1,
                0.09045084971874738,
                0.06545084971874737,
                0.03454915028125263,
                0.009549150281252633,
            ],
            "warm-up then cosine",
        );
        close(
            &epochs(&s(Schedule::Constant, warm(4, 0.25), 6, 1), 6),
            &[
                0.025,
                0.043750000000000004,
                0.06250000000000001,
                0.08125000000000002,
                0.10000000000000002,
                0.10000000000000002,
            ],
            "warm-up then constant",
        );
        let one = s(
            Schedule::OneCycle(OneCycleConfig {
                max_lr: None,
                pct_start: 0.3,
                div_factor: 25.0,
                final_div_factor: 1e4,
            }),
            None,
            3,
            4,
        );
        let steps: Vec<f64> = (0..3).flat_map(|e| (0..4).map(move |k| (e, k))).map(|(e, k)| one.lr(e, k)).collect();
        close(
            &steps,
            &[
                0.0040000000000000036,
                0.0349789654219583,
                0.08792851591221287,
                0.09944154354509119,
                0.09330129698414118,
                0.0811745653949763,
                0.06473789976951033,
                0.046263710266697504,
                0.028306099820869922,
                0.01334775301888306,
                0.0034566987425395223,
                4e-07,
            ],
            "one-cycle",
        );
        let mut plateau = s(
            Schedule::ReduceOnPlateau(PlateauConfig {
                monitor: Monitor::ValLoss,
                factor: 0.5,
                patience: 2,
                threshold: 1e-4,
                cooldown: 1,
                min_lr: 0.02,
            }),
            None,
            12,
            1,
        );
        let mut got = Vec::new();
        for m in [1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.80, 0.85, 0.86, 0.87, 0.88, 0.89] {
            got.push(plateau.lr(got.len(), 0));
            plateau.on_epoch_end(&metrics(m));
        }
        close(&got, &[0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025], "plateau");
    }
}
