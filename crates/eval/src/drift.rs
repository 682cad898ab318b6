//! Data drift: how far a sample of live values has moved from the training data's.
//!
//! A reference is fitted once, on the training values of one feature, and compared with any
//! number of live samples later (the server's sliding window, or a file with `dlp drift`):
//!
//! - [`NumericReference`]: the training values' decile edges with the count in each bin, the
//!   mean and standard deviation, and a sample of the values (all of them up to the sample
//!   size; above it, a seeded sample without replacement). A live sample is compared by the
//!   **population stability index** over those bins ([`psi`]) and the two-sample
//!   **Kolmogorov–Smirnov** test against the stored sample ([`ks_2samp`]);
//! - [`CategoricalReference`]: the count of each training category (the most frequent up to a
//!   limit, the rest pooled as "other", missing values apart), compared by PSI over the
//!   categories and the **chi-squared** test of homogeneity ([`chi2_homogeneity`]).
//!
//! The definitions, each equal to a NumPy / SciPy computation (the tests paste the snippet):
//!
//! - decile edges: `np.unique(np.quantile(train, np.arange(1, bins) / bins))` (NumPy's default
//!   linear interpolation); a value `v` falls in bin `np.searchsorted(edges, v, side="right")`,
//!   so the bins are `(-inf, e1), [e1, e2), …, [ek, inf)`;
//! - PSI `= Σ (a − e) · ln(a / e)` over the bins, `e` and `a` the reference's and the live
//!   sample's proportions, each floored at [`PSI_FLOOR`] (10⁻⁴) so that an empty bin does not
//!   make it infinite. Read it as: below 0.1 no shift, 0.1–0.2 moderate, above 0.2 a shift;
//! - KS: `scipy.stats.ks_2samp(sample, live)` (two-sided, `method="auto"`): the statistic is the
//!   largest distance between the two empirical CDFs; the p-value is exact (the probability
//!   that a random lattice path leaves the band, computed by dynamic programming in the
//!   transition probabilities, so nothing overflows) when both samples have at most 10,000
//!   values, and otherwise the asymptotic Kolmogorov distribution of `√(mn/(m+n)) · D` — where
//!   SciPy uses the finite-`n` Kolmogorov distribution instead, so the two differ slightly
//!   above 10,000 values;
//! - chi-squared: `scipy.stats.chi2_contingency([reference, live], correction=False)` on the
//!   category counts, categories empty in both dropped.
//!
//! Missing values (NaN, or `None` for categories) are left out of the numeric comparison and
//! counted; for categories they are a category of their own.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::stats::chi2_sf;
use crate::{Error, Result};

/// The smallest proportion a PSI bin counts with (an empty bin would make PSI infinite).
pub const PSI_FLOOR: f64 = 1e-4;

/// Above this many values in either sample, [`ks_2samp`] uses the asymptotic p-value (as
/// SciPy's `method="auto"` does).
pub const KS_EXACT_MAX: usize = 10_000;

/// The reference distribution of one numeric feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericReference {
    /// Non-missing training values.
    pub count: u64,
    /// Missing (NaN) training values.
    pub missing: u64,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation (population, `ddof = 0`).
    pub std: f64,
    /// The interior bin edges (distinct quantiles), ascending.
    pub edges: Vec<f64>,
    /// Training values per bin (`edges.len() + 1` bins).
    pub counts: Vec<u64>,
    /// A sample of the training values, ascending: what KS compares against.
    pub sample: Vec<f64>,
}

/// A two-sample Kolmogorov–Smirnov test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KsTest {
    /// The largest distance between the two empirical CDFs.
    pub statistic: f64,
    /// The two-sided p-value.
    pub p_value: f64,
    /// Whether the p-value is exact (or asymptotic, for large samples).
    pub exact: bool,
}

/// A chi-squared test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChiSquared {
    /// The statistic.
    pub statistic: f64,
    /// Degrees of freedom.
    pub dof: u32,
    /// The p-value.
    pub p_value: f64,
}

/// A live sample of a numeric feature against its reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NumericDrift {
    /// Non-missing live values compared.
    pub rows: usize,
    /// Missing live values (left out).
    pub missing: usize,
    /// Their mean.
    pub mean: f64,
    /// The population stability index over the reference's bins.
    pub psi: f64,
    /// KS against the reference's sample.
    pub ks: KsTest,
}

