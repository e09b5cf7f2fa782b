//! grokscope: memorization and generalization in networks trained on corrupted modular
//! arithmetic (Doshi, Das, He, Gromov, *To grok or not to grok*, ICLR 2024).
//!
//! The pipeline, one module per stage: [`data`] (tasks, split, corruption) → [`model`]
//! (the MLP, init) → [`train`] (losses, AdamW, the batched fleet engine, the loop) →
//! [`metrics`] and [`analysis`] (accuracies, IPR, phases) → [`output`] (run directories) →
//! [`sweep`] (grids, fleets, the crash-safe store, shards).
//! [`config`] turns TOML into all of it; [`rundir`] reads a run back and [`analyze`] writes
//! its analysis; [`bench`] measures the engine.

pub mod analysis;
pub mod analyze;
pub mod bench;
pub mod config;
pub mod data;
pub mod error;
pub mod metrics;
pub mod model;
pub mod output;
pub mod report;
pub mod rundir;
pub mod sweep;
pub mod train;

pub use error::{Error, Result};
