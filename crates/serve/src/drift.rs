//! Drift monitoring: does live data still look like the training data?
//!
//! At training time `dlp run` fits a [`Reference`] on the training records and writes it into
//! the bundle as `reference.json`: for each monitored feature, its distribution
//! ([`eval::drift`]: decile bins with counts, a sample of values, or category counts). The
//! features are
//!
//! | input | features |
//! |---|---|
//! | numeric or boolean column `c` | `c` (numeric) |
//! | categorical column `c` | `c` (categorical) |
//! | text column `c` | `c:tokens` (words per text) and `c:oov_rate` (the share of its words outside the training texts' 10,000 most frequent; for the training texts themselves, each text left out) |
//! | images | `mean_intensity` and `std_intensity` (per image, pixel values 0–255) |
//! | the model's output | `prediction`: the predicted class (categorical), or the predicted value |
//!
//! so that images and texts are watched through summaries that mean something rather than
//! pixel by pixel. The predicted-class distribution of the reference is the model's own
//! predictions on its training records.
//!
//! [`DriftMonitor`] is the server's [`Observer`]: each loaded model version with a reference
//! gets one, which keeps the last `window` records of each feature and, on its own thread
//! (never on a request), recomputes the [`DriftReport`] after new records arrive — PSI and
//! Kolmogorov–Smirnov for numeric features, PSI and chi-squared for categorical ones — sets
//! the `/metrics` gauges, and logs a warning when a feature crosses a [`Thresholds`] limit.
//! [`compare`] is the same check over a whole file (`dlp drift`).
//!
//! A feature is flagged when the window holds at least `min_rows` records and its PSI is above
//! `psi` or its test's p-value below `p_value`.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use eval::drift::{ChiSquared, KsTest};
use pipeline_core::Task;
use serde::{Deserialize, Serialize};

use crate::observe::{Observation, Observer};

pub use bundle::reference::{
    Extractor, FeatureReference, REFERENCE_FILE, Reference, ReferenceOptions, Sample, Source, Stats,
};

/// When a feature is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Flag when PSI is above this.
    pub psi: f64,
    /// Flag when the KS or chi-squared p-value is below this.
    pub p_value: f64,
    /// Flag nothing until this many records were seen.
    pub min_rows: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { psi: 0.2, p_value: 0.01, min_rows: 100 }
    }
}

/// One feature's drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReport {
    /// The feature.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// Live values compared (non-missing, for numeric features).
    pub rows: usize,
    /// Live values missing (numeric features; left out of the statistics).
    pub missing: usize,
    /// Population stability index.
    pub psi: f64,
    /// Kolmogorov–Smirnov against the reference sample (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<KsTest>,
    /// Chi-squared test of homogeneity (categorical).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2: Option<ChiSquared>,
    /// The training mean (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_mean: Option<f64>,
    /// The live mean (numeric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Live values of categories never seen in training (categorical).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseen: Option<u64>,
    /// Whether a threshold was crossed.
    pub flagged: bool,
    /// Which, in words.
    pub reasons: Vec<String>,
}

impl FeatureReport {
    /// The p-value of its test.
    pub fn p_value(&self) -> Option<f64> {
        self.ks.map(|k| k.p_value).or(self.chi2.map(|c| c.p_value))
    }
}

/// Every feature's drift over a set of live records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Records compared.
    pub rows: usize,
    /// The thresholds applied.
    pub thresholds: Thresholds,
    /// Whether any feature is flagged.
    pub flagged: bool,
    /// The largest PSI of any feature: one number to watch.
    pub score: f64,
    /// Each feature.
    pub features: Vec<FeatureReport>,
}

