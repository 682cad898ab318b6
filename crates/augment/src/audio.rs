//! Audio augmentation, in two places:
//!
//! - on the model's input, every epoch (`train.augment`): SpecAugment's `time_mask` and
//!   `freq_mask` (Park et al., 2019; torchaudio's `TimeMasking` / `FrequencyMasking`) and
//!   `time_shift` on `1 × bands × frames` feature maps;
//! - on the recordings themselves, before the features are computed (`train.augment_audio`):
//!   [`WaveTransform`]s — noise at a signal-to-noise ratio, gain, a time shift, speed and pitch
//!   perturbation — each training clip copied `copies` times, each copy drawn from its own
//!   seeded stream. Features are computed from the augmented waveform, which spectrogram-domain
//!   transforms cannot imitate (noise at an SNR, a pitch change).

use pipeline_core::Rng;
use pipeline_core::config::Issue;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::Augmentation;
use crate::config::{Mask, TimeShift};

fn chw(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [c, h, w] => (*c, *h, *w),
        [h, w] => (1, *h, *w),
        [n] => (1, 1, *n),
        _ => (1, 1, shape.iter().product()),
    }
}

/// Bands (rows) or frames (columns) masked by SpecAugment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Whole frames (time).
    Time,
    /// Whole bands (frequency).
    Frequency,
}

/// `time_mask` / `freq_mask`: `count` masks, each of a width drawn uniformly from
/// `0..=max_width`, at a uniform start, set to `value` (0: the training mean after `scale:
/// standard`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpecMask {
    /// Which axis.
    pub axis: Axis,
    /// The configured mask.
    pub mask: Mask,
}

impl Augmentation for SpecMask {
    fn apply(&self, x: &mut [f32], shape: &[usize], rng: &mut Rng) {
        let (c, h, w) = chw(shape);
        let len = match self.axis {
            Axis::Time => w,
            Axis::Frequency => h,
        };
        for _ in 0..self.mask.count {
            let width = rng.random_range(0..=self.mask.max_width.min(len));
            let start = rng.random_range(0..=len - width);
            for ch in 0..c {
                let plane = &mut x[ch * h * w..(ch + 1) * h * w];
                for i in start..start + width {
                    match self.axis {
                        Axis::Time => (0..h).for_each(|r| plane[r * w + i] = self.mask.value),
                        Axis::Frequency => plane[i * w..(i + 1) * w].iter_mut().for_each(|v| *v = self.mask.value),
                    }
                }
            }
        }
    }
}

impl Augmentation for TimeShift {
    fn apply(&self, x: &mut [f32], shape: &[usize], rng: &mut Rng) {
        let (c, h, w) = chw(shape);
        let max = self.max_frames.min(w) as i64;
        let shift = rng.random_range(-max..=max);
        if shift == 0 {
            return;
        }
        for row in x[..c * h * w].chunks_exact_mut(w) {
            let old = row.to_vec();
            for (t, v) in row.iter_mut().enumerate() {
                let src = t as i64 - shift;
                *v = if (0..w as i64).contains(&src) { old[src as usize] } else { self.fill };
            }
        }
    }
}

/// One transform of a recording, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WaveTransform {
    /// White Gaussian noise at a signal-to-noise ratio drawn uniformly from `snr_db` (dB, over
    /// the clip's own power).
    Noise {
        /// `[min, max]` dB.
        snr_db: [f64; 2],
    },
    /// Gain drawn uniformly from `db`.
    Gain {
        /// `[min, max]` dB.
        db: [f64; 2],
    },
    /// A shift by up to `seconds` either way, silence filling in.
    Shift {
        /// The largest shift.
        seconds: f64,
    },
    /// Speed by a factor from `factor` (tempo and pitch together, as resampling does): linear
    /// interpolation, length kept by cropping or padding at the end.
    Speed {
        /// `[min, max]`.
        factor: [f64; 2],
    },
    /// Pitch by a number of semitones from `semitones`, duration kept: the clip is resampled by
    /// the pitch ratio and then stretched back in time by overlap-add of Hann-windowed 32 ms
    /// grains (a simple time-domain pitch shifter).
    Pitch {
        /// `[min, max]`.
        semitones: [f64; 2],
    },
}

