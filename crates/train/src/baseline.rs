//! Baselines every model is reported beside: the trivial predictor (the training part's class
//! prior, or its mean) and a linear model on the same preprocessed features — multinomial
//! logistic regression for classification, ridge regression for regression. A model that does
//! not beat them has learned little.
//!
//! Both linear models solve the objective scikit-learn's estimators of the same name solve, with
//! its default regularization, so their scores can be checked against it:
//!
//! - [`LogisticRegression`]: `C · Σᵢ −log p(yᵢ | xᵢ) + ½‖W‖²` (intercept not penalized), one
//!   weight vector per class (softmax) for three or more classes and a single one (sigmoid) for
//!   two, as `sklearn.linear_model.LogisticRegression(C=1.0)` with the `lbfgs` solver. Solved
//!   here by L-BFGS too; the matrix products run on candle's CPU kernels in `f64`.
//! - [`Ridge`]: `‖y − Xw − b‖² + α‖w‖²`, as `sklearn.linear_model.Ridge(alpha=1.0)`, solved exactly
//!   through the normal equations of the centred data (Cholesky).

use candle_core::{DType, Device, Tensor};
use pipeline_core::Predictions;

use crate::{Error, Result};

/// The class prior of `targets` over `classes` classes: what scikit-learn's
/// `DummyClassifier(strategy="prior")` predicts for every example.
pub fn class_prior(targets: &[u32], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &t in targets {
        if let Some(c) = counts.get_mut(t as usize) {
            *c += 1;
        }
    }
    let n = targets.len().max(1) as f32;
    counts.into_iter().map(|c| c as f32 / n).collect()
}

/// The prior of the training targets, predicted for `rows` examples: the majority class wins
/// every argmax.
pub fn majority(train: &[u32], classes: usize, rows: usize) -> Predictions {
    let prior = class_prior(train, classes);
    Predictions::Classes { probs: prior.repeat(rows), classes }
}

/// The mean of the training targets, predicted for `rows` examples.
pub fn mean(train: &[f32], rows: usize) -> Predictions {
    let m = train.iter().map(|&v| f64::from(v)).sum::<f64>() / train.len().max(1) as f64;
    Predictions::Values(vec![m as f32; rows])
}

/// A fitted multinomial (or, for two classes, binary) logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    /// Input width.
    pub dims: usize,
    /// Number of classes.
    pub classes: usize,
    /// Weights, `dims × cols` row-major, `cols` = 1 for two classes (the logit of class 1) and
    /// `classes` otherwise.
    pub weights: Vec<f64>,
    /// Intercepts, one per column.
    pub intercepts: Vec<f64>,
    /// L-BFGS iterations taken.
    pub iterations: usize,
    /// Whether the gradient's largest entry fell below the tolerance.
    pub converged: bool,
}

/// How [`LogisticRegression::fit`] regularizes and when it stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticOptions {
    /// Inverse regularization strength (scikit-learn's `C`).
    pub c: f64,
    /// Most L-BFGS iterations.
    pub max_iter: usize,
    /// Stop when the largest absolute gradient entry, relative to the number of examples, is
    /// below this.
    pub tol: f64,
}

impl Default for LogisticOptions {
    fn default() -> Self {
        Self { c: 1.0, max_iter: 200, tol: 1e-6 }
    }
}

impl LogisticRegression {
    fn cols(classes: usize) -> usize {
        if classes == 2 { 1 } else { classes }
    }

