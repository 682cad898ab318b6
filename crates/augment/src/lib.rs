//! On-the-fly data augmentation of training batches, and the loader that prepares those batches.
//!
//! - [`config`]: the `train.augment` list of [`Transform`]s (each with a probability and its
//!   parameters, applied in the order given) and `train.loader` ([`LoaderConfig`]);
//! - [`images`]: flips, rotation and zoom (bilinear), translation, crop with padding, Gaussian
//!   noise, brightness and contrast jitter, cutout (random erasing) on `channels × height ×
//!   width` images;
//! - [`text`]: token dropout and adjacent-token swaps on padded token-id sequences;
//! - [`tabular`]: Gaussian feature noise on table rows;
//! - [`audio`]: SpecAugment time and frequency masks and time shifts of spectrograms, and the
//!   waveform transforms of `train.augment_audio` (noise at an SNR, gain, shift, speed, pitch);
//! - [`Augmenter`]: the configured chain, with one random stream per (seed, epoch, example):
//!   the draw for an example never depends on the batch it lands in or on the number of
//!   threads, and each epoch draws anew;
//! - [`loader`]: the training [`Loader`] — per-epoch shuffled order, batches (optionally
//!   dropping a short last one), assembled and augmented by background workers ahead of the
//!   training step through a bounded queue;
//! - [`preview`]: a PNG grid of original images beside augmented draws (`dlp augment-preview`).
//!
//! What it must not do: run at evaluation or serving time. The training loop asks the loader for
//! training batches only; validation, test and serving read datasets directly.

pub mod audio;
pub mod config;
pub mod images;
pub mod loader;
pub mod preview;
pub mod tabular;
pub mod text;

use pipeline_core::{InputSchema, Rng, derive_seed};
use rand::{Rng as _, SeedableRng};

pub use config::{LoaderConfig, Transform};
pub use loader::{LoadedBatch, Loader};

/// A random transform of one training example, in place.
///
/// `shape` is the example's shape (`[channels, height, width]` for images, `[features]` for
/// tables); the transform must keep it, and must draw all its randomness from `rng` so that a
/// seeded stream reproduces it. Implement it to add a transform of your own to an
/// [`Augmenter`] with [`Augmenter::push`].
pub trait Augmentation: Send + Sync {
    /// Transforms `example` (row-major values of `shape`).
    fn apply(&self, example: &mut [f32], shape: &[usize], rng: &mut Rng);
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The transforms do not fit the data (the message names the config key).
    #[error("{0}")]
    Config(String),
    /// Assembling a batch failed.
    #[error(transparent)]
    Data(#[from] pipeline_core::Error),
    /// Moving a batch to the device failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Encoding the preview image failed.
    #[error("encoding the preview PNG: {0}")]
    Image(String),
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The random stream name of augmentation (see [`pipeline_core::seed`]).
pub const STREAM: &str = "augment";

/// A chain of transforms with their probabilities, for examples of one shape, seeded.
pub struct Augmenter {
    steps: Vec<(f64, Box<dyn Augmentation>)>,
    shape: Vec<usize>,
    seed: u64,
}

impl std::fmt::Debug for Augmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Augmenter").field("steps", &self.steps.len()).field("shape", &self.shape).finish()
    }
}

impl Augmenter {
    /// An empty chain (the identity) for examples of `input`, drawing from the `augment` stream of
    /// `seed`.
    pub fn empty(input: &InputSchema, seed: u64) -> Self {
        Self { steps: Vec::new(), shape: input.shape(), seed: derive_seed(seed, STREAM) }
    }

    /// The chain `transforms` (configured at `key`, e.g. `train.augment`) for examples of
    /// `input`; an error names a transform that does not fit them.
    pub fn new(transforms: &[Transform], key: &str, input: &InputSchema, seed: u64) -> Result<Self> {
        let issues: Vec<String> = config::validate(transforms, key)
            .into_iter()
            .chain(config::check(transforms, key, input))
            .map(|i| i.to_string())
            .collect();
        if !issues.is_empty() {
            return Err(Error::Config(issues.join("; ")));
        }
        let mut a = Self::empty(input, seed);
        for t in transforms {
            let step: Box<dyn Augmentation> = match t {
                Transform::Hflip(_) => Box::new(images::HFlip),
                Transform::Vflip(_) => Box::new(images::VFlip),
                Transform::Rotate(r) => Box::new(r.clone()),
                Transform::Zoom(z) => Box::new(z.clone()),
                Transform::Translate(x) => Box::new(x.clone()),
                Transform::Crop(c) => Box::new(c.clone()),
                Transform::Noise(n) => Box::new(n.clone()),
                Transform::Brightness(j) => Box::new(images::Brightness(j.clone())),
                Transform::Contrast(j) => Box::new(images::Contrast(j.clone())),
                Transform::Cutout(c) => Box::new(c.clone()),
                Transform::TokenDropout(o) => Box::new(text::TokenDropout(o.clone())),
                Transform::TokenSwap(o) => Box::new(text::TokenSwap(o.clone())),
                Transform::TimeMask(m) => Box::new(audio::SpecMask { axis: audio::Axis::Time, mask: m.clone() }),
                Transform::FreqMask(m) => Box::new(audio::SpecMask { axis: audio::Axis::Frequency, mask: m.clone() }),
                Transform::TimeShift(t) => Box::new(t.clone()),
                Transform::FeatureNoise(n) => {
                    let numeric = match input {
                        InputSchema::Tabular { features } => {
                            features.iter().map(|f| n.columns.is_empty() || n.columns.contains(&f.name)).collect()
                        }
                        _ => Vec::new(),
                    };
                    Box::new(tabular::FeatureNoise { std: n.std as f32, numeric })
                }
            };
            a.steps.push((t.p(), step));
        }
        Ok(a)
    }