/// A live sample of a categorical feature against its reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalDrift {
    /// Live values compared (missing included).
    pub rows: usize,
    /// Live values of categories the reference never saw (counted under "other").
    pub unseen: u64,
    /// The population stability index over the categories.
    pub psi: f64,
    /// The chi-squared test of homogeneity.
    pub chi2: ChiSquared,
}

/// `np.quantile(sorted, q)` with NumPy's default linear interpolation (its `_lerp`, which
/// interpolates from the upper end above the midpoint); `sorted` ascending, not empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let t = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if t >= 0.5 { b - diff * (1.0 - t) } else { a + diff * t }
}

/// The distinct interior quantile edges of `bins` equal-frequency bins of `sorted`.
pub fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (1..bins).map(|k| quantile(sorted, k as f64 / bins as f64)).collect();
    edges.dedup();
    edges
}

/// Counts of `values` (non-missing) per bin of `edges` (`np.searchsorted(edges, v, "right")`).
pub fn bin_counts(edges: &[f64], values: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() + 1];
    for &v in values.iter().filter(|v| !v.is_nan()) {
        counts[edges.partition_point(|&e| e <= v)] += 1;
    }
    counts
}

/// The population stability index of `actual` counts against `expected` counts over the same
/// bins, proportions floored at [`PSI_FLOOR`]; 0 when either has no values.
pub fn psi(expected: &[u64], actual: &[u64]) -> f64 {
    let (te, ta) = (expected.iter().sum::<u64>() as f64, actual.iter().sum::<u64>() as f64);
    if te == 0.0 || ta == 0.0 {
        return 0.0;
    }
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = ((e as f64 / te).max(PSI_FLOOR), (a as f64 / ta).max(PSI_FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The two-sample KS statistic of ascending `a` and `b`: `max |F_a(v) − F_b(v)|` over every
/// value `v` of either (right-continuous CDFs, as SciPy computes them).
fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (m, n) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let v = a[i].min(b[j]);
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / m - j as f64 / n).abs());
    }
    d
}

/// `P[D ≥ h / lcm(m, n)]` under the null hypothesis, exactly: the probability that a uniformly
/// random monotone lattice path from (0, 0) to (m, n) leaves the band `|x·n/g − y·m/g| < h`
/// (`g = gcd(m, n)`). The path is walked with its transition probabilities (right with
/// probability `(m − x) / (m − x + n − y)`), which stay in [0, 1], rather than by counting
/// paths, whose counts overflow; and the probability of leaving is summed where the paths
/// leave — a sum of positive terms — rather than taken as one minus the probability of
/// staying, so that p-values far below machine epsilon keep their precision (as SciPy's
/// method after Viehmann, arXiv:2102.08037, does).
fn ks_exact_p(m: usize, n: usize, h: u64) -> f64 {
    let g = gcd(m as u64, n as u64);
    let (mg, ng) = (m as u64 / g, n as u64 / g);
    let inside = |x: usize, y: usize| (x as u64 * ng).abs_diff(y as u64 * mg) < h;
    // prob[y]: probability of reaching (x, y) without leaving the band, for the current x.
    let mut prob = vec![0f64; n + 1];
    let mut left_band = 0f64;
    prob[0] = 1.0;
    for y in 1..=n {
        let incoming = prob[y - 1] * (n - y + 1) as f64 / (m + n - y + 1) as f64;
        if inside(0, y) {
            prob[y] = incoming;
        } else {
            left_band += incoming;
            prob[y] = 0.0;
        }
    }
    for x in 1..=m {
        for y in 0..=n {
            // From the left: (x − 1, y) stepped right; from below: (x, y − 1) stepped up.
            let from_left = prob[y] * (m - x + 1) as f64 / (m - x + 1 + n - y) as f64;
            let from_below = if y > 0 { prob[y - 1] * (n - y + 1) as f64 / (m - x + n - y + 1) as f64 } else { 0.0 };
            if inside(x, y) {
                prob[y] = from_left + from_below;
            } else {
                left_band += from_left + from_below;
                prob[y] = 0.0;
            }
        }
    }
    left_band.clamp(0.0, 1.0)
}

/// The Kolmogorov distribution's survival function `Q(λ) = 2 Σ (−1)^(k−1) e^(−2k²λ²)`.
fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if k as u32 % 2 == 1 { term } else { -term };
        if term < 1e-17 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// The two-sample Kolmogorov–Smirnov test of `a` against `b` (NaN left out), as
