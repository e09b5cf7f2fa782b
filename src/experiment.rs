//! The training loop: trains a checked config's fleet, evaluates it on the schedule of
//! `[eval]`, records the metrics of every model, and writes checkpoints every
//! `eval.checkpoint_every` steps (wherever the caller keeps them: a run directory, a sweep).

use crate::config::{Checked, ModelSpec, Setup};
use crate::error::Result;
use crate::metrics::{record, Record};
use crate::rundir::{RunDir, Summary};
use crate::train::{Engine, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A finished run: the trained setup and every model's records.
pub struct Outcome {
    pub setup: Setup,
    /// Per model, its records in step order (the last is the final one).
    pub history: Vec<Vec<Record>>,
    pub seconds: f64,
}

/// What the progress callback sees.
pub struct Progress<'a> {
    pub step: u64,
    pub total_steps: u64,
    /// The latest record of every model.
    pub latest: Vec<&'a Record>,
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
    let mut setup = setup;
    let start = std::time::Instant::now();
    let (total_steps, steps_per_epoch) = (setup.total_steps, setup.steps_per_epoch);
    let mut history: Vec<Vec<Record>> = vec![Vec::new(); setup.specs.len()];
    let evaluate = |s: &mut Setup, history: &mut Vec<Vec<Record>>, step: u64| -> Result<()> {
        let outs = s.network.eval_all()?;
        let epoch = step as f64 / steps_per_epoch as f64;
        for (i, out) in outs.iter().enumerate() {
            history[i].push(record(
                step,
                epoch,
                s.split.p,
                s.network.loss(),
                &s.split,
                &s.labels[i].labels,
                &s.labels[i].corrupted,
                &s.network.weight_stats(i),
                out,
            ));
        }
        Ok(())
    };
    let report = |history: &Vec<Vec<Record>>,
                  step: u64,
                  progress: &mut dyn FnMut(&Progress) -> Result<()>| {
        progress(&Progress {
            step,
            total_steps,
            latest: history.iter().filter_map(|h| h.last()).collect(),
        })
    };
    evaluate(&mut setup, &mut history, 0)?;
    report(&history, 0, progress)?;
    let n_train = setup.split.n_train();
    let minibatch = cfg.train.batch_size.filter(|&b| b < n_train);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.train.batch_seed);
    let mut perm: Vec<u32> = (0..n_train as u32).collect();
    let every = cfg.eval.every;
    let ckpt = cfg.eval.checkpoint_every;
    for step in 1..=total_steps {
        let batch_losses = match minibatch {
            None => setup.network.step_all()?,
            Some(b) => {
                let k = ((step - 1) % steps_per_epoch) as usize;
                if k == 0 {
                    perm.shuffle(&mut rng);
                }
                setup.network.step_batch(&perm[k * b..(k + 1) * b])?
            }
        };
        if (every > 0 && step % every == 0) || step == total_steps {
            evaluate(&mut setup, &mut history, step)?;
            for (h, &l) in history.iter_mut().zip(&batch_losses) {
                if let Some(r) = h.last_mut() {
                    r.batch_loss = Some(l);
                }
            }
        }
        if let Some(sink) = checkpoints.filter(|_| ckpt > 0 && step % ckpt == 0) {
            sink(&setup.network, step)?;
        }
        report(&history, step, progress)?;
    }
    Ok(Outcome {
        setup,
        history,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Trains `setup` of `cfg` into the new run directory `dir` (which holds the config):
/// checkpoints as configured, then the metrics, the summary and the weights.
pub fn train_into(
    cfg: &Checked,
    setup: Setup,
    dir: &RunDir,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<(Outcome, Summary)> {
    let sink = |net: &Network, step: u64| dir.write_checkpoint(net, step);
    let out = train(cfg, setup, Some(&sink), progress)?;
    let summary = dir.write_results(cfg, &out.setup, &out.history, out.seconds)?;
    Ok((out, summary))
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
