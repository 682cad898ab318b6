//! Out-of-core training through the real command line: a CSV file larger than
//! `data.memory_limit` is read in chunks, fitted in a stream and trained on from row files, and
//! gives the in-memory run's model and predictions exactly; a run killed mid-epoch resumes to
//! the same weights; what needs the data in memory is refused in one line.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod common;
use common::{dlp_command as dlp, metrics_without_timings, ok, run_and_kill_at};

const ROWS: usize = 20_000;

/// Three classes of points around different centres in six numbers, with a colour that
/// depends on the class and a yes/no flag (a deterministic generator, so the file is the same
/// on every machine).
fn write_csv(path: &Path) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mut text = String::from("x0,x1,x2,x3,x4,x5,colour,flag,class\n");
    for _ in 0..ROWS {
        let class = (next() * 3.0) as usize;
        for j in 0..6 {
            let centre = [
                [1.0, -1.0, 0.5],
                [0.0, 1.0, -0.5],
                [2.0, 0.0, 1.0],
                [0.0, 0.0, 0.0],
                [3.0, -3.0, 0.0],
                [-1.0, 0.5, 1.5],
            ][j][class];
            let noise = (next() + next() + next() - 1.5) * 2.0;
            write!(text, "{:.4},", centre + noise).unwrap();
        }
        let colours = [["red", "red", "blue"], ["blue", "green", "green"], ["green", "blue", "red"]][class];
        let colour = colours[(next() * 3.0) as usize];
        let flag = if next() < 0.3 + 0.2 * class as f64 { "yes" } else { "no" };
        writeln!(text, "{colour},{flag},{}", ["a", "b", "c"][class]).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn config(dir: &Path, name: &str, data: &Path, memory_limit: &str, extra: &str) -> PathBuf {
    let text = format!(
        "name: {name}
seed: 5
data:
  format: csv
  path: {data}
  target: class
  memory_limit: {memory_limit}
preprocess:
  scale: standard
  split: {{train: 0.7, validation: 0.1, test: 0.2}}
{extra}model: {{arch: mlp, hidden: [16], dropout: 0.1}}
train:
  epochs: 3
  batch_size: 64
  optimizer: {{kind: adamw, lr: 0.003}}
  checkpoint: {{every_epochs: 1, every_steps: 40, keep: 50}}
",
        data = data.display()
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn the_run(runs: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

fn run(cfg: &Path, runs: &Path) -> PathBuf {
    ok(dlp().args(["run", cfg.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]).output().unwrap());
    the_run(runs)
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn a_file_larger_than_the_memory_limit_trains_out_of_core_as_it_would_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("points.csv");
    write_csv(&data);
    let size = std::fs::metadata(&data).unwrap().len();
    assert!(size > 4 * 200 * 1024, "the file is over 4x the limit: {size} bytes");

    let in_memory = run(&config(tmp.path(), "mem", &data, "1GiB", ""), &tmp.path().join("mem"));
    let streamed = run(&config(tmp.path(), "ooc", &data, "200KiB", ""), &tmp.path().join("ooc"));

    // The run says it went out of core, and its rows are on disk.
    let manifest = read_json(&streamed.join("manifest.json"));
    assert_eq!(manifest["data_report"]["out_of_core"]["memory_limit"], "200KiB", "{manifest}");
    assert!(read_json(&in_memory.join("manifest.json"))["data_report"].get("out_of_core").is_none());
    let width = 6 + 3 + 1; // six numbers, three colours one-hot, the flag
    let split = read_json(&streamed.join("split.json"));
    let train = split["train"].as_array().unwrap().len();
    assert_eq!(std::fs::metadata(streamed.join("rows/train.f32")).unwrap().len(), (train * width * 4) as u64);
    assert_eq!(split, read_json(&in_memory.join("split.json")), "the same split");

    // The same preprocessing, weights, training curve and test predictions, bit for bit.
    for f in ["bundle/preprocess.json", "bundle/model.safetensors", "predictions.csv"] {
        assert!(std::fs::read(streamed.join(f)).unwrap() == std::fs::read(in_memory.join(f)).unwrap(), "{f} differs");
    }
    assert_eq!(metrics_without_timings(&streamed), metrics_without_timings(&in_memory));
    // The test report is the same; only the linear baseline (fitted on a sample) may differ.
    let eval = |run: &Path| {
        let mut e = read_json(&run.join("eval.json"));
        let o = e.as_object_mut().unwrap();
        o.remove("baselines");
        o.remove("notes");
        e
    };
    assert_eq!(eval(&streamed), eval(&in_memory));
    let evaluation = read_json(&streamed.join("eval.json"));
    let accuracy = evaluation["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "accuracy {accuracy}");
    let names: Vec<&str> =
        evaluation["baselines"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["majority", "logistic_regression"]);
    assert!(evaluation["notes"].to_string().contains("uniform sample of"), "{evaluation}");
    let majority = |run: &Path| read_json(&run.join("eval.json"))["baselines"][0].clone();
    assert_eq!(majority(&streamed), majority(&in_memory));

    // The bundle serves as any other: `dlp predict` on the file's first records.
    let head: String = std::fs::read_to_string(&data).unwrap().lines().take(6).map(|l| format!("{l}\n")).collect();
    let few = tmp.path().join("few.csv");
    std::fs::write(&few, head).unwrap();
    let predicted = tmp.path().join("predicted.csv");
    let (bundle, input, output) = (streamed.join("bundle"), few.to_str().unwrap(), predicted.to_str().unwrap());
    ok(dlp().args(["predict", bundle.to_str().unwrap(), "--input", input, "--output", output]).output().unwrap());
    let out = std::fs::read_to_string(&predicted).unwrap();
    assert_eq!(out.lines().count(), 6, "a header and five predictions: {out}");

    // Killed mid-epoch and resumed: the uninterrupted run's weights.
    let runs = tmp.path().join("killed");
    let cfg = config(tmp.path(), "ooc", &data, "200KiB", "");
    run_and_kill_at(&cfg, &runs, "epoch-0002-batch-");
    let killed = the_run(&runs);
    ok(dlp().args(["train", "--resume", killed.to_str().unwrap()]).output().unwrap());
    assert!(
        std::fs::read(killed.join("bundle/model.safetensors")).unwrap()
            == std::fs::read(streamed.join("bundle/model.safetensors")).unwrap(),
        "the resumed weights differ"
    );
}

#[test]
fn what_needs_the_data_in_memory_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("points.csv");
    write_csv(&data);
    let refused = |cfg: &Path, args: &[&str]| -> String {
        let out = dlp().args(args).arg(cfg).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        err
    };
    let runs = tmp.path().join("runs");
    let run_args = ["run", "--runs-dir", runs.to_str().unwrap()];
    let dedup = config(tmp.path(), "dedup", &data, "200KiB", "  dedup: true\n");
    let e = refused(&dedup, &run_args);
    assert!(e.contains("preprocess.dedup: duplicate removal keeps a key of every record"), "{e}");
    let outliers = config(tmp.path(), "outliers", &data, "200KiB", "  outliers: {method: zscore, action: clip}\n");
    let e = refused(&outliers, &run_args);
    assert!(e.contains("preprocess.outliers:"), "{e}");
    let plain = config(tmp.path(), "plain", &data, "200KiB", "");
    let e = refused(&plain, &["cv"]);
    assert!(e.contains("data.memory_limit: the data") && e.contains("`dlp run` trains on it out of core"), "{e}");
    // Nothing was left behind by the refused runs but their failed run directories.
    for entry in std::fs::read_dir(&runs).into_iter().flatten() {
        let dir = entry.unwrap().path();
        assert!(!dir.join("bundle").exists(), "{}", dir.display());
    }
}

#[test]
fn a_regression_target_is_scaled_out_of_core_as_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("points.csv");
    write_csv(&data);
    // `x5` as the target: a regression, with `scale_target` (the default) standardizing it.
    let regression = |name: &str, limit: &str| {
        let p = config(tmp.path(), name, &data, limit, "");
        let text = std::fs::read_to_string(&p).unwrap().replace("target: class", "target: x5");
        std::fs::write(&p, text).unwrap();
        p
    };
    let in_memory = run(&regression("rmem", "1GiB"), &tmp.path().join("rmem"));
    let streamed = run(&regression("rooc", "200KiB"), &tmp.path().join("rooc"));
    assert!(read_json(&streamed.join("manifest.json"))["data_report"].get("out_of_core").is_some());
    for f in ["bundle/preprocess.json", "bundle/model.safetensors", "predictions.csv"] {
        assert!(std::fs::read(streamed.join(f)).unwrap() == std::fs::read(in_memory.join(f)).unwrap(), "{f} differs");
    }
    let rmse = |run: &Path| read_json(&run.join("eval.json"))["rmse"].as_f64().unwrap();
    assert_eq!(rmse(&streamed), rmse(&in_memory));
}
