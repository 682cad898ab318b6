//! `dlp init`: a commented, valid pipeline config written from a data file, without YAML by
//! hand.
//!
//! The steps: sniff the file (gzip, IDX magic, delimiter, a header line — including the count
//! header of scikit-learn's bundled CSVs — and a free-text column), read it with the `data:`
//! section so found, summarize it as `dlp inspect` does (column kinds, the target's task and
//! class balance), then choose preprocessing, a model family and training settings for the data's
//! kind and size. Each choice is one rule below, stated in a comment of the written file. The
//! output is checked by loading it as `dlp check` does before it is renamed into place, and the
//! same data always gives the same file.

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use data_ingest::DataConfig;
use data_ingest::summary::{Summary, summarize};
use pipeline_core::FeatureKind;
use pipeline_core::run::write_atomic;

/// What `dlp init` is told.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The data: a delimited file (CSV, TSV, whitespace; gzip or plain), a `label<TAB>text`
    /// file, an IDX file of images, or a folder of class sub-folders of images or texts; local,
    /// or an `hf://datasets/…` path in the hub cache.
    pub data: PathBuf,
    /// The target column (name or 0-based index); absent, a column named like a target
    /// (`target`, `label`, `class`, `y`, …), else the last.
    pub target: Option<String>,
    /// Targets in a file of their own (one per line, in record order), or an IDX file's labels.
    pub target_file: Option<PathBuf>,
    /// `classification` or `regression`; absent, decided from the target.
    pub task: Option<String>,
    /// The pipeline's name (default: the data file's stem).
    pub name: Option<String>,
    /// Where the config is written.
    pub out: PathBuf,
}

/// What was decided, for the command's output.
#[derive(Debug, Clone, PartialEq)]
pub struct InitOutcome {
    /// The file written.
    pub path: PathBuf,
    /// One line per decision.
    pub decisions: Vec<String>,
}

/// The data's kind, as found by sniffing.
#[derive(Debug, Clone, PartialEq)]
enum Sniffed {
    Table(TableSniff),
    TextLines {
        header: bool,
        label_first: bool,
    },
    Idx,
    ImageFolder,
    TextFolder,
    /// Recordings in class folders, at the first recording's sample rate.
    AudioFolder {
        sample_rate: u32,
    },
    /// A CSV listing recordings: the path column, the other columns, a column of parts.
    AudioList {
        sample_rate: u32,
        file: String,
        others: Vec<String>,
        split: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct TableSniff {
    delimiter: Delim,
    header: bool,
    /// scikit-learn's `n_samples,n_features,class names…` first line.
    sklearn: Option<(usize, Vec<String>)>,
    columns: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Delim {
    Comma,
    Tab,
    Semicolon,
    Whitespace,
}

impl Delim {
    fn split(self, line: &str) -> Vec<&str> {
        match self {
            Delim::Comma => line.split(',').collect(),
            Delim::Tab => line.split('\t').collect(),
            Delim::Semicolon => line.split(';').collect(),
            Delim::Whitespace => line.split_whitespace().collect(),
        }
    }

    fn yaml(self) -> Option<&'static str> {
        match self {
            Delim::Comma => None,
            Delim::Tab => Some("\"\\t\""),
            Delim::Semicolon => Some("\";\""),
            Delim::Whitespace => Some("whitespace"),
        }
    }
}

const SAMPLE_LINES: usize = 2000;
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "gif", "webp"];
const TARGET_NAMES: [&str; 8] = ["target", "label", "labels", "class", "y", "outcome", "species", "category"];

fn is_number(s: &str) -> bool {
    let s = s.trim().trim_matches('"');
    !s.is_empty() && s.parse::<f64>().is_ok_and(f64::is_finite)
}

/// The sample rate of the recording at `path` (the rate init chooses for all of them).
fn sample_rate_of(path: &Path) -> Result<u32> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: the first recording", path.display()))?;
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
    let decoded = data_ingest::audio::decode(&bytes, ext.as_deref())
        .with_context(|| format!("{}: reading the first recording", path.display()))?;
    Ok(decoded.sample_rate)
}

