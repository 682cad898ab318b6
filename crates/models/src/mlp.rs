//! The multi-layer perceptron.

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, Linear, ModuleT as _, VarBuilder};
use pipeline_core::config::Issue;
use pipeline_core::{Ctx, Model};
use serde::{Deserialize, Serialize};

use crate::layers::{Activation, LayerNorm, dropout, linear, linear_forward};
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
    /// Normalisation between each hidden layer's linear map and its activation.
    #[serde(default)]
    pub norm: Norm,
    /// Weight initialisation.
    #[serde(default)]
    pub init: InitScheme,
}

/// `model.norm` of an MLP: what normalises each hidden layer's output before its activation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// No normalisation.
    #[default]
    None,
    /// Batch normalisation (PyTorch's `nn.BatchNorm1d`: batch statistics in training, running
    /// statistics with momentum 0.1 at inference, eps 1e-5).
    Batch,
    /// Layer normalisation over the features of each example (`nn.LayerNorm`, eps 1e-5).
    Layer,
}

enum NormLayer {
    Batch(BatchNorm),
    Layer(LayerNorm),
}

impl NormLayer {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            NormLayer::Batch(bn) => bn.forward_t(xs, train),
            NormLayer::Layer(ln) => ln.forward(xs, train),
        }
    }
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

/// An MLP: the input is flattened, then `hidden.len()` blocks of linear → (norm) →
/// activation → dropout, then a linear output layer. Weights are named `layers.<i>.weight` /
/// `.bias`, `i = 0..=hidden.len()`, in PyTorch's `[out, in]` layout; normalisations
/// `norms.<i>.weight` / `.bias` (and `.running_mean` / `.running_var` for batch norm).
pub struct Mlp {
    layers: Vec<Linear>,
    norms: Vec<NormLayer>,
    activation: Activation,
    dropout: f32,
}

impl Mlp {
    /// Builds the MLP for `spec` under `vb`.
    pub fn new(cfg: &MlpConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let mut dims = vec![spec.input_width()];
        dims.extend(&cfg.hidden);
        dims.push(spec.outputs);
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| linear(w[0], w[1], cfg.init, vb.pp("layers").pp(i.to_string())))
            .collect::<Result<_>>()?;
        let norms = cfg
            .hidden
            .iter()
            .enumerate()
            .filter_map(|(i, &h)| {
                let vb = vb.pp("norms").pp(i.to_string());
                match cfg.norm {
                    Norm::None => None,
                    Norm::Batch => Some(crate::cnn::batch_norm(h, vb).map(NormLayer::Batch)),
                    Norm::Layer => Some(LayerNorm::new(h, vb).map(NormLayer::Layer)),
                }
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers, norms, activation: cfg.activation, dropout: cfg.dropout })
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
            let kind = match self.norms.get(i) {
                Some(NormLayer::Batch(_)) => "BatchNorm1d",
                Some(NormLayer::Layer(_)) => "LayerNorm",
                None => continue,
            };
            out.push(crate::LayerInfo::new(format!("norms.{i}"), kind.into(), vec![o]));
        }
        out
    }
}

