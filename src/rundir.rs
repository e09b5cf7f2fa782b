//! A run directory and everything in it (formats in `docs/OUTPUTS.md`): the one place that
//! knows the file names, writes them (through a temporary file renamed into place, never
//! replacing one that exists unless asked) and reads them back (validated, errors naming the
//! file).
//!
//! ```text
//! config.toml            the resolved config
//! metrics.csv            one row per model per evaluation step
//! ipr_hist.csv           per-neuron IPR histogram per model and evaluation step
//! summary.json           per model: settings, final metrics, phase, dynamics
//! weights.safetensors    the trained fleet
//! state.json             running | finished | interrupted | diverged, the step, the time
//! resume.safetensors     while a run is unfinished: everything needed to continue it
//! checkpoints/           step-XXXXXXXX.safetensors every eval.checkpoint_every steps
//! analysis/              what `grokscope analyze` and `prune` write
//! report/                figures and report.html
//! ```

use crate::analysis::dynamics::{dynamics, Dynamics};
use crate::analysis::prune::Order;
use crate::config::{Checked, Config, ModelSpec, Setup};
use crate::error::{Error, Result};
use crate::metrics::{Phase, Record, Thresholds};
use crate::train::{Engine, Network};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod swap;

const CONFIG: &str = "config.toml";
const METRICS: &str = "metrics.csv";
const IPR_HIST: &str = "ipr_hist.csv";
const SUMMARY: &str = "summary.json";
const WEIGHTS: &str = "weights.safetensors";
const STATE: &str = "state.json";
const RESUME: &str = "resume.safetensors";
const LOCK: &str = ".lock";
const DATASET: &str = "dataset.safetensors";
const CHECKPOINTS: &str = "checkpoints";
const ANALYSIS: &str = "analysis";
/// The directory reports go to, in a run directory and in a sweep directory.
pub const REPORT: &str = "report";
/// What a finished `grokscope train` leaves in its run directory (besides checkpoints and the
/// report).
pub const RESULT_FILES: [&str; 6] = [CONFIG, METRICS, IPR_HIST, SUMMARY, WEIGHTS, DATASET];

/// A file of a run's `analysis/` directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisFile {
    /// `neurons.csv`: the per-neuron table.
    Neurons,
    /// `spectra.csv`: `|û|` of every neuron vector.
    Spectra,
    /// `embedding.csv`: the token embedding's columns (Transformer).
    Embedding,
    /// `summary.json`: per model, phase and IPR summary.
    Summary,
    /// `prune-<order>.csv`, or `prune-<order>-model<i>.csv` for one model.
    Prune { order: Order, model: Option<usize> },
}

impl AnalysisFile {
    pub fn name(self) -> String {
        match self {
            AnalysisFile::Neurons => "neurons.csv".into(),
            AnalysisFile::Spectra => "spectra.csv".into(),
            AnalysisFile::Embedding => "embedding.csv".into(),
            AnalysisFile::Summary => SUMMARY.into(),
            AnalysisFile::Prune { order, model: None } => format!("prune-{}.csv", order.name()),
            AnalysisFile::Prune {
                order,
                model: Some(i),
            } => format!("prune-{}-model{i}.csv", order.name()),
        }
    }
}

const METRICS_COLUMNS: &[&str] = &[
    "model",
    "step",
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "mem_acc",
    "inv_acc",
    "clean_acc",
    "norm_u",
    "norm_v",
    "norm_w",
    "mean_ipr",
    "dead_neurons",
    "batch_loss",
];

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

/// A run directory held by this process; dropping it releases the run.
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A run directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

/// A trained run, ready to analyse: its directory, its checked config and the network with
/// the trained weights (everything else rebuilt from the seeds in the config).
pub struct LoadedRun {
    pub dir: RunDir,
    pub cfg: Checked,
    pub setup: Setup,
}

/// Loads the run directory `path`.
pub fn load_run(path: &Path) -> Result<LoadedRun> {
    RunDir::open(path)?.load()
}

/// Reads a file that must be a regular file (a FIFO or device would block or never end).
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a directory, FIFO or device)",
        ));
    }
    fs::read(path)
}

/// [`read_bytes`] as UTF-8 text.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_bytes(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Whether process `pid` of this machine is alive: it exists and is not a zombie (a killed
/// process whose parent has not reaped it holds nothing). True where it cannot be known
/// (no /proc).
pub fn process_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses (which may hold spaces).
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_none_or(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

/// Test hook: with `GROKSCOPE_FAULT=NAME`, the process aborts (as if killed) at the fault
/// point `NAME` (`swap`, `remove-old`, `between-renames`: the steps of [`swap::swap_in`]).
/// `GROKSCOPE_NO_EXCHANGE=1` makes swaps use the two-rename path of file systems that cannot
/// exchange two names.
pub fn fault_point(name: &str) {
    if std::env::var("GROKSCOPE_FAULT").is_ok_and(|f| f == name) {
        std::process::abort();
    }
}

/// Writes `bytes` to `dir/name` through a temporary file renamed into place; refuses to
/// replace an existing file unless `replace`.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8], replace: bool) -> Result<()> {
    let path = dir.join(name);
    if path.exists() && !replace {
        return Err(Error::FileExists(path));
    }
    atomic_write(&path, bytes)
}