fn sniff(path: &Path) -> Result<Sniffed> {
    if path.is_dir() {
        let mut images = 0usize;
        let mut texts = 0usize;
        let mut first_audio: Option<PathBuf> = None;
        let mut audio = 0usize;
        for class in std::fs::read_dir(path).with_context(|| path.display().to_string())? {
            let class = class?.path();
            if !class.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&class)?.take(50) {
                let file = f?.path();
                let ext = file.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
                if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                    images += 1;
                } else if data_ingest::audio::EXTENSIONS.contains(&ext.as_str()) {
                    audio += 1;
                    first_audio.get_or_insert(file);
                } else if ext == "txt" {
                    texts += 1;
                }
            }
        }
        if let Some(first) = first_audio.filter(|_| audio > images.max(texts)) {
            return Ok(Sniffed::AudioFolder { sample_rate: sample_rate_of(&first)? });
        }
        return match (images, texts) {
            (0, 0) => {
                bail!("{}: a data folder needs class sub-folders of images, recordings or .txt files", path.display())
            }
            (i, t) if i >= t => Ok(Sniffed::ImageFolder),
            _ => Ok(Sniffed::TextFolder),
        };
    }
    let mut source = data_ingest::source::Source::open(path, "data")?;
    let head = source.reader().fill_buf().with_context(|| path.display().to_string())?;
    if head.len() >= 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08 && (1..=4).contains(&head[3]) {
        return Ok(Sniffed::Idx);
    }
    let mut lines = Vec::new();
    let mut total = 0usize;
    for line in source.reader().lines() {
        let line = line.with_context(|| format!("{}: not a text file", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        total += 1;
        if lines.len() < SAMPLE_LINES {
            lines.push(line);
        }
    }
    if lines.len() < 2 {
        bail!("{}: fewer than two records", path.display());
    }
    // The delimiter that splits every sampled line (after the first) into the same number (> 1)
    // of fields; the first that does, in this order.
    let body = &lines[1..];
    let delimiter = [Delim::Tab, Delim::Comma, Delim::Semicolon, Delim::Whitespace]
        .into_iter()
        .find(|d| {
            let n = d.split(&body[0]).len();
            n > 1 && body.iter().all(|l| d.split(l).len() == n)
        })
        .or_else(|| {
            // Free text may contain commas: a tab that splits every line in two still decides.
            body.iter().all(|l| l.split('\t').count() == 2).then_some(Delim::Tab)
        })
        .with_context(|| {
            format!("{}: no delimiter (tab, comma, semicolon, whitespace) splits every line alike", path.display())
        })?;
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| delimiter.split(l)).collect();
    let columns = rows[1].len();
    let numeric: Vec<bool> = (0..columns).map(|c| rows[1..].iter().all(|r| is_number(r[c]))).collect();
    // A two-field file whose one non-numeric column is long free text: `label<TAB>text`.
    let words = |c: usize| rows[1..].iter().map(|r| r[c].split_whitespace().count()).sum::<usize>() as f64;
    let n = (rows.len() - 1) as f64;
    let first = &rows[0];
    // scikit-learn's bundled CSVs: `n_samples,n_features,names…` then the rows.
    let sklearn = (first.len() >= 2
        && first[0].trim().parse::<usize>().is_ok_and(|s| s == total - 1)
        && first[1].trim().parse::<usize>().is_ok_and(|d| d + 1 == columns)
        && numeric.iter().all(|&b| b))
    .then(|| (columns - 1, first[2..].iter().map(|s| s.trim().to_string()).collect::<Vec<_>>()));
    let header = sklearn.is_none()
        && (0..columns.min(first.len())).any(|c| {
            if numeric[c] {
                !is_number(first[c])
            } else {
                // A column of repeated values (categories) whose first value is not among them.
                let mut values: Vec<&str> = rows[1..].iter().map(|r| r[c].trim()).collect();
                values.sort_unstable();
                values.dedup();
                values.len() <= 50 && values.len() * 2 < rows.len() && !values.contains(&first[c].trim())
            }
        });
    // A list of recordings: a header, and a column whose every value names an audio file.
    let is_audio = |v: &str| {
        let v = v.trim().to_ascii_lowercase();
        data_ingest::audio::EXTENSIONS.iter().any(|e| v.ends_with(&format!(".{e}")))
    };
    if header && let Some(fc) = (0..columns).find(|&c| rows[1..].iter().all(|r| is_audio(r[c]))) {
        let name = |c: usize| first[c].trim().trim_matches('"').to_string();
        let split = (0..columns)
            .filter(|&c| c != fc)
            .find(|&c| rows[1..].iter().all(|r| pipeline_core::raw::Part::parse(r[c]).is_some()))
            .map(name);
        let others = (0..columns).filter(|&c| c != fc).map(name).filter(|n| Some(n) != split.as_ref()).collect();
        let base = path.parent().unwrap_or(Path::new("."));
        let sample_rate = sample_rate_of(&base.join(rows[1][fc].trim()))?;
        return Ok(Sniffed::AudioList { sample_rate, file: name(fc), others, split });
    }
    if delimiter == Delim::Tab && columns == 2 && sklearn.is_none() {
        let text_col = (0..2).find(|&c| !numeric[c] && words(c) / n >= 4.0);
        if let Some(t) = text_col {
            return Ok(Sniffed::TextLines { header, label_first: t == 1 });
        }
    }
    Ok(Sniffed::Table(TableSniff { delimiter, header, sklearn, columns }))
}

