//! Convolutional networks: a configurable stack of conv blocks with an MLP head, the LeNet-5
//! preset, and a small residual network.
//!
//! On the CPU in f32, convolutions run as `kernels` ops (im2col and one matrix multiply per
//! sample, gradients by matrix multiplies), a block without batch norm fuses its ReLU and
//! max-pool into the convolution, and max-pooling's gradient goes whole to each window's
//! maximum as in PyTorch (candle's `max_pool2d` backward scales it by 1/k²). Elsewhere the
//! layers are candle's ops.

use candle_core::{Result, Shape, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, Linear, Module, ModuleT, VarBuilder};
use pipeline_core::config::Issue;
use pipeline_core::{Ctx, Model};
use serde::{Deserialize, Serialize};

use crate::layers::{Activation, dropout, fused, linear, linear_forward};
use crate::summary::{LayerInfo, Summarize};
use crate::{InitScheme, ModelSpec};

/// Max or average pooling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// Maximum over each window.
    #[default]
    Max,
    /// Mean over each window.
    Avg,
}

fn one() -> usize {
    1
}

/// One convolution block: conv → (batch norm) → activation → (pool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvBlock {
    /// Output channels.
    pub channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride of the convolution.
    #[serde(default = "one")]
    pub stride: usize,
    /// Zero padding on each side.
    #[serde(default)]
    pub padding: usize,
    /// Pooling window (and stride) after the activation; absent: no pooling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<usize>,
    /// Max or average pooling.
    #[serde(default)]
    pub pool_kind: PoolKind,
    /// Batch normalisation between the convolution and the activation.
    #[serde(default)]
    pub batch_norm: bool,
}

/// `model: {arch: cnn, …}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// The conv blocks, in order.
    pub blocks: Vec<ConvBlock>,
    /// Hidden widths of the fully connected head after flattening.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Activation after each block and hidden layer.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout before each fully connected layer of the head, in `[0, 1)`.
    #[serde(default)]
    pub dropout: f32,
    /// Weight initialisation.
    #[serde(default)]
    pub init: InitScheme,
}

/// `model: {arch: lenet5, …}`: LeNet-5 as PyTorch tutorials write it for 28x28 inputs —
/// conv 6@5x5 (padding 2), max-pool 2, conv 16@5x5, max-pool 2, fully connected 120-84-classes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeNet5Config {
    /// Activation (ReLU by default; the original used tanh).
    #[serde(default)]
    pub activation: Activation,
    /// Dropout before the fully connected layers.
    #[serde(default)]
    pub dropout: f32,
    /// Weight initialisation.
    #[serde(default)]
    pub init: InitScheme,
}

impl LeNet5Config {
    /// The equivalent `cnn` config.
    pub fn to_cnn(&self) -> CnnConfig {
        let block = |channels, padding| ConvBlock {
            channels,
            kernel: 5,
            stride: 1,
            padding,
            pool: Some(2),
            pool_kind: PoolKind::Max,
            batch_norm: false,
        };
        CnnConfig {
            blocks: vec![block(6, 2), block(16, 0)],
            hidden: vec![120, 84],
            activation: self.activation,
            dropout: self.dropout,
            init: self.init,
        }
    }
}

/// Spatial size after a convolution or pool.
fn out_size(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    (size + 2 * padding).checked_sub(kernel).map(|d| d / stride.max(1) + 1)
}

impl CnnConfig {
    /// Checks what can be checked without data.
    pub(crate) fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.blocks.is_empty() {
            issues.push(Issue::new(format!("{key}.blocks"), "needs at least one conv block"));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            for (name, v) in [("channels", b.channels), ("kernel", b.kernel), ("stride", b.stride)] {
                if v == 0 {
                    issues.push(Issue::new(format!("{key}.blocks[{i}].{name}"), "must be at least 1, got 0"));
                }
            }
            if b.pool == Some(0) {
                issues.push(Issue::new(format!("{key}.blocks[{i}].pool"), "must be at least 1, got 0"));
            }
        }
        for (i, &h) in self.hidden.iter().enumerate() {
            if h == 0 {
                issues.push(Issue::new(format!("{key}.hidden[{i}]"), "a layer needs at least 1 unit, got 0"));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            issues.push(Issue::new(format!("{key}.dropout"), format!("must be in [0, 1), got {}", self.dropout)));
        }
        issues
    }

