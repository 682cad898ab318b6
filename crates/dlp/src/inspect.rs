//! `dlp inspect`: what the data looks like before any training.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use data_ingest::summary::{ColumnSummary, Summary, summarize};
use pipeline_core::RunDir;
use pipeline_core::run::{write_atomic, write_json};

use crate::config::PipelineConfig;

/// The report's files.
#[derive(Debug)]
pub struct InspectOutput {
    /// The directory written.
    pub dir: PathBuf,
    /// The text table printed.
    pub table: String,
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}

fn row(c: &ColumnSummary, target: bool) -> Vec<String> {
    let name = if target { format!("{} (target)", c.name) } else { c.name.clone() };
    let mut r = vec![
        name,
        format!("{:?}", c.kind).to_lowercase(),
        c.count.to_string(),
        c.missing.to_string(),
        c.distinct.to_string(),
    ];
    match &c.numeric {
        Some(s) => r.extend([s.mean, s.std, s.min, s.q1, s.median, s.q3, s.max].map(num)),
        None => r.extend(std::iter::repeat_n(String::new(), 7)),
    }
    r.push(match (&c.mean_words, c.top.first()) {
        (Some(w), _) => format!("mean {w:.1} words"),
        (None, Some((v, n))) if !target => format!("most frequent {v:?} ({n})"),
        _ => String::new(),
    });
    r
}

const HEADER: [&str; 13] =
    ["column", "kind", "count", "missing", "distinct", "mean", "std", "min", "25%", "50%", "75%", "max", "notes"];

fn text_table(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = String>| {
        cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    let mut out = line(&mut HEADER.iter().map(|s| s.to_string())) + "\n";
    for r in rows {
        out += &(line(&mut r.iter().cloned()) + "\n");
    }
    out
}

fn markdown(s: &Summary, name: &str, rows: &[Vec<String>]) -> String {
    let mut md = format!("# Data summary: {name}\n\n{} records.\n\n", s.rows);
    if let Some(a) = &s.audio {
        let _ = writeln!(
            md,
            "Audio clips of {} samples at {} Hz; `duration_s` is each recording's own length, `rms_dbfs` its level.\n",
            a.samples, a.sample_rate
        );
    }
    if let Some(img) = &s.image {
        let _ = writeln!(
            md,
            "Images {} x {} x {} (channels x height x width); pixel mean per channel {:?}, standard deviation {:?}.\n",
            img.channels, img.height, img.width, img.channel_mean, img.channel_std
        );
    }
    if !rows.is_empty() {
        md += &format!("| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(HEADER.len()));
        for r in rows {
            md += &format!("| {} |\n", r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "));
        }
        md.push('\n');
    }
    if let Some(t) = &s.target {
        let _ = writeln!(md, "## Target `{}`\n", t.name);
        match &t.numeric {
            Some(n) => {
                let _ = writeln!(
                    md,
                    "mean {}, std {}, min {}, median {}, max {}\n",
                    num(n.mean),
                    num(n.std),
                    num(n.min),
                    num(n.median),
                    num(n.max)
                );
            }
            None => {
                md += "| class | count | share |\n|---|---|---|\n";
                for (v, n) in &t.top {
                    let _ = writeln!(md, "| {v} | {n} | {:.1} % |", 100.0 * *n as f64 / t.count.max(1) as f64);
                }
                md.push('\n');
            }
        }
    }
    let _ = writeln!(md, "Exact duplicate records: {}.\n", s.duplicate_rows);
    if !s.associations.is_empty() {
        md += "## Features most associated with the target\n\n| feature | measure | value |\n|---|---|---|\n";
        for a in &s.associations {
            let _ = writeln!(md, "| {} | {} | {:.4} |", a.feature, a.measure, a.value);
        }
    }
    md
}

/// File-name-safe version of a column name.
fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Reads the data of `config`, summarizes it, and writes `summary.json`, `summary.md` and one
/// histogram PNG per numeric column into a new directory under `runs_dir`.
pub fn inspect(config: &PipelineConfig, runs_dir: &Path) -> Result<InspectOutput> {
    let ingested = data_ingest::load(&config.data).context("reading the data")?;
    let s = summarize(&ingested.data, &config.data.target_spec());
    let stem = format!("{}-inspect-{}", config.name, chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    let dir = RunDir::create(runs_dir, &stem)?;
    let rows: Vec<Vec<String>> =
        s.columns.iter().map(|c| row(c, false)).chain(s.target.iter().map(|t| row(t, true))).collect();
    let mut table = format!("{} records", s.rows);
    if !ingested.report.bad_records.is_empty() || ingested.report.skipped > 0 {
        table += &format!(", {} bad records skipped", ingested.report.skipped);
    }
    table.push('\n');
    if let Some(img) = &s.image {
        table += &format!(
            "images {}x{}x{}, pixel mean {:?}\n",
            img.channels,
            img.height,
            img.width,
            img.channel_mean.iter().map(|m| (m * 100.0).round() / 100.0).collect::<Vec<_>>()
        );
    }
    if let Some(a) = &s.audio {
        table += &format!(
            "audio clips of {} samples at {} Hz ({:.3} s; duration_s is each recording's own length)\n",
            a.samples,
            a.sample_rate,
            a.samples as f64 / f64::from(a.sample_rate)
        );
    }
    if !rows.is_empty() {
        table += &text_table(&rows);
    }
    if let Some(t) = &s.target
        && t.numeric.is_none()
    {
        table += &format!(
            "target `{}`: {}\n",
            t.name,
            t.top
                .iter()
                .map(|(v, n)| format!("{v} {n} ({:.1} %)", 100.0 * *n as f64 / t.count.max(1) as f64))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    table += &format!("exact duplicate records: {}\n", s.duplicate_rows);
    if !s.associations.is_empty() {
        table += &format!(
            "most associated with the target: {}\n",
            s.associations
                .iter()
                .take(5)
                .map(|a| format!("{} {:.3}", a.feature, a.value))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    write_json(&dir.root().join("summary.json"), &serde_json::json!({ "summary": s, "read": ingested.report }))?;
    write_atomic(&dir.root().join("summary.md"), markdown(&s, &config.name, &rows).as_bytes())?;
    let hist = dir.root().join("histograms");
    for c in s.columns.iter().chain(s.target.iter()) {
        if let Some(h) = &c.histogram {
            std::fs::create_dir_all(&hist)?;
            eval::plot::histogram_png(
                &c.name,
                &c.name,
                &h.edges,
                &h.counts,
                &hist.join(format!("{}.png", slug(&c.name))),
            )?;
        }
    }
    Ok(InspectOutput { dir: dir.root().to_path_buf(), table })
}
