//! Batch prediction in constant memory (`dlp predict`): records are read, preprocessed,
//! predicted and written a chunk at a time, so memory does not grow with the input.
//!
//! Inputs: IDX (gzip or plain, read record by record), CSV / TSV (streamed with the `csv`
//! crate; the header names the columns, or `pixel_0…` for image models), text lines (`.txt`,
//! for single-text models) and image folders (every PNG / JPEG / BMP below the folder, sorted by
//! path, decoded and resized to the model's size). The output is the CSV of
//! [`predictions_csv`](crate::predictions_csv) — `row` is the record's index, or the image's
//! path relative to the folder — written to a temporary file and renamed when complete, so a
//! failure never leaves a partial output. A progress bar shows on a terminal.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use pipeline_core::raw::{Column, ImageSet, RawInputs, RawSchema, Table, Values};
use pipeline_core::{FeatureKind, Predictions, Task};

use crate::{Bundle, Error, InputFormat, Result};

/// How [`predict_stream`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Records per chunk (memory is proportional to this, not to the input).
    pub chunk: usize,
    /// Show a progress bar (drawn only when standard error is a terminal).
    pub progress: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self { chunk: 1024, progress: true }
    }
}

/// A source of record chunks.
trait Chunks {
    /// The next chunk of at most `n` records with their row names, `None` at the end.
    fn next(&mut self, n: usize) -> Result<Option<(RawInputs, Vec<String>)>>;
    /// The number of records, when known in advance.
    fn total(&self) -> Option<u64>;
}

fn shape_err(path: &Path, message: impl Into<String>) -> Error {
    Error::InputShape { path: path.into(), message: message.into() }
}

fn io_err(path: &Path, e: &dyn std::fmt::Display) -> Error {
    shape_err(path, format!("cannot read: {e}"))
}

/// IDX read record by record.
struct IdxChunks {
    path: PathBuf,
    src: data_ingest::source::Source,
    dtype: u8,
    size: usize,
    record: usize,
    left: usize,
    total: usize,
    image: (usize, usize, usize),
}

impl IdxChunks {
    fn open(path: &Path, raw: &RawSchema) -> Result<Self> {
        let RawSchema::Image { channels, height, width } = raw else {
            return Err(shape_err(
                path,
                "IDX input fits image models only; this model reads named columns (give a CSV)",
            ));
        };
        let mut src = data_ingest::source::Source::open(path, "input")?;
        let mut head = [0u8; 4];
        src.reader().read_exact(&mut head).map_err(|e| shape_err(path, format!("not an IDX file: {e}")))?;
        let size = match head[2] {
            0x08 | 0x09 => 1,
            0x0B => 2,
            0x0C | 0x0D => 4,
            0x0E => 8,
            _ => 0,
        };
        if head[0] != 0 || head[1] != 0 || size == 0 || head[3] == 0 {
            return Err(shape_err(
                path,
                format!("not an IDX file: magic number 0x{:02x}{:02x}{:02x}{:02x}", head[0], head[1], head[2], head[3]),
            ));
        }
        let mut dims = Vec::new();
        for _ in 0..head[3] {
            let mut d = [0u8; 4];
            src.reader().read_exact(&mut d).map_err(|e| shape_err(path, format!("IDX header truncated: {e}")))?;
            dims.push(u32::from_be_bytes(d) as usize);
        }
        let want = [*channels, *height, *width];
        let fits = match dims[..] {
            [_, h, w] => *channels == 1 && [h, w] == want[1..],
            [_, c, h, w] => [c, h, w] == want,
            _ => false,
        };
        if !fits {
            return Err(shape_err(path, format!("IDX records of shape {:?}, the model takes {want:?}", &dims[1..])));
        }
        let record: usize = dims[1..].iter().product();
        Ok(Self {
            path: path.into(),
            src,
            dtype: head[2],
            size,
            record,
            left: dims[0],
            total: dims[0],
            image: (*channels, *height, *width),
        })
    }
}

