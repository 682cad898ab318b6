//! The fit loop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use augment::{Augmenter, LoadedBatch, Loader};
use candle_core::{Device, Tensor};
use models::Params;
use pipeline_core::{Dataset, Direction, Head, Model, rng};
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, Best, Checkpoint, Partial, TrainState};
use crate::config::TrainConfig;
use crate::history::{EpochMetrics, Monitor};
use crate::linear::Solver;
use crate::schedule::Scheduler;
use crate::step::{Step, Supervised};
use crate::{Error, Result};

/// What [`Callback::on_batch_end`] is told after each batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchEnd {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// Training examples seen so far in this epoch.
    pub samples: usize,
    /// This batch's loss.
    pub loss: f32,
}

/// A callback's verdict after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// End training after this epoch.
    Stop,
}

/// Something that watches training: progress display, logs, the tuner's pruning. Early
/// stopping and checkpoints are built into the loop, because they need the weights.
pub trait Callback {
    /// Before the first epoch (of this process: `start_epoch` > 1 after a resume).
    fn on_fit_begin(&mut self, _epochs: usize, _batches_per_epoch: usize, _start_epoch: usize) {}
    /// After each batch.
    fn on_batch_end(&mut self, _batch: &BatchEnd) {}
    /// After each epoch's validation; [`Control::Stop`] ends training, an error aborts it.
    fn on_epoch_end(&mut self, metrics: &EpochMetrics) -> Result<Control>;
    /// After the last epoch (also when stopped early).
    fn on_fit_end(&mut self) {}
}

/// The outcome of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// One entry per epoch, from the first (including epochs before a resume).
    pub history: Vec<EpochMetrics>,
    /// Whether training ended before `epochs`.
    pub stopped_early: bool,
    /// The best epoch by the monitored metric (1-based).
    pub best_epoch: usize,
    /// The metric that defines "best".
    pub monitor: Monitor,
    /// Whether the best epoch's weights were put back at the end.
    pub restored_best: bool,
}

/// What is trained, how, and where.
pub struct Trainer<'a> {
    /// The model.
    pub model: &'a dyn Model,
    /// Its variables (what the optimizer updates).
    pub params: &'a Params,
    /// The `train:` section.
    pub config: &'a TrainConfig,
    /// Seeds shuffling and dropout.
    pub seed: u64,
    /// Where the tensors live.
    pub device: &'a Device,
    /// Where checkpoints go (`None`: none are written).
    pub checkpoint_dir: Option<&'a Path>,
    /// For the linear architectures: the exact solve that replaces the epochs of gradient steps
    /// ([`Solver::for_model`]).
    pub solver: Option<Solver>,
}

impl Trainer<'_> {
    /// Trains on `train` from the current weights, validating on `validation` after every epoch.
    pub fn fit(
        &self,
        train: &Dataset,
        validation: Option<&Dataset>,
        callbacks: &mut [&mut dyn Callback],
    ) -> Result<FitReport> {
        if let Some(solver) = &self.solver {
            return solver.fit(self.params, self.config, train, validation, callbacks);
        }
        let mut step = self.step(train)?;
        self.as_loop().run(&mut step, train, validation, callbacks, None)
    }

    /// Continues the run that wrote `checkpoint`: weights, optimizer, schedule, random streams
    /// and position are restored, so the result is the same as if it had never stopped.
    pub fn resume(
        &self,
        checkpoint: Checkpoint,
        train: &Dataset,
        validation: Option<&Dataset>,
        callbacks: &mut [&mut dyn Callback],
    ) -> Result<FitReport> {
        if let Some(solver) = &self.solver {
            // One solve, nothing to continue: the same data gives the same weights.
            return solver.fit(self.params, self.config, train, validation, callbacks);
        }
        let mut step = self.step(train)?;
        self.as_loop().run(&mut step, train, validation, callbacks, Some(checkpoint))
    }

    /// The head the configured loss trains for `task` (and so the model's output count).
    pub fn head(config: &TrainConfig, task: &pipeline_core::Task) -> Result<Head> {
        config.loss_for(task).head(task).map_err(|i| Error::Config(i.to_string()))
    }

    fn step(&self, train: &Dataset) -> Result<Supervised<'_>> {
        Supervised::new(self.model, self.params.trainable_vars(), self.config, &train.schema().target.task)
    }

    fn as_loop(&self) -> Loop<'_> {
        Loop { config: self.config, seed: self.seed, device: self.device, checkpoint_dir: self.checkpoint_dir }
    }
}

