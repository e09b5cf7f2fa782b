//! The networks (SCIENCE.md §2, §7, §8) and what is a property of a network alone: parameter
//! layouts, initialisation, the forward passes, Gromov's analytic network, the Fourier IPR
//! of weight vectors, and the memory a fleet of them needs to train (`memory`).
//!
//! Which network an experiment trains is decided once, when its config is checked: the
//! result is an [`Architecture`], and every later stage matches on the fleet built from it
//! (`train::Network`), never on the config again.

pub mod analytic;
pub mod deep;
pub mod ipr;
pub mod kind;
pub mod memory;
pub mod mlp;
pub mod transformer;

pub use mlp::{Activation, Arch, Init, MlpConfig, RunningStats, MAX_WIDTH};

use deep::DeepArch;
use kind::NetworkKind;
use serde::{Deserialize, Serialize};
use transformer::TransformerArch;

/// `Deserialize` for a setting whose values are a few names: a string among them, and
/// anything else (a number, a boolean, a list where one value is allowed) refused with the
/// names listed.
macro_rules! named_values {
    ($t:ty, $list:literal, { $($name:literal => $v:expr),+ $(,)? }) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(concat!("one of ", $list))
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$t, E> {
                        match s {
                            $($name => Ok($v),)+
                            _ => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
                        }
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<$t, A::Error> {
                        Err(serde::de::Error::custom(concat!(
                            "one value (",
                            $list,
                            "), not a list: this setting is not a fleet axis; compare its values in a sweep (docs/SWEEPS.md)"
                        )))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

named_values!(Loss, "\"mse\", \"ce\", \"stablemax\"", {
    "mse" => Loss::Mse, "ce" => Loss::CrossEntropy, "stablemax" => Loss::StableMax,
});
named_values!(Precision, "\"f32\", \"f64\"", { "f32" => Precision::F32, "f64" => Precision::F64 });
named_values!(PerpGrad, "\"none\", \"project\", \"project-keep-norm\"", {
    "none" => PerpGrad::None,
    "project" => PerpGrad::Project,
    "project-keep-norm" => PerpGrad::ProjectKeepNorm,
});

/// Which network a config asks for (`model.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The paper's two-layer MLP (SCIENCE.md §2), configured under `[model.mlp]`.
    #[default]
    Mlp,
    /// The paper's Transformer (SCIENCE.md §8), configured under `[model.transformer]`.
    Transformer,
    /// A deep MLP on dense inputs (SCIENCE.md §9), configured under `[model.deep]`.
    Deep,
}

impl ModelKind {
    /// Every model kind: the one list a new kind is added to.
    pub const ALL: [ModelKind; 3] = [ModelKind::Mlp, ModelKind::Transformer, ModelKind::Deep];

    /// The config table of the kind's own keys under `[model]` (`[model.mlp]`,
    /// `[model.transformer]`).
    pub fn table(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Transformer => "transformer",
            ModelKind::Deep => "deep",
        }
    }
}

/// The loss a model's logits are scored by (`train.loss`; SCIENCE.md §3): MSE against one-hot
/// targets, cross-entropy, or StableMax cross-entropy (Prieto et al., ICLR 2025: the softmax's
/// `exp` replaced by `s(x) = x + 1` for `x ≥ 0`, `1/(1 − x)` for `x < 0`). Its arithmetic is in
/// `train::loss`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    #[default]
    Mse,
    #[serde(rename = "ce")]
    CrossEntropy,
    #[serde(rename = "stablemax")]
    StableMax,
}

/// The precision the training loss's softmax is computed in (`train.softmax_precision`):
/// the logsumexp (cross-entropy) or Σ s (StableMax) of each row of logits and the row's
/// gradient. The logits themselves are f32. Prieto et al. (ICLR 2025, §3) trace "softmax
/// collapse" to these sums' rounding; docs/NUMERICS.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F64,
}

/// ⊥Grad (Prieto et al., "Grokking at the edge of numerical stability", ICLR 2025, §5): the
/// gradient's component along the weights, which only scales the logits ("naïve loss
/// minimization"), removed per parameter tensor before the AdamW step:
/// `g ← g − (θ·g / θ·θ) θ` (`train.perp_grad`; docs/NUMERICS.md). Its arithmetic is in `train::adamw`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PerpGrad {
    /// The plain gradient.
    #[default]
    None,
    /// `g − (θ·g / θ·θ) θ`, as the paper writes it.
    Project,
    /// The projection rescaled to the norm of `g`, as the authors' public `OrthoGrad` code
    /// does.
    ProjectKeepNorm,
}

impl std::fmt::Display for PerpGrad {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            PerpGrad::None => "none",
            PerpGrad::Project => "project",
            PerpGrad::ProjectKeepNorm => "project-keep-norm",
        })
    }
}

/// A checked network shape with everything its fleet needs to initialise its models.
#[derive(Clone, Debug, PartialEq)]
pub enum Architecture {
    Mlp {
        arch: Arch,
        init: Init,
        /// Standard deviation of the normal init.
        init_std: f64,
    },
    Transformer(TransformerArch),
    Deep(DeepArch),
}

impl Architecture {
    /// The kind's implementation of [`NetworkKind`]: the one `match` on the kinds outside the
    /// engines.
    pub fn kind(&self) -> &dyn NetworkKind {
        match self {
            Architecture::Mlp { arch, .. } => arch,
            Architecture::Transformer(t) => t,
            Architecture::Deep(d) => d,
        }
    }

    /// What the three weight norms of the metrics (`norm_u`, `norm_v`, `norm_w`) measure.
    pub fn norm_names(&self) -> [&'static str; 3] {
        self.kind().norm_names()
    }

    /// What decides the time of a training step besides the batch (sweeps measure one fleet
    /// of each): the shape, not the init.
    pub fn shape_key(&self) -> String {
        self.kind().shape_key()
    }

    /// What one "neuron" of the per-neuron analysis is.
    pub fn neuron_noun(&self) -> &'static str {
        self.kind().neuron_noun()
    }
}

/// Index of the largest logit (the first one on ties, as `torch.argmax`): the prediction.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}