/// Compares live `samples` (one per reference feature, from [`Extractor::extract`]) with
/// `reference`, over `rows` records.
pub fn compare(reference: &Reference, samples: &[Sample], rows: usize, thresholds: &Thresholds) -> DriftReport {
    let mut features = Vec::new();
    for (f, s) in reference.features.iter().zip(samples) {
        let mut r = FeatureReport {
            name: f.name.clone(),
            kind: String::new(),
            rows: 0,
            missing: 0,
            psi: 0.0,
            ks: None,
            chi2: None,
            reference_mean: None,
            mean: None,
            unseen: None,
            flagged: false,
            reasons: Vec::new(),
        };
        match (&f.stats, s) {
            (Stats::Numeric(n), Sample::Numbers(v)) => {
                r.kind = "numeric".into();
                r.reference_mean = Some(n.mean);
                r.missing = v.iter().filter(|x| x.is_nan()).count();
                if let Ok(d) = n.compare(v) {
                    (r.rows, r.psi, r.ks, r.mean) = (d.rows, d.psi, Some(d.ks), Some(d.mean));
                }
            }
            (Stats::Categorical(c), Sample::Buckets(b)) => {
                r.kind = "categorical".into();
                let mut counts = vec![0u64; c.buckets()];
                for &i in b {
                    if let Some(x) = counts.get_mut(i as usize) {
                        *x += 1;
                    }
                }
                if let Ok(d) = c.compare_counts(&counts) {
                    (r.rows, r.psi, r.chi2, r.unseen) = (d.rows, d.psi, Some(d.chi2), Some(d.unseen));
                }
            }
            _ => continue,
        }
        if rows >= thresholds.min_rows && r.rows > 0 {
            if r.psi > thresholds.psi {
                r.reasons.push(format!("psi {:.3} > {}", r.psi, thresholds.psi));
            }
            if let Some(p) = r.p_value().filter(|&p| p < thresholds.p_value) {
                let test = if r.ks.is_some() { "ks" } else { "chi2" };
                r.reasons.push(format!("{test} p {p:.3e} < {}", thresholds.p_value));
            }
            r.flagged = !r.reasons.is_empty();
        }
        features.push(r);
    }
    DriftReport {
        rows,
        thresholds: *thresholds,
        flagged: features.iter().any(|f| f.flagged),
        score: features.iter().map(|f| f.psi).fold(0.0, f64::max),
        features,
    }
}

/// How the server monitors drift.
#[derive(Clone)]
pub struct DriftOptions {
    /// Records kept per model version (the sliding window).
    pub window: usize,
    /// When features are flagged.
    pub thresholds: Thresholds,
    /// The shortest time between two recomputations.
    pub interval: Duration,
    /// Where warnings go (a feature newly flagged, or back within the thresholds).
    pub log: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Default for DriftOptions {
    fn default() -> Self {
        Self {
            window: 1000,
            thresholds: Thresholds::default(),
            interval: Duration::from_millis(500),
            log: Arc::new(|_| {}),
        }
    }
}

enum Column {
    Numbers(VecDeque<f64>),
    Buckets(VecDeque<u32>),
}

struct Window {
    columns: Vec<Column>,
    rows: usize,
}

struct Inner {
    model: String,
    version: u64,
    extractor: Extractor,
    task: Task,
    options: DriftOptions,
    window: Mutex<Window>,
    on_report: ReportSink,
    latest: Mutex<Option<DriftReport>>,
}

/// Where each recomputed report goes (the server's metrics), given the model's name and
/// version.
pub type ReportSink = Arc<dyn Fn(&str, u64, &DriftReport) + Send + Sync>;

/// The drift monitor of one served model version: an [`Observer`] with a sliding window per
/// feature and a thread that recomputes the report after new records.
pub struct DriftMonitor {
    inner: Arc<Inner>,
    wake: SyncSender<()>,
}

impl DriftMonitor {
    /// Starts monitoring `model` `version` against `reference` (the thread ends when the
    /// monitor is dropped). `on_report` sees the empty report first, then every recomputed one.
    pub fn start(
        model: &str,
        version: u64,
        reference: Arc<Reference>,
        task: Task,
        options: DriftOptions,
        on_report: ReportSink,
    ) -> std::io::Result<Self> {
        let columns = reference
            .features
            .iter()
            .map(|f| match f.stats {
                Stats::Numeric(_) => Column::Numbers(VecDeque::new()),
                Stats::Categorical(_) => Column::Buckets(VecDeque::new()),
            })
            .collect();
        let inner = Arc::new(Inner {
            model: model.into(),
            version,
            extractor: Extractor::new(reference),
            task,
            options,
            window: Mutex::new(Window { columns, rows: 0 }),
            on_report,
            latest: Mutex::new(None),
        });
        let empty = inner.report();
        (inner.on_report)(model, version, &empty);
        let (wake, rx) = sync_channel::<()>(1);
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new().name(format!("dlp-drift-{model}-{version}")).spawn(move || worker(weak, rx))?;
        Ok(Self { inner, wake })
    }

