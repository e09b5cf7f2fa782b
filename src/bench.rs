//! Benchmarks of the training step (`grokscope bench`): the paper's configuration
//! (p = 97, N = 500, α = 0.5, full batch), M = 1 and M = 8 models, a case whose weights are
//! mostly subnormal, and a 2048³ matrix product as the machine's practical peak.

use crate::config::{Axis, Config};
use crate::error::{Error, Result};
use crate::kernels::{flush_denormals, matmul_par, Mat};
use crate::setup::Prepare;
use crate::train::mlp::Fleet;
use crate::train::{Engine, Network};
use std::time::Instant;

/// One benchmark line.
#[derive(Clone, Debug)]
pub struct Timing {
    pub label: String,
    pub models: usize,
    pub ms_per_model_step: f64,
    pub gflops: f64,
}

/// FLOPs of one model-step: 3 matrix products of `n × N × p` multiply-adds, 2 FLOPs each.
pub fn step_flops(n: usize, width: usize, p: usize) -> f64 {
    6.0 * n as f64 * width as f64 * p as f64
}

/// Times `steps` full-batch steps of a fleet of `models` models of the paper's configuration
/// (after 2 warm-up steps). With `subnormal`, every weight is scaled by 1e-39 before each
/// timed step (outside the timing), so the step computes on subnormal inputs.
pub fn time_step(models: usize, steps: usize, subnormal: bool) -> Result<Timing> {
    let mut cfg = Config {
        name: "bench".into(),
        ..Default::default()
    };
    cfg.data.corruption = Axis::One(0.35);
    cfg.model.init_seed = Axis::Many((0..models as u64).collect());
    cfg.train.steps = Some(1);
    let s = cfg.check()?.setup()?;
    let n = s.split.n_train();
    let mut fleet: Fleet = match s.network {
        Network::Mlp(f) => f,
        _ => {
            return Err(Error::invalid(
                "model.kind",
                "the step benchmark is the MLP's",
            ))
        }
    };
    for _ in 0..2 {
        fleet.step_full();
    }
    let mut total = 0.0;
    for _ in 0..steps {
        if subnormal {
            for m in &mut fleet.models {
                for x in &mut m.params {
                    *x *= 1e-39;
                }
            }
        }
        let t = Instant::now();
        fleet.step_full();
        total += t.elapsed().as_secs_f64();
    }
    let per = total / (steps * models) as f64;
    Ok(Timing {
        label: format!(
            "train step, M = {models}{}",
            if subnormal { ", subnormal weights" } else { "" }
        ),
        models,
        ms_per_model_step: per * 1e3,
        gflops: step_flops(n, fleet.arch.width, fleet.arch.p) / per / 1e9,
    })
}

/// GFLOP/s of a `size³` f32 product on `threads` threads (best of `reps`).
pub fn peak_gflops(size: usize, threads: usize, reps: usize) -> f64 {
    flush_denormals();
    let a: Vec<f32> = (0..size * size).map(|i| ((i % 17) as f32) * 0.01).collect();
    let b: Vec<f32> = (0..size * size).map(|i| ((i % 13) as f32) * 0.01).collect();
    let mut c = vec![0.0f32; size * size];
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        matmul_par(
            &mut c,
            size,
            size,
            size,
            Mat::rows(&a, size),
            Mat::rows(&b, size),
            false,
            threads,
        );
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (size as f64).powi(3) / best / 1e9
}

/// The Transformer of the step benchmark: SCIENCE.md §8 defaults, cross-entropy.
const TRANSFORMER_BENCH: &str = r#"
name = "bench"
[model]
kind = "transformer"
[train]
loss = "ce"
steps = 1
"#;

/// Milliseconds per model and full-batch step of a fleet of `models` Transformers
/// (SCIENCE.md §8 defaults: d = 128, 4 heads, 1 layer, p = 97, α = 0.5; the models differ in
/// weight decay), after one warm-up step.
pub fn time_transformer_step(steps: usize, models: usize) -> Result<f64> {
    let decays: Vec<String> = (0..models.max(1))
        .map(|i| format!("{}", i as f64 * 0.5))
        .collect();
    let set = format!("train.weight_decay=[{}]", decays.join(", "));
    let mut net = Config::from_toml(TRANSFORMER_BENCH, &[set])?
        .check()?
        .setup()?
        .network;
    net.step_all()?;
    let t = Instant::now();
    for _ in 0..steps {
        net.step_all()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3 / (steps.max(1) * models.max(1)) as f64)
}
