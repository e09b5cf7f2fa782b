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

use crate::analysis::prune::Order;
use crate::analysis::scores::Score;
use crate::config::{Checked, Config};
use crate::error::{Error, Result};
use crate::fsio::{read_bytes, read_text, write_atomic, write_new};
use crate::metrics::Record;
use crate::setup::{Prepare, Setup};
use crate::train::{Engine, Network};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod dataset;
mod lock;
pub mod metrics_csv;
mod paths;
mod resume;
mod summary;
pub mod swap;
mod verify;

pub use lock::RunLock;
pub use paths::{RunDir, REPORT, RESULT_FILES, TRAINED_CONFIG};
/// The names `grokscope::job` points users to.
pub(crate) use paths::{ANALYSIS, CONFIG};
use paths::{CHECKPOINTS, DATASET, IPR_HIST, METRICS, SUMMARY, WEIGHTS};

pub use metrics_csv::{curve_csv, read_curve_csv, MetricsStream};
pub use resume::{ResumePoint, RunState, Status};
pub use summary::{same_final, ModelSummary, Summary};
pub use verify::Verdict;

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
    /// `scores.csv`: every unit's scores of memorization (`grokscope scores`).
    Scores,
    /// `prune-by-<score>-<highest|lowest>.csv`: pruning in the order of a score, over all
    /// hidden units, or (`-layer<l>`) over one layer's.
    ScorePrune {
        score: Score,
        highest: bool,
        layer: Option<usize>,
    },
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
            AnalysisFile::Scores => "scores.csv".into(),
            AnalysisFile::ScorePrune {
                score,
                highest,
                layer,
            } => format!(
                "prune-by-{}-{}{}.csv",
                score.name(),
                if highest { "highest" } else { "lowest" },
                layer.map_or(String::new(), |l| format!("-layer{l}"))
            ),
        }
    }
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

impl RunDir {
    /// Writes `config.toml`: the resolved config, every default filled in.
    pub fn write_config(&self, cfg: &Config) -> Result<()> {
        self.put_config(cfg, false)
    }

    /// Removes the results of a finished run that is extended (`summary.json`, then the
    /// weights, which its final training state holds too): the directory is an unfinished
    /// run until the longer run writes its own.
    pub fn remove_results(&self) -> Result<()> {
        crate::fsio::remove_file(&self.path.join(SUMMARY))?;
        crate::fsio::remove_file(&self.path.join(WEIGHTS))
    }

    /// Replaces `config.toml` (a run extended to a longer length).
    pub fn replace_config(&self, cfg: &Config) -> Result<()> {
        self.put_config(cfg, true)
    }

    fn put_config(&self, cfg: &Config, replace: bool) -> Result<()> {
        let text = format!(
            "# Resolved configuration of this run: every default filled in.\n# Re-run with: grokscope train --config {}\n\n{}",
            self.path.join(CONFIG).display(),
            cfg.to_toml()
        );
        write_new(&self.path, CONFIG, text.as_bytes(), replace)
    }

    /// Writes `dataset.safetensors`: the inputs, the split, the true labels, and per model the
    /// labels it trains on and which examples are corrupted — everything needed to recompute
    /// any accuracy outside grokscope (docs/OUTPUTS.md). The file follows from the config
    /// alone: one that exists is kept when it holds these bytes and rebuilt (atomically) when
    /// it does not (damaged, or cut short); returns whether it was rebuilt.
    ///
    /// A dense dataset is read from files the config does not fix: on `resume` its file must
    /// hold exactly these bytes ([`RunDir::check_dense_data`]), never rebuilt.
    pub fn write_dataset(
        &self,
        cfg: &Checked,
        split: &crate::data::Dataset,
        labels: &[crate::data::TrainLabels],
        resume: bool,
    ) -> Result<bool> {
        let tag = cfg.training_fingerprint();
        let bytes = dataset::dataset_bytes(split, labels, Some(&tag))?;
        let path = self.path.join(DATASET);
        if resume && split.table().is_none() {
            let legacy = self.legacy_dataset(cfg, split, labels)?;
            if self.check_dense_bytes(split, labels, &bytes, &legacy)? {
                write_new(&self.path, DATASET, &bytes, true)?;
            }
            return Ok(false);
        }
        if !path.exists() {
            write_new(&self.path, DATASET, &bytes, false)?;
            return Ok(false);
        }
        // `read_bytes`: a FIFO or device in its place is not read (it would block).
        match read_bytes(&path) {
            Ok(old) if old == bytes => return Ok(false),
            // Tagged as the version before wrote it: the same examples, the tag renewed.
            Ok(old) if old == self.legacy_dataset(cfg, split, labels)? => {
                write_new(&self.path, DATASET, &bytes, true)?;
                return Ok(false);
            }
            _ => {}
        }
        write_new(&self.path, DATASET, &bytes, true)?;
        Ok(true)
    }

