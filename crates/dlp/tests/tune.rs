//! `dlp tune` through the real binary: a bad search space fails before any trial with one line
//! naming the key; a study killed mid-trial (SIGKILL) resumes with `--resume` and ends with
//! exactly its trial budget, no trial lost or run twice (checked in the SQLite rows).

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = "name: iris
seed: 42
data:
  format: csv
  path: DATA
  header: false
  skip_rows: 1
  names: [sepal_length, sepal_width, petal_length, petal_width, species]
  target: species
  task: classification
preprocess:
  scale: standard
  split: {train: 0.7, validation: 0.1, test: 0.2}
model:
  arch: mlp
  hidden: [16]
train:
  epochs: EPOCHS
  batch_size: 8
  optimizer: {kind: adamw, lr: 0.01}
tune:
  objective: {metric: val_accuracy}
  budget: {trials: TRIALS}
  sampler: {kind: random}
  parallel: {trials: 2, threads_per_trial: 1}
  space:
    train.optimizer.lr: {loguniform: [1.0e-3, 1.0e-1]}
    model.dropout: {uniform: [0.0, 0.3]}
";

fn dlp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dlp"))
}

fn write_config(dir: &Path, epochs: usize, trials: usize, from: &str, to: &str) -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sklearn/iris.csv");
    let text = CONFIG
        .replace("DATA", &data.display().to_string())
        .replace("EPOCHS", &epochs.to_string())
        .replace("TRIALS", &trials.to_string());
    assert!(text.contains(from), "the edit must apply: {from}");
    let p = dir.join("tune.yaml");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    p
}

/// `dlp tune` on the config edited `from` → `to` must fail with exactly `message` (after the
/// file name) and exit code 2, before creating any study.
fn expect_error(from: &str, to: &str, message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 2, 2, from, to);
    let runs = dir.path().join("runs");
    let out = dlp().args(["tune", config.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr, format!("error: {}:{message}\n", config.display()));
    assert_eq!(out.status.code(), Some(2));
    assert!(!runs.exists(), "no study may start on a bad search space");
}

#[test]
fn empty_search_space() {
    expect_error(
        "  space:\n    train.optimizer.lr: {loguniform: [1.0e-3, 1.0e-1]}\n    model.dropout: {uniform: [0.0, 0.3]}\n",
        "  space: {}\n",
        "26:3: tune.space: the search space is empty: give at least one key path to search",
    );
}

#[test]
fn malformed_distribution() {
    expect_error(
        "model.dropout: {uniform: [0.0, 0.3]}",
        "model.dropout: {normal: [0.0, 0.3]}",
        "28:21: tune.space.model.dropout.normal: unknown field `normal`, expected one of `uniform`, `loguniform`, `float`, \
         `int`, `step`, `log`, `choice`, `fixed`",
    );
    expect_error(
        "model.dropout: {uniform: [0.0, 0.3]}",
        "model.dropout: {uniform: [0.0]}",
        "28:21: tune.space.model.dropout.uniform: invalid length 1, expected an array of length 2",
    );
    expect_error(
        "model.dropout: {uniform: [0.0, 0.3]}",
        "model.dropout: {uniform: [0.0, 0.3], choice: [0.1]}",
        "28:5: tune.space.model.dropout: give one kind of distribution, found uniform and choice",
    );
}

#[test]
fn unknown_key_path() {
    expect_error(
        "train.optimizer.lr: {",
        "train.optimizer.lrate: {",
        "27:5: tune.space.train.optimizer.lrate: unknown key path: train.optimizer.lrate: unknown field `lrate`, \
         expected one of `lr`, `beta1`, `beta2`, `eps`, `weight_decay`, `amsgrad`",
    );
    expect_error(
        "model.dropout: {",
        "model.dropuot: {",
        "28:5: tune.space.model.dropuot: unknown key path: model.dropuot: unknown field `dropuot`, expected one of \
         `hidden`, `activation`, `dropout`, `norm`, `init`",
    );
    expect_error(
        "model.dropout: {",
        "name.first: {",
        "28:5: tune.space.name.first: unknown key path: name is a value, not a section",
    );
}

