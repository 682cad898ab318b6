//! PNG plots, drawn with `plotters` into memory, encoded with `image`, written atomically.
//! Text uses the embedded DejaVu Sans (see `assets/`), so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

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
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
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
    register_font();
    let fail = |e: &dyn std::fmt::Display| PlotError { path: path.display().to_string(), message: e.to_string() };
    let (w, h) = (panel.0 * charts.len().max(1) as u32, panel.1);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let areas = root.split_evenly((1, charts.len().max(1)));
        for (chart, area) in charts.iter().zip(areas) {
            draw(chart, &area).map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| fail(&"buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| fail(&e))?;
    pipeline_core::run::write_atomic(path, &png).map_err(|e| fail(&e))
}

/// Draws a histogram (`edges.len() == counts.len() + 1`) into a PNG at `path`.
pub fn histogram_png(
    title: &str,
    x_label: &str,
    edges: &[f64],
    counts: &[usize],
    path: &Path,
) -> Result<(), PlotError> {
    register_font();
    let fail = |e: &dyn std::fmt::Display| PlotError { path: path.display().to_string(), message: e.to_string() };
    if edges.len() != counts.len() + 1 || counts.is_empty() {
        return Err(fail(&"a histogram needs one more edge than bins"));
    }
    let (w, h) = (480u32, 320u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let (x0, x1) = (edges[0], edges[edges.len() - 1]);
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.05;
        let mut ctx = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, 0f64..top)
            .map_err(|e| fail(&e))?;
        ctx.configure_mesh()
            .x_desc(x_label)
            .y_desc("count")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| fail(&e))?;
        let color = COLORS[0];
        ctx.draw_series(edges.windows(2).zip(counts).map(|(e, &c)| {
            Rectangle::new(
                [(e[0], 0.0), (if e[1] > e[0] { e[1] } else { e[0] + 1.0 }, c as f64)],
                color.mix(0.8).filled(),
            )
        }))
        .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| fail(&"buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| fail(&e))?;
    pipeline_core::run::write_atomic(path, &png).map_err(|e| fail(&e))
}

fn draw<DB: DrawingBackend>(chart: &Chart, area: &DrawingArea<DB, plotters::coord::Shift>) -> Result<(), String> {
    let finite: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in &finite {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if finite.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
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
