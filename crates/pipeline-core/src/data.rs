//! Datasets, examples, batches and the schema that describes them.
//!
//! A [`Dataset`] is dense: one `f32` row per example, in the order the [`InputSchema`] gives,
//! and one target per example; its rows are in memory, or in a row file when they exceed the
//! memory budget. Phases hand datasets to each other; the
//! training loop turns index lists into [`Batch`]es of tensors.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::rows::RowFile;
use crate::{Error, Result};

/// What the model is asked to do with an example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Task {
    /// Assign one of a fixed set of classes; `labels[i]` is the name of class `i`.
    Classification {
        /// Class names, indexed by class id.
        labels: Vec<String>,
    },
    /// Predict one real number.
    Regression,
    /// Forecast the next `horizon` values of a series from a window of its history.
    Forecast {
        /// Steps ahead, one output each.
        horizon: usize,
    },
    /// Produce new examples (generative models); there is no target.
    Generation,
}

impl Task {
    /// The number of model outputs the task needs: one per class, or one value.
    pub fn outputs(&self) -> usize {
        match self {
            Task::Classification { labels } => labels.len(),
            Task::Regression => 1,
            Task::Forecast { horizon } => *horizon,
            Task::Generation => 0,
        }
    }

    /// The class names of a classification task, `None` otherwise.
    pub fn labels(&self) -> Option<&[String]> {
        match self {
            Task::Classification { labels } => Some(labels),
            _ => None,
        }
    }
}

/// The kind of values a tabular column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// Real numbers.
    Numeric,
    /// One of a set of categories.
    Categorical,
    /// Free text.
    Text,
    /// True or false.
    Boolean,
}

/// One named input column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// Column name, as in the source header (or a generated `f<i>` where there is none).
    pub name: String,
    /// What its values are.
    pub kind: FeatureKind,
}

/// The layout of one example's input row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum InputSchema {
    /// Named columns, one value each.
    Tabular {
        /// The columns, in row order.
        features: Vec<Feature>,
    },
    /// A sequence of token ids (as `f32`, exact below 2^24), padded to `length`.
    Sequence {
        /// Tokens per example.
        length: usize,
        /// Size of the vocabulary (ids are below it).
        vocab_size: usize,
    },
    /// A window of a (multivariate) series: `history` steps of `channels` values, step-major
    /// (channel 0 is the forecast series itself), then `horizon` steps of the `future` known
    /// covariates.
    Series {
        /// Past steps per example.
        history: usize,
        /// Values per past step.
        channels: usize,
        /// Steps forecast.
        horizon: usize,
        /// Known-future covariates per forecast step (0: none).
        future: usize,
    },
    /// An image stored channel-first (`channels × height × width`), row-major.
    Image {
        /// Number of channels (1 for grey, 3 for RGB).
        channels: usize,
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
}

impl InputSchema {
    /// The number of `f32` values in one example's row.
    pub fn width(&self) -> usize {
        match self {
            InputSchema::Tabular { features } => features.len(),
            InputSchema::Sequence { length, .. } => *length,
            InputSchema::Series { history, channels, horizon, future } => history * channels + horizon * future,
            InputSchema::Image { channels, height, width } => channels * height * width,
        }
    }

    /// The shape of one example as a tensor: `[width]` for tables and series windows (models
    /// split a window themselves), `[c, h, w]` for images.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            InputSchema::Tabular { features } => vec![features.len()],
            InputSchema::Sequence { length, .. } => vec![*length],
            InputSchema::Series { .. } => vec![self.width()],
            InputSchema::Image { channels, height, width } => vec![*channels, *height, *width],
        }
    }

    /// One name per row value: the column names, `token_<i>` for sequences, `lag<k>_c<j>`
    /// (channel `j`, `k` steps back) and `ahead<k>_f<j>` for series windows, or `pixel_<i>` for
    /// images (the convention of MNIST CSV exports).
    pub fn feature_names(&self) -> Vec<String> {
        match self {
            InputSchema::Tabular { features } => features.iter().map(|f| f.name.clone()).collect(),
            InputSchema::Sequence { .. } => (0..self.width()).map(|i| format!("token_{i}")).collect(),
            InputSchema::Series { history, channels, horizon, future } => {
                let past = (0..*history).flat_map(|s| (0..*channels).map(move |c| format!("lag{}_c{c}", history - s)));
                let ahead = (0..*horizon).flat_map(|s| (0..*future).map(move |c| format!("ahead{}_f{c}", s + 1)));
                past.chain(ahead).collect()
            }
            InputSchema::Image { .. } => (0..self.width()).map(|i| format!("pixel_{i}")).collect(),
        }
    }
}