/// `scipy.stats.ks_2samp(a, b)` computes it (see the [module docs](self)). Errors when either
/// sample is empty.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Result<KsTest> {
    let (a, b) = (sorted_finite(a), sorted_finite(b));
    ks_sorted(&a, &b)
}

fn ks_sorted(a: &[f64], b: &[f64]) -> Result<KsTest> {
    if a.is_empty() || b.is_empty() {
        return Err(Error::Empty);
    }
    let (m, n) = (a.len(), b.len());
    let statistic = ks_statistic(a, b);
    if m.max(n) <= KS_EXACT_MAX {
        let g = gcd(m as u64, n as u64);
        let lcm = (m as u64 / g) as f64 * n as f64;
        let h = (statistic * lcm).round() as u64;
        let p_value = if h == 0 { 1.0 } else { ks_exact_p(m, n, h) };
        Ok(KsTest { statistic, p_value, exact: true })
    } else {
        let en = (m as f64 * n as f64) / (m + n) as f64;
        Ok(KsTest { statistic, p_value: kolmogorov_sf(en.sqrt() * statistic), exact: false })
    }
}

/// The chi-squared test of homogeneity of two rows of counts over the same categories
/// (`scipy.stats.chi2_contingency([a, b], correction=False)`), categories empty in both left
/// out. With fewer than two categories left, or an empty row, the statistic is 0 and the
/// p-value 1: there is nothing to compare.
pub fn chi2_homogeneity(a: &[u64], b: &[u64]) -> ChiSquared {
    let cols: Vec<(f64, f64)> =
        a.iter().zip(b).filter(|(x, y)| **x + **y > 0).map(|(&x, &y)| (x as f64, y as f64)).collect();
    let (ra, rb) = (cols.iter().map(|c| c.0).sum::<f64>(), cols.iter().map(|c| c.1).sum::<f64>());
    if cols.len() < 2 || ra == 0.0 || rb == 0.0 {
        return ChiSquared { statistic: 0.0, dof: 0, p_value: 1.0 };
    }
    let total = ra + rb;
    let statistic: f64 = cols
        .iter()
        .map(|&(x, y)| {
            let col = x + y;
            let (ea, eb) = (ra * col / total, rb * col / total);
            (x - ea).powi(2) / ea + (y - eb).powi(2) / eb
        })
        .sum();
    let dof = (cols.len() - 1) as u32;
    ChiSquared { statistic, dof, p_value: chi2_sf(statistic, dof) }
}

impl NumericReference {
    /// Fits the reference of `values` (NaN counted as missing): `bins` equal-frequency bins and
    /// a sample of at most `sample_size` values drawn with `rng`. Errors when no value is
    /// finite.
    pub fn fit(values: &[f64], bins: usize, sample_size: usize, rng: &mut impl Rng) -> Result<Self> {
        let sorted = sorted_finite(values);
        if sorted.is_empty() {
            return Err(Error::Empty);
        }
        let n = sorted.len() as f64;
        let mean = sorted.iter().sum::<f64>() / n;
        let std = (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let edges = quantile_edges(&sorted, bins.max(1));
        let counts = bin_counts(&edges, &sorted);
        let mut sample = if sorted.len() <= sample_size {
            sorted.clone()
        } else {
            rand::seq::index::sample(rng, sorted.len(), sample_size).into_iter().map(|i| sorted[i]).collect()
        };
        sample.sort_by(f64::total_cmp);
        Ok(Self {
            count: sorted.len() as u64,
            missing: (values.len() - sorted.len()) as u64,
            mean,
            std,
            edges,
            counts,
            sample,
        })
    }

    /// Compares live `values` with the reference. Errors when no live value is finite.
    pub fn compare(&self, values: &[f64]) -> Result<NumericDrift> {
        let live = sorted_finite(values);
        if live.is_empty() {
            return Err(Error::Empty);
        }
        let mean = live.iter().sum::<f64>() / live.len() as f64;
        Ok(NumericDrift {
            rows: live.len(),
            missing: values.len() - live.len(),
            mean,
            psi: psi(&self.counts, &bin_counts(&self.edges, &live)),
            ks: ks_sorted(&self.sample, &live)?,
        })
    }
}

/// The reference distribution of one categorical feature: counts per category, the most
/// frequent first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalReference {
    /// The categories kept (the most frequent, ties by name).
    pub categories: Vec<String>,
    /// Training values of each.
    pub counts: Vec<u64>,
    /// Training values of the categories beyond the limit.
    pub other: u64,
    /// Missing training values.
    pub missing: u64,
}

