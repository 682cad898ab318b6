//! Augmentation through the real command line: `dlp augment-preview` draws the shipped MNIST
//! config's augmented digits (the same every time), an augmented pipeline trains and resolves its
//! config, and transforms that do not fit the data are config errors before any work.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};

mod common;
use common::{dlp, ok, repo};

#[test]
fn preview_shows_each_digit_beside_its_augmented_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let config = repo().join("configs/mnist-cnn-small-augment.yaml");
    let png = tmp.path().join("grid.png");
    let args = ["augment-preview", config.to_str().unwrap(), "--out", png.to_str().unwrap(), "--draws", "4"];
    let stdout = ok(dlp(&args));
    assert_eq!(stdout.trim(), format!("wrote {} (10 images, each with 4 augmented versions)", png.display()));
    let img = image::open(&png).unwrap().to_luma8();
    // 10 rows of 28x28 digits at zoom 3 with 2-pixel gaps; 5 columns, a 6-pixel gap after the
    // originals.
    assert_eq!(img.dimensions(), (5 * 84 + 3 * 2 + 6, 10 * 84 + 9 * 2));
    let cell = |row: u32, col: u32| -> Vec<u8> {
        let left = col * 86 + if col > 0 { 4 } else { 0 };
        (0..84)
            .flat_map(|y| (0..84).map(move |x| (x, y)))
            .map(|(x, y)| img.get_pixel(left + x, row * 86 + y).0[0])
            .collect()
    };
    for row in 0..10 {
        let original = cell(row, 0);
        let ink = |c: &[u8]| c.iter().filter(|&&v| v > 127).count() as f64;
        for col in 1..5 {
            let draw = cell(row, col);
            assert_ne!(draw, original, "row {row}, draw {col} is augmented");
            // Small rotations and shifts keep the digit: about as much ink, within the cell.
            let ratio = ink(&draw) / ink(&original);
            assert!((0.8..1.25).contains(&ratio), "row {row}, draw {col}: ink ratio {ratio}");
        }
    }
    // The same config draws the same grid.
    let again = tmp.path().join("again.png");
    ok(dlp(&["augment-preview", config.to_str().unwrap(), "--out", again.to_str().unwrap(), "--draws", "4"]));
    assert_eq!(std::fs::read(&png).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn preview_without_augmentation_is_an_error() {
    let config = repo().join("configs/mnist-cnn-small.yaml");
    let out = dlp(&["augment-preview", config.to_str().unwrap(), "--out", "/nonexistent/x.png"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("error: {}: train.augment is empty, so training sees the images as they are\n", config.display())
    );
}

fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body.replace("DATA", &repo().join("data").display().to_string())).unwrap();
    p
}

#[test]
fn an_augmented_pipeline_trains_and_its_resolved_config_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "aug.yaml",
        "name: e2e-aug
seed: 3
threads: 1
data:
  format: idx
  images: DATA/mnist-t10k/t10k-images-idx3-ubyte.gz
  labels: DATA/mnist-t10k/t10k-labels-idx1-ubyte.gz
preprocess:
  scale: pixel
  split: {train: 0.7, validation: 0.1, test: 0.2}
model:
  arch: mlp
  hidden: [32]
train:
  epochs: 1
  batch_size: 128
  drop_last: true
  loader: {workers: 2, prefetch: 1}
  augment:
    - {kind: rotate, degrees: 10}
    - {kind: translate, fraction: 0.1}
    - {kind: cutout, p: 0.3}
",
    );
    let runs = tmp.path().join("runs");
    let stdout = ok(dlp(&["run", config.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]));
    let run = PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap());
    let accuracy: f64 = stdout.split("test accuracy: ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(accuracy > 0.6, "well above chance (0.1): {stdout}");
    let resolved = std::fs::read_to_string(run.join("config.yaml")).unwrap();
    assert!(resolved.contains("kind: cutout"), "{resolved}");
    assert!(resolved.contains("scale:\n    - 0.02\n    - 0.33") || resolved.contains("0.33"), "{resolved}");
    ok(dlp(&["check", run.join("config.yaml").to_str().unwrap()]));
}

#[test]
fn transforms_for_other_inputs_are_located_config_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "iris.yaml",
        "name: iris-aug
data:
  format: csv
  path: DATA/sklearn/iris.csv
  header: false
  skip_rows: 1
  names: [a, b, c, d, species]
  target: species
model:
  arch: mlp
train:
  epochs: 1
  augment:
    - {kind: feature_noise, std: 0.1}
    - {kind: rotate, degrees: 10}
",
    );
    let runs = tmp.path().join("runs");
    let out = dlp(&["run", config.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: {}:15:8: train.augment[1].kind: `rotate` transforms image inputs, but the data has tabular inputs\n",
            config.display()
        )
    );
    // A value out of range is found by `dlp check`, before reading any data.
    let bad =
        write_config(tmp.path(), "bad.yaml", &std::fs::read_to_string(&config).unwrap().replace("std: 0.1", "std: -1"));
    let out = dlp(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("error: {}:14:29: train.augment[0].std: must be at least 0, got -1\n", bad.display())
    );
}
