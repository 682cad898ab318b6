//! The run directory, the model bundle inside it, the run manifest, and atomic file writes.
//!
//! ```text
//! runs/<name>-<timestamp>/
//!   config.yaml        the resolved config (defaults filled in, paths absolute)
//!   manifest.json      inputs and their sha256, seed, versions, git revision, host, timings
//!   split.json         the example indices of each part
//!   metrics.jsonl      one JSON object per training epoch
//!   training_curves.png  loss, accuracy and learning rate by epoch
//!   checkpoints/       epoch-NNNN[-batch-NNNNN].ckpt and best.ckpt, to resume from
//!   eval.json          test-set evaluation
//!   predictions.csv    the test part's predictions, by source record
//!   bundle/            everything needed to serve: nothing is re-fitted at serving time
//!     bundle.json      format version, schema (inputs, task, label names), provenance
//!     model.json       the model config (architecture and options)
//!     model.safetensors the weights
//!     preprocess.json  the fitted preprocessing state
//! ```
//!
//! Files are written with [`write_atomic`] (temporary file, fsync, rename), and the bundle is
//! assembled in `bundle.partial/` and renamed into place when complete, so a crash never leaves
//! a torn file or a half bundle.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Head, Result, Schema};

/// The current bundle format; readers refuse other versions.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// One run's output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates a new, empty run directory `parent/stem`, or `parent/stem-2`, `-3`, … when that
    /// name is taken, so concurrent runs never share a directory.
    pub fn create(parent: &Path, stem: &str) -> Result<Self> {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        for n in 1.. {
            let name = if n == 1 { stem.to_string() } else { format!("{stem}-{n}") };
            let root = parent.join(name);
            match fs::create_dir(&root) {
                Ok(()) => return Ok(Self { root }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(root, e)),
            }
        }
        unreachable!("the loop only ends by returning")
    }

    /// An existing run directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            return Err(Error::io(&root, std::io::Error::new(std::io::ErrorKind::NotFound, "not a run directory")));
        }
        Ok(Self { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.yaml`: the resolved config.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.yaml")
    }

    /// `manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    /// `metrics.jsonl`: the per-epoch training log.
    pub fn metrics_log(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `eval.json`: the test-set evaluation.
    pub fn eval(&self) -> PathBuf {
        self.root.join("eval.json")
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// `predictions.csv`: the test part's predictions, by source record.
    pub fn predictions(&self) -> PathBuf {
        self.root.join("predictions.csv")
    }

    /// `training_curves.png`.
    pub fn curves(&self) -> PathBuf {
        self.root.join("training_curves.png")
    }

    /// The published bundle, `bundle/`.
    pub fn bundle(&self) -> BundleDir {
        BundleDir::new(self.root.join("bundle"))
    }

    /// A fresh staging directory, `bundle.partial/`, to assemble the bundle in before
    /// [`publish_bundle`](Self::publish_bundle).
    pub fn stage_bundle(&self) -> Result<BundleDir> {
        let dir = self.root.join("bundle.partial");
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(BundleDir::new(dir))
    }

    /// Renames the staged bundle to `bundle/`, replacing nothing: the bundle appears whole or
    /// not at all.
    pub fn publish_bundle(&self, staged: BundleDir) -> Result<BundleDir> {
        let target = self.bundle();
        fs::rename(staged.root(), target.root()).map_err(|e| Error::io(target.root(), e))?;
        sync_dir(&self.root)?;
        Ok(target)
    }
}

/// A model bundle directory: what `serve` loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleDir {
    root: PathBuf,
}

impl BundleDir {
    /// The bundle at `root` (nothing is checked until its files are read).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `bundle.json`: the [`BundleIndex`].
    pub fn index(&self) -> PathBuf {
        self.root.join("bundle.json")
    }

    /// `model.json`: the model config.
    pub fn model_config(&self) -> PathBuf {
        self.root.join("model.json")
    }

    /// `model.safetensors`: the weights.
    pub fn weights(&self) -> PathBuf {
        self.root.join("model.safetensors")
    }

    /// `preprocess.json`: the fitted preprocessing state.
    pub fn preprocess(&self) -> PathBuf {
        self.root.join("preprocess.json")
    }
}

/// `bundle.json`: what the bundle is and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleIndex {
    /// [`BUNDLE_FORMAT_VERSION`] at writing time.
    pub format_version: u32,
    /// The pipeline name from the config.
    pub name: String,
    /// Inputs, target and task (with label names) of the model.
    pub schema: Schema,
    /// How the model's outputs become predictions.
    pub head: Head,
    /// The pipeline version that wrote it.
    pub pipeline_version: String,
    /// When it was written (RFC 3339).
    pub created_at: String,
    /// The seed of the run that trained it.
    pub seed: u64,
}

/// One input file of a run, identified by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// What the file is for, e.g. `data.images`.
    pub role: String,
    /// Its path as read.
    pub path: String,
    /// Hex sha256 of its bytes.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// Wall time of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTiming {
    /// Phase name (`ingest`, `preprocess`, `train`, …).
    pub phase: String,
    /// Seconds.
    pub seconds: f64,
}

