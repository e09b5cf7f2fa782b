//! Benchmarks of the training step (`grokscope bench`): the paper's configuration
//! (p = 97, N = 500, α = 0.5, full batch), M = 1 and M = 8 models, a case whose weights are
//! mostly subnormal, and a 2048³ matrix product as the machine's practical peak; the
//! Transformer's step; the deep MLP's minibatch step on MNIST-sized inputs.

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

/// The deep MLP of the step benchmark: MNIST-sized inputs (784 features, 10 classes), three
/// hidden ReLU layers of 200 with biases, cross-entropy, minibatches of 128, AdamW.
pub const DEEP_BENCH: (usize, [usize; 3], usize) = (784, [200, 200, 200], 128);

/// Milliseconds per model and minibatch step of a fleet of `models` deep MLPs
/// ([`DEEP_BENCH`]; the models differ in weight decay) on seeded uniform [0, 1) inputs of
/// 784 features (the step's time does not depend on the values), after 3 warm-up steps.
pub fn time_deep_step(steps: usize, models: usize) -> Result<f64> {
    use crate::data::DenseSplit;
    use crate::model::deep::DeepConfig;
    use crate::train::adamw::AdamWHyper;
    use crate::train::deep::DFleet;
    use crate::train::loss::Loss;
    use crate::train::ModelHyper;
    use rand::{Rng, SeedableRng};
    let (dim, widths, batch) = DEEP_BENCH;
    let n = 4096;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let x: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>()).collect();
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let data = DenseSplit::new(
        "bench",
        10,
        vec![dim],
        (x[..(n - 256) * dim].to_vec(), y[..n - 256].to_vec()),
        (x[(n - 256) * dim..].to_vec(), y[n - 256..].to_vec()),
    )?;
    let arch = DeepConfig {
        widths: widths.to_vec(),
        ..Default::default()
    }
    .check(dim, 10)?;
    let list = (0..models.max(1))
        .map(|i| {
            let hyper = ModelHyper {
                adam: AdamWHyper {
                    lr: 1e-3,
                    weight_decay: 0.1 * i as f64,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    perp: Default::default(),
                },
                dropout: 0.0,
                dropout_seed: i as u64,
            };
            (arch.init_params(i as u64), hyper, data.train_true.clone())
        })
        .collect();
    let mut fleet: DFleet = DFleet::new(arch, Loss::CrossEntropy, &data, list);
    let n_train = data.train_true.len() as u32;
    let batches: Vec<Vec<u32>> = (0..steps.max(1) + 3)
        .map(|s| {
            (0..batch as u32)
                .map(|i| (s as u32 * 977 + i * 31) % n_train)
                .collect()
        })
        .collect();
    for b in &batches[..3] {
        fleet.step_on(Some(b));
    }
    let t = Instant::now();
    for b in &batches[3..] {
        fleet.step_on(Some(b));
    }
    Ok(t.elapsed().as_secs_f64() * 1e3 / (steps.max(1) * models.max(1)) as f64)
}

/// Seconds of training (not counting setup or the report) of the built-in default run
/// (`configs/default.toml`: 3 models, 500 full-batch steps, 51 evaluations), with the
/// progress measures at every evaluation or without them.
pub fn time_default_run(progress: bool) -> Result<f64> {
    let mut cfg = Config::from_toml(crate::config::preset("default")?, &[])?;
    cfg.eval.progress_every = u64::from(progress);
    let cfg = cfg.check()?;
    Ok(crate::experiment::train_config(&cfg, &mut |_| Ok(()))?.seconds)
}

/// What the content digests (docs/OUTPUTS.md, "What is verified") cost the built-in default
/// run: the bytes it seals — `weights.safetensors` (from the network itself) and
/// `dataset.safetensors` (its size from its layout: u32 pairs and labels, u8 masks) — and the
/// seconds of one SHA-256 pass over them, the median of `reps`. Sealing a file is one pass and
/// each later read verifies with one more; SHA-256 takes the same time for any bytes of a
/// length, so the pass runs over the real weights followed by zeros for the dataset.
pub fn time_digests(reps: usize) -> Result<(usize, f64)> {
    let cfg = Config::from_toml(crate::config::preset("default")?, &[])?.check()?;
    let s = cfg.setup()?;
    let weights = s.network.save_all(s.total_steps)?;
    let n = s.split.n_train() + s.split.n_test();
    let n_train = s.split.n_train();
    let models = s.labels.len();
    let dataset = n * (2 * 4 + 1 + 4) + models * n_train * (4 + 1);
    let mut bytes = weights;
    bytes.resize(bytes.len() + dataset, 0);
    let mut times = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        std::hint::black_box(crate::digest::sha256_hex(&[&bytes]));
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((bytes.len(), times[times.len() / 2]))
}
