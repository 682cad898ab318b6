//! Running a study: worker threads draw parameters, run trials, record outcomes.
//!
//! A trial is whatever the caller's objective does with the parameters: the objective is a
//! closure that receives a [`Trial`] (its number and parameters) and returns the objective
//! value; during training it calls [`Trial::report`] after each epoch, which records the
//! intermediate value and asks the pruner whether to stop. This crate never trains anything
//! itself — the CLI's objective runs the pipeline's own fit loop.
//!
//! With `workers > 1`, that many trials run at once, each on its own thread; with
//! `threads_per_trial > 0` (or several workers), each worker runs its trials inside its own
//! rayon pool of that many threads, so compute kernels that split work over rayon's current
//! pool stay within the trial's share of the cores.
//!
//! Resuming: [`Study::optimize`] first marks trials left `running` by a dead process as
//! `interrupted`, then re-runs each of them — once — as a new trial with the same parameters
//! (`retry_of` names the interrupted one), before sampling new ones. The budget counts trials
//! that ended or are running, not interrupted ones, so a resumed study ends with exactly
//! `trials` ended trials.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pipeline_core::Direction;

use crate::pruner::Pruner;
use crate::sampler::Sampler;
use crate::space::{Params, Space};
use crate::storage::{Outcome, Storage, TrialRecord, TrialState};
use crate::{Error, Result};

/// An objective's error (any error type converts into it, `anyhow::Error` included).
pub type TrialError = Box<dyn std::error::Error + Send + Sync>;

/// When and how a study runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyOptions {
    /// Trials that end (complete, pruned, failed) before the study stops.
    pub trials: usize,
    /// No trial starts after this long.
    pub time: Option<Duration>,
    /// Trials at once.
    pub workers: usize,
    /// Threads of each worker's rayon pool; 0: the global pool for one worker, the cores
    /// shared out for several.
    pub threads_per_trial: usize,
}

/// A study: a space, a direction, a sampler and a pruner over a storage.
pub struct Study<'s> {
    /// Where trials are recorded.
    pub storage: &'s dyn Storage,
    /// What is searched.
    pub space: &'s Space,
    /// Whether the objective is maximised or minimised.
    pub direction: Direction,
    /// How parameters are chosen.
    pub sampler: Box<dyn Sampler>,
    /// Whether trials stop early.
    pub pruner: Box<dyn Pruner>,
    /// Budget and parallelism.
    pub options: StudyOptions,
}

/// The running trial, as the objective sees it.
pub struct Trial<'a> {
    number: usize,
    params: Params,
    retry_of: Option<usize>,
    storage: &'a dyn Storage,
    pruner: &'a dyn Pruner,
    direction: Direction,
    intermediate: Mutex<Vec<(usize, f64)>>,
    pruned: AtomicBool,
}

impl Trial<'_> {
    /// The trial's number in the study.
    pub fn number(&self) -> usize {
        self.number
    }

    /// Its parameters, by key path.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The interrupted trial this one re-runs.
    pub fn retry_of(&self) -> Option<usize> {
        self.retry_of
    }

    /// Records the intermediate objective value at `step` (an epoch) and asks the pruner;
    /// returns `true` when the trial should stop (it is then recorded as pruned, whatever the
    /// objective returns).
    pub fn report(&self, step: usize, value: f64) -> Result<bool> {
        self.storage.report(self.number, step, value)?;
        let mut mine = self.intermediate.lock().unwrap_or_else(PoisonError::into_inner);
        mine.retain(|(s, _)| *s != step);
        mine.push((step, value));
        let record = TrialRecord { intermediate: mine.clone(), ..TrialRecord::new(self.number, self.params.clone()) };
        drop(mine);
        let trials = self.storage.trials()?;
        let prune = self.pruner.prune(self.direction, &record, step, &trials);
        if prune {
            self.pruned.store(true, Ordering::SeqCst);
        }
        Ok(prune)
    }

    /// Whether the pruner stopped this trial.
    pub fn is_pruned(&self) -> bool {
        self.pruned.load(Ordering::SeqCst)
    }
}

/// The best complete trial of `trials`.
pub fn best(trials: &[TrialRecord], direction: Direction) -> Option<&TrialRecord> {
    trials.iter().filter(|t| t.state == TrialState::Complete && t.value.is_some_and(|v| !v.is_nan())).fold(
        None,
        |acc: Option<&TrialRecord>, t| match acc {
            Some(b) if !direction.better(t.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN)) => Some(b),
            _ => Some(t),
        },
    )
}

