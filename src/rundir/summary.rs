//! `summary.json`: per model its settings, final metrics, phase and dynamics; and the check
//! that a finished run's summary belongs to its `config.toml`.

use super::paths::{RunDir, CONFIG, SUMMARY, WEIGHTS};
use crate::analysis::dynamics::{outcome, Dynamics};
use crate::config::{Checked, ModelSpec};
use crate::error::{Error, Result};
use crate::fsio::read_text;
use crate::metrics::{Phase, Record, Thresholds};
use crate::setup::Setup;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
pub struct ModelSummary {
    #[serde(flatten)]
    pub spec: ModelSpec,
    pub lr_effective: f64,
    pub n_corrupted: usize,
    pub phase: Phase,
    /// The first step whose training loss was NaN or infinite (`null`: never).
    pub diverged_step: Option<u64>,
    #[serde(rename = "final")]
    pub last: Record,
    pub dynamics: Dynamics,
}

/// `summary.json`.
#[derive(Serialize)]
pub struct Summary {
    pub name: String,
    /// The fingerprint of what was trained (config.toml's data, model and train sections):
    /// loading the weights under an edited config.toml is refused.
    pub trained_config: String,
    pub steps: u64,
    pub threshold: f64,
    pub full_threshold: f64,
    pub n_train: usize,
    pub n_test: usize,
    pub models: Vec<ModelSummary>,
}

pub(super) fn summary(
    cfg: &Checked,
    setup: &Setup,
    history: &[Vec<Record>],
    diverged_at: &[Option<u64>],
) -> Summary {
    let t = Thresholds::from(&cfg.eval);
    let hi = t.hi;
    Summary {
        name: cfg.name.clone(),
        trained_config: cfg.training_fingerprint(),
        steps: setup.total_steps,
        threshold: hi,
        full_threshold: t.full,
        n_train: setup.split.n_train(),
        n_test: setup.split.n_test(),
        models: setup
            .specs
            .iter()
            .zip(history)
            .zip(&setup.labels)
            .enumerate()
            .filter_map(|(i, ((spec, hist), labels))| {
                let diverged_step = diverged_at.get(i).copied().flatten();
                let o = outcome(hist, diverged_step, t)?;
                Some(ModelSummary {
                    spec: spec.clone(),
                    lr_effective: cfg.effective_lr(spec.lr),
                    n_corrupted: labels.n_corrupted(),
                    phase: o.phase,
                    diverged_step,
                    dynamics: o.dynamics,
                    last: o.last,
                })
            })
            .collect(),
    }
}

impl RunDir {
    /// `summary.json` of a finished run belongs to `cfg`: it was trained under config.toml's data,
    /// model and train settings (`trained_config`), with its steps, split sizes and models.
    pub(super) fn check_summary(&self, cfg: &Checked) -> Result<()> {
        #[derive(Deserialize)]
        struct ModelCheck {
            index: usize,
            #[allow(dead_code)]
            phase: Phase,
        }
        #[derive(Deserialize)]
        struct SummaryCheck {
            trained_config: String,
            steps: u64,
            n_train: usize,
            n_test: usize,
            models: Vec<ModelCheck>,
        }
        // Only a finished run's summary counts: one without weights is what an attempt killed
        // while finishing left, and its resumption replaces it.
        if !self.has_weights() {
            return Ok(());
        }
        let path = self.path.join(SUMMARY);
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.bad_file(
                    SUMMARY,
                    format!("missing, but {WEIGHTS} is there: the run's results are incomplete"),
                ))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let s: SummaryCheck =
            serde_json::from_str(&text).map_err(|e| Error::json(&path, "not a run summary", e))?;
        let now = cfg.training_fingerprint();
        if !cfg.trained_by(&s.trained_config) {
            return Err(self.bad_file(
                CONFIG,
                format!(
                    "its data, model or train settings were changed after the run finished (summary.json: trained under {}, config.toml now {now}); the results belong to the original settings: restore them, or train again (the eval section may change)",
                    s.trained_config
                ),
            ));
        }
        let (table, n_train) = cfg.example_counts();
        let expected = (
            cfg.total_steps(n_train),
            n_train,
            table - n_train,
            cfg.fleet_len()?,
        );
        let found = (s.steps, s.n_train, s.n_test, s.models.len());
        if found != expected {
            return Err(self.bad_file(
                SUMMARY,
                format!(
                    "it says {} steps, {} training and {} test pairs, {} models; config.toml gives {}, {}, {}, {}",
                    found.0, found.1, found.2, found.3, expected.0, expected.1, expected.2, expected.3
                ),
            ));
        }
        if let Some((i, m)) = s.models.iter().enumerate().find(|(i, m)| m.index != *i) {
            return Err(self.bad_file(SUMMARY, format!("model {i} has index {}", m.index)));
        }
        Ok(())
    }
}

/// Whether a model's last `metrics.csv` row (as JSON) is the final record `summary.json`
/// holds. A summary written before a column existed lacks its key; the row then has it empty.
pub fn same_final(row: Option<&serde_json::Value>, summary: Option<&serde_json::Value>) -> bool {
    let (Some(serde_json::Value::Object(r)), Some(serde_json::Value::Object(s))) = (row, summary)
    else {
        return row == summary;
    };
    let empty = |v: &serde_json::Value| v.is_null() || v.as_array().is_some_and(|a| a.is_empty());
    s.keys().all(|k| r.contains_key(k))
        && r.iter().all(|(k, v)| match s.get(k) {
            Some(x) => x == v,
            None => empty(v),
        })
}
