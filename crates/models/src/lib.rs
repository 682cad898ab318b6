//! Model architectures, built from the `model:` section of the config.
//!
//! [`ModelConfig`] is a tagged enum (`arch: mlp`, …): an unknown architecture or option is a
//! config error for free. [`build`] turns it into a [`Model`](pipeline_core::Model) through
//! candle's `VarBuilder`, so the same code trains from fresh, seeded weights ([`Params`]) and
//! serves from a safetensors file ([`load_weights`]). [`predict`] runs a model over rows in
//! batches at inference.
//!
//! Architectures: the [`Mlp`](mlp::Mlp), the linear models ([`linear`]: logistic and ridge
//! regression, an MLP without hidden layers that `train` solves exactly), the configurable [`Cnn`](cnn::Cnn) with its LeNet-5
//! preset, a small [`ResNet`](cnn::ResNet), recurrent networks and transformer encoders over
//! sequences ([`sequence`], built from [`rnn`] and [`attention`]), and pre-trained BERT encoders
//! for transfer learning ([`bert`]), and a DCGAN-style generator / discriminator ([`gan`]).
//! [`summarize`] lists layers, output shapes and
//! parameter counts.
//!
//! What it must not do: own the training loop (that is `train`).

pub mod attention;
pub mod bert;
pub mod cnn;
pub mod cnn1d;
pub mod gan;
mod init;
pub mod layers;
pub mod linear;
pub mod mlp;
pub mod rnn;
pub mod sequence;
pub mod summary;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use pipeline_core::config::Issue;
use pipeline_core::{Ctx, Head, Model, Predictions};
use serde::Serialize;

pub use bert::{BertConfig, BertSizes, Freeze, Pooling};
pub use cnn::{CnnConfig, ConvBlock, LeNet5Config, PoolKind, ResNetConfig};
pub use gan::GanConfig;
pub use init::{InitScheme, Params};
pub use layers::Activation;
pub use linear::{LogisticConfig, RidgeConfig};
pub use mlp::{MlpConfig, Norm};
pub use sequence::{RnnConfig, SeqPooling, TransformerConfig};
pub use summary::{LayerInfo, Summarize, Summary, summarize};

