use std::time::Instant;

use candle_core::{D, Device, Tensor};
use candle_nn::Optimizer;
use models::Params;
use pipeline_core::{Ctx, Dataset, Model, Predictions, Targets, Task, rng};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::{Error, LossConfig, OptimizerConfig, Result, TrainConfig};

/// What one epoch measured. Accuracies are `None` for regression; validation figures are
/// `None` without a validation part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Training accuracy over the epoch (as the weights were at each batch).
    pub train_accuracy: Option<f64>,
    /// Loss on the validation part after the epoch.
    pub val_loss: Option<f64>,
    /// Accuracy on the validation part after the epoch.
    pub val_accuracy: Option<f64>,
    /// Learning rate used.
    pub lr: f64,
    /// Wall time of the training batches (validation excluded).
    pub train_seconds: f64,
    /// Training throughput.
    pub samples_per_sec: f64,
}

/// What [`Callback::on_batch_end`] is told after each optimizer step.
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

/// Something that watches training: progress display, logs, early stopping, pruning.
pub trait Callback {
    /// Before the first epoch.
    fn on_fit_begin(&mut self, _epochs: usize, _batches_per_epoch: usize) {}
    /// After each optimizer step, with that batch's loss.
    fn on_batch_end(&mut self, _batch: &BatchEnd) {}
    /// After each epoch's validation; an error aborts training.
    fn on_epoch_end(&mut self, metrics: &EpochMetrics) -> Result<Control>;
    /// After the last epoch (also when stopped early).
    fn on_fit_end(&mut self) {}
}

/// The outcome of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// One entry per epoch run.
    pub history: Vec<EpochMetrics>,
    /// Whether a callback stopped training before `epochs`.
    pub stopped_early: bool,
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
}

impl Trainer<'_> {
    /// Trains on `train`, validating on `validation` after every epoch, calling `callbacks`.
    pub fn fit(
        &self,
        train: &Dataset,
        validation: Option<&Dataset>,
        callbacks: &mut [&mut dyn Callback],
    ) -> Result<FitReport> {
        fit(self, train, validation, callbacks)
    }
}

fn fit(
    trainer: &Trainer<'_>,
    train: &Dataset,
    validation: Option<&Dataset>,
    callbacks: &mut [&mut dyn Callback],
) -> Result<FitReport> {
    let Trainer { model, params, config, seed, device } = *trainer;
    if train.is_empty() {
        return Err(Error::NoData);
    }
    let task = &train.schema().target.task;
    let vars = params.named_vars().into_iter().map(|(_, v)| v).collect();
    let (mut opt, base_lr) = match &config.optimizer {
        OptimizerConfig::AdamW(c) => (
            candle_nn::AdamW::new(
                vars,
                candle_nn::ParamsAdamW {
                    lr: c.lr,
                    beta1: c.beta1,
                    beta2: c.beta2,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                },
            )?,
            c.lr,
        ),
    };
    let mut shuffle_rng = rng(seed, "shuffle");
    let mut dropout_rng = rng(seed, "dropout");
    let mut order: Vec<usize> = (0..train.len()).collect();
    let batch = config.batch_size.max(1);
    let batches = train.len().div_ceil(batch);
    for cb in callbacks.iter_mut() {
        cb.on_fit_begin(config.epochs, batches);
    }
    let mut history = Vec::new();
    let mut stopped_early = false;
    for epoch in 1..=config.epochs {
        if config.shuffle {
            order.shuffle(&mut shuffle_rng);
        }
        opt.set_learning_rate(config.schedule.lr(base_lr, epoch - 1, config.epochs));
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut samples) = (0f64, 0usize, 0usize);
        for (b, idx) in order.chunks(batch).enumerate() {
            let data = train.batch(idx, device)?;
            let out = model.forward(&data.inputs, &mut Ctx::train(&mut dropout_rng))?;
            let loss = loss(task, &config.loss, &out, &data.targets)?;
            opt.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()?;
            if !l.is_finite() {
                return Err(Error::Diverged { epoch, batch: b + 1, loss: l });
            }
            loss_sum += f64::from(l) * idx.len() as f64;
            samples += idx.len();
            if matches!(task, Task::Classification { .. }) {
                let pred = out.argmax(D::Minus1)?;
                correct +=
                    pred.eq(&data.targets)?.to_dtype(candle_core::DType::F32)?.sum_all()?.to_scalar::<f32>()? as usize;
            }
            for cb in callbacks.iter_mut() {
                cb.on_batch_end(&BatchEnd { epoch, batch: b + 1, samples, loss: l });
            }
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let n = train.len() as f64;
        let (val_loss, val_accuracy) = match validation.filter(|v| !v.is_empty()) {
            Some(v) => {
                let (l, a) = evaluate(model, v, batch.max(256), device)?;
                (Some(l), a)
            }
            None => (None, None),
        };
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / n,
            train_accuracy: matches!(task, Task::Classification { .. }).then(|| correct as f64 / n),
            val_loss,
            val_accuracy,
            lr: opt.learning_rate(),
            train_seconds,
            samples_per_sec: n / train_seconds.max(1e-9),
        };
        let mut stop = false;
        for cb in callbacks.iter_mut() {
            stop |= cb.on_epoch_end(&metrics)? == Control::Stop;
        }
        history.push(metrics);
        if stop && epoch < config.epochs {
            stopped_early = true;
            break;
        }
    }
    for cb in callbacks.iter_mut() {
        cb.on_fit_end();
    }
    Ok(FitReport { history, stopped_early })
}

