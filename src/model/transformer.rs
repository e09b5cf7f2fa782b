//! The paper's Transformer (SCIENCE.md §8): its options, its parameters and their
//! initialisation. The forward and backward passes are `train::tpass`.
//!
//! Tokens `[a, b]` → token embedding + learned position embedding → `layers` encoder blocks
//! (multi-head self-attention without a mask, then an MLP of width `mlp_ratio·d`, both
//! residual, LayerNorm before each optional) → (optional final LayerNorm) → logits at the last
//! position through an unbiased output layer (optionally tied to the token embedding).
//! Linear layers follow PyTorch's `[out, in]` layout, `y = x Wᵀ`.

use super::kind::{NetworkKind, Part, Sizes, Tensor, TASKS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// The fixed row chunks every model's batch is cut into by the Transformer engine
/// (`train::transformer`): part of the numerics, and of the memory estimate.
pub const CHUNKS: usize = 4;

/// MLP nonlinearity of the Transformer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TActivation {
    #[default]
    Relu,
    Gelu,
}

impl From<TActivation> for super::mlp::Activation {
    fn from(a: TActivation) -> Self {
        match a {
            TActivation::Relu => super::mlp::Activation::Relu,
            TActivation::Gelu => super::mlp::Activation::Gelu,
        }
    }
}

/// How the linear layers are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TInit {
    /// The reference's `kaiming_normal_(fan_in, linear)`: `Normal(0, 1/fan_in)`.
    #[default]
    Normal,
    /// PyTorch's `nn.Linear` default: `Uniform(±1/sqrt(fan_in))`.
    Uniform,
}

/// The Transformer's shape and options (shared by a fleet).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformerConfig {
    /// Model width d.
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    /// MLP width = mlp_ratio · d.
    pub mlp_ratio: usize,
    pub activation: TActivation,
    /// Pre-LayerNorm in each block and before the output layer.
    pub layernorm: bool,
    /// Output layer = token embedding.
    pub tie_embeddings: bool,
    /// The reference's scaling: logits × d^{-(1+s)/2}, attention scores × d_head^{-(1+s)/2}
    /// (s = `mup_s`: 1 is μP, the notebook's default; 0 the standard parametrization). With
    /// `mup = false` the logits are not scaled and attention uses 1/sqrt(d_head).
    pub mup: bool,
    pub mup_s: f64,
    /// Biases in the MLP of each block (the reference has none).
    pub mlp_bias: bool,
    /// Initialisation of the linear layers (embeddings are always `Normal(0, 1)`).
    pub init: TInit,
    /// Apply weight decay to the embeddings too (default, as the reference's timm grouping:
    /// every parameter of two or more dimensions decays).
    pub decay_embeddings: bool,
    /// Apply weight decay to LayerNorm gains and biases too.
    pub decay_norms: bool,
    /// The reference's `rescale_optim` (AdamW per-layer learning rates, `utils/models.py`):
    /// with g = d^{s/2 − 1/2}, attention matrices lr·g/d, the MLP's first layer
    /// lr·g·r^{−1/2}/d and its second lr·g/(r·d) (r = `mlp_ratio`), the output layer lr·g, the
    /// embeddings lr·g without weight decay, LayerNorm lr without weight decay; s = `mup_s`
    /// (0 with `mup = false`). Weight decay acts through each group's rate. Written to
    /// config.toml only when on, so that the training fingerprint of runs made before it
    /// existed is unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rescale_optim: bool,
}

/// A checked Transformer: its shape and options on `p` tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerArch {
    pub cfg: TransformerConfig,
    pub p: usize,
}

impl NetworkKind for TransformerArch {
    fn parameters(&self) -> Vec<Tensor> {
        layout(&self.cfg, self.p)
            .into_iter()
            .map(|s| Tensor {
                name: s.name,
                shape: s.shape,
                transposed: false,
            })
            .collect()
    }

    fn norm_names(&self) -> [&'static str; 3] {
        ["‖token embedding‖", "‖MLP weights‖", "‖output layer‖"]
    }

