//! Checkpoints: everything needed to continue a run exactly where it stopped.
//!
//! One checkpoint is one safetensors file: the tensors are the parameters (`param/<name>`), the
//! optimizer state (`optim/<name>/<slot>`) and, with early stopping's `restore_best`, the best
//! weights so far (`best/<name>`); the metadata holds the [`TrainState`] as JSON (epoch and batch
//! position, optimizer step count, random-generator states, schedule state, partial epoch
//! sums, metric history) and a sha256 over that state and the tensor contents. A file that is
//! truncated, altered (a tensor or a field of the state, such as the optimizer step count)
//! or written by another configuration is refused on reading with the reason. Files are written
//! atomically, so a crash while writing leaves the previous checkpoint intact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use pipeline_core::Rng;
use safetensors::View;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::history::EpochMetrics;
use crate::schedule::ScheduleState;

/// The checkpoint format written by this version.
/// (`2`: the checksum covers the training state too; `1` covered only the tensors.)
pub const FORMAT: &str = "2";

/// What went wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// It could not be read or written.
    #[error("checkpoint {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        cause: String,
    },
    /// Its contents are damaged or not a checkpoint.
    #[error("checkpoint {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Sums over the batches of the epoch in progress, so its metrics come out the same after a resume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Σ batch loss × batch size.
    pub loss_sum: f64,
    /// Correct training predictions (classification).
    pub correct: usize,
    /// Examples seen.
    pub samples: usize,
    /// Training seconds spent.
    pub seconds: f64,
    /// Batches trained on.
    #[serde(default)]
    pub batches: usize,
    /// Sums of a step's own per-batch figures ([`BatchResult::sums`](crate::BatchResult)).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, f64>,
}

/// The best epoch so far by the monitored metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// The metric's best value.
    pub value: Option<f64>,
    /// The epoch that reached it (1-based; 0 before any).
    pub epoch: usize,
    /// Epochs since it was reached.
    pub bad_epochs: usize,
}

/// The training loop's state at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Batches of the next epoch already trained on (0 at an epoch boundary).
    pub batches_done: usize,
    /// Optimizer steps taken.
    pub optimizer_steps: u64,
    /// The shuffling stream as it was at the start of the epoch in progress.
    pub shuffle_rng: Rng,
    /// The dropout stream, as it is now.
    pub dropout_rng: Rng,
    /// Sums over the batches of the epoch in progress.
    pub partial: Partial,
    /// The learning-rate schedule's state.
    pub schedule: ScheduleState,
    /// Metrics of the completed epochs.
    pub history: Vec<EpochMetrics>,
    /// The best epoch so far.
    pub best: Best,
    /// Identifies the configuration and model that wrote it.
    pub fingerprint: String,
    /// What the [`Step`](crate::Step) keeps besides tensors (a GAN's noise stream); absent
    /// for the classifier's step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<serde_json::Value>,
}

/// A checkpoint read back.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The file it came from.
    pub path: PathBuf,
    /// The loop's state.
    pub state: TrainState,
    /// The tensors by name.
    pub tensors: HashMap<String, Tensor>,
}

/// The file name of a checkpoint at this position: `epoch-0003.ckpt` after epoch 3,
/// `epoch-0004-batch-00020.ckpt` 20 batches into epoch 4. Names sort in training order.
pub fn file_name(epochs_done: usize, batches_done: usize) -> String {
    if batches_done == 0 {
        format!("epoch-{epochs_done:04}.ckpt")
    } else {
        format!("epoch-{:04}-batch-{batches_done:05}.ckpt", epochs_done + 1)
    }
}

/// The name of the best epoch's checkpoint.
pub const BEST: &str = "best.ckpt";

/// The periodic checkpoints in `dir`, oldest first (`best.ckpt` excluded).
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("epoch-") && n.ends_with(".ckpt"))
        })
        .collect();
    v.sort();
    v
}

/// sha256 over the training state's JSON (as stored) and the tensors in name order: name,
/// dtype, shape and little-endian data.
fn content_hash<'a>(state_json: &str, tensors: impl Iterator<Item = (&'a str, &'a Tensor)>) -> String {
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    h.update((state_json.len() as u64).to_le_bytes());
    h.update(state_json.as_bytes());
    for (name, t) in sorted {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(format!("{:?}", t.dtype()).as_bytes());
        for d in t.dims() {
            h.update((*d as u64).to_le_bytes());
        }
        h.update(View::data(t));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a checkpoint to `path`, atomically.
pub fn write(path: &Path, state: &TrainState, tensors: &[(String, Tensor)]) -> Result<(), CheckpointError> {
    let err = |cause: String| CheckpointError::Io { path: path.into(), cause };
    let state_json = serde_json::to_string(state).map_err(|e| err(e.to_string()))?;
    let hash = content_hash(&state_json, tensors.iter().map(|(n, t)| (n.as_str(), t)));
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("state".to_string(), state_json),
        ("sha256".to_string(), hash),
    ]);
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
        .map_err(|e| err(e.to_string()))?;
    pipeline_core::run::write_atomic(path, &bytes).map_err(|e| err(e.to_string()))
}

