//! Drift detection against NumPy / SciPy: the reference fitted on `data/sensors/train.csv`
//! does not flag records of the same distribution (`live.csv`), and flags the same records with
//! one feature shifted by one standard deviation, or with the class mix changed, with PSI, KS
//! and chi-squared values equal to the Python computation pasted below; texts and images are
//! watched through their summaries.
//!
//! ```python
//! import numpy as np, pandas as pd                      # numpy 2.4.6, pandas, scipy 1.17.1
//! from scipy.stats import ks_2samp, chi2_contingency
//! train = pd.read_csv("data/sensors/train.csv"); live = pd.read_csv("data/sensors/live.csv")
//! def psi(ref, cur, bins=10):
//!     edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
//!     e = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
//!     a = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
//!     e, a = np.maximum(e, 1e-4), np.maximum(a, 1e-4)
//!     return np.sum((a - e) * np.log(a / e))
//! for col in ["temperature", "pressure"]:
//!     r = ks_2samp(train[col], live[col])
//!     print(col, psi(train[col], live[col]), r.statistic, r.pvalue)
//! shifted = live.temperature + train.temperature.std(ddof=0)
//! r = ks_2samp(train.temperature, shifted)
//! print("shifted", psi(train.temperature, shifted), r.statistic, r.pvalue)
//! mixed = live[(live.status == "fault") | (np.arange(len(live)) % 4 == 0)]
//! ref = train.status.value_counts().reindex(["fault", "ok"]).values
//! cur = mixed.status.value_counts().reindex(["fault", "ok"]).values
//! c = chi2_contingency([ref, cur], correction=False)
//! print("mix", len(mixed), ref, cur, c.statistic, c.pvalue)
//! ```
//!
//! printed
//!
//! ```text
//! temperature 0.0075462853268676 0.03 0.58257065413525
//! pressure 0.028165612826067443 0.0445 0.14123196602111474
//! shifted 0.9288625069434393 0.383 1.1454638756606195e-87
//! mix 495 [ 634 1366] [316 179] 173.82079112053938 1.083229366176513e-39
//! ```

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};

use pipeline_core::raw::{Column, RawInputs, Table, Values};
use pipeline_core::{FeatureKind, Predictions, Task};
use serve::drift::{DriftReport, Extractor, FeatureReport, Reference, ReferenceOptions, Thresholds, compare};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sensors").join(name)
}

/// The records of a sensors CSV: inputs, and labels.
fn read(name: &str) -> (Vec<f64>, Vec<f64>, Vec<String>, Vec<String>) {
    let mut r = csv::Reader::from_path(data(name)).unwrap();
    let (mut t, mut p, mut s, mut y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rec in r.records() {
        let rec = rec.unwrap();
        t.push(rec[0].parse().unwrap());
        p.push(rec[1].parse().unwrap());
        s.push(rec[2].to_string());
        y.push(rec[3].to_string());
    }
    (t, p, s, y)
}

fn inputs(t: &[f64], p: &[f64], s: &[String]) -> RawInputs {
    let num = |name: &str, v: &[f64]| Column {
        name: name.into(),
        kind: FeatureKind::Numeric,
        values: Values::Numbers(v.to_vec()),
    };
    RawInputs::Table(Table {
        columns: vec![
            num("temperature", t),
            num("pressure", p),
            Column {
                name: "site".into(),
                kind: FeatureKind::Categorical,
                values: Values::from_strings(s.iter().map(|x| Some(x.clone()))),
            },
        ],
    })
}

fn task() -> Task {
    Task::Classification { labels: vec!["fault".into(), "ok".into()] }
}

/// A model that predicts the true label (probability 1), so that the predicted-class
/// distribution is the class mix.
fn predictions(labels: &[String]) -> Predictions {
    let probs = labels.iter().flat_map(|l| if l == "fault" { [1.0, 0.0] } else { [0.0, 1.0] }).collect();
    Predictions::Classes { probs, classes: 2 }
}

fn reference() -> Reference {
    let (t, p, s, y) = read("train.csv");
    // A sample of 2,000 keeps every training value, so KS is ks_2samp(train, live) exactly.
    let options = ReferenceOptions { sample: 2000, ..Default::default() };
    Reference::fit(&inputs(&t, &p, &s), Some(&predictions(&y)), &task(), &options).unwrap()
}

fn check(reference: &Reference, t: &[f64], p: &[f64], s: &[String], y: &[String]) -> DriftReport {
    let extractor = Extractor::new(std::sync::Arc::new(reference.clone()));
    let samples = extractor.extract(&inputs(t, p, s), &predictions(y), &task());
    compare(reference, &samples, t.len(), &Thresholds::default())
}

fn feature<'a>(r: &'a DriftReport, name: &str) -> &'a FeatureReport {
    r.features.iter().find(|f| f.name == name).unwrap()
}

