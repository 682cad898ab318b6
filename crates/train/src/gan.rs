//! The two-optimizer loop of a generative adversarial network (Goodfellow et al., 2014, with
//! the non-saturating generator loss): per batch, one step of the discriminator on real and
//! generated examples, then one step of the generator through the updated discriminator on the
//! same generated examples (as PyTorch's DCGAN example does: one generator forward per step).
//!
//! The generator maps `latent_dim` standard-normal noise to examples of the data's shape; the
//! discriminator maps an example to one logit ("real"). Each has its own [`Params`] and
//! optimizer; noise and shuffling come from seeded streams.

use std::time::Instant;

use candle_core::{Device, Tensor};
use models::Params;
use pipeline_core::{Ctx, Dataset, Model, Rng, rng};
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::config::{BceConfig, LossConfig};
use crate::loss::loss;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::{Error, Result};

/// How to train a GAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GanConfig {
    /// Passes over the real examples.
    pub epochs: usize,
    /// Real (and generated) examples per step.
    pub batch_size: usize,
    /// Size of the generator's noise input.
    pub latent_dim: usize,
    /// The generator's optimizer.
    pub generator_optimizer: OptimizerConfig,
    /// The discriminator's optimizer.
    pub discriminator_optimizer: OptimizerConfig,
    /// The target of real examples for the discriminator (one-sided label smoothing: 0.9 is
    /// common; 1.0 is none).
    #[serde(default = "one")]
    pub real_label: f64,
    /// Decay of an exponential moving average of the generator's weights (0: none). With it,
    /// the generator ends with the averaged weights, and its batch-norm running statistics are
    /// then re-estimated from [`BN_RECALIBRATION_BATCHES`] batches of noise.
    #[serde(default)]
    pub ema: f64,
}

/// Batches of noise whose statistics replace the generator's batch-norm running statistics
/// after weight averaging (candle's momentum is 0.1: 0.9^50 leaves 0.5 % of the old values).
pub const BN_RECALIBRATION_BATCHES: usize = 50;

fn one() -> f64 {
    1.0
}

/// What one GAN epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GanEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean discriminator loss (real + generated).
    pub d_loss: f64,
    /// Mean generator loss.
    pub g_loss: f64,
    /// Mean probability the discriminator gave real examples.
    pub d_real: f64,
    /// Mean probability the discriminator gave generated examples.
    pub d_fake: f64,
    /// Wall time.
    pub seconds: f64,
}

/// A generator and a discriminator, with their parameters.
pub struct GanTrainer<'a> {
    /// Noise `[batch, latent_dim]` → examples `[batch, ..shape]`.
    pub generator: &'a dyn Model,
    /// The generator's variables.
    pub generator_params: &'a Params,
    /// Examples → one logit each, `[batch, 1]`.
    pub discriminator: &'a dyn Model,
    /// The discriminator's variables.
    pub discriminator_params: &'a Params,
    /// How to train.
    pub config: &'a GanConfig,
    /// Seeds noise, shuffling and dropout.
    pub seed: u64,
    /// Where the tensors live.
    pub device: &'a Device,
}

/// `n` rows of standard-normal noise of width `latent_dim`, drawn from `rng`.
pub fn noise(n: usize, latent_dim: usize, rng: &mut Rng, device: &Device) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..n * latent_dim).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_vec(v, (n, latent_dim), device)
}

