//! Self-attention layers over batch-first sequences `[batch, time, d_model]`: multi-head
//! self-attention, the transformer encoder layer and a stack of them, with PyTorch's parameter
//! names and layouts so that state dicts map 1:1.
//!
//! - [`MultiheadAttention`] is `nn.MultiheadAttention(d_model, nhead, dropout, batch_first=True)`
//!   used as self-attention: `in_proj_weight` `[3·d_model, d_model]` (query, key, value stacked),
//!   `in_proj_bias`, `out_proj.weight`, `out_proj.bias`.
//! - [`TransformerEncoderLayer`] is `nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward,
//!   dropout, activation, batch_first=True, norm_first)`: `self_attn.*`, `linear1`, `linear2`,
//!   `norm1`, `norm2` (layer norm, eps 1e-5).
//! - [`TransformerEncoder`] is `nn.TransformerEncoder(layer, num_layers, norm)`: `layers.{i}.*` and,
//!   with a final norm, `norm.*`.
//!
//! Padding is a key padding mask `[batch, time]` whose nonzero entries mark padded steps, as
//! PyTorch's boolean `key_padding_mask` (true = ignored): no query attends to a padded key.
//! Outputs at padded positions are still computed (as PyTorch's slow path does); a fully padded
//! example, for which PyTorch returns NaN, attends to nothing here, so its attention output is
//! `out_proj.bias` and no NaN can reach a loss.
//!
//! Training passes use differentiable softmax and layer norm; inference passes use candle's fused
//! kernels, which are faster but have no backward pass.

use candle_core::{D, DType, Result, Shape, Tensor};
use candle_nn::{Init, Linear, Module, VarBuilder};
use pipeline_core::Ctx;
use pipeline_core::config::Issue;
use serde::{Deserialize, Serialize};

use crate::InitScheme;
use crate::layers::{Activation, LayerNorm, dropout, linear};

/// Multi-head self-attention with PyTorch's `nn.MultiheadAttention` parameters.
pub struct MultiheadAttention {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: Linear,
    num_heads: usize,
    head_dim: usize,
    dropout: f32,
}

impl MultiheadAttention {
    /// Builds self-attention over `embed_dim` features with `num_heads` heads and dropout `dropout`
    /// on the attention weights (training only), under `vb`.
    ///
    /// Fresh weights follow PyTorch: `in_proj_weight` Xavier-uniform, `out_proj.weight` uniform in
    /// `±1/sqrt(embed_dim)`, both biases 0. `embed_dim` must be a multiple of `num_heads`.
    pub fn new(embed_dim: usize, num_heads: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        if num_heads == 0 || embed_dim == 0 || !embed_dim.is_multiple_of(num_heads) {
            // A plain `Error::Msg` (no backtrace wrapper), for the config layer to turn into a
            // config error.
            return Err(candle_core::Error::Msg(format!(
                "d_model {embed_dim} must be a positive multiple of nhead {num_heads} (features per head)"
            )));
        }
        if !(0.0..1.0).contains(&dropout) {
            candle_core::bail!("attention dropout must be in [0, 1), got {dropout}");
        }
        let in_shape = Shape::from((3 * embed_dim, embed_dim));
        let in_proj_weight =
            vb.get_with_hints(in_shape.clone(), "in_proj_weight", InitScheme::XavierUniform.weight(&in_shape))?;
        let in_proj_bias = vb.get_with_hints(3 * embed_dim, "in_proj_bias", Init::Const(0.0))?;
        let out = vb.pp("out_proj");
        let out_shape = Shape::from((embed_dim, embed_dim));
        let out_weight = out.get_with_hints(out_shape.clone(), "weight", InitScheme::Torch.weight(&out_shape))?;
        let out_bias = out.get_with_hints(embed_dim, "bias", Init::Const(0.0))?;
        Ok(Self {
            in_proj_weight,
            in_proj_bias,
            out_proj: Linear::new(out_weight, Some(out_bias)),
            num_heads,
            head_dim: embed_dim / num_heads,
            dropout,
        })
    }

