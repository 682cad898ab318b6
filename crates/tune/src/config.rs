//! The `tune:` section of the pipeline YAML.
//!
//! ```yaml
//! tune:
//!   objective: {metric: val_accuracy}        # direction: maximize / minimize (defaults from the metric)
//!   budget: {trials: 40, time_s: 3600}       # stop at whichever comes first
//!   sampler: {kind: tpe, startup_trials: 10} # grid | random | tpe; seed defaults to the pipeline's
//!   pruner: {kind: median, warmup_steps: 5}  # none | median | asha
//!   parallel: {trials: 2, threads_per_trial: 1}
//!   space:
//!     train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
//!     model.hidden: {choice: [[128], [256, 128]]}
//! ```

use pipeline_core::Direction;
use pipeline_core::config::Issue;
use serde::{Deserialize, Serialize};

use crate::pruner::{AshaPruner, MedianPruner, NoPruner, Pruner};
use crate::sampler::{GridSampler, RandomSampler, Sampler, TpeSampler};
use crate::space::Space;

/// `tune:`: what a study optimises, how long, and over which space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneConfig {
    /// The metric optimised and its direction.
    pub objective: Objective,
    /// When the study stops.
    #[serde(default)]
    pub budget: Budget,
    /// How parameters are chosen.
    #[serde(default)]
    pub sampler: SamplerConfig,
    /// Whether and how trials are stopped early.
    #[serde(default)]
    pub pruner: PrunerConfig,
    /// Trials at once and threads per trial.
    #[serde(default)]
    pub parallel: Parallel,
    /// For the best config written at the end: fold the validation part into the training
    /// part (`preprocess.split.train += validation`, `validation = 0`), as scikit-learn's
    /// `GridSearchCV(refit=True)` refits on all the development data once the parameters are
    /// chosen. Off by default: the best config then trains exactly as its trial did.
    #[serde(default)]
    pub refit: bool,
    /// Config key path → distribution.
    pub space: Space,
}

/// What a study optimises: a metric reported by training after every epoch (e.g.
/// `val_accuracy`) and whether to maximise or minimise it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The metric's name in the per-epoch metrics.
    pub metric: String,
    /// Maximise or minimise; absent, the metric's own direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}

/// `tune.budget`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Trials that end (complete, pruned or failed); interrupted ones are re-run and do not
    /// count.
    #[serde(default = "default_trials")]
    pub trials: usize,
    /// No trial starts after this many seconds of this process's study (running ones finish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_s: Option<f64>,
}

fn default_trials() -> usize {
    20
}

impl Default for Budget {
    fn default() -> Self {
        Self { trials: default_trials(), time_s: None }
    }
}

/// `tune.parallel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parallel {
    /// Trials running at once, each on its own thread.
    #[serde(default = "default_one")]
    pub trials: usize,
    /// Threads of each trial's compute pool; 0 shares the machine's cores among the trials.
    #[serde(default)]
    pub threads_per_trial: usize,
}

fn default_one() -> usize {
    1
}

impl Default for Parallel {
    fn default() -> Self {
        Self { trials: 1, threads_per_trial: 0 }
    }
}

/// `tune.sampler`, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SamplerConfig {
    /// Every point of a discrete space once (`int`, `float`, `choice`, `fixed` only).
    Grid(SeedOnly),
    /// Uniform draws.
    Random(SeedOnly),
    /// The tree-structured Parzen estimator.
    Tpe(TpeConfig),
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig::Tpe(TpeConfig::default())
    }
}

pipeline_core::tagged_enum!(SamplerConfig, "kind", [
    "grid" => SamplerConfig::Grid,
    "random" => SamplerConfig::Random,
    "tpe" => SamplerConfig::Tpe,
]);

/// A sampler's seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedOnly {
    /// Seeds the draws; absent, the pipeline's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `kind: tpe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpeConfig {
    /// Seeds the draws; absent, the pipeline's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Random trials before the model is used.
    #[serde(default = "default_startup")]
    pub startup_trials: usize,
    /// Candidates drawn from `l(x)` per parameter.
    #[serde(default = "default_candidates")]
    pub candidates: usize,
}

fn default_startup() -> usize {
    10
}
fn default_candidates() -> usize {
    24
}

impl Default for TpeConfig {
    fn default() -> Self {
        Self { seed: None, startup_trials: default_startup(), candidates: default_candidates() }
    }
}

/// `tune.pruner`, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrunerConfig {
    /// Every trial runs to the end.
    None(NoOptions),
    /// Optuna's median pruner.
    Median(MedianConfig),
    /// Asynchronous successive halving.
    Asha(AshaConfig),
}

