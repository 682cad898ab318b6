//! Text datasets: `label<separator>text` lines (the SMS spam layout), and one file per document
//! in one folder per class.

use std::path::{Path, PathBuf};

use pipeline_core::FeatureKind;
use pipeline_core::raw::{Column, Table, Values};
use pipeline_core::run::InputFile;
use sha2::{Digest, Sha256};

use crate::source::Source;
use crate::table::{BadRecord, OnBadRecord, ReadReport};
use crate::{Error, Result};

/// Texts and their labels.
#[derive(Debug, Clone)]
pub struct TextRead {
    /// One text column.
    pub table: Table,
    /// The label column (categorical).
    pub target: Column,
    /// The files read (one entry for a folder).
    pub input: InputFile,
    /// Bad records.
    pub report: ReadReport,
}

fn columns(
    text_name: &str,
    label_name: &str,
    texts: Vec<Option<String>>,
    labels: Vec<Option<String>>,
) -> (Table, Column) {
    (
        Table {
            columns: vec![Column {
                name: text_name.into(),
                kind: FeatureKind::Text,
                values: Values::from_strings(texts),
            }],
        },
        Column { name: label_name.into(), kind: FeatureKind::Categorical, values: Values::from_strings(labels) },
    )
}

/// Reads `label<sep>text` lines (`text<sep>label` when `label_first` is false), splitting at the
/// first separator so texts may contain it. With `header`, the first line names the two columns.
pub fn read_lines(
    path: &Path,
    role: &str,
    sep: &str,
    header: bool,
    label_first: bool,
    on_bad: OnBadRecord,
) -> Result<TextRead> {
    let mut source = Source::open(path, role)?;
    let path: PathBuf = source.path().into();
    let mut report = ReadReport::default();
    let (mut texts, mut labels) = (Vec::new(), Vec::new());
    let mut names = ("label".to_string(), "text".to_string());
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        if source.reader().read_until(b'\n', &mut buf).map_err(|e| Error::io(&path, e))? == 0 {
            break;
        }
        line += 1;
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        if buf.is_empty() {
            continue;
        }
        let parsed = std::str::from_utf8(&buf)
            .map_err(|e| format!("not valid UTF-8 (byte {})", e.valid_up_to()))
            .and_then(|s| s.split_once(sep).ok_or_else(|| format!("no {sep:?} separating the label from the text")));
        let (a, b) = match parsed {
            Ok(ab) => ab,
            Err(reason) => {
                match on_bad {
                    OnBadRecord::Fail => return Err(Error::Record { path, line, message: reason }),
                    OnBadRecord::Skip => report.bad(BadRecord { file: path.display().to_string(), line, reason }),
                }
                continue;
            }
        };
        let (label, text) = if label_first { (a, b) } else { (b, a) };
        if header && line == 1 {
            names = (label.trim().to_string(), text.trim().to_string());
            continue;
        }
        labels.push(Some(label.trim().to_string()));
        texts.push(Some(text.to_string()));
    }
    if texts.is_empty() {
        return Err(Error::format(&path, "no records"));
    }
    report.records = texts.len();
    let input = source.finish()?;
    let (table, target) = columns(&names.1, &names.0, texts, labels);
    Ok(TextRead { table, target, input, report })
}

/// The class folders of `root` (sorted) and their files (sorted), skipping hidden entries.
pub(crate) fn class_files(root: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let list = |dir: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
            .collect();
        v.sort();
        Ok(v)
    };
    let mut classes = Vec::new();
    for dir in list(root)?.into_iter().filter(|p| p.is_dir()) {
        let files: Vec<PathBuf> = list(&dir)?.into_iter().filter(|p| p.is_file() && keep(p)).collect();
        if !files.is_empty() {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            classes.push((name, files));
        }
    }
    if classes.is_empty() {
        return Err(Error::format(root, "no class folders with files: expected <folder>/<class>/<file>"));
    }
    Ok(classes)
}

