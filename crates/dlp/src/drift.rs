//! `dlp drift <bundle> --data <file>`: the server's drift check over a whole file.
//!
//! Reads the records the way `dlp predict` does, predicts them with the bundle (for the
//! `prediction` feature), and compares every feature with the bundle's training reference
//! ([`serve::drift::compare`]): the same statistics and thresholds as the server's sliding
//! window, with the file as the window.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serve::drift::{DriftReport, Extractor, Thresholds};

/// Compares the records of `data` with the training reference of the bundle at `bundle`.
pub fn check(bundle: &Path, data: &Path, format: serve::InputFormat, thresholds: &Thresholds) -> Result<DriftReport> {
    let b = bundle::Bundle::load(bundle, &candle_core::Device::Cpu)?;
    let Some(reference) = b.reference.clone() else {
        bail!(
            "{}: this bundle has no reference statistics ({}; bundles written before drift monitoring lack it): \
             retrain it with this dlp to check drift",
            bundle.display(),
            bundle::reference::REFERENCE_FILE
        );
    };
    let audio = matches!(b.preprocess.raw, pipeline_core::raw::RawSchema::Audio { .. });
    if format == serve::InputFormat::ImageFolder && !audio {
        bail!(
            "{}: dlp drift reads images from an IDX file or a CSV of pixel columns, not from a folder",
            data.display()
        );
    }
    let inputs = serve::read_inputs(&b, data, format).with_context(|| format!("reading {}", data.display()))?;
    if inputs.rows() == 0 {
        bail!("{}: no records", data.display());
    }
    let predictions = b.predict(&inputs).with_context(|| format!("predicting {}", data.display()))?;
    let samples = Extractor::new(reference.clone()).extract(&inputs, &predictions, b.task());
    Ok(serve::drift::compare(&reference, &samples, inputs.rows(), thresholds))
}

/// A p-value to four decimals, or in scientific notation below 0.001.
fn p_value(p: f64) -> String {
    if p.is_nan() {
        "-".into()
    } else if p >= 1e-3 {
        format!("{p:.4}")
    } else {
        format!("{p:.2e}")
    }
}

/// The report as a table, one feature a line, and a closing verdict.
pub fn table(report: &DriftReport) -> String {
    let width = report.features.iter().map(|f| f.name.len()).max().unwrap_or(7).max(7);
    let mut out = format!(
        "{:<width$}  {:<11}  {:>6}  {:>7}  {:<4}  {:>9}  {:>9}  flagged\n",
        "feature", "kind", "rows", "psi", "test", "statistic", "p-value"
    );
    for f in &report.features {
        let (test, stat, p) = match (&f.ks, &f.chi2) {
            (Some(k), _) => ("ks", k.statistic, k.p_value),
            (_, Some(c)) => ("chi2", c.statistic, c.p_value),
            _ => ("-", f64::NAN, f64::NAN),
        };
        let line = format!(
            "{:<width$}  {:<11}  {:>6}  {:>7.4}  {:<4}  {:>9.4}  {:>9}  {}",
            f.name,
            f.kind,
            f.rows,
            f.psi,
            test,
            stat,
            p_value(p),
            if f.flagged { format!("yes: {}", f.reasons.join(", ")) } else { String::new() }
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let flagged: Vec<&str> = report.features.iter().filter(|f| f.flagged).map(|f| f.name.as_str()).collect();
    if report.rows < report.thresholds.min_rows {
        let _ = writeln!(
            out,
            "drift: not judged: {} records, fewer than the {} needed (--drift-min-rows)",
            report.rows, report.thresholds.min_rows
        );
    } else if flagged.is_empty() {
        let _ = writeln!(out, "drift: none of {} features flagged ({} records)", report.features.len(), report.rows);
    } else {
        let _ = writeln!(
            out,
            "drift: {} of {} features flagged ({}) over {} records",
            flagged.len(),
            report.features.len(),
            flagged.join(", "),
            report.rows
        );
    }
    out
}