    /// Checks the blocks against the input `[channels, height, width]`, naming the key of the
    /// first block that does not fit.
    pub(crate) fn check(&self, key: &str, spec: &ModelSpec) -> Vec<Issue> {
        let [_, mut h, mut w] = match spec.input_shape[..] {
            [c, h, w] => [c, h, w],
            _ => {
                return vec![Issue::new(
                    format!("{key}.arch"),
                    format!(
                        "a convolutional network needs image inputs, the data gives rows of shape {:?}",
                        spec.input_shape
                    ),
                )];
            }
        };
        for (i, b) in self.blocks.iter().enumerate() {
            match (out_size(h, b.kernel, b.stride, b.padding), out_size(w, b.kernel, b.stride, b.padding)) {
                (Some(nh), Some(nw)) if nh > 0 && nw > 0 => (h, w) = (nh, nw),
                _ => {
                    return vec![Issue::new(
                        format!("{key}.blocks[{i}].kernel"),
                        format!(
                            "kernel {} is larger than the {h}x{w} input of this block (padding {})",
                            b.kernel, b.padding
                        ),
                    )];
                }
            }
            if let Some(p) = b.pool {
                if p > h || p > w {
                    return vec![Issue::new(
                        format!("{key}.blocks[{i}].pool"),
                        format!("pool {p} is larger than the {h}x{w} output of this block's convolution"),
                    )];
                }
                (h, w) = (h / p, w / p);
            }
        }
        Vec::new()
    }
}

struct Block {
    conv: Conv2d,
    bn: Option<BatchNorm>,
    pool: Option<(usize, PoolKind)>,
}

/// A convolutional network (see [`CnnConfig`]). Weights: `blocks.<i>.conv.{weight,bias}`,
/// `blocks.<i>.bn.{weight,bias,running_mean,running_var}`, `head.<j>.{weight,bias}`.
pub struct Cnn {
    blocks: Vec<Block>,
    head: Vec<Linear>,
    activation: Activation,
    dropout: f32,
    config: CnnConfig,
}

/// Stride and zero padding of a square convolution.
#[derive(Debug, Clone, Copy)]
pub struct ConvGeometry {
    /// Step between output positions.
    pub stride: usize,
    /// Zeros added on every side.
    pub padding: usize,
}

/// A conv layer `in → out`, `k×k`, initialised by `init`.
pub fn conv2d(
    cin: usize,
    cout: usize,
    k: usize,
    geometry: ConvGeometry,
    bias: bool,
    init: InitScheme,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let ConvGeometry { stride, padding } = geometry;
    let shape = Shape::from((cout, cin, k, k));
    let w = vb.get_with_hints(shape.clone(), "weight", init.weight(&shape))?;
    let b = if bias { Some(vb.get_with_hints(cout, "bias", init.bias(cin * k * k))?) } else { None };
    Ok(Conv2d::new(w, b, Conv2dConfig { padding, stride, dilation: 1, groups: 1, cudnn_fwd_algo: None }))
}

/// Batch normalisation over `n` channels with PyTorch's defaults (eps 1e-5, momentum 0.1).
pub fn batch_norm(n: usize, vb: VarBuilder) -> Result<BatchNorm> {
    candle_nn::batch_norm(
        n,
        candle_nn::BatchNormConfig { eps: 1e-5, remove_mean: true, affine: true, momentum: 0.1 },
        vb,
    )
}

