//! Sequence models built from the recurrent and attention layers: token (or scalar) sequences
//! in, one prediction per sequence out.
//!
//! - `arch: rnn`: embedding → (bidirectional, multi-layer) RNN / LSTM / GRU → pooling → head;
//! - `arch: transformer`: token + learned position embeddings → N encoder layers (pre- or
//!   post-norm, padding masked) → `[CLS]` or mean pooling → head.
//!
//! Token-id inputs (`preprocess.text.output: sequence`) are embedded, with id 0 as padding at
//! the end of each sequence. Numeric rows (tabular inputs) are read as sequences of one value per
//! step — sequence regression over, say, a time series in columns. Series windows
//! (`preprocess.series`) are read as `history` steps of `channels` values (the transformer
//! projects each step to `d_model`); the known covariates of the forecast steps join the pooled
//! state before the head, which has one output per step ahead.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Embedding, Linear, Module, VarBuilder};
use pipeline_core::config::Issue;
use pipeline_core::{Ctx, Model};
use serde::{Deserialize, Serialize};

use crate::attention::{TransformerEncoder, TransformerLayerConfig};
use crate::layers::{Activation, dropout, linear};
use crate::rnn::{Rnn, RnnLayerConfig};
use crate::summary::{LayerInfo, Summarize};
use crate::{InitScheme, ModelSpec, SeriesShape};

/// How the per-step states become one vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeqPooling {
    /// The final state of each direction (at each sequence's last real step).
    #[default]
    Last,
    /// The mean over real steps.
    Mean,
    /// The maximum over real steps.
    Max,
    /// The first position (`[CLS]`) — transformers.
    Cls,
}

fn default_embedding() -> usize {
    64
}

/// `model: {arch: rnn, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnConfig {
    /// Width of the token embedding (token inputs).
    #[serde(default = "default_embedding")]
    pub embedding_dim: usize,
    /// The recurrent layers.
    #[serde(default)]
    pub rnn: RnnLayerConfig,
    /// How steps become one vector (`last`, `mean`, `max`).
    #[serde(default)]
    pub pooling: SeqPooling,
    /// Hidden widths of the head.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Dropout on the embeddings and before each head layer.
    #[serde(default)]
    pub dropout: f32,
}

/// `model: {arch: transformer, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Width of the embeddings and every layer.
    #[serde(default = "default_embedding")]
    pub d_model: usize,
    /// The encoder layers (`nhead`, `dim_feedforward`, `dropout`, `activation`, `norm_first`,
    /// `layers`, `final_norm`).
    #[serde(default)]
    pub encoder: TransformerLayerConfig,
    /// `cls` (the first token, `[CLS]` with WordPiece vocabularies) or `mean` over real tokens.
    #[serde(default = "default_tf_pooling")]
    pub pooling: SeqPooling,
    /// Hidden widths of the head.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Dropout on the embeddings and before each head layer.
    #[serde(default)]
    pub dropout: f32,
}

fn default_tf_pooling() -> SeqPooling {
    SeqPooling::Mean
}

fn check_dropout(issues: &mut Vec<Issue>, key: &str, p: f32) {
    if !(0.0..1.0).contains(&p) {
        issues.push(Issue::new(format!("{key}.dropout"), format!("must be in [0, 1), got {p}")));
    }
}

pub(crate) fn check_hidden(issues: &mut Vec<Issue>, key: &str, hidden: &[usize]) {
    for (i, &h) in hidden.iter().enumerate() {
        if h == 0 {
            issues.push(Issue::new(format!("{key}.hidden[{i}]"), "a layer needs at least 1 unit, got 0"));
        }
    }
}

/// The sequence length of an input: tokens, or one value per feature.
fn sequence_length(spec: &ModelSpec) -> Option<usize> {
    match spec.input_shape[..] {
        [t] => Some(t),
        _ => None,
    }
}

impl RnnConfig {
    pub(crate) fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = self.rnn.validate(&format!("{key}.rnn"));
        if self.embedding_dim == 0 {
            issues.push(Issue::new(format!("{key}.embedding_dim"), "must be at least 1, got 0"));
        }
        if self.pooling == SeqPooling::Cls {
            issues.push(Issue::new(format!("{key}.pooling"), "cls pooling is for transformers: use last, mean or max"));
        }
        check_hidden(&mut issues, key, &self.hidden);
        check_dropout(&mut issues, key, self.dropout);
        issues
    }

    pub(crate) fn check(&self, key: &str, spec: &ModelSpec) -> Vec<Issue> {
        match sequence_length(spec) {
            Some(_) => Vec::new(),
            None => vec![Issue::new(
                format!("{key}.arch"),
                format!(
                    "a recurrent network reads sequences (tokens, or one value per column), not inputs of shape {:?}",
                    spec.input_shape
                ),
            )],
        }
    }
}

