//! BERT-family encoders (as Hugging Face's `BertModel`), loaded from pre-trained weights for
//! transfer learning: a task head on top, with the encoder frozen, trained, or trained in its
//! top layers only.
//!
//! Weights are named as `BertForSequenceClassification` names them: `bert.embeddings.…`,
//! `bert.encoder.layer.<i>.…`, then our head `head.<j>`. A pre-trained checkpoint (a
//! `model.safetensors` whose names may or may not start with `bert.`) is read from a local
//! directory or the model hub's cache; its `config.json` gives the sizes, or the YAML does.

use std::path::{Path, PathBuf};

use candle_core::{DType, Result, Tensor};
use candle_nn::{Embedding, Linear, Module, VarBuilder};
use pipeline_core::config::Issue;
use pipeline_core::{Ctx, Model};
use serde::{Deserialize, Serialize};

use crate::layers::{Activation, LayerNorm, dropout, linear};
use crate::summary::{LayerInfo, Summarize};
use crate::{InitScheme, ModelSpec};

/// Sizes of a BERT encoder (the fields of a Hugging Face `config.json` that matter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertSizes {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of every layer.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layers.
    pub intermediate_size: usize,
    /// Position embeddings.
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    /// Token types.
    #[serde(default = "default_types")]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Dropout of hidden states in training.
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f32,
    /// Dropout of the attention probabilities in training.
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f32,
}

fn default_positions() -> usize {
    512
}
fn default_types() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f32 {
    0.1
}

/// Which encoder weights the optimizer may change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freeze {
    /// The whole encoder is frozen: only the head trains (features are computed without
    /// back-propagating through the encoder).
    #[default]
    All,
    /// Everything trains (full fine-tuning).
    None,
    /// Only the top `train_layers` encoder layers (and the head) train.
    Top,
}

/// How the encoder's token states become one vector per text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over the non-padding tokens (sentence-transformers' default).
    #[default]
    Mean,
    /// The first (`[CLS]`) token's state.
    Cls,
}

/// `model: {arch: bert, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BertConfig {
    /// The pre-trained model: a directory holding `model.safetensors` (and usually
    /// `config.json`), or `hf://<owner>/<name>` in the hub cache.
    pub pretrained: PathBuf,
    /// The sizes, when the checkpoint has no `config.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizes: Option<BertSizes>,
    /// Mean or `[CLS]` pooling.
    #[serde(default)]
    pub pooling: Pooling,
    /// What to freeze.
    #[serde(default)]
    pub freeze: Freeze,
    /// With `freeze: top`, how many top layers train.
    #[serde(default)]
    pub train_layers: usize,
    /// Hidden widths of the head.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Dropout before each head layer.
    #[serde(default = "default_dropout")]
    pub dropout: f32,
}

impl BertConfig {
    /// The checkpoint's weights file.
    pub fn weights_file(&self) -> PathBuf {
        self.pretrained.join("model.safetensors")
    }

