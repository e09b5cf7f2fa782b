//! The training loop: trains a checked config's fleet, evaluates it on the schedule of
//! `[eval]`, records the metrics of every model, and tells its caller through [`Hooks`]
//! (checkpoints every `eval.checkpoint_every` steps, streamed metrics, autosaves, stopping).
//! [`train_into`] runs it in a run directory: interrupted runs resume to the same bytes.

use crate::config::{Checked, ModelSpec};
use crate::error::{Error, Result};
use crate::metrics::progress::Meter;
use crate::metrics::{record, Record};
use crate::rundir::{MetricsStream, ResumePoint, RunDir, RunState, Status, Summary};
use crate::setup::{Prepare, Setup};
use crate::train::{Engine, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A trained (or stopped) run: the setup with the trained network and every model's records.
pub struct Outcome {
    pub setup: Setup,
    /// Per model, its records in step order (the last is the final one).
    pub history: Vec<Vec<Record>>,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
    /// The last step trained: `total_steps`, or where a hook stopped the loop.
    pub step: u64,
    /// Per model, the first step whose training loss was NaN or infinite.
    pub diverged_at: Vec<Option<u64>>,
}

/// What the progress callback sees.
pub struct Progress<'a> {
    pub step: u64,
    pub total_steps: u64,
    /// The latest record of every model.
    pub latest: Vec<&'a Record>,
}

/// What the loop tells its caller as it goes, and asks it after each step.
pub trait Hooks {
    /// After every evaluation, with each model's new record.
    fn evaluated(&mut self, _step: u64, _records: &[&Record]) -> Result<()> {
        Ok(())
    }
    /// After every step (and its evaluation, if any): checkpoints, autosaves. Returning `true`
    /// stops the loop after this step.
    fn after_step(
        &mut self,
        _network: &Network,
        _step: u64,
        _diverged: &[Option<u64>],
    ) -> Result<bool> {
        Ok(false)
    }
    /// At step 0 and after every step.
    fn progress(&mut self, _p: &Progress) -> Result<()> {
        Ok(())
    }
}

/// Where a resumed run starts: the step its network state was saved at, and the records up to
/// it.
pub struct Start {
    pub step: u64,
    pub history: Vec<Vec<Record>>,
    pub diverged_at: Vec<Option<u64>>,
}