/// The training loss for `task`, averaged over the batch: cross-entropy on logits `[batch,
/// classes]` against class ids (with optional label smoothing) for classification, mean squared
/// error for regression.
pub fn loss(task: &Task, config: &LossConfig, out: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    match task {
        Task::Classification { .. } => {
            let log_p = candle_nn::ops::log_softmax(out, D::Minus1)?;
            let nll = candle_nn::loss::nll(&log_p, targets)?;
            let eps = config.label_smoothing;
            if eps == 0.0 {
                return Ok(nll);
            }
            // -(1/C) Σ_c log p_c, averaged over the batch.
            let uniform = log_p.mean(D::Minus1)?.mean_all()?.neg()?;
            (nll * (1.0 - eps))? + (uniform * eps)?
        }
        _ => candle_nn::loss::mse(&out.flatten_all()?, targets),
    }
}

/// Loss and accuracy (classification) of `model` on `data` at inference.
pub(crate) fn evaluate(model: &dyn Model, data: &Dataset, batch: usize, device: &Device) -> Result<(f64, Option<f64>)> {
    let task = &data.schema().target.task;
    let preds = models::predict(model, data.features(), &data.schema().input.shape(), task, batch, device)?;
    let n = data.len() as f64;
    Ok(match (&preds, data.targets()) {
        (Predictions::Classes { probs, classes }, Targets::Classes(t)) => {
            let mut nll = 0f64;
            for (row, &y) in probs.chunks_exact(*classes).zip(t) {
                nll -= f64::from(row[y as usize].max(f32::MIN_POSITIVE)).ln();
            }
            let correct = preds.argmax().unwrap_or_default().iter().zip(t).filter(|(p, y)| p == y).count();
            (nll / n, Some(correct as f64 / n))
        }
        (Predictions::Values(v), Targets::Values(t)) => {
            let se: f64 = v.iter().zip(t).map(|(p, y)| f64::from(p - y).powi(2)).sum();
            (se / n, None)
        }
        _ => (f64::NAN, None),
    })
}

#[cfg(test)]
mod tests {
    use models::{ModelConfig, ModelSpec};
    use pipeline_core::{Feature, FeatureKind, InputSchema, Schema, Target};

    use super::*;

    /// Two Gaussian blobs, linearly separable.
    fn blobs(n: usize, seed: u64) -> Dataset {
        use rand::Rng as _;
        let mut r = rng(seed, "data");
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..n {
            let c = (i % 2) as u32;
            let centre = if c == 0 { -1.0 } else { 1.0 };
            xs.push(centre + r.random::<f32>() - 0.5);
            xs.push(-centre + r.random::<f32>() - 0.5);
            ys.push(c);
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

    fn train_once(seed: u64, epochs: usize, cb: &mut [&mut dyn Callback]) -> (FitReport, Vec<f32>) {
        let data = blobs(200, 0);
        let params = Params::new(rng(seed, "init"));
        let cfg = ModelConfig::Mlp(models::MlpConfig { hidden: vec![8], dropout: 0.1, ..Default::default() });
        let spec = ModelSpec { input_shape: vec![2], outputs: 2 };
        let model = models::build(&cfg, &spec, params.var_builder(&Device::Cpu)).unwrap();
        let tc = TrainConfig { epochs, batch_size: 16, ..Default::default() };
        let trainer = Trainer { model: model.as_ref(), params: &params, config: &tc, seed, device: &Device::Cpu };
        let report = trainer.fit(&data, Some(&data), cb).unwrap();
        let w = params.named_vars()[1].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (report, w)
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

    #[test]
    fn cross_entropy_matches_pytorch() {
        // PyTorch 2.15:
        //   logits = torch.tensor([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]]); t = torch.tensor([1, 0])
        //   F.cross_entropy(logits, t) -> 1.7175716161727905
        //   F.cross_entropy(logits, t, label_smoothing=0.1) -> 1.7292382717132568
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[1.0f32, 2.0, 0.5], [0.1, -1.0, 3.0]], &dev).unwrap();
        let t = Tensor::new(&[1u32, 0], &dev).unwrap();
        let task = Task::Classification { labels: vec!["a".into(), "b".into(), "c".into()] };
        for (eps, want) in [(0.0, 1.717_571_6_f32), (0.1, 1.729_238_3)] {
            let l = loss(&task, &LossConfig { label_smoothing: eps }, &logits, &t).unwrap();
            let got = l.to_scalar::<f32>().unwrap();
            assert!((got - want).abs() < 1e-6, "eps {eps}: {got} vs {want}");
        }
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
        let data = blobs(64, 0);
        let params = Params::new(rng(0, "init"));
        let cfg = ModelConfig::Mlp(models::MlpConfig { hidden: vec![64, 64], ..Default::default() });
        let spec = ModelSpec { input_shape: vec![2], outputs: 2 };
        let model = models::build(&cfg, &spec, params.var_builder(&Device::Cpu)).unwrap();
        let tc = TrainConfig {
            epochs: 50,
            batch_size: 8,
            optimizer: OptimizerConfig::AdamW(crate::AdamWConfig { lr: 1e12, ..Default::default() }),
            ..Default::default()
        };
        let trainer = Trainer { model: model.as_ref(), params: &params, config: &tc, seed: 0, device: &Device::Cpu };
        let err = trainer.fit(&data, None, &mut []).unwrap_err();
        assert!(matches!(err, Error::Diverged { .. }), "{err}");
        assert!(err.to_string().starts_with("training diverged at epoch "), "{err}");
    }
}
