use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Callback, Control, EpochMetrics, Error, Result};

/// Appends one JSON object per epoch to a JSON-lines file (`metrics.jsonl` in the run
/// directory), flushed after every line so that a crash loses at most the epoch in progress.
pub struct MetricsLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsLog {
    /// Creates (or truncates) the log at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self { path: path.into(), out: BufWriter::new(File::create(path)?) })
    }

    /// Rewrites the log at `path` with `history` (the epochs a checkpoint holds, dropping any
    /// logged after it), then appends to it.
    pub fn resume(path: &Path, history: &[EpochMetrics]) -> std::io::Result<Self> {
        let mut text = String::new();
        for m in history {
            text += &serde_json::to_string(m).map_err(std::io::Error::other)?;
            text.push('\n');
        }
        pipeline_core::run::write_atomic(path, text.as_bytes()).map_err(std::io::Error::other)?;
        let out = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self { path: path.into(), out: BufWriter::new(out) })
    }
}

impl Callback for MetricsLog {
    fn on_epoch_end(&mut self, metrics: &EpochMetrics) -> Result<Control> {
        let fail = |e: &dyn std::fmt::Display| Error::Callback(format!("{}: {e}", self.path.display()));
        let line = serde_json::to_string(metrics).map_err(|e| fail(&e))?;
        writeln!(self.out, "{line}").and_then(|()| self.out.flush()).map_err(|e| fail(&e))?;
        Ok(Control::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_parseable_line_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let mut log = MetricsLog::create(&p).unwrap();
        for epoch in 1..=2 {
            let m = EpochMetrics {
                epoch,
                train_loss: 0.5,
                train_accuracy: Some(0.9),
                val_loss: None,
                val_accuracy: None,
                lr: 1e-3,
                train_seconds: 1.0,
                samples_per_sec: 100.0,
                extra: Default::default(),
            };
            log.on_epoch_end(&m).unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<EpochMetrics> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].epoch, 2);
    }
}