/// The training loop, for any [`Step`]: epochs of batches from the loader, the schedule,
/// validation, early stopping, callbacks, checkpoints and exact resume.
pub struct Loop<'a> {
    /// The `train:` section.
    pub config: &'a TrainConfig,
    /// Seeds shuffling and dropout.
    pub seed: u64,
    /// Where the tensors live.
    pub device: &'a Device,
    /// Where checkpoints go (`None`: none are written).
    pub checkpoint_dir: Option<&'a Path>,
}

impl Loop<'_> {
    /// Trains `step` on `train`, validating on `validation` after every epoch; with `resume`,
    /// continues the run that wrote that checkpoint exactly where it stopped.
    pub fn run(
        &self,
        step: &mut dyn Step,
        train: &Dataset,
        validation: Option<&Dataset>,
        callbacks: &mut [&mut dyn Callback],
        resume: Option<Checkpoint>,
    ) -> Result<FitReport> {
        Run::new(self, step, train, validation)?.go(callbacks, resume)
    }
}

struct Run<'t, 'a> {
    t: &'t Loop<'a>,
    step: &'t mut dyn Step,
    validation: Option<&'t Dataset>,
    monitor: Monitor,
    sched: Scheduler,
    /// Taken out by `go`, so that its workers can borrow it while the loop changes `self`.
    loader: Option<Loader<'t>>,
    batches: usize,
    fingerprint: String,
}