    /// Self-attention over `xs` `[batch, time, embed_dim]`, with an optional `key_padding_mask`
    /// `[batch, time]` (nonzero = padding, any dtype). Returns `[batch, time, embed_dim]`.
    pub fn forward(&self, xs: &Tensor, key_padding_mask: Option<&Tensor>, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (b, t, d) = xs.dims3()?;
        let (h, hd) = (self.num_heads, self.head_dim);
        if d != h * hd {
            candle_core::bail!("attention expects {} features per step, got {d}", h * hd);
        }
        // One product for queries, keys and values: [b·t, 3d] → [3, b, h, t, hd].
        let qkv = xs.reshape((b * t, d))?.matmul(&self.in_proj_weight.t()?)?.broadcast_add(&self.in_proj_bias)?;
        let qkv = qkv.reshape((b, t, 3, h, hd))?.permute((2, 0, 3, 1, 4))?;
        let q = (qkv.get(0)?.contiguous()? * (1.0 / (hd as f64).sqrt()))?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let mut scores = q.matmul(&k.t()?)?; // [b, h, t, t]
        let mut keep = None;
        if let Some(mask) = key_padding_mask {
            if mask.dims() != [b, t] {
                candle_core::bail!("key padding mask of shape {:?} for a batch of shape [{b}, {t}]", mask.dims());
            }
            let padded = mask.ne(&mask.zeros_like()?)?.to_dtype(scores.dtype())?; // [b, t], 1 = padding
            // A large finite bias rather than -inf: a fully padded row stays finite.
            let big = if scores.dtype() == DType::F16 { 6.0e4 } else { 1.0e30 };
            scores = scores.broadcast_add(&(&padded * -big)?.reshape((b, 1, 1, t))?)?;
            // 1 for examples with at least one real step, 0 for fully padded ones.
            keep = Some(padded.sum_keepdim(1)?.lt(t as f64)?.to_dtype(scores.dtype())?.reshape((b, 1, 1))?);
        }
        let probs = if ctx.is_train() {
            candle_nn::ops::softmax(&scores, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let probs = dropout(&probs, self.dropout, ctx)?;
        let mut attended = probs.matmul(&v)?.transpose(1, 2)?.reshape((b * t, d))?;
        if let Some(keep) = keep {
            attended = attended.reshape((b, t, d))?.broadcast_mul(&keep)?.reshape((b * t, d))?;
        }
        self.out_proj.forward(&attended)?.reshape((b, t, d))
    }
}

/// A linear layer applied to the last dimension of `[batch, time, in]`, as one 2-D product.
fn linear_3d(layer: &Linear, xs: &Tensor) -> Result<Tensor> {
    let (b, t, d) = xs.dims3()?;
    let ys = layer.forward(&xs.reshape((b * t, d))?)?;
    let out = ys.dim(1)?;
    ys.reshape((b, t, out))
}

/// The options of a transformer encoder (PyTorch's `nn.TransformerEncoderLayer` arguments but
/// `d_model`, plus the depth and the final norm of `nn.TransformerEncoder`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerLayerConfig {
    /// Attention heads; `d_model` must be a multiple of it.
    pub nhead: usize,
    /// Width of the feed-forward block.
    pub dim_feedforward: usize,
    /// Dropout in `[0, 1)` on the attention weights, after attention, inside and after the
    /// feed-forward block (training only).
    pub dropout: f32,
    /// The feed-forward activation (PyTorch offers `relu` and `gelu`).
    pub activation: Activation,
    /// Layer norm before attention and feed-forward (pre-norm) instead of after the residual
    /// additions (post-norm, PyTorch's default).
    pub norm_first: bool,
    /// Stacked layers (PyTorch's `num_layers`).
    pub layers: usize,
    /// A layer norm (`norm.*`) after the last layer, as `nn.TransformerEncoder(norm=…)`; usual
    /// with `norm_first`.
    pub final_norm: bool,
}

impl Default for TransformerLayerConfig {
    /// PyTorch's defaults where it has them (`nhead` 8 as `nn.Transformer`, `dim_feedforward`
    /// 2048, dropout 0.1, relu, post-norm), one layer, no final norm.
    fn default() -> Self {
        Self {
            nhead: 8,
            dim_feedforward: 2048,
            dropout: 0.1,
            activation: Activation::Relu,
            norm_first: false,
            layers: 1,
            final_norm: false,
        }
    }
}

impl TransformerLayerConfig {
    /// Checks the values serde cannot, reporting them under the dotted `key` of this section.
    /// That `d_model` is a multiple of `nhead` is checked by the constructors, which know it.
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.nhead == 0 {
            issues.push(Issue::new(format!("{key}.nhead"), "needs at least 1 head, got 0"));
        }
        if self.dim_feedforward == 0 {
            issues.push(Issue::new(format!("{key}.dim_feedforward"), "needs at least 1 unit, got 0"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            issues.push(Issue::new(format!("{key}.dropout"), format!("must be in [0, 1), got {}", self.dropout)));
        }
        if self.layers == 0 {
            issues.push(Issue::new(format!("{key}.layers"), "needs at least 1 layer, got 0"));
        }
        issues
    }
}

/// One transformer encoder layer: self-attention and a feed-forward block, each with a residual
/// connection and layer norm, as PyTorch's `nn.TransformerEncoderLayer(batch_first=True)`.
pub struct TransformerEncoderLayer {
    self_attn: MultiheadAttention,
    linear1: Linear,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    activation: Activation,
    dropout: f32,
    norm_first: bool,
}

impl TransformerEncoderLayer {
    /// Builds the layer for `d_model` features under `vb` (`self_attn.*`, `linear1.*`,
    /// `linear2.*`, `norm1.*`, `norm2.*`), with PyTorch's initialisation. Fails, naming both
    /// numbers, when `d_model` is not a multiple of `config.nhead`.
    pub fn new(d_model: usize, config: &TransformerLayerConfig, vb: VarBuilder) -> Result<Self> {
        if config.dim_feedforward == 0 {
            candle_core::bail!("dim_feedforward must be at least 1, got 0");
        }
        let self_attn = MultiheadAttention::new(d_model, config.nhead, config.dropout, vb.pp("self_attn"))?;
        let linear1 = linear(d_model, config.dim_feedforward, InitScheme::Torch, vb.pp("linear1"))?;
        let linear2 = linear(config.dim_feedforward, d_model, InitScheme::Torch, vb.pp("linear2"))?;
        Ok(Self {
            self_attn,
            linear1,
            linear2,
            norm1: LayerNorm::new(d_model, vb.pp("norm1"))?,
            norm2: LayerNorm::new(d_model, vb.pp("norm2"))?,
            activation: config.activation,
            dropout: config.dropout,
            norm_first: config.norm_first,
        })
    }

    /// Runs the layer on `xs` `[batch, time, d_model]` with an optional key padding mask
    /// `[batch, time]` (nonzero = padding), PyTorch's `src_key_padding_mask`.
    pub fn forward(&self, xs: &Tensor, key_padding_mask: Option<&Tensor>, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let train = ctx.is_train();
        if self.norm_first {
            let a = self.self_attn.forward(&self.norm1.forward(xs, train)?, key_padding_mask, ctx)?;
            let xs = (xs + dropout(&a, self.dropout, ctx)?)?;
            let f = self.feed_forward(&self.norm2.forward(&xs, train)?, ctx)?;
            &xs + dropout(&f, self.dropout, ctx)?
        } else {
            let a = self.self_attn.forward(xs, key_padding_mask, ctx)?;
            let xs = self.norm1.forward(&(xs + dropout(&a, self.dropout, ctx)?)?, train)?;
            let f = self.feed_forward(&xs, ctx)?;
            self.norm2.forward(&(&xs + dropout(&f, self.dropout, ctx)?)?, train)
        }
    }

