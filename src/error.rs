//! The library's error type: one variant per kind of failure, each naming what was wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting has a value outside what is allowed.
    #[error("invalid `{key}`: {message}")]
    Invalid { key: String, message: String },
    /// The configuration text could not be read as a grokscope config.
    #[error("{0}")]
    Config(String),
    /// An experiment that needs more memory than this machine allows.
    #[error("{0}")]
    Memory(String),
    /// A `--set KEY=VALUE` override (as typed) that cannot be applied.
    #[error("--set {set}: {why}")]
    Set { set: String, why: String },
    /// A file or directory could not be read or written. (The OS error is part of the
    /// message, not a separate cause, so that it is printed once.)
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("output directory {0} already exists; choose another --out or remove it (nothing was written)")]
    OutputExists(PathBuf),
    /// A file that would be replaced.
    #[error("{0} exists; pass --force to replace it")]
    FileExists(PathBuf),
    /// A file grokscope wrote, read back, does not hold what it should.
    #[error("{path}: {why}")]
    BadFile { path: PathBuf, why: String },
    #[error("{dir} is not a grokscope run directory: {why}")]
    NotARun { dir: PathBuf, why: String },
    #[error("model index {index} is out of range: the run has {models} model(s), indices 0 to {last}", last = .models.saturating_sub(1))]
    ModelIndex { index: usize, models: usize },
    /// A safetensors file could not be written or read.
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    /// Weights that do not fit the network they are loaded into.
    #[error("weights: {0}")]
    Weights(String),
    /// A CSV file grokscope wrote, read back, is malformed.
    #[error("{path} line {line}: {why}")]
    Csv {
        path: PathBuf,
        line: usize,
        why: String,
    },
    /// A JSON file could not be written or read back.
    #[error("{path}: {what}: {error}")]
    Json {
        path: PathBuf,
        what: &'static str,
        error: serde_json::Error,
    },
    /// A figure could not be drawn.
    #[error("figure {figure}: {why}")]
    Plot { figure: String, why: String },
    /// A config file that cannot be read.
    #[error("cannot read config {path}: {error}")]
    ConfigUnreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// An error about a config with whom to blame for it in front (`--set K=V: …`,
    /// `in SOURCE: …`; `job::Request::resolve`).
    #[error("{message}")]
    Blamed { message: String, error: Box<Error> },
    /// An error that stopped a run after it started training in its directory, with what
    /// was saved and how to continue.
    #[error("{error}\nThe run in {} stopped; {}", .dir.display(), stopped_hint(.dir, *.saved))]
    RunStopped {
        dir: PathBuf,
        /// The step of its resumable state, if one was saved.
        saved: Option<u64>,
        error: Box<Error>,
    },
    /// A sweep directory that cannot be used as asked.
    #[error("sweep directory {dir}: {why}")]
    Sweep { dir: PathBuf, why: String },
}

/// How a front end names the options its messages point to: the CLI's flags, Python's
/// keyword arguments. [`Error`]'s `Display` uses the CLI's; [`Error::message`] any.
pub struct Names {
    pub out: &'static str,
    pub force: &'static str,
}

/// The CLI's names (`--out`, `--force`).
pub const CLI: Names = Names {
    out: "--out",
    force: "--force",
};

/// Python's names (`out=`, `force=True`).
pub const PYTHON: Names = Names {
    out: "out=",
    force: "force=True",
};

impl Error {
    /// The message, naming the options of the front end `names`.
    pub fn message(&self, names: &Names) -> String {
        match self {
            Error::OutputExists(p) => format!(
                "output directory {} already exists; choose another {} or remove it (nothing was written)",
                p.display(),
                names.out
            ),
            Error::FileExists(p) => {
                format!("{} exists; pass {} to replace it", p.display(), names.force)
            }
            other => other.to_string(),
        }
    }

    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            error,
        }
    }

    /// A JSON error of the file `path`, which holds `what` (e.g. "a run record").
    pub fn json(path: impl Into<PathBuf>, what: &'static str, error: serde_json::Error) -> Error {
        Error::Json {
            path: path.into(),
            what,
            error,
        }
    }

    pub fn csv(path: impl Into<PathBuf>, line: usize, why: impl Into<String>) -> Error {
        Error::Csv {
            path: path.into(),
            line,
            why: why.into(),
        }
    }
}

fn stopped_hint(dir: &std::path::Path, saved: Option<u64>) -> String {
    match saved {
        Some(step) => format!(
            "its state at step {step} is saved: fix the cause and continue it with `grokscope train --resume {}`",
            dir.display()
        ),
        None => format!(
            "no state was saved yet: fix the cause and `grokscope train --resume {}` trains it again from step 0 (the same config gives the same numbers)",
            dir.display()
        ),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_names_are_the_display_and_python_gets_its_own() {
        for e in [
            Error::OutputExists(PathBuf::from("runs/x")),
            Error::FileExists(PathBuf::from("runs/x/analysis/neurons.csv")),
        ] {
            assert_eq!(e.message(&CLI), e.to_string());
            let py = e.message(&PYTHON);
            assert!(
                !py.contains("--") && (py.contains("out=") || py.contains("force=True")),
                "{py}"
            );
        }
    }
}
