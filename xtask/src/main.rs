//! Developer and CI chores, run as `cargo xtask <command>`.
//!
//! - `run-pipeline [--config FILE]`: builds `dlp` in release mode and runs a pipeline
//!   (default `configs/mnist-mlp.yaml`), ending with where the run went and its test metrics;
//! - `ci`: what `.ci/run` runs, cheapest first: format check, clippy with warnings as errors,
//!   then the README's test command `cargo test --workspace`.
//!
//! Std only, so it compiles in seconds: it shells out to cargo and to the `dlp` binary rather
//! than linking the pipeline. Avoid adding dependencies to this crate.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run-pipeline") => run_pipeline(&args[1..]),
        Some("ci") => ci(),
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
  ci                                              format check, clippy, tests";

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

fn ci() -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    status(fmt)?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]);
    status(clippy)?;
    // The README's test command, exactly.
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    status(test)
}
