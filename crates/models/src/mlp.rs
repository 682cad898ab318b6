//! The multi-layer perceptron.

use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use pipeline_core::config::Issue;
use pipeline_core::{Ctx, Model};
use serde::{Deserialize, Serialize};

use crate::layers::{Activation, dropout, linear, linear_forward};
use crate::{InitScheme, ModelSpec};

/// `model: {arch: mlp, …}`: fully connected layers with an activation and dropout between them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Widths of the hidden layers, in order; empty for a linear model.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Activation after each hidden layer.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability after each hidden activation, in `[0, 1)`.
    #[serde(default)]
    pub dropout: f32,
    /// Weight initialisation.
    #[serde(default)]
    pub init: InitScheme,
}

impl MlpConfig {
    pub(crate) fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
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
}

/// An MLP: the input is flattened, then `hidden.len()` blocks of linear → activation →
/// dropout, then a linear output layer. Weights are named `layers.<i>.weight` / `.bias`,
/// `i = 0..=hidden.len()`, in PyTorch's `[out, in]` layout.
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
    dropout: f32,
}

impl Mlp {
    /// Builds the MLP for `spec` under `vb`.
    pub fn new(cfg: &MlpConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let mut dims = vec![spec.input_width()];
        dims.extend(&cfg.hidden);
        dims.push(spec.outputs);
        let vb = vb.pp("layers");
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| linear(w[0], w[1], cfg.init, vb.pp(i.to_string())))
            .collect::<Result<_>>()?;
        Ok(Self { layers, activation: cfg.activation, dropout: cfg.dropout })
    }
}

impl crate::Summarize for Mlp {
    fn layers(&self, _input: &[usize]) -> Vec<crate::LayerInfo> {
        let mut out = vec![crate::LayerInfo::new(
            "flatten".into(),
            "Flatten".into(),
            vec![self.layers[0].weight().dim(1).unwrap_or(0)],
        )];
        for (i, l) in self.layers.iter().enumerate() {
            let (o, n) = (l.weight().dim(0).unwrap_or(0), l.weight().dim(1).unwrap_or(0));
            out.push(crate::LayerInfo::new(format!("layers.{i}"), format!("Linear {n}→{o}"), vec![o]));
        }
        out
    }
}

impl Model for Mlp {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let mut xs = xs.flatten_from(1)?;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            if i < last {
                xs = dropout(&linear_forward(layer, &xs, Some(self.activation))?, self.dropout, ctx)?;
            } else {
                xs = linear_forward(layer, &xs, None)?;
            }
        }
        Ok(xs)
    }
}
