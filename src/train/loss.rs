//! Losses on the logits (SCIENCE.md §3): MSE against one-hot targets (PyTorch's `MSELoss`, mean over
//! all `n × p` entries) and cross-entropy (mean over examples).

pub use crate::model::argmax;

use crate::kernels::Real;
pub use crate::model::{Loss, Precision};

impl Loss {
    /// The loss of one row of logits, *unnormalised*: `Σ_q (l_q − t_q)²` for MSE,
    /// `logsumexp(l) − l_y` for cross-entropy. Divide the sum over rows by [`Loss::norm`].
    pub fn row_loss(self, logits: &[f32], label: u32) -> f64 {
        let y = label as usize;
        match self {
            Loss::Mse => logits
                .iter()
                .enumerate()
                .map(|(q, &l)| {
                    let d = l as f64 - if q == y { 1.0 } else { 0.0 };
                    d * d
                })
                .sum(),
            Loss::CrossEntropy | Loss::StableMax => row_stats::<f32, f64>(self, logits, y).loss,
        }
    }

    /// The divisor that turns a sum of row losses over `n` rows of `p` logits into the mean.
    pub fn norm(self, n: usize, p: usize) -> f64 {
        match self {
            Loss::Mse => (n * p) as f64,
            Loss::CrossEntropy | Loss::StableMax => n as f64,
        }
    }

    /// Replaces one row of logits by the gradient of the *mean* batch loss over `n` rows with
    /// respect to them, and returns the row's unnormalised loss.
    /// The softmax of cross-entropy and StableMax is computed in `softmax` (an f64 row is
    /// computed in f64 whatever `softmax` says).
    pub fn row_grad_in_place(
        self,
        row: &mut [f32],
        label: u32,
        n: usize,
        softmax: Precision,
    ) -> f64 {
        let y = label as usize;
        let p = row.len();
        match self {
            Loss::Mse => {
                let scale = 2.0 / (n * p) as f32;
                let ly = row[y];
                // Σ l² in 8 lanes (vectorizes), then correct the label's entry.
                let mut acc = [0.0f32; 8];
                let mut chunks = row.chunks_exact_mut(8);
                for c in &mut chunks {
                    for (a, l) in acc.iter_mut().zip(c.iter_mut()) {
                        *a += *l * *l;
                        *l *= scale;
                    }
                }
                let mut loss: f64 = acc.iter().map(|&a| a as f64).sum();
                for l in chunks.into_remainder() {
                    loss += (*l as f64) * (*l as f64);
                    *l *= scale;
                }
                let (ly, dy) = (ly as f64, ly as f64 - 1.0);
                row[y] = scale * (ly - 1.0) as f32;
                loss + dy * dy - ly * ly
            }
            Loss::CrossEntropy | Loss::StableMax => softmax_grad_in_place(self, softmax, row, y, n),
        }
    }
}

/// StableMax's `s(x)`: `x + 1` for `x ≥ 0`, `1/(1 − x)` for `x < 0` (Prieto et al., "Grokking
/// at the edge of numerical stability", ICLR 2025, §4), and its derivative.
fn stablemax_s<U: Real>(x: U) -> (U, U) {
    if x >= U::ZERO {
        (x + U::ONE, U::ONE)
    } else {
        let r = U::ONE / (U::ONE - x);
        (r, r * r)
    }
}

/// What a row of a softmax-family loss needs before its gradient, computed in `U`:
/// cross-entropy: `norm` = logsumexp(x); StableMax: `norm` = Σ s(x_j), `sy`, `dy` = s(x_y),
/// s'(x_y); `loss` the row's loss `norm − x_y`, or `ln Σ s − ln s(x_y)`.
struct RowStats<U> {
    norm: U,
    sy: U,
    dy: U,
    loss: f64,
}

fn up<T: Real, U: Real>(v: T) -> U {
    U::from_f64(v.to_f64())
}

fn row_stats<T: Real, U: Real>(loss: Loss, row: &[T], y: usize) -> RowStats<U> {
    let xy: U = row.get(y).map_or(U::from_f64(f64::NAN), |&v| up(v));
    match loss {
        Loss::StableMax => {
            let mut total = U::ZERO;
            for &v in row {
                total += stablemax_s(up::<T, U>(v)).0;
            }
            let (sy, dy) = stablemax_s(xy);
            RowStats {
                norm: total,
                sy,
                dy,
                loss: (total.ln() - sy.ln()).to_f64(),
            }
        }
        _ => {
            let m = row
                .iter()
                .fold(U::from_f64(f64::NEG_INFINITY), |a, &b| a.max(up(b)));
            let mut s = U::ZERO;
            for &v in row {
                s += (up::<T, U>(v) - m).exp();
            }
            let lse = m + s.ln();
            RowStats {
                norm: lse,
                sy: U::ZERO,
                dy: U::ZERO,
                loss: (lse - xy).to_f64(),
            }
        }
    }
}

/// Replaces a row by its gradient of the mean loss over `batch` rows: cross-entropy
/// `(e^{x_j − lse} − δ_jy) / batch`; StableMax `(s'(x_j)/Σ s − δ_jy s'(x_y)/s(x_y)) / batch`.
fn write_grad<T: Real, U: Real>(
    loss: Loss,
    st: &RowStats<U>,
    row: &mut [T],
    y: usize,
    batch: usize,
) {
    let inv = U::from_f64(1.0 / batch as f64);
    for (j, x) in row.iter_mut().enumerate() {
        let v: U = up(*x);
        let g = match loss {
            Loss::StableMax => {
                stablemax_s(v).1 / st.norm - if j == y { st.dy / st.sy } else { U::ZERO }
            }
            _ => (v - st.norm).exp() - if j == y { U::ONE } else { U::ZERO },
        };
        *x = T::from_f64((g * inv).to_f64());
    }
}

