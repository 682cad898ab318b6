//! A 1-D CNN over frames: for `bands × frames` feature maps (log-mel spectrograms, MFCCs) each
//! frame is a vector of `bands` channels, convolved along time only — the "temporal
//! convolution" of keyword-spotting models — then averaged over time into a linear head.
//!
//! Input `[batch, 1, bands, frames]` (the one-channel image the audio features are) or
//! `[batch, bands, frames]`. Each block is conv1d (`same` padding) → batch norm (optional) →
//! activation → max-pool over time (optional). candle's ops throughout.

use candle_core::{D, Result, Tensor};
use candle_nn::{BatchNorm, Conv1d, Conv1dConfig, Linear, ModuleT, VarBuilder};
use pipeline_core::config::Issue;
use pipeline_core::{Ctx, Model};
use serde::{Deserialize, Serialize};

use crate::layers::{Activation, dropout, linear, linear_forward};
use crate::summary::{LayerInfo, Summarize};
use crate::{InitScheme, ModelSpec};

fn d_channels() -> Vec<usize> {
    vec![64, 64]
}
fn d_kernel() -> usize {
    5
}

/// `model: {arch: cnn1d, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cnn1dConfig {
    /// Output channels of each block.
    #[serde(default = "d_channels")]
    pub channels: Vec<usize>,
    /// Kernel size in frames (odd, so `same` padding is symmetric).
    #[serde(default = "d_kernel")]
    pub kernel: usize,
    /// Max-pool window over time after each block; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<usize>,
    /// Batch normalisation after each convolution.
    #[serde(default)]
    pub batch_norm: bool,
    /// Activation after each block.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout before the head, in `[0, 1)`.
    #[serde(default)]
    pub dropout: f32,
    /// Weight initialisation of the head.
    #[serde(default)]
    pub init: InitScheme,
}

impl Default for Cnn1dConfig {
    fn default() -> Self {
        Self {
            channels: d_channels(),
            kernel: d_kernel(),
            pool: None,
            batch_norm: false,
            activation: Activation::default(),
            dropout: 0.0,
            init: InitScheme::default(),
        }
    }
}

