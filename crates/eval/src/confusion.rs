//! Confusion matrices: counts, row-normalised rates, and the class pairs confused most often.
//!
//! `confusion[t][p]` counts the examples of true class `t` predicted as `p`, as
//! `sklearn.metrics.confusion_matrix(y_true, y_pred, labels=range(k))` does.

use serde::{Deserialize, Serialize};

use crate::{Result, input};

/// `confusion[true][predicted]` counts over `classes` classes (`confusion_matrix` with
/// `labels=range(classes)`). Errors on different lengths, no examples, or an id at or above
/// `classes`.
pub fn confusion_matrix(actual: &[u32], predicted: &[u32], classes: usize) -> Result<Vec<Vec<u64>>> {
    input::id_pair(actual, predicted, classes)?;
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (&a, &p) in actual.iter().zip(predicted) {
        confusion[a as usize][p as usize] += 1;
    }
    Ok(confusion)
}

/// Each row divided by its sum: the fraction of each true class predicted as each class
/// (`confusion_matrix(..., normalize="true")`). A row without examples is all zeros, as
/// scikit-learn's `nan_to_num` makes it.
pub fn normalize_rows(confusion: &[Vec<u64>]) -> Vec<Vec<f64>> {
    confusion
        .iter()
        .map(|row| {
            let total: u64 = row.iter().sum();
            row.iter().map(|&c| if total == 0 { 0.0 } else { c as f64 / total as f64 }).collect()
        })
        .collect()
}

/// An off-diagonal cell of a confusion matrix: examples of one class predicted as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusedPair {
    /// The true class.
    pub actual: u32,
    /// The class predicted instead.
    pub predicted: u32,
    /// How many examples.
    pub count: u64,
}

/// The `limit` off-diagonal cells with the largest counts, largest first, ties in
/// `(actual, predicted)` order. Cells with a count of 0 are not confusions and never listed.
pub fn most_confused(confusion: &[Vec<u64>], limit: usize) -> Vec<ConfusedPair> {
    let mut pairs: Vec<ConfusedPair> = confusion
        .iter()
        .enumerate()
        .flat_map(|(t, row)| {
            row.iter()
                .enumerate()
                .filter(move |&(p, &count)| p != t && count > 0)
                .map(move |(p, &count)| ConfusedPair { actual: t as u32, predicted: p as u32, count })
        })
        .collect();
    pairs.sort_by(|a, b| b.count.cmp(&a.count).then((a.actual, a.predicted).cmp(&(b.actual, b.predicted))));
    pairs.truncate(limit);
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// scikit-learn 1.9.1:
    /// ```python
    /// from sklearn.metrics import confusion_matrix
    /// y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0, 1, 2]
    /// y_pred = [0, 1, 2, 1, 1, 0, 0, 2, 1, 0, 3, 0]
    /// confusion_matrix(y_true, y_pred, labels=range(5)).tolist()
    /// confusion_matrix(y_true, y_pred, labels=range(5), normalize="true").tolist()
    /// ```
    /// Class 3 is predicted but never true, class 4 is neither: their rows are zeros.
    #[test]
    fn matches_scikit_learn_with_empty_rows() {
        let y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0, 1, 2];
        let y_pred = [0, 1, 2, 1, 1, 0, 0, 2, 1, 0, 3, 0];
        let cm = confusion_matrix(&y_true, &y_pred, 5).unwrap();
        assert_eq!(cm, CM);
        let norm = normalize_rows(&cm);
        for (row, want) in norm.iter().zip(NORM) {
            for (got, want) in row.iter().zip(want) {
                assert!((got - want).abs() < 1e-12, "{got} vs {want}");
            }
        }
    }

    const CM: [[u64; 5]; 5] = [[2, 1, 1, 0, 0], [0, 2, 0, 1, 0], [3, 1, 1, 0, 0], [0; 5], [0; 5]];
    const NORM: [[f64; 5]; 5] = [
        [0.5, 0.25, 0.25, 0.0, 0.0],
        [0.0, 0.6666666666666666, 0.0, 0.3333333333333333, 0.0],
        [0.6, 0.2, 0.2, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ];

    #[test]
    fn most_confused_sorts_by_count_then_pair() {
        let cm: Vec<Vec<u64>> = vec![vec![9, 2, 3, 0], vec![3, 8, 0, 1], vec![2, 3, 7, 0], vec![0, 0, 1, 5]];
        let got = most_confused(&cm, 4);
        let pairs: Vec<(u32, u32, u64)> = got.iter().map(|p| (p.actual, p.predicted, p.count)).collect();
        assert_eq!(pairs, [(0, 2, 3), (1, 0, 3), (2, 1, 3), (0, 1, 2)]);
        // All of them: zero cells are left out, the diagonal never appears.
        assert_eq!(most_confused(&cm, 100).len(), 7);
        assert!(most_confused(&cm, 0).is_empty());
        assert!(most_confused(&[vec![4]], 3).is_empty());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(confusion_matrix(&[0, 1], &[0], 2), Err(Error::Length { predictions: 1, targets: 2 })));
        assert!(matches!(confusion_matrix(&[], &[], 2), Err(Error::Empty)));
        assert!(matches!(confusion_matrix(&[0, 2], &[0, 1], 2), Err(Error::ClassId { id: 2, classes: 2 })));
    }
}
