//! Analysis of trained networks: Fourier IPR and phases.

pub mod ipr;
pub mod phase;
