//! Opening input files: gzip detected by content, sha256 computed while the bytes stream past
//! (so a file is read once, whatever its size), and `hf://` paths resolved through the model
//! hub's cache.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pipeline_core::run::InputFile;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A file being read: yields decompressed bytes, hashes the stored ones.
pub struct Source {
    reader: Box<dyn BufRead + Send>,
    digest: Arc<Mutex<(Sha256, u64)>>,
    path: PathBuf,
    role: String,
    /// The stored size when the stream is the file's own bytes (not gzip), else `None`.
    plain_len: Option<u64>,
}

struct Hashing<R> {
    inner: R,
    digest: Arc<Mutex<(Sha256, u64)>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut d = self.digest.lock().unwrap_or_else(|p| p.into_inner());
        d.0.update(&buf[..n]);
        d.1 += n as u64;
        Ok(n)
    }
}

impl Source {
    /// Opens `path` (an `hf://` path is resolved first); `role` names it in the manifest.
    pub fn open(path: &Path, role: &str) -> Result<Self> {
        let path = crate::hub::resolve(path)?;
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let digest = Arc::new(Mutex::new((Sha256::new(), 0u64)));
        let mut raw = BufReader::with_capacity(1 << 16, Hashing { inner: file, digest: digest.clone() });
        let gzip = raw.fill_buf().map_err(|e| Error::io(&path, e))?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(1 << 16, GzRead { inner: flate2::bufread::MultiGzDecoder::new(raw) }))
        } else {
            Box::new(raw)
        };
        let plain_len = if gzip { None } else { std::fs::metadata(&path).ok().map(|m| m.len()) };
        Ok(Self { reader, digest, path, role: role.into(), plain_len })
    }

    /// The path read (after `hf://` resolution).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many bytes the stream holds, when that is known before reading (a file that is not
    /// compressed).
    pub fn plain_len(&self) -> Option<u64> {
        self.plain_len
    }

    /// The decompressed byte stream.
    pub fn reader(&mut self) -> &mut (dyn BufRead + Send) {
        &mut self.reader
    }

    /// Reads the rest of the stream.
    pub fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader.read_to_end(&mut out).map_err(|e| Error::io(&self.path, e))?;
        Ok(out)
    }

    /// Finishes reading (draining what is left, so the hash covers the whole file) and returns
    /// the file's identity.
    pub fn finish(mut self) -> Result<InputFile> {
        std::io::copy(&mut self.reader, &mut std::io::sink()).map_err(|e| Error::io(&self.path, e))?;
        let (digest, bytes) = std::mem::take(&mut *self.digest.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(InputFile {
            role: self.role,
            path: self.path.display().to_string(),
            sha256: digest.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            bytes,
        })
    }
}

/// Gives gzip errors a message that says so.
struct GzRead<R> {
    inner: R,
}

impl<R: Read> Read for GzRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| std::io::Error::new(e.kind(), format!("corrupt gzip stream: {e}")))
    }
}

/// Reads a whole file, returning its (decompressed) bytes and its identity.
pub fn read_file(path: &Path, role: &str) -> Result<(Vec<u8>, InputFile)> {
    let mut s = Source::open(path, role)?;
    let bytes = s.read_all()?;
    Ok((bytes, s.finish()?))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn hashes_the_stored_bytes_and_reads_gzip_transparently() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("abc");
        std::fs::write(&plain, b"abc").unwrap();
        let (bytes, f) = read_file(&plain, "x").unwrap();
        assert_eq!(bytes, b"abc");
        // sha256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(f.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(f.bytes, 3);

        let gz = dir.path().join("abc.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"hello, gzip").unwrap();
        let stored = e.finish().unwrap();
        std::fs::write(&gz, &stored).unwrap();
        let (bytes, f) = read_file(&gz, "x").unwrap();
        assert_eq!(bytes, b"hello, gzip");
        assert_eq!(f.bytes, stored.len() as u64);
        let want: String = Sha256::digest(&stored).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(f.sha256, want);

        std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 1, 2]).unwrap();
        let err = read_file(&gz, "x").unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: corrupt gzip stream", gz.display())), "{err}");
    }

    #[test]
    fn finish_hashes_unread_bytes_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let s = Source::open(&p, "x").unwrap();
        assert_eq!(s.finish().unwrap().sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