/// What a worker does next.
enum Next {
    Run { number: usize, params: Params, retry_of: Option<usize> },
    Done,
}

struct Shared {
    sampler: Box<dyn Sampler>,
    retries: Vec<(usize, Params)>,
}

impl Study<'_> {
    /// Runs trials until the budget is spent (or a grid is exhausted), calling `objective`
    /// for each and `on_trial` after each ends; returns every trial of the study. An error
    /// of the objective fails that trial only; a storage error stops the study.
    pub fn optimize<F>(self, objective: F, on_trial: &(dyn Fn(&TrialRecord) + Sync)) -> Result<Vec<TrialRecord>>
    where
        F: Fn(&Trial<'_>) -> std::result::Result<f64, TrialError> + Sync,
    {
        let start = Instant::now();
        self.storage.mark_interrupted()?;
        let trials = self.storage.trials()?;
        let retried: Vec<usize> = trials.iter().filter_map(|t| t.retry_of).collect();
        let retries = trials
            .iter()
            .filter(|t| t.state == TrialState::Interrupted && !retried.contains(&t.number))
            .map(|t| (t.number, t.params.clone()))
            .rev()
            .collect();
        let Study { storage, space, direction, sampler, pruner, options } = self;
        let pruner = pruner.as_ref();
        let shared = Mutex::new(Shared { sampler, retries });
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        let workers = options.workers.max(1);
        let threads = match (options.threads_per_trial, workers) {
            (0, 1) => 0,
            (0, w) => (std::thread::available_parallelism().map_or(1, usize::from) / w).max(1),
            (t, _) => t,
        };
        let next = || -> Result<Next> {
            let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
            if stop.load(Ordering::SeqCst) || options.time.is_some_and(|t| start.elapsed() >= t) {
                return Ok(Next::Done);
            }
            let trials = storage.trials()?;
            let counted = trials.iter().filter(|t| t.state != TrialState::Interrupted).count();
            if counted >= options.trials {
                return Ok(Next::Done);
            }
            let (params, retry_of) = match s.retries.pop() {
                Some((n, p)) => (p, Some(n)),
                None => match s.sampler.sample(space, &trials, trials.len()) {
                    Some(p) => (p, None),
                    None => return Ok(Next::Done),
                },
            };
            let number = storage.create_trial(&params, retry_of)?;
            Ok(Next::Run { number, params, retry_of })
        };
        let work = || -> Result<()> {
            loop {
                let Next::Run { number, params, retry_of } = next()? else { return Ok(()) };
                let trial = Trial {
                    number,
                    params,
                    retry_of,
                    storage,
                    pruner,
                    direction,
                    intermediate: Mutex::new(Vec::new()),
                    pruned: AtomicBool::new(false),
                };
                let result = objective(&trial);
                let outcome = match result {
                    _ if trial.is_pruned() => Outcome::Pruned,
                    Ok(v) => Outcome::Complete(v),
                    Err(e) => Outcome::Failed(error_line(e.as_ref())),
                };
                storage.finish(number, &outcome)?;
                if let Some(t) = storage.trials()?.into_iter().find(|t| t.number == number) {
                    on_trial(&t);
                }
            }
        };
        let worker = || {
            let result = match threads {
                0 => work(),
                t => match rayon::ThreadPoolBuilder::new().num_threads(t).build() {
                    Ok(pool) => pool.install(work),
                    Err(e) => Err(Error::Storage(format!("cannot start a trial thread pool: {e}"))),
                },
            };
            if let Err(e) = result {
                stop.store(true, Ordering::SeqCst);
                failed.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e);
            }
        };
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(worker);
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Err(e);
        }
        storage.trials()
    }
}

