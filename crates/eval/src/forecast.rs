//! Forecast metrics and baselines for series, as the forecasting literature and its libraries
//! define them: MAE, RMSE, MAPE (scikit-learn's `mean_absolute_percentage_error`, a fraction),
//! sMAPE (`2|y - ŷ| / (|y| + |ŷ|)`, 0 where both are 0), MASE (the MAE over the in-sample MAE of
//! the seasonal-naive forecast of the training series, Hyndman & Koehler 2006); the naive and
//! seasonal-naive forecasts, and a linear autoregression AR(p) with a constant, fitted by
//! ordinary least squares as statsmodels' `AutoReg(trend="c")` fits it and forecast
//! recursively. Tests hold them to scikit-learn 1.8 and statsmodels 0.15 values.
//!
//! The forecasting runs of `dlp` (`preprocess.series`) score their forecasts and baselines with
//! these.

use serde::{Deserialize, Serialize};

/// The error measures of a forecast against what happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastReport {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute percentage error, a fraction (actual values of 0 count with `f64::EPSILON`,
    /// as scikit-learn does).
    pub mape: f64,
    /// Symmetric mean absolute percentage error, a fraction in [0, 2].
    pub smape: f64,
    /// Mean absolute scaled error: MAE over the training series' seasonal-naive MAE; `NaN`
    /// without a usable scale.
    pub mase: f64,
}

/// A forecast's scores: over every step of every forecast, and per step ahead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForecastScores {
    /// Over all forecast values.
    #[serde(flatten)]
    pub overall: ForecastReport,
    /// Forecasts (origins) scored.
    pub examples: usize,
    /// Steps per forecast.
    pub horizon: usize,
    /// `by_step[j]`: the scores of the forecasts `j + 1` steps ahead.
    pub by_step: Vec<ForecastReport>,
}

impl ForecastScores {
    /// Scores row-major forecasts (`horizon` values per origin) against `actual`; `scale` is
    /// MASE's denominator. `None` unless both hold the same whole number of forecasts (at
    /// least one).
    pub fn compute(actual: &[f64], predicted: &[f64], horizon: usize, scale: Option<f64>) -> Option<Self> {
        if horizon == 0 || actual.len() != predicted.len() || !actual.len().is_multiple_of(horizon) {
            return None;
        }
        let overall = report(actual, predicted, scale)?;
        let by_step = (0..horizon)
            .map(|j| {
                let a: Vec<f64> = actual.iter().skip(j).step_by(horizon).copied().collect();
                let p: Vec<f64> = predicted.iter().skip(j).step_by(horizon).copied().collect();
                report(&a, &p, scale)
            })
            .collect::<Option<_>>()?;
        Some(Self { overall, examples: actual.len() / horizon, horizon, by_step })
    }
}

/// The report of `predicted` against `actual` (same length, at least one value); `scale` is
/// [`mase_scale`] of the training series.
pub fn report(actual: &[f64], predicted: &[f64], scale: Option<f64>) -> Option<ForecastReport> {
    if actual.is_empty() || actual.len() != predicted.len() {
        return None;
    }
    let n = actual.len() as f64;
    let mae = actual.iter().zip(predicted).map(|(a, p)| (a - p).abs()).sum::<f64>() / n;
    let rmse = (actual.iter().zip(predicted).map(|(a, p)| (a - p).powi(2)).sum::<f64>() / n).sqrt();
    let mape = actual.iter().zip(predicted).map(|(a, p)| (a - p).abs() / a.abs().max(f64::EPSILON)).sum::<f64>() / n;
    let smape = actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| {
            let d = a.abs() + p.abs();
            if d == 0.0 { 0.0 } else { 2.0 * (a - p).abs() / d }
        })
        .sum::<f64>()
        / n;
    let mase = scale.filter(|s| *s > 0.0).map_or(f64::NAN, |s| mae / s);
    Some(ForecastReport { mae, rmse, mape, smape, mase })
}

/// The in-sample MAE of the seasonal-naive forecast (`y[t - m]` for `y[t]`) over `train`: MASE's
/// denominator (`m = 1`: the naive forecast). `None` when the series is not longer than `m`.
pub fn mase_scale(train: &[f64], m: usize) -> Option<f64> {
    let m = m.max(1);
    (train.len() > m)
        .then(|| train[m..].iter().zip(train).map(|(a, b)| (a - b).abs()).sum::<f64>() / (train.len() - m) as f64)
}

/// The naive forecast: the last value, `horizon` times.
pub fn naive(history: &[f64], horizon: usize) -> Option<Vec<f64>> {
    history.last().map(|&v| vec![v; horizon])
}

