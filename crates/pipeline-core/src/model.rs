//! The [`Model`] trait every architecture implements, and the context of a forward pass.

use candle_core::Tensor;

use crate::Rng;

/// The context of one forward pass: training (with the random stream that dropout and other
/// stochastic layers draw from) or inference (deterministic, no randomness).
///
/// Randomness comes from the caller rather than from the device, because candle's CPU random
/// generator cannot be seeded: drawing from a seeded [`Rng`] is what makes runs reproducible.
pub struct Ctx<'a> {
    rng: Option<&'a mut Rng>,
}

impl<'a> Ctx<'a> {
    /// A training pass drawing from `rng`.
    pub fn train(rng: &'a mut Rng) -> Self {
        Self { rng: Some(rng) }
    }

    /// An inference pass: stochastic layers are the identity.
    pub fn infer() -> Self {
        Self { rng: None }
    }

    /// Whether this is a training pass.
    pub fn is_train(&self) -> bool {
        self.rng.is_some()
    }

    /// The random stream of a training pass, `None` at inference.
    pub fn rng(&mut self) -> Option<&mut Rng> {
        self.rng.as_deref_mut()
    }
}

/// A model maps a batch of inputs `[batch, ..example shape]` to outputs `[batch, outputs]`:
/// logits for classification, values for regression.
///
/// Its weights live outside it, in the `VarMap` or safetensors file its `VarBuilder` was built
/// from, so the same type trains and serves.
pub trait Model: Send + Sync {
    /// Runs the model on `xs`.
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> candle_core::Result<Tensor>;
}
