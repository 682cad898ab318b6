//! Raw data: records as a source holds them, before any preprocessing.
//!
//! `data-ingest` produces a [`RawDataset`]: the inputs (a [`Table`] of typed columns, an
//! [`ImageSet`] or an [`AudioSet`]), for training data the target column, and where the source
//! says so the part ([`Part`]) each record belongs to. `preprocess` fits its transforms on
//! raw training data and turns raw data into a dense [`Dataset`](crate::Dataset). A model bundle
//! records the [`RawSchema`] it expects, so that serving can read new records the same way.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Feature, FeatureKind};

/// One string value of a categorical or text column: shared, so that a column of a few categories
/// holds one string per category and a 16-byte pointer per value (readers intern repeated values),
/// and a copied column copies pointers, not text.
pub type Str = Arc<str>;

/// The values of one column. Missing numbers are `NaN`; missing strings are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Values {
    /// Numeric and boolean columns (booleans as 0 / 1).
    Numbers(Vec<f64>),
    /// Categorical and text columns.
    Strings(Vec<Option<Str>>),
}

impl Values {
    /// A string column from owned or borrowed strings (`None`: missing).
    pub fn from_strings<S: Into<Str>>(values: impl IntoIterator<Item = Option<S>>) -> Values {
        Values::Strings(values.into_iter().map(|v| v.map(Into::into)).collect())
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::Numbers(v) => v.len(),
            Values::Strings(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether value `i` is missing.
    pub fn is_missing(&self, i: usize) -> bool {
        match self {
            Values::Numbers(v) => v[i].is_nan(),
            Values::Strings(v) => v[i].is_none(),
        }
    }

    /// The values at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Values {
        match self {
            Values::Numbers(v) => Values::Numbers(indices.iter().map(|&i| v[i]).collect()),
            Values::Strings(v) => Values::Strings(indices.iter().map(|&i| v[i].clone()).collect()),
        }
    }

    /// The same kind of values, none of them.
    pub fn empty_like(&self) -> Values {
        match self {
            Values::Numbers(_) => Values::Numbers(Vec::new()),
            Values::Strings(_) => Values::Strings(Vec::new()),
        }
    }

    /// Moves `other`'s values to the end of these; values of another kind are refused.
    pub fn append(&mut self, other: Values) -> crate::Result<()> {
        match (self, other) {
            (Values::Numbers(a), Values::Numbers(b)) => a.extend(b),
            (Values::Strings(a), Values::Strings(b)) => a.extend(b),
            (Values::Numbers(_), _) => return Err(crate::Error::KindMismatch { expected: "numbers" }),
            (Values::Strings(_), _) => return Err(crate::Error::KindMismatch { expected: "strings" }),
        }
        Ok(())
    }

    /// Value `i` as text (numbers formatted), `None` when missing; for hashing and display.
    pub fn text(&self, i: usize) -> Option<String> {
        match self {
            Values::Numbers(v) => (!v[i].is_nan()).then(|| v[i].to_string()),
            Values::Strings(v) => v[i].as_deref().map(str::to_string),
        }
    }
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name (from the header, the config, or `f<i>`).
    pub name: String,
    /// What its values are.
    pub kind: FeatureKind,
    /// The values, one per row.
    pub values: Values,
}

impl Column {
    /// The schema entry of this column.
    pub fn feature(&self) -> Feature {
        Feature { name: self.name.clone(), kind: self.kind }
    }

    /// The same name and kind, no values.
    pub fn empty_like(&self) -> Column {
        Column { name: self.name.clone(), kind: self.kind, values: self.values.empty_like() }
    }
}

/// Input columns of equal length.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The columns, in source order.
    pub columns: Vec<Column>,
}

