//! Shared by the fuzz targets: a scratch directory per process, and writing an input to a file
//! there (most readers take a path, as the pipeline does).

#![allow(dead_code, reason = "each target uses some of these helpers")]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// This process's scratch directory (under the system temp dir; in RAM where it is tmpfs).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("dlp-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

/// Writes `data` to `name` in the scratch directory and returns its path.
pub fn file(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, data).expect("writing the fuzz input");
    p
}

/// The checked-in files of `fuzz/assets/<name>`.
pub fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(name)
}