    /// Fits `rows × dims` features `x` (row-major) to class indices `y` below `classes`.
    pub fn fit(x: &[f32], dims: usize, y: &[u32], classes: usize, options: LogisticOptions) -> Result<Self> {
        let n = y.len();
        if classes < 2 || dims == 0 || n == 0 || x.len() != n * dims {
            return Err(Error::Config(format!(
                "logistic regression needs at least 2 classes and {n} rows of {dims} features, got {} values",
                x.len()
            )));
        }
        if let Some(&bad) = y.iter().find(|&&c| c as usize >= classes) {
            return Err(Error::Config(format!("class index {bad} is not below {classes}")));
        }
        let cols = Self::cols(classes);
        let device = Device::Cpu;
        let xs = Tensor::from_vec(x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), (n, dims), &device)?;
        let xt = xs.t()?.contiguous()?;
        // Parameters: weights (dims × cols) then intercepts (cols).
        let objective = |theta: &[f64]| -> Result<(f64, Vec<f64>)> {
            let w = Tensor::from_slice(&theta[..dims * cols], (dims, cols), &device)?;
            let z = xs.matmul(&w)?.flatten_all()?.to_vec1::<f64>()?;
            let b = &theta[dims * cols..];
            let mut g = vec![0.0f64; n * cols];
            let mut loss = 0.0;
            let mut logits = vec![0.0f64; classes];
            for i in 0..n {
                let row = &z[i * cols..(i + 1) * cols];
                if classes == 2 {
                    logits[0] = 0.0;
                    logits[1] = row[0] + b[0];
                } else {
                    for j in 0..cols {
                        logits[j] = row[j] + b[j];
                    }
                }
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = logits.iter().map(|&l| (l - max).exp()).sum();
                let lse = max + sum.ln();
                let yi = y[i] as usize;
                loss += lse - logits[yi];
                if classes == 2 {
                    let p1 = (logits[1] - lse).exp();
                    g[i] = p1 - if yi == 1 { 1.0 } else { 0.0 };
                } else {
                    for j in 0..cols {
                        g[i * cols + j] = (logits[j] - lse).exp() - if j == yi { 1.0 } else { 0.0 };
                    }
                }
            }
            let gt = Tensor::from_vec(g.clone(), (n, cols), &device)?;
            let gw = xt.matmul(&gt)?.flatten_all()?.to_vec1::<f64>()?;
            let c = options.c;
            let mut grad = Vec::with_capacity(theta.len());
            let mut penalty = 0.0;
            for (k, &wk) in theta[..dims * cols].iter().enumerate() {
                grad.push(c * gw[k] + wk);
                penalty += wk * wk;
            }
            for j in 0..cols {
                grad.push(c * (0..n).map(|i| g[i * cols + j]).sum::<f64>());
            }
            Ok((c * loss + 0.5 * penalty, grad))
        };
        let start = vec![0.0; (dims + 1) * cols];
        let (theta, iterations, converged) = lbfgs(objective, start, options.max_iter, options.tol * n as f64)?;
        Ok(Self {
            dims,
            classes,
            weights: theta[..dims * cols].to_vec(),
            intercepts: theta[dims * cols..].to_vec(),
            iterations,
            converged,
        })
    }

    /// Class probabilities for `rows × dims` features `x`.
    pub fn predict(&self, x: &[f32]) -> Predictions {
        let cols = Self::cols(self.classes);
        let rows = x.len() / self.dims.max(1);
        let mut probs = Vec::with_capacity(rows * self.classes);
        let mut logits = vec![0.0f64; self.classes];
        for row in x.chunks_exact(self.dims) {
            for j in 0..cols {
                let mut z = self.intercepts[j];
                for (k, &v) in row.iter().enumerate() {
                    z += f64::from(v) * self.weights[k * cols + j];
                }
                if self.classes == 2 {
                    logits[0] = 0.0;
                    logits[1] = z;
                } else {
                    logits[j] = z;
                }
            }
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logits.iter().map(|&l| (l - max).exp()).sum();
            probs.extend(logits.iter().map(|&l| ((l - max).exp() / sum) as f32));
        }
        Predictions::Classes { probs, classes: self.classes }
    }
}

