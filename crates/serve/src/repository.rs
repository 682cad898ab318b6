//! What the server serves: one bundle, or a model repository of numbered versions with hot swap.
//!
//! ```text
//! models/                 the repository (`dlp serve models/`)
//!   mnist/                a model, served as `mnist`
//!     1/                  a version: a bundle directory (bundle.json, model.json, …)
//!     2/
//!   iris/
//!     7/
//! ```
//!
//! Version directories have all-digit names; anything else (`3.partial/`, `.tmp`) is ignored,
//! so a new version is published by writing it under another name and renaming it to its
//! number. For each model the newest version that loads and passes
//! [`Bundle::smoke_test`] is served. [`Registry::poll`] (run by the server every poll
//! interval) loads a newer version when one appears and swaps it in atomically: requests
//! already running finish on the old version, new ones go to the new. A version that fails
//! to load is refused — the old one keeps serving — and is not retried until its files change.
//!
//! Each loaded version has its own [`Batcher`] and its own [`Observer`]s: per-request hooks
//! that see the raw inputs and predictions (drift monitoring plugs in here), created for each
//! version by the server's [`ObserverFactory`]s. When drift monitoring is on and the bundle
//! has reference statistics, the version also gets its own [`DriftMonitor`], which starts
//! with an empty window: after a swap, drift is measured against the new version's training
//! data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::UNIX_EPOCH;

use candle_core::Device;

use crate::Bundle;
use crate::batcher::{BatchConfig, Batcher};
use crate::drift::{DriftMonitor, DriftOptions, ReportSink};
use crate::metrics::Metrics;
use crate::observe::{Observer, ObserverFactory};
use crate::records::{TensorSpec, input_specs, output_specs};

/// A loaded, validated model version, ready to serve.
pub struct LoadedModel {
    /// The model's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// The bundle.
    pub bundle: Arc<Bundle>,
    /// Its batching worker.
    pub batcher: Batcher,
    /// Its V2 inputs.
    pub inputs: Vec<TensorSpec>,
    /// Its V2 outputs.
    pub outputs: Vec<TensorSpec>,
    /// Its per-request hooks (the drift monitor among them).
    pub observers: Vec<Arc<dyn Observer>>,
    /// Its drift monitor: `None` when monitoring is off or the bundle has no reference.
    pub drift: Option<Arc<DriftMonitor>>,
    /// Its inference statistics (`GET /v2/models/{m}/stats`).
    pub stats: Arc<ModelStats>,
    /// The batching it runs with (`GET /v2/models/{m}/config`).
    pub batch: BatchConfig,
}

/// The inference statistics of one model version, as Triton's statistics extension reports
/// them: requests that succeeded or failed (count and total nanoseconds, from the request's
/// arrival at the model to its answer), inferences (rows predicted), executions (forward
/// passes: the batcher merges requests), and the time of the last inference.
#[derive(Debug, Default)]
pub struct ModelStats {
    success: std::sync::atomic::AtomicU64,
    success_ns: std::sync::atomic::AtomicU64,
    fail: std::sync::atomic::AtomicU64,
    fail_ns: std::sync::atomic::AtomicU64,
    inferences: std::sync::atomic::AtomicU64,
    executions: std::sync::atomic::AtomicU64,
    last_ms: std::sync::atomic::AtomicU64,
}

impl ModelStats {
    /// A request that ended in `elapsed` with `rows` predictions (`None`: it failed).
    pub fn record(&self, rows: Option<usize>, elapsed: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        match rows {
            Some(n) => {
                self.success.fetch_add(1, Relaxed);
                self.success_ns.fetch_add(ns, Relaxed);
                self.inferences.fetch_add(n as u64, Relaxed);
                let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                self.last_ms.store(u64::try_from(now.as_millis()).unwrap_or(u64::MAX), Relaxed);
            }
            None => {
                self.fail.fetch_add(1, Relaxed);
                self.fail_ns.fetch_add(ns, Relaxed);
            }
        }
    }

    /// A forward pass of the batcher.
    pub fn executed(&self) {
        self.executions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The statistics in Triton's JSON (`model_stats[]` entry).
    pub fn json(&self, name: &str, version: u64) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let pair = |c: &std::sync::atomic::AtomicU64, ns: &std::sync::atomic::AtomicU64| serde_json::json!({"count": c.load(Relaxed), "ns": ns.load(Relaxed)});
        let zero = serde_json::json!({"count": 0, "ns": 0});
        serde_json::json!({
            "name": name,
            "version": version.to_string(),
            "last_inference": self.last_ms.load(Relaxed),
            "inference_count": self.inferences.load(Relaxed),
            "execution_count": self.executions.load(Relaxed),
            "inference_stats": {
                "success": pair(&self.success, &self.success_ns),
                "fail": pair(&self.fail, &self.fail_ns),
                "queue": zero, "compute_input": zero, "compute_infer": zero, "compute_output": zero,
            },
            "batch_stats": [],
        })
    }
}

