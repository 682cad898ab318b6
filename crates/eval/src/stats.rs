//! Comparing two models on the same examples.
//!
//! - [`paired_bootstrap`] — a confidence interval for the difference of a metric between two
//!   models. Each of `resamples` resamples draws `n` example indices with replacement from
//!   `pipeline_core::rng(seed, "bootstrap")` (ChaCha8), scores **both** models on the same
//!   indices, and keeps the difference `a − b`; the interval is the 2.5th and 97.5th
//!   percentiles of the differences (the percentile method, with numpy's default linear
//!   interpolation, [`percentile`]). The same seed gives the same interval.
//!   [`paired_bootstrap_scores`] is the common case of a metric that is a mean of per-example
//!   scores (correctness, log-likelihood, squared error).
//! - [`mcnemar`] — McNemar's test of whether two classifiers' error rates differ, from the 2×2
//!   table of their correctness on the same examples ([`mcnemar_table`]), matching
//!   `statsmodels.stats.contingency_tables.mcnemar(table, exact=..., correction=True)`: the
//!   exact version is the two-sided binomial test on the discordant counts `b` and `c`
//!   (statistic `min(b, c)`, p-value `min(1, 2·P[Bin(b + c, ½) ≤ min(b, c)])`); the
//!   chi-squared version's statistic is `(|b − c| − 1)² / (b + c)` with one degree of freedom.
//!   Like statsmodels, the correction is applied as written even when `b = c` (the statistic
//!   is then `1 / (b + c)`, not 0). One departure: with no discordant pair at all (`b + c = 0`)
//!   statsmodels divides by zero (statistic inf, p-value 0); here the statistic is 0 and the
//!   p-value 1, as the exact test gives — no disagreement is no evidence of a difference.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};
use rand::Rng as _;

/// A bootstrap confidence interval of a difference `a − b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapInterval {
    /// The difference on all examples, not resampled.
    pub observed: f64,
    /// The mean of the resampled differences.
    pub mean: f64,
    /// The 2.5th percentile of the resampled differences.
    pub low: f64,
    /// The 97.5th percentile of the resampled differences.
    pub high: f64,
    /// The number of resamples.
    pub resamples: usize,
}

/// The paired bootstrap of `metric_a − metric_b` over `examples` examples: each metric is
/// given the example indices to score (all of them once for [`observed`], then each
/// resample's, with repeats). Errors on no examples, `resamples == 0`, an error of either
/// metric, or a difference that is not finite.
///
/// [`observed`]: BootstrapInterval::observed
pub fn paired_bootstrap<A, B>(
    examples: usize,
    resamples: usize,
    seed: u64,
    mut metric_a: A,
    mut metric_b: B,
) -> Result<BootstrapInterval>
where
    A: FnMut(&[usize]) -> Result<f64>,
    B: FnMut(&[usize]) -> Result<f64>,
{
    if examples == 0 {
        return Err(Error::Empty);
    }
    if resamples == 0 {
        return Err(Error::Parameter { name: "resamples", reason: "must be at least 1".into() });
    }
    let mut difference = |indices: &[usize], what: &'static str| {
        let d = metric_a(indices)? - metric_b(indices)?;
        if d.is_finite() { Ok(d) } else { Err(Error::NotFinite { what, value: d }) }
    };
    let all: Vec<usize> = (0..examples).collect();
    let observed = difference(&all, "the difference of the metrics on all examples")?;
    let mut rng = pipeline_core::rng(seed, "bootstrap");
    let mut indices = vec![0usize; examples];
    let mut diffs = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for i in indices.iter_mut() {
            *i = rng.random_range(0..examples);
        }
        diffs.push(difference(&indices, "the difference of the metrics on a resample")?);
    }
    diffs.sort_by(f64::total_cmp);
    let mean = diffs.iter().sum::<f64>() / resamples as f64;
    let (low, high) = (percentile(&diffs, 2.5), percentile(&diffs, 97.5));
    match (low, high) {
        (Some(low), Some(high)) => Ok(BootstrapInterval { observed, mean, low, high, resamples }),
        _ => Err(Error::Empty),
    }
}

