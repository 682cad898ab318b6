//! The server's Prometheus metrics (`GET /metrics`, OpenMetrics text), with the
//! `prometheus-client` crate:
//!
//! - `dlp_requests_total{endpoint, status}`: every request, by route template and HTTP status;
//! - `dlp_request_duration_seconds{endpoint}`: latency histogram;
//! - `dlp_batch_size{model}`: rows per forward pass (dynamic batching at work);
//! - `dlp_predictions_total{model, class}`: predicted classes (regression models count under
//!   `class="value"`);
//! - `dlp_model_loads_total{model, outcome}`: versions loaded (`loaded`) and refused (`refused`);
//! - `dlp_model_version{model}`: the version being served;
//! - drift ([`drift`](crate::drift)), for the version being served, recomputed as requests
//!   arrive: `dlp_drift_score{model}` (the largest PSI of any feature),
//!   `dlp_drift_psi{model, feature}`, `dlp_drift_p_value{model, feature}` (KS or chi-squared),
//!   `dlp_drift_flagged{model, feature}` (1 when a threshold is crossed) and
//!   `dlp_drift_window_rows{model}` (records in the window).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use crate::drift::DriftReport;

type Labels = Vec<(String, String)>;

fn latency_histogram() -> Histogram {
    // 0.1 ms … ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

fn batch_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0])
}

/// The metric families, registered once per server.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    batch: Family<Labels, Histogram, fn() -> Histogram>,
    predictions: Family<Labels, Counter>,
    loads: Family<Labels, Counter>,
    version: Family<Labels, Gauge>,
    drift_score: Family<Labels, Gauge<f64, AtomicU64>>,
    drift_psi: Family<Labels, Gauge<f64, AtomicU64>>,
    drift_p: Family<Labels, Gauge<f64, AtomicU64>>,
    drift_flagged: Family<Labels, Gauge>,
    drift_rows: Family<Labels, Gauge>,
    /// The newest version whose drift each model's gauges show.
    drift_version: Mutex<HashMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dlp");
        let requests = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let batch = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(batch_histogram);
        let predictions = Family::<Labels, Counter>::default();
        let loads = Family::<Labels, Counter>::default();
        let version = Family::<Labels, Gauge>::default();
        registry.register("requests", "HTTP requests by route and status", requests.clone());
        registry.register("request_duration_seconds", "Request latency by route", latency.clone());
        registry.register("batch_size", "Rows per forward pass", batch.clone());
        registry.register("predictions", "Predicted classes", predictions.clone());
        registry.register("model_loads", "Model versions loaded or refused", loads.clone());
        registry.register("model_version", "The version each model serves", version.clone());
        let drift_score = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let drift_psi = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let drift_p = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let drift_flagged = Family::<Labels, Gauge>::default();
        let drift_rows = Family::<Labels, Gauge>::default();
        registry.register("drift_score", "Largest population stability index of any feature", drift_score.clone());
        registry.register("drift_psi", "Population stability index by feature", drift_psi.clone());
        registry.register("drift_p_value", "KS (numeric) or chi-squared (categorical) p-value", drift_p.clone());
        registry.register("drift_flagged", "1 when a feature crosses a drift threshold", drift_flagged.clone());
        registry.register("drift_window_rows", "Records in the drift window", drift_rows.clone());
        Self {
            registry,
            requests,
            latency,
            batch,
            predictions,
            loads,
            version,
            drift_score,
            drift_psi,
            drift_p,
            drift_flagged,
            drift_rows,
            drift_version: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a finished request and its latency.
    pub fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![("endpoint".into(), endpoint.into()), ("status".into(), status.to_string())])
            .inc();
        self.latency.get_or_create(&vec![("endpoint".into(), endpoint.into())]).observe(seconds);
    }

    /// Records one forward pass of `rows` rows.
    pub fn batch(&self, model: &str, rows: usize) {
        self.batch.get_or_create(&vec![("model".into(), model.into())]).observe(rows as f64);
    }

    /// Counts `count` predictions of `class`.
    pub fn predicted(&self, model: &str, class: &str, count: u64) {
        self.predictions
            .get_or_create(&vec![("model".into(), model.into()), ("class".into(), class.into())])
            .inc_by(count);
    }

    /// Counts a load attempt; a successful one also sets the served version.
    pub fn load(&self, model: &str, version: u64, ok: bool) {
        let outcome = if ok { "loaded" } else { "refused" };
        self.loads.get_or_create(&vec![("model".into(), model.into()), ("outcome".into(), outcome.into())]).inc();
        if ok {
            self.version.get_or_create(&vec![("model".into(), model.into())]).set(version as i64);
        }
    }

    /// Shows `report` of `model` `version` in the drift gauges, unless a newer version's
    /// monitor has already written them (an old version may finish requests after a swap).
    pub fn drift(&self, model: &str, version: u64, report: &DriftReport) {
        {
            let mut shown = self.drift_version.lock().unwrap_or_else(|p| p.into_inner());
            let v = shown.entry(model.to_string()).or_insert(version);
            if version < *v {
                return;
            }
            *v = version;
        }
        let m = || vec![("model".to_string(), model.to_string())];
        self.drift_score.get_or_create(&m()).set(report.score);
        self.drift_rows.get_or_create(&m()).set(report.rows as i64);
        for f in &report.features {
            let labels = vec![("model".to_string(), model.to_string()), ("feature".to_string(), f.name.clone())];
            self.drift_psi.get_or_create(&labels).set(f.psi);
            self.drift_p.get_or_create(&labels).set(f.p_value().unwrap_or(1.0));
            self.drift_flagged.get_or_create(&labels).set(i64::from(f.flagged));
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
