//! Preprocessing: from raw records to the dense tensors a model trains on, with every statistic
//! fitted on the training part only.
//!
//! The `preprocess:` section ([`PreprocessConfig`]) says how. In order:
//!
//! 1. [`clean`]: records without a target are dropped; with `dedup`, exact duplicate records;
//!    with a `drop` missing-value policy, records missing a value (all before the split, since
//!    they are not fitted);
//! 2. [`split`] / [`kfold`]: seeded train / validation / test parts (stratified by class), or
//!    k folds;
//! 3. [`Preprocessor::fit`] on the training part: imputation fills, outlier bounds (z-score or
//!    IQR, clip or drop), scaling (standard, min-max, pixel), category encodings (one-hot or
//!    ordinal, with a policy for unseen categories), tokenizers trained with the `tokenizers`
//!    crate (or loaded) and TF-IDF weights, per-channel image normalisation, audio features
//!    ([`audio`]: log-mel spectrograms and MFCCs as librosa computes them) with per-band
//!    normalisation;
//! 4. [`Preprocessor::transform`] turns any part into a [`Dataset`];
//!    [`Preprocessor::transform_inputs`] turns new records into model inputs at serving time.
//!
//! Data larger than memory is fitted in a stream instead: [`stream::TableFit`] takes the
//! training records chunk by chunk and gives the same preprocessor (exact but for the median).
//!
//! Forecasting (`preprocess.series`) takes another path: [`series::fit`] reads the table as one
//! series in time order, splits it in time and cuts (history, horizon) windows, with per-channel
//! scaling fitted on the training window.
//!
//! The fitted [`Preprocessor`] is serialized into the model bundle (`preprocess.json`), so that
//! serving applies exactly what training did; nothing is re-fitted at serving time.
//!
//! What it must not do: know about models.

pub mod audio;
pub mod config;
pub mod series;
mod split;
pub mod stream;
pub mod tabular;
pub mod target;
pub mod text;

use std::collections::HashSet;

use pipeline_core::raw::{ImageSet, RawDataset, RawInputs, RawSchema, Values};
use pipeline_core::{Dataset, FeatureKind, InputSchema, Schema, Target};
use serde::{Deserialize, Serialize};

pub use config::{PreprocessConfig, Scale};
pub use split::{Split, SplitConfig, kfold, split, split_records};
pub use tabular::ColumnTransform;
pub use target::TargetEncoder;

use crate::config::{CategoricalImpute, NumericImpute, OutlierAction, TextOutput};

