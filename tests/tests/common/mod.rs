//! Helpers shared by the end-to-end tests: the repository root and the `dlp` binary.

#![allow(dead_code, reason = "each test file uses some of these")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Starts `dlp run cfg` into `runs` and SIGKILLs it as soon as a checkpoint whose name starts
/// with `checkpoint` (e.g. `epoch-0003-batch-`, the middle of epoch 3) exists.
pub fn run_and_kill_at(cfg: &Path, runs: &Path, checkpoint: &str) {
    let mut child = dlp_command()
        .args(["run", cfg.to_str().unwrap(), "--runs-dir", runs.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let found = std::fs::read_dir(runs).ok().and_then(|mut d| d.next()).and_then(|e| {
            let ck = e.ok()?.path().join("checkpoints");
            std::fs::read_dir(ck).ok()?.flatten().find(|f| f.file_name().to_string_lossy().starts_with(checkpoint))
        });
        if found.is_some() {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(Instant::now() < deadline, "no {checkpoint}* checkpoint appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}