impl Cnn1dConfig {
    /// Checks the values on their own.
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.channels.is_empty() || self.channels.contains(&0) {
            issues.push(Issue::new(format!("{key}.channels"), "list at least one block, each with channels ≥ 1"));
        }
        if self.kernel == 0 || self.kernel.is_multiple_of(2) {
            issues.push(Issue::new(format!("{key}.kernel"), format!("must be odd (1, 3, 5, …), got {}", self.kernel)));
        }
        if self.pool == Some(0) {
            issues.push(Issue::new(format!("{key}.pool"), "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            issues.push(Issue::new(format!("{key}.dropout"), format!("must be in [0, 1), got {}", self.dropout)));
        }
        issues
    }

    /// Checks it against the data: feature maps, and enough frames for the pools.
    pub fn check(&self, key: &str, spec: &ModelSpec) -> Vec<Issue> {
        let Some((_, frames)) = bands_frames(&spec.input_shape) else {
            return vec![Issue::new(
                format!("{key}.arch"),
                format!(
                    "cnn1d reads bands x frames feature maps (audio features), got inputs of shape {:?}",
                    spec.input_shape
                ),
            )];
        };
        let pooled = self.pool.map_or(frames, |p| frames / p.max(1).pow(self.channels.len() as u32));
        if pooled == 0 {
            return vec![Issue::new(
                format!("{key}.pool"),
                format!("{} pools of {} leave no frame of the {frames}", self.channels.len(), self.pool.unwrap_or(1)),
            )];
        }
        Vec::new()
    }
}

/// `(bands, frames)` of an input shape `[1, bands, frames]` or `[bands, frames]`.
fn bands_frames(shape: &[usize]) -> Option<(usize, usize)> {
    match shape {
        [1, b, f] | [b, f] => Some((*b, *f)),
        _ => None,
    }
}

struct Block {
    conv: Conv1d,
    bn: Option<BatchNorm>,
}

/// The network.
pub struct Cnn1d {
    config: Cnn1dConfig,
    blocks: Vec<Block>,
    head: Linear,
}

impl Cnn1d {
    /// Builds it for `spec` with weights from `vb` (`blocks.<i>.conv`, `blocks.<i>.bn`, `head`).
    pub fn new(config: &Cnn1dConfig, spec: &ModelSpec, vb: VarBuilder) -> crate::Result<Self> {
        let (bands, _) = bands_frames(&spec.input_shape).ok_or_else(|| {
            candle_core::Error::Msg(format!("cnn1d reads bands x frames feature maps, got {:?}", spec.input_shape))
        })?;
        let mut blocks = Vec::new();
        let mut c_in = bands;
        for (i, &c) in config.channels.iter().enumerate() {
            let vb = vb.pp(format!("blocks.{i}"));
            let cfg = Conv1dConfig { padding: config.kernel / 2, ..Default::default() };
            let conv = candle_nn::conv1d(c_in, c, config.kernel, cfg, vb.pp("conv"))?;
            let bn = if config.batch_norm { Some(candle_nn::batch_norm(c, 1e-5, vb.pp("bn"))?) } else { None };
            blocks.push(Block { conv, bn });
            c_in = c;
        }
        let head = linear(c_in, spec.outputs, config.init, vb.pp("head"))?;
        Ok(Self { config: config.clone(), blocks, head })
    }
}

/// `conv` over `[n, c, t]` with `same` padding, as a `1 × k` 2-D convolution of the padded input
/// (candle's `conv1d` backward on the CPU did not train in this configuration; its `conv2d`
/// does). The weights keep PyTorch's `Conv1d` layout `[out, in, k]`.
fn conv_time(conv: &Conv1d, xs: &Tensor) -> Result<Tensor> {
    let w = conv.weight();
    let (c_out, c_in, k) = w.dims3()?;
    let pad = k / 2;
    let (n, c, t) = xs.dims3()?;
    let x = xs.pad_with_zeros(D::Minus1, pad, pad)?.reshape((n, c, 1, t + 2 * pad))?;
    let y = x.conv2d(&w.reshape((c_out, c_in, 1, k))?, 0, 1, 1, 1)?.squeeze(2)?;
    match conv.bias() {
        Some(b) => y.broadcast_add(&b.reshape((1, c_out, 1))?),
        None => Ok(y),
    }
}

/// Kept for reference checks: the same convolution through candle's `conv1d`.
#[cfg(test)]
fn conv_time_reference(conv: &Conv1d, xs: &Tensor) -> Result<Tensor> {
    candle_nn::Module::forward(conv, xs)
}

impl Model for Cnn1d {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let mut xs = match xs.dims() {
            [b, 1, h, w] => xs.reshape((*b, *h, *w))?,
            _ => xs.clone(),
        };
        for b in &self.blocks {
            xs = conv_time(&b.conv, &xs)?;
            if let Some(bn) = &b.bn {
                xs = bn.forward_t(&xs, ctx.is_train())?;
            }
            xs = self.config.activation.forward(&xs)?;
            if let Some(p) = self.config.pool.filter(|&p| p > 1) {
                let (n, c, t) = xs.dims3()?;
                xs = xs.reshape((n, c, 1, t))?.max_pool2d_with_stride((1, p), (1, p))?.squeeze(2)?;
            }
        }
        // Global average over time.
        let xs = xs.mean(D::Minus1)?;
        linear_forward(&self.head, &dropout(&xs, self.config.dropout, ctx)?, None)
    }
}

