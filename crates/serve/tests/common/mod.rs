//! Bundles for the server's tests: a small image model and a table model with a fitted
//! preprocessing, both with seeded weights (what is tested is the serving path, not accuracy).

#![allow(dead_code, reason = "each test file uses part of the helpers")]

use std::path::Path;

use candle_core::Device;
use models::{MlpConfig, ModelConfig, ModelSpec, Params};
use pipeline_core::raw::{Column, ImageSet, RawDataset, RawInputs, TargetSpec, Values};
use pipeline_core::run::BUNDLE_FORMAT_VERSION;
use pipeline_core::{BundleDir, BundleIndex, FeatureKind, Head, InputSchema, Schema, Target, Task, rng};

/// The Python that has onnxruntime, safetensors and numpy (see `tests/tests/serve.rs` at the
/// workspace root): `DLP_TEST_PYTHON`, else `python3`; `None` (skipped, loudly) only when neither
/// has them and `DLP_REQUIRE_PYTHON` is unset.
pub fn python() -> Option<String> {
    let py = std::env::var("DLP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&py).args(["-c", "import onnxruntime, safetensors, numpy"]).output();
    if probe.is_ok_and(|o| o.status.success()) {
        return Some(py);
    }
    assert!(
        std::env::var_os("DLP_REQUIRE_PYTHON").is_none(),
        "DLP_REQUIRE_PYTHON is set but {py} lacks onnxruntime, safetensors or numpy; `cargo xtask test` installs them"
    );
    eprintln!(
        "\n*** SKIPPED: the ONNX Runtime check needs a Python with onnxruntime, safetensors and numpy; \
         run `cargo xtask test` (it installs them) or set DLP_TEST_PYTHON ***\n"
    );
    None
}
use preprocess::{PreprocessConfig, Preprocessor, TargetEncoder};

/// The labels of the image model.
pub fn labels() -> Vec<String> {
    vec!["cat".into(), "dog".into(), "fox".into()]
}

fn write(dir: &Path, name: &str, pre: &Preprocessor, config: &ModelConfig, seed: u64) {
    write_with(dir, name, pre, config, None, seed, false);
}

/// Writes a bundle of `config` over `pre`'s inputs; `head` overrides the task's usual head;
/// `perturb` gives batch-norm statistics and biases non-trivial values.
pub fn write_with(
    dir: &Path,
    name: &str,
    pre: &Preprocessor,
    config: &ModelConfig,
    head: Option<Head>,
    seed: u64,
    perturb: bool,
) {
    let schema = pre.schema();
    let index = BundleIndex {
        format_version: BUNDLE_FORMAT_VERSION,
        name: name.into(),
        head: head.unwrap_or_else(|| Head::default_for(&schema.target.task)),
        schema: Schema {
            input: schema.input.clone(),
            target: Target { name: schema.target.name, task: schema.target.task },
        },
        pipeline_version: "test".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        seed,
    };
    let spec = ModelSpec::new(&index.schema.input, index.head.outputs(&index.schema.target.task));
    let params = Params::new(rng(seed, "init"));
    models::build(config, &spec, params.var_builder(&Device::Cpu)).unwrap();
    if perturb {
        for (name, var) in params.named_vars() {
            let n = var.elem_count();
            let h = name.bytes().map(f64::from).sum::<f64>() * 0.01;
            let vals: Vec<f32> = (0..n)
                .map(|i| {
                    let x = 0.3 * (0.37 * i as f64 + h).sin();
                    (if name.ends_with("running_var") { x.abs() + 0.5 } else { x }) as f32
                })
                .collect();
            var.set(&candle_core::Tensor::from_vec(vals, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }
    let b = BundleDir::new(dir);
    std::fs::create_dir_all(b.root()).unwrap();
    serve::write_bundle(&b, &index, config, pre, &params).unwrap();
}

/// An MLP over 1×4×4 grey images (pixels / 255), three classes, weights from `seed`.
pub fn image_bundle(dir: &Path, seed: u64) {
    let images = ImageSet { channels: 1, height: 4, width: 4, pixels: (0..48).map(|i| (i * 5) as f32).collect() };
    let target = Column {
        name: "label".into(),
        kind: FeatureKind::Categorical,
        values: Values::from_strings(labels().into_iter().map(Some)),
    };
    let data = RawDataset { inputs: RawInputs::Images(images), target: Some(target.clone()), parts: None };
    let encoder = TargetEncoder::fit(&target, &TargetSpec::default()).unwrap();
    let config = PreprocessConfig { scale: preprocess::Scale::Pixel, ..Default::default() };
    let (pre, _) = Preprocessor::fit(&config, &data, encoder).unwrap();
    assert_eq!(pre.output, InputSchema::Image { channels: 1, height: 4, width: 4 });
    write(dir, "tiny", &pre, &ModelConfig::Mlp(MlpConfig { hidden: vec![8], ..Default::default() }), seed);
}

/// The eight-record `y` target of the table bundles: classes `no` / `yes`.
fn yes_no() -> Column {
    let labels = ["no", "yes", "no", "yes", "no", "no", "yes", "yes"];
    Column {
        name: "y".into(),
        kind: FeatureKind::Categorical,
        values: Values::from_strings(labels.iter().map(|x| Some(x.to_string()))),
    }
}

/// An MLP over a table of `x` (numeric), `color` (categorical) and `ok` (boolean), two
/// classes `no` / `yes`, preprocessing fitted on eight records.
pub fn table_bundle(dir: &Path, seed: u64) {
    let n = |v: &[f64]| Values::Numbers(v.to_vec());
    let s = |v: &[&str]| Values::from_strings(v.iter().map(|x| Some(x.to_string())));
    let table = pipeline_core::raw::Table {
        columns: vec![
            Column { name: "x".into(), kind: FeatureKind::Numeric, values: n(&[1., 2., 3., 4., 5., 6., 7., 8.]) },
            Column {
                name: "color".into(),
                kind: FeatureKind::Categorical,
                values: s(&["red", "green", "red", "blue", "green", "red", "blue", "blue"]),
            },
            Column { name: "ok".into(), kind: FeatureKind::Boolean, values: n(&[1., 0., 1., 0., 1., 1., 0., 0.]) },
        ],
    };
    let target = yes_no();
    let data = RawDataset { inputs: RawInputs::Table(table), target: Some(target.clone()), parts: None };
    let encoder = TargetEncoder::fit(&target, &TargetSpec::default()).unwrap();
    let (pre, _) = Preprocessor::fit(&PreprocessConfig::default(), &data, encoder).unwrap();
    assert!(matches!(pre.schema().target.task, Task::Classification { .. }));
    write(dir, "table", &pre, &ModelConfig::Mlp(MlpConfig { hidden: vec![6], ..Default::default() }), seed);
}

/// An MLP over one numeric column `x` whose training values barely vary (standard deviation
/// about 2e-6), two classes: a finite input far from them (3e38) overflows once standardized,
/// so the model's output is not finite.
pub fn narrow_bundle(dir: &Path, seed: u64) {
    let x: Vec<f64> = (0..8).map(|i| 1.0 + f64::from(i) * 1e-6).collect();
    let table = pipeline_core::raw::Table {
        columns: vec![Column { name: "x".into(), kind: FeatureKind::Numeric, values: Values::Numbers(x) }],
    };
    let target = yes_no();
    let data = RawDataset { inputs: RawInputs::Table(table), target: Some(target.clone()), parts: None };
    let encoder = TargetEncoder::fit(&target, &TargetSpec::default()).unwrap();
    let config = PreprocessConfig { scale: preprocess::Scale::Standard, ..Default::default() };
    let (pre, _) = Preprocessor::fit(&config, &data, encoder).unwrap();
    write(dir, "narrow", &pre, &ModelConfig::Mlp(MlpConfig { hidden: vec![6], ..Default::default() }), seed);
}
