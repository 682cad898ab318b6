//! End to end: a small MNIST pipeline through `dlp run`, its run directory and bundle, and
//! `dlp predict` with that bundle.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{dlp, ok, repo};

/// A small but real pipeline: all of MNIST-10k, a narrow MLP, two epochs.
fn small_config(dir: &Path, seed: u64) -> PathBuf {
    let data = repo().join("data/mnist-t10k");
    let text = format!(
        "name: e2e-mnist
seed: {seed}
threads: 1
data:
  format: idx
  images: {}/t10k-images-idx3-ubyte.gz
  labels: {}/t10k-labels-idx1-ubyte.gz
preprocess:
  scale: pixel
  split: {{train: 0.7, validation: 0.1, test: 0.2}}
model:
  arch: mlp
  hidden: [64]
  dropout: 0.1
train:
  epochs: 2
  batch_size: 64
",
        data.display(),
        data.display()
    );
    let p = dir.join(format!("small-{seed}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `config` and returns its run directory.
fn run(config: &Path, runs: &Path) -> PathBuf {
    let stdout = ok(dlp(&["run", config.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]));
    let line = stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).expect("the run directory is printed");
    assert!(stdout.contains("test accuracy: "), "{stdout}");
    PathBuf::from(line)
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

#[test]
fn small_mnist_pipeline_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let cfg = small_config(tmp.path(), 7);
    let run_a = run(&cfg, &runs);

    // The run directory holds every artifact, and they are consistent.
    for f in ["config.yaml", "manifest.json", "metrics.jsonl", "eval.json", "split.json"] {
        assert!(run_a.join(f).is_file(), "missing {f}");
    }
    for f in ["bundle.json", "model.json", "model.safetensors", "preprocess.json"] {
        assert!(run_a.join("bundle").join(f).is_file(), "missing bundle/{f}");
    }
    assert!(!run_a.join("bundle.partial").exists());

    let eval = json(&run_a.join("eval.json"));
    let accuracy = eval["accuracy"].as_f64().unwrap();
    // Two epochs of a 64-unit MLP reach about 0.93; a broken pipeline (unscaled inputs,
    // misaligned labels, no training) stays near 0.1.
    assert!(accuracy > 0.88, "test accuracy {accuracy}");
    assert_eq!(eval["examples"], 2000);
    assert_eq!(eval["per_class"].as_array().unwrap().len(), 10);
    let confusion: u64 = eval["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(confusion, 2000);

    let epochs: Vec<Value> = std::fs::read_to_string(run_a.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), 2);
    assert!(epochs[1]["train_loss"].as_f64().unwrap() < epochs[0]["train_loss"].as_f64().unwrap());
    assert!(epochs[1]["val_accuracy"].as_f64().unwrap() > 0.85);

    let manifest = json(&run_a.join("manifest.json"));
    assert_eq!(manifest["seed"], 7);
    let inputs = manifest["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    // The shipped files' checksums, from data/README.md.
    assert_eq!(inputs[0]["sha256"], "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6");
    assert_eq!(inputs[1]["sha256"], "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6");
    let phases: Vec<&str> =
        manifest["timings"].as_array().unwrap().iter().map(|t| t["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["ingest", "preprocess", "train", "eval", "bundle"]);
    assert!(manifest["finished_at"].is_string());

    // The split is a partition, and the resolved config is a valid config on its own.
    let split = json(&run_a.join("split.json"));
    let sizes: Vec<usize> =
        ["train", "validation", "test"].iter().map(|k| split[k].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [7000, 1000, 2000]);
    ok(dlp(&["check", run_a.join("config.yaml").to_str().unwrap()]));

    // Same config and seed: identical metrics. Another seed: different ones.
    let run_b = run(&cfg, &runs);
    assert_ne!(run_a, run_b);
    assert_eq!(json(&run_a.join("eval.json")), json(&run_b.join("eval.json")));
    let strip = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                let o = v.as_object_mut().unwrap();
                o.remove("train_seconds");
                o.remove("samples_per_sec");
                v
            })
            .collect()
    };
    assert_eq!(strip(&run_a), strip(&run_b));
    assert_eq!(
        std::fs::read(run_a.join("bundle/model.safetensors")).unwrap(),
        std::fs::read(run_b.join("bundle/model.safetensors")).unwrap()
    );
    let run_c = run(&small_config(tmp.path(), 8), &runs);
    assert_ne!(json(&run_a.join("eval.json")), json(&run_c.join("eval.json")));

    predict_reproduces_the_test_evaluation(&run_a, tmp.path());
}

/// `dlp predict` over all 10,000 raw images, restricted to the run's test indices, gives the
/// run's test accuracy; a CSV of the same rows gives the same predictions as the IDX file.
fn predict_reproduces_the_test_evaluation(run: &Path, tmp: &Path) {
    let images = repo().join("data/mnist-t10k/t10k-images-idx3-ubyte.gz");
    let out = tmp.join("pred.csv");
    let stdout = ok(dlp(&[
        "predict",
        run.join("bundle").to_str().unwrap(),
        "--input",
        images.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]));
    assert_eq!(stdout.trim(), format!("wrote 10000 predictions to {}", out.display()));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("row,label,confidence,p_0,p_1,"), "{header}");
    let predicted: Vec<String> = lines.map(|l| l.split(',').nth(1).unwrap().to_string()).collect();
    assert_eq!(predicted.len(), 10000);

    let labels = read_labels();
    let test: Vec<usize> = json(&run.join("split.json"))["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let correct = test.iter().filter(|&&i| predicted[i] == labels[i].to_string()).count();
    let accuracy = correct as f64 / test.len() as f64;
    let reported = json(&run.join("eval.json"))["accuracy"].as_f64().unwrap();
    assert!((accuracy - reported).abs() < 1e-12, "predict {accuracy} vs eval {reported}");

    // The first 50 images as a CSV with a header (and an extra label column that is ignored).
    let pixels = read_images();
    let mut csv = String::from("label");
    for i in 0..784 {
        csv += &format!(",pixel_{i}");
    }
    csv.push('\n');
    for r in 0..50 {
        csv += &labels[r].to_string();
        for p in &pixels[r * 784..(r + 1) * 784] {
            csv += &format!(",{p}");
        }
        csv.push('\n');
    }
    let csv_in = tmp.join("first50.csv");
    std::fs::write(&csv_in, csv).unwrap();
    let csv_out = tmp.join("first50-pred.csv");
    ok(dlp(&[
        "predict",
        run.join("bundle").to_str().unwrap(),
        "--input",
        csv_in.to_str().unwrap(),
        "--output",
        csv_out.to_str().unwrap(),
    ]));
    // Same labels; probabilities equal up to float summation order (the batches differ) and
    // the 6 printed decimals.
    let csv_text = std::fs::read_to_string(&csv_out).unwrap();
    let from_csv: Vec<&str> = csv_text.lines().skip(1).collect();
    let from_idx: Vec<&str> = text.lines().skip(1).take(50).collect();
    assert_eq!(from_csv.len(), 50);
    for (a, b) in from_csv.iter().zip(&from_idx) {
        let (fa, fb): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
        assert_eq!(fa[..2], fb[..2], "row and label");
        for (x, y) in fa[2..].iter().zip(&fb[2..]) {
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((x - y).abs() <= 2e-6, "{a} vs {b}");
        }
    }
}

fn gunzip(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap()).read_to_end(&mut out).unwrap();
    out
}

fn read_labels() -> Vec<u8> {
    gunzip(&repo().join("data/mnist-t10k/t10k-labels-idx1-ubyte.gz"))[8..].to_vec()
}

fn read_images() -> Vec<u8> {
    gunzip(&repo().join("data/mnist-t10k/t10k-images-idx3-ubyte.gz"))[16..].to_vec()
}

#[test]
fn shipped_configs_are_valid() {
    for entry in std::fs::read_dir(repo().join("configs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            // configs/iris-postgres.yaml takes its URL, and configs/sensors-http.yaml its token,
            // from the environment (checked, not used: `dlp check` does not touch the data).
            let out = common::dlp_command()
                .args(["check", p.to_str().unwrap()])
                .env("DLP_DATABASE_URL", "postgresql://dlp@127.0.0.1:5432/iris")
                .env("SENSORS_API_TOKEN", "t0ken")
                .output()
                .unwrap();
            assert_eq!(ok(out).trim(), format!("{}: ok", p.display()));
        }
    }
}
