//! The library's one error type. `anyhow` is used only at the binary's edge.

use std::path::PathBuf;

/// Everything that can go wrong inside recmaml, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad input data: names the file and, where known, the row (or line) and column (or field).
    #[error("{}{}{}: {msg}", file.display(), row.map(|r| format!(", row {r}")).unwrap_or_default(), column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Data {
        file: PathBuf,
        row: Option<usize>,
        column: Option<String>,
        msg: String,
    },
    /// A configuration key (or command-line flag) has an invalid value or is unknown.
    #[error("config `{key}`: {msg}")]
    Config { key: String, msg: String },
    /// A checkpoint is unreadable or does not fit the configured model.
    #[error("checkpoint {}: {msg}", file.display())]
    Checkpoint { file: PathBuf, msg: String },
    /// Tensor or buffer sizes that do not agree.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The GPU backend: driver, NVRTC compile (with log and kernel name), launches.
    #[error("backend {backend}: {msg}")]
    Backend { backend: String, msg: String },
    /// Training diverged.
    #[error("non-finite meta-loss at iteration {iteration}{}", last_good.as_ref().map(|p| format!("; last good checkpoint kept at {}", p.display())).unwrap_or_default())]
    NonFinite {
        iteration: u64,
        last_good: Option<PathBuf>,
    },
    /// Anything else, with a message that says what.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A data error naming file, optional row and optional column.
    pub fn data(
        file: impl Into<PathBuf>,
        row: Option<usize>,
        column: Option<&str>,
        msg: impl Into<String>,
    ) -> Self {
        Error::Data {
            file: file.into(),
            row,
            column: column.map(str::to_string),
            msg: msg.into(),
        }
    }

    /// A configuration error naming the key.
    pub fn config(key: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            msg: msg.into(),
        }
    }

    /// A checkpoint error naming the file.
    pub fn checkpoint(file: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            file: file.into(),
            msg: msg.into(),
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
