//! Seeded train / validation / test splits, stratified by class when asked.

use std::collections::BTreeMap;

use pipeline_core::config::Issue;
use pipeline_core::raw::Part;
use pipeline_core::{Rng, Targets};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `preprocess.split`: the fractions of the data in each part.
///
/// The test part is held out: it is never used for training or for model selection (that is
/// what the validation part is for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Fraction for training.
    #[serde(default = "default_train")]
    pub train: f64,
    /// Fraction for validation (per-epoch metrics, model selection); may be 0.
    #[serde(default = "default_validation")]
    pub validation: f64,
    /// Fraction held out for the final evaluation.
    #[serde(default = "default_test")]
    pub test: f64,
    /// Keep each class's proportion in every part (classification only).
    #[serde(default = "default_true")]
    pub stratify: bool,
    /// Take the parts the data names (an official split, e.g. `data.split_column` of an
    /// `audio_list`): its test records are the test part; its validation records the validation
    /// part, or, when it marks none, the `validation` fraction of its training records (drawn as
    /// above). `train` and `test` are then not used.
    #[serde(default)]
    pub from_data: bool,
    /// With `preprocess.series`: steps left out before the validation and the test window, so
    /// that no training target sits right beside a later window's (default 0).
    #[serde(default)]
    pub gap: usize,
}

fn default_train() -> f64 {
    0.8
}
fn default_validation() -> f64 {
    0.1
}
fn default_test() -> f64 {
    0.1
}
fn default_true() -> bool {
    true
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            train: default_train(),
            validation: default_validation(),
            test: default_test(),
            stratify: true,
            from_data: false,
            gap: 0,
        }
    }
}

impl SplitConfig {
    /// Fractions in `[0, 1]`, train and test above 0, and a sum of 1. `key` is this section's
    /// dotted path, for the messages.
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        for (name, v, min_exclusive) in
            [("train", self.train, true), ("validation", self.validation, false), ("test", self.test, true)]
        {
            let ok = v.is_finite() && v <= 1.0 && if min_exclusive { v > 0.0 } else { v >= 0.0 };
            if !ok {
                let range = if min_exclusive { "in (0, 1]" } else { "in [0, 1]" };
                issues.push(Issue::new(format!("{key}.{name}"), format!("must be a fraction {range}, got {v}")));
            }
        }
        // Rounded for the message: 0.7 + 0.1 + 0.1 reads as 0.9, not 0.8999999999999999.
        let sum = ((self.train + self.validation + self.test) * 1e9).round() / 1e9;
        // With the data's own parts only `validation` is used (a fraction of its training part).
        if issues.is_empty() && !self.from_data && (sum - 1.0).abs() > 1e-6 {
            issues.push(Issue::new(
                key,
                format!(
                    "train + validation + test must sum to 1, got {sum} ({} + {} + {})",
                    self.train, self.validation, self.test
                ),
            ));
        }
        issues
    }
}

/// Example indices of each part, each in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training examples.
    pub train: Vec<usize>,
    /// Validation examples (possibly none).
    pub validation: Vec<usize>,
    /// Held-out test examples.
    pub test: Vec<usize>,
}

impl Split {
    /// The same parts with each index `i` replaced by `rows[i]` (cleaned records back to their
    /// positions in the source).
    ///
    /// # Panics
    /// If an index is not below `rows.len()`.
    pub fn mapped(&self, rows: &[usize]) -> Split {
        let map = |part: &[usize]| part.iter().map(|&i| rows[i]).collect();
        Split { train: map(&self.train), validation: map(&self.validation), test: map(&self.test) }
    }
}

/// Splits the examples of `targets` as `config` says, drawing from `rng`.
///
/// Stratified (classification with `stratify: true`): each class is shuffled and cut on its own,
/// `round(n_class × fraction)` examples to test and validation and the rest to train, so every
/// part keeps each class's proportion to within one example. Otherwise the whole set is
/// shuffled and cut. Fails when a part with a non-zero fraction would be empty.
pub fn split(targets: &Targets, config: &SplitConfig, rng: &mut Rng) -> Result<Split> {
    let n = targets.len();
    let groups: Vec<Vec<usize>> = match (targets, config.stratify) {
        (Targets::Classes(classes), true) => {
            let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for (i, &c) in classes.iter().enumerate() {
                by_class.entry(c).or_default().push(i);
            }
            by_class.into_values().collect()
        }
        _ => vec![(0..n).collect()],
    };
    let mut out = Split { train: Vec::new(), validation: Vec::new(), test: Vec::new() };
    for mut group in groups {
        group.shuffle(rng);
        let m = group.len() as f64;
        let n_test = ((m * config.test).round() as usize).min(group.len());
        let n_val = ((m * config.validation).round() as usize).min(group.len() - n_test);
        out.test.extend_from_slice(&group[..n_test]);
        out.validation.extend_from_slice(&group[n_test..n_test + n_val]);
        out.train.extend_from_slice(&group[n_test + n_val..]);
    }
    for part in [&mut out.train, &mut out.validation, &mut out.test] {
        part.sort_unstable();
    }
    for (part, v, frac) in [
        ("train", &out.train, config.train),
        ("validation", &out.validation, config.validation),
        ("test", &out.test, config.test),
    ] {
        if frac > 0.0 && v.is_empty() {
            return Err(Error::EmptySplit { part, examples: n });
        }
    }
    Ok(out)
}

