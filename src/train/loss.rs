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
        }
    }

    /// The divisor that turns a sum of row losses over `n` rows of `p` logits into the mean.
    pub fn norm(self, n: usize, p: usize) -> f64 {
        match self {
            Loss::Mse => (n * p) as f64,
            Loss::CrossEntropy => n as f64,
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
        }
    }
}

fn logsumexp(x: &[f32]) -> f64 {
    let m = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
}
