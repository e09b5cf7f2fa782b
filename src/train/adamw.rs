//! AdamW with PyTorch's semantics (SCIENCE.md §3): decoupled decay `θ ← θ(1 − lr·wd)`, then the Adam
//! step with bias correction, computed as `torch.optim.AdamW` does.

use crate::kernels::Real;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWHyper {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
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