/// Writes `bytes` to `path` through a flushed temporary file renamed into place (atomic on
/// POSIX: a reader sees the old file or the new one, never part of one).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
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
        })
    }

    /// An existing run directory (one with a `config.toml`).
    pub fn open(path: &Path) -> Result<RunDir> {
        let dir = RunDir {
            path: path.to_path_buf(),
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
        swap::recover_all(path)?;
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

    fn not_a_run(&self, why: impl std::fmt::Display) -> Error {
        Error::NotARun {
            dir: self.path.clone(),
            why: why.to_string(),
        }
    }

    /// Writes `config.toml`: the resolved config, every default filled in.
    pub fn write_config(&self, cfg: &Config) -> Result<()> {
        let text = format!(
            "# Resolved configuration of this run: every default filled in.\n# Re-run with: grokscope train --config {}\n\n{}",
            self.path.join(CONFIG).display(),
            cfg.to_toml()
        );
        write_file(&self.path, CONFIG, text.as_bytes(), false)
    }

    /// Writes `dataset.safetensors` (unless it exists): the pairs, the split, the true labels,
    /// and per model the labels it trains on and which examples are corrupted — everything
    /// needed to recompute any accuracy outside grokscope (docs/OUTPUTS.md).
    pub fn write_dataset(
        &self,
        split: &crate::data::Split,
        labels: &[crate::data::TrainLabels],
    ) -> Result<()> {
        if self.path.join(DATASET).exists() {
            return Ok(());
        }
        let bytes = dataset_bytes(split, labels)?;
        write_file(&self.path, DATASET, &bytes, false)
    }

    /// The text of `config.toml`.
    pub fn config_text(&self) -> Result<String> {
        read_text(&self.path.join(CONFIG)).map_err(|e| self.not_a_run(format!("{CONFIG}: {e}")))
    }

    fn bad_file(&self, name: &str, e: impl std::fmt::Display) -> Error {
        Error::BadFile {
            path: self.path.join(name),
            why: e.to_string(),
        }
    }

    /// The run's config, checked, and checked against `summary.json` if the run finished.
    pub fn read_config(&self) -> Result<Checked> {
        let cfg = Config::from_toml(&self.config_text()?, &[])
            .and_then(Config::check)
            .map_err(|e| self.bad_file(CONFIG, e))?;
        self.check_summary(&cfg)?;
        Ok(cfg)
    }

    /// `summary.json` of a finished run belongs to `cfg`: it was trained under config.toml's data,
    /// model and train settings (`trained_config`), with its steps, split sizes and models.
    fn check_summary(&self, cfg: &Checked) -> Result<()> {
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
        if s.trained_config != now {
            return Err(self.bad_file(
                CONFIG,
                format!(
                    "its data, model or train settings were changed after the run finished (summary.json: trained under {}, config.toml now {now}); the results belong to the original settings: restore them, or train again (the eval section may change)",
                    s.trained_config
                ),
            ));
        }
        let (table, n_train) = cfg.table_sizes();
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

    /// Whether the run has its final weights (it finished).
    pub fn has_weights(&self) -> bool {
        self.path.join(WEIGHTS).is_file()
    }

    /// The config and the trained weights of the run.
    pub fn load(&self) -> Result<LoadedRun> {
        let cfg = self.read_config()?;
        let mut setup = cfg.setup().map_err(|e| self.bad_file(CONFIG, e))?;
        let bytes = read_bytes(&self.path.join(WEIGHTS))
            .map_err(|_| self.not_a_run(format!("it has no {WEIGHTS} (did the run finish?)")))?;
        // The weights are written after summary.json: weights without it were not written
        // by a run that finished.
        if !self.path.join(SUMMARY).is_file() {
            return Err(self.bad_file(
                SUMMARY,
                format!("missing, but {WEIGHTS} is there: the run's results are incomplete"),
            ));
        }
        // The final weights of this run: written at its last step, with grokscope's metadata.
        let step = crate::train::engine::read_meta(&bytes, "step")
            .map_err(|e| self.bad_file(WEIGHTS, e))?;
        if step != Some(setup.total_steps.to_string()) {
            return Err(self.bad_file(
                WEIGHTS,
                format!(
                    "{}, but the run's last step is {}: the file belongs to another run",
                    step.map_or("it has no step in its metadata".into(), |s| format!(
                        "it holds the weights of step {s}"
                    )),
                    setup.total_steps
                ),
            ));
        }
        setup
            .network
            .load(&bytes)
            .map_err(|e| self.bad_file(WEIGHTS, e))?;
        Ok(LoadedRun {
            dir: self.clone(),
            cfg,
            setup,
        })
    }

    /// Writes `checkpoints/step-XXXXXXXX.safetensors`, every model, in the layout of
    /// `weights.safetensors`.
    /// `resumed`: a resumed run may write again a checkpoint its killed attempt wrote (the
    /// same bytes).
    pub fn write_checkpoint(&self, network: &Network, step: u64, resumed: bool) -> Result<()> {
        let dir = self.path.join(CHECKPOINTS);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write_file(
            &dir,
            &checkpoint_name(step),
            &network.save_all(step)?,
            resumed,
        )
    }

    /// Writes the summary and the weights of a finished run (its metrics were streamed);
    /// `resumed`: replacing those of an attempt killed while finishing.
    pub fn write_results(
        &self,
        cfg: &Checked,
        setup: &Setup,
        history: &[Vec<Record>],
        diverged_at: &[Option<u64>],
        resumed: bool,
    ) -> Result<Summary> {
        // A resumed run replaces what an earlier attempt, killed while finishing, wrote: the
        // same deterministic run writes the same bytes.
        let s = summary(cfg, setup, history, diverged_at);
        let json = serde_json::to_string_pretty(&s)
            .map_err(|e| Error::json(self.path.join(SUMMARY), "cannot write the summary", e))?;
        write_file(&self.path, SUMMARY, json.as_bytes(), resumed)?;
        write_file(
            &self.path,
            WEIGHTS,
            &setup.network.save_all(setup.total_steps)?,
            resumed,
        )?;
        Ok(s)
    }

    /// Creates `metrics.csv` and `ipr_hist.csv` (headers only) for streaming.
    pub fn start_metrics(&self) -> Result<MetricsStream> {
        self.restart_metrics(&[])
    }

    /// Rewrites `metrics.csv` and `ipr_hist.csv` from `history` (a resumed run's records up
    /// to its saved step, in the order they were streamed), then opens them for appending.
    pub fn restart_metrics(&self, history: &[Vec<Record>]) -> Result<MetricsStream> {
        let (mut m, mut h) = (metrics_header(), ipr_hist_header());
        let evals = history.iter().map(|x| x.len()).max().unwrap_or(0);
        for k in 0..evals {
            let rows: Vec<(usize, &Record)> = history
                .iter()
                .enumerate()
                .filter_map(|(i, x)| Some((i, x.get(k)?)))
                .collect();
            m.push_str(&metrics_rows(&rows));
            h.push_str(&ipr_hist_rows(&rows));
        }
        atomic_write(&self.path.join(METRICS), m.as_bytes())?;
        atomic_write(&self.path.join(IPR_HIST), h.as_bytes())?;
        let open = |name: &str| {
            let p = self.path.join(name);
            fs::OpenOptions::new()
                .append(true)
                .open(&p)
                .map_err(|e| Error::io(&p, e))
        };
        Ok(MetricsStream {
            metrics: (self.path.join(METRICS), open(METRICS)?),
            hist: (self.path.join(IPR_HIST), open(IPR_HIST)?),
        })
    }

    /// Writes `state.json`.
    pub fn write_state(&self, state: &RunState) -> Result<()> {
        let json = serde_json::to_string_pretty(state)
            .map_err(|e| Error::json(self.path.join(STATE), "cannot write the run state", e))?;
        atomic_write(&self.path.join(STATE), json.as_bytes())
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

    /// Where an unfinished run of `cfg` can continue: its saved state (`resume.safetensors`,
    /// which alone decides the step: it is written first and atomically) and its records up
    /// to that step, checked against each other. Refuses a finished run, a state saved for
    /// another config, and metrics that do not reach the saved step.
    pub fn resume_point(
        &self,
        cfg: &Checked,
        n_models: usize,
        total_steps: u64,
    ) -> Result<ResumePoint> {
        self.check_not_in_use()?;
        let state = self
            .read_state()?
            .ok_or_else(|| self.bad_file(STATE, "no run state: this run cannot be resumed"))?;
        if matches!(state.status, Status::Finished | Status::Diverged) {
            return Err(self.bad_file(STATE, format!("the run is {} already", state.status.name())));
        }
        let path = self.path.join(RESUME);
        if !path.is_file() {
            return Err(self.bad_file(
                RESUME,
                "missing: no state was saved yet (it is saved on Ctrl-C/SIGTERM and every eval.autosave_minutes)",
            ));
        }
        let bytes = read_bytes(&path).map_err(|e| Error::io(&path, e))?;
        let bad = |why: String| self.bad_file(RESUME, why);
        let meta = |key: &str| -> Result<String> {
            crate::train::engine::read_meta(&bytes, key)
                .map_err(|e| bad(e.to_string()))?
                .ok_or_else(|| bad(format!("no `{key}` in its metadata")))
        };
        if meta("config")? != cfg.fingerprint() {
            return Err(bad(format!(
                "it was saved by a run of another config than {CONFIG}"
            )));
        }
        let step: u64 = meta("step")?
            .parse()
            .map_err(|_| bad("a bad `step` in its metadata".into()))?;
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
        let expected: Vec<u64> = std::iter::once(0)
            .chain(
                (1..)
                    .map(|k| k * every)
                    .take_while(|&s| every > 0 && s <= step),
            )
            .collect();
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
        Ok(ResumePoint {
            state,
            bytes,
            step,
            seconds,
            io_seconds,
            diverged_at,
            history,
        })
    }

    /// Writes `resume.safetensors` (atomically): the network's whole training state, with the
    /// run's bookkeeping in its metadata.
    pub fn write_resume(&self, cfg: &Checked, network: &Network, info: &RunState) -> Result<()> {
        let extra = vec![
            ("config", cfg.fingerprint()),
            ("seconds", info.seconds.to_string()),
            ("io_seconds", info.io_seconds.to_string()),
            (
                "diverged_at",
                serde_json::to_string(&info.diverged_at).unwrap_or_default(),
            ),
        ];
        atomic_write(&self.path.join(RESUME), &network.save_state(extra)?)
    }

    /// Refuses a run that another live process holds (its `.lock`).
    pub fn check_not_in_use(&self) -> Result<()> {
        let path = self.path.join(LOCK);
        let pid = fs::read_to_string(&path).unwrap_or_default();
        let pid = pid.trim();
        let alive = pid.parse::<u32>().is_ok_and(process_alive);
        if alive && pid != std::process::id().to_string() {
            return Err(self.bad_file(
                LOCK,
                format!("the run is in use by process {pid} (remove this file if that process is not grokscope)"),
            ));
        }
        Ok(())
    }

    /// Takes the run for this process (`.lock` with its pid); refuses while another live
    /// process holds it. Released when the guard is dropped.
    pub fn lock(&self) -> Result<RunLock> {
        let path = self.path.join(LOCK);
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(std::process::id().to_string().as_bytes())
                        .map_err(|e| Error::io(&path, e))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    self.check_not_in_use()?;
                    // A lock left by a process that died: take it over.
                    fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(self.bad_file(LOCK, "cannot take the lock"))
    }

    /// Removes `resume.safetensors` (a finished run needs none).
    pub fn remove_resume(&self) -> Result<()> {
        let p = self.path.join(RESUME);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&p, e)),
            _ => Ok(()),
        }
    }

    /// The metrics history of each of the `n_models` models of the run, from `metrics.csv`
    /// (and `ipr_hist.csv` if present); every model has at least one row.
    pub fn read_history(&self, n_models: usize) -> Result<Vec<Vec<Record>>> {
        let path = self.path.join(METRICS);
        let text = read_text(&path).map_err(|e| Error::io(&path, e))?;
        let hist_path = self.path.join(IPR_HIST);
        let complete = self.has_weights();
        if !complete {
            // A run still training appends as we read: take the evaluations every model has
            // finished writing.
            if let Some(step) = last_common_step(&text, n_models) {
                return self.read_history_upto(n_models, step);
            }
        }
        let hist = match read_text(&hist_path) {
            Ok(h) => Some(h),
            Err(e) if complete || e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&hist_path, e))
            }
            Err(_) => None,
        };
        read_metrics_csv(
            &path,
            &text,
            n_models,
            &hist_path,
            hist.as_deref(),
            complete,
        )
    }

    /// The records up to `step` of a run that stopped (or is still streaming): a line cut short by a
    /// kill (no newline at its end) and rows after `step` are left out.
    pub fn read_history_upto(&self, n_models: usize, step: u64) -> Result<Vec<Vec<Record>>> {
        fn whole_lines(text: String) -> String {
            match text.rfind('\n') {
                Some(i) => text[..=i].to_string(),
                None => String::new(),
            }
        }
        let path = self.path.join(METRICS);
        let text = whole_lines(read_text(&path).map_err(|e| Error::io(&path, e))?);
        let hist_path = self.path.join(IPR_HIST);
        let hist = read_text(&hist_path).ok().map(whole_lines);
        // Rows after `step` may belong to evaluations the kill cut short for some models.
        let keep = |t: &str| -> String {
            let mut out = String::new();
            for (i, line) in t.lines().enumerate() {
                let row_step = line.split(',').nth(1).and_then(|x| x.parse::<u64>().ok());
                if i == 0 || row_step.is_some_and(|s| s <= step) {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            out
        };
        let hist = hist.map(|h| keep(&h));
        read_metrics_csv(
            &path,
            &keep(&text),
            n_models,
            &hist_path,
            hist.as_deref(),
            false,
        )
    }

    /// The analysis directory, created if needed.
    pub fn analysis_dir(&self) -> Result<PathBuf> {
        let d = self.path.join(ANALYSIS);
        swap::recover(&d)?;
        fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        Ok(d)
    }

    /// Whether `path` is a run's analysis directory; its run directory if so.
    pub fn of_analysis_dir(path: &Path) -> Option<RunDir> {
        if path.file_name().is_some_and(|n| n == ANALYSIS) {
            let run = path.parent()?;
            return RunDir::open(run).ok();
        }
        None
    }

    /// The path of an analysis file.
    pub fn analysis_path(&self, file: AnalysisFile) -> PathBuf {
        self.path.join(ANALYSIS).join(file.name())
    }

    /// Refuses to replace the analysis files `files` unless `force`.
    pub fn check_analysis_free(&self, files: &[AnalysisFile], force: bool) -> Result<()> {
        for &f in files {
            let p = self.analysis_path(f);
            if p.exists() && !force {
                return Err(Error::FileExists(p));
            }
        }
        Ok(())
    }

    /// Writes the analysis files `files` together: the new analysis/ is staged beside the old
    /// one (keeping the old files that `files` does not replace) and swapped in whole.
    pub fn replace_analysis(&self, files: &[(AnalysisFile, String)], force: bool) -> Result<()> {
        let dest = self.path.join(ANALYSIS);
        swap::recover(&dest)?;
        let which: Vec<AnalysisFile> = files.iter().map(|f| f.0).collect();
        self.check_analysis_free(&which, force)?;
        let staged = swap::stage(&dest)?;
        let names: Vec<String> = which.iter().map(|f| f.name()).collect();
        let built = swap::keep_others(&dest, &staged, &|n| names.iter().any(|m| m == n))
            .and_then(|_| {
                files.iter().try_for_each(|(f, text)| {
                    let path = staged.join(f.name());
                    let mut file = fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
                    file.write_all(text.as_bytes())
                        .and_then(|_| file.sync_all())
                        .map_err(|e| Error::io(&path, e))
                })
            })
            .and_then(|_| swap::swap_in(&staged, &dest));
        if built.is_err() {
            swap::discard(&staged);
        }
        built
    }

    /// Writes an analysis file (replacing it only with `force`).
    pub fn write_analysis(&self, file: AnalysisFile, bytes: &[u8], force: bool) -> Result<PathBuf> {
        let dir = self.analysis_dir()?;
        write_file(&dir, &file.name(), bytes, force)?;
        Ok(self.analysis_path(file))
    }
}

/// The file name of the checkpoint at `step`.
pub fn checkpoint_name(step: u64) -> String {
    format!("step-{step:08}.safetensors")
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v}")).unwrap_or_default()
}

