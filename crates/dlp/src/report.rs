//! The run report: `report.md` beside the run's files (images linked by name) and a
//! self-contained `report.html` (the same Markdown rendered by `pulldown-cmark`, every image
//! embedded as a `data:image/png;base64,` URI), so the page can be mailed or archived alone.
//!
//! One page a person would rather read than the JSON: the headline and the gate, the model
//! beside its baselines (and the previous model), the data, the model, training curves, every
//! test metric, the confusion matrix, curves, the most confident errors, timings, environment
//! and the resolved config.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use pipeline_core::run::{Manifest, write_atomic};
use pipeline_core::{InputSchema, RunDir};
use train::FitReport;

use crate::evaluate::{Evaluation, TestReport};

/// What the data looked like, for the report.
pub struct DataSummary<'a> {
    /// Records read from the source.
    pub records: usize,
    /// Records the reader skipped as malformed.
    pub skipped: usize,
    /// What cleaning removed.
    pub cleaning: &'a preprocess::CleanReport,
    /// Examples in the training, validation and test parts.
    pub parts: (usize, usize, usize),
    /// One example's input.
    pub input: &'a InputSchema,
    /// `(class, training examples, test examples)`, for classification.
    pub classes: Vec<(String, usize, usize)>,
}

/// Everything the report shows.
pub struct ReportInput<'a> {
    /// The pipeline's name.
    pub name: &'a str,
    /// The resolved config as YAML.
    pub config_yaml: &'a str,
    /// The manifest (inputs, timings, environment).
    pub manifest: &'a Manifest,
    /// The data.
    pub data: DataSummary<'a>,
    /// `dlp model summary`'s table.
    pub model_summary: &'a str,
    /// Training.
    pub fit: &'a FitReport,
    /// The evaluation.
    pub evaluation: &'a Evaluation,
}

/// Writes `report.md` and `report.html` into `run`.
pub fn write(run: &RunDir, input: &ReportInput<'_>) -> Result<()> {
    let md = markdown(input, &|file| file.to_string());
    write_atomic(&run.root().join("report.md"), md.as_bytes())?;
    let root = run.root();
    let missing = std::cell::RefCell::new(None);
    let embedded = markdown(input, &|file| match std::fs::read(root.join(file)) {
        Ok(bytes) => format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)),
        Err(e) => {
            missing.borrow_mut().get_or_insert_with(|| format!("{file}: {e}"));
            file.to_string()
        }
    });
    if let Some(m) = missing.into_inner() {
        anyhow::bail!("embedding the report's images: {m}");
    }
    let html = html(input.name, &embedded);
    write_atomic(&root.join("report.html"), html.as_bytes()).context("writing report.html")?;
    Ok(())
}

/// Markdown rendered to a complete HTML page with a small style sheet.
pub fn html(title: &str, markdown: &str) -> String {
    let mut options = pulldown_cmark::Options::empty();
    options.insert(pulldown_cmark::Options::ENABLE_TABLES);
    let parser = pulldown_cmark::Parser::new_ext(markdown, options);
    let mut body = String::new();
    pulldown_cmark::html::push_html(&mut body, parser);
    let title = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\">\n<title>{title}: evaluation report</title>\n<style>\n{STYLE}</style>\n\
         </head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )
}

const STYLE: &str =
    "body { font-family: -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; color: #1f2328; \
background: #f6f8fa; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: 8px; }
h2 { margin-top: 36px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f3f6; }
img { max-width: 100%; border: 1px solid #d0d7de; margin: 8px 8px 8px 0; vertical-align: top; }
pre { background: #f6f8fa; padding: 12px; overflow-x: auto; font-size: 13px; }
code { font-size: 13px; }
";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Escapes the characters that would break a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ").replace('<', "&lt;")
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        Some(v) => format!("{v}"),
        None => "—".into(),
    }
}