impl Table {
    /// Rows (the length of the first column; 0 without columns).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Table {
        Table {
            columns: self
                .columns
                .iter()
                .map(|c| Column { name: c.name.clone(), kind: c.kind, values: c.values.select(indices) })
                .collect(),
        }
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Images of one size, channel-first, with 8-bit values as `f32` (0–255).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSet {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// `rows × channels × height × width` values.
    pub pixels: Vec<f32>,
}

impl ImageSet {
    /// Values per image.
    pub fn width_values(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The number of images.
    pub fn rows(&self) -> usize {
        self.pixels.len().checked_div(self.width_values()).unwrap_or(0)
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let w = self.width_values();
        let mut pixels = Vec::with_capacity(indices.len() * w);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * w..(i + 1) * w]);
        }
        ImageSet { channels: self.channels, height: self.height, width: self.width, pixels }
    }
}

/// Where a clip is cut when it is longer than the configured duration, and where the silence
/// goes when it is shorter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    /// Keep the start; pad at the end.
    #[default]
    Start,
    /// Keep the middle; pad both sides equally.
    Center,
}

/// Mono audio clips of one sample rate and length, samples as `f32` in `[-1, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioSet {
    /// Samples per second.
    pub sample_rate: u32,
    /// Samples per clip (every clip padded or cropped to it).
    pub samples: usize,
    /// How the clips were padded or cropped.
    pub align: Align,
    /// `rows × samples` values.
    pub values: Vec<f32>,
    /// Each clip's duration in seconds as recorded, before padding or cropping.
    pub durations: Vec<f32>,
}

impl AudioSet {
    /// The number of clips.
    pub fn rows(&self) -> usize {
        self.durations.len()
    }

    /// Clip `i`'s samples.
    pub fn clip(&self, i: usize) -> &[f32] {
        &self.values[i * self.samples..(i + 1) * self.samples]
    }

    /// A 64-bit FNV-1a hash of clip `i`'s samples (their bits): a key for finding identical
    /// clips without a string per sample.
    pub fn clip_hash(&self, i: usize) -> u64 {
        self.clip(i)
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, x| (h ^ u64::from(x.to_bits())).wrapping_mul(0x0100_0000_01b3))
    }

    /// The clips at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> AudioSet {
        let mut values = Vec::with_capacity(indices.len() * self.samples);
        for &i in indices {
            values.extend_from_slice(self.clip(i));
        }
        AudioSet {
            sample_rate: self.sample_rate,
            samples: self.samples,
            align: self.align,
            values,
            durations: indices.iter().map(|&i| self.durations[i]).collect(),
        }
    }
}

/// The inputs of raw records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawInputs {
    /// Typed columns.
    Table(Table),
    /// Images.
    Images(ImageSet),
    /// Audio clips.
    Audio(AudioSet),
}

impl RawInputs {
    /// The number of records.
    pub fn rows(&self) -> usize {
        match self {
            RawInputs::Table(t) => t.rows(),
            RawInputs::Images(i) => i.rows(),
            RawInputs::Audio(a) => a.rows(),
        }
    }

    /// The records at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> RawInputs {
        match self {
            RawInputs::Table(t) => RawInputs::Table(t.select(indices)),
            RawInputs::Images(i) => RawInputs::Images(i.select(indices)),
            RawInputs::Audio(a) => RawInputs::Audio(a.select(indices)),
        }
    }

    /// The layout of these inputs.
    pub fn schema(&self) -> RawSchema {
        match self {
            RawInputs::Table(t) => RawSchema::Table { columns: t.columns.iter().map(Column::feature).collect() },
            RawInputs::Images(i) => RawSchema::Image { channels: i.channels, height: i.height, width: i.width },
            RawInputs::Audio(a) => RawSchema::Audio { sample_rate: a.sample_rate, samples: a.samples, align: a.align },
        }
    }
}

/// The part of the data a record belongs to, where the source fixes it (an official split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Training.
    Train,
    /// Validation.
    Validation,
    /// The held-out test part.
    Test,
}

