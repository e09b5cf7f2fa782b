//! Row-wise pieces of the passes: LayerNorm and its backward, the activations, small
//! vector helpers.

use crate::kernels::Real;
use crate::model::transformer::TActivation;
use crate::model::Activation;

/// LayerNorm's ε (PyTorch's default).
const LN_EPS: f64 = 1e-5;

pub(super) fn grow<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

pub(super) fn zero<T: Real>(v: &mut Vec<T>, n: usize) {
    grow(v, n);
    v[..n].fill(T::ZERO);
}

pub(super) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut s = T::ZERO;
    for (x, y) in a.iter().zip(b) {
        s += *x * *y;
    }
    s
}

pub(super) fn axpy<T: Real>(y: &mut [T], a: T, x: &[T]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * *xi;
    }
}

/// `out = γ (x − μ)/σ + β` per row of `d`, keeping μ and 1/σ.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm<T: Real>(
    x: &[T],
    rows: usize,
    d: usize,
    gamma: &[T],
    beta: &[T],
    out: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    let inv_d = T::from_f64(1.0 / d as f64);
    let eps = T::from_f64(LN_EPS);
    for r in 0..rows {
        let xr = &x[r * d..(r + 1) * d];
        let mut s = T::ZERO;
        for &v in xr {
            s += v;
        }
        let mu = s * inv_d;
        let mut var = T::ZERO;
        for &v in xr {
            var += (v - mu) * (v - mu);
        }
        let rs = T::ONE / (var * inv_d + eps).sqrt();
        mean[r] = mu;
        rstd[r] = rs;
        for (c, o) in out[r * d..(r + 1) * d].iter_mut().enumerate() {
            *o = gamma[c] * ((xr[c] - mu) * rs) + beta[c];
        }
    }
}

/// LayerNorm's backward: `dx += …`, `dgamma += dout ⊙ x̂`, `dbeta += dout`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_back<T: Real>(
    x: &[T],
    mean: &[T],
    rstd: &[T],
    rows: usize,
    d: usize,
    gamma: &[T],
    dout: &[T],
    dgb: &mut [T],
    dx: &mut [T],
) {
    let inv_d = T::from_f64(1.0 / d as f64);
    let (dgamma, dbeta) = dgb.split_at_mut(d);
    for r in 0..rows {
        let (xr, dr) = (&x[r * d..(r + 1) * d], &dout[r * d..(r + 1) * d]);
        let (mu, rs) = (mean[r], rstd[r]);
        let mut m1 = T::ZERO;
        let mut m2 = T::ZERO;
        for c in 0..d {
            let xh = (xr[c] - mu) * rs;
            let dxh = dr[c] * gamma[c];
            dgamma[c] += dr[c] * xh;
            dbeta[c] += dr[c];
            m1 += dxh;
            m2 += dxh * xh;
        }
        let (m1, m2) = (m1 * inv_d, m2 * inv_d);
        for (c, o) in dx[r * d..(r + 1) * d].iter_mut().enumerate() {
            let xh = (xr[c] - mu) * rs;
            *o += rs * (dr[c] * gamma[c] - m1 - xh * m2);
        }
    }
}

pub(super) fn activate<T: Real>(act: TActivation, x: T) -> T {
    Activation::from(act).at(x)
}

pub(super) fn activate_grad<T: Real>(act: TActivation, x: T) -> T {
    Activation::from(act).grad_at(x)
}

/// `dst[r] += Σ_rows src[r]` over `rows` rows of `n`.
pub(super) fn sum_rows<T: Real>(dst: &mut [T], src: &[T], rows: usize, n: usize) {
    for r in 0..rows {
        for (a, b) in dst[..n].iter_mut().zip(&src[r * n..(r + 1) * n]) {
            *a += *b;
        }
    }
}
