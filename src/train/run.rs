//! The training loop: builds the data and the fleet from a config, trains it, and records the
//! metrics at the evaluation steps.

use super::adamw::AdamWHyper;
use super::engine::{Fleet, ModelHyper};
use crate::analysis::analytic::analytic_params;
use crate::config::{Config, Init, ModelSpec};
use crate::data::{Split, TrainLabels};
use crate::error::Result;
use crate::metrics::{record, Record};
use crate::model::Arch;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Everything a config resolves to before training.
pub struct Setup {
    pub split: Split,
    pub specs: Vec<ModelSpec>,
    pub labels: Vec<TrainLabels>,
    pub fleet: Fleet,
    pub total_steps: u64,
    pub steps_per_epoch: u64,
}

/// A finished run.
pub struct Outcome {
    pub split: Split,
    pub specs: Vec<ModelSpec>,
    pub labels: Vec<TrainLabels>,
    pub fleet: Fleet,
    /// Per model, its records in step order (the last is the final one).
    pub history: Vec<Vec<Record>>,
    pub total_steps: u64,
    pub seconds: f64,
}

/// What the progress callback sees.
pub struct Progress<'a> {
    pub step: u64,
    pub total_steps: u64,
    /// The latest record of every model.
    pub latest: Vec<&'a Record>,
    /// The fleet after `step` steps (for checkpoints).
    pub fleet: &'a Fleet,
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

/// As [`setup`], with the models given explicitly (their fleet-axis values replace the
/// config's; used by sweeps, which group arbitrary runs into fleets).
pub fn setup_specs(cfg: &Config, specs: Vec<ModelSpec>) -> Result<Setup> {
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
    let arch = arch_of(cfg);
    let std = cfg
        .model
        .init_std
        .unwrap_or_else(|| arch.default_init_std());
    let mut labels = Vec::with_capacity(specs.len());
    let mut models = Vec::with_capacity(specs.len());
    for s in &specs {
        let l = split.corrupt(s.corruption, d.corruption_mode, s.corruption_seed)?;
        let hyper = ModelHyper {
            adam: AdamWHyper {
                lr: cfg.effective_lr(s.lr),
                weight_decay: s.weight_decay,
                beta1: cfg.train.beta1,
                beta2: cfg.train.beta2,
                eps: cfg.train.eps,
            },
            dropout: s.dropout as f32,
            dropout_seed: dropout_seed(s.init_seed),
        };
        let params = match cfg.model.init {
            Init::Normal => arch.init_params(std, s.init_seed),
            Init::Analytic => analytic_params(&arch),
        };
        models.push((params, hyper, l.labels.clone()));
        labels.push(l);
    }
    let fleet = Fleet::new(arch, cfg.train.loss, &split, models);
    let n = split.n_train();
    Ok(Setup {
        total_steps: cfg.total_steps(n),
        steps_per_epoch: cfg.steps_per_epoch(n),
        split,
        specs,
        labels,
        fleet,
    })
}

/// Trains the fleet of `cfg`, calling `progress` at step 0 and after every step; an error
/// from it stops the training.
pub fn train(cfg: &Config, progress: &mut dyn FnMut(&Progress) -> Result<()>) -> Result<Outcome> {
    train_setup(cfg, setup(cfg)?, progress)
}

/// Trains an already built [`Setup`] of `cfg`.
pub fn train_setup(
    cfg: &Config,
    setup: Setup,
    progress: &mut dyn FnMut(&Progress) -> Result<()>,
) -> Result<Outcome> {
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
    let evaluate = |fleet: &mut Fleet, history: &mut Vec<Vec<Record>>, step: u64| {
        let outs = fleet.evaluate();
        let epoch = step as f64 / steps_per_epoch as f64;
        for (i, out) in outs.iter().enumerate() {
            history[i].push(record(
                step,
                epoch,
                &fleet.arch,
                fleet.loss,
                &split,
                &labels[i].labels,
                &labels[i].corrupted,
                &fleet.models[i].params,
                out,
            ));
        }
    };
    let report = |history: &Vec<Vec<Record>>,
                  fleet: &Fleet,
                  step: u64,
                  progress: &mut dyn FnMut(&Progress) -> Result<()>| {
        progress(&Progress {
            step,
            total_steps,
            latest: history.iter().filter_map(|h| h.last()).collect(),
            fleet,
        })
    };
    evaluate(&mut fleet, &mut history, 0);
    report(&history, &fleet, 0, progress)?;
    let minibatch = cfg.train.batch_size.filter(|&b| b < split.n_train());
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.train.batch_seed);
    let mut perm: Vec<u32> = (0..split.n_train() as u32).collect();
    let every = cfg.eval.every;
    for step in 1..=total_steps {
        match minibatch {
            None => {
                fleet.step_full();
            }
            Some(b) => {
                let k = ((step - 1) % steps_per_epoch) as usize;
                if k == 0 {
                    perm.shuffle(&mut rng);
                }
                fleet.step(&perm[k * b..(k + 1) * b]);
            }
        }
        if (every > 0 && step % every == 0) || step == total_steps {
            evaluate(&mut fleet, &mut history, step);
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
