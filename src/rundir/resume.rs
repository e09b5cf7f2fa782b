//! `state.json` (where a run stands) and `resume.safetensors` (everything needed to continue
//! it), and the checks that an unfinished run can continue: its saved state, its config and
//! its streamed metrics belong together.

use super::paths::{RunDir, CONFIG, IPR_HIST, METRICS, RESUME, STATE, SUMMARY};
use crate::config::Checked;
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::fsio::{read_bytes, read_text};
use crate::metrics::Record;
use crate::train::{Engine, Network};
use serde::{Deserialize, Serialize};
use std::fs;

/// Where a training run stands (`state.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Finished,
    /// Stopped by a signal with a resumable state (`grokscope train --resume DIR`).
    Interrupted,
    /// Finished, and every model diverged.
    Diverged,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Finished => "finished",
            Status::Interrupted => "interrupted",
            Status::Diverged => "diverged",
        }
    }
}

/// `state.json`: the run's status, rewritten at its start, at each autosave and at its end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    /// The last step trained when the state was written.
    pub step: u64,
    pub total_steps: u64,
    /// The step of the state in `resume.safetensors` (`null`: none saved).
    pub resumable_step: Option<u64>,
    /// Wall-clock seconds of training, over all sessions of the run.
    pub seconds: f64,
    /// Of those, seconds spent writing metrics, state and autosaves.
    #[serde(default)]
    pub io_seconds: f64,
    /// Per model, the first step whose training loss was NaN or infinite.
    pub diverged_at: Vec<Option<u64>>,
}

/// Where an unfinished run continues (see [`RunDir::resume_point`]).
pub struct ResumePoint {
    pub state: RunState,
    /// `resume.safetensors`, for `Engine::load_state`.
    pub bytes: Vec<u8>,
    pub step: u64,
    pub seconds: f64,
    pub io_seconds: f64,
    pub diverged_at: Vec<Option<u64>>,
    /// Every model's records up to `step`.
    pub history: Vec<Vec<Record>>,
}

/// The metadata key of a saved state's [`crate::config::Config::fingerprint_any_length`].
const ANY_LENGTH: &str = "config_any_length";

/// Whether the saved state `bytes` belongs to `cfg` at any length (states saved before the
/// key existed: at `cfg`'s own length). `Err`: its metadata cannot be read.
pub(crate) fn saved_by(cfg: &Checked, bytes: &[u8]) -> std::result::Result<bool, String> {
    let meta = |k: &str| crate::train::engine::read_meta(bytes, k).map_err(|e| e.to_string());
    Ok(match meta(ANY_LENGTH)? {
        Some(f) => f == cfg.fingerprint_any_length(),
        None => meta("config")?.is_some_and(|f| f == cfg.fingerprint()),
    })
}

impl RunDir {
    /// Writes `state.json`.
    pub fn write_state(&self, state: &RunState) -> Result<()> {
        let json = serde_json::to_string_pretty(state)
            .map_err(|e| Error::json(self.path.join(STATE), "cannot write the run state", e))?;
        write_atomic(&self.path.join(STATE), json.as_bytes())
    }

    /// The run's `state.json` (`None` for runs written before it existed).
    pub fn read_state(&self) -> Result<Option<RunState>> {
        let p = self.path.join(STATE);
        if !p.exists() {
            return Ok(None);
        }
        let text = read_text(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::json(&p, "corrupt run state", e))
    }

