//! Analysis of trained networks: Fourier IPR, phases, dynamics, pruning, the analytic
//! solution.

pub mod analytic;
pub mod dynamics;
pub mod ipr;
pub mod neurons;
pub mod phase;
pub mod prune;
pub mod transformer;