/// `conv.forward(xs)`, by the fused kernel on the CPU in f32.
pub(crate) fn conv_forward(conv: &Conv2d, xs: &Tensor) -> Result<Tensor> {
    let c = conv.config();
    if fused(xs) && fused(conv.weight()) && conv.bias().is_none_or(fused) && c.groups == 1 && c.dilation == 1 {
        kernels::conv2d(xs, conv.weight(), conv.bias(), c.stride, c.padding)
    } else {
        conv.forward(xs)
    }
}

/// Max-pooling over `k x k` windows (stride `k`, trailing rows and columns dropped), whose
/// gradient goes to each window's maximum as in PyTorch: the fused kernel on the CPU in f32,
/// elsewhere reshapes and two `max` reductions (candle's `max_pool2d` backward scales the
/// gradient by 1/k²).
fn max_pool(xs: &Tensor, k: usize) -> Result<Tensor> {
    if fused(xs) && k <= kernels::MAX_POOL_WINDOW {
        return kernels::max_pool2d(xs, k);
    }
    let (n, c, h, w) = xs.dims4()?;
    let (ph, pw) = (h / k, w / k);
    xs.narrow(2, 0, ph * k)?.narrow(3, 0, pw * k)?.reshape((n, c, ph, k, pw, k))?.max(5)?.max(3)
}

impl Block {
    /// conv → (batch norm) → activation → (pool).
    fn forward(&self, xs: &Tensor, activation: Activation, train: bool) -> Result<Tensor> {
        let c = self.conv.config();
        let (w, b) = (self.conv.weight(), self.conv.bias());
        let whole = fused(xs) && fused(w) && b.is_none_or(fused) && c.groups == 1 && c.dilation == 1;
        if whole && self.bn.is_none() && activation == Activation::Relu {
            let (relu, (stride, padding)) = (kernels::Activation::Relu, (c.stride, c.padding));
            return match self.pool {
                Some((p, PoolKind::Max)) if p <= kernels::MAX_POOL_WINDOW => {
                    kernels::conv2d_block(xs, w, b, stride, padding, relu, Some(p))
                }
                Some((p, PoolKind::Max)) => max_pool(&kernels::conv2d_block(xs, w, b, stride, padding, relu, None)?, p),
                Some((p, PoolKind::Avg)) => kernels::conv2d_block(xs, w, b, stride, padding, relu, None)?.avg_pool2d(p),
                None => kernels::conv2d_block(xs, w, b, stride, padding, relu, None),
            };
        }
        let mut y = conv_forward(&self.conv, xs)?;
        if let Some(bn) = &self.bn {
            y = bn.forward_t(&y, train)?;
        }
        y = activation.forward(&y)?;
        match self.pool {
            Some((p, PoolKind::Max)) => max_pool(&y, p),
            Some((p, PoolKind::Avg)) => y.avg_pool2d(p),
            None => Ok(y),
        }
    }
}

impl Cnn {
    /// Builds the network for `spec` (image inputs) under `vb`.
    pub fn new(cfg: &CnnConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let [mut c, mut h, mut w] = match spec.input_shape[..] {
            [c, h, w] => [c, h, w],
            _ => candle_core::bail!("a convolutional network needs [channels, height, width] inputs"),
        };
        let mut blocks = Vec::new();
        for (i, b) in cfg.blocks.iter().enumerate() {
            let vb = vb.pp("blocks").pp(i.to_string());
            let conv = conv2d(
                c,
                b.channels,
                b.kernel,
                ConvGeometry { stride: b.stride, padding: b.padding },
                true,
                cfg.init,
                vb.pp("conv"),
            )?;
            let bn = if b.batch_norm { Some(batch_norm(b.channels, vb.pp("bn"))?) } else { None };
            c = b.channels;
            h = out_size(h, b.kernel, b.stride, b.padding).unwrap_or(0);
            w = out_size(w, b.kernel, b.stride, b.padding).unwrap_or(0);
            if let Some(p) = b.pool {
                (h, w) = (h / p, w / p);
            }
            blocks.push(Block { conv, bn, pool: b.pool.map(|p| (p, b.pool_kind)) });
        }
        let mut dims = vec![c * h * w];
        dims.extend(&cfg.hidden);
        dims.push(spec.outputs);
        let head = dims
            .windows(2)
            .enumerate()
            .map(|(i, d)| linear(d[0], d[1], cfg.init, vb.pp("head").pp(i.to_string())))
            .collect::<Result<_>>()?;
        Ok(Self { blocks, head, activation: cfg.activation, dropout: cfg.dropout, config: cfg.clone() })
    }
}

