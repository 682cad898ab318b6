//! `dlp tune <config.yaml>`: a hyperparameter study of a pipeline (crate `tune`).
//!
//! The config's `tune:` section names the objective (a validation metric the fit loop reports
//! after every epoch), the budget, the sampler, the pruner, the parallelism and the search
//! space over config key paths. Each trial sets its parameters in the config (as a YAML value:
//! `train.optimizer.lr` → `train: {optimizer: {lr: …}}`), parses and validates the whole
//! config again, and runs the same code as `dlp run` up to the end of training:
//! [`pipeline::prepare`](crate::pipeline::prepare), [`Experiment::build`](crate::experiment::Experiment::build), the model built
//! from the config's seed, and [`train::Trainer::fit`] with a callback that reports the
//! objective after each epoch and stops the trial when the pruner says so. The data are read,
//! split and preprocessed once when the space touches no `data`, `preprocess` or `seed` key.
//! The trial's objective value is the metric of the model as training left it: the best
//! epoch's when early stopping restored the best weights, the last epoch's otherwise. The test
//! part is never used.
//!
//! The study directory `<runs-dir>/<name>-tune-<timestamp>/` holds `config.yaml` (the resolved
//! config, `tune:` included), `study.db` (SQLite: every trial, its parameters and per-epoch
//! values), and at the end `best.yaml` (the best trial's full config, which `dlp run`
//! accepts), `best.json`, `trials.md`, `trials.csv` and `history.png`. `dlp tune --resume
//! <dir>` continues a killed study: finished trials are kept, interrupted ones are re-run with
//! the same parameters under new numbers. `dlp tune status <dir>` prints the trials table.
//!
//! Before any trial, every key path is tried against the config with the extreme values of its
//! distribution (both bounds, every choice): an unknown key path, a value of the wrong type or
//! one the config rejects is a config error naming `tune.space.<key path>`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use eval::plot::{Chart, Series};
use pipeline_core::run::{write_atomic, write_json};
use pipeline_core::{Direction, RunDir};
use serde_yaml::Value as Yaml;
use train::Monitor;
use train::{Callback, Control, EpochMetrics};
use tune::storage::{SqliteStorage, Storage, TrialRecord, TrialState};
use tune::{Params, Study, StudyOptions, Trial, TuneConfig};

use crate::config::{PipelineConfig, base_value, monitor, trial_config, word};
use crate::device;
use crate::experiment::Experiment;
use crate::pipeline::{Clock, Prepared, prepare};

/// The study database's file name in the study directory.
pub const STUDY_DB: &str = "study.db";

/// What a finished (or stopped) study reports.
#[derive(Debug, Clone)]
pub struct TuneSummary {
    /// The study directory.
    pub dir: PathBuf,
    /// The objective's metric.
    pub metric: String,
    /// Its direction.
    pub direction: Direction,
    /// Every trial, by number.
    pub trials: Vec<TrialRecord>,
    /// The best complete trial.
    pub best: Option<TrialRecord>,
    /// Trials by state, epochs trained.
    pub totals: tune::report::Totals,
}

impl TuneSummary {
    /// The lines `dlp tune` prints at the end.
    pub fn lines(&self) -> Vec<String> {
        let t = &self.totals;
        let mut lines = vec![format!(
            "{} trials: {} complete, {} pruned, {} failed, {} interrupted (re-run); {} epochs trained",
            self.trials.len(),
            t.complete,
            t.pruned,
            t.failed,
            t.interrupted,
            t.epochs
        )];
        match &self.best {
            Some(b) => {
                lines.push(format!(
                    "best: trial {} with {} {:.4} ({})",
                    b.number,
                    self.metric,
                    b.value.unwrap_or(f64::NAN),
                    describe(&b.params)
                ));
                lines.push(format!("best config: {}", self.dir.join("best.yaml").display()));
            }
            None => lines.push("no trial completed".into()),
        }
        lines.push(format!("trials: {}", self.dir.join("trials.md").display()));
        lines
    }
}

/// `key=value, …`.
fn describe(p: &Params) -> String {
    p.iter().map(|(k, v)| format!("{k}={}", tune::report::cell(Some(v)))).collect::<Vec<_>>().join(", ")
}

/// The objective's metric and direction (the config has been validated).
fn objective(t: &TuneConfig) -> Result<(Monitor, Direction)> {
    let m = monitor(&t.objective.metric).with_context(|| format!("unknown objective {:?}", t.objective.metric))?;
    Ok((m, t.objective.direction.unwrap_or(m.direction())))
}

