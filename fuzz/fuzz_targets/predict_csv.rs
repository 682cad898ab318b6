//! `dlp predict`'s streaming CSV reader, with a real (iris) bundle: any bytes as the input
//! file, predicted in chunks to an output file.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serve::stream::{StreamOptions, predict_stream};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    static BUNDLE: OnceLock<serve::Bundle> = OnceLock::new();
    let bundle = BUNDLE.get_or_init(|| {
        serve::Bundle::load(&common::asset("bundle"), &candle_core::Device::Cpu).expect("the asset bundle")
    });
    let input = common::file("in.csv", data);
    let output = common::scratch().join("out.csv");
    let options = StreamOptions { chunk: 3, progress: false };
    let _ = predict_stream(bundle, &input, serve::InputFormat::Csv, &output, &options);
});