    /// For a run on a dense dataset: refuses unless the dataset files give the examples and
    /// labels the run trained on, to the byte of its `dataset.safetensors` (the files are
    /// outside the run directory and the config: they may have changed, or `data.path` or
    /// `$GROKSCOPE_DATA` may point elsewhere now). Nothing to check for an operation table,
    /// which follows from the config.
    pub fn check_dense_data(
        &self,
        cfg: &Checked,
        split: &crate::data::Dataset,
        labels: &[crate::data::TrainLabels],
    ) -> Result<()> {
        if split.table().is_some() {
            return Ok(());
        }
        let tag = cfg.training_fingerprint();
        let legacy = self.legacy_dataset(cfg, split, labels)?;
        self.check_dense_bytes(
            split,
            labels,
            &dataset::dataset_bytes(split, labels, Some(&tag))?,
            &legacy,
        )
        .map(|_| ())
    }

    /// The dataset file as the version whose tag held the run's length wrote it.
    fn legacy_dataset(
        &self,
        cfg: &Checked,
        split: &crate::data::Dataset,
        labels: &[crate::data::TrainLabels],
    ) -> Result<Vec<u8>> {
        dataset::dataset_bytes(split, labels, Some(&cfg.legacy_training_fingerprint()))
    }

    /// Refuses unless the file holds `bytes` (or `legacy`, the same tagged by the version
    /// before: then `Ok(true)`, to be renewed).
    fn check_dense_bytes(
        &self,
        split: &crate::data::Dataset,
        labels: &[crate::data::TrainLabels],
        bytes: &[u8],
        legacy: &[u8],
    ) -> Result<bool> {
        let path = self.path.join(DATASET);
        let old = read_bytes(&path).map_err(|e| {
            self.bad_file(
                DATASET,
                format!("cannot be read ({e}): without it grokscope cannot check that the dataset files are the ones the run trained on"),
            )
        })?;
        if old == bytes {
            return Ok(false);
        }
        if old == legacy {
            return Ok(true);
        }
        match crate::digest::verify(&old) {
            Err(why) => Err(self.bad_file(DATASET, self.damaged(&why))),
            // Written before digests: the same examples and labels without one.
            Ok(crate::digest::Seal::Absent)
                if old == dataset::dataset_bytes(split, labels, None)? =>
            {
                crate::digest::note_unsealed(&path);
                Ok(false)
            }
            Ok(_) => Err(self.bad_file(
                DATASET,
                "it differs from the examples and labels the dataset files give now: the files changed since the run was trained (or data.path or $GROKSCOPE_DATA point elsewhere); restore them, or train again",
            )),
        }
    }

    /// The bytes of the run's binary file `name`, refused unless they match the digest they
    /// were written with (a file written before digests is noted, once, and accepted).
    pub fn read_verified(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.path.join(name);
        let bytes = read_bytes(&path).map_err(|e| Error::io(&path, e))?;
        self.verify_bytes(name, &bytes)?;
        Ok(bytes)
    }

    fn verify_bytes(&self, name: &str, bytes: &[u8]) -> Result<()> {
        match crate::digest::verify(bytes) {
            Ok(crate::digest::Seal::Verified) => Ok(()),
            Ok(crate::digest::Seal::Absent) => {
                crate::digest::note_unsealed(&self.path.join(name));
                Ok(())
            }
            Err(why) => Err(self.bad_file(name, self.damaged(&why))),
        }
    }

    /// The text of `config.toml`.
    pub fn config_text(&self) -> Result<String> {
        read_text(&self.path.join(CONFIG)).map_err(|e| self.not_a_run(format!("{CONFIG}: {e}")))
    }
    /// The run's config, checked, and checked against `summary.json` if the run finished.
    pub fn read_config(&self) -> Result<Checked> {
        let cfg = Config::from_toml(&self.config_text()?, &[])
            .and_then(Config::check)
            .map_err(|e| self.bad_file(CONFIG, e))?;
        self.check_summary(&cfg)?;
        Ok(cfg)
    }
    /// The config and the trained weights of the run.
    pub fn load(&self) -> Result<LoadedRun> {
        let cfg = self.read_config()?;
        let mut setup = cfg.setup().map_err(|e| self.bad_file(CONFIG, e))?;
        self.check_dense_data(&cfg, &setup.split, &setup.labels)?;
        let path = self.path.join(WEIGHTS);
        let bytes = read_bytes(&path).map_err(|e| match path.symlink_metadata() {
            Err(_) => self.not_a_run(format!("it has no {WEIGHTS} (did the run finish?)")),
            // A FIFO, a device or a directory in its place, or a file that cannot be read.
            Ok(_) => self.bad_file(WEIGHTS, format!("cannot be read: {e}")),
        })?;
        self.verify_bytes(WEIGHTS, &bytes)?;
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
        // The model's own checks first (their messages name the setting that differs), then
        // the fingerprint: weights of the same shape from another seed or other settings.
        setup
            .network
            .load(&bytes)
            .map_err(|e| self.bad_file(WEIGHTS, e))?;
        let tag = crate::train::engine::read_meta(&bytes, TRAINED_CONFIG)
            .map_err(|e| self.bad_file(WEIGHTS, e))?;
        if let Some(tag) = tag.filter(|t| !cfg.trained_by(t)) {
            return Err(self.bad_file(
                WEIGHTS,
                format!(
                    "it was trained by another config (fingerprint {tag}; {CONFIG} gives {}): the file belongs to another run — another seed or other settings — and was copied here; restore this run's own {WEIGHTS}, or train again",
                    cfg.training_fingerprint()
                ),
            ));
        }
        Ok(LoadedRun {
            dir: self.clone(),
            cfg,
            setup,
        })
    }

