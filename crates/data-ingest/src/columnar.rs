//! `format: parquet` and `format: arrow` (Arrow IPC files, Feather v2): columnar files read with
//! the `parquet` and `arrow` crates straight into typed columns.
//!
//! Only the columns the config uses are read (a projection: the other columns are never
//! decoded), in record batches (row groups streamed, `batch_size` rows at a time). Integers and
//! floating point numbers are numeric, booleans boolean, strings (plain, large, views,
//! dictionary-encoded) categorical or text as inferred from their values, dates and timestamps
//! their ISO text; nulls are missing. Another type (lists, structs, binary) is an error naming the
//! column and its type. Any path may be `hf://datasets/…` — how most Hugging Face datasets are
//! stored — or a glob pattern of several files, the first file's schema holding for all.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema};
use pipeline_core::FeatureKind;
use pipeline_core::raw::{Column, RawDataset, RawInputs, Table, TaskHint, Values};
use serde::{Deserialize, Serialize};

use crate::table::{ColumnRef, ReadReport, infer_kind};
use crate::{Error, Ingested, Result};

fn batch_rows() -> usize {
    8192
}

/// `format: parquet` and `format: arrow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnarConfig {
    /// The file (or `hf://…`, or a glob pattern of files).
    pub path: PathBuf,
    /// The target column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ColumnRef>,
    /// The feature columns to read; all but the target by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnRef>>,
    /// Column kinds that override the file's types, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, FeatureKind>,
    /// Rows per record batch.
    #[serde(default = "batch_rows")]
    pub batch_size: usize,
    /// The task the target defines.
    #[serde(default)]
    pub task: TaskHint,
    /// Class names for integer class labels `0..n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_names: Option<Vec<String>>,
}

/// Which columnar container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC file format (Feather v2).
    Arrow,
}

/// A column as it is read: numbers, or text (with whether the file typed it as numbers).
enum Building {
    Numbers(Vec<f64>, FeatureKind),
    Strings(Vec<Option<String>>),
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::format(path, message)
}

/// The column's values appended to `into`, after checking its type.
fn append(path: &Path, name: &str, array: &ArrayRef, into: &mut Building) -> Result<()> {
    let err = |e: arrow_schema::ArrowError| bad(path, format!("column `{name}`: {e}"));
    match into {
        Building::Numbers(v, _) => {
            let f = arrow_cast::cast(array, &DataType::Float64).map_err(err)?;
            let f = f.as_any().downcast_ref::<arrow_array::Float64Array>().ok_or_else(|| bad(path, "cast to f64"))?;
            v.extend((0..f.len()).map(|i| if f.is_null(i) { f64::NAN } else { f.value(i) }));
        }
        Building::Strings(v) => {
            let s = arrow_cast::cast(array, &DataType::Utf8).map_err(err)?;
            let s = s.as_any().downcast_ref::<arrow_array::StringArray>().ok_or_else(|| bad(path, "cast to text"))?;
            v.extend((0..s.len()).map(|i| (!s.is_null(i)).then(|| s.value(i).to_string())));
        }
    }
    Ok(())
}

/// How a column of `t` is read, or why it cannot be.
fn plan(path: &Path, name: &str, t: &DataType) -> Result<Building> {
    use DataType as D;
    Ok(match t {
        D::Boolean => Building::Numbers(Vec::new(), FeatureKind::Boolean),
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => {
            Building::Numbers(Vec::new(), FeatureKind::Numeric)
        }
        D::Float16 | D::Float32 | D::Float64 | D::Decimal128(..) | D::Decimal256(..) => {
            Building::Numbers(Vec::new(), FeatureKind::Numeric)
        }
        D::Utf8 | D::LargeUtf8 | D::Utf8View | D::Date32 | D::Date64 | D::Timestamp(..) => {
            Building::Strings(Vec::new())
        }
        D::Dictionary(_, v) if matches!(**v, D::Utf8 | D::LargeUtf8 | D::Utf8View) => Building::Strings(Vec::new()),
        D::Dictionary(_, v) if v.is_numeric() => Building::Numbers(Vec::new(), FeatureKind::Numeric),
        other => {
            return Err(bad(
                path,
                format!("column `{name}` has type {other}, which the pipeline does not read as one value per row"),
            ));
        }
    })
}