/// Builds and trains the fleet of `cfg` (no checkpoints), calling `progress` at step 0 and
/// after every step; an error from it stops the training.
pub fn train_config(
    cfg: &Checked,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Outcome> {
    train(cfg, cfg.setup()?, None, progress)
}

/// Writes the network's weights after a step (a run directory's `checkpoints/`, a sweep's).
pub type CheckpointSink<'a> = &'a dyn Fn(&Network, u64) -> Result<()>;

/// Trains an already built [`Setup`] of `cfg`. With `checkpoints`, the sink is called every
/// `eval.checkpoint_every` steps.
pub fn train(
    cfg: &Checked,
    setup: Setup,
    checkpoints: Option<CheckpointSink>,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Outcome> {
    struct Simple<'a, 'b> {
        every: u64,
        checkpoints: Option<CheckpointSink<'a>>,
        progress: &'b mut dyn FnMut(&Progress) -> Result<()>,
    }
    impl Hooks for Simple<'_, '_> {
        fn after_step(&mut self, network: &Network, step: u64, _: &[Option<u64>]) -> Result<bool> {
            if let Some(sink) = self
                .checkpoints
                .filter(|_| self.every > 0 && step.is_multiple_of(self.every))
            {
                sink(network, step)?;
            }
            Ok(false)
        }
        fn progress(&mut self, p: &Progress) -> Result<()> {
            (self.progress)(p)
        }
    }
    let mut hooks = Simple {
        every: cfg.eval.checkpoint_every,
        checkpoints,
        progress,
    };
    run_loop(cfg, setup, None, &mut hooks)
}

/// The training loop: from step 0 (evaluating the initialisation) or from a resumed `start`,
/// to `total_steps` or until a hook stops it.
pub fn run_loop(
    cfg: &Checked,
    setup: Setup,
    start: Option<Start>,
    hooks: &mut dyn Hooks,
) -> Result<Outcome> {
    let mut setup = setup;
    let clock = std::time::Instant::now();
    let (total_steps, steps_per_epoch) = (setup.total_steps, setup.steps_per_epoch);
    let m = setup.specs.len();
    let progress =
        (cfg.eval.progress_every > 0 && setup.split.token_space().is_some()).then(|| {
            Meter::new(
                setup.network.vocab(),
                setup.split.table(),
                setup.network.loss(),
            )
        });
    let evaluate = |s: &mut Setup,
                    history: &mut Vec<Vec<Record>>,
                    step: u64,
                    batch_losses: Option<&[f64]>,
                    hooks: &mut dyn Hooks|
     -> Result<()> {
        let due = cfg.eval.progress_at(step, total_steps);
        let (outs, measures) = match progress.as_ref().filter(|_| due) {
            Some(pr) => {
                let labels = s
                    .labels
                    .iter()
                    .map(|l| (&l.labels[..], &l.corrupted[..]))
                    .collect();
                let mut probe = pr.collector(labels);
                let outs = s.network.eval_all_probed(&mut probe)?;
                (outs, probe.finish())
            }
            None => (s.network.eval_all()?, Vec::new()),
        };
        let ginis: Vec<(Option<f64>, Option<f64>)> = match progress.as_ref().filter(|_| due) {
            Some(pr) => {
                let net = &s.network;
                (0..outs.len())
                    .into_par_iter()
                    .map(|i| net.token_weights(i).map(|w| pr.ginis(&w)))
                    .map(Option::unwrap_or_default)
                    .collect()
            }
            None => Vec::new(),
        };
        let epoch = step as f64 / steps_per_epoch as f64;
        for (i, out) in outs.iter().enumerate() {
            let mut r = record(
                step,
                epoch,
                s.split.n_classes(),
                s.network.loss(),
                &s.split,
                &s.labels[i].labels,
                &s.labels[i].corrupted,
                &s.network.weight_stats(i),
                out,
            );
            r.batch_loss = batch_losses.map(|l| l[i]);
            if let Some(&g) = ginis.get(i) {
                r.set_progress(g, measures.get(i).and_then(|x| x.as_ref()));
            }
            history[i].push(r);
        }
        let latest: Vec<&Record> = history.iter().filter_map(|h| h.last()).collect();
        hooks.evaluated(step, &latest)
    };
    let report = |history: &Vec<Vec<Record>>, step: u64, hooks: &mut dyn Hooks| {
        hooks.progress(&Progress {
            step,
            total_steps,
            latest: history.iter().filter_map(|h| h.last()).collect(),
        })
    };
    let n_train = setup.split.n_train();
    let minibatch = cfg.train.batch_size.filter(|&b| b < n_train);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.train.batch_seed);
    let mut perm: Vec<u32> = (0..n_train as u32).collect();
    let shuffles = |step: u64| minibatch.is_some() && (step - 1).is_multiple_of(steps_per_epoch);
    let (first, mut history, mut diverged_at) = match start {
        None => {
            let mut history = vec![Vec::new(); m];
            evaluate(&mut setup, &mut history, 0, None, hooks)?;
            (1, history, vec![None; m])
        }
        Some(s) => {
            // The data order is a function of the step: replay the shuffles up to it.
            for step in 1..=s.step {
                if shuffles(step) {
                    perm.shuffle(&mut rng);
                }
            }
            (s.step + 1, s.history, s.diverged_at)
        }
    };
    report(&history, first - 1, hooks)?;
    let every = cfg.eval.every;
    let mut last = first - 1;
    for step in first..=total_steps {
        let batch_losses = match minibatch {
            None => setup.network.step_all()?,
            Some(b) => {
                let k = ((step - 1) % steps_per_epoch) as usize;
                if shuffles(step) {
                    perm.shuffle(&mut rng);
                }
                setup.network.step_batch(&perm[k * b..(k + 1) * b])?
            }
        };
        for (d, l) in diverged_at.iter_mut().zip(&batch_losses) {
            if d.is_none() && !l.is_finite() {
                *d = Some(step);
            }
        }
        if (every > 0 && step % every == 0) || step == total_steps {
            evaluate(&mut setup, &mut history, step, Some(&batch_losses), hooks)?;
        }
        last = step;
        let stop = hooks.after_step(&setup.network, step, &diverged_at)?;
        report(&history, step, hooks)?;
        if stop {
            break;
        }
    }
    Ok(Outcome {
        setup,
        history,
        seconds: clock.elapsed().as_secs_f64(),
        step: last,
        diverged_at,
    })
}

/// How a run in a run directory may be interrupted and saved.
#[derive(Clone, Copy, Default)]
pub struct Control<'a> {
    /// Set to a signal number (SIGINT 2, SIGTERM 15) to stop after the current step with a
    /// resumable state.
    pub stop: Option<&'a AtomicUsize>,
    /// Seconds between autosaves of the resumable state (`None`: never).
    pub autosave: Option<f64>,
}

