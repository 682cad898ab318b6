//! Exact fits of the linear architectures (`model.arch: logistic | ridge`): instead of epochs of
//! gradient steps, one solve of the convex objective — L-BFGS for logistic regression, the
//! normal equations for ridge (both in [`baseline`](crate::baseline), tested against
//! scikit-learn) — written into the model's one linear layer (`layers.0.weight` / `.bias`).
//!
//! The fit reports one "epoch" (training and validation loss and accuracy), so metrics logs,
//! progress, tuning reports and early-stopping monitors see what they see for any model. There
//! is nothing to checkpoint: resuming solves again and gets the same weights.

use std::time::Instant;

use candle_core::Tensor;
use models::{LogisticConfig, ModelConfig, Params, RidgeConfig};
use pipeline_core::{Dataset, Predictions, Targets, Task};

use crate::baseline::{LogisticOptions, LogisticRegression, Ridge};
use crate::{Callback, EpochMetrics, Error, FitReport, LossConfig, Result, TrainConfig};

/// Which exact solve a model takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Solver {
    /// Logistic (softmax) regression by L-BFGS.
    Logistic(LogisticConfig),
    /// Ridge regression in closed form.
    Ridge(RidgeConfig),
}

impl Solver {
    /// The solver of a linear architecture; `None` for models trained by gradient descent.
    pub fn for_model(config: &ModelConfig) -> Option<Self> {
        match config {
            ModelConfig::Logistic(c) => Some(Solver::Logistic(c.clone())),
            ModelConfig::Ridge(c) => Some(Solver::Ridge(c.clone())),
            _ => None,
        }
    }

    /// Checks the solver against the task and the `train:` section: logistic regression is for
    /// classes with the cross-entropy loss, ridge for values with the squared error. The
    /// message names the key to change.
    pub fn check(&self, train: &TrainConfig, task: &Task) -> Result<(), (String, String)> {
        let loss = train.loss_for(task);
        match (self, task) {
            (Solver::Logistic(_), Task::Classification { .. }) => match loss {
                LossConfig::CrossEntropy(c) if c.label_smoothing == 0.0 && c.class_weights.is_none() => Ok(()),
                _ => Err((
                    "train.loss".into(),
                    "arch: logistic minimises the plain cross-entropy (no label smoothing or class weights); \
                     remove train.loss, or use arch: mlp with hidden: [] to train a linear layer on another loss"
                        .into(),
                )),
            },
            (Solver::Ridge(_), Task::Regression) => match loss {
                LossConfig::Mse(_) => Ok(()),
                _ => Err((
                    "train.loss".into(),
                    "arch: ridge minimises the squared error; remove train.loss, or use arch: mlp with \
                     hidden: [] to train a linear layer on another loss"
                        .into(),
                )),
            },
            (Solver::Logistic(_), _) => Err((
                "model.arch".into(),
                "logistic regression needs a classification target; use arch: ridge for regression".into(),
            )),
            (Solver::Ridge(_), _) => Err((
                "model.arch".into(),
                "ridge regression needs a regression target; use arch: logistic for classification".into(),
            )),
        }
    }

    /// Solves on `train`, writes the weights into `params` (the variables of the model's one
    /// linear layer) and reports the one epoch to `callbacks`.
    pub fn fit(
        &self,
        params: &Params,
        config: &TrainConfig,
        train: &Dataset,
        validation: Option<&Dataset>,
        callbacks: &mut [&mut dyn Callback],
    ) -> Result<FitReport> {
        let task = &train.schema().target.task;
        self.check(config, task).map_err(|(key, message)| Error::Config(format!("{key}: {message}")))?;
        for cb in callbacks.iter_mut() {
            cb.on_fit_begin(1, 1, 1);
        }
        let start = Instant::now();
        let dims = train.width();
        let fitted = match (self, train.targets()) {
            (Solver::Logistic(c), Targets::Classes(y)) => {
                let classes = task.outputs();
                let options = LogisticOptions { c: c.c, max_iter: c.max_iter, tol: c.tol };
                Fitted::Logistic(LogisticRegression::fit(train.features(), dims, y, classes, options)?)
            }
            (Solver::Ridge(c), Targets::Values(y)) => Fitted::Ridge(Ridge::fit(train.features(), dims, y, c.alpha)?),
            _ => return Err(Error::Config("the targets do not match the task".into())),
        };
        let seconds = start.elapsed().as_secs_f64();
        fitted.write(params, dims)?;
        let (train_loss, train_accuracy) = fitted.score(train);
        let (val_loss, val_accuracy) = match validation.filter(|v| !v.is_empty()) {
            Some(v) => {
                let (l, a) = fitted.score(v);
                (Some(l), a)
            }
            None => (None, None),
        };
        let metrics = EpochMetrics {
            epoch: 1,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            lr: 0.0,
            train_seconds: seconds,
            samples_per_sec: train.len() as f64 / seconds.max(1e-9),
            extra: fitted.extra(),
        };
        for cb in callbacks.iter_mut() {
            cb.on_epoch_end(&metrics)?;
        }
        for cb in callbacks.iter_mut() {
            cb.on_fit_end();
        }
        let has_validation = val_loss.is_some();
        Ok(FitReport {
            history: vec![metrics],
            stopped_early: false,
            best_epoch: 1,
            monitor: config.best_monitor(has_validation),
            restored_best: false,
        })
    }
}