/// Reads and verifies the checkpoint at `path`, putting its tensors on `device`.
pub fn read(path: &Path, device: &Device) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|e| CheckpointError::Io { path: path.into(), cause: e.to_string() })?;
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.into(), reason };
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| corrupt(format!("not a complete safetensors file ({e})")))?;
    let meta = header.metadata().clone().ok_or_else(|| corrupt("no checkpoint metadata".into()))?;
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        other => return Err(corrupt(format!("checkpoint format {other:?}, this version reads {FORMAT:?}"))),
    }
    let state_json = meta.get("state").map_or("", String::as_str);
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| corrupt(format!("unreadable tensors ({e})")))?;
    let hash = content_hash(state_json, tensors.iter().map(|(n, t)| (n.as_str(), t)));
    if meta.get("sha256") != Some(&hash) {
        return Err(corrupt("the training state or the tensor contents do not match their checksum".into()));
    }
    let state: TrainState =
        serde_json::from_str(state_json).map_err(|e| corrupt(format!("unreadable training state ({e})")))?;
    Ok(Checkpoint { path: path.into(), state, tensors })
}

#[cfg(test)]
mod tests {
    use pipeline_core::rng;

    use super::*;

    fn state() -> TrainState {
        TrainState {
            epochs_done: 2,
            batches_done: 5,
            optimizer_steps: 17,
            shuffle_rng: rng(1, "shuffle"),
            dropout_rng: rng(1, "dropout"),
            partial: Partial { loss_sum: 0.1 + 0.2, correct: 3, samples: 40, seconds: 1.5, ..Default::default() },
            schedule: ScheduleState::default(),
            history: Vec::new(),
            best: Best { value: Some(0.123456789012345), epoch: 2, bad_epochs: 0 },
            fingerprint: "abc".into(),
            step: None,
        }
    }

    fn tensors() -> Vec<(String, Tensor)> {
        let dev = Device::Cpu;
        vec![
            ("param/w".into(), Tensor::new(&[[1.5f32, -2.0], [0.25, 3.0]], &dev).unwrap()),
            ("optim/w/exp_avg".into(), Tensor::new(&[[0.1f32, 0.2], [0.3, 0.4]], &dev).unwrap()),
        ]
    }

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(file_name(2, 5));
        write(&p, &state(), &tensors()).unwrap();
        let ck = read(&p, &Device::Cpu).unwrap();
        assert_eq!(ck.state, state());
        assert_eq!(ck.tensors["param/w"].to_vec2::<f32>().unwrap(), vec![vec![1.5, -2.0], vec![0.25, 3.0]]);
        // The random streams continue exactly where they were.
        use rand::Rng as _;
        let mut a = ck.state.dropout_rng.clone();
        let mut b = state().dropout_rng;
        assert_eq!(a.random::<u64>(), b.random::<u64>());
    }

    #[test]
    fn names_sort_in_training_order() {
        let names = [file_name(2, 0), file_name(2, 7), file_name(3, 0), file_name(3, 12), file_name(10, 0)];
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        assert_eq!(names[1], "epoch-0003-batch-00007.ckpt");
    }

    #[test]
    fn damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.ckpt");
        write(&p, &state(), &tensors()).unwrap();
        let good = std::fs::read(&p).unwrap();

        std::fs::write(&p, &good[..good.len() - 3]).unwrap();
        let e = read(&p, &Device::Cpu).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("checkpoint {} is corrupt: not a complete safetensors file", p.display())),
            "{e}"
        );

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        std::fs::write(&p, &flipped).unwrap();
        assert_eq!(
            read(&p, &Device::Cpu).unwrap_err().to_string(),
            format!(
                "checkpoint {} is corrupt: the training state or the tensor contents do not match their checksum",
                p.display()
            )
        );

        // An edited field of the state (same tensors, valid JSON) is refused too: resuming
        // from it would quietly train a different model.
        let (_, header) = safetensors::SafeTensors::read_metadata(&good).unwrap();
        let mut meta = header.metadata().clone().unwrap();
        let edited = meta["state"].replace("\"optimizer_steps\":17", "\"optimizer_steps\":18");
        assert_ne!(edited, meta["state"]);
        meta.insert("state".into(), edited);
        let tensors = tensors();
        let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta)).unwrap();
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(
            read(&p, &Device::Cpu).unwrap_err().to_string(),
            format!(
                "checkpoint {} is corrupt: the training state or the tensor contents do not match their checksum",
                p.display()
            )
        );

        // A checkpoint of the earlier format (checksum over the tensors only) is named as such.
        let mut meta = header.metadata().clone().unwrap();
        meta.insert("format".into(), "1".into());
        let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta)).unwrap();
        std::fs::write(&p, bytes).unwrap();
        let e = read(&p, &Device::Cpu).unwrap_err().to_string();
        assert!(e.ends_with(r#"checkpoint format Some("1"), this version reads "2""#), "{e}");

        std::fs::write(&p, b"").unwrap();
        assert!(read(&p, &Device::Cpu).unwrap_err().to_string().contains("is corrupt"));
    }
}