fn metrics_header() -> String {
    let mut s = METRICS_COLUMNS.join(",");
    s.push('\n');
    s
}

/// `metrics.csv` rows of one evaluation: `(model, record)`.
fn metrics_rows(rows: &[(usize, &Record)]) -> String {
    let mut s = String::new();
    for (m, r) in rows {
        s.push_str(&format!(
            "{m},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.step,
            r.epoch,
            r.train_loss,
            r.train_acc,
            r.test_loss,
            r.test_acc,
            opt(r.mem_acc),
            opt(r.inv_acc),
            opt(r.clean_acc),
            r.norm_u,
            r.norm_v,
            r.norm_w,
            opt(r.mean_ipr),
            r.dead_neurons,
            opt(r.batch_loss)
        ));
    }
    s
}

/// One model's records in the format of `metrics.csv` (its `model` column 0): a sweep
/// keeps each run's curves this way.
pub fn curve_csv(records: &[Record]) -> String {
    let mut s = metrics_header();
    for r in records {
        s.push_str(&metrics_rows(&[(0, r)]));
    }
    s
}

/// Reads a file written by [`curve_csv`] (`path` names it in errors).
pub fn read_curve_csv(path: &Path, text: &str) -> Result<Vec<Record>> {
    let mut h = read_metrics_csv(path, text, 1, path, None, false)?;
    Ok(h.pop().unwrap_or_default())
}

