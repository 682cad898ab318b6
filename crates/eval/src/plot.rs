//! PNG plots, drawn with `plotters` into memory, encoded with `image`, written atomically.
//! Text uses the embedded DejaVu Sans (see `assets/`), so no system font is needed.
//!
//! Training curves ([`charts_png`]), histograms ([`histogram_png`]), confusion-matrix heat
//! maps ([`confusion_png`]), ROC / precision-recall curves ([`roc_png`],
//! [`precision_recall_png`]), scatter plots ([`scatter_png`]) and captioned image grids
//! ([`image_grid_png`]). Every chart goes through one renderer, so they all look alike
//! and are written the same way.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::curves::{PrCurve, RocCurve};

/// A named series of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// The points, in x order. Non-finite values are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, axis labels and its series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Title above the chart.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

/// What can go wrong drawing or writing a plot.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {message}")]
pub struct PlotError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// Matplotlib's `tab10` colours, in order.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is embedded at compile time; registering it cannot fail for a valid file.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws `charts` side by side (each `panel` pixels wide and high) into a PNG at `path`.
pub fn charts_png(charts: &[Chart], panel: (u32, u32), path: &Path) -> Result<(), PlotError> {
    let columns = charts.len().max(1);
    render_png(path, (panel.0 * columns as u32, panel.1), |root| {
        for (chart, area) in charts.iter().zip(root.split_evenly((1, columns))) {
            draw(chart, &area)?;
        }
        Ok(())
    })
}

