//! The two-optimizer step of a generative adversarial network (Goodfellow et al., 2014, with
//! the non-saturating generator loss): per batch, one step of the discriminator on real and
//! generated examples, then one step of the generator through the updated discriminator on the
//! same generated examples (as PyTorch's DCGAN example does: one generator forward per step).
//!
//! The generator maps `latent_dim` standard-normal noise to examples of the data's shape; the
//! discriminator maps an example to one logit ("real"). Each has its own [`Params`] and
//! optimizer (both configured by `train.optimizer`, both following the schedule); settings of
//! its own are in `train.gan` ([`GanTraining`]). [`GanStep`] is a [`Step`]: the same loop as
//! every other model drives it, so a GAN run has the loader, callbacks, `metrics.jsonl`,
//! checkpoints and exact resume. Its checkpoints hold both networks (`param/generator/…`,
//! `param/discriminator/…`), both optimizers' moments, the moving average of the generator
//! (`ema/…`) and the noise stream.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use models::Params;
use pipeline_core::config::Issue;
use pipeline_core::{Batch, Ctx, Dataset, Model, Rng, rng};
use rand_distr::{Distribution, StandardNormal};

use crate::checkpoint::Checkpoint;
use crate::config::{BceConfig, GanTraining, LossConfig, TrainConfig};
use crate::fit::{Callback, FitReport, Loop};
use crate::loss::loss;
use crate::optim::Optimizer;
use crate::step::{BatchResult, Step, prefixed};
use crate::{Error, Result};

/// Batches of noise whose statistics replace the generator's batch-norm running statistics
/// after weight averaging (candle's momentum is 0.1: 0.9^50 leaves 0.5 % of the old values).
pub const BN_RECALIBRATION_BATCHES: usize = 50;

/// The figures a GAN adds to each epoch's [`EpochMetrics::extra`](crate::EpochMetrics), means
/// over the epoch's batches: discriminator loss (real + generated), generator loss, and the
/// discriminator's mean probability for real and for generated examples. (`train_loss` is the
/// generator's loss, weighted by batch size like every model's.)
pub const EPOCH_FIGURES: [&str; 4] = ["d_loss", "g_loss", "d_real", "d_fake"];

/// The `train` keys a GAN run uses. Its step has no loss to choose, no accumulation, clipping,
/// penalties or learning-rate scales, no best epoch to stop at, and does not augment.
pub const TRAIN_KEYS: [&str; 10] =
    ["epochs", "batch_size", "shuffle", "optimizer", "schedule", "warmup", "checkpoint", "drop_last", "loader", "gan"];

/// The `train` settings a GAN run would ignore — any key outside [`TRAIN_KEYS`] set away from
/// its default — one issue each. [`GanTrainer`] refuses to start with any (a GAN step updates
/// after every batch, so accumulation would also break the loop's resume position).
pub fn unused_settings(config: &TrainConfig) -> Vec<Issue> {
    let fields = |t: &TrainConfig| match serde_json::to_value(t) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let defaults = fields(&TrainConfig::default());
    fields(config)
        .into_iter()
        .filter(|(key, value)| !TRAIN_KEYS.contains(&key.as_str()) && defaults.get(key) != Some(value))
        .map(|(key, _)| {
            Issue::new(
                format!("train.{key}"),
                format!("a GAN run does not use it (of `train` it reads only {})", TRAIN_KEYS.join(", ")),
            )
        })
        .collect()
}

/// A generator and a discriminator, with their parameters, trained by the shared loop.
pub struct GanTrainer<'a> {
    /// Noise `[batch, latent_dim]` → examples `[batch, ..shape]`.
    pub generator: &'a dyn Model,
    /// The generator's variables.
    pub generator_params: &'a Params,
    /// Examples → one logit each, `[batch, 1]`.
    pub discriminator: &'a dyn Model,
    /// The discriminator's variables.
    pub discriminator_params: &'a Params,
    /// Width of the generator's noise input.
    pub latent_dim: usize,
    /// The `train:` section (`epochs`, `batch_size`, `optimizer`, `schedule`, `checkpoint`,
    /// `gan`, …).
    pub config: &'a TrainConfig,
    /// Seeds noise, shuffling and dropout.
    pub seed: u64,
    /// Where the tensors live.
    pub device: &'a Device,
    /// Where checkpoints go (`None`: none are written).
    pub checkpoint_dir: Option<&'a std::path::Path>,
}

