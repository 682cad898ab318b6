//! Monitoring and retraining end to end, through the real command line (docs/monitoring.md):
//! `dlp serve` a model repository, send it drifted traffic and watch the drift score rise in
//! `/metrics`; `dlp retrain` on the new data promotes version 2, the server swaps it in, and the
//! same traffic no longer drifts; a retrain that makes a worse model is refused and the server
//! keeps serving what it served. Also `dlp drift` over files, and the prediction log.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{dlp, ok, repo};

fn sensors(name: &str) -> PathBuf {
    repo().join("data/sensors").join(name)
}

/// The records of a sensors CSV as `predict` instances (the status column left out).
fn instances(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(sensors(name)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            json!({"temperature": f[0].parse::<f64>().unwrap(), "pressure": f[1].parse::<f64>().unwrap(), "site": f[2]})
        })
        .collect()
}

fn get(url: &str) -> (u16, String) {
    match ureq::get(url).timeout(Duration::from_secs(20)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// Sends `records` to the predict endpoint, 50 at a time; returns the versions that answered.
fn send(base: &str, records: &[Value]) -> Vec<String> {
    records
        .chunks(50)
        .map(|chunk| {
            let resp = ureq::post(&format!("{base}/v1/models/sensors/predict"))
                .timeout(Duration::from_secs(20))
                .send_json(json!({ "instances": chunk }))
                .unwrap();
            let body: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
            assert_eq!(body["predictions"].as_array().unwrap().len(), chunk.len());
            body["model_version"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The value of the metric line that starts with `prefix` (e.g. `dlp_drift_score{model="x"}`).
fn metric(base: &str, prefix: &str) -> Option<f64> {
    let (_, text) = get(&format!("{base}/metrics"));
    text.lines().find_map(|l| l.strip_prefix(prefix)).map(|v| v.trim().parse().unwrap())
}

/// Polls until `f` gives `Some`, for at most 30 s.
fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) -> String {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    err
}

fn versions(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

#[test]
fn drift_rises_retraining_promotes_a_better_model_and_a_worse_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("sensors.yaml");
    let shipped = std::fs::read_to_string(repo().join("configs/sensors.yaml")).unwrap();
    std::fs::write(&config, shipped.replace("../data/sensors/", &format!("{}/", sensors("").display()))).unwrap();
    let stdout = ok(dlp(&["run", config.to_str().unwrap(), "--runs-dir", tmp.path().join("runs").to_str().unwrap()]));
    let run = PathBuf::from(stdout.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap());
    let bundle = run.join("bundle");
    assert!(bundle.join("reference.json").is_file() && bundle.join("config.yaml").is_file());

    // Offline: the same distribution passes, the drifted file is flagged (exit 3).
    let live = dlp(&["drift", bundle.to_str().unwrap(), "--data", sensors("live.csv").to_str().unwrap()]);
    assert_eq!(live.status.code(), Some(0), "{}", String::from_utf8_lossy(&live.stdout));
    assert!(String::from_utf8_lossy(&live.stdout).contains("drift: none of 4 features flagged (1000 records)"));
    let drifted =
        dlp(&["drift", bundle.to_str().unwrap(), "--data", sensors("drifted.csv").to_str().unwrap(), "--json"]);
    assert_eq!(drifted.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&drifted.stdout).unwrap();
    let flagged: Vec<&str> = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["flagged"] == true)
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, ["temperature", "prediction"]);
    assert_eq!(String::from_utf8_lossy(&drifted.stderr), "drift: flagged temperature, prediction\n");

    // Serve a repository with version 1.
    let models = tmp.path().join("models");
    let v1 = models.join("sensors/1");
    std::fs::create_dir_all(&v1).unwrap();
    for f in std::fs::read_dir(&bundle).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), v1.join(f.file_name())).unwrap();
    }
    let log = tmp.path().join("predictions.jsonl");
    let mut child = common::dlp_command()
        .args(["serve", models.to_str().unwrap(), "--addr", "127.0.0.1:0", "--poll-ms", "100"])
        .args(["--drift-window", "500", "--drift-interval-ms", "50", "--log-predictions", log.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap().to_string();
    let score = "dlp_drift_score{model=\"sensors\"}";
    assert_eq!(metric(&base, score), Some(0.0), "an empty window scores 0");

    // In-distribution traffic: not flagged.
    let live_records = instances("live.csv");
    assert!(send(&base, &live_records[..500]).iter().all(|v| v == "1"));
    let calm = wait("the live window", || {
        let (s, body) = get(&format!("{base}/v1/models/sensors/drift"));
        assert_eq!(s, 200, "{body}");
        let d: Value = serde_json::from_str(&body).unwrap();
        (d["rows"] == 500).then_some(d)
    });
    assert_eq!(calm["flagged"], false, "{calm:#}");

    // Drifted traffic: the score rises in /metrics and the drift endpoint flags temperature.
    let drifted_records = instances("drifted.csv");
    send(&base, &drifted_records[..500]);
    let high = wait("the drift score to rise", || metric(&base, score).filter(|&s| s > 0.5));
    let flagged = "dlp_drift_flagged{model=\"sensors\",feature=\"temperature\"}";
    wait("temperature to be flagged", || (metric(&base, flagged) == Some(1.0)).then_some(()));
    let d: Value = serde_json::from_str(&get(&format!("{base}/v1/models/sensors/drift")).1).unwrap();
    assert_eq!((d["model_version"].as_str(), d["rows"].as_u64(), &d["flagged"]), (Some("1"), Some(500), &json!(true)));

    // Retrain on the new data: better on its holdout, so version 2 is written and served.
    let out = ok(dlp(&[
        "retrain",
        v1.to_str().unwrap(),
        "--data",
        sensors("drifted.csv").to_str().unwrap(),
        "--repository",
        models.to_str().unwrap(),
        "--name",
        "sensors",
    ]));
    assert!(out.contains("gate on accuracy: passed"), "{out}");
    assert!(out.contains(&format!("promoted: wrote {}", models.join("sensors/2").display())), "{out}");
    let new_acc: f64 = out.lines().find_map(|l| l.strip_prefix("new model: accuracy ")).unwrap().parse().unwrap();
    let old_acc: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("current model ("))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(new_acc > old_acc + 0.1, "{out}");
    wait("version 2 to be served", || {
        (metric(&base, "dlp_model_version{model=\"sensors\"}") == Some(2.0)).then_some(())
    });

    // The same drifted traffic against version 2 (trained on it): the score falls.
    assert!(send(&base, &drifted_records[500..]).iter().all(|v| v == "2"));
    let low = wait("version 2's window", || {
        let d: Value = serde_json::from_str(&get(&format!("{base}/v1/models/sensors/drift")).1).unwrap();
        (d["model_version"] == "2" && d["rows"] == 500).then_some(d)
    });
    assert_eq!(low["flagged"], false, "{low:#}");
    // Version 2's monitor reset the gauges when it started (before the version gauge said 2), so
    // a full window in them is version 2's own report.
    let rows = "dlp_drift_window_rows{model=\"sensors\"}";
    wait("version 2's window in the gauges", || (metric(&base, rows) == Some(500.0)).then_some(()));
    let after = metric(&base, score).unwrap();
    assert!(after > 0.0 && after < 0.1, "drift score {after} after the retrain");
    assert!(after < high / 5.0, "drift score {high} before the retrain, {after} after");

    // A retrain that makes a worse model (one epoch at a tiny learning rate, from scratch) is
    // refused: exit 4, nothing written, version 2 still served.
    let weak = tmp.path().join("weak.yaml");
    let weak_text = std::fs::read_to_string(&config).unwrap().replace("lr: 0.01", "lr: 0.00001");
    std::fs::write(&weak, weak_text).unwrap();
    let refused = dlp(&[
        "retrain",
        models.join("sensors/2").to_str().unwrap(),
        "--data",
        sensors("drifted.csv").to_str().unwrap(),
        "--repository",
        models.to_str().unwrap(),
        "--name",
        "sensors",
        "--mode",
        "from-scratch",
        "--config",
        weak.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    assert_eq!(refused.status.code(), Some(4), "{}", String::from_utf8_lossy(&refused.stdout));
    let err = String::from_utf8_lossy(&refused.stderr);
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("retrain refused: accuracy ") && last.ends_with("; nothing was written"), "{err}");
    assert_eq!(versions(&models.join("sensors")), ["1", "2"], "no version 3, no staging directory left");
    std::thread::sleep(Duration::from_millis(300));
    assert!(send(&base, &live_records[..50]).iter().all(|v| v == "2"));

    let stderr = stop(child);
    // (Which threshold it crossed first depends on how much of the window was drifted when the
    // monitor looked: the window fills 50 records a request.)
    assert!(stderr.contains("dlp serve: warning: drift in sensors version 1: temperature ("), "{stderr}");
    assert!(stderr.contains("dlp serve: serving sensors version 2"), "{stderr}");

    // The prediction log has one line per record predicted, each with what was predicted.
    let logged: Vec<Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(logged.len(), 500 + 500 + 500 + 50);
    let first = &logged[0];
    assert_eq!(
        (first["model"].as_str(), first["version"].as_u64(), first["row"].as_u64()),
        (Some("sensors"), Some(1), Some(0))
    );
    assert_eq!(first["inputs"], live_records[0]);
    let p = first["probabilities"].as_object().unwrap();
    assert!((p["fault"].as_f64().unwrap() + p["ok"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    assert!(["fault", "ok"].contains(&first["prediction"].as_str().unwrap()));
    assert_eq!(logged.last().unwrap()["version"], 2);

    // Outside a repository: `--output` writes a plain bundle, compared with the bundle retrained,
    // and says how it came to be in retrain.json.
    let out_dir = tmp.path().join("retrained");
    let out = ok(dlp(&[
        "retrain",
        bundle.to_str().unwrap(),
        "--data",
        sensors("drifted.csv").to_str().unwrap(),
        "--output",
        out_dir.to_str().unwrap(),
        "--mode",
        "from-scratch",
    ]));
    assert!(out.contains(&format!("current model ({}): accuracy", bundle.display())), "{out}");
    let record: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("retrain.json")).unwrap()).unwrap();
    assert_eq!((record["mode"].as_str(), record["gate"]["passed"].as_bool()), (Some("from-scratch"), Some(true)));
    assert_eq!(record["inputs"][0]["path"], sensors("drifted.csv").display().to_string());
    assert_eq!(record["holdout_records"], 200);
    // It serves, and a check of the drifted data against it finds nothing.
    let again = dlp(&["drift", out_dir.to_str().unwrap(), "--data", sensors("drifted.csv").to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", String::from_utf8_lossy(&again.stdout));
}