    /// The sizes: from the YAML (`sizes`) when given, else from `config.json` beside the
    /// weights.
    pub fn sizes(&self) -> crate::Result<BertSizes> {
        if let Some(s) = &self.sizes {
            return Ok(s.clone());
        }
        let file = self.pretrained.join("config.json");
        match std::fs::read_to_string(&file) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| crate::Error::Config { path: file.clone(), message: e.to_string() }),
            Err(_) => Err(crate::Error::Config {
                path: self.pretrained.clone(),
                message: "has no config.json: give model.sizes (hidden_size, num_hidden_layers, …)".into(),
            }),
        }
    }

    pub(crate) fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if !self.weights_file().is_file() {
            issues.push(Issue::new(
                format!("{key}.pretrained"),
                format!("no model.safetensors in {}", self.pretrained.display()),
            ));
        } else {
            match self.sizes() {
                Err(e) => issues.push(Issue::new(format!("{key}.sizes"), e.to_string())),
                Ok(s) => {
                    if s.num_attention_heads == 0 || s.hidden_size % s.num_attention_heads != 0 {
                        issues.push(Issue::new(
                            format!("{key}.sizes.num_attention_heads"),
                            format!("{} heads do not divide the width {}", s.num_attention_heads, s.hidden_size),
                        ));
                    }
                    for (name, p) in [
                        ("hidden_dropout_prob", s.hidden_dropout_prob),
                        ("attention_probs_dropout_prob", s.attention_probs_dropout_prob),
                    ] {
                        if !(0.0..1.0).contains(&p) {
                            issues
                                .push(Issue::new(format!("{key}.sizes.{name}"), format!("must be in [0, 1), got {p}")));
                        }
                    }
                    if self.freeze == Freeze::Top && !(1..=s.num_hidden_layers).contains(&self.train_layers) {
                        issues.push(Issue::new(
                            format!("{key}.train_layers"),
                            format!(
                                "must be between 1 and the {} encoder layers, got {}",
                                s.num_hidden_layers, self.train_layers
                            ),
                        ));
                    }
                }
            }
        }
        crate::sequence::check_hidden(&mut issues, key, &self.hidden);
        if !(0.0..1.0).contains(&self.dropout) {
            issues.push(Issue::new(format!("{key}.dropout"), format!("must be in [0, 1), got {}", self.dropout)));
        }
        issues
    }

    pub(crate) fn check(&self, key: &str, spec: &ModelSpec) -> Vec<Issue> {
        let Ok(s) = self.sizes() else { return Vec::new() };
        let length = spec.input_shape.first().copied().unwrap_or(0);
        match spec.vocab {
            None => vec![Issue::new(
                format!("{key}.arch"),
                "a BERT encoder reads token ids: set preprocess.text.output to sequence".to_string(),
            )],
            Some(vocab) if vocab > s.vocab_size => vec![Issue::new(
                format!("{key}.pretrained"),
                format!(
                    "the tokenizer's vocabulary ({vocab}) is larger than the encoder's ({}): use its vocab.txt",
                    s.vocab_size
                ),
            )],
            Some(_) if length > s.max_position_embeddings => vec![Issue::new(
                format!("{key}.pretrained"),
                format!("sequences of {length} tokens exceed the encoder's {} positions", s.max_position_embeddings),
            )],
            Some(_) => Vec::new(),
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    inter: Linear,
    out: Linear,
    out_norm: LayerNorm,
}

/// A BERT encoder with a task head.
pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    head: Vec<Linear>,
    sizes: BertSizes,
    pooling: Pooling,
    /// Layers below this index run without gradients (frozen).
    first_trained: usize,
    dropout: f32,
}

/// A linear layer with BERT's initialisation (normal, std 0.02; zero bias); pre-trained weights
/// replace it.
fn bert_linear(i: usize, o: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints((o, i), "weight", candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 })?;
    let b = vb.get_with_hints(o, "bias", candle_nn::Init::Const(0.0))?;
    Ok(Linear::new(w, Some(b)))
}

