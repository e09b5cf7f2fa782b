//! [`Network`]: the fleet of either model behind one type. It is built once from a checked
//! [`Architecture`]; everything after training (metrics, analysis, pruning, weights I/O,
//! reports) calls its methods and never asks which model it holds.

use super::engine::{Engine, EvalOutput, ModelHyper, NeuronView, WeightStats};
use super::loss::Loss;
use super::mlp::Fleet;
use super::transformer::TFleet;
use crate::data::Split;
use crate::error::Result;
use crate::model::analytic::analytic_params;
use crate::model::{Architecture, Init};

/// A fleet of MLPs or of Transformers.
pub enum Network {
    Mlp(Fleet),
    Transformer(TFleet),
}

/// One model of a fleet to build: its init seed, optimizer settings and training labels.
pub struct ModelInit {
    pub init_seed: u64,
    pub hyper: ModelHyper,
    pub labels: Vec<u32>,
}

impl Network {
    /// A fleet of `architecture` on `split`, one model per entry of `models`.
    pub fn new(
        architecture: &Architecture,
        loss: Loss,
        split: &Split,
        models: Vec<ModelInit>,
    ) -> Result<Network> {
        Ok(match architecture {
            Architecture::Mlp {
                arch,
                init,
                init_std,
            } => {
                let models = models
                    .into_iter()
                    .map(|m| {
                        let params = match init {
                            Init::Normal => arch.init_params(*init_std, m.init_seed),
                            Init::Analytic => analytic_params(arch),
                        };
                        (params, m.hyper, m.labels)
                    })
                    .collect();
                Network::Mlp(Fleet::new(*arch, loss, split, models))
            }
            Architecture::Transformer { cfg, .. } => {
                let models = models
                    .into_iter()
                    .map(|m| (m.init_seed, m.hyper, m.labels))
                    .collect();
                Network::Transformer(TFleet::new(cfg, loss, split, models))
            }
        })
    }

    fn engine(&self) -> &dyn Engine {
        match self {
            Network::Mlp(f) => f,
            Network::Transformer(f) => f,
        }
    }

    fn engine_mut(&mut self) -> &mut dyn Engine {
        match self {
            Network::Mlp(f) => f,
            Network::Transformer(f) => f,
        }
    }

    /// The modulus: vocabulary and number of outputs.
    pub fn p(&self) -> usize {
        match self {
            Network::Mlp(f) => f.arch.p,
            Network::Transformer(f) => f.p,
        }
    }

    /// What the vectors of a [`NeuronView`] are, in order.
    pub fn vector_names(&self) -> &'static [&'static str] {
        match self {
            Network::Mlp(_) => &["U", "V", "W"],
            Network::Transformer(_) => &["in", "out"],
        }
    }

    /// A sentence on what the vectors of a [`NeuronView`] are (for figure captions).
    pub fn vector_description(&self) -> &'static str {
        match self {
            Network::Mlp(_) => "each neuron's U row, V row and W column",
            Network::Transformer(_) => {
                "each MLP neuron's input E·fc1[k] and output unembed·fc2[:,k] as seen from the tokens"
            }
        }
    }

    /// Every neuron of model `m` (for the Transformer: every MLP neuron of every layer).
    pub fn neurons(&self, m: usize) -> Vec<NeuronView> {
        match self {
            Network::Mlp(f) => f.neurons(m),
            Network::Transformer(f) => f.neurons(m),
        }
    }

    /// The number of neurons per model.
    pub fn n_neurons(&self) -> usize {
        match self {
            Network::Mlp(f) => f.arch.width,
            Network::Transformer(f) => f.cfg.hidden() * f.cfg.layers,
        }
    }

    /// The (layer, neuron within the layer) of neuron `i` of [`Network::neurons`].
    pub fn neuron_id(&self, i: usize) -> (usize, usize) {
        match self {
            Network::Mlp(_) => (0, i),
            Network::Transformer(f) => {
                let h = f.cfg.hidden().max(1);
                (i / h, i % h)
            }
        }
    }

    /// The columns of the token embedding of model `m` (`None`: the MLP has none).
    pub fn embedding_columns(&self, m: usize) -> Option<Vec<Vec<f32>>> {
        match self {
            Network::Mlp(_) => None,
            Network::Transformer(f) => Some(f.embedding_columns(m)),
        }
    }

    /// Predictions and row losses of model `m` on every pair, in evaluation mode.
    pub fn eval_model(&mut self, m: usize) -> Result<EvalOutput> {
        match self {
            Network::Mlp(f) => Ok(f.evaluate_models(m..m + 1).remove(0)),
            Network::Transformer(f) => f.eval_model(m),
        }
    }

    /// Every model's weights as a safetensors file ([`Engine::save`] of all models).
    pub fn save_all(&self, step: u64) -> Result<Vec<u8>> {
        let all: Vec<usize> = (0..self.n_models()).collect();
        self.save(step, &all)
    }

    /// The MLP fleet, if this is one.
    pub fn as_mlp(&self) -> Option<&Fleet> {
        match self {
            Network::Mlp(f) => Some(f),
            Network::Transformer(_) => None,
        }
    }

    /// The MLP fleet, mutably, if this is one.
    pub fn as_mlp_mut(&mut self) -> Option<&mut Fleet> {
        match self {
            Network::Mlp(f) => Some(f),
            Network::Transformer(_) => None,
        }
    }
}

impl Engine for Network {
    fn n_models(&self) -> usize {
        self.engine().n_models()
    }
    fn loss(&self) -> Loss {
        self.engine().loss()
    }
    fn step_batch(&mut self, batch: &[u32]) -> Result<Vec<f64>> {
        self.engine_mut().step_batch(batch)
    }
    fn step_all(&mut self) -> Result<Vec<f64>> {
        self.engine_mut().step_all()
    }
    fn eval_all(&mut self) -> Result<Vec<EvalOutput>> {
        self.engine_mut().eval_all()
    }
    fn weight_stats(&self, model: usize) -> WeightStats {
        self.engine().weight_stats(model)
    }
    fn save(&self, step: u64, models: &[usize]) -> Result<Vec<u8>> {
        self.engine().save(step, models)
    }
    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        self.engine_mut().load(bytes)
    }
    fn save_state(&self, extra: Vec<(&str, String)>) -> Result<Vec<u8>> {
        self.engine().save_state(extra)
    }
    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.engine_mut().load_state(bytes)
    }
}
