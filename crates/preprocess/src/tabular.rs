//! Per-column transforms of tables: imputation, outliers, scaling, category encoding, text.

use std::collections::{BTreeMap, BTreeSet};

use pipeline_core::raw::{Column, Str, Values};
use pipeline_core::{Feature, FeatureKind};
use serde::{Deserialize, Serialize};

use crate::config::{
    CategoricalImpute, Encoding, NumericImpute, OutlierAction, OutlierMethod, PreprocessConfig, Scale, Unknown,
};
use crate::text::TextTransform;
use crate::{Error, Result};

/// One fitted column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ColumnTransform {
    /// A number: fill, clip, then `(x - shift) / scale`.
    Numeric {
        /// Column name.
        name: String,
        /// Fill for missing values; `None`: missing values are refused.
        fill: Option<f64>,
        /// Clip bounds (outliers with `action: clip`).
        clip: Option<(f64, f64)>,
        /// Subtracted.
        shift: f64,
        /// Divided by.
        scale: f64,
    },
    /// A boolean, as 0 / 1.
    Boolean {
        /// Column name.
        name: String,
        /// Fill for missing values; `None`: refused.
        fill: Option<f64>,
    },
    /// A category, one-hot or ordinal.
    Categorical {
        /// Column name.
        name: String,
        /// Fill for missing values; `None`: refused.
        fill: Option<String>,
        /// The training categories, sorted.
        categories: Vec<String>,
        /// One-hot or ordinal.
        encoding: Encoding,
        /// Unseen categories: error or ignore.
        unknown: Unknown,
    },
    /// Free text.
    Text {
        /// Fill for missing texts (`""`); `None`: refused.
        fill: Option<String>,
        /// The fitted tokenizer and vectorizer.
        transform: Box<TextTransform>,
    },
}

/// Percentile `p` of sorted values (linear interpolation, numpy's default).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let pos = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// scikit-learn's `_handle_zeros_in_scale`: a zero (or tiny) scale becomes 1.
pub(crate) fn nonzero(s: f64) -> f64 {
    if s < 10.0 * f64::EPSILON { 1.0 } else { s }
}

fn most_frequent_number(v: &[f64]) -> Option<f64> {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for x in v.iter().filter(|x| !x.is_nan()) {
        // Order by value: map the f64 to an order-preserving key.
        let bits = x.to_bits();
        let key = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
        *counts.entry(key).or_default() += 1;
    }
    let best = counts.values().max()?;
    let key = counts.iter().find(|(_, c)| *c == best).map(|(k, _)| *k)?;
    let bits = if key >> 63 == 1 { key & !(1 << 63) } else { !key };
    Some(f64::from_bits(bits))
}

fn most_frequent_string(v: &[Option<Str>]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in v.iter().flatten() {
        *counts.entry(&**s).or_default() += 1;
    }
    let best = counts.values().max()?;
    counts.iter().find(|(_, c)| *c == best).map(|(k, _)| k.to_string())
}

/// A numeric column's fill and outlier bounds, fitted before outlier rows are dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NumericFit {
    /// The fill of missing values (`None`: drop policy).
    pub fill: Option<f64>,
    /// The outlier bounds, when outliers are handled.
    pub bounds: Option<(f64, f64)>,
}

