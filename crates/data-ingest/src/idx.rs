//! The IDX format (Y. LeCun's, used by MNIST): a 4-byte magic number `0x00 0x00 <type>
//! <ndims>`, then `ndims` big-endian `u32` sizes, then the values, big-endian, row-major.
//! Files may be gzip-compressed (detected by content, not by name).

use std::io::Read;
use std::path::{Path, PathBuf};

use pipeline_core::raw::{Column, ImageSet, RawDataset, RawInputs, Table, Values};
use pipeline_core::run::InputFile;
use pipeline_core::{Feature, FeatureKind, InputSchema};

use crate::{Error, Result};

/// The element type of an IDX file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxType {
    /// `0x08`: unsigned byte.
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: 16-bit integer.
    I16,
    /// `0x0C`: 32-bit integer.
    I32,
    /// `0x0D`: 32-bit float.
    F32,
    /// `0x0E`: 64-bit float.
    F64,
}

impl IdxType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x08 => Self::U8,
            0x09 => Self::I8,
            0x0B => Self::I16,
            0x0C => Self::I32,
            0x0D => Self::F32,
            0x0E => Self::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    fn is_integer(self) -> bool {
        !matches!(self, Self::F32 | Self::F64)
    }
}

/// A decoded IDX file.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The file it came from, for error messages.
    pub path: PathBuf,
    /// The sizes of each dimension; the first is the number of records.
    pub dims: Vec<usize>,
    /// The element type stored in the file.
    pub dtype: IdxType,
    /// The values, converted to `f32` (exact for every integer type up to 2^24).
    pub values: Vec<f32>,
}

impl IdxArray {
    /// Number of records (the first dimension).
    pub fn records(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }
}

/// Reads and decodes an IDX file (gzip or plain), returning it with its manifest identity.
pub fn read_file(path: &Path, role: &str) -> Result<(IdxArray, InputFile)> {
    let (bytes, file) = crate::source::read_file(path, role)?;
    Ok((decode(path, &bytes)?, file))
}

