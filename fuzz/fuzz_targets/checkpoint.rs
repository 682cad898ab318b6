//! The checkpoint reader (`dlp train --resume`): safetensors header, metadata, training state
//! JSON, tensors and checksum, on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::file("x.ckpt", data);
    let _ = train::checkpoint::read(&path, &candle_core::Device::Cpu);
});