impl GanTrainer<'_> {
    /// Trains on the real examples of `data` (its targets are ignored).
    pub fn fit(&self, data: &Dataset, callbacks: &mut [&mut dyn Callback]) -> Result<FitReport> {
        let mut step = GanStep::new(self)?;
        self.as_loop().run(&mut step, data, None, callbacks, None)
    }

    /// Continues the run that wrote `checkpoint`, with the same result as if it had not stopped.
    pub fn resume(
        &self,
        checkpoint: Checkpoint,
        data: &Dataset,
        callbacks: &mut [&mut dyn Callback],
    ) -> Result<FitReport> {
        let mut step = GanStep::new(self)?;
        self.as_loop().run(&mut step, data, None, callbacks, Some(checkpoint))
    }

    fn as_loop(&self) -> Loop<'_> {
        Loop { config: self.config, seed: self.seed, device: self.device, checkpoint_dir: self.checkpoint_dir }
    }
}

/// `n` rows of standard-normal noise of width `latent_dim`, drawn from `rng`.
pub fn noise(n: usize, latent_dim: usize, rng: &mut Rng, device: &Device) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..n * latent_dim).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_vec(v, (n, latent_dim), device)
}

const GENERATOR: &str = "generator/";
const DISCRIMINATOR: &str = "discriminator/";

/// The [`Step`] of a GAN (see the module docs).
pub struct GanStep<'a> {
    generator: &'a dyn Model,
    discriminator: &'a dyn Model,
    /// Both networks' variables, `generator/…` then `discriminator/…`.
    vars: Vec<(String, Var)>,
    g_vars: Vec<(String, Var)>,
    d_vars: Vec<(String, Var)>,
    g_opt: Optimizer,
    d_opt: Optimizer,
    gan: GanTraining,
    latent_dim: usize,
    batch_size: usize,
    /// The moving average of every trained generator variable (not the batch-norm running
    /// statistics), by name.
    averaged: Vec<(String, Var, Tensor)>,
    noise_rng: Rng,
    device: &'a Device,
}