fn uniform(rng: &mut Rng, [lo, hi]: [f64; 2]) -> f64 {
    if hi > lo { rng.random_range(lo..=hi) } else { lo }
}

/// `x` resampled at positions `i × step` by linear interpolation, `n` samples (zeros past the end).
fn stretch(x: &[f32], step: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let pos = i as f64 * step;
            let j = pos.floor() as usize;
            let frac = (pos - j as f64) as f32;
            match (x.get(j), x.get(j + 1)) {
                (Some(&a), Some(&b)) => a + (b - a) * frac,
                (Some(&a), None) => a * (1.0 - frac),
                _ => 0.0,
            }
        })
        .collect()
}

impl WaveTransform {
    /// The `kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            WaveTransform::Noise { .. } => "noise",
            WaveTransform::Gain { .. } => "gain",
            WaveTransform::Shift { .. } => "shift",
            WaveTransform::Speed { .. } => "speed",
            WaveTransform::Pitch { .. } => "pitch",
        }
    }

    /// Problems with its values; keys start with `key`.
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let range = |field: &str, [lo, hi]: [f64; 2], min: f64, max: f64| {
            (!(lo.is_finite() && hi.is_finite() && lo <= hi && lo >= min && hi <= max)).then(|| {
                Issue::new(
                    format!("{key}.{field}"),
                    format!("must be [min, max] within [{min}, {max}], got [{lo}, {hi}]"),
                )
            })
        };
        match self {
            WaveTransform::Noise { snr_db } => range("snr_db", *snr_db, -20.0, 120.0),
            WaveTransform::Gain { db } => range("db", *db, -60.0, 60.0),
            WaveTransform::Shift { seconds } => (!(seconds.is_finite() && (0.0..=60.0).contains(seconds)))
                .then(|| Issue::new(format!("{key}.seconds"), format!("must be in [0, 60], got {seconds}"))),
            WaveTransform::Speed { factor } => range("factor", *factor, 0.5, 2.0),
            WaveTransform::Pitch { semitones } => range("semitones", *semitones, -12.0, 12.0),
        }
        .into_iter()
        .collect()
    }

    /// Transforms one clip at `sample_rate` in place (its length kept).
    pub fn apply(&self, x: &mut [f32], sample_rate: u32, rng: &mut Rng) {
        let n = x.len();
        match self {
            WaveTransform::Noise { snr_db } => {
                let power = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / n.max(1) as f64;
                if power <= 0.0 {
                    return;
                }
                let std = (power / 10f64.powf(uniform(rng, *snr_db) / 10.0)).sqrt();
                for v in x.iter_mut() {
                    let z: f64 = StandardNormal.sample(rng);
                    *v = (f64::from(*v) + std * z).clamp(-1.0, 1.0) as f32;
                }
            }
            WaveTransform::Gain { db } => {
                let g = 10f64.powf(uniform(rng, *db) / 20.0) as f32;
                x.iter_mut().for_each(|v| *v = (*v * g).clamp(-1.0, 1.0));
            }
            WaveTransform::Shift { seconds } => {
                let max = (seconds * f64::from(sample_rate)).round() as i64;
                let shift = rng.random_range(-max..=max);
                let old = x.to_vec();
                for (i, v) in x.iter_mut().enumerate() {
                    let src = i as i64 - shift;
                    *v = if (0..n as i64).contains(&src) { old[src as usize] } else { 0.0 };
                }
            }
            WaveTransform::Speed { factor } => {
                let f = uniform(rng, *factor);
                let y = stretch(x, f, n);
                x.copy_from_slice(&y);
            }
            WaveTransform::Pitch { semitones } => {
                let ratio = 2f64.powf(uniform(rng, *semitones) / 12.0);
                // Resampled by `ratio` (pitch and speed up), then grains of the result laid back
                // at the original rate of time.
                let fast = stretch(x, ratio, (n as f64 / ratio).ceil() as usize + 1);
                let grain = ((0.032 * f64::from(sample_rate)) as usize).max(16);
                let hop = grain / 2;
                let window: Vec<f32> = (0..grain)
                    .map(|i| (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / grain as f64).cos()) as f32)
                    .collect();
                let mut out = vec![0f32; n + grain];
                let mut t = 0;
                while t < n {
                    // The grain of output time t comes from the same content position in `fast`.
                    let src = (t as f64 / ratio).round() as usize;
                    for k in 0..grain {
                        out[t + k] += fast.get(src + k).copied().unwrap_or(0.0) * window[k];
                    }
                    t += hop;
                }
                // A periodic Hann window at 50 % overlap sums to 1.
                for (v, o) in x.iter_mut().zip(&out) {
                    *v = o.clamp(-1.0, 1.0);
                }
            }
        }
    }
}

