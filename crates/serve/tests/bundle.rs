//! Bundles: written by `write_bundle`, loaded by `Bundle::load`, used by `predict_file`; and every
//! way a bundle or an input can be wrong.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::Path;

use candle_core::Device;
use models::{MlpConfig, ModelConfig, ModelSpec, Params};
use pipeline_core::raw::{ImageSet, RawInputs, RawSchema};
use pipeline_core::run::{BUNDLE_FORMAT_VERSION, read_json, write_json};
use pipeline_core::{BundleDir, BundleIndex, Head, InputSchema, Predictions, Schema, Target, Task, rng};
use preprocess::{ImageTransform, InputTransform, Preprocessor, TargetEncoder};
use serve::{Bundle, InputFormat, predict_file};

fn labels() -> Vec<String> {
    vec!["cat".into(), "dog".into(), "fox".into()]
}

fn spec() -> ModelSpec {
    ModelSpec { input_shape: vec![1, 2, 3], outputs: 3, vocab: None }
}

/// A bundle of a small MLP over 2x3 grey images, with random (seeded) weights.
fn write(dir: &Path) -> BundleDir {
    let schema = Schema {
        input: InputSchema::Image { channels: 1, height: 2, width: 3 },
        target: Target { name: "label".into(), task: Task::Classification { labels: labels() } },
    };
    let index = BundleIndex {
        format_version: BUNDLE_FORMAT_VERSION,
        name: "tiny".into(),
        schema,
        head: Head::Softmax,
        pipeline_version: "test".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        seed: 1,
    };
    let config = ModelConfig::Mlp(MlpConfig { hidden: vec![5], ..Default::default() });
    let params = Params::new(rng(1, "init"));
    models::build(&config, &spec(), params.var_builder(&Device::Cpu)).unwrap();
    let pre = Preprocessor {
        raw: RawSchema::Image { channels: 1, height: 2, width: 3 },
        inputs: InputTransform::Images { transform: ImageTransform::Pixel },
        output: InputSchema::Image { channels: 1, height: 2, width: 3 },
        target: TargetEncoder::Classes { labels: labels(), label_values: None },
        target_name: "label".into(),
    };
    let b = BundleDir::new(dir.join("bundle"));
    std::fs::create_dir_all(b.root()).unwrap();
    serve::write_bundle(&b, &index, &config, &pre, &params).unwrap();
    b
}

/// Four 2x3 "images" of byte values.
fn rows() -> Vec<u8> {
    (0..24u8).map(|i| i.wrapping_mul(37)).collect()
}

fn raw() -> Vec<f32> {
    rows().iter().map(|&v| f32::from(v)).collect()
}

fn images(pixels: Vec<f32>) -> RawInputs {
    RawInputs::Images(ImageSet { channels: 1, height: 2, width: 3, pixels })
}

#[test]
fn predictions_apply_the_saved_preprocessing() {
    let tmp = tempfile::tempdir().unwrap();
    let b = write(tmp.path());
    let bundle = Bundle::load(b.root(), &Device::Cpu).unwrap();
    let preds = bundle.predict(&images(raw())).unwrap();
    assert_eq!(preds.len(), 4);

    // The same model fed the scaled rows by hand gives the same probabilities.
    let model = models::load_weights(&bundle.model_config, &spec(), &b.weights(), &Device::Cpu).unwrap();
    let scaled: Vec<f32> = raw().iter().map(|v| v / 255.0).collect();
    let direct = models::predict(model.as_ref(), &scaled, &[1, 2, 3], Head::Softmax, 256, &Device::Cpu).unwrap();
    assert_eq!(preds, direct);
    // Without the scaling the outputs differ: the preprocessing is really applied.
    let unscaled = models::predict(model.as_ref(), &raw(), &[1, 2, 3], Head::Softmax, 256, &Device::Cpu).unwrap();
    assert_ne!(preds, unscaled);
}

#[test]
fn idx_and_csv_inputs_give_the_same_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let b = write(tmp.path());
    let bundle = Bundle::load(b.root(), &Device::Cpu).unwrap();
    let idx = tmp.path().join("in.idx");
    std::fs::write(&idx, data_ingest::idx::encode_u8(&[4, 2, 3], &rows())).unwrap();
    let csv = tmp.path().join("in.csv");
    let mut text = String::from("pixel_0,pixel_1,pixel_2,pixel_3,pixel_4,pixel_5\n");
    for r in rows().chunks(6) {
        text += &r.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        text.push('\n');
    }
    std::fs::write(&csv, text).unwrap();
    let (a, c) = (tmp.path().join("a.csv"), tmp.path().join("c.csv"));
    assert_eq!(predict_file(&bundle, &idx, InputFormat::from_path(&idx), &a).unwrap(), 4);
    assert_eq!(predict_file(&bundle, &csv, InputFormat::from_path(&csv), &c).unwrap(), 4);
    let out = std::fs::read_to_string(&a).unwrap();
    assert_eq!(out, std::fs::read_to_string(&c).unwrap());
    assert!(out.starts_with("row,label,confidence,p_cat,p_dog,p_fox\n0,"), "{out}");
    // Each row's label is its most probable class and the confidence its probability.
    let Predictions::Classes { probs, .. } = bundle.predict(&images(raw())).unwrap() else { panic!("classification") };
    for (line, p) in out.lines().skip(1).zip(probs.chunks(3)) {
        let f: Vec<&str> = line.split(',').collect();
        let best = (0..3).fold(0, |b, j| if p[j] > p[b] { j } else { b });
        assert_eq!(f[1], labels()[best]);
        assert_eq!(f[2], format!("{:.6}", p[best]));
    }
}

