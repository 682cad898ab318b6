//! Delimited text tables (CSV, TSV, whitespace-separated), streamed record by record.
//!
//! The first 1,000 records are buffered to infer each column's kind (numeric, boolean,
//! categorical or text; overridable in the config); the rest stream straight into typed columns,
//! so raw text is never held twice. Values equal to a missing token (`""`, `NA`, `?`, …) are
//! missing; a value that does not parse in a numeric or boolean column is counted and treated as
//! missing. A record with the wrong number of fields or bytes that are not UTF-8 is a bad record:
//! an error naming the file and line, or — with `on_bad_record: skip` — dropped, counted and
//! reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pipeline_core::FeatureKind;
use pipeline_core::raw::{Column, Table, Values};
use pipeline_core::run::InputFile;
use serde::{Deserialize, Serialize};

use crate::delimited::{self, Builder, Event, Missing, Next, Parsed, Slot, text};
use crate::source::Source;
use crate::{Error, Result};

/// How records are split into fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delimiter {
    /// One byte, e.g. `,` or `\t`.
    Byte(u8),
    /// Runs of spaces and tabs (no quoting).
    Whitespace,
    /// JSON Lines, one object per line (`format: jsonl`; not a `delimiter:` value): nested keys
    /// are flattened to dotted paths, and the first record is the header — the keys of the first
    /// 1,000 objects, in order of appearance (each object's keys in name order).
    JsonLines,
}

impl Serialize for Delimiter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Delimiter::Byte(b) => s.serialize_str(&(*b as char).to_string()),
            Delimiter::Whitespace => s.serialize_str("whitespace"),
            Delimiter::JsonLines => s.serialize_str("jsonl"),
        }
    }
}

impl<'de> Deserialize<'de> for Delimiter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "whitespace" => Ok(Delimiter::Whitespace),
            _ if s.len() == 1 && s.is_ascii() => Ok(Delimiter::Byte(s.as_bytes()[0])),
            _ => Err(serde::de::Error::custom(format!(
                "expected one ASCII character (e.g. \",\" or \"\\t\") or \"whitespace\", got {s:?}"
            ))),
        }
    }
}

/// What to do with a malformed record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadRecord {
    /// Stop with an error naming the file and line.
    #[default]
    Fail,
    /// Drop it; the count and the first few are reported in the run manifest.
    Skip,
}

/// A column named by header name or by 0-based position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    /// By position, 0-based.
    Index(usize),
    /// By name.
    Name(String),
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnRef::Index(i) => write!(f, "{i}"),
            ColumnRef::Name(n) => write!(f, "{n}"),
        }
    }
}

/// A record that was dropped (or that stopped the read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRecord {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// What was wrong.
    pub reason: String,
}

/// What reading found besides the data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReport {
    /// Records kept.
    pub records: usize,
    /// Records dropped with `on_bad_record: skip`.
    pub skipped: usize,
    /// The first few dropped records.
    pub bad_records: Vec<BadRecord>,
    /// Per column, values that did not parse as the column's kind (read as missing).
    pub unparsable: BTreeMap<String, usize>,
}

/// How many dropped records are kept as examples.
pub const BAD_EXAMPLES: usize = 5;

impl ReadReport {
    pub(crate) fn bad(&mut self, record: BadRecord) {
        self.skipped += 1;
        if self.bad_records.len() < BAD_EXAMPLES {
            self.bad_records.push(record);
        }
    }

    /// Adds another read's findings.
    pub fn merge(&mut self, other: ReadReport) {
        self.records += other.records;
        self.skipped += other.skipped;
        for b in other.bad_records {
            if self.bad_records.len() < BAD_EXAMPLES {
                self.bad_records.push(b);
            }
        }
        for (k, v) in other.unparsable {
            *self.unparsable.entry(k).or_default() += v;
        }
    }
}

/// The default missing-value tokens.
pub fn default_missing() -> Vec<String> {
    DEFAULT_MISSING.iter().map(|s| s.to_string()).collect()
}

/// The default missing-value markers ([`default_missing`]); the server reads a string field
/// equal to one of them (after trimming) as missing too, so a record means the same in a CSV
/// and in a request.
pub const DEFAULT_MISSING: &[&str] = &["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"];

/// How to read one table file.
#[derive(Debug, Clone, PartialEq)]
pub struct TableFormat {
    /// Field separator.
    pub delimiter: Delimiter,
    /// Quote character, `None` for none.
    pub quote: Option<u8>,
    /// Whether the first (non-skipped) line names the columns.
    pub header: bool,
    /// Lines to skip before the header or first record.
    pub skip_rows: usize,
    /// Column names, overriding the header (or naming header-less columns).
    pub names: Option<Vec<String>>,
    /// Tokens that mean "missing".
    pub missing: Vec<String>,
    /// What to do with a malformed record.
    pub on_bad_record: OnBadRecord,
}

/// A record, or why it is bad.
type RecordResult<'a> = std::result::Result<&'a ::csv::ByteRecord, String>;

