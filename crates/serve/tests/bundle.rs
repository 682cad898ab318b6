//! Bundles as serving uses them: `predict_file` over IDX and CSV, inputs that do not fit, and a
//! bundle whose weights give NaN refused by predict, export and the server. (Loading, writing and
//! broken bundles are tested in `crates/bundle/tests/bundle.rs`.)

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use candle_core::Device;
use pipeline_core::Predictions;
use pipeline_core::raw::{ImageSet, RawInputs};
use serve::{Bundle, InputFormat, predict_file};

#[path = "../../bundle/tests/tiny/mod.rs"]
mod tiny;
use tiny::{images, labels, raw, rows, write};

#[test]
fn idx_and_csv_inputs_give_the_same_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let b = write(tmp.path());
    let bundle = Bundle::load(b.root(), &Device::Cpu).unwrap();
    let idx = tmp.path().join("in.idx");
    std::fs::write(&idx, data_ingest::idx::encode_u8(&[4, 2, 3], &rows())).unwrap();
    let csv = tmp.path().join("in.csv");
    let mut text = String::from("pixel_0,pixel_1,pixel_2,pixel_3,pixel_4,pixel_5\n");
    for r in rows().chunks(6) {
        text += &r.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        text.push('\n');
    }
    std::fs::write(&csv, text).unwrap();
    let (a, c) = (tmp.path().join("a.csv"), tmp.path().join("c.csv"));
    assert_eq!(predict_file(&bundle, &idx, InputFormat::from_path(&idx), &a).unwrap(), 4);
    assert_eq!(predict_file(&bundle, &csv, InputFormat::from_path(&csv), &c).unwrap(), 4);
    let out = std::fs::read_to_string(&a).unwrap();
    assert_eq!(out, std::fs::read_to_string(&c).unwrap());
    assert!(out.starts_with("row,label,confidence,p_cat,p_dog,p_fox\n0,"), "{out}");
    // Each row's label is its most probable class and the confidence its probability.
    let Predictions::Classes { probs, .. } = bundle.predict(&images(raw())).unwrap() else { panic!("classification") };
    for (line, p) in out.lines().skip(1).zip(probs.chunks(3)) {
        let f: Vec<&str> = line.split(',').collect();
        let best = (0..3).fold(0, |b, j| if p[j] > p[b] { j } else { b });
        assert_eq!(f[1], labels()[best]);
        assert_eq!(f[2], format!("{:.6}", p[best]));
    }
}

#[test]
fn inputs_that_do_not_fit_the_model_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let b = write(tmp.path());
    let bundle = Bundle::load(b.root(), &Device::Cpu).unwrap();
    let idx = tmp.path().join("wrong.idx");
    std::fs::write(&idx, data_ingest::idx::encode_u8(&[2, 3, 2], &rows()[..12])).unwrap();
    let out = tmp.path().join("o.csv");
    let err = predict_file(&bundle, &idx, InputFormat::Idx, &out).unwrap_err();
    assert_eq!(err.to_string(), format!("{}: IDX records of shape [3, 2], the model takes [1, 2, 3]", idx.display()));
    assert!(!out.exists(), "no output on failure");
    let wrong = RawInputs::Images(ImageSet { channels: 1, height: 3, width: 2, pixels: vec![0.0; 6] });
    assert_eq!(
        bundle.predict(&wrong).unwrap_err().to_string(),
        "images are 1x3x2 (channels x height x width), the model takes 1x2x3"
    );
}

#[test]
fn a_bundle_whose_weights_give_nan_is_refused_by_predict_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let b = write(tmp.path());
    // Every weight NaN, in a file that loads: label 0 on every row if it were used.
    let tensors = candle_core::safetensors::load(b.weights(), &Device::Cpu).unwrap();
    let nan: std::collections::HashMap<String, candle_core::Tensor> =
        tensors.iter().map(|(n, t)| (n.clone(), (t.ones_like().unwrap() * f64::NAN).unwrap())).collect();
    candle_core::safetensors::save(&nan, b.weights()).unwrap();
    let bundle = Bundle::load(b.root(), &Device::Cpu).unwrap();
    let want = format!("bundle {}: the model gives non-finite outputs for all-zero inputs", b.root().display());

    let input = tmp.path().join("in.csv");
    let header: Vec<String> = (0..6).map(|i| format!("pixel_{i}")).collect();
    std::fs::write(&input, format!("{}\n1,2,3,4,5,6\n", header.join(","))).unwrap();
    let out = tmp.path().join("out.csv");
    assert_eq!(predict_file(&bundle, &input, InputFormat::Csv, &out).unwrap_err().to_string(), want);
    assert!(!out.exists());
    let st = tmp.path().join("model.safetensors");
    assert_eq!(serve::export::export_safetensors(&bundle, &st).unwrap_err().to_string(), want);
    let onnx = tmp.path().join("model.onnx");
    assert_eq!(serve::export::export_onnx(&bundle, &onnx).unwrap_err().to_string(), want);
    assert!(!st.exists() && !onnx.exists());
    // `dlp serve` refuses it at start.
    let serve_err = serve::server::RunningServer::start(b.root(), "127.0.0.1:0", Default::default())
        .err()
        .expect("serving a NaN bundle must fail")
        .to_string();
    assert!(serve_err.contains("the model gives non-finite outputs for all-zero inputs"), "{serve_err}");
    // In memory, a non-finite row is an error naming the record, never an answer.
    let err = bundle.predict(&images(raw())).unwrap_err().to_string();
    assert!(err.starts_with("record 0: the model's output is not finite"), "{err}");
}