/// The open, streamed `metrics.csv` and `ipr_hist.csv` of a training run.
pub struct MetricsStream {
    metrics: (PathBuf, fs::File),
    hist: (PathBuf, fs::File),
}

impl MetricsStream {
    /// Appends one evaluation (each model's record) to both files and flushes them, so a
    /// reader sees every evaluation so far.
    pub fn append(&mut self, records: &[&Record]) -> Result<()> {
        let rows: Vec<(usize, &Record)> = records.iter().copied().enumerate().collect();
        for ((path, f), text) in [
            (&mut self.metrics, metrics_rows(&rows)),
            (&mut self.hist, ipr_hist_rows(&rows)),
        ] {
            f.write_all(text.as_bytes())
                .and_then(|_| f.flush())
                .map_err(|e| Error::io(&*path, e))?;
        }
        Ok(())
    }
}

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

fn summary(
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
                let last = hist.last()?.clone();
                Some(ModelSummary {
                    spec: spec.clone(),
                    lr_effective: cfg.effective_lr(spec.lr),
                    n_corrupted: labels.n_corrupted(),
                    phase: if diverged_at.get(i).copied().flatten().is_some() {
                        Phase::Diverged
                    } else {
                        last.phase(t)
                    },
                    diverged_step: diverged_at.get(i).copied().flatten(),
                    dynamics: dynamics(hist, hi),
                    last,
                })
            })
            .collect(),
    }
}

