//! One entry point for a training run, the same for every front end (the CLI, Python, the
//! tests): a [`Request`] says what to train and where; [`Request::resolve`] reads and checks
//! everything and builds the network, writing nothing; [`Resolved::create`] creates the run
//! directory (a fresh run) and [`Prepared::train`] trains it, resumably.
//!
//! Errors about a config name where the bad value came from, once for every front end: the
//! override (`--set K=V`, as typed) that set the key, or the config's source.

use crate::config::presets::is_sweep;
use crate::config::{blamed_message, preset, Checked, Config, DEFAULT_CONFIG};
use crate::error::{Error, Result};
use crate::experiment::{train_into, Begin, Control, Progress, RunEnd};
use crate::fsio::read_text;
use crate::rundir::{ResumePoint, RunDir};
use crate::setup::{Prepare, Setup};
use std::path::PathBuf;

/// Where a fresh run's config comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// The built-in default experiment (`configs/default.toml`).
    Default,
    /// A shipped config by name (`config::PRESETS`).
    Preset(String),
    /// A TOML file.
    File(PathBuf),
    /// TOML text, with the name errors give it (`the config dict`, a path, …).
    Text { text: String, name: String },
    /// A config in hand (a library caller's): trained as its resolved TOML, as `config.toml`
    /// will hold it.
    Config(Box<Config>),
}

impl Source {
    /// The config text and the name errors give it.
    fn text(&self) -> Result<(String, String)> {
        Ok(match self {
            Source::Default => (DEFAULT_CONFIG.to_string(), "built-in default".to_string()),
            Source::Preset(name) => {
                let text = preset(name)?;
                if is_sweep(text) {
                    return Err(Error::Config(format!(
                        "preset {name} is a sweep (a phase diagram), not one run: run it with `grokscope sweep run {name} --out DIR`"
                    )));
                }
                (text.to_string(), format!("preset {name}"))
            }
            Source::File(path) => {
                let text = read_text(path).map_err(|error| Error::ConfigUnreadable {
                    path: path.clone(),
                    error,
                })?;
                if is_sweep(&text) {
                    return Err(Error::Config(format!(
                        "{} is a sweep file (it has [axes]: a phase diagram), not one run: run it with `grokscope sweep run {} --out DIR`",
                        path.display(),
                        path.display()
                    )));
                }
                (text, path.display().to_string())
            }
            Source::Text { text, name } => (text.clone(), name.clone()),
            Source::Config(cfg) => (cfg.to_toml(), "the given config".to_string()),
        })
    }
}

/// What to train.
#[derive(Clone, Debug)]
pub enum Request {
    /// A new run of the config from `source` with the overrides `sets` (`KEY=VALUE`, TOML
    /// values), into `out` (which must not exist) or a new `runs_dir/<name>-<UTC time>`.
    Fresh {
        source: Source,
        sets: Vec<String>,
        out: Option<PathBuf>,
        runs_dir: PathBuf,
    },
    /// The interrupted run in `dir`, continued from its saved state (from step 0 if it saved
    /// none); with `sets`, only `train.steps` or `train.epochs`, to a longer length (a
    /// finished run too): the longer run's first steps are the run's own.
    Resume { dir: PathBuf, sets: Vec<String> },
}

/// The keys `--set` may change on a resumed run.
pub const LENGTH_KEYS: [&str; 2] = ["train.steps", "train.epochs"];

/// A request with everything checked and built; nothing written yet.
pub struct Resolved {
    pub cfg: Checked,
    pub setup: Setup,
    /// What the overrides replaced (e.g. `train.steps` given over the config's `epochs`).
    pub notes: Vec<String>,
    target: Target,
}

enum Target {
    Fresh(PathBuf),
    /// `None`: no state was saved; trained again from step 0 in its directory.
    Resume(RunDir, Option<Box<ResumePoint>>),
}

/// A run ready to train: its checked config, its directory and its untrained (or restored on
/// resume) network.
pub struct Prepared {
    pub cfg: Checked,
    pub run: RunDir,
    pub setup: Setup,
    /// Whether it continues an interrupted run (or extends a finished one).
    pub resumed: bool,
    point: Option<Box<ResumePoint>>,
}

impl Request {
    /// Reads the config (or the run directory to resume), checks every value, builds the
    /// split, the labels and the network, and for a resume checks the saved state against
    /// it all — before anything is written.
    pub fn resolve(&self) -> Result<Resolved> {
        match self {
            Request::Resume { dir, sets } => {
                let run = RunDir::open(dir)?;
                let saved = run.read_config()?;
                let (cfg, mut notes) = match sets.is_empty() {
                    true => (saved.clone(), Vec::new()),
                    false => longer(&run, &saved, sets)?,
                };
                let setup = cfg.setup()?;
                let point = run.resume_point(&saved, setup.specs.len(), setup.total_steps)?;
                if point.is_none() {
                    notes.push(format!(
                        "{} saved no training state before it stopped: training it again from step 0 (the same config gives the same numbers)",
                        run.path().display()
                    ));
                }
                Ok(Resolved {
                    cfg,
                    setup,
                    notes,
                    target: Target::Resume(run, point.map(Box::new)),
                })
            }
            Request::Fresh {
                source,
                sets,
                out,
                runs_dir,
            } => {
                // An --out that exists, or a place that cannot be written, is refused before
                // anything is built.
                if let Some(out) = out.as_ref().filter(|o| o.exists()) {
                    return Err(Error::OutputExists(out.clone()));
                }
                let parent = match out {
                    Some(o) => o.parent().map(PathBuf::from).unwrap_or_default(),
                    None => runs_dir.clone(),
                };
                crate::fsio::probe_writable(&parent).map_err(|e| Error::io(&parent, e))?;
                let (text, name) = source.text()?;
                let blamed = |e: Error| blame(e, sets, &name);
                let (cfg, notes) = Config::from_toml_noted(&text, sets).map_err(blamed)?;
                let cfg = cfg.check().map_err(blamed)?;
                let setup = cfg.setup().map_err(blamed)?;
                let dir = out
                    .clone()
                    .unwrap_or_else(|| RunDir::default_path(runs_dir, &cfg.name));
                Ok(Resolved {
                    cfg,
                    setup,
                    notes,
                    target: Target::Fresh(dir),
                })
            }
        }
    }
}