    /// The report over the current window, computed now.
    pub fn report(&self) -> DriftReport {
        self.inner.report()
    }

    /// The window's capacity.
    pub fn window(&self) -> usize {
        self.inner.options.window
    }
}

impl Inner {
    fn report(&self) -> DriftReport {
        let (samples, rows) = {
            let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
            let samples: Vec<Sample> = w
                .columns
                .iter()
                .map(|c| match c {
                    Column::Numbers(v) => Sample::Numbers(v.iter().copied().collect()),
                    Column::Buckets(v) => Sample::Buckets(v.iter().copied().collect()),
                })
                .collect();
            (samples, w.rows)
        };
        compare(self.extractor.reference(), &samples, rows, &self.options.thresholds)
    }

    fn push(&self, samples: Vec<Sample>) {
        let cap = self.options.window;
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let mut added = 0;
        for (col, s) in w.columns.iter_mut().zip(samples) {
            match (col, s) {
                (Column::Numbers(q), Sample::Numbers(v)) => {
                    added = v.len();
                    q.extend(v);
                    let over = q.len().saturating_sub(cap);
                    q.drain(..over);
                }
                (Column::Buckets(q), Sample::Buckets(v)) => {
                    added = v.len();
                    q.extend(v);
                    let over = q.len().saturating_sub(cap);
                    q.drain(..over);
                }
                _ => {}
            }
        }
        w.rows = (w.rows + added).min(cap);
    }
}

/// Recomputes after each wake-up (at most once per interval), updates the gauges and logs
/// features that cross a threshold either way. Ends when the monitor is dropped.
fn worker(inner: Weak<Inner>, wake: Receiver<()>) {
    while wake.recv().is_ok() {
        let Some(inner) = inner.upgrade() else { return };
        let report = inner.report();
        (inner.on_report)(&inner.model, inner.version, &report);
        let previous = inner.latest.lock().unwrap_or_else(|p| p.into_inner()).replace(report.clone());
        let was_flagged =
            |name: &str| previous.as_ref().is_some_and(|p| p.features.iter().any(|f| f.name == name && f.flagged));
        for f in &report.features {
            let before = was_flagged(&f.name);
            if f.flagged && !before {
                (inner.options.log)(&format!(
                    "warning: drift in {} version {}: {} ({}; {} records in the window)",
                    inner.model,
                    inner.version,
                    f.name,
                    f.reasons.join(", "),
                    report.rows
                ));
            } else if !f.flagged && before {
                (inner.options.log)(&format!(
                    "{} version {}: {} is back within the drift thresholds",
                    inner.model, inner.version, f.name
                ));
            }
        }
        let interval = inner.options.interval;
        drop(inner);
        std::thread::sleep(interval);
    }
}

impl Observer for DriftMonitor {
    fn observe(&self, observation: &Observation<'_>) {
        let samples = self.inner.extractor.extract(observation.inputs, observation.predictions, &self.inner.task);
        self.inner.push(samples);
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}
