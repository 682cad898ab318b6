//! Samplers: how a trial's parameters are chosen from the space and the trials so far.
//!
//! - [`GridSampler`]: every point of a discrete space, in a seeded random order, each once;
//! - [`RandomSampler`]: independent uniform draws (log-uniform for log parameters);
//! - [`TpeSampler`]: the tree-structured Parzen estimator (Bergstra et al., *Algorithms for
//!   Hyper-Parameter Optimization*, NeurIPS 2011) as Optuna's default `TPESampler` does it: after
//!   `startup_trials` random trials, the finished trials are split into the best
//!   `γ(n) = min(⌈0.1·n⌉, 25)` and the rest; each parameter gets a Parzen estimator (a mixture
//!   of truncated normals, one per observation plus a wide prior, bandwidths from the distances
//!   to neighbouring observations) over the good trials, `l(x)`, and over the rest, `g(x)`;
//!   `candidates` points are drawn from `l` and the one with the largest `l(x)/g(x)` is taken.
//!   Log parameters are modelled in log space, grids over their cells; categorical parameters
//!   get weighted counts plus a uniform prior. Parameters are modelled independently (Optuna's
//!   default, `multivariate=False`). Pruned trials count among the bad ones; failed and
//!   interrupted ones are ignored.
//!
//! Every draw of trial `n` comes from the stream `tune-trial-<n>` of the sampler's seed, so a
//! study run one trial at a time is reproducible; with parallel trials, what TPE sees depends
//! on which trials finished first.

use std::collections::HashSet;

use pipeline_core::{Direction, Rng, rng};
use rand::Rng as _;
use rand::seq::SliceRandom;
use rand_distr::{Distribution as _, StandardNormal};

use crate::space::{Distribution, Params, Space, Value};
use crate::storage::{TrialRecord, TrialState};

/// Chooses the parameters of the next trial.
pub trait Sampler: Send {
    /// The parameters of trial `number`, given every trial recorded so far; `None` when the
    /// space is exhausted (a grid whose every point has been tried).
    fn sample(&mut self, space: &Space, trials: &[TrialRecord], number: usize) -> Option<Params>;
}

/// The random stream of trial `number`.
fn trial_rng(seed: u64, number: usize) -> Rng {
    rng(seed, &format!("tune-trial-{number}"))
}

/// A uniform draw of one parameter.
fn uniform(d: &Distribution, r: &mut Rng) -> Value {
    match d {
        Distribution::Choice(c) => c[r.random_range(0..c.len())].clone(),
        Distribution::Fixed(v) => v.clone(),
        _ => match d.numeric() {
            Some(n) => d.from_internal(n.low + (n.high - n.low) * r.random::<f64>()),
            None => Value::Null,
        },
    }
}

/// Independent uniform draws.
#[derive(Debug, Clone)]
pub struct RandomSampler {
    seed: u64,
}

impl RandomSampler {
    /// Seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl Sampler for RandomSampler {
    fn sample(&mut self, space: &Space, _: &[TrialRecord], number: usize) -> Option<Params> {
        let mut r = trial_rng(self.seed, number);
        Some(space.0.iter().map(|(k, d)| (k.clone(), uniform(d, &mut r))).collect())
    }
}

/// Every point of a discrete space once, in a seeded random order.
#[derive(Debug, Clone)]
pub struct GridSampler {
    seed: u64,
}

impl GridSampler {
    /// Seeded by `seed` (the order of the points).
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }
}

impl Sampler for GridSampler {
    fn sample(&mut self, space: &Space, trials: &[TrialRecord], _: usize) -> Option<Params> {
        let size = space.grid_size()?;
        let mut order: Vec<usize> = (0..size).collect();
        order.shuffle(&mut rng(self.seed, "tune-grid"));
        let tried: HashSet<String> = trials.iter().map(|t| key(&t.params)).collect();
        order.into_iter().map(|i| space.grid_point(i)).find(|p| !tried.contains(&key(p)))
    }
}

fn key(p: &Params) -> String {
    serde_json::to_string(p).unwrap_or_default()
}

/// The tree-structured Parzen estimator (see the module docs).
#[derive(Debug, Clone)]
pub struct TpeSampler {
    seed: u64,
    direction: Direction,
    /// Random trials before the model is used.
    pub startup_trials: usize,
    /// Points drawn from `l(x)` per parameter.
    pub candidates: usize,
    /// The prior's weight in each mixture.
    pub prior_weight: f64,
}

impl TpeSampler {
    /// Optuna's defaults: 10 startup trials, 24 candidates, prior weight 1.
    pub fn new(seed: u64, direction: Direction) -> Self {
        Self { seed, direction, startup_trials: 10, candidates: 24, prior_weight: 1.0 }
    }
}