/// The file's record batches, over the columns `indices` of its schema.
fn batches(path: &Path, container: Container, indices: &[usize], batch: usize) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let err = |m: String| bad(path, m);
    match container {
        Container::Parquet => {
            use parquet::arrow::ProjectionMask;
            use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
            let b = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| err(format!("not a readable Parquet file: {e}")))?;
            let mask = ProjectionMask::roots(b.parquet_schema(), indices.iter().copied());
            let reader =
                b.with_projection(mask).with_batch_size(batch.max(1)).build().map_err(|e| err(e.to_string()))?;
            reader.map(|r| r.map_err(|e| err(format!("reading a row group: {e}")))).collect()
        }
        Container::Arrow => {
            let reader = arrow_ipc::reader::FileReader::try_new(file, Some(indices.to_vec()))
                .map_err(|e| err(format!("not a readable Arrow IPC (Feather v2) file: {e}")))?;
            reader.map(|r| r.map_err(|e| err(format!("reading a record batch: {e}")))).collect()
        }
    }
}

/// The schema of a columnar file.
fn schema(path: &Path, container: Container) -> Result<Arc<Schema>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    match container {
        Container::Parquet => parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map(|b| b.schema().clone())
            .map_err(|e| bad(path, format!("not a readable Parquet file: {e}"))),
        Container::Arrow => arrow_ipc::reader::FileReader::try_new(file, None)
            .map(|r| r.schema())
            .map_err(|e| bad(path, format!("not a readable Arrow IPC (Feather v2) file: {e}"))),
    }
}

