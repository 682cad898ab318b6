//! Serving a trained model: loading a bundle and predicting with it.
//!
//! [`Bundle::load`] reads a model bundle directory (see [`pipeline_core::run`]) — the index, the
//! model config, the weights and the fitted preprocessing state — and refuses one whose parts
//! disagree. [`Bundle::predict`] applies the saved preprocessing to raw rows and runs the model;
//! [`predict_file`] does that for a whole IDX or CSV file and writes the predictions as CSV
//! (`dlp predict`).
//!
//! Planned here: the HTTP inference server (Open Inference Protocol), dynamic batching, model
//! repositories with hot swap, and drift monitoring.
//!
//! What it must not do: re-implement or re-fit preprocessing — it calls `preprocess` with the
//! saved state.

use std::path::{Path, PathBuf};

use candle_core::Device;
use models::ModelConfig;
use pipeline_core::run::{BUNDLE_FORMAT_VERSION, read_json, write_json};
use pipeline_core::{BundleDir, BundleIndex, InputSchema, Model, Predictions, Task};
use preprocess::Preprocessor;

/// What can go wrong loading a bundle or predicting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bundle file is missing or unreadable.
    #[error("bundle {}: {cause}", dir.display())]
    Bundle {
        /// The bundle directory.
        dir: PathBuf,
        /// The underlying error.
        cause: pipeline_core::Error,
    },
    /// The bundle's parts do not agree, or its format is not this version's.
    #[error("bundle {}: {message}", dir.display())]
    Inconsistent {
        /// The bundle directory.
        dir: PathBuf,
        /// What disagrees.
        message: String,
    },
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] models::Error),
    /// Preprocessing the input failed.
    #[error(transparent)]
    Preprocess(#[from] preprocess::Error),
    /// Reading the input file failed.
    #[error(transparent)]
    Input(#[from] data_ingest::Error),
    /// The input does not fit the model.
    #[error("{}: {message}", path.display())]
    InputShape {
        /// The input file.
        path: PathBuf,
        /// What was expected.
        message: String,
    },
    /// Writing the output failed.
    #[error("{}: {message}", path.display())]
    Output {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A loaded model bundle, ready to predict.
pub struct Bundle {
    /// The index: name, schema, provenance.
    pub index: BundleIndex,
    /// The model config.
    pub model_config: ModelConfig,
    /// The fitted preprocessing.
    pub preprocess: Preprocessor,
    model: Box<dyn Model>,
    device: Device,
}

impl Bundle {
    /// Loads the bundle at `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let b = BundleDir::new(dir);
        let read_err = |cause| Error::Bundle { dir: dir.into(), cause };
        let index: BundleIndex = read_json(&b.index()).map_err(read_err)?;
        if index.format_version != BUNDLE_FORMAT_VERSION {
            return Err(Error::Inconsistent {
                dir: dir.into(),
                message: format!(
                    "bundle format version {}, this dlp reads version {BUNDLE_FORMAT_VERSION}",
                    index.format_version
                ),
            });
        }
        let model_config: ModelConfig = read_json(&b.model_config()).map_err(read_err)?;
        let preprocess: Preprocessor = read_json(&b.preprocess()).map_err(read_err)?;
        if preprocess.width != index.schema.input.width() {
            return Err(Error::Inconsistent {
                dir: dir.into(),
                message: format!(
                    "preprocess.json is fitted on rows of {} values, the schema has {}",
                    preprocess.width,
                    index.schema.input.width()
                ),
            });
        }
        let spec = models::ModelSpec {
            input_shape: index.schema.input.shape(),
            outputs: index.head.outputs(&index.schema.target.task),
        };
        let model = models::load_weights(&model_config, &spec, &b.weights(), device)?;
        Ok(Self { index, model_config, preprocess, model, device: device.clone() })
    }

    /// The task (with label names for classification).
    pub fn task(&self) -> &Task {
        &self.index.schema.target.task
    }

    /// Predicts for raw row-major `rows` (as read from the source, before preprocessing).
    pub fn predict(&self, mut rows: Vec<f32>) -> Result<Predictions> {
        self.preprocess.transform_rows(&mut rows)?;
        Ok(models::predict(
            self.model.as_ref(),
            &rows,
            &self.index.schema.input.shape(),
            self.index.head,
            256,
            &self.device,
        )?)
    }
}

/// Writes a complete bundle into `dir` (normally a run's staging directory, published whole by
/// [`RunDir::publish_bundle`](pipeline_core::RunDir::publish_bundle)): the index, the model
/// config, the fitted preprocessing and the weights, each file atomically.
pub fn write_bundle(
    dir: &BundleDir,
    index: &BundleIndex,
    model_config: &ModelConfig,
    preprocess: &Preprocessor,
    params: &models::Params,
) -> Result<()> {
    let err = |cause| Error::Bundle { dir: dir.root().into(), cause };
    write_json(&dir.index(), index).map_err(err)?;
    write_json(&dir.model_config(), model_config).map_err(err)?;
    write_json(&dir.preprocess(), preprocess).map_err(err)?;
    models::save_weights(params, &dir.weights())?;
    Ok(())
}

/// The format of a file to predict on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// IDX (MNIST layout), gzip or plain.
    Idx,
    /// CSV of feature columns, with or without a header.
    Csv,
}

impl InputFormat {
    /// Guesses from the file name: `.csv` / `.csv.gz` is CSV, anything else IDX.
    pub fn from_path(path: &Path) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        if name.ends_with(".csv") || name.ends_with(".csv.gz") { Self::Csv } else { Self::Idx }
    }
}

