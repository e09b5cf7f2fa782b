//! The names of a run directory's files and the directory itself: creating it, opening it,
//! and the errors that name its files.

use crate::error::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) const CONFIG: &str = "config.toml";
pub(crate) const METRICS: &str = "metrics.csv";
pub(crate) const IPR_HIST: &str = "ipr_hist.csv";
pub(crate) const SUMMARY: &str = "summary.json";
pub(crate) const WEIGHTS: &str = "weights.safetensors";
pub(crate) const STATE: &str = "state.json";
pub(crate) const RESUME: &str = "resume.safetensors";
pub(crate) const LOCK: &str = ".lock";
pub(crate) const DATASET: &str = "dataset.safetensors";
pub(crate) const CHECKPOINTS: &str = "checkpoints";
pub(crate) const ANALYSIS: &str = "analysis";
/// The metadata key, in weights, checkpoints and `dataset.safetensors`, of the training
/// fingerprint of the config that wrote the file (`Checked::training_fingerprint`; the run's
/// `summary.json` has the same as `trained_config`). (A Transformer's weights already use
/// `config` for the model's shape.)
pub const TRAINED_CONFIG: &str = "trained_config";
/// The directory reports go to, in a run directory and in a sweep directory.
pub const REPORT: &str = "report";
/// What a finished `grokscope train` leaves in its run directory (besides checkpoints and the
/// report).
pub const RESULT_FILES: [&str; 6] = [CONFIG, METRICS, IPR_HIST, SUMMARY, WEIGHTS, DATASET];

/// A run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    pub(super) path: PathBuf,
    /// Where its analysis files go: `analysis/` in it, or a directory of the user's
    /// (`analyze --out`, for a run they cannot write).
    pub(super) analysis_at: Option<PathBuf>,
}

impl RunDir {
    /// Creates a new run directory (and its parents); fails if it exists.
    pub fn create(path: &Path) -> Result<RunDir> {
        if path.exists() {
            return Err(Error::OutputExists(path.to_path_buf()));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Some(file) = parent.ancestors().find(|a| a.exists() && !a.is_dir()) {
                return Err(Error::io(
                    path,
                    std::io::Error::other(format!(
                        "cannot create it: {} is a file, not a directory",
                        file.display()
                    )),
                ));
            }
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        fs::create_dir(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::OutputExists(path.to_path_buf())
            } else {
                Error::io(path, e)
            }
        })?;
        Ok(RunDir {
            path: path.to_path_buf(),
            analysis_at: None,
        })
    }

    /// An existing run directory (one with a `config.toml`).
    pub fn open(path: &Path) -> Result<RunDir> {
        let dir = RunDir {
            path: path.to_path_buf(),
            analysis_at: None,
        };
        if !path.exists() {
            return Err(dir.not_a_run("no such directory"));
        }
        if !path.is_dir() {
            return Err(dir.not_a_run("it is a file, not a directory"));
        }
        if !path.join(CONFIG).is_file() {
            return Err(dir.not_a_run(format!("it has no {CONFIG}")));
        }
        // What killed `report` or `analyze` commands left behind.
        super::swap::recover_all(path)?;
        Ok(dir)
    }

    /// Whether `path` looks like a run directory.
    pub fn is_run(path: &Path) -> bool {
        path.join(CONFIG).is_file()
    }

    /// A fresh directory `base/name-YYYYMMDD-HHMMSS` (with `-2`, `-3` … if taken).
    pub fn default_path(base: &Path, name: &str) -> PathBuf {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(['-', ':'], "")
            .replace('T', "-")
            .trim_end_matches('Z')
            .to_string();
        let first = base.join(format!("{name}-{stamp}"));
        let mut dir = first.clone();
        let mut k = 2;
        while dir.exists() {
            dir = PathBuf::from(format!("{}-{k}", first.display()));
            k += 1;
        }
        dir
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn not_a_run(&self, why: impl std::fmt::Display) -> Error {
        Error::NotARun {
            dir: self.path.clone(),
            why: why.to_string(),
        }
    }

    pub(crate) fn bad_file(&self, name: &str, e: impl std::fmt::Display) -> Error {
        Error::BadFile {
            path: self.path.join(name),
            why: e.to_string(),
        }
    }

    /// The run whose analysis files go to `dir` instead of its own `analysis/`.
    pub fn with_analysis_at(mut self, dir: &Path) -> RunDir {
        self.analysis_at = Some(dir.to_path_buf());
        self
    }

    /// The directory of its analysis files.
    pub fn analysis_root(&self) -> PathBuf {
        self.analysis_at
            .clone()
            .unwrap_or_else(|| self.path.join(ANALYSIS))
    }

    /// Whether the run has its final weights (it finished).
    pub fn has_weights(&self) -> bool {
        self.path.join(WEIGHTS).is_file()
    }
}