/// The report as Markdown; `image` turns a file name in the run directory into the link to use.
pub fn markdown(input: &ReportInput<'_>, image: &dyn Fn(&str) -> String) -> String {
    let e = input.evaluation;
    let m = input.manifest;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# {}: evaluation report\n", input.name);
    let _ = writeln!(
        w,
        "Run started {}{}; seed {}; config `{}`.\n",
        m.started_at,
        m.finished_at.as_ref().map(|f| format!(", finished {f}")).unwrap_or_default(),
        m.seed,
        m.config_file
    );
    let _ = writeln!(w, "**{}**\n", e.test.headline());
    if let Some(g) = &e.gate {
        let verdict = if g.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(w, "Deployment gate on {}: **{verdict}**.\n", g.metric);
    }

    // The model beside its baselines and the previous model.
    let _ = writeln!(w, "## Summary\n");
    let mut header = vec!["metric".to_string(), "model".to_string()];
    header.extend(e.baselines.iter().map(|b| format!("baseline: {}", b.name)));
    if e.comparison.is_some() {
        header.push("previous model".into());
    }
    table_header(w, &header);
    for &metric in e.test.headline_metrics() {
        let Some(v) = e.test.metric(metric) else { continue };
        let mut row = vec![
            format!("{metric}{}", if metric.lower_is_better() { " (lower is better)" } else { "" }),
            format!("**{v:.4}**"),
        ];
        row.extend(e.baselines.iter().map(|b| num(b.report.metric(metric))));
        if let Some(c) = &e.comparison {
            row.push(num(c.previous.metric(metric)));
        }
        table_row(w, &row);
    }
    let _ = writeln!(w);
    for b in &e.baselines {
        let _ = writeln!(w, "- *{}*: {}.", b.name, b.description);
    }
    let _ = writeln!(w);

    if let Some(g) = &e.gate {
        let _ = writeln!(w, "## Gate\n");
        for c in &g.checks {
            let mark = if c.passed { "pass" } else { "**FAIL**" };
            let _ = writeln!(w, "- {mark} ({}): {}", c.rule, c.detail);
        }
        let _ = writeln!(w);
    }

    if let Some(c) = &e.comparison {
        let _ = writeln!(w, "## Comparison with the previous model\n");
        let _ = writeln!(w, "Previous run: `{}`.", c.previous_run.display());
        if !c.same_split {
            let _ = writeln!(
                w,
                "**Caution:** the previous run held out a different test part, so it may have trained on some of these \
                 examples and its scores here may be flattered."
            );
        }
        let d = &c.difference;
        let _ = writeln!(
            w,
            "\nDifference in {} (new − previous): {:+.4}, 95% confidence interval [{:+.4}, {:+.4}] from {} paired \
             bootstrap resamples of the test examples.{}\n",
            c.metric,
            d.observed,
            d.low,
            d.high,
            d.resamples,
            if d.low > 0.0 || d.high < 0.0 { " The interval excludes 0." } else { " The interval contains 0." }
        );
        if let Some(mc) = &c.mcnemar {
            let t = mc.table;
            let _ = writeln!(
                w,
                "McNemar's test ({}): {} examples only the new model gets right, {} only the previous one; statistic \
                 {:.4}, p = {:.4} — {}.\n",
                if mc.exact { "exact binomial" } else { "chi-squared with continuity correction" },
                t[0][1],
                t[1][0],
                mc.result.statistic,
                mc.result.p_value,
                if mc.result.p_value < 0.05 {
                    "the error rates differ significantly at the 5% level"
                } else {
                    "no significant difference in error rates at the 5% level"
                }
            );
        }
    }

    let d = &input.data;
    let _ = writeln!(w, "## Data\n");
    table_header(w, &["".into(), "".into()]);
    for f in &m.inputs {
        table_row(
            w,
            &[
                format!("{} file", f.role),
                format!("`{}` ({} bytes, sha256 {}…)", cell(&f.path), f.bytes, &f.sha256[..12.min(f.sha256.len())]),
            ],
        );
    }
    table_row(w, &["records read".into(), d.records.to_string()]);
    table_row(w, &["malformed records skipped".into(), d.skipped.to_string()]);
    let c = d.cleaning;
    table_row(
        w,
        &[
            "removed in cleaning".into(),
            format!(
                "{} without target, {} duplicates, {} with missing values, {} outliers",
                c.missing_target, c.duplicates, c.missing_values, c.outliers
            ),
        ],
    );
    table_row(w, &["train / validation / test".into(), format!("{} / {} / {}", d.parts.0, d.parts.1, d.parts.2)]);
    let shape = match d.input {
        InputSchema::Tabular { features } => format!("{} features", features.len()),
        InputSchema::Sequence { length, vocab_size } => format!("{length} token ids (vocabulary {vocab_size})"),
        InputSchema::Image { channels, height, width } => format!("{channels}×{height}×{width} image"),
        InputSchema::Series { history, channels, horizon, future } => format!(
            "a window of {history} steps × {channels} channels{}, forecasting {horizon} steps",
            match future {
                0 => String::new(),
                1 => " and 1 known covariate for each step ahead".into(),
                f => format!(" and {f} known covariates for each step ahead"),
            }
        ),
    };
    table_row(w, &["one example".into(), shape]);
    let _ = writeln!(w);
    if !d.classes.is_empty() {
        table_header(w, &["class".into(), "train".into(), "test".into()]);
        for (name, tr, te) in &d.classes {
            table_row(w, &[cell(name), tr.to_string(), te.to_string()]);
        }
        let _ = writeln!(w);
    }

    let _ = writeln!(w, "## Model\n\n```text\n{}```\n", input.model_summary);

    let f = input.fit;
    let _ = writeln!(w, "## Training\n");
    let _ = writeln!(w, "![Training curves]({})\n", image("training_curves.png"));
    let last = f.history.last();
    let mut speeds: Vec<f64> = f.history.iter().map(|h| h.samples_per_sec).filter(|v| v.is_finite()).collect();
    speeds.sort_by(f64::total_cmp);
    let median = speeds.get(speeds.len() / 2).copied();
    let _ = writeln!(
        w,
        "{} epochs{}; best epoch {} by {}{}. Final training loss {}, validation loss {}, validation accuracy {}. \
         Median throughput {} samples/s.\n",
        f.history.len(),
        if f.stopped_early { " (stopped early)" } else { "" },
        f.best_epoch,
        serde_json::to_value(f.monitor).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        if f.restored_best { ", whose weights were restored" } else { "" },
        num(last.map(|h| h.train_loss)),
        num(last.and_then(|h| h.val_loss)),
        num(last.and_then(|h| h.val_accuracy)),
        median.map_or("—".into(), |v| format!("{v:.0}")),
    );

    test_sections(w, e, image);

    let _ = writeln!(w, "## Timings\n");
    table_header(w, &["phase".into(), "seconds".into()]);
    for t in &m.timings {
        table_row(w, &[t.phase.clone(), format!("{:.2}", t.seconds)]);
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "## Environment\n");
    let versions: Vec<String> = m.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        w,
        "{}; git revision {}; {} {} with {} CPUs.\n",
        versions.join(", "),
        m.git_revision.as_deref().unwrap_or("unknown"),
        m.host.os,
        m.host.arch,
        m.host.cpus
    );
    let _ = writeln!(w, "## Config\n\n```yaml\n{}```", input.config_yaml);
    s
}

