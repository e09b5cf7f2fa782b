//! The library's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting has a value outside what is allowed.
    #[error("invalid `{key}`: {message}")]
    Invalid { key: String, message: String },
    /// The configuration text could not be read as a grokscope config.
    #[error("config: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("output directory {0} already exists; choose another --out or remove it (nothing was written)")]
    OutputExists(PathBuf),
    #[error("{dir} is not a grokscope run directory: {why}")]
    NotARun { dir: PathBuf, why: String },
    #[error("model index {index} is out of range: the run has {models} model(s), indices 0 to {last}", last = .models.saturating_sub(1))]
    ModelIndex { index: usize, models: usize },
    #[error("could not write the results: {0}")]
    Output(String),
}

impl Error {
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
