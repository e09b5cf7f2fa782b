//! Data (SCIENCE.md §1, §9): the operation table and its seeded train/test split ([`Split`]),
//! what every later stage sees of a dataset ([`Dataset`]: classes, inputs, labels, and
//! whether it has a token space), and label corruption ([`corrupt`]).
//!
//! Every training example keeps its true label, the label it is trained on, and a flag that
//! says whether the two differ because of corruption.

pub mod corrupt;
pub mod dataset;
pub mod idx;
pub mod mnist1d;
pub mod mnist5k;
pub mod source;
pub mod table;

pub use corrupt::{check_xi, corrupt, CorruptionMode, TrainLabels};
pub use dataset::{Dataset, DenseSplit, Inputs};
pub use table::{check_alpha, validate_table, Operation, Pair, Split};
