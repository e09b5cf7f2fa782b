//! Pruning by IPR (SPEC §4): remove neurons one at a time in a chosen order and measure every
//! accuracy after each removal.
//!
//! The logits are a sum over neurons, `logits(x) = Σ_k W[:, k] y_k(x)`, so the sweep computes
//! every neuron's output `y_k(x)` on every pair once and then builds the logits up in f64 from
//! the fully pruned network, adding back one neuron's contribution per level: `N + 1`
//! evaluations cost about one forward pass plus `(N + 1) · n · p` comparisons and loss terms. Pruning neuron `k` zeroes row `k` of `U`, `V`, column `k` of `W` and its
//! BatchNorm output, so its whole contribution goes, BatchNorm's shift included.

use super::ipr::model_neuron_iprs;
use crate::data::{Split, TrainLabels};
use crate::metrics::Accuracies;
use crate::model::Arch;
use crate::train::engine::ModelState;
use crate::train::loss::{argmax, Loss};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Lowest IPR (memorizing) first; dead neurons before all others.
    Ascending,
    /// Highest IPR (periodic, generalizing) first; dead neurons last.
    Descending,
    /// A random permutation drawn from the seed.
    Random,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::Ascending => "ascending",
            Order::Descending => "descending",
            Order::Random => "random",
        }
    }
}

/// The order in which neurons are pruned.
pub fn prune_order(arch: &Arch, params: &[f32], order: Order, seed: u64) -> Vec<usize> {
    let iprs = model_neuron_iprs(arch, params);
    let key = |k: usize| iprs[k].unwrap_or(f64::NEG_INFINITY);
    let mut idx: Vec<usize> = (0..arch.width).collect();
    match order {
        Order::Ascending => idx.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b))),
        Order::Descending => idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b))),
        Order::Random => idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed)),
    }
    idx
}

/// The metrics after pruning the first `pruned` neurons of the order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrunePoint {
    pub pruned: usize,
    /// The neuron removed last (`None` for the unpruned network).
    pub neuron: Option<usize>,
    #[serde(flatten)]
    pub acc: Accuracies,
}

/// Every neuron's output `y_k` on every pair (training pairs, then test pairs), row-major
/// `n_pairs × N`, in evaluation mode.
pub fn neuron_outputs(arch: &Arch, model: &ModelState, pairs: &[(u32, u32)]) -> Vec<f32> {
    let n = arch.width;
    let u = &model.params[arch.u_range()];
    let v = &model.params[arch.v_range()];
    let mut y = vec![0.0f32; pairs.len() * n];
    for (r, &(a, b)) in pairs.iter().enumerate() {
        let row = &mut y[r * n..(r + 1) * n];
        for k in 0..n {
            row[k] = u[a as usize * n + k] + v[b as usize * n + k];
        }
        arch.activation.apply_in_place(row);
        if let Some(rs) = &model.running {
            let g = &model.params[arch.gamma_range()];
            let be = &model.params[arch.beta_range()];
            for k in 0..n {
                row[k] = g[k] * (row[k] - rs.mean[k]) / (rs.var[k] + arch.bn_eps).sqrt() + be[k];
            }
        }
    }
    y
}

/// Hits and loss sums of one pruning level over a block of rows.
#[derive(Clone, Copy, Default)]
struct Tally {
    train: usize,
    test: usize,
    mem: usize,
    inv: usize,
    clean: usize,
    train_loss: f64,
    test_loss: f64,
}

const PRUNE_BLOCK: usize = 64;