/// Splits the stream of `source` (JSON Lines when `json`, else whitespace-separated) into
/// records, calling `f(line, record or a reason)`. Records are checked to be UTF-8 as a whole.
fn for_each_record(
    source: &mut Source,
    skip_rows: usize,
    json: bool,
    f: &mut dyn FnMut(u64, RecordResult<'_>) -> Result<()>,
) -> Result<()> {
    let path: PathBuf = source.path().into();
    let reader = source.reader();
    for _ in 0..skip_rows {
        let mut sink = Vec::new();
        reader.read_until(b'\n', &mut sink).map_err(|e| Error::io(&path, e))?;
    }
    let offset = skip_rows as u64;
    let checked = |rec: &::csv::ByteRecord| delimited::utf8_error(rec).map_or(Ok(()), Err);
    let mut rec = ::csv::ByteRecord::new();
    match json {
        true => json_records(reader, &path, offset, f)?,
        false => {
            let mut line_no = offset;
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).map_err(|e| Error::io(&path, e))?;
                if n == 0 {
                    break;
                }
                line_no += 1;
                rec.clear();
                for field in buf.split(|b| b.is_ascii_whitespace()).filter(|s| !s.is_empty()) {
                    rec.push_field(field);
                }
                if rec.is_empty() {
                    continue;
                }
                match checked(&rec) {
                    Ok(()) => f(line_no, Ok(&rec))?,
                    Err(reason) => f(line_no, Err(reason))?,
                }
            }
        }
    }
    Ok(())
}

/// One JSON object's fields: dotted key paths and their values as text (`None`: null).
type JsonFields = Vec<(String, Option<String>)>;

fn flatten_json(prefix: &str, v: &serde_json::Value, out: &mut JsonFields) {
    use serde_json::Value;
    let key = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match v {
        Value::Object(m) => m.iter().for_each(|(k, x)| flatten_json(&key(k), x, out)),
        Value::Null => out.push((prefix.into(), None)),
        Value::Bool(b) => out.push((prefix.into(), Some(b.to_string()))),
        Value::Number(n) => out.push((prefix.into(), Some(n.to_string()))),
        Value::String(s) => out.push((prefix.into(), Some(s.clone()))),
        Value::Array(_) => out.push((prefix.into(), Some(v.to_string()))),
    }
}

/// The JSON Lines of `reader` as records for [`for_each_record`]: first a header (the keys of the
/// first [`SAMPLE`] objects), then one record per object with a field per header key — empty
/// where the object lacks the key or has `null`. A line that is not a JSON object, or an object
/// after the sample with a key the header lacks, is a bad record; blank lines are skipped.
fn json_records(
    reader: &mut dyn std::io::BufRead,
    path: &Path,
    offset: u64,
    f: &mut dyn FnMut(u64, RecordResult<'_>) -> Result<()>,
) -> Result<()> {
    let mut header: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut pending: Vec<(u64, std::result::Result<JsonFields, String>)> = Vec::new();
    let mut fixed = false;
    let mut rec = ::csv::ByteRecord::new();
    let mut emit = |line: u64,
                    fields: std::result::Result<JsonFields, String>,
                    header: &[String],
                    index: &std::collections::HashMap<String, usize>,
                    f: &mut dyn FnMut(u64, RecordResult<'_>) -> Result<()>|
     -> Result<()> {
        let fields = match fields {
            Ok(v) => v,
            Err(reason) => return f(line, Err(reason)),
        };
        let mut values: Vec<Option<String>> = vec![None; header.len()];
        for (k, v) in fields {
            match index.get(&k) {
                Some(&j) => values[j] = v,
                None => {
                    return f(
                        line,
                        Err(format!(
                            "key `{k}` is not among the keys of the first {SAMPLE} records, which make the columns"
                        )),
                    );
                }
            }
        }
        rec.clear();
        values.iter().for_each(|v| rec.push_field(v.as_deref().unwrap_or("").as_bytes()));
        f(line, Ok(&rec))
    };
    let fix = |header: &[String], f: &mut dyn FnMut(u64, RecordResult<'_>) -> Result<()>| -> Result<()> {
        let mut h = ::csv::ByteRecord::new();
        header.iter().for_each(|k| h.push_field(k.as_bytes()));
        f(offset, Ok(&h))
    };
    let mut line = offset;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(e) => {
                let reason = format!("not valid UTF-8 (byte {})", e.valid_up_to());
                if fixed {
                    f(line, Err(reason))?
                } else {
                    pending.push((line, Err(reason)))
                }
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let fields = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v @ serde_json::Value::Object(_)) => {
                let mut out = Vec::new();
                flatten_json("", &v, &mut out);
                Ok(out)
            }
            Ok(other) => Err(format!(
                "expected a JSON object, found {}",
                match other {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            )),
            Err(e) => {
                let full = e.to_string();
                let at = format!(" at line {} column {}", e.line(), e.column());
                Err(format!("not valid JSON (column {}): {}", e.column(), full.strip_suffix(&at).unwrap_or(&full)))
            }
        };
        if fixed {
            emit(line, fields, &header, &index, f)?;
            continue;
        }
        if let Ok(fs) = &fields {
            for (k, _) in fs {
                if !index.contains_key(k) {
                    index.insert(k.clone(), header.len());
                    header.push(k.clone());
                }
            }
        }
        pending.push((line, fields));
        if pending.len() == SAMPLE {
            fix(&header, f)?;
            fixed = true;
            for (l, fs) in pending.drain(..) {
                emit(l, fs, &header, &index, f)?;
            }
        }
    }
    if !fixed && !pending.is_empty() {
        fix(&header, f)?;
        for (l, fs) in pending.drain(..) {
            emit(l, fs, &header, &index, f)?;
        }
    }
    Ok(())
}

pub use crate::delimited::{parse_bool, parse_number_bytes};

/// Column kinds decided by looking at values.
pub fn infer_kind<'a>(values: impl Iterator<Item = &'a str>) -> FeatureKind {
    let values: Vec<&str> = values.collect();
    if values.is_empty() {
        return FeatureKind::Numeric;
    }
    let numeric = values.iter().filter(|v| parse_number(v).is_some()).count();
    if numeric as f64 >= 0.95 * values.len() as f64 {
        return FeatureKind::Numeric;
    }
    if values.iter().all(|v| parse_bool(v, false).is_some()) {
        return FeatureKind::Boolean;
    }
    let words: usize = values.iter().map(|v| v.split_whitespace().count()).sum();
    if words as f64 / values.len() as f64 >= 3.0 { FeatureKind::Text } else { FeatureKind::Categorical }
}

