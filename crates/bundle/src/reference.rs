//! The training data's reference statistics that a bundle carries (`reference.json`): for each
//! monitored feature, its distribution ([`eval::drift`]) — numeric and boolean columns as they
//! are, categorical columns by category, text columns as words per text and out-of-vocabulary
//! rate, images as mean and standard deviation of intensity, audio clips as duration, loudness
//! and spectral centroid, and the model's own predictions.
//! [`Extractor`] turns records into the same features. Fitted at training time (`dlp run`),
//! compared against live data by `serve::drift`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use eval::drift::{CategoricalReference, NumericReference};
use pipeline_core::raw::{RawInputs, Values};
use pipeline_core::{FeatureKind, Predictions, Task};
use serde::{Deserialize, Serialize};

/// The name of the reference file in a bundle.
pub const REFERENCE_FILE: &str = "reference.json";

/// How the reference is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceOptions {
    /// Equal-frequency bins per numeric feature (PSI).
    pub bins: usize,
    /// Training values kept per numeric feature (KS compares against them).
    pub sample: usize,
    /// Categories kept per categorical feature (the rest are pooled).
    pub max_categories: usize,
    /// Words kept per text column for the out-of-vocabulary rate.
    pub vocabulary: usize,
    /// Seeds the sample of values.
    pub seed: u64,
}

impl Default for ReferenceOptions {
    fn default() -> Self {
        Self { bins: 10, sample: 2000, max_categories: 100, vocabulary: 10_000, seed: 0 }
    }
}

/// What a monitored feature is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Source {
    /// A numeric, boolean or categorical input column, as read.
    Column {
        /// The column.
        column: String,
    },
    /// Words per text of a text column.
    Tokens {
        /// The column.
        column: String,
    },
    /// The share of a text's words outside the training vocabulary.
    OovRate {
        /// The column.
        column: String,
        /// The most frequent training words (lowercase).
        vocabulary: Vec<String>,
    },
    /// Mean pixel value of an image (0–255).
    MeanIntensity,
    /// Standard deviation of an image's pixel values.
    StdIntensity,
    /// A clip's duration as recorded, in seconds.
    Duration,
    /// A clip's loudness: RMS level in dB relative to full scale.
    Loudness,
    /// A clip's mean spectral centroid in Hz.
    SpectralCentroid,
    /// The model's prediction: the class label, or the value.
    Prediction,
}

/// The reference distribution of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stats {
    /// Bins, moments and a sample of values.
    Numeric(NumericReference),
    /// Category counts.
    Categorical(CategoricalReference),
}

/// One monitored feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReference {
    /// Its name in reports and metrics.
    pub name: String,
    /// What it is computed from.
    #[serde(flatten)]
    pub source: Source,
    /// Its training distribution.
    pub stats: Stats,
}

/// `reference.json`: the training data's distribution of every monitored feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// Training records it was fitted on.
    pub rows: u64,
    /// The features.
    pub features: Vec<FeatureReference>,
}

/// The live values of one feature, as a report compares them.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// Numeric values (NaN: missing).
    Numbers(Vec<f64>),
    /// Bucket of each record ([`CategoricalReference::bucket`]).
    Buckets(Vec<u32>),
}

/// Lowercase words of a text, punctuation trimmed.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
}

fn text_column<'a>(inputs: &'a RawInputs, column: &str) -> Option<&'a [Option<pipeline_core::raw::Str>]> {
    match inputs {
        RawInputs::Table(t) => match &t.column(column)?.values {
            Values::Strings(v) => Some(v),
            Values::Numbers(_) => None,
        },
        RawInputs::Images(_) | RawInputs::Audio(_) => None,
    }
}