/// Reads raw rows from `input` in the layout the bundle's schema expects.
pub fn read_rows(bundle: &Bundle, input: &Path, format: InputFormat) -> Result<Vec<f32>> {
    let schema = &bundle.index.schema.input;
    match format {
        InputFormat::Csv => {
            let (rows, _) = data_ingest::csv::read_features(input, &schema.feature_names(), "input")?;
            Ok(rows.values)
        }
        InputFormat::Idx => {
            let (arr, _) = data_ingest::idx::read_file(input, "input")?;
            let found = data_ingest::idx::input_schema(&arr)?;
            let fits = match (&found, schema) {
                (
                    InputSchema::Image { height: h1, width: w1, .. },
                    InputSchema::Image { channels: 1, height, width },
                ) => h1 == height && w1 == width,
                (a, b) => a.width() == b.width() && matches!(a, InputSchema::Tabular { .. }),
            };
            if !fits {
                return Err(Error::InputShape {
                    path: input.into(),
                    message: format!("IDX records of shape {:?}, the model takes {:?}", &arr.dims[1..], schema.shape()),
                });
            }
            Ok(arr.values)
        }
    }
}

/// Predicts every row of `input` and writes a CSV to `output` (atomically): `row,label,
/// confidence,p_<class>…` for classification, `row,value` for regression. Returns the number
/// of rows.
pub fn predict_file(bundle: &Bundle, input: &Path, format: InputFormat, output: &Path) -> Result<usize> {
    let rows = read_rows(bundle, input, format)?;
    let preds = bundle.predict(rows)?;
    let out_err = |e: &dyn std::fmt::Display| Error::Output { path: output.into(), message: e.to_string() };
    let mut w = csv::Writer::from_writer(Vec::new());
    match (&preds, bundle.task()) {
        (Predictions::Classes { probs, classes }, Task::Classification { labels }) => {
            let mut header = vec!["row".to_string(), "label".into(), "confidence".into()];
            header.extend(labels.iter().map(|l| format!("p_{l}")));
            w.write_record(&header).map_err(|e| out_err(&e))?;
            let best = preds.argmax().unwrap_or_default();
            for (i, row) in probs.chunks_exact(*classes).enumerate() {
                let c = best[i] as usize;
                let mut rec = vec![i.to_string(), labels[c].clone(), format!("{:.6}", row[c])];
                rec.extend(row.iter().map(|p| format!("{p:.6}")));
                w.write_record(&rec).map_err(|e| out_err(&e))?;
            }
        }
        (Predictions::Values(v), _) => {
            w.write_record(["row", "value"]).map_err(|e| out_err(&e))?;
            for (i, x) in v.iter().enumerate() {
                w.write_record([i.to_string(), x.to_string()]).map_err(|e| out_err(&e))?;
            }
        }
        _ => return Err(out_err(&"predictions do not match the bundle's task")),
    }
    let bytes = w.into_inner().map_err(|e| out_err(&e))?;
    pipeline_core::run::write_atomic(output, &bytes).map_err(|e| out_err(&e))?;
    Ok(preds.len())
}