impl TransformerConfig {
    pub(crate) fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = self.encoder.validate(&format!("{key}.encoder"));
        if self.encoder.nhead > 0 && !self.d_model.is_multiple_of(self.encoder.nhead) {
            issues.push(Issue::new(
                format!("{key}.encoder.nhead"),
                format!("{} heads do not divide the width d_model {}", self.encoder.nhead, self.d_model),
            ));
        }
        if self.d_model == 0 {
            issues.push(Issue::new(format!("{key}.d_model"), "must be at least 1, got 0"));
        }
        if matches!(self.pooling, SeqPooling::Last | SeqPooling::Max) {
            issues.push(Issue::new(format!("{key}.pooling"), "a transformer pools with cls or mean"));
        }
        check_hidden(&mut issues, key, &self.hidden);
        check_dropout(&mut issues, key, self.dropout);
        issues
    }

    pub(crate) fn check(&self, key: &str, spec: &ModelSpec) -> Vec<Issue> {
        if spec.series.is_some() {
            if self.pooling != SeqPooling::Mean {
                return vec![Issue::new(format!("{key}.pooling"), "a series window has no [CLS] step: use mean")];
            }
            return Vec::new();
        }
        if spec.vocab.is_none() {
            return vec![Issue::new(
                format!("{key}.arch"),
                "a transformer reads token ids (set preprocess.text.output to sequence) or series windows (preprocess.series)"
                    .to_string(),
            )];
        }
        Vec::new()
    }
}

/// Token embedding (ids as `f32`, 0 = padding) or scalar steps, and the per-example lengths.
fn embed(embedding: &Option<Embedding>, xs: &Tensor) -> Result<(Tensor, Vec<usize>, Tensor)> {
    match embedding {
        Some(e) => {
            let ids = xs.to_dtype(DType::U32)?;
            let real = ids.ne(0u32)?;
            let lengths = crate::rnn::lengths_from_mask(&real)?;
            Ok((e.forward(&ids)?, lengths, real))
        }
        None => {
            let (b, t) = xs.dims2()?;
            let real = Tensor::ones((b, t), DType::U8, xs.device())?;
            Ok((xs.unsqueeze(2)?, vec![t; b], real))
        }
    }
}

/// A series window `[batch, history × channels + horizon × future]` as its past steps
/// `[batch, history, channels]` and, with known covariates, their forecast-step values
/// `[batch, horizon × future]`.
fn split_window(s: SeriesShape, xs: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    let b = xs.dim(0)?;
    let past = s.history * s.channels;
    let steps = xs.narrow(1, 0, past)?.reshape((b, s.history, s.channels))?;
    let future = (s.future > 0).then(|| xs.narrow(1, past, s.horizon * s.future)).transpose()?;
    Ok((steps, future))
}

fn with_future(pooled: Tensor, future: Option<Tensor>) -> Result<Tensor> {
    match future {
        Some(f) => Tensor::cat(&[&pooled, &f], 1),
        None => Ok(pooled),
    }
}

/// Mean or max over the real steps of `states` `[batch, time, width]`.
fn pool_steps(states: &Tensor, real: &Tensor, pooling: SeqPooling) -> Result<Tensor> {
    let m = real.to_dtype(DType::F32)?.unsqueeze(2)?;
    match pooling {
        SeqPooling::Max => {
            let neg = ((m.ones_like()? - &m)? * -1e30)?;
            states.broadcast_add(&neg)?.max(1)
        }
        SeqPooling::Cls => states.narrow(1, 0, 1)?.squeeze(1),
        _ => {
            let sum = states.broadcast_mul(&m)?.sum(1)?;
            sum.broadcast_div(&m.sum(1)?.clamp(1.0, f64::MAX)?)
        }
    }
}

fn head(dims: &[usize], vb: VarBuilder) -> Result<Vec<Linear>> {
    dims.windows(2)
        .enumerate()
        .map(|(j, d)| linear(d[0], d[1], InitScheme::Torch, vb.pp("head").pp(j.to_string())))
        .collect()
}