impl Chunks for IdxChunks {
    fn next(&mut self, n: usize) -> Result<Option<(RawInputs, Vec<String>)>> {
        if self.left == 0 {
            // Anything after the declared records is a malformed file.
            let mut extra = [0u8; 1];
            if self.src.reader().read(&mut extra).map_err(|e| io_err(&self.path, &e))? > 0 {
                return Err(shape_err(&self.path, "IDX body has bytes after the records the header declares"));
            }
            return Ok(None);
        }
        let take = n.min(self.left);
        let first = self.total - self.left;
        let mut buf = vec![0u8; take * self.record * self.size];
        self.src.reader().read_exact(&mut buf).map_err(|e| {
            shape_err(&self.path, format!("IDX body truncated: record {} of {} is incomplete ({e})", first, self.total))
        })?;
        let pixels: Vec<f32> = match (self.dtype, self.size) {
            (0x08, _) => buf.iter().map(|&b| f32::from(b)).collect(),
            (0x09, _) => buf.iter().map(|&b| f32::from(b as i8)).collect(),
            (0x0B, _) => buf.chunks_exact(2).map(|c| f32::from(i16::from_be_bytes([c[0], c[1]]))).collect(),
            (0x0C, _) => buf.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
            (0x0D, _) => buf.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(),
            _ => buf
                .chunks_exact(8)
                .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
                .collect(),
        };
        self.left -= take;
        let (channels, height, width) = self.image;
        let names = (first..first + take).map(|i| i.to_string()).collect();
        Ok(Some((RawInputs::Images(ImageSet { channels, height, width, pixels }), names)))
    }

    fn total(&self) -> Option<u64> {
        Some(self.total as u64)
    }
}

/// How one CSV column is read.
struct CsvColumn {
    name: String,
    kind: FeatureKind,
    index: usize,
}

/// CSV streamed record by record.
struct CsvChunks {
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    columns: Vec<CsvColumn>,
    image: Option<(usize, usize, usize)>,
    missing: Vec<String>,
    row: usize,
    record: csv::StringRecord,
}

struct ReadAdapter(data_ingest::source::Source);

impl Read for ReadAdapter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.reader().read(buf)
    }
}

impl CsvChunks {
    fn open(path: &Path, raw: &RawSchema) -> Result<Self> {
        let src = data_ingest::source::Source::open(path, "input")?;
        let tsv = path.to_string_lossy().to_lowercase().trim_end_matches(".gz").ends_with(".tsv");
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(if tsv { b'\t' } else { b',' })
            .has_headers(true)
            .flexible(false)
            .from_reader(Box::new(ReadAdapter(src)) as Box<dyn Read + Send>);
        let header: Vec<String> =
            reader.headers().map_err(|e| io_err(path, &e))?.iter().map(|h| h.trim().to_string()).collect();
        if header.iter().all(String::is_empty) {
            return Err(shape_err(
                path,
                if reader.position().byte() == 0 {
                    "the file is empty: expected a header line naming the columns, then one record per line"
                } else {
                    "the first line is blank: expected a header line naming the columns"
                },
            ));
        }
        let (wanted, image): (Vec<(String, FeatureKind)>, _) = match raw {
            RawSchema::Audio { .. } => {
                return Err(shape_err(
                    path,
                    "an audio model reads recordings: give a WAV / FLAC / Ogg / MP3 file or a folder of them",
                ));
            }
            RawSchema::Table { columns } => (columns.iter().map(|c| (c.name.clone(), c.kind)).collect(), None),
            RawSchema::Image { channels, height, width } => (
                (0..channels * height * width).map(|i| (format!("pixel_{i}"), FeatureKind::Numeric)).collect(),
                Some((*channels, *height, *width)),
            ),
        };
        let mut columns = Vec::with_capacity(wanted.len());
        let mut missing = Vec::new();
        for (name, kind) in wanted {
            match header.iter().position(|h| *h == name) {
                Some(index) => columns.push(CsvColumn { name, kind, index }),
                None => missing.push(name),
            }
        }
        if !missing.is_empty() {
            let shown: Vec<String> = missing.iter().take(5).map(|m| format!("`{m}`")).collect();
            return Err(shape_err(
                path,
                format!(
                    "the header lacks column{} {}{} that the model reads",
                    if missing.len() > 1 { "s" } else { "" },
                    shown.join(", "),
                    if missing.len() > 5 { format!(" and {} more", missing.len() - 5) } else { String::new() }
                ),
            ));
        }
        Ok(Self {
            path: path.into(),
            reader,
            columns,
            image,
            missing: data_ingest::table::default_missing(),
            row: 0,
            record: csv::StringRecord::new(),
        })
    }
}

