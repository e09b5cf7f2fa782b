//! Analysis of trained networks: Fourier IPR, phases, dynamics, pruning, the analytic
//! solution.

pub mod dynamics;
pub mod ipr;
pub mod phase;
