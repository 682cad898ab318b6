//! Forecasting end to end, through the real command line: `dlp run` of the shipped sunspots
//! config (its baselines reproduce the statsmodels figures of data/sunspots/README.md on the
//! same test window, and the model beats seasonal naive), `dlp predict` and `dlp serve` giving
//! the forecast the run made for the same origin; a multi-step run with observed and
//! known-future covariates on the synthetic machine-room series, served with its future rows;
//! bad series refused with one line; and a resumed run ending with identical weights.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::{dlp, ok, repo};

fn run_dir(stdout: &str) -> PathBuf {
    PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap())
}

fn baseline_mase(eval: &Value, name: &str) -> f64 {
    let b = eval["baselines"].as_array().unwrap().iter().find(|b| b["name"] == name).unwrap();
    b["mase"].as_f64().unwrap()
}

/// Starts `dlp serve` on `bundle`; returns the child and the base URL.
fn serve(bundle: &Path) -> (std::process::Child, String) {
    let mut child = common::dlp_command()
        .args(["serve", bundle.to_str().unwrap(), "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line.trim().strip_prefix("listening on ").unwrap().to_string())
}

fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    match agent.post(&format!("{base}{path}")).send_json(body) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn sunspots_forecast_runs_predicts_and_serves() {
    let dir = std::env::temp_dir().join(format!("dlp-e2e-forecast-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let runs = dir.join("runs");
    let cfg = repo().join("configs/sunspots-gru.yaml");
    let stdout = ok(dlp(&["run", cfg.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]));
    let run = run_dir(&stdout);
    let eval: Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["task"], "forecast");
    assert_eq!(eval["examples"], 40, "the test window 1969-2008");
    // statsmodels 0.15 on the same window (data/sunspots/README.md): the baselines forecast
    // each year from every year before it, AR(9) fitted on 1700-1968.
    for (name, want) in [("naive", 1.0280), ("seasonal_naive", 1.1627), ("autoregression", 0.6420)] {
        let got = baseline_mase(&eval, name);
        assert!((got - want).abs() < 6e-5, "{name}: MASE {got}, statsmodels {want}");
    }
    let mase = eval["mase"].as_f64().unwrap();
    assert!(mase < baseline_mase(&eval, "seasonal_naive"), "model MASE {mase} does not beat seasonal naive");
    assert!(stdout.contains("test MASE: "), "{stdout}");
    for f in ["forecast.png", "forecast_by_step.png", "report.html"] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let preds = std::fs::read_to_string(run.join("predictions.csv")).unwrap();
    let lines: Vec<&str> = preds.lines().collect();
    assert_eq!(lines[0], "origin,time,step,predicted,actual");
    assert_eq!(lines.len(), 41);
    assert!(lines[1].starts_with("1968,1969,1,") && lines[1].ends_with(",105.5"), "{}", lines[1]);
    let first: f64 = lines[1].split(',').nth(3).unwrap().parse().unwrap();

    // A rolling-origin backtest: its last fold is the run's own split, with the same result.
    let cv = dlp(&["cv", cfg.to_str().unwrap(), "--folds", "3", "--runs-dir", runs.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&cv.stderr).to_string();
    assert_eq!(cv.status.code(), Some(0), "{err}");
    for (fold, start) in [(1, "1889"), (2, "1929"), (3, "1969")] {
        assert!(err.contains(&format!("fold {fold}/3 (test from {start}): test MASE: ")), "{err}");
    }
    let last = err.lines().find(|l| l.starts_with("fold 3/3")).unwrap();
    assert!(last.contains(&format!("test MASE: {mase:.4} ")), "{last} vs the run's {mase:.4}");

    // dlp predict from the years up to 1968 gives the run's forecast for 1969.
    let csv = std::fs::read_to_string(repo().join("data/sunspots/sunspots.csv")).unwrap();
    let history: Vec<&str> = csv.lines().take_while(|l| !l.starts_with("1969,")).collect();
    let input = dir.join("to-1968.csv");
    std::fs::write(&input, history.join("\n") + "\n").unwrap();
    let out = dir.join("forecast.csv");
    let bundle = run.join("bundle");
    let b = bundle.to_str().unwrap();
    ok(dlp(&["predict", b, "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]));
    let forecast = std::fs::read_to_string(&out).unwrap();
    let row: Vec<&str> = forecast.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(forecast.lines().next().unwrap(), "time,step,SUNACTIVITY");
    assert_eq!(&row[..2], ["1969", "1"]);
    let predicted: f64 = row[2].parse().unwrap();
    assert!((predicted - first).abs() < 1e-4, "dlp predict {predicted}, the run {first}");

    // Too short a history: one line, exit 1, no output written.
    let short = dir.join("short.csv");
    std::fs::write(&short, history[..6].join("\n") + "\n").unwrap();
    let bad_out = dir.join("bad.csv");
    let fail = dlp(&["predict", b, "--input", short.to_str().unwrap(), "--output", bad_out.to_str().unwrap()]);
    assert_eq!(fail.status.code(), Some(1));
    let err = String::from_utf8_lossy(&fail.stderr);
    assert!(err.contains("the series has 5 steps with a `SUNACTIVITY` value; the model needs the last 22"), "{err}");
    assert!(!bad_out.exists());

    // dlp serve: the same rows as records and as V2 tensors.
    let (mut child, base) = serve(&bundle);
    let rows: Vec<(i64, f64)> = history[1..]
        .iter()
        .map(|l| {
            let (y, v) = l.split_once(',').unwrap();
            (y.parse().unwrap(), v.parse().unwrap())
        })
        .collect();
    let instances: Vec<Value> = rows.iter().map(|(y, v)| json!({"YEAR": y, "SUNACTIVITY": v})).collect();
    let (status, answer) = post(&base, "/v1/models/sunspots-gru/predict", json!({"instances": instances}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forecast"][0]["time"], "1969");
    assert!((answer["forecast"][0]["value"].as_f64().unwrap() - first).abs() < 1e-4, "{answer}");
    let n = rows.len();
    let (status, v2) = post(
        &base,
        "/v2/models/sunspots-gru/infer",
        json!({"inputs": [
            {"name": "YEAR", "shape": [n], "datatype": "BYTES", "data": rows.iter().map(|r| r.0.to_string()).collect::<Vec<_>>()},
            {"name": "SUNACTIVITY", "shape": [n], "datatype": "FP32", "data": rows.iter().map(|r| r.1).collect::<Vec<_>>()},
        ]}),
    );
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["outputs"][0]["name"], "forecast");
    assert_eq!(v2["outputs"][0]["shape"], json!([1, 1]));
    assert!((v2["outputs"][0]["data"][0].as_f64().unwrap() - first).abs() < 1e-4, "{v2}");
    let (status, bad) = post(&base, "/v1/models/sunspots-gru/predict", json!({"instances": instances[..4].to_vec()}));
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("the model needs the last 22"), "{bad}");
    let mut shuffled = instances.clone();
    shuffled.swap(3, 4);
    let (status, bad) = post(&base, "/v1/models/sunspots-gru/predict", json!({"instances": shuffled}));
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("is not after row 4"), "{bad}");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shipped machine-room config, cut short: 24 steps ahead from 48 hours with an observed
/// and a known-future covariate.
fn sensor_config(dir: &Path, epochs: usize, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("configs/sensor-forecast.yaml"))
        .unwrap()
        .replace("../data/", &format!("{}/data/", repo().display()))
        .replace("  epochs: 100\n", &format!("  epochs: {epochs}\n{extra}"))
        .replace("hidden: 64}", "hidden: 16}")
        .replace("  hidden: [64]\n", "");
    let path = dir.join(format!("sensor-{epochs}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_multi_step_forecast_reads_the_known_future() {
    let dir = std::env::temp_dir().join(format!("dlp-e2e-forecast-multi-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let runs = dir.join("runs");
    let cfg = sensor_config(&dir, 3, "");
    let stdout = ok(dlp(&["run", cfg.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]));
    let run = run_dir(&stdout);
    let eval: Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["horizon"], 24);
    assert_eq!(eval["by_step"].as_array().unwrap().len(), 24);
    // 2,880 hours; the test window is the last 432, so 409 origins have 24 hours after them.
    assert_eq!(eval["examples"], 409);
    let preds = std::fs::read_to_string(run.join("predictions.csv")).unwrap();
    assert_eq!(preds.lines().count(), 1 + 409 * 24);
    let split: Value = serde_json::from_str(&std::fs::read_to_string(run.join("split.json")).unwrap()).unwrap();
    let last_train = split["train"].as_array().unwrap().last().unwrap().as_u64().unwrap();
    let first_val = split["validation"][0].as_u64().unwrap();
    // Training targets end (origin + 24 steps) before the gap of 24 steps and the validation window.
    assert!(last_train + 24 + 24 <= first_val, "{last_train} {first_val}");

    // The history and the planned load of the 24 hours ahead, with the temperature empty.
    let csv = std::fs::read_to_string(repo().join("data/sensor-series/machine_room.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let origin = 2600; // a test origin (row index of its first forecast hour)
    let mut body = vec![lines[0].to_string()];
    body.extend(lines[1 + origin - 48..1 + origin].iter().map(|l| l.to_string()));
    body.extend(lines[1 + origin..1 + origin + 24].iter().map(|l| {
        let mut cells: Vec<&str> = l.split(',').collect();
        cells[3] = "";
        cells.join(",")
    }));
    let input = dir.join("window.csv");
    std::fs::write(&input, body.join("\n") + "\n").unwrap();
    let out = dir.join("forecast.csv");
    let bundle = run.join("bundle");
    let b = bundle.to_str().unwrap();
    ok(dlp(&["predict", b, "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]));
    let forecast: Vec<String> = std::fs::read_to_string(&out).unwrap().lines().map(String::from).collect();
    assert_eq!(forecast.len(), 25);
    let next_hour = lines[1 + origin].split(',').next().unwrap();
    assert!(forecast[1].starts_with(&format!("{next_hour},1,")), "{}", forecast[1]);
    // The same values as the run's forecasts from that origin.
    let origin_time = lines[origin].split(',').next().unwrap();
    let from_run: Vec<f64> = preds
        .lines()
        .filter(|l| l.starts_with(&format!("{origin_time},")))
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(from_run.len(), 24);
    for (j, line) in forecast[1..].iter().enumerate() {
        let v: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((v - from_run[j]).abs() < 1e-4, "step {}: {v} vs {}", j + 1, from_run[j]);
    }
    // Without the future rows the model cannot forecast.
    let no_future = dir.join("no-future.csv");
    std::fs::write(&no_future, body[..49].join("\n") + "\n").unwrap();
    let fail = dlp(&["predict", b, "--input", no_future.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert_eq!(fail.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&fail.stderr).contains("give their 24 future rows after the history"));

    // Served: the same window as records.
    let (mut child, base) = serve(&bundle);
    let header: Vec<&str> = lines[0].split(',').collect();
    let instances: Vec<Value> = body[1..]
        .iter()
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let mut rec = serde_json::Map::new();
            rec.insert(header[0].into(), json!(cells[0]));
            for j in 1..4 {
                rec.insert(header[j].into(), cells[j].parse::<f64>().map_or(Value::Null, |v| json!(v)));
            }
            Value::Object(rec)
        })
        .collect();
    let (status, answer) = post(&base, "/v1/models/sensor-forecast/predict", json!({"instances": instances}));
    assert_eq!(status, 200, "{answer}");
    let steps = answer["predictions"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 24);
    assert_eq!(answer["forecast"][0]["time"], next_hour);
    assert!((steps[23].as_f64().unwrap() - from_run[23]).abs() < 1e-4, "{answer}");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_series_are_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("dlp-e2e-forecast-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let csv = std::fs::read_to_string(repo().join("data/sunspots/sunspots.csv")).unwrap();
    let mut lines: Vec<&str> = csv.lines().collect();
    lines.swap(11, 12);
    std::fs::write(dir.join("sunspots.csv"), lines.join("\n") + "\n").unwrap();
    let cfg =
        std::fs::read_to_string(repo().join("configs/sunspots-gru.yaml")).unwrap().replace("../data/sunspots/", "");
    std::fs::write(dir.join("c.yaml"), &cfg).unwrap();
    let runs = dir.join("runs");
    let fail = dlp(&["run", dir.join("c.yaml").to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]);
    assert_eq!(fail.status.code(), Some(1));
    let err = String::from_utf8_lossy(&fail.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("column `YEAR`: row 12 (1710) is not after row 11 (1711)"), "{err}");
    // A covariate that is not a column, and a key typo, are named.
    std::fs::write(dir.join("sunspots.csv"), &csv).unwrap();
    let missing = cfg.replace("    ar_lags: 9", "    ar_lags: 9\n    covariates: [SOLAR_FLUX]");
    std::fs::write(dir.join("m.yaml"), missing).unwrap();
    let fail = dlp(&["run", dir.join("m.yaml").to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]);
    assert_eq!(fail.status.code(), Some(1));
    let err = String::from_utf8_lossy(&fail.stderr);
    assert!(err.contains("no column `SOLAR_FLUX`"), "{err}");
    let typo = cfg.replace("    horizon: 1", "    horizn: 1");
    std::fs::write(dir.join("t.yaml"), typo).unwrap();
    let fail = dlp(&["check", dir.join("t.yaml").to_str().unwrap()]);
    assert_ne!(fail.status.code(), Some(0));
    let err = String::from_utf8_lossy(&fail.stderr);
    assert!(err.contains("horizn"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_forecasting_run_resumed_from_a_checkpoint_ends_with_identical_weights() {
    let dir = std::env::temp_dir().join(format!("dlp-e2e-forecast-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = sensor_config(&dir, 4, "  checkpoint: {every_epochs: 1, keep: 10}\n");
    let runs = dir.join("runs");
    let stdout = ok(dlp(&["run", cfg.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]));
    let run = run_dir(&stdout);
    let full = std::fs::read(run.join("bundle/model.safetensors")).unwrap();
    std::fs::remove_dir_all(run.join("bundle")).unwrap();
    let ckpt = run.join("checkpoints/epoch-0002.ckpt");
    ok(dlp(&["train", "--resume", run.to_str().unwrap(), "--checkpoint", ckpt.to_str().unwrap()]));
    assert!(std::fs::read(run.join("bundle/model.safetensors")).unwrap() == full, "resumed weights differ");
    let _ = std::fs::remove_dir_all(&dir);
}
