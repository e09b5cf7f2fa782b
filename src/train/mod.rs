//! Training (SCIENCE.md §3): losses, AdamW, the two batched fleet engines and [`Network`], the one
//! type the rest of the program sees.
//!
//! A fleet is M models that share the architecture and the training pairs and differ in
//! their labels, init and hyper-parameters. [`mlp::Fleet`] trains MLPs with hand-derived
//! gradients over `gemm`; [`transformer::TFleet`] trains Transformers with the hand-derived
//! passes of [`tpass`], also over `gemm`. Both implement [`Engine`]; [`Network`] wraps either and adds what analysis,
//! pruning, weights I/O and reports need from a model.

pub mod adamw;
pub mod deep;
pub mod engine;
pub mod loss;
pub mod mlp;
pub mod network;
pub mod tneurons;
pub mod tpass;
pub mod transformer;

pub use engine::{
    BnNeuron, Engine, EvalOutput, EvalProbe, ModelHyper, NeuronView, TokenWeights, UnitTraces,
    WeightStats,
};
pub use network::Network;
