//! Numeric feature matrices in CSV (e.g. MNIST pixels as `pixel_0` … `pixel_783`), as `dlp predict`
//! takes them for image models.
//!
//! The first row is a header when any of its fields is not a number. With a header, columns are
//! matched to the model's features by name (extra columns, such as a label, are ignored); without
//! one, every row must have exactly one value per feature, in schema order.

use std::path::Path;

use pipeline_core::run::InputFile;

use crate::{Error, Result};

/// Feature rows read from a CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRows {
    /// Row-major values, `rows × names.len()`.
    pub values: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
}

/// Reads the features `names` from the CSV file at `path` (gzip or plain).
pub fn read_features(path: &Path, names: &[String], role: &str) -> Result<(FeatureRows, InputFile)> {
    let (text, file) = crate::source::read_file(path, role)?;
    Ok((parse_features(path, &text, names)?, file))
}

/// Parses CSV `bytes` (read from `path`) into the features `names`.
pub fn parse_features(path: &Path, bytes: &[u8], names: &[String]) -> Result<FeatureRows> {
    let mut reader = ::csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut records = reader.byte_records();
    let csv_err = |e: ::csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        Error::Record { path: path.into(), line, message: e.to_string() }
    };
    let Some(first) = records.next().transpose().map_err(csv_err)? else {
        return Err(Error::format(path, "empty file: expected a header or rows of feature values"));
    };
    let is_header = first.iter().any(|f| parse_number(f).is_none());
    // columns[j] = which CSV column holds feature j.
    let columns: Vec<usize> = if is_header {
        let header: Vec<String> = first.iter().map(|f| String::from_utf8_lossy(f).trim().to_string()).collect();
        names
            .iter()
            .map(|n| {
                header.iter().position(|h| h == n).ok_or_else(|| Error::Record {
                    path: path.into(),
                    line: 1,
                    message: format!(
                        "header has no column `{n}`: the model needs {} feature columns ({}{})",
                        names.len(),
                        names.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                        if names.len() > 3 { ", …" } else { "" }
                    ),
                })
            })
            .collect::<Result<_>>()?
    } else {
        (0..names.len()).collect()
    };
    let mut values = Vec::new();
    let mut rows = 0;
    let mut push = |rec: &::csv::ByteRecord| -> Result<()> {
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if !is_header && rec.len() != names.len() {
            return Err(Error::Record {
                path: path.into(),
                line,
                message: format!("expected {} fields, found {}", names.len(), rec.len()),
            });
        }
        for (j, &c) in columns.iter().enumerate() {
            let Some(field) = rec.get(c) else {
                return Err(Error::Record {
                    path: path.into(),
                    line,
                    message: format!("expected at least {} fields, found {}", c + 1, rec.len()),
                });
            };
            let Some(v) = parse_number(field) else {
                let message = match std::str::from_utf8(field) {
                    Err(e) => format!("column `{}`: not valid UTF-8 at byte {}", names[j], e.valid_up_to()),
                    Ok(text) => format!("column `{}`: cannot parse {text:?} as a number", names[j]),
                };
                return Err(Error::Record { path: path.into(), line, message });
            };
            if !v.is_finite() {
                return Err(Error::Record {
                    path: path.into(),
                    line,
                    message: format!("column `{}`: {v} is not a finite number", names[j]),
                });
            }
            values.push(v);
        }
        rows += 1;
        Ok(())
    };
    if !is_header {
        push(&first)?;
    }
    for rec in records {
        push(&rec.map_err(csv_err)?)?;
    }
    if rows == 0 {
        return Err(Error::format(path, "no data rows after the header"));
    }
    Ok(FeatureRows { values, rows })
}

fn parse_number(field: &[u8]) -> Option<f32> {
    std::str::from_utf8(field).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn parse(s: &str) -> Result<FeatureRows> {
        parse_features(Path::new("f.csv"), s.as_bytes(), &names())
    }

    #[test]
    fn with_header_columns_are_matched_by_name() {
        let r = parse("label,b,a\n7,2,1\n8,4,3\n").unwrap();
        assert_eq!(r.rows, 2);
        assert_eq!(r.values, vec![1., 2., 3., 4.]);
    }

    #[test]
    fn without_header_columns_are_positional() {
        let r = parse("1,2\n3.5,-4e1\n").unwrap();
        assert_eq!(r.values, vec![1., 2., 3.5, -40.]);
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        assert_eq!(parse("1,2\n3\n").unwrap_err().to_string(), "f.csv:2: expected 2 fields, found 1");
        assert_eq!(parse("a,b\n1,x\n").unwrap_err().to_string(), "f.csv:2: column `b`: cannot parse \"x\" as a number");
        assert_eq!(parse("a,b\n1,inf\n").unwrap_err().to_string(), "f.csv:2: column `b`: inf is not a finite number");
        assert_eq!(
            parse("a,c\n1,2\n").unwrap_err().to_string(),
            "f.csv:1: header has no column `b`: the model needs 2 feature columns (a, b)"
        );
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "f.csv: empty file: expected a header or rows of feature values"
        );
        assert_eq!(parse("a,b\n").unwrap_err().to_string(), "f.csv: no data rows after the header");
        let bytes = b"a,b\n1,\xff\n";
        let err = parse_features(Path::new("f.csv"), bytes, &names()).unwrap_err().to_string();
        assert_eq!(err, "f.csv:2: column `b`: not valid UTF-8 at byte 0");
    }
}
