//! Exporting a bundle for other tools (`dlp export`).
//!
//! **safetensors** ([`export_safetensors`]): the weights under the names the architectures
//! document (PyTorch layout: linear weights `[out, in]`, convolutions `[out, in, kh, kw]`),
//! with metadata: `format` (`pt`), `dlp.architecture` (the model config as JSON),
//! `dlp.input_shape`, `dlp.head`, `dlp.labels` (JSON) and `dlp.preprocess` (the fitted
//! preprocessing as JSON). Names by architecture:
//!
//! - MLP: `layers.<i>.weight`, `layers.<i>.bias`, `i = 0…hidden layers` (the last is the output);
//! - CNN and LeNet-5: `blocks.<i>.conv.{weight,bias}`, `blocks.<i>.bn.{weight,bias,running_mean,
//!   running_var}` (with batch norm), `head.<j>.{weight,bias}`;
//! - ResNet: `stem.conv.weight`, `stem.bn.*`, `stages.<s>.<b>.{conv1,bn1,conv2,bn2}.*`,
//!   `stages.<s>.<b>.shortcut.{0,1}.*` (projection shortcuts), `head.{weight,bias}`;
//! - RNN, transformer and BERT models: as `models::sequence` and `models::bert` name them.
//!
//! **ONNX** ([`export_onnx`], opset 17, IR version 8), for MLP, CNN, LeNet-5 and ResNet models.
//! Image models take the raw pixels: input `pixels`, `FP32 [N, C, H, W]`, values 0–255, and the
//! graph applies the bundle's pixel scaling or per-channel standardization first, so the file
//! alone reproduces the pipeline. Table models take `features`, `FP32 [N, width]`, the rows
//! *after* the bundle's preprocessing (encoding and tokenization have no ONNX form here).
//! Outputs: `logits` `[N, outputs]`, and `probabilities` (softmax, or `[1 − p, p]` for a
//! sigmoid head) for classification or `value` `[N, 1]` (in target units) for regression.
//! Activations: ReLU, leaky ReLU, GELU (exact, through `Erf`), SiLU, tanh, sigmoid.

use std::collections::HashMap;
use std::path::Path;

use models::{Activation, CnnConfig, MlpConfig, ModelConfig, Norm, PoolKind, ResNetConfig};
use pipeline_core::{Head, InputSchema, Task};
use preprocess::{ImageTransform, TargetEncoder};
use safetensors::{Dtype, SafeTensors};

use crate::onnx::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    ValueInfoProto,
};
use crate::{Bundle, Error, Result};

fn export_err(message: impl Into<String>) -> Error {
    Error::Export { message: message.into() }
}

/// One weight: name, shape, values.
type Weight = (String, Vec<usize>, Vec<f32>);

/// The bundle's weights, in name order.
fn read_weights(bundle: &Bundle) -> Result<Vec<Weight>> {
    let path = bundle.dir.join("model.safetensors");
    let bytes = std::fs::read(&path).map_err(|e| export_err(format!("{}: {e}", path.display())))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| export_err(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(export_err(format!("{name}: {:?} weights; only F32 bundles are exported", view.dtype())));
        }
        let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.push((name, view.shape().to_vec(), values));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn head_name(head: Head) -> &'static str {
    match head {
        Head::Softmax => "softmax",
        Head::Sigmoid => "sigmoid",
        Head::Identity => "identity",
    }
}

