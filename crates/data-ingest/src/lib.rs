//! Reading data sources into raw records with a schema.
//!
//! The `data:` section of the pipeline YAML ([`DataConfig`], tagged by `format`) names the
//! source; [`load`] reads it into a [`RawDataset`] — a typed [`Table`] or an
//! [`ImageSet`](pipeline_core::raw::ImageSet), plus the target column — together with the
//! identity (path, size, sha256) of every file read and a [`ReadReport`] of dropped records and
//! unparsable values, for the run manifest. Formats:
//!
//! - `csv`: CSV / TSV / whitespace-separated, header or not, quoting, gzip, columns by name or
//!   index, kinds inferred (numeric, boolean, categorical, text) or given, targets in the same
//!   file or a separate one ([`table`]); `path` may be a glob pattern of several files;
//! - `jsonl`: one JSON object per line, nested keys flattened to dotted columns ([`table`]);
//! - `sql`: a query against SQLite or PostgreSQL, rows streamed through a cursor ([`sql`]);
//! - `http`: a JSON API, page by page, with retries, a bearer token from the environment and
//!   the responses kept for a reproducible run ([`http`]);
//! - `parquet` and `arrow`: Parquet and Arrow IPC (Feather v2) files, the used columns only,
//!   batch by batch ([`columnar`]);
//! - `idx`: the IDX files of MNIST ([`idx`]);
//! - `image_folder`: one sub-folder per class of PNG / JPEG / BMP images ([`images`]);
//! - `text_lines` and `text_folder`: `label<TAB>text` lines, or one file per document in one
//!   folder per class ([`text`]);
//! - `audio_folder` and `audio_list`: recordings (WAV, FLAC, Ogg Vorbis, MP3) in one folder per
//!   class, or listed in a CSV with their labels and optionally an official split; mono,
//!   resampled to one rate, padded or cropped to one duration ([`audio`]).
//!
//! Any path may be `hf://datasets/<owner>/<name>/<file>`: it is taken from the local model-hub
//! cache, or downloaded when a network is there ([`hub`]). [`summary`] computes the exploratory
//! statistics `dlp inspect` shows.
//!
//! Every malformed input is an [`Error`] that names the file, the record and what was expected —
//! or, with `on_bad_record: skip`, a dropped and reported record; nothing here panics on bad
//! data. What it must not do: transform values (imputation, scaling, encoding and splitting
//! belong to `preprocess`).

pub mod audio;
pub mod columnar;
mod delimited;
mod error;
pub mod features;
pub mod http;
pub mod hub;
mod hugepages;
pub mod idx;
pub mod images;
pub mod source;
pub mod sql;
pub mod summary;
pub mod table;
pub mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pipeline_core::FeatureKind;
use pipeline_core::config::Issue;
use pipeline_core::raw::{Column, RawDataset, RawInputs, TargetSpec, TaskHint};
use pipeline_core::run::InputFile;
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use table::{BadRecord, ColumnRef, Delimiter, OnBadRecord, ReadReport};

/// The `data:` section: where the data comes from, tagged by `format`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum DataConfig {
    /// An IDX image file and an IDX label file (the MNIST layout).
    Idx(IdxConfig),
    /// A delimited text table.
    Csv(CsvConfig),
    /// `label<separator>text` lines.
    TextLines(TextLinesConfig),
    /// One text file per document, in one folder per class.
    TextFolder(FolderConfig),
    /// One image per file, in one folder per class.
    ImageFolder(ImageFolderConfig),
    /// One recording per file, in one folder per class.
    AudioFolder(AudioFolderConfig),
    /// Recordings listed in a CSV with their labels (and parts).
    AudioList(AudioListConfig),
    /// JSON Lines: one object per line.
    Jsonl(JsonlConfig),
    /// A query against SQLite or PostgreSQL.
    Sql(sql::SqlConfig),
    /// An Apache Parquet file.
    Parquet(columnar::ColumnarConfig),
    /// An Arrow IPC file (Feather v2).
    Arrow(columnar::ColumnarConfig),
    /// Records from a JSON API, page by page.
    Http(http::HttpConfig),
}

