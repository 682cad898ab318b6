//! `model: {arch: gan, …}`: a DCGAN-style generator and discriminator for small images
//! (Radford et al., 2016), trained by `train::gan`.
//!
//! - [`Generator`]: noise `[n, latent_dim]` → a linear projection to `c₀ × H/2ᵏ × W/2ᵏ`, batch
//!   norm and ReLU, then `k` stages of ×2 nearest-neighbour upsampling and a 3×3 convolution
//!   (batch norm and ReLU between stages, a sigmoid after the last), ending at `C × H × W` in
//!   `[0, 1]` — the range `scale: pixel` gives real images. Upsampling followed by convolution
//!   rather than transposed convolution avoids checkerboard artefacts (Odena et al., 2016).
//! - [`Discriminator`]: 3×3 stride-2 convolutions with LeakyReLU(0.2) and dropout, then one
//!   linear logit ("real").
//!
//! Weights start from N(0, 0.02) as in the DCGAN paper (batch-norm scales from N(1, 0.02)),
//! drawn from the seeded [`Params`](crate::Params). Convolutions run on the fused CPU kernels
//! where the CNNs do (`kernels::conv2d`). The generator is what a bundle stores and
//! serves (`dlp sample`); [`build`](crate::build) of a GAN config builds it.

use candle_core::{Module, ModuleT, Result, Shape, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, Init, Linear, VarBuilder};
use pipeline_core::config::Issue;
use pipeline_core::{Ctx, Model};
use serde::{Deserialize, Serialize};

use crate::ModelSpec;
use crate::layers::dropout;
use crate::summary::{LayerInfo, Summarize};

fn default_latent() -> usize {
    64
}
fn default_generator() -> Vec<usize> {
    vec![128, 64]
}
fn default_discriminator() -> Vec<usize> {
    vec![64, 128]
}
fn default_dropout() -> f32 {
    0.3
}
fn default_kernel() -> usize {
    3
}

/// `model: {arch: gan, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GanConfig {
    /// Size of the generator's standard-normal noise input.
    #[serde(default = "default_latent")]
    pub latent_dim: usize,
    /// Generator channels from the coarsest resolution up: `[128, 64]` for 28×28 starts at
    /// 128×7×7, upsamples to 64×14×14, then to the image's channels at 28×28. The image's height
    /// and width must be divisible by `2^len`.
    #[serde(default = "default_generator")]
    pub generator: Vec<usize>,
    /// Discriminator channels, one stride-2 convolution each.
    #[serde(default = "default_discriminator")]
    pub discriminator: Vec<usize>,
    /// Dropout after each discriminator convolution.
    #[serde(default = "default_dropout")]
    pub dropout: f32,
    /// Side of the generator's square convolution kernels (odd; padding keeps the size).
    #[serde(default = "default_kernel")]
    pub generator_kernel: usize,
    /// Side of the discriminator's square convolution kernels (odd; padding `k / 2`, stride 2).
    #[serde(default = "default_kernel")]
    pub discriminator_kernel: usize,
    /// Where bundles written before `train.gan` existed kept the discriminator's target for
    /// real images: read (so those bundles load) and ignored; a config that sets it is told
    /// to use `train.gan.real_label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_label: Option<f64>,
    /// As `real_label`, for the weight averaging now in `train.gan.ema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<f64>,
}

impl Default for GanConfig {
    fn default() -> Self {
        Self {
            latent_dim: default_latent(),
            generator: default_generator(),
            discriminator: default_discriminator(),
            dropout: default_dropout(),
            generator_kernel: default_kernel(),
            discriminator_kernel: default_kernel(),
            real_label: None,
            ema: None,
        }
    }
}

impl GanConfig {
    /// Checks the values serde cannot.
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.latent_dim == 0 {
            issues.push(Issue::new(format!("{key}.latent_dim"), "must be at least 1"));
        }
        for (name, v) in [("generator", &self.generator), ("discriminator", &self.discriminator)] {
            if v.is_empty() || v.contains(&0) {
                issues
                    .push(Issue::new(format!("{key}.{name}"), format!("needs at least one positive width, got {v:?}")));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            issues.push(Issue::new(format!("{key}.dropout"), format!("must be in [0, 1), got {}", self.dropout)));
        }
        for (name, set) in [("real_label", self.real_label.is_some()), ("ema", self.ema.is_some())] {
            if set {
                issues.push(Issue::new(
                    format!("{key}.{name}"),
                    format!("is a training setting: it moved to `train.gan.{name}`"),
                ));
            }
        }
        for (name, k) in
            [("generator_kernel", self.generator_kernel), ("discriminator_kernel", self.discriminator_kernel)]
        {
            if k == 0 || k % 2 == 0 || k > 7 {
                issues.push(Issue::new(format!("{key}.{name}"), format!("must be 1, 3, 5 or 7, got {k}")));
            }
        }
        issues
    }