fn run_head(head: &[Linear], mut y: Tensor, p: f32, ctx: &mut Ctx<'_>) -> Result<Tensor> {
    let last = head.len() - 1;
    for (j, l) in head.iter().enumerate() {
        y = l.forward(&dropout(&y, p, ctx)?)?;
        if j < last {
            y = Activation::Relu.forward(&y)?;
        }
    }
    Ok(y)
}

/// The recurrent network (see [`RnnConfig`]). Weights: `embedding.weight`,
/// `rnn.weight_ih_l0` … (PyTorch's names), `head.<j>`.
pub struct RnnModel {
    embedding: Option<Embedding>,
    series: Option<SeriesShape>,
    rnn: Rnn,
    head: Vec<Linear>,
    config: RnnConfig,
}

impl RnnModel {
    /// Builds the network for `spec` under `vb`.
    pub fn new(cfg: &RnnConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let (embedding, input) = match spec.vocab {
            Some(v) => {
                let w = vb.get_with_hints(
                    (v, cfg.embedding_dim),
                    "embedding.weight",
                    candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 },
                )?;
                (Some(Embedding::new(w, cfg.embedding_dim)), cfg.embedding_dim)
            }
            None => (None, spec.series.map_or(1, |s| s.channels)),
        };
        let rnn = Rnn::new(input, &cfg.rnn, vb.pp("rnn"))?;
        let mut dims = vec![rnn.output_size() + spec.series.map_or(0, |s| s.horizon * s.future)];
        dims.extend(&cfg.hidden);
        dims.push(spec.outputs);
        Ok(Self { embedding, series: spec.series, rnn, head: head(&dims, vb)?, config: cfg.clone() })
    }
}

impl Model for RnnModel {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (x, lengths, real, future) = match self.series {
            Some(s) => {
                let (steps, future) = split_window(s, xs)?;
                let b = xs.dim(0)?;
                (steps, vec![s.history; b], Tensor::ones((b, s.history), DType::U8, xs.device())?, future)
            }
            None => {
                let (x, lengths, real) = embed(&self.embedding, xs)?;
                (x, lengths, real, None)
            }
        };
        let x = dropout(&x, self.config.dropout, ctx)?;
        let (outputs, last) = self.rnn.forward(&x, Some(&lengths), ctx)?;
        let pooled = match self.config.pooling {
            SeqPooling::Last | SeqPooling::Cls => last,
            p => pool_steps(&outputs, &real, p)?,
        };
        run_head(&self.head, with_future(pooled, future)?, self.config.dropout, ctx)
    }
}

impl Summarize for RnnModel {
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo> {
        let t = self.series.map_or_else(|| input.first().copied().unwrap_or(0), |s| s.history);
        let mut out = Vec::new();
        if self.embedding.is_some() {
            out.push(LayerInfo::new("embedding".into(), "Embedding".into(), vec![t, self.config.embedding_dim]));
        }
        let r = &self.config.rnn;
        out.push(LayerInfo::new(
            "rnn".into(),
            format!("{:?} x{}{}", r.cell, r.layers, if r.bidirectional { " bidirectional" } else { "" }),
            vec![t, self.rnn.output_size()],
        ));
        out.push(LayerInfo::new(
            "pool".into(),
            format!("{:?} pooling", self.config.pooling),
            vec![self.rnn.output_size()],
        ));
        for (j, l) in self.head.iter().enumerate() {
            out.push(LayerInfo::new(format!("head.{j}"), "Linear".into(), vec![l.weight().dim(0).unwrap_or(0)]));
        }
        out
    }
}

/// The transformer encoder classifier (see [`TransformerConfig`]). Weights:
/// `embedding.weight`, `position.weight`, `encoder.layers.<i>.…` (PyTorch's
/// `TransformerEncoderLayer` names), `head.<j>`.
pub struct TransformerModel {
    /// Token ids in; `None` for series windows, whose steps `input` projects.
    embedding: Option<Embedding>,
    input: Option<Linear>,
    series: Option<SeriesShape>,
    position: Embedding,
    encoder: TransformerEncoder,
    head: Vec<Linear>,
    config: TransformerConfig,
}

