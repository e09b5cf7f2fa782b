//! The setup stage: a checked config turned into what training needs — the seeded split, each
//! model's labels (with its corruption), and the untrained network ([`Setup`]). The only
//! place that builds a `train::Network` from a config.

use crate::config::{Checked, ModelSpec, MAX_FLEET};
use crate::data::{Dataset, TrainLabels};
use crate::error::{Error, Result};
use crate::train::adamw::AdamWHyper;
use crate::train::network::{ModelInit, Network};
use crate::train::ModelHyper;

/// Everything a checked config resolves to before training.
pub struct Setup {
    /// The dataset, split into training and test examples.
    pub split: Dataset,
    pub specs: Vec<ModelSpec>,
    pub labels: Vec<TrainLabels>,
    pub network: Network,
    pub total_steps: u64,
    pub steps_per_epoch: u64,
}

/// The seed of a model's dropout masks, derived from its init seed.
pub fn dropout_seed(init_seed: u64) -> u64 {
    init_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03
}

/// Building a checked config's run: `cfg.setup()` (bring it into scope with
/// `use grokscope::setup::Prepare`).
pub trait Prepare {
    /// The split, the labels of every model of the fleet and the untrained network.
    fn setup(&self) -> Result<Setup>;
    /// As [`Prepare::setup`], with the models given explicitly (their fleet-axis values
    /// replace the config's; sweeps group arbitrary runs into fleets).
    fn setup_specs(&self, specs: Vec<ModelSpec>) -> Result<Setup>;
}

impl Prepare for Checked {
    fn setup(&self) -> Result<Setup> {
        self.setup_specs(self.fleet())
    }

    fn setup_specs(&self, specs: Vec<ModelSpec>) -> Result<Setup> {
        if specs.len() > MAX_FLEET {
            return Err(Error::invalid(
                "max_fleet",
                format!("{} models in one fleet, more than {MAX_FLEET}", specs.len()),
            ));
        }
        self.check_size(specs.len())?;
        let (split, labels) = self.dataset(&specs)?;
        let n = split.n_train();
        if let Some(b) = self.train.batch_size {
            if b > n {
                return Err(Error::invalid(
                    "train.batch_size",
                    format!("B = {b} exceeds the {n} training examples (omit it for full batch)"),
                ));
            }
        }
        let mut models = Vec::with_capacity(specs.len());
        for (s, l) in specs.iter().zip(&labels) {
            models.push(ModelInit {
                init_seed: s.init_seed,
                hyper: ModelHyper {
                    adam: AdamWHyper {
                        lr: self.effective_lr(s.lr),
                        weight_decay: s.weight_decay,
                        beta1: self.train.beta1,
                        beta2: self.train.beta2,
                        eps: self.train.eps,
                        perp: s.perp_grad,
                    },
                    dropout: s.dropout as f32,
                    dropout_seed: dropout_seed(s.init_seed),
                },
                labels: l.labels.clone(),
            });
        }
        let network = Network::new(
            self.architecture(),
            self.train.loss,
            self.softmax_precision(),
            &split,
            models,
        )?;
        Ok(Setup {
            total_steps: self.total_steps(n),
            steps_per_epoch: self.steps_per_epoch(n),
            split,
            specs,
            labels,
            network,
        })
    }
}