/// What can go wrong in preprocessing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Rows whose width is not the fitted one.
    #[error("expected rows of {expected} values (the width the preprocessing was fitted on), found {found} values")]
    Width {
        /// The fitted width.
        expected: usize,
        /// The number of values given (not a multiple of `expected`).
        found: usize,
    },
    /// A split that leaves a part empty.
    #[error("the split leaves the {part} part empty ({examples} examples in all): use a larger fraction or more data")]
    EmptySplit {
        /// `train`, `validation` or `test`.
        part: &'static str,
        /// The dataset size.
        examples: usize,
    },
    /// A problem with one input column.
    #[error("column `{column}`: {message}")]
    Column {
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A problem with the target column.
    #[error("target column `{column}`: {message}")]
    Target {
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// Tokenization failed.
    #[error("text column `{column}`: {message}")]
    Text {
        /// The column.
        column: String,
        /// What the tokenizer said.
        message: String,
    },
    /// Inputs that do not match what the preprocessing was fitted on.
    #[error("{0}")]
    Schema(String),
    /// Assembling the dataset failed.
    #[error(transparent)]
    Data(#[from] pipeline_core::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What [`clean`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanReport {
    /// Records whose target was missing.
    pub missing_target: usize,
    /// Exact duplicates of an earlier record.
    pub duplicates: usize,
    /// Records with a missing input value, under a `drop` policy.
    pub missing_values: usize,
    /// Training records dropped as outliers (filled in by the pipeline after fitting).
    pub outliers: usize,
}

/// Removes the records that must not be used: those without a target, and (as configured)
/// exact duplicates and records with missing values. Returns the kept records, their indices in
/// `data`, and what was removed.
pub fn clean(data: &RawDataset, config: &PreprocessConfig) -> (RawDataset, Vec<usize>, CleanReport) {
    let mut report = CleanReport::default();
    let mut seen = HashSet::new();
    let drop_numeric = config.missing.numeric == NumericImpute::Drop;
    let drop_other = config.missing.categorical == CategoricalImpute::Drop;
    let keep: Vec<usize> = (0..data.rows())
        .filter(|&i| {
            if data.target.as_ref().is_some_and(|t| t.values.is_missing(i)) {
                report.missing_target += 1;
                return false;
            }
            if let RawInputs::Table(t) = &data.inputs {
                let missing = t.columns.iter().any(|c| {
                    c.values.is_missing(i) && if c.kind == FeatureKind::Numeric { drop_numeric } else { drop_other }
                });
                if missing {
                    report.missing_values += 1;
                    return false;
                }
            }
            if config.dedup {
                let key: Vec<Option<String>> = match &data.inputs {
                    RawInputs::Table(t) => t.columns.iter().map(|c| c.values.text(i)).collect(),
                    RawInputs::Images(im) => {
                        let w = im.width_values();
                        vec![Some(im.pixels[i * w..(i + 1) * w].iter().map(|p| char::from(*p as u8)).collect())]
                    }
                    RawInputs::Audio(a) => vec![Some(a.clip_hash(i).to_string())],
                }
                .into_iter()
                .chain(std::iter::once(data.target.as_ref().and_then(|t| t.values.text(i))))
                .collect();
                if !seen.insert(key) {
                    report.duplicates += 1;
                    return false;
                }
            }
            true
        })
        .collect();
    (data.select(&keep), keep, report)
}

/// The fitted transform of image inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ImageTransform {
    /// Pixels as they are (0–255).
    None,
    /// `x / 255`.
    Pixel,
    /// `(x - mean[c]) / std[c]` with per-channel training statistics of the 0–255 values.
    Standard {
        /// Mean per channel.
        mean: Vec<f32>,
        /// Standard deviation per channel (1 where it is 0).
        std: Vec<f32>,
    },
}

/// How inputs are transformed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum InputTransform {
    /// One transform per input column, in raw column order.
    Table {
        /// The columns.
        columns: Vec<ColumnTransform>,
    },
    /// Images.
    Images {
        /// The pixel transform.
        transform: ImageTransform,
    },
    /// Audio clips to features.
    Audio {
        /// The features (as configured, with defaults filled).
        features: audio::AudioConfig,
        /// The clips' sample rate.
        sample_rate: u32,
        /// Per-band training mean of the features (empty: not normalised).
        mean: Vec<f32>,
        /// Per-band training standard deviation (1 where it is 0).
        std: Vec<f32>,
    },
    /// Windows of a series (forecasting).
    Series(series::SeriesTransform),
}

/// Everything fitted: serialized into the bundle as `preprocess.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessor {
    /// The raw inputs it reads (what serving must be given).
    pub raw: RawSchema,
    /// The input transforms.
    pub inputs: InputTransform,
    /// What the model sees.
    pub output: InputSchema,
    /// How targets are encoded, and so the task.
    pub target: TargetEncoder,
    /// The name of the target column.
    pub target_name: String,
}

