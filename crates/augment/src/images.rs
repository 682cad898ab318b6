//! Image transforms on channel-first `f32` images (`channels × height × width`, row-major), the
//! layout of the pipeline's image datasets.
//!
//! The geometric ones follow torchvision's conventions: positive angles turn counter-clockwise,
//! rotation and zoom turn about the centre of the pixel grid (`((w - 1) / 2, (h - 1) / 2)`) and
//! sample bilinearly, translations are whole pixels, and pixels that come from outside the image
//! take a fill value. The plain functions here are deterministic; the [`Augmentation`]
//! implementations draw their parameters from the example's random stream.

use std::f64::consts::PI;

use rand::Rng as _;
use rand_distr::{Distribution, Normal};

use crate::Augmentation;
use crate::config::{Crop, Cutout, Jitter, Noise, Rotate, Translate, Zoom};
use pipeline_core::Rng;

/// `[channels, height, width]` of an image example's shape.
fn chw(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [c, h, w] => (*c, *h, *w),
        [h, w] => (1, *h, *w),
        _ => (1, 1, shape.iter().product()),
    }
}

/// Mirrors every row (left ↔ right), in place.
pub fn hflip(x: &mut [f32], shape: &[usize]) {
    let (_, _, w) = chw(shape);
    for row in x.chunks_exact_mut(w) {
        row.reverse();
    }
}

/// Mirrors every column (top ↔ bottom), in place.
pub fn vflip(x: &mut [f32], shape: &[usize]) {
    let (_, h, w) = chw(shape);
    for plane in x.chunks_exact_mut(h * w) {
        for y in 0..h / 2 {
            let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
            top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
        }
    }
}

/// Swaps rows and columns of a square image, in place.
///
/// # Panics
/// If the image is not square.
pub fn transpose(x: &mut [f32], shape: &[usize]) {
    let (_, h, w) = chw(shape);
    assert_eq!(h, w, "transpose needs a square image");
    for plane in x.chunks_exact_mut(h * w) {
        for y in 0..h {
            for xx in y + 1..w {
                plane.swap(y * w + xx, xx * w + y);
            }
        }
    }
}

/// Rotates by `degrees` (counter-clockwise) and scales by `scale` about the centre, sampling
/// bilinearly; `out` receives the result.
pub fn rotate_zoom(x: &[f32], out: &mut [f32], shape: &[usize], degrees: f64, scale: f64, fill: f32) {
    let (_, h, w) = chw(shape);
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let (sin, cos) = (degrees * PI / 180.0).sin_cos();
    // Output pixel (u, v) relative to the centre comes from R(-θ)·(u, v) / scale in the source.
    // In image coordinates (y down), a visual counter-clockwise turn by θ maps (x, y) to
    // (x cos θ + y sin θ, -x sin θ + y cos θ); its inverse is below.
    let (a, b, c, d) = (cos / scale, -sin / scale, sin / scale, cos / scale);
    for (plane, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)) {
        for v in 0..h {
            let dy = v as f64 - cy;
            for u in 0..w {
                let dx = u as f64 - cx;
                let sx = a * dx + b * dy + cx;
                let sy = c * dx + d * dy + cy;
                dst[v * w + u] = bilinear(plane, h, w, sx, sy, fill);
            }
        }
    }
}

