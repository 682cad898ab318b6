//! Input checks shared by the metric, curve and confusion functions: every public function
//! validates what it is given here and returns an [`Error`] instead of panicking.

use pipeline_core::Predictions;

use crate::{Error, Result};

/// Every id in `ids` is below `classes`.
pub(crate) fn class_ids(ids: &[u32], classes: usize) -> Result<()> {
    match ids.iter().find(|&&id| id as usize >= classes) {
        Some(&id) => Err(Error::ClassId { id, classes }),
        None => Ok(()),
    }
}

/// `actual` and `predicted` are non-empty, of one length, and hold ids below `classes`.
pub(crate) fn id_pair(actual: &[u32], predicted: &[u32], classes: usize) -> Result<()> {
    if actual.len() != predicted.len() {
        return Err(Error::Length { predictions: predicted.len(), targets: actual.len() });
    }
    if actual.is_empty() {
        return Err(Error::Empty);
    }
    class_ids(actual, classes)?;
    class_ids(predicted, classes)
}

/// One finite score per target, at least one.
pub(crate) fn scores(targets: usize, scores: &[f32]) -> Result<()> {
    if scores.len() != targets {
        return Err(Error::Length { predictions: scores.len(), targets });
    }
    if targets == 0 {
        return Err(Error::Empty);
    }
    match scores.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(Error::BadScore { what: "non-finite score", index, value: scores[index] }),
        None => Ok(()),
    }
}

/// The row-major class scores of `predictions` and their width, checked: class predictions,
/// at least one class, whole rows, one row per target (at least one), all finite.
pub(crate) fn class_scores(predictions: &Predictions, targets: usize) -> Result<(&[f32], usize)> {
    let Predictions::Classes { probs, classes } = predictions else {
        return Err(Error::Kind { expected: "class probabilities" });
    };
    let classes = *classes;
    if classes == 0 {
        return Err(Error::Shape { what: "classes per prediction", expected: 1, found: 0 });
    }
    if probs.len() % classes != 0 {
        return Err(Error::Shape {
            what: "probabilities (a whole number of rows)",
            expected: probs.len().div_ceil(classes) * classes,
            found: probs.len(),
        });
    }
    let rows = probs.len() / classes;
    if rows != targets {
        return Err(Error::Length { predictions: rows, targets });
    }
    if rows == 0 {
        return Err(Error::Empty);
    }
    match probs.iter().position(|s| !s.is_finite()) {
        Some(i) => Err(Error::BadScore { what: "non-finite score", index: i / classes, value: probs[i] }),
        None => Ok((probs, classes)),
    }
}

/// Every value of `probs` lies in [0, 1].
pub(crate) fn unit_interval(probs: &[f32], classes: usize) -> Result<()> {
    match probs.iter().position(|p| !(0.0..=1.0).contains(p)) {
        Some(i) => Err(Error::BadScore { what: "probability outside [0, 1]:", index: i / classes, value: probs[i] }),
        None => Ok(()),
    }
}

/// Every row of `probs` sums to one as `numpy.allclose(1, row_sums)` decides it (relative
/// tolerance 1e-5, absolute 1e-8), the check scikit-learn's multiclass ROC AUC makes.
pub(crate) fn rows_sum_to_one(metric: &'static str, probs: &[f32], classes: usize) -> Result<()> {
    for (index, row) in probs.chunks_exact(classes).enumerate() {
        let sum: f64 = row.iter().map(|&p| f64::from(p)).sum();
        if (sum - 1.0).abs() > 1e-8 + 1e-5 * sum.abs() {
            return Err(Error::NotProbabilities { metric, index, sum });
        }
    }
    Ok(())
}