/// [`paired_bootstrap`] of the difference of the means of two per-example score vectors
/// (e.g. 1.0 where a model is right, 0.0 where it is wrong). Errors on vectors of different
/// lengths, no examples, `resamples == 0`, or non-finite scores.
pub fn paired_bootstrap_scores(
    scores_a: &[f64],
    scores_b: &[f64],
    resamples: usize,
    seed: u64,
) -> Result<BootstrapInterval> {
    if scores_a.len() != scores_b.len() {
        return Err(Error::Length { predictions: scores_b.len(), targets: scores_a.len() });
    }
    for scores in [scores_a, scores_b] {
        if let Some(index) = scores.iter().position(|s| !s.is_finite()) {
            return Err(Error::NotFinite { what: "a per-example score", value: scores[index] });
        }
    }
    let mean = |scores: &[f64], idx: &[usize]| idx.iter().map(|&i| scores[i]).sum::<f64>() / idx.len() as f64;
    paired_bootstrap(scores_a.len(), resamples, seed, |idx| Ok(mean(scores_a, idx)), |idx| Ok(mean(scores_b, idx)))
}

/// The `q`-th percentile (0 to 100) of ascending `sorted` values with linear interpolation
/// between the closest ranks, as `numpy.percentile(values, q)` computes it. `None` when
/// `sorted` is empty or `q` is outside [0, 100].
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&q) {
        return None;
    }
    let position = (sorted.len() - 1) as f64 * (q / 100.0);
    let below = position.floor();
    let t = position - below;
    let lo = below as usize;
    let (a, b) = (sorted[lo], sorted[(lo + 1).min(sorted.len() - 1)]);
    // numpy's `_lerp`: from the nearer end, so that t = 1 gives exactly b.
    let d = b - a;
    Some(if t >= 0.5 { b - d * (1.0 - t) } else { a + d * t })
}

/// A test statistic and its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The statistic (`min(b, c)` for the exact McNemar test, chi-squared otherwise).
    pub statistic: f64,
    /// The two-sided p-value.
    pub p_value: f64,
}

/// The 2×2 table of two classifiers' correctness on the same examples: `table[i][j]` counts
/// the examples where model A is right (`i = 0`) or wrong (`i = 1`) and model B right
/// (`j = 0`) or wrong (`j = 1`). The discordant cells are `[0][1]` and `[1][0]`. Errors on
/// different lengths or no examples.
pub fn mcnemar_table(actual: &[u32], predicted_a: &[u32], predicted_b: &[u32]) -> Result<[[u64; 2]; 2]> {
    for predicted in [predicted_a, predicted_b] {
        if predicted.len() != actual.len() {
            return Err(Error::Length { predictions: predicted.len(), targets: actual.len() });
        }
    }
    if actual.is_empty() {
        return Err(Error::Empty);
    }
    let mut table = [[0u64; 2]; 2];
    for ((t, a), b) in actual.iter().zip(predicted_a).zip(predicted_b) {
        table[usize::from(a != t)][usize::from(b != t)] += 1;
    }
    Ok(table)
}

/// McNemar's test on a 2×2 table ([`mcnemar_table`]): exact binomial or chi-squared with
/// continuity correction, as described in the [module docs](self).
pub fn mcnemar(table: [[u64; 2]; 2], exact: bool) -> TestResult {
    let (b, c) = (table[0][1], table[1][0]);
    let n = b + c;
    if exact {
        let m = b.min(c);
        return TestResult { statistic: m as f64, p_value: (2.0 * binomial_half_cdf(m, n)).min(1.0) };
    }
    if n == 0 {
        return TestResult { statistic: 0.0, p_value: 1.0 };
    }
    let statistic = ((b as f64 - c as f64).abs() - 1.0).powi(2) / n as f64;
    TestResult { statistic, p_value: chi2_sf_1(statistic) }
}