impl Summarize for Cnn1d {
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo> {
        let Some((mut c, mut t)) = bands_frames(input) else { return Vec::new() };
        let mut out = Vec::new();
        for (i, &ch) in self.config.channels.iter().enumerate() {
            out.push(LayerInfo::new(
                format!("blocks.{i}.conv"),
                format!("Conv1d {c}→{ch} k{}", self.config.kernel),
                vec![ch, t],
            ));
            if self.config.batch_norm {
                out.push(LayerInfo::new(format!("blocks.{i}.bn"), "BatchNorm1d".into(), vec![ch, t]));
            }
            if let Some(p) = self.config.pool.filter(|&p| p > 1) {
                t /= p;
                out.push(LayerInfo::new(format!("blocks.{i}.pool"), format!("MaxPool1d {p}"), vec![ch, t]));
            }
            c = ch;
        }
        out.push(LayerInfo::new("pool".into(), "global AvgPool over time".into(), vec![c]));
        out.push(LayerInfo::new("head".into(), "Linear".into(), vec![self.head.weight().dim(0).unwrap_or(0)]));
        out
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;

    #[test]
    fn the_time_convolution_equals_conv1d_forward_and_has_gradients() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let conv = candle_nn::conv1d(3, 4, 5, Conv1dConfig { padding: 2, ..Default::default() }, vb).unwrap();
        let xs = Tensor::randn(0f32, 1., (2, 3, 11), &Device::Cpu).unwrap();
        let a = conv_time(&conv, &xs).unwrap();
        let b = conv_time_reference(&conv, &xs).unwrap();
        let diff = (a - &b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
        // The weight gradient of sum(y²) against central finite differences (f64 for precision).
        let conv64 = Conv1d::new(
            conv.weight().to_dtype(DType::F64).unwrap(),
            conv.bias().map(|b| b.to_dtype(DType::F64).unwrap()),
            *conv.config(),
        );
        let x64 = xs.to_dtype(DType::F64).unwrap();
        let w = candle_core::Var::from_tensor(conv64.weight()).unwrap();
        let loss = |w: &Tensor| {
            let c = Conv1d::new(w.clone(), conv64.bias().cloned(), *conv64.config());
            conv_time(&c, &x64).unwrap().sqr().unwrap().sum_all().unwrap()
        };
        let grads = loss(w.as_tensor()).backward().unwrap();
        let g = grads.get(w.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let base = w.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for i in [0, 7, 23, 59] {
            let at = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                let t = Tensor::from_vec(v, w.dims(), &Device::Cpu).unwrap();
                loss(&t).to_scalar::<f64>().unwrap()
            };
            let numeric = (at(1e-5) - at(-1e-5)) / 2e-5;
            assert!((g[i] - numeric).abs() < 1e-5 * numeric.abs().max(1.0), "w[{i}]: {} vs {numeric}", g[i]);
        }
    }

    #[test]
    fn convolves_along_time_and_pools_to_classes() {
        let spec = ModelSpec { input_shape: vec![1, 8, 20], outputs: 3, vocab: None, series: None };
        let config = Cnn1dConfig { channels: vec![4, 6], pool: Some(2), batch_norm: true, ..Default::default() };
        assert!(config.validate("model").is_empty() && config.check("model", &spec).is_empty());
        let map = VarMap::new();
        let net = Cnn1d::new(&config, &spec, VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu)).unwrap();
        let xs = Tensor::randn(0f32, 1., (5, 1, 8, 20), &Device::Cpu).unwrap();
        let ys = net.forward(&xs, &mut Ctx::infer()).unwrap();
        assert_eq!(ys.dims(), &[5, 3]);
        let layers = net.layers(&[1, 8, 20]);
        assert_eq!(layers.last().unwrap().output_shape, vec![3]);
        assert_eq!(layers[2].output_shape, vec![4, 10]);
        let bad = Cnn1dConfig { kernel: 4, pool: Some(0), ..Default::default() };
        let msgs: Vec<String> = bad.validate("model").iter().map(ToString::to_string).collect();
        assert_eq!(msgs, ["model.kernel: must be odd (1, 3, 5, …), got 4", "model.pool: must be at least 1"]);
        let table = ModelSpec { input_shape: vec![10], outputs: 2, vocab: None, series: None };
        assert!(config.check("model", &table)[0].to_string().contains("cnn1d reads bands x frames"));
        let short = Cnn1dConfig { pool: Some(8), ..config };
        assert!(short.check("model", &spec)[0].to_string().starts_with("model.pool: 2 pools of 8 leave no frame"));
    }
}
