//! Model bundles: what a training run writes and what serving, export and batch prediction
//! read — the index, the model config, the fitted preprocessing, the weights and the training
//! data's drift [`reference`] (see [`pipeline_core::run`] for the layout).
//!
//! [`Bundle::load`] reads a bundle and refuses one whose parts disagree; [`Bundle::predict`]
//! applies the saved preprocessing to raw rows and runs the model ([`Bundle::transform`] and
//! [`Bundle::predict_rows`] are its two halves, which the server's batcher runs apart), and
//! refuses non-finite outputs. [`write_bundle`] and [`write_reference`] write one;
//! [`predictions_csv`] is the predictions file of a run and of `dlp predict`.
//!
//! It sits under both `dlp` (training writes bundles) and `serve` (which reads them), so that a
//! training run does not pass through the serving crate. [`Error`] is also `serve`'s error.
//!
//! What it must not do: re-implement or re-fit preprocessing — it calls `preprocess` with the
//! saved state.

pub mod reference;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use models::ModelConfig;
use pipeline_core::raw::RawInputs;
use pipeline_core::run::{BUNDLE_FORMAT_VERSION, read_json, write_json};
use pipeline_core::{BundleDir, BundleIndex, Model, Predictions, Task};
use preprocess::Preprocessor;

use crate::reference as drift;

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
    /// The bundle cannot be exported in the asked format.
    #[error("export: {message}")]
    Export {
        /// Why.
        message: String,
    },
    /// The model's output for a record is not finite (NaN or infinite): no answer is given.
    #[error(
        "record {record}: the model's output is not finite; an input value is likely far outside the \
         range the model was trained on, so no prediction is given"
    )]
    NonFinite {
        /// The record: its index in the batch, or its name in the input file.
        record: String,
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
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// The training data's reference statistics (`reference.json`), for drift monitoring;
    /// `None` for bundles written before it existed.
    pub reference: Option<Arc<drift::Reference>>,
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
        if preprocess.output != index.schema.input {
            return Err(Error::Inconsistent {
                dir: dir.into(),
                message: format!(
                    "preprocess.json produces rows of {} values, the model takes {}",
                    preprocess.output.width(),
                    index.schema.input.width()
                ),
            });
        }
        let spec = models::ModelSpec::new(&index.schema.input, index.head.outputs(&index.schema.target.task));
        let model = models::load_weights(&model_config, &spec, &b.weights(), device)?;
        let reference = drift::Reference::read(dir).map_err(read_err)?.map(Arc::new);
        Ok(Self { index, model_config, preprocess, dir: dir.into(), reference, model, device: device.clone() })
    }

    /// The task (with label names for classification).
    pub fn task(&self) -> &Task {
        &self.index.schema.target.task
    }

    /// Predicts for raw records (as read from a source, before preprocessing).
    pub fn predict(&self, inputs: &RawInputs) -> Result<Predictions> {
        self.predict_rows(&self.transform(inputs)?)
    }

    /// The saved preprocessing: raw records to row-major model inputs.
    pub fn transform(&self, inputs: &RawInputs) -> Result<Vec<f32>> {
        Ok(self.preprocess.transform_inputs(inputs)?)
    }

    /// Runs the model over preprocessed `rows` (each [`input_width`](Self::input_width)
    /// values), returning decoded predictions (probabilities, or values in target units).
    /// A non-finite output for any row is [`Error::NonFinite`], never an answer.
    pub fn predict_rows(&self, rows: &[f32]) -> Result<Predictions> {
        let preds = self.predict_rows_unchecked(rows)?;
        match preds.first_non_finite() {
            Some(row) => Err(Error::NonFinite { record: row.to_string() }),
            None => Ok(preds),
        }
    }

    /// [`predict_rows`](Self::predict_rows) without the finiteness check, for callers that
    /// check each part of a batch themselves (the server's batcher).
    pub fn predict_rows_unchecked(&self, rows: &[f32]) -> Result<Predictions> {
        let outputs = models::predict(
            self.model.as_ref(),
            rows,
            &self.index.schema.input.shape(),
            self.index.head,
            256,
            &self.device,
        )?;
        Ok(self.preprocess.target.decode(outputs))
    }

    /// Values per preprocessed row.
    pub fn input_width(&self) -> usize {
        self.index.schema.input.width()
    }

    /// Checks that the model runs: a forward pass over two all-zero rows must give finite
    /// predictions of the expected size. A bundle is served only after this passes.
    pub fn smoke_test(&self) -> Result<()> {
        let fail = |message: String| Error::Inconsistent { dir: self.dir.clone(), message };
        let preds = self.predict_rows_unchecked(&vec![0.0; 2 * self.input_width()])?;
        let values: &[f32] = match &preds {
            Predictions::Classes { probs, .. } => probs,
            Predictions::Values(v) => v,
        };
        let per_row = match self.task() {
            Task::Forecast { horizon } => *horizon,
            _ => 1,
        };
        if preds.len() != 2 * per_row {
            return Err(fail(format!("the model gave {} predictions for 2 rows of {per_row} each", preds.len())));
        }
        if let (Predictions::Classes { classes, .. }, Task::Classification { labels }) = (&preds, self.task())
            && *classes != labels.len()
        {
            return Err(fail(format!("the model gives {classes} class probabilities for {} labels", labels.len())));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(fail("the model gives non-finite outputs for all-zero inputs".into()));
        }
        Ok(())
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

/// Writes the drift reference ([`drift::Reference`]) into the bundle `dir`, atomically.
pub fn write_reference(dir: &BundleDir, reference: &drift::Reference) -> Result<()> {
    write_json(&dir.root().join(drift::REFERENCE_FILE), reference)
        .map_err(|cause| Error::Bundle { dir: dir.root().into(), cause })
}

/// Why [`predictions_csv`] could not write.
#[derive(Debug, thiserror::Error)]
pub enum PredictionsCsvError {
    /// Class probabilities for a regression task, or values for a classification one.
    #[error("predictions do not match the bundle's task")]
    TaskMismatch,
    /// The CSV writer failed.
    #[error("writing the predictions CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Predictions as CSV: `row,[actual,]label,confidence,p_<class>…` for classification,
/// `row,[actual,]value` for regression. `rows` names each record (default 0, 1, …); `actual`
/// adds the true target of each.
pub fn predictions_csv(
    task: &Task,
    preds: &Predictions,
    rows: Option<&[usize]>,
    actual: Option<&[String]>,
) -> std::result::Result<Vec<u8>, PredictionsCsvError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let id = |i: usize| rows.map_or(i, |r| r[i]).to_string();
    let mut head = vec!["row".to_string()];
    if actual.is_some() {
        head.push("actual".into());
    }
    match (preds, task) {
        (Predictions::Classes { probs, classes }, Task::Classification { labels }) => {
            head.extend(["label".to_string(), "confidence".into()]);
            head.extend(labels.iter().map(|l| format!("p_{l}")));
            w.write_record(&head)?;
            let best = preds.argmax().unwrap_or_default();
            for (i, row) in probs.chunks_exact(*classes).enumerate() {
                let c = best[i] as usize;
                let mut rec = vec![id(i)];
                rec.extend(actual.map(|a| a[i].clone()));
                rec.extend([labels[c].clone(), format!("{:.6}", row[c])]);
                rec.extend(row.iter().map(|p| format!("{p:.6}")));
                w.write_record(&rec)?;
            }
        }
        (Predictions::Values(v), _) => {
            head.push("value".into());
            w.write_record(&head)?;
            for (i, x) in v.iter().enumerate() {
                let mut rec = vec![id(i)];
                rec.extend(actual.map(|a| a[i].clone()));
                rec.push(x.to_string());
                w.write_record(&rec)?;
            }
        }
        _ => return Err(PredictionsCsvError::TaskMismatch),
    }
    w.into_inner().map_err(|e| PredictionsCsvError::Csv(e.into_error().into()))
}