pipeline_core::tagged_enum!(DataConfig, "format", [
    "idx" => DataConfig::Idx,
    "csv" => DataConfig::Csv,
    "text_lines" => DataConfig::TextLines,
    "text_folder" => DataConfig::TextFolder,
    "image_folder" => DataConfig::ImageFolder,
    "audio_folder" => DataConfig::AudioFolder,
    "audio_list" => DataConfig::AudioList,
    "jsonl" => DataConfig::Jsonl,
    "sql" => DataConfig::Sql,
    "parquet" => DataConfig::Parquet,
    "arrow" => DataConfig::Arrow,
    "http" => DataConfig::Http,
]);

/// `format: jsonl`: one JSON object per line (gzip or plain). Nested objects are flattened to
/// dotted column names (`{"sensor": {"temp": 21.5}}` is the column `sensor.temp`), arrays are
/// kept as their JSON text, `null` or an absent key is a missing value. The columns are the
/// keys of the first 1,000 records; kinds are inferred from their values as for CSV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// The file (gzip or plain, or `hf://…`).
    pub path: PathBuf,
    /// The target column (a dotted key path), by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ColumnRef>,
    /// The feature columns to use; all but the target by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnRef>>,
    /// Column kinds that override inference, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, FeatureKind>,
    /// String values that mean "missing" (`null` and absent keys always do).
    #[serde(default = "table::default_missing")]
    pub missing: Vec<String>,
    /// Stop at a malformed line (`fail`) or drop and report it (`skip`).
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
    /// The task the target defines.
    #[serde(default)]
    pub task: TaskHint,
    /// Class names for integer class labels `0..n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_names: Option<Vec<String>>,
}

impl JsonlConfig {
    fn format(&self) -> table::TableFormat {
        let mut missing = self.missing.clone();
        if !missing.iter().any(String::is_empty) {
            missing.push(String::new());
        }
        table::TableFormat {
            delimiter: Delimiter::JsonLines,
            quote: None,
            header: true,
            skip_rows: 0,
            names: None,
            missing,
            on_bad_record: self.on_bad_record,
        }
    }
}

/// `format: idx`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdxConfig {
    /// The IDX file of inputs: `n × height × width` (images) or `n × features`; gzip or plain.
    pub images: PathBuf,
    /// The IDX file of integer class labels, `n` of them.
    pub labels: PathBuf,
    /// Names of the classes, by label value; defaults to the label values `"0"`, `"1"`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_names: Option<Vec<String>>,
}

fn comma() -> Delimiter {
    Delimiter::Byte(b',')
}
fn double_quote() -> Option<char> {
    Some('"')
}
fn yes() -> bool {
    true
}
fn tab() -> String {
    "\t".into()
}

/// `format: csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// The file (gzip or plain, or `hf://…`).
    pub path: PathBuf,
    /// `","`, `"\t"`, any one ASCII character, or `whitespace` (runs of spaces and tabs).
    #[serde(default = "comma")]
    pub delimiter: Delimiter,
    /// Whether the first line (after `skip_rows`) names the columns.
    #[serde(default = "yes")]
    pub header: bool,
    /// Lines to skip first.
    #[serde(default)]
    pub skip_rows: usize,
    /// The quote character; `null` for none.
    #[serde(default = "double_quote")]
    pub quote: Option<char>,
    /// Column names (for files without a header, or to rename).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// The target column, by name or 0-based index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ColumnRef>,
    /// A separate file of targets, one per line (read with the same delimiter, no header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_file: Option<PathBuf>,
    /// The feature columns to use; all but the target by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnRef>>,
    /// Column kinds that override inference, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, FeatureKind>,
    /// Values that mean "missing".
    #[serde(default = "table::default_missing")]
    pub missing: Vec<String>,
    /// Stop at a malformed record (`fail`) or drop and report it (`skip`).
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
    /// The task the target defines.
    #[serde(default)]
    pub task: TaskHint,
    /// Class names for integer class labels `0..n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_names: Option<Vec<String>>,
    /// The memory budget of the data: files larger than this are read in chunks and trained on
    /// out of core (`dlp run`); `None`: half the machine's memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<ByteSize>,
}

