//! Training (SPEC §3): losses, AdamW, the batched fleet engine and the training loop.

pub mod adamw;
pub mod engine;
pub mod kernels;
pub mod loss;
pub mod run;