/// Decodes IDX `bytes` (gzip or plain) read from `path`.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    let raw;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| Error::io(path, std::io::Error::new(e.kind(), format!("corrupt gzip stream: {e}"))))?;
        raw = out;
        &raw[..]
    } else {
        bytes
    };
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            format!("not an IDX file: {} bytes, expected a 4-byte magic number", bytes.len()),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let dtype = IdxType::from_code(bytes[2]).filter(|_| bytes[0] == 0 && bytes[1] == 0);
    let ndims = bytes[3] as usize;
    let Some(dtype) = dtype.filter(|_| ndims > 0) else {
        return Err(Error::format(
            path,
            format!(
                "not an IDX file: magic number {magic} (0x{magic:08x}), expected 0x0000TTDD with type TT in \
                 08/09/0B/0C/0D/0E and DD dimensions (MNIST: 2051 for images, 2049 for labels)"
            ),
        ));
    };
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(Error::format(
            path,
            format!("IDX header truncated: {ndims} dimensions need {header} header bytes, file has {}", bytes.len()),
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    if dims.len() > 1 && dims[1..].contains(&0) {
        let shape = dims.iter().map(ToString::to_string).collect::<Vec<_>>().join("x");
        return Err(Error::format(path, format!("IDX header declares records of size zero ({shape})")));
    }
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let expected = count.and_then(|c| c.checked_mul(dtype.size()));
    let body = &bytes[header..];
    let shape = dims.iter().map(ToString::to_string).collect::<Vec<_>>().join("x");
    match expected {
        Some(n) if n == body.len() => {}
        Some(n) if n > body.len() => {
            return Err(Error::format(
                path,
                format!("IDX body truncated: header declares {shape} values ({n} bytes), file holds {}", body.len()),
            ));
        }
        Some(n) => {
            return Err(Error::format(
                path,
                format!("IDX body has {} bytes after the {shape} values the header declares", body.len() - n),
            ));
        }
        None => return Err(Error::format(path, format!("IDX header declares an impossible size {shape}"))),
    }
    let values = match dtype {
        IdxType::U8 => body.iter().map(|&b| f32::from(b)).collect(),
        IdxType::I8 => body.iter().map(|&b| f32::from(b as i8)).collect(),
        IdxType::I16 => body.chunks_exact(2).map(|c| f32::from(i16::from_be_bytes([c[0], c[1]]))).collect(),
        IdxType::I32 => body.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
        IdxType::F32 => body.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(),
        IdxType::F64 => body
            .chunks_exact(8)
            .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
    };
    Ok(IdxArray { path: path.into(), dims, dtype, values })
}

/// The most pixels of one IDX image (8192 × 8192): a header may declare any size, even with
/// no records, and every record of that size is allocated downstream.
pub const MAX_IMAGE_PIXELS: usize = 1 << 26;

/// The most features of one IDX table record (each becomes a named column).
pub const MAX_TABLE_COLUMNS: usize = 1 << 16;

/// The input schema of an IDX inputs array: `n × h × w` is a grey image, `n × d` a table of
/// `d` numeric features named `f0`, `f1`, ….
pub fn input_schema(inputs: &IdxArray) -> Result<InputSchema> {
    match inputs.dims[..] {
        [_, h, w] if h.saturating_mul(w) > MAX_IMAGE_PIXELS => Err(Error::format(
            &inputs.path,
            format!("IDX images of {h}x{w} pixels are larger than dlp reads (at most {MAX_IMAGE_PIXELS} pixels)"),
        )),
        [_, d] if d > MAX_TABLE_COLUMNS => Err(Error::format(
            &inputs.path,
            format!("IDX records of {d} features are more columns than dlp reads (at most {MAX_TABLE_COLUMNS})"),
        )),
        [_, h, w] => Ok(InputSchema::Image { channels: 1, height: h, width: w }),
        [_, d] => Ok(InputSchema::Tabular {
            features: (0..d).map(|i| Feature { name: format!("f{i}"), kind: FeatureKind::Numeric }).collect(),
        }),
        _ => Err(Error::format(
            &inputs.path,
            format!(
                "IDX inputs have {} dimensions, expected 3 (count x height x width) or 2 (count x features)",
                inputs.dims.len()
            ),
        )),
    }
}

/// The raw inputs of an IDX array: images for `n × h × w`, a numeric table for `n × d`.
pub fn raw_inputs(inputs: &IdxArray) -> Result<RawInputs> {
    Ok(match input_schema(inputs)? {
        InputSchema::Image { channels, height, width } => {
            RawInputs::Images(ImageSet { channels, height, width, pixels: inputs.values.clone() })
        }
        InputSchema::Tabular { features } => {
            let d = features.len();
            RawInputs::Table(Table {
                columns: features
                    .into_iter()
                    .enumerate()
                    .map(|(j, f)| Column {
                        name: f.name,
                        kind: f.kind,
                        values: Values::Numbers(
                            inputs.values.iter().skip(j).step_by(d).map(|&v| f64::from(v)).collect(),
                        ),
                    })
                    .collect(),
            })
        }
        InputSchema::Sequence { .. } | InputSchema::Series { .. } => {
            unreachable!("input_schema returns images and tables only")
        }
    })
}

/// Pairs an inputs array with a labels array: the raw dataset, with the labels as a numeric
/// target column (`label`). Labels must be non-negative integers, one per input record.
pub fn raw_dataset(inputs: &IdxArray, labels: &IdxArray) -> Result<RawDataset> {
    if labels.dims.len() != 1 || !labels.dtype.is_integer() {
        return Err(Error::format(
            &labels.path,
            format!(
                "IDX labels must be one dimension of integers, found {} dimensions of {:?}",
                labels.dims.len(),
                labels.dtype
            ),
        ));
    }
    if inputs.records() != labels.records() {
        return Err(Error::Invalid {
            path: labels.path.clone(),
            message: format!(
                "{} labels for {} input records in {}",
                labels.records(),
                inputs.records(),
                inputs.path.display()
            ),
        });
    }
    if let Some(i) = labels.values.iter().position(|&v| v < 0.0) {
        return Err(Error::Invalid {
            path: labels.path.clone(),
            message: format!("record {i}: label {} is negative, expected a class index 0, 1, …", labels.values[i]),
        });
    }
    let target = Column {
        name: "label".into(),
        kind: FeatureKind::Numeric,
        values: Values::Numbers(labels.values.iter().map(|&v| f64::from(v)).collect()),
    };
    Ok(RawDataset { inputs: raw_inputs(inputs)?, target: Some(target), parts: None })
}

/// Encodes `values` as an uncompressed `u8` IDX file with the given dimensions (for tests and
/// for exporting subsets in the format MNIST tools read).
pub fn encode_u8(dims: &[usize], values: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(values);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.idx")
    }

    #[test]
    fn decodes_plain_and_gzip() {
        let raw = encode_u8(&[2, 1, 2], &[0, 255, 7, 9]);
        let a = decode(p(), &raw).unwrap();
        assert_eq!(a.dims, vec![2, 1, 2]);
        assert_eq!(a.values, vec![0., 255., 7., 9.]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let b = decode(p(), &gz.finish().unwrap()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn decodes_big_endian_wider_types() {
        let mut raw = vec![0, 0, 0x0B, 1, 0, 0, 0, 2];
        raw.extend_from_slice(&(-3i16).to_be_bytes());
        raw.extend_from_slice(&300i16.to_be_bytes());
        assert_eq!(decode(p(), &raw).unwrap().values, vec![-3., 300.]);
    }

    #[test]
    fn rejects_wrong_magic() {
        let err = decode(p(), &[0x12, 0x34, 0x56, 0x78, 0, 0]).unwrap_err().to_string();
        assert!(err.starts_with("x.idx: not an IDX file: magic number 305419896 (0x12345678), expected"), "{err}");
    }

    #[test]
    fn rejects_truncated_body_and_trailing_bytes() {
        let raw = encode_u8(&[3, 2], &[1, 2, 3, 4, 5, 6]);
        let err = decode(p(), &raw[..raw.len() - 2]).unwrap_err().to_string();
        assert_eq!(err, "x.idx: IDX body truncated: header declares 3x2 values (6 bytes), file holds 4");
        let mut long = raw.clone();
        long.push(0);
        let err = decode(p(), &long).unwrap_err().to_string();
        assert_eq!(err, "x.idx: IDX body has 1 bytes after the 3x2 values the header declares");
        let err = decode(p(), &raw[..6]).unwrap_err().to_string();
        assert_eq!(err, "x.idx: IDX header truncated: 2 dimensions need 12 header bytes, file has 6");
    }

    #[test]
    fn rejects_headers_that_declare_absurd_records() {
        // Found by fuzzing: 12 bytes declaring 0 records of 69,795,852 features made the
        // table reader allocate a column for each (over 4 GB).
        let oom = [0, 0, 0x0D, 2, 0, 0, 0, 0, 0x04, 0x29, 0, 0x0C];
        let a = decode(p(), &oom).unwrap();
        let err = raw_inputs(&a).unwrap_err().to_string();
        assert_eq!(err, "x.idx: IDX records of 69795852 features are more columns than dlp reads (at most 65536)");
        let big = decode(p(), &[0, 0, 8, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]).unwrap();
        let err = input_schema(&big).unwrap_err().to_string();
        assert_eq!(err, "x.idx: IDX images of 65536x65536 pixels are larger than dlp reads (at most 67108864 pixels)");
        let err = decode(p(), &[0, 0, 8, 2, 0, 0, 0, 5, 0, 0, 0, 0]).unwrap_err().to_string();
        assert_eq!(err, "x.idx: IDX header declares records of size zero (5x0)");
    }

    #[test]
    fn rejects_corrupt_gzip() {
        let err = decode(p(), &[0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap_err().to_string();
        assert!(err.starts_with("x.idx: corrupt gzip stream"), "{err}");
    }

    #[test]
    fn pairs_images_with_labels() {
        let images = decode(Path::new("i"), &encode_u8(&[3, 1, 2], &[1, 2, 3, 4, 5, 6])).unwrap();
        let labels = decode(Path::new("l"), &encode_u8(&[3], &[2, 0, 2])).unwrap();
        let ds = raw_dataset(&images, &labels).unwrap();
        assert_eq!(ds.rows(), 3);
        let RawInputs::Images(imgs) = &ds.inputs else { panic!("images") };
        assert_eq!((imgs.height, imgs.width), (1, 2));
        assert_eq!(&imgs.pixels[4..], &[5., 6.]);
        assert_eq!(ds.target.unwrap().values, Values::Numbers(vec![2., 0., 2.]));

        let short = decode(Path::new("l"), &encode_u8(&[2], &[2, 0])).unwrap();
        let err = raw_dataset(&images, &short).unwrap_err().to_string();
        assert_eq!(err, "l: 2 labels for 3 input records in i");

        let table = decode(Path::new("t"), &encode_u8(&[3, 2], &[1, 2, 3, 4, 5, 6])).unwrap();
        let RawInputs::Table(t) = raw_inputs(&table).unwrap() else { panic!("table") };
        assert_eq!(t.columns[1].values, Values::Numbers(vec![2., 4., 6.]));
    }
}