impl Default for PrunerConfig {
    fn default() -> Self {
        PrunerConfig::None(NoOptions {})
    }
}

pipeline_core::tagged_enum!(PrunerConfig, "kind", [
    "none" => PrunerConfig::None,
    "median" => PrunerConfig::Median,
    "asha" => PrunerConfig::Asha,
]);

pub use pipeline_core::config::NoOptions;

/// `kind: median`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedianConfig {
    /// Complete trials before anything is pruned.
    #[serde(default = "default_median_startup")]
    pub startup_trials: usize,
    /// Steps (epochs) before this one are never pruned.
    #[serde(default)]
    pub warmup_steps: usize,
}

fn default_median_startup() -> usize {
    5
}

/// `kind: asha`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AshaConfig {
    /// The first rung's step (epoch).
    #[serde(default = "default_one")]
    pub min_resource: usize,
    /// η: each rung keeps the top `1/η`.
    #[serde(default = "default_eta")]
    pub reduction_factor: usize,
    /// Skips the first rungs.
    #[serde(default)]
    pub min_early_stopping_rate: u32,
}

fn default_eta() -> usize {
    4
}

impl TuneConfig {
    /// Problems that need no knowledge of the pipeline (its key paths are checked by the CLI).
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.space.is_empty() {
            issues.push(Issue::new("tune.space", "the search space is empty: give at least one key path to search"));
        }
        for (key, _) in &self.space.0 {
            if key.is_empty() || key.split('.').any(str::is_empty) {
                issues.push(Issue::new(
                    format!("tune.space.{key}"),
                    "a key path is config keys joined by '.', e.g. train.optimizer.lr",
                ));
            }
        }
        if self.budget.trials == 0 {
            issues.push(Issue::new("tune.budget.trials", "must be at least 1"));
        }
        if let Some(t) = self.budget.time_s
            && !(t > 0.0 && t.is_finite())
        {
            issues.push(Issue::new("tune.budget.time_s", format!("must be a positive number of seconds, got {t}")));
        }
        if self.parallel.trials == 0 {
            issues.push(Issue::new("tune.parallel.trials", "must be at least 1"));
        }
        match &self.sampler {
            SamplerConfig::Grid(_) => {
                if let Some((key, d)) = self.space.0.iter().find(|(_, d)| d.grid_len() == 0) {
                    issues.push(Issue::new(
                        format!("tune.space.{key}"),
                        format!("the grid sampler needs discrete values: `{}` is continuous (use `float` with a `step`, `int` or `choice`)", d.kind()),
                    ));
                }
            }
            SamplerConfig::Tpe(t) if t.candidates == 0 => {
                issues.push(Issue::new("tune.sampler.candidates", "must be at least 1"));
            }
            _ => {}
        }
        if let PrunerConfig::Asha(a) = &self.pruner {
            if a.min_resource == 0 {
                issues.push(Issue::new("tune.pruner.min_resource", "must be at least 1"));
            }
            if a.reduction_factor < 2 {
                issues.push(Issue::new("tune.pruner.reduction_factor", "must be at least 2"));
            }
        }
        issues
    }

    /// The sampler, seeded by its own seed or else `default_seed`.
    pub fn build_sampler(&self, direction: Direction, default_seed: u64) -> Box<dyn Sampler> {
        match &self.sampler {
            SamplerConfig::Grid(s) => Box::new(GridSampler::new(s.seed.unwrap_or(default_seed))),
            SamplerConfig::Random(s) => Box::new(RandomSampler::new(s.seed.unwrap_or(default_seed))),
            SamplerConfig::Tpe(t) => {
                let mut s = TpeSampler::new(t.seed.unwrap_or(default_seed), direction);
                s.startup_trials = t.startup_trials;
                s.candidates = t.candidates;
                Box::new(s)
            }
        }
    }

    /// The pruner.
    pub fn build_pruner(&self) -> Box<dyn Pruner> {
        match &self.pruner {
            PrunerConfig::None(_) => Box::new(NoPruner),
            PrunerConfig::Median(m) => {
                Box::new(MedianPruner { startup_trials: m.startup_trials, warmup_steps: m.warmup_steps })
            }
            PrunerConfig::Asha(a) => Box::new(AshaPruner {
                min_resource: a.min_resource,
                reduction_factor: a.reduction_factor,
                min_early_stopping_rate: a.min_early_stopping_rate,
            }),
        }
    }
}