/// `P[X ≤ m]` for `X ~ Binomial(n, ½)` with `m ≤ n / 2`, summed in log space (the terms grow
/// up to `m`, so the last is the largest).
fn binomial_half_cdf(m: u64, n: u64) -> f64 {
    let mut log_terms = Vec::with_capacity(m as usize + 1);
    let mut log_choose = 0.0f64;
    for i in 0..=m {
        if i > 0 {
            log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        log_terms.push(log_choose);
    }
    let largest = log_terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = log_terms.iter().map(|&l| (l - largest).exp()).sum();
    (largest + sum.ln() - n as f64 * std::f64::consts::LN_2).exp()
}

/// The survival function of the chi-squared distribution with one degree of freedom.
fn chi2_sf_1(x: f64) -> f64 {
    chi2_sf(x, 1)
}

/// The survival function `P[X ≥ x]` of the chi-squared distribution with `dof` degrees of
/// freedom (`scipy.stats.chi2.sf`): `Q(dof/2, x/2)`, the regularised upper incomplete gamma
/// function. 1 for `x ≤ 0` or `dof == 0`.
pub fn chi2_sf(x: f64, dof: u32) -> f64 {
    if x <= 0.0 || dof == 0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    upper_gamma(f64::from(dof) / 2.0, x / 2.0)
}

/// `ln Γ(a)` for `a` a positive multiple of ½, exactly by the recurrence `Γ(a + 1) = a Γ(a)`
/// from `Γ(1) = 1` or `Γ(½) = √π`.
fn ln_gamma_half_integer(a: f64) -> f64 {
    let (mut g, mut k) =
        if (a.fract() - 0.5).abs() < 1e-9 { (0.5 * std::f64::consts::PI.ln(), 0.5) } else { (0.0, 1.0) };
    while k < a - 0.25 {
        g += k.ln();
        k += 1.0;
    }
    g
}

/// `Q(a, x)` for `x > 0` and `a` a multiple of ½: the series for `P` below `x = a + 1`,
/// Lentz's continued fraction above (Numerical Recipes' `gammq`), both to double precision.
fn upper_gamma(a: f64, x: f64) -> f64 {
    let log_prefactor = -x + a * x.ln() - ln_gamma_half_integer(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * f64::EPSILON {
                break;
            }
        }
        (1.0 - sum * log_prefactor.exp()).max(0.0)
    } else {
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < f64::EPSILON {
                break;
            }
        }
        log_prefactor.exp() * h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// statsmodels 0.15.0 (scipy 1.17.1):
    /// ```python
    /// from statsmodels.stats.contingency_tables import mcnemar
    /// e = mcnemar(t, exact=True); c = mcnemar(t, exact=False, correction=True)
    /// (t, e.statistic, e.pvalue, c.statistic, c.pvalue)
    /// ```
    /// A table; the exact test's statistic and p-value; the chi-squared test's.
    type Case = ([[u64; 2]; 2], f64, f64, f64, f64);

    const MCNEMAR: [Case; 7] = [
        ([[50, 12], [3, 35]], 3.0, 0.03515625, 4.266666666666667, 0.03886710381241731),
        ([[5, 3], [3, 7]], 3.0, 1.0, 0.16666666666666666, 0.6830913983096086),
        ([[10, 0], [4, 6]], 0.0, 0.125, 2.25, 0.13361440253771584),
        ([[0, 1], [0, 0]], 0.0, 1.0, 0.0, 1.0),
        ([[900, 130], [95, 875]], 95.0, 0.023197506839685394, 5.137777777777778, 0.02341059616111667),
        ([[40, 25], [2, 33]], 2.0, 5.647540092468262e-06, 17.925925925925927, 2.2967108733407456e-05),
        ([[1000, 2000], [2050, 1000]], 2000.0, 0.44132702499794385, 0.5928395061728395, 0.44132319512801244),
    ];

    #[test]
    fn mcnemar_matches_statsmodels() {
        for (table, e_stat, e_p, c_stat, c_p) in MCNEMAR {
            let e = mcnemar(table, true);
            let c = mcnemar(table, false);
            assert_eq!(e.statistic, e_stat, "{table:?}");
            assert!((e.p_value - e_p).abs() < 1e-9, "{table:?}: {} vs {e_p}", e.p_value);
            assert!((c.statistic - c_stat).abs() < 1e-12, "{table:?}: {} vs {c_stat}", c.statistic);
            assert!((c.p_value - c_p).abs() < 1e-9, "{table:?}: {} vs {c_p}", c.p_value);
        }
        // No discordant pair: statsmodels gives (inf, 0.0) for the chi-squared version (a
        // division by zero); the exact version's p-value 1 is the meaningful answer.
        assert_eq!(mcnemar([[1, 0], [0, 1]], false), TestResult { statistic: 0.0, p_value: 1.0 });
        assert_eq!(mcnemar([[1, 0], [0, 1]], true), TestResult { statistic: 0.0, p_value: 1.0 });
    }

    #[test]
    fn mcnemar_table_counts_correctness() {
        let actual = [0, 1, 2, 0, 1, 2, 0];
        let a = [0, 1, 2, 1, 1, 0, 0];
        let b = [0, 0, 2, 1, 0, 2, 1];
        // Both right: 0, 2. A right only: 1, 4, 6. B right only: 5. Both wrong: 3.
        assert_eq!(mcnemar_table(&actual, &a, &b).unwrap(), [[2, 3], [1, 1]]);
        assert!(matches!(mcnemar_table(&actual, &a, &b[..3]), Err(Error::Length { .. })));
        assert!(matches!(mcnemar_table(&[], &[], &[]), Err(Error::Empty)));
    }

    /// numpy 2.4.6:
    /// ```python
    /// x = np.array([0.3, -1.25, 2.5, 0.0, 0.7, 1.1, -0.4, 3.3, 0.05, 0.9, -2.0])
    /// [np.percentile(x, q) for q in (2.5, 97.5, 50, 0, 100, 63.7)]
    /// # -1.8125, 3.0999999999999996, 0.3, -2.0, 3.3, 0.774
    /// np.percentile([4.0], 2.5)  # 4.0
    /// ```
    #[test]
    fn percentile_matches_numpy() {
        let mut x = [0.3, -1.25, 2.5, 0.0, 0.7, 1.1, -0.4, 3.3, 0.05, 0.9, -2.0];
        x.sort_by(f64::total_cmp);
        for (q, want) in
            [(2.5, -1.8125), (97.5, 3.0999999999999996), (50.0, 0.3), (0.0, -2.0), (100.0, 3.3), (63.7, 0.774)]
        {
            let got = percentile(&x, q).unwrap();
            assert!((got - want).abs() < 1e-12, "q {q}: {got} vs {want}");
        }
        assert_eq!(percentile(&[4.0], 2.5), Some(4.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&x, 101.0), None);
    }

    /// Per-example correctness of a model right about 90% of the time and one right about 60%.
    fn correctness(n: usize) -> (Vec<f64>, Vec<f64>) {
        let a = (0..n).map(|i| if i % 10 == 3 { 0.0 } else { 1.0 }).collect();
        let b = (0..n).map(|i| if i % 5 < 3 { 1.0 } else { 0.0 }).collect();
        (a, b)
    }

    #[test]
    fn bootstrap_is_deterministic_and_separates_a_better_model() {
        let (a, b) = correctness(200);
        let first = paired_bootstrap_scores(&a, &b, 1000, 7).unwrap();
        assert_eq!(first, paired_bootstrap_scores(&a, &b, 1000, 7).unwrap());
        assert_ne!(first, paired_bootstrap_scores(&a, &b, 1000, 8).unwrap());
        assert!((first.observed - 0.3).abs() < 1e-12, "{first:?}");
        assert!(first.low > 0.0 && first.low < first.mean && first.mean < first.high, "{first:?}");
        assert!((first.mean - 0.3).abs() < 0.01, "{first:?}");
        // Reversed, the interval is the mirror image: same indices, negated differences.
        let reversed = paired_bootstrap_scores(&b, &a, 1000, 7).unwrap();
        assert!((reversed.high + first.low).abs() < 1e-12 && (reversed.low + first.high).abs() < 1e-12);
        // A model against itself: every difference is 0.
        let same = paired_bootstrap_scores(&a, &a, 50, 7).unwrap();
        assert_eq!((same.low, same.mean, same.high), (0.0, 0.0, 0.0));
    }

    #[test]
    fn bootstrap_takes_any_metric_on_the_same_indices() {
        let (a, b) = correctness(60);
        let mut calls = 0;
        let interval = paired_bootstrap(
            60,
            20,
            3,
            |idx| {
                calls += 1;
                Ok(idx.iter().map(|&i| a[i]).sum::<f64>() / idx.len() as f64)
            },
            |idx| {
                assert_eq!(idx.len(), 60);
                assert!(idx.iter().all(|&i| i < 60));
                Ok(idx.iter().map(|&i| b[i]).sum::<f64>() / idx.len() as f64)
            },
        )
        .unwrap();
        assert_eq!(calls, 21);
        assert_eq!(interval, paired_bootstrap_scores(&a, &b, 20, 3).unwrap());
        // Errors: of a metric, non-finite values, bad parameters.
        let undefined = paired_bootstrap(5, 10, 1, |_| Err(Error::Empty), |_| Ok(0.0));
        assert!(matches!(undefined, Err(Error::Empty)));
        let nan = paired_bootstrap(5, 10, 1, |_| Ok(f64::NAN), |_| Ok(0.0));
        assert!(matches!(nan, Err(Error::NotFinite { .. })));
        assert!(matches!(paired_bootstrap(0, 10, 1, |_| Ok(0.0), |_| Ok(0.0)), Err(Error::Empty)));
        assert!(matches!(paired_bootstrap_scores(&a, &b, 0, 1), Err(Error::Parameter { .. })));
        assert!(matches!(paired_bootstrap_scores(&a, &b[1..], 10, 1), Err(Error::Length { .. })));
        assert!(matches!(paired_bootstrap_scores(&[f64::NAN], &[0.0], 10, 1), Err(Error::NotFinite { .. })));
    }
}