/// The identity of a folder of files: sha256 over each file's relative path and content hash.
pub(crate) fn folder_identity(root: &Path, role: &str, files: &[(PathBuf, [u8; 32], u64)]) -> InputFile {
    let mut h = Sha256::new();
    let mut bytes = 0;
    for (p, digest, n) in files {
        h.update(p.strip_prefix(root).unwrap_or(p).to_string_lossy().as_bytes());
        h.update([0]);
        h.update(digest);
        bytes += n;
    }
    InputFile {
        role: role.into(),
        path: root.display().to_string(),
        sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        bytes,
    }
}

/// Reads one text file per document from `root/<class>/`.
pub fn read_folder(root: &Path, role: &str, on_bad: OnBadRecord) -> Result<TextRead> {
    let classes = class_files(root, &|_| true)?;
    let mut report = ReadReport::default();
    let (mut texts, mut labels, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for (class, files) in classes {
        for f in files {
            let bytes = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
            ids.push((f.clone(), Sha256::digest(&bytes).into(), bytes.len() as u64));
            match String::from_utf8(bytes) {
                Ok(t) => {
                    texts.push(Some(t));
                    labels.push(Some(class.clone()));
                }
                Err(e) => {
                    let reason = format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to());
                    match on_bad {
                        OnBadRecord::Fail => return Err(Error::format(&f, reason)),
                        OnBadRecord::Skip => report.bad(BadRecord { file: f.display().to_string(), line: 0, reason }),
                    }
                }
            }
        }
    }
    report.records = texts.len();
    let input = folder_identity(root, role, &ids);
    let (table, target) = columns("text", "label", texts, labels);
    Ok(TextRead { table, target, input, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.tsv");
        std::fs::write(&p, "Label\tSMS\nham\tsee you\tlater\r\n\nspam\tWIN \"cash\" &lt;now&gt;\n").unwrap();
        let r = read_lines(&p, "data", "\t", true, true, OnBadRecord::Fail).unwrap();
        assert_eq!(r.table.columns[0].name, "SMS");
        assert_eq!(r.target.name, "Label");
        assert_eq!(r.table.columns[0].values.text(0).as_deref(), Some("see you\tlater"));
        assert_eq!(r.target.values.text(1).as_deref(), Some("spam"));
        assert_eq!(r.report.records, 2);
    }

    #[test]
    fn bad_lines_fail_or_skip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.tsv");
        std::fs::write(&p, b"ham\tok\nno separator here\nspam\t\xfe\n").unwrap();
        let err = read_lines(&p, "data", "\t", false, true, OnBadRecord::Fail).unwrap_err();
        assert_eq!(err.to_string(), format!("{}:2: no \"\\t\" separating the label from the text", p.display()));
        let r = read_lines(&p, "data", "\t", false, true, OnBadRecord::Skip).unwrap();
        assert_eq!((r.report.records, r.report.skipped), (1, 2));
        assert_eq!(r.report.bad_records[1].reason, "not valid UTF-8 (byte 5)");
    }

    #[test]
    fn folders_by_class() {
        let dir = tempfile::tempdir().unwrap();
        for (class, name, text) in
            [("neg", "a.txt", "bad film"), ("pos", "b.txt", "great film"), ("pos", "c.txt", "loved it")]
        {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            std::fs::write(dir.path().join(class).join(name), text).unwrap();
        }
        let r = read_folder(dir.path(), "data", OnBadRecord::Fail).unwrap();
        assert_eq!(r.target.values, Values::Strings(vec![Some("neg".into()), Some("pos".into()), Some("pos".into())]));
        assert_eq!(r.table.columns[0].values.text(2).as_deref(), Some("loved it"));
        let again = read_folder(dir.path(), "data", OnBadRecord::Fail).unwrap();
        assert_eq!(r.input.sha256, again.input.sha256);
        std::fs::write(dir.path().join("pos/c.txt"), "changed").unwrap();
        assert_ne!(read_folder(dir.path(), "data", OnBadRecord::Fail).unwrap().input.sha256, r.input.sha256);
    }
}