/// A size in bytes: a number, or a number with a unit (`512MiB`, `2GiB`, `64MB`, `100kB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        let units = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        match units.iter().find(|(u, _)| b >= *u && b.is_multiple_of(*u)) {
            Some((u, name)) => write!(f, "{}{name}", b / u),
            None => write!(f, "{b}"),
        }
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (number, unit) = (&t[..split], t[split..].trim());
        let bad = || format!("`{s}` is not a size: write bytes, or a number with KiB, MiB, GiB, kB, MB or GB");
        let n: f64 = number.parse().map_err(|_| bad())?;
        let scale = match unit {
            "" | "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            "kB" | "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            _ => return Err(bad()),
        };
        Ok(ByteSize((n * scale).round() as u64))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) => Ok(ByteSize(b)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl ByteSize {
    /// Half the machine's physical memory (`/proc/meminfo`; 4 GiB where it cannot be read).
    pub fn half_of_memory() -> ByteSize {
        let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        ByteSize(total.map_or(4 << 30, |kib| kib * 1024 / 2))
    }
}

impl CsvConfig {
    /// The memory budget: `memory_limit`, or half the machine's memory.
    pub fn memory_budget(&self) -> ByteSize {
        self.memory_limit.unwrap_or_else(ByteSize::half_of_memory)
    }

    /// The bytes of the files `path` names, as a measure of the table's size in memory (a
    /// parsed number takes 8 bytes, about as many as its text); a compressed file counts four
    /// times its size. `None` when a file cannot be listed (reading it will say why).
    pub fn data_size(&self) -> Option<u64> {
        let mut total = 0;
        for f in table::expand(&self.path).ok()? {
            let len = std::fs::metadata(&f).ok()?.len();
            let gz = f.extension().is_some_and(|e| e == "gz");
            total += if gz { len * 4 } else { len };
        }
        Some(total)
    }

    /// Whether the data is larger than the memory budget, and so is read in chunks.
    pub fn out_of_core(&self) -> bool {
        self.data_size().is_some_and(|n| n > self.memory_budget().0)
    }
}

/// `format: text_lines`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextLinesConfig {
    /// The file.
    pub path: PathBuf,
    /// What separates the label from the text (the first occurrence).
    #[serde(default = "tab")]
    pub separator: String,
    /// Whether the first line names the two columns.
    #[serde(default)]
    pub header: bool,
    /// `label<sep>text` (true) or `text<sep>label` (false).
    #[serde(default = "yes")]
    pub label_first: bool,
    /// Stop at a malformed line (`fail`) or drop and report it (`skip`).
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
}

/// `format: text_folder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    /// The folder holding one sub-folder per class.
    pub path: PathBuf,
    /// Stop at an unreadable file (`fail`) or drop and report it (`skip`).
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
}

fn three() -> usize {
    3
}

/// `format: image_folder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageFolderConfig {
    /// The folder holding one sub-folder per class.
    pub path: PathBuf,
    /// 1 (grey) or 3 (RGB).
    #[serde(default = "three")]
    pub channels: usize,
    /// `[height, width]` to resize every image to; absent, all must have the first one's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<[usize; 2]>,
    /// Stop at an image that does not decode (`fail`) or drop and report it (`skip`).
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
}

fn sixteen_k() -> u32 {
    16_000
}
fn path_column() -> String {
    "path".into()
}
fn label_column() -> String {
    "label".into()
}

/// How recordings are made alike (the keys shared by `audio_folder` and `audio_list`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct AudioOptions {
    sample_rate: u32,
    duration: Option<f64>,
    align: audio::Align,
}

impl AudioOptions {
    /// The reading format.
    fn format(&self) -> audio::AudioFormat {
        audio::AudioFormat {
            sample_rate: self.sample_rate,
            samples: self.duration.map(|d| (d * f64::from(self.sample_rate)).round().max(1.0) as usize),
            align: self.align,
        }
    }

    fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        if !(1_000..=384_000).contains(&self.sample_rate) {
            issues.push(Issue::new("data.sample_rate", format!("must be 1000-384000 Hz, got {}", self.sample_rate)));
        }
        if let Some(d) = self.duration
            && !(d.is_finite() && d > 0.0 && d <= 600.0)
        {
            issues.push(Issue::new("data.duration", format!("must be seconds in (0, 600], got {d}")));
        }
        issues
    }
}

/// `format: audio_folder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioFolderConfig {
    /// The folder holding one sub-folder per class.
    pub path: PathBuf,
    /// The rate every recording is resampled to, in Hz.
    #[serde(default = "sixteen_k")]
    pub sample_rate: u32,
    /// Seconds every clip is padded (with silence) or cropped to; absent: the longest recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Where clips are cropped and the padding goes: `start` (keep the start, pad the end) or
    /// `center`.
    #[serde(default)]
    pub align: audio::Align,
    /// Stop at a recording that does not decode (`fail`) or drop and report it (`skip`).
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
}

