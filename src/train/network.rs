//! [`Network`]: the fleet of either model behind one type. It is built once from a checked
//! [`Architecture`]; everything after training (metrics, analysis, pruning, weights I/O,
//! reports) calls its methods and never asks which model it holds.

use super::deep::DFleet;
use super::engine::{
    Engine, EvalOutput, EvalProbe, ModelHyper, NeuronView, TokenWeights, UnitTraces, WeightStats,
};
use super::loss::{Loss, Precision};
use super::mlp::Fleet;
use super::transformer::TFleet;
use crate::data::Dataset;
use crate::error::Result;
use crate::model::analytic::analytic_params;
use crate::model::{Architecture, Init};

/// A fleet of MLPs, of Transformers or of deep MLPs.
pub enum Network {
    Mlp(Fleet),
    Transformer(TFleet),
    Deep(DFleet),
}

/// One model of a fleet to build: its init seed, optimizer settings and training labels.
pub struct ModelInit {
    pub init_seed: u64,
    pub hyper: ModelHyper,
    pub labels: Vec<u32>,
}

impl Network {
    /// A fleet of `architecture` on `dataset`, one model per entry of `models`. A kind that
    /// reads token pairs refuses a dataset of dense features, and the deep MLP a table,
    /// saying so. `softmax`: the precision of the training loss's softmax.
    pub fn new(
        architecture: &Architecture,
        loss: Loss,
        softmax: Precision,
        dataset: &Dataset,
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
                let split = dataset.require_table("the two-layer MLP")?;
                let mut f = Fleet::new(*arch, loss, split, models);
                f.softmax = softmax;
                Network::Mlp(f)
            }
            Architecture::Transformer(t) => {
                let cfg = &t.cfg;
                let models = models
                    .into_iter()
                    .map(|m| (m.init_seed, m.hyper, m.labels))
                    .collect();
                let split = dataset.require_table("the Transformer")?;
                let mut f = TFleet::new(cfg, loss, split, models);
                f.softmax = softmax;
                Network::Transformer(f)
            }
            Architecture::Deep(arch) => {
                let data = dataset.require_dense("the deep MLP")?;
                if data.dim != arch.dim || data.n_classes != arch.classes {
                    return Err(crate::error::Error::invalid(
                        "data.dataset",
                        format!(
                            "{} has {} features and {} classes, the network was built for {} and {}",
                            dataset.describe(),
                            data.dim,
                            data.n_classes,
                            arch.dim,
                            arch.classes
                        ),
                    ));
                }
                let models = models
                    .into_iter()
                    .map(|m| (arch.init_params(m.init_seed), m.hyper, m.labels))
                    .collect();
                let mut f = DFleet::new(arch.clone(), loss, data, models);
                f.softmax = softmax;
                Network::Deep(f)
            }
        })
    }

    fn engine(&self) -> &dyn Engine {
        match self {
            Network::Mlp(f) => f,
            Network::Transformer(f) => f,
            Network::Deep(f) => f,
        }
    }

    fn engine_mut(&mut self) -> &mut dyn Engine {
        match self {
            Network::Mlp(f) => f,
            Network::Transformer(f) => f,
            Network::Deep(f) => f,
        }
    }

    /// The modulus: vocabulary and number of outputs ([`Engine::vocab`]).
    pub fn p(&self) -> usize {
        self.engine().vocab()
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
            _ => None,
        }
    }

    /// The MLP fleet, mutably, if this is one.
    pub fn as_mlp_mut(&mut self) -> Option<&mut Fleet> {
        match self {
            Network::Mlp(f) => Some(f),
            _ => None,
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
    fn eval_all_probed(&mut self, probe: &mut dyn EvalProbe) -> Result<Vec<EvalOutput>> {
        self.engine_mut().eval_all_probed(probe)
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
    fn vocab(&self) -> usize {
        self.engine().vocab()
    }
    fn vector_names(&self) -> &'static [&'static str] {
        self.engine().vector_names()
    }
    fn vector_description(&self) -> &'static str {
        self.engine().vector_description()
    }
    fn neurons(&self, m: usize) -> Vec<NeuronView> {
        self.engine().neurons(m)
    }
    fn n_neurons(&self) -> usize {
        self.engine().n_neurons()
    }
    fn neuron_id(&self, i: usize) -> (usize, usize) {
        self.engine().neuron_id(i)
    }
    fn embedding_columns(&self, m: usize) -> Option<Vec<Vec<f32>>> {
        self.engine().embedding_columns(m)
    }
    fn token_weights(&self, m: usize) -> Option<TokenWeights> {
        self.engine().token_weights(m)
    }
    fn eval_model(&mut self, m: usize) -> Result<EvalOutput> {
        self.engine_mut().eval_model(m)
    }
    fn prunable_weights(&self, m: usize) -> Vec<(String, Vec<f32>)> {
        self.engine().prunable_weights(m)
    }
    fn unit_traces(&mut self, m: usize, labels: &[u32]) -> Result<Option<UnitTraces>> {
        self.engine_mut().unit_traces(m, labels)
    }
    fn prune_neurons(
        &mut self,
        m: usize,
        saved: &[(String, Vec<f32>)],
        gone: &[usize],
    ) -> Result<()> {
        self.engine_mut().prune_neurons(m, saved, gone)
    }
}