impl Bert {
    /// Builds the encoder (under `bert.`) and the head (under `head.`) for `spec`.
    pub fn new(cfg: &BertConfig, spec: &ModelSpec, vb: VarBuilder) -> Result<Self> {
        let s = cfg.sizes().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (h, eps) = (s.hidden_size, s.layer_norm_eps);
        let b = vb.pp("bert");
        let e = b.pp("embeddings");
        let emb = |n: usize, name: &str| -> Result<Embedding> {
            let w =
                e.get_with_hints((n, h), &format!("{name}.weight"), candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 })?;
            Ok(Embedding::new(w, h))
        };
        let word = emb(s.vocab_size, "word_embeddings")?;
        let position = emb(s.max_position_embeddings, "position_embeddings")?;
        let token_type = emb(s.type_vocab_size, "token_type_embeddings")?;
        let emb_norm = LayerNorm::with_eps(h, eps, e.pp("LayerNorm"))?;
        let mut layers = Vec::new();
        for i in 0..s.num_hidden_layers {
            let l = b.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            layers.push(Layer {
                query: bert_linear(h, h, a.pp("self.query"))?,
                key: bert_linear(h, h, a.pp("self.key"))?,
                value: bert_linear(h, h, a.pp("self.value"))?,
                attn_out: bert_linear(h, h, a.pp("output.dense"))?,
                attn_norm: LayerNorm::with_eps(h, eps, a.pp("output.LayerNorm"))?,
                inter: bert_linear(h, s.intermediate_size, l.pp("intermediate.dense"))?,
                out: bert_linear(s.intermediate_size, h, l.pp("output.dense"))?,
                out_norm: LayerNorm::with_eps(h, eps, l.pp("output.LayerNorm"))?,
            });
        }
        let mut dims = vec![h];
        dims.extend(&cfg.hidden);
        dims.push(spec.outputs);
        let head = dims
            .windows(2)
            .enumerate()
            .map(|(j, d)| linear(d[0], d[1], InitScheme::Torch, vb.pp("head").pp(j.to_string())))
            .collect::<Result<_>>()?;
        let first_trained = match cfg.freeze {
            Freeze::All => s.num_hidden_layers,
            Freeze::None => 0,
            Freeze::Top => s.num_hidden_layers.saturating_sub(cfg.train_layers),
        };
        Ok(Self {
            word,
            position,
            token_type,
            emb_norm,
            layers,
            head,
            sizes: s,
            pooling: cfg.pooling,
            first_trained,
            dropout: cfg.dropout,
        })
    }

    /// The weight-name prefixes the optimizer must leave alone under this freeze setting.
    pub fn frozen_prefixes(&self) -> Vec<String> {
        if self.first_trained == 0 {
            return Vec::new();
        }
        let mut v = vec!["bert.embeddings.".to_string()];
        v.extend((0..self.first_trained).map(|i| format!("bert.encoder.layer.{i}.")));
        v
    }

    /// Token states `[batch, time, hidden]` for token ids `[batch, time]` and the padding mask
    /// (1 for real tokens), as `BertModel`'s `last_hidden_state`.
    pub fn encode(&self, ids: &Tensor, mask: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let (bsz, t) = ids.dims2()?;
        let dev = ids.device();
        let positions = Tensor::arange(0u32, t as u32, dev)?.unsqueeze(0)?.broadcast_as((bsz, t))?;
        let types = Tensor::zeros((bsz, t), DType::U32, dev)?;
        let x = (self.word.forward(ids)? + self.position.forward(&positions)?)?;
        let x = (x + self.token_type.forward(&types)?)?;
        // Layer norms carry gradients only where something below them trains.
        let train = ctx.is_train();
        let mut x = dropout(
            &self.emb_norm.forward(&x, train && self.first_trained == 0)?,
            self.sizes.hidden_dropout_prob,
            ctx,
        )?;
        // Additive mask: 0 for tokens, a large negative number for padding (as BertModel does
        // with the dtype's minimum).
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 3.4028234663852886e38f64)?.reshape((bsz, 1, 1, t))?;
        let heads = self.sizes.num_attention_heads;
        let hd = self.sizes.hidden_size / heads;
        let scale = 1.0 / (hd as f64).sqrt();
        for (i, l) in self.layers.iter().enumerate() {
            if i == self.first_trained && i > 0 {
                x = x.detach();
            }
            let grad = train && i >= self.first_trained;
            let split = |y: Tensor| -> Result<Tensor> { y.reshape((bsz, t, heads, hd))?.transpose(1, 2)?.contiguous() };
            let q = split(l.query.forward(&x)?)?;
            let k = split(l.key.forward(&x)?)?;
            let v = split(l.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            // candle's fused `softmax_last_dim` has no backward; the composed softmax has.
            let probs = if grad {
                candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?
            } else {
                candle_nn::ops::softmax_last_dim(&scores)?
            };
            let probs = dropout(&probs, self.sizes.attention_probs_dropout_prob, ctx)?;
            let ctx_states = probs.matmul(&v)?.transpose(1, 2)?.reshape((bsz, t, self.sizes.hidden_size))?;
            let a = dropout(&l.attn_out.forward(&ctx_states)?, self.sizes.hidden_dropout_prob, ctx)?;
            let x1 = l.attn_norm.forward(&(a + &x)?, grad)?;
            let f = l.out.forward(&l.inter.forward(&x1)?.gelu_erf()?)?;
            let f = dropout(&f, self.sizes.hidden_dropout_prob, ctx)?;
            x = l.out_norm.forward(&(f + x1)?, grad)?;
        }
        if self.first_trained >= self.layers.len() {
            x = x.detach();
        }
        Ok(x)
    }

    /// One vector per text: mean over real tokens, or the `[CLS]` state.
    pub fn pool(&self, states: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match self.pooling {
            Pooling::Cls => states.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean => {
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let sum = states.broadcast_mul(&m)?.sum(1)?;
                let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
                sum.broadcast_div(&count)
            }
        }
    }
}