/// The seasonal-naive forecast: each step the value one season (`m`) earlier, repeating the last
/// season.
pub fn seasonal_naive(history: &[f64], m: usize, horizon: usize) -> Option<Vec<f64>> {
    let m = m.max(1);
    (history.len() >= m).then(|| {
        let season = &history[history.len() - m..];
        (0..horizon).map(|h| season[h % m]).collect()
    })
}

/// A linear autoregression with a constant: `y[t] = c + Σ_k φ_k y[t - k]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autoregression {
    /// The constant `c`.
    pub intercept: f64,
    /// `φ_1 … φ_p` (lag 1 first).
    pub coefficients: Vec<f64>,
}

impl Autoregression {
    /// Fits AR(`p`) to `train` by least squares over `t = p … n-1`; `None` when there are not
    /// more equations than unknowns or the system is singular.
    pub fn fit(train: &[f64], p: usize) -> Option<Self> {
        let k = p + 1;
        if p == 0 || train.len() < p + k + 1 {
            return None;
        }
        // Normal equations (XᵀX) β = Xᵀy with rows [1, y[t-1], …, y[t-p]].
        let mut a = vec![0f64; k * k];
        let mut b = vec![0f64; k];
        let mut row = vec![0f64; k];
        for t in p..train.len() {
            row[0] = 1.0;
            for j in 1..=p {
                row[j] = train[t - j];
            }
            for i in 0..k {
                b[i] += row[i] * train[t];
                for j in 0..k {
                    a[i * k + j] += row[i] * row[j];
                }
            }
        }
        let beta = solve(&mut a, &mut b, k)?;
        Some(Self { intercept: beta[0], coefficients: beta[1..].to_vec() })
    }

    /// Forecasts `horizon` steps after `history` (at least `p` values), each step feeding the
    /// previous forecasts back in.
    pub fn forecast(&self, history: &[f64], horizon: usize) -> Option<Vec<f64>> {
        let p = self.coefficients.len();
        if history.len() < p {
            return None;
        }
        let mut window: Vec<f64> = history[history.len() - p..].to_vec();
        let mut out = Vec::with_capacity(horizon);
        for _ in 0..horizon {
            let next = self.intercept
                + self.coefficients.iter().enumerate().map(|(j, c)| c * window[window.len() - 1 - j]).sum::<f64>();
            out.push(next);
            window.push(next);
        }
        Some(out)
    }
}