    fn feed_forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let hidden = self.activation.forward(&linear_3d(&self.linear1, xs)?)?;
        linear_3d(&self.linear2, &dropout(&hidden, self.dropout, ctx)?)
    }
}

/// A stack of [`TransformerEncoderLayer`]s (`layers.{i}.*`) with an optional final layer norm
/// (`norm.*`), as PyTorch's `nn.TransformerEncoder`. Unlike PyTorch, whose layers start as copies
/// of one another, every layer gets its own fresh weights.
pub struct TransformerEncoder {
    layers: Vec<TransformerEncoderLayer>,
    norm: Option<LayerNorm>,
}

impl TransformerEncoder {
    /// Builds `config.layers` layers for `d_model` features under `vb`.
    pub fn new(d_model: usize, config: &TransformerLayerConfig, vb: VarBuilder) -> Result<Self> {
        if config.layers == 0 {
            candle_core::bail!("a transformer encoder needs at least 1 layer, got 0");
        }
        let layers = (0..config.layers)
            .map(|i| TransformerEncoderLayer::new(d_model, config, vb.pp("layers").pp(i.to_string())))
            .collect::<Result<_>>()?;
        let norm = if config.final_norm { Some(LayerNorm::new(d_model, vb.pp("norm"))?) } else { None };
        Ok(Self { layers, norm })
    }

