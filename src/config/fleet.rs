//! The fleet axes (`data.corruption`, `data.corruption_seed`, `model.init_seed`,
//! `model.dropout`, `train.weight_decay`, `train.lr`) expanded into one model per combination.

use super::schema::{Config, MAX_FLEET};
use crate::error::{Error, Result};
use serde::Serialize;

/// The settings of one model of the fleet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSpec {
    pub index: usize,
    pub corruption: f64,
    pub corruption_seed: u64,
    pub init_seed: u64,
    pub weight_decay: f64,
    pub dropout: f64,
    /// The learning rate as configured (before any batch-size scaling).
    pub lr: f64,
}

impl Config {
    /// The number of models of the fleet (the product of the fleet axes' lengths), refused
    /// above [`MAX_FLEET`].
    pub fn fleet_len(&self) -> Result<usize> {
        let lens = [
            ("data.corruption", self.data.corruption.len()),
            ("data.corruption_seed", self.data.corruption_seed.len()),
            ("model.init_seed", self.model.init_seed.len()),
            ("train.weight_decay", self.train.weight_decay.len()),
            ("model.dropout", self.model.dropout.len()),
            ("train.lr", self.train.lr.len()),
        ];
        let mut n: usize = 1;
        for (_, len) in lens {
            n = n.saturating_mul(len);
        }
        if n > MAX_FLEET {
            let many: Vec<String> = lens
                .iter()
                .filter(|l| l.1 > 1)
                .map(|l| format!("{} {}", l.1, l.0))
                .collect();
            return Err(Error::invalid(
                "fleet",
                format!(
                    "the fleet axes ask for {} models ({}), more than the {MAX_FLEET} one fleet may train; use fewer values, or a sweep (docs/SWEEPS.md)",
                    if n == usize::MAX { "over 10^19".to_string() } else { n.to_string() },
                    many.join(" × ")
                ),
            ));
        }
        Ok(n)
    }

    /// One model per combination of the fleet axes, in the order corruption, corruption_seed,
    /// init_seed, weight_decay, dropout, lr (the last varies fastest).
    pub fn fleet(&self) -> Vec<ModelSpec> {
        let mut out = Vec::new();
        for &corruption in &self.data.corruption.values() {
            for &corruption_seed in &self.data.corruption_seed.values() {
                for &init_seed in &self.model.init_seed.values() {
                    for &weight_decay in &self.train.weight_decay.values() {
                        for &dropout in &self.model.dropout.values() {
                            for &lr in &self.train.lr.values() {
                                out.push(ModelSpec {
                                    index: out.len(),
                                    corruption,
                                    corruption_seed,
                                    init_seed,
                                    weight_decay,
                                    dropout,
                                    lr,
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }
}