enum Fitted {
    Logistic(LogisticRegression),
    Ridge(Ridge),
}

impl Fitted {
    /// The layer's `[outputs, dims]` weights and `[outputs]` bias. A binary logistic regression
    /// has one logit (of class 1); the softmax layer gets a zero row for class 0, which gives
    /// the same probabilities.
    fn layer(&self, dims: usize) -> (Vec<f32>, Vec<f32>, usize) {
        match self {
            Fitted::Logistic(m) => {
                let cols = if m.classes == 2 { 1 } else { m.classes };
                let mut w = vec![0f32; m.classes * dims];
                let mut b = vec![0f32; m.classes];
                for j in 0..cols {
                    let out = if m.classes == 2 { 1 } else { j };
                    for k in 0..dims {
                        w[out * dims + k] = m.weights[k * cols + j] as f32;
                    }
                    b[out] = m.intercepts[j] as f32;
                }
                (w, b, m.classes)
            }
            Fitted::Ridge(m) => (m.weights.iter().map(|&v| v as f32).collect(), vec![m.intercept as f32], 1),
        }
    }

    fn write(&self, params: &Params, dims: usize) -> Result<()> {
        let (w, b, outputs) = self.layer(dims);
        let vars = params.named_vars();
        let find = |name: &str| {
            vars.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .ok_or_else(|| Error::Config(format!("a linear model has a variable {name}; this model has none")))
        };
        let (weight, bias) = (find("layers.0.weight")?, find("layers.0.bias")?);
        if weight.dims() != [outputs, dims] || bias.dims() != [outputs] {
            return Err(Error::Config(format!(
                "the linear layer is {:?} + {:?}, the solve gave [{outputs}, {dims}] + [{outputs}]",
                weight.dims(),
                bias.dims()
            )));
        }
        weight.set(&Tensor::from_vec(w, (outputs, dims), weight.device())?)?;
        bias.set(&Tensor::from_vec(b, outputs, bias.device())?)?;
        Ok(())
    }

    /// Mean loss (cross-entropy, or squared error in the model's target units) and accuracy.
    fn score(&self, part: &Dataset) -> (f64, Option<f64>) {
        match (self, part.targets()) {
            (Fitted::Logistic(m), Targets::Classes(y)) => {
                let Predictions::Classes { probs, classes } = m.predict(part.features()) else {
                    return (f64::NAN, None);
                };
                let mut loss = 0.0;
                let mut right = 0usize;
                for (row, &t) in probs.chunks_exact(classes).zip(y) {
                    loss -= f64::from(row[t as usize].max(1e-12)).ln();
                    let best = row.iter().enumerate().fold(0, |b, (i, &p)| if p > row[b] { i } else { b });
                    right += usize::from(best == t as usize);
                }
                let n = y.len().max(1) as f64;
                (loss / n, Some(right as f64 / n))
            }
            (Fitted::Ridge(m), Targets::Values(y)) => {
                let Predictions::Values(p) = m.predict(part.features()) else {
                    return (f64::NAN, None);
                };
                let se: f64 = p.iter().zip(y).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum();
                (se / y.len().max(1) as f64, None)
            }
            _ => (f64::NAN, None),
        }
    }