    /// Runs every layer on `xs` `[batch, time, d_model]` with the same key padding mask, then the
    /// final norm.
    pub fn forward(&self, xs: &Tensor, key_padding_mask: Option<&Tensor>, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let mut xs = xs.clone();
        for layer in &self.layers {
            xs = layer.forward(&xs, key_padding_mask, ctx)?;
        }
        match &self.norm {
            Some(norm) => norm.forward(&xs, ctx.is_train()),
            None => Ok(xs),
        }
    }
}

/// The key padding mask `[batch, time]` (u8, 1 = padding) of examples with the given lengths:
/// steps at and past each length are padding.
pub fn padding_mask_from_lengths(lengths: &[usize], time: usize, device: &candle_core::Device) -> Result<Tensor> {
    if let Some(&bad) = lengths.iter().find(|&&l| l > time) {
        candle_core::bail!("sequence length {bad} exceeds the {time} steps of the input");
    }
    let mask: Vec<u8> = lengths.iter().flat_map(|&l| (0..time).map(move |s| u8::from(s >= l))).collect();
    Tensor::from_vec(mask, (lengths.len(), time), device)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::Device;
    use pipeline_core::rng;

    use super::*;
    use crate::Params;

    // Reference values: PyTorch 2.15, produced by this script (its output pasted below):
    // import math, torch, torch.nn as nn
    //
    // def fill(shape, seed):
    //     n = math.prod(shape)
    //     v = [0.5 * math.sin((i + 1) ** 2 * 0.7548776662 + seed * 0.5698402910) for i in range(n)]
    //     return torch.tensor(v, dtype=torch.float64).float().reshape(shape)
    //
    // def load(m):
    //     with torch.no_grad():
    //         for i, (name, p) in enumerate(sorted(m.named_parameters())):
    //             p.copy_(fill(p.shape, i))
    //     return m.eval()
    //
    // def lit(v):
    //     s = "%.8g" % v
    //     return s if any(c in s for c in ".en") else s + ".0"
    //
    // def flat(t):
    //     return ", ".join(lit(v) for v in t.detach().flatten().tolist())
    //
    // x = 2 * fill((2, 4, 8), 100)
    // mask = torch.tensor([[False, False, False, False], [False, False, True, True]])
    // full = torch.tensor([[False, True, True, True], [True, True, True, True]])
    // mha = load(nn.MultiheadAttention(8, 2, batch_first=True))
    // print("// mha names:", [n for n, _ in sorted(mha.named_parameters())])
    // with torch.no_grad():
    //     print(f"const MHA: &[f32] = &[{flat(mha(x, x, x, need_weights=False)[0])}];")
    //     masked = mha(x, x, x, key_padding_mask=mask, need_weights=False)[0]
    //     print(f"const MHA_MASKED: &[f32] = &[{flat(masked)}];")
    //     # Example 1 is all padding: PyTorch gives NaN there; example 0 is compared.
    //     fully = mha(x, x, x, key_padding_mask=full, need_weights=False)[0]
    //     print(f"const MHA_FULLY_PADDED_0: &[f32] = &[{flat(fully[0])}];")
    // layer = nn.TransformerEncoderLayer(8, 2, 16, 0.1, activation="relu", batch_first=True)
    // print("// layer names:", [n for n, _ in sorted(layer.named_parameters())])
    // for norm_first in [False, True]:
    //     for act in ["relu", "gelu"]:
    //         layer = load(nn.TransformerEncoderLayer(8, 2, 16, 0.1, activation=act, batch_first=True,
    //                                                 norm_first=norm_first))
    //         tag = f"{'PRE' if norm_first else 'POST'}_{act.upper()}"
    //         with torch.no_grad():
    //             print(f"const LAYER_{tag}: &[f32] = &[{flat(layer(x))}];")
    //             print(f"const LAYER_{tag}_MASKED: &[f32] = &[{flat(layer(x, src_key_padding_mask=mask))}];")
    // layer = nn.TransformerEncoderLayer(8, 2, 16, 0.1, activation="gelu", batch_first=True, norm_first=True)
    // stack = load(nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8), enable_nested_tensor=False))
    // print("// stack names:", [n for n, _ in sorted(stack.named_parameters())])
    // with torch.no_grad():
    //     print(f"const STACK_PRE_GELU_MASKED: &[f32] = &[{flat(stack(x, src_key_padding_mask=mask))}];")
    //
    // Output of the script (`%.8g`, all outputs `[2, 4, 8]` flattened unless named `_0`):
    #[rustfmt::skip]
    const MHA: &[f32] = &[
        0.53391153, -1.4536879, 0.29016668, 0.38762963, -0.041843683, -0.24867454, 0.91698384, -0.63228273, 0.94296193,
        -1.529851, 0.35692555, 0.82220602, 0.16103706, 0.23780476, 0.27776912, -0.68302333, 0.66051245, -1.5368776,
        0.41935915, 0.69211805, -0.11588731, -0.20574526, 0.96738529, -0.65400559, 0.51166141, -1.4325427, 0.44437641,
        0.62682861, -0.32234928, -0.52257121, 1.2374504, -0.5652113, 0.77321994, -1.3201948, 0.56946933, 0.12732041,
        0.20578593, -0.016976131, 0.063408598, -0.1030083, 0.57323313, -1.0200121, 0.87345374, 0.36246923, 0.24200025,
        0.23464827, -0.35442996, 0.23803484, 0.78692412, -1.1536611, 0.7675786, 0.2936362, 0.2147789, 0.10545798,
        -0.2318916, 0.1101554, 0.47465199, -1.0853113, 0.73682237, 0.26300699, 0.30746073, 0.26526856, -0.229157,
        0.092345685,
    ];
    #[rustfmt::skip]
    const MHA_MASKED: &[f32] = &[
        0.53391159, -1.4536879, 0.29016671, 0.38762966, -0.041843683, -0.24867456, 0.9169839, -0.63228273, 0.94296181,
        -1.5298508, 0.35692561, 0.82220602, 0.16103706, 0.23780476, 0.27776918, -0.68302333, 0.66051245, -1.5368776,
        0.41935921, 0.69211805, -0.11588731, -0.20574524, 0.96738529, -0.65400565, 0.51166141, -1.4325427, 0.44437638,
        0.62682855, -0.32234934, -0.52257133, 1.2374505, -0.5652113, 0.94397497, -1.1792299, 0.44786236, 0.013106644,
        0.39242768, 0.10756197, -0.1703994, 0.068017274, 0.52116287, -0.74286461, 0.6616748, 0.18774325, 0.48026294,
        0.30266985, -0.29619032, 0.33769304, 0.80733311, -1.0309088, 0.5250625, 0.076407224, 0.41933233, 0.17179826,
        -0.2171317, 0.16341174, 0.54113436, -0.8858124, 0.51579154, 0.064476341, 0.50094348, 0.27363515, -0.18834749,
        0.18681151,
    ];
    #[rustfmt::skip]
    const MHA_FULLY_PADDED_0: &[f32] = &[
        1.6453609, -1.9905999, 0.26786152, 0.19509596, -0.24335858, -0.27687335, -0.39304531, 0.078303248, 1.6453609,
        -1.9905999, 0.26786152, 0.19509596, -0.24335858, -0.27687335, -0.39304531, 0.078303248, 1.6453609, -1.9905999,
        0.26786152, 0.19509596, -0.24335858, -0.27687335, -0.39304531, 0.078303248, 1.6453609, -1.9905999, 0.26786152,
        0.19509596, -0.24335858, -0.27687335, -0.39304531, 0.078303248,
    ];
    #[rustfmt::skip]
    const LAYER_POST_RELU: &[f32] = &[
        -0.11479229, 0.11417472, -0.86440861, 0.18775113, -0.91368753, -0.31579736, 0.22485554, -0.14226776,
        -0.48882562, -0.24972613, -0.94470793, 0.2262788, -0.73621213, -0.29227066, 0.15873198, -0.1018395, -0.51593649,
        -0.070169777, -0.50790787, 0.11084492, -1.0609807, -0.27021691, 0.27499256, 0.19693136, -0.30376729,
        0.037406139, -0.7350201, 0.17984433, -1.0300549, -0.28893346, 0.2594147, 0.076681919, -0.89298981, -0.43012029,
        -0.41075298, 0.16532612, -0.85119301, -0.35788473, 0.28580454, 0.57342732, -0.3784785, -0.19575322, -0.92973876,
        0.20998609, -0.88088638, -0.31636274, 0.20047431, -0.086607091, -0.47904417, -0.33212504, -1.0808719,
        0.093866833, -0.70642877, -0.27364552, 0.20195253, -0.059223574, -0.9649449, -0.53106809, -0.63358629,
        0.20828432, -0.59873593, -0.37994877, 0.28168508, 0.73978359,
    ];
    #[rustfmt::skip]
    const LAYER_POST_RELU_MASKED: &[f32] = &[
        -0.11479229, 0.11417472, -0.86440861, 0.18775113, -0.91368753, -0.31579736, 0.22485554, -0.14226776,
        -0.48882577, -0.24972619, -0.94470793, 0.22627883, -0.73621225, -0.29227063, 0.158732, -0.10183945, -0.51593649,
        -0.070169792, -0.50790787, 0.11084493, -1.0609808, -0.27021691, 0.27499256, 0.19693136, -0.30376741, 0.03740618,
        -0.7350201, 0.17984432, -1.0300548, -0.28893346, 0.25941473, 0.076681919, -0.90138054, -0.47481924, -0.41799194,
        0.15882875, -0.83423483, -0.35311392, 0.27630976, 0.57792521, -0.41885862, -0.24174978, -0.92752129, 0.21123312,
        -0.85623366, -0.31490144, 0.19185959, -0.077751949, -0.53762221, -0.39990315, -1.0583133, 0.088134125,
        -0.66735244, -0.27344289, 0.19387577, -0.020578437, -0.94217509, -0.57434207, -0.62361091, 0.22593813,
        -0.5739184, -0.38293093, 0.26455143, 0.77883375,
    ];
    #[rustfmt::skip]
    const LAYER_POST_GELU: &[f32] = &[
        -0.034157846, 0.0091331126, -0.82101434, 0.17156303, -0.93070489, -0.30705777, 0.19638377, -0.10471278,
        -0.38199311, -0.38260025, -0.85669023, 0.15199108, -0.62522691, -0.29514271, 0.12371006, -0.045162305,
        -0.49660629, -0.18226448, -0.52495986, 0.088846959, -1.050303, -0.25246677, 0.26341021, 0.29427347, -0.23017275,
        -0.08613798, -0.73800761, 0.15516204, -1.0494993, -0.26767099, 0.24449538, 0.19958568, -0.82210809, -0.57590395,
        -0.34571424, 0.11664476, -0.8086583, -0.34966406, 0.25267294, 0.63162482, -0.33876768, -0.30112499, -0.81712794,
        0.17169794, -0.86557341, -0.31066951, 0.17038272, -0.06185272, -0.42585731, -0.42621782, -0.93093491,
        0.056024272, -0.66593742, -0.27225548, 0.16530426, -0.031211758, -0.84463435, -0.68820113, -0.54612428,
        0.13867077, -0.58669311, -0.38768548, 0.2431349, 0.69630289,
    ];
    #[rustfmt::skip]
    const LAYER_POST_GELU_MASKED: &[f32] = &[
        -0.034157876, 0.009133108, -0.82101423, 0.17156301, -0.93070489, -0.30705777, 0.19638377, -0.10471278,
        -0.38199317, -0.38260025, -0.85669023, 0.1519911, -0.62522697, -0.29514268, 0.12371006, -0.045162253,
        -0.49660629, -0.18226448, -0.52495986, 0.088846959, -1.050303, -0.25246677, 0.26341021, 0.29427353, -0.23017283,
        -0.086138003, -0.73800755, 0.15516204, -1.0494994, -0.26767099, 0.24449538, 0.19958574, -0.82757723,
        -0.61192435, -0.34979528, 0.11079458, -0.77727795, -0.34722081, 0.24153917, 0.62937015, -0.36513525,
        -0.34700736, -0.80714178, 0.16403252, -0.81978315, -0.31207448, 0.1591842, -0.058652338, -0.46951386,
        -0.4939914, -0.88251948, 0.041964393, -0.60440427, -0.27729595, 0.15507813, 0.016615033, -0.83023733,
        -0.7135542, -0.51102149, 0.14991583, -0.55595529, -0.39114338, 0.22696328, 0.72189081,
    ];
    #[rustfmt::skip]
    const LAYER_PRE_RELU: &[f32] = &[
        0.41362023, 0.27816918, 1.3016418, -1.4481883, 1.4420502, 2.1379528, -0.9755637, -2.463347, -0.46849048,
        0.27517915, -0.46901479, -0.07777068, 1.5064151, 0.61211109, -0.073265254, -1.636395, -0.76703036, -0.40811336,
        0.28274506, -0.3061893, 1.9494332, 2.2017806, -1.8213947, -0.12364376, 1.1140963, 1.1582773, -0.85028362,
        -0.97602785, 2.2487838, 2.490438, -1.2732308, -0.74706519, -0.61898756, 0.10903023, 1.1316842, -2.3495526,
        0.90368587, 0.9373064, -2.0596604, -0.63905549, -0.15967143, 0.7377063, 1.2951725, -2.1212461, 1.5014486,
        2.3128302, -0.30918142, -2.1704767, -0.41210306, 1.0011656, -0.084488094, -1.998216, 0.50078285, 1.9892626,
        -0.4588863, -2.3571315, 0.33863828, 1.4751189, 1.1644118, -2.1565695, 1.8457868, 0.64863181, -1.5073428,
        -0.56470597,
    ];
    #[rustfmt::skip]
    const LAYER_PRE_RELU_MASKED: &[f32] = &[
        0.41362011, 0.27816918, 1.3016417, -1.4481883, 1.4420502, 2.1379528, -0.97556382, -2.463347, -0.46849045,
        0.27517912, -0.46901485, -0.07777077, 1.5064154, 0.61211109, -0.073265254, -1.636395, -0.76703036, -0.40811336,
        0.28274506, -0.3061893, 1.9494332, 2.2017806, -1.8213947, -0.12364376, 1.1140963, 1.1582773, -0.85028362,
        -0.97602785, 2.2487838, 2.490438, -1.2732307, -0.74706519, -0.66499174, 0.10793273, 1.0842812, -2.3582182,
        0.81564391, 0.8020981, -2.1496654, -0.72600669, -0.22093433, 0.72548074, 1.2632351, -2.1545043, 1.4427147,
        2.1793683, -0.40944746, -2.2562366, -0.47876644, 0.991979, -0.11340588, -2.050539, 0.45449117, 1.8620942,
        -0.56929922, -2.4467759, 0.29431942, 1.4708771, 1.1254624, -2.1623833, 1.7350141, 0.52129114, -1.5665739,
        -0.66569054,
    ];
    #[rustfmt::skip]
    const LAYER_PRE_GELU: &[f32] = &[
        0.38427985, -0.11783862, 1.2449958, -1.3412365, 1.33316, 2.1571496, -0.68610835, -2.4211562, -0.51760572,
        0.070864707, -0.55542135, -0.12222394, 1.3864396, 0.59604311, 0.27101997, -1.5856494, -0.74995017, -0.55733514,
        0.2866292, -0.13825837, 1.8071059, 2.3454752, -1.4596397, -0.12185711, 0.96191454, 0.93280983, -0.99052012,
        -0.79789972, 2.105207, 2.4447639, -0.91492283, -0.56232965, -0.63908136, -0.10133566, 1.0930585, -2.0914595,
        0.91158599, 1.0729113, -1.6266866, -0.69287157, -0.12589252, 0.30832088, 1.2376647, -1.9259058, 1.412966,
        2.3510437, 0.00082807243, -2.1316986, -0.42270243, 0.76294458, -0.19339228, -1.9086468, 0.4006004, 2.0216777,
        -0.1734544, -2.2482519, 0.36524782, 1.2510885, 1.0404737, -1.920826, 1.7788692, 0.76585782, -1.1934724,
        -0.63804901,
    ];
    #[rustfmt::skip]
    const LAYER_PRE_GELU_MASKED: &[f32] = &[
        0.38427997, -0.11783862, 1.2449957, -1.3412365, 1.33316, 2.1571493, -0.68610853, -2.4211564, -0.51760566,
        0.070864677, -0.55542135, -0.12222403, 1.3864397, 0.59604317, 0.27101997, -1.5856493, -0.74995017, -0.55733514,
        0.2866292, -0.13825837, 1.8071059, 2.3454752, -1.4596397, -0.12185711, 0.96191466, 0.93280983, -0.99052024,
        -0.79789972, 2.105207, 2.4447639, -0.91492283, -0.56232965, -0.68875659, -0.10326831, 1.0467691, -2.0991173,
        0.82781827, 0.93520999, -1.7119147, -0.78093964, -0.18658096, 0.29428601, 1.2085081, -1.9595268, 1.3507715,
        2.2132809, -0.099370867, -2.2191992, -0.48953199, 0.75042379, -0.21846542, -1.9597983, 0.34988841, 1.8899847,
        -0.28014565, -2.3408463, 0.32093903, 1.2423586, 1.0008727, -1.9262097, 1.6703324, 0.63474369, -1.2510037,
        -0.73899782,
    ];
    #[rustfmt::skip]
    const STACK_PRE_GELU_MASKED: &[f32] = &[
        0.63278109, -0.2943269, 0.75193483, -0.25283411, 0.9788636, -0.36897624, 0.052649666, -0.14109419, 0.56978732,
        -0.33829615, 0.30979764, -0.078841433, 1.3656514, -0.24991244, 0.23390581, -0.14535569, 0.46559551,
        -0.052852526, 0.48850688, -0.057275306, 1.3144152, -0.42766979, -0.19922219, -0.2686381, 0.67771107,
        -0.42348588, 0.2106638, -0.26640239, 1.2095712, -0.38834155, -0.071164489, -0.23927395, 0.59113097, -0.3317951,
        0.81284314, -0.47741836, 1.0645567, -0.3332645, -0.072114535, -0.22854178, 0.59325784, -0.35833201, 0.7027024,
        -0.38634872, 0.95431638, -0.38132709, 0.17369804, -0.15636569, 0.60424858, -0.53198421, 0.50244039, -0.39567602,
        0.8616842, -0.43806192, 0.20166609, -0.16219565, 0.65563643, -0.58681351, 0.68597209, -0.50682843, 1.1370167,
        -0.22661287, -0.038393028, -0.20516922,
    ];

    /// The script's `fill`: deterministic values in ±0.5, computed in f64 and rounded to f32.
    fn fill(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (0.5 * (((i + 1) * (i + 1)) as f64 * 0.7548776662 + seed as f64 * 0.5698402910).sin()) as f32)
            .collect()
    }

