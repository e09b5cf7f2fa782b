//! The deep MLP fleet's evaluations: every model on every example in blocks of
//! [`EVAL_ROWS`], from a cached layer after pruning, and the unit traces of the scores.

use super::pass::{Mode, Work};
use super::{DFleet, EVAL_ROWS};
use crate::kernels::{flush_denormals, Real};
use crate::train::engine::{self, EvalOutput, UnitTraces};
use crate::train::loss::argmax;
use rayon::prelude::*;

/// Model `model`'s hidden outputs (per layer, every example: training, then test) with the
/// parameters `params`, and the pruned parameters `pruned` whose evaluation may start at layer
/// `first` from them (units pruned in layers before `first` only change the layers after).
pub(super) struct EvalCache<T> {
    pub(super) model: usize,
    pub(super) params: Vec<T>,
    pub(super) acts: Vec<Vec<T>>,
    pub(super) pruned: Option<(Vec<T>, usize)>,
}

impl<T: Real> DFleet<T> {
    /// Model `m`'s hidden outputs on every example (per layer, training then test), in
    /// evaluation mode, in blocks of [`EVAL_ROWS`] as [`Self::evaluate`] computes them.
    pub(super) fn hidden_outputs(&self, m: usize) -> Vec<Vec<T>> {
        let total = self.n_train + self.test_labels.len();
        let starts: Vec<usize> = (0..total).step_by(EVAL_ROWS).collect();
        let blocks: Vec<Vec<Vec<T>>> = starts
            .par_iter()
            .map(|&start| {
                flush_denormals();
                let end = (start + EVAL_ROWS).min(total);
                self.activations(m, &self.eval_inputs(start, end))
            })
            .collect();
        let mut out: Vec<Vec<T>> = self
            .arch
            .widths
            .iter()
            .map(|&w| Vec::with_capacity(total * w))
            .collect();
        for b in blocks {
            for (o, a) in out.iter_mut().zip(b) {
                o.extend(a);
            }
        }
        out
    }

    /// The inputs of examples `start .. end` of every example (training, then test).
    pub(super) fn eval_inputs(&self, start: usize, end: usize) -> Vec<T> {
        let d = self.arch.dim;
        let mut x = Vec::with_capacity((end - start) * d);
        for r in start..end {
            if r < self.n_train {
                x.extend_from_slice(&self.train_x[r * d..(r + 1) * d]);
            } else {
                let r = r - self.n_train;
                x.extend_from_slice(&self.test_x[r * d..(r + 1) * d]);
            }
        }
        x
    }

    /// The layer model `m`'s evaluation may start at, with the cached outputs of the layer
    /// before it: only when its parameters are exactly the pruned ones the cache was made for.
    pub(super) fn resume_point(&self, m: usize) -> Option<(usize, &[T])> {
        let c = self.cache.as_ref().filter(|c| c.model == m)?;
        let (pruned, first) = c.pruned.as_ref()?;
        let same = pruned.len() == self.models[m].params.len()
            && pruned
                .iter()
                .zip(&self.models[m].params)
                .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits());
        (same && *first > 0).then(|| (*first, c.acts[*first - 1].as_slice()))
    }

    /// Predictions and row losses of the models `models` on every example (training, then
    /// test).
    pub(super) fn evaluate(&self, models: std::ops::Range<usize>) -> Vec<EvalOutput> {
        let total = self.n_train + self.test_labels.len();
        let starts: Vec<usize> = (0..total).step_by(EVAL_ROWS).collect();
        let nc = starts.len();
        let k = self.arch.classes;
        let parts: Vec<(Vec<u32>, Vec<f64>)> = (0..models.len() * nc)
            .into_par_iter()
            .map(|t| {
                flush_denormals();
                let (mi, start) = (models.start + t / nc, starts[t % nc]);
                let end = (start + EVAL_ROWS).min(total);
                let st = &self.models[mi];
                let logits = match self.resume_point(mi) {
                    Some((first, acts)) => {
                        let w = self.arch.widths[first - 1];
                        let mut ws = Work::default();
                        let x = &acts[start * w..end * w];
                        let mode = Mode::Eval(st.running.as_deref());
                        ws.forward_from(&self.arch, &st.params, x, end - start, mode, first);
                        ws.logits.truncate((end - start) * k);
                        ws.logits
                    }
                    None => self.logits(mi, &self.eval_inputs(start, end)),
                };
                let mut row = vec![0f32; k];
                let mut preds = Vec::with_capacity(end - start);
                let mut losses = Vec::with_capacity(end - start);
                for (i, lr) in logits.chunks_exact(k).enumerate() {
                    for (o, v) in row.iter_mut().zip(lr) {
                        *o = v.to_f32();
                    }
                    let r = start + i;
                    let label = if r < self.n_train {
                        st.labels[r]
                    } else {
                        self.test_labels[r - self.n_train]
                    };
                    preds.push(argmax(&row));
                    losses.push(self.loss.row_loss(&row, label));
                }
                (preds, losses)
            })
            .collect();
        engine::join_blocks(&parts, nc)
    }
}

impl DFleet<f32> {
    /// Every hidden unit's output and gradient attribution on the training examples (the
    /// losses on `labels`; [`UnitTraces`]), in evaluation mode, in blocks of [`EVAL_ROWS`] (in parallel).
    pub fn traces(&self, m: usize, labels: &[u32]) -> UnitTraces {
        let (d, k) = (self.arch.dim, self.arch.classes);
        let st = &self.models[m];
        let starts: Vec<usize> = (0..self.n_train).step_by(EVAL_ROWS).collect();
        let blocks: Vec<UnitTraces> = starts
            .par_iter()
            .map(|&start| {
                flush_denormals();
                let end = (start + EVAL_ROWS).min(self.n_train);
                let x = &self.train_x[start * d..end * d];
                let mut ws = Work::default();
                ws.keep_dh = true;
                ws.forward(
                    &self.arch,
                    &st.params,
                    x,
                    end - start,
                    Mode::Eval(st.running.as_deref()),
                );
                // Each example's own loss: the gradient of ℓ_i, not of the batch mean.
                ws.loss_grad(self.loss, self.softmax, &labels[start..end], 1, k);
                ws.backward(&self.arch, &st.params, x);
                let mut act = Vec::new();
                let mut attr = Vec::new();
                for (l, &w) in self.arch.widths.iter().enumerate() {
                    let wx = ws.weighted_inputs(&self.arch, &st.params, l);
                    let rows = end - start;
                    for u in 0..w {
                        act.push((0..rows).map(|r| ws.a[l][r * w + u]).collect());
                        attr.push(
                            (0..rows)
                                .map(|r| (ws.dh[l][r * w + u] * wx[r * w + u]).abs())
                                .collect(),
                        );
                    }
                }
                UnitTraces { act, attr }
            })
            .collect();
        let units = self.arch.n_neurons();
        let mut out = UnitTraces {
            act: vec![Vec::with_capacity(self.n_train); units],
            attr: vec![Vec::with_capacity(self.n_train); units],
        };
        for b in blocks {
            for (u, (a, g)) in b.act.into_iter().zip(b.attr).enumerate() {
                out.act[u].extend(a);
                out.attr[u].extend(g);
            }
        }
        out
    }
}