    /// Checks the config against the data: image inputs whose sides halve `len(generator)` times.
    pub fn check(&self, key: &str, spec: &ModelSpec) -> Vec<Issue> {
        let [_, h, w] = spec.input_shape[..] else {
            return vec![Issue::new(
                format!("{key}.arch"),
                format!("a GAN generates images; the data's examples have shape {:?}", spec.input_shape),
            )];
        };
        let f = 1usize << self.generator.len().min(16);
        if h % f != 0 || w % f != 0 {
            return vec![Issue::new(
                format!("{key}.generator"),
                format!(
                    "{} upsampling stages need image sides divisible by {f}, the images are {h}x{w}",
                    self.generator.len()
                ),
            )];
        }
        Vec::new()
    }
}

fn normal(vb: &VarBuilder, shape: impl Into<Shape>, name: &str, mean: f64) -> Result<Tensor> {
    vb.get_with_hints(shape, name, Init::Randn { mean, stdev: 0.02 })
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let w = normal(&vb, (cout, cin, k, k), "weight", 0.0)?;
    let b = vb.get_with_hints(cout, "bias", Init::Const(0.0))?;
    Ok(Conv2d::new(w, Some(b), Conv2dConfig { padding: k / 2, stride, dilation: 1, groups: 1, cudnn_fwd_algo: None }))
}

fn bn(n: usize, vb: VarBuilder) -> Result<BatchNorm> {
    // DCGAN's init of the scale; candle's batch_norm reads `weight` / `bias` and the running stats.
    let _ = normal(&vb, n, "weight", 1.0)?;
    crate::cnn::batch_norm(n, vb)
}

/// The generator: noise → images.
pub struct Generator {
    latent_dim: usize,
    start: [usize; 3],
    project: Linear,
    project_bn: BatchNorm,
    stages: Vec<(Conv2d, Option<BatchNorm>)>,
    channels: usize,
}

impl Generator {
    /// Builds the generator of images of `spec.input_shape` under `vb`.
    pub fn new(cfg: &GanConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let [c, h, w] = spec.input_shape[..] else {
            candle_core::bail!("a GAN generates [channels, height, width] images")
        };
        let f = 1usize << cfg.generator.len();
        let start = [cfg.generator[0], h / f, w / f];
        let width = start.iter().product::<usize>();
        let pw = normal(&vb.pp("project"), (width, cfg.latent_dim), "weight", 0.0)?;
        let pb = vb.pp("project").get_with_hints(width, "bias", Init::Const(0.0))?;
        let project_bn = bn(start[0], vb.pp("project_bn"))?;
        let mut stages = Vec::new();
        for (i, &cin) in cfg.generator.iter().enumerate() {
            let last = i + 1 == cfg.generator.len();
            let cout = if last { c } else { cfg.generator[i + 1] };
            let vb = vb.pp("stages").pp(i.to_string());
            let norm = if last { None } else { Some(bn(cout, vb.pp("bn"))?) };
            stages.push((conv(cin, cout, cfg.generator_kernel, 1, vb.pp("conv"))?, norm));
        }
        Ok(Self {
            latent_dim: cfg.latent_dim,
            start,
            project: Linear::new(pw, Some(pb)),
            project_bn,
            stages,
            channels: c,
        })
    }

    /// The size of the noise input.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }
}

impl Model for Generator {
    fn forward(&self, z: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let n = z.dim(0)?;
        let [c0, h0, w0] = self.start;
        let mut xs = self.project.forward(z)?.reshape((n, c0, h0, w0))?;
        xs = self.project_bn.forward_t(&xs, ctx.is_train())?.relu()?;
        for (conv, norm) in &self.stages {
            let (h, w) = (xs.dim(2)?, xs.dim(3)?);
            xs = crate::cnn::conv_forward(conv, &xs.upsample_nearest2d(h * 2, w * 2)?)?;
            xs = match norm {
                Some(bn) => bn.forward_t(&xs, ctx.is_train())?.relu()?,
                None => candle_nn::ops::sigmoid(&xs)?,
            };
        }
        Ok(xs)
    }
}

impl Summarize for Generator {
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo> {
        let _ = input;
        let [mut c, mut h, mut w] = self.start;
        let mut out = vec![
            LayerInfo::new("input".into(), "Noise".into(), vec![self.latent_dim]),
            LayerInfo::new("project".into(), format!("Linear {}→{}", self.latent_dim, c * h * w), vec![c, h, w]),
            LayerInfo::new("project_bn".into(), "BatchNorm2d + ReLU".into(), vec![c, h, w]),
        ];
        for (i, (conv, norm)) in self.stages.iter().enumerate() {
            (h, w) = (h * 2, w * 2);
            let cout = conv.weight().dim(0).unwrap_or(self.channels);
            out.push(LayerInfo::new(format!("stages.{i}.up"), "Upsample ×2".into(), vec![c, h, w]));
            let k = conv.weight().dim(3).unwrap_or(0);
            out.push(LayerInfo::new(
                format!("stages.{i}.conv"),
                format!("Conv2d {c}→{cout} {k}x{k}"),
                vec![cout, h, w],
            ));
            c = cout;
            let after = if norm.is_some() { "BatchNorm2d + ReLU" } else { "Sigmoid" };
            out.push(LayerInfo::new(format!("stages.{i}.out"), after.into(), vec![c, h, w]));
        }
        out
    }
}