/// Duration, loudness and spectral centroid of each clip.
fn audio_features(inputs: &RawInputs) -> Vec<[f64; 3]> {
    let RawInputs::Audio(a) = inputs else { return Vec::new() };
    (0..a.rows())
        .map(|i| {
            let clip = a.clip(i);
            // Loudness over the recorded part only: padding is silence the source never had.
            let recorded =
                ((f64::from(a.durations[i]) * f64::from(a.sample_rate)).round() as usize).clamp(1, clip.len());
            [
                f64::from(a.durations[i]),
                data_ingest::summary::rms_dbfs(&clip[..recorded]),
                preprocess::audio::spectral_centroid(clip, a.sample_rate),
            ]
        })
        .collect()
}

/// Mean and standard deviation of each image's pixels.
fn image_moments(inputs: &RawInputs) -> Vec<(f64, f64)> {
    let RawInputs::Images(imgs) = inputs else { return Vec::new() };
    let w = imgs.width_values();
    if w == 0 {
        return Vec::new();
    }
    imgs.pixels
        .chunks_exact(w)
        .map(|px| {
            let mean = px.iter().map(|&p| f64::from(p)).sum::<f64>() / w as f64;
            let var = px.iter().map(|&p| (f64::from(p) - mean).powi(2)).sum::<f64>() / w as f64;
            (mean, var.sqrt())
        })
        .collect()
}

/// The label (or value) of each prediction, as text for categorical use.
fn predicted_labels(predictions: &Predictions, task: &Task) -> Option<Vec<String>> {
    match (predictions, task) {
        (Predictions::Classes { .. }, Task::Classification { labels }) => {
            Some(predictions.argmax()?.iter().map(|&c| labels.get(c as usize).cloned().unwrap_or_default()).collect())
        }
        _ => None,
    }
}

impl Reference {
    /// Fits the reference on training `inputs` and the model's `predictions` for them
    /// (`None`: no prediction feature).
    pub fn fit(
        inputs: &RawInputs,
        predictions: Option<&Predictions>,
        task: &Task,
        options: &ReferenceOptions,
    ) -> eval::Result<Self> {
        let mut r = Self::fit_inputs(inputs, options)?;
        if let Some(p) = predictions {
            r.add_predictions(p, task, options)?;
        }
        Ok(r)
    }

    /// Fits the input features only (the model is not trained yet); see
    /// [`add_predictions`](Self::add_predictions).
    pub fn fit_inputs(inputs: &RawInputs, options: &ReferenceOptions) -> eval::Result<Self> {
        let mut rng = pipeline_core::rng(options.seed, "drift");
        let mut features = Vec::new();
        // A feature without a single value (a column entirely missing) is not monitored.
        let mut numeric = |name: String, source: Source, values: &[f64]| -> Option<FeatureReference> {
            let stats = Stats::Numeric(NumericReference::fit(values, options.bins, options.sample, &mut rng).ok()?);
            Some(FeatureReference { name, source, stats })
        };
        match inputs {
            RawInputs::Table(t) => {
                for c in &t.columns {
                    let column = c.name.clone();
                    match (&c.values, c.kind) {
                        (Values::Numbers(v), _) => {
                            features.extend(numeric(c.name.clone(), Source::Column { column }, v))
                        }
                        (Values::Strings(v), FeatureKind::Text) => {
                            let mut freq: HashMap<String, u64> = HashMap::new();
                            for w in v.iter().flatten().flat_map(|t| words(t)) {
                                *freq.entry(w).or_default() += 1;
                            }
                            let mut ranked: Vec<(&String, &u64)> = freq.iter().collect();
                            ranked.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                            ranked.truncate(options.vocabulary);
                            let vocabulary: Vec<String> = ranked.into_iter().map(|w| w.0.clone()).collect();
                            let set: HashSet<&str> = vocabulary.iter().map(String::as_str).collect();
                            let tokens: Vec<f64> = v.iter().map(|t| token_count(t.as_deref())).collect();
                            // Every training word is in the vocabulary, so each training text's
                            // rate is taken leaving the text out (a word counts as unseen when no
                            // other training text has it): what a new text from the same
                            // distribution would meet, rather than a point mass at 0.
                            let oov: Vec<f64> =
                                v.iter().map(|t| leave_one_out_oov(t.as_deref(), &set, &freq)).collect();
                            features.extend(numeric(
                                format!("{}:tokens", c.name),
                                Source::Tokens { column: column.clone() },
                                &tokens,
                            ));
                            features.extend(numeric(
                                format!("{}:oov_rate", c.name),
                                Source::OovRate { column, vocabulary: vocabulary.clone() },
                                &oov,
                            ));
                        }
                        (Values::Strings(v), _) => features.push(FeatureReference {
                            name: c.name.clone(),
                            source: Source::Column { column },
                            stats: Stats::Categorical(CategoricalReference::fit(
                                v.iter().map(Option::as_deref),
                                options.max_categories,
                            )),
                        }),
                    }
                }
            }
            RawInputs::Images(_) => {
                let moments = image_moments(inputs);
                let means: Vec<f64> = moments.iter().map(|m| m.0).collect();
                let stds: Vec<f64> = moments.iter().map(|m| m.1).collect();
                features.extend(numeric("mean_intensity".into(), Source::MeanIntensity, &means));
                features.extend(numeric("std_intensity".into(), Source::StdIntensity, &stds));
            }
            RawInputs::Audio(_) => {
                let f = audio_features(inputs);
                for (j, (name, source)) in [
                    ("duration_s", Source::Duration),
                    ("loudness_dbfs", Source::Loudness),
                    ("spectral_centroid_hz", Source::SpectralCentroid),
                ]
                .into_iter()
                .enumerate()
                {
                    let v: Vec<f64> = f.iter().map(|x| x[j]).collect();
                    features.extend(numeric(name.into(), source, &v));
                }
            }
        }
        Ok(Self { rows: inputs.rows() as u64, features })
    }