impl GanTrainer<'_> {
    /// Trains on the real examples of `data` (its targets are ignored), calling `on_epoch`
    /// after each epoch.
    pub fn fit(&self, data: &Dataset, on_epoch: &mut dyn FnMut(&GanEpoch)) -> Result<Vec<GanEpoch>> {
        let c = self.config;
        if data.is_empty() {
            return Err(Error::NoData);
        }
        let mut g_opt = Optimizer::new(c.generator_optimizer.clone(), self.generator_params.named_vars())?;
        let mut d_opt = Optimizer::new(c.discriminator_optimizer.clone(), self.discriminator_params.named_vars())?;
        let (g_vars, d_vars) = (self.generator_params.named_vars(), self.discriminator_params.named_vars());
        let bce = LossConfig::BceWithLogits(BceConfig { pos_weight: None });
        // The averaged generator: every trained variable (not the batch-norm running statistics).
        let mut averaged: Vec<(candle_core::Var, Tensor)> = if c.ema > 0.0 {
            g_vars
                .iter()
                .filter(|(name, _)| !name.ends_with("running_mean") && !name.ends_with("running_var"))
                .map(|(_, v)| Ok((v.clone(), v.as_tensor().detach().copy()?)))
                .collect::<candle_core::Result<_>>()?
        } else {
            Vec::new()
        };
        let mut shuffle_rng = rng(self.seed, "shuffle");
        let mut noise_rng = rng(self.seed, "noise");
        let mut dropout_rng = rng(self.seed, "dropout");
        let mut history = Vec::new();
        for epoch in 1..=c.epochs {
            let start = Instant::now();
            let mut order: Vec<usize> = (0..data.len()).collect();
            order.shuffle(&mut shuffle_rng);
            let (mut d_sum, mut g_sum, mut real_sum, mut fake_sum, mut batches) = (0f64, 0f64, 0f64, 0f64, 0usize);
            for idx in order.chunks(c.batch_size.max(1)) {
                let n = idx.len();
                let real = data.batch(idx, self.device)?.inputs;
                let ones = Tensor::full(c.real_label as f32, n, self.device)?;
                let zeros = Tensor::zeros(n, candle_core::DType::F32, self.device)?;
                let target_ones = Tensor::ones(n, candle_core::DType::F32, self.device)?;

                // Discriminator: real → real_label, generated (detached) → 0.
                let z = noise(n, c.latent_dim, &mut noise_rng, self.device)?;
                let fake = self.generator.forward(&z, &mut Ctx::train(&mut dropout_rng))?;
                let d_real = self.discriminator.forward(&real, &mut Ctx::train(&mut dropout_rng))?;
                let d_fake = self.discriminator.forward(&fake.detach(), &mut Ctx::train(&mut dropout_rng))?;
                let d_loss = (soft_bce(&d_real, &ones)? + soft_bce(&d_fake, &zeros)?)?;
                let d_value = d_loss.to_scalar::<f32>()?;
                if !d_value.is_finite() {
                    return Err(Error::Diverged { epoch, batch: batches + 1, loss: d_value, checkpoint: None });
                }
                let grads = d_loss.backward()?;
                d_opt.step(&grads_for(&grads, &d_vars), c.discriminator_optimizer.lr())?;

                // Generator: make the (updated) discriminator call the same samples real.
                let d_out = self.discriminator.forward(&fake, &mut Ctx::train(&mut dropout_rng))?;
                let g_loss = loss(&bce, &d_out, &target_ones.to_dtype(candle_core::DType::U32)?)?;
                let g_value = g_loss.to_scalar::<f32>()?;
                if !g_value.is_finite() {
                    return Err(Error::Diverged { epoch, batch: batches + 1, loss: g_value, checkpoint: None });
                }
                let grads = g_loss.backward()?;
                g_opt.step(&grads_for(&grads, &g_vars), c.generator_optimizer.lr())?;
                for (var, avg) in &mut averaged {
                    // Detached: a variable's tensor records the op, and the chain of averages
                    // would otherwise keep every earlier average alive.
                    *avg = ((&*avg * c.ema)? + (var.as_tensor().detach() * (1.0 - c.ema))?)?;
                }

                d_sum += f64::from(d_value);
                g_sum += f64::from(g_value);
                real_sum += mean_prob(&d_real)?;
                fake_sum += mean_prob(&d_fake)?;
                batches += 1;
            }
            let b = batches.max(1) as f64;
            let e = GanEpoch {
                epoch,
                d_loss: d_sum / b,
                g_loss: g_sum / b,
                d_real: real_sum / b,
                d_fake: fake_sum / b,
                seconds: start.elapsed().as_secs_f64(),
            };
            on_epoch(&e);
            history.push(e);
        }
        if !averaged.is_empty() {
            for (var, avg) in &averaged {
                var.set(avg)?;
            }
            for _ in 0..BN_RECALIBRATION_BATCHES {
                let z = noise(c.batch_size.max(2), c.latent_dim, &mut noise_rng, self.device)?;
                self.generator.forward(&z, &mut Ctx::train(&mut dropout_rng))?;
            }
        }
        Ok(history)
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

fn grads_for(store: &candle_core::backprop::GradStore, vars: &[(String, candle_core::Var)]) -> Vec<Option<Tensor>> {
    vars.iter().map(|(_, v)| store.get(v.as_tensor()).cloned()).collect()
}

#[cfg(test)]
mod tests {
    use models::{MlpConfig, ModelConfig, ModelSpec};
    use pipeline_core::{Feature, FeatureKind, InputSchema, Schema, Target, Targets, Task};

    use super::*;
    use crate::optim::AdamConfig;

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
            &ModelSpec { input_shape: vec![4], outputs: 2, vocab: None },
            gp.var_builder(&dev),
        )
        .unwrap();
        let d = models::build(
            &mlp(vec![16]),
            &ModelSpec { input_shape: vec![2], outputs: 1, vocab: None },
            dp.var_builder(&dev),
        )
        .unwrap();
        Toy { data, g, gp, d, dp }
    }

    fn config(epochs: usize, ema: f64) -> GanConfig {
        let adam = OptimizerConfig::Adam(AdamConfig {
            lr: 0.001,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        });
        GanConfig {
            epochs,
            batch_size: 32,
            latent_dim: 4,
            generator_optimizer: adam.clone(),
            discriminator_optimizer: adam,
            real_label: 1.0,
            ema,
        }
    }

    impl Toy {
        fn trainer<'a>(&'a self, config: &'a GanConfig) -> GanTrainer<'a> {
            GanTrainer {
                generator: self.g.as_ref(),
                generator_params: &self.gp,
                discriminator: self.d.as_ref(),
                discriminator_params: &self.dp,
                config,
                seed: 3,
                device: &Device::Cpu,
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
        let history = trainer.fit(&t.data, &mut |_| distances.push(distance(t.g.as_ref()))).unwrap();
        assert_eq!((distances.len(), history.len()), (100, 100));
        let after = distances[80..].iter().sum::<f32>() / 20.0;
        assert!(
            after < 0.4 && after < before / 4.0,
            "distance of the generated mean to (2, -1): {before} before, {after} on average over the last 20 epochs"
        );
        // At equilibrium the discriminator cannot tell: its outputs are far from 0 / 1.
        let last = history.last().unwrap();
        assert!(last.d_fake > 0.2 && last.d_real < 0.8, "{last:?}");
    }

    /// After weight averaging, the generator's batch-norm running statistics are re-estimated
    /// for the averaged weights: in inference mode it draws what batch statistics give.
    #[test]
    fn averaged_generator_gets_matching_batch_norm_statistics() {
        let dev = Device::Cpu;
        let spec = ModelSpec { input_shape: vec![1, 8, 8], outputs: 0, vocab: None };
        let cfg =
            models::GanConfig { latent_dim: 4, generator: vec![8, 4], discriminator: vec![4], ..Default::default() };
        let (gp, dp) = (Params::new(rng(2, "g")), Params::new(rng(2, "d")));
        let g = models::gan::Generator::new(&cfg, &spec, gp.var_builder(&dev)).unwrap();
        let d = models::gan::Discriminator::new(&cfg, &spec, dp.var_builder(&dev)).unwrap();
        let mut r = rng(0, "data");
        let xs: Vec<f32> = (0..128 * 64).map(|_| rand::Rng::random::<f32>(&mut r)).collect();
        let schema = Schema {
            input: InputSchema::Image { channels: 1, height: 8, width: 8 },
            target: Target { name: "none".into(), task: Task::Generation },
        };
        let data = Dataset::new(schema, xs, Targets::Values(vec![0.0; 128])).unwrap();
        // A large learning rate moves the weights far, so statistics of the last weights would
        // not fit the averaged ones.
        let mut config = config(5, 0.9);
        for opt in [&mut config.generator_optimizer, &mut config.discriminator_optimizer] {
            if let OptimizerConfig::Adam(a) = opt {
                a.lr = 0.05;
            }
        }
        let trainer = GanTrainer {
            generator: &g,
            generator_params: &gp,
            discriminator: &d,
            discriminator_params: &dp,
            config: &config,
            seed: 3,
            device: &dev,
        };
        trainer.fit(&data, &mut |_| {}).unwrap();
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
            let history = t.trainer(&config(3, ema)).fit(&t.data, &mut |_| {}).unwrap();
            (initial, t.generator_weights(), history)
        };
        let (initial, last, plain) = run(0.0);
        let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(max_diff(&initial, &last) > 0.01, "training moves the weights");

        let (_, near_last, history) = run(1e-9);
        let losses = |h: &[GanEpoch]| h.iter().map(|e| (e.d_loss, e.g_loss)).collect::<Vec<_>>();
        assert_eq!(losses(&history), losses(&plain), "averaging does not change training");
        assert!(max_diff(&near_last, &last) < 1e-6, "decay ~0 is the last weights");
        let (_, near_first, _) = run(1.0 - 1e-9);
        assert!(max_diff(&near_first, &initial) < 1e-5, "decay ~1 is the first weights");
        let (_, between, _) = run(0.9);
        assert!(max_diff(&between, &last) > 1e-4 && max_diff(&between, &initial) > 1e-4);
    }
}
