//! The bundle crate's API: a bundle written by `write_bundle` loads and predicts through its
//! saved preprocessing, every way a bundle can be broken is refused with the reason, the
//! predictions CSV has the documented columns, and the drift reference round-trips.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use bundle::reference::{Reference, ReferenceOptions};
use bundle::{Bundle, PredictionsCsvError, predictions_csv, write_reference};
use candle_core::Device;
use pipeline_core::run::{BUNDLE_FORMAT_VERSION, read_json, write_json};
use pipeline_core::{BundleIndex, Head, InputSchema, Predictions, Task};
use preprocess::Preprocessor;

mod tiny;
use tiny::{images, raw, spec, write};

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
fn the_predictions_csv_has_the_documented_columns() {
    let task = Task::Classification { labels: vec!["no".into(), "yes".into()] };
    let preds = Predictions::Classes { probs: vec![0.25, 0.75, 0.9, 0.1], classes: 2 };
    let csv = predictions_csv(&task, &preds, Some(&[7, 3]), Some(&["yes".into(), "no".into()])).unwrap();
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "row,actual,label,confidence,p_no,p_yes\n7,yes,yes,0.750000,0.250000,0.750000\n3,no,no,0.900000,0.900000,0.100000\n"
    );
    let values = Predictions::Values(vec![1.5, -2.0]);
    let regression = Task::Regression;
    assert_eq!(
        String::from_utf8(predictions_csv(&regression, &values, None, None).unwrap()).unwrap(),
        "row,value\n0,1.5\n1,-2\n"
    );
    // Class probabilities for a task without classes.
    assert!(matches!(predictions_csv(&regression, &preds, None, None), Err(PredictionsCsvError::TaskMismatch)));
}

#[test]
fn the_drift_reference_is_written_into_the_bundle_and_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let b = write(tmp.path());
    assert!(Bundle::load(b.root(), &Device::Cpu).unwrap().reference.is_none(), "no reference written yet");
    let reference = Reference::fit_inputs(&images(raw()), &ReferenceOptions::default()).unwrap();
    let names: Vec<&str> = reference.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["mean_intensity", "std_intensity"]);
    write_reference(&b, &reference).unwrap();
    let loaded = Bundle::load(b.root(), &Device::Cpu).unwrap();
    assert_eq!(loaded.reference.as_deref(), Some(&reference));
}
