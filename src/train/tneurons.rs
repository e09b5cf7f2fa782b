//! The Transformer's MLP neurons seen from the tokens (SCIENCE.md §8; what the per-neuron
//! analysis and pruning read), and the token embedding's columns.

use super::engine::{NeuronView, TokenWeights};
use super::transformer::TFleet;
use crate::error::Result;

impl TFleet<f32> {
    /// The name of the output layer's matrix (`[p, d]`).
    pub(super) fn output_name(&self) -> &'static str {
        if self.cfg.tie_embeddings {
            "tok_emb"
        } else {
            "unembed"
        }
    }

    /// A parameter's host copy; every name asked for here exists in every Transformer.
    pub(super) fn param(&self, m: usize, name: &str) -> &[f32] {
        self.host(m, name).map(|(v, _)| v).unwrap_or(&[])
    }

    /// Every MLP neuron of model `m` (all layers) as seen from the tokens: its input
    /// `E · fc1[k]` and its output `unembed · fc2[:, k]`, two p-vectors.
    pub fn neurons(&self, m: usize) -> Vec<NeuronView> {
        let (p, d, h) = (self.p, self.cfg.d_model, self.cfg.hidden());
        let emb = self.param(m, "tok_emb");
        let unembed = self.param(m, self.output_name());
        let mut out = Vec::new();
        for l in 0..self.cfg.layers {
            let fc1 = self.param(m, &format!("layers.{l}.mlp.fc1"));
            let fc2 = self.param(m, &format!("layers.{l}.mlp.fc2"));
            for k in 0..h {
                let w_in = &fc1[k * d..(k + 1) * d];
                let vin: Vec<f32> = (0..p)
                    .map(|t| {
                        emb[t * d..(t + 1) * d]
                            .iter()
                            .zip(w_in)
                            .map(|(a, b)| a * b)
                            .sum()
                    })
                    .collect();
                let vout: Vec<f32> = (0..p)
                    .map(|q| (0..d).map(|j| unembed[q * d + j] * fc2[j * h + k]).sum())
                    .collect();
                out.push(NeuronView {
                    layer: l,
                    neuron: k,
                    vectors: vec![vin, vout],
                    bn: None,
                });
            }
        }
        out
    }

    /// Model `m`'s MLP parameters: per layer `fc1`, `fc2` and (with biases) `fc1_bias`.
    pub fn mlp_params(&self, m: usize) -> Vec<(String, Vec<f32>)> {
        let mut out = Vec::new();
        for l in 0..self.cfg.layers {
            for n in ["mlp.fc1", "mlp.fc2", "mlp.fc1_bias"] {
                let name = format!("layers.{l}.{n}");
                if let Some((v, _)) = self.host(m, &name) {
                    out.push((name, v.to_vec()));
                }
            }
        }
        out
    }

    /// Sets model `m`'s MLP parameters to `saved` (from [`TFleet::mlp_params`]) with the
    /// neurons `gone` (layer, neuron) zeroed: row `k` of `fc1`, column `k` of `fc2`, bias `k`.
    pub fn zero_mlp_neurons(
        &mut self,
        m: usize,
        saved: &[(String, Vec<f32>)],
        gone: &[(usize, usize)],
    ) -> Result<()> {
        let (d, h) = (self.cfg.d_model, self.cfg.hidden());
        let per_layer = if self.cfg.mlp_bias { 3 } else { 2 };
        let mut work = saved.to_vec();
        for &(layer, k) in gone {
            let base = per_layer * layer;
            work[base].1[k * d..(k + 1) * d].fill(0.0);
            for j in 0..d {
                work[base + 1].1[j * h + k] = 0.0;
            }
            if self.cfg.mlp_bias {
                work[base + 2].1[k] = 0.0;
            }
        }
        for (n, v) in &work {
            self.set_param(m, n, v)?;
        }
        Ok(())
    }

    /// The columns of the token embedding, each a p-vector over the tokens.
    pub fn embedding_columns(&self, m: usize) -> Vec<Vec<f32>> {
        let (p, d) = (self.p, self.cfg.d_model);
        let emb = self.param(m, "tok_emb");
        (0..d)
            .map(|j| (0..p).map(|t| emb[t * d + j]).collect())
            .collect()
    }

    /// The token embedding and the read-out (the unembedding, or the embedding when tied),
    /// `[p, d]` each.
    pub fn token_weights(&self, m: usize) -> TokenWeights {
        let d = self.cfg.d_model;
        TokenWeights {
            embed: vec![(self.param(m, "tok_emb").to_vec(), d)],
            unembed: vec![(self.param(m, self.output_name()).to_vec(), d)],
        }
    }
}