impl Part {
    /// Reads `train`, `training`, `validation`, `valid`, `val`, `dev`, `test` (any case).
    pub fn parse(s: &str) -> Option<Part> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" | "training" => Some(Part::Train),
            "validation" | "valid" | "val" | "dev" => Some(Part::Validation),
            "test" => Some(Part::Test),
            _ => None,
        }
    }
}

/// Raw records with their target (absent for data to predict).
#[derive(Debug, Clone, PartialEq)]
pub struct RawDataset {
    /// The inputs.
    pub inputs: RawInputs,
    /// The target column, one value per record.
    pub target: Option<Column>,
    /// Each record's part, where the source fixes the split (`preprocess.split.from_data`).
    pub parts: Option<Vec<Part>>,
}

impl RawDataset {
    /// The number of records.
    pub fn rows(&self) -> usize {
        self.inputs.rows()
    }

    /// The records at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> RawDataset {
        RawDataset {
            inputs: self.inputs.select(indices),
            target: self.target.as_ref().map(|t| Column {
                name: t.name.clone(),
                kind: t.kind,
                values: t.values.select(indices),
            }),
            parts: self.parts.as_ref().map(|p| indices.iter().map(|&i| p[i]).collect()),
        }
    }
}

/// What kind of task the target defines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskHint {
    /// Decide from the target: text, categories and booleans, or numbers that are all integers
    /// with at most 50 distinct values, make classification; other numbers regression.
    #[default]
    Auto,
    /// Classes.
    Classification,
    /// Real values.
    Regression,
}

/// How to read a target column: the task, and class names for numeric class labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    /// The task.
    pub task: TaskHint,
    /// For classification with integer labels `0..n`: the name of each class.
    pub label_names: Option<Vec<String>>,
}

/// The layout of raw inputs a bundle expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RawSchema {
    /// Named, typed columns.
    Table {
        /// The input columns.
        columns: Vec<Feature>,
    },
    /// Images of one size.
    Image {
        /// 1 or 3.
        channels: usize,
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
    /// Mono audio clips: decoded, resampled to `sample_rate`, padded or cropped to `samples`.
    Audio {
        /// Samples per second.
        sample_rate: u32,
        /// Samples per clip.
        samples: usize,
        /// How clips are padded or cropped to `samples`.
        #[serde(default)]
        align: Align,
    },
}

impl RawSchema {
    /// The names of the input columns (empty for images and audio).
    pub fn column_names(&self) -> Vec<String> {
        match self {
            RawSchema::Table { columns } => columns.iter().map(|c| c.name.clone()).collect(),
            RawSchema::Image { .. } | RawSchema::Audio { .. } => Vec::new(),
        }
    }

    /// Whether a column of this kind is read as numbers.
    pub fn numeric(kind: FeatureKind) -> bool {
        matches!(kind, FeatureKind::Numeric | FeatureKind::Boolean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_keeps_rows_aligned() {
        let t = Table {
            columns: vec![
                Column {
                    name: "a".into(),
                    kind: FeatureKind::Numeric,
                    values: Values::Numbers(vec![1.0, f64::NAN, 3.0]),
                },
                Column {
                    name: "b".into(),
                    kind: FeatureKind::Categorical,
                    values: Values::Strings(vec![Some("x".into()), None, Some("z".into())]),
                },
            ],
        };
        let s = t.select(&[2, 1]);
        assert_eq!(s.rows(), 2);
        assert_eq!(s.columns[1].values, Values::Strings(vec![Some("z".into()), None]));
        assert!(s.columns[0].values.is_missing(1));
        assert_eq!(s.columns[0].values.text(0).as_deref(), Some("3"));
        let imgs = ImageSet { channels: 1, height: 1, width: 2, pixels: vec![1., 2., 3., 4.] };
        assert_eq!(imgs.select(&[1]).pixels, vec![3., 4.]);
        assert_eq!(RawInputs::Images(imgs).rows(), 2);
    }
}