impl Preprocessor {
    /// Fits on the training part `train` (whose target is encoded by `target`). Returns the
    /// preprocessor and the indices of the training records to train on (all of them, unless
    /// outliers are dropped).
    pub fn fit(config: &PreprocessConfig, train: &RawDataset, target: TargetEncoder) -> Result<(Self, Vec<usize>)> {
        let target_name = train.target.as_ref().map_or_else(|| "label".to_string(), |t| t.name.clone());
        let target = match &train.target {
            Some(t) if config.scale_target => target.fit_scale(t),
            _ => target,
        };
        let all: Vec<usize> = (0..train.rows()).collect();
        match &train.inputs {
            RawInputs::Audio(clips) => {
                let features = config.audio.clone().unwrap_or_default();
                let extractor =
                    audio::Extractor::new(&features, clips.sample_rate).map_err(|e| Error::Schema(e.to_string()))?;
                let (bands, frames) = (features.bands(), features.frames(clips.samples));
                let (mean, std) = match config.scale {
                    Scale::None => (Vec::new(), Vec::new()),
                    Scale::Standard => {
                        let (mut sum, mut sq) = (vec![0f64; bands], vec![0f64; bands]);
                        for i in 0..clips.rows() {
                            let f = extractor.features(clips.clip(i));
                            for b in 0..bands {
                                for &v in &f[b * frames..(b + 1) * frames] {
                                    sum[b] += v;
                                    sq[b] += v * v;
                                }
                            }
                        }
                        let n = (clips.rows() * frames).max(1) as f64;
                        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
                        let std = sq
                            .iter()
                            .zip(&mean)
                            .map(|(s, m)| {
                                let sd = (s / n - m * m).max(0.0).sqrt();
                                if sd > 1e-12 { sd as f32 } else { 1.0 }
                            })
                            .collect();
                        (mean.into_iter().map(|m| m as f32).collect(), std)
                    }
                    Scale::Pixel | Scale::MinMax => {
                        return Err(Error::Schema(
                            "preprocess.scale: audio features are scaled with standard (per band) or none".into(),
                        ));
                    }
                };
                let output = InputSchema::Image { channels: 1, height: bands, width: frames };
                Ok((
                    Self {
                        raw: train.inputs.schema(),
                        inputs: InputTransform::Audio { features, sample_rate: clips.sample_rate, mean, std },
                        output,
                        target,
                        target_name,
                    },
                    all,
                ))
            }
            RawInputs::Images(imgs) => {
                let transform = match config.scale {
                    Scale::None => ImageTransform::None,
                    Scale::Pixel => ImageTransform::Pixel,
                    Scale::Standard => {
                        let (mean, std) = channel_stats(imgs);
                        ImageTransform::Standard { mean, std }
                    }
                    Scale::MinMax => {
                        return Err(Error::Schema(
                            "preprocess.scale: min_max does not apply to images (use pixel or standard)".into(),
                        ));
                    }
                };
                let output = InputSchema::Image { channels: imgs.channels, height: imgs.height, width: imgs.width };
                Ok((
                    Self {
                        raw: train.inputs.schema(),
                        inputs: InputTransform::Images { transform },
                        output,
                        target,
                        target_name,
                    },
                    all,
                ))
            }
            RawInputs::Table(t) => {
                // Fills and outlier bounds first, so that outlier rows can be dropped before the
                // other statistics are taken.
                let mut fills = Vec::new();
                for c in &t.columns {
                    fills.push(if c.kind == FeatureKind::Numeric {
                        Some(tabular::numeric_fill_and_bounds(c, config)?)
                    } else {
                        None
                    });
                }
                let drop_outliers = config.outliers.as_ref().is_some_and(|o| o.action == OutlierAction::Drop);
                let kept: Vec<usize> = if drop_outliers {
                    all.iter()
                        .copied()
                        .filter(|&i| {
                            t.columns.iter().zip(&fills).all(|(c, fb)| match (&c.values, fb) {
                                (Values::Numbers(v), Some(tabular::NumericFit { fill, bounds: Some((lo, hi)) })) => {
                                    let x = if v[i].is_nan() { fill.unwrap_or(0.0) } else { v[i] };
                                    (*lo..=*hi).contains(&x)
                                }
                                _ => true,
                            })
                        })
                        .collect()
                } else {
                    all
                };
                let fit_on = if kept.len() == t.rows() { t.clone() } else { t.select(&kept) };
                let columns = fit_on
                    .columns
                    .iter()
                    .zip(fills)
                    .map(|(c, fb)| ColumnTransform::fit(c, config, fb))
                    .collect::<Result<Vec<_>>>()?;
                let sequence: Vec<&ColumnTransform> = columns
                    .iter()
                    .filter(|c| matches!(c, ColumnTransform::Text { transform, .. } if transform.output == TextOutput::Sequence))
                    .collect();
                let output = match (sequence.as_slice(), columns.len()) {
                    ([], _) => {
                        let mut features = Vec::new();
                        for c in &columns {
                            features.extend(c.features()?);
                        }
                        InputSchema::Tabular { features }
                    }
                    ([ColumnTransform::Text { transform, .. }], 1) => {
                        InputSchema::Sequence { length: transform.max_length, vocab_size: transform.vocab_size }
                    }
                    _ => {
                        return Err(Error::Schema(
                            "preprocess.text.output: sequence needs the text column to be the only input \
                             (select it with data.columns, or use bag_of_words / tfidf)"
                                .into(),
                        ));
                    }
                };
                let raw = RawSchema::Table { columns: t.columns.iter().map(|c| c.feature()).collect() };
                Ok((Self { raw, inputs: InputTransform::Table { columns }, output, target, target_name }, kept))
            }
        }
    }

