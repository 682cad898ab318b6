//! The bundle loader (`dlp serve` / `predict` / `export`): a real (iris) bundle with one of
//! its four files replaced by the input (the first byte picks which), loaded, smoke-tested,
//! and asked for a prediction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_core::raw::{Column, RawInputs, Table, Values};

#[path = "common.rs"]
mod common;

const FILES: [&str; 4] = ["bundle.json", "model.json", "preprocess.json", "model.safetensors"];

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    let dir = common::scratch().join("bundle");
    std::fs::create_dir_all(&dir).expect("bundle dir");
    for f in FILES {
        std::fs::copy(common::asset("bundle").join(f), dir.join(f)).expect("asset bundle");
    }
    std::fs::write(dir.join(FILES[usize::from(which) % 4]), body).expect("fuzzed file");
    let Ok(bundle) = serve::Bundle::load(&dir, &candle_core::Device::Cpu) else { return };
    if bundle.smoke_test().is_err() {
        return;
    }
    let names = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
    let columns = names
        .iter()
        .map(|n| Column {
            name: (*n).into(),
            kind: pipeline_core::FeatureKind::Numeric,
            values: Values::Numbers(vec![5.0, 1.0]),
        })
        .collect();
    let _ = bundle.predict(&RawInputs::Table(Table { columns }));
});