impl Model for Bert {
    fn forward(&self, xs: &Tensor, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        let ids = xs.to_dtype(DType::U32)?;
        let mask = ids.ne(0u32)?;
        let states = self.encode(&ids, &mask, ctx)?;
        let mut y = self.pool(&states, &mask)?;
        let last = self.head.len() - 1;
        for (j, l) in self.head.iter().enumerate() {
            y = l.forward(&dropout(&y, self.dropout, ctx)?)?;
            if j < last {
                y = Activation::Relu.forward(&y)?;
            }
        }
        Ok(y)
    }
}

impl Summarize for Bert {
    fn layers(&self, input: &[usize]) -> Vec<LayerInfo> {
        let t = input.first().copied().unwrap_or(0);
        let h = self.sizes.hidden_size;
        let mut out = vec![LayerInfo::new(
            "bert.embeddings".into(),
            "Embeddings (word, position, type) + LayerNorm".into(),
            vec![t, h],
        )];
        for i in 0..self.layers.len() {
            let frozen = if i < self.first_trained { " (frozen)" } else { "" };
            out.push(LayerInfo::new(format!("bert.encoder.layer.{i}"), format!("BertLayer{frozen}"), vec![t, h]));
        }
        out.push(LayerInfo::new("pool".into(), format!("{:?} pooling", self.pooling), vec![h]));
        for (j, l) in self.head.iter().enumerate() {
            out.push(LayerInfo::new(format!("head.{j}"), "Linear".into(), vec![l.weight().dim(0).unwrap_or(0)]));
        }
        out
    }
}

/// Copies the pre-trained encoder weights of `cfg` into `params` (names with or without a
/// `bert.` prefix; the pooler and buffers such as `position_ids` are ignored) and freezes what
/// `cfg.freeze` says. Errors name the file and the tensor.
pub fn load_pretrained(cfg: &BertConfig, params: &crate::Params, net: &Bert) -> crate::Result<usize> {
    let file = cfg.weights_file();
    let fail = |message: String| crate::Error::Weights { path: file.clone(), message };
    let tensors = candle_core::safetensors::load(&file, &candle_core::Device::Cpu).map_err(|e| fail(e.to_string()))?;
    let vars = params.varmap().data().lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut loaded = 0;
    for (name, var) in vars.iter().filter(|(n, _)| n.starts_with("bert.")) {
        let bare = &name["bert.".len()..];
        let t = tensors.get(name).or_else(|| tensors.get(bare)).ok_or_else(|| fail(format!("no tensor {bare}")))?;
        if t.dims() != var.dims() {
            return Err(fail(format!("{bare} has shape {:?}, the model expects {:?}", t.dims(), var.dims())));
        }
        var.set(&t.to_dtype(DType::F32).and_then(|t| t.to_device(var.device())).map_err(|e| fail(e.to_string()))?)
            .map_err(|e| fail(e.to_string()))?;
        loaded += 1;
    }
    for p in net.frozen_prefixes() {
        params.freeze(&p);
    }
    Ok(loaded)
}