/// `path` relative to `dir` when they share an ancestor, else absolute.
fn relative(dir: &Path, path: &Path) -> String {
    if data_ingest::hub::parse(path).is_some() {
        return path.display().to_string(); // `hf://…`: resolved through the hub cache at run time
    }
    let (Ok(dir), Ok(path)) = (std::path::absolute(dir), std::path::absolute(path)) else {
        return path.display().to_string();
    };
    let norm = |p: &Path| -> Vec<std::ffi::OsString> {
        let mut out: Vec<std::ffi::OsString> = Vec::new();
        for c in p.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other.as_os_str().to_owned()),
            }
        }
        out
    };
    let (d, p) = (norm(&dir), norm(&path));
    let common = d.iter().zip(&p).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        return path.display().to_string();
    }
    let mut rel = PathBuf::new();
    for _ in common..d.len() {
        rel.push("..");
    }
    for c in &p[common..] {
        rel.push(c);
    }
    rel.display().to_string()
}

fn yaml_str(s: &str) -> String {
    serde_yaml::to_string(s).map(|y| y.trim_end().to_string()).unwrap_or_else(|_| format!("{s:?}"))
}

/// Writes the config for `options.data` to `options.out`.
pub fn init(options: &InitOptions) -> Result<InitOutcome> {
    let out_dir = options.out.parent().map(Path::to_path_buf).unwrap_or_default();
    let out_dir = if out_dir.as_os_str().is_empty() { PathBuf::from(".") } else { out_dir };
    std::fs::create_dir_all(&out_dir).with_context(|| out_dir.display().to_string())?;
    let sniffed = sniff(&options.data)?;
    let data_path = relative(&out_dir, &options.data);
    let mut decisions = Vec::new();
    let mut data = String::from("data:\n");
    let target_file = options.target_file.as_ref().map(|p| relative(&out_dir, p));
    let task_line = |task: &str| format!("  task: {task}\n");
    match &sniffed {
        Sniffed::Table(t) => {
            let _ = writeln!(data, "  format: csv");
            let _ = writeln!(data, "  path: {}", yaml_str(&data_path));
            if let Some(d) = t.delimiter.yaml() {
                let _ = writeln!(data, "  delimiter: {d}");
            }
            if let Some((features, labels)) = &t.sklearn {
                let _ = writeln!(
                    data,
                    "  # The first line is scikit-learn's count header (records, features, class names), not names."
                );
                let _ = writeln!(data, "  header: false\n  skip_rows: 1");
                let names: Vec<String> =
                    (0..*features).map(|i| format!("feature_{i}")).chain(["target".to_string()]).collect();
                let _ = writeln!(data, "  names: [{}]", names.join(", "));
                let _ = writeln!(data, "  target: target");
                let labels: Vec<String> = labels.iter().map(|l| yaml_str(l)).collect();
                if !labels.is_empty() {
                    let _ = writeln!(data, "  label_names: [{}]", labels.join(", "));
                }
                decisions.push(format!("scikit-learn count header: {features} features, classes {labels:?}"));
            } else {
                let _ = writeln!(data, "  header: {}", t.header);
                if target_file.is_none() {
                    let target = match &options.target {
                        Some(t) => t.clone(),
                        None => (t.columns - 1).to_string(),
                    };
                    let target = if target.parse::<usize>().is_ok() { target } else { yaml_str(&target) };
                    // Filled in after reading, when a header gives a better-named column.
                    let _ = writeln!(data, "  target: {target}    # TARGET");
                }
            }
            if let Some(f) = &target_file {
                let _ = writeln!(data, "  target_file: {}    # one target per line, in record order", yaml_str(f));
            }
        }
        Sniffed::TextLines { header, label_first } => {
            let _ = writeln!(data, "  format: text_lines\n  path: {}", yaml_str(&data_path));
            let _ = writeln!(data, "  separator: \"\\t\"\n  header: {header}");
            if !label_first {
                let _ = writeln!(data, "  label_first: false");
            }
            decisions.push("label<TAB>text lines".into());
        }
        Sniffed::Idx => {
            let labels = target_file.as_ref().context(
                "an IDX file of images needs its labels file: give it with --target-file (e.g. t10k-labels-idx1-ubyte.gz)",
            )?;
            let _ = writeln!(data, "  format: idx\n  images: {}\n  labels: {}", yaml_str(&data_path), yaml_str(labels));
        }
        Sniffed::ImageFolder => {
            let _ = writeln!(
                data,
                "  format: image_folder    # one sub-folder per class\n  path: {}",
                yaml_str(&data_path)
            );
        }
        Sniffed::TextFolder => {
            let _ =
                writeln!(data, "  format: text_folder    # one sub-folder per class\n  path: {}", yaml_str(&data_path));
        }
        Sniffed::AudioFolder { sample_rate } => {
            let _ = writeln!(
                data,
                "  format: audio_folder    # one sub-folder per class\n  path: {}\n  \
                 sample_rate: {sample_rate}       # the first recording's rate; others are resampled to it\n  \
                 align: center            # crop long recordings around their middle, pad short ones both sides",
                yaml_str(&data_path)
            );
            decisions.push(format!("recordings at {sample_rate} Hz"));
        }
        Sniffed::AudioList { sample_rate, file, others, split } => {
            let label = options
                .target
                .clone()
                .or_else(|| others.iter().find(|o| TARGET_NAMES.contains(&o.to_lowercase().as_str())).cloned())
                .or_else(|| others.first().cloned())
                .context("the list of recordings needs a label column")?;
            let _ = writeln!(
                data,
                "  format: audio_list      # one recording per line\n  path: {}\n  file_column: {}\n  target: {}",
                yaml_str(&data_path),
                yaml_str(file),
                yaml_str(&label)
            );
            if let Some(split) = split {
                let _ = writeln!(data, "  split_column: {}      # the list's own train / test parts", yaml_str(split));
                decisions.push(format!("the split of column `{split}`"));
            }
            let _ = writeln!(
                data,
                "  sample_rate: {sample_rate}       # the first recording's rate; others are resampled to it\n  \
                 align: center           # crop long recordings around their middle, pad short ones both sides"
            );
            decisions.push(format!("a list of recordings at {sample_rate} Hz"));
        }
    }
    if let Some(task) = &options.task {
        if !matches!(task.as_str(), "classification" | "regression") {
            bail!("--task must be classification or regression, got {task}");
        }
        if matches!(sniffed, Sniffed::Table(_)) {
            data.push_str(&task_line(task));
        }
    }

    // Read the data with this section, as `dlp inspect` does.
    let read = |data: &str| -> Result<Summary> {
        let mut config: DataConfig = serde_yaml::from_str::<serde_yaml::Value>(data)
            .ok()
            .and_then(|v| serde_yaml::from_value(v["data"].clone()).ok())
            .context("the data section init wrote does not parse (a bug)")?;
        config.resolve_paths(&std::path::absolute(&out_dir)?);
        let ingested = data_ingest::load(&config).context("reading the data")?;
        Ok(summarize(&ingested.data, &config.target_spec()))
    };
    let mut summary = read(&data.replace("    # TARGET", ""))?;
    // A header names the columns: prefer a target-like name to the last column.
    if let Sniffed::Table(t) = &sniffed
        && t.header
        && options.target.is_none()
        && target_file.is_none()
        && let Some(name) = summary
            .columns
            .iter()
            .chain(summary.target.iter())
            .map(|c| c.name.clone())
            .find(|n| TARGET_NAMES.contains(&n.to_lowercase().as_str()))
    {
        let last = format!("  target: {}    # TARGET", t.columns - 1);
        data = data.replace(&last, &format!("  target: {}", yaml_str(&name)));
        summary = read(&data)?;
    }
    data = data.replace("    # TARGET", "");
    // Recordings: one clip length for all, twice the median recording (at most the longest),
    // rounded up to 50 ms.
    if matches!(sniffed, Sniffed::AudioFolder { .. } | Sniffed::AudioList { .. })
        && let Some(d) = summary.columns.iter().find(|c| c.name == "duration_s").and_then(|c| c.numeric.as_ref())
    {
        let seconds = ((2.0 * d.median).min(d.max) * 20.0).ceil() / 20.0;
        let _ = writeln!(
            data,
            "  duration: {seconds}           # seconds: twice the median recording ({:.2} s; the longest is {:.2} s)",
            d.median, d.max
        );
        decisions.push(format!("clips of {seconds} s (median recording {:.2} s)", d.median));
    }
    // A numeric column of two values is a flag (sex, yes / no as 0 / 1): one-hot encoded.
    let flags: Vec<String> = summary
        .columns
        .iter()
        .filter(|c| c.kind == FeatureKind::Numeric && c.distinct == 2)
        .map(|c| format!("{}: categorical", yaml_str(&c.name)))
        .collect();
    if !flags.is_empty() && matches!(sniffed, Sniffed::Table(_)) {
        let at = data.find("  target").or_else(|| data.find("  task")).unwrap_or(data.len());
        data.insert_str(
            at,
            &format!("  kinds: {{{}}}    # two values each: flags, one-hot encoded\n", flags.join(", ")),
        );
        decisions.push(format!("{} two-valued numeric column(s) read as categories", flags.len()));
        // The summary as the new kinds would give it: only the kind changes, no need to read again.
        for c in summary.columns.iter_mut().filter(|c| c.kind == FeatureKind::Numeric && c.distinct == 2) {
            c.kind = FeatureKind::Categorical;
        }
    }
    let target = summary.target.clone().context("the data has no target column")?;
    let classification = match options.task.as_deref() {
        Some(t) => t == "classification",
        None => target.numeric.is_none(),
    };
    if classification && target.top.len() < 2 {
        bail!("the target `{}` has {} class: nothing to learn", target.name, target.top.len());
    }
    let rows = summary.rows;
    let kind = if summary.audio.is_some() {
        "audio"
    } else if summary.image.is_some() {
        "images"
    } else if summary.columns.iter().any(|c| c.kind == FeatureKind::Text) {
        "text"
    } else {
        "table"
    };
    let task = if classification { "classification" } else { "regression" };
    decisions.push(format!("{rows} records of {kind}; target `{}`: {task}", target.name));
    if classification {
        let counts: Vec<String> = target.top.iter().map(|(l, n)| format!("{l} {n}")).collect();
        decisions.push(format!("class balance: {}", counts.join(", ")));
    }

    let yaml = compose(&options.name_or(&options.data), &data, &summary, kind, classification, rows);
    // Checked as `dlp check` would, then put in place.
    let staged = out_dir.join(format!(
        ".{}.init-check.yaml",
        options.out.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default()
    ));
    std::fs::write(&staged, &yaml).with_context(|| staged.display().to_string())?;
    let checked = crate::config::load(&staged);
    let _ = std::fs::remove_file(&staged);
    if let Err(e) = checked {
        bail!("the config init composed does not pass the checks (a bug): {e}");
    }
    write_atomic(&options.out, yaml.as_bytes())?;
    Ok(InitOutcome { path: options.out.clone(), decisions })
}