/// Splits as the data's `parts` say when `config.from_data` (see [`SplitConfig::from_data`]),
/// else as [`split`] does. Fails when `from_data` is asked of data without parts, or a part
/// would be empty.
pub fn split_records(targets: &Targets, parts: Option<&[Part]>, config: &SplitConfig, rng: &mut Rng) -> Result<Split> {
    if !config.from_data {
        return split(targets, config, rng);
    }
    let Some(parts) = parts else {
        return Err(Error::Schema(
            "preprocess.split.from_data: the data names no parts (give data.split_column, or set from_data: false)"
                .into(),
        ));
    };
    let of = |p: Part| (0..parts.len()).filter(|&i| parts[i] == p).collect::<Vec<_>>();
    let (train, mut validation, test) = (of(Part::Train), of(Part::Validation), of(Part::Test));
    let mut train = train;
    if validation.is_empty() && config.validation > 0.0 {
        // Hold out the validation fraction of the training records, as `split` would.
        let sub = targets.select(&train);
        let inner = SplitConfig { train: 1.0 - config.validation, test: 0.0, from_data: false, ..config.clone() };
        let s = split(&sub, &inner, rng)?;
        validation = s.validation.iter().map(|&i| train[i]).collect();
        train = s.train.iter().map(|&i| train[i]).collect();
        validation.sort_unstable();
    }
    for (part, v) in [("train", &train), ("test", &test)] {
        if v.is_empty() {
            return Err(Error::EmptySplit { part, examples: parts.len() });
        }
    }
    Ok(Split { train, validation, test })
}