/// A version that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The version.
    pub version: u64,
    /// The load or validation error.
    pub reason: String,
    fingerprint: Vec<(String, u64, u128)>,
}

/// One model name and what it serves now.
pub struct ModelSlot {
    /// The model's name (the directory name in a repository, the bundle's name otherwise).
    pub name: String,
    dir: Option<PathBuf>,
    current: RwLock<Option<Arc<LoadedModel>>>,
    refused: Mutex<BTreeMap<u64, Refused>>,
}

impl ModelSlot {
    /// The version being served, if any.
    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The versions refused so far.
    pub fn refused(&self) -> Vec<Refused> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    fn swap(&self, model: Arc<LoadedModel>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(model);
    }
}

/// What a poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A version was loaded and is now served.
    Loaded {
        /// The model.
        model: String,
        /// The version.
        version: u64,
    },
    /// A version failed to load or validate; the previous one (if any) keeps serving.
    Refused {
        /// The model.
        model: String,
        /// The version.
        version: u64,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Loaded { model, version } => write!(f, "serving {model} version {version}"),
            Event::Refused { model, version, reason } => write!(f, "refused {model} version {version}: {reason}"),
        }
    }
}

/// How models are loaded: shared by every version.
#[derive(Clone)]
pub struct LoadContext {
    /// Batching of each loaded version.
    pub batch: BatchConfig,
    /// Where batch sizes and loads are counted.
    pub metrics: Arc<Metrics>,
    /// Observer factories, applied to each loaded version.
    pub observers: Vec<ObserverFactory>,
    /// Drift monitoring of each loaded version that has a reference (`None`: off).
    pub drift: Option<DriftOptions>,
    /// The device models run on.
    pub device: Device,
}

/// Every model the server serves.
pub struct Registry {
    root: PathBuf,
    repository: bool,
    models: RwLock<BTreeMap<String, Arc<ModelSlot>>>,
    ctx: LoadContext,
}

/// The numbered version directories under `dir`, newest first.
pub fn versions(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_digit())
            && entry.path().is_dir()
            && let Ok(v) = name.parse::<u64>()
        {
            out.push((v, entry.path()));
        }
    }
    out.sort_by_key(|v| std::cmp::Reverse(v.0));
    Ok(out)
}

/// Names, sizes and modification times of a version's files: a refused version is retried
/// only when this changes.
fn fingerprint(dir: &Path) -> Vec<(String, u64, u128)> {
    let mut out: Vec<(String, u64, u128)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    let t = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos();
                    Some((e.file_name().to_string_lossy().into_owned(), m.len(), t))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Why [`Registry::open`] found nothing to serve.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path is not a directory.
    #[error("{}: not a directory (expected a bundle or a model repository)", .0.display())]
    NotADirectory(PathBuf),
    /// A directory that is neither a bundle nor a repository with versions.
    #[error(
        "{}: neither a bundle (no bundle.json) nor a model repository (no <model>/<version>/ directories)",
        .0.display()
    )]
    Empty(PathBuf),
    /// The bundle directory given does not load.
    #[error("{}: {reason}", path.display())]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// Why it does not load.
        reason: String,
    },
    /// A repository none of whose versions loads.
    #[error("{}: no model version could be loaded: {reasons}", path.display())]
    NothingLoads {
        /// The repository.
        path: PathBuf,
        /// Each version's reason, `; `-separated.
        reasons: String,
    },
}

impl Registry {
    /// Opens `path` — a bundle directory (it has `bundle.json`) or a repository — and loads
    /// the newest valid version of each model. Fails when nothing at all can be served.
    pub fn open(path: &Path, ctx: LoadContext) -> Result<(Self, Vec<Event>), OpenError> {
        if !path.is_dir() {
            return Err(OpenError::NotADirectory(path.into()));
        }
        let repository = !pipeline_core::BundleDir::new(path).index().is_file();
        let reg = Self { root: path.into(), repository, models: RwLock::new(BTreeMap::new()), ctx };
        let mut events = Vec::new();
        if repository {
            events = reg.poll();
            if reg.models.read().unwrap_or_else(|p| p.into_inner()).is_empty() {
                return Err(OpenError::Empty(path.into()));
            }
        } else {
            let model = reg.load(None, 1, path).map_err(|reason| OpenError::Bundle { path: path.into(), reason })?;
            let slot = Arc::new(ModelSlot {
                name: model.name.clone(),
                dir: None,
                current: RwLock::new(Some(model.clone())),
                refused: Mutex::new(BTreeMap::new()),
            });
            reg.ctx.metrics.load(&model.name, 1, true);
            events.push(Event::Loaded { model: model.name.clone(), version: 1 });
            reg.models.write().unwrap_or_else(|p| p.into_inner()).insert(model.name.clone(), slot);
        }
        if reg.slots().iter().all(|s| s.current().is_none()) {
            let reasons: Vec<String> = events.iter().map(ToString::to_string).collect();
            return Err(OpenError::NothingLoads { path: path.into(), reasons: reasons.join("; ") });
        }
        Ok((reg, events))
    }