/// The value at `(sx, sy)` by bilinear interpolation; neighbours outside the image are `fill`.
fn bilinear(plane: &[f32], h: usize, w: usize, sx: f64, sy: f64, fill: f32) -> f32 {
    // Snap coordinates within float noise of a pixel centre, so exact turns (90°, 180°) copy
    // pixels exactly.
    let snap = |v: f64| if (v - v.round()).abs() < 1e-9 { v.round() } else { v };
    let (sx, sy) = (snap(sx), snap(sy));
    if sx <= -1.0 || sy <= -1.0 || sx >= w as f64 || sy >= h as f64 {
        return fill;
    }
    let (x0, y0) = (sx.floor(), sy.floor());
    let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
    let (x0, y0) = (x0 as isize, y0 as isize);
    let at = |x: isize, y: isize| {
        if x < 0 || y < 0 || x >= w as isize || y >= h as isize { fill } else { plane[y as usize * w + x as usize] }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
    let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Shifts the content right by `dx` and down by `dy` pixels (negative: left / up); `out`
/// receives the result, uncovered pixels are `fill`.
pub fn shift(x: &[f32], out: &mut [f32], shape: &[usize], dx: isize, dy: isize, fill: f32) {
    let (_, h, w) = chw(shape);
    for (plane, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)) {
        for v in 0..h {
            let sy = v as isize - dy;
            let row = &mut dst[v * w..(v + 1) * w];
            if sy < 0 || sy >= h as isize {
                row.fill(fill);
                continue;
            }
            let src = &plane[sy as usize * w..(sy as usize + 1) * w];
            for (u, o) in row.iter_mut().enumerate() {
                let sx = u as isize - dx;
                *o = if sx < 0 || sx >= w as isize { fill } else { src[sx as usize] };
            }
        }
    }
}

/// Sets the rectangle of `height × width` pixels at (`top`, `left`) to `value` in every channel.
pub fn erase(x: &mut [f32], shape: &[usize], top: usize, left: usize, height: usize, width: usize, value: f32) {
    let (_, h, w) = chw(shape);
    for plane in x.chunks_exact_mut(h * w) {
        for y in top..(top + height).min(h) {
            plane[y * w + left..y * w + (left + width).min(w)].fill(value);
        }
    }
}

/// Runs `f(src, dst)` through a scratch copy and writes the result back into `x`.
fn via_copy(x: &mut [f32], f: impl FnOnce(&[f32], &mut [f32])) {
    let src = x.to_vec();
    f(&src, x);
}

impl Augmentation for HFlip {
    fn apply(&self, x: &mut [f32], shape: &[usize], _: &mut Rng) {
        hflip(x, shape);
    }
}

impl Augmentation for VFlip {
    fn apply(&self, x: &mut [f32], shape: &[usize], _: &mut Rng) {
        vflip(x, shape);
    }
}

/// Mirrors left ↔ right (`kind: hflip`).
#[derive(Debug, Clone, Copy)]
pub struct HFlip;
/// Mirrors top ↔ bottom (`kind: vflip`).
#[derive(Debug, Clone, Copy)]
pub struct VFlip;

impl Augmentation for Rotate {
    fn apply(&self, x: &mut [f32], shape: &[usize], rng: &mut Rng) {
        let angle = self.degrees * (2.0 * rng.random::<f64>() - 1.0);
        via_copy(x, |src, dst| rotate_zoom(src, dst, shape, angle, 1.0, self.fill));
    }
}

impl Augmentation for Zoom {
    fn apply(&self, x: &mut [f32], shape: &[usize], rng: &mut Rng) {
        let scale = self.min + (self.max - self.min) * rng.random::<f64>();
        via_copy(x, |src, dst| rotate_zoom(src, dst, shape, 0.0, scale, self.fill));
    }
}

/// A whole-pixel offset in `[-max, max]`.
fn offset(rng: &mut Rng, max: isize) -> isize {
    if max == 0 { 0 } else { rng.random_range(-(max as i64)..=max as i64) as isize }
}

impl Augmentation for Translate {
    fn apply(&self, x: &mut [f32], shape: &[usize], rng: &mut Rng) {
        let (_, h, w) = chw(shape);
        // torchvision: max_dx = fraction · width, the shift is round(uniform(-max_dx, max_dx)).
        let draw = |rng: &mut Rng, size: usize| {
            let max = self.fraction * size as f64;
            (max * (2.0 * rng.random::<f64>() - 1.0)).round() as isize
        };
        let dx = draw(rng, w);
        let dy = draw(rng, h);
        via_copy(x, |src, dst| shift(src, dst, shape, dx, dy, self.fill));
    }
}

impl Augmentation for Crop {
    fn apply(&self, x: &mut [f32], shape: &[usize], rng: &mut Rng) {
        // Padding by P then cropping at offset o ∈ [0, 2P] is a shift by P - o.
        let p = self.padding as isize;
        let dy = offset(rng, p);
        let dx = offset(rng, p);
        via_copy(x, |src, dst| shift(src, dst, shape, dx, dy, self.fill));
    }
}

impl Augmentation for Noise {
    fn apply(&self, x: &mut [f32], _: &[usize], rng: &mut Rng) {
        if let Ok(normal) = Normal::new(0.0f32, self.std as f32) {
            for v in x.iter_mut() {
                *v += normal.sample(rng);
            }
        }
    }
}

/// [`Jitter`] of brightness.
#[derive(Debug, Clone)]
pub struct Brightness(pub Jitter);
/// [`Jitter`] of contrast.
#[derive(Debug, Clone)]
pub struct Contrast(pub Jitter);

impl Augmentation for Brightness {
    fn apply(&self, x: &mut [f32], _: &[usize], rng: &mut Rng) {
        let f = (1.0 + self.0.factor * (2.0 * rng.random::<f64>() - 1.0)) as f32;
        x.iter_mut().for_each(|v| *v *= f);
    }
}

impl Augmentation for Contrast {
    fn apply(&self, x: &mut [f32], _: &[usize], rng: &mut Rng) {
        let f = (1.0 + self.0.factor * (2.0 * rng.random::<f64>() - 1.0)) as f32;
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len().max(1) as f64;
        let mean = mean as f32;
        x.iter_mut().for_each(|v| *v = (*v - mean) * f + mean);
    }
}

impl Augmentation for Cutout {
    fn apply(&self, x: &mut [f32], shape: &[usize], rng: &mut Rng) {
        // torchvision's RandomErasing.get_params: up to 10 tries to fit a rectangle.
        let (_, h, w) = chw(shape);
        let area = (h * w) as f64;
        let (log_lo, log_hi) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * rng.random::<f64>());
            let aspect = (log_lo + (log_hi - log_lo) * rng.random::<f64>()).exp();
            let eh = (target * aspect).sqrt().round() as usize;
            let ew = (target / aspect).sqrt().round() as usize;
            if eh == 0 || ew == 0 || eh >= h || ew >= w {
                continue;
            }
            let top = rng.random_range(0..=h - eh);
            let left = rng.random_range(0..=w - ew);
            erase(x, shape, top, left, eh, ew, self.value);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    const SHAPE: [usize; 3] = [2, 5, 5];

    fn image(shape: &[usize]) -> Vec<f32> {
        (0..shape.iter().product::<usize>()).map(|i| (i * 7 % 23) as f32).collect()
    }

    #[test]
    fn flips_are_involutions_and_mirror() {
        let x = image(&SHAPE);
        for flip in [hflip, vflip] {
            let mut y = x.clone();
            flip(&mut y, &SHAPE);
            assert_ne!(y, x);
            flip(&mut y, &SHAPE);
            assert_eq!(y, x);
        }
        let mut y = x.clone();
        hflip(&mut y, &SHAPE);
        assert_eq!(y[0], x[4]);
        assert_eq!(y[25 + 6], x[25 + 8]);
        let mut y = x.clone();
        vflip(&mut y, &SHAPE);
        assert_eq!(y[1], x[21]);
        assert_eq!(y[25 + 12], x[25 + 12], "the middle row stays");
    }

    #[test]
    fn quarter_turns_are_transpose_and_flip() {
        for shape in [[2usize, 5, 5], [1, 6, 6]] {
            let x = image(&shape);
            // Counter-clockwise by 90°: transpose, then flip top ↔ bottom.
            let mut want = x.clone();
            transpose(&mut want, &shape);
            vflip(&mut want, &shape);
            let mut got = vec![0.0; x.len()];
            rotate_zoom(&x, &mut got, &shape, 90.0, 1.0, -1.0);
            assert_eq!(got, want);
            // Clockwise: transpose, then flip left ↔ right.
            let mut want = x.clone();
            transpose(&mut want, &shape);
            hflip(&mut want, &shape);
            rotate_zoom(&x, &mut got, &shape, -90.0, 1.0, -1.0);
            assert_eq!(got, want);
            // 180°: both flips.
            let mut want = x.clone();
            hflip(&mut want, &shape);
            vflip(&mut want, &shape);
            rotate_zoom(&x, &mut got, &shape, 180.0, 1.0, -1.0);
            assert_eq!(got, want);
        }
    }

    /// SciPy 1.17.1, which turns counter-clockwise about the centre of the pixel grid as here, and
    /// whose `grid-constant` mode treats neighbours outside the image as `cval`, as here:
    /// ```python
    /// x = np.arange(25, dtype=float).reshape(5, 5)
    /// ndimage.rotate(x, 30, reshape=False, order=1, mode="grid-constant", cval=0).ravel()
    /// ```
    #[test]
    fn rotation_interpolates_bilinearly_like_scipy() {
        let shape = [1usize, 5, 5];
        let x: Vec<f32> = (0..25).map(|i| i as f32).collect();
        let mut got = vec![0.0; 25];
        rotate_zoom(&x, &mut got, &shape, 30.0, 1.0, 0.0);
        assert_eq!(got[12], 12.0, "the centre is fixed");
        let want = SCIPY_ROTATE_30;
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-4, "pixel {i}: {g} vs {w}\n{got:?}");
        }
    }

    const SCIPY_ROTATE_30: [f32; 25] = [
        0.3397459622,
        1.6387840678,
        4.3397459622,
        7.7057713659,
        2.7705265805,
        1.4378221735,
        4.8038475773,
        8.1698729811,
        11.5358983849,
        11.2657171089,
        5.2679491924,
        8.6339745962,
        12.0,
        15.3660254038,
        18.7320508076,
        7.1650635095,
        12.4641016151,
        15.8301270189,
        19.1961524227,
        22.5621778265,
        3.6602540378,
        16.2942286341,
        19.6602540378,
        16.7919965505,
        6.0910346562,
    ];

    #[test]
    fn identity_parameters_change_nothing() {
        let x = image(&SHAPE);
        let mut y = vec![0.0; x.len()];
        rotate_zoom(&x, &mut y, &SHAPE, 0.0, 1.0, -1.0);
        assert_eq!(y, x);
        shift(&x, &mut y, &SHAPE, 0, 0, -1.0);
        assert_eq!(y, x);
    }

    #[test]
    fn shifts_move_content_and_fill() {
        let x = image(&SHAPE);
        let mut y = vec![0.0; x.len()];
        shift(&x, &mut y, &SHAPE, 2, -1, -1.0);
        // Output (row 0, col 2) comes from input (row 1, col 0).
        assert_eq!(y[2], x[5]);
        assert_eq!(y[0], -1.0);
        assert_eq!(&y[20..25], &[-1.0; 5], "the bottom row is uncovered");
    }

    #[test]
    fn cutout_erases_one_rectangle_within_the_scale() {
        let shape = [1usize, 20, 20];
        let c = Cutout { p: 1.0, scale: [0.1, 0.2], ratio: [0.5, 2.0], value: -5.0 };
        for seed in 0..20 {
            let mut x = vec![1.0f32; 400];
            c.apply(&mut x, &shape, &mut Rng::seed_from_u64(seed));
            let erased: Vec<usize> = (0..400).filter(|&i| x[i] == -5.0).collect();
            assert!((30..=90).contains(&erased.len()), "{} pixels", erased.len());
            let rows: Vec<usize> = erased.iter().map(|i| i / 20).collect();
            let cols: Vec<usize> = erased.iter().map(|i| i % 20).collect();
            let (r0, r1) = (rows.iter().min().unwrap(), rows.iter().max().unwrap());
            let (c0, c1) = (cols.iter().min().unwrap(), cols.iter().max().unwrap());
            assert_eq!((r1 - r0 + 1) * (c1 - c0 + 1), erased.len(), "a rectangle");
        }
    }

    #[test]
    fn jitter_and_noise_move_values_as_configured() {
        let x: Vec<f32> = (0..1000).map(|i| (i % 10) as f32 / 10.0).collect();
        let mut r = Rng::seed_from_u64(1);
        let mut y = x.clone();
        Noise { p: 1.0, std: 0.5 }.apply(&mut y, &[1000], &mut r);
        let d: Vec<f64> = x.iter().zip(&y).map(|(a, b)| f64::from(b - a)).collect();
        let mean = d.iter().sum::<f64>() / 1000.0;
        let std = (d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 1000.0).sqrt();
        assert!(mean.abs() < 0.05 && (std - 0.5).abs() < 0.05, "{mean} {std}");
        let mut y = x.clone();
        Contrast(Jitter { p: 1.0, factor: 0.5 }).apply(&mut y, &[1000], &mut r);
        let m = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!((m(&y) - m(&x)).abs() < 1e-4, "contrast keeps the mean");
        let ratio = (y[9] - y[0]) / (x[9] - x[0]);
        assert!((0.5..=1.5).contains(&ratio) && ratio != 1.0, "{ratio}");
        let mut y = x.clone();
        Brightness(Jitter { p: 1.0, factor: 0.3 }).apply(&mut y, &[1000], &mut r);
        let f = y[9] / x[9];
        assert!((0.7..=1.3).contains(&f) && f != 1.0);
        assert!(y.iter().zip(&x).all(|(a, b)| (a - b * f).abs() < 1e-6));
    }
}
