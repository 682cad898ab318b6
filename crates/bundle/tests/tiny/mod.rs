//! A tiny bundle for tests (shared by `crates/bundle/tests` and `crates/serve/tests`): an MLP
//! over 2x3 grey images with seeded random weights, and four such images.

#![allow(dead_code, reason = "each test file uses some of the helpers")]

use std::path::Path;

use candle_core::Device;
use models::{MlpConfig, ModelConfig, ModelSpec, Params};
use pipeline_core::raw::{ImageSet, RawInputs, RawSchema};
use pipeline_core::run::BUNDLE_FORMAT_VERSION;
use pipeline_core::{BundleDir, BundleIndex, Head, InputSchema, Schema, Target, Task, rng};
use preprocess::{ImageTransform, InputTransform, Preprocessor, TargetEncoder};

pub fn labels() -> Vec<String> {
    vec!["cat".into(), "dog".into(), "fox".into()]
}

pub fn spec() -> ModelSpec {
    ModelSpec { input_shape: vec![1, 2, 3], outputs: 3, vocab: None, series: None }
}

/// A bundle of a small MLP over 2x3 grey images, with random (seeded) weights.
pub fn write(dir: &Path) -> BundleDir {
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
    bundle::write_bundle(&b, &index, &config, &pre, &params).unwrap();
    b
}

/// Four 2x3 "images" of byte values.
pub fn rows() -> Vec<u8> {
    (0..24u8).map(|i| i.wrapping_mul(37)).collect()
}

pub fn raw() -> Vec<f32> {
    rows().iter().map(|&v| f32::from(v)).collect()
}

pub fn images(pixels: Vec<f32>) -> RawInputs {
    RawInputs::Images(ImageSet { channels: 1, height: 2, width: 3, pixels })
}
