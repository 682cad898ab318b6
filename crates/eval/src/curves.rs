//! ROC and precision-recall curves of a score vector, as scikit-learn 1.9.1 computes them.
//!
//! - [`roc_curve`] matches `sklearn.metrics.roc_curve(y_true, y_score, pos_label=positive,
//!   drop_intermediate=...)`: examples sorted by decreasing score, one point per distinct score
//!   (tied scores form a single point, so ties give diagonal segments), a first point
//!   `(0, 0)` at threshold `+inf`, and with `drop_intermediate` the collinear points between
//!   corners dropped. With no negatives the false positive rates are all NaN, with no
//!   positives the true positive rates are (scikit-learn warns and does the same).
//! - [`precision_recall_curve`] matches `precision_recall_curve(..., drop_intermediate=...)`:
//!   points in order of increasing threshold, precision 0 where nothing is predicted positive,
//!   a last point `(precision 1, recall 0)` without threshold; with no positives the recall is
//!   1 at every threshold (scikit-learn's rule).
//! - [`roc_curves_ovr`] and [`precision_recall_curves_ovr`]: one-vs-rest curves of every class
//!   of a multiclass prediction (class `c` positive, the scores its probability column).
//!
//! Thresholds are the `f32` scores widened to `f64`, as scikit-learn returns `float64`.

use pipeline_core::Predictions;
use serde::{Deserialize, Serialize};

use crate::{Result, input};

/// Points of a receiver operating characteristic curve, by decreasing threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    /// False positive rates, increasing from 0 to 1.
    pub fpr: Vec<f64>,
    /// True positive rates, increasing from 0 to 1.
    pub tpr: Vec<f64>,
    /// Score thresholds (predict positive when `score >= threshold`); the first is `+inf`.
    pub thresholds: Vec<f64>,
}

/// Points of a precision-recall curve, by increasing threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrCurve {
    /// Precisions; the last is 1.
    pub precision: Vec<f64>,
    /// Recalls, decreasing; the last is 0.
    pub recall: Vec<f64>,
    /// Score thresholds, increasing; one fewer than the points (the last point has none).
    pub thresholds: Vec<f64>,
}

/// False and true positive counts at each distinct score, by decreasing score
/// (scikit-learn's `confusion_matrix_at_thresholds`).
pub(crate) struct Counts {
    pub fps: Vec<f64>,
    pub tps: Vec<f64>,
    pub thresholds: Vec<f64>,
}

/// The counts of `scores` (finite, non-empty) against the `positive` flags.
pub(crate) fn counts(positive: &[bool], scores: &[f32]) -> Counts {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Stable, like numpy's `argsort(stable=True, descending=True)`.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut fps, mut tps, mut thresholds) = (Vec::new(), Vec::new(), Vec::new());
    let mut tp = 0u64;
    for (i, &idx) in order.iter().enumerate() {
        tp += u64::from(positive[idx]);
        // A point where the next score differs (`!=`, so -0.0 and 0.0 are one score) or at the end.
        if order.get(i + 1).is_none_or(|&next| scores[next] != scores[idx]) {
            tps.push(tp as f64);
            fps.push((i as u64 + 1 - tp) as f64);
            thresholds.push(f64::from(scores[idx]));
        }
    }
    Counts { fps, tps, thresholds }
}

impl RocCurve {
    pub(crate) fn from_counts(c: Counts, drop_intermediate: bool) -> Self {
        let Counts { mut fps, mut tps, mut thresholds } = c;
        if drop_intermediate && fps.len() > 2 {
            let n = fps.len();
            let corner = |v: &[f64], i: usize| v[i + 1] - 2.0 * v[i] + v[i - 1] != 0.0;
            let keep: Vec<usize> =
                (0..n).filter(|&i| i == 0 || i == n - 1 || corner(&fps, i) || corner(&tps, i)).collect();
            fps = keep.iter().map(|&i| fps[i]).collect();
            tps = keep.iter().map(|&i| tps[i]).collect();
            thresholds = keep.iter().map(|&i| thresholds[i]).collect();
        }
        fps.insert(0, 0.0);
        tps.insert(0, 0.0);
        thresholds.insert(0, f64::INFINITY);
        let rate = |v: &[f64]| {
            let last = v.last().copied().unwrap_or(0.0);
            v.iter().map(|&x| if last <= 0.0 { f64::NAN } else { x / last }).collect()
        };
        Self { fpr: rate(&fps), tpr: rate(&tps), thresholds }
    }