    /// The schema of the datasets it produces.
    pub fn schema(&self) -> Schema {
        let task = match &self.inputs {
            InputTransform::Series(s) => pipeline_core::Task::Forecast { horizon: s.config.horizon },
            _ => self.target.task(),
        };
        Schema { input: self.output.clone(), target: Target { name: self.target_name.clone(), task } }
    }

    /// The series transform of a forecasting model.
    pub fn series(&self) -> Option<&series::SeriesTransform> {
        match &self.inputs {
            InputTransform::Series(s) => Some(s),
            _ => None,
        }
    }

    /// Transforms raw inputs into row-major model inputs: one row per record, or, for a
    /// forecasting model, the one window that ends the series the table holds.
    pub fn transform_inputs(&self, inputs: &RawInputs) -> Result<Vec<f32>> {
        let width = self.output.width();
        match (&self.inputs, inputs) {
            (InputTransform::Series(s), RawInputs::Table(t)) => Ok(s.window(t)?.0),
            (InputTransform::Images { transform }, RawInputs::Images(imgs)) => {
                let expected = match &self.raw {
                    RawSchema::Image { channels, height, width } => (*channels, *height, *width),
                    _ => unreachable!("an image transform has an image schema"),
                };
                if (imgs.channels, imgs.height, imgs.width) != expected {
                    return Err(Error::Schema(format!(
                        "images are {}x{}x{} (channels x height x width), the model takes {}x{}x{}",
                        imgs.channels, imgs.height, imgs.width, expected.0, expected.1, expected.2
                    )));
                }
                let mut v = imgs.pixels.clone();
                match transform {
                    ImageTransform::None => {}
                    ImageTransform::Pixel => v.iter_mut().for_each(|x| *x /= 255.0),
                    ImageTransform::Standard { mean, std } => {
                        let plane = imgs.height * imgs.width;
                        for img in v.chunks_exact_mut(width.max(1)) {
                            for (c, ch) in img.chunks_exact_mut(plane.max(1)).enumerate() {
                                ch.iter_mut().for_each(|x| *x = (*x - mean[c]) / std[c]);
                            }
                        }
                    }
                }
                Ok(v)
            }
            (InputTransform::Audio { features, sample_rate, mean, std }, RawInputs::Audio(clips)) => {
                let expected = match &self.raw {
                    RawSchema::Audio { samples, .. } => *samples,
                    _ => unreachable!("an audio transform has an audio schema"),
                };
                if (clips.sample_rate, clips.samples) != (*sample_rate, expected) {
                    return Err(Error::Schema(format!(
                        "clips are {} samples at {} Hz, the model takes {expected} samples at {sample_rate} Hz",
                        clips.samples, clips.sample_rate
                    )));
                }
                let extractor =
                    audio::Extractor::new(features, *sample_rate).map_err(|e| Error::Schema(e.to_string()))?;
                let frames = features.frames(expected);
                let mut out = Vec::with_capacity(clips.rows() * width);
                for i in 0..clips.rows() {
                    let f = extractor.features(clips.clip(i));
                    if mean.is_empty() {
                        out.extend(f.iter().map(|&v| v as f32));
                    } else {
                        out.extend(f.iter().enumerate().map(|(j, &v)| {
                            let b = j / frames;
                            (v as f32 - mean[b]) / std[b]
                        }));
                    }
                }
                Ok(out)
            }
            (InputTransform::Table { columns }, RawInputs::Table(t)) => {
                let rows = t.rows();
                let mut out = vec![0f32; rows * width];
                let mut offset = 0;
                for ct in columns {
                    let col = t.column(ct.name()).ok_or_else(|| {
                        Error::Schema(format!(
                            "no column `{}`: the model reads {}",
                            ct.name(),
                            columns.iter().map(|c| format!("`{}`", c.name())).collect::<Vec<_>>().join(", ")
                        ))
                    })?;
                    let col = if RawSchema::numeric(ct.kind()) == matches!(col.values, Values::Numbers(_)) {
                        col.clone()
                    } else {
                        recast(col, ct.kind())?
                    };
                    ct.apply(&col, &mut out, width, offset)?;
                    offset += ct.width();
                }
                Ok(out)
            }
            _ => Err(Error::Schema("the inputs are not of the kind the preprocessing was fitted on".into())),
        }
    }