impl Chunks for CsvChunks {
    fn next(&mut self, n: usize) -> Result<Option<(RawInputs, Vec<String>)>> {
        let mut numbers: Vec<Vec<f64>> = vec![Vec::new(); self.columns.len()];
        let mut strings: Vec<Vec<Option<String>>> = vec![Vec::new(); self.columns.len()];
        let mut names = Vec::with_capacity(n);
        while names.len() < n {
            let more = self.reader.read_record(&mut self.record).map_err(|e| io_err(&self.path, &e))?;
            if !more {
                break;
            }
            let line = self.record.position().map_or(self.row + 2, |p| p.line() as usize);
            for (j, c) in self.columns.iter().enumerate() {
                let raw = self.record.get(c.index).unwrap_or("").trim();
                let is_missing = self.missing.iter().any(|m| m == raw);
                if RawSchema::numeric(c.kind) {
                    let v = if is_missing {
                        f64::NAN
                    } else if c.kind == FeatureKind::Boolean {
                        data_ingest::table::parse_bool(raw, true).ok_or_else(|| {
                            shape_err(&self.path, format!("line {line}, column `{}`: {raw:?} is not a boolean", c.name))
                        })?
                    } else {
                        data_ingest::table::parse_number(raw).ok_or_else(|| {
                            shape_err(&self.path, format!("line {line}, column `{}`: {raw:?} is not a number", c.name))
                        })?
                    };
                    if self.image.is_some() && !(0.0..=255.0).contains(&v) {
                        return Err(shape_err(
                            &self.path,
                            format!("line {line}, column `{}`: {raw:?} is not a pixel value 0–255", c.name),
                        ));
                    }
                    numbers[j].push(v);
                } else {
                    strings[j].push((!is_missing).then(|| raw.to_string()));
                }
            }
            names.push(self.row.to_string());
            self.row += 1;
        }
        if names.is_empty() {
            return Ok(None);
        }
        let inputs = match self.image {
            Some((channels, height, width)) => {
                let k = names.len();
                let mut pixels = vec![0f32; k * numbers.len()];
                for (j, col) in numbers.iter().enumerate() {
                    for (i, v) in col.iter().enumerate() {
                        pixels[i * numbers.len() + j] = *v as f32;
                    }
                }
                RawInputs::Images(ImageSet { channels, height, width, pixels })
            }
            None => RawInputs::Table(Table {
                columns: self
                    .columns
                    .iter()
                    .zip(numbers.into_iter().zip(strings))
                    .map(|(c, (num, st))| Column {
                        name: c.name.clone(),
                        kind: c.kind,
                        values: if RawSchema::numeric(c.kind) {
                            Values::Numbers(num)
                        } else {
                            Values::from_strings(st)
                        },
                    })
                    .collect(),
            }),
        };
        Ok(Some((inputs, names)))
    }

    fn total(&self) -> Option<u64> {
        None
    }
}

/// Text lines, one record each (blank lines skipped).
struct TextChunks {
    path: PathBuf,
    src: data_ingest::source::Source,
    column: String,
    line: usize,
    row: usize,
}

impl Chunks for TextChunks {
    fn next(&mut self, n: usize) -> Result<Option<(RawInputs, Vec<String>)>> {
        let mut texts = Vec::with_capacity(n);
        let mut names = Vec::with_capacity(n);
        let mut buf = Vec::new();
        while texts.len() < n {
            buf.clear();
            let read = self.src.reader().read_until(b'\n', &mut buf).map_err(|e| io_err(&self.path, &e))?;
            if read == 0 {
                break;
            }
            self.line += 1;
            let text = std::str::from_utf8(&buf)
                .map_err(|e| shape_err(&self.path, format!("line {}: not valid UTF-8 ({e})", self.line)))?
                .trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            texts.push(Some(text.to_string()));
            names.push(self.row.to_string());
            self.row += 1;
        }
        if texts.is_empty() {
            return Ok(None);
        }
        let col = Column { name: self.column.clone(), kind: FeatureKind::Text, values: Values::from_strings(texts) };
        Ok(Some((RawInputs::Table(Table { columns: vec![col] }), names)))
    }

    fn total(&self) -> Option<u64> {
        None
    }
}

/// Every image file below a folder, in path order.
struct ImageChunks {
    root: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    image: (usize, usize, usize),
}

/// Every recording below a folder (or one file), decoded as the bundle's clips are.
struct AudioChunks {
    root: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    format: (u32, usize, pipeline_core::raw::Align),
}

