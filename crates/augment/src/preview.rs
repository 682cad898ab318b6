//! A picture of what the model will see: each chosen training image in the first column, then
//! the augmented versions epochs 1, 2, … would give it (`dlp augment-preview`).

use image::{ImageEncoder, Rgb, RgbImage};
use pipeline_core::{Dataset, InputSchema};

use crate::{Augmenter, Error, Result};

/// Gap between cells, and the wider gap after the originals' column, in pixels.
const GAP: u32 = 2;
const SEPARATOR: u32 = 6;

/// The grid as a PNG: one row per index of `rows`, the original image then `draws` augmented
/// versions (epochs 1 to `draws`), each pixel drawn as a `zoom × zoom` square. Values are mapped
/// to grey levels by the original image's range, so brightness and contrast changes show.
pub fn grid_png(data: &Dataset, rows: &[usize], augmenter: &Augmenter, draws: usize, zoom: u32) -> Result<Vec<u8>> {
    grid_png_from(data, rows, &|i, _| i, augmenter, draws, zoom, false)
}

/// [`grid_png`] where draw `d` (1-based) of row `i` starts from dataset row `source(i, d)`
/// instead of row `i` — the augmented copies of a recording (`train.augment_audio`) are rows
/// of their own — and, with `flip`, row 0 of each example drawn at the bottom (spectrograms:
/// low frequencies down).
pub fn grid_png_from(
    data: &Dataset,
    rows: &[usize],
    source: &dyn Fn(usize, usize) -> usize,
    augmenter: &Augmenter,
    draws: usize,
    zoom: u32,
    flip: bool,
) -> Result<Vec<u8>> {
    let InputSchema::Image { channels, height, width } = data.schema().input else {
        return Err(Error::Config("a preview needs image inputs".into()));
    };
    let zoom = zoom.max(1);
    let (cw, ch) = (width as u32 * zoom, height as u32 * zoom);
    let cols = draws as u32 + 1;
    let total_w = cols * cw + (cols - 1) * GAP + (SEPARATOR - GAP);
    let total_h = (rows.len() as u32 * ch + rows.len().saturating_sub(1) as u32 * GAP).max(1);
    let mut img = RgbImage::from_pixel(total_w, total_h, Rgb([200, 200, 200]));
    for (r, &i) in rows.iter().enumerate() {
        let original = data.row(i);
        let (lo, hi) = original.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        for c in 0..cols {
            let mut x = if c > 0 { data.row(source(i, c as usize)).to_vec() } else { original.to_vec() };
            if c > 0 {
                augmenter.apply(&mut x, c as usize, source(i, c as usize));
            }
            let left = c * (cw + GAP) + if c > 0 { SEPARATOR - GAP } else { 0 };
            let top = r as u32 * (ch + GAP);
            for y in 0..height {
                for xx in 0..width {
                    let level = |ch: usize| {
                        let row = if flip { height - 1 - y } else { y };
                        let v = x[(ch.min(channels - 1) * height + row) * width + xx];
                        (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    let px = if channels >= 3 { Rgb([level(0), level(1), level(2)]) } else { Rgb([level(0); 3]) };
                    for dy in 0..zoom {
                        for dx in 0..zoom {
                            img.put_pixel(left + xx as u32 * zoom + dx, top + y as u32 * zoom + dy, px);
                        }
                    }
                }
            }
        }
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(img.as_raw(), total_w, total_h, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::Image(e.to_string()))?;
    Ok(png)
}

/// The first example of each class (in dataset order), up to `max` of them; for a dataset
/// without classes, its first `max` examples.
pub fn one_per_class(data: &Dataset, max: usize) -> Vec<usize> {
    match data.targets().classes() {
        Some(c) => {
            let mut seen = std::collections::BTreeMap::new();
            for (i, &k) in c.iter().enumerate() {
                seen.entry(k).or_insert(i);
            }
            seen.into_values().take(max).collect()
        }
        None => (0..data.len().min(max)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use pipeline_core::{Schema, Target, Targets, Task};

    use super::*;

    #[test]
    fn the_grid_has_one_row_per_image_and_decodes() {
        let schema = Schema {
            input: InputSchema::Image { channels: 1, height: 4, width: 5 },
            target: Target { name: "y".into(), task: Task::Classification { labels: vec!["a".into(), "b".into()] } },
        };
        let data = Dataset::new(schema, (0..60).map(|i| i as f32).collect(), Targets::Classes(vec![1, 1, 0])).unwrap();
        assert_eq!(one_per_class(&data, 10), [2, 0]);
        let t: Vec<crate::Transform> = serde_yaml::from_str("[{kind: hflip, p: 1}]").unwrap();
        let a = Augmenter::new(&t, "k", &data.schema().input, 0).unwrap();
        let png = grid_png(&data, &[2, 0], &a, 3, 2).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (4 * 10 + 2 * GAP + SEPARATOR, 2 * 8 + GAP));
        // Row 0 is example 2 (values 40..60): its first pixel is the darkest, and the flipped
        // copy in the second column has it at the right end of the row.
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        let second = 10 + SEPARATOR;
        assert_eq!(img.get_pixel(second + 9, 0).0, [0, 0, 0]);
        assert_ne!(img.get_pixel(second, 0).0, [0, 0, 0]);
    }
}