impl<'t, 'a> Run<'t, 'a> {
    fn new(
        t: &'t Loop<'a>,
        step: &'t mut dyn Step,
        train: &'t Dataset,
        validation: Option<&'t Dataset>,
    ) -> Result<Self> {
        let c = t.config;
        if train.is_empty() {
            return Err(Error::NoData);
        }
        let validation = validation.filter(|v| !v.is_empty());
        let monitor = c.best_monitor(validation.is_some());
        let issues = c.check_data(&train.schema().input, train.len());
        if !issues.is_empty() {
            return Err(Error::Config(issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")));
        }
        let augmenter = match c.augment.is_empty() {
            true => None,
            false => Some(Augmenter::new(&c.augment, "train.augment", &train.schema().input, t.seed)?),
        };
        let loader = Loader::new(train, c.batch_size, c.drop_last, augmenter, c.loader.workers, c.loader.prefetch);
        let batches = loader.batches();
        let steps_per_epoch = batches.div_ceil(c.accumulate.max(1));
        let sched = Scheduler::new(c.schedule.clone(), c.warmup.clone(), c.optimizer.lr(), c.epochs, steps_per_epoch);
        let mut h = Sha256::new();
        // How batches are prepared does not change them: a run may resume with other loader settings.
        let results = TrainConfig { loader: Default::default(), ..c.clone() };
        h.update(serde_json::to_vec(&results).unwrap_or_default());
        h.update(t.seed.to_le_bytes());
        for (name, v) in step.vars() {
            h.update(format!("{name}{:?}", v.dims()).as_bytes());
        }
        let fingerprint = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
        Ok(Self { t, step, validation, monitor, sched, loader: Some(loader), batches, fingerprint })
    }

    fn fresh_state(&self) -> TrainState {
        TrainState {
            epochs_done: 0,
            batches_done: 0,
            optimizer_steps: 0,
            shuffle_rng: rng(self.t.seed, "shuffle"),
            dropout_rng: rng(self.t.seed, "dropout"),
            partial: Partial::default(),
            schedule: Default::default(),
            history: Vec::new(),
            best: Best::default(),
            fingerprint: self.fingerprint.clone(),
            step: None,
        }
    }

    /// Restores weights, the step's state and the schedule from `ck`; returns its state and
    /// best weights.
    fn restore(&mut self, ck: &Checkpoint) -> Result<(TrainState, Option<Vec<Tensor>>)> {
        let bad = |reason: String| Error::Resume { path: ck.path.clone(), reason };
        if ck.state.fingerprint != self.fingerprint {
            return Err(bad("it was written by a different training configuration or model".into()));
        }
        for (name, var) in self.step.vars() {
            let t = ck.tensors.get(&format!("param/{name}")).ok_or_else(|| bad(format!("no parameter {name}")))?;
            var.set(t).map_err(|e| bad(e.to_string()))?;
        }
        self.step.restore(&ck.tensors, ck.state.optimizer_steps, ck.state.step.as_ref()).map_err(bad)?;
        self.sched.state = ck.state.schedule.clone();
        let best = self
            .step
            .vars()
            .iter()
            .map(|(name, _)| ck.tensors.get(&format!("best/{name}")).cloned())
            .collect::<Option<Vec<_>>>();
        Ok((ck.state.clone(), best))
    }

    fn go(mut self, callbacks: &mut [&mut dyn Callback], resume: Option<Checkpoint>) -> Result<FitReport> {
        let c = self.t.config;
        let (mut st, mut best_weights, mut last_ckpt) = match &resume {
            Some(ck) => {
                let (st, best) = self.restore(ck)?;
                (st, best, Some(ck.path.clone()))
            }
            None => (self.fresh_state(), None, None),
        };
        let restore_best = c.early_stopping.as_ref().is_some_and(|e| e.restore_best);
        let accumulate = c.accumulate.max(1);
        let loader = self.loader.take().ok_or_else(|| Error::Config("the loader was already used".into()))?;
        for cb in callbacks.iter_mut() {
            cb.on_fit_begin(c.epochs, self.batches, st.epochs_done + 1);
        }
        let mut stopped_early = false;
        for epoch in st.epochs_done + 1..=c.epochs {
            let mut shuffle = st.shuffle_rng.clone();
            let order = loader.order(c.shuffle.then_some(&mut shuffle));
            let started = Instant::now();
            let seconds_before = st.partial.seconds;
            let first_lr = self.sched.lr(epoch - 1, st.batches_done / accumulate);
            let mut pending = 0;
            let device = self.t.device;
            // The loader's workers prepare batches ahead while this thread trains; they stop when
            // the epoch's batches are dropped (also on an early return).
            std::thread::scope(|scope| -> Result<()> {
                for loaded in loader.epoch(scope, epoch, &order, st.batches_done, device) {
                    let LoadedBatch { index: b, rows: idx, batch: data } = loaded?;
                    let lr = self.sched.lr(epoch - 1, b / accumulate);
                    pending += 1;
                    let last = b + 1 == self.batches;
                    let update = pending == accumulate || last;
                    let result = self.step.train_batch(&data, &mut st.dropout_rng, lr, update)?;
                    if !result.loss.is_finite() {
                        return Err(Error::Diverged {
                            epoch,
                            batch: b + 1,
                            loss: result.loss,
                            checkpoint: last_ckpt.clone(),
                        });
                    }
                    let p = &mut st.partial;
                    p.loss_sum += f64::from(result.loss) * idx.len() as f64;
                    p.correct += result.correct;
                    p.samples += idx.len();
                    p.batches += 1;
                    for (name, v) in result.sums {
                        *p.extra.entry(name.to_string()).or_default() += v;
                    }
                    if update {
                        pending = 0;
                        st.batches_done = b + 1;
                        st.optimizer_steps = self.step.optimizer_steps();
                        let every = c.checkpoint.every_steps;
                        if every > 0 && st.optimizer_steps.is_multiple_of(every as u64) && !last {
                            st.partial.seconds = seconds_before + started.elapsed().as_secs_f64();
                            let name = checkpoint::file_name(st.epochs_done, st.batches_done);
                            last_ckpt = self.save(&mut st, best_weights.as_deref(), name)?;
                        }
                    }
                    for cb in callbacks.iter_mut() {
                        cb.on_batch_end(&BatchEnd {
                            epoch,
                            batch: b + 1,
                            samples: st.partial.samples,
                            loss: result.loss,
                        });
                    }
                }
                Ok(())
            })?;
            let train_seconds = seconds_before + started.elapsed().as_secs_f64();
            let (val_loss, val_accuracy) = match self.validation {
                Some(v) => {
                    let (l, a) = self.step.validate(v, self.t.device)?;
                    (Some(l), a)
                }
                None => (None, None),
            };
            let p = std::mem::take(&mut st.partial);
            let metrics = EpochMetrics {
                epoch,
                train_loss: p.loss_sum / p.samples.max(1) as f64,
                train_accuracy: self.step.has_accuracy().then(|| p.correct as f64 / p.samples.max(1) as f64),
                val_loss,
                val_accuracy,
                lr: first_lr,
                train_seconds,
                samples_per_sec: p.samples as f64 / train_seconds.max(1e-9),
                extra: p.extra.into_iter().map(|(k, v)| (k, v / p.batches.max(1) as f64)).collect(),
            };
            self.sched.on_epoch_end(&metrics);
            let improved = self.step.tracks_best() && self.update_best(&mut st.best, &metrics, epoch);
            if improved && restore_best {
                best_weights = Some(
                    self.step.vars().iter().map(|(_, v)| v.as_tensor().copy()).collect::<candle_core::Result<_>>()?,
                );
            }
            let mut stop = false;
            for cb in callbacks.iter_mut() {
                stop |= cb.on_epoch_end(&metrics)? == Control::Stop;
            }
            if let Some(es) = &c.early_stopping
                && st.best.bad_epochs >= es.patience.max(1)
            {
                stop = true;
            }
            st.history.push(metrics);
            st.epochs_done = epoch;
            st.batches_done = 0;
            st.shuffle_rng = shuffle;
            st.schedule = self.sched.state.clone();
            let every = c.checkpoint.every_epochs;
            if (every > 0 && epoch.is_multiple_of(every)) || epoch == c.epochs || stop {
                last_ckpt = self.save(&mut st, best_weights.as_deref(), checkpoint::file_name(epoch, 0))?;
            }
            if improved {
                self.save(&mut st, best_weights.as_deref(), checkpoint::BEST.to_string())?;
            }
            if stop {
                stopped_early = epoch < c.epochs;
                break;
            }
        }
        self.step.finish(&mut st.dropout_rng)?;
        let restored_best = restore_best && best_weights.is_some();
        if let Some(best) = best_weights.filter(|_| restore_best) {
            for ((_, var), t) in self.step.vars().iter().zip(best) {
                var.set(&t)?;
            }
        }
        for cb in callbacks.iter_mut() {
            cb.on_fit_end();
        }
        Ok(FitReport {
            history: st.history,
            stopped_early,
            best_epoch: st.best.epoch,
            monitor: self.monitor,
            restored_best,
        })
    }

    fn update_best(&self, best: &mut Best, m: &EpochMetrics, epoch: usize) -> bool {
        let Some(v) = m.get(self.monitor) else { return false };
        let delta = self.t.config.early_stopping.as_ref().map_or(0.0, |e| e.min_delta);
        let improved = match (best.value, self.monitor.direction()) {
            (None, _) => true,
            (Some(b), Direction::Minimize) => v < b - delta,
            (Some(b), Direction::Maximize) => v > b + delta,
        };
        if improved {
            *best = Best { value: Some(v), epoch, bad_epochs: 0 };
        } else {
            best.bad_epochs += 1;
        }
        improved
    }

    /// Writes a checkpoint named `name` (when checkpointing) and prunes old periodic ones.
    fn save(&self, st: &mut TrainState, best: Option<&[Tensor]>, name: String) -> Result<Option<PathBuf>> {
        let Some(dir) = self.t.checkpoint_dir else { return Ok(None) };
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Checkpoint(checkpoint::CheckpointError::Io { path: dir.into(), cause: e.to_string() })
        })?;
        let vars = self.step.vars();
        let mut tensors: Vec<(String, Tensor)> =
            vars.iter().map(|(n, v)| (format!("param/{n}"), v.as_tensor().clone())).collect();
        tensors.extend(self.step.state_tensors());
        if let Some(best) = best {
            tensors.extend(vars.iter().zip(best).map(|((n, _), t)| (format!("best/{n}"), t.clone())));
        }
        st.step = self.step.state();
        let path = dir.join(&name);
        checkpoint::write(&path, st, &tensors)?;
        if name != checkpoint::BEST {
            let all = checkpoint::list(dir);
            let keep = self.t.config.checkpoint.keep.max(1);
            for old in all.iter().take(all.len().saturating_sub(keep)) {
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use models::{ModelConfig, ModelSpec};
    use pipeline_core::{Feature, FeatureKind, InputSchema, Schema, Target, Targets, Task};

    use super::*;
    use crate::config::{CheckpointConfig, EarlyStopping};
    use crate::optim::{AdamWConfig, OptimizerConfig};
    use crate::step::clip;

    /// Two Gaussian blobs, linearly separable; `noise_labels` replaces the labels by random ones.
    fn blobs(n: usize, seed: u64, noise_labels: bool) -> Dataset {
        use rand::Rng as _;
        let mut r = rng(seed, "data");
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..n {
            let c = (i % 2) as u32;
            let centre = if c == 0 { -1.0 } else { 1.0 };
            xs.push(centre + r.random::<f32>() - 0.5);
            xs.push(-centre + r.random::<f32>() - 0.5);
            ys.push(if noise_labels { r.random_range(0..2) } else { c });
        }
        let schema = Schema {
            input: InputSchema::Tabular {
                features: ["a", "b"]
                    .iter()
                    .map(|n| Feature { name: n.to_string(), kind: FeatureKind::Numeric })
                    .collect(),
            },
            target: Target { name: "y".into(), task: Task::Classification { labels: vec!["0".into(), "1".into()] } },
        };
        Dataset::new(schema, xs, Targets::Classes(ys)).unwrap()
    }

    fn weights(params: &Params) -> Vec<Vec<f32>> {
        params
            .named_vars()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    }

    struct Setup {
        params: Params,
        model: Box<dyn Model>,
    }

    fn setup(seed: u64, hidden: Vec<usize>, dropout: f32) -> Setup {
        let params = Params::new(rng(seed, "init"));
        let cfg = ModelConfig::Mlp(models::MlpConfig { hidden, dropout, ..Default::default() });
        let spec = ModelSpec { input_shape: vec![2], outputs: 2, vocab: None, series: None };
        let model = models::build(&cfg, &spec, params.var_builder(&Device::Cpu)).unwrap();
        Setup { params, model }
    }

    fn trainer<'a>(s: &'a Setup, config: &'a TrainConfig, seed: u64, dir: Option<&'a Path>) -> Trainer<'a> {
        Trainer {
            model: s.model.as_ref(),
            params: &s.params,
            config,
            seed,
            device: &Device::Cpu,
            checkpoint_dir: dir,
            solver: None,
        }
    }

    fn train_once(seed: u64, epochs: usize, cb: &mut [&mut dyn Callback]) -> (FitReport, Vec<Vec<f32>>) {
        let data = blobs(200, 0, false);
        let s = setup(seed, vec![8], 0.1);
        let tc = TrainConfig { epochs, batch_size: 16, ..Default::default() };
        let report = trainer(&s, &tc, seed, None).fit(&data, Some(&data), cb).unwrap();
        (report, weights(&s.params))
    }

    #[test]
    fn learns_a_separable_problem() {
        let (report, _) = train_once(1, 20, &mut []);
        let last = report.history.last().unwrap();
        assert!(last.val_accuracy.unwrap() > 0.97, "{last:?}");
        assert!(last.train_loss < report.history[0].train_loss);
    }

    #[test]
    fn same_seed_same_weights() {
        let (a, wa) = train_once(3, 3, &mut []);
        let (b, wb) = train_once(3, 3, &mut []);
        let (_, wc) = train_once(4, 3, &mut []);
        assert_eq!(wa, wb);
        assert_eq!(a.history[2].train_loss, b.history[2].train_loss);
        assert_ne!(wa, wc);
    }

    struct StopAt(usize, usize);
    impl Callback for StopAt {
        fn on_batch_end(&mut self, _: &BatchEnd) {
            self.1 += 1;
        }
        fn on_epoch_end(&mut self, m: &EpochMetrics) -> Result<Control> {
            Ok(if m.epoch == self.0 { Control::Stop } else { Control::Continue })
        }
    }

    #[test]
    fn a_callback_can_stop_training() {
        let mut cb = StopAt(2, 0);
        let (report, _) = train_once(1, 10, &mut [&mut cb]);
        assert_eq!(report.history.len(), 2);
        assert!(report.stopped_early);
        assert_eq!(cb.1, 2 * 200usize.div_ceil(16));
    }

    #[test]
    fn divergence_is_an_error_not_nan_metrics() {
        let data = blobs(64, 0, false);
        let s = setup(0, vec![64, 64], 0.0);
        let tc = TrainConfig {
            epochs: 50,
            batch_size: 8,
            optimizer: OptimizerConfig::AdamW(AdamWConfig { lr: 1e12, ..Default::default() }),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let err = trainer(&s, &tc, 0, Some(dir.path())).fit(&data, None, &mut []).unwrap_err();
        let Error::Diverged { epoch, checkpoint, .. } = &err else { panic!("{err}") };
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("training diverged at epoch {epoch}, batch ")), "{msg}");
        match checkpoint {
            Some(p) => assert!(msg.ends_with(&format!("the last good checkpoint is {}", p.display())), "{msg}"),
            None => assert!(msg.ends_with("no checkpoint was written before it"), "{msg}"),
        }
    }