    /// Where a run of `cfg` (its `config.toml`) continues to `total_steps` (its own length, or
    /// a longer one to extend it): its saved state (`resume.safetensors`, which alone decides
    /// the step: it is written first and atomically) and its records up to that step, checked
    /// against each other. `None`: a run stopped before it saved any state, which trains
    /// again from step 0. Refuses a run another process trains, a finished run not extended,
    /// a state saved for another config, and metrics that do not reach the saved step.
    pub fn resume_point(
        &self,
        cfg: &Checked,
        n_models: usize,
        total_steps: u64,
    ) -> Result<Option<ResumePoint>> {
        self.check_not_in_use()?;
        let path = self.path.join(RESUME);
        let Some(state) = self.read_state()? else {
            // Killed before its first state.json (while its dataset was written): nothing
            // was trained.
            if self.has_weights() || self.path.join(SUMMARY).exists() {
                return Err(self.bad_file(STATE, "no run state: this run cannot be resumed"));
            }
            return Ok(None);
        };
        let finished = matches!(state.status, Status::Finished);
        match state.status {
            Status::Diverged => {
                return Err(self.bad_file(
                    STATE,
                    "the run is diverged already (every model's loss became NaN or infinite): training it longer changes nothing",
                ))
            }
            Status::Finished if total_steps <= state.step => {
                return Err(self.bad_file(
                    STATE,
                    format!(
                        "the run is finished already ({} steps); to train it longer, give a larger length: `grokscope train --resume {} --set train.steps=N` with N > {}",
                        state.step,
                        self.path.display(),
                        state.step
                    ),
                ))
            }
            Status::Finished if !path.is_file() => {
                return Err(self.bad_file(
                    RESUME,
                    format!(
                        "missing: the run finished without its final training state (written since grokscope kept it, or removed), so it cannot be extended; train the longer run anew with `grokscope train --config {} --set train.steps=N --out NEW` (its first steps are this run's)",
                        self.path.join(CONFIG).display()
                    ),
                ))
            }
            _ if !path.is_file() => return Ok(None),
            _ => {}
        }
        let bytes = read_bytes(&path).map_err(|e| Error::io(&path, e))?;
        match crate::digest::verify(&bytes) {
            Ok(crate::digest::Seal::Verified) => {}
            Ok(crate::digest::Seal::Absent) => crate::digest::note_unsealed(&path),
            Err(why) => {
                return Err(self.bad_file(
                    RESUME,
                    format!("{why}. The run was not resumed and nothing was changed: the saved state cannot be trusted; train again with `grokscope train --config {} --out NEW` (the same config gives the same results)", self.path.join(CONFIG).display()),
                ))
            }
        }
        let bad = |why: String| self.bad_file(RESUME, why);
        let meta = |key: &str| -> Result<String> {
            crate::train::engine::read_meta(&bytes, key)
                .map_err(|e| bad(e.to_string()))?
                .ok_or_else(|| bad(format!("no `{key}` in its metadata")))
        };
        if !saved_by(cfg, &bytes).map_err(&bad)? {
            return Err(bad(format!(
                "it was saved by a run of another config than {CONFIG}"
            )));
        }
        let step: u64 = meta("step")?
            .parse()
            .map_err(|_| bad("a bad `step` in its metadata".into()))?;
        if finished && step != state.step {
            return Err(bad(format!(
                "it holds the state of step {step}, not the finished run's last step {}: the run cannot be extended from it; train the longer run anew with `grokscope train --config {} --set train.steps=N --out NEW`",
                state.step,
                self.path.join(CONFIG).display()
            )));
        }
        if step == 0 || step >= total_steps {
            return Err(bad(format!("its step {step} is not inside the run")));
        }
        let num = |key: &str| -> Result<f64> {
            meta(key)?
                .parse()
                .map_err(|_| bad(format!("a bad `{key}` in its metadata")))
        };
        let (seconds, io_seconds) = (num("seconds")?, num("io_seconds")?);
        if !(seconds >= 0.0 && io_seconds >= 0.0 && seconds.is_finite() && io_seconds.is_finite()) {
            return Err(bad("bad `seconds` or `io_seconds` in its metadata".into()));
        }
        let diverged_at: Vec<Option<u64>> = serde_json::from_str(&meta("diverged_at")?)
            .map_err(|_| bad("a bad `diverged_at` in its metadata".into()))?;
        if diverged_at.len() != n_models || meta("models")? != n_models.to_string() {
            return Err(bad(format!(
                "{} models ({} in `diverged_at`), the config has {n_models}",
                meta("models")?,
                diverged_at.len()
            )));
        }
        if let Some(s) = diverged_at.iter().flatten().find(|&&s| s > step) {
            return Err(bad(format!(
                "a model diverged at step {s}, after the state's step {step}"
            )));
        }
        // Every model and parameter block took one AdamW step per training step.
        let adam_t = meta("adam_t")?;
        if adam_t
            .split(',')
            .any(|t| t.trim().parse::<u64>().ok() != Some(step))
        {
            return Err(bad(format!(
                "its AdamW step counts ({}) disagree with its step {step}",
                adam_t.chars().take(40).collect::<String>()
            )));
        }
        // The streamed records must hold exactly the evaluations up to the saved step.
        let history = self.read_history_upto(n_models, step)?;
        let every = cfg.eval.every;
        let on_schedule = every > 0 && step.is_multiple_of(every);
        let mut expected: Vec<u64> = std::iter::once(0)
            .chain(
                (1..)
                    .map(|k| k * every)
                    .take_while(|&s| every > 0 && s <= step),
            )
            .collect();
        // A finished run evaluated its last step, on the schedule or not.
        if finished && !on_schedule {
            expected.push(step);
        }
        for (m, (h, d)) in history.iter().zip(&diverged_at).enumerate() {
            // A model that diverged at step s has no finite evaluation from s on, and one
            // with only finite evaluations did not diverge before the last of them.
            let after = |s: u64| h.iter().filter(move |r| r.step >= s);
            if let Some(s) = d {
                if after(*s).any(|r| r.is_finite()) {
                    return Err(bad(format!(
                        "model {m} is said to diverge at step {s}, but metrics.csv has finite values after it"
                    )));
                }
            }
            let steps: Vec<u64> = h.iter().map(|r| r.step).collect();
            if steps != expected {
                return Err(self.bad_file(
                    METRICS,
                    format!(
                        "model {m} has evaluations up to step {}, the saved state is at step {step} (expected {} evaluations): the files do not belong together",
                        steps.last().copied().unwrap_or(0),
                        expected.len()
                    ),
                ));
            }
            if h.iter()
                .any(|r| r.ipr_hist.len() != crate::metrics::IPR_BINS)
            {
                return Err(
                    self.bad_file(IPR_HIST, format!("missing or incomplete up to step {step}"))
                );
            }
        }
        let mut history = history;
        if finished {
            // Extended: the longer run evaluates the old last step only on the schedule, and
            // measures progress there only on its own schedule.
            for h in &mut history {
                if !on_schedule {
                    h.pop();
                } else if !cfg.eval.progress_at(step, total_steps) {
                    if let Some(r) = h.last_mut() {
                        r.clear_progress();
                    }
                }
            }
        }
        Ok(Some(ResumePoint {
            state,
            bytes,
            step,
            seconds,
            io_seconds,
            diverged_at,
            history,
        }))
    }

    /// Writes `resume.safetensors` (atomically): the network's whole training state, with the
    /// run's bookkeeping in its metadata.
    pub fn write_resume(&self, cfg: &Checked, network: &Network, info: &RunState) -> Result<()> {
        let extra = vec![
            ("config", cfg.fingerprint()),
            (ANY_LENGTH, cfg.fingerprint_any_length()),
            ("seconds", info.seconds.to_string()),
            ("io_seconds", info.io_seconds.to_string()),
            (
                "diverged_at",
                serde_json::to_string(&info.diverged_at).unwrap_or_default(),
            ),
        ];
        write_atomic(&self.path.join(RESUME), &network.save_state(extra)?)
    }

    /// Removes `resume.safetensors`.
    pub fn remove_resume(&self) -> Result<()> {
        let p = self.path.join(RESUME);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&p, e)),
            _ => Ok(()),
        }
    }
}
