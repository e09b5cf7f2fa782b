//! The data a checked config trains on: the seeded split of the table and, per model of the
//! fleet, its training labels with its corrupted set (SCIENCE.md §1). No network is built:
//! Python's `grokscope.dataset` and the setup stage both start from here.

use super::check::Checked;
use super::fleet::ModelSpec;
use crate::data::{Split, TrainLabels};
use crate::error::Result;

impl Checked {
    /// The split and the labels of the models `specs` (in their order).
    pub fn dataset(&self, specs: &[ModelSpec]) -> Result<(Split, Vec<TrainLabels>)> {
        let d = &self.data;
        let split = Split::new(d.p, d.operation, d.train_fraction, d.split_seed)?;
        let labels = specs
            .iter()
            .map(|s| split.corrupt(s.corruption, d.corruption_mode, s.corruption_seed))
            .collect::<Result<Vec<_>>>()?;
        Ok((split, labels))
    }
}
