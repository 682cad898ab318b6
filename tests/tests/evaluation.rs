//! The evaluation phase through the real command line: the deployment gate passes a good model
//! and fails a crippled one (exit status and `eval.json`), `--compare` scores a previous run's
//! bundle on the same test records, `dlp cv` cross-validates, and the HTML report embeds every
//! image.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;
use common::{dlp, repo};

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn run_dir(out: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("run directory: "))
            .unwrap_or_else(|| panic!("no run directory in {stdout}\n{}", String::from_utf8_lossy(&out.stderr))),
    )
}

/// The digits MLP with a gate; a tiny `lr` cripples it (its weights stay at their random start).
fn digits(dir: &Path, name: &str, lr: f64, epochs: usize) -> PathBuf {
    let text = format!(
        "name: {name}
seed: 3
threads: 1
data:
  format: csv
  path: {}/data/sklearn/digits.csv.gz
  header: false
  target: 64
  task: classification
preprocess:
  scale: standard
  split: {{train: 0.7, validation: 0.1, test: 0.2}}
model:
  arch: mlp
  hidden: [64]
train:
  epochs: {epochs}
  batch_size: 32
  optimizer: {{kind: adam, lr: {lr}}}
eval:
  bootstrap_resamples: 200
  gate:
    metric: accuracy
    threshold: 0.9
    vs_baseline: 0.03
    vs_previous: 0.01
",
        repo().display()
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_gate_passes_a_good_model_and_fails_a_crippled_one() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let runs = runs.to_str().unwrap();

    let good_cfg = digits(tmp.path(), "good", 0.003, 15);
    let out = dlp(&["run", good_cfg.to_str().unwrap(), "--runs-dir", runs]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let good = run_dir(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("gate on accuracy: passed"), "{stdout}");
    let e = json(&good.join("eval.json"));
    assert_eq!(e["gate"]["passed"], true);
    // No previous run: that rule is reported as not checked, and does not fail the gate.
    let rules: Vec<&str> =
        e["gate"]["checks"].as_array().unwrap().iter().map(|c| c["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["threshold", "vs_baseline", "vs_previous"]);
    let names: Vec<&str> = e["baselines"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["majority", "logistic_regression"]);
    // The prior predictor scores the share of the most common test class; logistic regression
    // on standardized digits is far better (scikit-learn: 96.9 %).
    let majority = e["baselines"][0]["accuracy"].as_f64().unwrap();
    let logistic = e["baselines"][1]["accuracy"].as_f64().unwrap();
    assert!(majority < 0.12 && logistic > 0.93, "{majority} {logistic}");

    // A crippled model: exit status 1, a message naming the failed rules, and a complete run
    // directory saying why.
    let bad_cfg = digits(tmp.path(), "crippled", 1e-9, 1);
    let out = dlp(&["run", bad_cfg.to_str().unwrap(), "--runs-dir", runs, "--compare", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(stderr.starts_with("error: the evaluation gate failed: accuracy "), "{stderr}");
    assert!(stderr.contains("must be at least 0.9000") && stderr.contains("the best baseline's"), "{stderr}");
    assert!(stderr.contains("the previous model's"), "{stderr}");
    let bad = run_dir(&out);
    let e = json(&bad.join("eval.json"));
    assert_eq!(e["gate"]["passed"], false);
    assert!(bad.join("report.html").is_file() && bad.join("bundle/model.safetensors").is_file());

    // The comparison scored the previous bundle on these test records: the same split (same
    // seed and data), the good model's accuracy, and a bootstrap interval well below zero.
    let c = &e["comparison"];
    assert_eq!(c["same_split"], true);
    assert_eq!(c["metric"], "accuracy");
    let good_accuracy = json(&good.join("eval.json"))["accuracy"].as_f64().unwrap();
    assert!((c["previous"]["accuracy"].as_f64().unwrap() - good_accuracy).abs() < 1e-12);
    let d = &c["difference"];
    let observed = d["observed"].as_f64().unwrap();
    assert!((observed - (e["accuracy"].as_f64().unwrap() - good_accuracy)).abs() < 1e-12);
    assert!(d["low"].as_f64().unwrap() <= observed && observed <= d["high"].as_f64().unwrap());
    assert!(d["high"].as_f64().unwrap() < -0.5, "{d}");
    assert_eq!(d["resamples"], 200);
    let table = &c["mcnemar"]["table"];
    let cell = |i: usize, j: usize| table[i][j].as_u64().unwrap();
    assert_eq!(cell(0, 0) + cell(0, 1) + cell(1, 0) + cell(1, 1), e["examples"].as_u64().unwrap());
    assert!(c["mcnemar"]["result"]["p_value"].as_f64().unwrap() < 1e-6);

    // The good model against the crippled one passes, and says it is better.
    let out = dlp(&["run", good_cfg.to_str().unwrap(), "--runs-dir", runs, "--compare", bad.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e = json(&run_dir(&out).join("eval.json"));
    assert_eq!(e["gate"]["passed"], true);
    assert!(e["comparison"]["difference"]["low"].as_f64().unwrap() > 0.5);

    // Comparing with something that is not a finished run is refused before any work starts.
    let out = dlp(&["run", good_cfg.to_str().unwrap(), "--runs-dir", runs, "--compare", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--compare") && stderr.contains("not a finished run directory"), "{stderr}");
    assert_eq!(std::fs::read_dir(runs).unwrap().count(), 3, "no run directory is created");
}

#[test]
fn cross_validation_reports_mean_and_spread_per_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let cfg = repo().join("configs/iris.yaml");
    let out = dlp(&["cv", cfg.to_str().unwrap(), "--folds", "3", "--runs-dir", runs.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir =
        PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("report: ")).unwrap()).parent().unwrap().to_path_buf();
    let cv = json(&dir.join("cv.json"));
    assert_eq!(cv["folds"], 3);
    assert_eq!(cv["stratified"], true);
    let folds = cv["per_fold"].as_array().unwrap();
    // Every example is scored exactly once: 150 = 50 + 50 + 50, stratified 3 folds.
    let tested: u64 = folds.iter().map(|f| f["parts"][2].as_u64().unwrap()).sum();
    assert_eq!(tested, 150);
    let accuracy = cv["summary"].as_array().unwrap().iter().find(|m| m["metric"] == "accuracy").unwrap();
    let per_fold: Vec<f64> = folds.iter().map(|f| f["model"]["accuracy"].as_f64().unwrap()).collect();
    let mean = per_fold.iter().sum::<f64>() / 3.0;
    let std = (per_fold.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
    assert!((accuracy["model"]["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert!((accuracy["model"]["std"].as_f64().unwrap() - std).abs() < 1e-12);
    assert!(mean > 0.9, "{per_fold:?}");
    assert!(std::fs::read_to_string(dir.join("cv.md")).unwrap().contains("| accuracy | **"));

    let out = dlp(&["cv", cfg.to_str().unwrap(), "--folds", "1", "--runs-dir", runs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--folds must be at least 2"));
}

#[test]
fn the_html_report_embeds_every_image() {
    let tmp = tempfile::tempdir().unwrap();
    let data = repo().join("data/mnist-t10k");
    let cfg = tmp.path().join("mnist.yaml");
    std::fs::write(
        &cfg,
        format!(
            "name: report
seed: 1
threads: 1
data:
  format: idx
  images: {0}/t10k-images-idx3-ubyte.gz
  labels: {0}/t10k-labels-idx1-ubyte.gz
preprocess:
  scale: pixel
model:
  arch: mlp
  hidden: [32]
train:
  epochs: 1
  batch_size: 64
",
            data.display()
        ),
    )
    .unwrap();
    let out = dlp(&["run", cfg.to_str().unwrap(), "--runs-dir", tmp.path().join("runs").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = run_dir(&out);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    // Training curves, two confusion matrices, ROC, precision-recall, the wrong examples.
    assert_eq!(dlp::report::check_embedded(&run.join("report.html")).unwrap(), 6);
    assert!(!html.contains("src=\"training_curves.png\""));
    for section in
        ["Summary", "Data", "Model", "Training", "Test metrics", "Most confident errors", "Timings", "Config"]
    {
        assert!(html.contains(&format!("<h2>{section}</h2>")), "no {section} section");
    }
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    for image in ["training_curves.png", "confusion.png", "confusion_normalized.png", "roc.png", "pr.png", "errors.png"]
    {
        assert!(md.contains(&format!("]({image})")), "report.md does not link {image}");
        assert!(run.join(image).is_file(), "{image}");
    }
    // The error grid shows images the model got wrong, most confident first.
    let e = json(&run.join("eval.json"));
    let errors = e["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 24);
    let confidence: Vec<f64> = errors.iter().map(|x| x["confidence"].as_f64().unwrap()).collect();
    assert!(confidence.windows(2).all(|w| w[0] >= w[1]), "{confidence:?}");
    assert!(errors.iter().all(|x| x["actual"] != x["predicted"]));
}
