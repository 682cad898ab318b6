//! Serving a trained model: loading a bundle, predicting with it, exporting it.
//!
//! [`Bundle::load`] reads a model bundle directory (see [`pipeline_core::run`]) — the index, the
//! model config, the weights and the fitted preprocessing state — and refuses one whose parts
//! disagree. [`Bundle::predict`] applies the saved preprocessing to raw rows and runs the model
//! ([`Bundle::transform`] and [`Bundle::predict_rows`] are its two halves, which the server's
//! batcher runs apart).
//!
//! - [`server`]: the HTTP inference server (`dlp serve`): the Open Inference Protocol (KServe
//!   V2), a raw-record `predict` endpoint, dynamic batching ([`batcher`]), model repositories
//!   with numbered versions and hot swap ([`repository`]), Prometheus metrics ([`metrics`]);
//!   requests are parsed by [`records`]; drift monitoring against the bundle's training
//!   reference ([`drift`]) and prediction logging ([`predlog`]);
//! - [`stream`]: batch prediction over a file or image folder in constant memory
//!   (`dlp predict`); [`predict_file`] is the small in-memory form;
//! - [`export`]: the weights as safetensors with documented names, and ONNX graphs
//!   (`dlp export`), written with the protobuf messages of [`onnx`].
//!
//! What it must not do: re-implement or re-fit preprocessing — it calls `preprocess` with the
//! saved state.

pub mod batcher;
pub mod drift;
pub mod export;
pub mod metrics;
pub mod observe;
pub mod onnx;
pub mod predlog;
pub mod records;
pub mod repository;
pub mod server;
pub mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use models::ModelConfig;
use pipeline_core::raw::{Column, ImageSet, RawInputs, RawSchema, Table, Values};
use pipeline_core::run::{BUNDLE_FORMAT_VERSION, read_json, write_json};
use pipeline_core::{BundleDir, BundleIndex, FeatureKind, Model, Predictions, Task};
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
    pub(crate) fn predict_rows_unchecked(&self, rows: &[f32]) -> Result<Predictions> {
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
        if preds.len() != 2 {
            return Err(fail(format!("the model gave {} predictions for 2 rows", preds.len())));
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

/// The format of a file to predict on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// IDX (MNIST layout), gzip or plain.
    Idx,
    /// CSV (comma, or tab for `.tsv`) with a header naming the columns the model reads; for
    /// image models, pixel columns `pixel_0` … (header optional).
    Csv,
    /// One text per line, for models with a single text input.
    Text,
    /// A folder of PNG / JPEG / BMP images (searched recursively), for image models.
    ImageFolder,
}

impl InputFormat {
    /// Guesses from the path: a directory is an image folder, `.csv` / `.tsv` (gzipped or not)
    /// CSV, `.txt` text, anything else IDX.
    pub fn from_path(path: &Path) -> Self {
        if path.is_dir() {
            return Self::ImageFolder;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".csv") || name.ends_with(".tsv") {
            Self::Csv
        } else if name.ends_with(".txt") {
            Self::Text
        } else {
            Self::Idx
        }
    }
}

/// Reads the records of `input` in the layout the bundle expects.
pub fn read_inputs(bundle: &Bundle, input: &Path, format: InputFormat) -> Result<RawInputs> {
    let raw = &bundle.preprocess.raw;
    let shape_err = |message: String| Error::InputShape { path: input.into(), message };
    match (raw, format) {
        (RawSchema::Image { channels, height, width }, InputFormat::Idx) => {
            let (arr, _) = data_ingest::idx::read_file(input, "input")?;
            match data_ingest::idx::raw_inputs(&arr)? {
                RawInputs::Images(imgs) if (imgs.channels, imgs.height, imgs.width) == (*channels, *height, *width) => {
                    Ok(RawInputs::Images(imgs))
                }
                _ => Err(shape_err(format!(
                    "IDX records of shape {:?}, the model takes {:?}",
                    &arr.dims[1..],
                    [*channels, *height, *width]
                ))),
            }
        }
        (RawSchema::Image { channels, height, width }, InputFormat::Csv) => {
            let names: Vec<String> = (0..channels * height * width).map(|i| format!("pixel_{i}")).collect();
            let (rows, _) = data_ingest::features::read_features(input, &names, "input")?;
            Ok(RawInputs::Images(ImageSet { channels: *channels, height: *height, width: *width, pixels: rows.values }))
        }
        (RawSchema::Table { columns }, InputFormat::Csv) => {
            let tsv = input.to_string_lossy().to_lowercase().trim_end_matches(".gz").ends_with(".tsv");
            let fmt = data_ingest::table::TableFormat {
                delimiter: data_ingest::Delimiter::Byte(if tsv { b'\t' } else { b',' }),
                quote: Some(b'"'),
                header: true,
                skip_rows: 0,
                names: None,
                missing: data_ingest::table::default_missing(),
                on_bad_record: data_ingest::OnBadRecord::Fail,
            };
            let sel = data_ingest::table::Selection {
                target: None,
                features: Some(columns.iter().map(|c| data_ingest::ColumnRef::Name(c.name.clone())).collect()),
                kinds: columns.iter().map(|c| (c.name.clone(), c.kind)).collect(),
                require_kinds: true,
            };
            Ok(RawInputs::Table(data_ingest::table::read(input, "input", &fmt, &sel)?.table))
        }
        (RawSchema::Table { columns }, InputFormat::Text)
            if columns.len() == 1 && columns[0].kind == FeatureKind::Text =>
        {
            let (bytes, _) = data_ingest::source::read_file(input, "input")?;
            let text = String::from_utf8(bytes)
                .map_err(|e| shape_err(format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to())))?;
            let texts = text.lines().filter(|l| !l.trim().is_empty()).map(|l| Some(l.to_string())).collect();
            Ok(RawInputs::Table(Table {
                columns: vec![Column {
                    name: columns[0].name.clone(),
                    kind: FeatureKind::Text,
                    values: Values::Strings(texts),
                }],
            }))
        }
        (RawSchema::Table { columns }, other) => Err(shape_err(format!(
            "{other:?} input does not fit this model, which reads the columns {}: give a CSV with those columns{}",
            columns.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", "),
            if columns.len() == 1 && columns[0].kind == FeatureKind::Text {
                " (or a .txt file, one text per line)"
            } else {
                ""
            }
        ))),
        (RawSchema::Image { .. }, InputFormat::Text) => {
            Err(shape_err("text input does not fit an image model: give an IDX or CSV file of pixels".into()))
        }
        (_, InputFormat::ImageFolder) => {
            Err(shape_err("image folders are read a chunk at a time: use stream::predict_stream".into()))
        }
    }
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

/// Predicts every record of `input` and writes a CSV ([`predictions_csv`]) to `output`,
/// atomically, without a progress bar ([`stream::predict_stream`]). Returns the number of
/// records.
pub fn predict_file(bundle: &Bundle, input: &Path, format: InputFormat, output: &Path) -> Result<usize> {
    stream::predict_stream(
        bundle,
        input,
        format,
        output,
        &stream::StreamOptions { progress: false, ..Default::default() },
    )
}