/// Reads `metrics.csv` (as written by [`metrics_csv`]) back into per-model histories, with
/// the IPR histograms of `ipr_hist` (the text of `ipr_hist.csv`) when given.
fn read_metrics_csv(
    path: &Path,
    text: &str,
    n_models: usize,
    hist_path: &Path,
    ipr_hist: Option<&str>,
    complete: bool,
) -> Result<Vec<Vec<Record>>> {
    let bad = |line: usize, why: &str| Error::csv(path, line, why);
    // Every row is written with its newline: a finished run's file that ends without one was
    // cut short (possibly inside a number that still parses).
    if complete && !text.is_empty() && !text.ends_with('\n') {
        return Err(bad(
            text.lines().count(),
            "the file ends in the middle of a line (truncated?)",
        ));
    }
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    // Runs written before `batch_loss` existed have the other columns only.
    let ncols = header.len();
    if header != METRICS_COLUMNS[..ncols.min(METRICS_COLUMNS.len())]
        || ncols < METRICS_COLUMNS.len() - 1
    {
        return Err(bad(1, "unexpected header"));
    }
    let mut out: Vec<Vec<Record>> = vec![Vec::new(); n_models];
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != ncols {
            return Err(bad(i + 2, "wrong number of fields"));
        }
        let num =
            |j: usize| -> Result<f64> { f[j].parse().map_err(|_| bad(i + 2, "not a number")) };
        let int = |j: usize| -> Result<u64> {
            f[j].parse()
                .map_err(|_| bad(i + 2, "not a non-negative integer"))
        };
        let opt = |j: usize| -> Result<Option<f64>> {
            if f[j].is_empty() {
                Ok(None)
            } else {
                num(j).map(Some)
            }
        };
        let model = int(0)?;
        let Some(h) = usize::try_from(model).ok().and_then(|m| out.get_mut(m)) else {
            return Err(bad(
                i + 2,
                &format!("model {model}, but config.toml has {n_models} model(s)"),
            ));
        };
        h.push(Record {
            step: int(1)?,
            epoch: num(2)?,
            train_loss: num(3)?,
            train_acc: num(4)?,
            test_loss: num(5)?,
            test_acc: num(6)?,
            mem_acc: opt(7)?,
            inv_acc: opt(8)?,
            clean_acc: opt(9)?,
            norm_u: num(10)?,
            norm_v: num(11)?,
            norm_w: num(12)?,
            mean_ipr: opt(13)?,
            dead_neurons: int(14)? as usize,
            batch_loss: if ncols > 15 { opt(15)? } else { None },
            ipr_hist: Vec::new(),
        });
    }
    if let Some(m) = out.iter().position(|h| h.is_empty()) {
        return Err(Error::csv(
            path,
            text.lines().count(),
            format!("no rows for model {m} (did the run finish?)"),
        ));
    }
    // Every model has the same evaluations, in increasing step order, with values in range.
    let bad_file = |why: String| Error::BadFile {
        path: path.to_path_buf(),
        why,
    };
    for (m, h) in out.iter().enumerate() {
        if let Some(w) = h.windows(2).find(|w| w[1].step <= w[0].step) {
            return Err(bad_file(format!(
                "model {m}: step {} follows step {} (steps must increase)",
                w[1].step, w[0].step
            )));
        }
        let steps = |h: &[Record]| h.iter().map(|r| r.step).collect::<Vec<_>>();
        if steps(h) != steps(&out[0]) {
            return Err(bad_file(format!(
                "model {m} has other evaluation steps than model 0"
            )));
        }
        if let Some((r, why)) = h.iter().find_map(|r| r.out_of_range().map(|w| (r, w))) {
            return Err(bad_file(format!("model {m} at step {}: {why}", r.step)));
        }
    }
    if let Some(h) = ipr_hist {
        let mut total: Option<u64> = None;
        for (i, line) in h.lines().skip(1).enumerate() {
            let f: Vec<&str> = line.split(',').collect();
            let bad = || {
                Error::csv(
                    hist_path,
                    i + 2,
                    format!(
                        "expected model, step and {} bin counts",
                        crate::metrics::IPR_BINS
                    ),
                )
            };
            if f.len() != 2 + crate::metrics::IPR_BINS {
                return Err(bad());
            }
            let model: usize = f[0].parse().map_err(|_| bad())?;
            let step: u64 = f[1].parse().map_err(|_| bad())?;
            let counts: Vec<u32> = f[2..]
                .iter()
                .map(|x| x.parse().map_err(|_| bad()))
                .collect::<Result<_>>()?;
            let sum: u64 = counts.iter().map(|&c| c as u64).sum();
            let Some(r) = out
                .get_mut(model)
                .and_then(|h| h.iter_mut().find(|r| r.step == step))
                .filter(|r| r.ipr_hist.is_empty())
            else {
                return Err(Error::csv(
                    hist_path,
                    i + 2,
                    format!(
                        "model {model} at step {step}: not an evaluation of {} (or given twice)",
                        path.display()
                    ),
                ));
            };
            if !r.is_finite() {
                // A diverged model's neurons have no IPR: neither binned nor dead.
                r.ipr_hist = counts;
                continue;
            }
            // Living neurons are binned, dead ones counted in metrics.csv: together, the width.
            let neurons = sum + r.dead_neurons as u64;
            if total.is_some_and(|t| t != neurons) {
                return Err(Error::csv(
                    hist_path,
                    i + 2,
                    format!(
                        "its bin counts and the dead neurons of metrics.csv sum to {neurons} neurons, the rows above to {}",
                        total.unwrap_or(0)
                    ),
                ));
            }
            total = Some(neurons);
            r.ipr_hist = counts;
        }
        // A run killed between the two appends has an evaluation without its histogram.
        if let Some((m, r)) = out
            .iter()
            .enumerate()
            .find_map(|(m, h)| h.iter().find(|r| r.ipr_hist.is_empty()).map(|r| (m, r)))
            .filter(|_| complete)
        {
            return Err(Error::csv(
                hist_path,
                h.lines().count(),
                format!("no row for model {m} at step {}", r.step),
            ));
        }
    }
    Ok(out)
}