/// Prunes the neurons of `model` in `order`, returning the metrics for `m = 0 … N`.
///
/// Rows are independent, so blocks of rows run in parallel.
pub fn prune_sweep(
    arch: &Arch,
    loss: Loss,
    split: &Split,
    labels: &TrainLabels,
    model: &ModelState,
    order: &[usize],
) -> Vec<PrunePoint> {
    let (p, n) = (arch.p, arch.width);
    let nt = split.n_train();
    let mut pairs = split.train_pairs.clone();
    pairs.extend_from_slice(&split.test_pairs);
    let y = neuron_outputs(arch, model, &pairs);
    let w = &model.params[arch.w_range()];
    // W's columns in pruning order, as f64.
    let wcols: Vec<f64> = order
        .iter()
        .flat_map(|&k| (0..p).map(move |q| w[q * n + k] as f64))
        .collect();
    let levels = order.len() + 1;
    let blocks: Vec<std::ops::Range<usize>> = (0..pairs.len())
        .step_by(PRUNE_BLOCK)
        .map(|s| s..(s + PRUNE_BLOCK).min(pairs.len()))
        .collect();
    let tallies: Vec<Vec<Tally>> = blocks
        .par_iter()
        .map(|rows| {
            let mut t = vec![Tally::default(); levels];
            let nr = rows.len();
            let mut logits = vec![0.0f64; nr * p];
            let mut row32 = vec![0.0f32; p];
            // From the empty network up: level m holds the neurons order[m..], so each level's
            // logits are a fresh f64 sum of what remains (no cancellation drift; the fully
            // pruned network has exactly zero logits, as from scratch).
            for m in (0..levels).rev() {
                let tally = &mut t[m];
                if m < order.len() {
                    let k = order[m];
                    let wk = &wcols[m * p..(m + 1) * p];
                    for (i, r) in rows.clone().enumerate() {
                        let yk = y[r * n + k] as f64;
                        if yk != 0.0 {
                            for (l, &wq) in logits[i * p..(i + 1) * p].iter_mut().zip(wk) {
                                *l += yk * wq;
                            }
                        }
                    }
                }
                for (i, r) in rows.clone().enumerate() {
                    for q in 0..p {
                        row32[q] = logits[i * p + q] as f32;
                    }
                    let pred = argmax(&row32);
                    if r < nt {
                        let label = labels.labels[r];
                        tally.train += (pred == label) as usize;
                        tally.train_loss += loss.row_loss(&row32, label);
                        if labels.corrupted[r] {
                            tally.mem += (pred == label) as usize;
                            tally.inv += (pred == split.train_true[r]) as usize;
                        } else {
                            tally.clean += (pred == split.train_true[r]) as usize;
                        }
                    } else {
                        let label = split.test_labels[r - nt];
                        tally.test += (pred == label) as usize;
                        tally.test_loss += loss.row_loss(&row32, label);
                    }
                }
            }
            t
        })
        .collect();
    let n_c = labels.n_corrupted();
    let n_k = nt - n_c;
    let frac = |h: usize, d: usize| (d > 0).then(|| h as f64 / d as f64);
    (0..levels)
        .map(|m| {
            let mut t = Tally::default();
            for b in &tallies {
                let x = &b[m];
                t.train += x.train;
                t.test += x.test;
                t.mem += x.mem;
                t.inv += x.inv;
                t.clean += x.clean;
                t.train_loss += x.train_loss;
                t.test_loss += x.test_loss;
            }
            PrunePoint {
                pruned: m,
                neuron: (m > 0).then(|| order[m - 1]),
                acc: Accuracies {
                    train_loss: t.train_loss / loss.norm(nt, p),
                    train_acc: t.train as f64 / nt as f64,
                    test_loss: t.test_loss / loss.norm(split.n_test(), p),
                    test_acc: t.test as f64 / split.n_test() as f64,
                    mem_acc: frac(t.mem, n_c),
                    inv_acc: frac(t.inv, n_c),
                    clean_acc: frac(t.clean, n_k),
                },
            }
        })
        .collect()
}

/// Zeroes neuron `k`'s parameters in place (the from-scratch definition of pruning).
pub fn zero_neuron(arch: &Arch, params: &mut [f32], k: usize) {
    let n = arch.width;
    for a in 0..arch.p {
        params[arch.u_range().start + a * n + k] = 0.0;
        params[arch.v_range().start + a * n + k] = 0.0;
        params[arch.w_range().start + a * n + k] = 0.0;
    }
    if arch.batchnorm {
        params[arch.gamma_range().start + k] = 0.0;
        params[arch.beta_range().start + k] = 0.0;
    }
}