/// How [`train_into`] ended.
pub enum RunEnd {
    Finished(Box<Outcome>, Summary),
    /// Stopped by `signal` after `step`; `grokscope train --resume DIR` continues it.
    Interrupted {
        step: u64,
        signal: usize,
    },
}

/// The hooks of a run directory: streamed metrics, checkpoints, autosaves, stopping.
struct DirHooks<'a, 'b> {
    cfg: &'a Checked,
    resumed: bool,
    dir: &'a RunDir,
    stream: MetricsStream,
    state: RunState,
    checkpoint_every: u64,
    control: Control<'a>,
    last_save: std::time::Instant,
    seconds_before: f64,
    clock: std::time::Instant,
    stopped: Option<usize>,
    /// An error of a write during the step (metrics), returned after it.
    pending: Option<Error>,
    progress: &'b mut dyn FnMut(&Progress) -> Result<()>,
}

impl DirHooks<'_, '_> {
    fn save(
        &mut self,
        network: &Network,
        step: u64,
        status: Status,
        diverged: &[Option<u64>],
    ) -> Result<()> {
        let t = std::time::Instant::now();
        let mut state = self.state.clone();
        state.status = status;
        state.step = step;
        state.resumable_step = Some(step);
        state.seconds = self.seconds_before + self.clock.elapsed().as_secs_f64();
        state.diverged_at = diverged.to_vec();
        // The saved state carries its own step and bookkeeping: state.json, written after
        // it, only reports. Until the state is written, the previous one stands.
        self.dir.write_resume(self.cfg, network, &state)?;
        state.io_seconds += t.elapsed().as_secs_f64();
        self.state = state;
        self.dir.write_state(&self.state)
    }

    /// After an error at `step` that stops the run: saves the resumable state (when the
    /// network is at hand and the disk takes it), so that no finished step is lost.
    fn save_after(
        &mut self,
        network: &Network,
        step: u64,
        diverged: &[Option<u64>],
        error: Error,
    ) -> Error {
        if step < self.state.total_steps {
            let _ = self.save(network, step, Status::Interrupted, diverged);
        }
        error
    }

    /// The error that stopped the run, with what was saved and how to continue: state.json
    /// says "interrupted" (never "running" for a run no process trains).
    fn stopped(&mut self, error: Error) -> Error {
        self.state.status = Status::Interrupted;
        let _ = self.dir.write_state(&self.state);
        Error::RunStopped {
            dir: self.dir.path().to_path_buf(),
            saved: self.state.resumable_step,
            error: Box::new(error),
        }
    }
}