    /// Transforms raw records with their targets into a dataset.
    pub fn transform(&self, data: &RawDataset) -> Result<Dataset> {
        if self.series().is_some() {
            return Err(Error::Schema(
                "a forecasting model's examples are windows of one series: cut them with preprocess::series::fit"
                    .into(),
            ));
        }
        let features = self.transform_inputs(&data.inputs)?;
        let target = data
            .target
            .as_ref()
            .ok_or_else(|| Error::Target { column: self.target_name.clone(), message: "no target values".into() })?;
        let targets = self.target.encode(target)?;
        Ok(Dataset::new(self.schema(), features, targets)?)
    }
}

/// Reads a column of strings as numbers (or the reverse) when serving input was typed
/// differently from training (e.g. a CSV column of codes that training read as categories).
fn recast(col: &pipeline_core::raw::Column, kind: FeatureKind) -> Result<pipeline_core::raw::Column> {
    let values = match &col.values {
        Values::Strings(v) => Values::Numbers(
            v.iter()
                .enumerate()
                .map(|(i, s)| match s {
                    None => Ok(f64::NAN),
                    Some(s) => {
                        let parsed = if kind == FeatureKind::Boolean {
                            match s.trim().to_ascii_lowercase().as_str() {
                                "true" | "yes" | "t" | "y" | "1" => Some(1.0),
                                "false" | "no" | "f" | "n" | "0" => Some(0.0),
                                _ => None,
                            }
                        } else {
                            s.trim().parse::<f64>().ok().filter(|x| x.is_finite())
                        };
                        parsed.ok_or_else(|| Error::Column {
                            column: col.name.clone(),
                            message: format!(
                                "row {i}: {s:?} is not a {}",
                                if kind == FeatureKind::Boolean { "boolean" } else { "number" }
                            ),
                        })
                    }
                })
                .collect::<Result<_>>()?,
        ),
        Values::Numbers(v) => Values::from_strings(v.iter().map(|x| (!x.is_nan()).then(|| x.to_string()))),
    };
    Ok(pipeline_core::raw::Column { name: col.name.clone(), kind, values })
}

fn channel_stats(imgs: &ImageSet) -> (Vec<f32>, Vec<f32>) {
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
    let n = (imgs.rows() * plane).max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq.iter().zip(&mean).map(|(s, m)| {
        let v = (s / n - m * m).max(0.0).sqrt();
        if v < 1e-12 { 1.0 } else { v as f32 }
    });
    (mean.iter().map(|&m| m as f32).collect(), std.collect())
}

#[cfg(test)]
mod tests {
    use pipeline_core::raw::{Column, Table, TargetSpec};
    use pipeline_core::{Targets, Task};

    use super::*;
    use crate::config::{MissingConfig, OutlierConfig, OutlierMethod};

    fn table_data() -> RawDataset {
        let num = |name: &str, v: Vec<f64>| Column {
            name: name.into(),
            kind: FeatureKind::Numeric,
            values: Values::Numbers(v),
        };
        let strs = |name: &str, kind, v: &[Option<&str>]| Column {
            name: name.into(),
            kind,
            values: Values::from_strings(v.iter().map(|s| s.map(String::from))),
        };
        RawDataset {
            inputs: RawInputs::Table(Table {
                columns: vec![
                    num("age", vec![20.0, f64::NAN, 40.0, 30.0, 20.0, 95.0]),
                    strs(
                        "city",
                        FeatureKind::Categorical,
                        &[Some("a"), Some("b"), None, Some("a"), Some("a"), Some("b")],
                    ),
                ],
            }),
            target: Some(strs(
                "y",
                FeatureKind::Categorical,
                &[Some("no"), Some("yes"), Some("yes"), None, Some("no"), Some("no")],
            )),
            parts: None,
        }
    }

    #[test]
    fn clean_drops_missing_targets_duplicates_and_missing_values() {
        let cfg = PreprocessConfig { dedup: true, ..Default::default() };
        let (c, _, r) = clean(&table_data(), &cfg);
        assert_eq!((c.rows(), r.missing_target, r.duplicates), (4, 1, 1));
        let drop = PreprocessConfig {
            missing: MissingConfig {
                numeric: NumericImpute::Drop,
                categorical: CategoricalImpute::Drop,
                ..Default::default()
            },
            ..Default::default()
        };
        let (c, kept, r) = clean(&table_data(), &drop);
        assert_eq!((c.rows(), r.missing_values), (3, 2));
        assert_eq!(kept, vec![0, 4, 5]);
    }