/// The test metrics, plots, most confident errors and notes of `e`, appended to `w` (the run
/// report's, and `dlp evaluate`'s); `image` turns a plot's file name into its link.
pub fn test_sections(w: &mut String, e: &Evaluation, image: &dyn Fn(&str) -> String) {
    let _ = writeln!(w, "## Test metrics\n");
    match &e.test {
        TestReport::Classification { labels, report } => {
            table_header(w, &["class".into(), "precision".into(), "recall".into(), "F1".into(), "support".into()]);
            let rows =
                report.per_class.iter().chain(report.micro_avg.iter()).chain([&report.macro_avg, &report.weighted_avg]);
            for r in rows {
                table_row(
                    w,
                    &[
                        cell(&r.label),
                        format!("{:.4}", r.precision),
                        format!("{:.4}", r.recall),
                        format!("{:.4}", r.f1),
                        r.support.to_string(),
                    ],
                );
            }
            let _ = writeln!(w);
            let _ = writeln!(
                w,
                "Accuracy {:.4}, balanced accuracy {:.4}, Matthews correlation {:.4}.",
                report.accuracy, report.balanced_accuracy, report.mcc
            );
            if let Some(p) = &report.probability_scores {
                let _ = writeln!(
                    w,
                    "ROC AUC {}, average precision {}, log loss {:.4}{}.",
                    num(p.roc_auc),
                    num(p.average_precision),
                    p.log_loss,
                    p.top_k.map(|t| format!(", top-{} accuracy {:.4}", t.k, t.accuracy)).unwrap_or_default()
                );
            }
            let _ = writeln!(w);
            if labels.len() <= 20 {
                let _ = writeln!(w, "Confusion matrix (rows: true class, columns: predicted):\n");
                let mut h = vec!["true \\ predicted".to_string()];
                h.extend(labels.iter().map(|l| cell(l)));
                table_header(w, &h);
                for (l, row) in labels.iter().zip(&report.confusion) {
                    let mut r = vec![cell(l)];
                    r.extend(row.iter().map(ToString::to_string));
                    table_row(w, &r);
                }
                let _ = writeln!(w);
            }
            if !report.most_confused.is_empty() {
                let _ = writeln!(w, "Most confused pairs:\n");
                for p in report.most_confused.iter().take(5) {
                    let name = |c: u32| labels.get(c as usize).map_or_else(|| c.to_string(), |l| cell(l));
                    let _ = writeln!(w, "- {} taken for {}: {} times", name(p.actual), name(p.predicted), p.count);
                }
                let _ = writeln!(w);
            }
        }
        TestReport::Regression(r) => {
            table_header(w, &["MSE".into(), "RMSE".into(), "MAE".into(), "R²".into(), "MAPE".into()]);
            table_row(
                w,
                &[
                    format!("{:.4}", r.mse),
                    format!("{:.4}", r.rmse),
                    format!("{:.4}", r.mae),
                    format!("{:.4}", r.r2),
                    format!("{:.4}", r.mape),
                ],
            );
            let _ = writeln!(w);
        }
        TestReport::Forecast(f) => {
            table_header(
                w,
                &["steps ahead".into(), "MASE".into(), "MAE".into(), "RMSE".into(), "MAPE".into(), "sMAPE".into()],
            );
            let row = |label: String, r: &eval::forecast::ForecastReport| {
                [
                    label,
                    num(Some(r.mase).filter(|v| v.is_finite())),
                    format!("{:.4}", r.mae),
                    format!("{:.4}", r.rmse),
                    format!("{:.4}", r.mape),
                    format!("{:.4}", r.smape),
                ]
            };
            table_row(w, &row(format!("all ({} forecasts)", f.examples), &f.overall));
            if f.horizon > 1 {
                for (j, r) in f.by_step.iter().enumerate() {
                    table_row(w, &row((j + 1).to_string(), r));
                }
            }
            let _ = writeln!(w);
        }
    }
    for p in e.plots.iter().filter(|p| p.file != "errors.png") {
        let _ = writeln!(w, "![{}]({})", p.title, image(&p.file));
    }
    let _ = writeln!(w);

    if !e.errors.is_empty() {
        let _ = writeln!(w, "## Most confident errors\n");
        if let Some(p) = e.plots.iter().find(|p| p.file == "errors.png") {
            let _ = writeln!(w, "![{}]({})\n", p.title, image(&p.file));
        }
        let has_text = e.errors.iter().any(|x| x.text.is_some());
        let mut h = vec!["source row".to_string(), "true".into(), "predicted".into(), "confidence".into()];
        if has_text {
            h.push("text".into());
        }
        table_header(w, &h);
        for x in e.errors.iter().take(12) {
            let mut r = vec![x.row.to_string(), cell(&x.actual), cell(&x.predicted), format!("{:.3}", x.confidence)];
            if has_text {
                r.push(cell(x.text.as_deref().unwrap_or("")));
            }
            table_row(w, &r);
        }
        let _ = writeln!(w);
    }

    if !e.notes.is_empty() {
        let _ = writeln!(w, "## Notes\n");
        for n in &e.notes {
            let _ = writeln!(w, "- {n}");
        }
        let _ = writeln!(w);
    }
}