/// What can go wrong building, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shapes that do not fit, a missing weight).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A weights file could not be read or written.
    #[error("{}: {message}", path.display())]
    Weights {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A pre-trained model's `config.json` could not be read, or is missing.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file (or the model directory that lacks it).
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Input rows of the wrong width.
    #[error("expected rows of {expected} values, got {found} values (not a whole number of rows)")]
    Width {
        /// Values per row the model takes.
        expected: usize,
        /// Values given.
        found: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `model:` section: the architecture and its options, tagged by `arch`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum ModelConfig {
    /// A multi-layer perceptron.
    Mlp(MlpConfig),
    /// Logistic (softmax) regression, solved exactly by `train`.
    Logistic(LogisticConfig),
    /// Ridge regression, solved exactly by `train`.
    Ridge(RidgeConfig),
    /// A stack of convolution blocks and a fully connected head.
    Cnn(CnnConfig),
    /// Convolutions along time over `bands × frames` feature maps, averaged into a head.
    Cnn1d(cnn1d::Cnn1dConfig),
    /// LeNet-5.
    #[serde(rename = "lenet5")]
    LeNet5(LeNet5Config),
    /// A small residual network.
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
    /// An embedding, a recurrent network (RNN, LSTM, GRU) and a head.
    Rnn(RnnConfig),
    /// A transformer encoder and a head.
    Transformer(TransformerConfig),
    /// A pre-trained BERT-family encoder with a task head.
    Bert(BertConfig),
    /// A DCGAN-style generator and discriminator for images.
    Gan(GanConfig),
}

pipeline_core::tagged_enum!(ModelConfig, "arch", [
    "mlp" => ModelConfig::Mlp,
    "logistic" => ModelConfig::Logistic,
    "ridge" => ModelConfig::Ridge,
    "cnn" => ModelConfig::Cnn,
    "cnn1d" => ModelConfig::Cnn1d,
    "lenet5" => ModelConfig::LeNet5,
    "resnet" => ModelConfig::ResNet,
    "rnn" => ModelConfig::Rnn,
    "transformer" => ModelConfig::Transformer,
    "bert" => ModelConfig::Bert,
    "gan" => ModelConfig::Gan,
]);

impl ModelConfig {
    /// Checks the values serde cannot (positive widths, dropout in range).
    pub fn validate(&self) -> Vec<Issue> {
        match self {
            ModelConfig::Mlp(c) => c.validate("model"),
            ModelConfig::Logistic(c) => c.validate("model"),
            ModelConfig::Ridge(c) => c.validate("model"),
            ModelConfig::Cnn(c) => c.validate("model"),
            ModelConfig::Cnn1d(c) => c.validate("model"),
            ModelConfig::LeNet5(c) => c.to_cnn().validate("model"),
            ModelConfig::ResNet(c) => c.validate("model"),
            ModelConfig::Rnn(c) => c.validate("model"),
            ModelConfig::Transformer(c) => c.validate("model"),
            ModelConfig::Bert(c) => c.validate("model"),
            ModelConfig::Gan(c) => c.validate("model"),
        }
    }

    /// Checks the architecture against the data's shapes (known once the data is read): a
    /// kernel larger than its input, a head count that does not divide the width, ….
    pub fn check(&self, spec: &ModelSpec) -> Vec<Issue> {
        match self {
            ModelConfig::Mlp(_) | ModelConfig::Logistic(_) | ModelConfig::Ridge(_) => Vec::new(),
            ModelConfig::Cnn(c) => c.check("model", spec),
            ModelConfig::Cnn1d(c) => c.check("model", spec),
            ModelConfig::LeNet5(c) => c.to_cnn().check("model", spec),
            ModelConfig::ResNet(c) => c.check("model", spec),
            ModelConfig::Rnn(c) => c.check("model", spec),
            ModelConfig::Transformer(c) => c.check("model", spec),
            ModelConfig::Bert(c) => c.check("model", spec),
            ModelConfig::Gan(c) => c.check("model", spec),
        }
    }
}

impl ModelConfig {
    /// The config as a bundle stores it: self-contained, so that serving needs nothing but the
    /// bundle (a pre-trained encoder's sizes are copied in from its `config.json`).
    pub fn for_bundle(&self) -> Result<ModelConfig> {
        Ok(match self {
            ModelConfig::Bert(c) => ModelConfig::Bert(BertConfig { sizes: Some(c.sizes()?), ..c.clone() }),
            // The training settings older bundles kept here are not the model's.
            ModelConfig::Gan(c) => ModelConfig::Gan(GanConfig { real_label: None, ema: None, ..c.clone() }),
            other => other.clone(),
        })
    }

    /// Makes a pre-trained model's path relative to `base` (the config file's directory), and
    /// an `hf://<owner>/<name>` path the snapshot directory in the hub cache `hub_cache`.
    pub fn resolve_paths(&mut self, base: &Path, hub_cache: &Path) {
        if let ModelConfig::Bert(c) = self {
            if c.pretrained.to_string_lossy().starts_with("hf://") {
                c.pretrained = bert::resolve_dir(&c.pretrained, hub_cache);
            } else if c.pretrained.is_relative() {
                c.pretrained = base.join(&c.pretrained);
            }
        }
    }
}

/// A model that can also list its layers.
pub trait Network: Model + Summarize {}

impl<T: Model + Summarize> Network for T {}

/// What the data asks of a model: the shape of one input example and the number of outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Shape of one example (`[features]`, `[tokens]` or `[channels, height, width]`).
    pub input_shape: Vec<usize>,
    /// Outputs per example: classes, or 1 for regression.
    pub outputs: usize,
    /// For token-id sequences: the vocabulary size.
    pub vocab: Option<usize>,
    /// For series windows: their layout (the input is flat, `[history × channels + horizon ×
    /// future]`).
    pub series: Option<SeriesShape>,
}

/// The layout of a series window ([`pipeline_core::InputSchema::Series`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesShape {
    /// Past steps.
    pub history: usize,
    /// Values per past step.
    pub channels: usize,
    /// Steps forecast.
    pub horizon: usize,
    /// Known covariates per forecast step.
    pub future: usize,
}

impl ModelSpec {
    /// The spec of inputs described by `input`, with `outputs` outputs.
    pub fn new(input: &pipeline_core::InputSchema, outputs: usize) -> Self {
        let vocab = match input {
            pipeline_core::InputSchema::Sequence { vocab_size, .. } => Some(*vocab_size),
            _ => None,
        };
        let series = match *input {
            pipeline_core::InputSchema::Series { history, channels, horizon, future } => {
                Some(SeriesShape { history, channels, horizon, future })
            }
            _ => None,
        };
        Self { input_shape: input.shape(), outputs, vocab, series }
    }

    /// Values per input example.
    pub fn input_width(&self) -> usize {
        self.input_shape.iter().product()
    }
}

