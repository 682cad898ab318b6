//! The target column: classes (with their names) or real values.

use std::collections::{BTreeMap, BTreeSet};

use pipeline_core::raw::{Column, TargetSpec, TaskHint, Values};
use pipeline_core::{Predictions, Targets, Task};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How target values map to what the model learns. Fitted on the whole dataset (before the
/// split), so that a class present only in the test part still has an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TargetEncoder {
    /// Classification: `labels[i]` is class `i`. Numeric labels are looked up by their value
    /// (`label_values`), string labels by name.
    Classes {
        /// Class names, by class id.
        labels: Vec<String>,
        /// For numeric targets: the value of each class.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label_values: Option<Vec<f64>>,
    },
    /// Regression: the model learns `(y - shift) / scale` (standardized with training
    /// statistics when `preprocess.scale_target` is on); predictions are mapped back.
    Values {
        /// Subtracted from targets.
        shift: f64,
        /// Targets are divided by it.
        scale: f64,
    },
}

fn integers_with_few_values(v: &[f64]) -> bool {
    let mut distinct = BTreeSet::new();
    for x in v.iter().filter(|x| !x.is_nan()) {
        if x.fract() != 0.0 {
            return false;
        }
        distinct.insert(x.to_bits());
    }
    distinct.len() <= 50
}

impl TargetEncoder {
    /// Decides the task and the classes from the target `column`.
    pub fn fit(column: &Column, spec: &TargetSpec) -> Result<Self> {
        let err = |m: String| Error::Target { column: column.name.clone(), message: m };
        let classify = match (spec.task, &column.values) {
            (TaskHint::Classification, _) => true,
            (TaskHint::Regression, Values::Strings(_)) => {
                return Err(err("regression needs numeric target values, found text".into()));
            }
            (TaskHint::Regression, Values::Numbers(_)) => false,
            (TaskHint::Auto, Values::Strings(_)) => true,
            (TaskHint::Auto, Values::Numbers(v)) => integers_with_few_values(v),
        };
        if !classify {
            return Ok(TargetEncoder::Values { shift: 0.0, scale: 1.0 });
        }
        match &column.values {
            Values::Strings(v) => {
                let seen: BTreeSet<&str> = v.iter().flatten().map(|s| &**s).collect();
                let labels = match &spec.label_names {
                    Some(names) => {
                        if let Some(missing) = seen.iter().find(|s| !names.iter().any(|n| n == *s)) {
                            return Err(err(format!("value {missing:?} is not in data.label_names")));
                        }
                        names.clone()
                    }
                    None => seen.into_iter().map(String::from).collect(),
                };
                Ok(TargetEncoder::Classes { labels, label_values: None })
            }
            Values::Numbers(v) => {
                if let Some(bad) = v.iter().find(|x| !x.is_nan() && x.fract() != 0.0) {
                    return Err(err(format!("class labels must be whole numbers, found {bad}")));
                }
                match &spec.label_names {
                    Some(names) => {
                        if let Some(bad) = v.iter().find(|x| !x.is_nan() && (**x < 0.0 || **x >= names.len() as f64)) {
                            return Err(err(format!(
                                "label {bad} has no name: data.label_names lists {} classes (labels 0 to {})",
                                names.len(),
                                names.len() - 1
                            )));
                        }
                        let values = (0..names.len()).map(|i| i as f64).collect();
                        Ok(TargetEncoder::Classes { labels: names.clone(), label_values: Some(values) })
                    }
                    None => {
                        let distinct: BTreeMap<i64, ()> =
                            v.iter().filter(|x| !x.is_nan()).map(|x| (*x as i64, ())).collect();
                        let values: Vec<f64> = distinct.keys().map(|&k| k as f64).collect();
                        let labels = values.iter().map(|x| format!("{x}")).collect();
                        Ok(TargetEncoder::Classes { labels, label_values: Some(values) })
                    }
                }
            }
        }
    }

    /// The task.
    pub fn task(&self) -> Task {
        match self {
            TargetEncoder::Classes { labels, .. } => Task::Classification { labels: labels.clone() },
            TargetEncoder::Values { .. } => Task::Regression,
        }
    }

