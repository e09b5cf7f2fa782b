//! The data a checked config trains on: the seeded split of the table or the dense dataset
//! it names (SCIENCE.md §9) and, per model of the fleet, its training labels with its
//! corrupted set (SCIENCE.md §1). No network is built:
//! Python's `grokscope.dataset` and the setup stage both start from here.

use super::check::Checked;
use super::fleet::ModelSpec;
use crate::data::dataset::TokenSpace;
use crate::data::source::{load_dense, DenseRequest};
use crate::data::{Dataset, Split, TrainLabels};
use crate::error::Result;

impl Checked {
    /// The token space of the config's dataset, as [`Dataset::token_space`] gives it, without
    /// building the dataset: what reports ask before drawing Fourier figures.
    pub fn token_space(&self) -> Option<TokenSpace> {
        self.data
            .dataset
            .is_table()
            .then_some(TokenSpace { vocab: self.data.p })
    }

    /// The split dataset and the labels of the models `specs` (in their order). The kind of
    /// dataset is decided here, once, from `data.dataset`.
    pub fn dataset(&self, specs: &[ModelSpec]) -> Result<(Dataset, Vec<TrainLabels>)> {
        let d = &self.data;
        let split = if d.dataset.is_table() {
            Dataset::from(Split::new(
                d.p,
                d.operation,
                d.train_fraction,
                d.split_seed,
            )?)
        } else {
            Dataset::Dense(load_dense(&DenseRequest {
                source: d.dataset,
                path: d.path.as_deref(),
                n_train: d.n_train,
                n_test: d.n_test,
                seed: d.split_seed,
                standardize: d.standardize,
            })?)
        };
        let labels = specs
            .iter()
            .map(|s| split.corrupt(s.corruption, d.corruption_mode, s.corruption_seed))
            .collect::<Result<Vec<_>>>()?;
        Ok((split, labels))
    }
}
