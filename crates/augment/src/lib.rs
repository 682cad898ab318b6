//! On-the-fly data augmentation of training batches. **Not built yet.**
//!
//! This crate will own seeded, random transforms applied to training examples every epoch —
//! image flips, rotations, zoom, translation, crops with padding, noise, brightness and contrast
//! jitter, cutout; token dropout and swaps for text; Gaussian feature noise for tables — each
//! with a probability and parameters from an `augment:` section of the config, composed in the
//! order given. The draw for (seed, epoch, example index) will always be the same, whatever the
//! number of loader threads.
//!
//! Until then the pipeline has no `augment:` section (using one is a config error), and this
//! crate holds only the interface the transforms will implement.
//!
//! What it must not do: run at evaluation or serving time.

use pipeline_core::Rng;

/// A random transform of one training example, in place.
///
/// `shape` is the example's shape (`[channels, height, width]` for images, `[features]` for
/// tables); the transform must keep it, and must draw all its randomness from `rng` so that a
/// seeded stream reproduces it.
pub trait Augmentation: Send + Sync {
    /// Transforms `example` (row-major values of `shape`).
    fn apply(&self, example: &mut [f32], shape: &[usize], rng: &mut Rng);
}