impl CategoricalReference {
    /// Counts `values` (`None`: missing), keeping the `max_categories` most frequent categories
    /// by name and pooling the rest.
    pub fn fit<'a>(values: impl IntoIterator<Item = Option<&'a str>>, max_categories: usize) -> Self {
        let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
        let mut missing = 0;
        for v in values {
            match v {
                Some(s) => *by_name.entry(s).or_default() += 1,
                None => missing += 1,
            }
        }
        let mut ranked: Vec<(&str, u64)> = by_name.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let other = ranked.iter().skip(max_categories).map(|c| c.1).sum();
        ranked.truncate(max_categories);
        Self {
            categories: ranked.iter().map(|c| c.0.to_string()).collect(),
            counts: ranked.iter().map(|c| c.1).collect(),
            other,
            missing,
        }
    }

    /// A reference with `counts` of each of `categories` (e.g. predicted classes).
    pub fn from_counts(categories: Vec<String>, counts: Vec<u64>) -> Self {
        Self { categories, counts, other: 0, missing: 0 }
    }

    /// How many buckets live counts have: one per category, then "other", then missing.
    pub fn buckets(&self) -> usize {
        self.categories.len() + 2
    }

    /// The bucket of a value: its category's, "other" for unseen values, or missing.
    pub fn bucket(&self, value: Option<&str>) -> usize {
        match value {
            Some(v) => self.categories.iter().position(|c| c == v).unwrap_or(self.categories.len()),
            None => self.categories.len() + 1,
        }
    }

    /// The reference's counts per bucket.
    pub fn bucket_counts(&self) -> Vec<u64> {
        let mut c = self.counts.clone();
        c.extend([self.other, self.missing]);
        c
    }

    /// Compares live counts per [`bucket`](Self::bucket) with the reference.
    pub fn compare_counts(&self, live: &[u64]) -> Result<CategoricalDrift> {
        if live.len() != self.buckets() {
            return Err(Error::Shape { what: "category counts", expected: self.buckets(), found: live.len() });
        }
        let rows = live.iter().sum::<u64>();
        if rows == 0 {
            return Err(Error::Empty);
        }
        let reference = self.bucket_counts();
        // "other" holds the pooled rare categories of the reference, but only unseen values live.
        let unseen = if self.other == 0 { live[self.categories.len()] } else { 0 };
        Ok(CategoricalDrift {
            rows: rows as usize,
            unseen,
            psi: psi(&reference, live),
            chi2: chi2_homogeneity(&reference, live),
        })
    }

    /// Compares live `values` with the reference.
    pub fn compare<'a>(&self, values: impl IntoIterator<Item = Option<&'a str>>) -> Result<CategoricalDrift> {
        let mut live = vec![0u64; self.buckets()];
        for v in values {
            live[self.bucket(v)] += 1;
        }
        self.compare_counts(&live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        // np.quantile([1, 2, 4, 8, 16], [0.1, 0.25, 0.5, 0.9]) -> [1.4, 2., 4., 12.8]
        let s = [1.0, 2.0, 4.0, 8.0, 16.0];
        let got: Vec<f64> = [0.1, 0.25, 0.5, 0.9].iter().map(|&q| quantile(&s, q)).collect();
        for (g, w) in got.iter().zip([1.4, 2.0, 4.0, 12.8]) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        // Repeated values collapse edges; values equal to an edge go to the bin above it.
        let edges = quantile_edges(&[1.0, 1.0, 1.0, 1.0, 2.0], 4);
        assert_eq!(edges, [1.0]);
        assert_eq!(bin_counts(&edges, &[0.5, 1.0, 1.5, f64::NAN]), [1, 2]);
    }

    #[test]
    fn psi_is_zero_for_equal_proportions_and_floors_empty_bins() {
        assert_eq!(psi(&[10, 20, 30], &[1, 2, 3]), 0.0);
        // (0.5 - 1e-4) ln(0.5 / 1e-4) + (0.5 - 0.5) ln 1 + (1e-4 - 0.5) ln(1e-4 / 0.5)
        let want = 2.0 * (0.5 - 1e-4) * (0.5f64 / 1e-4).ln();
        assert!((psi(&[0, 5, 5], &[5, 5, 0]) - want).abs() < 1e-12);
        assert_eq!(psi(&[], &[]), 0.0);
    }

    #[test]
    fn ks_matches_scipy_on_small_samples() {
        // from scipy.stats import ks_2samp
        // a = [0.1, 0.4, 0.7, 1.3, 2.2, 2.5]; b = [0.3, 0.9, 1.1, 1.5, 2.9, 3.1, 3.3, 4.0]
        // r = ks_2samp(a, b); print(r.statistic, r.pvalue)
        //   -> 0.5 0.30169830169830175
        // r = ks_2samp([1, 2, 2, 3], [2, 2, 3, 3, 4]); print(r.statistic, r.pvalue)
        //   -> 0.35 0.873015873015873
        // r = ks_2samp(range(20), [x + 10.5 for x in range(15)]); print(r.statistic, r.pvalue)
        //   -> 0.55 0.0070022863331142765
        let r = ks_2samp(&[0.1, 0.4, 0.7, 1.3, 2.2, 2.5], &[0.3, 0.9, 1.1, 1.5, 2.9, 3.1, 3.3, 4.0]).unwrap();
        assert!((r.statistic - 0.5).abs() < 1e-12 && (r.p_value - 0.30169830169830175).abs() < 1e-12, "{r:?}");
        let r = ks_2samp(&[1.0, 2.0, 2.0, 3.0], &[2.0, 2.0, 3.0, 3.0, 4.0]).unwrap();
        assert!((r.statistic - 0.35).abs() < 1e-12 && (r.p_value - 0.873015873015873).abs() < 1e-12, "{r:?}");
        let a: Vec<f64> = (0..20).map(f64::from).collect();
        let b: Vec<f64> = (0..15).map(|x| f64::from(x) + 10.5).collect();
        let r = ks_2samp(&a, &b).unwrap();
        assert!((r.statistic - 0.55).abs() < 1e-12 && (r.p_value - 0.0070022863331142765).abs() < 1e-12, "{r:?}");
        assert!(r.exact);
        assert!(ks_2samp(&[], &[1.0]).is_err());
    }

    #[test]
    fn chi_squared_matches_scipy() {
        // from scipy.stats import chi2_contingency
        // r = chi2_contingency([[50, 30, 20], [20, 30, 50]], correction=False)
        // print(r.statistic, r.dof, r.pvalue)  -> 25.714285714285715 2 2.6074368808253592e-06
        let c = chi2_homogeneity(&[50, 30, 20, 0], &[20, 30, 50, 0]);
        assert!((c.statistic - 25.714285714285715).abs() < 1e-9 && c.dof == 2, "{c:?}");
        assert!((c.p_value - 2.6074368808253592e-06).abs() < 1e-17, "{c:?}");
        // from scipy.stats import chi2; print(chi2.sf(3.5, 1), chi2.sf(7.2, 5), chi2.sf(40, 9))
        //   -> 0.0613688291394023 0.2061859197095561 7.598525229464264e-06
        for (x, k, want) in
            [(3.5, 1, 0.0613688291394023), (7.2, 5, 0.2061859197095561), (40.0, 9, 7.598525229464264e-06)]
        {
            let got = chi2_sf(x, k);
            assert!((got - want).abs() <= 1e-13 * want.max(1e-3), "chi2.sf({x}, {k}) = {got}, want {want}");
        }
        assert_eq!(chi2_homogeneity(&[5, 0], &[3, 0]).p_value, 1.0);
    }

    #[test]
    fn categorical_reference_keeps_the_most_frequent_and_flags_unseen_values() {
        let r = CategoricalReference::fit([Some("a"), Some("b"), Some("a"), None, Some("c"), Some("a"), Some("b")], 2);
        assert_eq!(r.categories, ["a", "b"]);
        assert_eq!(r.bucket_counts(), [3, 2, 1, 1]);
        let d = r.compare([Some("a"), Some("z"), None]).unwrap();
        assert_eq!((d.rows, d.unseen), (3, 0), "other holds pooled categories, so z is not called unseen");
        let r = CategoricalReference::fit([Some("a"), Some("b")], 10);
        assert_eq!(r.compare([Some("z")]).unwrap().unseen, 1);
        assert!(r.compare_counts(&[1, 2]).is_err());
    }
}
