//! Per-neuron analysis of a trained model (SCIENCE.md §4, §6 "BatchNorm's mechanism"), the same for
//! both networks: the IPR of each of a neuron's weight vectors (MLP: `U` row, `V` row, `W`
//! column; Transformer MLP neuron: its input and output seen from the tokens), their mean, the
//! dominant frequency and the share of Fourier power at it, the spectra, and for BatchNorm
//! models `γ`, `β` and the effective output scale next to the IPR.

use crate::model::ipr::{mean_of_vectors, Ipr};
use crate::train::{Engine, Network, NeuronView};
use serde::Serialize;

/// One row of `neurons.csv`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NeuronRow {
    pub model: usize,
    pub layer: usize,
    pub neuron: usize,
    /// IPR of each weight vector (`Network::vector_names`); `None`: an all-zero vector.
    pub vector_iprs: Vec<Option<f64>>,
    /// Mean over the non-zero vectors; `None`: dead neuron.
    pub ipr: Option<f64>,
    /// argmax over frequencies ≥ 1 of the summed power `Σ_vectors |û|²` (each vector scaled
    /// to max magnitude 1); 0 for a dead neuron.
    pub dominant_freq: usize,
    /// Power at the dominant frequency over the total power (frequency 0 included).
    pub dominant_share: Option<f64>,
    /// The share of its power at frequency 0 (the vector's mean): near 1 for a near-constant
    /// neuron, whose IPR is high without it being periodic (docs/DECISIONS.md).
    pub dc_share: Option<f64>,
    pub bn_gamma: Option<f64>,
    pub bn_beta: Option<f64>,
    /// `|γ_k| / sqrt(running_var_k + eps)`: how strongly BatchNorm passes the neuron on.
    pub bn_scale: Option<f64>,
}

/// The spectra `|û|` of one neuron's vectors (`None`: all-zero vector).
pub type NeuronSpectra = Vec<Option<Vec<f64>>>;

/// Analyses every neuron of model `m` of `network`.
pub fn analyze_neurons(network: &Network, m: usize) -> (Vec<NeuronRow>, Vec<NeuronSpectra>) {
    let mut calc = Ipr::new(network.p());
    network
        .neurons(m)
        .iter()
        .map(|view| analyze_neuron(&mut calc, m, view))
        .unzip()
}

fn analyze_neuron(calc: &mut Ipr, model: usize, view: &NeuronView) -> (NeuronRow, NeuronSpectra) {
    let p = calc.len();
    let specs: NeuronSpectra = view
        .vectors
        .iter()
        .map(|v| calc.spectrum(v, 0, 1))
        .collect();
    let iprs: Vec<Option<f64>> = specs
        .iter()
        .map(|s| {
            s.as_ref().map(|s| {
                let s2: f64 = s.iter().map(|a| a * a).sum();
                s.iter().map(|a| a.powi(4)).sum::<f64>() / (s2 * s2)
            })
        })
        .collect();
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
    let bn = view.bn.map(|b| {
        let scale = (b.gamma as f64).abs() / (b.running_var as f64 + b.eps as f64).sqrt();
        (b.gamma as f64, b.beta as f64, scale)
    });
    let row = NeuronRow {
        model,
        layer: view.layer,
        neuron: view.neuron,
        ipr: mean_of_vectors(iprs.iter().copied()),
        vector_iprs: iprs,
        dominant_freq: dominant,
        dominant_share: (total > 0.0 && dominant > 0).then(|| power[dominant] / total),
        dc_share: (total > 0.0).then(|| power[0] / total),
        bn_gamma: bn.map(|b| b.0),
        bn_beta: bn.map(|b| b.1),
        bn_scale: bn.map(|b| b.2),
    };
    (row, specs)
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
