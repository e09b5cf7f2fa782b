//! The MLP engine's passes over one task `(model, row chunk)`: the hidden layer (with dropout
//! and BatchNorm sums), the output layer with the loss gradient, the input layers' backward,
//! and evaluation; with the per-task workspace they write into (SCIENCE.md §2, §3;
//! docs/NUMERICS.md).

use crate::data::Pair;
use crate::kernels::{matmul, Mat};
use crate::model::{Arch, RunningStats};
use crate::train::loss::{argmax, Loss, Precision};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Default)]
pub(super) struct Workspace {
    pub(super) h: Vec<f32>,
    pub(super) z: Vec<f32>,
    pub(super) y: Vec<f32>,
    pub(super) logits: Vec<f32>,
    pub(super) mask: Vec<u8>,
    pub(super) noise: Vec<u8>,
    pub(super) s1: Vec<f64>,
    pub(super) s2: Vec<f64>,
    pub(super) loss: f64,
    pub(super) preds: Vec<u32>,
    pub(super) row_loss: Vec<f64>,
}

pub(super) fn grow<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// Batch statistics of one model's BatchNorm, shared by its chunks.
#[derive(Default, Clone)]
pub(super) struct BnBatch {
    pub(super) mean: Vec<f32>,
    pub(super) var_unbiased: Vec<f32>,
    pub(super) invstd: Vec<f32>,
    pub(super) mean_dy: Vec<f32>,
    pub(super) mean_dyx: Vec<f32>,
}

/// The model's data for one training step.
#[derive(Clone, Copy)]
pub(super) struct TaskCtx<'a> {
    pub(super) arch: &'a Arch,
    pub(super) params: &'a [f32],
    pub(super) pairs: &'a [Pair],
    pub(super) rows: &'a [u32],
    pub(super) labels: &'a [u32],
    /// Offset of the chunk within the batch (for the dropout stream).
    pub(super) row0: usize,
    pub(super) batch_len: usize,
    pub(super) dropout: f32,
    pub(super) dropout_seed: u64,
    pub(super) step: u64,
    /// The training loss's softmax precision.
    pub(super) softmax: Precision,
}

pub(super) fn grow_with<T>(v: &mut Vec<T>, n: usize, f: impl Fn() -> T) {
    while v.len() < n {
        v.push(f());
    }
}

/// `n` rows cut into at most `c` contiguous, nearly equal, non-empty chunks.
pub(super) fn chunk_ranges(n: usize, c: usize) -> Vec<std::ops::Range<usize>> {
    let c = c.clamp(1, n.max(1));
    (0..c).map(|i| (i * n / c)..((i + 1) * n / c)).collect()
}

/// Pass 1: `h'` into `ws.h`, `z = φ(h')` into `ws.z`; with BatchNorm, the chunk's sums of
/// `z` and `z²` per neuron into `ws.s1`, `ws.s2`.
pub(super) fn hidden(tc: &TaskCtx, ws: &mut Workspace) {
    let n = tc.arch.width;
    let rows = tc.rows.len();
    grow(&mut ws.h, rows * n);
    grow(&mut ws.z, rows * n);
    let act = tc.arch.activation;
    tc.arch.gather(
        tc.params,
        tc.rows.iter().map(|&i| tc.pairs[i as usize]),
        &mut ws.h[..rows * n],
    );
    if tc.dropout > 0.0 {
        apply_dropout(tc, ws);
    }
    act.apply(&ws.h[..rows * n], &mut ws.z[..rows * n]);
    if tc.arch.batchnorm {
        ws.s1.clear();
        ws.s1.resize(n, 0.0);
        ws.s2.clear();
        ws.s2.resize(n, 0.0);
        for zr in ws.z[..rows * n].chunks_exact(n) {
            for ((s1, s2), &z) in ws.s1.iter_mut().zip(ws.s2.iter_mut()).zip(zr) {
                *s1 += z as f64;
                *s2 += (z as f64) * (z as f64);
            }
        }
    }
}