/// Fits the numeric fill and the outlier bounds of a training column.
pub(crate) fn numeric_fill_and_bounds(col: &Column, config: &PreprocessConfig) -> Result<NumericFit> {
    let Values::Numbers(v) = &col.values else { return Err(kind_error(col, "numbers")) };
    let present: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    let mut sorted = present.clone();
    sorted.sort_by(f64::total_cmp);
    let fill = match config.missing.numeric {
        NumericImpute::Drop => None,
        NumericImpute::Constant => Some(config.missing.fill_number),
        _ if present.is_empty() => Some(0.0),
        NumericImpute::Mean => Some(present.iter().sum::<f64>() / present.len() as f64),
        NumericImpute::Median => Some(percentile(&sorted, 0.5)),
        NumericImpute::MostFrequent => most_frequent_number(&present),
    };
    let bounds = config.outliers.as_ref().filter(|_| col.kind == FeatureKind::Numeric).map(|o| {
        let filled: Vec<f64> = v.iter().map(|x| if x.is_nan() { fill.unwrap_or(0.0) } else { *x }).collect();
        let t = o.threshold();
        match o.method {
            OutlierMethod::Zscore => {
                let n = filled.len().max(1) as f64;
                let mean = filled.iter().sum::<f64>() / n;
                let std = (filled.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
                (mean - t * std, mean + t * std)
            }
            OutlierMethod::Iqr => {
                let mut s = filled;
                s.sort_by(f64::total_cmp);
                let (q1, q3) = (percentile(&s, 0.25), percentile(&s, 0.75));
                (q1 - t * (q3 - q1), q3 + t * (q3 - q1))
            }
        }
    });
    Ok(NumericFit { fill, bounds })
}

fn kind_error(col: &Column, expected: &str) -> Error {
    Error::Column { column: col.name.clone(), message: format!("expected {expected}") }
}

impl ColumnTransform {
    /// Fits the transform of training column `col`. For numeric columns, `fill` and `bounds`
    /// come from [`numeric_fill_and_bounds`] (computed before outlier rows were dropped).
    pub(crate) fn fit(col: &Column, config: &PreprocessConfig, fill_bounds: Option<NumericFit>) -> Result<Self> {
        let name = col.name.clone();
        let cat_fill = |v: &[Option<Str>]| match config.missing.categorical {
            CategoricalImpute::Drop => None,
            CategoricalImpute::Constant => Some(config.missing.fill_category.clone()),
            CategoricalImpute::MostFrequent => Some(most_frequent_string(v).unwrap_or_default()),
        };
        match (col.kind, &col.values) {
            (FeatureKind::Numeric, Values::Numbers(v)) => {
                let NumericFit { fill, bounds } = match fill_bounds {
                    Some(fb) => fb,
                    None => numeric_fill_and_bounds(col, config)?,
                };
                let clip = bounds.filter(|_| config.outliers.as_ref().is_some_and(|o| o.action == OutlierAction::Clip));
                let x: Vec<f64> = v
                    .iter()
                    .map(|x| {
                        let x = if x.is_nan() { fill.unwrap_or(0.0) } else { *x };
                        clip.map_or(x, |(lo, hi)| x.clamp(lo, hi))
                    })
                    .collect();
                let (shift, scale) = match config.scale {
                    Scale::None => (0.0, 1.0),
                    Scale::Pixel => (0.0, 255.0),
                    Scale::Standard => {
                        let n = x.len().max(1) as f64;
                        let mean = x.iter().sum::<f64>() / n;
                        (mean, nonzero((x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()))
                    }
                    Scale::MinMax => {
                        let (lo, hi) =
                            x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
                        if x.is_empty() { (0.0, 1.0) } else { (lo, nonzero(hi - lo)) }
                    }
                };
                Ok(ColumnTransform::Numeric { name, fill, clip, shift, scale })
            }
            (FeatureKind::Boolean, Values::Numbers(v)) => {
                let fill = match config.missing.categorical {
                    CategoricalImpute::Drop => None,
                    CategoricalImpute::Constant => Some(0.0),
                    CategoricalImpute::MostFrequent => Some(most_frequent_number(v).unwrap_or(0.0)),
                };
                Ok(ColumnTransform::Boolean { name, fill })
            }
            (FeatureKind::Categorical, Values::Strings(v)) => {
                let fill = cat_fill(v);
                let mut categories: BTreeSet<String> = v.iter().flatten().map(|s| s.to_string()).collect();
                if v.iter().any(Option::is_none)
                    && let Some(f) = &fill
                {
                    categories.insert(f.clone());
                }
                Ok(ColumnTransform::Categorical {
                    name,
                    fill,
                    categories: categories.into_iter().collect(),
                    encoding: config.categorical.encoding,
                    unknown: config.categorical.unknown,
                })
            }
            (FeatureKind::Categorical, Values::Numbers(v)) => {
                // Numeric codes declared categorical: categories are their printed values.
                let strings: Vec<Option<String>> = v.iter().map(|x| (!x.is_nan()).then(|| x.to_string())).collect();
                let as_strings = Column { name: name.clone(), kind: col.kind, values: Values::from_strings(strings) };
                Self::fit(&as_strings, config, None)
            }
            (FeatureKind::Text, Values::Strings(v)) => {
                let Some(text) = &config.text else {
                    return Err(Error::Column {
                        column: name,
                        message: "is a text column: add a preprocess.text section to tokenize it (or declare its kind)"
                            .into(),
                    });
                };
                let fill = match config.missing.categorical {
                    CategoricalImpute::Drop => None,
                    _ => Some(String::new()),
                };
                let texts: Vec<&str> = v.iter().map(|t| t.as_deref().unwrap_or("")).collect();
                Ok(ColumnTransform::Text { fill, transform: Box::new(TextTransform::fit(&name, &texts, text)?) })
            }
            _ => Err(kind_error(col, "values of its kind")),
        }
    }

    /// The column name.
    pub fn name(&self) -> &str {
        match self {
            ColumnTransform::Numeric { name, .. }
            | ColumnTransform::Boolean { name, .. }
            | ColumnTransform::Categorical { name, .. } => name,
            ColumnTransform::Text { transform, .. } => &transform.name,
        }
    }

    /// The raw column kind it reads.
    pub fn kind(&self) -> FeatureKind {
        match self {
            ColumnTransform::Numeric { .. } => FeatureKind::Numeric,
            ColumnTransform::Boolean { .. } => FeatureKind::Boolean,
            ColumnTransform::Categorical { .. } => FeatureKind::Categorical,
            ColumnTransform::Text { .. } => FeatureKind::Text,
        }
    }

    /// Output values per row.
    pub fn width(&self) -> usize {
        match self {
            ColumnTransform::Categorical { categories, encoding: Encoding::OneHot, .. } => categories.len(),
            ColumnTransform::Text { transform, .. } => transform.width(),
            _ => 1,
        }
    }

    /// The output features.
    pub fn features(&self) -> Result<Vec<Feature>> {
        let num = |name: String| Feature { name, kind: FeatureKind::Numeric };
        Ok(match self {
            ColumnTransform::Categorical { name, categories, encoding: Encoding::OneHot, .. } => {
                categories.iter().map(|c| num(format!("{name}={c}"))).collect()
            }
            ColumnTransform::Text { transform, .. } => transform.features()?,
            other => vec![num(other.name().to_string())],
        })
    }

    /// Writes this column's values for every row into row-major `out` (`stride` values per
    /// row), starting at `offset` in each row.
    pub fn apply(&self, col: &Column, out: &mut [f32], stride: usize, offset: usize) -> Result<()> {
        let missing = |row: usize| Error::Column {
            column: col.name.clone(),
            message: format!("row {row}: value missing, and the pipeline was trained to drop such records"),
        };
        match (self, &col.values) {
            (ColumnTransform::Numeric { fill, clip, shift, scale, .. }, Values::Numbers(v)) => {
                for (i, x) in v.iter().enumerate() {
                    let x = if x.is_nan() { fill.ok_or_else(|| missing(i))? } else { *x };
                    let x = clip.map_or(x, |(lo, hi)| x.clamp(lo, hi));
                    out[i * stride + offset] = ((x - shift) / scale) as f32;
                }
            }
            (ColumnTransform::Boolean { fill, .. }, Values::Numbers(v)) => {
                for (i, x) in v.iter().enumerate() {
                    out[i * stride + offset] = if x.is_nan() { fill.ok_or_else(|| missing(i))? } else { *x } as f32;
                }
            }
            (ColumnTransform::Categorical { fill, categories, encoding, unknown, .. }, values) => {
                for i in 0..values.len() {
                    let value = match values.text(i) {
                        Some(v) => v,
                        None => fill.clone().ok_or_else(|| missing(i))?,
                    };
                    let index = categories.binary_search(&value).ok();
                    if index.is_none() && *unknown == Unknown::Error {
                        return Err(Error::Column {
                            column: col.name.clone(),
                            message: format!("row {i}: category {value:?} was not seen in training"),
                        });
                    }
                    match encoding {
                        Encoding::OneHot => {
                            if let Some(j) = index {
                                out[i * stride + offset + j] = 1.0;
                            }
                        }
                        Encoding::Ordinal => out[i * stride + offset] = index.map_or(-1.0, |j| j as f32),
                    }
                }
            }
            (ColumnTransform::Text { fill, transform }, Values::Strings(v)) => {
                let texts: Vec<&str> = v
                    .iter()
                    .enumerate()
                    .map(|(i, t)| match (t, fill) {
                        (Some(t), _) => Ok(&**t),
                        (None, Some(f)) => Ok(f.as_str()),
                        (None, None) => Err(missing(i)),
                    })
                    .collect::<Result<_>>()?;
                transform.apply(&texts, out, stride, offset)?;
            }
            _ => return Err(kind_error(col, &format!("{:?} values", self.kind()))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MissingConfig, OutlierConfig};

    fn num(name: &str, v: &[f64]) -> Column {
        Column { name: name.into(), kind: FeatureKind::Numeric, values: Values::Numbers(v.to_vec()) }
    }

    fn cat(v: &[Option<&str>]) -> Column {
        Column {
            name: "color".into(),
            kind: FeatureKind::Categorical,
            values: Values::from_strings(v.iter().map(|s| s.map(String::from))),
        }
    }

    fn run(t: &ColumnTransform, c: &Column) -> Vec<f32> {
        let mut out = vec![0.0; c.values.len() * t.width()];
        t.apply(c, &mut out, t.width(), 0).unwrap();
        out
    }

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((f64::from(*x) - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    /// scikit-learn 1.9.1:
    /// ```python
    /// X = np.array([[1., 10.], [2., 20.], [4., 60.], [9., 30.]])
    /// StandardScaler().fit_transform(X)[:, 0]  # [-0.97332853 -0.64888568  0.  1.62221421]
    /// MinMaxScaler().fit_transform(X)[:, 1]    # [0.  0.2 1.  0.4]
    /// ```
    #[test]
    fn scaling_matches_scikit_learn() {
        let standard = PreprocessConfig { scale: Scale::Standard, ..Default::default() };
        let c = num("a", &[1., 2., 4., 9.]);
        close(
            &run(&ColumnTransform::fit(&c, &standard, None).unwrap(), &c),
            &[-0.97332853, -0.64888568, 0., 1.62221421],
        );
        let minmax = PreprocessConfig { scale: Scale::MinMax, ..Default::default() };
        let c = num("b", &[10., 20., 60., 30.]);
        close(&run(&ColumnTransform::fit(&c, &minmax, None).unwrap(), &c), &[0., 0.2, 1., 0.4]);
        // A constant column is shifted, not divided by zero.
        let c = num("k", &[5., 5.]);
        close(&run(&ColumnTransform::fit(&c, &standard, None).unwrap(), &c), &[0., 0.]);
    }

    /// scikit-learn 1.9.1:
    /// ```python
    /// x = np.array([[1.], [np.nan], [3.], [10.], [3.]])
    /// SimpleImputer(strategy=s).fit_transform(x).ravel() for s in mean / median / most_frequent
    /// #   [1. 4.25 3. 10. 3.], [1. 3. 3. 10. 3.], [1. 3. 3. 10. 3.]
    /// SimpleImputer(strategy="constant", fill_value=-1).fit_transform(x).ravel()  # [1. -1. 3. 10. 3.]
    /// c = np.array([["red"], [None], ["blue"], ["red"]], dtype=object)
    /// SimpleImputer(strategy="most_frequent", missing_values=None).fit_transform(c).ravel()
    /// #   ['red' 'red' 'blue' 'red']
    /// ```
    #[test]
    fn imputation_matches_scikit_learn() {
        let c = num("a", &[1., f64::NAN, 3., 10., 3.]);
        for (numeric, want) in [
            (NumericImpute::Mean, [1., 4.25, 3., 10., 3.]),
            (NumericImpute::Median, [1., 3., 3., 10., 3.]),
            (NumericImpute::MostFrequent, [1., 3., 3., 10., 3.]),
        ] {
            let cfg =
                PreprocessConfig { missing: MissingConfig { numeric, ..Default::default() }, ..Default::default() };
            close(&run(&ColumnTransform::fit(&c, &cfg, None).unwrap(), &c), &want);
        }
        let constant = PreprocessConfig {
            missing: MissingConfig { numeric: NumericImpute::Constant, fill_number: -1.0, ..Default::default() },
            ..Default::default()
        };
        close(&run(&ColumnTransform::fit(&c, &constant, None).unwrap(), &c), &[1., -1., 3., 10., 3.]);
        let colors = cat(&[Some("red"), None, Some("blue"), Some("red")]);
        let t = ColumnTransform::fit(&colors, &PreprocessConfig::default(), None).unwrap();
        let ColumnTransform::Categorical { fill, .. } = &t else { panic!() };
        assert_eq!(fill.as_deref(), Some("red"));
        let drop = PreprocessConfig {
            missing: MissingConfig { numeric: NumericImpute::Drop, ..Default::default() },
            ..Default::default()
        };
        let t = ColumnTransform::fit(&c, &drop, None).unwrap();
        let mut out = vec![0.0; 5];
        assert_eq!(
            t.apply(&c, &mut out, 1, 0).unwrap_err().to_string(),
            "column `a`: row 1: value missing, and the pipeline was trained to drop such records"
        );
    }

    /// scikit-learn 1.9.1:
    /// ```python
    /// enc = OneHotEncoder(handle_unknown="ignore").fit([["red"], ["blue"], ["green"], ["red"]])
    /// enc.categories_                                   # ['blue', 'green', 'red']
    /// enc.transform([["green"], ["purple"], ["red"]]).toarray()  # [[0 1 0] [0 0 0] [0 0 1]]
    /// OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    ///     .fit(...).transform([["green"], ["purple"], ["red"]])     # [[1] [-1] [2]]
    /// ```
    #[test]
    fn encoding_matches_scikit_learn() {
        let train = cat(&[Some("red"), Some("blue"), Some("green"), Some("red")]);
        let new = cat(&[Some("green"), Some("purple"), Some("red")]);
        let onehot = ColumnTransform::fit(&train, &PreprocessConfig::default(), None).unwrap();
        assert_eq!(
            onehot.features().unwrap().iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["color=blue", "color=green", "color=red"]
        );
        close(&run(&onehot, &new), &[0., 1., 0., 0., 0., 0., 0., 0., 1.]);
        let ordinal_cfg = PreprocessConfig {
            categorical: crate::config::CategoricalConfig { encoding: Encoding::Ordinal, unknown: Unknown::Ignore },
            ..Default::default()
        };
        close(&run(&ColumnTransform::fit(&train, &ordinal_cfg, None).unwrap(), &new), &[1., -1., 2.]);
        let strict = PreprocessConfig {
            categorical: crate::config::CategoricalConfig { encoding: Encoding::OneHot, unknown: Unknown::Error },
            ..Default::default()
        };
        let t = ColumnTransform::fit(&train, &strict, None).unwrap();
        let mut out = vec![0.0; 9];
        assert_eq!(
            t.apply(&new, &mut out, 3, 0).unwrap_err().to_string(),
            "column `color`: row 1: category \"purple\" was not seen in training"
        );
    }

    #[test]
    fn outliers_are_clipped_by_iqr_and_zscore() {
        let c = num("a", &[1., 2., 3., 4., 100.]);
        let iqr = PreprocessConfig {
            outliers: Some(OutlierConfig { method: OutlierMethod::Iqr, threshold: None, action: OutlierAction::Clip }),
            ..Default::default()
        };
        // q1 2, q3 4, IQR 2: bounds [-1, 7].
        close(&run(&ColumnTransform::fit(&c, &iqr, None).unwrap(), &c), &[1., 2., 3., 4., 7.]);
        let z = PreprocessConfig {
            outliers: Some(OutlierConfig {
                method: OutlierMethod::Zscore,
                threshold: Some(1.0),
                action: OutlierAction::Clip,
            }),
            ..Default::default()
        };
        let bounds = numeric_fill_and_bounds(&c, &z).unwrap().bounds;
        // mean 22, population std 39.01...: bounds mean ± std.
        let std = ((21f64.powi(2) + 20f64.powi(2) + 19f64.powi(2) + 18f64.powi(2) + 78f64.powi(2)) / 5.0).sqrt();
        assert_eq!(bounds, Some((22.0 - std, 22.0 + std)));
    }
}