    /// Standardizes regression targets with the statistics of `train` (population standard
    /// deviation; a constant target is only shifted). Classes are left as they are.
    pub fn fit_scale(self, train: &Column) -> Self {
        match (&self, &train.values) {
            (TargetEncoder::Values { .. }, Values::Numbers(v)) => {
                let y: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
                let n = y.len().max(1) as f64;
                let mean = y.iter().sum::<f64>() / n;
                let std = (y.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
                TargetEncoder::Values { shift: mean, scale: if std > 1e-12 { std } else { 1.0 } }
            }
            _ => self,
        }
    }

    /// Maps model outputs back to target units (regression values are un-standardized).
    pub fn decode(&self, predictions: Predictions) -> Predictions {
        match (self, predictions) {
            (TargetEncoder::Values { shift, scale }, Predictions::Values(v)) => {
                Predictions::Values(v.iter().map(|&p| (f64::from(p) * scale + shift) as f32).collect())
            }
            (_, p) => p,
        }
    }

    /// Encodes a target column (no value may be missing: drop those records first).
    pub fn encode(&self, column: &Column) -> Result<Targets> {
        let err = |m: String| Error::Target { column: column.name.clone(), message: m };
        match (self, &column.values) {
            (TargetEncoder::Values { shift, scale }, Values::Numbers(v)) => {
                Ok(Targets::Values(v.iter().map(|&x| ((x - shift) / scale) as f32).collect()))
            }
            (TargetEncoder::Classes { labels, label_values: None }, Values::Strings(v)) => {
                let index: BTreeMap<&str, u32> =
                    labels.iter().enumerate().map(|(i, l)| (l.as_str(), i as u32)).collect();
                v.iter()
                    .map(|s| {
                        let s = s.as_deref().ok_or_else(|| err("a target value is missing".into()))?;
                        index.get(s).copied().ok_or_else(|| err(format!("unknown class {s:?}")))
                    })
                    .collect::<Result<_>>()
                    .map(Targets::Classes)
            }
            (TargetEncoder::Classes { label_values: Some(values), .. }, Values::Numbers(v)) => v
                .iter()
                .map(|x| {
                    values
                        .iter()
                        .position(|y| y == x)
                        .map(|i| i as u32)
                        .ok_or_else(|| err(format!("unknown class label {x}")))
                })
                .collect::<Result<_>>()
                .map(Targets::Classes),
            _ => Err(err("the target's values are not of the kind the encoder was fitted on".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use pipeline_core::FeatureKind;

    use super::*;

    fn nums(v: &[f64]) -> Column {
        Column { name: "y".into(), kind: FeatureKind::Numeric, values: Values::Numbers(v.to_vec()) }
    }

    fn strs(v: &[&str]) -> Column {
        Column {
            name: "y".into(),
            kind: FeatureKind::Categorical,
            values: Values::from_strings(v.iter().map(|s| Some(s.to_string()))),
        }
    }

    #[test]
    fn decides_the_task() {
        let auto = TargetSpec::default();
        assert_eq!(
            TargetEncoder::fit(&nums(&[151.0, 75.5, 141.0]), &auto).unwrap(),
            TargetEncoder::Values { shift: 0.0, scale: 1.0 }
        );
        let e = TargetEncoder::fit(&nums(&[2.0, 0.0, 1.0, 2.0]), &auto).unwrap();
        assert_eq!(e.task(), Task::Classification { labels: vec!["0".into(), "1".into(), "2".into()] });
        assert_eq!(e.encode(&nums(&[2.0, 0.0])).unwrap(), Targets::Classes(vec![2, 0]));
        let s = TargetEncoder::fit(&strs(&["spam", "ham", "ham"]), &auto).unwrap();
        assert_eq!(s.encode(&strs(&["ham", "spam"])).unwrap(), Targets::Classes(vec![0, 1]));
        let reg = TargetSpec { task: TaskHint::Regression, label_names: None };
        let e = TargetEncoder::fit(&nums(&[1.0, 2.0]), &reg).unwrap().fit_scale(&nums(&[1.0, 3.0]));
        assert_eq!(e, TargetEncoder::Values { shift: 2.0, scale: 1.0 });
        assert_eq!(e.encode(&nums(&[4.0])).unwrap(), Targets::Values(vec![2.0]));
        assert_eq!(e.decode(Predictions::Values(vec![2.0])), Predictions::Values(vec![4.0]));
    }

    #[test]
    fn label_names_name_integer_classes() {
        let spec = TargetSpec {
            task: TaskHint::Classification,
            label_names: Some(vec!["setosa".into(), "versicolor".into(), "virginica".into()]),
        };
        let e = TargetEncoder::fit(&nums(&[0.0, 2.0]), &spec).unwrap();
        assert_eq!(e.task().labels().unwrap()[2], "virginica");
        assert_eq!(e.encode(&nums(&[2.0, 1.0])).unwrap(), Targets::Classes(vec![2, 1]));
        let err = TargetEncoder::fit(&nums(&[0.0, 3.0]), &spec).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target column `y`: label 3 has no name: data.label_names lists 3 classes (labels 0 to 2)"
        );
        assert!(
            TargetEncoder::fit(&nums(&[0.5]), &TargetSpec { task: TaskHint::Classification, label_names: None })
                .is_err()
        );
    }
}