/// Draws a histogram (`edges.len() == counts.len() + 1`) into a PNG at `path`.
pub fn histogram_png(
    title: &str,
    x_label: &str,
    edges: &[f64],
    counts: &[usize],
    path: &Path,
) -> Result<(), PlotError> {
    if edges.len() != counts.len() + 1 || counts.is_empty() {
        return Err(plot_error(path, &"a histogram needs one more edge than bins"));
    }
    render_png(path, (480, 320), |root| {
        let (x0, x1) = (edges[0], edges[edges.len() - 1]);
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.05;
        let mut ctx = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, 0f64..top)
            .map_err(|e| e.to_string())?;
        ctx.configure_mesh()
            .x_desc(x_label)
            .y_desc("count")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
        let color = COLORS[0];
        ctx.draw_series(edges.windows(2).zip(counts).map(|(e, &c)| {
            Rectangle::new(
                [(e[0], 0.0), (if e[1] > e[0] { e[1] } else { e[0] + 1.0 }, c as f64)],
                color.mix(0.8).filled(),
            )
        }))
        .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// The drawing area of a PNG being rendered.
type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn plot_error(path: &Path, message: &dyn std::fmt::Display) -> PlotError {
    PlotError { path: path.display().to_string(), message: message.to_string() }
}

/// The one way this module makes a PNG: a white `size` canvas with the font registered,
/// `paint` on it, then encoded in memory and written atomically to `path`.
fn render_png(
    path: &Path,
    size: (u32, u32),
    paint: impl FnOnce(&Canvas<'_>) -> Result<(), String>,
) -> Result<(), PlotError> {
    register_font();
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let (w, h) = size;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        paint(&root).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| fail(&"buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| fail(&e))?;
    pipeline_core::run::write_atomic(path, &png).map_err(|e| fail(&e))
}

/// Draws ROC curves (one per `(legend label, curve)`, e.g. one per class with its AUC in the
/// label) on the unit square with the chance diagonal, into a 560 × 480 PNG at `path`.
/// Points with a NaN rate (a class without positives or negatives) are skipped.
pub fn roc_png(title: &str, curves: &[(&str, &RocCurve)], path: &Path) -> Result<(), PlotError> {
    let series: Vec<(&str, Vec<(f64, f64)>)> =
        curves.iter().map(|(name, c)| (*name, c.fpr.iter().copied().zip(c.tpr.iter().copied()).collect())).collect();
    render_png(path, (560, 480), |root| {
        let labels = ("false positive rate", "true positive rate");
        unit_curves(root, title, labels, &series, true, SeriesLabelPosition::LowerRight)
    })
}

/// Draws precision-recall curves (one per `(legend label, curve)`) as steps, the way
/// scikit-learn's `PrecisionRecallDisplay` does (`drawstyle="steps-post"`), into a 560 × 480
/// PNG at `path`.
pub fn precision_recall_png(title: &str, curves: &[(&str, &PrCurve)], path: &Path) -> Result<(), PlotError> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|(name, c)| {
            let pts: Vec<(f64, f64)> = c.recall.iter().copied().zip(c.precision.iter().copied()).collect();
            let mut steps = Vec::with_capacity(pts.len() * 2);
            for (i, &p) in pts.iter().enumerate() {
                if let Some(prev) = i.checked_sub(1).map(|j| pts[j]) {
                    steps.push((p.0, prev.1));
                }
                steps.push(p);
            }
            (*name, steps)
        })
        .collect();
    render_png(path, (560, 480), |root| {
        unit_curves(root, title, ("recall", "precision"), &series, false, SeriesLabelPosition::LowerLeft)
    })
}

/// Draws `points` as a scatter plot into a 520 × 480 PNG at `path`, with the `y = x` line
/// when `diagonal` (predicted against actual values: points on the line are exact).
/// Non-finite points are skipped.
pub fn scatter_png(
    title: &str,
    (x_label, y_label): (&str, &str),
    points: &[(f64, f64)],
    diagonal: bool,
    path: &Path,
) -> Result<(), PlotError> {
    let pts: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let (mut lo, mut hi, mut y_lo, mut y_hi) = bounds(&pts);
    if diagonal {
        // One scale on both axes, so the diagonal is at 45°.
        lo = lo.min(y_lo);
        hi = hi.max(y_hi);
        (y_lo, y_hi) = (lo, hi);
    }
    let pad = |a: f64, b: f64| ((b - a) * 0.04).max(1e-6);
    let (px, py) = (pad(lo, hi), pad(y_lo, y_hi));
    render_png(path, (520, 480), |root| {
        let mut ctx = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(60)
            .build_cartesian_2d((lo - px)..(hi + px), (y_lo - py)..(y_hi + py))
            .map_err(|e| e.to_string())?;
        ctx.configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        if diagonal {
            let style = BLACK.mix(0.45).stroke_width(1);
            ctx.draw_series(DashedLineSeries::new([(lo, lo), (hi, hi)], 6, 5, style)).map_err(|e| e.to_string())?;
        }
        let color = COLORS[0];
        ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.mix(0.6).filled()))).map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// One image of an [`image_grid_png`]: 8-bit values, channel-first, with a caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// `channels × height × width` values in 0–255 (clamped).
    pub pixels: Vec<f32>,
    /// Text under the image (one line, cut to fit).
    pub caption: String,
}

/// Draws `tiles` in rows of `columns` into a PNG at `path`, each image enlarged (nearest
/// neighbour) to about 96 pixels on its longer side, with its caption under it and `title`
/// above. Errors on a tile whose pixel count does not match its shape.
pub fn image_grid_png(title: &str, tiles: &[Tile], columns: usize, path: &Path) -> Result<(), PlotError> {
    if let Some(t) = tiles.iter().find(|t| t.pixels.len() != t.channels * t.height * t.width || t.channels == 0) {
        return Err(plot_error(
            path,
            &format!("a tile of {} values is not {}x{}x{}", t.pixels.len(), t.channels, t.height, t.width),
        ));
    }
    let columns = columns.max(1);
    let rows = tiles.len().div_ceil(columns).max(1);
    let longest = tiles.iter().map(|t| t.height.max(t.width)).max().unwrap_or(28).max(1);
    let scale = (96 / longest).max(1);
    let cell_w = (longest * scale + 16).max(110);
    let cell_h = longest * scale + 30;
    let head = 36;
    let size = ((cell_w * columns + 8) as u32, (cell_h * rows + head + 8) as u32);
    render_png(path, size, |root| {
        let title_font = FontDesc::new(FontFamily::Name("sans-serif"), 18.0, FontStyle::Normal);
        let caption_font = FontDesc::new(FontFamily::Name("sans-serif"), 12.0, FontStyle::Normal);
        let err = |e: &dyn std::fmt::Display| e.to_string();
        root.draw(&Text::new(title, (size.0 as i32 / 2, 10), anchored(&title_font, HPos::Center, VPos::Top)))
            .map_err(|e| err(&e))?;
        for (i, t) in tiles.iter().enumerate() {
            let (r, c) = (i / columns, i % columns);
            let x0 = (4 + c * cell_w + (cell_w - t.width * scale) / 2) as i32;
            let y0 = (head + r * cell_h) as i32;
            let plane = t.height * t.width;
            for y in 0..t.height {
                for x in 0..t.width {
                    let v = |ch: usize| t.pixels[ch * plane + y * t.width + x].clamp(0.0, 255.0).round() as u8;
                    let color = if t.channels >= 3 { RGBColor(v(0), v(1), v(2)) } else { RGBColor(v(0), v(0), v(0)) };
                    let (px, py) = (x0 + (x * scale) as i32, y0 + (y * scale) as i32);
                    root.draw(&Rectangle::new([(px, py), (px + scale as i32, py + scale as i32)], color.filled()))
                        .map_err(|e| err(&e))?;
                }
            }
            let caption: String = t.caption.chars().take(cell_w / 7).collect();
            let cx = (4 + c * cell_w + cell_w / 2) as i32;
            let cy = y0 + (t.height * scale) as i32 + 4;
            root.draw(&Text::new(caption, (cx, cy), anchored(&caption_font, HPos::Center, VPos::Top)))
                .map_err(|e| err(&e))?;
        }
        Ok(())
    })
}

/// Lines on the unit square, with an optional dashed chance diagonal and a legend.
fn unit_curves(
    root: &Canvas<'_>,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[(&str, Vec<(f64, f64)>)],
    diagonal: bool,
    legend: SeriesLabelPosition,
) -> Result<(), String> {
    let mut ctx = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(52)
        .build_cartesian_2d(-0.01f64..1.01, -0.01f64..1.01)
        .map_err(|e| e.to_string())?;
    ctx.configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    if diagonal {
        let style = BLACK.mix(0.45).stroke_width(1);
        ctx.draw_series(DashedLineSeries::new([(0.0, 0.0), (1.0, 1.0)], 6, 5, style))
            .map_err(|e| e.to_string())?
            .label("chance")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        ctx.draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(legend)
        .draw()
        .map_err(|e| e.to_string())
}

/// Draws a confusion matrix as a heat map into a PNG at `path`: rows are true classes, columns
/// predicted ones, both labelled with `labels` (cut to 20 characters). Each cell shows its
/// count, or with `normalize` its share of the row as a percentage (rows without examples are
/// 0%, as [`normalize_rows`](crate::confusion::normalize_rows) gives), shaded from white to
/// dark blue by the value shown. The image grows with the number of classes (cells of 18 to
/// 72 pixels). Errors unless `confusion` is square with one row per label.
pub fn confusion_png(
    title: &str,
    confusion: &[Vec<u64>],
    labels: &[String],
    normalize: bool,
    path: &Path,
) -> Result<(), PlotError> {
    let k = labels.len();
    if k == 0 || confusion.len() != k || confusion.iter().any(|row| row.len() != k) {
        return Err(plot_error(path, &"a confusion matrix needs one row and one column per label"));
    }
    register_font();
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let shares = crate::confusion::normalize_rows(confusion);
    let max = confusion.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let (value, text): (Vec<Vec<f64>>, Vec<Vec<String>>) = if normalize {
        let text = shares.iter().map(|row| row.iter().map(|&s| percent(s)).collect()).collect();
        (shares, text)
    } else {
        let value = confusion.iter().map(|row| row.iter().map(|&c| c as f64 / max).collect()).collect();
        (value, confusion.iter().map(|row| row.iter().map(u64::to_string).collect()).collect())
    };
    let labels: Vec<String> =
        labels
            .iter()
            .map(|l| {
                if l.chars().count() > 20 {
                    format!("{}…", l.chars().take(19).collect::<String>())
                } else {
                    l.clone()
                }
            })
            .collect();

    // Layout, in pixels.
    let cell = (560 / k as i32).clamp(18, 72);
    let label_font = ("sans-serif", (cell as f64 * 0.7).clamp(9.0, 14.0)).into_font();
    let value_font = ("sans-serif", (cell as f64 * 0.3).clamp(8.0, 16.0)).into_font();
    let desc_font = ("sans-serif", 15).into_font();
    let title_font = ("sans-serif", 20).into_font();
    let size = |font: &FontDesc, s: &str| font.box_size(s).map(|(w, h)| (w as i32, h as i32));
    let mut label_w = 0;
    let mut label_h = 0;
    for l in &labels {
        let (w, h) = size(&label_font, l).map_err(|e| fail(&e))?;
        label_w = label_w.max(w);
        label_h = label_h.max(h);
    }
    let rotate = label_w > cell - 6;
    let (title_w, title_h) = size(&title_font, title).map_err(|e| fail(&e))?;
    let desc_h = size(&desc_font, "true label").map_err(|e| fail(&e))?.1;
    let grid = cell * k as i32;
    let left = 12 + desc_h + 10 + label_w + 8;
    let top = 12 + title_h + 14;
    let ticks = if rotate { label_w } else { label_h } + 8;
    let (w, h) = ((left + grid + 24).max(title_w + 24).max(320), top + grid + 6 + ticks + desc_h + 16);

    render_png(path, (w as u32, h as u32), |root| {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        root.draw(&Text::new(title, (w / 2, 12), anchored(&title_font, HPos::Center, VPos::Top)))
            .map_err(|e| err(&e))?;
        for t in 0..k {
            for p in 0..k {
                let (x0, y0) = (left + p as i32 * cell, top + t as i32 * cell);
                let v = value[t][p].clamp(0.0, 1.0);
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], blues(v).filled()))
                    .map_err(|e| err(&e))?;
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], RGBColor(200, 200, 200)))
                    .map_err(|e| err(&e))?;
                let ink = if v > 0.55 { WHITE } else { BLACK };
                let style = value_font.color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(text[t][p].as_str(), (x0 + cell / 2, y0 + cell / 2), style))
                    .map_err(|e| err(&e))?;
            }
        }
        for (i, l) in labels.iter().enumerate() {
            let mid = i as i32 * cell + cell / 2;
            let row = anchored(&label_font, HPos::Right, VPos::Center);
            root.draw(&Text::new(l.as_str(), (left - 8, top + mid), row)).map_err(|e| err(&e))?;
            let column = if rotate {
                label_font.transform(FontTransform::Rotate270).color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center))
            } else {
                anchored(&label_font, HPos::Center, VPos::Top)
            };
            root.draw(&Text::new(l.as_str(), (left + mid, top + grid + 6), column)).map_err(|e| err(&e))?;
        }
        let x_desc = anchored(&desc_font, HPos::Center, VPos::Top);
        root.draw(&Text::new("predicted label", (left + grid / 2, top + grid + 6 + ticks + 4), x_desc))
            .map_err(|e| err(&e))?;
        let y_desc =
            desc_font.transform(FontTransform::Rotate270).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw(&Text::new("true label", (12 + desc_h / 2, top + grid / 2), y_desc)).map_err(|e| err(&e))?;
        Ok(())
    })
}

