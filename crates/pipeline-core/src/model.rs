//! The [`Model`] trait every architecture implements, and the context of a forward pass.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{Rng, Task};

/// How a model's raw outputs become predictions, and so how many outputs it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// One logit per class; class probabilities are their softmax (trained with cross-entropy).
    Softmax,
    /// One logit for the second class of a binary task: `p = sigmoid(z)`, probabilities
    /// `[1 - p, p]` (trained with binary cross-entropy on logits).
    Sigmoid,
    /// The outputs are the predicted values (regression).
    Identity,
}

impl Head {
    /// The usual head of `task`: softmax for classification, identity otherwise.
    pub fn default_for(task: &Task) -> Self {
        match task {
            Task::Classification { .. } => Head::Softmax,
            _ => Head::Identity,
        }
    }

    /// The number of model outputs this head reads for `task`.
    pub fn outputs(self, task: &Task) -> usize {
        match self {
            Head::Softmax => task.outputs(),
            Head::Sigmoid => 1,
            // One value, or one per step ahead of a forecast.
            Head::Identity => task.outputs().max(1),
        }
    }
}

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
