//! What is done with one batch: the [`Step`] that [`Trainer`](crate::Trainer)'s loop drives.
//!
//! The loop owns everything that is the same for every kind of model — epochs, the loader's
//! seeded shuffle, the dropout stream, the learning-rate schedule, gradient-accumulation
//! boundaries, divergence checks, callbacks, checkpoints and exact resume. A step owns the
//! rest: the forward and backward passes, its optimizers, and whatever else it must keep
//! between batches. [`Supervised`] is the step of every classifier and regressor (one loss,
//! one optimizer, accumulation, clipping, penalties); [`GanStep`](crate::gan::GanStep) is the
//! two-optimizer step of a GAN. A step's state must round-trip through
//! [`state_tensors`](Step::state_tensors) / [`state`](Step::state) and
//! [`restore`](Step::restore) exactly, since a resumed run is promised the same weights.

use std::collections::HashMap;

use candle_core::{D, DType, Device, Tensor, Var};
use pipeline_core::{Batch, Ctx, Dataset, Head, Model, Rng};

use crate::config::{LossConfig, TrainConfig};
use crate::loss::{loss, penalty};
use crate::optim::Optimizer;
use crate::{Error, Result};

/// What one batch reported to the loop.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    /// The batch's loss (before penalties and accumulation scaling); a non-finite value stops
    /// the run as diverged, before the loop counts the batch.
    pub loss: f32,
    /// Correct predictions, for steps with an accuracy ([`Step::has_accuracy`]).
    pub correct: usize,
    /// The step's own figures: the loop sums them over an epoch and reports their means over
    /// its batches in [`EpochMetrics::extra`](crate::EpochMetrics).
    pub sums: Vec<(&'static str, f64)>,
}

/// One kind of training step, driven batch by batch by the loop (see the module docs).
pub trait Step {
    /// The variables a checkpoint stores (as `param/<name>`), that the fingerprint names and
    /// that "best weights" copy; sorted by name.
    fn vars(&self) -> &[(String, Var)];
    /// Optimizer steps taken (restored by [`restore`](Step::restore)).
    fn optimizer_steps(&self) -> u64;
    /// Trains on one batch. `update` is false while gradients are being accumulated: the
    /// step should then only add to them. `dropout` is the run's dropout stream.
    fn train_batch(&mut self, batch: &Batch, dropout: &mut Rng, lr: f64, update: bool) -> Result<BatchResult>;
    /// Whether [`BatchResult::correct`] and the validation accuracy mean anything.
    fn has_accuracy(&self) -> bool;
    /// The validation loss and accuracy on `data`, at inference.
    fn validate(&self, data: &Dataset, device: &Device) -> Result<(f64, Option<f64>)>;
    /// Every tensor besides the variables that the step needs to go on (optimizer moments,
    /// averaged weights), under checkpoint keys that do not start with `param/` or `best/`.
    fn state_tensors(&self) -> Vec<(String, Tensor)>;
    /// What else it keeps, as JSON (a random stream); `None` for nothing.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }
    /// Puts back the state a checkpoint holds (the variables are already set): `tensors` are
    /// all of the checkpoint's, `steps` its optimizer step count, `state` its
    /// [`state`](Step::state). The error says what is missing or does not fit.
    fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
        state: Option<&serde_json::Value>,
    ) -> std::result::Result<(), String>;
    /// Whether a best epoch by the monitored metric means anything (early stopping, `best.ckpt`,
    /// restoring the best weights). A GAN's losses do not measure its samples: it says no.
    fn tracks_best(&self) -> bool {
        true
    }
    /// After the last epoch (not after an early stop's restore of the best weights, which
    /// comes later): a GAN puts its averaged weights in place here.
    fn finish(&mut self, _dropout: &mut Rng) -> Result<()> {
        Ok(())
    }
}

/// The supervised step: one model, one configured loss, one optimizer; gradients summed
/// over `train.accumulate` batches, clipped (`clip_value`, `clip_norm`) and applied with
/// penalties (`train.penalty`) on the weights.
pub struct Supervised<'a> {
    model: &'a dyn Model,
    config: &'a TrainConfig,
    loss: LossConfig,
    head: Head,
    vars: Vec<(String, Var)>,
    weights: Vec<Tensor>,
    opt: Optimizer,
    grads: Vec<Option<Tensor>>,
}