fn ipr_hist_header() -> String {
    let mut s = String::from("model,step");
    for i in 0..crate::metrics::IPR_BINS {
        s.push_str(&format!(",bin{:02}", i));
    }
    s.push('\n');
    s
}

/// `ipr_hist.csv` rows of one evaluation: per model, the number of living neurons whose IPR
/// falls in each of the bins `[i/B, (i+1)/B)` (the last bin closed).
fn ipr_hist_rows(rows: &[(usize, &Record)]) -> String {
    let mut s = String::new();
    for (m, r) in rows {
        s.push_str(&format!("{m},{}", r.step));
        for c in &r.ipr_hist {
            s.push_str(&format!(",{c}"));
        }
        s.push('\n');
    }
    s
}

/// The last step of `metrics.csv` text (whole lines only) at which all `n_models` models have
/// a row; `None` when there is none.
fn last_common_step(text: &str, n_models: usize) -> Option<u64> {
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut last: Vec<Option<u64>> = vec![None; n_models];
    for line in whole.lines().skip(1) {
        let mut f = line.split(',');
        let model = f.next().and_then(|m| m.parse::<usize>().ok());
        let step = f.next().and_then(|x| x.parse::<u64>().ok());
        if let (Some(m), Some(s)) = (model, step) {
            if let Some(l) = last.get_mut(m) {
                *l = Some(l.map_or(s, |v: u64| v.max(s)));
            }
        }
    }
    last.into_iter()
        .try_fold(u64::MAX, |acc, l| l.map(|v| acc.min(v)))
}