    /// Loads and validates the bundle at `dir` as `name` (the bundle's own name when `None`).
    fn load(&self, name: Option<&str>, version: u64, dir: &Path) -> Result<Arc<LoadedModel>, String> {
        let bundle = Bundle::load(dir, &self.ctx.device).map_err(|e| e.to_string())?;
        bundle.smoke_test().map_err(|e| e.to_string())?;
        let name = name.map_or_else(|| bundle.index.name.clone(), str::to_string);
        let bundle = Arc::new(bundle);
        let metrics = self.ctx.metrics.clone();
        let label = name.clone();
        let stats = Arc::new(ModelStats::default());
        let counted = stats.clone();
        let on_batch = Arc::new(move |n| {
            metrics.batch(&label, n);
            counted.executed();
        });
        let batcher = Batcher::start(bundle.clone(), self.ctx.batch, on_batch)
            .map_err(|e| format!("cannot start the batching thread: {e}"))?;
        let mut observers: Vec<Arc<dyn Observer>> =
            self.ctx.observers.iter().filter_map(|f| f(&name, version, &bundle)).collect();
        let drift = match (&self.ctx.drift, &bundle.reference) {
            (Some(options), Some(reference)) => {
                let metrics = self.ctx.metrics.clone();
                let on_report: ReportSink =
                    Arc::new(move |model, version, report| metrics.drift(model, version, report));
                let monitor = DriftMonitor::start(
                    &name,
                    version,
                    reference.clone(),
                    bundle.task().clone(),
                    options.clone(),
                    on_report,
                )
                .map_err(|e| format!("cannot start the drift monitor: {e}"))?;
                let monitor = Arc::new(monitor);
                observers.push(monitor.clone());
                Some(monitor)
            }
            _ => None,
        };
        Ok(Arc::new(LoadedModel {
            drift,
            inputs: input_specs(&bundle.preprocess.raw),
            outputs: output_specs(bundle.task()),
            name,
            version,
            bundle,
            batcher,
            observers,
            stats,
            batch: self.ctx.batch,
        }))
    }

    /// Whether this serves a repository (with hot swap) rather than one bundle.
    pub fn is_repository(&self) -> bool {
        self.repository
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<ModelSlot>> {
        self.models.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Every model, by name.
    pub fn slots(&self) -> Vec<Arc<ModelSlot>> {
        self.models.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Whether every model has a version to serve.
    pub fn ready(&self) -> bool {
        let slots = self.slots();
        !slots.is_empty() && slots.iter().all(|s| s.current().is_some())
    }

    /// Looks for new models and new versions in the repository and loads them (blocking: run
    /// it off the async runtime). Returns what changed.
    pub fn poll(&self) -> Vec<Event> {
        if !self.repository {
            return Vec::new();
        }
        let mut events = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else { return events };
        let mut dirs: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(n, p)| !n.starts_with('.') && versions(p).is_ok_and(|v| !v.is_empty()))
            .collect();
        dirs.sort();
        for (name, dir) in dirs {
            let slot = {
                let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
                models
                    .entry(name.clone())
                    .or_insert_with(|| {
                        Arc::new(ModelSlot {
                            name: name.clone(),
                            dir: Some(dir.clone()),
                            current: RwLock::new(None),
                            refused: Mutex::new(BTreeMap::new()),
                        })
                    })
                    .clone()
            };
            events.extend(self.poll_slot(&slot));
        }
        events
    }

    fn poll_slot(&self, slot: &ModelSlot) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(dir) = &slot.dir else { return events };
        let serving = slot.current().map_or(0, |m| m.version);
        let Ok(found) = versions(dir) else { return events };
        for (version, vdir) in found.into_iter().filter(|(v, _)| *v > serving) {
            let print = fingerprint(&vdir);
            {
                let refused = slot.refused.lock().unwrap_or_else(|p| p.into_inner());
                if refused.get(&version).is_some_and(|r| r.fingerprint == print) {
                    continue;
                }
            }
            match self.load(Some(&slot.name), version, &vdir) {
                Ok(model) => {
                    slot.swap(model);
                    slot.refused.lock().unwrap_or_else(|p| p.into_inner()).remove(&version);
                    self.ctx.metrics.load(&slot.name, version, true);
                    events.push(Event::Loaded { model: slot.name.clone(), version });
                    break;
                }
                Err(reason) => {
                    self.ctx.metrics.load(&slot.name, version, false);
                    slot.refused
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(version, Refused { version, reason: reason.clone(), fingerprint: print });
                    events.push(Event::Refused { model: slot.name.clone(), version, reason });
                }
            }
        }
        events
    }
}
