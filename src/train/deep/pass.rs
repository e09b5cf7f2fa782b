//! The deep MLP's forward and backward passes on one model's rows ([`Work`]), generic over the
//! float type (`f32` to train, `f64` for the gradient checks), over [`matmul`].
//!
//! Hidden layer `l` on rows `X_l` (`n × fan_in`): `H = X_l Wᵀ + b`, `Z = norm(H)` (BatchNorm
//! over the rows, LayerNorm over the units, or `Z = H`), `A = φ(Z) ⊙ mask/(1 − q)`, and
//! `X_{l+1} = A`; the read-out gives `logits = X_L W_outᵀ + b_out`. The backward pass runs
//! the same layers in reverse: `dW = dHᵀ X_l`, `db = Σ_rows dH`, `dX_l = dH W`.

use crate::kernels::{matmul, Mat, Real};
use crate::model::deep::{DeepArch, LayerSlots, Norm};
use crate::train::loss::{Loss, Precision};
use crate::train::tpass::ops::{layer_norm, layer_norm_back};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// BatchNorm's running statistics of one hidden layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Running<T> {
    pub mean: Vec<T>,
    pub var: Vec<T>,
}

/// How a pass treats BatchNorm and dropout.
#[derive(Clone, Copy)]
pub enum Mode<'a, T> {
    /// Batch statistics; dropout with rate `q` from `(seed, step)` when `q > 0`.
    Train { q: f32, seed: u64, step: u64 },
    /// Running statistics (BatchNorm's, per hidden layer); no dropout.
    Eval(Option<&'a [Running<T>]>),
}

/// One model's activations on a set of rows, and its parameter gradient.
#[derive(Default)]
pub struct Work<T> {
    /// Per hidden layer: `H` (before the norm).
    h: Vec<Vec<T>>,
    /// Per hidden layer with a norm: the normalised `Ĥ` (BatchNorm) and `Z`.
    xhat: Vec<Vec<T>>,
    z: Vec<Vec<T>>,
    /// Per hidden layer: the output `A`.
    pub a: Vec<Vec<T>>,
    /// Per hidden layer with dropout: `mask/(1 − q)` or 0.
    mask: Vec<Vec<T>>,
    /// Per hidden layer with a norm: mean and 1/σ (per unit for BatchNorm, per row for
    /// LayerNorm).
    mean: Vec<Vec<T>>,
    rstd: Vec<Vec<T>>,
    /// `n × classes`; after [`Work::loss_grad`], their gradient.
    pub logits: Vec<T>,
    pub grad: Vec<T>,
    da: Vec<T>,
    dz: Vec<T>,
    rows: usize,
    dropout: bool,
    /// The batch statistics of the last training pass (per hidden layer with BatchNorm):
    /// mean and biased variance.
    pub batch_stats: Vec<(Vec<T>, Vec<T>)>,
    /// BatchNorm ran on running statistics (an affine map per unit in the backward pass).
    running_bn: bool,
    /// Keep each hidden layer's pre-activation gradient `dH` in [`Work::dh`].
    pub keep_dh: bool,
    pub dh: Vec<Vec<T>>,
}

fn sized<T: Real>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::ZERO);
    }
    &mut v[..n]
}

fn slot<'a, T>(p: &'a [T], r: &Option<std::ops::Range<usize>>) -> Option<&'a [T]> {
    r.clone().map(|r| &p[r])
}

/// `dst (n × out) = x (n × in) · Wᵀ + b`.
fn linear<T: Real>(s: &LayerSlots, p: &[T], x: &[T], n: usize, dst: &mut [T]) {
    let w = &p[s.weight.clone()];
    let (fi, fo) = (s.fan_in, s.fan_out);
    matmul(
        dst,
        n,
        fo,
        fi,
        Mat::rows(&x[..n * fi], fi),
        Mat::transposed(w, fi),
        false,
    );
    if let Some(b) = slot(p, &s.bias) {
        for row in dst.chunks_exact_mut(fo) {
            for (y, &c) in row.iter_mut().zip(b) {
                *y += c;
            }
        }
    }
}

impl<T: Real> Work<T> {
    /// The forward pass of the model `p` on `n` rows `x` (`n × dim`). With BatchNorm in
    /// training mode the batch statistics are kept in [`Work::batch_stats`].
    pub fn forward(&mut self, arch: &DeepArch, p: &[T], x: &[T], n: usize, mode: Mode<T>) {
        self.forward_from(arch, p, x, n, mode, 0);
    }