/// Writes the weights with metadata as a safetensors file at `output` (atomically). Returns
/// the number of tensors.
pub fn export_safetensors(bundle: &Bundle, output: &Path) -> Result<usize> {
    bundle.smoke_test()?;
    let weights = read_weights(bundle)?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("dlp.architecture".into(), json(&bundle.model_config));
    meta.insert("dlp.input_shape".into(), json(&bundle.index.schema.input.shape()));
    meta.insert("dlp.head".into(), head_name(bundle.index.head).into());
    if let Task::Classification { labels } = bundle.task() {
        meta.insert("dlp.labels".into(), json(labels));
    }
    meta.insert("dlp.preprocess".into(), json(&bundle.preprocess));
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        weights.into_iter().map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| export_err(format!("{n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let count = views.len();
    let out = safetensors::serialize(views, Some(meta)).map_err(|e| export_err(e.to_string()))?;
    pipeline_core::run::write_atomic(output, &out)
        .map_err(|e| Error::Output { path: output.into(), message: e.to_string() })?;
    Ok(count)
}

/// A metadata value: compact JSON.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Builds a graph: nodes, initializers and fresh value names.
struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    weights: HashMap<String, (Vec<usize>, Vec<f32>)>,
    next: usize,
}

impl Graph {
    fn value(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.value(&op.to_ascii_lowercase());
        self.node_to(op, inputs, &out, attrs);
        out
    }

    fn node_to(&mut self, op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(format!("{op}_{}", self.nodes.len())),
            op_type: Some(op.into()),
            attribute: attrs,
        });
    }

    fn constant(&mut self, hint: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.value(hint);
        self.inits.push(TensorProto::floats(&name, dims, values));
        name
    }

    /// A bundle weight as an initializer named as in the bundle; checks its shape.
    fn weight(&mut self, name: &str, shape: &[usize]) -> Result<String> {
        let (s, v) = self.weights.get(name).ok_or_else(|| export_err(format!("the bundle has no weight `{name}`")))?;
        if s != shape {
            return Err(export_err(format!("weight `{name}` has shape {s:?}, expected {shape:?}")));
        }
        if !self.inits.iter().any(|t| t.name.as_deref() == Some(name)) {
            let t = TensorProto::floats(name, s, v);
            self.inits.push(t);
        }
        Ok(name.to_string())
    }

    fn shape_of(&self, name: &str) -> Result<Vec<usize>> {
        self.weights.get(name).map(|(s, _)| s.clone()).ok_or_else(|| export_err(format!("no weight `{name}`")))
    }

    fn activation(&mut self, a: Activation, x: &str) -> String {
        match a {
            Activation::Relu => self.node("Relu", &[x], vec![]),
            Activation::LeakyRelu => self.node("LeakyRelu", &[x], vec![AttributeProto::float("alpha", 0.01)]),
            Activation::Tanh => self.node("Tanh", &[x], vec![]),
            Activation::Sigmoid => self.node("Sigmoid", &[x], vec![]),
            Activation::Silu => {
                let s = self.node("Sigmoid", &[x], vec![]);
                self.node("Mul", &[x, &s], vec![])
            }
            Activation::Gelu => {
                // 0.5 · x · (1 + erf(x / √2)), PyTorch's exact GELU.
                let sqrt2 = self.constant("sqrt2", &[], &[std::f32::consts::SQRT_2]);
                let one = self.constant("one", &[], &[1.0]);
                let half = self.constant("half", &[], &[0.5]);
                let d = self.node("Div", &[x, &sqrt2], vec![]);
                let e = self.node("Erf", &[&d], vec![]);
                let p = self.node("Add", &[&e, &one], vec![]);
                let m = self.node("Mul", &[x, &p], vec![]);
                self.node("Mul", &[&m, &half], vec![])
            }
        }
    }

    /// `x · Wᵀ + b` for the linear layer `prefix`.
    fn linear(&mut self, prefix: &str, x: &str) -> Result<String> {
        let ws = self.shape_of(&format!("{prefix}.weight"))?;
        let w = self.weight(&format!("{prefix}.weight"), &ws)?;
        let b = self.weight(&format!("{prefix}.bias"), &[ws[0]])?;
        Ok(self.node("Gemm", &[x, &w, &b], vec![AttributeProto::int("transB", 1)]))
    }

    fn conv(&mut self, prefix: &str, x: &str, stride: usize, padding: usize, bias: bool) -> Result<String> {
        let ws = self.shape_of(&format!("{prefix}.weight"))?;
        let w = self.weight(&format!("{prefix}.weight"), &ws)?;
        let mut inputs = vec![x.to_string(), w];
        if bias {
            inputs.push(self.weight(&format!("{prefix}.bias"), &[ws[0]])?);
        }
        let p = padding as i64;
        let attrs = vec![
            AttributeProto::ints("kernel_shape", &[ws[2] as i64, ws[3] as i64]),
            AttributeProto::ints("pads", &[p, p, p, p]),
            AttributeProto::ints("strides", &[stride as i64, stride as i64]),
        ];
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.node("Conv", &refs, attrs))
    }

    fn batch_norm(&mut self, prefix: &str, x: &str) -> Result<String> {
        let n = self.shape_of(&format!("{prefix}.weight"))?;
        let names: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|p| self.weight(&format!("{prefix}.{p}"), &n))
            .collect::<Result<_>>()?;
        Ok(self.node(
            "BatchNormalization",
            &[x, &names[0], &names[1], &names[2], &names[3]],
            vec![AttributeProto::float("epsilon", 1e-5)],
        ))
    }

    fn flatten(&mut self, x: &str) -> String {
        self.node("Flatten", &[x], vec![AttributeProto::int("axis", 1)])
    }

    fn pool(&mut self, kind: PoolKind, p: usize, x: &str) -> String {
        let op = match kind {
            PoolKind::Max => "MaxPool",
            PoolKind::Avg => "AveragePool",
        };
        let attrs = vec![
            AttributeProto::ints("kernel_shape", &[p as i64, p as i64]),
            AttributeProto::ints("strides", &[p as i64, p as i64]),
        ];
        self.node(op, &[x], attrs)
    }

    fn layer_norm(&mut self, prefix: &str, x: &str) -> Result<String> {
        let n = self.shape_of(&format!("{prefix}.weight"))?;
        let w = self.weight(&format!("{prefix}.weight"), &n)?;
        let b = self.weight(&format!("{prefix}.bias"), &n)?;
        let attrs = vec![AttributeProto::int("axis", -1), AttributeProto::float("epsilon", 1e-5)];
        Ok(self.node("LayerNormalization", &[x, &w, &b], attrs))
    }

    fn mlp(&mut self, c: &MlpConfig, x: &str) -> Result<String> {
        let layers = c.hidden.len() + 1;
        let mut x = self.flatten(x);
        for i in 0..layers {
            x = self.linear(&format!("layers.{i}"), &x)?;
            if i + 1 < layers {
                x = match c.norm {
                    Norm::None => x,
                    Norm::Batch => self.batch_norm(&format!("norms.{i}"), &x)?,
                    Norm::Layer => self.layer_norm(&format!("norms.{i}"), &x)?,
                };
                x = self.activation(c.activation, &x);
            }
        }
        Ok(x)
    }

    fn cnn(&mut self, c: &CnnConfig, x: &str) -> Result<String> {
        let mut x = x.to_string();
        for (i, b) in c.blocks.iter().enumerate() {
            x = self.conv(&format!("blocks.{i}.conv"), &x, b.stride, b.padding, true)?;
            if b.batch_norm {
                x = self.batch_norm(&format!("blocks.{i}.bn"), &x)?;
            }
            x = self.activation(c.activation, &x);
            if let Some(p) = b.pool {
                x = self.pool(b.pool_kind, p, &x);
            }
        }
        x = self.flatten(&x);
        let n = c.hidden.len() + 1;
        for j in 0..n {
            x = self.linear(&format!("head.{j}"), &x)?;
            if j + 1 < n {
                x = self.activation(c.activation, &x);
            }
        }
        Ok(x)
    }

    fn resnet(&mut self, c: &ResNetConfig, x: &str) -> Result<String> {
        let mut x = self.conv("stem.conv", x, 1, 1, false)?;
        x = self.batch_norm("stem.bn", &x)?;
        x = self.node("Relu", &[&x], vec![]);
        for (s, _) in c.stages.iter().enumerate() {
            for b in 0..c.blocks_per_stage {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let p = format!("stages.{s}.{b}");
                let y = self.conv(&format!("{p}.conv1"), &x, stride, 1, false)?;
                let y = self.batch_norm(&format!("{p}.bn1"), &y)?;
                let y = self.node("Relu", &[&y], vec![]);
                let y = self.conv(&format!("{p}.conv2"), &y, 1, 1, false)?;
                let y = self.batch_norm(&format!("{p}.bn2"), &y)?;
                let short = if self.weights.contains_key(&format!("{p}.shortcut.0.weight")) {
                    let s = self.conv(&format!("{p}.shortcut.0"), &x, stride, 0, false)?;
                    self.batch_norm(&format!("{p}.shortcut.1"), &s)?
                } else {
                    x.clone()
                };
                let sum = self.node("Add", &[&y, &short], vec![]);
                x = self.node("Relu", &[&sum], vec![]);
            }
        }
        let pooled = self.node("GlobalAveragePool", &[&x], vec![]);
        let flat = self.flatten(&pooled);
        self.linear("head", &flat)
    }
}

