//! `cargo xtask fuzz`: builds the libFuzzer targets of `fuzz/` with coverage instrumentation
//! (the flags cargo-fuzz passes with `--sanitizer none`, on the stable toolchain) and runs each
//! for a time budget over its checked-in seeds, then prints executions, coverage and corpus
//! per target. A crash, a panic, a hang (`-timeout`) or runaway memory (`-rss_limit_mb`) stops
//! that target with its input saved under `fuzz/artifacts/<target>/`, and an input slower than
//! 10 s is saved there too; the command then fails.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{USAGE, root, status};

/// Every target, in `fuzz/Cargo.toml` order.
pub const TARGETS: [&str; 9] =
    ["csv_table", "idx", "text_lines", "image", "config_yaml", "v2_request", "predict_csv", "bundle", "checkpoint"];

/// Coverage instrumentation as cargo-fuzz sets it (`-s none`), plus the `fuzzing` cfg.
const RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// One target's run, read from libFuzzer's final lines.
struct Outcome {
    target: String,
    seconds: u64,
    execs: u64,
    cov: u64,
    features: u64,
    corpus: String,
    slowest: u64,
    failed: Option<String>,
}

#[allow(clippy::print_stdout, reason = "the table is the command's output")]
pub fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut jobs = 1usize;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("--seconds needs a whole number\n{USAGE}"))?;
            }
            "--jobs" => {
                jobs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&j| j > 0)
                    .ok_or_else(|| format!("--jobs needs a positive whole number\n{USAGE}"))?;
            }
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => return Err(format!("unknown fuzz target or argument {other} (targets: {})", TARGETS.join(", "))),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    let dir = root().join("fuzz");
    // With an explicit --target, RUSTFLAGS reach only the target's crates, not build scripts
    // and proc macros (which cannot link the coverage hooks), as with cargo-fuzz.
    let host = host_triple()?;
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(&dir)
        .args(["build", "--release", "--bins", "--target", &host])
        .env("RUSTFLAGS", RUSTFLAGS)
        .env("CARGO_TARGET_DIR", dir.join("target"));
    status(build)?;

    // `jobs` targets at a time, each on its own core (libFuzzer runs one process per target).
    let bins = dir.join("target").join(&host).join("release");
    let mut outcomes = Vec::new();
    for batch in targets.chunks(jobs) {
        let results: Vec<Result<Outcome, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch.iter().map(|t| s.spawn(|| run_target(&dir, &bins, t, seconds))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a fuzz thread panicked".into()))).collect()
        });
        for r in results {
            outcomes.push(r?);
        }
    }
    let mut table = String::from(
        "| target | seconds | executions | execs/s | coverage (edges) | features | corpus | slowest input (s) | result |\n\
         |---|---:|---:|---:|---:|---:|---|---:|---|\n",
    );
    for o in &outcomes {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            o.target,
            o.seconds,
            o.execs,
            o.execs / o.seconds.max(1),
            o.cov,
            o.features,
            o.corpus,
            o.slowest,
            o.failed.as_deref().unwrap_or("no crash, hang or panic")
        ));
    }
    println!("{table}");
    let summary = dir.join("artifacts/summary.md");
    let _ = std::fs::write(&summary, &table);
    eprintln!("xtask: the table is also in {}", summary.display());
    let failed: Vec<&str> = outcomes.iter().filter(|o| o.failed.is_some()).map(|o| o.target.as_str()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzzing found failures in {} (inputs under fuzz/artifacts/)", failed.join(", ")))
    }
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc").arg("-vV").output().map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| "rustc -vV names no host".into())
}

fn run_target(dir: &Path, bins: &Path, target: &str, seconds: u64) -> Result<Outcome, String> {
    let corpus = dir.join("corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    let seeds = dir.join("seeds").join(target);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let bin = bins.join(target);
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let start = std::time::Instant::now();
    let out = Command::new(&bin)
        .current_dir(dir)
        .arg(format!("-max_total_time={seconds}"))
        .arg("-timeout=20")
        .arg("-rss_limit_mb=4096")
        .arg("-max_len=65536")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .arg(&seeds)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::write(artifacts.join("last-run.log"), log.as_bytes());
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    // The last status line: "#N  DONE  cov: C ft: F corp: K/SIZE …".
    let last = log.lines().rev().find(|l| l.starts_with('#') && l.contains(" cov: ")).unwrap_or_default();
    let field = |key: &str| {
        let mut words = last.split_whitespace();
        words.by_ref().find(|w| *w == key);
        words.next().unwrap_or("").to_string()
    };
    // libFuzzer saves an input slower than `-report_slow_units` (10 s) without failing: that
    // is a near-hang, and a finding here.
    let slowest = stat("slowest_unit_time_sec");
    let slow_saved = log.lines().any(|l| l.contains("Test unit written to") && l.contains("slow-unit-"));
    let failed = if !out.status.success() {
        let why = log
            .lines()
            .find(|l| l.contains("==ERROR:") || l.contains("panicked at") || l.contains("deadly signal"))
            .unwrap_or("libFuzzer failed");
        Some(format!("FAILED: {}", why.trim()))
    } else if slow_saved {
        Some(format!("SLOW: an input took {slowest} s (saved as a slow-unit file)"))
    } else {
        None
    };
    Ok(Outcome {
        target: target.to_string(),
        seconds: start.elapsed().as_secs().max(1),
        execs: stat("number_of_executed_units"),
        cov: field("cov:").parse().unwrap_or(0),
        features: field("ft:").parse().unwrap_or(0),
        corpus: field("corp:"),
        slowest,
        failed,
    })
}
