//! The data a checked config trains on: the seeded split of the table and, per model of the
//! fleet, its training labels with its corrupted set (SCIENCE.md §1). No network is built:
//! Python's `grokscope.dataset` and the setup stage both start from here.

use super::check::Checked;
use super::fleet::ModelSpec;
use crate::data::dataset::TokenSpace;
use crate::data::{Dataset, Split, TrainLabels};
use crate::error::Result;

impl Checked {
    /// The token space of the config's dataset, as [`Dataset::token_space`] gives it, without
    /// building the dataset: what reports ask before drawing Fourier figures.
    pub fn token_space(&self) -> Option<TokenSpace> {
        Some(TokenSpace { vocab: self.data.p })
    }

    /// The split dataset and the labels of the models `specs` (in their order). The kind of
    /// dataset is decided here, once: today every config's data is an operation table.
    pub fn dataset(&self, specs: &[ModelSpec]) -> Result<(Dataset, Vec<TrainLabels>)> {
        let d = &self.data;
        let split = Dataset::from(Split::new(
            d.p,
            d.operation,
            d.train_fraction,
            d.split_seed,
        )?);
        let labels = specs
            .iter()
            .map(|s| split.corrupt(s.corruption, d.corruption_mode, s.corruption_seed))
            .collect::<Result<Vec<_>>>()?;
        Ok((split, labels))
    }
}