#[test]
fn inputs_that_do_not_fit_the_model_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let b = write(tmp.path());
    let bundle = Bundle::load(b.root(), &Device::Cpu).unwrap();
    let idx = tmp.path().join("wrong.idx");
    std::fs::write(&idx, data_ingest::idx::encode_u8(&[2, 3, 2], &rows()[..12])).unwrap();
    let out = tmp.path().join("o.csv");
    let err = predict_file(&bundle, &idx, InputFormat::Idx, &out).unwrap_err();
    assert_eq!(err.to_string(), format!("{}: IDX records of shape [3, 2], the model takes [1, 2, 3]", idx.display()));
    assert!(!out.exists(), "no output on failure");
    let wrong = RawInputs::Images(ImageSet { channels: 1, height: 3, width: 2, pixels: vec![0.0; 6] });
    assert_eq!(
        bundle.predict(&wrong).unwrap_err().to_string(),
        "images are 1x3x2 (channels x height x width), the model takes 1x2x3"
    );
}

#[test]
fn broken_bundles_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let b = write(tmp.path());
    let load_err = || Bundle::load(b.root(), &Device::Cpu).err().expect("must fail").to_string();

    // Another format version.
    let mut index: BundleIndex = read_json(&b.index()).unwrap();
    index.format_version = 99;
    write_json(&b.index(), &index).unwrap();
    assert_eq!(
        load_err(),
        format!(
            "bundle {}: bundle format version 99, this dlp reads version {BUNDLE_FORMAT_VERSION}",
            b.root().display()
        )
    );
    index.format_version = BUNDLE_FORMAT_VERSION;
    write_json(&b.index(), &index).unwrap();

    // Preprocessing that produces another shape.
    let good: Preprocessor = read_json(&b.preprocess()).unwrap();
    write_json(
        &b.preprocess(),
        &Preprocessor { output: InputSchema::Image { channels: 1, height: 1, width: 5 }, ..good.clone() },
    )
    .unwrap();
    let err = load_err();
    assert!(err.ends_with("preprocess.json produces rows of 5 values, the model takes 6"), "{err}");
    write_json(&b.preprocess(), &good).unwrap();

    // Truncated weights.
    let weights = std::fs::read(b.weights()).unwrap();
    std::fs::write(b.weights(), &weights[..weights.len() / 2]).unwrap();
    let err = load_err();
    assert!(err.starts_with(&b.weights().display().to_string()), "{err}");
    std::fs::write(b.weights(), &weights).unwrap();
    Bundle::load(b.root(), &Device::Cpu).unwrap();

    // Missing model config.
    std::fs::remove_file(b.model_config()).unwrap();
    let err = load_err();
    assert!(err.contains("model.json: No such file or directory"), "{err}");
}

#[test]
fn a_bundle_whose_weights_give_nan_is_refused_by_predict_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let b = write(tmp.path());
    // Every weight NaN, in a file that loads: label 0 on every row if it were used.
    let tensors = candle_core::safetensors::load(b.weights(), &Device::Cpu).unwrap();
    let nan: std::collections::HashMap<String, candle_core::Tensor> =
        tensors.iter().map(|(n, t)| (n.clone(), (t.ones_like().unwrap() * f64::NAN).unwrap())).collect();
    candle_core::safetensors::save(&nan, b.weights()).unwrap();
    let bundle = Bundle::load(b.root(), &Device::Cpu).unwrap();
    let want = format!("bundle {}: the model gives non-finite outputs for all-zero inputs", b.root().display());

    let input = tmp.path().join("in.csv");
    let header: Vec<String> = (0..6).map(|i| format!("pixel_{i}")).collect();
    std::fs::write(&input, format!("{}\n1,2,3,4,5,6\n", header.join(","))).unwrap();
    let out = tmp.path().join("out.csv");
    assert_eq!(predict_file(&bundle, &input, InputFormat::Csv, &out).unwrap_err().to_string(), want);
    assert!(!out.exists());
    let st = tmp.path().join("model.safetensors");
    assert_eq!(serve::export::export_safetensors(&bundle, &st).unwrap_err().to_string(), want);
    let onnx = tmp.path().join("model.onnx");
    assert_eq!(serve::export::export_onnx(&bundle, &onnx).unwrap_err().to_string(), want);
    assert!(!st.exists() && !onnx.exists());
    // `dlp serve` refuses it at start.
    let serve_err = serve::server::RunningServer::start(b.root(), "127.0.0.1:0", Default::default())
        .err()
        .expect("serving a NaN bundle must fail")
        .to_string();
    assert!(serve_err.contains("the model gives non-finite outputs for all-zero inputs"), "{serve_err}");
    // In memory, a non-finite row is an error naming the record, never an answer.
    let err = bundle.predict(&images(raw())).unwrap_err().to_string();
    assert!(err.starts_with("record 0: the model's output is not finite"), "{err}");
}
