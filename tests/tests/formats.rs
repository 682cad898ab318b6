//! JSON Lines and several files per pattern, end to end through the real command line: the
//! shipped `configs/sensors-jsonl.yaml` (nested JSON records) and a CSV split into shards read
//! by a pattern both give the model of `configs/sensors.yaml` on the same rows; bad lines and
//! patterns that match nothing are one line.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::PathBuf;

use serde_json::Value;

mod common;
use common::{dlp, ok, repo};

fn run(config: &std::path::Path, runs: &std::path::Path) -> (Value, Value) {
    let stdout = ok(dlp(&["run", config.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]));
    let run = PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap());
    let eval: Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    (eval, manifest)
}

#[test]
fn json_lines_and_sharded_csv_read_the_same_rows_as_one_csv() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let (csv, _) = run(&repo().join("configs/sensors.yaml"), &runs);
    let (jsonl, manifest) = run(&repo().join("configs/sensors-jsonl.yaml"), &runs);
    assert_eq!(jsonl["accuracy"], csv["accuracy"]);
    assert_eq!(jsonl["macro_avg"], csv["macro_avg"]);
    assert!(manifest["inputs"][0]["path"].as_str().unwrap().ends_with("train.jsonl"));

    // train.csv in three shards, read by one pattern.
    let text = std::fs::read_to_string(repo().join("data/sensors/train.csv")).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    let shards = dir.path().join("shards");
    std::fs::create_dir_all(&shards).unwrap();
    for (i, chunk) in rows.chunks(700).enumerate() {
        std::fs::write(shards.join(format!("part-{i}.csv")), format!("{header}\n{}\n", chunk.join("\n"))).unwrap();
    }
    let config = std::fs::read_to_string(repo().join("configs/sensors.yaml"))
        .unwrap()
        .replace("../data/sensors/train.csv", "shards/part-*.csv");
    let cfg = dir.path().join("sharded.yaml");
    std::fs::write(&cfg, &config).unwrap();
    let (sharded, manifest) = run(&cfg, &runs);
    assert_eq!(sharded["accuracy"], csv["accuracy"]);
    let inputs = manifest["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 3, "each shard hashed on its own");
    assert!(inputs[2]["path"].as_str().unwrap().ends_with("part-2.csv"));

    // A pattern that matches nothing, and a bad JSON line.
    let none = dir.path().join("none.yaml");
    std::fs::write(&none, config.replace("part-*.csv", "nothing-*.csv")).unwrap();
    let out = dlp(&["check", none.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data.path: no file matches"), "{out:?}");
    let mut lines: Vec<String> =
        std::fs::read_to_string(repo().join("data/sensors/train.jsonl")).unwrap().lines().map(String::from).collect();
    lines[41] = "{\"id\": 42, \"readings\": {\"temperature\": 20.1,".into();
    std::fs::write(dir.path().join("bad.jsonl"), lines.join("\n") + "\n").unwrap();
    let jsonl_cfg = std::fs::read_to_string(repo().join("configs/sensors-jsonl.yaml"))
        .unwrap()
        .replace("../data/sensors/train.jsonl", "bad.jsonl");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, &jsonl_cfg).unwrap();
    let out = dlp(&["run", bad.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.jsonl:42: not valid JSON (column 44): EOF while parsing a value"), "{err}");
    // Skipped instead, and reported.
    let skip = dir.path().join("skip.yaml");
    std::fs::write(&skip, jsonl_cfg.replace("  target: status\n", "  target: status\n  on_bad_record: skip\n"))
        .unwrap();
    let (_, manifest) = run(&skip, &runs);
    assert_eq!(manifest["data_report"]["read"]["skipped"], 1, "{manifest}");
}

#[test]
fn parquet_reads_the_same_rows_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let (csv, _) = run(&repo().join("configs/iris.yaml"), &runs);
    let (parquet, manifest) = run(&repo().join("configs/iris-parquet.yaml"), &runs);
    assert_eq!(parquet["accuracy"], csv["accuracy"]);
    assert_eq!(parquet["macro_avg"], csv["macro_avg"]);
    assert!(manifest["inputs"][0]["path"].as_str().unwrap().ends_with("iris.parquet"));
    assert_eq!(
        manifest["inputs"][0]["bytes"],
        std::fs::metadata(repo().join("data/sklearn/iris.parquet")).unwrap().len()
    );
    // A damaged file, and a column the file lacks: one line, exit 1.
    let bytes = std::fs::read(repo().join("data/sklearn/iris.parquet")).unwrap();
    std::fs::write(dir.path().join("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let text = std::fs::read_to_string(repo().join("configs/iris-parquet.yaml")).unwrap();
    for (name, config, want) in [
        (
            "cut.yaml",
            text.replace("../data/sklearn/iris.parquet", "cut.parquet"),
            "cut.parquet: not a readable Parquet file",
        ),
        (
            "col.yaml",
            text.replace(
                "../data/sklearn/iris.parquet",
                &repo().join("data/sklearn/iris.parquet").display().to_string(),
            )
            .replace("target: species", "target: kind"),
            "data.target: no column Name(\"kind\") (the file has `sepal_length`",
        ),
    ] {
        let cfg = dir.path().join(name);
        std::fs::write(&cfg, config).unwrap();
        let out = dlp(&["run", cfg.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn dlp_predict_reads_json_lines_and_parquet_as_it_reads_csv() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let predict = |bundle: &std::path::Path, input: &std::path::Path, name: &str| -> String {
        let out = dir.path().join(name);
        ok(dlp(&[
            "predict",
            bundle.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]));
        std::fs::read_to_string(out).unwrap()
    };
    let bundle_of = |cfg: &str| -> PathBuf {
        let stdout = ok(dlp(&["run", repo().join(cfg).to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]));
        PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap()).join("bundle")
    };
    // Parquet: the iris file itself, and the same rows as a CSV with the model's column names.
    let iris = bundle_of("configs/iris-parquet.yaml");
    let text = std::fs::read_to_string(repo().join("data/sklearn/iris.csv")).unwrap();
    let mut csv = String::from("sepal_length,sepal_width,petal_length,petal_width\n");
    for l in text.lines().skip(1) {
        csv.push_str(&l.rsplit_once(',').unwrap().0.replace(' ', ""));
        csv.push('\n');
    }
    std::fs::write(dir.path().join("iris.csv"), csv).unwrap();
    let from_parquet = predict(&iris, &repo().join("data/sklearn/iris.parquet"), "pq.csv");
    assert_eq!(from_parquet, predict(&iris, &dir.path().join("iris.csv"), "csv.csv"));
    assert_eq!(from_parquet.lines().count(), 151);
    // JSON Lines: the sensor records, and the same rows as a CSV with dotted column names.
    let sensors = bundle_of("configs/sensors-jsonl.yaml");
    let text = std::fs::read_to_string(repo().join("data/sensors/train.csv")).unwrap();
    let csv =
        text.replacen("temperature,pressure,site,status", "readings.temperature,readings.pressure,site,status", 1);
    std::fs::write(dir.path().join("sensors.csv"), csv).unwrap();
    let from_jsonl = predict(&sensors, &repo().join("data/sensors/train.jsonl"), "j.csv");
    assert_eq!(from_jsonl, predict(&sensors, &dir.path().join("sensors.csv"), "c.csv"));
    assert_eq!(from_jsonl.lines().count(), 2001);
}
