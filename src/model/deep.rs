//! The deep MLP on dense inputs (SCIENCE.md §9): `L` hidden layers
//! `h_{l+1} = drop(φ(norm(W_l h_l + b_l)))`, then a linear read-out. Its options (the table
//! `[model.deep]`), its parameter layout and its initialisation; the passes are
//! `train::deep`.
//!
//! Linear layers follow PyTorch's `[out, in]` layout, `y = x Wᵀ + b`, and its default
//! initialisation (`nn.Linear`: weights and biases from `Uniform(±1/√fan_in)`); BatchNorm
//! and LayerNorm start at γ = 1, β = 0. The order within a layer is Linear → norm → φ →
//! dropout (docs/DECISIONS.md "The deep MLP").

use super::kind::{NetworkKind, Part, Sizes, Tensor, TASKS};
use super::mlp::{Activation, MAX_WIDTH};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The most hidden layers.
pub const MAX_DEPTH: usize = 64;

/// The normalisation after each hidden layer's linear map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    #[default]
    None,
    /// BatchNorm over the batch (running statistics in evaluation), PyTorch's `BatchNorm1d`.
    Batchnorm,
    /// LayerNorm over the layer's units, PyTorch's `LayerNorm` (ε = 1e-5).
    Layernorm,
}

/// The table `[model.deep]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepConfig {
    /// The width of each hidden layer, input side first (their number is the depth L).
    pub widths: Vec<usize>,
    /// φ: `relu`, `gelu` (exact) or `square` (also written `quadratic`).
    pub activation: Activation,
    /// Biases in every linear layer.
    pub bias: bool,
    /// `none`, `batchnorm` or `layernorm`, after each hidden layer's linear map.
    pub norm: Norm,
    /// BatchNorm's running-statistics momentum (PyTorch's convention).
    pub bn_momentum: f64,
    pub bn_eps: f64,
}

impl Default for DeepConfig {
    fn default() -> Self {
        DeepConfig {
            widths: vec![200, 200, 200],
            activation: Activation::Relu,
            bias: true,
            norm: Norm::None,
            bn_momentum: 0.1,
            bn_eps: 1e-5,
        }
    }
}

/// What every deep MLP of a fleet shares: the checked table plus the input and output sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepArch {
    /// Features per input.
    pub dim: usize,
    /// Classes = outputs.
    pub classes: usize,
    pub widths: Vec<usize>,
    pub activation: Activation,
    pub bias: bool,
    pub norm: Norm,
    pub bn_momentum: f32,
    pub bn_eps: f32,
}

/// Where one linear layer's tensors lie in the flat parameter vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSlots {
    pub fan_in: usize,
    pub fan_out: usize,
    /// `[fan_out, fan_in]`, row-major.
    pub weight: std::ops::Range<usize>,
    pub bias: Option<std::ops::Range<usize>>,
    /// The norm's γ and β (hidden layers with a norm).
    pub gamma: Option<std::ops::Range<usize>>,
    pub beta: Option<std::ops::Range<usize>>,
}

impl DeepConfig {
    pub fn is_default(&self) -> bool {
        *self == DeepConfig::default()
    }

    /// Checks the table into the architecture of a fleet on inputs of `dim` features and
    /// `classes` classes.
    pub fn check(&self, dim: usize, classes: usize) -> Result<DeepArch> {
        if self.widths.is_empty() || self.widths.len() > MAX_DEPTH {
            return Err(Error::invalid(
                "model.deep.widths",
                format!(
                    "give 1 to {MAX_DEPTH} hidden widths (e.g. [200, 200, 200]), got {}",
                    self.widths.len()
                ),
            ));
        }
        if let Some(w) = self.widths.iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
            return Err(Error::invalid(
                "model.deep.widths",
                format!("every width must lie in [1, {MAX_WIDTH}], got {w}"),
            ));
        }
        if !(self.bn_momentum >= 0.0 && self.bn_momentum <= 1.0) {
            return Err(Error::invalid(
                "model.deep.bn_momentum",
                "must lie in [0, 1]",
            ));
        }
        if !(self.bn_eps > 0.0 && self.bn_eps.is_finite()) {
            return Err(Error::invalid("model.deep.bn_eps", "must be positive"));
        }
        Ok(DeepArch {
            dim,
            classes,
            widths: self.widths.clone(),
            activation: self.activation,
            bias: self.bias,
            norm: self.norm,
            bn_momentum: self.bn_momentum as f32,
            bn_eps: self.bn_eps as f32,
        })
    }
}

impl DeepArch {
    /// The hidden layers' count L.
    pub fn depth(&self) -> usize {
        self.widths.len()
    }

    /// Every linear layer (the L hidden ones, then the read-out) with its slots.
    pub fn slots(&self) -> Vec<LayerSlots> {
        let mut at = 0;
        let mut take = |n: usize| {
            let r = at..at + n;
            at += n;
            r
        };
        let mut out = Vec::with_capacity(self.widths.len() + 1);
        let mut fan_in = self.dim;
        for (l, &w) in self.widths.iter().chain([&self.classes]).enumerate() {
            let hidden = l < self.widths.len();
            let weight = take(w * fan_in);
            let bias = self.bias.then(|| take(w));
            let normed = hidden && self.norm != Norm::None;
            let gamma = normed.then(|| take(w));
            let beta = normed.then(|| take(w));
            out.push(LayerSlots {
                fan_in,
                fan_out: w,
                weight,
                bias,
                gamma,
                beta,
            });
            fan_in = w;
        }
        out
    }