/// A finite number, or `None`.
pub fn parse_number(s: &str) -> Option<f64> {
    parse_number_bytes(s.as_bytes())
}

/// The columns to read and how to type them.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// The target column, if it is in this file.
    pub target: Option<ColumnRef>,
    /// The feature columns; `None`: every column but the target.
    pub features: Option<Vec<ColumnRef>>,
    /// Kinds fixed by the config (or by a bundle's schema), by column name.
    pub kinds: BTreeMap<String, FeatureKind>,
    /// Every feature column must have its kind in `kinds` (reading for a bundle).
    pub require_kinds: bool,
}

/// A table read from a file.
#[derive(Debug, Clone)]
pub struct TableRead {
    /// The feature columns.
    pub table: Table,
    /// The target column, if one was selected.
    pub target: Option<Column>,
    /// The file's identity.
    pub input: InputFile,
    /// Bad records and unparsable values.
    pub report: ReadReport,
}

const SAMPLE: usize = 1000;

/// Whether `path` is a glob pattern (`*`, `?` or `[…]` in it).
pub fn is_pattern(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

/// The files a pattern matches, in name order (a plain path: itself). A pattern of hub files
/// (`hf://datasets/<owner>/<name>/data/train-*.parquet`) is matched in the local hub cache's
/// snapshot of the repository, as the Python library downloaded it.
pub fn expand(path: &Path) -> Result<Vec<PathBuf>> {
    expand_with(path, &crate::hub::cache_dir())
}

fn expand_with(path: &Path, hub_cache: &Path) -> Result<Vec<PathBuf>> {
    if !is_pattern(path) {
        return Ok(vec![path.to_path_buf()]);
    }
    let local;
    let path = match crate::hub::parse(path) {
        None => path,
        Some(Err(bad)) => return Err(Error::format(path, bad.to_string())),
        Some(Ok(hub)) => {
            let dir = crate::hub::snapshot_dir(&hub, hub_cache).ok_or_else(|| {
                Error::format(
                    path,
                    format!(
                        "a pattern of hub files is matched in the local hub cache ({}), which does not hold {} at \
                         {}: download the files first (huggingface_hub's snapshot_download)",
                        hub_cache.display(),
                        hub.repo,
                        hub.revision
                    ),
                )
            })?;
            local = dir.join(&hub.file);
            local.as_path()
        }
    };
    let text = path.to_string_lossy();
    let paths = glob::glob(&text).map_err(|e| Error::format(path, format!("not a valid pattern: {e}")))?;
    let mut files = Vec::new();
    for p in paths {
        let p = p.map_err(|e| Error::io(e.path().to_path_buf(), std::io::Error::other(e.to_string())))?;
        if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Tables read from one or several files.
#[derive(Debug, Clone)]
pub struct TablesRead {
    /// The feature columns, the files' rows one after the other.
    pub table: Table,
    /// The target column, if one was selected.
    pub target: Option<Column>,
    /// Each file's identity, in reading order.
    pub inputs: Vec<InputFile>,
    /// Bad records and unparsable values, over all files.
    pub report: ReadReport,
}

/// Reads every file `path` names ([`expand`]) as [`read`] does, one after the other: the
/// first file's columns and kinds (inferred, or as `sel` fixes them) hold for all, and a file
/// with other columns is an error naming it.
pub fn read_all(path: &Path, role: &str, fmt: &TableFormat, sel: &Selection) -> Result<TablesRead> {
    read_all_with(path, role, fmt, sel, None)
}

/// Streams every file `path` names, one after the other, as [`stream`] does: the returned
/// table has the columns' names and kinds but no values.
pub fn stream_all(
    path: &Path,
    role: &str,
    fmt: &TableFormat,
    sel: &Selection,
    sink: &mut Sink<'_>,
) -> Result<TablesRead> {
    read_all_with(path, role, fmt, sel, Some(sink))
}

fn read_all_with(
    path: &Path,
    role: &str,
    fmt: &TableFormat,
    sel: &Selection,
    mut sink: Option<&mut Sink<'_>>,
) -> Result<TablesRead> {
    let files = expand(path)?;
    let Some((first, rest)) = files.split_first() else {
        return Err(Error::format(path, "no file matches the pattern"));
    };
    let head = read_with(first, role, fmt, sel, sink.as_deref_mut())?;
    let names = |t: &Table, y: &Option<Column>| -> Vec<String> {
        t.columns.iter().chain(y.iter()).map(|c| c.name.clone()).collect()
    };
    let expected = names(&head.table, &head.target);
    let mut kinds = sel.kinds.clone();
    for c in head.table.columns.iter().chain(head.target.iter()) {
        kinds.insert(c.name.clone(), c.kind);
    }
    let fixed = Selection { kinds, ..sel.clone() };
    let mut out = TablesRead { table: head.table, target: head.target, inputs: vec![head.input], report: head.report };
    let streaming = sink.is_some();
    for p in rest {
        // The columns are checked before any of this file's records reach the sink.
        let mut check = |t: Table, y: Option<Column>| -> Result<()> {
            same_columns(p, &names(&t, &y), first, &expected)?;
            match sink.as_deref_mut() {
                Some(sink) => sink(t, y),
                None => Ok(()),
            }
        };
        let r = match streaming {
            true => read_with(p, role, fmt, &fixed, Some(&mut check))?,
            false => read_with(p, role, fmt, &fixed, None)?,
        };
        same_columns(p, &names(&r.table, &r.target), first, &expected)?;
        for (a, b) in
            out.table.columns.iter_mut().chain(out.target.iter_mut()).zip(r.table.columns.into_iter().chain(r.target))
        {
            match (&mut a.values, b.values) {
                (Values::Numbers(x), Values::Numbers(y)) => x.extend(y),
                (Values::Strings(x), Values::Strings(y)) => x.extend(y),
                _ => {
                    return Err(Error::Invalid {
                        path: p.clone(),
                        message: format!("column `{}` changes kind", a.name),
                    });
                }
            }
        }
        out.inputs.push(r.input);
        out.report.merge(r.report);
    }
    Ok(out)
}

/// A file of a pattern must have the first file's columns.
fn same_columns(path: &Path, found: &[String], first: &Path, expected: &[String]) -> Result<()> {
    if found == expected {
        return Ok(());
    }
    Err(Error::Invalid {
        path: path.to_path_buf(),
        message: format!(
            "has the columns {} where {} has {}: the files of one pattern must have the same columns",
            found.join(", "),
            first.display(),
            expected.join(", ")
        ),
    })
}

/// Reads the table at `path`.
pub fn read(path: &Path, role: &str, fmt: &TableFormat, sel: &Selection) -> Result<TableRead> {
    read_with(path, role, fmt, sel, None)
}

/// What receives a streamed table's chunks: the feature columns and the target of some
/// consecutive records.
pub type Sink<'s> = dyn FnMut(Table, Option<Column>) -> Result<()> + 's;

/// Reads the delimited table at `path` as [`read`] does, handing its records to `sink` in
/// chunks of a block (a few MiB of the file) at a time, in file order: memory holds one chunk,
/// whatever the file's size. The returned table has the columns' names and kinds but no
/// values. Whitespace-separated and JSON Lines tables are not streamed.
pub fn stream(path: &Path, role: &str, fmt: &TableFormat, sel: &Selection, sink: &mut Sink<'_>) -> Result<TableRead> {
    read_with(path, role, fmt, sel, Some(sink))
}

fn read_with(
    path: &Path,
    role: &str,
    fmt: &TableFormat,
    sel: &Selection,
    mut sink: Option<&mut Sink<'_>>,
) -> Result<TableRead> {
    let mut source = Source::open(path, role)?;
    let path: PathBuf = source.path().into();
    let plain_len = source.plain_len();
    let file = path.display().to_string();
    let mut report = ReadReport::default();
    let missing = Missing::new(&fmt.missing);
    let fail = fmt.on_bad_record == OnBadRecord::Fail;
    let mut header: Option<Vec<String>> = None;
    let mut expect_fields: Option<usize> = None;
    let mut sample: Vec<::csv::ByteRecord> = Vec::new();
    let mut plan: Option<Plan> = None;
    // The header and the inference sample, record by record; then the typed bulk parse.
    let streaming = sink.is_some();
    let mut streamed_unparsable: BTreeMap<String, usize> = BTreeMap::new();
    let mut stage = |event: Event<'_>| -> Result<Next> {
        let (line, rec) = match event {
            Event::Chunk(builders) => {
                if let (Some(sink), Some(plan)) = (sink.as_mut(), plan.as_ref()) {
                    let taken = builders.iter().map(Builder::empty_like).collect();
                    let (table, target, unparsable) = plan.finish(std::mem::replace(builders, taken));
                    for (name, n) in unparsable {
                        *streamed_unparsable.entry(name).or_default() += n;
                    }
                    sink(table, target)?;
                }
                return Ok(Next::More);
            }
            Event::Record(line, rec) => (line, rec),
            Event::Bad(line, reason) => {
                bad(&mut report, fmt, &file, &path, line, reason)?;
                return Ok(Next::More);
            }
        };
        if fmt.header && header.is_none() {
            header = Some(rec.iter().map(|s| text(s).trim().to_string()).collect());
            expect_fields = Some(rec.len());
            return Ok(Next::More);
        }
        let n = *expect_fields.get_or_insert(rec.len());
        if rec.len() != n {
            bad(&mut report, fmt, &file, &path, line, format!("expected {n} fields, found {}", rec.len()))?;
            return Ok(Next::More);
        }
        sample.push(rec.clone());
        if sample.len() < SAMPLE {
            return Ok(Next::More);
        }
        let (p, builders) = Plan::new(&path, fmt, sel, header.as_deref(), n, &sample, &missing)?;
        let slots = p.slots(n);
        let mut builders = builders;
        if let Some(len) = plain_len.filter(|_| !streaming) {
            // Room for the whole file's records, estimated from the sample's, so the columns
            // are not reallocated and copied as they grow.
            let sample_bytes: usize = sample.iter().map(|r| r.as_slice().len() + r.len()).sum();
            let estimate = (len as f64 / (sample_bytes as f64 / sample.len() as f64) * 1.02) as usize;
            builders.iter_mut().for_each(|b| b.reserve(estimate.min(1 << 28)));
        }
        for r in sample.drain(..) {
            delimited::push_record(&r, &slots, &mut builders, &missing);
        }
        plan = Some(p);
        Ok(Next::Bulk { slots, builders, fields: n })
    };
    let parsed = match fmt.delimiter {
        Delimiter::Byte(d) => {
            let dialect = delimited::Dialect { delimiter: d, quote: fmt.quote };
            delimited::read(&mut source, dialect, fmt.skip_rows, &missing, fail, streaming, &mut stage)?
        }
        Delimiter::Whitespace | Delimiter::JsonLines if streaming => {
            return Err(Error::format(
                &path,
                "only delimited files are read in chunks (larger than data.memory_limit); whitespace-separated \
                 and JSON Lines tables are read into memory",
            ));
        }
        Delimiter::Whitespace | Delimiter::JsonLines => {
            let mut bulk: Option<(Vec<Slot>, usize, Parsed)> = None;
            let json = fmt.delimiter == Delimiter::JsonLines;
            for_each_record(&mut source, fmt.skip_rows, json, &mut |line, rec| {
                let Some((slots, n, parsed)) = bulk.as_mut() else {
                    let event = match rec {
                        Ok(r) => Event::Record(line, r),
                        Err(reason) => Event::Bad(line, reason),
                    };
                    if let Next::Bulk { slots, builders, fields } = stage(event)? {
                        bulk = Some((slots, fields, Parsed { builders, records: 0, bad: Vec::new() }));
                    }
                    return Ok(());
                };
                let reason = match rec {
                    Err(reason) => reason,
                    Ok(r) if r.len() != *n => format!("expected {n} fields, found {}", r.len()),
                    Ok(r) => {
                        delimited::push_record(r, slots, &mut parsed.builders, &missing);
                        parsed.records += 1;
                        return Ok(());
                    }
                };
                match fail {
                    true => Err(Error::Record { path: path.clone(), line, message: reason }),
                    false => {
                        parsed.bad.push((line, reason));
                        Ok(())
                    }
                }
            })?;
            bulk.map(|(_, _, p)| p)
        }
    };
    let (plan, builders, records) = match (plan, parsed) {
        (Some(plan), Some(parsed)) => {
            for (line, reason) in parsed.bad {
                bad(&mut report, fmt, &file, &path, line, reason)?;
            }
            (plan, parsed.builders, SAMPLE + parsed.records)
        }
        _ => {
            let Some(n) = expect_fields else {
                return Err(Error::format(&path, "empty file: no header and no records"));
            };
            if sample.is_empty() {
                return Err(Error::format(&path, "no records after the header"));
            }
            let (p, mut builders) = Plan::new(&path, fmt, sel, header.as_deref(), n, &sample, &missing)?;
            let slots = p.slots(n);
            for r in &sample {
                delimited::push_record(r, &slots, &mut builders, &missing);
            }
            (p, builders, sample.len())
        }
    };
    let input = source.finish()?;
    let (table, target, mut unparsable) = plan.finish(builders);
    let (table, target) = match sink {
        // A small file's records were all in the sample: one chunk.
        Some(sink) if table.rows() > 0 => {
            let empty = |t: &Table| Table { columns: t.columns.iter().map(Column::empty_like).collect() };
            let (schema, target_schema) = (empty(&table), target.as_ref().map(Column::empty_like));
            sink(table, target)?;
            (schema, target_schema)
        }
        _ => (table, target),
    };
    for (name, n) in streamed_unparsable {
        *unparsable.entry(name).or_default() += n;
    }
    report.records = records;
    report.unparsable = unparsable;
    Ok(TableRead { table, target, input, report })
}

fn bad(report: &mut ReadReport, fmt: &TableFormat, file: &str, path: &Path, line: u64, reason: String) -> Result<()> {
    match fmt.on_bad_record {
        OnBadRecord::Fail => Err(Error::Record { path: path.into(), line, message: reason }),
        OnBadRecord::Skip => {
            report.bad(BadRecord { file: file.into(), line, reason });
            Ok(())
        }
    }
}

/// Which fields go where, decided from the header and the sample.
struct Plan {
    /// For each builder (the features, then the target): its field index and column name.
    columns: Vec<(usize, String)>,
    /// Whether the last builder is the target's.
    target: bool,
}

impl Plan {
    /// The plan and its empty builders, one per column in the plan's order.
    fn new(
        path: &Path,
        fmt: &TableFormat,
        sel: &Selection,
        header: Option<&[String]>,
        n: usize,
        sample: &[::csv::ByteRecord],
        missing: &Missing,
    ) -> Result<(Self, Vec<Builder>)> {
        let names: Vec<String> = match (&fmt.names, header) {
            (Some(names), _) => {
                if names.len() != n {
                    return Err(Error::format(
                        path,
                        format!("`names` lists {} columns, the file has {n}", names.len()),
                    ));
                }
                names.clone()
            }
            (None, Some(h)) => h.to_vec(),
            (None, None) => (0..n).map(|i| format!("f{i}")).collect(),
        };
        let find = |r: &ColumnRef| -> Result<usize> {
            match r {
                ColumnRef::Index(i) if *i < n => Ok(*i),
                ColumnRef::Index(i) => {
                    Err(Error::format(path, format!("column {i} does not exist: the file has {n} columns")))
                }
                ColumnRef::Name(name) => names.iter().position(|c| c == name).ok_or_else(|| {
                    Error::format(path, format!("no column `{name}`; the columns are: {}", names.join(", ")))
                }),
            }
        };
        let target = sel.target.as_ref().map(&find).transpose()?;
        let mut fields: Vec<usize> = match &sel.features {
            Some(refs) => refs.iter().map(&find).collect::<Result<_>>()?,
            None => (0..n).filter(|&i| Some(i) != target).collect(),
        };
        fields.extend(target);
        let kind_of = |i: usize| -> Result<FeatureKind> {
            if let Some(k) = sel.kinds.get(&names[i]) {
                return Ok(*k);
            }
            if sel.require_kinds && Some(i) != target {
                return Err(Error::format(path, format!("unexpected column `{}`", names[i])));
            }
            Ok(infer_kind(sample.iter().map(|r| &r[i]).filter(|v| !missing.is(v)).map(text)))
        };
        let builders = fields.iter().map(|&i| Ok(Builder::new(kind_of(i)?))).collect::<Result<Vec<_>>>()?;
        let columns = fields.into_iter().map(|i| (i, names[i].clone())).collect();
        Ok((Self { columns, target: target.is_some() }, builders))
    }

    /// Where each of the `n` fields goes.
    fn slots(&self, n: usize) -> Vec<Slot> {
        let mut slots = vec![Slot::Skip; n];
        for (b, (i, _)) in self.columns.iter().enumerate() {
            slots[*i] = match std::mem::replace(&mut slots[*i], Slot::Skip) {
                Slot::Skip => Slot::One(b),
                Slot::One(a) => Slot::Many(vec![a, b]),
                Slot::Many(mut v) => {
                    v.push(b);
                    Slot::Many(v)
                }
            };
        }
        slots
    }

    fn finish(&self, builders: Vec<Builder>) -> (Table, Option<Column>, BTreeMap<String, usize>) {
        let mut unparsable = BTreeMap::new();
        let mut columns = Vec::new();
        for ((_, name), b) in self.columns.iter().zip(builders) {
            let name = name.clone();
            if b.unparsable > 0 {
                unparsable.insert(name.clone(), b.unparsable);
            }
            let values = match b.kind {
                FeatureKind::Numeric | FeatureKind::Boolean => Values::Numbers(b.numbers),
                _ => Values::Strings(b.strings),
            };
            columns.push(Column { name, kind: b.kind, values });
        }
        let target = if self.target { columns.pop() } else { None };
        (Table { columns }, target, unparsable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt() -> TableFormat {
        TableFormat {
            delimiter: Delimiter::Byte(b','),
            quote: Some(b'"'),
            header: true,
            skip_rows: 0,
            names: None,
            missing: default_missing(),
            on_bad_record: OnBadRecord::Fail,
        }
    }

    fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn sel(target: &str) -> Selection {
        Selection { target: Some(ColumnRef::Name(target.into())), ..Default::default() }
    }

    #[test]
    fn infers_kinds_and_reads_missing_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "t.csv",
            b"age,smoker,city,note,y\n31,yes,Paris,\"a long, quoted note here\",1\n,no,Lyon,short one two three,0\n45.5,?,Paris,NA,1\n",
        );
        let r = read(&p, "data", &fmt(), &sel("y")).unwrap();
        let kinds: Vec<FeatureKind> = r.table.columns.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [FeatureKind::Numeric, FeatureKind::Boolean, FeatureKind::Categorical, FeatureKind::Text]);
        assert!(
            matches!(&r.table.columns[0].values, Values::Numbers(v) if v[0] == 31.0 && v[1].is_nan() && v[2] == 45.5)
        );
        assert!(
            matches!(&r.table.columns[1].values, Values::Numbers(v) if v[0] == 1.0 && v[1] == 0.0 && v[2].is_nan())
        );
        assert_eq!(r.table.columns[3].values.text(0).as_deref(), Some("a long, quoted note here"));
        assert!(r.table.columns[3].values.is_missing(2));
        let t = r.target.unwrap();
        assert_eq!((t.name.as_str(), t.kind), ("y", FeatureKind::Numeric));
        assert_eq!(r.report.records, 3);
    }

    #[test]
    fn a_hub_pattern_matches_the_cached_snapshot() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("datasets--acme--flowers");
        let snap = repo.join("snapshots/0123abc/data");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "0123abc\n").unwrap();
        for f in ["train-00001.parquet", "train-00000.parquet", "test-00000.parquet"] {
            std::fs::write(snap.join(f), b"x").unwrap();
        }
        let got = expand_with(Path::new("hf://datasets/acme/flowers/data/train-*.parquet"), cache.path()).unwrap();
        let names: Vec<String> = got.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["train-00000.parquet", "train-00001.parquet"]);
        let e = expand_with(Path::new("hf://datasets/acme/other/*.parquet"), cache.path()).unwrap_err().to_string();
        assert!(e.contains("does not hold acme/other at main"), "{e}");
    }

    #[test]
    fn a_pattern_reads_every_file_in_name_order_with_the_first_files_kinds() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "part-2.csv", b"x,c,y\n3,b,1\n4,a,0\n");
        write(dir.path(), "part-1.csv", b"x,c,y\n1,a,0\n2,b,1\n");
        write(dir.path(), "other.csv", b"z\n1\n");
        let r = read_all(&dir.path().join("part-*.csv"), "data.path", &fmt(), &sel("y")).unwrap();
        assert_eq!(r.inputs.len(), 2);
        assert!(r.inputs[0].path.ends_with("part-1.csv") && r.inputs[1].path.ends_with("part-2.csv"));
        assert!(matches!(&r.table.columns[0].values, Values::Numbers(v) if v == &[1.0, 2.0, 3.0, 4.0]));
        assert_eq!(r.report.records, 4);
        write(dir.path(), "part-3.csv", b"x,d,y\n5,a,1\n");
        let e = read_all(&dir.path().join("part-*.csv"), "data.path", &fmt(), &sel("y")).unwrap_err().to_string();
        assert!(e.contains("part-3.csv: has the columns x, d, y where") && e.contains("has x, c, y"), "{e}");
        assert!(expand(&dir.path().join("none-*.csv")).unwrap().is_empty());
    }

    fn jsonl() -> TableFormat {
        TableFormat { delimiter: Delimiter::JsonLines, quote: None, ..fmt() }
    }

    #[test]
    fn json_lines_flatten_nested_keys_and_read_nulls_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "t.jsonl",
            br#"{"id": 1, "sensor": {"temp": 21.5, "ok": true}, "site": "north", "tags": ["a", "b"], "y": "fault"}