impl<'a> GanStep<'a> {
    fn new(t: &GanTrainer<'a>) -> Result<Self> {
        let c = t.config;
        let unused = unused_settings(c);
        if !unused.is_empty() {
            return Err(Error::Config(unused.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")));
        }
        let gan = c.gan.clone().unwrap_or_default();
        let (g_vars, d_vars) = (t.generator_params.named_vars(), t.discriminator_params.named_vars());
        let g_opt = Optimizer::new(c.optimizer.clone(), g_vars.clone())?;
        let d_opt = Optimizer::new(c.optimizer.clone(), d_vars.clone())?;
        let vars = (g_vars.iter().map(|(n, v)| (format!("{GENERATOR}{n}"), v.clone())))
            .chain(d_vars.iter().map(|(n, v)| (format!("{DISCRIMINATOR}{n}"), v.clone())))
            .collect();
        let averaged = if gan.ema > 0.0 {
            g_vars
                .iter()
                .filter(|(name, _)| !name.ends_with("running_mean") && !name.ends_with("running_var"))
                .map(|(name, v)| Ok((name.clone(), v.clone(), v.as_tensor().detach().copy()?)))
                .collect::<candle_core::Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Self {
            generator: t.generator,
            discriminator: t.discriminator,
            vars,
            g_vars,
            d_vars,
            g_opt,
            d_opt,
            gan,
            latent_dim: t.latent_dim,
            batch_size: c.batch_size,
            averaged,
            noise_rng: rng(t.seed, "noise"),
            device: t.device,
        })
    }
}

impl Step for GanStep<'_> {
    fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    fn optimizer_steps(&self) -> u64 {
        self.g_opt.steps()
    }

    fn train_batch(&mut self, data: &Batch, dropout: &mut Rng, lr: f64, _update: bool) -> Result<BatchResult> {
        let dev = self.device;
        let real = &data.inputs;
        let n = real.dim(0)?;
        let ones = Tensor::full(self.gan.real_label as f32, n, dev)?;
        let zeros = Tensor::zeros(n, candle_core::DType::F32, dev)?;
        let target_ones = Tensor::ones(n, candle_core::DType::U32, dev)?;

        // Discriminator: real → real_label, generated (detached) → 0.
        let z = noise(n, self.latent_dim, &mut self.noise_rng, dev)?;
        let fake = self.generator.forward(&z, &mut Ctx::train(dropout))?;
        let d_real = self.discriminator.forward(real, &mut Ctx::train(dropout))?;
        let d_fake = self.discriminator.forward(&fake.detach(), &mut Ctx::train(dropout))?;
        let d_loss = (soft_bce(&d_real, &ones)? + soft_bce(&d_fake, &zeros)?)?;
        let d_value = d_loss.to_scalar::<f32>()?;
        if !d_value.is_finite() {
            return Ok(BatchResult { loss: d_value, correct: 0, sums: Vec::new() });
        }
        let grads = d_loss.backward()?;
        self.d_opt.step(&grads_for(&grads, &self.d_vars), lr)?;

        // Generator: make the (updated) discriminator call the same samples real.
        let d_out = self.discriminator.forward(&fake, &mut Ctx::train(dropout))?;
        let bce = LossConfig::BceWithLogits(BceConfig { pos_weight: None });
        let g_loss = loss(&bce, &d_out, &target_ones)?;
        let g_value = g_loss.to_scalar::<f32>()?;
        if !g_value.is_finite() {
            return Ok(BatchResult { loss: g_value, correct: 0, sums: Vec::new() });
        }
        let grads = g_loss.backward()?;
        self.g_opt.step(&grads_for(&grads, &self.g_vars), lr)?;
        let ema = self.gan.ema;
        for (_, var, avg) in &mut self.averaged {
            // Detached: a variable's tensor records the op, and the chain of averages
            // would otherwise keep every earlier average alive.
            *avg = ((&*avg * ema)? + (var.as_tensor().detach() * (1.0 - ema))?)?;
        }
        let sums = vec![
            ("d_loss", f64::from(d_value)),
            ("g_loss", f64::from(g_value)),
            ("d_real", mean_prob(&d_real)?),
            ("d_fake", mean_prob(&d_fake)?),
        ];
        Ok(BatchResult { loss: g_value, correct: 0, sums })
    }

    fn has_accuracy(&self) -> bool {
        false
    }

    fn tracks_best(&self) -> bool {
        false
    }

    fn validate(&self, _data: &Dataset, _device: &Device) -> Result<(f64, Option<f64>)> {
        Err(Error::Config("a GAN has no validation loss: train it without a validation part".into()))
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let optim = |prefix: &str, opt: &Optimizer| {
            opt.state_tensors().into_iter().map(|(n, t)| (format!("optim/{prefix}{n}"), t)).collect::<Vec<_>>()
        };
        let mut out = optim(GENERATOR, &self.g_opt);
        out.extend(optim(DISCRIMINATOR, &self.d_opt));
        out.extend(self.averaged.iter().map(|(name, _, avg)| (format!("ema/{name}"), avg.clone())));
        out
    }

    fn state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.noise_rng).ok().map(|noise| serde_json::json!({ "noise_rng": noise }))
    }

    fn restore(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
        state: Option<&serde_json::Value>,
    ) -> std::result::Result<(), String> {
        let noise = state.and_then(|s| s.get("noise_rng")).ok_or("it holds no GAN noise stream")?;
        self.noise_rng = serde_json::from_value(noise.clone()).map_err(|e| format!("its GAN noise stream: {e}"))?;
        self.g_opt.load_state(&prefixed(tensors, &format!("optim/{GENERATOR}")), steps).map_err(|e| e.to_string())?;
        self.d_opt
            .load_state(&prefixed(tensors, &format!("optim/{DISCRIMINATOR}")), steps)
            .map_err(|e| e.to_string())?;
        for (name, _, avg) in &mut self.averaged {
            let key = format!("ema/{name}");
            *avg = tensors.get(&key).ok_or_else(|| format!("no averaged weight {key}"))?.clone();
        }
        Ok(())
    }

    /// With weight averaging: the generator takes the averaged weights, and its batch-norm
    /// running statistics are re-estimated for them.
    fn finish(&mut self, dropout: &mut Rng) -> Result<()> {
        if self.averaged.is_empty() {
            return Ok(());
        }
        for (_, var, avg) in &self.averaged {
            var.set(avg)?;
        }
        for _ in 0..BN_RECALIBRATION_BATCHES {
            let z = noise(self.batch_size.max(2), self.latent_dim, &mut self.noise_rng, self.device)?;
            self.generator.forward(&z, &mut Ctx::train(dropout))?;
        }
        Ok(())
    }
}

/// Binary cross-entropy on logits `[n, 1]` against real-valued targets `[n]` in `[0, 1]`.
fn soft_bce(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let z = logits.flatten_all()?;
    let log_sig_neg = ((z.abs()?.neg()?.exp()? + 1.0)?.log()? + z.neg()?.relu()?)?;
    ((&z - (&z * targets)?)? + log_sig_neg)?.mean_all()
}