/// The config of the run in `run` (`saved`) with a new length from `sets`: refused unless
/// they set only [`LENGTH_KEYS`] to a length beyond the run's, and unless no analysis of the
/// shorter run would be left beside the longer run's results.
fn longer(run: &RunDir, saved: &Checked, sets: &[String]) -> Result<(Checked, Vec<String>)> {
    for set in sets {
        let key = set.split_once('=').map_or(set.as_str(), |(k, _)| k).trim();
        if !LENGTH_KEYS.contains(&key) {
            return Err(Error::Set {
                set: set.clone(),
                why: format!(
                    "a resumed run keeps its config; only its length may change ({}) to extend it",
                    LENGTH_KEYS.join(" or ")
                ),
            });
        }
    }
    let source = run.path().join(crate::rundir::CONFIG).display().to_string();
    let blamed = |e: Error| blame(e, sets, &source);
    let (cfg, notes) = Config::from_toml_noted(&run.config_text()?, sets).map_err(blamed)?;
    let cfg = cfg.check().map_err(blamed)?;
    let n_train = saved.setup()?.split.n_train();
    let (old, new) = (saved.total_steps(n_train), cfg.total_steps(n_train));
    if new <= old {
        return Err(Error::Set {
            set: sets.join(" "),
            why: format!(
                "gives {new} steps; the run has {old}: a run can only be extended (train a shorter one anew with `grokscope train --config {source} {} --out NEW`)", sets.join(" ")
            ),
        });
    }
    let analysis = run.path().join(crate::rundir::ANALYSIS);
    if analysis.exists() {
        return Err(Error::BadFile {
            path: analysis,
            why: format!(
                "holds the analysis of the {old}-step run, which extending it would leave beside the {new}-step results; move it away first (nothing was changed)"
            ),
        });
    }
    Ok((cfg, notes))
}

/// `e` with whom to blame for it in front, in the words the CLI and Python share.
fn blame(e: Error, sets: &[String], source: &str) -> Error {
    let message = blamed_message(&e, sets, source);
    if message == e.to_string() {
        e
    } else {
        Error::Blamed {
            message,
            error: Box::new(e),
        }
    }
}

impl Resolved {
    /// The run directory it trains into.
    pub fn dir(&self) -> PathBuf {
        match &self.target {
            Target::Fresh(d) => d.clone(),
            Target::Resume(run, _) => run.path().to_path_buf(),
        }
    }

    /// For a resume, the step it continues from and the status it was left in.
    pub fn resume_point(&self) -> Option<&ResumePoint> {
        match &self.target {
            Target::Fresh(_) => None,
            Target::Resume(_, p) => p.as_deref(),
        }
    }

    /// Creates the run directory with its `config.toml` (a fresh run; fails if it exists).
    pub fn create(self) -> Result<Prepared> {
        let (run, point) = match self.target {
            Target::Fresh(dir) => {
                let run = RunDir::create(&dir)?;
                run.write_config(&self.cfg)?;
                return Ok(Prepared {
                    cfg: self.cfg,
                    run,
                    setup: self.setup,
                    resumed: false,
                    point: None,
                });
            }
            Target::Resume(run, point) => (run, point),
        };
        // Extended: the shorter run's results go, and config.toml takes the new length
        // before a step is trained (killed in between, `--resume` goes on from the same
        // final state).
        if run.read_config()?.fingerprint() != self.cfg.fingerprint() {
            run.remove_results()?;
            run.replace_config(&self.cfg)?;
        }
        Ok(Prepared {
            cfg: self.cfg,
            run,
            setup: self.setup,
            resumed: true,
            point,
        })
    }
}

impl Prepared {
    /// Trains the run in its directory (streaming metrics, autosaves, stopping on `control`'s
    /// flag with a resumable state), calling `progress` at step 0 and after every step.
    pub fn train(
        self,
        control: Control,
        progress: &mut dyn FnMut(&Progress) -> Result<()>,
    ) -> Result<RunEnd> {
        let begin = match self.resumed {
            false => Begin::Fresh,
            true => Begin::Resume(self.point),
        };
        train_into(&self.cfg, self.setup, &self.run, begin, control, progress)
    }

    /// The autosave interval of the config (`eval.autosave_minutes`) in seconds, `None` for
    /// never: what [`Control::autosave`] takes.
    pub fn autosave_seconds(&self) -> Option<f64> {
        let minutes = self.cfg.eval.autosave_minutes;
        (minutes > 0.0).then_some(minutes * 60.0)
    }
}
