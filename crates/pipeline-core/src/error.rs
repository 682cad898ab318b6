//! The error type of this crate, in the pattern every crate of the workspace follows: one
//! `thiserror` enum with structured variants and a [`Result`] alias. A wrapped lower-level
//! error is either shown in the message (a `cause` field) or forwarded whole
//! (`#[error(transparent)]`), never both, so a printed chain never repeats itself.

use std::path::PathBuf;

/// What can go wrong in the shared types and helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// A JSON file of the run directory or bundle could not be read or written.
    #[error("{}: {cause}", path.display())]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        cause: serde_json::Error,
    },
    /// Data whose parts do not agree in size, e.g. a feature buffer that is not rows × width.
    #[error("{what}: expected {expected}, found {found}")]
    SizeMismatch {
        /// What was being checked.
        what: &'static str,
        /// The size the other parts imply.
        expected: usize,
        /// The size found.
        found: usize,
    },
    /// Data of the wrong kind, e.g. regression targets given to a classification metric.
    #[error("expected {expected}")]
    KindMismatch {
        /// What was expected.
        expected: &'static str,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Wraps an IO error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io { path: path.into(), cause }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
