//! Scaling of input values, with the conventions of scikit-learn's scalers.

use serde::{Deserialize, Serialize};

/// How to scale input values (`preprocess.scale`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Leave values as they are.
    #[default]
    None,
    /// Divide 8-bit pixel values by 255, to `[0, 1]`. Needs no fitting.
    Pixel,
    /// Per feature, subtract the training mean and divide by the training standard deviation
    /// (population, `ddof = 0`; a constant feature is divided by 1), like scikit-learn's
    /// `StandardScaler`.
    Standard,
    /// Per feature, map the training minimum to 0 and maximum to 1 (a constant feature is only
    /// shifted), like scikit-learn's `MinMaxScaler`.
    MinMax,
}

/// A scaler with its fitted statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FittedScaler {
    /// No scaling.
    None,
    /// `x / 255`.
    Pixel,
    /// `(x - mean) / scale`, per feature.
    Standard {
        /// Training mean per feature.
        mean: Vec<f32>,
        /// Training standard deviation per feature (1 where it is 0).
        scale: Vec<f32>,
    },
    /// `(x - min) / scale`, per feature.
    MinMax {
        /// Training minimum per feature.
        min: Vec<f32>,
        /// Training range per feature (1 where it is 0).
        scale: Vec<f32>,
    },
}

impl FittedScaler {
    /// Fits `kind` on row-major `values` of `width` columns.
    pub fn fit(kind: Scale, values: &[f32], width: usize) -> Self {
        match kind {
            Scale::None => Self::None,
            Scale::Pixel => Self::Pixel,
            Scale::Standard => {
                let rows = (values.len() / width.max(1)).max(1) as f64;
                let mut sum = vec![0f64; width];
                for row in values.chunks_exact(width) {
                    for (s, &v) in sum.iter_mut().zip(row) {
                        *s += f64::from(v);
                    }
                }
                let mean: Vec<f64> = sum.iter().map(|s| s / rows).collect();
                let mut sq = vec![0f64; width];
                for row in values.chunks_exact(width) {
                    for ((s, &v), m) in sq.iter_mut().zip(row).zip(&mean) {
                        let d = f64::from(v) - m;
                        *s += d * d;
                    }
                }
                let scale = sq.iter().map(|s| nonzero((s / rows).sqrt())).collect();
                Self::Standard { mean: mean.iter().map(|&m| m as f32).collect(), scale }
            }
            Scale::MinMax => {
                let mut min = vec![f32::INFINITY; width];
                let mut max = vec![f32::NEG_INFINITY; width];
                for row in values.chunks_exact(width) {
                    for ((lo, hi), &v) in min.iter_mut().zip(max.iter_mut()).zip(row) {
                        *lo = lo.min(v);
                        *hi = hi.max(v);
                    }
                }
                let scale = min.iter().zip(&max).map(|(lo, hi)| nonzero(f64::from(hi - lo))).collect();
                Self::MinMax { min, scale }
            }
        }
    }

    /// Scales row-major `values` of `width` columns in place.
    pub fn transform(&self, values: &mut [f32], width: usize) {
        match self {
            Self::None => {}
            Self::Pixel => values.iter_mut().for_each(|v| *v /= 255.0),
            Self::Standard { mean: shift, scale } | Self::MinMax { min: shift, scale } => {
                for row in values.chunks_exact_mut(width) {
                    for ((v, s), d) in row.iter_mut().zip(shift).zip(scale) {
                        *v = (*v - s) / d;
                    }
                }
            }
        }
    }
}

/// scikit-learn's `_handle_zeros_in_scale`: a zero (or tiny) scale becomes 1.
fn nonzero(s: f64) -> f32 {
    if s < 10.0 * f64::EPSILON { 1.0 } else { s as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from scikit-learn 1.9.1:
    //   X = np.array([[1., 10., 5.], [2., 20., 5.], [4., 60., 5.], [9., 30., 5.]])
    //   StandardScaler().fit(X).transform(X)
    //   MinMaxScaler().fit(X).transform(X)
    const X: [f32; 12] = [1., 10., 5., 2., 20., 5., 4., 60., 5., 9., 30., 5.];

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} != {b:?}");
        }
    }

    #[test]
    fn standard_matches_scikit_learn() {
        let s = FittedScaler::fit(Scale::Standard, &X, 3);
        let mut v = X;
        s.transform(&mut v, 3);
        #[rustfmt::skip]
        close(&v, &[
            -0.97332853, -1.06904497, 0.,
            -0.64888568, -0.53452248, 0.,
            0., 1.60356745, 0.,
            1.62221421, 0., 0.,
        ]);
    }

    #[test]
    fn min_max_matches_scikit_learn() {
        let s = FittedScaler::fit(Scale::MinMax, &X, 3);
        let mut v = X;
        s.transform(&mut v, 3);
        #[rustfmt::skip]
        close(&v, &[
            0., 0., 0.,
            0.125, 0.2, 0.,
            0.375, 1., 0.,
            1., 0.4, 0.,
        ]);
    }

    #[test]
    fn pixel_and_none() {
        let mut v = [0., 51., 255.];
        FittedScaler::fit(Scale::Pixel, &v, 3).transform(&mut v, 3);
        close(&v, &[0., 0.2, 1.]);
        let mut w = [3., 4.];
        FittedScaler::fit(Scale::None, &w, 2).transform(&mut w, 2);
        assert_eq!(w, [3., 4.]);
    }
}
