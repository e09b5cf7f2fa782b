//! Losses on the logits (SCIENCE.md §3): MSE against one-hot targets (PyTorch's `MSELoss`, mean over
//! all `n × p` entries) and cross-entropy (mean over examples).

pub use crate::model::argmax;

pub use crate::model::Loss;

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
            Loss::CrossEntropy => logsumexp(logits) - logits[y] as f64,
            Loss::StableMax => stablemax_row(logits.iter().map(|&x| x as f64), y, 0, |_, _| ()),
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
    pub fn row_grad_in_place(self, row: &mut [f32], label: u32, n: usize) -> f64 {
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
            Loss::CrossEntropy => {
                let lse = logsumexp(row);
                let loss = lse - row[y] as f64;
                let inv_n = 1.0 / n as f64;
                for (q, l) in row.iter_mut().enumerate() {
                    let s = ((*l as f64) - lse).exp();
                    *l = ((s - if q == y { 1.0 } else { 0.0 }) * inv_n) as f32;
                }
                loss
            }
            Loss::StableMax => {
                let x: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                stablemax_row(x.into_iter(), y, n, |q, g| row[q] = g as f32)
            }
        }
    }
}

/// StableMax's `s(x)`: `x + 1` for `x ≥ 0`, `1/(1 − x)` for `x < 0` (Prieto et al., "Grokking
/// at the edge of numerical stability", ICLR 2025, §4), and its derivative.
fn stablemax_s(x: f64) -> (f64, f64) {
    if x >= 0.0 {
        (x + 1.0, 1.0)
    } else {
        let r = 1.0 / (1.0 - x);
        (r, r * r)
    }
}

/// One row's StableMax cross-entropy `−ln(s(x_y) / Σ_j s(x_j))`, in f64 (as the authors'
/// code computes it), and, when `batch > 0`, each logit's gradient of the mean loss over
/// `batch` rows, `(s'(x_j)/Σ s − δ_jy s'(x_y)/s(x_y)) / batch`, handed to `grad(j, g)`. The
/// one implementation the three engines call.
pub fn stablemax_row(
    x: impl Iterator<Item = f64> + Clone,
    y: usize,
    batch: usize,
    mut grad: impl FnMut(usize, f64),
) -> f64 {
    let total: f64 = x.clone().map(|v| stablemax_s(v).0).sum();
    let (sy, dy) = x.clone().nth(y).map_or((f64::NAN, f64::NAN), stablemax_s);
    if batch > 0 {
        let inv = 1.0 / batch as f64;
        for (j, v) in x.enumerate() {
            let d = stablemax_s(v).1 / total - if j == y { dy / sy } else { 0.0 };
            grad(j, d * inv);
        }
    }
    total.ln() - sy.ln()
}

fn logsumexp(x: &[f32]) -> f64 {
    let m = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
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
            let l = stablemax_row(x.iter().copied(), y, 1, |j, v| g[j] = v);
            assert!(l > 0.0);
            for j in 0..x.len() {
                let h = 1e-6;
                let at = |d: f64| {
                    let mut z = x;
                    z[j] += d;
                    stablemax_row(z.iter().copied(), y, 0, |_, _| ())
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                assert!((fd - g[j]).abs() < 1e-7, "y {y} j {j}: {fd} vs {}", g[j]);
            }
        }
        // The f32 row version returns the same loss and writes the gradient of the mean.
        let mut r = [0.7f32, -1.3, 2.1];
        let l = Loss::StableMax.row_grad_in_place(&mut r, 2, 4);
        assert!((l - Loss::StableMax.row_loss(&[0.7, -1.3, 2.1], 2)).abs() < 1e-12);
        assert!(r.iter().sum::<f32>().abs() < 1.0, "{r:?}");
    }
}
