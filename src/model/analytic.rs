//! Gromov's analytic solution for modular addition (SCIENCE.md §7).
//!
//! Neuron `k` gets a frequency `σ_k` and phases `φ_k, ψ_k`:
//! `U[k,n] = cos(2πσ_k n/p + φ_k)`, `V[k,n] = cos(2πσ_k n/p + ψ_k)`,
//! `W[q,k] = cos(−2πσ_k q/p − φ_k − ψ_k)`. With φ(x) = x², the logit of class `q` is a
//! constant times `Σ_σ m_σ cos(2πσ(a + b − q)/p)` plus terms whose phases cancel, so the
//! argmax is `(a + b) mod p`.
//!
//! Choice made here (the spec leaves it open, see `docs/DECISIONS.md`): frequencies are dealt
//! round-robin, `σ_k = 1 + (k mod (p−1)/2)`; the `m` neurons of one frequency get the phases
//! `φ_j = 2πj/m`, `ψ_j = 2φ_j`, which cancel every unwanted term exactly when `m ≥ 8` (the unwanted terms carry
//! phases `kφ_j` with `1 ≤ k ≤ 7`, and `Σ_j e^{ikφ_j} = 0` unless `m` divides `k`).
//! The output layer is scaled by `2/N` so that the correct logit is about 1.

use super::{argmax, Activation, Arch};
use crate::error::{Error, Result};
use std::f64::consts::PI;

/// Parameters of the analytic network in grokscope's layout (`Uᵀ`, `Vᵀ`, `W`, then γ = 1,
/// β = 0 if the arch has BatchNorm). Needs `p ≥ 3`.
pub fn analytic_params(arch: &Arch) -> Vec<f32> {
    let (p, n) = (arch.p, arch.width);
    let freqs = ((p - 1) / 2).max(1);
    let mut params = vec![0.0f32; arch.n_params()];
    let scale_w = 2.0 / n as f64;
    for k in 0..n {
        let sigma = 1 + k % freqs;
        let m = n / freqs + usize::from(k % freqs < n % freqs);
        let j = k / freqs;
        let phi = 2.0 * PI * j as f64 / m as f64;
        let psi = 2.0 * phi;
        for t in 0..p {
            let base = 2.0 * PI * (sigma * t) as f64 / p as f64;
            params[arch.u_range().start + t * n + k] = (base + phi).cos() as f32;
            params[arch.v_range().start + t * n + k] = (base + psi).cos() as f32;
            params[arch.w_range().start + t * n + k] = (scale_w * (-base - phi - psi).cos()) as f32;
        }
    }
    let g = arch.gamma_range();
    params[g].fill(1.0);
    params
}

/// The smallest number of neurons per frequency for exact cancellation.
pub const MIN_NEURONS_PER_FREQUENCY: usize = 8;

/// Refuses a `p` or `N` the evaluation of [`evaluate_analytic`] cannot do in an hour.
pub fn limits(p: usize, width: usize) -> Result<()> {
    check(p, width)?;
    crate::data::validate_table(p, crate::data::Operation::Add)
        .map_err(|_| Error::invalid("--p", format!("must lie in [3, 65521], got {p}")))?;
    if width > 1 << 24 {
        return Err(Error::invalid(
            "-n",
            format!("the width must lie in [1, {}], got {width}", 1 << 24),
        ));
    }
    let work = (p as f64).powi(3) * width as f64;
    if work > MAX_ANALYTIC_WORK {
        return Err(Error::invalid(
            "--p",
            format!(
                "evaluating the analytic network on all {p}² pairs with N = {width} takes p³·N = {work:.2e} multiply-adds, more than the {MAX_ANALYTIC_WORK:.0e} (about an hour) allowed; use a smaller --p or -n"
            ),
        ));
    }
    Ok(())
}

/// The most multiply-adds `grokscope analytic` may do (p³·N).
pub const MAX_ANALYTIC_WORK: f64 = 1e13;

/// The analytic network evaluated on the whole table of `(a + b) mod p`.
#[derive(Clone, Debug)]
pub struct AnalyticReport {
    pub pairs: usize,
    pub wrong: usize,
    pub accuracy: f64,
    pub mean_ipr: f64,
    pub min_ipr: f64,
    pub frequencies: usize,
    pub warnings: Vec<String>,
}

pub fn check(p: usize, width: usize) -> Result<Vec<String>> {
    if p < 3 {
        return Err(Error::invalid(
            "p",
            format!("the analytic network needs p ≥ 3, got {p}"),
        ));
    }
    if width == 0 {
        return Err(Error::invalid("n", "the width N must be at least 1"));
    }
    let freqs = (p - 1) / 2;
    let mut w = Vec::new();
    if width < MIN_NEURONS_PER_FREQUENCY * freqs {
        w.push(format!(
            "N = {width} gives fewer than {MIN_NEURONS_PER_FREQUENCY} neurons per frequency ({freqs} frequencies): the unwanted terms do not cancel exactly"
        ));
    }
    Ok(w)
}

/// Builds the analytic network for `p`, `width` and evaluates it on all `p²` pairs.
///
/// The evaluation costs `p³·N` multiply-adds and `4(4pN + p²)` bytes: `p` above 65521,
/// `N` above 2²⁴ or more than [`MAX_ANALYTIC_WORK`] multiply-adds (about an hour) are refused.
pub fn evaluate_analytic(p: usize, width: usize) -> Result<AnalyticReport> {
    let warnings = check(p, width)?;
    limits(p, width)?;
    let arch = Arch {
        p,
        width,
        activation: Activation::Square,
        batchnorm: false,
        bn_momentum: 0.1,
        bn_eps: 1e-5,
    };
    let params = analytic_params(&arch);
    // One row of the table (a fixed, b = 0 … p−1) at a time, through the MLP's forward pass.
    let mut wrong = 0;
    let mut y = vec![0.0f32; p * width];
    let mut logits = vec![0.0f32; p * p];
    for a in 0..p as u32 {
        let pairs: Vec<(u32, u32)> = (0..p as u32).map(|b| (a, b)).collect();
        arch.eval_hidden(&params, None, &pairs, &mut y);
        arch.output(&params, &y, p, &mut logits);
        for (b, row) in logits.chunks_exact(p).enumerate() {
            if argmax(row) as usize != (a as usize + b) % p {
                wrong += 1;
            }
        }
    }
    let (u, v, w) = (
        &params[arch.u_range()],
        &params[arch.v_range()],
        &params[arch.w_range()],
    );
    let iprs = super::ipr::neuron_iprs(u, v, w, p, width);
    let vals: Vec<f64> = iprs.iter().flatten().copied().collect();
    Ok(AnalyticReport {
        pairs: p * p,
        wrong,
        accuracy: 1.0 - wrong as f64 / (p * p) as f64,
        mean_ipr: vals.iter().sum::<f64>() / vals.len() as f64,
        min_ipr: vals.iter().copied().fold(f64::INFINITY, f64::min),
        frequencies: (p - 1) / 2,
        warnings,
    })
}
