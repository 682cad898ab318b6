//! Building blocks shared by the architectures: activations, seeded dropout, linear layers,
//! layer normalisation.
//!
//! On the CPU in f32, fully connected layers run as one fused `kernels` op (multiply, bias
//! and ReLU forward and backward together); on other devices and dtypes they are candle's
//! tensor ops. Both compute the same function and gradients.

use candle_core::{D, DType, Result, Shape, Tensor};
use candle_nn::{Init, Linear, Module as _, VarBuilder};
use pipeline_core::Ctx;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::InitScheme;

/// A non-linearity between layers (`model.activation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    #[default]
    Relu,
    /// `x` for `x > 0`, `0.01 x` otherwise (PyTorch's default slope).
    LeakyRelu,
    /// Gaussian error linear unit, exact (erf) form as PyTorch's `nn.GELU()`.
    Gelu,
    /// `x · sigmoid(x)` (also called swish).
    Silu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
}

impl Activation {
    /// Applies the activation.
    pub fn forward(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => xs.relu(),
            Activation::LeakyRelu => candle_nn::ops::leaky_relu(xs, 0.01),
            Activation::Gelu => xs.gelu_erf(),
            Activation::Silu => xs.silu(),
            Activation::Tanh => xs.tanh(),
            Activation::Sigmoid => candle_nn::ops::sigmoid(xs),
        }
    }
}

/// Inverted dropout with probability `p`, drawing its mask from the training pass's seeded
/// stream; the identity at inference or when `p` is 0.
pub fn dropout(xs: &Tensor, p: f32, ctx: &mut Ctx<'_>) -> Result<Tensor> {
    let Some(rng) = ctx.rng() else { return Ok(xs.clone()) };
    if p <= 0.0 {
        return Ok(xs.clone());
    }
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..xs.elem_count()).map(|_| if rng.random::<f32>() < p { 0.0 } else { keep }).collect();
    xs.mul(&Tensor::from_vec(mask, xs.shape(), xs.device())?)
}

/// True when the fused CPU kernels serve `t`: an f32 tensor on the CPU.
pub fn fused(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// `activation(layer(xs))` (no activation for `None`), with a ReLU folded into the fused
/// kernel on the CPU.
pub fn linear_forward(layer: &Linear, xs: &Tensor, activation: Option<Activation>) -> Result<Tensor> {
    let w = layer.weight();
    if !(fused(xs) && fused(w) && layer.bias().is_none_or(fused)) {
        let y = layer.forward(xs)?;
        return match activation {
            Some(a) => a.forward(&y),
            None => Ok(y),
        };
    }
    let fused_act =
        if activation == Some(Activation::Relu) { kernels::Activation::Relu } else { kernels::Activation::None };
    let y = kernels::linear(xs, w, layer.bias(), fused_act)?;
    match activation {
        Some(a) if a != Activation::Relu => a.forward(&y),
        _ => Ok(y),
    }
}

/// A fully connected layer `in_dim → out_dim` named `weight` and `bias` under `vb`, initialised
/// by `init` (PyTorch layout: the weight is `[out_dim, in_dim]`).
pub fn linear(in_dim: usize, out_dim: usize, init: InitScheme, vb: VarBuilder) -> Result<Linear> {
    let shape = Shape::from((out_dim, in_dim));
    let w = vb.get_with_hints(shape.clone(), "weight", init.weight(&shape))?;
    let b = vb.get_with_hints(out_dim, "bias", init.bias(in_dim))?;
    Ok(Linear::new(w, Some(b)))
}

/// PyTorch's `nn.LayerNorm` epsilon.
pub(crate) const LAYER_NORM_EPS: f64 = 1e-5;

/// Layer normalisation over the last dimension with PyTorch's `weight` / `bias` names.
///
/// Not `candle_nn::LayerNorm`: on contiguous inputs that one calls `candle_nn::ops::layer_norm`,
/// a custom op applied *without* a backward pass, so no gradient reaches the layer's weights
/// or anything below it.
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn new(size: usize, vb: VarBuilder) -> Result<Self> {
        Self::with_eps(size, LAYER_NORM_EPS, vb)
    }

    pub(crate) fn with_eps(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(size, "bias", Init::Const(0.0))?;
        Ok(Self { weight, bias, eps })
    }

    /// Normalises `xs`. With `grad` as tensor ops that carry gradients (candle's fused
    /// `layer_norm` has no backward); without, with the fused op.
    pub(crate) fn forward(&self, xs: &Tensor, grad: bool) -> Result<Tensor> {
        if !grad {
            return candle_nn::ops::layer_norm(&xs.contiguous()?, &self.weight, &self.bias, self.eps as f32);
        }
        let centred = xs.broadcast_sub(&xs.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use pipeline_core::rng;

    use super::*;

    #[test]
    fn activations_match_pytorch() {
        // PyTorch 2.15: x = torch.tensor([-2., -0.5, 0., 0.5, 2.])
        // [f(x).tolist() for f in (F.relu, F.leaky_relu, F.gelu, F.silu, torch.tanh, torch.sigmoid)]
        let x = Tensor::new(&[-2f32, -0.5, 0.0, 0.5, 2.0], &Device::Cpu).unwrap();
        let cases: [(Activation, [f32; 5]); 6] = [
            (Activation::Relu, [0.0, 0.0, 0.0, 0.5, 2.0]),
            (Activation::LeakyRelu, [-0.02, -0.005, 0.0, 0.5, 2.0]),
            (Activation::Gelu, [-0.0455001, -0.15426879, 0.0, 0.3457312, 1.95449996]),
            (Activation::Silu, [-0.23840584, -0.18877034, 0.0, 0.31122968, 1.76159406]),
            (Activation::Tanh, [-0.96402758, -0.46211717, 0.0, 0.46211717, 0.96402758]),
            (Activation::Sigmoid, [0.11920292, 0.37754068, 0.5, 0.62245935, 0.88079703]),
        ];
        for (a, want) in cases {
            let got = a.forward(&x).unwrap().to_vec1::<f32>().unwrap();
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{a:?}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn dropout_is_seeded_scaled_and_off_at_inference() {
        let x = Tensor::ones((100, 50), DType::F32, &Device::Cpu).unwrap();
        let run = |seed| {
            let mut r = rng(seed, "dropout");
            dropout(&x, 0.25, &mut Ctx::train(&mut r)).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        let zeros = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
        assert!((zeros - 0.25).abs() < 0.03, "dropped fraction {zeros}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        let inf = dropout(&x, 0.25, &mut Ctx::infer()).unwrap();
        assert_eq!(inf.sum_all().unwrap().to_scalar::<f32>().unwrap(), 5000.0);
    }
}