    /// Adds (or replaces) the `prediction` feature: the model's predictions on the training
    /// records.
    pub fn add_predictions(&mut self, p: &Predictions, task: &Task, options: &ReferenceOptions) -> eval::Result<()> {
        let mut rng = pipeline_core::rng(options.seed, "drift-prediction");
        self.features.retain(|f| f.source != Source::Prediction);
        {
            let stats = match (predicted_labels(p, task), p, task) {
                (Some(labels), _, Task::Classification { labels: names }) => {
                    let mut counts = vec![0u64; names.len()];
                    for l in &labels {
                        if let Some(i) = names.iter().position(|n| n == l) {
                            counts[i] += 1;
                        }
                    }
                    Some(Stats::Categorical(CategoricalReference::from_counts(names.clone(), counts)))
                }
                (_, Predictions::Values(v), _) => {
                    let v: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
                    Some(Stats::Numeric(NumericReference::fit(&v, options.bins, options.sample, &mut rng)?))
                }
                _ => None,
            };
            if let Some(stats) = stats {
                self.features.push(FeatureReference { name: "prediction".into(), source: Source::Prediction, stats });
            }
        }
        Ok(())
    }

    /// Reads `reference.json` of the bundle at `dir`; `Ok(None)` when the bundle has none
    /// (bundles written before drift monitoring).
    pub fn read(dir: &std::path::Path) -> pipeline_core::Result<Option<Self>> {
        let path = dir.join(REFERENCE_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        pipeline_core::run::read_json(&path).map(Some)
    }
}

fn token_count(text: Option<&str>) -> f64 {
    text.map_or(f64::NAN, |t| words(t).count() as f64)
}

/// The out-of-vocabulary rate of a training text as if it had not been in the training data:
/// a word is unseen when it is not in the vocabulary or all its occurrences are in this text.
fn leave_one_out_oov(text: Option<&str>, vocabulary: &HashSet<&str>, freq: &HashMap<String, u64>) -> f64 {
    let Some(t) = text else { return f64::NAN };
    let mut own: HashMap<String, u64> = HashMap::new();
    for w in words(t) {
        *own.entry(w).or_default() += 1;
    }
    let n: u64 = own.values().sum();
    if n == 0 {
        return 0.0;
    }
    let out: u64 = own
        .iter()
        .filter(|(w, c)| !vocabulary.contains(w.as_str()) || freq.get(w.as_str()).is_none_or(|f| f <= *c))
        .map(|(_, c)| c)
        .sum();
    out as f64 / n as f64
}

fn oov_rate(text: Option<&str>, known: impl Fn(&str) -> bool) -> f64 {
    let Some(t) = text else { return f64::NAN };
    let (mut n, mut out) = (0usize, 0usize);
    for w in words(t) {
        n += 1;
        out += usize::from(!known(&w));
    }
    if n == 0 { 0.0 } else { out as f64 / n as f64 }
}

/// Turns records into the values of each reference feature (vocabularies indexed once).
pub struct Extractor {
    reference: Arc<Reference>,
    vocabularies: Vec<Option<HashSet<String>>>,
}

impl Extractor {
    /// Indexes `reference`'s vocabularies.
    pub fn new(reference: Arc<Reference>) -> Self {
        let vocabularies = reference
            .features
            .iter()
            .map(|f| match &f.source {
                Source::OovRate { vocabulary, .. } => Some(vocabulary.iter().cloned().collect()),
                _ => None,
            })
            .collect();
        Self { reference, vocabularies }
    }