/// The discriminator: images → one logit ("real").
pub struct Discriminator {
    convs: Vec<Conv2d>,
    head: Linear,
    dropout: f32,
}

impl Discriminator {
    /// Builds the discriminator of images of `spec.input_shape` under `vb`.
    pub fn new(cfg: &GanConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let [mut c, mut h, mut w] = spec.input_shape[..] else {
            candle_core::bail!("a GAN discriminates [channels, height, width] images")
        };
        let mut convs = Vec::new();
        for (i, &cout) in cfg.discriminator.iter().enumerate() {
            convs.push(conv(c, cout, cfg.discriminator_kernel, 2, vb.pp("convs").pp(i.to_string()))?);
            (c, h, w) = (cout, h.div_ceil(2), w.div_ceil(2));
        }
        let hw = normal(&vb.pp("head"), (1, c * h * w), "weight", 0.0)?;
        let hb = vb.pp("head").get_with_hints(1, "bias", Init::Const(0.0))?;
        Ok(Self { convs, head: Linear::new(hw, Some(hb)), dropout: cfg.dropout })
    }
}

impl Model for Discriminator {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let mut xs = xs.clone();
        for conv in &self.convs {
            xs = candle_nn::ops::leaky_relu(&crate::cnn::conv_forward(conv, &xs)?, 0.2)?;
            xs = dropout(&xs, self.dropout, ctx)?;
        }
        self.head.forward(&xs.flatten_from(1)?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use pipeline_core::rng;

    use super::*;
    use crate::Params;

    #[test]
    fn shapes_ranges_and_config_checks() {
        let dev = Device::Cpu;
        let spec = ModelSpec { input_shape: vec![1, 28, 28], outputs: 0, vocab: None, series: None };
        let cfg = GanConfig::default();
        let (gp, dp) = (Params::new(rng(0, "g")), Params::new(rng(0, "d")));
        let g = Generator::new(&cfg, &spec, gp.var_builder(&dev)).unwrap();
        let d = Discriminator::new(&cfg, &spec, dp.var_builder(&dev)).unwrap();
        let z = Tensor::randn(0f32, 1.0, (5, cfg.latent_dim), &dev).unwrap();
        let images = g.forward(&z, &mut Ctx::infer()).unwrap();
        assert_eq!(images.dims(), [5, 1, 28, 28]);
        let v = images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|p| (0.0..=1.0).contains(p)));
        assert_eq!(d.forward(&images, &mut Ctx::infer()).unwrap().dims(), [5, 1]);
        // Variables: the projection, two convolutions, two batch norms (scale, shift and the two
        // running statistics); the layer list ends at the image shape.
        assert_eq!(gp.count(), 64 * 6272 + 6272 + 128 * 4 + (128 * 64 * 9 + 64) + 64 * 4 + (64 * 9 + 1));
        let layers = g.layers(&[]);
        assert_eq!(layers.last().unwrap().output_shape, vec![1, 28, 28]);

        assert!(cfg.check("model", &spec).is_empty());
        let odd = ModelSpec { input_shape: vec![1, 30, 30], ..spec.clone() };
        assert_eq!(cfg.check("model", &odd)[0].key, "model.generator");
        let table = ModelSpec { input_shape: vec![10], ..spec };
        assert_eq!(cfg.check("model", &table)[0].key, "model.arch");
        let bad = GanConfig {
            latent_dim: 0,
            generator: vec![],
            dropout: 1.0,
            real_label: Some(0.2),
            generator_kernel: 4,
            discriminator_kernel: 9,
            ..cfg
        };
        let keys: Vec<String> = bad.validate("model").into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "model.latent_dim",
                "model.generator",
                "model.dropout",
                "model.real_label",
                "model.generator_kernel",
                "model.discriminator_kernel"
            ]
        );

        // 5x5 kernels keep the generator's and halve the discriminator's sizes.
        let wide = GanConfig { generator_kernel: 5, discriminator_kernel: 5, ..GanConfig::default() };
        let (gp, dp) = (Params::new(rng(0, "g")), Params::new(rng(0, "d")));
        let g = Generator::new(&wide, &spec, gp.var_builder(&dev)).unwrap();
        let d = Discriminator::new(&wide, &spec, dp.var_builder(&dev)).unwrap();
        let images = g.forward(&z, &mut Ctx::infer()).unwrap();
        assert_eq!(images.dims(), [5, 1, 28, 28]);
        assert_eq!(d.forward(&images, &mut Ctx::infer()).unwrap().dims(), [5, 1]);
        assert_eq!(dp.count(), (64 * 25 + 64) + (128 * 64 * 25 + 128) + (128 * 7 * 7 + 1));
    }
}