/// Solves `a x = b` (`k × k`, row-major) by Gaussian elimination with partial pivoting.
fn solve(a: &mut [f64], b: &mut [f64], k: usize) -> Option<Vec<f64>> {
    for col in 0..k {
        let pivot = (col..k).max_by(|&i, &j| a[i * k + col].abs().total_cmp(&a[j * k + col].abs()))?;
        if a[pivot * k + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for j in 0..k {
                a.swap(col * k + j, pivot * k + j);
            }
            b.swap(col, pivot);
        }
        for i in col + 1..k {
            let f = a[i * k + col] / a[col * k + col];
            for j in col..k {
                a[i * k + j] -= f * a[col * k + j];
            }
            b[i] -= f * b[col];
        }
    }
    let mut x = vec![0f64; k];
    for i in (0..k).rev() {
        let s: f64 = (i + 1..k).map(|j| a[i * k + j] * x[j]).sum();
        x[i] = (b[i] - s) / a[i * k + i];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_per_step_ahead() {
        // Two forecasts of two steps: step 1 errs by 1 and 3, step 2 by 0 and 2.
        let actual = [10.0, 20.0, 30.0, 40.0];
        let predicted = [11.0, 20.0, 27.0, 42.0];
        let s = ForecastScores::compute(&actual, &predicted, 2, Some(2.0)).unwrap();
        assert_eq!((s.examples, s.horizon), (2, 2));
        assert_eq!(s.overall.mae, 1.5);
        assert_eq!(s.overall.mase, 0.75);
        assert_eq!((s.by_step[0].mae, s.by_step[1].mae), (2.0, 1.0));
        assert!(ForecastScores::compute(&actual, &predicted[..3], 2, None).is_none());
        assert!(ForecastScores::compute(&actual[..3], &predicted[..3], 2, None).is_none());
    }

    /// `10 + 3 sin(2πn/12) + 0.05 n + 0.5 cos(0.7 n)`, n = 0..60: monthly-like with trend.
    fn series() -> Vec<f64> {
        (0..60)
            .map(|n| {
                let n = f64::from(n);
                10.0 + 3.0 * (std::f64::consts::TAU * n / 12.0).sin() + 0.05 * n + (n * 0.7).cos() * 0.5
            })
            .collect()
    }

    fn close(got: f64, want: f64, what: &str) {
        assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: {got} vs {want}");
    }

    #[test]
    fn metrics_match_scikit_learn_and_the_mase_definition() {
        let y = series();
        let (train, test) = y.split_at(48);
        let offsets = [0.3, -0.2, 0.1, 0.5, -0.4, 0.2, 0.0, 0.1, -0.3, 0.2, 0.4, -0.1];
        let pred: Vec<f64> = test.iter().zip(offsets).map(|(a, o)| a + o).collect();
        let scale = mase_scale(train, 12).unwrap();
        // NumPy: np.mean(np.abs(train[12:] - train[:-12])).
        close(scale, 0.6921295183327665, "scale");
        let r = report(test, &pred, Some(scale)).unwrap();
        // scikit-learn 1.8: mean_absolute_error, sqrt(mean_squared_error),
        // mean_absolute_percentage_error; sMAPE and MASE by their formulas in NumPy.
        close(r.mae, 0.23333333333333325, "mae");
        close(r.rmse, 0.2738612787525831, "rmse");
        close(r.mape, 0.018963004559657347, "mape");
        close(r.smape, 0.018873287579529992, "smape");
        close(r.mase, 0.337123800030083, "mase");
        assert!(report(&[1.0], &[], None).is_none());
        assert!(report(&[0.0], &[0.0], None).unwrap().mase.is_nan());
        assert_eq!(report(&[0.0], &[0.0], None).unwrap().smape, 0.0);
    }

    #[test]
    fn autoregression_matches_statsmodels() {
        let y = series();
        let ar = Autoregression::fit(&y[..48], 3).unwrap();
        // statsmodels 0.15: AutoReg(train, lags=3, trend="c").fit().params.
        close(ar.intercept, 0.1917188864829763, "const");
        for (got, want) in ar.coefficients.iter().zip([2.658687628876553, -2.603918136108807, 0.9292133281042262]) {
            close(*got, want, "lag");
        }
        // .predict(start=48, end=59): the recursive forecast.
        let f = ar.forecast(&y[..48], 12).unwrap();
        for (got, want) in
            f.iter().zip([12.026950488006426, 13.146461769918796, 13.949065803641636, 14.221220034562528])
        {
            assert!((got - want).abs() < 1e-7 * want, "{got} vs {want}");
        }
        assert!((f[11] - 11.019223223788444).abs() < 1e-6 * 11.0, "{}", f[11]);
        assert!(Autoregression::fit(&y[..5], 3).is_none());
    }

    #[test]
    fn ar9_on_the_shipped_sunspots_matches_statsmodels_and_beats_seasonal_naive() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sunspots/sunspots.csv");
        let y: Vec<f64> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(y.len(), 309);
        let (train, split) = (&y[..269], 269);
        let ar = Autoregression::fit(train, 9).unwrap();
        // statsmodels 0.15: AutoReg(y[:269], lags=9, trend="c").fit().params.
        close(ar.intercept, 6.959094562775794, "const");
        close(ar.coefficients[0], 1.210056427838006, "lag 1");
        close(ar.coefficients[8], 0.18596126436763408, "lag 9");
        // One step ahead over 1969-2008, each from the actual years before it.
        let one_step: Vec<f64> = (split..y.len()).map(|t| ar.forecast(&y[..t], 1).unwrap()[0]).collect();
        let seasonal: Vec<f64> = (split..y.len()).map(|t| seasonal_naive(&y[..t], 11, 1).unwrap()[0]).collect();
        let scale = mase_scale(train, 11);
        let r = report(&y[split..], &one_step, scale).unwrap();
        let s = report(&y[split..], &seasonal, scale).unwrap();
        close(r.mae, 14.203783022064181, "AR(9) MAE");
        // data/sunspots/README.md: MASE 0.6420 and 1.1627.
        assert!((r.mase - 0.6420).abs() < 1e-4 && (s.mase - 1.1627).abs() < 1e-4, "{r:?} {s:?}");
    }

    #[test]
    fn naive_forecasts_repeat_the_last_value_or_season() {
        let h = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(naive(&h, 3), Some(vec![5.0; 3]));
        assert_eq!(seasonal_naive(&h, 2, 5), Some(vec![4.0, 5.0, 4.0, 5.0, 4.0]));
        assert_eq!(seasonal_naive(&h, 6, 1), None);
        assert_eq!(naive(&[], 1), None);
        assert_eq!(mase_scale(&h, 1), Some(1.0));
    }
}