/// Reads the file(s) of `config`.
pub fn load(config: &ColumnarConfig, container: Container) -> Result<Ingested> {
    let files = crate::table::expand(&config.path)?;
    let files: Vec<PathBuf> = files.iter().map(|f| crate::hub::resolve(f)).collect::<Result<_>>()?;
    let Some(first) = files.first() else { return Err(bad(&config.path, "no file matches the pattern")) };
    let schema = schema(first, container)?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let index = |r: &ColumnRef, key: &str| -> Result<usize> {
        match r {
            ColumnRef::Name(n) => names.iter().position(|x| x == n),
            ColumnRef::Index(i) => (*i < names.len()).then_some(*i),
        }
        .ok_or_else(|| {
            let shown: Vec<String> = names.iter().take(12).map(|n| format!("`{n}`")).collect();
            bad(
                first,
                format!(
                    "{key}: no column {r:?} (the file has {}{})",
                    shown.join(", "),
                    if names.len() > 12 { ", …" } else { "" }
                ),
            )
        })
    };
    let target = config.target.as_ref().map(|t| index(t, "data.target")).transpose()?;
    let features: Vec<usize> = match &config.columns {
        Some(cols) => {
            cols.iter().enumerate().map(|(i, c)| index(c, &format!("data.columns[{i}]"))).collect::<Result<_>>()?
        }
        None => (0..names.len()).filter(|&j| Some(j) != target).collect(),
    };
    // The projection is in schema order; remember where each wanted column lands.
    let mut wanted: Vec<usize> = features.iter().copied().chain(target).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut builds: Vec<Building> =
        wanted.iter().map(|&j| plan(first, &names[j], schema.field(j).data_type())).collect::<Result<_>>()?;
    let mut inputs = Vec::with_capacity(files.len());
    let mut records = 0;
    for f in &files {
        let this = if f == first { schema.clone() } else { self::schema(f, container)? };
        let same = wanted.iter().all(|&j| {
            this.fields().get(j).is_some_and(|g| g.name() == &names[j] && g.data_type() == schema.field(j).data_type())
        });
        if !same {
            return Err(Error::Invalid {
                path: f.clone(),
                message: format!(
                    "its columns differ from {}'s: the files of one pattern must share a schema",
                    first.display()
                ),
            });
        }
        for b in batches(f, container, &wanted, config.batch_size)? {
            records += b.num_rows();
            for (k, build) in builds.iter_mut().enumerate() {
                append(f, &names[wanted[k]], b.column(k), build)?;
            }
        }
        let source = crate::source::Source::open(f, "data.path")?;
        inputs.push(source.finish()?);
    }
    if records == 0 {
        return Err(bad(first, "no rows"));
    }
    let mut columns: BTreeMap<usize, Column> = BTreeMap::new();
    for (k, build) in builds.into_iter().enumerate() {
        let name = names[wanted[k]].clone();
        let forced = config.kinds.get(&name).copied();
        let (kind, values) = match build {
            Building::Numbers(v, kind) => match forced {
                Some(FeatureKind::Categorical | FeatureKind::Text) => {
                    let text = v.iter().map(|x| (!x.is_nan()).then(|| format_number(*x)));
                    (forced.unwrap_or(kind), Values::from_strings(text))
                }
                _ => (forced.unwrap_or(kind), Values::Numbers(v)),
            },
            Building::Strings(s) => {
                let kind = forced.unwrap_or_else(|| infer_kind(s.iter().take(1000).flatten().map(String::as_str)));
                match kind {
                    FeatureKind::Numeric | FeatureKind::Boolean => {
                        let parse = |t: &str| {
                            if kind == FeatureKind::Boolean {
                                crate::table::parse_bool(t, true)
                            } else {
                                crate::table::parse_number(t)
                            }
                        };
                        (
                            kind,
                            Values::Numbers(
                                s.iter().map(|x| x.as_deref().and_then(parse).unwrap_or(f64::NAN)).collect(),
                            ),
                        )
                    }
                    _ => (kind, Values::from_strings(s)),
                }
            }
        };
        columns.insert(wanted[k], Column { name, kind, values });
    }
    let target = target.and_then(|j| columns.get(&j).cloned());
    let table = Table { columns: features.iter().filter_map(|j| columns.get(j).cloned()).collect() };
    Ok(Ingested {
        data: RawDataset { inputs: RawInputs::Table(table), target, parts: None },
        inputs,
        report: ReadReport { records, ..Default::default() },
    })
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { v.to_string() }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{BooleanArray, Float64Array, Int32Array, StringArray};
    use arrow_schema::Field;

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("n", DataType::Int32, false),
            Field::new("ok", DataType::Boolean, false),
            Field::new("city", DataType::Utf8, true),
            Field::new("y", DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(2.5)])),
                Arc::new(Int32Array::from(vec![3, 4, 5])),
                Arc::new(BooleanArray::from(vec![true, false, true])),
                Arc::new(StringArray::from(vec![Some("Paris"), Some("Lyon"), None])),
                Arc::new(StringArray::from(vec!["yes", "no", "yes"])),
            ],
        )
        .unwrap()
    }

    fn config(path: PathBuf) -> ColumnarConfig {
        ColumnarConfig {
            path,
            target: Some(ColumnRef::Name("y".into())),
            columns: Some(vec![
                ColumnRef::Name("city".into()),
                ColumnRef::Name("x".into()),
                ColumnRef::Name("ok".into()),
            ]),
            kinds: BTreeMap::new(),
            batch_size: 2,
            task: TaskHint::Auto,
            label_names: None,
        }
    }

    fn check(got: &Ingested) {
        let RawInputs::Table(t) = &got.data.inputs else { panic!() };
        let cols: Vec<(&str, FeatureKind)> = t.columns.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        assert_eq!(
            cols,
            [("city", FeatureKind::Categorical), ("x", FeatureKind::Numeric), ("ok", FeatureKind::Boolean)]
        );
        assert!(t.columns[1].values.is_missing(1) && t.columns[0].values.is_missing(2));
        assert!(matches!(&t.columns[2].values, Values::Numbers(v) if v == &[1.0, 0.0, 1.0]));
        // yes / no is read as a boolean, as in a CSV.
        let y = got.data.target.as_ref().unwrap();
        assert_eq!((y.kind, y.values.text(1).as_deref()), (FeatureKind::Boolean, Some("0")));
        assert_eq!(got.report.records, 3);
    }

    #[test]
    fn parquet_and_arrow_files_give_typed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let mut w = parquet::arrow::ArrowWriter::try_new(File::create(&p).unwrap(), batch().schema(), None).unwrap();
        w.write(&batch()).unwrap();
        w.close().unwrap();
        check(&load(&config(p.clone()), Container::Parquet).unwrap());
        let a = dir.path().join("t.arrow");
        let mut w = arrow_ipc::writer::FileWriter::try_new(File::create(&a).unwrap(), &batch().schema()).unwrap();
        w.write(&batch()).unwrap();
        w.finish().unwrap();
        check(&load(&config(a.clone()), Container::Arrow).unwrap());
        // A wrong column, and a file that is not Parquet, are named.
        let mut c = config(p.clone());
        c.target = Some(ColumnRef::Name("label".into()));
        let e = load(&c, Container::Parquet).unwrap_err().to_string();
        assert!(e.contains("data.target: no column Name(\"label\") (the file has `x`, `n`, `ok`, `city`, `y`)"), "{e}");
        let e = load(&config(a), Container::Parquet).unwrap_err().to_string();
        assert!(e.contains("not a readable Parquet file"), "{e}");
    }
}