    #[test]
    fn accumulating_two_half_batches_equals_one_batch() {
        let data = blobs(64, 0, false);
        let run = |batch_size, accumulate| {
            let s = setup(5, vec![8], 0.0);
            let tc = TrainConfig { epochs: 2, batch_size, accumulate, shuffle: false, ..Default::default() };
            trainer(&s, &tc, 5, None).fit(&data, None, &mut []).unwrap();
            weights(&s.params)
        };
        let (a, b) = (run(16, 1), run(8, 2));
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    /// PyTorch 2.15:
    /// ```python
    /// a.grad = torch.tensor([3.0, -4.0, 1.0]); b.grad = torch.tensor([[0.5, 2.0], [-1.0, 0.0]])
    /// torch.nn.utils.clip_grad_norm_([a, b], max_norm=2.0)
    /// # a.grad [1.073312520980835, -1.43108332157135, 0.3577708303928375]
    /// # b.grad [[0.17888541519641876, 0.715541660785675], [-0.3577708303928375, 0.0]]
    /// torch.nn.utils.clip_grad_value_([a, b], clip_value=1.5)   # on fresh grads
    /// # a.grad [1.5, -1.5, 1.0], b.grad [[0.5, 1.5], [-1.0, 0.0]]
    /// ```
    #[test]
    fn clipping_matches_pytorch() {
        let dev = Device::Cpu;
        let fresh = || {
            vec![
                Some(Tensor::new(&[3.0f32, -4.0, 1.0], &dev).unwrap()),
                None,
                Some(Tensor::new(&[[0.5f32, 2.0], [-1.0, 0.0]], &dev).unwrap()),
            ]
        };
        let flat = |g: &[Option<Tensor>]| -> Vec<f32> {
            g.iter().flatten().flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
        };
        let mut g = fresh();
        clip(&mut g, None, Some(2.0)).unwrap();
        let want = [
            1.073312520980835,
            -1.43108332157135,
            0.3577708303928375,
            0.17888541519641876,
            0.715541660785675,
            -0.3577708303928375,
            0.0,
        ];
        for (a, b) in flat(&g).iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{:?}", flat(&g));
        }
        let mut g = fresh();
        clip(&mut g, Some(1.5), None).unwrap();
        assert_eq!(flat(&g), vec![1.5, -1.5, 1.0, 0.5, 1.5, -1.0, 0.0]);
    }

