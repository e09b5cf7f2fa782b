//! AdamW with PyTorch's semantics (SCIENCE.md §3): decoupled decay `θ ← θ(1 − lr·wd)`, then the Adam
//! step with bias correction, computed as `torch.optim.AdamW` does.

use crate::kernels::Real;
pub use crate::model::PerpGrad;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWHyper {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// ⊥Grad: what is removed from the gradient before the step ([`PerpGrad`]).
    #[serde(default)]
    pub perp: PerpGrad,
}

impl PerpGrad {
    /// Projects `grad` of each tensor `ranges` of `params` (a tensor of zero weights keeps
    /// its gradient: there is no direction to remove). Sums in f64.
    pub fn apply<T: Real>(
        self,
        params: &[T],
        grad: &mut [T],
        ranges: impl Iterator<Item = std::ops::Range<usize>>,
    ) {
        if self == PerpGrad::None {
            return;
        }
        for r in ranges {
            let (w, g) = (&params[r.clone()], &mut grad[r]);
            let (mut wg, mut ww, mut gg) = (0.0f64, 0.0f64, 0.0f64);
            for (&a, &b) in w.iter().zip(g.iter()) {
                let (a, b) = (a.to_f64(), b.to_f64());
                wg += a * b;
                ww += a * a;
                gg += b * b;
            }
            if ww <= 0.0 || !ww.is_finite() {
                continue;
            }
            let c = wg / ww;
            let mut oo = 0.0f64;
            for (&a, b) in w.iter().zip(g.iter_mut()) {
                let o = b.to_f64() - c * a.to_f64();
                oo += o * o;
                *b = T::from_f64(o);
            }
            if self == PerpGrad::ProjectKeepNorm && oo > 0.0 {
                let k = T::from_f64((gg / oo).sqrt());
                for b in g.iter_mut() {
                    *b *= k;
                }
            }
        }
    }
}

/// First and second moments plus the step counter (in the engine's float type).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWState<T = f32> {
    pub m: Vec<T>,
    pub v: Vec<T>,
    pub t: u64,
}

impl<T: Real> AdamWState<T> {
    pub fn new(n: usize) -> AdamWState<T> {
        AdamWState {
            m: vec![T::ZERO; n],
            v: vec![T::ZERO; n],
            t: 0,
        }
    }

    /// One AdamW step on `params` with gradient `grad`.
    pub fn step(&mut self, h: &AdamWHyper, params: &mut [T], grad: &[T]) {
        assert_eq!(params.len(), grad.len());
        assert_eq!(params.len(), self.m.len());
        self.t += 1;
        let t = self.t as i32;
        let bc1 = 1.0 - h.beta1.powi(t);
        let bc2 = 1.0 - h.beta2.powi(t);
        let step_size = T::from_f64(h.lr / bc1);
        let bc2_sqrt = T::from_f64(bc2.sqrt());
        let decay = T::from_f64(1.0 - h.lr * h.weight_decay);
        let (b1, b2, eps) = (
            T::from_f64(h.beta1),
            T::from_f64(h.beta2),
            T::from_f64(h.eps),
        );
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            *p *= decay;
            *m = b1 * *m + (T::ONE - b1) * g;
            *v = b2 * *v + (T::ONE - b2) * g * g;
            let denom = v.sqrt() / bc2_sqrt + eps;
            *p -= step_size * *m / denom;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: θ = (1, 0, 2 | 3, 4), g = (1, 1, 1 | 0, 5) in two tensors. First: θ·g = 3,
    /// θ·θ = 5, g⊥ = g − 0.6 θ = (0.4, 1, −0.2). Second: θ·g = 20, θ·θ = 25,
    /// g⊥ = g − 0.8 θ = (−2.4, 1.8). A zero tensor keeps its gradient.
    #[test]
    fn perp_grad_by_hand() {
        let w = [1.0f64, 0.0, 2.0, 3.0, 4.0, 0.0, 0.0];
        let g0 = [1.0f64, 1.0, 1.0, 0.0, 5.0, 7.0, -1.0];
        let ranges = || [0..3, 3..5, 5..7].into_iter();
        let mut g = g0;
        PerpGrad::Project.apply(&w, &mut g, ranges());
        let want = [0.4, 1.0, -0.2, -2.4, 1.8, 7.0, -1.0];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{g:?}");
        }
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        assert!(dot(&w[..3], &g[..3]).abs() < 1e-12 && dot(&w[3..5], &g[3..5]).abs() < 1e-12);
        let mut k = g0;
        PerpGrad::ProjectKeepNorm.apply(&w, &mut k, ranges());
        let n = |v: &[f64]| dot(v, v).sqrt();
        assert!((n(&k[..3]) - n(&g0[..3])).abs() < 1e-12);
        assert!(
            (k[0] / k[1] - 0.4).abs() < 1e-12,
            "the direction of the projection"
        );
        let mut same = g0;
        PerpGrad::None.apply(&w, &mut same, ranges());
        assert_eq!(same, g0);
    }
}