impl Hooks for DirHooks<'_, '_> {
    fn evaluated(&mut self, _step: u64, records: &[&Record]) -> Result<()> {
        let t = std::time::Instant::now();
        // The records are kept in memory and written whole at the end; a failed append stops
        // the run after this step, once its state is saved.
        if let Err(e) = self.stream.append(records) {
            self.pending.get_or_insert(e);
        }
        self.state.io_seconds += t.elapsed().as_secs_f64();
        Ok(())
    }
    fn after_step(
        &mut self,
        network: &Network,
        step: u64,
        diverged: &[Option<u64>],
    ) -> Result<bool> {
        if let Some(e) = self.pending.take() {
            return Err(self.save_after(network, step, diverged, e));
        }
        if self.checkpoint_every > 0 && step.is_multiple_of(self.checkpoint_every) {
            if let Err(e) = self
                .dir
                .write_checkpoint(self.cfg, network, step, self.resumed)
            {
                return Err(self.save_after(network, step, diverged, e));
            }
        }
        if let Some(sig) = self
            .control
            .stop
            .map(|s| s.load(Ordering::SeqCst))
            .filter(|&s| s != 0)
        {
            self.save(network, step, Status::Interrupted, diverged)?;
            self.stopped = Some(sig);
            return Ok(true);
        }
        if let Some(every) = self.control.autosave {
            if step < self.state.total_steps && self.last_save.elapsed().as_secs_f64() >= every {
                self.save(network, step, Status::Running, diverged)?;
                self.last_save = std::time::Instant::now();
            }
        }
        Ok(false)
    }
    fn progress(&mut self, p: &Progress) -> Result<()> {
        (self.progress)(p)
    }
}

/// Where [`train_into`] starts.
pub enum Begin {
    /// A new run in its new directory.
    Fresh,
    /// A run in its directory continued from its saved state, checked by
    /// [`RunDir::resume_point`] (`None`: it saved none; trained again from step 0).
    Resume(Option<Box<ResumePoint>>),
}