/// Builds the model `config` describes for `spec`, with weights from `vb`.
pub fn build(config: &ModelConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Box<dyn Network>> {
    Ok(match config {
        ModelConfig::Mlp(c) => Box::new(mlp::Mlp::new(c, spec, vb)?),
        ModelConfig::Logistic(_) | ModelConfig::Ridge(_) => Box::new(mlp::Mlp::new(&linear::as_mlp(), spec, vb)?),
        ModelConfig::Cnn(c) => Box::new(cnn::Cnn::new(c, spec, vb)?),
        ModelConfig::Cnn1d(c) => Box::new(cnn1d::Cnn1d::new(c, spec, vb)?),
        ModelConfig::LeNet5(c) => Box::new(cnn::Cnn::new(&c.to_cnn(), spec, vb)?),
        ModelConfig::ResNet(c) => Box::new(cnn::ResNet::new(c, spec, vb)?),
        ModelConfig::Rnn(c) => Box::new(sequence::RnnModel::new(c, spec, vb)?),
        ModelConfig::Transformer(c) => Box::new(sequence::TransformerModel::new(c, spec, vb)?),
        ModelConfig::Bert(c) => Box::new(bert::Bert::new(c, spec, vb)?),
        // The generator is the part a bundle serves; the discriminator only trains.
        ModelConfig::Gan(c) => Box::new(gan::Generator::new(c, spec, vb)?),
    })
}

/// Builds the model for training: fresh, seeded weights in `params`, then pre-trained weights
/// where the architecture has them (and frozen layers marked). Returns the model and, for
/// pre-trained encoders, the number of tensors loaded.
pub fn build_for_training(
    config: &ModelConfig,
    spec: &ModelSpec,
    params: &Params,
    device: &Device,
) -> Result<(Box<dyn Network>, Option<usize>)> {
    match config {
        ModelConfig::Bert(c) => {
            let net = bert::Bert::new(c, spec, params.var_builder(device))?;
            let loaded = bert::load_pretrained(c, params, &net)?;
            Ok((Box::new(net), Some(loaded)))
        }
        other => Ok((build(other, spec, params.var_builder(device))?, None)),
    }
}

/// Saves `params` as a safetensors file at `path`, atomically. Tensor names are the
/// `VarBuilder` paths (e.g. `layers.0.weight`).
pub fn save_weights(params: &Params, path: &Path) -> Result<()> {
    let vars = params.named_vars();
    let tensors: Vec<(String, Tensor)> = vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let bytes = safetensors::serialize(tensors, None)
        .map_err(|e| Error::Weights { path: path.into(), message: e.to_string() })?;
    pipeline_core::run::write_atomic(path, &bytes)
        .map_err(|e| Error::Weights { path: path.into(), message: e.to_string() })
}

/// Builds the model `config` describes with the weights of the safetensors file at `path`.
pub fn load_weights(config: &ModelConfig, spec: &ModelSpec, path: &Path, device: &Device) -> Result<Box<dyn Network>> {
    let wrap = |e: candle_core::Error| Error::Weights { path: path.into(), message: e.to_string() };
    let bytes = std::fs::read(path).map_err(|e| Error::Weights { path: path.into(), message: e.to_string() })?;
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device).map_err(wrap)?;
    match build(config, spec, vb) {
        Err(Error::Candle(e)) => Err(wrap(e)),
        other => other,
    }
}

