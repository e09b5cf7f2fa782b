//! The Transformer engine (hand-derived passes) against its oracle, the same network in
//! candle with autograd: for every option, gradients and 50-step trajectories in f64 agree
//! to relative 1e-6, and 200-step loss curves in f32 to relative 1e-3.

#[path = "common/oracle.rs"]
mod oracle;

use candle_core::DType;
use grokscope::data::{CorruptionMode, Operation, Split};
use grokscope::kernels::Real;
use grokscope::model::transformer::{TActivation, TInit, TransformerConfig};
use grokscope::train::adamw::AdamWHyper;
use grokscope::train::loss::Loss;
use grokscope::train::transformer::TFleet;
use grokscope::train::ModelHyper;
use oracle::Oracle;

struct Case {
    name: &'static str,
    cfg: TransformerConfig,
    loss: Loss,
    dropout: f32,
    weight_decay: f64,
    /// Train on changing minibatches of this many rows instead of the full batch.
    minibatch: Option<usize>,
}

fn tiny(d: usize) -> TransformerConfig {
    TransformerConfig {
        d_model: d,
        heads: 2,
        layers: 1,
        mlp_ratio: 2,
        ..Default::default()
    }
}

/// The options, each in at least one case: μP and plain scaling, LayerNorm, GELU, tied
/// embeddings, dropout, MSE and cross-entropy, one and two blocks, MLP biases, both inits,
/// `rescale_optim`, minibatches.
fn cases(d: usize) -> Vec<Case> {
    vec![
        Case {
            name: "μP, CE, 1 block",
            cfg: tiny(d),
            loss: Loss::CrossEntropy,
            dropout: 0.0,
            weight_decay: 0.5,
            minibatch: None,
        },
        Case {
            name: "plain, MSE, LayerNorm, GELU, 2 blocks, biases, uniform init",
            cfg: TransformerConfig {
                mup: false,
                layernorm: true,
                activation: TActivation::Gelu,
                layers: 2,
                mlp_bias: true,
                init: TInit::Uniform,
                ..tiny(d)
            },
            loss: Loss::Mse,
            dropout: 0.0,
            weight_decay: 1.0,
            minibatch: None,
        },
        Case {
            name: "tied, dropout, CE, minibatches",
            cfg: TransformerConfig {
                tie_embeddings: true,
                ..tiny(d)
            },
            loss: Loss::CrossEntropy,
            dropout: 0.3,
            weight_decay: 0.1,
            minibatch: Some(13),
        },
        Case {
            name: "LayerNorm, dropout, 2 blocks, MSE, GELU",
            cfg: TransformerConfig {
                layernorm: true,
                layers: 2,
                activation: TActivation::Gelu,
                ..tiny(d)
            },
            loss: Loss::Mse,
            dropout: 0.2,
            weight_decay: 0.0,
            minibatch: Some(40),
        },
        Case {
            name: "rescale_optim, LayerNorm, μP s = 0.5",
            cfg: TransformerConfig {
                layernorm: true,
                rescale_optim: true,
                mup_s: 0.5,
                ..tiny(d)
            },
            loss: Loss::CrossEntropy,
            dropout: 0.0,
            weight_decay: 2.0,
            minibatch: None,
        },
    ]
}

fn hyper(c: &Case, lr: f64) -> ModelHyper {
    ModelHyper {
        adam: AdamWHyper {
            lr,
            weight_decay: c.weight_decay,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            perp: Default::default(),
        },
        dropout: c.dropout,
        dropout_seed: 3,
    }
}

struct Setup<T: Real> {
    fleet: TFleet<T>,
    oracle: Oracle,
    tokens: Vec<[u32; 2]>,
    labels: Vec<u32>,
}

fn setup<T: Real>(c: &Case, p: usize, lr: f64, dtype: DType) -> Setup<T> {
    let split = Split::new(p, Operation::Add, 0.5, 1).unwrap();
    let labels = split.corrupt(0.3, CorruptionMode::Wrong, 2).unwrap().labels;
    let fleet = TFleet::<T>::new(
        &c.cfg,
        c.loss,
        &split,
        vec![(5, hyper(c, lr), labels.clone())],
    );
    let flat: Vec<f64> = fleet.models[0].params.iter().map(|x| x.to_f64()).collect();
    let oracle = Oracle::new(&c.cfg, p, &flat, dtype);
    let tokens = split.train_pairs.iter().map(|&(a, b)| [a, b]).collect();
    Setup {
        fleet,
        oracle,
        tokens,
        labels,
    }
}

/// The rows of step `s` (a changing minibatch, or everything).
fn batch(c: &Case, n: usize, s: u64) -> Vec<u32> {
    match c.minibatch {
        None => (0..n as u32).collect(),
        Some(b) => (0..b as u64)
            .map(|i| ((s * 7919 + i * 104_729) % n as u64) as u32)
            .collect(),
    }
}

/// `max_i |a_i − b_i| / max_i |b_i|` (0 when both are 0).
fn rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    if diff == 0.0 {
        0.0
    } else {
        diff / scale.max(1e-300)
    }
}

fn pick(v: &[[u32; 2]], rows: &[u32]) -> Vec<[u32; 2]> {
    rows.iter().map(|&r| v[r as usize]).collect()
}

fn pick_labels(v: &[u32], rows: &[u32]) -> Vec<u32> {
    rows.iter().map(|&r| v[r as usize]).collect()
}