/// The machine a run ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// `std::env::consts::OS`.
    pub os: String,
    /// `std::env::consts::ARCH`.
    pub arch: String,
    /// Logical CPUs available.
    pub cpus: usize,
}

impl Host {
    /// The current machine.
    pub fn current() -> Self {
        Self {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

/// `manifest.json`: how to tell exactly what a run saw and did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The pipeline name.
    pub pipeline: String,
    /// The config file the run was started from.
    pub config_file: String,
    /// The base seed.
    pub seed: u64,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// End time (RFC 3339), once finished.
    pub finished_at: Option<String>,
    /// When the run was resumed after an interruption (RFC 3339), if ever.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_at: Vec<String>,
    /// Every data file read, with its hash.
    pub inputs: Vec<InputFile>,
    /// What reading and cleaning the data found: records kept and dropped, the first bad
    /// records, unparsable values per column, duplicates, outliers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_report: Option<serde_json::Value>,
    /// Versions of the pipeline and of the libraries that compute results.
    pub versions: BTreeMap<String, String>,
    /// The git revision the binary was built from, when known.
    pub git_revision: Option<String>,
    /// The machine.
    pub host: Host,
    /// Wall time per phase, in order.
    pub timings: Vec<PhaseTiming>,
    /// Set when the run stopped with an error (a resumed run clears it): when and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<RunFailure>,
    /// The process's peak resident memory when the run finished, in bytes (`VmHWM`; Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
}

/// This process's peak resident memory so far, in bytes (`VmHWM` of `/proc/self/status`;
/// `None` where there is no such file).
pub fn peak_memory_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// Why and when a run stopped with an error, in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFailure {
    /// When (RFC 3339).
    pub at: String,
    /// The error, as the command printed it.
    pub error: String,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename
/// over `path`, fsync of the directory. Readers see the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    sync_dir(dir)
}

/// Serializes `value` as pretty JSON and writes it with [`write_atomic`].
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|cause| Error::Json { path: path.into(), cause })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a JSON file into `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|cause| Error::Json { path: path.into(), cause })
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directory fsync makes the rename durable; it is not supported everywhere (e.g. Windows),
    // where the rename alone is the best available.
    #[cfg(unix)]
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_never_reuses_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let a = RunDir::create(tmp.path(), "run").unwrap();
        let b = RunDir::create(tmp.path(), "run").unwrap();
        assert_eq!(a.root().file_name().unwrap(), "run");
        assert_eq!(b.root().file_name().unwrap(), "run-2");
        assert!(RunDir::open(tmp.path().join("nope")).is_err());
    }

    #[test]
    fn atomic_write_replaces_whole_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.json");
        write_json(&p, &vec![1, 2, 3]).unwrap();
        write_json(&p, &vec![4]).unwrap();
        let back: Vec<i32> = read_json(&p).unwrap();
        assert_eq!(back, vec![4]);
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }

    #[test]
    fn bundle_is_published_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), "r").unwrap();
        let staged = run.stage_bundle().unwrap();
        write_atomic(&staged.weights(), b"w").unwrap();
        assert!(!run.bundle().root().exists());
        let b = run.publish_bundle(staged).unwrap();
        assert_eq!(fs::read(b.weights()).unwrap(), b"w");
        assert!(!run.root().join("bundle.partial").exists());
    }
}