    /// The forward pass from layer `first` on (`first = depth`: the read-out alone), `x` being
    /// that layer's input (`n × fan_in`): the layers before it are not computed (their
    /// buffers are left as they are). Without dropout the values are those of
    /// [`Work::forward`] to the bit.
    pub fn forward_from(
        &mut self,
        arch: &DeepArch,
        p: &[T],
        x: &[T],
        n: usize,
        mode: Mode<T>,
        first: usize,
    ) {
        let slots = arch.slots();
        let depth = arch.depth();
        for v in [
            &mut self.h,
            &mut self.xhat,
            &mut self.z,
            &mut self.a,
            &mut self.mask,
            &mut self.mean,
            &mut self.rstd,
        ] {
            v.resize_with(depth, Vec::new);
        }
        self.rows = n;
        self.batch_stats.clear();
        self.running_bn = matches!(mode, Mode::Eval(Some(_)));
        let (q, mut rng) = match mode {
            Mode::Train { q, seed, step } if q > 0.0 => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(step);
                (q, Some(rng))
            }
            _ => (0.0, None),
        };
        self.dropout = rng.is_some();
        for (l, s) in slots[..depth].iter().enumerate().skip(first) {
            let w = s.fan_out;
            let input: &[T] = if l == first { x } else { &self.a[l - 1] };
            let h = sized(&mut self.h[l], n * w);
            linear(s, p, input, n, h);
            let h = &self.h[l][..n * w];
            // Z: the norm's output, or H itself.
            let z: &[T] = match arch.norm {
                Norm::None => h,
                Norm::Layernorm => {
                    let (g, b) = (
                        slot(p, &s.gamma).unwrap_or(&[]),
                        slot(p, &s.beta).unwrap_or(&[]),
                    );
                    let z = sized(&mut self.z[l], n * w);
                    let mean = sized(&mut self.mean[l], n);
                    let rstd = sized(&mut self.rstd[l], n);
                    layer_norm(h, n, w, g, b, z, mean, rstd);
                    &self.z[l][..n * w]
                }
                Norm::Batchnorm => {
                    let (g, b) = (
                        slot(p, &s.gamma).unwrap_or(&[]),
                        slot(p, &s.beta).unwrap_or(&[]),
                    );
                    let eps = T::from_f32(arch.bn_eps);
                    let (mean, var) = match mode {
                        Mode::Eval(Some(run)) => (run[l].mean.clone(), run[l].var.clone()),
                        _ => {
                            let (m, v) = column_stats(h, n, w);
                            self.batch_stats.push((m.clone(), v.clone()));
                            (m, v)
                        }
                    };
                    let rstd: Vec<T> = var.iter().map(|&v| T::ONE / (v + eps).sqrt()).collect();
                    let xhat = sized(&mut self.xhat[l], n * w);
                    let z = sized(&mut self.z[l], n * w);
                    for ((hr, xr), zr) in h
                        .chunks_exact(w)
                        .zip(xhat.chunks_exact_mut(w))
                        .zip(z.chunks_exact_mut(w))
                    {
                        for c in 0..w {
                            let xh = (hr[c] - mean[c]) * rstd[c];
                            xr[c] = xh;
                            zr[c] = g[c] * xh + b[c];
                        }
                    }
                    self.mean[l] = mean;
                    self.rstd[l] = rstd;
                    &self.z[l][..n * w]
                }
            };
            let a = sized(&mut self.a[l], n * w);
            for (o, &v) in a.iter_mut().zip(z) {
                *o = arch.activation.at(v);
            }
            if let Some(rng) = rng.as_mut() {
                let threshold = (q as f64 * u32::MAX as f64) as u32;
                let scale = T::from_f32(1.0 / (1.0 - q));
                let mask = sized(&mut self.mask[l], n * w);
                for (m, o) in mask.iter_mut().zip(a.iter_mut()) {
                    *m = if rng.next_u32() >= threshold {
                        scale
                    } else {
                        T::ZERO
                    };
                    *o *= *m;
                }
            }
        }
        let out = &slots[depth];
        let input: &[T] = if first >= depth {
            x
        } else {
            &self.a[depth - 1]
        };
        let logits = sized(&mut self.logits, n * arch.classes);
        linear(out, p, input, n, logits);
    }

    /// Replaces the logits by the gradient of the mean loss over `batch` rows (of which these
    /// are `labels.len()`) and returns their summed unnormalised loss.
    pub fn loss_grad(
        &mut self,
        loss: Loss,
        softmax: Precision,
        labels: &[u32],
        batch: usize,
        classes: usize,
    ) -> f64 {
        let mut total = 0.0;
        for (row, &y) in self.logits[..labels.len() * classes]
            .chunks_exact_mut(classes)
            .zip(labels)
        {
            total += row_grad(loss, softmax, row, y as usize, batch);
        }
        total
    }

    /// The backward pass after [`Work::forward`] and [`Work::loss_grad`] on the same rows:
    /// the parameter gradient into [`Work::grad`].
    pub fn backward(&mut self, arch: &DeepArch, p: &[T], x: &[T]) {
        let n = self.rows;
        let slots = arch.slots();
        let depth = arch.depth();
        // Every entry of the gradient is written below (weights by assignment; biases and
        // norm parameters are zeroed where they are summed).
        let grad = sized(&mut self.grad, arch.n_params());
        // dlogits is in self.logits; the read-out first.
        let out = &slots[depth];
        let dlog = &self.logits[..n * out.fan_out];
        weight_grads(out, dlog, &self.a[depth - 1], n, grad);
        let da = sized(&mut self.da, n * out.fan_in);
        input_grad(out, p, dlog, n, da);
        // The incoming gradient of each layer's output is in `da`; `dz` is the other buffer.
        for l in (0..depth).rev() {
            let s = &slots[l];
            let w = s.fan_out;
            let dz = &mut self.da[..n * w];
            if self.dropout {
                for (d, &m) in dz.iter_mut().zip(&self.mask[l][..n * w]) {
                    *d *= m;
                }
            }
            let z: &[T] = match arch.norm {
                Norm::None => &self.h[l][..n * w],
                _ => &self.z[l][..n * w],
            };
            for (d, &v) in dz.iter_mut().zip(z) {
                *d *= arch.activation.grad_at(v);
            }
            // `da` now holds dZ; dH goes into `da` as well.
            match arch.norm {
                Norm::None => {}
                Norm::Layernorm => {
                    let (gr, br) = (
                        s.gamma.clone().unwrap_or(0..0),
                        s.beta.clone().unwrap_or(0..0),
                    );
                    let dh = sized(&mut self.dz, n * w);
                    dh.fill(T::ZERO);
                    let dgb = &mut grad[gr.start..br.end];
                    dgb.fill(T::ZERO);
                    layer_norm_back(
                        &self.h[l][..n * w],
                        &self.mean[l],
                        &self.rstd[l],
                        n,
                        w,
                        &p[gr.clone()],
                        &self.da[..n * w],
                        dgb,
                        dh,
                    );
                    std::mem::swap(&mut self.da, &mut self.dz);
                }
                Norm::Batchnorm => {
                    let (gr, br) = (
                        s.gamma.clone().unwrap_or(0..0),
                        s.beta.clone().unwrap_or(0..0),
                    );
                    let g = &p[gr.clone()];
                    let xhat = &self.xhat[l][..n * w];
                    let dzl = &self.da[..n * w];
                    let mut s1 = vec![T::ZERO; w];
                    let mut s2 = vec![T::ZERO; w];
                    for (dr, xr) in dzl.chunks_exact(w).zip(xhat.chunks_exact(w)) {
                        for c in 0..w {
                            s1[c] += dr[c];
                            s2[c] += dr[c] * xr[c];
                        }
                    }
                    grad[gr.clone()].copy_from_slice(&s2);
                    grad[br].copy_from_slice(&s1);
                    let inv_n = T::from_f64(1.0 / n as f64);
                    let running = self.running_bn;
                    let rstd = &self.rstd[l];
                    let dh = sized(&mut self.dz, n * w);
                    for ((o, dr), xr) in dh
                        .chunks_exact_mut(w)
                        .zip(dzl.chunks_exact(w))
                        .zip(xhat.chunks_exact(w))
                    {
                        for c in 0..w {
                            o[c] = if running {
                                // Running statistics: Z = γ (H − mean)·rstd + β per unit.
                                g[c] * rstd[c] * dr[c]
                            } else {
                                g[c] * rstd[c] * (dr[c] - inv_n * (s1[c] + xr[c] * s2[c]))
                            };
                        }
                    }
                    std::mem::swap(&mut self.da, &mut self.dz);
                }
            }
            let input: &[T] = if l == 0 { x } else { &self.a[l - 1] };
            let tail = Tail {
                keep: self.keep_dh.then_some(&mut self.dh),
                da: &mut self.da,
                dz: &mut self.dz,
                rows: n,
            };
            tail.finish(s, l, p, input, grad);
        }
    }
}

