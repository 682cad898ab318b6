//! `dlp evaluate <bundle> --data <file>` end to end: scored on the run's own test records, a
//! saved model gives exactly the run's test metrics; on the drifted sensor data it reports the
//! drop; data the bundle cannot read is one line.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::PathBuf;

use serde_json::Value;

mod common;
use common::{dlp, ok, repo};

fn json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_saved_model_scores_new_data_as_its_run_scored_the_test_part() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let stdout =
        ok(dlp(&["run", repo().join("configs/sensors.yaml").to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]));
    let run = PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap());
    let bundle = run.join("bundle");
    // The run's test records, as a file of their own.
    let split = json(run.join("split.json"));
    let text = std::fs::read_to_string(repo().join("data/sensors/train.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut test = vec![lines[0].to_string()];
    test.extend(split["test"].as_array().unwrap().iter().map(|i| lines[1 + i.as_u64().unwrap() as usize].to_string()));
    let file = dir.path().join("test.csv");
    std::fs::write(&file, test.join("\n") + "\n").unwrap();
    let out = ok(dlp(&[
        "evaluate",
        bundle.to_str().unwrap(),
        "--data",
        file.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ]));
    let eval_dir = PathBuf::from(out.lines().find_map(|l| l.strip_prefix("evaluation directory: ")).unwrap());
    let (ran, scored) = (json(run.join("eval.json")), json(eval_dir.join("eval.json")));
    for key in ["accuracy", "balanced_accuracy", "mcc", "macro_avg", "confusion"] {
        assert_eq!(scored[key], ran[key], "{key}");
    }
    assert_eq!(scored["probability_scores"]["roc_auc"], ran["probability_scores"]["roc_auc"]);
    for f in ["report.html", "report.md", "predictions.csv", "confusion.png", "roc.png"] {
        assert!(eval_dir.join(f).is_file(), "{f}");
    }
    assert!(scored["notes"][0].as_str().unwrap().starts_with("No baselines"), "{scored}");

    // After the recalibration the same model is much worse, and says so.
    let out = ok(dlp(&[
        "evaluate",
        bundle.to_str().unwrap(),
        "--data",
        repo().join("data/sensors/drifted.csv").to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ]));
    let accuracy: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(accuracy < ran["accuracy"].as_f64().unwrap() - 0.1, "drifted accuracy {accuracy}");

    // A class the model does not know, and a missing column: one line, exit 1.
    let unknown = dir.path().join("unknown.csv");
    std::fs::write(&unknown, format!("{}\n21.0,99.0,north,broken\n", lines[0])).unwrap();
    let missing = dir.path().join("missing.csv");
    std::fs::write(&missing, "temperature,site,status\n21.0,north,ok\n").unwrap();
    for (file, want) in [(&unknown, "unknown class \"broken\""), (&missing, "pressure")] {
        let out = dlp(&[
            "evaluate",
            bundle.to_str().unwrap(),
            "--data",
            file.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}
