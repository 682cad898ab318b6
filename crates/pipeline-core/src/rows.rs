//! Feature rows kept in a file rather than in memory: the storage of a [`Dataset`] whose rows
//! do not fit in the memory budget (out-of-core training).
//!
//! A row file is the rows' `f32` values, little-endian, row after row, with nothing else: row `i`
//! of a `width`-wide file starts at byte `i × width × 4`. [`RowWriter`] writes one, rows in any
//! order, to a temporary file beside its destination and renames it into place when it is complete, so a
//! killed run never leaves a half-written file under the final name. [`RowFile`] reads rows
//! back with positional reads (`pread`): the file's pages stay in the kernel's page cache, which
//! the kernel may drop under memory pressure, and never count in the process's resident memory
//! the way a memory map's pages would.
//!
//! [`Dataset`]: crate::Dataset

use std::fs::File;
#[cfg(windows)]
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};

/// A row file open for reading: `rows` rows of `width` values.
#[derive(Debug, Clone)]
pub struct RowFile {
    file: Arc<File>,
    path: PathBuf,
    rows: usize,
    width: usize,
}

impl PartialEq for RowFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.rows == other.rows && self.width == other.width
    }
}

impl RowFile {
    /// Opens the row file at `path`, which must hold exactly `rows × width` values.
    pub fn open(path: &Path, rows: usize, width: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let expected = (rows * width * 4) as u64;
        if len != expected {
            return Err(Error::io(
                path,
                std::io::Error::other(format!(
                    "holds {len} bytes, where {rows} rows of {width} values take {expected}: the file is truncated \
                     or belongs to another run"
                )),
            ));
        }
        Ok(Self { file: Arc::new(file), path: path.to_path_buf(), rows, width })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Appends rows `start..start + count` to `out`.
    pub fn read_range(&self, start: usize, count: usize, out: &mut Vec<f32>) -> Result<()> {
        let mut bytes = vec![0u8; count * self.width * 4];
        self.read_at(&mut bytes, (start * self.width * 4) as u64)?;
        out.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        Ok(())
    }

    /// Appends the rows at `indices`, in that order, to `out`. Runs of consecutive indices are
    /// read at once.
    pub fn read_rows(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        let mut i = 0;
        while i < indices.len() {
            let start = indices[i];
            let mut n = 1;
            while i + n < indices.len() && indices[i + n] == start + n {
                n += 1;
            }
            self.read_range(start, n, out)?;
            i += n;
        }
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        #[cfg(unix)]
        let r = std::os::unix::fs::FileExt::read_exact_at(self.file.as_ref(), buf, offset);
        #[cfg(windows)]
        let r = {
            let mut done = 0;
            let mut r = Ok(());
            while done < buf.len() {
                match std::os::windows::fs::FileExt::seek_read(
                    self.file.as_ref(),
                    &mut buf[done..],
                    offset + done as u64,
                ) {
                    Ok(0) => {
                        r = Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                        break;
                    }
                    Ok(n) => done += n,
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            r
        };
        r.map_err(|e| Error::io(&self.path, e))
    }
}

/// Writes a row file of a known number of rows, in any order ([`RowWriter::write_at`]), and
/// [`RowWriter::finish`] renames the complete file into place.
#[derive(Debug)]
pub struct RowWriter {
    file: File,
    temp: PathBuf,
    path: PathBuf,
    width: usize,
    rows: usize,
}

impl RowWriter {
    /// Starts the row file `path` (its directory must exist) of `rows` rows of `width` values
    /// (all zero until written).
    pub fn create(path: &Path, rows: usize, width: usize) -> Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let file = File::create(&temp).map_err(|e| Error::io(&temp, e))?;
        file.set_len((rows * width * 4) as u64).map_err(|e| Error::io(&temp, e))?;
        Ok(Self { file, temp, path: path.to_path_buf(), width, rows })
    }

    /// Writes whole rows from row `row` on (`values.len()` must be a multiple of the width).
    pub fn write_at(&mut self, row: usize, values: &[f32]) -> Result<()> {
        let n = values.len().checked_div(self.width).unwrap_or(0);
        if self.width == 0 || !values.len().is_multiple_of(self.width) || row + n > self.rows {
            return Err(Error::SizeMismatch {
                what: "rows written to a row file (whole rows, within its length)",
                expected: self.rows * self.width,
                found: (row + n) * self.width,
            });
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let offset = (row * self.width * 4) as u64;
        #[cfg(unix)]
        let r = std::os::unix::fs::FileExt::write_all_at(&self.file, &bytes, offset);
        #[cfg(windows)]
        let r = {
            use std::io::{Seek, SeekFrom};
            (&self.file).seek(SeekFrom::Start(offset)).and_then(|_| (&self.file).write_all(&bytes))
        };
        r.map_err(|e| Error::io(&self.temp, e))
    }

    /// Rows in the file.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Flushes the file to disk, renames it into place and opens it for reading.
    pub fn finish(self) -> Result<RowFile> {
        self.file.sync_all().map_err(|e| Error::io(&self.temp, e))?;
        std::fs::rename(&self.temp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        RowFile::open(&self.path, self.rows, self.width)
    }
}

impl Drop for RowWriter {
    fn drop(&mut self) {
        // An unfinished file is removed; a finished one was renamed away already.
        let _ = std::fs::remove_file(&self.temp);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn rows_written_are_read_back_by_range_and_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.f32");
        let mut w = RowWriter::create(&path, 10, 3).unwrap();
        let values: Vec<f32> = (0..30).map(|i| i as f32 * 0.5 - 3.0).collect();
        w.write_at(3, &values[9..]).unwrap();
        w.write_at(0, &values[..9]).unwrap();
        assert!(w.write_at(0, &values[..2]).is_err(), "a partial row is refused");
        assert!(w.write_at(9, &values[..6]).is_err(), "past the end is refused");
        assert!(!path.exists(), "nothing under the final name before finish");
        let f = w.finish().unwrap();
        assert_eq!((f.rows(), f.width()), (10, 3));
        let mut out = Vec::new();
        f.read_range(2, 3, &mut out).unwrap();
        assert_eq!(out, values[6..15]);
        out.clear();
        f.read_rows(&[9, 0, 1, 2, 5], &mut out).unwrap();
        let expected: Vec<f32> = [9, 0, 1, 2, 5].iter().flat_map(|&r| values[r * 3..r * 3 + 3].to_vec()).collect();
        assert_eq!(out, expected);
        assert!(f.read_range(9, 2, &mut out).is_err(), "past the end");
    }

    #[test]
    fn an_unfinished_file_is_removed_and_a_wrong_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.f32");
        let mut w = RowWriter::create(&path, 1, 2).unwrap();
        w.write_at(0, &[1.0, 2.0]).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::write(&path, [0u8; 12]).unwrap();
        let err = RowFile::open(&path, 2, 2).unwrap_err().to_string();
        assert!(err.contains("holds 12 bytes, where 2 rows of 2 values take 16"), "{err}");
    }
}
