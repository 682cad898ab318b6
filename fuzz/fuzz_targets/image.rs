//! Image decoding (image folders, base64 images in requests): PNG, JPEG, BMP, GIF, … any
//! bytes, decoded to grey or RGB and resized to the model's size, or kept at theirs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let channels = if mode & 1 == 0 { 1 } else { 3 };
    let size = if mode & 2 == 0 { Some((8, 8)) } else { None };
    let _ = data_ingest::images::decode(body, channels, size);
});
