//! The [`Metric`] trait, model [`Predictions`], and the [`Direction`] in which a metric improves.

use serde::{Deserialize, Serialize};

use crate::{Dataset, Result, Targets};

/// Whether larger or smaller values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Larger is better (accuracy, F1).
    Maximize,
    /// Smaller is better (loss, RMSE).
    Minimize,
}

impl Direction {
    /// Whether `a` is strictly better than `b` in this direction.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Maximize => a > b,
            Direction::Minimize => a < b,
        }
    }
}

/// What a model predicted for a set of examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predictions {
    /// Class probabilities, row-major `rows × classes`.
    Classes {
        /// The probabilities; each row sums to one.
        probs: Vec<f32>,
        /// The number of classes (row width).
        classes: usize,
    },
    /// One predicted value per example.
    Values(Vec<f32>),
}

impl Predictions {
    /// The number of examples predicted.
    pub fn len(&self) -> usize {
        match self {
            Predictions::Classes { probs, classes } => probs.len().checked_div(*classes).unwrap_or(0),
            Predictions::Values(v) => v.len(),
        }
    }

    /// Whether there are no predictions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first example with a non-finite output (a NaN or infinite probability or value), if
    /// any: such an output is never an answer.
    pub fn first_non_finite(&self) -> Option<usize> {
        match self {
            Predictions::Classes { probs, classes } => {
                probs.chunks(*classes.max(&1)).position(|row| row.iter().any(|p| !p.is_finite()))
            }
            Predictions::Values(v) => v.iter().position(|x| !x.is_finite()),
        }
    }

    /// The most probable class of each example (the first one on ties), for classification.
    pub fn argmax(&self) -> Option<Vec<u32>> {
        match self {
            Predictions::Classes { probs, classes } => Some(
                probs
                    .chunks_exact(*classes)
                    .map(|row| {
                        let mut best = 0;
                        for (j, &p) in row.iter().enumerate() {
                            if p > row[best] {
                                best = j;
                            }
                        }
                        best as u32
                    })
                    .collect(),
            ),
            Predictions::Values(_) => None,
        }
    }
}

/// A score of predictions against targets.
pub trait Metric {
    /// The name it is logged under, e.g. `accuracy`.
    fn name(&self) -> &str;
    /// Whether larger or smaller is better.
    fn direction(&self) -> Direction;
    /// The score. Errors when the predictions and targets do not fit this metric (wrong task,
    /// different lengths).
    fn compute(&self, targets: &Targets, predictions: &Predictions) -> Result<f64>;
}

/// The predictions of `predict` on every row of `data`, in order, `rows` rows at a time: how a
/// dataset on disk is predicted (one in memory is given whole when `rows >= data.len()`).
pub fn predict_in_chunks<E: From<crate::Error>>(
    data: &Dataset,
    rows: usize,
    predict: &mut dyn FnMut(&[f32]) -> std::result::Result<Predictions, E>,
) -> std::result::Result<Predictions, E> {
    let mut out: Option<Predictions> = None;
    let mut start = 0;
    while start < data.len() {
        let n = rows.max(1).min(data.len() - start);
        let part = predict(&data.read_range(start, n)?)?;
        out = Some(match (out, part) {
            (None, p) => p,
            (Some(Predictions::Values(mut a)), Predictions::Values(b)) => {
                a.extend(b);
                Predictions::Values(a)
            }
            (Some(Predictions::Classes { mut probs, classes }), Predictions::Classes { probs: b, .. }) => {
                probs.extend(b);
                Predictions::Classes { probs, classes }
            }
            _ => return Err(crate::Error::KindMismatch { expected: "predictions of one kind in every chunk" }.into()),
        });
        start += n;
    }
    match out {
        Some(p) => Ok(p),
        None => predict(&[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_non_finite_names_the_example() {
        let p = Predictions::Classes { probs: vec![0.5, 0.5, 0.2, f32::NAN, 0.1, 0.9], classes: 2 };
        assert_eq!(p.first_non_finite(), Some(1));
        let p = Predictions::Values(vec![1.0, 2.0, f32::INFINITY]);
        assert_eq!(p.first_non_finite(), Some(2));
        assert_eq!(Predictions::Values(vec![1.0, -3.0]).first_non_finite(), None);
    }

    #[test]
    fn argmax_takes_first_on_ties() {
        let p = Predictions::Classes { probs: vec![0.2, 0.5, 0.3, 0.4, 0.4, 0.2], classes: 3 };
        assert_eq!(p.len(), 2);
        assert_eq!(p.argmax(), Some(vec![1, 0]));
        assert!(Direction::Minimize.better(0.1, 0.2));
        assert!(!Direction::Maximize.better(0.1, 0.2));
    }
}
