//! Analysis of a trained Transformer (SPEC §8): IPR of the token embedding's columns and of
//! the MLP neurons as seen from the tokens, and pruning of MLP neurons by IPR.
//!
//! Pruning neuron `k` of layer `l` zeroes row `k` of `fc1`, entry `k` of its bias and column
//! `k` of `fc2`. Layers after it (and LayerNorm) make the logits non-additive in the neurons,
//! so each level is evaluated from scratch, at most 101 levels (every 1 % of the neurons).

use super::prune::{Order, PrunePoint};
use crate::data::{Split, TrainLabels};
use crate::error::Result;
use crate::metrics::accuracies;
use crate::train::transformer::{TFleet, TNeuron};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The pruning order of model `m`'s MLP neurons (indices into [`TFleet::mlp_neuron_spectra`]).
pub fn t_prune_order(neurons: &[TNeuron], order: Order, seed: u64) -> Vec<usize> {
    let key = |i: usize| neurons[i].ipr.unwrap_or(f64::NEG_INFINITY);
    let mut idx: Vec<usize> = (0..neurons.len()).collect();
    match order {
        Order::Ascending => idx.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b))),
        Order::Descending => idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b))),
        Order::Random => idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed)),
    }
    idx
}

/// Pruning levels: every level for up to 100 neurons, else every 1 %.
pub fn levels(n: usize) -> Vec<usize> {
    if n <= 100 {
        (0..=n).collect()
    } else {
        let mut v: Vec<usize> = (0..=100).map(|i| i * n / 100).collect();
        v.dedup();
        v
    }
}

/// Prunes model `m`'s MLP neurons in `order` and evaluates each of [`levels`] from scratch.
/// The fleet's weights are restored afterwards.
pub fn t_prune_sweep(
    fleet: &mut TFleet,
    m: usize,
    split: &Split,
    labels: &TrainLabels,
    order: &[usize],
) -> Result<Vec<PrunePoint>> {
    let at = levels(order.len());
    t_prune_sweep_at(fleet, m, split, labels, order, &at)
}

/// [`t_prune_sweep`] at the given numbers of pruned neurons (each at most `order.len()`).
pub fn t_prune_sweep_at(
    fleet: &mut TFleet,
    m: usize,
    split: &Split,
    labels: &TrainLabels,
    order: &[usize],
    at: &[usize],
) -> Result<Vec<PrunePoint>> {
    let neurons = fleet.mlp_neuron_spectra(m);
    let (d, h) = (fleet.cfg.d_model, fleet.cfg.hidden());
    // Per layer: fc1, fc2 and (when the MLP has biases) fc1's bias.
    let mut saved: Vec<(String, Vec<f32>)> = Vec::new();
    for l in 0..fleet.cfg.layers {
        for n in ["mlp.fc1", "mlp.fc2", "mlp.fc1_bias"] {
            let name = format!("layers.{l}.{n}");
            if let Some((v, _)) = fleet.host(m, &name) {
                saved.push((name, v.to_vec()));
            }
        }
    }
    let per_layer = if fleet.cfg.mlp_bias { 3 } else { 2 };
    let mut out = Vec::new();
    let p = fleet.p;
    for &level in at {
        let level = level.min(order.len());
        let mut work = saved.clone();
        for &i in &order[..level] {
            let TNeuron {
                layer, neuron: k, ..
            } = neurons[i];
            let base = per_layer * layer;
            work[base].1[k * d..(k + 1) * d].fill(0.0);
            for j in 0..d {
                work[base + 1].1[j * h + k] = 0.0;
            }
            if fleet.cfg.mlp_bias {
                work[base + 2].1[k] = 0.0;
            }
        }
        for (n, v) in &work {
            fleet.set_param(m, n, v)?;
        }
        let ev = fleet.eval_model(m)?;
        out.push(PrunePoint {
            pruned: level,
            neuron: level.checked_sub(1).map(|i| order[i]),
            acc: accuracies(p, fleet.loss, split, &labels.labels, &labels.corrupted, &ev),
        });
    }
    for (n, v) in &saved {
        fleet.set_param(m, n, v)?;
    }
    Ok(out)
}