/// The tensors of `dataset.safetensors`, little-endian: `pairs` u32 [N, 2] (the training
/// pairs, then the test pairs), `train` u8 [N] (1 for a training pair), `labels` u32 [N] (the
/// true label `a ∘ b mod p`), `train_labels` u32 [M, n_train] (what model m trains on) and
/// `corrupted` u8 [M, n_train] (1 for an example of model m's corrupted set C).
fn dataset_bytes(
    split: &crate::data::Split,
    labels: &[crate::data::TrainLabels],
) -> Result<Vec<u8>> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let n_train = split.train_pairs.len();
    let pairs: Vec<u8> = split
        .train_pairs
        .iter()
        .chain(&split.test_pairs)
        .flat_map(|&(a, b)| [a.to_le_bytes(), b.to_le_bytes()])
        .flatten()
        .collect();
    let n = split.train_pairs.len() + split.test_pairs.len();
    let train: Vec<u8> = (0..n).map(|i| u8::from(i < n_train)).collect();
    let truth: Vec<u8> = split
        .train_true
        .iter()
        .chain(&split.test_labels)
        .flat_map(|l| l.to_le_bytes())
        .collect();
    let models = labels.len();
    let trained: Vec<u8> = labels
        .iter()
        .flat_map(|l| l.labels.iter().flat_map(|x| x.to_le_bytes()))
        .collect();
    let corrupted: Vec<u8> = labels
        .iter()
        .flat_map(|l| l.corrupted.iter().map(|&c| u8::from(c)))
        .collect();
    fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>> {
        TensorView::new(dtype, shape, data).map_err(|e| Error::Config(format!("dataset: {e}")))
    }
    let views = vec![
        ("pairs", view(Dtype::U32, vec![n, 2], &pairs)?),
        ("train", view(Dtype::U8, vec![n], &train)?),
        ("labels", view(Dtype::U32, vec![n], &truth)?),
        (
            "train_labels",
            view(Dtype::U32, vec![models, n_train], &trained)?,
        ),
        (
            "corrupted",
            view(Dtype::U8, vec![models, n_train], &corrupted)?,
        ),
    ];
    // One metadata key holding sorted JSON, as in the weights: the file is the same to the
    // byte for the same config.
    let meta = std::collections::HashMap::from([(
        crate::train::engine::META_KEY.to_string(),
        format!("{{\"format\":\"grokscope-dataset\",\"p\":{}}}", split.p),
    )]);
    Ok(safetensors::serialize(views, Some(meta))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics_csv(history: &[Vec<Record>]) -> String {
        let mut s = metrics_header();
        for (m, recs) in history.iter().enumerate() {
            recs.iter()
                .for_each(|r| s.push_str(&metrics_rows(&[(m, r)])));
        }
        s
    }

    fn ipr_hist_csv(history: &[Vec<Record>]) -> String {
        let mut s = ipr_hist_header();
        for (m, recs) in history.iter().enumerate() {
            recs.iter()
                .for_each(|r| s.push_str(&ipr_hist_rows(&[(m, r)])));
        }
        s
    }

    fn rec(step: u64, mem: Option<f64>) -> Record {
        Record {
            step,
            epoch: step as f64 / 3.0,
            train_loss: 0.125,
            train_acc: 0.5,
            test_loss: 1e-9,
            test_acc: 1.0,
            mem_acc: mem,
            inv_acc: mem.map(|m| 1.0 - m),
            clean_acc: Some(0.75),
            norm_u: 3.5,
            norm_v: 0.1,
            norm_w: 2.0,
            mean_ipr: None,
            dead_neurons: 4,
            batch_loss: mem.map(|m| m + 0.5),
            ipr_hist: vec![1; crate::metrics::IPR_BINS],
        }
    }

    #[test]
    fn metrics_csv_reads_back_exactly() {
        let history = vec![
            vec![rec(0, None), rec(10, Some(0.3))],
            vec![rec(0, Some(1.0)), rec(10, None)],
        ];
        let (m, h) = (metrics_csv(&history), ipr_hist_csv(&history));
        let p = Path::new("x");
        let back = read_metrics_csv(p, &m, 2, p, Some(&h), true).unwrap();
        assert_eq!(back, history);
        let err = read_metrics_csv(p, &m, 1, p, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model 1, but config.toml has 1 model"),
            "{err}"
        );
        let err = read_metrics_csv(p, &m, 3, p, None, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no rows for model 2"), "{err}");
        let header_only = metrics_csv(&[]);
        assert!(read_metrics_csv(p, &header_only, 1, p, None, false).is_err());
        let err = read_metrics_csv(p, &m, 2, p, Some("model,step\n0,0,1\n"), true).unwrap_err();
        assert!(matches!(err, Error::Csv { line: 2, .. }), "{err}");
    }

    #[test]
    fn a_malformed_metrics_file_names_its_line() {
        let good = metrics_csv(&[vec![rec(0, None), rec(10, None)]]);
        let bad = good.replacen("\n0,10,", "\n0,ten,", 1);
        let err =
            read_metrics_csv(Path::new("m.csv"), &bad, 1, Path::new("h"), None, false).unwrap_err();
        assert!(matches!(err, Error::Csv { line: 3, .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("m.csv line 3: not a non-negative integer"),
            "{err}"
        );
        let err = read_metrics_csv(Path::new("m.csv"), "a,b\n", 1, Path::new("h"), None, false)
            .unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