impl Model for Mlp {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let mut xs = xs.flatten_from(1)?;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            if let (true, Some(norm)) = (i < last, self.norms.get(i)) {
                let ys = norm.forward(&linear_forward(layer, &xs, None)?, ctx.is_train())?;
                xs = dropout(&self.activation.forward(&ys)?, self.dropout, ctx)?;
            } else if i < last {
                xs = dropout(&linear_forward(layer, &xs, Some(self.activation))?, self.dropout, ctx)?;
            } else {
                xs = linear_forward(layer, &xs, None)?;
            }
        }
        Ok(xs)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use pipeline_core::rng;

    use super::*;
    use crate::Params;

    /// PyTorch 2.15 (`nn.ModuleList` of `nn.Linear` named `layers`, of `nn.BatchNorm1d` or
    /// `nn.LayerNorm` named `norms`; `x = relu(norm(linear(x)))` per hidden layer):
    /// ```python
    /// def fill(m):  # every tensor 0.1*sin(0.37*i + 0.01*sum(name bytes)); running_var |.|+0.5;
    ///               # norm scales 1 + that
    /// x = torch.tensor([5 * math.cos(0.7 * i) for i in range(24)]).reshape(4, 6)
    /// m = MLP([6, 5, 4, 3], norm); fill(m); m.train(); m(x)  # then the running stats; m.eval(); m(x)
    /// ```
    fn with_formula(norm: Norm) -> (Mlp, Params) {
        let cfg = MlpConfig { hidden: vec![5, 4], norm, ..MlpConfig::default() };
        let spec = ModelSpec { input_shape: vec![6], outputs: 3, vocab: None, series: None };
        let params = Params::new(rng(0, "init"));
        let mlp = Mlp::new(&cfg, &spec, params.var_builder(&Device::Cpu)).unwrap();
        for (name, var) in params.named_vars() {
            let h = name.bytes().map(f64::from).sum::<f64>() * 0.01;
            let vals: Vec<f32> = (0..var.elem_count())
                .map(|i| {
                    let x = 0.1 * (0.37 * i as f64 + h).sin();
                    let x = if name.ends_with("running_var") { x.abs() + 0.5 } else { x };
                    (if name.starts_with("norms") && name.ends_with("weight") { 1.0 + x } else { x }) as f32
                })
                .collect();
            var.set(&Tensor::from_vec(vals, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
        (mlp, params)
    }

    fn input() -> Tensor {
        let v: Vec<f32> = (0..24).map(|i| (5.0 * (0.7 * f64::from(i)).cos()) as f32).collect();
        Tensor::from_vec(v, (4, 6), &Device::Cpu).unwrap()
    }

    fn close(got: &Tensor, want: &[f64]) {
        let g = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g.len(), want.len());
        for (a, b) in g.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{g:?} vs {want:?}");
        }
    }

    #[test]
    fn batch_norm_matches_pytorch_in_training_and_inference() {
        let (mlp, params) = with_formula(Norm::Batch);
        let mut r = rng(0, "dropout");
        close(
            &mlp.forward(&input(), &mut Ctx::train(&mut r)).unwrap(),
            &[
                0.10484525561332703,
                -0.0658797174692154,
                -0.12795613706111908,
                -0.015967437997460365,
                -0.025987917557358742,
                9.066611528396606e-05,
                0.0699189305305481,
                -0.3340316116809845,
                -0.14165736734867096,
                0.07443876564502716,
                -0.06004000082612038,
                -0.09649065136909485,
            ],
        );
        let vars = params.varmap().data().lock().unwrap().clone();
        close(
            vars["norms.0.running_mean"].as_tensor(),
            &[0.09667390584945679, 0.08246790617704391, 0.06897643208503723, 0.11739460378885269, 0.05190481245517731],
        );
        close(
            vars["norms.1.running_var"].as_tensor(),
            &[0.45723864436149597, 0.489655077457428, 0.5160250663757324, 0.5337677001953125],
        );
        close(
            &mlp.forward(&input(), &mut Ctx::infer()).unwrap(),
            &[
                -0.03849836438894272,
                -0.03330930322408676,
                0.02129390835762024,
                -0.04049837589263916,
                -0.019145384430885315,
                0.025862449780106544,
                -0.038813941180706024,
                -0.031074419617652893,
                0.022014765068888664,
                -0.038571760058403015,
                -0.03278951719403267,
                0.021461565047502518,
            ],
        );
    }

    #[test]
    fn layer_norm_matches_pytorch_in_training_and_inference() {
        let (mlp, _) = with_formula(Norm::Layer);
        let want = [
            -0.009641140699386597,
            -0.1500493586063385,
            -0.028733331710100174,
            -0.017657404765486717,
            -0.14773888885974884,
            -0.020298082381486893,
            -0.007178261876106262,
            -0.1655731350183487,
            -0.0340113490819931,
            -0.010489962995052338,
            -0.1498902589082718,
            -0.027855660766363144,
        ];
        let mut r = rng(0, "dropout");
        close(&mlp.forward(&input(), &mut Ctx::train(&mut r)).unwrap(), &want);
        close(&mlp.forward(&input(), &mut Ctx::infer()).unwrap(), &want);
    }

    #[test]
    fn normalised_layers_are_named_and_counted() {
        let (mlp, params) = with_formula(Norm::Batch);
        let summary = crate::summary::summarize(&mlp, &params, &[6]);
        let rows: Vec<(&str, usize)> = summary.layers.iter().map(|l| (l.name.as_str(), l.params)).collect();
        assert_eq!(
            rows,
            [("flatten", 0), ("layers.0", 35), ("norms.0", 10), ("layers.1", 24), ("norms.1", 8), ("layers.2", 15)]
        );
        // nn.Sequential(Linear(6,5), BatchNorm1d(5), Linear(5,4), BatchNorm1d(4), Linear(4,3)) has 92.
        assert_eq!(summary.total, 92);
    }
}