impl Model for Cnn {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let mut xs = xs.clone();
        for b in &self.blocks {
            xs = b.forward(&xs, self.activation, ctx.is_train())?;
        }
        let mut xs = xs.flatten_from(1)?;
        let last = self.head.len() - 1;
        for (i, l) in self.head.iter().enumerate() {
            let act = (i < last).then_some(self.activation);
            xs = linear_forward(l, &dropout(&xs, self.dropout, ctx)?, act)?;
        }
        Ok(xs)
    }
}

impl Summarize for Cnn {
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo> {
        let mut out = Vec::new();
        let (mut c, mut h, mut w) = match input {
            [c, h, w] => (*c, *h, *w),
            _ => return out,
        };
        for (i, b) in self.config.blocks.iter().enumerate() {
            let prefix = format!("blocks.{i}");
            h = out_size(h, b.kernel, b.stride, b.padding).unwrap_or(0);
            w = out_size(w, b.kernel, b.stride, b.padding).unwrap_or(0);
            out.push(LayerInfo::new(
                format!("{prefix}.conv"),
                format!("Conv2d {c}→{} {k}x{k}", b.channels, k = b.kernel),
                vec![b.channels, h, w],
            ));
            c = b.channels;
            if b.batch_norm {
                out.push(LayerInfo::new(format!("{prefix}.bn"), "BatchNorm2d".into(), vec![c, h, w]));
            }
            if let Some(p) = b.pool {
                (h, w) = (h / p, w / p);
                out.push(LayerInfo::new(
                    format!("{prefix}.pool"),
                    format!("{:?}Pool2d {p}", b.pool_kind),
                    vec![c, h, w],
                ));
            }
        }
        out.push(LayerInfo::new("flatten".into(), "Flatten".into(), vec![c * h * w]));
        for (j, l) in self.head.iter().enumerate() {
            let n = l.weight().dim(0).unwrap_or(0);
            out.push(LayerInfo::new(format!("head.{j}"), "Linear".into(), vec![n]));
        }
        out
    }
}

/// `model: {arch: resnet, …}`: a small residual network (He et al., 2016) for small images —
/// a 3x3 stem, then stages of basic blocks (two 3x3 convolutions with batch norm and an
/// identity or 1x1-projection shortcut; each stage after the first halves the resolution),
/// global average pooling and a linear head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// Channels of each stage.
    #[serde(default = "default_stages")]
    pub stages: Vec<usize>,
    /// Basic blocks per stage.
    #[serde(default = "default_blocks")]
    pub blocks_per_stage: usize,
    /// Weight initialisation (convolutions); Kaiming normal is the ResNet default.
    #[serde(default = "default_resnet_init")]
    pub init: InitScheme,
}

fn default_stages() -> Vec<usize> {
    vec![16, 32, 64]
}
fn default_blocks() -> usize {
    2
}
fn default_resnet_init() -> InitScheme {
    InitScheme::KaimingNormal
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self { stages: default_stages(), blocks_per_stage: default_blocks(), init: default_resnet_init() }
    }
}