/// Inverted dropout on `ws.h`. The mask of batch row `j` of model `seed` at step `t` is drawn
/// from ChaCha8 stream `t`, word offset `j · ⌈N/2⌉`, 16 bits per neuron: it does not depend on
/// how the batch is chunked.
pub(super) fn apply_dropout(tc: &TaskCtx, ws: &mut Workspace) {
    let n = tc.arch.width;
    let rows = tc.rows.len();
    grow(&mut ws.mask, rows * n);
    grow(&mut ws.noise, 2 * n);
    let q = tc.dropout as f64;
    let threshold = (q * 65536.0).round() as u32;
    let scale = 1.0 / (1.0 - tc.dropout);
    let mut rng = ChaCha8Rng::seed_from_u64(tc.dropout_seed);
    rng.set_stream(tc.step);
    let words_per_row = n.div_ceil(2) as u128;
    for r in 0..rows {
        rng.set_word_pos((tc.row0 + r) as u128 * words_per_row);
        let noise = &mut ws.noise[..2 * n];
        rng.fill_bytes(noise);
        let h = &mut ws.h[r * n..(r + 1) * n];
        let mask = &mut ws.mask[r * n..(r + 1) * n];
        for ((h, m), bytes) in h.iter_mut().zip(mask.iter_mut()).zip(noise.chunks_exact(2)) {
            let u = u16::from_le_bytes([bytes[0], bytes[1]]) as u32;
            let keep = u >= threshold;
            *m = keep as u8;
            *h = if keep { *h * scale } else { 0.0 };
        }
    }
}

/// Combines the chunks' sums into the batch mean and variance of `z`.
pub(super) fn batch_stats(arch: &Arch, chunks: &[Workspace], n_batch: usize) -> BnBatch {
    let n = arch.width;
    let mut b = BnBatch {
        mean: vec![0.0; n],
        var_unbiased: vec![0.0; n],
        invstd: vec![0.0; n],
        ..Default::default()
    };
    let nb = n_batch as f64;
    for k in 0..n {
        let s1: f64 = chunks.iter().map(|w| w.s1[k]).sum();
        let s2: f64 = chunks.iter().map(|w| w.s2[k]).sum();
        let mean = s1 / nb;
        let var = (s2 / nb - mean * mean).max(0.0);
        b.mean[k] = mean as f32;
        b.invstd[k] = (1.0 / (var + arch.bn_eps as f64).sqrt()) as f32;
        b.var_unbiased[k] = if n_batch > 1 {
            (var * nb / (nb - 1.0)) as f32
        } else {
            var as f32
        };
    }
    b
}

/// Combines the chunks' `Σ dy` and `Σ dy·x̂` (left in `s1`, `s2` by pass 2) into means.
pub(super) fn backward_stats(b: &mut BnBatch, chunks: &[Workspace], n_batch: usize) {
    let n = b.mean.len();
    let nb = n_batch as f64;
    b.mean_dy = (0..n)
        .map(|k| (chunks.iter().map(|w| w.s1[k]).sum::<f64>() / nb) as f32)
        .collect();
    b.mean_dyx = (0..n)
        .map(|k| (chunks.iter().map(|w| w.s2[k]).sum::<f64>() / nb) as f32)
        .collect();
}

/// Pass 2: (BN) normalise; logits; loss and its gradient; `dW` (added to `grad` with
/// `accumulate`), and `dy` into the buffer
/// that held `y`; (BN) `dγ`, `dβ` and the chunk's `Σ dy`, `Σ dy·x̂`.
pub(super) fn output_and_backward(
    tc: &TaskCtx,
    loss: Loss,
    ws: &mut Workspace,
    grad: &mut [f32],
    bn: Option<&BnBatch>,
    accumulate: bool,
) {
    let (p, n) = (tc.arch.p, tc.arch.width);
    let rows = tc.rows.len();
    grow(&mut ws.logits, rows * p);
    let w = &tc.params[tc.arch.w_range()];
    if let Some(bn) = bn {
        grow(&mut ws.y, rows * n);
        let gamma = &tc.params[tc.arch.gamma_range()];
        let beta = &tc.params[tc.arch.beta_range()];
        for (zr, yr) in ws.z[..rows * n]
            .chunks_exact_mut(n)
            .zip(ws.y[..rows * n].chunks_exact_mut(n))
        {
            for k in 0..n {
                let xh = (zr[k] - bn.mean[k]) * bn.invstd[k];
                zr[k] = xh;
                yr[k] = gamma[k] * xh + beta[k];
            }
        }
    }
    let y: &mut Vec<f32> = if bn.is_some() { &mut ws.y } else { &mut ws.z };
    let logits = &mut ws.logits[..rows * p];
    matmul(
        logits,
        rows,
        p,
        n,
        Mat::rows(&y[..rows * n], n),
        Mat::transposed(w, n),
        false,
    );
    let mut total = 0.0;
    for (r, &i) in tc.rows.iter().enumerate() {
        let label = tc.labels[i as usize];
        let row = &mut logits[r * p..(r + 1) * p];
        total += loss.row_grad_in_place(row, label, tc.batch_len, tc.softmax);
    }
    ws.loss = total;
    let gw = &mut grad[tc.arch.w_range()];
    matmul(
        gw,
        p,
        n,
        rows,
        Mat::transposed(logits, p),
        Mat::rows(&y[..rows * n], n),
        accumulate,
    );
    matmul(
        &mut y[..rows * n],
        rows,
        n,
        p,
        Mat::rows(logits, p),
        Mat::rows(w, n),
        false,
    );
    if bn.is_some() {
        ws.s1.clear();
        ws.s1.resize(n, 0.0);
        ws.s2.clear();
        ws.s2.resize(n, 0.0);
        for (dyr, xr) in ws.y[..rows * n]
            .chunks_exact(n)
            .zip(ws.z[..rows * n].chunks_exact(n))
        {
            for k in 0..n {
                ws.s1[k] += dyr[k] as f64;
                ws.s2[k] += (dyr[k] * xr[k]) as f64;
            }
        }
        let (g_start, b_start) = (tc.arch.gamma_range().start, tc.arch.beta_range().start);
        for k in 0..n {
            grad[g_start + k] = ws.s2[k] as f32;
            grad[b_start + k] = ws.s1[k] as f32;
        }
    }
}