    struct Snapshots<'a>(&'a Params, Vec<Vec<Vec<f32>>>);
    impl Callback for Snapshots<'_> {
        fn on_epoch_end(&mut self, _: &EpochMetrics) -> Result<Control> {
            self.1.push(weights(self.0));
            Ok(Control::Continue)
        }
    }

    #[test]
    fn early_stopping_stops_after_patience_and_restores_the_best_weights() {
        // Validation labels are noise: the validation loss soon stops improving.
        let (train, val) = (blobs(128, 0, true), blobs(64, 9, true));
        let s = setup(2, vec![32], 0.0);
        let tc = TrainConfig {
            epochs: 100,
            batch_size: 16,
            optimizer: OptimizerConfig::AdamW(AdamWConfig { lr: 0.01, ..Default::default() }),
            early_stopping: Some(EarlyStopping {
                monitor: Monitor::ValLoss,
                patience: 3,
                min_delta: 0.0,
                restore_best: true,
            }),
            ..Default::default()
        };
        let mut snaps = Snapshots(&s.params, Vec::new());
        let report = trainer(&s, &tc, 2, None).fit(&train, Some(&val), &mut [&mut snaps]).unwrap();
        // The best epoch is the argmin of the logged validation loss...
        let losses: Vec<f64> = report.history.iter().map(|m| m.val_loss.unwrap()).collect();
        let argmin = losses.iter().enumerate().fold(0, |b, (i, &l)| if l < losses[b] { i } else { b }) + 1;
        assert_eq!(report.best_epoch, argmin);
        // ...training stopped exactly `patience` epochs after it...
        assert!(report.stopped_early);
        assert_eq!(report.history.len(), argmin + 3);
        // ...and the final weights are that epoch's.
        assert!(report.restored_best);
        assert_eq!(weights(&s.params), snaps.1[argmin - 1]);
    }

    #[test]
    fn resuming_from_any_checkpoint_gives_the_same_weights() {
        let data = blobs(100, 0, false);
        let tc = TrainConfig {
            epochs: 4,
            batch_size: 16,
            checkpoint: CheckpointConfig { every_epochs: 1, every_steps: 3, keep: 100 },
            early_stopping: Some(EarlyStopping {
                monitor: Monitor::ValLoss,
                patience: 10,
                min_delta: 0.0,
                restore_best: true,
            }),
            schedule: crate::schedule::Schedule::Cosine(Default::default()),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let s = setup(7, vec![8], 0.2);
        let full = trainer(&s, &tc, 7, Some(dir.path())).fit(&data, Some(&data), &mut []).unwrap();
        let want = weights(&s.params);
        let all = checkpoint::list(dir.path());
        assert!(all.len() > 8, "{all:?}");
        for path in all.iter().filter(|p| !p.ends_with("epoch-0004.ckpt")) {
            let ck = checkpoint::read(path, &Device::Cpu).unwrap();
            let fresh = setup(7, vec![8], 0.2);
            let report = trainer(&fresh, &tc, 7, None).resume(ck, &data, Some(&data), &mut []).unwrap();
            assert_eq!(weights(&fresh.params), want, "resumed from {}", path.display());
            let strip =
                |h: &[EpochMetrics]| h.iter().map(|m| (m.epoch, m.train_loss, m.val_loss, m.lr)).collect::<Vec<_>>();
            assert_eq!(strip(&report.history), strip(&full.history));
        }
        // A checkpoint of another configuration is refused.
        let other = TrainConfig { batch_size: 32, ..tc.clone() };
        let ck = checkpoint::read(&all[0], &Device::Cpu).unwrap();
        let fresh = setup(7, vec![8], 0.2);
        let err = trainer(&fresh, &other, 7, None).resume(ck, &data, Some(&data), &mut []).unwrap_err();
        assert!(err.to_string().ends_with("it was written by a different training configuration or model"), "{err}");
    }

    fn augmented(tc: &TrainConfig, workers: usize) -> TrainConfig {
        TrainConfig {
            augment: serde_json::from_str(r#"[{"kind": "feature_noise", "std": 0.3, "p": 0.8}]"#).unwrap(),
            drop_last: true,
            loader: augment::LoaderConfig { workers, prefetch: 2 },
            ..tc.clone()
        }
    }

    #[test]
    fn resuming_an_augmented_run_gives_the_same_weights_with_any_workers() {
        let data = blobs(100, 0, false);
        let tc = augmented(
            &TrainConfig {
                epochs: 3,
                batch_size: 16,
                checkpoint: CheckpointConfig { every_epochs: 1, every_steps: 2, keep: 100 },
                ..Default::default()
            },
            3,
        );
        let dir = tempfile::tempdir().unwrap();
        let s = setup(8, vec![8], 0.2);
        let full = trainer(&s, &tc, 8, Some(dir.path())).fit(&data, Some(&data), &mut []).unwrap();
        let want = weights(&s.params);
        // drop_last: 100 examples make 6 batches of 16 every epoch; 4 are never seen in one.
        assert!(full.history.iter().all(|m| (m.samples_per_sec * m.train_seconds - 96.0).abs() < 1e-6));
        // The same run in the training thread only.
        let s0 = setup(8, vec![8], 0.2);
        trainer(&s0, &augmented(&tc, 0), 8, None).fit(&data, Some(&data), &mut []).unwrap();
        assert_eq!(weights(&s0.params), want, "the number of workers changes nothing");
        // Augmentation changes the result.
        let plain = TrainConfig { augment: Vec::new(), ..tc.clone() };
        let sp = setup(8, vec![8], 0.2);
        trainer(&sp, &plain, 8, None).fit(&data, Some(&data), &mut []).unwrap();
        assert_ne!(weights(&sp.params), want);
        let all = checkpoint::list(dir.path());
        assert!(all.len() > 5, "{all:?}");
        for path in all.iter().filter(|p| !p.ends_with("epoch-0003.ckpt")) {
            let ck = checkpoint::read(path, &Device::Cpu).unwrap();
            let fresh = setup(8, vec![8], 0.2);
            // Resumed with other loader settings: they are not part of the run's identity.
            let report = trainer(&fresh, &augmented(&tc, 1), 8, None).resume(ck, &data, Some(&data), &mut []).unwrap();
            assert_eq!(weights(&fresh.params), want, "resumed from {}", path.display());
            assert_eq!(
                report.history.iter().map(|m| m.train_loss).collect::<Vec<_>>(),
                full.history.iter().map(|m| m.train_loss).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn validation_batches_are_never_augmented() {
        // With a learning rate too small to move the weights, the validation loss is the same
        // with and without (huge) augmentation, while the training loss is not.
        let (train, val) = (blobs(64, 0, false), blobs(32, 5, false));
        let run = |augment: &str| {
            let tc = TrainConfig {
                epochs: 1,
                batch_size: 16,
                optimizer: serde_json::from_str(r#"{"kind": "sgd", "lr": 1e-30}"#).unwrap(),
                augment: serde_json::from_str(augment).unwrap(),
                ..Default::default()
            };
            let s = setup(4, vec![8], 0.0);
            let report = trainer(&s, &tc, 4, None).fit(&train, Some(&val), &mut []).unwrap();
            (report.history[0].clone(), weights(&s.params))
        };
        let (plain, w0) = run("[]");
        let (noisy, w1) = run(r#"[{"kind": "feature_noise", "std": 1000.0}]"#);
        assert_eq!(w0, w1, "the weights did not move");
        assert_eq!(plain.val_loss, noisy.val_loss);
        assert_eq!(plain.val_accuracy, noisy.val_accuracy);
        assert!(noisy.train_loss > 10.0 * plain.train_loss, "{} vs {}", noisy.train_loss, plain.train_loss);
    }

    #[test]
    fn transforms_that_do_not_fit_the_data_are_config_errors() {
        let data = blobs(20, 0, false);
        let s = setup(1, vec![4], 0.0);
        let tc = TrainConfig {
            augment: serde_json::from_str(r#"[{"kind": "rotate", "degrees": 5}]"#).unwrap(),
            ..Default::default()
        };
        let err = trainer(&s, &tc, 1, None).fit(&data, None, &mut []).unwrap_err();
        assert_eq!(
            err.to_string(),
            "train.augment[0].kind: `rotate` transforms image inputs, but the data has tabular inputs"
        );
        let tc = TrainConfig { drop_last: true, batch_size: 32, ..Default::default() };
        let err = trainer(&s, &tc, 1, None).fit(&data, None, &mut []).unwrap_err();
        assert!(err.to_string().starts_with("train.drop_last: leaves no batch"), "{err}");
    }
}