impl AudioFolderConfig {
    /// How its recordings are read.
    pub fn format(&self) -> audio::AudioFormat {
        AudioOptions { sample_rate: self.sample_rate, duration: self.duration, align: self.align }.format()
    }
}

impl AudioListConfig {
    /// How its recordings are read.
    pub fn format(&self) -> audio::AudioFormat {
        AudioOptions { sample_rate: self.sample_rate, duration: self.duration, align: self.align }.format()
    }
}

/// `format: audio_list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioListConfig {
    /// The CSV (with a header) listing the recordings; their paths are relative to its folder.
    pub path: PathBuf,
    /// The column of recording paths.
    #[serde(default = "path_column")]
    pub file_column: String,
    /// The column of labels.
    #[serde(default = "label_column")]
    pub target: String,
    /// A column naming each recording's part (`train`, `validation`, `test`): an official split,
    /// used with `preprocess.split.from_data: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_column: Option<String>,
    /// The rate every recording is resampled to, in Hz.
    #[serde(default = "sixteen_k")]
    pub sample_rate: u32,
    /// Seconds every clip is padded (with silence) or cropped to; absent: the longest recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Where clips are cropped and the padding goes: `start` (keep the start, pad the end) or
    /// `center`.
    #[serde(default)]
    pub align: audio::Align,
    /// Stop at a bad line or recording (`fail`) or drop and report it (`skip`).
    #[serde(default)]
    pub on_bad_record: OnBadRecord,
}

/// `a/b/../c` → `a/c`, lexically (without touching the file system, so that a missing file can
/// still be named in an error), keeping leading `..` of relative paths.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

