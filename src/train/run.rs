//! The training loop: builds the data and the fleet from a config, trains it, and records the
//! metrics at the evaluation steps.

use super::adamw::AdamWHyper;
use super::engine::{Fleet, ModelHyper};
use super::transformer::TFleet;
use super::Engine;
use crate::analysis::analytic::analytic_params;
use crate::config::{Config, Init, ModelKind, ModelSpec};
use crate::data::{Split, TrainLabels};
use crate::error::Result;
use crate::metrics::{record, Record};
use crate::model::Arch;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Everything a config resolves to before training.
pub struct Setup<E = Fleet> {
    pub split: Split,
    pub specs: Vec<ModelSpec>,
    pub labels: Vec<TrainLabels>,
    pub fleet: E,
    pub total_steps: u64,
    pub steps_per_epoch: u64,
}

/// A finished run.
pub struct Outcome<E = Fleet> {
    pub split: Split,
    pub specs: Vec<ModelSpec>,
    pub labels: Vec<TrainLabels>,
    pub fleet: E,
    /// Per model, its records in step order (the last is the final one).
    pub history: Vec<Vec<Record>>,
    pub total_steps: u64,
    pub seconds: f64,
}

/// What the progress callback sees.
pub struct Progress<'a, E = Fleet> {
    pub step: u64,
    pub total_steps: u64,
    /// The latest record of every model.
    pub latest: Vec<&'a Record>,
    /// The fleet after `step` steps (for checkpoints).
    pub fleet: &'a E,
}

/// The seed of a model's dropout masks, derived from its init seed.
pub fn dropout_seed(init_seed: u64) -> u64 {
    init_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03
}

pub fn arch_of(cfg: &Config) -> Arch {
    Arch {
        p: cfg.data.p,
        width: cfg.model.width,
        activation: cfg.model.activation,
        batchnorm: cfg.model.batchnorm,
        bn_momentum: cfg.model.bn_momentum as f32,
        bn_eps: cfg.model.bn_eps as f32,
    }
}

/// Validates `cfg` and builds the split, the labels of every model and the fleet.
pub fn setup(cfg: &Config) -> Result<Setup> {
    setup_specs(cfg, cfg.fleet())
}

/// The split, each model's labels and optimizer settings: what both engines start from.
fn prepare(
    cfg: &Config,
    specs: &[ModelSpec],
) -> Result<(Split, Vec<TrainLabels>, Vec<ModelHyper>)> {
    cfg.validate()?;
    let d = &cfg.data;
    let split = Split::new(d.p, d.operation, d.train_fraction, d.split_seed)?;
    if let Some(b) = cfg.train.batch_size {
        if b > split.n_train() {
            return Err(crate::error::Error::invalid(
                "train.batch_size",
                format!(
                    "B = {b} exceeds the {} training examples (omit it for full batch)",
                    split.n_train()
                ),
            ));
        }
    }
    let mut labels = Vec::with_capacity(specs.len());
    let mut hypers = Vec::with_capacity(specs.len());
    for s in specs {
        labels.push(split.corrupt(s.corruption, d.corruption_mode, s.corruption_seed)?);
        hypers.push(ModelHyper {
            adam: AdamWHyper {
                lr: cfg.effective_lr(s.lr),
                weight_decay: s.weight_decay,
                beta1: cfg.train.beta1,
                beta2: cfg.train.beta2,
                eps: cfg.train.eps,
            },
            dropout: s.dropout as f32,
            dropout_seed: dropout_seed(s.init_seed),
        });
    }
    Ok((split, labels, hypers))
}

fn finish<E>(
    cfg: &Config,
    split: Split,
    specs: Vec<ModelSpec>,
    labels: Vec<TrainLabels>,
    fleet: E,
) -> Setup<E> {
    let n = split.n_train();
    Setup {
        total_steps: cfg.total_steps(n),
        steps_per_epoch: cfg.steps_per_epoch(n),
        split,
        specs,
        labels,
        fleet,
    }
}

/// As [`setup`], with the models given explicitly (their fleet-axis values replace the
/// config's; used by sweeps, which group arbitrary runs into fleets).
pub fn setup_specs(cfg: &Config, specs: Vec<ModelSpec>) -> Result<Setup> {
    if cfg.model.kind == ModelKind::Transformer {
        return Err(crate::error::Error::invalid(
            "model.kind",
            "this operation needs the MLP; the Transformer is built by setup_transformer",
        ));
    }
    let (split, labels, hypers) = prepare(cfg, &specs)?;
    let arch = arch_of(cfg);
    let std = cfg
        .model
        .init_std
        .unwrap_or_else(|| arch.default_init_std());
    let models = specs
        .iter()
        .zip(&hypers)
        .zip(&labels)
        .map(|((s, h), l)| {
            let params = match cfg.model.init {
                Init::Normal => arch.init_params(std, s.init_seed),
                Init::Analytic => analytic_params(&arch),
            };
            (params, *h, l.labels.clone())
        })
        .collect();
    let fleet = Fleet::new(arch, cfg.train.loss, &split, models);
    Ok(finish(cfg, split, specs, labels, fleet))
}