/// The target column and the task it defines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Column name of the target (`label` for datasets without one).
    pub name: String,
    /// The task.
    pub task: Task,
}

/// Everything needed to interpret a dataset's rows and targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The input row layout.
    pub input: InputSchema,
    /// The target.
    pub target: Target,
}

/// The targets of a dataset, one per example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Targets {
    /// Class ids, each below the number of labels of the task.
    Classes(Vec<u32>),
    /// Real values for regression.
    Values(Vec<f32>),
    /// `horizon` real values per example (forecasts), row-major.
    Steps {
        /// The values, `len() × horizon`.
        values: Vec<f32>,
        /// Values per example.
        horizon: usize,
    },
}

impl Targets {
    /// The number of targets.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(v) => v.len(),
            Targets::Steps { values, horizon } => values.len().checked_div(*horizon).unwrap_or(0),
        }
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The targets at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Targets {
        match self {
            Targets::Classes(c) => Targets::Classes(indices.iter().map(|&i| c[i]).collect()),
            Targets::Values(v) => Targets::Values(indices.iter().map(|&i| v[i]).collect()),
            Targets::Steps { values, horizon } => Targets::Steps {
                values: indices.iter().flat_map(|&i| &values[i * horizon..(i + 1) * horizon]).copied().collect(),
                horizon: *horizon,
            },
        }
    }

    /// All real values, row-major (`Values`, or every step of `Steps`); `None` for classes.
    pub fn values(&self) -> Option<&[f32]> {
        match self {
            Targets::Classes(_) => None,
            Targets::Values(v) | Targets::Steps { values: v, .. } => Some(v),
        }
    }

    /// The class ids, if these are classification targets.
    pub fn classes(&self) -> Option<&[u32]> {
        match self {
            Targets::Classes(c) => Some(c),
            Targets::Values(_) | Targets::Steps { .. } => None,
        }
    }
}

/// One example: a borrowed input row and its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Example<'a> {
    /// The input row, `schema.input.width()` values.
    pub features: &'a [f32],
    /// The target.
    pub target: TargetValue,
}

/// The target of one [`Example`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetValue {
    /// A class id.
    Class(u32),
    /// A real value.
    Value(f32),
    /// The first step of a forecast target (the others are in [`Targets::Steps`]).
    FirstStep(f32),
}

/// A dense dataset: `len()` rows of `schema.input.width()` values, and their targets. The rows
/// are in memory, or in a [`RowFile`] when they exceed the memory budget ([`Dataset::on_disk`]);
/// the targets are always in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    schema: Schema,
    storage: Storage,
    targets: Targets,
}

/// Where a dataset's rows are.
#[derive(Debug, Clone, PartialEq)]
enum Storage {
    Memory(Vec<f32>),
    File(RowFile),
}

impl Dataset {
    /// Builds a dataset, checking that `features` holds exactly one row per target and that
    /// class ids are within the task's labels.
    pub fn new(schema: Schema, features: Vec<f32>, targets: Targets) -> Result<Self> {
        let width = schema.input.width();
        let rows = targets.len();
        if features.len() != rows * width {
            return Err(Error::SizeMismatch {
                what: "feature values (rows x width)",
                expected: rows * width,
                found: features.len(),
            });
        }
        check_classes(&schema, &targets)?;
        Ok(Self { schema, storage: Storage::Memory(features), targets })
    }

