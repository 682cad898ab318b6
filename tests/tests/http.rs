//! `format: http` end to end: the shipped `configs/sensors-http.yaml` against a JSON API this
//! test serves on the loopback (the records of `data/sensors/train.csv`, 500 a page, a bearer
//! token required, a 503 and a 429 on the way that are retried) gives the model of
//! `configs/sensors.yaml`; its responses are kept in the run directory, so a resumed run ends
//! with the same weights after the API has gone; a wrong token, an unreachable server and a
//! malformed page are one line each.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

mod common;
use common::{dlp, ok, repo};

/// The records of train.csv as the API gives them.
fn records() -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("data/sensors/train.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            json!({"readings": {"temperature": f[0].parse::<f64>().unwrap(), "pressure": f[1].parse::<f64>().unwrap()},
                   "site": f[2], "status": f[3]})
        })
        .collect()
}

/// A JSON API on a free loopback port: `/api/machines?page=N&per_page=K` (token `t0ken`), the
/// first request for page 2 answered 503 and for page 3 answered 429, `/api/broken` not JSON.
/// `gone` makes every later request a 500.
struct Api {
    base: String,
    gone: Arc<AtomicBool>,
}

fn api() -> Api {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gone = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let rows = records();
    let flag = gone.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap_or_default();
            let target = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    auth = v.trim().to_string();
                }
            }
            let times = {
                let mut s = seen.lock().unwrap();
                let n = s.entry(target.clone()).or_default();
                *n += 1;
                *n
            };
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let q: HashMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
            let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let (status, extra, body) = if flag.load(Ordering::SeqCst) {
                (500, "", "{\"error\": \"gone\"}".to_string())
            } else if path == "/api/broken" {
                (200, "", "<html>maintenance</html>".to_string())
            } else if auth != "Bearer t0ken" {
                (401, "", "{\"error\": \"unauthorized\"}".to_string())
            } else if page == 2 && times == 1 {
                (503, "", "{}".to_string())
            } else if page == 3 && times == 1 {
                (429, "Retry-After: 0\r\n", "{}".to_string())
            } else {
                let size: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(500);
                let items: Vec<&Value> = rows.iter().skip((page - 1) * size).take(size).collect();
                (200, "", json!({"data": {"items": items}, "meta": {"page": page}}).to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Api { base, gone }
}

fn config(dir: &Path, name: &str, base: &str, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("configs/sensors-http.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:8765", base)
        .replace("  optimizer: {kind: adam, lr: 0.01}\n", &format!("  optimizer: {{kind: adam, lr: 0.01}}\n{extra}"));
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(cfg: &Path, runs: &Path, token: &str) -> std::process::Output {
    common::dlp_command()
        .args(["run", cfg.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()])
        .env("SENSORS_API_TOKEN", token)
        .output()
        .unwrap()
}

fn one_line(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn an_api_is_read_page_by_page_and_kept_for_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let api = api();
    let csv =
        ok(dlp(&["run", repo().join("configs/sensors.yaml").to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()]));
    let cfg = config(dir.path(), "http.yaml", &api.base, "  checkpoint: {every_epochs: 1, keep: 50}\n");
    let stdout = ok(run(&cfg, &runs, "t0ken"));
    let accuracy = |s: &str| s.lines().find(|l| l.starts_with("test accuracy: ")).unwrap().to_string();
    assert_eq!(accuracy(&stdout), accuracy(&csv), "the same rows as train.csv, the same model");
    let dir_of = |s: &str| PathBuf::from(s.lines().find_map(|l| l.strip_prefix("run directory: ")).unwrap());
    let run_dir = dir_of(&stdout);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap()).unwrap();
    let inputs = manifest["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 4, "2,000 records in pages of 500: {inputs:?}");
    assert_eq!(inputs[1]["path"], format!("{}/api/machines?page=2&per_page=500", api.base));
    assert!(run_dir.join("data-cache/page-00004.json").is_file());

    // The API goes away; the run resumes from its kept responses to the same weights.
    api.gone.store(true, Ordering::SeqCst);
    let full = std::fs::read(run_dir.join("bundle/model.safetensors")).unwrap();
    std::fs::remove_dir_all(run_dir.join("bundle")).unwrap();
    let ckpt = run_dir.join("checkpoints/epoch-0002.ckpt");
    let resumed = common::dlp_command()
        .args(["train", "--resume", run_dir.to_str().unwrap(), "--checkpoint", ckpt.to_str().unwrap()])
        .env("SENSORS_API_TOKEN", "t0ken")
        .output()
        .unwrap();
    ok(resumed);
    assert!(std::fs::read(run_dir.join("bundle/model.safetensors")).unwrap() == full, "resumed weights differ");
    // A new run now fails: the server answers 500, retried, then one line.
    let fast = config(dir.path(), "fast.yaml", &api.base, "")
        .replace_in(|t| t.replace("  target: status\n", "  target: status\n  retries: 1\n"));
    let err = one_line(&run(&fast, &runs, "t0ken"));
    assert!(err.contains("HTTP 500") && err.contains("after 1 retries"), "{err}");
}

#[test]
fn bad_credentials_servers_and_pages_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let api = api();
    let cfg = config(dir.path(), "http.yaml", &api.base, "");
    let err = one_line(&run(&cfg, &runs, "wrong"));
    assert!(err.contains("HTTP 401") && err.contains("the server refused the token in SENSORS_API_TOKEN"), "{err}");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = config(dir.path(), "nowhere.yaml", &format!("http://127.0.0.1:{closed}"), "")
        .replace_in(|t| t.replace("  target: status\n", "  target: status\n  retries: 1\n"));
    let err = one_line(&run(&nowhere, &runs, "t0ken"));
    assert!(err.contains("cannot reach the server after 1 retries"), "{err}");
    let broken =
        config(dir.path(), "broken.yaml", &api.base, "").replace_in(|t| t.replace("/api/machines", "/api/broken"));
    let err = one_line(&run(&broken, &runs, "t0ken"));
    assert!(err.contains("page 1: the response is not JSON"), "{err}");
    // A token in the config is refused before any request.
    let header = config(dir.path(), "header.yaml", &api.base, "").replace_in(|t| {
        t.replace("  target: status\n", "  target: status\n  headers: {Authorization: Bearer t0ken}\n")
    });
    let out = common::dlp_command()
        .args(["check", header.to_str().unwrap()])
        .env("SENSORS_API_TOKEN", "t0ken")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data.headers: no credentials in the config"));
}

/// Rewrites a config file in place.
trait ReplaceIn {
    fn replace_in(self, f: impl Fn(String) -> String) -> Self;
}

impl ReplaceIn for PathBuf {
    fn replace_in(self, f: impl Fn(String) -> String) -> Self {
        let text = std::fs::read_to_string(&self).unwrap();
        std::fs::write(&self, f(text)).unwrap();
        self
    }
}