#[test]
fn range_with_low_above_high() {
    expect_error(
        "{loguniform: [1.0e-3, 1.0e-1]}",
        "{loguniform: [1.0e-1, 1.0e-3]}",
        "27:5: tune.space.train.optimizer.lr: loguniform: low 0.1 is above high 0.001",
    );
}

#[test]
fn values_the_config_rejects() {
    expect_error(
        "model.dropout: {uniform: [0.0, 0.3]}",
        "train.epochs: {uniform: [1, 10]}",
        "28:5: tune.space.train.epochs: train.epochs = 1.0 does not fit the config: train.epochs: invalid type: \
         floating point `1.0`, expected usize",
    );
    expect_error(
        "model.dropout: {uniform: [0.0, 0.3]}",
        "model.dropout: {uniform: [0.0, 1.5]}",
        "28:5: tune.space.model.dropout: model.dropout = 1.5 is not allowed: must be in [0, 1), got 1.5",
    );
    expect_error(
        "objective: {metric: val_accuracy}",
        "objective: {metric: accuracy}",
        "22:15: tune.objective.metric: expected `val_accuracy` or `val_loss` (a validation metric the fit loop \
         reports after every epoch), got \"accuracy\"",
    );
}

/// A row of the `trials` table: number, state, parameters (JSON), retry_of.
type Row = (i64, String, String, Option<i64>);

/// The study's rows and the count of intermediate rows.
fn rows(db: &Path) -> (Vec<Row>, i64) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut st = c.prepare("SELECT number, state, params, retry_of FROM trials ORDER BY number").unwrap();
    let trials = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let steps = c.query_row("SELECT COUNT(*) FROM intermediate", [], |r| r.get(0)).unwrap();
    (trials, steps)
}

/// Whether some trial is running with at least one epoch reported, after one has completed.
fn mid_trial(db: &Path) -> bool {
    let Ok(c) = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return false;
    };
    let q = "SELECT (SELECT COUNT(*) FROM trials WHERE state = 'complete') > 0 AND EXISTS (SELECT 1 FROM trials t \
             JOIN intermediate i ON i.number = t.number WHERE t.state = 'running')";
    c.query_row(q, [], |r| r.get::<_, bool>(0)).unwrap_or(false)
}

