//! Errors of the model crate. Every variant that concerns a file names it, and where it
//! concerns one tensor, the tensor, so a user can tell what to fix without a debugger.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// The file exists but is not what it claims to be (truncated, bad magic, bad offsets).
    #[error("{path}: malformed file: {msg}")]
    Format { path: PathBuf, msg: String },

    #[error("{path}: invalid model config: {msg}")]
    Config { path: PathBuf, msg: String },

    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor { path: PathBuf, name: String },

    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },

    /// An architecture, dtype or quantisation this crate does not implement.
    #[error("{path}: unsupported {what}")]
    Unsupported { path: PathBuf, what: String },

    #[error("{path}: tokenizer: {msg}")]
    Tokenizer { path: PathBuf, msg: String },

    /// Invalid arguments from a caller (bad ids, empty batch, mismatched mask).
    #[error("{0}")]
    Input(String),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
    pub(crate) fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Self::Format { path: path.into(), msg: msg.into() }
    }
    pub(crate) fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Self::Config { path: path.into(), msg: msg.into() }
    }
    pub(crate) fn unsupported(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Self::Unsupported { path: path.into(), what: what.into() }
    }
}