/// Trains `setup` of `cfg` in the run directory `dir` (which holds the config): streams the
/// metrics, writes checkpoints as configured, autosaves a resumable state, stops when
/// `control.stop` is set, and at the end writes the summary, the weights and the final
/// training state (from which a longer run continues). On resume the setup must be the
/// config's, untrained.
pub fn train_into(
    cfg: &Checked,
    setup: Setup,
    dir: &RunDir,
    begin: Begin,
    control: Control,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<RunEnd> {
    let mut setup = setup;
    let m = setup.specs.len();
    let lock = dir.lock()?;
    let resume = matches!(begin, Begin::Resume(_));
    let point = match begin {
        Begin::Resume(point) => {
            // Read before the lock was taken: refused if another process moved the run on.
            if let Some(p) = &point {
                if dir.read_state()?.map(|s| (s.step, s.status))
                    != Some((p.state.step, p.state.status))
                {
                    return Err(Error::BadFile {
                        path: dir.path().join("state.json"),
                        why: "the run changed since it was read (another process trained it): run the command again".into(),
                    });
                }
            }
            // Checked and loaded before anything is written: a refused resume changes nothing.
            if let Some(p) = &point {
                setup
                    .network
                    .load_state(&p.bytes)
                    .map_err(|e| Error::BadFile {
                        path: dir.path().join("resume.safetensors"),
                        why: e.to_string(),
                    })?;
            }
            point
        }
        Begin::Fresh => None,
    };
    if cfg.eval.checkpoint_every > 0 {
        dir.checkpoint_dir()?;
    }
    dir.write_dataset(cfg, &setup.split, &setup.labels, resume)?;
    // A run stopped because its checkpoint could not be written saved its state at that
    // step: the checkpoint is written now, from that state.
    if let Some(p) = point.as_ref().filter(|p| {
        cfg.eval.checkpoint_every > 0 && p.step.is_multiple_of(cfg.eval.checkpoint_every)
    }) {
        if !dir.has_checkpoint(p.step) {
            dir.write_checkpoint(cfg, &setup.network, p.step, true)?;
        }
    }
    let (start, seconds_before, io_before, stream) = match point.map(|p| *p) {
        Some(point) => {
            let stream = dir.restart_metrics(&point.history)?;
            (
                Some(Start {
                    step: point.step,
                    history: point.history,
                    diverged_at: point.diverged_at,
                }),
                point.seconds,
                point.io_seconds,
                stream,
            )
        }
        None => (None, 0.0, 0.0, dir.start_metrics()?),
    };
    let state = RunState {
        status: Status::Running,
        step: start.as_ref().map(|s| s.step).unwrap_or(0),
        total_steps: setup.total_steps,
        resumable_step: start.as_ref().map(|s| s.step),
        seconds: seconds_before,
        io_seconds: io_before,
        diverged_at: vec![None; m],
    };
    dir.write_state(&state)?;
    let mut hooks = DirHooks {
        cfg,
        resumed: resume,
        dir,
        stream,
        state,
        checkpoint_every: cfg.eval.checkpoint_every,
        control,
        last_save: std::time::Instant::now(),
        seconds_before,
        clock: std::time::Instant::now(),
        stopped: None,
        pending: None,
        progress,
    };
    let out = match run_loop(cfg, setup, start, &mut hooks) {
        Ok(out) => out,
        Err(e) => return Err(hooks.stopped(e)),
    };
    if let Some(signal) = hooks.stopped {
        drop(lock);
        return Ok(RunEnd::Interrupted {
            step: out.step,
            signal,
        });
    }
    // metrics.csv and ipr_hist.csv are written whole from the records in memory: a file
    // removed or cut while the run trained is complete again.
    let finish = dir
        .restart_metrics(&out.history)
        .and_then(|_| dir.write_results(cfg, &out.setup, &out.history, &out.diverged_at, resume));
    let summary = match finish {
        Ok(s) => s,
        Err(e) => return Err(hooks.stopped(e)),
    };
    let mut state = hooks.state;
    state.status = if out.diverged_at.iter().all(|d| d.is_some()) {
        Status::Diverged
    } else {
        Status::Finished
    };
    state.step = out.step;
    state.resumable_step = None;
    state.seconds = seconds_before + out.seconds;
    state.diverged_at = out.diverged_at.clone();
    dir.write_state(&state)?;
    // The final training state replaces the last autosave: `train --resume DIR --set
    // train.steps=N` extends the run from it. Without it (a full disk) the run is finished
    // all the same; only extending it is refused.
    dir.remove_resume()?;
    if state.status == Status::Finished
        && dir.write_resume(cfg, &out.setup.network, &state).is_err()
    {
        dir.remove_resume()?;
    }
    drop(lock);
    Ok(RunEnd::Finished(Box::new(out), summary))
}

/// Seconds per model-step and per model-evaluation of `specs` (at most two models) of `cfg`,
/// measured over a few steps on `rows` training rows.
pub fn measure(cfg: &Checked, specs: Vec<ModelSpec>, rows: usize) -> Result<(f64, f64)> {
    let specs: Vec<ModelSpec> = specs.into_iter().take(2).collect();
    let m = specs.len() as f64;
    let mut e = cfg.setup_specs(specs)?.network;
    let batch: Vec<u32> = (0..rows as u32).collect();
    e.step_batch(&batch)?;
    let reps = (20_000 / rows.max(1)).clamp(3, 50);
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        e.step_batch(&batch)?;
    }
    let t_step = t0.elapsed().as_secs_f64() / reps as f64 / m;
    let t0 = std::time::Instant::now();
    e.eval_all()?;
    Ok((t_step, t0.elapsed().as_secs_f64() / m))
}