impl DataConfig {
    /// The data files and folders named, with their keys.
    fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        match self {
            DataConfig::Idx(c) => vec![("data.images", &mut c.images), ("data.labels", &mut c.labels)],
            DataConfig::Csv(c) => {
                let mut v = vec![("data.path", &mut c.path)];
                if let Some(t) = c.target_file.as_mut() {
                    v.push(("data.target_file", t));
                }
                v
            }
            DataConfig::TextLines(c) => vec![("data.path", &mut c.path)],
            DataConfig::TextFolder(c) => vec![("data.path", &mut c.path)],
            DataConfig::ImageFolder(c) => vec![("data.path", &mut c.path)],
            DataConfig::AudioFolder(c) => vec![("data.path", &mut c.path)],
            DataConfig::AudioList(c) => vec![("data.path", &mut c.path)],
            DataConfig::Jsonl(c) => vec![("data.path", &mut c.path)],
            DataConfig::Sql(_) => Vec::new(),
            DataConfig::Parquet(c) | DataConfig::Arrow(c) => vec![("data.path", &mut c.path)],
            DataConfig::Http(_) => Vec::new(),
        }
    }

    /// Makes relative paths relative to `base` (the config file's directory), so that a config
    /// means the same thing whatever directory it is run from. `hf://` paths are left alone.
    pub fn resolve_paths(&mut self, base: &Path) {
        for (_, p) in self.paths_mut() {
            if hub::parse(p).is_none() {
                *p = normalize(&base.join(&*p));
            }
        }
        if let DataConfig::Sql(c) = self {
            c.resolve_paths(base);
        }
    }

    /// Checks what can be checked before reading: files exist, options fit together.
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        let mut this = self.clone();
        for (key, p) in this.paths_mut() {
            match hub::parse(p) {
                Some(Err(e)) => issues.push(Issue::new(key, e.to_string())),
                Some(Ok(_)) => {}
                None => {
                    let folder = key == "data.path"
                        && matches!(
                            self,
                            DataConfig::TextFolder(_) | DataConfig::ImageFolder(_) | DataConfig::AudioFolder(_)
                        );
                    if folder && !p.is_dir() {
                        issues.push(Issue::new(key, format!("folder not found: {}", p.display())));
                    } else if !folder && table::is_pattern(p) {
                        let several = key == "data.path"
                            && matches!(
                                self,
                                DataConfig::Csv(_)
                                    | DataConfig::Jsonl(_)
                                    | DataConfig::Parquet(_)
                                    | DataConfig::Arrow(_)
                            );
                        match table::expand(p) {
                            _ if !several => issues.push(Issue::new(
                                key,
                                format!(
                                    "names one file; a pattern ({}) is for data.path of csv, jsonl, parquet and arrow",
                                    p.display()
                                ),
                            )),
                            Ok(files) if files.is_empty() => {
                                issues.push(Issue::new(key, format!("no file matches {}", p.display())))
                            }
                            Ok(_) => {}
                            Err(e) => issues.push(Issue::new(key, e.to_string())),
                        }
                    } else if !folder && !p.is_file() {
                        issues.push(Issue::new(key, format!("file not found: {}", p.display())));
                    }
                }
            }
        }
        match self {
            DataConfig::Csv(c) => {
                match (&c.target, &c.target_file) {
                    (None, None) => {
                        issues.push(Issue::new("data.target", "name the target column (or give data.target_file)"))
                    }
                    (Some(_), Some(_)) => issues
                        .push(Issue::new("data.target_file", "give either data.target or data.target_file, not both")),
                    _ => {}
                }
                if c.target_file.is_some() && table::is_pattern(&c.path) {
                    issues.push(Issue::new(
                        "data.target_file",
                        "pairs with one data file, not a pattern: put the targets in the files' own column",
                    ));
                }
                if let Some(q) = c.quote
                    && !q.is_ascii()
                {
                    issues.push(Issue::new("data.quote", format!("must be one ASCII character, got {q:?}")));
                }
                if let Some(names) = &c.names {
                    issues.extend(check_against_names(c, names));
                }
            }
            DataConfig::ImageFolder(c) => {
                if !matches!(c.channels, 1 | 3) {
                    issues
                        .push(Issue::new("data.channels", format!("must be 1 (grey) or 3 (RGB), got {}", c.channels)));
                }
                if let Some([h, w]) = c.size
                    && (h == 0 || w == 0)
                {
                    issues.push(Issue::new("data.size", format!("must be two positive sizes, got [{h}, {w}]")));
                }
            }
            DataConfig::AudioFolder(c) => issues
                .extend(AudioOptions { sample_rate: c.sample_rate, duration: c.duration, align: c.align }.validate()),
            DataConfig::AudioList(c) => issues
                .extend(AudioOptions { sample_rate: c.sample_rate, duration: c.duration, align: c.align }.validate()),
            DataConfig::Sql(c) => issues.extend(c.validate()),
            DataConfig::Http(c) => issues.extend(c.validate()),
            DataConfig::Parquet(c) | DataConfig::Arrow(c) if c.target.is_none() => {
                issues.push(Issue::new("data.target", "name the target column"));
            }
            DataConfig::Jsonl(c) if c.target.is_none() => {
                issues.push(Issue::new("data.target", "name the target column (a key, dotted for nested objects)"));
            }
            DataConfig::TextLines(c) if c.separator.is_empty() => {
                issues.push(Issue::new("data.separator", "must not be empty"));
            }
            _ => {}
        }
        let names = match self {
            DataConfig::Idx(c) => c.label_names.as_ref(),
            DataConfig::Csv(c) => c.label_names.as_ref(),
            DataConfig::Jsonl(c) => c.label_names.as_ref(),
            DataConfig::Sql(c) => c.label_names.as_ref(),
            DataConfig::Parquet(c) | DataConfig::Arrow(c) => c.label_names.as_ref(),
            DataConfig::Http(c) => c.label_names.as_ref(),
            _ => None,
        };
        if names.is_some_and(Vec::is_empty) {
            issues.push(Issue::new("data.label_names", "must name at least one class"));
        }
        issues
    }

    /// How the target is to be read.
    pub fn target_spec(&self) -> TargetSpec {
        match self {
            DataConfig::Idx(c) => TargetSpec { task: TaskHint::Classification, label_names: c.label_names.clone() },
            DataConfig::Csv(c) => TargetSpec { task: c.task, label_names: c.label_names.clone() },
            DataConfig::Jsonl(c) => TargetSpec { task: c.task, label_names: c.label_names.clone() },
            DataConfig::Sql(c) => TargetSpec { task: c.task, label_names: c.label_names.clone() },
            DataConfig::Parquet(c) | DataConfig::Arrow(c) => {
                TargetSpec { task: c.task, label_names: c.label_names.clone() }
            }
            DataConfig::Http(c) => TargetSpec { task: c.task, label_names: c.label_names.clone() },
            _ => TargetSpec { task: TaskHint::Classification, label_names: None },
        }
    }
}