#[track_caller]
fn close(got: f64, want: f64, rel: f64) {
    assert!((got - want).abs() <= rel * want.abs().max(1e-300), "got {got:e}, want {want:e}");
}

#[test]
fn the_reference_has_a_feature_per_column_and_the_predicted_class() {
    let r = reference();
    let names: Vec<&str> = r.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["temperature", "pressure", "site", "prediction"]);
    assert_eq!(r.rows, 2000);
    // It survives the bundle's JSON.
    let back: Reference = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn data_from_the_training_distribution_is_not_flagged() {
    let (t, p, s, y) = read("live.csv");
    let report = check(&reference(), &t, &p, &s, &y);
    assert!(!report.flagged, "{report:#?}");
    let temp = feature(&report, "temperature");
    close(temp.psi, 0.0075462853268676, 1e-9);
    let ks = temp.ks.unwrap();
    close(ks.statistic, 0.03, 1e-12);
    close(ks.p_value, 0.58257065413525, 1e-9);
    let pres = feature(&report, "pressure");
    close(pres.psi, 0.028165612826067443, 1e-9);
    close(pres.ks.unwrap().statistic, 0.0445, 1e-12);
    close(pres.ks.unwrap().p_value, 0.14123196602111474, 1e-9);
    assert!(report.score < 0.05, "largest PSI {}", report.score);
}

#[test]
fn one_feature_shifted_by_one_standard_deviation_is_flagged() {
    let r = reference();
    let (t, p, s, y) = read("live.csv");
    let std = match &r.features[0].stats {
        serve::drift::Stats::Numeric(n) => n.std,
        serve::drift::Stats::Categorical(_) => unreachable!(),
    };
    let shifted: Vec<f64> = t.iter().map(|v| v + std).collect();
    let report = check(&r, &shifted, &p, &s, &y);
    let temp = feature(&report, "temperature");
    assert!(temp.flagged, "{temp:#?}");
    close(temp.psi, 0.9288625069434393, 1e-9);
    close(temp.ks.unwrap().statistic, 0.383, 1e-12);
    // A p-value of 1e-87 to 6 significant digits: the exact method keeps its precision.
    close(temp.ks.unwrap().p_value, 1.1454638756606195e-87, 1e-6);
    assert_eq!(temp.reasons, ["psi 0.929 > 0.2", "ks p 1.145e-87 < 0.01"]);
    // Only that feature.
    for name in ["pressure", "site", "prediction"] {
        assert!(!feature(&report, name).flagged, "{name}");
    }
}

#[test]
fn a_changed_class_mix_is_flagged() {
    let (t, p, s, y) = read("live.csv");
    // Every fault and a quarter of the rest.
    let keep: Vec<usize> = (0..y.len()).filter(|&i| y[i] == "fault" || i % 4 == 0).collect();
    let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let pick_s = |v: &[String]| keep.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
    let report = check(&reference(), &pick(&t), &pick(&p), &pick_s(&s), &pick_s(&y));
    assert_eq!(report.rows, 495);
    let pred = feature(&report, "prediction");
    assert!(pred.flagged, "{pred:#?}");
    let chi2 = pred.chi2.unwrap();
    close(chi2.statistic, 173.82079112053938, 1e-9);
    close(chi2.p_value, 1.083229366176513e-39, 1e-6);
    assert_eq!(chi2.dof, 1);
}