    /// A dataset whose rows are in `rows` (one per target, of the schema's width).
    pub fn on_disk(schema: Schema, rows: RowFile, targets: Targets) -> Result<Self> {
        if rows.width() != schema.input.width() || rows.rows() != targets.len() {
            return Err(Error::SizeMismatch {
                what: "rows in the row file (one per target, of the schema's width)",
                expected: targets.len() * schema.input.width(),
                found: rows.rows() * rows.width(),
            });
        }
        check_classes(&schema, &targets)?;
        Ok(Self { schema, storage: Storage::File(rows), targets })
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the dataset has no examples.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.schema.input.width()
    }

    /// Whether the rows are in memory (not in a row file).
    pub fn in_memory(&self) -> bool {
        matches!(self.storage, Storage::Memory(_))
    }

    /// All feature values, row-major, of a dataset in memory; a dataset on disk has none here
    /// (an empty slice): read it with [`Dataset::read_range`] or [`Dataset::rows_into`].
    pub fn features(&self) -> &[f32] {
        match &self.storage {
            Storage::Memory(f) => f,
            Storage::File(_) => &[],
        }
    }

    /// All feature values, mutable, for in-place transforms that keep the width (a dataset on
    /// disk has none here).
    pub fn features_mut(&mut self) -> &mut [f32] {
        match &mut self.storage {
            Storage::Memory(f) => f,
            Storage::File(_) => &mut [],
        }
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Row `i` of a dataset in memory (empty for a dataset on disk).
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.width();
        match &self.storage {
            Storage::Memory(f) => &f[i * w..(i + 1) * w],
            Storage::File(_) => &[],
        }
    }

    /// Appends the rows at `indices`, in that order, to `out`, wherever they are stored.
    ///
    /// # Panics
    /// If an index of an in-memory dataset is out of range.
    pub fn rows_into(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        match &self.storage {
            Storage::Memory(_) => {
                for &i in indices {
                    out.extend_from_slice(self.row(i));
                }
                Ok(())
            }
            Storage::File(f) => f.read_rows(indices, out),
        }
    }

    /// Rows `start..start + count` (borrowed from memory, or read from the row file).
    ///
    /// # Panics
    /// If the range of an in-memory dataset is out of bounds.
    pub fn read_range(&self, start: usize, count: usize) -> Result<std::borrow::Cow<'_, [f32]>> {
        let w = self.width();
        match &self.storage {
            Storage::Memory(f) => Ok(std::borrow::Cow::Borrowed(&f[start * w..(start + count) * w])),
            Storage::File(file) => {
                let mut out = Vec::with_capacity(count * w);
                file.read_range(start, count, &mut out)?;
                Ok(std::borrow::Cow::Owned(out))
            }
        }
    }

    /// Example `i` of a dataset in memory.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn example(&self, i: usize) -> Example<'_> {
        let target = match &self.targets {
            Targets::Classes(c) => TargetValue::Class(c[i]),
            Targets::Values(v) => TargetValue::Value(v[i]),
            Targets::Steps { values, horizon } => TargetValue::FirstStep(values[i * horizon]),
        };
        Example { features: self.row(i), target }
    }

    /// A new in-memory dataset with the examples at `indices` of a dataset in memory, in that
    /// order (see [`Dataset::take`] for one on disk).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let w = self.width();
        let mut features = Vec::with_capacity(indices.len() * w);
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        Dataset {
            schema: self.schema.clone(),
            storage: Storage::Memory(features),
            targets: self.targets.select(indices),
        }
    }

    /// A new in-memory dataset with the examples at `indices`, in that order, wherever the rows
    /// are stored.
    ///
    /// # Panics
    /// If an index of an in-memory dataset is out of range.
    pub fn take(&self, indices: &[usize]) -> Result<Dataset> {
        let mut features = Vec::with_capacity(indices.len() * self.width());
        self.rows_into(indices, &mut features)?;
        Ok(Dataset {
            schema: self.schema.clone(),
            storage: Storage::Memory(features),
            targets: self.targets.select(indices),
        })
    }

    /// Stacks the examples at `indices` into a [`Batch`] on `device`.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        let w = self.width();
        let mut xs = Vec::with_capacity(indices.len() * w);
        self.rows_into(indices, &mut xs)?;
        let mut shape = vec![indices.len()];
        shape.extend(self.schema.input.shape());
        let inputs = Tensor::from_vec(xs, shape, device)?;
        let targets = match &self.targets {
            Targets::Classes(c) => {
                Tensor::from_vec(indices.iter().map(|&i| c[i]).collect::<Vec<u32>>(), indices.len(), device)?
            }
            Targets::Values(v) => {
                Tensor::from_vec(indices.iter().map(|&i| v[i]).collect::<Vec<f32>>(), indices.len(), device)?
            }
            Targets::Steps { values, horizon } => {
                let v: Vec<f32> =
                    indices.iter().flat_map(|&i| &values[i * horizon..(i + 1) * horizon]).copied().collect();
                let n = v.len();
                Tensor::from_vec(v, n, device)?
            }
        };
        Ok(Batch { inputs, targets })
    }
}