impl TransformerModel {
    /// Builds the network for `spec` under `vb`.
    pub fn new(cfg: &TransformerConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let (embedding, input, t) = match spec.series {
            Some(s) => (None, Some(linear(s.channels, d, InitScheme::Torch, vb.pp("input"))?), s.history),
            None => {
                let vocab = spec.vocab.unwrap_or(1);
                let e = Embedding::new(vb.get_with_hints((vocab, d), "embedding.weight", init)?, d);
                (Some(e), None, sequence_length(spec).unwrap_or(1))
            }
        };
        let position = Embedding::new(vb.get_with_hints((t, d), "position.weight", init)?, d);
        let encoder = TransformerEncoder::new(d, &cfg.encoder, vb.pp("encoder"))?;
        let mut dims = vec![d + spec.series.map_or(0, |s| s.horizon * s.future)];
        dims.extend(&cfg.hidden);
        dims.push(spec.outputs);
        Ok(Self {
            embedding,
            input,
            series: spec.series,
            position,
            encoder,
            head: head(&dims, vb)?,
            config: cfg.clone(),
        })
    }
}

impl Model for TransformerModel {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (x, real, padding, future) = match (&self.embedding, &self.input, self.series) {
            (_, Some(input), Some(s)) => {
                let (steps, future) = split_window(s, xs)?;
                let b = xs.dim(0)?;
                let real = Tensor::ones((b, s.history), DType::U8, xs.device())?;
                (input.forward(&steps)?, real, None, future)
            }
            (Some(embedding), _, _) => {
                let ids = xs.to_dtype(DType::U32)?;
                let real = ids.ne(0u32)?;
                let padding = real.eq(0u8)?;
                (embedding.forward(&ids)?, real, Some(padding), None)
            }
            _ => candle_core::bail!("a transformer has a token embedding or a series input projection"),
        };
        let (b, t) = real.dims2()?;
        let positions = Tensor::arange(0u32, t as u32, xs.device())?.unsqueeze(0)?.broadcast_as((b, t))?;
        let x = x.broadcast_add(&self.position.forward(&positions)?)?;
        let x = dropout(&x, self.config.dropout, ctx)?;
        let states = self.encoder.forward(&x, padding.as_ref(), ctx)?;
        let pooled = pool_steps(&states, &real, self.config.pooling)?;
        run_head(&self.head, with_future(pooled, future)?, self.config.dropout, ctx)
    }
}