/// Minimizes a smooth function by limited-memory BFGS (ten correction pairs) with a
/// backtracking line search on the Armijo condition. `f` returns the value and gradient.
/// Returns the minimizer, the iterations taken and whether the largest gradient entry fell
/// below `gtol`.
fn lbfgs(
    mut f: impl FnMut(&[f64]) -> Result<(f64, Vec<f64>)>,
    mut x: Vec<f64>,
    max_iter: usize,
    gtol: f64,
) -> Result<(Vec<f64>, usize, bool)> {
    const MEMORY: usize = 10;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let inf_norm = |a: &[f64]| a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let (mut fx, mut g) = f(&x)?;
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = std::collections::VecDeque::new();
    for iter in 0..max_iter {
        if inf_norm(&g) <= gtol {
            return Ok((x, iter, true));
        }
        // Two-loop recursion: d = −H·g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= a * yi;
            }
            alphas.push(a);
        }
        let gamma = history.back().map_or(1.0 / inf_norm(&g).max(1.0), |(s, y, _)| dot(s, y) / dot(y, y));
        for qi in &mut q {
            *qi *= gamma;
        }
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (a - b) * si;
            }
        }
        let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction (curvature information went stale): restart along −g.
            history.clear();
            d = g.iter().map(|v| -v).collect();
            slope = dot(&g, &d);
        }
        let mut step = 1.0;
        let (x_new, f_new, g_new) = loop {
            let candidate: Vec<f64> = x.iter().zip(&d).map(|(xi, di)| xi + step * di).collect();
            let (fc, gc) = f(&candidate)?;
            if fc.is_finite() && fc <= fx + 1e-4 * step * slope {
                break (candidate, fc, gc);
            }
            step *= 0.5;
            if step < 1e-20 {
                // No decrease along d: the minimum is reached to machine precision.
                return Ok((x, iter, inf_norm(&g) <= gtol));
            }
        };
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&y, &y).max(f64::MIN_POSITIVE) {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        let converged_f = (fx - f_new).abs() <= 1e-15 * fx.abs().max(1.0);
        x = x_new;
        fx = f_new;
        g = g_new;
        if converged_f {
            return Ok((x, iter + 1, inf_norm(&g) <= gtol));
        }
    }
    let done = inf_norm(&g) <= gtol;
    Ok((x, max_iter, done))
}

/// A fitted ridge regression.
#[derive(Debug, Clone, PartialEq)]
pub struct Ridge {
    /// One weight per input feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
}

impl Ridge {
    /// Fits `rows × dims` features `x` to `y` with penalty `alpha` on the weights (not the
    /// intercept).
    pub fn fit(x: &[f32], dims: usize, y: &[f32], alpha: f64) -> Result<Self> {
        let n = y.len();
        if dims == 0 || n == 0 || x.len() != n * dims {
            return Err(Error::Config(format!(
                "ridge regression needs {n} rows of {dims} features, got {} values",
                x.len()
            )));
        }
        let mut x_mean = vec![0.0f64; dims];
        for row in x.chunks_exact(dims) {
            for (m, &v) in x_mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        for m in &mut x_mean {
            *m /= n as f64;
        }
        let y_mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let centred: Vec<f64> =
            x.chunks_exact(dims).flat_map(|row| row.iter().zip(&x_mean).map(|(&v, m)| f64::from(v) - m)).collect();
        let xc = Tensor::from_vec(centred, (n, dims), &Device::Cpu)?;
        let yc = Tensor::from_vec(y.iter().map(|&v| f64::from(v) - y_mean).collect::<Vec<_>>(), (n, 1), &Device::Cpu)?;
        let xt = xc.t()?;
        let mut gram = xt.matmul(&xc)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        for i in 0..dims {
            gram[i * dims + i] += alpha;
        }
        let rhs = xt.matmul(&yc)?.flatten_all()?.to_vec1::<f64>()?;
        let weights = cholesky_solve(&mut gram, dims, rhs).ok_or_else(|| {
            Error::Config("ridge regression: the normal equations are singular (use a positive alpha)".into())
        })?;
        let intercept = y_mean - weights.iter().zip(&x_mean).map(|(w, m)| w * m).sum::<f64>();
        Ok(Self { weights, intercept })
    }

    /// Predictions for `rows × dims` features `x`.
    pub fn predict(&self, x: &[f32]) -> Predictions {
        let dims = self.weights.len().max(1);
        Predictions::Values(
            x.chunks_exact(dims)
                .map(|row| {
                    (self.intercept + row.iter().zip(&self.weights).map(|(&v, w)| f64::from(v) * w).sum::<f64>()) as f32
                })
                .collect(),
        )
    }
}

/// Solves `A x = b` for symmetric positive definite `A` (`n × n`, overwritten by its Cholesky
/// factor); `None` if `A` is not positive definite.
fn cholesky_solve(a: &mut [f64], n: usize, mut b: Vec<f64>) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // L y = b, then Lᵀ x = y.
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twelve points, three features, three classes, and the scikit-learn 1.9.1 fits of them:
    ///
    /// ```python
    /// import numpy as np
    /// from sklearn.linear_model import LogisticRegression, Ridge
    /// X = np.array(X_ROWS); y = np.array(Y)
    /// m = LogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(X, y)
    /// m.predict_proba(X[:4])
    /// b = LogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(X, y == 2)
    /// b.predict_proba(X[:4])
    /// r = Ridge(alpha=1.0).fit(X, T); r.coef_, r.intercept_
    /// ```
    const X: [[f32; 3]; 12] = [
        [0.5, 1.2, -0.3],
        [1.5, -0.7, 0.8],
        [-1.1, 0.4, 2.0],
        [0.3, 0.3, 0.3],
        [2.2, 1.0, -1.5],
        [-0.6, -1.8, 0.9],
        [1.0, 2.1, 0.0],
        [-2.0, 0.5, -0.5],
        [0.8, -0.2, 1.7],
        [-0.4, 1.5, -1.2],
        [1.7, 0.9, 0.6],
        [-1.3, -0.9, -0.8],
    ];
    const Y: [u32; 12] = [0, 1, 2, 0, 1, 2, 0, 2, 1, 0, 1, 2];
    const T: [f32; 12] = [1.0, 2.5, -0.5, 0.7, 4.0, -1.2, 2.2, -2.5, 1.9, 0.1, 3.3, -2.0];

