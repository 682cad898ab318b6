//! Sequence models built from the recurrent and attention layers: token (or scalar) sequences
//! in, one prediction per sequence out.
//!
//! - `arch: rnn`: embedding → (bidirectional, multi-layer) RNN / LSTM / GRU → pooling → head;
//! - `arch: transformer`: token + learned position embeddings → N encoder layers (pre- or
//!   post-norm, padding masked) → `[CLS]` or mean pooling → head.
//!
//! Token-id inputs (`preprocess.text.output: sequence`) are embedded, with id 0 as padding at
//! the end of each sequence. Numeric rows (tabular inputs) are read as sequences of one value per
//! step — sequence regression over, say, a time series in columns.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Embedding, Linear, Module, VarBuilder};
use pipeline_core::config::Issue;
use pipeline_core::{Ctx, Model};
use serde::{Deserialize, Serialize};

use crate::attention::{TransformerEncoder, TransformerLayerConfig};
use crate::layers::{Activation, dropout, linear};
use crate::rnn::{Rnn, RnnLayerConfig};
use crate::summary::{LayerInfo, Summarize};
use crate::{InitScheme, ModelSpec};

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
        if spec.vocab.is_none() {
            return vec![Issue::new(
                format!("{key}.arch"),
                "a transformer reads token ids: set preprocess.text.output to sequence".to_string(),
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
            None => (None, 1),
        };
        let rnn = Rnn::new(input, &cfg.rnn, vb.pp("rnn"))?;
        let mut dims = vec![rnn.output_size()];
        dims.extend(&cfg.hidden);
        dims.push(spec.outputs);
        Ok(Self { embedding, rnn, head: head(&dims, vb)?, config: cfg.clone() })
    }
}

impl Model for RnnModel {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (x, lengths, real) = embed(&self.embedding, xs)?;
        let x = dropout(&x, self.config.dropout, ctx)?;
        let (outputs, last) = self.rnn.forward(&x, Some(&lengths), ctx)?;
        let pooled = match self.config.pooling {
            SeqPooling::Last | SeqPooling::Cls => last,
            p => pool_steps(&outputs, &real, p)?,
        };
        run_head(&self.head, pooled, self.config.dropout, ctx)
    }
}

impl Summarize for RnnModel {
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo> {
        let t = input.first().copied().unwrap_or(0);
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
    embedding: Embedding,
    position: Embedding,
    encoder: TransformerEncoder,
    head: Vec<Linear>,
    config: TransformerConfig,
}

impl TransformerModel {
    /// Builds the network for `spec` under `vb`.
    pub fn new(cfg: &TransformerConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        let vocab = spec.vocab.unwrap_or(1);
        let t = sequence_length(spec).unwrap_or(1);
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let embedding = Embedding::new(vb.get_with_hints((vocab, d), "embedding.weight", init)?, d);
        let position = Embedding::new(vb.get_with_hints((t, d), "position.weight", init)?, d);
        let encoder = TransformerEncoder::new(d, &cfg.encoder, vb.pp("encoder"))?;
        let mut dims = vec![d];
        dims.extend(&cfg.hidden);
        dims.push(spec.outputs);
        Ok(Self { embedding, position, encoder, head: head(&dims, vb)?, config: cfg.clone() })
    }
}

impl Model for TransformerModel {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let ids = xs.to_dtype(DType::U32)?;
        let (b, t) = ids.dims2()?;
        let real = ids.ne(0u32)?;
        let positions = Tensor::arange(0u32, t as u32, ids.device())?.unsqueeze(0)?.broadcast_as((b, t))?;
        let x = (self.embedding.forward(&ids)? + self.position.forward(&positions)?)?;
        let x = dropout(&x, self.config.dropout, ctx)?;
        let padding = real.eq(0u8)?;
        let states = self.encoder.forward(&x, Some(&padding), ctx)?;
        let pooled = pool_steps(&states, &real, self.config.pooling)?;
        run_head(&self.head, pooled, self.config.dropout, ctx)
    }
}

impl Summarize for TransformerModel {
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo> {
        let t = input.first().copied().unwrap_or(0);
        let d = self.config.d_model;
        let mut out = vec![
            LayerInfo::new("embedding".into(), "Embedding".into(), vec![t, d]),
            LayerInfo::new("position".into(), "Embedding (positions)".into(), vec![t, d]),
        ];
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
        ModelSpec { input_shape: vec![5], outputs: 2, vocab: Some(10) }
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
        let tab = ModelSpec { input_shape: vec![4], outputs: 1, vocab: None };
        assert_eq!(
            tf.check("model", &tab)[0].to_string(),
            "model.arch: a transformer reads token ids: set preprocess.text.output to sequence"
        );
        let rnn = RnnConfig {
            embedding_dim: 4,
            rnn: RnnLayerConfig::default(),
            pooling: SeqPooling::Last,
            hidden: vec![],
            dropout: 0.0,
        };
        assert!(rnn.check("model", &tab).is_empty(), "tabular rows are sequences of scalars");
        let img = ModelSpec { input_shape: vec![1, 4, 4], outputs: 1, vocab: None };
        assert!(rnn.check("model", &img)[0].to_string().starts_with("model.arch: a recurrent network reads sequences"));
    }
}