fn table_header(w: &mut String, cells: &[String]) {
    table_row(w, cells);
    let _ = writeln!(w, "|{}", "---|".repeat(cells.len()));
}

fn table_row(w: &mut String, cells: &[String]) {
    let _ = writeln!(w, "| {} |", cells.join(" | "));
}

/// The `src` of every `<img>` in `html`, in order.
pub fn image_sources(html: &str) -> Vec<&str> {
    html.match_indices("<img src=\"")
        .filter_map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// Checks a report page: every image is an embedded PNG that decodes in full. Returns how many.
pub fn check_embedded(html_path: &Path) -> Result<usize> {
    let html = std::fs::read_to_string(html_path).with_context(|| html_path.display().to_string())?;
    let sources = image_sources(&html);
    for src in &sources {
        let data = src.strip_prefix("data:image/png;base64,").with_context(|| format!("image not embedded: {src}"))?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(data).context("image data is not base64")?;
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).context("embedded image is not a PNG")?;
    }
    Ok(sources.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tables_and_embedded_images_render() {
        let png = {
            let img = image_bytes();
            format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(img))
        };
        let md = format!("# t\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![curves]({png})\n");
        let page = html("run <1>", &md);
        assert!(page.contains("<table>") && page.contains("<td>2</td>"), "{page}");
        assert!(page.contains("<title>run &lt;1&gt;: evaluation report</title>"));
        let srcs = image_sources(&page);
        assert_eq!(srcs, [png.as_str()]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.html");
        std::fs::write(&p, &page).unwrap();
        assert_eq!(check_embedded(&p).unwrap(), 1);
        std::fs::write(&p, html("x", "![a](curves.png)")).unwrap();
        assert!(check_embedded(&p).unwrap_err().to_string().contains("not embedded"));
    }

    fn image_bytes() -> Vec<u8> {
        let img = image::RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        png
    }

    #[test]
    fn cells_escape_pipes() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
