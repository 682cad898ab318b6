//! The IDX reader (MNIST's format, `data: {format: idx}` and `dlp predict` inputs): header,
//! dimensions, element type, body length; then the records as images or a table.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.idx");
    if let Ok(arr) = data_ingest::idx::decode(path, data) {
        let _ = data_ingest::idx::input_schema(&arr);
        let _ = data_ingest::idx::raw_inputs(&arr);
        let _ = data_ingest::idx::raw_dataset(&arr, &arr);
    }
});