/// Class ids must be below the number of labels.
fn check_classes(schema: &Schema, targets: &Targets) -> Result<()> {
    if let (Targets::Classes(ids), Task::Classification { labels }) = (targets, &schema.target.task)
        && let Some(&bad) = ids.iter().find(|&&id| id as usize >= labels.len())
    {
        return Err(Error::SizeMismatch {
            what: "class id below the number of labels",
            expected: labels.len(),
            found: bad as usize,
        });
    }
    Ok(())
}

/// A mini-batch on a device: inputs `[batch, ..example shape]` and targets `[batch]`
/// (`u32` class ids or `f32` values; forecasts: `[batch × horizon]`, flat, row-major — what a
/// model's `[batch, horizon]` outputs flatten to).
#[derive(Debug, Clone)]
pub struct Batch {
    /// The stacked input rows.
    pub inputs: Tensor,
    /// The stacked targets.
    pub targets: Tensor,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let schema = Schema {
            input: InputSchema::Tabular {
                features: vec![
                    Feature { name: "a".into(), kind: FeatureKind::Numeric },
                    Feature { name: "b".into(), kind: FeatureKind::Numeric },
                ],
            },
            target: Target { name: "y".into(), task: Task::Classification { labels: vec!["n".into(), "p".into()] } },
        };
        Dataset::new(schema, vec![1., 2., 3., 4., 5., 6.], Targets::Classes(vec![0, 1, 1])).unwrap()
    }

    #[test]
    fn new_rejects_wrong_sizes_and_bad_class_ids() {
        let ds = tiny();
        let err = Dataset::new(ds.schema().clone(), vec![1.0; 5], Targets::Classes(vec![0, 1, 1])).unwrap_err();
        assert_eq!(err.to_string(), "feature values (rows x width): expected 6, found 5");
        let err = Dataset::new(ds.schema().clone(), vec![1.0; 6], Targets::Classes(vec![0, 2, 1])).unwrap_err();
        assert_eq!(err.to_string(), "class id below the number of labels: expected 2, found 2");
    }

    #[test]
    fn select_and_batch_keep_rows_with_their_targets() {
        let ds = tiny();
        let sub = ds.select(&[2, 0]);
        assert_eq!(sub.features(), &[5., 6., 1., 2.]);
        assert_eq!(sub.targets(), &Targets::Classes(vec![1, 0]));
        assert_eq!(ds.example(1).target, TargetValue::Class(1));
        let b = ds.batch(&[1, 2], &Device::Cpu).unwrap();
        assert_eq!(b.inputs.dims(), &[2, 2]);
        assert_eq!(b.inputs.to_vec2::<f32>().unwrap(), vec![vec![3., 4.], vec![5., 6.]]);
        assert_eq!(b.targets.to_vec1::<u32>().unwrap(), vec![1, 1]);
    }

    #[test]
    fn image_schema_shape_and_names() {
        let s = InputSchema::Image { channels: 1, height: 2, width: 3 };
        assert_eq!(s.width(), 6);
        assert_eq!(s.shape(), vec![1, 2, 3]);
        assert_eq!(s.feature_names()[5], "pixel_5");
    }
}
