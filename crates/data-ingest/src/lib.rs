//! Reading data sources into [`Dataset`]s with a [`Schema`].
//!
//! The `data:` section of the pipeline YAML ([`DataConfig`]) names the source; [`load`] reads it
//! and returns the dataset together with the identity (path, size, sha256) of every file read,
//! for the run manifest. Sources so far:
//!
//! - [`idx`]: the IDX format of MNIST (optionally gzip-compressed), images and labels;
//! - [`csv`]: numeric CSV feature files, as `dlp predict` takes them.
//!
//! Every malformed input is an [`Error`] that names the file, the record and what was expected;
//! nothing here panics on bad data.
//!
//! What it must not do: transform values (scaling, encoding and splitting belong to
//! `preprocess`). Raw values come out as they are in the file.

pub mod csv;
mod error;
pub mod idx;

use std::path::{Path, PathBuf};

use pipeline_core::config::{Issue, Tagged};
use pipeline_core::run::InputFile;
use pipeline_core::{Dataset, Schema, Targets};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::{Error, Result};

/// The `data:` section: where the data comes from, tagged by `format`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum DataConfig {
    /// An IDX image file and an IDX label file (the MNIST layout).
    Idx(IdxConfig),
}

impl<'de> Deserialize<'de> for DataConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let t = Tagged::read(d, "format", &["idx"])?;
        match t.variant.as_str() {
            "idx" => t.parse().map(DataConfig::Idx),
            other => unreachable!("Tagged::read admits only listed variants, got {other}"),
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

impl DataConfig {
    /// Makes relative paths relative to `base` (the config file's directory), so that a config
    /// means the same thing whatever directory it is run from.
    pub fn resolve_paths(&mut self, base: &Path) {
        match self {
            DataConfig::Idx(c) => {
                for p in [&mut c.images, &mut c.labels] {
                    *p = normalize(&base.join(&*p));
                }
            }
        }
    }

    /// Checks what can be checked before reading: that the files exist.
    pub fn validate(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        match self {
            DataConfig::Idx(c) => {
                for (key, p) in [("data.images", &c.images), ("data.labels", &c.labels)] {
                    if !p.is_file() {
                        issues.push(Issue::new(key, format!("file not found: {}", p.display())));
                    }
                }
                if let Some(names) = &c.label_names
                    && names.is_empty()
                {
                    issues.push(Issue::new("data.label_names", "must name at least one class"));
                }
            }
        }
        issues
    }
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

/// A loaded dataset and the files it came from.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The raw dataset.
    pub dataset: Dataset,
    /// Each file read, with its hash, for the manifest.
    pub inputs: Vec<InputFile>,
}

/// Reads the source that `config` describes.
pub fn load(config: &DataConfig) -> Result<Ingested> {
    match config {
        DataConfig::Idx(c) => load_idx(c),
    }
}

fn load_idx(c: &IdxConfig) -> Result<Ingested> {
    let (images, images_file) = idx::read_file(&c.images, "data.images")?;
    let (labels, labels_file) = idx::read_file(&c.labels, "data.labels")?;
    let dataset = idx::classification_dataset(&images, &labels, c.label_names.as_deref())?;
    Ok(Ingested { dataset, inputs: vec![images_file, labels_file] })
}

/// Reads a whole file, returning its bytes and its [`InputFile`] identity (sha256 of the bytes
/// as stored, before any decompression).
pub fn read_input(path: &Path, role: &str) -> Result<(Vec<u8>, InputFile)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let file = InputFile { role: role.into(), path: path.display().to_string(), sha256, bytes: bytes.len() as u64 };
    Ok((bytes, file))
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dataset(schema: Schema, features: Vec<f32>, classes: Vec<u32>, path: &Path) -> Result<Dataset> {
    Dataset::new(schema, features, Targets::Classes(classes))
        .map_err(|e| Error::Invalid { path: path.into(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_missing_files() {
        let cfg = DataConfig::Idx(IdxConfig {
            images: "/nonexistent/images.gz".into(),
            labels: "/nonexistent/labels.gz".into(),
            label_names: None,
        });
        let issues = cfg.validate();
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].to_string(), "data.images: file not found: /nonexistent/images.gz");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let mut cfg =
            DataConfig::Idx(IdxConfig { images: "../a/./i.gz".into(), labels: "/abs/l.gz".into(), label_names: None });
        cfg.resolve_paths(Path::new("/cfg/configs"));
        let DataConfig::Idx(c) = cfg;
        assert_eq!(c.images, PathBuf::from("/cfg/a/i.gz"));
        assert_eq!(c.labels, PathBuf::from("/abs/l.gz"));
        assert_eq!(normalize(Path::new("../x/../../y")), PathBuf::from("../../y"));
    }

    #[test]
    fn hashes_are_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let (_, f) = read_input(&p, "x").unwrap();
        // sha256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(f.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(f.bytes, 3);
    }
}