/// Pass 3: (BN) `dz` from `dy`; `dh`; the scatter-adds into `dUᵀ` and `dVᵀ` (added to what
/// `grad` holds with `accumulate`).
pub(super) fn input_backward(
    tc: &TaskCtx,
    ws: &mut Workspace,
    grad: &mut [f32],
    bn: Option<&BnBatch>,
    accumulate: bool,
) {
    let n = tc.arch.width;
    let rows = tc.rows.len();
    let act = tc.arch.activation;
    let dz: &mut [f32] = if let Some(bn) = bn {
        let gamma = &tc.params[tc.arch.gamma_range()];
        let coef: Vec<f32> = (0..n).map(|k| gamma[k] * bn.invstd[k]).collect();
        for (dyr, xr) in ws.y[..rows * n]
            .chunks_exact_mut(n)
            .zip(ws.z[..rows * n].chunks_exact(n))
        {
            for k in 0..n {
                dyr[k] = coef[k] * (dyr[k] - bn.mean_dy[k] - xr[k] * bn.mean_dyx[k]);
            }
        }
        &mut ws.y[..rows * n]
    } else {
        &mut ws.z[..rows * n]
    };
    act.mul_derivative(dz, &ws.h[..rows * n]);
    if tc.dropout > 0.0 {
        let scale = 1.0 / (1.0 - tc.dropout);
        for (d, &m) in dz.iter_mut().zip(&ws.mask[..rows * n]) {
            *d = if m != 0 { *d * scale } else { 0.0 };
        }
    }
    let (ur, vr) = (tc.arch.u_range(), tc.arch.v_range());
    if !accumulate {
        grad[ur.start..vr.end].fill(0.0);
    }
    for (r, &i) in tc.rows.iter().enumerate() {
        let (a, b) = tc.pairs[i as usize];
        let dh = &dz[r * n..(r + 1) * n];
        let ga = ur.start + a as usize * n;
        for (g, &d) in grad[ga..ga + n].iter_mut().zip(dh) {
            *g += d;
        }
        let gb = vr.start + b as usize * n;
        for (g, &d) in grad[gb..gb + n].iter_mut().zip(dh) {
            *g += d;
        }
    }
}

/// Forward in evaluation mode for one chunk of pairs; predictions and row losses into `ws`.
pub(super) fn eval_chunk(
    arch: &Arch,
    loss: Loss,
    params: &[f32],
    running: Option<&RunningStats>,
    pairs: &[Pair],
    labels: &[u32],
    ws: &mut Workspace,
) {
    let (p, n) = (arch.p, arch.width);
    let rows = pairs.len();
    grow(&mut ws.z, rows * n);
    grow(&mut ws.logits, rows * p);
    arch.eval_hidden(params, running, pairs, &mut ws.z);
    arch.output(params, &ws.z, rows, &mut ws.logits);
    ws.preds.clear();
    ws.row_loss.clear();
    for (row, &label) in ws.logits[..rows * p].chunks_exact(p).zip(labels) {
        ws.preds.push(argmax(row));
        ws.row_loss.push(loss.row_loss(row, label));
    }
}
