//! Streaming batch prediction: image folders and CSV tables a chunk at a time give the same
//! predictions as the whole input at once, and bad records are refused with their place.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

mod common;

use candle_core::Device;
use pipeline_core::Predictions;
use pipeline_core::raw::{ImageSet, RawInputs};
use serve::stream::{StreamOptions, predict_stream};
use serve::{Bundle, InputFormat};

fn quiet(chunk: usize) -> StreamOptions {
    StreamOptions { chunk, progress: false }
}

fn probs(p: Predictions) -> Vec<f32> {
    match p {
        Predictions::Classes { probs, .. } => probs,
        Predictions::Values(v) => v,
    }
}

#[test]
fn image_folders_are_predicted_in_path_order_with_their_names() {
    let tmp = tempfile::tempdir().unwrap();
    common::image_bundle(&tmp.path().join("b"), 1);
    let bundle = Bundle::load(&tmp.path().join("b"), &Device::Cpu).unwrap();
    let folder = tmp.path().join("imgs");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    let mut pixels = Vec::new();
    for (i, name) in ["a.png", "b.png", "sub/c.png"].iter().enumerate() {
        let px: Vec<u8> = (0..16).map(|j| ((j * 31 + i * 97) % 256) as u8).collect();
        image::GrayImage::from_raw(4, 4, px.clone()).unwrap().save(folder.join(name)).unwrap();
        pixels.extend(px.iter().map(|&p| f32::from(p)));
    }
    std::fs::write(folder.join("notes.txt"), "not an image").unwrap();
    let out = tmp.path().join("out.csv");
    assert_eq!(InputFormat::from_path(&folder), InputFormat::ImageFolder);
    assert_eq!(predict_stream(&bundle, &folder, InputFormat::ImageFolder, &out, &quiet(2)).unwrap(), 3);
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), ["a.png", "b.png", "sub/c.png"]);
    let want =
        probs(bundle.predict(&RawInputs::Images(ImageSet { channels: 1, height: 4, width: 4, pixels })).unwrap());
    for (r, w) in rows.iter().zip(want.chunks(3)) {
        let got: Vec<f32> = r[3..].iter().map(|v| v.parse().unwrap()).collect();
        for (a, b) in got.iter().zip(w) {
            assert!((a - b).abs() < 1e-6, "{r:?} vs {w:?}");
        }
    }

    // An image that does not decode is named, and no output is left.
    std::fs::write(folder.join("sub/broken.png"), b"\x89PNG nope").unwrap();
    let out2 = tmp.path().join("out2.csv");
    let err = predict_stream(&bundle, &folder, InputFormat::ImageFolder, &out2, &quiet(2)).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: cannot decode the image", folder.join("sub/broken.png").display())), "{err}");
    assert!(!out2.exists());
    let names: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 3, "b, imgs, out.csv and no temporary file: {names:?}");
}

#[test]
fn csv_tables_stream_in_chunks_and_bad_values_name_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    common::table_bundle(&tmp.path().join("b"), 3);
    let bundle = Bundle::load(&tmp.path().join("b"), &Device::Cpu).unwrap();
    // Columns in another order, an extra one, missing values.
    let csv = "id,ok,color,x\n1,true,red,1.5\n2,no,,2\n3,1,blue,NA\n4,false,green,4\n5,yes,teal,-3\n";
    let input = tmp.path().join("in.csv");
    std::fs::write(&input, csv).unwrap();
    let (a, b) = (tmp.path().join("a.csv"), tmp.path().join("b.csv"));
    assert_eq!(predict_stream(&bundle, &input, InputFormat::Csv, &a, &quiet(2)).unwrap(), 5);
    assert_eq!(predict_stream(&bundle, &input, InputFormat::Csv, &b, &quiet(1000)).unwrap(), 5);
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text, std::fs::read_to_string(&b).unwrap(), "chunking does not change predictions");
    assert!(text.starts_with("row,label,confidence,p_no,p_yes\n0,"), "{text}");
    // The same as the in-memory reader.
    let whole = serve::read_inputs(&bundle, &input, InputFormat::Csv).unwrap();
    let want = probs(bundle.predict(&whole).unwrap());
    for (line, w) in text.lines().skip(1).zip(want.chunks(2)) {
        let f: Vec<f32> = line.split(',').skip(3).map(|v| v.parse().unwrap()).collect();
        assert!((f[0] - w[0]).abs() < 1e-6 && (f[1] - w[1]).abs() < 1e-6, "{line} vs {w:?}");
    }

    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "x,color,ok\n1,red,true\n2,red,true\nabc,red,true\n").unwrap();
    let err = predict_stream(&bundle, &bad, InputFormat::Csv, &a, &quiet(1)).unwrap_err().to_string();
    assert_eq!(err, format!("{}: line 4, column `x`: \"abc\" is not a number", bad.display()));
    let missing = tmp.path().join("missing.csv");
    std::fs::write(&missing, "x,ok\n1,true\n").unwrap();
    let err = predict_stream(&bundle, &missing, InputFormat::Csv, &a, &quiet(1)).unwrap_err().to_string();
    assert_eq!(err, format!("{}: the header lacks column `color` that the model reads", missing.display()));
    // An empty file says so (not that its header lacks columns).
    let empty = tmp.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let err = predict_stream(&bundle, &empty, InputFormat::Csv, &a, &quiet(1)).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: the file is empty: expected a header line naming the columns, then one record per line",
            empty.display()
        )
    );
    // A value that drives the model's output to infinity or NaN is an error naming the
    // record, never a `NaN` answer; one too large for f32 is refused as such.
    common::narrow_bundle(&tmp.path().join("narrow"), 3);
    let narrow = Bundle::load(&tmp.path().join("narrow"), &Device::Cpu).unwrap();
    let huge = tmp.path().join("huge.csv");
    std::fs::write(&huge, "x\n1\n3e38\n").unwrap();
    let err = predict_stream(&narrow, &huge, InputFormat::Csv, &a, &quiet(1)).unwrap_err().to_string();
    assert!(err.starts_with("record 1: the model's output is not finite"), "{err}");
    // The earlier output is untouched by the failed runs.
    assert_eq!(std::fs::read_to_string(&a).unwrap(), text);
}
