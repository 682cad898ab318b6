//! ONNX export of every supported shape of model, run by ONNX Runtime (Python) against the
//! bundle's own outputs: convolutions with batch norm and average pooling, per-channel image
//! standardization, GELU / SiLU / leaky ReLU, residual networks, a sigmoid head, a
//! standardized regression target, and a CNN over audio features. (The trained MNIST MLP and LeNet-5 are checked end to end in
//! `tests/tests/serve.rs`.)

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::Device;
use models::{Activation, CnnConfig, ConvBlock, MlpConfig, ModelConfig, ModelSpec, Norm, PoolKind, ResNetConfig};
use pipeline_core::raw::{
    Align, AudioSet, Column, ImageSet, RawDataset, RawInputs, Table, TargetSpec, TaskHint, Values,
};
use pipeline_core::{FeatureKind, Head, Predictions};
use preprocess::{PreprocessConfig, Preprocessor, Scale, TargetEncoder};
use serde_json::Value;
use serve::Bundle;

fn images(c: usize, n: usize) -> ImageSet {
    let pixels = (0..n * c * 64).map(|i| ((i * 53 + i / 7) % 256) as f32).collect();
    ImageSet { channels: c, height: 8, width: 8, pixels }
}

fn image_pre(c: usize, scale: Scale) -> Preprocessor {
    let target = Column {
        name: "y".into(),
        kind: FeatureKind::Categorical,
        values: Values::from_strings(["a", "b", "c", "a", "b", "c"].iter().map(|s| Some(s.to_string()))),
    };
    let data = RawDataset { inputs: RawInputs::Images(images(c, 6)), target: Some(target.clone()), parts: None };
    let enc = TargetEncoder::fit(&target, &TargetSpec::default()).unwrap();
    Preprocessor::fit(&PreprocessConfig { scale, ..Default::default() }, &data, enc).unwrap().0
}

/// Six clips of two tones each, 2,000 samples at 8 kHz.
fn clips(n: usize) -> AudioSet {
    let samples = 2000;
    let values = (0..n * samples)
        .map(|i| {
            let (clip, t) = (i / samples, (i % samples) as f32 / 8000.0);
            let f = 300.0 + 150.0 * clip as f32;
            0.4 * (std::f32::consts::TAU * f * t).sin() + 0.1 * (std::f32::consts::TAU * 2.3 * f * t).sin()
        })
        .collect();
    AudioSet { sample_rate: 8000, samples, align: Align::Start, values, durations: vec![0.25; n] }
}

fn audio_pre() -> Preprocessor {
    let target = Column {
        name: "y".into(),
        kind: FeatureKind::Categorical,
        values: Values::from_strings(["a", "b", "a", "b", "a", "b"].iter().map(|s| Some(s.to_string()))),
    };
    let data = RawDataset { inputs: RawInputs::Audio(clips(6)), target: Some(target.clone()), parts: None };
    let enc = TargetEncoder::fit(&target, &TargetSpec::default()).unwrap();
    let audio = preprocess::audio::AudioConfig { n_fft: 256, hop_length: 96, n_mels: 16, ..Default::default() };
    let config = PreprocessConfig { scale: Scale::Standard, audio: Some(audio), ..Default::default() };
    Preprocessor::fit(&config, &data, enc).unwrap().0
}

fn table_pre(regression: bool) -> Preprocessor {
    let cols = (0..3)
        .map(|j| Column {
            name: format!("f{j}"),
            kind: FeatureKind::Numeric,
            values: Values::Numbers((0..10).map(|i| ((i * 7 + j * 3) % 11) as f64 - 4.0).collect()),
        })
        .collect();
    let target = if regression {
        Column {
            name: "y".into(),
            kind: FeatureKind::Numeric,
            values: Values::Numbers((0..10).map(|i| 100.0 + 3.5 * i as f64).collect()),
        }
    } else {
        Column {
            name: "y".into(),
            kind: FeatureKind::Categorical,
            values: Values::from_strings((0..10).map(|i| Some(if i % 2 == 0 { "no" } else { "yes" }.to_string()))),
        }
    };
    let spec = TargetSpec { task: if regression { TaskHint::Regression } else { TaskHint::Auto }, label_names: None };
    let data =
        RawDataset { inputs: RawInputs::Table(Table { columns: cols }), target: Some(target.clone()), parts: None };
    let enc = TargetEncoder::fit(&target, &spec).unwrap();
    let config = PreprocessConfig { scale: Scale::Standard, scale_target: regression, ..Default::default() };
    Preprocessor::fit(&config, &data, enc).unwrap().0
}