    fn extra(&self) -> std::collections::BTreeMap<String, f64> {
        let mut m = std::collections::BTreeMap::new();
        if let Fitted::Logistic(l) = self {
            m.insert("lbfgs_iterations".into(), l.iterations as f64);
            m.insert("converged".into(), if l.converged { 1.0 } else { 0.0 });
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use models::ModelSpec;
    use pipeline_core::{Feature, FeatureKind, Head, InputSchema, Schema, Target, rng};
    use rand::Rng as _;

    use super::*;

    fn data(classes: usize, regression: bool, n: usize, seed: u64) -> Dataset {
        let mut r = rng(seed, "data");
        let dims = 3;
        let mut xs = Vec::new();
        let mut cls = Vec::new();
        let mut vals = Vec::new();
        for i in 0..n {
            let c = i % classes;
            for d in 0..dims {
                xs.push(r.random::<f32>() * 2.0 - 1.0 + if d == c % dims { c as f32 * 0.7 } else { 0.0 });
            }
            cls.push(c as u32);
            let row = &xs[i * dims..];
            vals.push(0.5 * row[0] - 2.0 * row[1] + row[2] + 0.1 * (r.random::<f32>() - 0.5));
        }
        let task = if regression {
            Task::Regression
        } else {
            Task::Classification { labels: (0..classes).map(|c| c.to_string()).collect() }
        };
        let schema = Schema {
            input: InputSchema::Tabular {
                features: (0..dims).map(|d| Feature { name: format!("x{d}"), kind: FeatureKind::Numeric }).collect(),
            },
            target: Target { name: "y".into(), task },
        };
        let targets = if regression { Targets::Values(vals) } else { Targets::Classes(cls) };
        Dataset::new(schema, xs, targets).unwrap()
    }

    /// The model's own forward pass, after the solve, gives the solver's predictions: the
    /// weights went into the layer the right way round (binary: the zero row for class 0).
    #[test]
    fn solved_layers_predict_as_the_solver_does() {
        for (config, classes, regression) in [
            (ModelConfig::Logistic(LogisticConfig { c: 2.0, ..Default::default() }), 2, false),
            (ModelConfig::Logistic(LogisticConfig::default()), 4, false),
            (ModelConfig::Ridge(RidgeConfig { alpha: 0.5 }), 1, true),
        ] {
            let train = data(classes, regression, 60, 1);
            let val = data(classes, regression, 20, 2);
            let params = Params::new(rng(0, "init"));
            let spec = ModelSpec { input_shape: vec![3], outputs: classes, vocab: None, series: None };
            let model = models::build(&config, &spec, params.var_builder(&Device::Cpu)).unwrap();
            let solver = Solver::for_model(&config).unwrap();
            let report = solver.fit(&params, &TrainConfig::default(), &train, Some(&val), &mut []).unwrap();
            assert_eq!(report.history.len(), 1);
            let head = if regression { Head::Identity } else { Head::Softmax };
            let got = models::predict(model.as_ref(), val.features(), &[3], head, 16, &Device::Cpu).unwrap();
            let want = match (&solver, train.targets()) {
                (Solver::Logistic(c), Targets::Classes(y)) => {
                    let o = LogisticOptions { c: c.c, max_iter: c.max_iter, tol: c.tol };
                    LogisticRegression::fit(train.features(), 3, y, classes, o).unwrap().predict(val.features())
                }
                (Solver::Ridge(c), Targets::Values(y)) => {
                    Ridge::fit(train.features(), 3, y, c.alpha).unwrap().predict(val.features())
                }
                _ => unreachable!("the cases above"),
            };
            let (a, b) = match (got, want) {
                (Predictions::Classes { probs: a, .. }, Predictions::Classes { probs: b, .. }) => (a, b),
                (Predictions::Values(a), Predictions::Values(b)) => (a, b),
                other => panic!("kinds differ: {other:?}"),
            };
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5, "{config:?}: {x} vs {y}");
            }
            let m = &report.history[0];
            assert!(m.val_loss.is_some_and(f64::is_finite));
            assert_eq!(m.val_accuracy.is_some(), !regression);
        }
    }

    #[test]
    fn the_wrong_task_or_loss_is_refused_at_its_key() {
        let logistic = Solver::Logistic(LogisticConfig::default());
        let (key, msg) = logistic.check(&TrainConfig::default(), &Task::Regression).unwrap_err();
        assert_eq!(key, "model.arch");
        assert!(msg.contains("arch: ridge"), "{msg}");
        let huber =
            TrainConfig { loss: Some(LossConfig::Huber(crate::HuberConfig { delta: 1.0 })), ..Default::default() };
        let (key, _) = Solver::Ridge(RidgeConfig::default()).check(&huber, &Task::Regression).unwrap_err();
        assert_eq!(key, "train.loss");
        let task = Task::Classification { labels: vec!["a".into(), "b".into()] };
        assert!(logistic.check(&TrainConfig::default(), &task).is_ok());
    }
}
