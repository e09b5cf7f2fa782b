//! Analysis of trained networks: dynamics over training, the per-neuron table (IPR, spectra,
//! BatchNorm), pruning by IPR, the scores of memorizing units without Fourier structure
//! (`scores`). The same code serves every network through `train::Network`.

pub mod dynamics;
pub mod neurons;
pub mod prune;
pub mod scores;