{"id": 2, "sensor": {"temp": null, "ok": false}, "site": "south", "y": "ok"}
{"y": "ok", "id": 3, "sensor": {"temp": 19.0, "ok": true}, "site": "north", "tags": []}
"#,
        );
        let r = read(&p, "data", &jsonl(), &sel("y")).unwrap();
        let names: Vec<&str> = r.table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "sensor.ok", "sensor.temp", "site", "tags"]);
        let kinds: Vec<FeatureKind> = r.table.columns.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                FeatureKind::Numeric,
                FeatureKind::Boolean,
                FeatureKind::Numeric,
                FeatureKind::Categorical,
                FeatureKind::Categorical
            ]
        );
        assert!(
            matches!(&r.table.columns[2].values, Values::Numbers(v) if v[0] == 21.5 && v[1].is_nan() && v[2] == 19.0)
        );
        assert_eq!(r.table.columns[4].values.text(0).as_deref(), Some(r#"["a","b"]"#));
        assert!(r.table.columns[4].values.is_missing(1), "an absent key is missing");
        assert_eq!(r.target.unwrap().values.text(2).as_deref(), Some("ok"));
        assert_eq!(r.report.records, 3);
    }

    #[test]
    fn bad_json_lines_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p =
            write(dir.path(), "b.jsonl", b"{\"x\": 1, \"y\": 0}\n{\"x\": 2, \"y\": 1\n[1, 2]\n{\"x\": 3, \"y\": 1}\n");
        let e = read(&p, "data", &jsonl(), &sel("y")).unwrap_err().to_string();
        assert!(e.contains(":2: not valid JSON (column 15): EOF while parsing an object"), "{e}");
        let skip = TableFormat { on_bad_record: OnBadRecord::Skip, ..jsonl() };
        let r = read(&p, "data", &skip, &sel("y")).unwrap();
        assert_eq!(r.report.records, 2);
        let reasons: Vec<&str> = r.report.bad_records.iter().map(|b| b.reason.as_str()).collect();
        assert_eq!(reasons[1], "expected a JSON object, found an array");
        // After the first 1,000 records the columns are fixed: a new key is a bad record.
        let mut text: String = (0..1000).map(|i| format!("{{\"x\": {i}, \"y\": {}}}\n", i % 2)).collect();
        text.push_str("{\"x\": 5, \"z\": 1, \"y\": 0}\n");
        let p = write(dir.path(), "late.jsonl", text.as_bytes());
        let e = read(&p, "data", &jsonl(), &sel("y")).unwrap_err().to_string();
        assert!(e.contains(":1001: key `z` is not among the keys of the first 1000 records"), "{e}");
    }

    #[test]
    fn unparsable_numbers_are_counted_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("x,y\n");
        for i in 0..40 {
            text += &format!("{i},{}\n", i % 2);
        }
        text += "oops,1\n";
        let p = write(dir.path(), "u.csv", text.as_bytes());
        let r = read(&p, "data", &fmt(), &sel("y")).unwrap();
        assert_eq!(r.table.columns[0].kind, FeatureKind::Numeric);
        assert_eq!(r.report.unparsable.get("x"), Some(&1));
        assert!(r.table.columns[0].values.is_missing(40));
    }

    #[test]
    fn whitespace_tables_without_header_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "w.txt", b"59 2 32.1\n48  1\t21.6\n\n");
        let f = TableFormat { delimiter: Delimiter::Whitespace, header: false, ..fmt() };
        let s =
            Selection { kinds: BTreeMap::from([("f1".to_string(), FeatureKind::Categorical)]), ..Default::default() };
        let r = read(&p, "data", &f, &s).unwrap();
        assert_eq!(r.table.rows(), 2);
        assert_eq!(r.table.columns[1].kind, FeatureKind::Categorical);
        assert_eq!(r.table.columns[2].values, Values::Numbers(vec![32.1, 21.6]));
    }

    #[test]
    fn bad_records_fail_or_are_skipped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "b.csv", b"a,b\n1,2\n3\n4,\xff\n5,6\n");
        let err = read(&p, "data", &fmt(), &Selection::default()).unwrap_err();
        assert_eq!(err.to_string(), format!("{}:3: expected 2 fields, found 1", p.display()));
        let skip = TableFormat { on_bad_record: OnBadRecord::Skip, ..fmt() };
        let r = read(&p, "data", &skip, &Selection::default()).unwrap();
        assert_eq!(r.table.rows(), 2);
        assert_eq!(r.report.skipped, 2);
        let reasons: Vec<(u64, &str)> = r.report.bad_records.iter().map(|b| (b.line, b.reason.as_str())).collect();
        assert_eq!(reasons, [(3, "expected 2 fields, found 1"), (4, "field 2 is not valid UTF-8 (byte 0)")]);
    }

    #[test]
    fn missing_columns_and_empty_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "m.csv", b"a,b\n1,2\n");
        let err = read(&p, "data", &fmt(), &sel("c")).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: no column `c`; the columns are: a, b", p.display()));
        let e = write(dir.path(), "e.csv", b"");
        assert_eq!(
            read(&e, "data", &fmt(), &Selection::default()).unwrap_err().to_string(),
            format!("{}: empty file: no header and no records", e.display())
        );
        let h = write(dir.path(), "h.csv", b"a,b\n");
        assert_eq!(
            read(&h, "data", &fmt(), &Selection::default()).unwrap_err().to_string(),
            format!("{}: no records after the header", h.display())
        );
        let idx = Selection { target: Some(ColumnRef::Index(5)), ..Default::default() };
        assert_eq!(
            read(&p, "data", &fmt(), &idx).unwrap_err().to_string(),
            format!("{}: column 5 does not exist: the file has 2 columns", p.display())
        );
    }

    #[test]
    fn columns_by_name_or_index_and_quoting_off() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "q.csv", b"a,b,c,y\n1,\"x\",3,0\n4,\"z,6,1\n");
        let s = Selection {
            target: Some(ColumnRef::Index(3)),
            features: Some(vec![ColumnRef::Name("c".into()), ColumnRef::Index(0)]),
            ..Default::default()
        };
        // Quoting off: the stray quotes are ordinary characters.
        let r = read(&p, "data", &TableFormat { quote: None, ..fmt() }, &s).unwrap();
        let names: Vec<&str> = r.table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["c", "a"]);
        assert_eq!(r.table.columns[0].values, Values::Numbers(vec![3.0, 6.0]));
        assert_eq!(r.target.unwrap().name, "y");
        let b = read(&p, "data", &TableFormat { quote: None, ..fmt() }, &Selection::default()).unwrap();
        assert_eq!(b.table.columns[1].values.text(1).as_deref(), Some("\"z"));
    }

    #[test]
    fn streams_past_the_inference_sample() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("n,label\n");
        for i in 0..2500 {
            text += &format!("{i},{}\n", if i % 3 == 0 { "x" } else { "y" });
        }
        let p = write(dir.path(), "big.csv", text.as_bytes());
        let r = read(&p, "data", &fmt(), &sel("label")).unwrap();
        assert_eq!(r.report.records, 2500);
        assert_eq!(r.target.as_ref().unwrap().values.text(2498).as_deref(), Some("y"));
        assert_eq!(r.target.as_ref().unwrap().values.text(2499).as_deref(), Some("x"));
        assert!(matches!(&r.table.columns[0].values, Values::Numbers(v) if v[2499] == 2499.0));
    }

    #[test]
    fn a_streamed_pattern_hands_over_the_records_that_a_whole_read_gives() {
        let dir = tempfile::tempdir().unwrap();
        let mut big = String::from("x,c,y\n");
        for i in 0..2500 {
            let x = if i % 97 == 0 { "oops".to_string() } else { format!("{}.{}", i, i % 7) };
            big.push_str(&format!("{x},{},{}\n", ["a", "b", "\"q,x\""][i % 3], i % 2));
        }
        write(dir.path(), "p-1.csv", big.as_bytes());
        write(dir.path(), "p-2.csv", b"x,c,y\n1.5,b,1\n,a,0\n");
        let pattern = dir.path().join("p-*.csv");
        let whole = read_all(&pattern, "data", &fmt(), &sel("y")).unwrap();
        let mut chunks = 0;
        let mut got: Option<(Table, Column)> = None;
        let streamed = stream_all(&pattern, "data", &fmt(), &sel("y"), &mut |t, y| {
            chunks += 1;
            let y = y.unwrap();
            match got.as_mut() {
                None => got = Some((t, y)),
                Some((all, ally)) => {
                    for (a, b) in all.columns.iter_mut().zip(t.columns) {
                        a.values.append(b.values).unwrap();
                    }
                    ally.values.append(y.values).unwrap();
                }
            }
            Ok(())
        })
        .unwrap();
        let (table, target) = got.unwrap();
        assert!(chunks >= 2, "one chunk per file at least");
        assert_eq!(table.rows(), 2502);
        // NaN != NaN: compare the printed values.
        let shown = |t: &Table| -> Vec<Vec<Option<String>>> {
            t.columns.iter().map(|c| (0..c.values.len()).map(|i| c.values.text(i)).collect()).collect()
        };
        assert_eq!(shown(&table), shown(&whole.table));
        assert_eq!(target.values, whole.target.unwrap().values);
        assert_eq!(streamed.table.rows(), 0, "the returned table holds no values");
        let kinds: Vec<_> = streamed.table.columns.iter().map(|c| (c.name.clone(), c.kind)).collect();
        assert_eq!(kinds, whole.table.columns.iter().map(|c| (c.name.clone(), c.kind)).collect::<Vec<_>>());
        assert_eq!(streamed.report.unparsable, whole.report.unparsable);
        assert_eq!(streamed.report.records, 2502);
        assert_eq!(streamed.inputs, whole.inputs);
    }
}