/// Exports `dir`'s bundle, runs it in ONNX Runtime on `inputs` (raw for images, preprocessed
/// for tables) and compares every output with the bundle's.
fn check(dir: &Path, raw: &RawInputs, py: &str) {
    let b = Bundle::load(dir, &Device::Cpu).unwrap();
    let onnx = dir.join("m.onnx");
    serve::export::export_onnx(&b, &onnx).unwrap();
    let rows = b.transform(raw).unwrap();
    let (feed, dims): (Vec<f32>, Vec<usize>) = match raw {
        RawInputs::Images(im) => (im.pixels.clone(), vec![im.rows(), im.channels, im.height, im.width]),
        RawInputs::Table(t) => (rows.clone(), vec![t.rows(), b.input_width()]),
        // Audio graphs start from the features (the extraction is not in the graph).
        RawInputs::Audio(a) => match &b.index.schema.input {
            pipeline_core::InputSchema::Image { channels, height, width } => {
                (rows.clone(), vec![a.rows(), *channels, *height, *width])
            }
            other => panic!("audio features are images, got {other:?}"),
        },
    };
    let input = dir.join("x.f32");
    std::fs::write(&input, feed.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let out = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/onnx_run.py"))
        .arg(&onnx)
        .arg(&input)
        .args(dims.iter().map(ToString::to_string))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let floats = |k: &str| -> Vec<f32> {
        got[k]
            .as_array()
            .unwrap_or_else(|| panic!("no output {k}: {got}"))
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let close = |what: &str, a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "{what}");
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0f32, f32::max);
        assert!(worst < 1e-4, "{}: {what} differs by {worst}: {a:?} vs {b:?}", dir.display());
    };
    let spec = ModelSpec::new(&b.index.schema.input, b.index.head.outputs(b.task()));
    let model = models::load_weights(&b.model_config, &spec, &b.dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let Predictions::Values(logits) =
        models::predict(model.as_ref(), &rows, &spec.input_shape, Head::Identity, 64, &Device::Cpu).unwrap()
    else {
        panic!()
    };
    close("logits", &floats("logits"), &logits);
    match b.predict(raw).unwrap() {
        Predictions::Classes { probs, .. } => close("probabilities", &floats("probabilities"), &probs),
        Predictions::Values(v) => close("value", &floats("value"), &v),
    }
}

#[test]
fn onnx_exports_match_the_bundle_in_onnx_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let block = |channels, stride, padding, pool, batch_norm| ConvBlock {
        channels,
        kernel: 3,
        stride,
        padding,
        pool,
        pool_kind: PoolKind::Avg,
        batch_norm,
    };
    let cnn = ModelConfig::Cnn(CnnConfig {
        blocks: vec![block(4, 1, 1, Some(2), true), block(5, 2, 1, None, false)],
        hidden: vec![6],
        activation: Activation::Gelu,
        ..Default::default()
    });
    let cnn_dir = tmp.path().join("cnn");
    common::write_with(&cnn_dir, "cnn", &image_pre(3, Scale::Standard), &cnn, None, 1, true);
    let resnet = ModelConfig::ResNet(ResNetConfig { stages: vec![4, 8], blocks_per_stage: 1, ..Default::default() });
    let res_dir = tmp.path().join("resnet");
    common::write_with(&res_dir, "resnet", &image_pre(1, Scale::Pixel), &resnet, None, 2, true);
    let mlp = |a, norm| ModelConfig::Mlp(MlpConfig { hidden: vec![5, 4], activation: a, norm, ..Default::default() });
    let sig_dir = tmp.path().join("sigmoid");
    let sig = mlp(Activation::LeakyRelu, Norm::Batch);
    common::write_with(&sig_dir, "sig", &table_pre(false), &sig, Some(Head::Sigmoid), 3, true);
    let audio_cnn = ModelConfig::Cnn(CnnConfig {
        blocks: vec![block(4, 1, 1, Some(2), false)],
        hidden: vec![5],
        ..Default::default()
    });
    let audio_dir = tmp.path().join("audio");
    common::write_with(&audio_dir, "audio", &audio_pre(), &audio_cnn, None, 5, true);
    let reg_dir = tmp.path().join("regression");
    common::write_with(&reg_dir, "reg", &table_pre(true), &mlp(Activation::Silu, Norm::Layer), None, 4, true);

    // Export works without Python: conv 2 + batch norm 4 + conv 2 + two linear layers 4 tensors.
    let b = Bundle::load(&cnn_dir, &Device::Cpu).unwrap();
    assert!(serve::export::onnx_model(&b).unwrap().len() > 1000);
    assert_eq!(serve::export::export_safetensors(&b, &tmp.path().join("w.safetensors")).unwrap(), 12);

    let Some(py) = common::python() else { return };
    check(&cnn_dir, &RawInputs::Images(images(3, 5)), &py);
    check(&res_dir, &RawInputs::Images(images(1, 5)), &py);
    let table = |n: usize| {
        RawInputs::Table(Table {
            columns: (0..3)
                .map(|j| Column {
                    name: format!("f{j}"),
                    kind: FeatureKind::Numeric,
                    values: Values::Numbers((0..n).map(|i| (i as f64 * 0.7 + j as f64) % 5.0 - 2.0).collect()),
                })
                .collect(),
        })
    };
    check(&audio_dir, &RawInputs::Audio(clips(4)), &py);
    check(&sig_dir, &table(6), &py);
    check(&reg_dir, &table(6), &py);
}
