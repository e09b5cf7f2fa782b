//! Pruning by IPR (SCIENCE.md §4): remove neurons one at a time in a chosen order and measure every
//! accuracy after each removal, for either network ([`Network::prune_sweep`]).
//!
//! MLP: the logits are a sum over neurons, `logits(x) = Σ_k W[:, k] y_k(x)`, so the sweep computes
//! every neuron's output `y_k(x)` on every pair once and then builds the logits up in f64 from
//! the fully pruned network, adding back one neuron's contribution per level: `N + 1`
//! evaluations cost about one forward pass plus `(N + 1) · n · p` comparisons and loss terms. Pruning neuron `k` zeroes row `k` of `U`, `V`, column `k` of `W` and its
//! BatchNorm output, so its whole contribution goes, BatchNorm's shift included.
//!
//! Transformer: pruning MLP neuron `k` of layer `l` zeroes row `k` of `fc1`, entry `k` of its
//! bias and column `k` of `fc2`. Layers after it (and LayerNorm) make the logits non-additive
//! in the neurons, so each level is evaluated from scratch.

use crate::data::{Dataset, Split, TrainLabels};
use crate::error::Result;
use crate::metrics::{accuracies, Accuracies};
use crate::model::memory;
use crate::model::Arch;
use crate::train::loss::{argmax, Loss};
use crate::train::mlp::{Fleet, ModelState};
use crate::train::{Engine, Network};
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

/// The order in which neurons are pruned, from their IPRs (`None`: dead).
pub fn prune_order(iprs: &[Option<f64>], order: Order, seed: u64) -> Vec<usize> {
    let key = |k: usize| iprs[k].unwrap_or(f64::NEG_INFINITY);
    let mut idx: Vec<usize> = (0..iprs.len()).collect();
    match order {
        Order::Ascending => idx.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b))),
        Order::Descending => idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b))),
        Order::Random => idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed)),
    }
    idx
}

impl Network {
    /// The pruning order of model `m`'s neurons (by the IPRs of its weight statistics).
    pub fn prune_order(&self, m: usize, order: Order, seed: u64) -> Vec<usize> {
        prune_order(&self.weight_stats(m).neuron_iprs, order, seed)
    }

    /// The numbers of pruned neurons to evaluate when at most `max` evaluations from scratch
    /// are affordable: the MLP evaluates every level at about the cost of one (its logits are
    /// a sum over neurons); the Transformer evaluates all levels if they are at most `max`,
    /// else `max` evenly spaced ones.
    pub fn prune_levels(&self, max: usize) -> Vec<usize> {
        let n = self.n_neurons();
        if self.as_mlp().is_some() || n < max {
            (0..=n).collect()
        } else {
            let steps = max.saturating_sub(1).max(1);
            let mut v: Vec<usize> = (0..=steps).map(|i| i * n / steps).collect();
            v.dedup();
            v
        }
    }

    /// Prunes model `m`'s neurons in `order` (indices into `Network::neurons`) and returns the
    /// metrics after removing the first `at[i]` of them, for each `i`. The weights are the
    /// same afterwards.
    pub fn prune_sweep(
        &mut self,
        m: usize,
        split: &Dataset,
        labels: &TrainLabels,
        order: &[usize],
        at: &[usize],
    ) -> Result<Vec<PrunePoint>> {
        match (split.table(), self.as_mlp_mut()) {
            (Some(table), Some(f)) => {
                let (pairs, n) = (
                    (split.n_train() + split.n_test()) as f64,
                    f.arch.width as f64,
                );
                let est = memory::Estimate {
                    parts: vec![
                        (
                            "the hidden layer on every pair",
                            "model.mlp.width",
                            4.0 * pairs * n,
                        ),
                        (
                            "the tallies of every level",
                            "model.mlp.width",
                            (pairs / PRUNE_BLOCK as f64).ceil() * (n + 1.0) * 56.0,
                        ),
                        ("the pairs", "data.p", 8.0 * pairs),
                    ],
                };
                memory::ensure(&est, "pruning", "")?;
                let all = mlp_prune_sweep(f, m, (table, labels), order);
                Ok(at
                    .iter()
                    .filter_map(|&l| all.get(l.min(order.len())).cloned())
                    .collect())
            }
            // Any other kind: each level from scratch, through the engine.
            _ => scratch_prune_sweep(self, m, (split, labels), order, at),
        }
    }
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

/// The pairs and one model's training labels.
type Data<'a> = (&'a Split, &'a TrainLabels);

/// A dataset and one model's training labels.
type DataOf<'a> = (&'a Dataset, &'a TrainLabels);

/// Prunes the neurons of MLP `m` in `order`, returning the metrics for `m = 0 … N`.
///
/// Rows are independent, so blocks of rows run in parallel.
fn mlp_prune_sweep(
    fleet: &Fleet,
    m: usize,
    (split, labels): Data,
    order: &[usize],
) -> Vec<PrunePoint> {
    let (arch, loss, model): (&Arch, Loss, &ModelState) =
        (&fleet.arch, fleet.loss, &fleet.models[m]);
    let (p, n) = (arch.p, arch.width);
    let nt = split.n_train();
    let mut pairs = split.train_pairs.clone();
    pairs.extend_from_slice(&split.test_pairs);
    let mut y = vec![0.0f32; pairs.len() * n];
    arch.eval_hidden(&model.params, model.running.as_ref(), &pairs, &mut y);
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

/// Prunes model `m`'s neurons in `order` and evaluates each level of `at` from scratch,
/// through the engine (`Engine::prune_neurons`, `eval_model`); the weights are restored
/// afterwards. Any model kind; the MLP has its fast sweep besides.
pub fn scratch_prune_sweep(
    engine: &mut dyn Engine,
    m: usize,
    (split, labels): DataOf,
    order: &[usize],
    at: &[usize],
) -> Result<Vec<PrunePoint>> {
    let saved = engine.prunable_weights(m);
    let (p, loss) = (engine.vocab(), engine.loss());
    let mut out = Vec::with_capacity(at.len());
    let mut result = Ok(());
    for &level in at {
        let level = level.min(order.len());
        result = engine.prune_neurons(m, &saved, &order[..level]);
        if result.is_err() {
            break;
        }
        let ev = match engine.eval_model(m) {
            Ok(ev) => ev,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        out.push(PrunePoint {
            pruned: level,
            neuron: level.checked_sub(1).map(|i| order[i]),
            acc: accuracies(p, loss, split, &labels.labels, &labels.corrupted, &ev),
        });
    }
    engine.prune_neurons(m, &saved, &[])?;
    result.map(|_| out)
}