/// Starts `args`, SIGKILLs it once a trial is mid-way; returns whether it died mid-trial (as
/// opposed to finishing first).
fn kill_mid_trial(args: &[&str], db_of: impl Fn() -> Option<PathBuf>) -> bool {
    let mut child = dlp().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    loop {
        if let Some(db) = db_of().filter(|db| mid_trial(db)) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return rows(&db).0.iter().any(|r| r.1 == "running");
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the study never got mid-trial");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn killed_study_resumes_with_every_trial_once() {
    let dir = tempfile::tempdir().unwrap();
    let trials = 6;
    let config = write_config(dir.path(), 150, trials, "", "");
    let runs = dir.path().join("runs");
    let study = || std::fs::read_dir(&runs).ok()?.flatten().map(|e| e.path()).next();
    let db_of = || study().map(|s| s.join("study.db")).filter(|p| p.is_file());
    let (config, runs_s) = (config.to_str().unwrap().to_string(), runs.to_str().unwrap().to_string());
    let mut killed = kill_mid_trial(&["tune", &config, "--runs-dir", &runs_s], db_of);
    // A kill that came just after a trial ended is retried on the resumed study.
    for _ in 0..5 {
        if killed {
            break;
        }
        let s = study().unwrap().to_str().unwrap().to_string();
        killed = kill_mid_trial(&["tune", "--resume", &s], db_of);
    }
    assert!(killed, "could not kill the study in mid-trial");
    let db = db_of().unwrap();
    let (before, steps_before) = rows(&db);
    let interrupted_before = before.iter().filter(|r| r.1 == "running").count();
    assert!(interrupted_before >= 1 && steps_before >= 1);

    let s = study().unwrap();
    let out = dlp().args(["tune", "--resume", s.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (after, _) = rows(&db);
    // Numbers are 0..n with no gap; nothing is left running.
    assert!(after.iter().enumerate().all(|(i, r)| r.0 == i as i64));
    assert!(after.iter().all(|r| r.1 != "running"));
    let ended: Vec<_> = after.iter().filter(|r| matches!(r.1.as_str(), "complete" | "pruned" | "failed")).collect();
    assert_eq!(ended.len(), trials, "{after:?}");
    assert!(ended.iter().all(|r| r.1 == "complete"), "{after:?}");
    // Each interrupted trial is re-run exactly once, with its parameters, and nothing else is.
    let interrupted: Vec<_> = after.iter().filter(|r| r.1 == "interrupted").collect();
    assert!(interrupted.len() >= interrupted_before);
    assert_eq!(after.len(), trials + interrupted.len());
    for i in &interrupted {
        let reruns: Vec<_> = after.iter().filter(|r| r.3 == Some(i.0)).collect();
        assert_eq!(reruns.len(), 1, "trial {} re-run {} times: {after:?}", i.0, reruns.len());
        assert_eq!(reruns[0].2, i.2);
    }
    // Trials that had finished before the kill are untouched.
    for b in before.iter().filter(|r| r.1 == "complete") {
        assert_eq!(after[b.0 as usize], *b);
    }
    // The outputs are there, and the best config is one `dlp run` accepts.
    let status = dlp().args(["tune", "status", s.to_str().unwrap()]).output().unwrap();
    let table = String::from_utf8(status.stdout).unwrap();
    assert!(table.contains(&format!("{trials} of {trials} trials ended: {trials} complete")), "{table}");
    assert_eq!(table.lines().filter(|l| l.contains("| interrupted |")).count(), interrupted.len());
    let check = dlp().args(["check", s.join("best.yaml").to_str().unwrap()]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    for f in ["trials.md", "trials.csv", "history.png", "best.json"] {
        assert!(s.join(f).is_file(), "{f}");
    }
}

#[test]
fn a_study_whose_every_trial_fails_exits_1_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 3, 2, "{loguniform: [1.0e-3, 1.0e-1]}", "{loguniform: [1.0e+6, 1.0e+7]}");
    let runs = dir.path().join("runs");
    let out = dlp().args(["tune", config.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("error: no trial completed (training diverged at epoch 1"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("2 trials: 0 complete, 0 pruned, 2 failed"), "{stdout}");
}

#[test]
fn grid_study_with_asha_tries_each_point_once() {
    let dir = tempfile::tempdir().unwrap();
    let space = "    train.optimizer.lr: {float: [0.01, 0.03], step: 0.01}\n    model.hidden: {choice: [[4], [8]]}\n";
    let config = write_config(
        dir.path(),
        9,
        10,
        "    train.optimizer.lr: {loguniform: [1.0e-3, 1.0e-1]}\n    model.dropout: {uniform: [0.0, 0.3]}\n",
        space,
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("{kind: random}", "{kind: grid}\n  pruner: {kind: asha, min_resource: 1, reduction_factor: 3}");
    std::fs::write(&config, text).unwrap();
    let runs = dir.path().join("runs");
    let out = dlp().args(["tune", config.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let study = std::fs::read_dir(&runs).unwrap().flatten().next().unwrap().path();
    let (trials, steps) = rows(&study.join("study.db"));
    // The grid has 3 × 2 points: the budget of 10 stops at 6, each point once.
    assert_eq!(trials.len(), 6);
    let mut params: Vec<&str> = trials.iter().map(|t| t.2.as_str()).collect();
    params.sort();
    params.dedup();
    assert_eq!(params.len(), 6);
    assert!(params.contains(&r#"{"model.hidden":[8],"train.optimizer.lr":0.03}"#), "{params:?}");
    // ASHA (rungs at epochs 1, 3, 9) stops some trials before the 9th epoch.
    assert!(trials.iter().any(|t| t.1 == "pruned") && trials.iter().any(|t| t.1 == "complete"), "{trials:?}");
    assert!(steps < 6 * 9);
}