fn mean_prob(logits: &Tensor) -> candle_core::Result<f64> {
    Ok(f64::from(candle_nn::ops::sigmoid(logits)?.mean_all()?.to_scalar::<f32>()?))
}

fn grads_for(store: &candle_core::backprop::GradStore, vars: &[(String, Var)]) -> Vec<Option<Tensor>> {
    vars.iter().map(|(_, v)| store.get(v.as_tensor()).cloned()).collect()
}

#[cfg(test)]
mod tests {
    use models::{MlpConfig, ModelConfig, ModelSpec};
    use pipeline_core::{Feature, FeatureKind, InputSchema, Schema, Target, Targets, Task};

    use super::*;
    use crate::EpochMetrics;
    use crate::config::CheckpointConfig;
    use crate::fit::Control;
    use crate::optim::{AdamConfig, OptimizerConfig};

    /// Calls a closure after every epoch.
    struct EachEpoch<F>(F);

    impl<F: FnMut(&EpochMetrics)> Callback for EachEpoch<F> {
        fn on_epoch_end(&mut self, m: &EpochMetrics) -> Result<Control> {
            (self.0)(m);
            Ok(Control::Continue)
        }
    }

    /// Real data, 2-D points around (2, -1), and a small MLP generator (4-d noise) and
    /// discriminator with their parameters.
    struct Toy {
        data: Dataset,
        g: Box<dyn Model>,
        gp: Params,
        d: Box<dyn Model>,
        dp: Params,
    }

    fn toy() -> Toy {
        let dev = Device::Cpu;
        let mut r = rng(0, "data");
        let xs: Vec<f32> = (0..512)
            .flat_map(|_| {
                let a: f32 = StandardNormal.sample(&mut r);
                let b: f32 = StandardNormal.sample(&mut r);
                [2.0 + 0.3 * a, -1.0 + 0.3 * b]
            })
            .collect();
        let schema = Schema {
            input: InputSchema::Tabular {
                features: ["x", "y"]
                    .iter()
                    .map(|n| Feature { name: n.to_string(), kind: FeatureKind::Numeric })
                    .collect(),
            },
            target: Target { name: "none".into(), task: Task::Generation },
        };
        let data = Dataset::new(schema, xs, Targets::Values(vec![0.0; 512])).unwrap();
        let mlp = |hidden| {
            ModelConfig::Mlp(MlpConfig { hidden, activation: models::Activation::LeakyRelu, ..Default::default() })
        };
        let (gp, dp) = (Params::new(rng(1, "g")), Params::new(rng(1, "d")));
        let g = models::build(
            &mlp(vec![16, 16]),
            &ModelSpec { input_shape: vec![4], outputs: 2, vocab: None, series: None },
            gp.var_builder(&dev),
        )
        .unwrap();
        let d = models::build(
            &mlp(vec![16]),
            &ModelSpec { input_shape: vec![2], outputs: 1, vocab: None, series: None },
            dp.var_builder(&dev),
        )
        .unwrap();
        Toy { data, g, gp, d, dp }
    }

    fn config(epochs: usize, ema: f64) -> TrainConfig {
        let adam = OptimizerConfig::Adam(AdamConfig {
            lr: 0.001,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        });
        TrainConfig {
            epochs,
            batch_size: 32,
            optimizer: adam,
            gan: Some(GanTraining { real_label: 1.0, ema }),
            ..Default::default()
        }
    }

    impl Toy {
        fn trainer<'a>(&'a self, config: &'a TrainConfig) -> GanTrainer<'a> {
            GanTrainer {
                generator: self.g.as_ref(),
                generator_params: &self.gp,
                discriminator: self.d.as_ref(),
                discriminator_params: &self.dp,
                latent_dim: 4,
                config,
                seed: 3,
                device: &Device::Cpu,
                checkpoint_dir: None,
            }
        }

        /// The generator's weights, flattened in name order.
        fn generator_weights(&self) -> Vec<f32> {
            let vars = self.gp.named_vars();
            vars.iter().flat_map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
        }
    }

