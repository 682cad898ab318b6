//! Helpers shared by the end-to-end tests: the repository root and the `dlp` binary.

#![allow(dead_code, reason = "each test file uses some of these")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A `dlp` command: this package's build of dlp's `main`.
pub fn dlp_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dlp-e2e"))
}

/// Runs `dlp` with `args` to the end.
pub fn dlp(args: &[&str]) -> Output {
    dlp_command().args(args).output().expect("the dlp binary runs")
}

/// The standard output of a run that must have succeeded (else its stderr and stdout).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "dlp failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A run's `metrics.jsonl`, one value per epoch, without the wall-time fields (which differ
/// between two runs that train identically).
pub fn metrics_without_timings(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("train_seconds");
            o.remove("samples_per_sec");
            v
        })
        .collect()
}