    /// The area under the curve by the trapezoidal rule (scikit-learn's `auc(fpr, tpr)`).
    pub fn area(&self) -> f64 {
        trapezoid(&self.fpr, &self.tpr)
    }
}

impl PrCurve {
    pub(crate) fn from_counts(c: Counts, drop_intermediate: bool) -> Self {
        let Counts { mut fps, mut tps, mut thresholds } = c;
        if drop_intermediate && fps.len() > 2 {
            let n = fps.len();
            let keep: Vec<usize> =
                (0..n).filter(|&i| i == 0 || i == n - 1 || tps[i] != tps[i - 1] || tps[i + 1] != tps[i]).collect();
            fps = keep.iter().map(|&i| fps[i]).collect();
            tps = keep.iter().map(|&i| tps[i]).collect();
            thresholds = keep.iter().map(|&i| thresholds[i]).collect();
        }
        let last_tp = tps.last().copied().unwrap_or(0.0);
        let mut precision: Vec<f64> =
            tps.iter().zip(&fps).map(|(&tp, &fp)| if tp + fp == 0.0 { 0.0 } else { tp / (tp + fp) }).collect();
        let mut recall: Vec<f64> = tps.iter().map(|&tp| if last_tp == 0.0 { 1.0 } else { tp / last_tp }).collect();
        precision.reverse();
        recall.reverse();
        thresholds.reverse();
        precision.push(1.0);
        recall.push(0.0);
        Self { precision, recall, thresholds }
    }

    /// Average precision: `Σ (R_n − R_{n−1}) P_n`, the step-wise area scikit-learn's
    /// `average_precision_score` takes (no interpolation), clipped below at 0.
    pub fn average_precision(&self) -> f64 {
        let sum: f64 = self.recall.windows(2).zip(&self.precision).map(|(r, &p)| (r[1] - r[0]) * p).sum();
        (-sum).max(0.0)
    }
}

/// `∫ y dx` over the points by the trapezoidal rule, signed by the direction of `x` as
/// scikit-learn's `auc` does (a decreasing `x` gives a positive area too).
pub(crate) fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    let area: f64 = x.windows(2).zip(y.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0).sum();
    let decreasing = x.windows(2).all(|w| w[1] <= w[0]) && x.windows(2).any(|w| w[1] < w[0]);
    if decreasing { -area } else { area }
}

/// The ROC curve of `scores` for class `positive` of `actual` (any other id is a negative).
/// Errors on different lengths, no examples, or a non-finite score.
pub fn roc_curve(actual: &[u32], scores: &[f32], positive: u32, drop_intermediate: bool) -> Result<RocCurve> {
    input::scores(actual.len(), scores)?;
    let flags: Vec<bool> = actual.iter().map(|&a| a == positive).collect();
    Ok(RocCurve::from_counts(counts(&flags, scores), drop_intermediate))
}

/// The precision-recall curve of `scores` for class `positive` of `actual` (any other id is a
/// negative). Errors as [`roc_curve`].
pub fn precision_recall_curve(
    actual: &[u32],
    scores: &[f32],
    positive: u32,
    drop_intermediate: bool,
) -> Result<PrCurve> {
    input::scores(actual.len(), scores)?;
    let flags: Vec<bool> = actual.iter().map(|&a| a == positive).collect();
    Ok(PrCurve::from_counts(counts(&flags, scores), drop_intermediate))
}

