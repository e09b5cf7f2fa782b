//! Training (SPEC §3): losses, AdamW, the batched fleet engine and the training loop.

pub mod adamw;
pub mod engine;
pub mod kernels;
pub mod loss;
pub mod run;
pub mod transformer;

use crate::error::Result;
use engine::EvalOutput;
use loss::Loss;

/// What the training loop needs of a batched engine: the MLP [`engine::Fleet`] and the
/// [`transformer::TFleet`] implement it.
pub trait Engine {
    fn n_models(&self) -> usize;
    fn loss(&self) -> Loss;
    /// One optimizer step of every model on the training rows `batch`.
    fn step_batch(&mut self, batch: &[u32]) -> Result<()>;
    /// One optimizer step of every model on the full batch.
    fn step_all(&mut self) -> Result<()>;
    /// Predictions and row losses of every model on every pair (training, then test).
    fn eval_all(&mut self) -> Result<Vec<EvalOutput>>;
    /// Weight norms and per-neuron IPRs of one model.
    fn weight_stats(&self, model: usize) -> WeightStats;
    /// Every model's parameters as a safetensors file.
    fn safetensors(&self, step: u64) -> Result<Vec<u8>>;
}

/// What the metrics need of a model's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightStats {
    /// MLP: ‖U‖, ‖V‖, ‖W‖. Transformer: ‖token embedding‖, ‖MLP weights‖, ‖output layer‖.
    pub norms: [f64; 3],
    /// Per-neuron IPR (`None`: dead neuron).
    pub neuron_iprs: Vec<Option<f64>>,
}