/// The ONNX model of `bundle` (see the module docs), as bytes.
pub fn onnx_model(bundle: &Bundle) -> Result<Vec<u8>> {
    bundle.smoke_test()?;
    let weights = read_weights(bundle)?.into_iter().map(|(n, s, v)| (n, (s, v))).collect();
    let mut g = Graph { nodes: Vec::new(), inits: Vec::new(), weights, next: 0 };
    let schema = &bundle.index.schema;
    let (input, input_shape, doc) = match (&schema.input, &bundle.preprocess.inputs) {
        (InputSchema::Image { channels, height, width }, preprocess::InputTransform::Images { .. }) => {
            ("pixels", vec![None, Some(*channels), Some(*height), Some(*width)], "raw pixels, 0-255, channel-first")
        }
        (InputSchema::Tabular { features }, _) => {
            ("features", vec![None, Some(features.len())], "rows after the bundle's preprocessing")
        }
        (InputSchema::Image { channels, height, width }, preprocess::InputTransform::Audio { .. }) => (
            "features",
            vec![None, Some(*channels), Some(*height), Some(*width)],
            "audio features after the bundle's preprocessing (1 x bands x frames, standardised)",
        ),
        (other, _) => {
            return Err(export_err(format!("ONNX export takes image or table models, this one reads {other:?}")));
        }
    };
    // The bundle's image scaling, inside the graph.
    let mut x = input.to_string();
    if let preprocess::InputTransform::Images { transform } = &bundle.preprocess.inputs {
        match transform {
            ImageTransform::None => {}
            ImageTransform::Pixel => {
                let k = g.constant("scale", &[], &[255.0]);
                x = g.node("Div", &[&x, &k], vec![]);
            }
            ImageTransform::Standard { mean, std } => {
                let m = g.constant("mean", &[mean.len(), 1, 1], mean);
                let s = g.constant("std", &[std.len(), 1, 1], std);
                let d = g.node("Sub", &[&x, &m], vec![]);
                x = g.node("Div", &[&d, &s], vec![]);
            }
        }
    }
    let logits = match &bundle.model_config {
        ModelConfig::Mlp(c) => g.mlp(c, &x)?,
        ModelConfig::Logistic(_) | ModelConfig::Ridge(_) => g.mlp(&MlpConfig::default(), &x)?,
        ModelConfig::Cnn(c) => g.cnn(c, &x)?,
        ModelConfig::LeNet5(c) => g.cnn(&c.to_cnn(), &x)?,
        ModelConfig::ResNet(c) => g.resnet(c, &x)?,
        other => {
            let arch = serde_json::to_value(other).ok().and_then(|v| v["arch"].as_str().map(String::from));
            return Err(export_err(format!(
                "ONNX export supports mlp, logistic, ridge, cnn, lenet5 and resnet models, not {}",
                arch.unwrap_or_default()
            )));
        }
    };
    let outputs_n = bundle.index.head.outputs(bundle.task());
    g.node_to("Identity", &[&logits], "logits", vec![]);
    let mut outputs = vec![ValueInfoProto::float_tensor("logits", &[None, Some(outputs_n)], "raw model outputs")];
    match (bundle.index.head, &bundle.preprocess.target) {
        (Head::Softmax, _) => {
            g.node_to("Softmax", &[&logits], "probabilities", vec![AttributeProto::int("axis", 1)]);
            outputs.push(ValueInfoProto::float_tensor(
                "probabilities",
                &[None, Some(outputs_n)],
                "class probabilities, in the order of the bundle's labels",
            ));
        }
        (Head::Sigmoid, _) => {
            let p = g.node("Sigmoid", &[&logits], vec![]);
            let one = g.constant("one", &[], &[1.0]);
            let q = g.node("Sub", &[&one, &p], vec![]);
            g.node_to("Concat", &[&q, &p], "probabilities", vec![AttributeProto::int("axis", 1)]);
            outputs.push(ValueInfoProto::float_tensor("probabilities", &[None, Some(2)], "[1 - p, p]"));
        }
        (Head::Identity, TargetEncoder::Values { shift, scale }) => {
            let k = g.constant("target_scale", &[], &[*scale as f32]);
            let s = g.constant("target_shift", &[], &[*shift as f32]);
            let m = g.node("Mul", &[&logits, &k], vec![]);
            g.node_to("Add", &[&m, &s], "value", vec![]);
            outputs.push(ValueInfoProto::float_tensor("value", &[None, Some(1)], "predicted value, target units"));
        }
        (Head::Identity, _) => {}
    }
    let mut meta = vec![
        ("dlp.name", bundle.index.name.clone()),
        ("dlp.head", head_name(bundle.index.head).to_string()),
        ("dlp.pipeline_version", bundle.index.pipeline_version.clone()),
    ];
    if let Task::Classification { labels } = bundle.task() {
        meta.push(("dlp.labels", serde_json::to_string(labels).unwrap_or_default()));
    }
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        producer_name: Some("dlp".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        domain: None,
        model_version: Some(1),
        doc_string: Some(format!("{} exported by dlp", bundle.index.name)),
        graph: Some(GraphProto {
            node: g.nodes,
            name: Some(bundle.index.name.clone()),
            initializer: g.inits,
            doc_string: None,
            input: vec![ValueInfoProto::float_tensor(input, &input_shape, doc)],
            output: outputs,
        }),
        metadata_props: meta
            .into_iter()
            .map(|(k, v)| StringStringEntryProto { key: Some(k.into()), value: Some(v) })
            .collect(),
    };
    Ok(crate::onnx::encode(&model))
}

/// Writes the ONNX model of `bundle` to `output` (atomically).
pub fn export_onnx(bundle: &Bundle, output: &Path) -> Result<()> {
    let bytes = onnx_model(bundle)?;
    pipeline_core::run::write_atomic(output, &bytes)
        .map_err(|e| Error::Output { path: output.into(), message: e.to_string() })
}