impl ResNetConfig {
    pub(crate) fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.stages.is_empty() || self.stages.contains(&0) {
            issues.push(Issue::new(format!("{key}.stages"), "needs at least one stage, each with at least 1 channel"));
        }
        if self.blocks_per_stage == 0 {
            issues.push(Issue::new(format!("{key}.blocks_per_stage"), "must be at least 1, got 0"));
        }
        issues
    }

    pub(crate) fn check(&self, key: &str, spec: &ModelSpec) -> Vec<Issue> {
        match spec.input_shape[..] {
            [_, h, w] if h >> (self.stages.len() - 1).min(16) >= 1 && w >> (self.stages.len() - 1).min(16) >= 1 => {
                Vec::new()
            }
            [_, h, w] => vec![Issue::new(
                format!("{key}.stages"),
                format!(
                    "{} stages halve the resolution {} times, too many for {h}x{w} inputs",
                    self.stages.len(),
                    self.stages.len() - 1
                ),
            )],
            _ => vec![Issue::new(format!("{key}.arch"), "a residual network needs image inputs")],
        }
    }
}

struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, init: InitScheme, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: conv2d(cin, cout, 3, ConvGeometry { stride, padding: 1 }, false, init, vb.pp("conv1"))?,
            bn1: batch_norm(cout, vb.pp("bn1"))?,
            conv2: conv2d(cout, cout, 3, ConvGeometry { stride: 1, padding: 1 }, false, init, vb.pp("conv2"))?,
            bn2: batch_norm(cout, vb.pp("bn2"))?,
            shortcut: if stride != 1 || cin != cout {
                Some((
                    conv2d(cin, cout, 1, ConvGeometry { stride, padding: 0 }, false, init, vb.pp("shortcut.0"))?,
                    batch_norm(cout, vb.pp("shortcut.1"))?,
                ))
            } else {
                None
            },
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_t(&conv_forward(&self.conv1, xs)?, train)?.relu()?;
        let y = self.bn2.forward_t(&conv_forward(&self.conv2, &y)?, train)?;
        let s = match &self.shortcut {
            Some((c, b)) => b.forward_t(&conv_forward(c, xs)?, train)?,
            None => xs.clone(),
        };
        (y + s)?.relu()
    }
}

/// The residual network (see [`ResNetConfig`]). Weights: `stem.{conv,bn}`,
/// `stages.<s>.<b>.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}`, `head`.
pub struct ResNet {
    stem: (Conv2d, BatchNorm),
    blocks: Vec<BasicBlock>,
    head: Linear,
    config: ResNetConfig,
}

impl ResNet {
    /// Builds the network for `spec` (image inputs) under `vb`.
    pub fn new(cfg: &ResNetConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let c = spec.input_shape.first().copied().unwrap_or(1);
        let first = cfg.stages.first().copied().unwrap_or(16);
        let stem = (
            conv2d(c, first, 3, ConvGeometry { stride: 1, padding: 1 }, false, cfg.init, vb.pp("stem.conv"))?,
            batch_norm(first, vb.pp("stem.bn"))?,
        );
        let mut blocks = Vec::new();
        let mut cin = first;
        for (s, &cout) in cfg.stages.iter().enumerate() {
            for b in 0..cfg.blocks_per_stage {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(cin, cout, stride, cfg.init, vb.pp(format!("stages.{s}.{b}")))?);
                cin = cout;
            }
        }
        let head = linear(cin, spec.outputs, InitScheme::Torch, vb.pp("head"))?;
        Ok(Self { stem, blocks, head, config: cfg.clone() })
    }
}

impl Model for ResNet {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let train = ctx.is_train();
        let mut xs = self.stem.1.forward_t(&conv_forward(&self.stem.0, xs)?, train)?.relu()?;
        for b in &self.blocks {
            xs = b.forward(&xs, train)?;
        }
        // Global average pooling over height and width.
        let xs = xs.mean(3)?.mean(2)?;
        linear_forward(&self.head, &xs, None)
    }
}