/// With `data.names` given, the columns that the CSV config names must be among them: the
/// target, the feature columns and the kinds' keys, by name or by index.
fn check_against_names(c: &CsvConfig, names: &[String]) -> Vec<Issue> {
    let mut issues = Vec::new();
    let listed = || {
        let shown: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
        format!("{}{}", shown.join(", "), if names.len() > 8 { ", …" } else { "" })
    };
    let mut check = |key: String, r: &ColumnRef| match r {
        ColumnRef::Name(n) if !names.contains(n) => {
            issues.push(Issue::new(key, format!("`{n}` is not among data.names ({})", listed())));
        }
        ColumnRef::Index(i) if *i >= names.len() => issues.push(Issue::new(
            key,
            format!("column {i} is past the {} columns of data.names (indices start at 0)", names.len()),
        )),
        _ => {}
    };
    if let Some(t) = &c.target {
        check("data.target".into(), t);
    }
    for (i, col) in c.columns.iter().flatten().enumerate() {
        check(format!("data.columns[{i}]"), col);
    }
    for name in c.kinds.keys() {
        check(format!("data.kinds.{name}"), &ColumnRef::Name(name.clone()));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        issues.push(Issue::new("data.names", format!("`{dup}` is named twice")));
    }
    issues
}

/// Raw records and where they came from.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The records.
    pub data: RawDataset,
    /// Each file read, with its hash, for the manifest.
    pub inputs: Vec<InputFile>,
    /// Dropped records and unparsable values.
    pub report: ReadReport,
}

impl CsvConfig {
    fn format(&self) -> table::TableFormat {
        table::TableFormat {
            delimiter: self.delimiter.clone(),
            quote: self.quote.map(|c| c as u8),
            header: self.header,
            skip_rows: self.skip_rows,
            names: self.names.clone(),
            missing: self.missing.clone(),
            on_bad_record: self.on_bad_record,
        }
    }
}

/// Reads the CSV files of `config` in chunks of consecutive records, in file order, handing
/// each to `sink` as a table dataset (features and target): memory holds one chunk, whatever
/// the files' size. The returned [`Ingested`] has the columns' names and kinds but no records.
pub fn stream(config: &CsvConfig, sink: &mut dyn FnMut(RawDataset) -> Result<()>) -> Result<Ingested> {
    if let Some(tf) = &config.target_file {
        return Err(Error::format(
            tf,
            "data.target_file: a separate target file is not read in chunks (the data is larger than \
             data.memory_limit); put the target in the data file",
        ));
    }
    let sel = table::Selection {
        target: config.target.clone(),
        features: config.columns.clone(),
        kinds: config.kinds.clone(),
        require_kinds: false,
    };
    let mut each = |t: pipeline_core::raw::Table, y: Option<Column>| {
        sink(RawDataset { inputs: RawInputs::Table(t), target: y, parts: None })
    };
    let main = table::stream_all(&config.path, "data.path", &config.format(), &sel, &mut each)?;
    Ok(Ingested {
        data: RawDataset { inputs: RawInputs::Table(main.table), target: main.target, parts: None },
        inputs: main.inputs,
        report: main.report,
    })
}

