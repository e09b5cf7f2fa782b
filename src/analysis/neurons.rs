//! Per-neuron analysis of a trained model (SPEC §4, §6 "BatchNorm's mechanism"): the IPR of
//! each neuron's `U` row, `V` row and `W` column, their mean, the dominant frequency and the
//! share of Fourier power at it, the spectra, and for BatchNorm models `γ`, `β` and the
//! effective output scale next to the IPR.

use super::ipr::Ipr;
use crate::model::Arch;
use crate::train::engine::ModelState;
use serde::Serialize;

/// One row of `neurons.csv`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NeuronRow {
    pub model: usize,
    pub neuron: usize,
    pub ipr_u: Option<f64>,
    pub ipr_v: Option<f64>,
    pub ipr_w: Option<f64>,
    /// Mean over the non-zero vectors; `None`: dead neuron.
    pub ipr: Option<f64>,
    /// argmax over frequencies ≥ 1 of the summed power `Σ_vectors |û|²` (each vector scaled
    /// to max magnitude 1); 0 for a dead neuron.
    pub dominant_freq: usize,
    /// Power at the dominant frequency over the total power (frequency 0 included).
    pub dominant_share: Option<f64>,
    pub bn_gamma: Option<f64>,
    pub bn_beta: Option<f64>,
    /// `|γ_k| / sqrt(running_var_k + eps)`: how strongly BatchNorm passes the neuron on.
    pub bn_scale: Option<f64>,
}

/// The spectra `|û|` of one neuron's three vectors (`None`: all-zero vector).
#[derive(Clone, Debug)]
pub struct NeuronSpectra {
    pub u: Option<Vec<f64>>,
    pub v: Option<Vec<f64>>,
    pub w: Option<Vec<f64>>,
}

/// Analyses every neuron of one model.
pub fn analyze_neurons(
    arch: &Arch,
    model_index: usize,
    model: &ModelState,
) -> (Vec<NeuronRow>, Vec<NeuronSpectra>) {
    let (p, n) = (arch.p, arch.width);
    let mut calc = Ipr::new(p);
    let mats = [
        &model.params[arch.u_range()],
        &model.params[arch.v_range()],
        &model.params[arch.w_range()],
    ];
    let mut rows = Vec::with_capacity(n);
    let mut spectra = Vec::with_capacity(n);
    for k in 0..n {
        let specs: Vec<Option<Vec<f64>>> = mats.iter().map(|m| calc.spectrum(m, k, n)).collect();
        let iprs: Vec<Option<f64>> = specs
            .iter()
            .map(|s| {
                s.as_ref().map(|s| {
                    let s2: f64 = s.iter().map(|a| a * a).sum();
                    s.iter().map(|a| a.powi(4)).sum::<f64>() / (s2 * s2)
                })
            })
            .collect();
        let alive: Vec<f64> = iprs.iter().flatten().copied().collect();
        let mut power = vec![0.0f64; p / 2 + 1];
        for s in specs.iter().flatten() {
            for (pw, a) in power.iter_mut().zip(s) {
                *pw += a * a;
            }
        }
        let total: f64 = power.iter().sum();
        let dominant = (1..power.len())
            .max_by(|&a, &b| power[a].total_cmp(&power[b]).then(b.cmp(&a)))
            .filter(|_| total > 0.0)
            .unwrap_or(0);
        let (bn_gamma, bn_beta, bn_scale) = match &model.running {
            Some(rs) => {
                let g = model.params[arch.gamma_range().start + k] as f64;
                let b = model.params[arch.beta_range().start + k] as f64;
                let s = g.abs() / (rs.var[k] as f64 + arch.bn_eps as f64).sqrt();
                (Some(g), Some(b), Some(s))
            }
            None => (None, None, None),
        };
        rows.push(NeuronRow {
            model: model_index,
            neuron: k,
            ipr_u: iprs[0],
            ipr_v: iprs[1],
            ipr_w: iprs[2],
            ipr: (!alive.is_empty()).then(|| alive.iter().sum::<f64>() / alive.len() as f64),
            dominant_freq: dominant,
            dominant_share: (total > 0.0 && dominant > 0).then(|| power[dominant] / total),
            bn_gamma,
            bn_beta,
            bn_scale,
        });
        let mut it = specs.into_iter();
        spectra.push(NeuronSpectra {
            u: it.next().flatten(),
            v: it.next().flatten(),
            w: it.next().flatten(),
        });
    }
    (rows, spectra)
}

/// Spearman's rank correlation of paired samples (average ranks for ties); `None` for fewer
/// than two pairs or a constant sample.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let rx = ranks(x);
    let ry = ranks(y);
    let n = x.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    (vx > 0.0 && vy > 0.0).then(|| cov / (vx * vy).sqrt())
}

fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &t in &idx[i..=j] {
            r[t] = avg;
        }
        i = j + 1;
    }
    r
}