/// Runs the study of `config` (read from `config_path`) in a new study directory.
pub fn tune(config_path: &Path, config: &PipelineConfig, runs_dir: &Path) -> Result<TuneSummary> {
    if config.tune.is_none() {
        bail!("{}: has no `tune:` section (see docs/tuning.md)", config_path.display());
    }
    let stem = format!("{}-tune-{}", config.name, chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    let dir = RunDir::create(runs_dir, &stem).context("creating the study directory")?;
    let dir = dir.root().to_path_buf();
    write_atomic(&dir.join("config.yaml"), config.to_yaml().as_bytes())?;
    let storage = SqliteStorage::open_exclusive(&dir.join(STUDY_DB), true)?;
    storage.set_attr("config_file", &config_path.display().to_string())?;
    storage.set_attr("created_at", &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))?;
    run_study(&dir, config, &storage)
}

/// Continues the study in `dir` (killed or stopped by its time budget).
pub fn resume(dir: &Path) -> Result<TuneSummary> {
    let config = crate::config::load(&dir.join("config.yaml"))?;
    if config.tune.is_none() {
        bail!("{}: not a study directory (its config.yaml has no `tune:` section)", dir.display());
    }
    device::set_threads(config.threads);
    let storage = SqliteStorage::open_exclusive(&dir.join(STUDY_DB), false)?;
    run_study(dir, &config, &storage)
}

/// `dlp tune status <dir>`: the trials table and the totals, from the study database (also
/// while the study runs).
pub fn status(dir: &Path) -> Result<String> {
    let storage = SqliteStorage::open_existing(&dir.join(STUDY_DB))?;
    let trials = storage.trials()?;
    let config = crate::config::load(&dir.join("config.yaml"))?;
    let t = config.tune.as_ref().context("the study's config.yaml has no `tune:` section")?;
    let (m, direction) = objective(t)?;
    let keys: Vec<&str> = t.space.keys().collect();
    let totals = tune::report::totals(&trials);
    let mut s = tune::report::markdown(&trials, &keys, m.name(), direction);
    s.push_str(&format!(
        "\n{} of {} trials ended: {} complete, {} pruned, {} failed; {} running, {} interrupted; {} epochs trained\n",
        totals.complete + totals.pruned + totals.failed,
        t.budget.trials,
        totals.complete,
        totals.pruned,
        totals.failed,
        totals.running,
        totals.interrupted,
        totals.epochs
    ));
    Ok(s)
}

/// Reports the objective after each epoch; stops the trial when the pruner says so.
struct Reporter<'t, 'a> {
    trial: &'t Trial<'a>,
    monitor: Monitor,
    error: Option<tune::Error>,
}

impl Callback for Reporter<'_, '_> {
    fn on_epoch_end(&mut self, m: &EpochMetrics) -> train::Result<Control> {
        let Some(v) = m.get(self.monitor) else { return Ok(Control::Continue) };
        match self.trial.report(m.epoch, v) {
            Ok(true) => Ok(Control::Stop),
            Ok(false) => Ok(Control::Continue),
            Err(e) => {
                self.error = Some(e);
                Ok(Control::Stop)
            }
        }
    }
}

/// Whether trials may share one preparation of the data.
fn shares_data(t: &TuneConfig) -> bool {
    !t.space.keys().any(|k| k == "seed" || k.starts_with("data.") || k.starts_with("preprocess."))
}

fn run_study(dir: &Path, config: &PipelineConfig, storage: &SqliteStorage) -> Result<TuneSummary> {
    let t = config.tune.as_ref().context("no `tune:` section")?;
    let (monitor, direction) = objective(t)?;
    storage.set_attr("metric", monitor.name())?;
    storage.set_attr("direction", word(direction))?;
    let device = config.device.open()?;
    let base = base_value(config);
    let shared: Option<Prepared> = match shares_data(t) {
        true => Some(prepare(config, None, &mut Clock::start()).context("preparing the data")?),
        false => None,
    };
    let config_path = dir.join("config.yaml");
    let run_trial = |trial: &Trial<'_>| -> Result<f64> {
        let cfg = trial_config(&base, trial.params()).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let own;
        let p = match &shared {
            Some(p) => p,
            None => {
                own = prepare(&cfg, None, &mut Clock::start())?;
                &own
            }
        };
        let schema = p.train.schema().clone();
        let exp = Experiment::build(&cfg, &schema, &device, &config_path)?;
        let trainer = exp.trainer(None);
        let mut reporter = Reporter { trial, monitor, error: None };
        let validation = (!p.validation.is_empty()).then_some(&p.validation);
        let fit = trainer.fit(&p.train, validation, &mut [&mut reporter])?;
        if let Some(e) = reporter.error {
            return Err(e.into());
        }
        let at = match fit.restored_best {
            true => fit.history.get(fit.best_epoch.saturating_sub(1)),
            false => fit.history.last(),
        };
        at.and_then(|m| m.get(monitor)).with_context(|| format!("training reported no {}", monitor.name()))
    };
    let log = Mutex::new(());
    let on_trial = |r: &TrialRecord| {
        let _guard = log.lock();
        let what = match (r.state, r.value) {
            (TrialState::Complete, Some(v)) => format!("{} {v:.4}", monitor.name()),
            (TrialState::Pruned, _) => format!("pruned at epoch {}", r.last_step().unwrap_or(0)),
            _ => format!("failed: {}", r.error.as_deref().unwrap_or("")),
        };
        let retry = r.retry_of.map(|n| format!(", re-runs interrupted trial {n}")).unwrap_or_default();
        eprintln!("trial {}: {what} ({} epochs{retry}; {})", r.number, r.intermediate.len(), describe(&r.params));
    };
    let study = Study {
        storage,
        space: &t.space,
        direction,
        sampler: t.build_sampler(direction, config.seed),
        pruner: t.build_pruner(),
        options: StudyOptions {
            trials: t.budget.trials,
            time: t.budget.time_s.map(std::time::Duration::from_secs_f64),
            workers: t.parallel.trials,
            threads_per_trial: t.parallel.threads_per_trial,
        },
    };
    let trials = study.optimize(|trial| run_trial(trial).map_err(Into::into), &on_trial)?;
    write_outputs(dir, config, t, monitor, direction, &base, &trials)?;
    let best = tune::best(&trials, direction).cloned();
    Ok(TuneSummary {
        dir: dir.to_path_buf(),
        metric: monitor.name().into(),
        direction,
        totals: tune::report::totals(&trials),
        trials,
        best,
    })
}