    /// The reference.
    pub fn reference(&self) -> &Arc<Reference> {
        &self.reference
    }

    /// The values of every feature for `inputs` and their `predictions` (records a feature
    /// cannot read — a missing column, a prediction of the wrong kind — count as missing).
    pub fn extract(&self, inputs: &RawInputs, predictions: &Predictions, task: &Task) -> Vec<Sample> {
        let rows = inputs.rows();
        let labels = predicted_labels(predictions, task);
        let moments = image_moments(inputs);
        let clips = audio_features(inputs);
        let clip = |j: usize| (clips.len() == rows).then(|| clips.iter().map(|x| x[j]).collect());
        self.reference
            .features
            .iter()
            .zip(&self.vocabularies)
            .map(|(f, vocab)| {
                let numbers: Option<Vec<f64>> = match &f.source {
                    Source::Column { column } => match inputs {
                        RawInputs::Table(t) => match t.column(column).map(|c| &c.values) {
                            Some(Values::Numbers(v)) => Some(v.clone()),
                            _ => None,
                        },
                        RawInputs::Images(_) | RawInputs::Audio(_) => None,
                    },
                    Source::Duration => clip(0),
                    Source::Loudness => clip(1),
                    Source::SpectralCentroid => clip(2),
                    Source::Tokens { column } => {
                        text_column(inputs, column).map(|v| v.iter().map(|t| token_count(t.as_deref())).collect())
                    }
                    Source::OovRate { column, .. } => text_column(inputs, column).map(|v| {
                        let known = |w: &str| vocab.as_ref().is_some_and(|s| s.contains(w));
                        v.iter().map(|t| oov_rate(t.as_deref(), known)).collect()
                    }),
                    Source::MeanIntensity => (moments.len() == rows).then(|| moments.iter().map(|m| m.0).collect()),
                    Source::StdIntensity => (moments.len() == rows).then(|| moments.iter().map(|m| m.1).collect()),
                    Source::Prediction => match predictions {
                        Predictions::Values(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
                        Predictions::Classes { .. } => None,
                    },
                };
                match &f.stats {
                    Stats::Numeric(_) => Sample::Numbers(numbers.unwrap_or_else(|| vec![f64::NAN; rows])),
                    Stats::Categorical(r) => {
                        let values: Vec<Option<&str>> = match (&f.source, inputs) {
                            (Source::Prediction, _) => match &labels {
                                Some(l) => l.iter().map(|s| Some(s.as_str())).collect(),
                                None => vec![None; rows],
                            },
                            (Source::Column { column }, RawInputs::Table(t)) => {
                                match t.column(column).map(|c| &c.values) {
                                    Some(Values::Strings(v)) => v.iter().map(Option::as_deref).collect(),
                                    _ => vec![None; rows],
                                }
                            }
                            _ => vec![None; rows],
                        };
                        Sample::Buckets(values.into_iter().map(|v| r.bucket(v) as u32).collect())
                    }
                }
            })
            .collect()
    }
}
