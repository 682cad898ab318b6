//! Exploratory statistics of raw data, before any training: what `dlp inspect` reports.
//!
//! Per column: kind, count, missing, distinct values; for numbers mean, standard deviation
//! (sample, `ddof = 1`), minimum, quartiles (linear interpolation) and maximum — pandas'
//! `describe()` — and a 20-bin histogram; for categories the most frequent values; for text
//! the mean length in words. For the data: class balance or target statistics, exact duplicate
//! rows, and the numeric features most associated with the target (absolute Pearson correlation
//! for a numeric target, the correlation ratio η for classes).

use std::collections::{HashMap, HashSet};

use pipeline_core::FeatureKind;
use pipeline_core::raw::{Column, RawDataset, RawInputs, TargetSpec, TaskHint, Values};
use serde::{Deserialize, Serialize};

/// Statistics of a numeric column's non-missing values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericStats {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (NaN for a single value).
    pub std: f64,
    /// Minimum.
    pub min: f64,
    /// 25th percentile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// 75th percentile.
    pub q3: f64,
    /// Maximum.
    pub max: f64,
}

/// Equal-width bins between the minimum and the maximum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `bins + 1` edges.
    pub edges: Vec<f64>,
    /// Values per bin (the last bin includes the maximum).
    pub counts: Vec<usize>,
}

/// One column's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSummary {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: FeatureKind,
    /// Non-missing values.
    pub count: usize,
    /// Missing values.
    pub missing: usize,
    /// Distinct non-missing values.
    pub distinct: usize,
    /// For numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericStats>,
    /// For numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    /// The most frequent values with their counts (categories, booleans, text).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<(String, usize)>,
    /// Mean length in words (text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_words: Option<f64>,
}

/// The whole dataset's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Records.
    pub rows: usize,
    /// Input columns (for images: none; see `image`).
    pub columns: Vec<ColumnSummary>,
    /// For images: channels, height, width, and per-channel mean and standard deviation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSummary>,
    /// For audio: the rate and clip length (the clips' `duration_s` and `rms_dbfs` are summarised
    /// as columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioSummary>,
    /// The target column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<ColumnSummary>,
    /// Records identical to an earlier one in every input and the target.
    pub duplicate_rows: usize,
    /// Numeric features by association with the target, strongest first (at most 10).
    pub associations: Vec<Association>,
}

/// Image statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// Mean pixel value per channel.
    pub channel_mean: Vec<f64>,
    /// Population standard deviation per channel.
    pub channel_std: Vec<f64>,
}

/// Audio clip layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioSummary {
    /// Samples per second.
    pub sample_rate: u32,
    /// Samples per clip after padding / cropping.
    pub samples: usize,
}

/// Root-mean-square level of `samples` in dB relative to full scale (-120 for silence).
pub fn rms_dbfs(samples: &[f32]) -> f64 {
    let ms = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / samples.len().max(1) as f64;
    (10.0 * ms.log10()).max(-120.0)
}

/// The recorded part of clip `i` (without the padding added to reach the set's length).
pub fn recorded(a: &pipeline_core::raw::AudioSet, i: usize) -> &[f32] {
    let clip = a.clip(i);
    let n = ((f64::from(a.durations[i]) * f64::from(a.sample_rate)).round() as usize).clamp(1, clip.len().max(1));
    match a.align {
        pipeline_core::raw::Align::Start => &clip[..n.min(clip.len())],
        pipeline_core::raw::Align::Center => {
            let start = (clip.len() - n.min(clip.len())) / 2;
            &clip[start..start + n.min(clip.len())]
        }
    }
}

/// A feature's association with the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Association {
    /// The feature.
    pub feature: String,
    /// `pearson` (numeric target) or `correlation_ratio` (classes).
    pub measure: String,
    /// The value: r in [-1, 1], or η in [0, 1].
    pub value: f64,
}