impl Summarize for ResNet {
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo> {
        let (mut h, mut w) = match input {
            [_, h, w] => (*h, *w),
            _ => (0, 0),
        };
        let first = self.config.stages.first().copied().unwrap_or(0);
        let mut out = vec![LayerInfo::new("stem".into(), "Conv2d 3x3 + BatchNorm2d".into(), vec![first, h, w])];
        for (s, &c) in self.config.stages.iter().enumerate() {
            if s > 0 {
                (h, w) = (h.div_ceil(2), w.div_ceil(2));
            }
            out.push(LayerInfo::new(
                format!("stages.{s}"),
                format!("{} x BasicBlock", self.config.blocks_per_stage),
                vec![c, h, w],
            ));
        }
        let last = self.config.stages.last().copied().unwrap_or(0);
        out.push(LayerInfo::new("pool".into(), "global AvgPool".into(), vec![last]));
        out.push(LayerInfo::new("head".into(), "Linear".into(), vec![self.head.weight().dim(0).unwrap_or(0)]));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device};
    use pipeline_core::rng;

    use super::*;
    use crate::Params;

    /// Both max-pool paths (the fused CPU f32 kernel, and the reshape-and-max one other devices
    /// and dtypes take) give PyTorch's gradient: `x = torch.tensor([[[[1., 4., 0.], [3., 2., 5.],
    /// [6., 7., 8.]]]], requires_grad=True)`, `(F.max_pool2d(x, 2) * 3).sum().backward()`:
    /// output `[[[[4.]]]]`, `x.grad` 3 at the 4 and 0 elsewhere (the last row and column dropped).
    #[test]
    fn max_pool_gradient_matches_pytorch_on_both_paths() {
        for dtype in [DType::F32, DType::F64] {
            let x = Tensor::new(&[[[[1f32, 4., 0.], [3., 2., 5.], [6., 7., 8.]]]], &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let x = candle_core::Var::from_tensor(&x).unwrap();
            let y = max_pool(x.as_tensor(), 2).unwrap();
            let y32 = y.to_dtype(DType::F32).unwrap();
            assert_eq!(y32.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [4.0], "{dtype:?}");
            let g = (y * 3.0).unwrap().sum_all().unwrap().backward().unwrap();
            let g = g.get(x.as_tensor()).unwrap().to_dtype(DType::F32).unwrap();
            let want = [0f32, 3., 0., 0., 0., 0., 0., 0., 0.];
            assert_eq!(g.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want, "{dtype:?}");
        }
    }

    /// Weights `0.1 sin(0.37 i + 0.01 Σ bytes(name))` (running variances `|·| + 0.5`), as the
    /// PyTorch reference script fills its modules.
    fn formula_weights(params: &Params) -> HashMap<String, Tensor> {
        params
            .named_vars()
            .into_iter()
            .map(|(name, v)| {
                let h = name.bytes().map(f64::from).sum::<f64>() * 0.01;
                let vals: Vec<f32> = (0..v.elem_count())
                    .map(|i| {
                        let x = 0.1 * (0.37 * i as f64 + h).sin();
                        (if name.ends_with("running_var") { x.abs() + 0.5 } else { x }) as f32
                    })
                    .collect();
                (name, Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap())
            })
            .collect()
    }

    fn input(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|i| (0.11 * i as f64).cos() as f32).collect::<Vec<_>>(), shape, &Device::Cpu)
            .unwrap()
    }

    fn close(got: &Tensor, want: &[f64]) {
        let g = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g.len(), want.len());
        for (a, b) in g.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{g:?} vs {want:?}");
        }
    }

    /// Builds `cfg` with formula weights; returns the model and its variables.
    fn with_formula(cfg: &CnnConfig, input: Vec<usize>, outputs: usize) -> (Cnn, Params) {
        let spec = ModelSpec { input_shape: input, outputs, vocab: None, series: None };
        let shapes = Params::new(rng(0, "init"));
        Cnn::new(cfg, &spec, shapes.var_builder(&Device::Cpu)).unwrap();
        let params = Params::new(rng(0, "init"));
        let vb = params.var_builder(&Device::Cpu);
        for (name, t) in formula_weights(&shapes) {
            vb.get_with_hints(t.shape(), &name, candle_nn::Init::Const(0.0)).unwrap();
            params.varmap().data().lock().unwrap()[&name].set(&t).unwrap();
        }
        (Cnn::new(cfg, &spec, params.var_builder(&Device::Cpu)).unwrap(), params)
    }

    /// PyTorch 2.15 (`/tmp/ref/cnn.py`, pasted in part):
    /// ```python
    /// class Block(nn.Module):  # conv, optional bn, relu, optional pool, named like ours
    /// lenet = CNN([Block(1, 6, 5, 2, False, 2), Block(6, 16, 5, 0, False, 2)], [400, 120, 84, 10])
    /// sum(p.numel() for p in lenet.parameters())   # 61706
    /// fill(lenet); lenet.eval(); lenet(inp((2, 1, 28, 28))).flatten().tolist()
    /// # fill: every tensor 0.1*sin(0.37*i + 0.01*sum(name bytes)); inp: cos(0.11*i)
    /// ```
    #[test]
    fn lenet5_matches_pytorch() {
        let (net, params) = with_formula(&LeNet5Config::default().to_cnn(), vec![1, 28, 28], 10);
        assert_eq!(crate::summarize(&net, &params, &[1, 28, 28]).total, 61_706);
        let y = net.forward(&input(&[2, 1, 28, 28]), &mut Ctx::infer()).unwrap();
        close(
            &y,
            &[
                0.12370773404836655,
                0.10867632925510406,
                0.08269746601581573,
                0.049326732754707336,
                0.012695230543613434,
                -0.02300640195608139,
                -0.054009392857551575,
                -0.07735808938741684,
                -0.09117131680250168,
                -0.09475402534008026,
                0.12382236868143082,
                0.10887590050697327,
                0.08295969665050507,
                0.04962228238582611,
                0.012991063296794891,
                -0.022743336856365204,
                -0.053808532655239105,
                -0.07724187523126602,
                -0.09115276485681534,
                -0.09483516216278076,
            ],
        );
    }

    /// PyTorch 2.15, same script:
    /// ```python
    /// bn = CNN([Block(3, 4, 3, 1, True, 2), Block(4, 5, 3, 0, True, None)], [5 * 2 * 2, 3], pool_kind="avg")
    /// fill(bn); bn.train(); x = inp((4, 3, 8, 8)); bn(x)   # then running stats, then bn.eval(); bn(x)
    /// ```
    #[test]
    fn batch_norm_and_average_pooling_match_pytorch_in_training_and_inference() {
        let block = |channels, padding, pool| ConvBlock {
            channels,
            kernel: 3,
            stride: 1,
            padding,
            pool,
            pool_kind: PoolKind::Avg,
            batch_norm: true,
        };
        let cfg = CnnConfig { blocks: vec![block(4, 1, Some(2)), block(5, 0, None)], ..Default::default() };
        let (net, params) = with_formula(&cfg, vec![3, 8, 8], 3);
        let x = input(&[4, 3, 8, 8]);
        let mut r = rng(0, "dropout");
        close(
            &net.forward(&x, &mut Ctx::train(&mut r)).unwrap(),
            &[
                0.003991768695414066,
                -0.039784085005521774,
                -0.08754602819681168,
                0.016027402132749557,
                -0.00495506078004837,
                -0.06903330981731415,
                0.02261340618133545,
                -0.004670444875955582,
                -0.07536967843770981,
                -0.0056106774136424065,
                -0.049674052745103836,
                -0.08661802113056183,
            ],
        );
        let vars = params.varmap().data().lock().unwrap().clone();
        close(
            vars["blocks.0.bn.running_mean"].as_tensor(),
            &[-0.09036985039710999, -0.09986689686775208, -0.09536543488502502, -0.07842452824115753],
        );
        close(
            vars["blocks.1.bn.running_var"].as_tensor(),
            &[0.4742150604724884, 0.5044865608215332, 0.527030885219574, 0.5387113094329834, 0.5388277769088745],
        );
        close(
            &net.forward(&x, &mut Ctx::infer()).unwrap(),
            &[
                0.00804292131215334,
                -0.021999061107635498,
                -0.07599803060293198,
                0.008133110590279102,
                -0.020808538421988487,
                -0.07504402101039886,
                0.009167087264358997,
                -0.02118460088968277,
                -0.07640784233808517,
                0.007738900370895863,
                -0.021903183311223984,
                -0.07560991495847702,
            ],
        );
    }

    #[test]
    fn shapes_that_do_not_fit_are_config_issues() {
        let spec = ModelSpec { input_shape: vec![1, 8, 8], outputs: 2, vocab: None, series: None };
        let cfg = CnnConfig {
            blocks: vec![
                ConvBlock {
                    channels: 4,
                    kernel: 3,
                    stride: 1,
                    padding: 0,
                    pool: Some(2),
                    pool_kind: PoolKind::Max,
                    batch_norm: false,
                },
                ConvBlock {
                    channels: 4,
                    kernel: 5,
                    stride: 1,
                    padding: 0,
                    pool: None,
                    pool_kind: PoolKind::Max,
                    batch_norm: false,
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            cfg.check("model", &spec).iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["model.blocks[1].kernel: kernel 5 is larger than the 3x3 input of this block (padding 0)"]
        );
        let tab = ModelSpec { input_shape: vec![10], outputs: 2, vocab: None, series: None };
        assert!(
            cfg.check("model", &tab)[0]
                .to_string()
                .starts_with("model.arch: a convolutional network needs image inputs")
        );
        let res = ResNetConfig { stages: vec![8, 8, 8, 8, 8, 8], ..Default::default() };
        assert_eq!(
            res.check("model", &ModelSpec { input_shape: vec![1, 8, 8], outputs: 2, vocab: None, series: None })[0]
                .to_string(),
            "model.stages: 6 stages halve the resolution 5 times, too many for 8x8 inputs"
        );
    }

    #[test]
    fn resnet_builds_trains_and_counts_like_pytorch() {
        // The same network in PyTorch 2.15 (stem Conv2d(1,16,3,1,1,bias=False) + BatchNorm2d(16);
        // BasicBlock(16,16,1); BasicBlock(16,32,2) with a 1x1 conv + BatchNorm2d shortcut;
        // Linear(32, 10)) has sum(p.numel() for p in net.parameters()) == 19706.
        let cfg = ResNetConfig { stages: vec![16, 32], blocks_per_stage: 1, init: InitScheme::KaimingNormal };
        let params = Params::new(rng(0, "init"));
        let spec = ModelSpec { input_shape: vec![1, 12, 12], outputs: 10, vocab: None, series: None };
        let net = ResNet::new(&cfg, &spec, params.var_builder(&Device::Cpu)).unwrap();
        let want = 19_706;
        let s = crate::summarize(&net, &params, &[1, 12, 12]);
        assert_eq!(s.total, want);
        assert_eq!(s.layers.last().unwrap().output_shape, vec![10]);
        let x = Tensor::zeros((2, 1, 12, 12), DType::F32, &Device::Cpu).unwrap();
        let mut r = rng(0, "dropout");
        assert_eq!(net.forward(&x, &mut Ctx::train(&mut r)).unwrap().dims(), &[2, 10]);
        assert_eq!(net.forward(&x, &mut Ctx::infer()).unwrap().dims(), &[2, 10]);
    }
}