    /// The generator must learn to produce the data's points.
    #[test]
    fn generator_learns_the_data_distribution() {
        let dev = Device::Cpu;
        let t = toy();
        let config = config(100, 0.0);
        let trainer = t.trainer(&config);
        // GAN training oscillates around the target (by ~0.1-0.5 here): ask for the generated mean
        // to stay, over the last 20 epochs, far closer to the data's than the untrained generator's was.
        let z = noise(2000, 4, &mut rng(9, "sample"), &dev).unwrap();
        let distance = |g: &dyn Model| {
            let samples = g.forward(&z, &mut Ctx::infer()).unwrap().to_vec2::<f32>().unwrap();
            let mean = |j: usize| samples.iter().map(|s| s[j]).sum::<f32>() / samples.len() as f32;
            ((mean(0) - 2.0).powi(2) + (mean(1) + 1.0).powi(2)).sqrt()
        };
        let before = distance(t.g.as_ref());
        let mut distances = Vec::new();
        let report = trainer
            .fit(&t.data, &mut [&mut EachEpoch(|_: &EpochMetrics| distances.push(distance(t.g.as_ref())))])
            .unwrap();
        let history = report.history;
        assert_eq!((distances.len(), history.len()), (100, 100));
        let after = distances[80..].iter().sum::<f32>() / 20.0;
        assert!(
            after < 0.4 && after < before / 4.0,
            "distance of the generated mean to (2, -1): {before} before, {after} on average over the last 20 epochs"
        );
        // At equilibrium the discriminator cannot tell: its outputs are far from 0 / 1.
        let last = &history.last().unwrap().extra;
        assert!(last["d_fake"] > 0.2 && last["d_real"] < 0.8, "{last:?}");
    }

    /// The DCGAN networks of `models::gan`, small: 4-d noise to 1x8x8 images and back.
    struct Dcgan {
        g: models::gan::Generator,
        gp: Params,
        d: models::gan::Discriminator,
        dp: Params,
    }

    fn dcgan() -> Dcgan {
        let dev = Device::Cpu;
        let spec = ModelSpec { input_shape: vec![1, 8, 8], outputs: 0, vocab: None, series: None };
        let cfg =
            models::GanConfig { latent_dim: 4, generator: vec![8, 4], discriminator: vec![4], ..Default::default() };
        let (gp, dp) = (Params::new(rng(2, "g")), Params::new(rng(2, "d")));
        let g = models::gan::Generator::new(&cfg, &spec, gp.var_builder(&dev)).unwrap();
        let d = models::gan::Discriminator::new(&cfg, &spec, dp.var_builder(&dev)).unwrap();
        Dcgan { g, gp, d, dp }
    }