    /// Creates `checkpoints/` (a run checks it before it trains): refused, naming it, where
    /// something else has the name.
    pub fn checkpoint_dir(&self) -> Result<PathBuf> {
        let dir = self.path.join(CHECKPOINTS);
        if dir.exists() && !dir.is_dir() {
            return Err(self.bad_file(
                CHECKPOINTS,
                "is a file, not a directory: the run writes its checkpoints (eval.checkpoint_every) there; move it away",
            ));
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }

    /// Whether the checkpoint of `step` is there.
    pub fn has_checkpoint(&self, step: u64) -> bool {
        self.path
            .join(CHECKPOINTS)
            .join(checkpoint_name(step))
            .is_file()
    }

    /// Writes `checkpoints/step-XXXXXXXX.safetensors`, every model, in the layout of
    /// `weights.safetensors`.
    /// `resumed`: a resumed run may write again a checkpoint its killed attempt wrote (the
    /// same bytes).
    pub fn write_checkpoint(
        &self,
        cfg: &Checked,
        network: &Network,
        step: u64,
        resumed: bool,
    ) -> Result<()> {
        let dir = self.checkpoint_dir()?;
        write_new(
            &dir,
            &checkpoint_name(step),
            &tagged(cfg, network, step)?,
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
        let s = summary::summary(cfg, setup, history, diverged_at);
        let json = serde_json::to_string_pretty(&s)
            .map_err(|e| Error::json(self.path.join(SUMMARY), "cannot write the summary", e))?;
        write_new(&self.path, SUMMARY, json.as_bytes(), resumed)?;
        write_new(
            &self.path,
            WEIGHTS,
            &tagged(cfg, &setup.network, setup.total_steps)?,
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
        let (m, h) = metrics_csv::metrics_files(history);
        write_atomic(&self.path.join(METRICS), m.as_bytes())?;
        write_atomic(&self.path.join(IPR_HIST), h.as_bytes())?;
        MetricsStream::open(self.path.join(METRICS), self.path.join(IPR_HIST))
    }

    /// The analysis directory, created if needed.
    pub fn analysis_dir(&self) -> Result<PathBuf> {
        let d = self.analysis_root();
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
        self.analysis_root().join(file.name())
    }

    /// Refuses to replace the analysis files `files` unless `force`, and refuses a place
    /// that cannot be written — before any work is done.
    pub fn check_analysis_free(&self, files: &[AnalysisFile], force: bool) -> Result<()> {
        for &f in files {
            let p = self.analysis_path(f);
            if p.exists() && !force {
                return Err(Error::FileExists(p));
            }
        }
        let root = self.analysis_root();
        let probe_in = match root.is_dir() {
            true => root.clone(),
            false => root.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        crate::fsio::probe_writable(&probe_in).map_err(|e| Error::BadFile {
            path: root,
            why: format!("cannot be written ({e}); nothing was computed. Write the analysis elsewhere with --out DIR"),
        })
    }

    /// Writes the analysis files `files` together: the new analysis/ is staged beside the old
    /// one (keeping the old files that `files` does not replace) and swapped in whole.
    pub fn replace_analysis(&self, files: &[(AnalysisFile, String)], force: bool) -> Result<()> {
        let dest = self.analysis_root();
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
        write_new(&dir, &file.name(), bytes, force)?;
        Ok(self.analysis_path(file))
    }
}

/// The weights of every model of `network` at `step`, tagged with the fingerprint of the
/// config that trained them (`config`: what [`RunDir::load`] checks, so that the weights of
/// another run — another seed — are refused).
fn tagged(cfg: &Checked, network: &Network, step: u64) -> Result<Vec<u8>> {
    crate::train::engine::add_meta(
        &network.save_all(step)?,
        &[(TRAINED_CONFIG, cfg.training_fingerprint())],
    )
}

impl RunDir {
    /// What a damaged file's error says: what is wrong and what to do.
    fn damaged(&self, why: &str) -> String {
        format!(
            "{why}. Nothing was read from it: train the run again (`grokscope train --config {} --out NEW`: the same config gives the same results), or restore the file from a copy",
            self.path.join(CONFIG).display()
        )
    }
}

/// The file name of the checkpoint at `step`.
pub fn checkpoint_name(step: u64) -> String {
    format!("step-{step:08}.safetensors")
}