/// Runs `model` at inference over row-major `rows` (each `input_shape` values), `batch_size`
/// rows at a time, and reads its outputs through `head`: class probabilities for
/// [`Head::Softmax`] and [`Head::Sigmoid`], values for [`Head::Identity`].
pub fn predict(
    model: &dyn Model,
    rows: &[f32],
    input_shape: &[usize],
    head: Head,
    batch_size: usize,
    device: &Device,
) -> Result<Predictions> {
    let width: usize = input_shape.iter().product();
    if width == 0 || !rows.len().is_multiple_of(width) {
        return Err(Error::Width { expected: width, found: rows.len() });
    }
    let mut out = Vec::new();
    let mut outputs = 1;
    for chunk in rows.chunks(batch_size.max(1) * width) {
        let mut shape = vec![chunk.len() / width];
        shape.extend_from_slice(input_shape);
        let xs = Tensor::from_slice(chunk, shape, device)?;
        let ys = model.forward(&xs, &mut Ctx::infer())?;
        outputs = ys.dims().last().copied().unwrap_or(1);
        let ys = match head {
            Head::Softmax => candle_nn::ops::softmax_last_dim(&ys)?,
            Head::Sigmoid => candle_nn::ops::sigmoid(&ys)?,
            Head::Identity => ys,
        };
        out.extend(ys.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(match head {
        Head::Softmax => Predictions::Classes { probs: out, classes: outputs },
        Head::Sigmoid => Predictions::Classes { probs: out.iter().flat_map(|&p| [1.0 - p, p]).collect(), classes: 2 },
        Head::Identity => Predictions::Values(out),
    })
}

#[cfg(test)]
mod tests {
    use pipeline_core::rng;

    use super::*;

    fn spec() -> ModelSpec {
        ModelSpec { input_shape: vec![1, 2, 3], outputs: 4, vocab: None, series: None }
    }

    fn mlp() -> ModelConfig {
        ModelConfig::Mlp(MlpConfig {
            hidden: vec![5],
            activation: Activation::Relu,
            dropout: 0.1,
            norm: Norm::None,
            init: InitScheme::Torch,
        })
    }

    #[test]
    fn mlp_shapes_and_parameter_count() {
        let params = Params::new(rng(0, "init"));
        let model = build(&mlp(), &spec(), params.var_builder(&Device::Cpu)).unwrap();
        // (6*5 + 5) + (5*4 + 4)
        assert_eq!(params.count(), 59);
        let names: Vec<String> = params.named_vars().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, vec!["layers.0.bias", "layers.0.weight", "layers.1.bias", "layers.1.weight"]);
        let xs = Tensor::zeros((7, 1, 2, 3), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(model.forward(&xs, &mut Ctx::infer()).unwrap().dims(), &[7, 4]);
    }

    #[test]
    fn mlp_forward_matches_pytorch() {
        // torch: lin1 = nn.Linear(3, 2); lin2 = nn.Linear(2, 2) with
        //   lin1.weight = [[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]], lin1.bias = [0.01, -0.02]
        //   lin2.weight = [[1.0, -1.0], [0.5, 0.25]], lin2.bias = [0.1, 0.2]
        //   x = [[1., 2., 3.], [-1., 0.5, 2.]]; lin2(F.relu(lin1(x))).tolist()   (PyTorch 2.15)
        //   -> [[0.7100000381469727, 0.5049999952316284], [0.5100000500679016, 0.4050000309944153]]
        let dev = Device::Cpu;
        let mut ts = std::collections::HashMap::new();
        ts.insert("layers.0.weight".to_string(), Tensor::new(&[[0.1f32, -0.2, 0.3], [0.4, 0.5, -0.6]], &dev).unwrap());
        ts.insert("layers.0.bias".to_string(), Tensor::new(&[0.01f32, -0.02], &dev).unwrap());
        ts.insert("layers.1.weight".to_string(), Tensor::new(&[[1.0f32, -1.0], [0.5, 0.25]], &dev).unwrap());
        ts.insert("layers.1.bias".to_string(), Tensor::new(&[0.1f32, 0.2], &dev).unwrap());
        let vb = VarBuilder::from_tensors(ts, DType::F32, &dev);
        let cfg = ModelConfig::Mlp(MlpConfig { hidden: vec![2], ..MlpConfig::default() });
        let model =
            build(&cfg, &ModelSpec { input_shape: vec![3], outputs: 2, vocab: None, series: None }, vb).unwrap();
        let x = Tensor::new(&[[1f32, 2., 3.], [-1., 0.5, 2.]], &dev).unwrap();
        let y = model.forward(&x, &mut Ctx::infer()).unwrap().to_vec2::<f32>().unwrap();
        let want = [[0.71f32, 0.505], [0.51, 0.405]];
        for (row, w) in y.iter().zip(want) {
            for (a, b) in row.iter().zip(w) {
                assert!((a - b).abs() < 1e-6, "{y:?}");
            }
        }
    }

    #[test]
    fn weights_round_trip_through_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let params = Params::new(rng(0, "init"));
        let model = build(&mlp(), &spec(), params.var_builder(&Device::Cpu)).unwrap();
        save_weights(&params, &path).unwrap();
        let loaded = load_weights(&mlp(), &spec(), &path, &Device::Cpu).unwrap();
        let rows: Vec<f32> = (0..18).map(|i| i as f32 / 10.0).collect();
        let a = predict(model.as_ref(), &rows, &spec().input_shape, Head::Softmax, 2, &Device::Cpu).unwrap();
        let b = predict(loaded.as_ref(), &rows, &spec().input_shape, Head::Softmax, 3, &Device::Cpu).unwrap();
        assert_eq!(a, b);
        let Predictions::Classes { probs, .. } = a else { panic!() };
        for row in probs.chunks(4) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // A bundle whose config does not match its weights fails with the file named.
        let other = ModelConfig::Mlp(MlpConfig { hidden: vec![6], ..MlpConfig::default() });
        let err = load_weights(&other, &spec(), &path, &Device::Cpu).err().unwrap().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("layers.0"), "{err}");
    }

    #[test]
    fn validate_names_keys() {
        let bad = ModelConfig::Mlp(MlpConfig { hidden: vec![4, 0], dropout: 1.0, ..MlpConfig::default() });
        let issues: Vec<String> = bad.validate().iter().map(ToString::to_string).collect();
        assert_eq!(
            issues,
            vec!["model.hidden[1]: a layer needs at least 1 unit, got 0", "model.dropout: must be in [0, 1), got 1"]
        );
    }
}
