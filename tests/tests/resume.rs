//! Fault tolerance through the real command line: a run killed with SIGKILL in the middle of an
//! epoch resumes to bit-identical weights; a damaged checkpoint is detected and the previous
//! one still works; a diverging run stops with an error instead of NaN metrics.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::Stdio;

mod common;
use common::{dlp_command as dlp, metrics_without_timings, ok, repo, run_and_kill_at};

/// MNIST, a small MLP with dropout, a cosine schedule, and a checkpoint every 20 steps.
fn config(dir: &Path, lr: f64) -> PathBuf {
    config_with_data(dir, lr, &repo().join("data/mnist-t10k"))
}

/// [`config`] reading the MNIST files in `data`.
fn config_with_data(dir: &Path, lr: f64, data: &Path) -> PathBuf {
    let text = format!(
        "name: resume
seed: 11
data:
  format: idx
  images: {d}/t10k-images-idx3-ubyte.gz
  labels: {d}/t10k-labels-idx1-ubyte.gz
preprocess:
  scale: pixel
  split: {{train: 0.8, validation: 0.1, test: 0.1}}
model: {{arch: mlp, hidden: [32], dropout: 0.2}}
train:
  epochs: 6
  batch_size: 64
  optimizer: {{kind: adamw, lr: {lr}}}
  schedule: {{kind: cosine}}
  checkpoint: {{every_epochs: 1, every_steps: 20, keep: 50}}
",
        d = data.display()
    );
    let p = dir.join("resume.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The only run directory under `runs`.
fn the_run(runs: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// Starts a run and SIGKILLs it as soon as a checkpoint from the middle of epoch 3 exists.
fn run_and_kill(cfg: &Path, runs: &Path) -> PathBuf {
    run_and_kill_at(cfg, runs, "epoch-0003-batch-");
    let run = the_run(runs);
    assert!(!run.join("bundle").exists(), "the run was killed after it finished");
    run
}

#[test]
fn killed_run_resumes_to_identical_weights_and_damaged_checkpoints_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 0.003);

    // The reference: an uninterrupted run.
    let whole = tmp.path().join("whole");
    ok(dlp().args(["run", cfg.to_str().unwrap(), "--runs-dir", whole.to_str().unwrap()]).output().unwrap());
    let whole = the_run(&whole);
    let weights = std::fs::read(whole.join("bundle/model.safetensors")).unwrap();

    // Killed mid-epoch, resumed from the newest checkpoint.
    let killed = run_and_kill(&cfg, &tmp.path().join("killed"));
    let stdout = ok(dlp().args(["train", "--resume", killed.to_str().unwrap()]).output().unwrap());
    assert!(stdout.contains("test accuracy: "), "{stdout}");
    assert_eq!(std::fs::read(killed.join("bundle/model.safetensors")).unwrap(), weights, "weights differ");
    assert_eq!(metrics_without_timings(&killed), metrics_without_timings(&whole));
    assert_eq!(std::fs::read(killed.join("eval.json")).unwrap(), std::fs::read(whole.join("eval.json")).unwrap());
    let manifest = read_manifest(&killed);
    assert_eq!(manifest["resumed_at"].as_array().unwrap().len(), 1);

    // Killed again; this time the newest checkpoint is damaged on disk.
    let damaged = run_and_kill(&cfg, &tmp.path().join("damaged"));
    let all = sorted_checkpoints(&damaged);
    let (newest, previous) = (all[all.len() - 1].clone(), all[all.len() - 2].clone());
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() - 100;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();
    let out = dlp().args(["train", "--resume", damaged.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "error: checkpoint {} is corrupt: the training state or the tensor contents do not match their checksum; the previous checkpoint \
             {} is intact: resume from it with `dlp train --resume {} --checkpoint {}`\n",
            newest.display(),
            previous.display(),
            damaged.display(),
            previous.display()
        )
    );
    // The previous checkpoint is usable, and still leads to the same weights.
    ok(dlp()
        .args(["train", "--resume", damaged.to_str().unwrap(), "--checkpoint", previous.to_str().unwrap()])
        .output()
        .unwrap());
    assert_eq!(std::fs::read(damaged.join("bundle/model.safetensors")).unwrap(), weights);

    // A finished run is not resumed again.
    let out = dlp().args(["train", "--resume", damaged.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("this run is complete"));
}

fn sorted_checkpoints(run: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("epoch-"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_diverging_run_stops_with_an_error_not_nan_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), 1e6);
    let runs = tmp.path().join("runs");
    let out = dlp().args(["run", cfg.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(error.starts_with("error: training diverged at epoch "), "{stderr}");
    assert!(error.contains("lower the learning rate"), "{error}");
    let run = the_run(&runs);
    assert!(!run.join("eval.json").exists() && !run.join("bundle").exists());
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(!log.contains("NaN") && !log.contains("null,\"val_accuracy\":null"), "{log}");
    // The run directory says it failed, and why.
    let manifest = read_manifest(&run);
    assert!(manifest["finished_at"].is_null());
    let failed = manifest["failed"]["error"].as_str().unwrap();
    assert!(failed.starts_with("training diverged at epoch "), "{failed}");
    assert!(manifest["failed"]["at"].as_str().unwrap().ends_with('Z'));
}

fn read_manifest(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn a_killed_run_records_its_data_and_refuses_to_resume_on_changed_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(repo().join("data/mnist-t10k").join(f), data.join(f)).unwrap();
    }
    let cfg = config_with_data(tmp.path(), 0.003, &data);
    let killed = run_and_kill(&cfg, &tmp.path().join("runs"));
    // SIGKILLed mid-training, the manifest already names both files with their hashes.
    let manifest = read_manifest(&killed);
    let inputs = manifest["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2, "{manifest}");
    assert!(inputs.iter().all(|f| f["sha256"].as_str().unwrap().len() == 64), "{manifest}");

    // The same labels, compressed anew: other bytes, so other data as far as the run knows.
    let labels = data.join("t10k-labels-idx1-ubyte.gz");
    let before = std::fs::read(&labels).unwrap();
    let raw = std::process::Command::new("gzip").arg("-dc").arg(&labels).output().unwrap();
    assert!(raw.status.success());
    let mut gz = std::process::Command::new("gzip")
        .args(["-1", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut gz.stdin.take().unwrap(), &raw.stdout).unwrap();
    let recompressed = gz.wait_with_output().unwrap().stdout;
    assert_ne!(recompressed, before);
    std::fs::write(&labels, recompressed).unwrap();

    let out = dlp().args(["train", "--resume", killed.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("the data changed since the run started"), "{stderr}");
    assert!(stderr.contains("t10k-labels-idx1-ubyte.gz"), "{stderr}");
    let failed = read_manifest(&killed)["failed"]["error"].as_str().unwrap().to_string();
    assert!(failed.contains("the data changed since the run started"), "{failed}");
}
