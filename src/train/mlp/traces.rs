//! The MLP fleet's unit traces for the scores of memorizing units (SCIENCE.md §9): every
//! neuron's output and gradient attribution on the training pairs.

use super::{Fleet, EVAL_ROWS};
use crate::kernels::{flush_denormals, matmul, Mat};
use crate::train::engine::UnitTraces;
use rayon::prelude::*;

impl Fleet {
    /// Every neuron's output `z_k = φ(h_k)` and gradient attribution `|δ_k h_k|` on the
    /// training pairs (the losses on `labels`), in evaluation mode (`h_k = U_k[a] + V_k[b]` is `θ_k · x`: the first
    /// layer has no bias; `δ_k = ∂ℓ_i/∂h_k` through BatchNorm's running statistics).
    pub fn traces(&self, m: usize, labels: &[u32]) -> UnitTraces {
        let (arch, st) = (&self.arch, &self.models[m]);
        let (p, n) = (arch.p, arch.width);
        let scale: Vec<f32> = match &st.running {
            Some(rs) => {
                let gamma = &st.params[arch.gamma_range()];
                (0..n)
                    .map(|k| gamma[k] / (rs.var[k] + arch.bn_eps).sqrt())
                    .collect()
            }
            None => vec![1.0; n],
        };
        let shift: Vec<f32> = match &st.running {
            Some(rs) => {
                let beta = &st.params[arch.beta_range()];
                (0..n).map(|k| beta[k] - scale[k] * rs.mean[k]).collect()
            }
            None => vec![0.0; n],
        };
        let blocks: Vec<(Vec<f32>, Vec<f32>, usize)> = self
            .train_pairs
            .par_chunks(EVAL_ROWS)
            .enumerate()
            .map(|(b, pairs)| {
                flush_denormals();
                let rows = pairs.len();
                let mut h = vec![0f32; rows * n];
                arch.gather(&st.params, pairs.iter().copied(), &mut h);
                let z: Vec<f32> = h.iter().map(|&x| arch.activation.f(x)).collect();
                let mut y = z.clone();
                if st.running.is_some() {
                    for row in y.chunks_exact_mut(n) {
                        for ((v, &sc), &sh) in row.iter_mut().zip(&scale).zip(&shift) {
                            *v = *v * sc + sh;
                        }
                    }
                }
                let mut logits = vec![0f32; rows * p];
                arch.output(&st.params, &y, rows, &mut logits);
                let labels = &labels[b * EVAL_ROWS..b * EVAL_ROWS + rows];
                for (row, &l) in logits.chunks_exact_mut(p).zip(labels) {
                    self.loss.row_grad_in_place(row, l, 1, self.softmax);
                }
                let mut dz = vec![0f32; rows * n];
                matmul(
                    &mut dz,
                    rows,
                    n,
                    p,
                    Mat::rows(&logits, p),
                    Mat::rows(&st.params[arch.w_range()], n),
                    false,
                );
                let attr: Vec<f32> = dz
                    .iter()
                    .zip(&h)
                    .enumerate()
                    .map(|(i, (&d, &x))| (d * scale[i % n] * arch.activation.df(x) * x).abs())
                    .collect();
                (z, attr, rows)
            })
            .collect();
        let mut out = UnitTraces {
            act: vec![Vec::with_capacity(self.n_train); n],
            attr: vec![Vec::with_capacity(self.n_train); n],
        };
        for (z, attr, rows) in blocks {
            for r in 0..rows {
                for k in 0..n {
                    out.act[k].push(z[r * n + k]);
                    out.attr[k].push(attr[r * n + k]);
                }
            }
        }
        out
    }
}