impl InitOptions {
    fn name_or(&self, data: &Path) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let stem = data.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_else(|| "pipeline".into());
        let stem = stem.split('.').next().unwrap_or("pipeline").to_lowercase();
        let clean: String = stem.chars().map(|c| if c.is_alphanumeric() { c } else { '-' }).collect();
        if clean.is_empty() { "pipeline".into() } else { clean }
    }
}

/// The whole config: header, the data section, and the choices for the data's kind and size.
fn compose(name: &str, data: &str, summary: &Summary, kind: &str, classification: bool, rows: usize) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "# Written by `dlp init` from the data ({rows} records of {kind}); edit freely.");
    let _ = writeln!(y, "# Every key is documented in docs/configuration.md; `dlp check` validates the file.");
    let _ = writeln!(y, "name: {}", yaml_str(name));
    let _ = writeln!(y, "seed: 42                  # every random choice (split, init, shuffling) derives from it\n");
    y.push_str(data);
    y.push('\n');
    let missing = summary.columns.iter().any(|c| c.missing > 0);
    let categorical = summary.columns.iter().filter(|c| c.kind == FeatureKind::Categorical).count();
    y.push_str("preprocess:\n");
    match kind {
        "images" => {
            let img = summary.image.as_ref();
            let _ = writeln!(y, "  scale: pixel             # 8-bit pixels divided by 255");
            let _ = writeln!(
                y,
                "  split: {{train: 0.7, validation: 0.1, test: 0.2}}   # the validation part drives early stopping"
            );
            if let Some(i) = img {
                let _ = writeln!(
                    y,
                    "  # images are {} x {} x {} (channels x height x width)",
                    i.channels, i.height, i.width
                );
            }
        }
        "audio" => {
            let rate = summary.audio.as_ref().map_or(16_000, |a| a.sample_rate);
            // About 32 ms windows and a 10 ms hop; 40 mel bands below 16 kHz, 64 from it.
            let n_fft = ((f64::from(rate) * 0.032) as usize).next_power_of_two();
            let hop = (rate / 100) as usize;
            let mels = if rate >= 16_000 { 64 } else { 40 };
            let _ =
                writeln!(y, "  scale: standard          # each mel band by its training mean and standard deviation");
            if data.contains("  split_column: ") {
                let _ = writeln!(
                    y,
                    "  split: {{from_data: true, validation: 0.1}}   # the list's test part; 10 % of its training part validates"
                );
            } else {
                let _ = writeln!(
                    y,
                    "  split: {{train: 0.7, validation: 0.1, test: 0.2}}   # the validation part tracks over-fitting"
                );
            }
            let _ = writeln!(
                y,
                "  audio: {{features: log_mel, n_fft: {n_fft}, hop_length: {hop}, n_mels: {mels}}}   # ~32 ms windows, 10 ms hop"
            );
        }
        "text" => {
            let _ = writeln!(
                y,
                "  split: {{train: 0.8, validation: 0.0, test: 0.2}}   # a linear model needs no validation part"
            );
            y.push_str(
                "  text:\n    # Character n-grams inside word boundaries (2 to 4 characters), as scikit-learn's\n\
                 \x20   # TfidfVectorizer(analyzer=\"char_wb\"): robust to misspellings and odd tokens.\n\
                 \x20   tokenizer: {kind: ngrams, analyzer: char_wb, ngram_range: [2, 4], min_df: 2, max_features: 20000}\n\
                 \x20   output: tfidf\n\
                 \x20   sublinear_tf: true      # 1 + ln(count): a word said five times is not five times the evidence\n",
            );
        }
        _ => {
            let _ = writeln!(y, "  scale: standard          # training mean and standard deviation, per column");
            if missing {
                y.push_str(
                    "  missing: {numeric: median, categorical: most_frequent}   # fitted on the training part\n",
                );
            }
            if categorical > 0 {
                let _ = writeln!(
                    y,
                    "  categorical: {{encoding: one_hot, unknown: ignore}}   # {categorical} categorical column(s)"
                );
            }
            let validation = if rows >= 5000 { "0.1" } else { "0.0" };
            let why = if rows >= 5000 {
                "the validation part drives early stopping"
            } else {
                "few records: train on all of the rest, as scikit-learn's cross_val_score does"
            };
            let _ = writeln!(y, "  split: {{train: 0.8, validation: {validation}, test: 0.2}}   # {why}");
        }
    }
    y.push('\n');
    let (model, train) = match (kind, classification) {
        ("images", true) => (
            "model:\n  arch: lenet5              # two convolutions and three dense layers: a strong small-image CNN\n"
                .to_string(),
            "train:\n  epochs: 15\n  batch_size: 64\n  optimizer: {kind: adamw, lr: 0.001, weight_decay: 0.0001}\n\
             \x20 early_stopping: {monitor: val_loss, patience: 3}   # best weights restored\n"
                .to_string(),
        ),
        ("audio", _) => (
            "model:\n  # A small CNN over the log-mel spectrogram (bands x frames, one channel).\n  arch: cnn\n  blocks:\n\
             \x20   - {channels: 16, kernel: 3, padding: 1, pool: 2}\n\
             \x20   - {channels: 32, kernel: 3, padding: 1, pool: 2}\n  hidden: [64]\n  dropout: 0.3\n"
                .to_string(),
            "train:\n  epochs: 30\n  batch_size: 32\n  optimizer: {kind: adamw, lr: 0.002, weight_decay: 0.01}\n\
             \x20 schedule: {kind: cosine}\n\
             \x20 augment:                 # SpecAugment, every epoch\n\
             \x20   - {kind: time_mask, max_width: 8}\n    - {kind: freq_mask, max_width: 6}\n\
             \x20 augment_audio:           # augmented copies of each training recording\n    copies: 2\n\
             \x20   transforms:\n      - {kind: shift, seconds: 0.08}\n      - {kind: gain, db: [-6, 6]}\n\
             \x20     - {kind: noise, snr_db: [15, 40]}\n"
                .to_string(),
        ),
        ("text", true) => (
            "model:\n  # Logistic regression on the n-grams, solved exactly (L-BFGS): on text it is hard to beat.\n\
             \x20 arch: logistic\n  c: 10.0                   # inverse regularisation (scikit-learn's C)\n"
                .to_string(),
            String::new(),
        ),
        (_, true) if rows < 1000 => (
            "model:\n  # Few records: softmax regression, solved exactly; an MLP rarely beats it at this size.\n\
             \x20 arch: logistic\n  c: 1.0                    # inverse regularisation (scikit-learn's C)\n"
                .to_string(),
            String::new(),
        ),
        (_, true) => (
            "model:\n  arch: mlp\n  hidden: [256]             # one wide hidden layer\n  activation: relu\n\
             \x20 dropout: 0.2\n"
                .to_string(),
            format!(
                "train:\n  epochs: 60\n  batch_size: 32\n  optimizer: {{kind: adamw, lr: 0.001, weight_decay: 0.01}}\n\
                 \x20 schedule: {{kind: cosine}}   # the learning rate decays to zero over the epochs\n{}",
                if rows >= 5000 {
                    "  early_stopping: {monitor: val_loss, patience: 8}   # best weights restored\n"
                } else {
                    ""
                }
            ),
        ),
        (_, false) if rows < 1000 => (
            "model:\n  # Few records: a small smooth network, kept in check by dropout and an L2 penalty.\n\
             \x20 arch: mlp\n  hidden: [16]\n  activation: tanh\n  dropout: 0.1\n"
                .to_string(),
            "train:\n  epochs: 400\n  batch_size: 32\n  optimizer: {kind: adamw, lr: 0.001, weight_decay: 0.0}\n\
             \x20 penalty: {l2: 0.001}\n\
             \x20 loss: {kind: huber, delta: 1.0}   # on standardized targets: robust to the few extreme records\n"
                .to_string(),
        ),
        (_, false) => (
            "model:\n  arch: mlp\n  hidden: [128, 64]\n  activation: relu\n  dropout: 0.1\n".to_string(),
            format!(
                "train:\n  epochs: 100\n  batch_size: 64\n  optimizer: {{kind: adamw, lr: 0.001, weight_decay: 0.01}}\n\
                 \x20 schedule: {{kind: cosine}}\n{}",
                if rows >= 5000 {
                    "  early_stopping: {monitor: val_loss, patience: 10}   # best weights restored\n"
                } else {
                    ""
                }
            ),
        ),
    };
    y.push_str(&model);
    if !train.is_empty() {
        y.push('\n');
        y.push_str(&train);
    }
    y.push_str(
        "\neval:\n  baselines: true           # the report compares with the class prior / mean and a linear model\n",
    );
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniffed(text: &str) -> Sniffed {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.txt");
        std::fs::write(&p, text).unwrap();
        sniff(&p).unwrap()
    }

    #[test]
    fn sniffs_delimiters_and_headers() {
        let t = |s: &str| match sniffed(s) {
            Sniffed::Table(t) => t,
            other => panic!("{other:?}"),
        };
        let a = t("x,y,label\n1,2,a\n3,4,b\n5,6,a\n");
        assert_eq!((a.delimiter, a.header, a.columns), (Delim::Comma, true, 3));
        let b = t("1 2 3\n4 5 6\n7 8 9\n");
        assert_eq!((b.delimiter, b.header), (Delim::Whitespace, false));
        let c = t("a;b\n1;x\n2;y\n");
        assert_eq!((c.delimiter, c.header), (Delim::Semicolon, true));
        // scikit-learn's count header: 3 records, 2 features, class names.
        let d = t("3,2,setosa,versicolor\n1.0,2.0,0\n1.5,2.5,1\n0.5,0.1,0\n");
        assert_eq!(d.sklearn, Some((2, vec!["setosa".into(), "versicolor".into()])));
        assert!(!d.header);
        // Not one: the count does not match the records.
        let e = t("9,2,a,b\n1.0,2.0,0\n1.5,2.5,1\n");
        assert_eq!(e.sklearn, None);
    }

    #[test]
    fn sniffs_label_and_text_lines() {
        let s = sniffed(
            "label\ttext\nham\tsee you at the station later tonight ok\nspam\tWIN a free prize now, call 0800 today\n\
             ham\tare we still on for dinner later\nspam\turgent you have won a cash prize\n",
        );
        assert_eq!(s, Sniffed::TextLines { header: true, label_first: true });
        let s = sniffed(
            "see you at the station later tonight\tham\nwin a free prize now call today\tspam\n\
             are we still on for dinner later\tham\nurgent you have won a cash prize\tspam\n",
        );
        assert_eq!(s, Sniffed::TextLines { header: false, label_first: false });
    }

    #[test]
    fn paths_are_written_relative_to_the_config() {
        assert_eq!(relative(Path::new("/a/b/configs"), Path::new("/a/b/data/x.csv")), "../data/x.csv");
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b/x.csv")), "x.csv");
        assert_eq!(relative(Path::new("/tmp/c"), Path::new("/work/x.csv")), "/work/x.csv");
        let hub = "hf://datasets/owner/name/train.csv";
        assert_eq!(relative(Path::new("/tmp/c"), Path::new(hub)), hub);
    }
}