/// `k` folds for cross-validation, seeded: `(train, test)` index lists, each index in exactly
/// one test fold. Stratified (classes, `stratify`): each class is shuffled and dealt round-robin
/// over the folds, continuing where the previous class stopped, so every fold keeps the class
/// proportions to within one example per class. Otherwise the shuffled indices are cut into
/// `k` parts whose sizes differ by at most one.
pub fn kfold(targets: &Targets, k: usize, stratify: bool, rng: &mut Rng) -> Vec<(Vec<usize>, Vec<usize>)> {
    let n = targets.len();
    let k = k.clamp(1, n.max(1));
    let mut fold_of = vec![0usize; n];
    match (targets, stratify) {
        (Targets::Classes(classes), true) => {
            let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for (i, &c) in classes.iter().enumerate() {
                by_class.entry(c).or_default().push(i);
            }
            let mut next = 0;
            for mut group in by_class.into_values() {
                group.shuffle(rng);
                for i in group {
                    fold_of[i] = next % k;
                    next += 1;
                }
            }
        }
        _ => {
            let mut all: Vec<usize> = (0..n).collect();
            all.shuffle(rng);
            for (pos, i) in all.into_iter().enumerate() {
                fold_of[i] = pos * k / n.max(1);
            }
        }
    }
    (0..k)
        .map(|f| {
            let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| fold_of[i] == f);
            (train, test)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use pipeline_core::rng;

    use super::*;

    fn cfg(train: f64, validation: f64, test: f64) -> SplitConfig {
        SplitConfig { train, validation, test, stratify: true, from_data: false, gap: 0 }
    }

    #[test]
    fn parts_from_the_data_are_kept_and_validation_is_drawn_from_train() {
        use Part::{Test, Train};
        let t = Targets::Classes(vec![0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
        let parts = [Test, Test, Train, Train, Train, Train, Train, Train, Train, Train];
        let c = SplitConfig { validation: 0.25, from_data: true, ..cfg(0.8, 0.1, 0.1) };
        assert!(c.validate("preprocess.split").is_empty(), "fractions need not sum to 1 with from_data");
        let s = split_records(&t, Some(&parts), &c, &mut rng(1, "split")).unwrap();
        assert_eq!(s.test, vec![0, 1]);
        assert_eq!((s.train.len(), s.validation.len()), (6, 2));
        assert!(s.validation.iter().all(|i| (2..10).contains(i)));
        // Stratified: one of each class in validation.
        assert_eq!(s.validation.iter().map(|&i| i % 2).sum::<usize>(), 1);
        let err = split_records(&t, None, &c, &mut rng(1, "split")).unwrap_err().to_string();
        assert!(err.contains("preprocess.split.from_data: the data names no parts"), "{err}");
        let no_test = [Train; 10];
        assert!(split_records(&t, Some(&no_test), &c, &mut rng(1, "split")).is_err());
        // Without from_data the parts are ignored.
        let plain = split_records(&t, Some(&parts), &cfg(0.6, 0.2, 0.2), &mut rng(1, "split")).unwrap();
        assert_eq!(plain, split(&t, &cfg(0.6, 0.2, 0.2), &mut rng(1, "split")).unwrap());
    }

    #[test]
    fn validate_reports_the_key() {
        assert!(cfg(0.8, 0.1, 0.1).validate("p").is_empty());
        assert_eq!(
            cfg(0.7, 0.1, 0.1).validate("preprocess.split")[0].to_string(),
            "preprocess.split: train + validation + test must sum to 1, got 0.9 (0.7 + 0.1 + 0.1)"
        );
        assert_eq!(
            cfg(1.2, 0.0, -0.2).validate("s").iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["s.train: must be a fraction in (0, 1], got 1.2", "s.test: must be a fraction in (0, 1], got -0.2"]
        );
    }

    #[test]
    fn stratified_split_keeps_class_proportions_and_partitions() {
        // 3 classes of 50, 30 and 20 examples.
        let classes: Vec<u32> = (0..100)
            .map(|i| {
                if i < 50 {
                    0
                } else if i < 80 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let t = Targets::Classes(classes.clone());
        let s = split(&t, &cfg(0.6, 0.2, 0.2), &mut rng(1, "split")).unwrap();
        let mut all: Vec<usize> = s.train.iter().chain(&s.validation).chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        for (part, frac) in [(&s.train, 0.6), (&s.validation, 0.2), (&s.test, 0.2)] {
            for (c, total) in [(0u32, 50.0), (1, 30.0), (2, 20.0)] {
                let got = part.iter().filter(|&&i| classes[i] == c).count() as f64;
                assert!((got - total * frac).abs() <= 1.0, "class {c}: {got} vs {}", total * frac);
            }
        }
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let t = Targets::Classes((0..200).map(|i| i % 4).collect());
        let c = cfg(0.8, 0.1, 0.1);
        let a = split(&t, &c, &mut rng(1, "split")).unwrap();
        let b = split(&t, &c, &mut rng(1, "split")).unwrap();
        let d = split(&t, &c, &mut rng(2, "split")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.test, d.test);
    }

    #[test]
    fn kfold_partitions_and_stratifies() {
        let classes: Vec<u32> = (0..50).map(|i| if i < 30 { 0 } else { 1 }).collect();
        let folds = kfold(&Targets::Classes(classes.clone()), 5, true, &mut rng(1, "cv"));
        assert_eq!(folds.len(), 5);
        let mut seen = [0; 50];
        for (train, test) in &folds {
            assert_eq!(train.len() + test.len(), 50);
            for &i in test {
                seen[i] += 1;
            }
            let ones = test.iter().filter(|&&i| classes[i] == 1).count();
            assert!((ones as i32 - 4).abs() <= 1, "fold has {ones} of class 1");
        }
        assert!(seen.iter().all(|&s| s == 1));
        let plain = kfold(&Targets::Values(vec![0.0; 11]), 3, false, &mut rng(1, "cv"));
        let sizes: Vec<usize> = plain.iter().map(|(_, t)| t.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 11);
        assert!(sizes.iter().all(|&s| s == 3 || s == 4), "{sizes:?}");
    }

    #[test]
    fn plain_split_of_values_and_empty_parts() {
        let t = Targets::Values((0..10).map(|i| i as f32).collect());
        let s = split(&t, &cfg(0.5, 0.0, 0.5), &mut rng(3, "split")).unwrap();
        assert_eq!((s.train.len(), s.validation.len(), s.test.len()), (5, 0, 5));
        let tiny = Targets::Values(vec![1.0, 2.0]);
        let err = split(&tiny, &cfg(0.9, 0.0, 0.1), &mut rng(3, "split")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the split leaves the test part empty (2 examples in all): use a larger fraction or more data"
        );
    }
}
