//! Dynamic batching: requests for one model that arrive within a short window run as one
//! forward pass.
//!
//! Each loaded model version has one [`Batcher`]: a worker thread that takes the first
//! waiting job, then keeps collecting jobs until the window has passed since that first job
//! or the batch holds `max_batch` rows, concatenates their preprocessed rows, runs the model
//! once, and hands each job its slice of the predictions. A job whose request has already
//! gone (timed out, client disconnected) is skipped. The queue is bounded: when it is full,
//! requests are refused at once (HTTP 503) instead of waiting without limit.
//!
//! The worker holds the bundle; it ends when the last handle to the batcher is dropped, after
//! finishing the jobs already queued — so a model version swapped out while requests are in
//! flight serves them to the end.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use pipeline_core::Predictions;
use tokio::sync::oneshot;

use crate::Bundle;

/// How requests are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// How long the first request of a batch waits for others.
    pub window: Duration,
    /// The most rows in one forward pass (a single larger request runs alone).
    pub max_batch: usize,
    /// Requests that may wait for the worker before new ones are refused.
    pub queue: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { window: Duration::from_millis(2), max_batch: 64, queue: 1024 }
    }
}

/// Why a batched prediction failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The queue is full.
    #[error("the server is overloaded: {0} requests are already waiting for this model")]
    Overloaded(usize),
    /// The worker has stopped.
    #[error("the model's worker has stopped")]
    Stopped,
    /// The model failed on the batch.
    #[error("{0}")]
    Model(String),
    /// The model's output for this row of the request is not finite; the other requests of
    /// the batch are answered.
    #[error("{}", non_finite_message(*.0))]
    NonFinite(usize),
}

/// The message of [`BatchError::NonFinite`]: the same words as [`crate::Error::NonFinite`].
fn non_finite_message(row: usize) -> String {
    crate::Error::NonFinite { record: row.to_string() }.to_string()
}

/// Called with the size (rows) of each batch run.
pub type BatchHook = Arc<dyn Fn(usize) + Send + Sync>;

struct Job {
    rows: Vec<f32>,
    n: usize,
    reply: oneshot::Sender<Result<Predictions, BatchError>>,
}

/// A handle to one model's batching worker.
pub struct Batcher {
    tx: SyncSender<Job>,
    config: BatchConfig,
}

impl Batcher {
    /// Starts the worker thread for `bundle`; `on_batch` sees the size of each batch.
    pub fn start(bundle: Arc<Bundle>, config: BatchConfig, on_batch: BatchHook) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(config.queue.max(1));
        std::thread::Builder::new()
            .name(format!("batcher-{}", bundle.index.name))
            .spawn(move || worker(&bundle, config, &rx, on_batch.as_ref()))?;
        Ok(Self { tx, config })
    }

    /// Predicts `n` preprocessed rows, batched with concurrent requests.
    pub async fn predict(&self, rows: Vec<f32>, n: usize) -> Result<Predictions, BatchError> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { rows, n, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(BatchError::Overloaded(self.config.queue)),
            Err(TrySendError::Disconnected(_)) => return Err(BatchError::Stopped),
        }
        rx.await.unwrap_or(Err(BatchError::Stopped))
    }
}

fn worker(bundle: &Bundle, config: BatchConfig, rx: &Receiver<Job>, on_batch: &(dyn Fn(usize) + Send + Sync)) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let deadline = Instant::now() + config.window;
        let mut rows = first.n;
        let mut jobs = vec![first];
        while rows < config.max_batch {
            let next = match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => rx.recv_timeout(left),
                _ => rx.try_recv().map_err(|_| RecvTimeoutError::Timeout),
            };
            match next {
                Ok(j) if rows + j.n > config.max_batch => {
                    carry = Some(j);
                    break;
                }
                Ok(j) => {
                    rows += j.n;
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        run(bundle, jobs, on_batch);
    }
}

fn run(bundle: &Bundle, jobs: Vec<Job>, on_batch: &(dyn Fn(usize) + Send + Sync)) {
    let total: usize = jobs.iter().map(|j| j.n).sum();
    on_batch(total);
    let result = if jobs.len() == 1 {
        bundle.predict_rows_unchecked(&jobs[0].rows)
    } else {
        let mut all = Vec::with_capacity(jobs.iter().map(|j| j.rows.len()).sum());
        jobs.iter().for_each(|j| all.extend_from_slice(&j.rows));
        bundle.predict_rows_unchecked(&all)
    };
    match result {
        Ok(preds) => {
            let mut start = 0;
            for j in jobs {
                let part = slice(&preds, start, j.n, total);
                start += j.n;
                let _ = j.reply.send(match part.first_non_finite() {
                    Some(row) => Err(BatchError::NonFinite(row)),
                    None => Ok(part),
                });
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for j in jobs {
                let _ = j.reply.send(Err(BatchError::Model(msg.clone())));
            }
        }
    }
}

/// Rows `start..start + n` of `preds` (predictions of `total` rows; a forecast has several
/// values per row).
fn slice(preds: &Predictions, start: usize, n: usize, total: usize) -> Predictions {
    match preds {
        Predictions::Classes { probs, classes } => {
            Predictions::Classes { probs: probs[start * classes..(start + n) * classes].to_vec(), classes: *classes }
        }
        Predictions::Values(v) => {
            let k = (v.len() / total.max(1)).max(1);
            Predictions::Values(v[start * k..(start + n) * k].to_vec())
        }
    }
}