    fn input() -> Tensor {
        (Tensor::from_vec(fill(64, 100), (2, 4, 8), &Device::Cpu).unwrap() * 2.0).unwrap()
    }

    fn mask(rows: [[u8; 4]; 2]) -> Tensor {
        Tensor::new(&rows, &Device::Cpu).unwrap()
    }

    /// The script's weights for whatever `build` creates: the i-th parameter in name order gets
    /// `fill(.., i)`. Also returns the sorted names.
    fn torch_weights<T>(build: impl Fn(VarBuilder) -> Result<T>) -> (T, Vec<String>) {
        let params = Params::new(rng(0, "init"));
        build(params.var_builder(&Device::Cpu)).unwrap();
        let vars = params.named_vars();
        let names = vars.iter().map(|(k, _)| k.clone()).collect();
        let ts: HashMap<String, Tensor> = vars
            .into_iter()
            .enumerate()
            .map(|(i, (name, v))| (name, Tensor::from_vec(fill(v.elem_count(), i), v.shape(), &Device::Cpu).unwrap()))
            .collect();
        (build(VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu)).unwrap(), names)
    }

    fn assert_close(got: &Tensor, want: &[f32], what: &str) {
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-5, "{what}[{i}]: {g} vs {w}\n{got:?}");
        }
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn layer_config(activation: Activation, norm_first: bool) -> TransformerLayerConfig {
        TransformerLayerConfig {
            nhead: 2,
            dim_feedforward: 16,
            dropout: 0.1,
            activation,
            norm_first,
            ..Default::default()
        }
    }

    #[test]
    fn multihead_attention_matches_pytorch() {
        let (mha, names) = torch_weights(|vb| MultiheadAttention::new(8, 2, 0.0, vb));
        // mha names: ['in_proj_bias', 'in_proj_weight', 'out_proj.bias', 'out_proj.weight']
        assert_eq!(names, ["in_proj_bias", "in_proj_weight", "out_proj.bias", "out_proj.weight"]);
        let x = input();
        assert_close(&mha.forward(&x, None, &mut Ctx::infer()).unwrap(), MHA, "no mask");
        let padded = mask([[0, 0, 0, 0], [0, 0, 1, 1]]);
        assert_close(&mha.forward(&x, Some(&padded), &mut Ctx::infer()).unwrap(), MHA_MASKED, "mask");
        // The same mask as booleans in another dtype, and built from lengths.
        let as_f32 = padded.to_dtype(DType::F32).unwrap();
        assert_close(&mha.forward(&x, Some(&as_f32), &mut Ctx::infer()).unwrap(), MHA_MASKED, "f32 mask");
        let from_lengths = padding_mask_from_lengths(&[4, 2], 4, &Device::Cpu).unwrap();
        assert_eq!(from_lengths.to_vec2::<u8>().unwrap(), padded.to_vec2::<u8>().unwrap());
    }

    #[test]
    fn fully_padded_examples_stay_finite() {
        let (mha, _) = torch_weights(|vb| MultiheadAttention::new(8, 2, 0.0, vb));
        let x = input();
        let full = mask([[0, 1, 1, 1], [1, 1, 1, 1]]);
        let out = mha.forward(&x, Some(&full), &mut Ctx::infer()).unwrap();
        assert_close(&out.get(0).unwrap(), MHA_FULLY_PADDED_0, "example with one real step");
        // PyTorch gives NaN for the all-padding example; here it attends to nothing: out_proj.bias.
        let bias = values(mha.out_proj.bias().unwrap());
        assert_close(&out.get(1).unwrap(), &bias.repeat(4), "all-padding example");
        // Also in training (differentiable softmax) and through a whole encoder layer.
        let mut r = rng(0, "dropout");
        let out = mha.forward(&x, Some(&full), &mut Ctx::train(&mut r)).unwrap();
        assert!(values(&out).iter().all(|v| v.is_finite()));
        let (layer, _) =
            torch_weights(|vb| TransformerEncoderLayer::new(8, &layer_config(Activation::Relu, false), vb));
        let out = layer.forward(&x, Some(&full), &mut Ctx::infer()).unwrap();
        assert!(values(&out).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn encoder_layer_matches_pytorch() {
        let cases = [
            (false, Activation::Relu, LAYER_POST_RELU, LAYER_POST_RELU_MASKED),
            (false, Activation::Gelu, LAYER_POST_GELU, LAYER_POST_GELU_MASKED),
            (true, Activation::Relu, LAYER_PRE_RELU, LAYER_PRE_RELU_MASKED),
            (true, Activation::Gelu, LAYER_PRE_GELU, LAYER_PRE_GELU_MASKED),
        ];
        let x = input();
        let padded = mask([[0, 0, 0, 0], [0, 0, 1, 1]]);
        for (norm_first, activation, want, want_masked) in cases {
            let what = format!("norm_first={norm_first} {activation:?}");
            let cfg = layer_config(activation, norm_first);
            let (layer, names) = torch_weights(|vb| TransformerEncoderLayer::new(8, &cfg, vb));
            // layer names: ['linear1.bias', 'linear1.weight', 'linear2.bias', 'linear2.weight', 'norm1.bias',
            // 'norm1.weight', 'norm2.bias', 'norm2.weight', 'self_attn.in_proj_bias',
            // 'self_attn.in_proj_weight', 'self_attn.out_proj.bias', 'self_attn.out_proj.weight']
            assert_eq!(
                names,
                [
                    "linear1.bias",
                    "linear1.weight",
                    "linear2.bias",
                    "linear2.weight",
                    "norm1.bias",
                    "norm1.weight",
                    "norm2.bias",
                    "norm2.weight",
                    "self_attn.in_proj_bias",
                    "self_attn.in_proj_weight",
                    "self_attn.out_proj.bias",
                    "self_attn.out_proj.weight"
                ]
            );
            assert_close(&layer.forward(&x, None, &mut Ctx::infer()).unwrap(), want, &what);
            assert_close(&layer.forward(&x, Some(&padded), &mut Ctx::infer()).unwrap(), want_masked, &what);
        }
    }

    #[test]
    fn encoder_stack_matches_pytorch() {
        let cfg = TransformerLayerConfig { layers: 2, final_norm: true, ..layer_config(Activation::Gelu, true) };
        let (stack, names) = torch_weights(|vb| TransformerEncoder::new(8, &cfg, vb));
        // PyTorch's names, sorted (the script prints them):
        let mut want = Vec::new();
        for i in 0..2 {
            for p in ["linear1.bias", "linear1.weight", "linear2.bias", "linear2.weight", "norm1.bias", "norm1.weight"]
            {
                want.push(format!("layers.{i}.{p}"));
            }
            for p in ["norm2.bias", "norm2.weight", "self_attn.in_proj_bias", "self_attn.in_proj_weight"] {
                want.push(format!("layers.{i}.{p}"));
            }
            want.push(format!("layers.{i}.self_attn.out_proj.bias"));
            want.push(format!("layers.{i}.self_attn.out_proj.weight"));
        }
        want.extend(["norm.bias".to_string(), "norm.weight".to_string()]);
        assert_eq!(names, want);
        let padded = mask([[0, 0, 0, 0], [0, 0, 1, 1]]);
        assert_close(
            &stack.forward(&input(), Some(&padded), &mut Ctx::infer()).unwrap(),
            STACK_PRE_GELU_MASKED,
            "stack",
        );
    }

    #[test]
    fn training_path_without_dropout_equals_inference() {
        // Training uses the differentiable softmax and layer norm, inference the fused kernels.
        let cfg = TransformerLayerConfig {
            dropout: 0.0,
            layers: 2,
            final_norm: true,
            ..layer_config(Activation::Gelu, false)
        };
        let (stack, _) = torch_weights(|vb| TransformerEncoder::new(8, &cfg, vb));
        let padded = mask([[0, 0, 0, 0], [0, 0, 1, 1]]);
        let infer = stack.forward(&input(), Some(&padded), &mut Ctx::infer()).unwrap();
        let mut r = rng(0, "dropout");
        let train = stack.forward(&input(), Some(&padded), &mut Ctx::train(&mut r)).unwrap();
        assert_close(&train, &values(&infer), "train vs infer");
    }

    #[test]
    fn dropout_is_seeded_and_training_only() {
        let cfg = TransformerLayerConfig { dropout: 0.3, layers: 2, ..layer_config(Activation::Relu, true) };
        let params = Params::new(rng(0, "init"));
        let stack = TransformerEncoder::new(8, &cfg, params.var_builder(&Device::Cpu)).unwrap();
        let x = input();
        let run = |seed| {
            let mut r = rng(seed, "dropout");
            values(&stack.forward(&x, None, &mut Ctx::train(&mut r)).unwrap())
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let a = values(&stack.forward(&x, None, &mut Ctx::infer()).unwrap());
        assert_eq!(a, values(&stack.forward(&x, None, &mut Ctx::infer()).unwrap()));
        assert_ne!(a, run(1));
        // Attention dropout alone.
        let mha = MultiheadAttention::new(8, 2, 0.5, params.var_builder(&Device::Cpu).pp("mha")).unwrap();
        let mut r = rng(1, "dropout");
        let dropped = values(&mha.forward(&x, None, &mut Ctx::train(&mut r)).unwrap());
        assert_ne!(dropped, values(&mha.forward(&x, None, &mut Ctx::infer()).unwrap()));
    }

    #[test]
    fn fresh_weights_follow_pytorch_init_and_gradients_flow() {
        let params = Params::new(rng(0, "init"));
        let cfg = TransformerLayerConfig { layers: 2, final_norm: true, ..layer_config(Activation::Gelu, true) };
        let stack = TransformerEncoder::new(8, &cfg, params.var_builder(&Device::Cpu)).unwrap();
        let vars: HashMap<String, Vec<f32>> =
            params.named_vars().into_iter().map(|(k, v)| (k, values(v.as_tensor()))).collect();
        let max = |name: &str| vars[name].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max("layers.0.self_attn.in_proj_weight") <= (6.0f32 / 32.0).sqrt());
        assert!(max("layers.0.self_attn.out_proj.weight") <= 1.0 / 8f32.sqrt());
        assert_eq!(max("layers.0.self_attn.in_proj_bias"), 0.0);
        assert_eq!(max("layers.0.self_attn.out_proj.bias"), 0.0);
        assert!(max("layers.1.linear2.weight") <= 0.25);
        assert!(vars["layers.1.norm2.weight"].iter().all(|&v| v == 1.0));
        assert_ne!(vars["layers.0.linear1.weight"], vars["layers.1.linear1.weight"]);

        let padded = mask([[0, 0, 0, 0], [0, 0, 1, 1]]);
        let mut r = rng(0, "dropout");
        let out = stack.forward(&input(), Some(&padded), &mut Ctx::train(&mut r)).unwrap();
        let grads = out.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in params.named_vars() {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            assert!(values(g).iter().all(|x| x.is_finite()), "{name}");
        }
    }

    #[test]
    fn in_place_weight_updates_are_seen() {
        // Optimizers update the variables in place: the layers must read them at every pass.
        let params = Params::new(rng(0, "init"));
        let cfg = TransformerLayerConfig { final_norm: true, ..layer_config(Activation::Relu, true) };
        let stack = TransformerEncoder::new(8, &cfg, params.var_builder(&Device::Cpu)).unwrap();
        let before = values(&stack.forward(&input(), None, &mut Ctx::infer()).unwrap());
        for (_, v) in params.named_vars() {
            v.set(&v.as_tensor().affine(0.5, 0.1).unwrap()).unwrap();
        }
        let after = stack.forward(&input(), None, &mut Ctx::infer()).unwrap();
        let rebuilt = TransformerEncoder::new(8, &cfg, params.var_builder(&Device::Cpu)).unwrap();
        let want = values(&rebuilt.forward(&input(), None, &mut Ctx::infer()).unwrap());
        assert_close(&after, &want, "updated weights");
        assert_ne!(before, want);
    }

    #[test]
    fn heads_must_divide_d_model() {
        let params = Params::new(rng(0, "init"));
        let cfg = TransformerLayerConfig { nhead: 3, ..TransformerLayerConfig::default() };
        let err = TransformerEncoder::new(8, &cfg, params.var_builder(&Device::Cpu)).err().unwrap();
        assert!(matches!(err, candle_core::Error::Msg(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("d_model 8") && msg.contains("nhead 3"), "{msg}");
        let issues: Vec<String> =
            TransformerLayerConfig { nhead: 0, dim_feedforward: 0, dropout: -0.1, layers: 0, ..Default::default() }
                .validate("model.encoder")
                .iter()
                .map(ToString::to_string)
                .collect();
        assert_eq!(issues.len(), 4, "{issues:?}");
        assert!(issues[0].starts_with("model.encoder.nhead"));
        assert!(TransformerLayerConfig::default().validate("m").is_empty());
        let (mha, _) = torch_weights(|vb| MultiheadAttention::new(8, 2, 0.0, vb));
        let bad_mask = Tensor::zeros((2, 3), DType::U8, &Device::Cpu).unwrap();
        assert!(mha.forward(&input(), Some(&bad_mask), &mut Ctx::infer()).is_err());
    }

    #[test]
    fn config_reads_with_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc.json");
        std::fs::write(&path, r#"{"nhead": 2, "activation": "gelu", "norm_first": true}"#).unwrap();
        let cfg: TransformerLayerConfig = pipeline_core::run::read_json(&path).unwrap();
        assert_eq!(
            cfg,
            TransformerLayerConfig { nhead: 2, activation: Activation::Gelu, norm_first: true, ..Default::default() }
        );
        std::fs::write(&path, r#"{"heads": 2}"#).unwrap();
        assert!(pipeline_core::run::read_json::<TransformerLayerConfig>(&path).is_err());
    }
}
