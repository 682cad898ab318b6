//! The pipeline config loader (`dlp check` / `dlp run`): YAML parsing, unknown keys, types,
//! path resolution and every semantic check, on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::file("pipeline.yaml", data);
    if let Err(e) = dlp::config::load(&path) {
        // Formatting the located errors is part of what the user sees.
        let _ = e.to_string();
    }
});
