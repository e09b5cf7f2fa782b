//! grokscope: memorization and generalization in networks trained on corrupted modular
//! arithmetic (Doshi, Das, He, Gromov, *To grok or not to grok*, ICLR 2024).
//!
//! The pipeline, one module per stage; each imports only from the stages before it
//! (`docs/ARCHITECTURE.md` lists every module's imports):
//!
//! [`error`], [`fsio`] (atomic writes, validated reads, the fault hooks), [`kernels`] (shared by
//! all) → [`data`] (tasks, split, corruption) →
//! [`model`] (the MLP and the Transformer: layouts, init, forward passes, the analytic
//! network, Fourier IPR) → [`train`] (losses, AdamW, the two fleet engines, [`train::Network`])
//! → [`config`] (TOML → a checked config: a pure schema) → [`setup`] (the split, the labels
//! and the untrained network a checked config asks for) → [`metrics`]
//! (accuracies, phases) → [`analysis`] (dynamics, per-neuron table, pruning) → [`rundir`]
//! (every file of a run directory) → [`experiment`] (the training loop), [`job`] (one
//! training run from a request, for the CLI, Python and the tests), [`progress`] (what
//! a person watching it sees) → [`analyze`] (a
//! run's analysis files) → [`sweep`] (grids, the crash-safe store, shards) → [`report`]
//! (figures, report.html) → [`bench`]; the binary is a thin shell over them.

pub mod digest;
pub mod error;
pub mod fsio;
pub mod kernels;

pub mod data;
pub mod model;
pub mod train;

pub mod config;
pub mod setup;

pub mod metrics;

pub mod analysis;
pub mod rundir;

pub mod experiment;
pub mod job;
pub mod progress;

pub mod analyze;
pub mod sweep;

pub mod report;

pub mod bench;

pub use error::{Error, Result};