    impl Dcgan {
        fn trainer<'a>(&'a self, config: &'a TrainConfig, dir: Option<&'a std::path::Path>) -> GanTrainer<'a> {
            GanTrainer {
                generator: &self.g,
                generator_params: &self.gp,
                discriminator: &self.d,
                discriminator_params: &self.dp,
                latent_dim: 4,
                config,
                seed: 3,
                device: &Device::Cpu,
                checkpoint_dir: dir,
            }
        }
    }

    /// `n` random 1x8x8 images with values in [0, 1).
    fn images8(n: usize) -> Dataset {
        let mut r = rng(0, "data");
        let xs: Vec<f32> = (0..n * 64).map(|_| rand::Rng::random::<f32>(&mut r)).collect();
        let schema = Schema {
            input: InputSchema::Image { channels: 1, height: 8, width: 8 },
            target: Target { name: "none".into(), task: Task::Generation },
        };
        Dataset::new(schema, xs, Targets::Values(vec![0.0; n])).unwrap()
    }

    /// After weight averaging, the generator's batch-norm running statistics are re-estimated
    /// for the averaged weights: in inference mode it draws what batch statistics give.
    #[test]
    fn averaged_generator_gets_matching_batch_norm_statistics() {
        let dev = Device::Cpu;
        let net = dcgan();
        let data = images8(128);
        // A large learning rate moves the weights far, so statistics of the last weights would
        // not fit the averaged ones.
        let mut config = config(5, 0.9);
        if let OptimizerConfig::Adam(a) = &mut config.optimizer {
            a.lr = 0.05;
        }
        let trainer = net.trainer(&config, None);
        let g = &net.g;
        trainer.fit(&data, &mut []).unwrap();
        let z = noise(1024, 4, &mut rng(9, "sample"), &dev).unwrap();
        let inferred = g.forward(&z, &mut Ctx::infer()).unwrap();
        let batch_stats = g.forward(&z, &mut Ctx::train(&mut rng(0, "dropout"))).unwrap();
        let diff = (inferred - batch_stats).unwrap().abs().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 0.01, "mean |inference - batch statistics| = {diff}");
    }

    /// Weight averaging weighs the old average by the decay and the new weights by the rest: a
    /// decay near 0 ends at the last weights, one near 1 stays at the first, and one between
    /// ends between them (training itself is unchanged by it).
    #[test]
    fn generator_weight_averaging_keeps_a_moving_average() {
        let run = |ema: f64| {
            let t = toy();
            let initial = t.generator_weights();
            let history = t.trainer(&config(3, ema)).fit(&t.data, &mut []).unwrap().history;
            (initial, t.generator_weights(), history)
        };
        let (initial, last, plain) = run(0.0);
        let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(max_diff(&initial, &last) > 0.01, "training moves the weights");

        let (_, near_last, history) = run(1e-9);
        let losses = |h: &[EpochMetrics]| h.iter().map(|e| (e.extra["d_loss"], e.extra["g_loss"])).collect::<Vec<_>>();
        assert_eq!(losses(&history), losses(&plain), "averaging does not change training");
        assert!(max_diff(&near_last, &last) < 1e-6, "decay ~0 is the last weights");
        let (_, near_first, _) = run(1.0 - 1e-9);
        assert!(max_diff(&near_first, &initial) < 1e-5, "decay ~1 is the first weights");
        let (_, between, _) = run(0.9);
        assert!(max_diff(&between, &last) > 1e-4 && max_diff(&between, &initial) > 1e-4);
    }

    /// A GAN run stopped at any checkpoint — mid-epoch or at an epoch's end, with weight
    /// averaging and batch norm (the DCGAN networks) — and resumed ends with the same weights,
    /// bit for bit, and the same per-epoch figures as the run that never stopped.
    #[test]
    fn a_resumed_gan_run_ends_with_the_same_weights() {
        let dev = Device::Cpu;
        let data = images8(40);
        let mut config = config(3, 0.9);
        config.batch_size = 16; // 3 batches per epoch, the last one short
        config.checkpoint = CheckpointConfig { every_epochs: 1, every_steps: 2, keep: 100 };
        // Trains from fresh networks (with or without a checkpoint to resume); returns both
        // networks' weights, the epochs' figures and the checkpoints written.
        let train = |dir: &std::path::Path, resume: Option<&std::path::Path>| {
            let net = dcgan();
            let trainer = net.trainer(&config, Some(dir));
            let report = match resume {
                None => trainer.fit(&data, &mut []).unwrap(),
                Some(p) => trainer.resume(crate::checkpoint::read(p, &dev).unwrap(), &data, &mut []).unwrap(),
            };
            let mut vars = net.gp.named_vars();
            vars.extend(net.dp.named_vars());
            let w: Vec<Vec<f32>> =
                vars.iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect();
            let figures: Vec<_> = report.history.iter().map(|e| (e.train_loss, e.extra.clone())).collect();
            (w, figures, crate::checkpoint::list(dir))
        };
        let whole = tempfile::tempdir().unwrap();
        let (weights, figures, checkpoints) = train(whole.path(), None);
        let names: Vec<String> =
            checkpoints.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.contains(&"epoch-0001-batch-00002.ckpt".to_string()), "{names:?}");
        assert!(names.contains(&"epoch-0002.ckpt".to_string()), "{names:?}");
        assert!(!whole.path().join(crate::checkpoint::BEST).exists(), "a GAN has no best epoch");
        assert_eq!(figures.len(), 3);
        assert!(figures.iter().all(|(_, extra)| EPOCH_FIGURES.iter().all(|k| extra[*k].is_finite())));
        for ck in &checkpoints {
            let again = tempfile::tempdir().unwrap();
            let (w, f, _) = train(again.path(), Some(ck));
            assert!(w == weights, "resuming from {} changed the weights", ck.display());
            assert_eq!(f, figures, "resuming from {}", ck.display());
        }
    }

    /// The trainer refuses settings its step would ignore, naming them.
    #[test]
    fn settings_a_gan_would_ignore_are_refused() {
        let net = dcgan();
        let config = TrainConfig { accumulate: 2, clip_norm: Some(1.0), ..config(1, 0.0) };
        let err = net.trainer(&config, None).fit(&images8(8), &mut []).expect_err("must fail").to_string();
        assert!(err.starts_with("train.accumulate: a GAN run does not use it"), "{err}");
        assert!(err.contains("; train.clip_norm: "), "{err}");
        assert!(unused_settings(&self::config(1, 0.0)).is_empty());
    }
}
