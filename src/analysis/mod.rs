//! Analysis of trained networks: dynamics over training, the per-neuron table (IPR, spectra,
//! BatchNorm), pruning by IPR. The same code serves both networks through `train::Network`.

pub mod dynamics;
pub mod neurons;
pub mod prune;