/// Optuna's `default_gamma`: the size of the good group among `n` trials.
pub fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// Optuna's `default_weights`: equal for the newest 25 observations, a ramp from `1/n` up for
/// older ones (given in trial order).
pub fn ramp_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let old = n - 25;
    let mut w: Vec<f64> = (0..old)
        .map(|i| {
            if old == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (old - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

/// A mixture of normals truncated to `[low, high]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Parzen {
    /// Component means.
    pub mus: Vec<f64>,
    /// Component standard deviations.
    pub sigmas: Vec<f64>,
    /// Component weights (sum to one).
    pub weights: Vec<f64>,
    /// Truncation.
    pub low: f64,
    /// Truncation.
    pub high: f64,
}

impl Parzen {
    /// The estimator of `observations` (with `weights`, in trial order) over `[low, high]`,
    /// with a prior component `N((low + high) / 2, high − low)` of weight `prior_weight`.
    /// Bandwidths: each component's larger distance to its sorted neighbours (the ends use
    /// their one neighbour), clipped to `[(high − low) / min(100, n + 1), high − low]`.
    pub fn fit(observations: &[f64], weights: &[f64], low: f64, high: f64, prior_weight: f64) -> Self {
        let range = high - low;
        let mut comps: Vec<(f64, f64, bool)> = observations.iter().zip(weights).map(|(&m, &w)| (m, w, false)).collect();
        comps.push(((low + high) / 2.0, prior_weight, true));
        let mut order: Vec<usize> = (0..comps.len()).collect();
        order.sort_by(|&a, &b| comps[a].0.total_cmp(&comps[b].0));
        let n = comps.len();
        let mut sigmas = vec![range; n];
        if n > 1 {
            for (pos, &i) in order.iter().enumerate() {
                let left = if pos > 0 { comps[i].0 - comps[order[pos - 1]].0 } else { 0.0 };
                let right = if pos + 1 < n { comps[order[pos + 1]].0 - comps[i].0 } else { 0.0 };
                sigmas[i] = left.max(right);
            }
        }
        let min_sigma = range / (100f64).min(observations.len() as f64 + 1.0);
        for (s, c) in sigmas.iter_mut().zip(&comps) {
            *s = if c.2 { range } else { s.clamp(min_sigma, range) };
            if s.is_nan() || *s <= 0.0 {
                *s = f64::EPSILON.max(range);
            }
        }
        let total: f64 = comps.iter().map(|c| c.1).sum();
        Self {
            mus: comps.iter().map(|c| c.0).collect(),
            sigmas,
            weights: comps.iter().map(|c| c.1 / total).collect(),
            low,
            high,
        }
    }

    /// A draw.
    pub fn sample(&self, r: &mut Rng) -> f64 {
        let u: f64 = r.random();
        let mut acc = 0.0;
        let mut k = self.weights.len() - 1;
        for (i, w) in self.weights.iter().enumerate() {
            acc += w;
            if u < acc {
                k = i;
                break;
            }
        }
        let (mu, sigma) = (self.mus[k], self.sigmas[k]);
        for _ in 0..1000 {
            let z: f64 = StandardNormal.sample(r);
            let x = mu + sigma * z;
            if (self.low..=self.high).contains(&x) {
                return x;
            }
        }
        mu.clamp(self.low, self.high)
    }

    /// The log density at `x`.
    pub fn log_pdf(&self, x: f64) -> f64 {
        let mut terms = Vec::with_capacity(self.mus.len());
        for ((&mu, &sigma), &w) in self.mus.iter().zip(&self.sigmas).zip(&self.weights) {
            let z = (x - mu) / sigma;
            let mass = normal_cdf((self.high - mu) / sigma) - normal_cdf((self.low - mu) / sigma);
            let log_norm = -0.5 * z * z - (sigma * (2.0 * std::f64::consts::PI).sqrt()).ln() - mass.max(1e-300).ln();
            terms.push(w.ln() + log_norm);
        }
        log_sum_exp(&terms)
    }
}

/// The standard normal CDF.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Weighted category frequencies with a uniform prior of total weight `prior_weight`.
fn categorical(indices: &[usize], weights: &[f64], k: usize, prior_weight: f64) -> Vec<f64> {
    let mut p = vec![prior_weight / k as f64; k];
    for (&i, &w) in indices.iter().zip(weights) {
        p[i] += w;
    }
    let total: f64 = p.iter().sum();
    p.iter().map(|x| x / total).collect()
}

impl TpeSampler {
    /// Splits the usable trials into (good, bad), each in trial order.
    fn split<'t>(&self, trials: &'t [TrialRecord]) -> (Vec<&'t TrialRecord>, Vec<&'t TrialRecord>) {
        let mut complete: Vec<&TrialRecord> =
            trials.iter().filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite)).collect();
        let pruned: Vec<&TrialRecord> = trials.iter().filter(|t| t.state == TrialState::Pruned).collect();
        let n = complete.len() + pruned.len();
        let dir = self.direction;
        complete.sort_by(|a, b| {
            let (x, y) = (a.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN));
            match dir {
                Direction::Minimize => x.total_cmp(&y),
                Direction::Maximize => y.total_cmp(&x),
            }
            .then(a.number.cmp(&b.number))
        });
        let n_good = gamma(n).min(complete.len());
        let mut good: Vec<&TrialRecord> = complete[..n_good].to_vec();
        let mut bad: Vec<&TrialRecord> = complete[n_good..].to_vec();
        bad.extend(pruned);
        good.sort_by_key(|t| t.number);
        bad.sort_by_key(|t| t.number);
        (good, bad)
    }

    fn sample_one(
        &self,
        d: &Distribution,
        key: &str,
        good: &[&TrialRecord],
        bad: &[&TrialRecord],
        r: &mut Rng,
    ) -> Value {
        match d {
            Distribution::Fixed(v) => v.clone(),
            Distribution::Choice(c) => {
                let idx = |ts: &[&TrialRecord]| -> Vec<usize> {
                    ts.iter().filter_map(|t| c.iter().position(|v| Some(v) == t.params.get(key))).collect()
                };
                let (gi, bi) = (idx(good), idx(bad));
                let l = categorical(&gi, &ramp_weights(gi.len()), c.len(), self.prior_weight);
                let g = categorical(&bi, &ramp_weights(bi.len()), c.len(), self.prior_weight);
                let mut best = (f64::NEG_INFINITY, 0);
                for _ in 0..self.candidates {
                    let u: f64 = r.random();
                    let mut acc = 0.0;
                    let mut pick = c.len() - 1;
                    for (i, p) in l.iter().enumerate() {
                        acc += p;
                        if u < acc {
                            pick = i;
                            break;
                        }
                    }
                    let score = l[pick].ln() - g[pick].ln();
                    if score > best.0 {
                        best = (score, pick);
                    }
                }
                c[best.1].clone()
            }
            _ => {
                let Some(n) = d.numeric() else { return Value::Null };
                let obs = |ts: &[&TrialRecord]| -> Vec<f64> {
                    ts.iter().filter_map(|t| t.params.get(key).and_then(|v| d.to_internal(v))).collect()
                };
                let (go, bo) = (obs(good), obs(bad));
                let l = Parzen::fit(&go, &ramp_weights(go.len()), n.low, n.high, self.prior_weight);
                let g = Parzen::fit(&bo, &ramp_weights(bo.len()), n.low, n.high, self.prior_weight);
                let mut best = (f64::NEG_INFINITY, (n.low + n.high) / 2.0);
                for _ in 0..self.candidates {
                    let x = l.sample(r);
                    let score = l.log_pdf(x) - g.log_pdf(x);
                    if score > best.0 {
                        best = (score, x);
                    }
                }
                d.from_internal(best.1)
            }
        }
    }
}