/// One row of cross-entropy or StableMax (`loss`; MSE has no softmax and is refused to the
/// caller's own code): replaces `row` by the gradient of the mean loss over `batch` rows and
/// returns the row's unnormalised loss. The softmax (logsumexp or Σ s, and the gradient) is
/// computed in f32 when `softmax` is [`Precision::F32`] and the row is f32, else in f64
/// (`train.softmax_precision`; docs/NUMERICS.md). The one implementation the three engines
/// and the evaluation call.
pub fn softmax_grad_in_place<T: Real>(
    loss: Loss,
    softmax: Precision,
    row: &mut [T],
    y: usize,
    batch: usize,
) -> f64 {
    debug_assert!(loss != Loss::Mse);
    if softmax == Precision::F32 && std::mem::size_of::<T>() == 4 {
        let st = row_stats::<T, f32>(loss, row, y);
        write_grad(loss, &st, row, y, batch);
        st.loss
    } else {
        let st = row_stats::<T, f64>(loss, row, y);
        write_grad(loss, &st, row, y, batch);
        st.loss
    }
}

/// One row's StableMax cross-entropy `−ln(s(x_y) / Σ_j s(x_j))` in f64, with its gradient
/// of the mean over `batch` rows in `grad` (tests and checks; training calls
/// [`softmax_grad_in_place`]).
pub fn stablemax_row(x: &[f64], y: usize, batch: usize, grad: &mut [f64]) -> f64 {
    grad.copy_from_slice(x);
    softmax_grad_in_place(Loss::StableMax, Precision::F64, grad, y, batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: logits (0, 1, −1), label 1: s = (1, 2, 1/2), loss ln 3.5 − ln 2; and the
    /// gradient against central differences, on both sides of 0.
    #[test]
    fn stablemax_by_hand_and_against_finite_differences() {
        let row = [0.0f32, 1.0, -1.0];
        let want = 3.5f64.ln() - 2f64.ln();
        assert!((Loss::StableMax.row_loss(&row, 1) - want).abs() < 1e-12);
        let x = [0.7f64, -1.3, 2.1, -0.2, 0.05];
        for y in 0..x.len() {
            let mut g = vec![0.0; x.len()];
            let l = stablemax_row(&x, y, 1, &mut g);
            assert!(l > 0.0);
            for j in 0..x.len() {
                let h = 1e-6;
                let at = |d: f64| {
                    let mut z = x;
                    z[j] += d;
                    stablemax_row(&z, y, 1, &mut [0.0; 5])
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                assert!((fd - g[j]).abs() < 1e-7, "y {y} j {j}: {fd} vs {}", g[j]);
            }
        }
        // The f32 row version returns the same loss and writes the gradient of the mean.
        let mut r = [0.7f32, -1.3, 2.1];
        let l = Loss::StableMax.row_grad_in_place(&mut r, 2, 4, Precision::F64);
        assert!((l - Loss::StableMax.row_loss(&[0.7, -1.3, 2.1], 2)).abs() < 1e-12);
        assert!(r.iter().sum::<f32>().abs() < 1.0, "{r:?}");
    }

    /// The softmax in f32 and in f64 on the same f32 row: cross-entropy and StableMax losses
    /// and gradients agree to f32 rounding, the f64 gradient sums to zero to f64 rounding and
    /// matches central differences of the f64 loss; an f64 row is computed in f64 whatever
    /// the option says.
    #[test]
    fn softmax_precision_f32_and_f64() {
        let x: Vec<f32> = (0..97)
            .map(|i| ((i * 37 % 97) as f32 / 9.7 - 5.0) * 3.1)
            .collect();
        for loss in [Loss::CrossEntropy, Loss::StableMax] {
            for y in [0usize, 13, 96] {
                let (mut a, mut b) = (x.clone(), x.clone());
                let la = softmax_grad_in_place(loss, Precision::F32, &mut a, y, 4);
                let lb = softmax_grad_in_place(loss, Precision::F64, &mut b, y, 4);
                assert!(
                    (la - lb).abs() < 1e-5 * lb.abs().max(1.0),
                    "{loss:?} {la} {lb}"
                );
                assert!(
                    a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-6),
                    "{loss:?}"
                );
                if loss == Loss::CrossEntropy {
                    assert!(a != b, "f32 and f64 round differently somewhere");
                    assert!(b.iter().map(|&v| v as f64).sum::<f64>().abs() < 1e-7);
                }
                // Central differences of the f64 loss (batch 4: the gradient of the mean).
                let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                let at = |j: usize, d: f64| {
                    let mut z = xd.clone();
                    z[j] += d;
                    softmax_grad_in_place(loss, Precision::F64, &mut z, y, 4)
                };
                for j in [0usize, y, 50] {
                    let fd = (at(j, 1e-6) - at(j, -1e-6)) / 2e-6 / 4.0;
                    assert!(
                        (fd - b[j] as f64).abs() < 1e-6,
                        "{loss:?} j {j}: {fd} vs {}",
                        b[j]
                    );
                }
                // An f64 row ignores F32.
                let (mut c, mut d) = (xd.clone(), xd.clone());
                let lc = softmax_grad_in_place(loss, Precision::F32, &mut c, y, 4);
                let ld = softmax_grad_in_place(loss, Precision::F64, &mut d, y, 4);
                assert_eq!((lc.to_bits(), &c), (ld.to_bits(), &d));
            }
        }
    }
}
