//! Serving a trained model: the inference server, batch prediction, export.
//!
//! A model bundle is read by the [`bundle`] crate, whose [`Bundle`], [`Error`] and writers are
//! re-exported here: [`Bundle::load`] refuses a bundle whose parts disagree, [`Bundle::predict`]
//! applies the saved preprocessing and runs the model ([`Bundle::transform`] and
//! [`Bundle::predict_rows`] are its two halves, which the server's batcher runs apart).
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

pub use bundle::{Bundle, Error, PredictionsCsvError, Result, predictions_csv, write_bundle, write_reference};

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

use std::path::Path;

use pipeline_core::FeatureKind;
use pipeline_core::raw::{Column, ImageSet, RawInputs, RawSchema, Table, Values};

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
    /// A folder of PNG / JPEG / BMP images, or of WAV / FLAC / Ogg / MP3 recordings (searched
    /// recursively), for image and audio models.
    ImageFolder,
    /// One recording (WAV / FLAC / Ogg / MP3), for audio models.
    Audio,
    /// JSON Lines (`.jsonl`, `.ndjson`) holding the columns the model reads (nested keys dotted),
    /// for table models.
    Jsonl,
    /// Parquet (`.parquet`), for table models.
    Parquet,
    /// Arrow IPC / Feather v2 (`.arrow`, `.feather`), for table models.
    Arrow,
}

impl InputFormat {
    /// Guesses from the path: a directory is an image folder, `.csv` / `.tsv` (gzipped or not)
    /// CSV, `.jsonl` / `.ndjson` JSON Lines, `.parquet` Parquet, `.arrow` / `.feather` Arrow,
    /// audio extensions a recording, `.txt` text, anything else IDX.
    pub fn from_path(path: &Path) -> Self {
        if path.is_dir() {
            return Self::ImageFolder;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".csv") || name.ends_with(".tsv") {
            Self::Csv
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Self::Jsonl
        } else if name.ends_with(".parquet") {
            Self::Parquet
        } else if name.ends_with(".arrow") || name.ends_with(".feather") {
            Self::Arrow
        } else if data_ingest::audio::EXTENSIONS.iter().any(|e| name.ends_with(&format!(".{e}"))) {
            Self::Audio
        } else if name.ends_with(".txt") {
            Self::Text
        } else {
            Self::Idx
        }
    }
}

/// Reads exactly the bundle's `columns`, typed as it was trained.
fn bundle_columns(columns: &[pipeline_core::Feature]) -> data_ingest::table::Selection {
    data_ingest::table::Selection {
        target: None,
        features: Some(columns.iter().map(|c| data_ingest::ColumnRef::Name(c.name.clone())).collect()),
        kinds: columns.iter().map(|c| (c.name.clone(), c.kind)).collect(),
        require_kinds: true,
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
            Ok(RawInputs::Table(data_ingest::table::read(input, "input", &fmt, &bundle_columns(columns))?.table))
        }
        (RawSchema::Table { columns }, InputFormat::Jsonl) => {
            let fmt = data_ingest::table::TableFormat {
                delimiter: data_ingest::Delimiter::JsonLines,
                quote: None,
                header: true,
                skip_rows: 0,
                names: None,
                missing: data_ingest::table::default_missing(),
                on_bad_record: data_ingest::OnBadRecord::Fail,
            };
            Ok(RawInputs::Table(data_ingest::table::read(input, "input", &fmt, &bundle_columns(columns))?.table))
        }
        (RawSchema::Table { columns }, InputFormat::Parquet | InputFormat::Arrow) => {
            let config = data_ingest::columnar::ColumnarConfig {
                path: input.into(),
                target: None,
                columns: Some(columns.iter().map(|c| data_ingest::ColumnRef::Name(c.name.clone())).collect()),
                kinds: columns.iter().map(|c| (c.name.clone(), c.kind)).collect(),
                batch_size: 8192,
                task: Default::default(),
                label_names: None,
            };
            let container = if format == InputFormat::Parquet {
                data_ingest::columnar::Container::Parquet
            } else {
                data_ingest::columnar::Container::Arrow
            };
            Ok(data_ingest::columnar::load(&config, container)?.data.inputs)
        }
        (RawSchema::Table { columns }, InputFormat::Text)
            if columns.len() == 1 && columns[0].kind == FeatureKind::Text =>
        {
            let (bytes, _) = data_ingest::source::read_file(input, "input")?;
            let text = String::from_utf8(bytes)
                .map_err(|e| shape_err(format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to())))?;
            let texts = text.lines().filter(|l| !l.trim().is_empty()).map(|l| Some(l.into())).collect();
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
        (RawSchema::Image { .. }, InputFormat::Jsonl | InputFormat::Parquet | InputFormat::Arrow) => Err(shape_err(
            "JSON Lines, Parquet and Arrow inputs fit table models only: give an IDX or CSV file of pixels".into(),
        )),
        (RawSchema::Audio { .. }, InputFormat::Audio | InputFormat::ImageFolder) => {
            stream::read_recordings(bundle, input, format)
        }
        (RawSchema::Audio { .. }, _) => Err(shape_err(
            "an audio model reads recordings: give a WAV / FLAC / Ogg / MP3 file or a folder of them".into(),
        )),
        (_, InputFormat::Audio) => Err(shape_err("a recording fits audio models only".into())),
        (_, InputFormat::ImageFolder) => {
            Err(shape_err("image folders are read a chunk at a time: use stream::predict_stream".into()))
        }
    }
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