/// The Transformer fleet of `cfg` (`model.kind = "transformer"`) for the models `specs`.
pub fn setup_transformer(cfg: &Config, specs: Vec<ModelSpec>) -> Result<Setup<TFleet>> {
    let (split, labels, hypers) = prepare(cfg, &specs)?;
    let models = specs
        .iter()
        .zip(&hypers)
        .zip(&labels)
        .map(|((s, h), l)| (s.init_seed, *h, l.labels.clone()))
        .collect();
    let fleet = TFleet::new(
        &cfg.model.transformer,
        cfg.train.loss,
        &split,
        models,
        candle_core::DType::F32,
    )?;
    Ok(finish(cfg, split, specs, labels, fleet))
}

/// Trains the fleet of `cfg`, calling `progress` at step 0 and after every step; an error
/// from it stops the training.
pub fn train(cfg: &Config, progress: &mut dyn FnMut(&Progress) -> Result<()>) -> Result<Outcome> {
    train_setup(cfg, setup(cfg)?, progress)
}

/// Trains an already built [`Setup`] of `cfg`, with either engine.
pub fn train_setup<E: Engine>(
    cfg: &Config,
    setup: Setup<E>,
    progress: &mut dyn FnMut(&Progress<E>) -> Result<()>,
) -> Result<Outcome<E>> {
    let Setup {
        split,
        specs,
        labels,
        mut fleet,
        total_steps,
        steps_per_epoch,
    } = setup;
    let start = std::time::Instant::now();
    let mut history: Vec<Vec<Record>> = vec![Vec::new(); specs.len()];
    let p = split.p;
    let evaluate = |fleet: &mut E, history: &mut Vec<Vec<Record>>, step: u64| -> Result<()> {
        let outs = fleet.eval_all()?;
        let epoch = step as f64 / steps_per_epoch as f64;
        for (i, out) in outs.iter().enumerate() {
            history[i].push(record(
                step,
                epoch,
                p,
                fleet.loss(),
                &split,
                &labels[i].labels,
                &labels[i].corrupted,
                &fleet.weight_stats(i),
                out,
            ));
        }
        Ok(())
    };
    let report = |history: &Vec<Vec<Record>>,
                  fleet: &E,
                  step: u64,
                  progress: &mut dyn FnMut(&Progress<E>) -> Result<()>| {
        progress(&Progress {
            step,
            total_steps,
            latest: history.iter().filter_map(|h| h.last()).collect(),
            fleet,
        })
    };
    evaluate(&mut fleet, &mut history, 0)?;
    report(&history, &fleet, 0, progress)?;
    let minibatch = cfg.train.batch_size.filter(|&b| b < split.n_train());
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.train.batch_seed);
    let mut perm: Vec<u32> = (0..split.n_train() as u32).collect();
    let every = cfg.eval.every;
    for step in 1..=total_steps {
        match minibatch {
            None => fleet.step_all()?,
            Some(b) => {
                let k = ((step - 1) % steps_per_epoch) as usize;
                if k == 0 {
                    perm.shuffle(&mut rng);
                }
                fleet.step_batch(&perm[k * b..(k + 1) * b])?;
            }
        }
        if (every > 0 && step % every == 0) || step == total_steps {
            evaluate(&mut fleet, &mut history, step)?;
        }
        report(&history, &fleet, step, progress)?;
    }
    Ok(Outcome {
        split,
        specs,
        labels,
        fleet,
        history,
        total_steps,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Trains the models `specs` of `cfg` with the engine its `model.kind` asks for; returns each
/// model's history and the step count. `progress` sees the step and the total.
pub fn train_specs(
    cfg: &Config,
    specs: Vec<ModelSpec>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Vec<Vec<Record>>, u64)> {
    match cfg.model.kind {
        ModelKind::Mlp => {
            let out = train_setup(cfg, setup_specs(cfg, specs)?, &mut |p| {
                progress(p.step, p.total_steps);
                Ok(())
            })?;
            Ok((out.history, out.total_steps))
        }
        ModelKind::Transformer => {
            let out = train_setup(cfg, setup_transformer(cfg, specs)?, &mut |p| {
                progress(p.step, p.total_steps);
                Ok(())
            })?;
            Ok((out.history, out.total_steps))
        }
    }
}

/// Seconds per model-step and per model-evaluation of `specs` (at most two models) of `cfg`,
/// measured over a few steps on `rows` training rows.
pub fn measure(cfg: &Config, specs: Vec<ModelSpec>, rows: usize) -> Result<(f64, f64)> {
    fn go<E: Engine>(mut e: E, rows: usize, m: f64) -> Result<(f64, f64)> {
        let batch: Vec<u32> = (0..rows as u32).collect();
        e.step_batch(&batch)?;
        let reps = (20_000 / rows).clamp(3, 50);
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            e.step_batch(&batch)?;
        }
        let t_step = t0.elapsed().as_secs_f64() / reps as f64 / m;
        let t0 = std::time::Instant::now();
        e.eval_all()?;
        Ok((t_step, t0.elapsed().as_secs_f64() / m))
    }
    let specs: Vec<ModelSpec> = specs.into_iter().take(2).collect();
    let m = specs.len() as f64;
    match cfg.model.kind {
        ModelKind::Mlp => go(setup_specs(cfg, specs)?.fleet, rows, m),
        ModelKind::Transformer => go(setup_transformer(cfg, specs)?.fleet, rows, m),
    }
}