impl Chunks for AudioChunks {
    fn next(&mut self, n: usize) -> Result<Option<(RawInputs, Vec<String>)>> {
        if self.next >= self.files.len() {
            return Ok(None);
        }
        let (sample_rate, samples, align) = self.format;
        let files = &self.files[self.next..(self.next + n).min(self.files.len())];
        self.next += files.len();
        let mut values = Vec::with_capacity(files.len() * samples);
        let (mut durations, mut names) = (Vec::new(), Vec::new());
        for f in files {
            let bytes = std::fs::read(f).map_err(|e| io_err(f, &e))?;
            let ext = f.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            let (clip, duration) =
                data_ingest::audio::clip_from_bytes(&bytes, ext.as_deref(), sample_rate, samples, align)
                    .map_err(|e| shape_err(f, e.to_string()))?;
            values.extend(clip);
            durations.push(duration);
            let name = if self.root == *f {
                f.file_name().map(PathBuf::from).unwrap_or_default()
            } else {
                f.strip_prefix(&self.root).unwrap_or(f).to_path_buf()
            };
            names.push(name.to_string_lossy().into_owned());
        }
        Ok(Some((
            RawInputs::Audio(pipeline_core::raw::AudioSet { sample_rate, samples, align, values, durations }),
            names,
        )))
    }

    fn total(&self) -> Option<u64> {
        Some(self.files.len() as u64)
    }
}