impl<'a> Supervised<'a> {
    /// The step for `model` whose variables are `vars` (those the optimizer updates), trained
    /// for `task` as `config` says.
    pub fn new(
        model: &'a dyn Model,
        vars: Vec<(String, Var)>,
        config: &'a TrainConfig,
        task: &pipeline_core::Task,
    ) -> Result<Self> {
        let loss = config.loss_for(task);
        let head = loss.head(task).map_err(|i| Error::Config(i.to_string()))?;
        let weights = vars.iter().filter(|(n, _)| n.ends_with("weight")).map(|(_, v)| v.as_tensor().clone()).collect();
        let opt = Optimizer::new(config.optimizer.clone(), vars.clone())?.with_lr_scales(&config.lr_scale);
        let grads = vec![None; vars.len()];
        Ok(Self { model, config, loss, head, vars, weights, opt, grads })
    }

    /// The head the loss trains.
    pub fn head(&self) -> Head {
        self.head
    }
}

impl Step for Supervised<'_> {
    fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    fn optimizer_steps(&self) -> u64 {
        self.opt.steps()
    }

    fn train_batch(&mut self, data: &Batch, dropout: &mut Rng, lr: f64, update: bool) -> Result<BatchResult> {
        let accumulate = self.config.accumulate.max(1);
        let out = self.model.forward(&data.inputs, &mut Ctx::train(dropout))?;
        let l = loss(&self.loss, &out, &data.targets)?;
        let value = l.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Ok(BatchResult { loss: value, correct: 0, sums: Vec::new() });
        }
        let mut total = l;
        if let Some(p) = penalty(&self.config.penalty, &self.weights)? {
            total = (total + p)?;
        }
        if accumulate > 1 {
            total = (total / accumulate as f64)?;
        }
        let store = total.backward()?;
        for (slot, (_, var)) in self.grads.iter_mut().zip(&self.vars) {
            if let Some(g) = store.get(var.as_tensor()) {
                *slot = Some(match slot.take() {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                });
            }
        }
        let correct = correct(self.head, &out, &data.targets)?;
        if update {
            clip(&mut self.grads, self.config.clip_value, self.config.clip_norm)?;
            self.opt.step(&self.grads, lr)?;
            self.grads.iter_mut().for_each(|g| *g = None);
        }
        Ok(BatchResult { loss: value, correct, sums: Vec::new() })
    }

    fn has_accuracy(&self) -> bool {
        self.head != Head::Identity
    }

    fn validate(&self, data: &Dataset, device: &Device) -> Result<(f64, Option<f64>)> {
        let mut outs = Vec::new();
        let mut targets = Vec::new();
        let all: Vec<usize> = (0..data.len()).collect();
        for idx in all.chunks(512) {
            let b = data.batch(idx, device)?;
            outs.push(self.model.forward(&b.inputs, &mut Ctx::infer())?);
            targets.push(b.targets);
        }
        let out = Tensor::cat(&outs, 0)?;
        let targets = Tensor::cat(&targets, 0)?;
        let l = loss(&self.loss, &out, &targets)?.to_scalar::<f32>()?;
        let acc = self.has_accuracy().then(|| correct(self.head, &out, &targets)).transpose()?;
        Ok((f64::from(l), acc.map(|c| c as f64 / data.len() as f64)))
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.opt.state_tensors().into_iter().map(|(n, t)| (format!("optim/{n}"), t)).collect()
    }

    fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
        _state: Option<&serde_json::Value>,
    ) -> std::result::Result<(), String> {
        self.opt.load_state(&prefixed(tensors, "optim/"), steps).map_err(|e| e.to_string())
    }
}

/// The tensors of `all` whose key starts with `prefix`, keyed by the rest.
pub(crate) fn prefixed(all: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    all.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone()))).collect()
}

/// Clamps each gradient component to `±value`, then rescales all gradients so that their
/// global L2 norm is at most `max_norm` (PyTorch's `clip_grad_value_` and `clip_grad_norm_`).
pub fn clip(grads: &mut [Option<Tensor>], value: Option<f64>, max_norm: Option<f64>) -> Result<()> {
    if let Some(v) = value {
        for g in grads.iter_mut().flatten() {
            *g = g.clamp(-v, v)?;
        }
    }
    if let Some(max) = max_norm {
        let mut sq = 0f64;
        for g in grads.iter().flatten() {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let coef = max / (sq.sqrt() + 1e-6);
        if coef < 1.0 {
            for g in grads.iter_mut().flatten() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(())
}

/// Correct predictions in a batch: argmax for softmax, `logit > 0` for sigmoid.
fn correct(head: Head, out: &Tensor, targets: &Tensor) -> Result<usize> {
    let pred = match head {
        Head::Softmax => out.argmax(D::Minus1)?,
        Head::Sigmoid => out.flatten_all()?.gt(0.0)?.to_dtype(DType::U32)?,
        Head::Identity => return Ok(0),
    };
    Ok(pred.eq(targets)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()? as usize)
}
