//! The server's request parsers: V2 (Open Inference Protocol) tensors and raw `instances`,
//! against a table model (numeric, categorical, boolean fields) and an image model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_core::raw::RawSchema;
use pipeline_core::{Feature, FeatureKind};
use serve::records::{InferRequest, PredictRequest, infer_inputs, parse_json, predict_inputs};

fuzz_target!(|data: &[u8]| {
    let table = RawSchema::Table {
        columns: vec![
            Feature { name: "x".into(), kind: FeatureKind::Numeric },
            Feature { name: "color".into(), kind: FeatureKind::Categorical },
            Feature { name: "ok".into(), kind: FeatureKind::Boolean },
            Feature { name: "note".into(), kind: FeatureKind::Text },
        ],
    };
    let image = RawSchema::Image { channels: 1, height: 4, width: 4 };
    if let Ok(req) = parse_json::<InferRequest>(data) {
        let _ = infer_inputs(&req, &table);
        let _ = infer_inputs(&req, &image);
    }
    if let Ok(req) = parse_json::<PredictRequest>(data) {
        let _ = predict_inputs(&req, &table);
        let _ = predict_inputs(&req, &image);
    }
});