/// Resolves `hf://<owner>/<name>` (a model repository in the hub cache) to its snapshot
/// directory; other paths are returned as they are.
pub fn resolve_dir(path: &Path, cache: &Path) -> PathBuf {
    let Some(rest) = path.to_str().and_then(|s| s.strip_prefix("hf://")) else { return path.to_path_buf() };
    let rest = rest.strip_prefix("models/").unwrap_or(rest);
    let (repo, revision) = rest.split_once('@').unwrap_or((rest, "main"));
    let folder = cache.join(format!("models--{}", repo.replace('/', "--")));
    let commit = std::fs::read_to_string(folder.join("refs").join(revision))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    folder.join("snapshots").join(commit)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};
    use pipeline_core::rng;

    use super::*;
    use crate::Params;

    /// Bad configs are refused before anything is loaded, each naming its key.
    #[test]
    fn config_checks_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = |extra: serde_json::Value| {
            let mut v = serde_json::json!({
                "pretrained": dir.path(),
                "sizes": {"vocab_size": 20, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 3,
                          "intermediate_size": 16, "attention_probs_dropout_prob": 1.0},
            });
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<BertConfig>(v).unwrap()
        };
        let keys = |cfg: &BertConfig| cfg.validate("model").into_iter().map(|i| i.key).collect::<Vec<_>>();
        assert_eq!(keys(&config(serde_json::json!({}))), ["model.pretrained"], "no model.safetensors yet");
        std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
        let bad = config(serde_json::json!({"freeze": "top", "train_layers": 3, "hidden": [4, 0], "dropout": 1.5}));
        assert_eq!(
            keys(&bad),
            [
                "model.sizes.num_attention_heads",
                "model.sizes.attention_probs_dropout_prob",
                "model.train_layers",
                "model.hidden[1]",
                "model.dropout"
            ]
        );
    }

    /// A 2-layer BERT: hidden 8, 2 heads, feed-forward 16, vocabulary 20, no dropout.
    fn tiny_sizes() -> BertSizes {
        BertSizes {
            vocab_size: 20,
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 16,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
        }
    }

    /// A pre-trained directory whose weights lack a tensor, or have no `config.json`, is an
    /// error naming the file once (the weights error used to repeat the path).
    #[test]
    fn pretrained_errors_name_the_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg: BertConfig = serde_json::from_value(serde_json::json!({"pretrained": dir.path()})).unwrap();
        let err = cfg.sizes().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: has no config.json: give model.sizes (hidden_size, num_hidden_layers, …)",
                dir.path().display()
            )
        );
        cfg.sizes = Some(tiny_sizes());
        let other =
            std::collections::HashMap::from([("x".to_string(), Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap())]);
        candle_core::safetensors::save(&other, cfg.weights_file()).unwrap();
        let spec = ModelSpec { input_shape: vec![6], outputs: 2, vocab: Some(20), series: None };
        let params = Params::new(rng(0, "init"));
        let err = crate::build_for_training(&crate::ModelConfig::Bert(cfg.clone()), &spec, &params, &Device::Cpu)
            .err()
            .expect("a tensor is missing")
            .to_string();
        let file = cfg.weights_file().display().to_string();
        assert!(err.starts_with(&format!("{file}: no tensor ")), "{err}");
        assert_eq!(err.matches(&file).count(), 1, "{err}");
    }

    /// A 2-layer BERT (hidden 8, 2 heads, feed-forward 16, vocabulary 20) with mean pooling and
    /// a linear head, trained end to end: the logits, the loss and the gradients of weights at
    /// every depth equal Hugging Face's `BertModel` (transformers 5.23, PyTorch 2.15, eager
    /// attention, dropout 0):
    /// ```python
    /// bert = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
    ///     intermediate_size=16, max_position_embeddings=16, layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
    ///     attention_probs_dropout_prob=0.0, attn_implementation="eager"), add_pooling_layer=False)
    /// head = nn.Linear(8, 2)   # every tensor 0.1*sin(0.37*i + 0.01*sum(bytes("bert."+name))), norm scales 1 + that
    /// ids = [[2, 5, 7, 9, 3, 0], [2, 11, 4, 0, 0, 0], [2, 6, 6, 13, 17, 3]]; mask = ids != 0; bert.train()
    /// pooled = masked mean of bert(ids, mask).last_hidden_state; loss = F.cross_entropy(head(pooled), [0, 1, 1])
    /// loss.backward()   # first 6 gradient values of each tensor below (row 2 of the word embeddings)
    /// ```
    #[test]
    fn fine_tuning_gradients_match_hugging_face_bert() {
        let dev = Device::Cpu;
        let cfg = BertConfig {
            pretrained: PathBuf::from("unused"),
            sizes: Some(tiny_sizes()),
            pooling: Pooling::Mean,
            freeze: Freeze::None,
            train_layers: 0,
            hidden: vec![],
            dropout: 0.0,
        };
        let spec = ModelSpec { input_shape: vec![6], outputs: 2, vocab: Some(20), series: None };
        let params = Params::new(rng(0, "init"));
        let bert = Bert::new(&cfg, &spec, params.var_builder(&dev)).unwrap();
        let vars: std::collections::HashMap<String, Var> = params.named_vars().into_iter().collect();
        for (name, var) in &vars {
            let h = name.bytes().map(f64::from).sum::<f64>() * 0.01;
            let vals: Vec<f32> = (0..var.elem_count())
                .map(|i| {
                    let x = 0.1 * (0.37 * i as f64 + h).sin();
                    (if name.ends_with("LayerNorm.weight") { 1.0 + x } else { x }) as f32
                })
                .collect();
            var.set(&Tensor::from_vec(vals, var.shape(), &dev).unwrap()).unwrap();
        }
        let ids =
            Tensor::new(&[[2f32, 5., 7., 9., 3., 0.], [2., 11., 4., 0., 0., 0.], [2., 6., 6., 13., 17., 3.]], &dev)
                .unwrap();
        let mut r = rng(0, "dropout");
        let logits = bert.forward(&ids, &mut Ctx::train(&mut r)).unwrap();
        let targets = Tensor::new(&[0u32, 1, 1], &dev).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
        let close = |what: &str, got: Vec<f32>, want: &[f64]| {
            for (a, b) in got.iter().zip(want) {
                assert!((f64::from(*a) - b).abs() <= 1e-5 * b.abs().max(1e-3), "{what}: {got:?} vs {want:?}");
            }
        };
        close(
            "logits",
            logits.flatten_all().unwrap().to_vec1().unwrap(),
            &[
                -0.23359860479831696,
                0.18299026787281036,
                0.0660155639052391,
                -0.12246285378932953,
                -0.11754033714532852,
                0.08123578131198883,
            ],
        );
        close("loss", vec![loss.to_scalar::<f32>().unwrap()], &[0.7711634039878845]);
        let grads = loss.backward().unwrap();
        let grad = |name: &str| -> Vec<f32> {
            let g = grads.get(vars[name].as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let g = if name.ends_with("word_embeddings.weight") { g.get(2).unwrap() } else { g.flatten_all().unwrap() };
            g.narrow(0, 0, 6).unwrap().to_vec1().unwrap()
        };
        let want: [(&str, [f64; 6]); 7] = [
            (
                "bert.embeddings.word_embeddings.weight",
                [
                    -0.035123929381370544,
                    -0.062208566814661026,
                    -0.07084919512271881,
                    -0.05449150502681732,
                    -0.017038751393556595,
                    0.02620769292116165,
                ],
            ),
            (
                "bert.embeddings.LayerNorm.weight",
                [
                    0.0073707872070372105,
                    -0.0005177544080652297,
                    -0.001551921828649938,
                    -0.0003053196705877781,
                    0.0026680866722017527,
                    0.001608563819900155,
                ],
            ),
            (
                "bert.encoder.layer.0.attention.self.query.weight",
                [
                    1.1449578778410796e-05,
                    1.4917923181201331e-05,
                    1.4486462532659061e-05,
                    1.0004766409110744e-05,
                    2.1397913769760635e-06,
                    -7.74598174757557e-06,
                ],
            ),
            (
                "bert.encoder.layer.0.attention.output.LayerNorm.bias",
                [
                    -0.0053459759801626205,
                    -0.008021996356546879,
                    -0.006706111133098602,
                    -0.005765005014836788,
                    -0.00010565342381596565,
                    0.0028481646440923214,
                ],
            ),
            (
                "bert.encoder.layer.1.intermediate.dense.weight",
                [
                    0.0028567127883434296,
                    -0.0002187947102356702,
                    -0.002321701031178236,
                    -0.003295422298833728,
                    -0.002769322833046317,
                    -0.00135564967058599,
                ],
            ),
            (
                "bert.encoder.layer.1.output.LayerNorm.weight",
                [
                    0.04735776036977768,
                    0.00936434417963028,
                    -0.0002281462657265365,
                    0.01214716024696827,
                    0.02732009068131447,
                    0.02839873544871807,
                ],
            ),
            (
                "head.0.weight",
                [
                    -0.3117901384830475,
                    -0.11746334284543991,
                    0.058591149747371674,
                    0.1670965552330017,
                    0.20292888581752777,
                    0.15845243632793427,
                ],
            ),
        ];
        for (name, w) in want {
            eprintln!("{name}: {:?}\n   {:?}", grad(name), w);
        }
        for (name, w) in want {
            close(name, grad(name), &w);
        }
    }
}