    /// Appends `step`, applied with probability `p`.
    pub fn push(&mut self, p: f64, step: Box<dyn Augmentation>) {
        self.steps.push((p, step));
    }

    /// Whether the chain has no transforms.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The shape of the examples.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The random stream of example `index` in `epoch`: a ChaCha8 key from (seed, epoch), the
    /// example index as its stream number. Independent of batches, order and threads.
    pub fn rng(&self, epoch: usize, index: usize) -> Rng {
        let mut r = Rng::seed_from_u64(derive_seed(self.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), ""));
        r.set_stream(index as u64);
        r
    }

    /// Transforms `example` (dataset row `index`) as epoch `epoch` sees it: each step in turn,
    /// with its probability.
    pub fn apply(&self, example: &mut [f32], epoch: usize, index: usize) {
        if self.steps.is_empty() {
            return;
        }
        let mut rng = self.rng(epoch, index);
        for (p, step) in &self.steps {
            // Always draw the coin, so a step's draws do not shift with the previous coins.
            let coin = rng.random::<f64>();
            if coin < *p {
                step.apply(example, &self.shape, &mut rng);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_schema() -> InputSchema {
        InputSchema::Image { channels: 1, height: 8, width: 8 }
    }

    fn all_image_transforms(p: f64) -> Vec<Transform> {
        let yaml = format!(
            "[{{kind: hflip, p: {p}}}, {{kind: vflip, p: {p}}}, {{kind: rotate, degrees: 30, p: {p}}}, \
             {{kind: zoom, p: {p}}}, {{kind: translate, fraction: 0.2, p: {p}}}, {{kind: crop, padding: 2, p: {p}}}, \
             {{kind: noise, std: 0.1, p: {p}}}, {{kind: brightness, factor: 0.3, p: {p}}}, \
             {{kind: contrast, factor: 0.3, p: {p}}}, {{kind: cutout, p: {p}}}]"
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    fn example() -> Vec<f32> {
        (0..64).map(|i| ((i * 13) % 17) as f32 / 17.0).collect()
    }

    #[test]
    fn probability_zero_is_the_identity() {
        let a = Augmenter::new(&all_image_transforms(0.0), "train.augment", &image_schema(), 1).unwrap();
        for epoch in 1..5 {
            for index in 0..20 {
                let mut x = example();
                a.apply(&mut x, epoch, index);
                assert_eq!(x, example());
            }
        }
        let text = InputSchema::Sequence { length: 6, vocab_size: 50 };
        let t: Vec<Transform> =
            serde_yaml::from_str("[{kind: token_dropout, rate: 0.5, p: 0}, {kind: token_swap, rate: 0.5, p: 0}]")
                .unwrap();
        let a = Augmenter::new(&t, "k", &text, 1).unwrap();
        let mut x = [3.0, 4.0, 5.0, 6.0, 0.0, 0.0];
        a.apply(&mut x, 1, 0);
        assert_eq!(x, [3.0, 4.0, 5.0, 6.0, 0.0, 0.0]);
    }

    #[test]
    fn draws_depend_on_seed_epoch_and_index_only() {
        let a = Augmenter::new(&all_image_transforms(0.7), "k", &image_schema(), 1).unwrap();
        let draw = |a: &Augmenter, epoch, index| {
            let mut x = example();
            a.apply(&mut x, epoch, index);
            x
        };
        assert_eq!(draw(&a, 1, 3), draw(&a, 1, 3));
        assert_ne!(draw(&a, 1, 3), draw(&a, 2, 3), "another epoch, another draw");
        assert_ne!(draw(&a, 1, 3), draw(&a, 1, 4));
        let b = Augmenter::new(&all_image_transforms(0.7), "k", &image_schema(), 2).unwrap();
        assert_ne!(draw(&a, 1, 3), draw(&b, 1, 3), "another seed, another draw");
        assert_ne!(draw(&a, 1, 3), example());
    }

    #[test]
    fn shapes_are_kept_and_values_stay_finite() {
        let a = Augmenter::new(&all_image_transforms(1.0), "k", &image_schema(), 5).unwrap();
        for index in 0..100 {
            let mut x = example();
            a.apply(&mut x, 1, index);
            assert_eq!(x.len(), 64);
            assert!(x.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn a_transform_for_other_inputs_is_refused() {
        let t: Vec<Transform> = serde_yaml::from_str("[{kind: hflip}, {kind: feature_noise, std: 0.1}]").unwrap();
        let err = Augmenter::new(&t, "train.augment", &image_schema(), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "train.augment[1].kind: `feature_noise` transforms tabular inputs, but the data has image inputs"
        );
    }
}