/// Each class's column of `predictions` as a score vector, with the class's positive flags.
pub(crate) fn one_vs_rest(actual: &[u32], predictions: &Predictions) -> Result<Vec<(Vec<bool>, Vec<f32>)>> {
    let (probs, classes) = input::class_scores(predictions, actual.len())?;
    input::class_ids(actual, classes)?;
    Ok((0..classes)
        .map(|c| {
            let flags = actual.iter().map(|&a| a as usize == c).collect();
            let column = probs.chunks_exact(classes).map(|row| row[c]).collect();
            (flags, column)
        })
        .collect())
}

/// One ROC curve per class, class `c` against the rest with its probability column as score.
/// A class absent from `actual` gets NaN true positive rates. Errors on predictions that are
/// not class probabilities, a row count other than `actual.len()`, no examples, an id at or
/// above the number of classes, or a non-finite score.
pub fn roc_curves_ovr(actual: &[u32], predictions: &Predictions, drop_intermediate: bool) -> Result<Vec<RocCurve>> {
    Ok(one_vs_rest(actual, predictions)?
        .into_iter()
        .map(|(flags, scores)| RocCurve::from_counts(counts(&flags, &scores), drop_intermediate))
        .collect())
}

/// One precision-recall curve per class, one-vs-rest as [`roc_curves_ovr`]; errors likewise.
pub fn precision_recall_curves_ovr(
    actual: &[u32],
    predictions: &Predictions,
    drop_intermediate: bool,
) -> Result<Vec<PrCurve>> {
    Ok(one_vs_rest(actual, predictions)?
        .into_iter()
        .map(|(flags, scores)| PrCurve::from_counts(counts(&flags, &scores), drop_intermediate))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// Equal to 1e-6, NaN matching NaN and infinity matching infinity.
    fn close_all(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (&g, &w) in got.iter().zip(want) {
            let same = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 1e-6;
            assert!(same, "{got:?} vs {want:?}");
        }
    }

    const INF: f64 = f64::INFINITY;
    const NAN: f64 = f64::NAN;
    const YB: [u32; 10] = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0];
    const SB: [f32; 10] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.7, 0.9, 0.2, 0.05];

    /// scikit-learn 1.9.1, three examples tied at 0.4 (two negatives, one positive):
    /// ```python
    /// yb = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    /// sb = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.7, 0.9, 0.2, 0.05], dtype=np.float32)
    /// roc_curve(yb, sb, drop_intermediate=True)   # and False
    /// ```
    #[test]
    fn roc_matches_scikit_learn_with_ties() {
        let c = roc_curve(&YB, &SB, 1, true).unwrap();
        close_all(&c.fpr, &[0.0, 0.0, 0.0, 0.2, 0.6, 0.6, 1.0]);
        close_all(&c.tpr, &[0.0, 0.2, 0.4, 0.4, 0.6, 1.0, 1.0]);
        close_all(
            &c.thresholds,
            &[
                INF,
                0.8999999761581421,
                0.800000011920929,
                0.699999988079071,
                0.4000000059604645,
                0.20000000298023224,
                0.05000000074505806,
            ],
        );
        // The tie at 0.4 is one point: (0.2, 0.4) -> (0.6, 0.6), a diagonal segment.
        assert!((c.area() - 0.68).abs() < 1e-12);
        let c = roc_curve(&YB, &SB, 1, false).unwrap();
        close_all(&c.fpr, &[0.0, 0.0, 0.0, 0.2, 0.6, 0.6, 0.6, 0.8, 1.0]);
        close_all(&c.tpr, &[0.0, 0.2, 0.4, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0]);
        close_all(
            &c.thresholds,
            &[
                INF,
                0.8999999761581421,
                0.800000011920929,
                0.699999988079071,
                0.4000000059604645,
                0.3499999940395355,
                0.20000000298023224,
                0.10000000149011612,
                0.05000000074505806,
            ],
        );
    }

    /// scikit-learn 1.9.1: `precision_recall_curve(yb, sb, drop_intermediate=False)` and `True`.
    #[test]
    fn precision_recall_matches_scikit_learn_with_ties() {
        let c = precision_recall_curve(&YB, &SB, 1, false).unwrap();
        close_all(
            &c.precision,
            &[0.5, 0.5555555555555556, 0.625, 0.5714285714285714, 0.5, 0.6666666666666666, 1.0, 1.0, 1.0],
        );
        close_all(&c.recall, &[1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.4, 0.2, 0.0]);
        close_all(
            &c.thresholds,
            &[
                0.05000000074505806,
                0.10000000149011612,
                0.20000000298023224,
                0.3499999940395355,
                0.4000000059604645,
                0.699999988079071,
                0.800000011920929,
                0.8999999761581421,
            ],
        );
        // average_precision_score(yb, sb) = 0.7392857142857143
        assert!((c.average_precision() - 0.7392857142857143).abs() < 1e-12);
        let c = precision_recall_curve(&YB, &SB, 1, true).unwrap();
        close_all(&c.precision, &[0.5, 0.625, 0.5714285714285714, 0.5, 0.6666666666666666, 1.0, 1.0, 1.0]);
        close_all(&c.recall, &[1.0, 1.0, 0.8, 0.6, 0.4, 0.4, 0.2, 0.0]);
        close_all(
            &c.thresholds,
            &[
                0.05000000074505806,
                0.20000000298023224,
                0.3499999940395355,
                0.4000000059604645,
                0.699999988079071,
                0.800000011920929,
                0.8999999761581421,
            ],
        );
    }

    /// scikit-learn 1.9.1 (each warns):
    /// ```python
    /// roc_curve([0, 0, 0], np.float32([0.1, 0.2, 0.2]))  # tpr all nan
    /// roc_curve([1, 1, 1], np.float32([0.1, 0.2, 0.2]))  # fpr all nan
    /// precision_recall_curve([0, 0, 0], np.float32([0.1, 0.2, 0.2]))  # recall set to 1
    /// ```
    #[test]
    fn one_class_curves_match_scikit_learn() {
        let s = [0.1f32, 0.2, 0.2];
        let c = roc_curve(&[0, 0, 0], &s, 1, true).unwrap();
        close_all(&c.fpr, &[0.0, 0.6666666666666666, 1.0]);
        close_all(&c.tpr, &[NAN, NAN, NAN]);
        close_all(&c.thresholds, &[INF, 0.20000000298023224, 0.10000000149011612]);
        let c = roc_curve(&[1, 1, 1], &s, 1, true).unwrap();
        close_all(&c.fpr, &[NAN, NAN, NAN]);
        close_all(&c.tpr, &[0.0, 0.6666666666666666, 1.0]);
        let c = precision_recall_curve(&[0, 0, 0], &s, 1, false).unwrap();
        close_all(&c.precision, &[0.0, 0.0, 1.0]);
        close_all(&c.recall, &[1.0, 1.0, 0.0]);
        close_all(&c.thresholds, &[0.10000000149011612, 0.20000000298023224]);
    }

    /// One-vs-rest curves of the multiclass example of `metrics` (scikit-learn 1.9.1):
    /// ```python
    /// y3 = [0, 1, 2, 2, 1, 0, 1, 2, 0, 1, 2, 2]
    /// p3 = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.3, 0.3, 0.4],
    ///                [0.4, 0.4, 0.2], [0.5, 0.25, 0.25], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6],
    ///                [0.4, 0.4, 0.2], [0.25, 0.5, 0.25], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]],
    ///               dtype=np.float32)
    /// for c in range(3):
    ///     roc_curve(y3, p3[:, c], pos_label=c); precision_recall_curve(y3, p3[:, c], pos_label=c)
    /// ```
    #[test]
    fn one_vs_rest_curves_match_scikit_learn() {
        let y3 = [0, 1, 2, 2, 1, 0, 1, 2, 0, 1, 2, 2];
        let p3: [[f32; 3]; 12] = [
            [0.6, 0.3, 0.1],
            [0.2, 0.5, 0.3],
            [0.1, 0.3, 0.6],
            [0.3, 0.3, 0.4],
            [0.4, 0.4, 0.2],
            [0.5, 0.25, 0.25],
            [0.3, 0.3, 0.4],
            [0.2, 0.2, 0.6],
            [0.4, 0.4, 0.2],
            [0.25, 0.5, 0.25],
            [0.1, 0.6, 0.3],
            [0.3, 0.3, 0.4],
        ];
        let preds = Predictions::Classes { probs: p3.iter().flatten().copied().collect(), classes: 3 };
        let roc = roc_curves_ovr(&y3, &preds, true).unwrap();
        let pr = precision_recall_curves_ovr(&y3, &preds, false).unwrap();
        assert_eq!((roc.len(), pr.len()), (3, 3));
        close_all(&roc[0].fpr, &[0.0, 0.0, 0.0, 0.1111111111111111, 0.4444444444444444, 0.5555555555555556, 1.0]);
        close_all(&roc[0].tpr, &[0.0, 0.3333333333333333, 0.6666666666666666, 1.0, 1.0, 1.0, 1.0]);
        close_all(
            &roc[0].thresholds,
            &[INF, 0.6000000238418579, 0.5, 0.4000000059604645, 0.30000001192092896, 0.25, 0.10000000149011612],
        );
        close_all(&roc[1].fpr, &[0.0, 0.125, 0.125, 0.25, 0.75, 1.0]);
        close_all(&roc[1].tpr, &[0.0, 0.0, 0.5, 0.75, 1.0, 1.0]);
        close_all(
            &roc[1].thresholds,
            &[INF, 0.6000000238418579, 0.5, 0.4000000059604645, 0.30000001192092896, 0.20000000298023224],
        );
        close_all(&roc[2].fpr, &[0.0, 0.0, 0.14285714285714285, 0.2857142857142857, 0.8571428571428571, 1.0]);
        close_all(&roc[2].tpr, &[0.0, 0.4, 0.8, 1.0, 1.0, 1.0]);
        close_all(&pr[0].precision, &[0.25, 0.3, 0.375, 0.42857142857142855, 0.75, 1.0, 1.0, 1.0]);
        close_all(&pr[0].recall, &[1.0, 1.0, 1.0, 1.0, 1.0, 0.6666666666666666, 0.3333333333333333, 0.0]);
        close_all(&pr[1].precision, &[0.3333333333333333, 0.36363636363636365, 0.4, 0.6, 0.6666666666666666, 0.0, 1.0]);
        close_all(&pr[1].recall, &[1.0, 1.0, 1.0, 0.75, 0.5, 0.0, 0.0]);
        close_all(
            &pr[1].thresholds,
            &[0.20000000298023224, 0.25, 0.30000001192092896, 0.4000000059604645, 0.5, 0.6000000238418579],
        );
        close_all(
            &pr[2].precision,
            &[0.4166666666666667, 0.45454545454545453, 0.5555555555555556, 0.7142857142857143, 0.8, 1.0, 1.0],
        );
        close_all(&pr[2].recall, &[1.0, 1.0, 1.0, 1.0, 0.8, 0.4, 0.0]);
        // The same as the binary curve of a multiclass `actual` with `positive = c`.
        assert_eq!(roc[2], roc_curve(&y3, &p3.map(|r| r[2]), 2, true).unwrap());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(roc_curve(&[], &[], 1, true), Err(Error::Empty)));
        assert!(matches!(roc_curve(&[0, 1], &[0.5], 1, true), Err(Error::Length { .. })));
        assert!(matches!(precision_recall_curve(&[0, 1], &[0.5, f32::NAN], 1, true), Err(Error::BadScore { .. })));
        let p = Predictions::Classes { probs: vec![0.5, 0.5], classes: 2 };
        assert!(matches!(roc_curves_ovr(&[2], &p, true), Err(Error::ClassId { id: 2, classes: 2 })));
        assert!(matches!(roc_curves_ovr(&[0], &Predictions::Values(vec![0.1]), true), Err(Error::Kind { .. })));
    }
}