/// Black text in `font`, anchored at `(h, v)`.
fn anchored<'a>(font: &FontDesc<'a>, h: HPos, v: VPos) -> TextStyle<'a> {
    font.color(&BLACK).pos(Pos::new(h, v))
}

/// A share as a percentage for a heat-map cell: `0%`, `<1%` for a small non-zero share.
fn percent(share: f64) -> String {
    match share * 100.0 {
        0.0 => "0%".into(),
        p if p < 0.5 => "<1%".into(),
        p => format!("{p:.0}%"),
    }
}

/// Matplotlib's `Blues` colour map at `v` in [0, 1], interpolated between five of its colours.
fn blues(v: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] =
        [(247.0, 251.0, 255.0), (198.0, 219.0, 239.0), (107.0, 174.0, 214.0), (33.0, 113.0, 181.0), (8.0, 48.0, 107.0)];
    let x = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let t = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `(x min, x max, y min, y max)` of `points`; the unit square when there are none.
fn bounds(points: &[(f64, f64)]) -> (f64, f64, f64, f64) {
    if points.is_empty() {
        return (0.0, 1.0, 0.0, 1.0);
    }
    points.iter().fold((f64::MAX, f64::MIN, f64::MAX, f64::MIN), |(x0, x1, y0, y1), &(x, y)| {
        (x0.min(x), x1.max(x), y0.min(y), y1.max(y))
    })
}

