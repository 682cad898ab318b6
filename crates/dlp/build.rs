//! Records build provenance for run manifests: the git revision and the candle version.

use std::process::Command;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=DLP_GIT_REVISION={git}");
    for p in [".git/HEAD", ".git/refs/heads"] {
        if root.join(p).exists() {
            println!("cargo:rerun-if-changed={}", root.join(p).display());
        }
    }
    // The candle version actually linked, from the lock file.
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let candle = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"candle-core\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=DLP_CANDLE_VERSION={candle}");
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
}