#[test]
fn too_few_records_flag_nothing() {
    let (t, p, s, y) = read("live.csv");
    let shifted: Vec<f64> = t[..50].iter().map(|v| v + 10.0).collect();
    let report = check(&reference(), &shifted, &p[..50], &s[..50], &y[..50]);
    assert!(feature(&report, "temperature").psi > 1.0);
    assert!(!report.flagged, "50 records are fewer than min_rows = 100");
}

/// A reproducible stream of numbers in [0, 1) (a 64-bit LCG), for synthetic texts and images.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn texts(n: usize, seed: u64, words: &[&str], length: (usize, usize)) -> RawInputs {
    let mut r = Lcg(seed);
    let texts = (0..n)
        .map(|_| {
            let len = length.0 + (r.next() * (length.1 - length.0) as f64) as usize;
            let t: Vec<&str> = (0..len).map(|_| words[(r.next() * words.len() as f64) as usize]).collect();
            Some(t.join(" ").into())
        })
        .collect();
    RawInputs::Table(Table {
        columns: vec![Column { name: "message".into(), kind: FeatureKind::Text, values: Values::Strings(texts) }],
    })
}

#[test]
fn texts_are_watched_through_their_length_and_out_of_vocabulary_rate() {
    let vocab: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    let vocab: Vec<&str> = vocab.iter().map(String::as_str).collect();
    let task = Task::Regression;
    let reference = Reference::fit_inputs(&texts(400, 1, &vocab, (5, 15)), &ReferenceOptions::default()).unwrap();
    let names: Vec<&str> = reference.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["message:tokens", "message:oov_rate"]);
    let judge = |inputs: &RawInputs| {
        let samples = Extractor::new(std::sync::Arc::new(reference.clone())).extract(
            inputs,
            &Predictions::Values(vec![0.0; inputs.rows()]),
            &task,
        );
        compare(&reference, &samples, inputs.rows(), &Thresholds::default())
    };
    // New texts from the same vocabulary: some of their rarer words were never seen in
    // training, about as often as leaving each training text out predicts.
    let same = judge(&texts(400, 2, &vocab, (5, 15)));
    assert!(!same.flagged, "{same:#?}");
    let oov = feature(&same, "message:oov_rate");
    assert!(oov.reference_mean.unwrap() > 0.0, "the training rate is not a point mass at 0: {oov:#?}");
    // Texts half of whose words are new, and longer texts.
    let mut mixed: Vec<String> = vocab[..150].iter().map(|w| w.to_string()).collect();
    mixed.extend((0..150).map(|i| format!("new{i}")));
    let mixed: Vec<&str> = mixed.iter().map(String::as_str).collect();
    let foreign = judge(&texts(400, 3, &mixed, (5, 15)));
    assert!(feature(&foreign, "message:oov_rate").flagged && !feature(&foreign, "message:tokens").flagged);
    let long = judge(&texts(400, 4, &vocab, (20, 40)));
    assert!(feature(&long, "message:tokens").flagged, "{long:#?}");
}

#[test]
fn images_are_watched_through_their_mean_and_spread_of_intensity() {
    let images = |n: usize, seed: u64, scale: f64| {
        let mut r = Lcg(seed);
        RawInputs::Images(pipeline_core::raw::ImageSet {
            channels: 1,
            height: 4,
            width: 4,
            pixels: (0..n * 16).map(|_| (r.next() * 255.0 * scale) as f32).collect(),
        })
    };
    let reference = Reference::fit_inputs(&images(500, 1, 1.0), &ReferenceOptions::default()).unwrap();
    let names: Vec<&str> = reference.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["mean_intensity", "std_intensity"]);
    let judge = |inputs: &RawInputs| {
        let samples = Extractor::new(std::sync::Arc::new(reference.clone())).extract(
            inputs,
            &Predictions::Values(vec![0.0; inputs.rows()]),
            &Task::Regression,
        );
        compare(&reference, &samples, inputs.rows(), &Thresholds::default())
    };
    assert!(!judge(&images(300, 2, 1.0)).flagged);
    // Darker images (pixels at 70 %): both the mean and the spread move.
    let dark = judge(&images(300, 3, 0.7));
    assert!(feature(&dark, "mean_intensity").flagged && feature(&dark, "std_intensity").flagged, "{dark:#?}");
}