    fn neuron_noun(&self) -> &'static str {
        "MLP neurons"
    }

    fn shape_key(&self) -> String {
        format!("transformer p={} {:?}", self.p, self.cfg)
    }

    fn memory_parts(&self, s: &Sizes) -> Vec<Part> {
        let (p, m, rows, table) = (s.p, s.models, s.rows, s.table);
        let mut parts = Vec::new();
        let d = self.cfg.d_model as f64;
        let hidden = self.cfg.hidden() as f64;
        let layers = self.cfg.layers as f64;
        let heads = self.cfg.heads as f64;
        let params =
            layers * (4.0 * d * d + 2.0 * hidden * d + hidden + 9.0 * d) + 2.0 * p * d + 4.0 * d;
        // Parameters and AdamW's two moments (12 bytes a parameter) and, while the weights
        // or the resumable state are written, their copies and serialized bytes (24).
        parts.push(("models", "model.transformer.d_model", m * 36.0 * params));
        // The engine (train::transformer): at most TASKS (model, chunk) training
        // workspaces, kept between steps, each holding its chunk's activations, their
        // gradients and a parameter gradient, plus each wave model's summed gradient;
        // evaluation adds one workspace of up to 2048 rows per busy thread. Per example
        // and block, in f32: a chunk's own table (two rows: x, LayerNorm, Q, K, V and
        // VO), the example part (attention, residual, LayerNorm, the MLP's two hidden
        // layers, output) and their gradients; then the logits and the head's buffers.
        let per_example = layers * (22.0 * d + 4.0 * heads * d + 4.0 * hidden + 4.0 * heads + 4.0)
            + p
            + 8.0 * d
            + 2.0 * hidden;
        let chunks = (CHUNKS as f64).min(rows.max(1.0));
        let chunk_rows = (rows / chunks).ceil();
        let train_tasks = TASKS.min(m * chunks);
        let threads = std::thread::available_parallelism()
            .map_or(TASKS, |n| n.get() as f64)
            .min(TASKS);
        let eval_rows = table.min(2048.0);
        let eval_tasks = threads.min(m * (table / 2048.0).ceil());
        parts.push((
            "activations",
            "model.transformer.d_model",
            4.0 * (train_tasks * (chunk_rows * per_example + params)
                + eval_tasks * eval_rows * per_example
                + 4.0 * params),
        ));
        parts
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for TransformerConfig {
    fn default() -> Self {
        TransformerConfig {
            d_model: 128,
            heads: 4,
            layers: 1,
            mlp_ratio: 4,
            activation: TActivation::Relu,
            layernorm: false,
            tie_embeddings: false,
            mup: true,
            mup_s: 1.0,
            mlp_bias: false,
            init: TInit::Normal,
            decay_embeddings: true,
            decay_norms: false,
            rescale_optim: false,
        }
    }
}

impl TransformerConfig {
    pub fn hidden(&self) -> usize {
        self.mlp_ratio * self.d_model
    }
    pub fn head_dim(&self) -> usize {
        self.d_model / self.heads.max(1)
    }
    /// A parameter's learning-rate factor and whether it decays, under `rescale_optim`
    /// (`None` without it: every parameter at lr, decay by [`Kind`]).
    pub fn rescaled(&self, name: &str, kind: Kind) -> Option<(f64, bool)> {
        if !self.rescale_optim {
            return None;
        }
        let d = self.d_model as f64;
        let s = if self.mup { self.mup_s } else { 0.0 };
        let g = d.powf(s / 2.0 - 0.5);
        let r = self.mlp_ratio as f64;
        Some(match kind {
            Kind::Embedding => (g, false),
            Kind::Norm => (1.0, false),
            // Refused by the config check (the reference's model has no biases).
            Kind::Bias => (1.0, false),
            Kind::Matrix if name.ends_with("mlp.fc1") => (g / r.sqrt() / d, true),
            Kind::Matrix if name.ends_with("mlp.fc2") => (g / (r * d), true),
            Kind::Matrix if name.contains(".attn.") => (g / d, true),
            Kind::Matrix => (g, true),
        })
    }

    /// The factor on the logits.
    pub fn logit_scale(&self) -> f64 {
        if self.mup {
            (self.d_model as f64).powf(-(1.0 + self.mup_s) / 2.0)
        } else {
            1.0
        }
    }
    /// The factor on the attention scores.
    pub fn attn_scale(&self) -> f64 {
        let dh = self.head_dim() as f64;
        if self.mup {
            dh.powf(-(1.0 + self.mup_s) / 2.0)
        } else {
            1.0 / dh.sqrt()
        }
    }
}

/// The kind of a parameter, for weight-decay groups and analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Embedding,
    Matrix,
    Bias,
    Norm,
}

/// One named parameter of the flat parameter vector.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: Kind,
    /// Offset in the flat vector.
    pub offset: usize,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f64) -> Vec<f32> {
    (0..n)
        .map(|_| rng.random_range(-bound..bound) as f32)
        .collect()
}