fn draw<DB: DrawingBackend>(chart: &Chart, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let finite: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (x0, mut x1, y0, y1) = bounds(&finite);
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let mut ctx = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| e.to_string())?;
    let integer_x = finite.iter().all(|(x, _)| x.fract() == 0.0);
    ctx.configure_mesh()
        .x_label_formatter(&|x| match (integer_x, x.fract() == 0.0) {
            (true, true) => format!("{x:.0}"),
            (true, false) => String::new(),
            (false, _) => format!("{x}"),
        })
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        ctx.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        if pts.len() <= 60 {
            ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| e.to_string())?;
        }
    }
    // The legend goes in the right-hand corner away from where the lines end.
    let ends: Vec<f64> =
        chart.series.iter().filter_map(|s| s.points.iter().rev().find(|p| p.1.is_finite())).map(|p| p.1).collect();
    let end_high = !ends.is_empty() && (ends.iter().sum::<f64>() / ends.len() as f64 - y0) > (y1 - y0) / 2.0;
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(if end_high { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight })
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a test writes its PNG: a temporary directory, or `$EVAL_PLOT_DIR` when set (to
    /// look at the images).
    fn out(name: &str) -> (Option<tempfile::TempDir>, std::path::PathBuf) {
        match std::env::var_os("EVAL_PLOT_DIR") {
            Some(dir) => (None, std::path::PathBuf::from(dir).join(name)),
            None => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(name);
                (Some(dir), path)
            }
        }
    }

    fn has(img: &image::RgbImage, c: RGBColor) -> bool {
        img.pixels().any(|px| px.0 == [c.0, c.1, c.2])
    }

    #[test]
    fn image_grids_show_each_tile_enlarged_with_its_caption() {
        // A white square on black and a red RGB tile.
        let mut square = vec![0.0f32; 28 * 28];
        for y in 10..18 {
            for x in 10..18 {
                square[y * 28 + x] = 255.0;
            }
        }
        let grey = Tile { channels: 1, height: 28, width: 28, pixels: square, caption: "7 → 1 (0.98)".into() };
        let mut red = vec![0.0f32; 3 * 4 * 4];
        red[..16].fill(255.0);
        let rgb = Tile { channels: 3, height: 4, width: 4, pixels: red, caption: "red".into() };
        let (_dir, p) = out("grid.png");
        image_grid_png("Most confident errors", &[grey.clone(), rgb, grey.clone()], 2, &p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        let (w, h) = img.dimensions();
        assert!(w >= 2 * 96 && h >= 2 * 96, "{w}x{h}");
        // The 8-pixel square at 3x scale is a 24 x 24 white block inside black.
        let black = img.pixels().filter(|px| px.0 == [0, 0, 0]).count();
        assert!(black >= 2 * (84 * 84 - 24 * 24), "{black}");
        assert!(has(&img, RGBColor(255, 0, 0)));
        let bad = Tile { pixels: vec![0.0; 5], ..grey };
        assert!(image_grid_png("x", &[bad], 2, &p).is_err());
    }

    #[test]
    fn scatter_plots_draw_every_point() {
        let pts: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, i as f64 * 1.1 + 3.0)).collect();
        let (_dir, p) = out("scatter.png");
        scatter_png("Predicted against actual", ("actual", "predicted"), &pts, true, &p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        let ink = img.pixels().filter(|px| px.0 != [255, 255, 255]).count();
        assert!(ink > 1000, "{ink}");
    }

    #[test]
    fn confusion_heat_maps_draw_cells_and_labels() {
        let labels: Vec<String> = ["setosa", "versicolor", "virginica", "unseen"].map(String::from).to_vec();
        let cm = vec![vec![12, 0, 0, 0], vec![0, 9, 3, 0], vec![0, 2, 11, 1], vec![0, 0, 0, 0]];
        let (_dir, p) = out("confusion.png");
        confusion_png("Confusion matrix", &cm, &labels, false, &p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        // Four 72-pixel cells, the margins and the labels.
        let (w, h) = img.dimensions();
        assert!(w >= 4 * 72 + 60 && h >= 4 * 72 + 60 && w < 900 && h < 900, "{w}x{h}");
        // The largest count is the darkest blue, an empty cell the lightest.
        assert!(has(&img, blues(1.0)) && has(&img, blues(0.0)));
        let ink = img.pixels().filter(|px| px.0 != [255, 255, 255]).count();
        assert!(ink > 20_000, "{ink}");

        let (_dir, p) = out("confusion_normalized.png");
        confusion_png("Recall per class", &cm, &labels, true, &p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert!(has(&img, blues(1.0)) && has(&img, blues(0.0)));

        // Many classes: smaller cells, rotated labels, still a sensible size.
        let many: Vec<String> = (0..40).map(|i| format!("class number {i}")).collect();
        let big: Vec<Vec<u64>> =
            (0..40).map(|t| (0..40).map(|p| if t == p { 50 } else { (t * p % 7) as u64 }).collect()).collect();
        let (_dir, p) = out("confusion_many.png");
        confusion_png("40 classes", &big, &many, false, &p).unwrap();
        let (w, h) = image::open(&p).unwrap().to_rgb8().dimensions();
        assert!((40 * 18..2000).contains(&w) && (40 * 18..2000).contains(&h), "{w}x{h}");

        assert!(confusion_png("x", &cm[..3], &labels, false, &p).is_err());
        assert!(confusion_png("x", &[], &[], false, &p).is_err());
    }

    #[test]
    fn roc_and_precision_recall_charts_draw_each_curve() {
        let roc = [
            RocCurve {
                fpr: vec![0.0, 0.0, 0.2, 1.0],
                tpr: vec![0.0, 0.6, 1.0, 1.0],
                thresholds: vec![f64::INFINITY, 0.9, 0.5, 0.1],
            },
            RocCurve { fpr: vec![0.0, 0.3, 1.0], tpr: vec![0.0, 0.5, 1.0], thresholds: vec![f64::INFINITY, 0.5, 0.1] },
            RocCurve { fpr: vec![0.0, 0.5, 1.0], tpr: vec![f64::NAN; 3], thresholds: vec![f64::INFINITY, 0.5, 0.1] },
        ];
        let (_dir, p) = out("roc.png");
        roc_png("ROC (one-vs-rest)", &[("a (AUC 0.96)", &roc[0]), ("b (AUC 0.60)", &roc[1]), ("c", &roc[2])], &p)
            .unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (560, 480));
        assert!(has(&img, COLORS[0]) && has(&img, COLORS[1]));

        let pr = [
            PrCurve {
                precision: vec![0.5, 0.6, 0.75, 1.0, 1.0],
                recall: vec![1.0, 1.0, 0.75, 0.5, 0.0],
                thresholds: vec![0.1, 0.2, 0.4, 0.8],
            },
            PrCurve { precision: vec![0.4, 0.5, 1.0], recall: vec![1.0, 0.5, 0.0], thresholds: vec![0.1, 0.6] },
        ];
        let (_dir, p) = out("pr.png");
        precision_recall_png("Precision-recall", &[("a (AP 0.84)", &pr[0]), ("b (AP 0.75)", &pr[1])], &p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (560, 480));
        assert!(has(&img, COLORS[0]) && has(&img, COLORS[1]));
    }

    #[test]
    fn percentages_and_colours() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.004), "<1%");
        assert_eq!(percent(0.875), "88%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(blues(0.0), RGBColor(247, 251, 255));
        assert_eq!(blues(1.0), RGBColor(8, 48, 107));
        assert_eq!(blues(0.25), RGBColor(198, 219, 239));
    }

    #[test]
    fn histograms_draw_bars() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.png");
        histogram_png("x", "value", &[0.0, 1.0, 2.0, 3.0], &[5, 0, 2], &p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (480, 320));
        assert!(img.pixels().filter(|px| px.0 != [255, 255, 255]).count() > 5000);
        assert!(histogram_png("x", "v", &[0.0], &[1], &p).is_err());
    }

    #[test]
    fn writes_a_png_of_the_right_size_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.png");
        let chart = |title: &str| Chart {
            title: title.into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![
                Series { name: "train".into(), points: vec![(1.0, 1.0), (2.0, 0.5), (3.0, 0.25)] },
                Series { name: "validation".into(), points: vec![(1.0, 1.2), (2.0, f64::NAN), (3.0, 0.4)] },
            ],
        };
        charts_png(&[chart("Loss"), chart("Accuracy")], (400, 300), &p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (800, 300));
        // Both series' colours were drawn.
        for c in &COLORS[..2] {
            assert!(img.pixels().any(|px| px.0 == [c.0, c.1, c.2]), "colour {c:?} missing");
        }
    }
}