/// An error and its causes on one line, joined by `: `.
fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pruner::{MedianPruner, NoPruner};
    use crate::sampler::RandomSampler;
    use crate::space::Distribution;
    use crate::storage::MemoryStorage;

    fn space() -> Space {
        Space(vec![("x".into(), Distribution::Uniform { low: -5.0, high: 5.0 })])
    }

    fn options(trials: usize, workers: usize) -> StudyOptions {
        StudyOptions { trials, time: None, workers, threads_per_trial: 1 }
    }

    #[test]
    fn runs_the_budget_in_parallel_and_records_failures() {
        let storage = MemoryStorage::new();
        let space = space();
        let study = Study {
            storage: &storage,
            space: &space,
            direction: Direction::Minimize,
            sampler: Box::new(RandomSampler::new(1)),
            pruner: Box::new(NoPruner),
            options: options(12, 3),
        };
        let seen = Mutex::new(0);
        let trials = study
            .optimize(
                |t| {
                    let x = t.params()["x"].as_f64().ok_or("no x")?;
                    if t.number() == 4 {
                        return Err("diverged".into());
                    }
                    assert_eq!(rayon::current_num_threads(), 1);
                    Ok(x * x)
                },
                &|_| *seen.lock().unwrap() += 1,
            )
            .unwrap();
        assert_eq!(trials.len(), 12);
        assert_eq!(*seen.lock().unwrap(), 12);
        assert_eq!(trials[4].state, TrialState::Failed);
        assert_eq!(trials[4].error.as_deref(), Some("diverged"));
        assert_eq!(trials.iter().filter(|t| t.state == TrialState::Complete).count(), 11);
        let b = best(&trials, Direction::Minimize).unwrap();
        assert!(trials.iter().filter_map(|t| t.value).all(|v| v >= b.value.unwrap()));
    }

    #[test]
    fn resumes_interrupted_trials_once_with_their_parameters() {
        let storage = MemoryStorage::new();
        let p = |x: f64| Params::from([("x".to_string(), serde_json::json!(x))]);
        // A dead process left: trial 0 complete, 1 running, 2 interrupted and already retried
        // as 3 (complete), 4 running.
        storage.create_trial(&p(1.0), None).unwrap();
        storage.finish(0, &Outcome::Complete(1.0)).unwrap();
        storage.create_trial(&p(2.0), None).unwrap();
        storage.create_trial(&p(3.0), None).unwrap();
        storage.mark_interrupted().unwrap();
        storage.create_trial(&p(3.0), Some(2)).unwrap();
        storage.finish(3, &Outcome::Complete(9.0)).unwrap();
        storage.create_trial(&p(4.0), None).unwrap();
        let space = space();
        let study = Study {
            storage: &storage,
            space: &space,
            direction: Direction::Minimize,
            sampler: Box::new(RandomSampler::new(1)),
            pruner: Box::new(NoPruner),
            options: options(5, 1),
        };
        let trials = study.optimize(|t| Ok(t.params()["x"].as_f64().unwrap_or(0.0).powi(2)), &|_| {}).unwrap();
        let state = |n: usize| trials[n].state;
        assert_eq!(trials.len(), 8);
        assert_eq!(
            (state(1), state(2), state(4)),
            (TrialState::Interrupted, TrialState::Interrupted, TrialState::Interrupted)
        );
        // The two unretried interrupted trials re-run first, in order, with their parameters.
        assert_eq!((trials[5].retry_of, trials[5].params.clone()), (Some(1), p(2.0)));
        assert_eq!((trials[6].retry_of, trials[6].params.clone()), (Some(4), p(4.0)));
        assert_eq!(trials[7].retry_of, None);
        assert_eq!(trials.iter().filter(|t| t.state.is_finished()).count(), 5);
    }

    #[test]
    fn pruned_trials_are_recorded_as_pruned() {
        let storage = MemoryStorage::new();
        let space = space();
        let study = Study {
            storage: &storage,
            space: &space,
            direction: Direction::Minimize,
            sampler: Box::new(RandomSampler::new(3)),
            pruner: Box::new(MedianPruner { startup_trials: 3, warmup_steps: 0 }),
            options: options(20, 1),
        };
        // A "training curve" that converges to x² from x² + 10: the median pruner stops the
        // trials whose curves run above the median of the finished ones.
        let trials = study
            .optimize(
                |t| {
                    let x = t.params()["x"].as_f64().unwrap_or(0.0);
                    for step in 1..=10 {
                        if t.report(step, x * x + 10.0 / step as f64)? {
                            return Ok(f64::NAN);
                        }
                    }
                    Ok(x * x)
                },
                &|_| {},
            )
            .unwrap();
        let pruned: Vec<&TrialRecord> = trials.iter().filter(|t| t.state == TrialState::Pruned).collect();
        assert!(pruned.len() >= 5, "{}", pruned.len());
        assert!(pruned.iter().all(|t| t.intermediate.len() < 10 && t.value.is_none()));
        assert!(trials[..3].iter().all(|t| t.state == TrialState::Complete));
    }
}