    #[test]
    fn fitted_state_round_trips_and_reapplies_identically() {
        let data = clean(&table_data(), &PreprocessConfig::default()).0;
        let cfg = PreprocessConfig { scale: Scale::Standard, ..Default::default() };
        let target = TargetEncoder::fit(data.target.as_ref().unwrap(), &TargetSpec::default()).unwrap();
        let (p, kept) = Preprocessor::fit(&cfg, &data, target).unwrap();
        assert_eq!(kept.len(), data.rows());
        let ds = p.transform(&data).unwrap();
        assert_eq!(ds.width(), 3); // age + city=a + city=b
        assert_eq!(ds.schema().target.task, Task::Classification { labels: vec!["no".into(), "yes".into()] });
        assert_eq!(ds.targets(), &Targets::Classes(vec![0, 1, 1, 0, 0]));
        let json = serde_json::to_string(&p).unwrap();
        let back: Preprocessor = serde_json::from_str(&json).unwrap();
        assert_eq!(back.transform_inputs(&data.inputs).unwrap(), ds.features());
        // A new record as serving sees it: a CSV whose numbers arrive as text.
        let new = RawInputs::Table(Table {
            columns: vec![
                Column {
                    name: "city".into(),
                    kind: FeatureKind::Categorical,
                    values: Values::Strings(vec![Some("b".into())]),
                },
                Column {
                    name: "age".into(),
                    kind: FeatureKind::Categorical,
                    values: Values::Strings(vec![Some("40".into())]),
                },
            ],
        });
        // Row 2 of the data is age 40 (city missing, filled with "a"); this one is age 40, city "b".
        assert_eq!(back.transform_inputs(&new).unwrap(), vec![ds.row(2)[0], 0.0, 1.0]);
    }

    #[test]
    fn outlier_rows_are_dropped_from_training_only() {
        let data = clean(&table_data(), &PreprocessConfig::default()).0;
        let cfg = PreprocessConfig {
            outliers: Some(OutlierConfig {
                method: OutlierMethod::Iqr,
                threshold: Some(1.5),
                action: OutlierAction::Drop,
            }),
            ..Default::default()
        };
        let target = TargetEncoder::fit(data.target.as_ref().unwrap(), &TargetSpec::default()).unwrap();
        let (p, kept) = Preprocessor::fit(&cfg, &data, target).unwrap();
        // ages 20, (mean fill), 40, 20, 95: 95 is beyond q3 + 1.5 IQR.
        assert_eq!(kept, vec![0, 1, 2, 3]);
        // The outlier is still transformed (not clipped) when it arrives at serving.
        assert_eq!(p.transform_inputs(&data.inputs).unwrap().len(), 5 * 3);
    }

    #[test]
    fn images_get_per_channel_statistics() {
        let imgs = ImageSet { channels: 2, height: 1, width: 2, pixels: vec![0., 2., 10., 10., 4., 6., 30., 30.] };
        let data = RawDataset {
            inputs: RawInputs::Images(imgs),
            target: Some(Column {
                name: "y".into(),
                kind: FeatureKind::Numeric,
                values: Values::Numbers(vec![0.0, 1.0]),
            }),
            parts: None,
        };
        let target = TargetEncoder::fit(data.target.as_ref().unwrap(), &TargetSpec::default()).unwrap();
        let cfg = PreprocessConfig { scale: Scale::Standard, ..Default::default() };
        let (p, _) = Preprocessor::fit(&cfg, &data, target).unwrap();
        let InputTransform::Images { transform: ImageTransform::Standard { mean, std } } = &p.inputs else { panic!() };
        assert_eq!(mean, &vec![3.0, 20.0]);
        assert_eq!(std, &vec![5f32.sqrt(), 10.0]);
        let out = p.transform_inputs(&data.inputs).unwrap();
        assert!((out[0] + 3.0 / 5f32.sqrt()).abs() < 1e-6 && out[2] == -1.0 && out[6] == 1.0);
    }
}