/// Percentile `p` (0–1) of sorted values, linearly interpolated (numpy's default).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// pandas' `describe()` figures of the non-NaN values.
pub fn numeric_stats(values: &[f64]) -> Option<NumericStats> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std =
        if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { f64::NAN };
    Some(NumericStats {
        mean,
        std,
        min: v[0],
        q1: percentile(&v, 0.25),
        median: percentile(&v, 0.5),
        q3: percentile(&v, 0.75),
        max: v[v.len() - 1],
    })
}

/// `bins` equal-width bins over the non-NaN `values` (the last bin includes the maximum);
/// `None` when there are none.
pub fn histogram(values: &[f64], bins: usize) -> Option<Histogram> {
    let v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if v.is_empty() {
        return None;
    }
    let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
    let edges = (0..=bins).map(|i| lo + width * i as f64).collect();
    let mut counts = vec![0; bins];
    for x in v {
        counts[(((x - lo) / width) as usize).min(bins - 1)] += 1;
    }
    Some(Histogram { edges, counts })
}

fn column_summary(c: &Column) -> ColumnSummary {
    let n = c.values.len();
    let mut s = ColumnSummary {
        name: c.name.clone(),
        kind: c.kind,
        count: 0,
        missing: 0,
        distinct: 0,
        numeric: None,
        histogram: None,
        top: Vec::new(),
        mean_words: None,
    };
    let mut freq: HashMap<String, usize> = HashMap::new();
    for i in 0..n {
        match c.values.text(i) {
            Some(t) => *freq.entry(t).or_default() += 1,
            None => s.missing += 1,
        }
    }
    s.count = n - s.missing;
    s.distinct = freq.len();
    match &c.values {
        Values::Numbers(v) if c.kind == FeatureKind::Numeric => {
            s.numeric = numeric_stats(v);
            s.histogram = histogram(v, 20);
        }
        Values::Strings(v) if c.kind == FeatureKind::Text => {
            let words: usize = v.iter().flatten().map(|t| t.split_whitespace().count()).sum();
            s.mean_words = (s.count > 0).then(|| words as f64 / s.count as f64);
        }
        _ => {}
    }
    if c.kind != FeatureKind::Numeric {
        let mut top: Vec<(String, usize)> = freq.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(if c.kind == FeatureKind::Text { 3 } else { 10 });
        s.top = top;
    }
    s
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> =
        x.iter().zip(y).filter(|(a, b)| !a.is_nan() && !b.is_nan()).map(|(a, b)| (*a, *b)).collect();
    let n = pairs.len() as f64;
    if pairs.len() < 2 {
        return None;
    }
    let (mx, my) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in pairs {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

fn correlation_ratio<S: AsRef<str>>(x: &[f64], classes: &[Option<S>]) -> Option<f64> {
    let mut groups: HashMap<&str, (f64, usize)> = HashMap::new();
    let mut all = Vec::new();
    for (v, c) in x.iter().zip(classes) {
        if let (false, Some(c)) = (v.is_nan(), c) {
            let g = groups.entry(c.as_ref()).or_default();
            g.0 += v;
            g.1 += 1;
            all.push(*v);
        }
    }
    let n = all.len() as f64;
    if all.len() < 2 {
        return None;
    }
    let mean = all.iter().sum::<f64>() / n;
    let total: f64 = all.iter().map(|v| (v - mean).powi(2)).sum();
    let between: f64 = groups.values().map(|(s, k)| *k as f64 * (s / *k as f64 - mean).powi(2)).sum();
    (total > 0.0).then(|| (between / total).sqrt())
}

/// Summarises `data`; `spec` says whether a numeric target holds classes (and their names).
pub fn summarize(data: &RawDataset, spec: &TargetSpec) -> Summary {
    let rows = data.rows();
    let mut columns = Vec::new();
    let mut image = None;
    let mut audio = None;
    match &data.inputs {
        RawInputs::Audio(a) => {
            audio = Some(AudioSummary { sample_rate: a.sample_rate, samples: a.samples });
            let numbers = |name: &str, v: Vec<f64>| Column {
                name: name.into(),
                kind: FeatureKind::Numeric,
                values: Values::Numbers(v),
            };
            columns = vec![
                column_summary(&numbers("duration_s", a.durations.iter().map(|&d| f64::from(d)).collect())),
                column_summary(&numbers("rms_dbfs", (0..a.rows()).map(|i| rms_dbfs(recorded(a, i))).collect())),
            ];
        }
        RawInputs::Table(t) => columns = t.columns.iter().map(column_summary).collect(),
        RawInputs::Images(imgs) => {
            let plane = imgs.height * imgs.width;
            let (mut sum, mut sq) = (vec![0f64; imgs.channels], vec![0f64; imgs.channels]);
            for img in imgs.pixels.chunks_exact(imgs.width_values().max(1)) {
                for c in 0..imgs.channels {
                    for &p in &img[c * plane..(c + 1) * plane] {
                        sum[c] += f64::from(p);
                        sq[c] += f64::from(p) * f64::from(p);
                    }
                }
            }
            let n = (rows * plane).max(1) as f64;
            let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
            let std = sq.iter().zip(&mean).map(|(s, m)| (s / n - m * m).max(0.0).sqrt()).collect();
            image = Some(ImageSummary {
                channels: imgs.channels,
                height: imgs.height,
                width: imgs.width,
                channel_mean: mean,
                channel_std: std,
            });
        }
    }
    let target = data.target.as_ref().map(|t| {
        let mut s = column_summary(t);
        let classes = match (&t.values, spec.task) {
            (Values::Numbers(_), TaskHint::Regression) | (Values::Strings(_), _) => false,
            (Values::Numbers(_), TaskHint::Classification) => true,
            (Values::Numbers(v), TaskHint::Auto) => !target_is_continuous(v),
        };
        if classes && let Values::Numbers(v) = &t.values {
            // Class balance of numeric labels, named by `label_names` when given.
            let mut counts: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
            for x in v.iter().filter(|x| !x.is_nan()) {
                *counts.entry(*x as i64).or_default() += 1;
            }
            let name = |k: i64| {
                spec.label_names
                    .as_ref()
                    .and_then(|n| usize::try_from(k).ok().and_then(|i| n.get(i)))
                    .cloned()
                    .unwrap_or_else(|| k.to_string())
            };
            s.top = counts.into_iter().map(|(k, n)| (name(k), n)).collect();
            s.top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            s.numeric = None;
            s.histogram = None;
        }
        s
    });

    // Exact duplicates over every input and the target.
    let mut seen = HashSet::new();
    let mut duplicate_rows = 0;
    for i in 0..rows {
        let mut key: Vec<Option<String>> = match &data.inputs {
            RawInputs::Table(t) => t.columns.iter().map(|c| c.values.text(i)).collect(),
            RawInputs::Images(imgs) => {
                let w = imgs.width_values();
                vec![Some(imgs.pixels[i * w..(i + 1) * w].iter().map(|p| (*p as u8) as char).collect())]
            }
            RawInputs::Audio(a) => vec![Some(format!("{:016x}", a.clip_hash(i)))],
        };
        key.push(data.target.as_ref().and_then(|t| t.values.text(i)));
        if !seen.insert(key) {
            duplicate_rows += 1;
        }
    }

    let mut associations = Vec::new();
    if let (RawInputs::Table(t), Some(target)) = (&data.inputs, &data.target) {
        for c in &t.columns {
            let Values::Numbers(x) = &c.values else { continue };
            let assoc = match &target.values {
                Values::Numbers(y) if target.kind == FeatureKind::Numeric && target_is_continuous(y) => {
                    pearson(x, y).map(|v| ("pearson", v))
                }
                Values::Numbers(y) => {
                    let classes: Vec<Option<String>> = y.iter().map(|v| (!v.is_nan()).then(|| v.to_string())).collect();
                    correlation_ratio(x, &classes).map(|v| ("correlation_ratio", v))
                }
                Values::Strings(y) => correlation_ratio(x, y).map(|v| ("correlation_ratio", v)),
            };
            if let Some((measure, value)) = assoc {
                associations.push(Association { feature: c.name.clone(), measure: measure.into(), value });
            }
        }
        associations.sort_by(|a, b| b.value.abs().total_cmp(&a.value.abs()));
        associations.truncate(10);
    }
    Summary { rows, columns, image, audio, target, duplicate_rows, associations }
}

/// Numbers that look like a regression target rather than class ids: any non-integer, or
/// more than 50 distinct values.
fn target_is_continuous(y: &[f64]) -> bool {
    let mut distinct = HashSet::new();
    for v in y.iter().filter(|v| !v.is_nan()) {
        if v.fract() != 0.0 {
            return true;
        }
        distinct.insert(v.to_bits());
    }
    distinct.len() > 50
}

#[cfg(test)]
mod tests {
    use pipeline_core::raw::Table;

    use super::*;

    /// pandas 3.1.1: `pd.Series([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]).describe()`
    /// count 8, mean 3.875, std 2.748376, min 1, 25% 1.75, 50% 3.5, 75% 5.25, max 9
    #[test]
    fn describe_matches_pandas() {
        let s = numeric_stats(&[3.0, 1.0, 4.0, f64::NAN, 1.0, 5.0, 9.0, 2.0, 6.0]).unwrap();
        assert_eq!((s.mean, s.min, s.q1, s.median, s.q3, s.max), (3.875, 1.0, 1.75, 3.5, 5.25, 9.0));
        assert!((s.std - 2.748376).abs() < 1e-6, "{}", s.std);
    }

    #[test]
    fn summarises_columns_duplicates_and_associations() {
        let num = |name: &str, v: Vec<f64>| Column {
            name: name.into(),
            kind: FeatureKind::Numeric,
            values: Values::Numbers(v),
        };
        let x = num("x", vec![1.0, 2.0, 3.0, 4.0, 1.0]);
        let noise = num("noise", vec![5.0, 1.0, 4.0, 2.0, 5.0]);
        let cat = Column {
            name: "c".into(),
            kind: FeatureKind::Categorical,
            values: Values::Strings(vec![Some("a".into()), Some("b".into()), None, Some("a".into()), Some("a".into())]),
        };
        let y = Column {
            name: "y".into(),
            kind: FeatureKind::Categorical,
            values: Values::from_strings(["lo", "lo", "hi", "hi", "lo"].iter().map(|s| Some(s.to_string()))),
        };
        let data = RawDataset {
            inputs: RawInputs::Table(Table { columns: vec![x, noise, cat] }),
            target: Some(y),
            parts: None,
        };
        let s = summarize(&data, &TargetSpec::default());
        assert_eq!(s.rows, 5);
        assert_eq!(s.duplicate_rows, 1);
        assert_eq!((s.columns[2].count, s.columns[2].missing, s.columns[2].distinct), (4, 1, 2));
        assert_eq!(s.columns[2].top[0], ("a".to_string(), 3));
        assert_eq!(s.target.as_ref().unwrap().top, vec![("lo".to_string(), 3), ("hi".to_string(), 2)]);
        assert_eq!(s.columns[0].histogram.as_ref().unwrap().counts.iter().sum::<usize>(), 5);
        assert_eq!(s.associations[0].feature, "x");
        // η for x: class means lo 4/3, hi 3.5, overall 2.2; SS_between 5.6333, SS_total 6.8.
        assert!((s.associations[0].value - (5.633333333333334f64 / 6.8).sqrt()).abs() < 1e-12);
    }
}