/// The buffers the end of a layer's backward pass works on.
struct Tail<'a, T> {
    keep: Option<&'a mut Vec<Vec<T>>>,
    da: &'a mut Vec<T>,
    dz: &'a mut Vec<T>,
    rows: usize,
}

impl<T: Real> Tail<'_, T> {
    /// With `dH` of layer `l` in `da`: keeps it if asked, the layer's weight gradients, and
    /// the gradient of its input into `da`.
    fn finish(self, s: &LayerSlots, l: usize, p: &[T], input: &[T], grad: &mut [T]) {
        let (n, w) = (self.rows, s.fan_out);
        if let Some(keep) = self.keep {
            if keep.len() <= l {
                keep.resize_with(l + 1, Vec::new);
            }
            keep[l].clear();
            keep[l].extend_from_slice(&self.da[..n * w]);
        }
        weight_grads(s, &self.da[..n * w], input, n, grad);
        if l > 0 {
            let dx = sized(self.dz, n * s.fan_in);
            input_grad(s, p, &self.da[..n * w], n, dx);
            std::mem::swap(self.da, self.dz);
        }
    }
}

impl<T: Real> Work<T> {
    /// Each hidden layer's pre-activation `H` minus its bias, `θ_k · x` per row and unit.
    pub fn weighted_inputs(&self, arch: &DeepArch, p: &[T], l: usize) -> Vec<T> {
        let (n, w) = (self.rows, arch.widths[l]);
        let slots = arch.slots();
        let mut out = self.h[l][..n * w].to_vec();
        if let Some(b) = slot(p, &slots[l].bias) {
            for row in out.chunks_exact_mut(w) {
                for (v, &c) in row.iter_mut().zip(b) {
                    *v -= c;
                }
            }
        }
        out
    }
}