#[test]
fn gradients_match_the_oracle_in_f64() {
    for c in cases(8) {
        let mut s = setup::<f64>(&c, 7, 0.01, DType::F64);
        let rows = batch(&c, s.tokens.len(), 0);
        let (l, g) = s.fleet.gradients(0, Some(&rows));
        let dropout = (c.dropout, 3, 0);
        let (lo, go) = s.oracle.gradients(
            c.loss,
            &pick(&s.tokens, &rows),
            &pick_labels(&s.labels, &rows),
            dropout,
        );
        assert!(
            (l - lo).abs() <= 1e-9 * lo.abs(),
            "{}: loss {l} vs oracle {lo}",
            c.name
        );
        let mut worst = 0.0f64;
        for (j, spec) in s.fleet.specs.iter().enumerate() {
            let r = rel(&g[j], &go[j]);
            assert!(
                go[j].iter().any(|&x| x != 0.0),
                "{}: {} has no gradient",
                c.name,
                spec.name
            );
            assert!(
                r < 1e-6,
                "{}: {} gradient off by {r:.2e}",
                c.name,
                spec.name
            );
            worst = worst.max(r);
        }
        eprintln!("{}: worst relative gradient difference {worst:.1e}", c.name);
    }
}

/// Trains the engine and the oracle side by side for `steps` steps (same rows, same dropout
/// masks, the same AdamW); returns each step's (engine loss, oracle loss).
fn side_by_side<T: Real>(c: &Case, s: &mut Setup<T>, lr: f64, steps: u64) -> Vec<(f64, f64)> {
    let adam = hyper(c, lr).adam;
    (0..steps)
        .map(|step| {
            let rows = batch(c, s.tokens.len(), step);
            let l = s.fleet.step_on(Some(&rows))[0];
            let (lo, go) = s.oracle.gradients(
                c.loss,
                &pick(&s.tokens, &rows),
                &pick_labels(&s.labels, &rows),
                (c.dropout, 3, step),
            );
            s.oracle.step(&adam, &go);
            (l, lo)
        })
        .collect()
}

#[test]
fn fifty_step_trajectories_match_the_oracle_in_f64() {
    for c in cases(8) {
        let mut s = setup::<f64>(&c, 7, 0.01, DType::F64);
        let mut worst = 0.0f64;
        for (step, (l, lo)) in side_by_side(&c, &mut s, 0.01, 50).into_iter().enumerate() {
            let r = (l - lo).abs() / lo.abs();
            assert!(r < 1e-6, "{} step {step}: loss {l} vs oracle {lo}", c.name);
            worst = worst.max(r);
        }
        for (j, spec) in s.fleet.specs.iter().enumerate() {
            let r = rel(&s.fleet.param_f64(0, j), &s.oracle.param(j));
            assert!(
                r < 1e-6,
                "{}: {} after 50 steps off by {r:.2e}",
                c.name,
                spec.name
            );
            worst = worst.max(r);
        }
        eprintln!(
            "{}: worst relative difference over 50 steps {worst:.1e}",
            c.name
        );
    }
}

#[test]
fn two_hundred_step_loss_curves_match_the_oracle_in_f32() {
    for c in cases(16) {
        // The reference's learning rate (`rescale_optim` divides most of it by up to 2d).
        let lr = if c.cfg.rescale_optim { 0.01 } else { 1e-3 };
        let mut s = setup::<f32>(&c, 17, lr, DType::F32);
        let curves = side_by_side(&c, &mut s, lr, 200);
        let mut worst = 0.0f64;
        for (step, &(l, lo)) in curves.iter().enumerate() {
            let r = (l - lo).abs() / lo.abs();
            assert!(r < 1e-3, "{} step {step}: loss {l} vs oracle {lo}", c.name);
            worst = worst.max(r);
        }
        let (first, last) = (curves[0].0, curves[199].0);
        // The curves are not flat: training happened.
        assert!(last < 0.9 * first, "{}: loss {first} → {last}", c.name);
        eprintln!(
            "{}: worst relative loss difference over 200 steps {worst:.1e}",
            c.name
        );
    }
}

/// The same models give the same bits on 1 or 3 threads, and a model trained in a fleet
/// equals the model trained alone (the chunks are fixed; every sum runs in chunk order).
#[test]
fn the_numbers_depend_on_neither_threads_nor_the_fleet() {
    let c = &cases(16)[3];
    let split = Split::new(17, Operation::Add, 0.5, 1).unwrap();
    let labels = split.corrupt(0.3, CorruptionMode::Wrong, 2).unwrap().labels;
    let models = |which: &[usize]| -> Vec<(u64, ModelHyper, Vec<u32>)> {
        which
            .iter()
            .map(|&i| {
                let mut h = hyper(c, 1e-3);
                h.adam.weight_decay = i as f64;
                h.dropout = [0.0, 0.2, 0.1][i];
                (5 + i as u64, h, labels.clone())
            })
            .collect()
    };
    let train = |threads: usize, which: &[usize]| -> Vec<Vec<f32>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut f = TFleet::<f32>::new(&c.cfg, c.loss, &split, models(which));
            for s in 0..12u64 {
                let rows = batch(c, split.n_train(), s);
                if s % 3 == 0 {
                    f.step_on(None);
                } else {
                    f.step_on(Some(&rows));
                }
            }
            f.models.iter().map(|m| m.params.clone()).collect()
        })
    };
    let one = train(1, &[0, 1, 2]);
    let three = train(3, &[0, 1, 2]);
    assert!(one == three, "1 and 3 threads differ");
    assert!(train(2, &[1])[0] == one[1], "alone ≠ in the fleet");
    assert!(one[0] != one[1], "the models differ");
}