/// `best.yaml`, `best.json`, `trials.md`, `trials.csv`, `history.png`.
fn write_outputs(
    dir: &Path,
    config: &PipelineConfig,
    t: &TuneConfig,
    monitor: Monitor,
    direction: Direction,
    base: &Yaml,
    trials: &[TrialRecord],
) -> Result<()> {
    let keys: Vec<&str> = t.space.keys().collect();
    let totals = tune::report::totals(trials);
    let best = tune::best(trials, direction);
    let mut md = format!(
        "# {}: tuning study\n\nObjective: {} {} on the validation part. {} trials: {} complete, {} pruned, {} failed, \
         {} interrupted (re-run); {} epochs trained.\n\n",
        config.name,
        word(direction),
        monitor.name(),
        trials.len(),
        totals.complete,
        totals.pruned,
        totals.failed,
        totals.interrupted,
        totals.epochs
    );
    md.push_str(&tune::report::markdown(trials, &keys, monitor.name(), direction));
    write_atomic(&dir.join("trials.md"), md.as_bytes())?;
    write_atomic(&dir.join("trials.csv"), &tune::report::csv(trials, &keys)?)?;
    let h = tune::report::history(trials, direction);
    let chart = Chart {
        title: format!("{}: optimization history", config.name),
        x_label: "trial".into(),
        y_label: monitor.name().into(),
        series: [("objective", h.values), ("best so far", h.best)]
            .into_iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(name, points)| Series { name: name.into(), points })
            .collect(),
    };
    if !chart.series.is_empty() {
        eval::plot::charts_png(&[chart], (640, 420), &dir.join("history.png"))?;
    }
    if let Some(b) = best {
        let mut cfg =
            trial_config(base, &b.params).map_err(|e| anyhow::anyhow!("the best trial's config: {}", e.message()))?;
        if t.refit {
            let s = &mut cfg.preprocess.split;
            s.train += s.validation;
            s.validation = 0.0;
            if !cfg.validate().is_empty() {
                bail!(
                    "tune.refit: the best config needs its validation part (e.g. for early stopping); turn refit off"
                );
            }
        }
        let header = format!(
            "# The best trial ({}) of the tuning study in {}: {} {:.4}.\n# Parameters: {}{}\n",
            b.number,
            dir.display(),
            monitor.name(),
            b.value.unwrap_or(f64::NAN),
            describe(&b.params),
            if t.refit { "\n# refit: the validation part is folded into the training part." } else { "" }
        );
        write_atomic(&dir.join("best.yaml"), format!("{header}{}", cfg.to_yaml()).as_bytes())?;
        write_json(
            &dir.join("best.json"),
            &serde_json::json!({
                "trial": b.number,
                "metric": monitor.name(),
                "direction": word(direction),
                "value": b.value,
                "params": b.params,
                "epochs": b.intermediate.len(),
            }),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::set_path;

    #[test]
    fn sets_key_paths_creating_sections() {
        let mut v: Yaml = serde_yaml::from_str("train: {optimizer: {kind: adamw, lr: 0.1}}\nname: x\n").unwrap();
        set_path(&mut v, "train.optimizer.lr", Yaml::from(0.5)).unwrap();
        set_path(&mut v, "train.early_stopping.patience", Yaml::from(3)).unwrap();
        assert_eq!(
            serde_yaml::to_string(&v).unwrap(),
            "train:\n  optimizer:\n    kind: adamw\n    lr: 0.5\n  early_stopping:\n    patience: 3\nname: x\n"
        );
        assert_eq!(
            set_path(&mut v, "name.first", Yaml::from(1)).unwrap_err(),
            "unknown key path: name is a value, not a section"
        );
    }
}