/// `dW = dYᵀ X`, `db = Σ_rows dY` into `grad`.
fn weight_grads<T: Real>(s: &LayerSlots, dy: &[T], x: &[T], n: usize, grad: &mut [T]) {
    let (fi, fo) = (s.fan_in, s.fan_out);
    matmul(
        &mut grad[s.weight.clone()],
        fo,
        fi,
        n,
        Mat::transposed(dy, fo),
        Mat::rows(&x[..n * fi], fi),
        false,
    );
    if let Some(b) = s.bias.clone() {
        let db = &mut grad[b];
        db.fill(T::ZERO);
        for row in dy.chunks_exact(fo) {
            for (d, &v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
    }
}

/// `dX = dY W` (`n × fan_in`).
fn input_grad<T: Real>(s: &LayerSlots, p: &[T], dy: &[T], n: usize, dx: &mut [T]) {
    let (fi, fo) = (s.fan_in, s.fan_out);
    matmul(
        dx,
        n,
        fi,
        fo,
        Mat::rows(dy, fo),
        Mat::rows(&p[s.weight.clone()], fi),
        false,
    );
}

/// Per-column mean and biased variance of `n × w` rows (two passes, in `T`).
fn column_stats<T: Real>(h: &[T], n: usize, w: usize) -> (Vec<T>, Vec<T>) {
    let inv_n = T::from_f64(1.0 / n as f64);
    let mut mean = vec![T::ZERO; w];
    for row in h.chunks_exact(w) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m *= inv_n);
    let mut var = vec![T::ZERO; w];
    for row in h.chunks_exact(w) {
        for c in 0..w {
            let d = row[c] - mean[c];
            var[c] += d * d;
        }
    }
    var.iter_mut().for_each(|v| *v *= inv_n);
    (mean, var)
}

/// One row's loss (unnormalised, in f64) and, in place, its logits' gradient of the mean loss
/// over `batch` rows (as `Loss::row_grad_in_place`, in `T`).
fn row_grad<T: Real>(loss: Loss, softmax: Precision, row: &mut [T], y: usize, batch: usize) -> f64 {
    let k = row.len();
    match loss {
        Loss::Mse => {
            let scale = T::from_f64(2.0 / (batch * k) as f64);
            let mut total = 0.0;
            for (q, l) in row.iter_mut().enumerate() {
                let t = if q == y { T::ONE } else { T::ZERO };
                let d = *l - t;
                total += d.to_f64() * d.to_f64();
                *l = scale * d;
            }
            total
        }
        Loss::CrossEntropy | Loss::StableMax => {
            crate::train::loss::softmax_grad_in_place(loss, softmax, row, y, batch)
        }
    }
}
