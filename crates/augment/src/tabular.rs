//! Table-row transforms.

use rand_distr::{Distribution, Normal};

use crate::Augmentation;
use pipeline_core::Rng;

/// Adds Gaussian noise of standard deviation `std` to the numeric features (`kind:
/// feature_noise`); one-hot, ordinal and text columns are left alone.
#[derive(Debug, Clone)]
pub struct FeatureNoise {
    /// Standard deviation, in the units of the preprocessed features (with `scale: standard`,
    /// in training standard deviations).
    pub std: f32,
    /// Which values of a row are numeric features.
    pub numeric: Vec<bool>,
}

impl Augmentation for FeatureNoise {
    fn apply(&self, x: &mut [f32], _: &[usize], rng: &mut Rng) {
        let Ok(normal) = Normal::new(0.0f32, self.std) else { return };
        for (v, &numeric) in x.iter_mut().zip(&self.numeric) {
            if numeric {
                *v += normal.sample(rng);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn only_numeric_features_get_noise() {
        let t = FeatureNoise { std: 0.1, numeric: vec![true, false, true] };
        let mut x = [1.0f32, 1.0, 0.0];
        t.apply(&mut x, &[3], &mut Rng::seed_from_u64(3));
        assert_ne!(x[0], 1.0);
        assert_eq!(x[1], 1.0);
        assert_ne!(x[2], 0.0);
        assert!(x[0].abs() < 2.0 && x[2].abs() < 1.0);
    }
}