impl Sampler for TpeSampler {
    fn sample(&mut self, space: &Space, trials: &[TrialRecord], number: usize) -> Option<Params> {
        let mut r = trial_rng(self.seed, number);
        let (good, bad) = self.split(trials);
        if good.len() + bad.len() < self.startup_trials.max(1) || good.is_empty() {
            return Some(space.0.iter().map(|(k, d)| (k.clone(), uniform(d, &mut r))).collect());
        }
        Some(space.0.iter().map(|(k, d)| (k.clone(), self.sample_one(d, k, &good, &bad, &mut r))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_and_weights_as_optuna() {
        // optuna.samplers._tpe.sampler.default_gamma / default_weights
        assert_eq!([gamma(1), gamma(10), gamma(11), gamma(40), gamma(1000)], [1, 1, 2, 4, 25]);
        assert_eq!(ramp_weights(3), vec![1.0; 3]);
        let w = ramp_weights(30);
        // np.linspace(1 / 30, 1.0, num=5)
        let expect = [1.0 / 30.0, 0.275, 0.5166666666666667, 0.7583333333333333, 1.0];
        for (a, b) in w[..5].iter().zip(expect) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert!(w[5..].iter().all(|&x| x == 1.0));
    }

    #[test]
    fn normal_cdf_matches_scipy() {
        // scipy.stats.norm.cdf([-1.96, 0, 0.5, 3]) = [0.0249979, 0.5, 0.69146246, 0.9986501]
        for (z, p) in [(-1.96, 0.024997895148220435), (0.0, 0.5), (0.5, 0.6914624612740131), (3.0, 0.9986501019683699)]
        {
            assert!((normal_cdf(z) - p).abs() < 1e-12, "{z}");
        }
    }

    #[test]
    fn parzen_bandwidths_and_density() {
        let p = Parzen::fit(&[1.0, 2.0, 6.0], &[1.0; 3], 0.0, 10.0, 1.0);
        // Sorted means 1, 2, 5 (prior), 6: bandwidths max(left, right) = 1, 3, prior 10, 1;
        // the clip floor is 10 / 4 = 2.5.
        assert_eq!(p.mus, vec![1.0, 2.0, 6.0, 5.0]);
        assert_eq!(p.sigmas, vec![2.5, 3.0, 2.5, 10.0]);
        assert!(p.weights.iter().all(|w| (w - 0.25).abs() < 1e-12));
        // The density integrates to one over [low, high] (trapezoid rule).
        let n = 20_000;
        let h = 10.0 / n as f64;
        let integral: f64 = (0..=n)
            .map(|i| {
                let x = i as f64 * h;
                let f = p.log_pdf(x).exp();
                if i == 0 || i == n { f / 2.0 } else { f }
            })
            .sum::<f64>()
            * h;
        assert!((integral - 1.0).abs() < 1e-6, "{integral}");
        let mut r = rng(1, "t");
        assert!((0..1000).map(|_| p.sample(&mut r)).all(|x| (0.0..=10.0).contains(&x)));
    }

    fn record(number: usize, x: f64, value: f64) -> TrialRecord {
        TrialRecord {
            number,
            state: TrialState::Complete,
            params: Params::from([("x".to_string(), serde_json::json!(x))]),
            value: Some(value),
            ..TrialRecord::new(number, Params::new())
        }
    }

    #[test]
    fn tpe_draws_near_the_good_trials() {
        // 30 trials on (x - 2)^2 over [-10, 10]: the next TPE draws concentrate near 2.
        let space = Space(vec![("x".into(), Distribution::Uniform { low: -10.0, high: 10.0 })]);
        let trials: Vec<TrialRecord> = (0..30)
            .map(|i| {
                let x = -10.0 + 20.0 * i as f64 / 29.0;
                record(i, x, (x - 2.0).powi(2))
            })
            .collect();
        let mut s = TpeSampler::new(0, Direction::Minimize);
        let draws: Vec<f64> = (30..60).map(|n| s.sample(&space, &trials, n).unwrap()["x"].as_f64().unwrap()).collect();
        let near = draws.iter().filter(|x| (**x - 2.0).abs() < 2.0).count();
        assert!(near >= 24, "{draws:?}");
        // Maximising the same values sends it to the ends instead.
        let mut s = TpeSampler::new(0, Direction::Maximize);
        let far = (30..60).filter(|&n| s.sample(&space, &trials, n).unwrap()["x"].as_f64().unwrap() < -6.0).count();
        assert!(far >= 20, "{far}");
    }

    #[test]
    fn grid_visits_each_point_once_then_stops() {
        let space = Space(vec![
            ("a".into(), Distribution::Choice(vec![Value::from(1), Value::from(2)])),
            ("b".into(), Distribution::Int { low: 0, high: 2, step: 1, log: false }),
        ]);
        let mut g = GridSampler::new(3);
        let mut trials = Vec::new();
        for n in 0..6 {
            let p = g.sample(&space, &trials, n).unwrap();
            trials.push(TrialRecord { params: p, ..TrialRecord::new(n, Params::new()) });
        }
        let distinct: HashSet<String> = trials.iter().map(|t| key(&t.params)).collect();
        assert_eq!(distinct.len(), 6);
        assert_eq!(g.sample(&space, &trials, 6), None);
    }

    #[test]
    fn random_is_seeded_and_in_range() {
        let space = Space(vec![
            ("lr".into(), Distribution::LogUniform { low: 1e-4, high: 1e-1 }),
            ("n".into(), Distribution::Int { low: 16, high: 128, step: 16, log: false }),
        ]);
        let mut a = RandomSampler::new(5);
        let mut b = RandomSampler::new(5);
        for n in 0..50 {
            let p = a.sample(&space, &[], n).unwrap();
            assert_eq!(Some(&p), b.sample(&space, &[], n).as_ref());
            let lr = p["lr"].as_f64().unwrap();
            assert!((1e-4..=1e-1).contains(&lr));
            assert_eq!(p["n"].as_i64().unwrap() % 16, 0);
        }
    }
}
