//! `grokscope verify RUN`: every file of a run directory checked as its readers check it, one
//! problem per line (docs/OUTPUTS.md, "What is verified").

use super::dataset;
use super::paths::{RunDir, CHECKPOINTS, DATASET, RESUME, SUMMARY, WEIGHTS};
use super::resume::Status;
use crate::digest::{self, Seal};
use crate::fsio::read_bytes;
use crate::setup::Prepare;
use crate::train::engine::read_meta;

/// What `verify` found: the problems (each naming its file) and the files it could not check
/// for damage because they have no digest (written before grokscope recorded them).
#[derive(Debug, Default)]
pub struct Verdict {
    pub problems: Vec<String>,
    pub unsealed: Vec<String>,
    /// How many files were checked.
    pub checked: usize,
}

impl Verdict {
    fn problem(&mut self, p: impl std::fmt::Display) {
        let p = p.to_string();
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }
}

impl RunDir {
    /// Checks every file of the run: the config and summary (as `analyze` reads them), the
    /// metrics, and every binary file's digest and the run it belongs to.
    pub fn verify(&self) -> Verdict {
        let mut v = Verdict::default();
        let cfg = match self.read_config() {
            Ok(c) => Some(c),
            Err(e) => {
                v.problem(e);
                None
            }
        };
        v.checked += 1;
        let state = match self.read_state() {
            Ok(s) => s,
            Err(e) => {
                v.problem(e);
                None
            }
        };
        let tag = cfg.as_ref().map(|c| c.training_fingerprint());
        let trained_by = |found: &str| cfg.as_ref().is_none_or(|c| c.trained_by(found));
        // Digests first: a damaged file is named as damaged, not as what its damage looks like.
        let sealed_ok = |name: String, v: &mut Verdict| -> Option<Vec<u8>> {
            let path = self.path.join(&name);
            v.checked += 1;
            let bytes = match read_bytes(&path) {
                Ok(b) => b,
                Err(e) => {
                    v.problem(format!("{}: {e}", path.display()));
                    return None;
                }
            };
            match digest::verify(&bytes) {
                Ok(Seal::Verified) => Some(bytes),
                Ok(Seal::Absent) => {
                    v.unsealed.push(path.display().to_string());
                    Some(bytes)
                }
                Err(why) => {
                    v.problem(format!("{}: {why}", path.display()));
                    None
                }
            }
        };
        let mut names: Vec<String> = [WEIGHTS, RESUME, DATASET]
            .iter()
            .filter(|n| self.path.join(n).exists())
            .map(|n| n.to_string())
            .collect();
        if let Ok(rd) = std::fs::read_dir(self.path.join(CHECKPOINTS)) {
            let mut cks: Vec<String> = rd
                .flatten()
                .map(|e| format!("{CHECKPOINTS}/{}", e.file_name().to_string_lossy()))
                .collect();
            cks.sort();
            names.extend(cks);
        } else if self.path.join(CHECKPOINTS).exists() {
            v.problem(format!(
                "{}: not a directory of checkpoints",
                self.path.join(CHECKPOINTS).display()
            ));
        }
        for name in names {
            let Some(bytes) = sealed_ok(name.clone(), &mut v) else {
                continue;
            };
            let path = self.path.join(&name);
            let meta = |k: &str| read_meta(&bytes, k).ok().flatten();
            if name == RESUME {
                if let Some(c) = cfg.as_ref() {
                    if !super::resume::saved_by(c, &bytes).unwrap_or(false) {
                        v.problem(format!(
                            "{}: it was saved by a run of another config than config.toml",
                            path.display()
                        ));
                    }
                }
                continue;
            }
            if let (Some(found), Some(want)) = (meta(super::paths::TRAINED_CONFIG), tag.as_ref()) {
                if !trained_by(&found) {
                    v.problem(format!(
                        "{}: it belongs to another run (config fingerprint {found}; config.toml gives {want})",
                        path.display()
                    ));
                }
            }
            if let Some(step) = name
                .strip_prefix(&format!("{CHECKPOINTS}/step-"))
                .and_then(|s| s.strip_suffix(".safetensors"))
            {
                let want = step.trim_start_matches('0');
                let want = if want.is_empty() { "0" } else { want };
                if meta("step").as_deref() != Some(want) {
                    v.problem(format!(
                        "{}: it holds the weights of step {}, its name says step {want}",
                        path.display(),
                        meta("step").unwrap_or_else(|| "(none)".into())
                    ));
                }
            }
        }
        // The dataset follows from the config (an operation table) or must equal the one the
        // dataset files give now (dense data).
        if let Some(c) = cfg.as_ref() {
            match c.setup() {
                Ok(setup) => {
                    // The metrics, as every reader of them reads them.
                    if let Err(e) = self.read_history(setup.specs.len()) {
                        v.problem(e);
                    }
                    v.checked += 1;
                    if let Ok(old) = read_bytes(&self.path.join(DATASET)) {
                        let tag = c.training_fingerprint();
                        let now = dataset::dataset_bytes(&setup.split, &setup.labels, Some(&tag));
                        let legacy = dataset::dataset_bytes(&setup.split, &setup.labels, None);
                        let tagged_before = dataset::dataset_bytes(
                            &setup.split,
                            &setup.labels,
                            Some(&c.legacy_training_fingerprint()),
                        );
                        if digest::verify(&old).is_ok()
                            && now.is_ok_and(|b| b != old)
                            && legacy.is_ok_and(|b| b != old)
                            && tagged_before.is_ok_and(|b| b != old)
                        {
                            v.problem(format!(
                                "{}: it is not the dataset config.toml gives (another run's, or the dataset files changed)",
                                self.path.join(DATASET).display()
                            ));
                        }
                    }
                }
                Err(e) => v.problem(e),
            }
            // A finished run's weights as `analyze` loads them.
            let finished = state
                .as_ref()
                .is_none_or(|s| matches!(s.status, Status::Finished | Status::Diverged));
            // (Once per damaged file: a digest problem already named it.)
            let weights = self.path.join(WEIGHTS).display().to_string();
            let named = v.problems.iter().any(|p| p.starts_with(&weights));
            if finished && self.path.join(SUMMARY).exists() && !named {
                if let Err(e) = self.load() {
                    v.problem(e);
                }
            }
        }
        v
    }
}