/// Reads the source that `config` describes.
pub fn load(config: &DataConfig) -> Result<Ingested> {
    match config {
        DataConfig::Idx(c) => {
            let (images, images_file) = idx::read_file(&c.images, "data.images")?;
            let (labels, labels_file) = idx::read_file(&c.labels, "data.labels")?;
            let data = idx::raw_dataset(&images, &labels)?;
            Ok(Ingested {
                data,
                inputs: vec![images_file, labels_file],
                report: ReadReport { records: labels.records(), ..Default::default() },
            })
        }
        DataConfig::Csv(c) => {
            let fmt = c.format();
            let sel = table::Selection {
                target: c.target.clone(),
                features: c.columns.clone(),
                kinds: c.kinds.clone(),
                require_kinds: false,
            };
            let mut main = table::read_all(&c.path, "data.path", &fmt, &sel)?;
            let mut inputs = main.inputs.clone();
            if let Some(tf) = &c.target_file {
                let tfmt =
                    table::TableFormat { header: false, skip_rows: 0, names: Some(vec!["target".into()]), ..fmt };
                let t = table::read(tf, "data.target_file", &tfmt, &table::Selection::default())?;
                if t.table.rows() != main.table.rows() {
                    return Err(Error::Invalid {
                        path: tf.clone(),
                        message: format!(
                            "{} targets for {} records in {}",
                            t.table.rows(),
                            main.table.rows(),
                            c.path.display()
                        ),
                    });
                }
                main.target = t.table.columns.into_iter().next();
                inputs.push(t.input);
                main.report.merge(ReadReport { records: 0, ..t.report });
            }
            Ok(Ingested {
                data: RawDataset { inputs: RawInputs::Table(main.table), target: main.target, parts: None },
                inputs,
                report: main.report,
            })
        }
        DataConfig::Sql(c) => sql::load(c),
        DataConfig::Parquet(c) => columnar::load(c, columnar::Container::Parquet),
        DataConfig::Arrow(c) => columnar::load(c, columnar::Container::Arrow),
        DataConfig::Http(c) => http::load(c),
        DataConfig::Jsonl(c) => {
            let sel = table::Selection {
                target: c.target.clone(),
                features: c.columns.clone(),
                kinds: c.kinds.clone(),
                require_kinds: false,
            };
            let main = table::read_all(&c.path, "data.path", &c.format(), &sel)?;
            Ok(Ingested {
                data: RawDataset { inputs: RawInputs::Table(main.table), target: main.target, parts: None },
                inputs: main.inputs,
                report: main.report,
            })
        }
        DataConfig::TextLines(c) => {
            let r = text::read_lines(&c.path, "data.path", &c.separator, c.header, c.label_first, c.on_bad_record)?;
            Ok(Ingested {
                data: RawDataset { inputs: RawInputs::Table(r.table), target: Some(r.target), parts: None },
                inputs: vec![r.input],
                report: r.report,
            })
        }
        DataConfig::TextFolder(c) => {
            let r = text::read_folder(&c.path, "data.path", c.on_bad_record)?;
            Ok(Ingested {
                data: RawDataset { inputs: RawInputs::Table(r.table), target: Some(r.target), parts: None },
                inputs: vec![r.input],
                report: r.report,
            })
        }
        DataConfig::ImageFolder(c) => {
            let r =
                images::read_folder(&c.path, "data.path", c.channels, c.size.map(|[h, w]| (h, w)), c.on_bad_record)?;
            Ok(Ingested {
                data: RawDataset { inputs: RawInputs::Images(r.images), target: Some(r.target), parts: None },
                inputs: vec![r.input],
                report: r.report,
            })
        }
        DataConfig::AudioFolder(c) => {
            let r = audio::read_folder(&c.path, "data.path", &c.format(), c.on_bad_record)?;
            Ok(Ingested {
                data: RawDataset { inputs: RawInputs::Audio(r.audio), target: Some(r.target), parts: None },
                inputs: r.inputs,
                report: r.report,
            })
        }
        DataConfig::AudioList(c) => {
            let columns =
                audio::ListColumns { file: &c.file_column, label: &c.target, split: c.split_column.as_deref() };
            let r = audio::read_list(&c.path, "data.path", &columns, &c.format(), c.on_bad_record)?;
            let target = Column { name: c.target.clone(), ..r.target };
            Ok(Ingested {
                data: RawDataset { inputs: RawInputs::Audio(r.audio), target: Some(target), parts: r.parts },
                inputs: r.inputs,
                report: r.report,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_units_and_print_in_the_largest_exact_one() {
        for (text, bytes) in
            [("512", 512), ("64MiB", 64 << 20), ("2GiB", 2 << 30), ("1.5 KiB", 1536), ("64MB", 64_000_000)]
        {
            assert_eq!(text.parse::<ByteSize>().unwrap(), ByteSize(bytes), "{text}");
        }
        assert_eq!(ByteSize(200 << 10).to_string(), "200KiB");
        assert_eq!(ByteSize(1000).to_string(), "1000");
        let e = "64 mb".parse::<ByteSize>().unwrap_err();
        assert!(e.starts_with("`64 mb` is not a size"), "{e}");
        let c: CsvConfig = serde_json::from_str(r#"{"path": "a.csv", "memory_limit": "1GiB"}"#).unwrap();
        assert_eq!(c.memory_limit, Some(ByteSize(1 << 30)));
        let c: CsvConfig = serde_json::from_str(r#"{"path": "a.csv", "memory_limit": 4096}"#).unwrap();
        assert_eq!(c.memory_budget(), ByteSize(4096));
        let e =
            serde_json::from_str::<CsvConfig>(r#"{"path": "a.csv", "memory_limit": "lots"}"#).unwrap_err().to_string();
        assert!(e.contains("`lots` is not a size"), "{e}");
        assert!(ByteSize::half_of_memory().0 > 0);
    }

    fn idx(images: &str, labels: &str) -> DataConfig {
        DataConfig::Idx(IdxConfig { images: images.into(), labels: labels.into(), label_names: None })
    }

    #[test]
    fn validate_names_missing_files() {
        let issues = idx("/nonexistent/images.gz", "/nonexistent/labels.gz").validate();
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].to_string(), "data.images: file not found: /nonexistent/images.gz");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let mut cfg = idx("../a/./i.gz", "/abs/l.gz");
        cfg.resolve_paths(Path::new("/cfg/configs"));
        let DataConfig::Idx(c) = cfg else { unreachable!() };
        assert_eq!(c.images, PathBuf::from("/cfg/a/i.gz"));
        assert_eq!(c.labels, PathBuf::from("/abs/l.gz"));
        assert_eq!(normalize(Path::new("../x/../../y")), PathBuf::from("../../y"));
        let mut hubbed = idx("hf://datasets/a/b/i.gz", "l.gz");
        hubbed.resolve_paths(Path::new("/cfg"));
        let DataConfig::Idx(c) = hubbed else { unreachable!() };
        assert_eq!(c.images, PathBuf::from("hf://datasets/a/b/i.gz"));
    }

    #[test]
    fn csv_needs_exactly_one_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "a,b\n1,2\n").unwrap();
        let cfg: DataConfig = serde_json::from_value(serde_json::json!({"format": "csv", "path": p})).unwrap();
        assert_eq!(cfg.validate()[0].to_string(), "data.target: name the target column (or give data.target_file)");
        let both: DataConfig =
            serde_json::from_value(serde_json::json!({"format": "csv", "path": p, "target": "b", "target_file": p}))
                .unwrap();
        assert_eq!(
            both.validate()[0].to_string(),
            "data.target_file: give either data.target or data.target_file, not both"
        );
        let by_index: DataConfig =
            serde_json::from_value(serde_json::json!({"format": "csv", "path": p, "target": 1})).unwrap();
        let DataConfig::Csv(c) = &by_index else { unreachable!() };
        assert_eq!(c.target, Some(ColumnRef::Index(1)));
        assert!(by_index.validate().is_empty());
    }

    #[test]
    fn columns_must_be_among_the_given_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "1,2,3\n").unwrap();
        let cfg = |extra: serde_json::Value| -> DataConfig {
            let mut v = serde_json::json!({"format": "csv", "path": p, "header": false, "names": ["a", "b", "c"]});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value(v).unwrap()
        };
        let issues = |extra| cfg(extra).validate().iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(issues(serde_json::json!({"target": "c"})).is_empty());
        assert!(issues(serde_json::json!({"target": 2, "columns": ["a", 1]})).is_empty());
        assert_eq!(
            issues(serde_json::json!({"target": "label"})),
            ["data.target: `label` is not among data.names (`a`, `b`, `c`)"]
        );
        assert_eq!(
            issues(serde_json::json!({"target": 3, "columns": ["a", "z"], "kinds": {"q": "numeric"}})),
            [
                "data.target: column 3 is past the 3 columns of data.names (indices start at 0)",
                "data.columns[1]: `z` is not among data.names (`a`, `b`, `c`)",
                "data.kinds.q: `q` is not among data.names (`a`, `b`, `c`)",
            ]
        );
        let dup: DataConfig = serde_json::from_value(
            serde_json::json!({"format": "csv", "path": p, "header": false, "names": ["a", "a"], "target": "a"}),
        )
        .unwrap();
        assert_eq!(dup.validate()[0].to_string(), "data.names: `a` is named twice");
    }
}
