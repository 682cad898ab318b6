//! Prediction logging (`dlp serve --log-predictions <file>`): one JSON line per predicted
//! record, so that labelled outcomes arriving later can be joined to what the model said.
//!
//! ```json
//! {"id":"1763720000000-17","row":0,"request_id":"r1","timestamp":"2026-11-21T12:00:00.123Z",
//!  "model":"iris","version":2,"inputs":{"sepal_length":5.1,"species_hint":"x"},
//!  "prediction":"setosa","probabilities":{"setosa":0.97,"versicolor":0.02,"virginica":0.01}}
//! ```
//!
//! - `id`: unique per request in this server process (`<start time in ms>-<request number>`),
//!   `row` the record's position in the request, `request_id` the client's own V2 `id` if it
//!   sent one;
//! - `inputs`: table records as their column values (`null` for missing); images as
//!   `inputs_sha256`, the SHA-256 of their 8-bit pixel values, instead;
//! - `prediction` and `probabilities` (classification) or `prediction` as a number
//!   (regression).
//!
//! Lines are formatted on the request's task and written by a thread of their own through a
//! bounded queue: a request never waits for the disk. When the queue is full (the disk cannot
//! keep up) lines are dropped and counted rather than slowing requests. The file is rotated by
//! size: when the next line would take it past `max_bytes` it is renamed `<file>.1` (the older
//! `<file>.1` becomes `<file>.2`, and so on, `keep` of them), and a new file is started.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use pipeline_core::raw::{RawInputs, Values};
use pipeline_core::{Predictions, Task};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::Bundle;
use crate::observe::{Observation, Observer, ObserverFactory};

/// Where and how predictions are logged.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionLogOptions {
    /// The JSON-lines file (appended to).
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`<file>.1` … `<file>.<keep>`).
    pub keep: usize,
    /// Lines queued for the writer at most (beyond: dropped and counted).
    pub queue: usize,
}

impl PredictionLogOptions {
    /// Logging to `path` with 100 MiB files, 5 kept.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), max_bytes: 100 << 20, keep: 5, queue: 10_000 }
    }
}

/// The prediction log of a server: one file for every model and version.
pub struct PredictionLog {
    tx: Mutex<Option<SyncSender<String>>>,
    dropped: AtomicU64,
    requests: AtomicU64,
    start_ms: u128,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl PredictionLog {
    /// Opens (creating or appending to) the log file and starts its writer thread.
    pub fn open(options: PredictionLogOptions) -> std::io::Result<Arc<Self>> {
        if let Some(parent) = options.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&options.path)?;
        let size = file.metadata()?.len();
        let (tx, rx) = sync_channel::<String>(options.queue.max(1));
        let thread = std::thread::Builder::new()
            .name("dlp-prediction-log".into())
            .spawn(move || writer(rx, BufWriter::new(file), size, &options))?;
        let start_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        Ok(Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            dropped: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            start_ms,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The factory that gives every loaded version this log as an observer.
    pub fn factory(self: &Arc<Self>) -> ObserverFactory {
        let log = self.clone();
        Arc::new(move |_: &str, _: u64, _: &Bundle| Some(log.clone() as Arc<dyn Observer>))
    }

    /// Stops the writer after the queued lines are written (also done on drop).
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for PredictionLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn rotate(path: &Path, keep: usize) -> std::io::Result<()> {
    let numbered = |k: usize| PathBuf::from(format!("{}.{k}", path.display()));
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(numbered(keep));
    for k in (1..keep).rev() {
        if numbered(k).exists() {
            std::fs::rename(numbered(k), numbered(k + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

fn writer(rx: Receiver<String>, mut out: BufWriter<File>, mut size: u64, options: &PredictionLogOptions) {
    let complain = |e: std::io::Error| {
        let _ = writeln!(std::io::stderr(), "dlp serve: prediction log {}: {e}", options.path.display());
    };
    let write = |line: String, out: &mut BufWriter<File>, size: &mut u64| {
        let len = line.len() as u64 + 1;
        if *size > 0 && *size + len > options.max_bytes {
            let reopened = out
                .flush()
                .and_then(|()| rotate(&options.path, options.keep))
                .and_then(|()| OpenOptions::new().create(true).append(true).open(&options.path));
            match reopened {
                Ok(f) => {
                    *out = BufWriter::new(f);
                    *size = 0;
                }
                Err(e) => complain(e),
            }
        }
        match writeln!(out, "{line}") {
            Ok(()) => *size += len,
            Err(e) => complain(e),
        }
    };
    while let Ok(line) = rx.recv() {
        write(line, &mut out, &mut size);
        loop {
            match rx.try_recv() {
                Ok(line) => write(line, &mut out, &mut size),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        if let Err(e) = out.flush() {
            complain(e);
        }
    }
    let _ = out.flush();
}

fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// The JSON lines of one request.
fn lines(obs: &Observation<'_>, id: &str) -> Vec<String> {
    let rows = obs.inputs.rows();
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let labels = match obs.task {
        Task::Classification { labels } => Some(labels),
        _ => None,
    };
    let best = obs.predictions.argmax();
    (0..rows)
        .map(|i| {
            let mut line = json!({
                "id": id,
                "row": i,
                "timestamp": timestamp,
                "model": obs.model,
                "version": obs.version,
            });
            if let Some(r) = obs.request_id {
                line["request_id"] = Value::String(r.to_string());
            }
            match obs.inputs {
                RawInputs::Table(t) => {
                    let mut m = Map::new();
                    for c in &t.columns {
                        let v = match &c.values {
                            Values::Numbers(v) => number(v[i]),
                            Values::Strings(v) => v[i].as_deref().map_or(Value::Null, |s| Value::String(s.into())),
                        };
                        m.insert(c.name.clone(), v);
                    }
                    line["inputs"] = Value::Object(m);
                }
                RawInputs::Images(imgs) => {
                    let w = imgs.width_values();
                    let bytes: Vec<u8> =
                        imgs.pixels[i * w..(i + 1) * w].iter().map(|&p| p.clamp(0.0, 255.0) as u8).collect();
                    let hex: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
                    line["inputs_sha256"] = Value::String(hex);
                }
                RawInputs::Audio(a) => {
                    let bytes: Vec<u8> = a.clip(i).iter().flat_map(|x| x.to_le_bytes()).collect();
                    let hex: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
                    line["inputs_sha256"] = Value::String(hex);
                    line["duration_s"] = number(f64::from(a.durations[i]));
                }
            }
            match (obs.predictions, labels, &best) {
                (Predictions::Classes { probs, classes }, Some(labels), Some(best)) => {
                    let row = &probs[i * classes..(i + 1) * classes];
                    line["prediction"] = json!(labels.get(best[i] as usize));
                    line["probabilities"] = Value::Object(
                        labels.iter().zip(row).map(|(l, &p)| (l.clone(), number(f64::from(p)))).collect(),
                    );
                }
                (Predictions::Values(v), _, _) => line["prediction"] = number(f64::from(v[i])),
                (Predictions::Classes { probs, classes }, _, _) => {
                    line["probabilities"] = json!(probs[i * classes..(i + 1) * classes]);
                }
            }
            line.to_string()
        })
        .collect()
}

impl Observer for PredictionLog {
    fn observe(&self, obs: &Observation<'_>) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", self.start_ms);
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else { return };
        for line in lines(obs, &id) {
            match tx.try_send(line) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