    pub fn n_params(&self) -> usize {
        self.slots()
            .iter()
            .flat_map(|s| [Some(&s.weight), s.bias.as_ref(), s.beta.as_ref()])
            .flatten()
            .map(|r| r.end)
            .max()
            .unwrap_or(0)
    }

    /// Hidden units over all layers (the neurons of the per-neuron analyses).
    pub fn n_neurons(&self) -> usize {
        self.widths.iter().sum()
    }

    /// PyTorch's `nn.Linear` default init from `seed`: every weight and bias of a layer with
    /// fan-in `f` from `Uniform(−1/√f, 1/√f)`, drawn layer by layer (weights row-major, then
    /// the bias); norms at γ = 1, β = 0.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = vec![0f32; self.n_params()];
        for s in self.slots() {
            let bound = 1.0 / (s.fan_in as f64).sqrt();
            let mut fill = |r: std::ops::Range<usize>| {
                for x in &mut params[r] {
                    *x = rng.random_range(-bound..bound) as f32;
                }
            };
            fill(s.weight.clone());
            if let Some(b) = s.bias.clone() {
                fill(b);
            }
            if let Some(g) = s.gamma.clone() {
                params[g].fill(1.0);
            }
        }
        params
    }
}

impl NetworkKind for DeepArch {
    fn parameters(&self) -> Vec<Tensor> {
        let t = |name: String, shape: Vec<usize>| Tensor {
            name,
            shape,
            transposed: false,
        };
        let last = self.widths.len();
        let mut out = Vec::new();
        for (l, s) in self.slots().iter().enumerate() {
            let base = if l == last {
                "out".to_string()
            } else {
                format!("layers.{l}")
            };
            out.push(t(format!("{base}.weight"), vec![s.fan_out, s.fan_in]));
            if s.bias.is_some() {
                out.push(t(format!("{base}.bias"), vec![s.fan_out]));
            }
            if s.gamma.is_some() {
                out.push(t(format!("{base}.norm.weight"), vec![s.fan_out]));
                out.push(t(format!("{base}.norm.bias"), vec![s.fan_out]));
            }
        }
        out
    }

    fn norm_names(&self) -> [&'static str; 3] {
        ["‖first layer‖", "‖hidden layers‖", "‖read-out‖"]
    }

    fn neuron_noun(&self) -> &'static str {
        "hidden units"
    }

    fn shape_key(&self) -> String {
        format!("deep {self:?}")
    }

    fn memory_parts(&self, s: &Sizes) -> Vec<Part> {
        let (m, rows) = (s.models, s.rows);
        let params = self.n_params() as f64;
        let units = self.n_neurons() as f64 + self.classes as f64;
        let widest = self
            .widths
            .iter()
            .chain([&self.classes, &self.dim])
            .max()
            .copied()
            .unwrap_or(1) as f64;
        let key = "model.deep.widths";
        // Parameters, AdamW's two moments and, while written, their copies (36 bytes a
        // parameter); each model's gradient (4 bytes).
        let mut parts = vec![("models", key, m * 40.0 * params)];
        // A training task (one per model, at most TASKS at once) keeps its batch's
        // pre-activations, normalised values, outputs and dropout masks per unit, and two
        // rows of the widest layer for the backward pass; an evaluation task 2048 rows.
        let task_rows = rows.max(2048.0);
        parts.push((
            "activations",
            key,
            TASKS.min(m.max(1.0)) * task_rows * 4.0 * (4.0 * units + 3.0 * widest),
        ));
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(norm: Norm, bias: bool) -> DeepArch {
        DeepConfig {
            widths: vec![5, 3],
            norm,
            bias,
            ..Default::default()
        }
        .check(7, 4)
        .unwrap()
    }

    #[test]
    fn the_layout_counts_every_tensor_once_in_order() {
        let a = arch(Norm::Batchnorm, true);
        // 7→5 (+5 bias, +10 norm), 5→3 (+3, +6), 3→4 (+4).
        assert_eq!(a.n_params(), 35 + 15 + 15 + 9 + 12 + 4);
        let layout = a.parameters();
        let names: Vec<&str> = layout.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "layers.0.weight",
                "layers.0.bias",
                "layers.0.norm.weight",
                "layers.0.norm.bias",
                "layers.1.weight",
                "layers.1.bias",
                "layers.1.norm.weight",
                "layers.1.norm.bias",
                "out.weight",
                "out.bias"
            ]
        );
        assert_eq!(super::super::kind::n_parameters(&layout), a.n_params());
        let plain = arch(Norm::None, false);
        assert_eq!(plain.n_params(), 35 + 15 + 12);
    }

    #[test]
    fn the_init_is_pytorchs_uniform_bound_and_seeded() {
        let a = arch(Norm::Layernorm, true);
        let p = a.init_params(3);
        assert_eq!(p, a.init_params(3));
        assert_ne!(p, a.init_params(4));
        for s in a.slots() {
            let bound = 1.0 / (s.fan_in as f32).sqrt();
            assert!(p[s.weight.clone()].iter().all(|x| x.abs() <= bound));
            if let Some(g) = s.gamma {
                assert!(p[g].iter().all(|&x| x == 1.0));
            }
            if let Some(b) = s.beta {
                assert!(p[b].iter().all(|&x| x == 0.0));
            }
        }
    }

    #[test]
    fn bad_tables_are_refused_naming_the_key() {
        for c in [
            DeepConfig {
                widths: vec![],
                ..Default::default()
            },
            DeepConfig {
                widths: vec![10, 0],
                ..Default::default()
            },
        ] {
            let e = c.check(4, 2).unwrap_err().to_string();
            assert!(e.contains("model.deep.widths"), "{e}");
        }
    }
}