fn list_files(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            list_files(&p, extensions, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn list_images(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    list_files(dir, &data_ingest::images::EXTENSIONS, out)
}

impl Chunks for ImageChunks {
    fn next(&mut self, n: usize) -> Result<Option<(RawInputs, Vec<String>)>> {
        if self.next >= self.files.len() {
            return Ok(None);
        }
        let (c, h, w) = self.image;
        let files = &self.files[self.next..(self.next + n).min(self.files.len())];
        self.next += files.len();
        let mut pixels = Vec::with_capacity(files.len() * c * h * w);
        let mut names = Vec::with_capacity(files.len());
        for f in files {
            let bytes = std::fs::read(f).map_err(|e| io_err(f, &e))?;
            let (v, _, _) =
                data_ingest::images::decode(&bytes, c, Some((h, w))).map_err(|e| shape_err(f, e.to_string()))?;
            pixels.extend(v);
            names.push(f.strip_prefix(&self.root).unwrap_or(f).to_string_lossy().into_owned());
        }
        Ok(Some((RawInputs::Images(ImageSet { channels: c, height: h, width: w, pixels }), names)))
    }

    fn total(&self) -> Option<u64> {
        Some(self.files.len() as u64)
    }
}

/// Every recording of `input` (one file, or a folder searched recursively) read at once, in
/// path order, as the bundle's clips (for `dlp drift`; `dlp predict` streams them).
pub fn read_recordings(bundle: &Bundle, input: &Path, format: InputFormat) -> Result<RawInputs> {
    let RawSchema::Audio { sample_rate, samples, align } = bundle.preprocess.raw else {
        return Err(shape_err(input, "recordings fit audio models only"));
    };
    let mut chunks = open(bundle, input, format)?;
    let mut all =
        pipeline_core::raw::AudioSet { sample_rate, samples, align, values: Vec::new(), durations: Vec::new() };
    while let Some((RawInputs::Audio(a), _)) = chunks.next(256)? {
        all.values.extend(a.values);
        all.durations.extend(a.durations);
    }
    Ok(RawInputs::Audio(all))
}

fn open(bundle: &Bundle, input: &Path, format: InputFormat) -> Result<Box<dyn Chunks>> {
    let raw = &bundle.preprocess.raw;
    Ok(match (format, raw) {
        (InputFormat::Idx, _) => Box::new(IdxChunks::open(input, raw)?),
        // Read whole (the columnar and JSON readers type every column at once).
        (InputFormat::Jsonl | InputFormat::Parquet | InputFormat::Arrow, RawSchema::Table { .. }) => {
            match crate::read_inputs(bundle, input, format)? {
                RawInputs::Table(t) => Box::new(TableOnce { table: Some(t) }),
                _ => return Err(shape_err(input, "a table model reads a table")),
            }
        }
        (InputFormat::Jsonl | InputFormat::Parquet | InputFormat::Arrow, _) => {
            return Err(shape_err(input, "JSON Lines, Parquet and Arrow inputs fit table models only"));
        }
        (InputFormat::Csv, _) => Box::new(CsvChunks::open(input, raw)?),
        (InputFormat::Text, RawSchema::Table { columns })
            if columns.len() == 1 && columns[0].kind == FeatureKind::Text =>
        {
            Box::new(TextChunks {
                path: input.into(),
                src: data_ingest::source::Source::open(input, "input")?,
                column: columns[0].name.clone(),
                line: 0,
                row: 0,
            })
        }
        (InputFormat::Text, _) => {
            return Err(shape_err(input, "text lines fit models with a single text column only"));
        }
        (InputFormat::ImageFolder | InputFormat::Audio, RawSchema::Audio { sample_rate, samples, align }) => {
            let mut files = Vec::new();
            if format == InputFormat::Audio {
                files.push(input.to_path_buf());
            } else {
                list_files(input, &data_ingest::audio::EXTENSIONS, &mut files).map_err(|e| io_err(input, &e))?;
            }
            if files.is_empty() {
                return Err(shape_err(input, "no WAV, FLAC, Ogg or MP3 files in this folder"));
            }
            Box::new(AudioChunks { root: input.into(), files, next: 0, format: (*sample_rate, *samples, *align) })
        }
        (InputFormat::Audio, _) => {
            return Err(shape_err(input, "a recording fits audio models only"));
        }
        (InputFormat::ImageFolder, RawSchema::Image { channels, height, width }) => {
            let mut files = Vec::new();
            list_images(input, &mut files).map_err(|e| io_err(input, &e))?;
            if files.is_empty() {
                return Err(shape_err(input, "no PNG, JPEG or BMP files in this folder"));
            }
            Box::new(ImageChunks { root: input.into(), files, next: 0, image: (*channels, *height, *width) })
        }
        (InputFormat::ImageFolder, _) => {
            return Err(shape_err(
                input,
                "a folder (of images or recordings) fits image and audio models only; this model reads named columns",
            ));
        }
    })
}

/// A table read whole: one chunk.
struct TableOnce {
    table: Option<Table>,
}

impl Chunks for TableOnce {
    fn next(&mut self, _n: usize) -> Result<Option<(RawInputs, Vec<String>)>> {
        Ok(self.table.take().map(|t| {
            let names = (0..t.rows()).map(|i| i.to_string()).collect();
            (RawInputs::Table(t), names)
        }))
    }

    fn total(&self) -> Option<u64> {
        self.table.as_ref().map(|t| t.rows() as u64)
    }
}

/// Writes prediction rows as CSV, header first.
struct Writer {
    w: csv::Writer<BufWriter<File>>,
}

impl Writer {
    fn header(&mut self, task: &Task, preds: &Predictions) -> csv::Result<()> {
        let mut head = vec!["row".to_string()];
        match (preds, task) {
            (Predictions::Classes { .. }, Task::Classification { labels }) => {
                head.extend(["label".to_string(), "confidence".into()]);
                head.extend(labels.iter().map(|l| format!("p_{l}")));
            }
            _ => head.push("value".into()),
        }
        self.w.write_record(&head)
    }

    fn rows(&mut self, task: &Task, preds: &Predictions, names: &[String]) -> csv::Result<()> {
        match (preds, task) {
            (Predictions::Classes { probs, classes }, Task::Classification { labels }) => {
                let best = preds.argmax().unwrap_or_default();
                for ((row, b), name) in probs.chunks_exact(*classes).zip(best).zip(names) {
                    let b = b as usize;
                    let mut rec = vec![name.clone(), labels[b].clone(), format!("{:.6}", row[b])];
                    rec.extend(row.iter().map(|p| format!("{p:.6}")));
                    self.w.write_record(&rec)?;
                }
            }
            (Predictions::Values(v), _) => {
                for (x, name) in v.iter().zip(names) {
                    self.w.write_record([name.clone(), x.to_string()])?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether `a` and `b` name the same existing file: through symbolic links, `..`, or (on
/// Unix) hard links, which only the device and inode numbers tell apart.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return (a.dev(), a.ino()) == (b.dev(), b.ino());
        }
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// A forecasting bundle's `dlp predict`: the records of `input` are one series (its recent
/// rows, in time order); the output has one line per step ahead: `time,step,<target>`.
fn forecast_file(
    bundle: &Bundle,
    series: &preprocess::series::SeriesTransform,
    chunks: &mut dyn Chunks,
    input: &Path,
    output: &Path,
    options: &StreamOptions,
) -> Result<usize> {
    let mut table: Option<Table> = None;
    while let Some((inputs, _)) = chunks.next(options.chunk.max(1))? {
        let RawInputs::Table(t) = inputs else { return Err(shape_err(input, "a forecasting model reads a table")) };
        match &mut table {
            None => table = Some(t),
            Some(all) => {
                for (a, b) in all.columns.iter_mut().zip(t.columns) {
                    match (&mut a.values, b.values) {
                        (Values::Numbers(x), Values::Numbers(y)) => x.extend(y),
                        (Values::Strings(x), Values::Strings(y)) => x.extend(y),
                        _ => return Err(shape_err(input, format!("column `{}` changes type between chunks", a.name))),
                    }
                }
            }
        }
    }
    let table = table.ok_or_else(|| shape_err(input, "no records to forecast from"))?;
    let (row, last) = series.window(&table).map_err(|e| shape_err(input, e.to_string()))?;
    let Predictions::Values(values) = bundle.predict_rows(&row)? else {
        return Err(shape_err(input, "a forecasting model predicts values"));
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| Error::Output { path: output.into(), message: e.to_string() };
    w.write_record(["time", "step", series.target.as_str()]).map_err(io)?;
    for (j, (time, v)) in series.forecast_times(Some(&last)).into_iter().zip(&values).enumerate() {
        w.write_record([time, (j + 1).to_string(), v.to_string()]).map_err(io)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Output { path: output.into(), message: e.to_string() })?;
    pipeline_core::run::write_atomic(output, &bytes)
        .map_err(|e| Error::Output { path: output.into(), message: e.to_string() })?;
    Ok(values.len())
}

/// Predicts every record of `input` and writes the CSV to `output` (atomically), a chunk at a
/// time. The bundle must pass [`Bundle::smoke_test`] first, and `output` must not be `input`.
/// Returns the number of records.
pub fn predict_stream(
    bundle: &Bundle,
    input: &Path,
    format: InputFormat,
    output: &Path,
    options: &StreamOptions,
) -> Result<usize> {
    bundle.smoke_test()?;
    if same_file(input, output) {
        return Err(Error::Output {
            path: output.into(),
            message: "is the input file; predictions would overwrite the records they are made from, so write \
                      them to another path"
                .into(),
        });
    }
    let mut chunks = open(bundle, input, format)?;
    let out_err = |e: &dyn std::fmt::Display| Error::Output { path: output.into(), message: e.to_string() };
    if let Some(series) = bundle.preprocess.series() {
        return forecast_file(bundle, series, chunks.as_mut(), input, output, options);
    }
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| out_err(&e))?;
        let mut writer = Writer { w: csv::Writer::from_writer(BufWriter::new(file)) };
        let bar = match (options.progress, chunks.total()) {
            (false, _) => ProgressBar::hidden(),
            (true, Some(n)) => ProgressBar::new(n),
            (true, None) => ProgressBar::no_length(),
        };
        let template = if chunks.total().is_some() {
            "{bar:30} {pos}/{len} records  {per_sec}  eta {eta}"
        } else {
            "{spinner} {pos} records  {per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        let task = bundle.task();
        let mut count = 0;
        while let Some((inputs, names)) = chunks.next(options.chunk.max(1))? {
            let preds = bundle.predict(&inputs).map_err(|e| match e {
                Error::NonFinite { record } => Error::NonFinite {
                    record: record.parse::<usize>().ok().and_then(|i| names.get(i).cloned()).unwrap_or(record),
                },
                e => e,
            })?;
            if count == 0 {
                writer.header(task, &preds).map_err(|e| out_err(&e))?;
            }
            writer.rows(task, &preds, &names).map_err(|e| out_err(&e))?;
            count += names.len();
            bar.inc(names.len() as u64);
        }
        bar.finish_and_clear();
        if count == 0 {
            return Err(shape_err(input, "no records to predict"));
        }
        let file = writer.w.into_inner().map_err(|e| out_err(&e))?.into_inner().map_err(|e| out_err(&e))?;
        file.sync_all().map_err(|e| out_err(&e))?;
        std::fs::rename(&tmp, output).map_err(|e| out_err(&e))?;
        Ok(count)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