fn two() -> usize {
    2
}

/// `train.augment_audio`: augmented copies of the training recordings, made before their
/// features are computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveAugment {
    /// Augmented copies of each training clip (the original is kept too).
    #[serde(default = "two")]
    pub copies: usize,
    /// The transforms, applied in order to each copy.
    pub transforms: Vec<WaveTransform>,
}

impl WaveAugment {
    /// Problems with its values (`key`: `train.augment_audio`).
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if !(1..=20).contains(&self.copies) {
            issues.push(Issue::new(format!("{key}.copies"), format!("must be 1-20, got {}", self.copies)));
        }
        if self.transforms.is_empty() {
            issues.push(Issue::new(format!("{key}.transforms"), "list at least one transform"));
        }
        for (i, t) in self.transforms.iter().enumerate() {
            issues.extend(t.validate(&format!("{key}.transforms[{i}]")));
        }
        issues
    }

    /// Copy `copy` (1-based) of clip `index`, transformed from its own stream of `seed`.
    pub fn augmented(&self, clip: &[f32], sample_rate: u32, seed: u64, copy: usize, index: usize) -> Vec<f32> {
        use rand::SeedableRng;
        let mut rng = Rng::seed_from_u64(pipeline_core::derive_seed(seed, &format!("augment_audio/{copy}")));
        rng.set_stream(index as u64);
        let mut x = clip.to_vec();
        for t in &self.transforms {
            t.apply(&mut x, sample_rate, &mut rng);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn rng() -> Rng {
        Rng::seed_from_u64(7)
    }

    fn tone(n: usize, rate: u32, hz: f64) -> Vec<f32> {
        (0..n).map(|i| (0.5 * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin()) as f32).collect()
    }

    fn crossings(x: &[f32]) -> usize {
        x.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count()
    }

    #[test]
    fn masks_cover_whole_frames_or_bands() {
        let shape = [1, 4, 10];
        let mut x = vec![1f32; 40];
        let m = SpecMask { axis: Axis::Time, mask: Mask { p: 1.0, max_width: 3, count: 1, value: 0.0 } };
        m.apply(&mut x, &shape, &mut rng());
        let zero_cols: Vec<usize> = (0..10).filter(|&t| (0..4).all(|r| x[r * 10 + t] == 0.0)).collect();
        assert_eq!(x.iter().filter(|&&v| v == 0.0).count(), zero_cols.len() * 4);
        assert!(zero_cols.len() <= 3 && zero_cols.windows(2).all(|w| w[1] == w[0] + 1));
        let mut y = vec![1f32; 40];
        let f = SpecMask { axis: Axis::Frequency, mask: Mask { p: 1.0, max_width: 4, count: 2, value: -1.0 } };
        f.apply(&mut y, &shape, &mut rng());
        assert!(
            (0..4).all(|r| y[r * 10..(r + 1) * 10].iter().all(|&v| v == -1.0)
                || y[r * 10..(r + 1) * 10].iter().all(|&v| v == 1.0))
        );
    }

    #[test]
    fn time_shift_moves_frames_and_fills() {
        let shape = [1, 2, 5];
        let mut x: Vec<f32> = (0..10).map(|v| v as f32).collect();
        TimeShift { p: 1.0, max_frames: 2, fill: -9.0 }.apply(&mut x, &shape, &mut rng());
        let row0: Vec<f32> = x[..5].to_vec();
        let shift = (0..5).position(|t| row0[t] == 0.0).map(|p| p as i64).unwrap_or_else(|| -(row0[0] as i64));
        for t in 0..5i64 {
            let src = t - shift;
            let want = if (0..5).contains(&src) { src as f32 } else { -9.0 };
            assert_eq!(row0[t as usize], want);
        }
    }

    #[test]
    fn noise_reaches_its_snr_and_gain_its_level() {
        let x = tone(8000, 8000, 440.0);
        let mut y = x.clone();
        WaveTransform::Noise { snr_db: [10.0, 10.0] }.apply(&mut y, 8000, &mut rng());
        let p = |v: &[f32]| v.iter().map(|&a| f64::from(a).powi(2)).sum::<f64>();
        let noise: Vec<f32> = y.iter().zip(&x).map(|(a, b)| a - b).collect();
        let snr = 10.0 * (p(&x) / p(&noise)).log10();
        assert!((snr - 10.0).abs() < 0.3, "snr {snr}");
        let mut g = x.clone();
        WaveTransform::Gain { db: [-6.0, -6.0] }.apply(&mut g, 8000, &mut rng());
        assert!((g[1] / x[1] - 10f32.powf(-0.3)).abs() < 1e-5);
    }

    #[test]
    fn speed_and_pitch_change_the_frequency() {
        let x = tone(8000, 8000, 400.0);
        let c = crossings(&x) as f64;
        let mut fast = x.clone();
        WaveTransform::Speed { factor: [1.1, 1.1] }.apply(&mut fast, 8000, &mut rng());
        // Faster by 10 %: 10 % more crossings over the part still holding sound.
        let sounding = (8000.0 / 1.1) as usize;
        assert!((crossings(&fast[..sounding]) as f64 / (c * sounding as f64 / 8000.0) - 1.1).abs() < 0.02);
        let mut up = x.clone();
        WaveTransform::Pitch { semitones: [12.0, 12.0] }.apply(&mut up, 8000, &mut rng());
        // An octave up over the whole clip (duration kept): twice the crossings.
        let inner = &up[400..7600];
        let ratio = crossings(inner) as f64 / crossings(&x[400..7600]) as f64;
        assert!((ratio - 2.0).abs() < 0.1, "pitch ratio {ratio}");
    }

    #[test]
    fn copies_are_seeded_and_configs_checked() {
        let a = WaveAugment {
            copies: 2,
            transforms: vec![WaveTransform::Noise { snr_db: [20.0, 30.0] }, WaveTransform::Shift { seconds: 0.01 }],
        };
        let x = tone(800, 8000, 300.0);
        assert_eq!(a.augmented(&x, 8000, 1, 1, 5), a.augmented(&x, 8000, 1, 1, 5));
        assert_ne!(a.augmented(&x, 8000, 1, 1, 5), a.augmented(&x, 8000, 1, 2, 5));
        assert_ne!(a.augmented(&x, 8000, 1, 1, 5), a.augmented(&x, 8000, 1, 1, 6));
        let bad = WaveAugment { copies: 0, transforms: vec![WaveTransform::Speed { factor: [1.2, 0.9] }] };
        let msgs: Vec<String> = bad.validate("train.augment_audio").iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "train.augment_audio.copies: must be 1-20, got 0",
                "train.augment_audio.transforms[0].factor: must be [min, max] within [0.5, 2], got [1.2, 0.9]",
            ]
        );
    }
}