    fn xs() -> Vec<f32> {
        X.iter().flatten().copied().collect()
    }

    fn close(a: &[f32], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((f64::from(*x) - y).abs() < tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn multinomial_logistic_regression_matches_scikit_learn() {
        let m = LogisticRegression::fit(&xs(), 3, &Y, 3, LogisticOptions { tol: 1e-8, ..Default::default() }).unwrap();
        assert!(m.converged, "{} iterations", m.iterations);
        let Predictions::Classes { probs, .. } = m.predict(&xs()[..12]) else { panic!() };
        close(&probs, &SKLEARN_MULTI, 1e-5);
    }

    #[test]
    fn binary_logistic_regression_matches_scikit_learn() {
        let y: Vec<u32> = Y.iter().map(|&c| u32::from(c == 2)).collect();
        let m = LogisticRegression::fit(&xs(), 3, &y, 2, LogisticOptions { tol: 1e-8, ..Default::default() }).unwrap();
        assert!(m.converged);
        let Predictions::Classes { probs, .. } = m.predict(&xs()[..12]) else { panic!() };
        close(&probs, &SKLEARN_BINARY, 1e-5);
    }

    #[test]
    fn ridge_matches_scikit_learn() {
        let r = Ridge::fit(&xs(), 3, &T, 1.0).unwrap();
        let mut all = r.weights.clone();
        all.push(r.intercept);
        let as_f32: Vec<f32> = all.iter().map(|&v| v as f32).collect();
        close(&as_f32, &SKLEARN_RIDGE, 1e-5);
    }

    #[test]
    fn trivial_baselines() {
        let Predictions::Classes { probs, classes } = majority(&[0, 2, 2, 1], 3, 2) else { panic!() };
        assert_eq!((probs, classes), (vec![0.25, 0.25, 0.5, 0.25, 0.25, 0.5], 3));
        assert_eq!(mean(&[1.0, 2.0, 6.0], 2), Predictions::Values(vec![3.0, 3.0]));
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(LogisticRegression::fit(&[1.0, 2.0, 3.0], 2, &[0, 1], 2, LogisticOptions::default()).is_err());
        assert!(LogisticRegression::fit(&[1.0, 2.0], 1, &[0, 3], 2, LogisticOptions::default()).is_err());
        assert!(Ridge::fit(&[1.0, 2.0, 3.0], 2, &[0.0, 1.0], 1.0).is_err());
    }

    const SKLEARN_MULTI: [f64; 12] = [
        0.7006461103436454,
        0.22136666671477118,
        0.07798722294158343,
        0.0637535547495701,
        0.8957771486278161,
        0.0404692966226138,
        0.1708358407986535,
        0.04002035807799457,
        0.789143801123352,
        0.4237584112438404,
        0.3425366872846013,
        0.23370490147155829,
    ];
    const SKLEARN_BINARY: [f64; 8] = [
        0.9171639664721465,
        0.08283603352785349,
        0.904225094890385,
        0.09577490510961491,
        0.27731851089608517,
        0.7226814891039148,
        0.795170574751158,
        0.20482942524884193,
    ];
    /// The three coefficients, then the intercept.
    const SKLEARN_RIDGE: [f64; 4] = [1.4136870790224954, 0.30926701623771685, 0.16596757975268256, 0.3468858345719991];
}