/// `n` weights of a linear layer with `fan_in` inputs.
fn linear(init: TInit, rng: &mut ChaCha8Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let b = 1.0 / (fan_in as f64).sqrt();
    match init {
        TInit::Uniform => uniform(rng, n, b),
        TInit::Normal => {
            let normal = Normal::new(0.0f64, b).expect("positive std");
            (0..n).map(|_| normal.sample(rng) as f32).collect()
        }
    }
}

/// The parameters of a Transformer in order (names as in PyTorch's `[out, in]` layout).
pub fn layout(cfg: &TransformerConfig, p: usize) -> Vec<ParamSpec> {
    init_specs(cfg, p, None).0
}

/// The parameter layout and, with `seed`, the initial values (flat, in layout order).
fn init_specs(cfg: &TransformerConfig, p: usize, seed: Option<u64>) -> (Vec<ParamSpec>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.unwrap_or(0));
    let draw = seed.is_some();
    let normal = Normal::new(0.0f64, 1.0).expect("valid");
    let (d, h) = (cfg.d_model, cfg.hidden());
    let mut specs: Vec<ParamSpec> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, kind: Kind, v: Vec<f32>| {
        let offset = specs
            .last()
            .map(|s: &ParamSpec| s.offset + s.len())
            .unwrap_or(0);
        specs.push(ParamSpec {
            name,
            shape,
            kind,
            offset,
        });
        values.extend(v);
    };
    let emb = |rows: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
        if !draw {
            return Vec::new();
        }
        (0..rows * d).map(|_| normal.sample(rng) as f32).collect()
    };
    let v = emb(p, &mut rng);
    push("tok_emb".into(), vec![p, d], Kind::Embedding, v);
    let v = emb(2, &mut rng);
    push("pos_emb".into(), vec![2, d], Kind::Embedding, v);
    let lin = |out: usize, inp: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
        if draw {
            linear(cfg.init, rng, out * inp, inp)
        } else {
            Vec::new()
        }
    };
    let bias = |n: usize, fan_in: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
        if draw {
            uniform(rng, n, 1.0 / (fan_in as f64).sqrt())
        } else {
            Vec::new()
        }
    };
    let fill = |n: usize, x: f32| if draw { vec![x; n] } else { Vec::new() };
    for l in 0..cfg.layers {
        for n in ["attn.wq", "attn.wk", "attn.wv", "attn.wo"] {
            let v = lin(d, d, &mut rng);
            push(format!("layers.{l}.{n}"), vec![d, d], Kind::Matrix, v);
        }
        let v = lin(h, d, &mut rng);
        push(format!("layers.{l}.mlp.fc1"), vec![h, d], Kind::Matrix, v);
        if cfg.mlp_bias {
            let v = bias(h, d, &mut rng);
            push(format!("layers.{l}.mlp.fc1_bias"), vec![h], Kind::Bias, v);
        }
        let v = lin(d, h, &mut rng);
        push(format!("layers.{l}.mlp.fc2"), vec![d, h], Kind::Matrix, v);
        if cfg.mlp_bias {
            let v = bias(d, h, &mut rng);
            push(format!("layers.{l}.mlp.fc2_bias"), vec![d], Kind::Bias, v);
        }
        if cfg.layernorm {
            for n in ["ln1", "ln2"] {
                push(
                    format!("layers.{l}.{n}.weight"),
                    vec![d],
                    Kind::Norm,
                    fill(d, 1.0),
                );
                push(
                    format!("layers.{l}.{n}.bias"),
                    vec![d],
                    Kind::Norm,
                    fill(d, 0.0),
                );
            }
        }
    }
    if cfg.layernorm {
        push("ln_f.weight".into(), vec![d], Kind::Norm, fill(d, 1.0));
        push("ln_f.bias".into(), vec![d], Kind::Norm, fill(d, 0.0));
    }
    if !cfg.tie_embeddings {
        let v = lin(p, d, &mut rng);
        push("unembed".into(), vec![p, d], Kind::Matrix, v);
    }
    (specs, values)
}

/// The initial parameters of one Transformer, flat in [`layout`] order: embeddings
/// `Normal(0, 1)`; linear weights `Normal(0, 1/fan_in)` (the reference's init) or
/// `Uniform(±1/sqrt(fan_in))` (PyTorch's default, `init = "uniform"`); MLP biases
/// `Uniform(±1/sqrt(fan_in))`; LayerNorm γ = 1, β = 0; drawn from `seed`.
pub fn init(cfg: &TransformerConfig, p: usize, seed: u64) -> Vec<f32> {
    init_specs(cfg, p, Some(seed)).1
}