impl Summarize for TransformerModel {
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo> {
        let t = input.first().copied().unwrap_or(0);
        let d = self.config.d_model;
        let t = self.series.map_or(t, |s| s.history);
        let first = match self.series {
            Some(s) => LayerInfo::new("input".into(), format!("Linear ({} channels per step)", s.channels), vec![t, d]),
            None => LayerInfo::new("embedding".into(), "Embedding".into(), vec![t, d]),
        };
        let mut out = vec![first, LayerInfo::new("position".into(), "Embedding (positions)".into(), vec![t, d])];
        let e = &self.config.encoder;
        for i in 0..e.layers {
            out.push(LayerInfo::new(
                format!("encoder.layers.{i}"),
                format!(
                    "TransformerEncoderLayer {} heads, {}",
                    e.nhead,
                    if e.norm_first { "pre-norm" } else { "post-norm" }
                ),
                vec![t, d],
            ));
        }
        if e.final_norm {
            out.push(LayerInfo::new("encoder.norm".into(), "LayerNorm".into(), vec![t, d]));
        }
        out.push(LayerInfo::new("pool".into(), format!("{:?} pooling", self.config.pooling), vec![d]));
        for (j, l) in self.head.iter().enumerate() {
            out.push(LayerInfo::new(format!("head.{j}"), "Linear".into(), vec![l.weight().dim(0).unwrap_or(0)]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use pipeline_core::rng;

    use super::*;
    use crate::Params;

    fn tokens() -> Tensor {
        // Two sequences of 5 ids, the second padded after 3.
        Tensor::new(&[[5f32, 7., 2., 9., 3.], [4., 8., 6., 0., 0.]], &Device::Cpu).unwrap()
    }

    fn spec() -> ModelSpec {
        ModelSpec { input_shape: vec![5], outputs: 2, vocab: Some(10), series: None }
    }

    type Builder = Box<dyn Fn(&Params) -> Box<dyn Model>>;

    #[test]
    fn padding_does_not_change_a_sequences_prediction() {
        let cfgs: Vec<Builder> = vec![
            Box::new(|p: &Params| {
                let cfg = RnnConfig {
                    embedding_dim: 6,
                    rnn: RnnLayerConfig { hidden: 4, bidirectional: true, ..Default::default() },
                    pooling: SeqPooling::Mean,
                    hidden: vec![],
                    dropout: 0.0,
                };
                Box::new(RnnModel::new(&cfg, &spec(), p.var_builder(&Device::Cpu)).unwrap())
            }),
            Box::new(|p: &Params| {
                let cfg = TransformerConfig {
                    d_model: 8,
                    encoder: TransformerLayerConfig {
                        nhead: 2,
                        dim_feedforward: 16,
                        dropout: 0.0,
                        layers: 2,
                        ..Default::default()
                    },
                    pooling: SeqPooling::Mean,
                    hidden: vec![],
                    dropout: 0.0,
                };
                Box::new(TransformerModel::new(&cfg, &spec(), p.var_builder(&Device::Cpu)).unwrap())
            }),
        ];
        for build in cfgs {
            let params = Params::new(rng(1, "init"));
            let net = build(&params);
            let both = net.forward(&tokens(), &mut Ctx::infer()).unwrap().to_vec2::<f32>().unwrap();
            // The second sequence alone, without padding, gives the same prediction.
            let alone = Tensor::new(&[[4f32, 8., 6.]], &Device::Cpu).unwrap();
            let one = net.forward(&alone, &mut Ctx::infer()).unwrap().to_vec2::<f32>().unwrap();
            for (a, b) in both[1].iter().zip(&one[0]) {
                assert!((a - b).abs() < 1e-5, "{both:?} vs {one:?}");
            }
        }
    }

    #[test]
    fn series_windows_give_one_output_per_step_and_read_the_known_future() {
        let shape = SeriesShape { history: 4, channels: 2, horizon: 3, future: 1 };
        let spec = ModelSpec { input_shape: vec![4 * 2 + 3], outputs: 3, vocab: None, series: Some(shape) };
        let rnn = RnnConfig {
            embedding_dim: 4,
            rnn: RnnLayerConfig { hidden: 5, ..Default::default() },
            pooling: SeqPooling::Last,
            hidden: vec![],
            dropout: 0.0,
        };
        let tf = TransformerConfig {
            d_model: 8,
            encoder: TransformerLayerConfig {
                nhead: 2,
                dim_feedforward: 16,
                dropout: 0.0,
                layers: 1,
                ..Default::default()
            },
            pooling: SeqPooling::Mean,
            hidden: vec![],
            dropout: 0.0,
        };
        assert!(rnn.check("model", &spec).is_empty() && tf.check("model", &spec).is_empty());
        let params = Params::new(rng(3, "init"));
        let models: Vec<Box<dyn Model>> = vec![
            Box::new(RnnModel::new(&rnn, &spec, params.var_builder(&Device::Cpu).pp("r")).unwrap()),
            Box::new(TransformerModel::new(&tf, &spec, params.var_builder(&Device::Cpu).pp("t")).unwrap()),
        ];
        let row: Vec<f32> = (0..11).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut other_future = row.clone();
        other_future[9] += 1.0;
        let xs = Tensor::from_vec([row.clone(), other_future, row].concat(), (3, 11), &Device::Cpu).unwrap();
        for m in models {
            let y = m.forward(&xs, &mut Ctx::infer()).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(y[0].len(), 3);
            assert_eq!(y[0], y[2], "the same window, the same forecast");
            assert_ne!(y[0], y[1], "the known future enters the forecast");
        }
        let cls = TransformerConfig { pooling: SeqPooling::Cls, ..tf };
        assert_eq!(
            cls.check("model", &spec)[0].to_string(),
            "model.pooling: a series window has no [CLS] step: use mean"
        );
    }

    #[test]
    fn configs_check_their_inputs() {
        let tf = TransformerConfig {
            d_model: 10,
            encoder: TransformerLayerConfig { nhead: 3, ..Default::default() },
            pooling: SeqPooling::Mean,
            hidden: vec![],
            dropout: 0.0,
        };
        assert!(
            tf.validate("model")
                .iter()
                .any(|i| i.to_string() == "model.encoder.nhead: 3 heads do not divide the width d_model 10")
        );
        let tab = ModelSpec { input_shape: vec![4], outputs: 1, vocab: None, series: None };
        assert_eq!(
            tf.check("model", &tab)[0].to_string(),
            "model.arch: a transformer reads token ids (set preprocess.text.output to sequence) or series windows \
             (preprocess.series)"
        );
        let rnn = RnnConfig {
            embedding_dim: 4,
            rnn: RnnLayerConfig::default(),
            pooling: SeqPooling::Last,
            hidden: vec![],
            dropout: 0.0,
        };
        assert!(rnn.check("model", &tab).is_empty(), "tabular rows are sequences of scalars");
        let img = ModelSpec { input_shape: vec![1, 4, 4], outputs: 1, vocab: None, series: None };
        assert!(rnn.check("model", &img)[0].to_string().starts_with("model.arch: a recurrent network reads sequences"));
    }
}
