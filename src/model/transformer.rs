//! The paper's Transformer (SCIENCE.md §8) on candle tensors, differentiated by candle's autograd.
//!
//! Tokens `[a, b]` → token embedding + learned position embedding → `layers` encoder blocks
//! (multi-head self-attention without a mask, then an MLP of width `mlp_ratio·d`, both
//! residual, LayerNorm before each optional) → (optional final LayerNorm) → logits at the last
//! position through an unbiased output layer (optionally tied to the token embedding).
//! Linear layers follow PyTorch's `[out, in]` layout, `y = x Wᵀ`.

use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

pub type CResult<T> = candle_core::Result<T>;

/// MLP nonlinearity of the Transformer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TActivation {
    #[default]
    Relu,
    Gelu,
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

    fn logit_scale(&self) -> f64 {
        if self.mup {
            (self.d_model as f64).powf(-(1.0 + self.mup_s) / 2.0)
        } else {
            1.0
        }
    }
    fn attn_scale(&self) -> f64 {
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

/// One named parameter.
pub struct Param {
    pub name: String,
    pub var: Var,
    pub kind: Kind,
}

/// Dropout masks of one training step (entries 0 or 1/(1−q)), at the reference's places.
pub struct DropoutMasks {
    /// On the sum of token and position embeddings, `[B, 2, d]`.
    pub embedding: Tensor,
    pub layers: Vec<LayerMasks>,
}

/// Dropout masks of one block.
pub struct LayerMasks {
    /// On the attention probabilities, `[B, heads, 2, 2]`.
    pub attention: Tensor,
    /// On the attention output after `Wo`, `[B, 2, d]`.
    pub attn_out: Tensor,
    /// On the MLP output, `[B, 2, d]`.
    pub mlp_out: Tensor,
}

/// The parameters of one Transformer.
pub struct TModel {
    pub cfg: TransformerConfig,
    pub p: usize,
    pub params: Vec<Param>,
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

impl TModel {
    /// Embeddings `Normal(0, 1)`; linear weights `Normal(0, 1/fan_in)` (the reference's
    /// init) or `Uniform(±1/sqrt(fan_in))` (PyTorch's default, `init = "uniform"`); MLP biases
    /// `Uniform(±1/sqrt(fan_in))`; LayerNorm γ = 1, β = 0; drawn from `seed`.
    pub fn init(cfg: &TransformerConfig, p: usize, seed: u64, dtype: DType) -> CResult<TModel> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f64, 1.0).expect("valid");
        let (d, h) = (cfg.d_model, cfg.hidden());
        let mut specs: Vec<(String, Vec<usize>, Vec<f32>, Kind)> = Vec::new();
        let emb = |name: &str, rows: usize, rng: &mut ChaCha8Rng| {
            let v: Vec<f32> = (0..rows * d).map(|_| normal.sample(rng) as f32).collect();
            (name.to_string(), vec![rows, d], v, Kind::Embedding)
        };
        specs.push(emb("tok_emb", p, &mut rng));
        specs.push(emb("pos_emb", 2, &mut rng));
        for l in 0..cfg.layers {
            let lin = |name: &str, out: usize, inp: usize, rng: &mut ChaCha8Rng| {
                (
                    format!("layers.{l}.{name}"),
                    vec![out, inp],
                    linear(cfg.init, rng, out * inp, inp),
                    Kind::Matrix,
                )
            };
            let wq = lin("attn.wq", d, d, &mut rng);
            let wk = lin("attn.wk", d, d, &mut rng);
            let wv = lin("attn.wv", d, d, &mut rng);
            let wo = lin("attn.wo", d, d, &mut rng);
            let fc1 = lin("mlp.fc1", h, d, &mut rng);
            let fc1_b = cfg.mlp_bias.then(|| {
                (
                    format!("layers.{l}.mlp.fc1_bias"),
                    vec![h],
                    uniform(&mut rng, h, 1.0 / (d as f64).sqrt()),
                    Kind::Bias,
                )
            });
            let fc2 = lin("mlp.fc2", d, h, &mut rng);
            let fc2_b = cfg.mlp_bias.then(|| {
                (
                    format!("layers.{l}.mlp.fc2_bias"),
                    vec![d],
                    uniform(&mut rng, d, 1.0 / (h as f64).sqrt()),
                    Kind::Bias,
                )
            });
            specs.extend([wq, wk, wv, wo, fc1]);
            specs.extend(fc1_b);
            specs.push(fc2);
            specs.extend(fc2_b);
            if cfg.layernorm {
                for n in ["ln1", "ln2"] {
                    specs.push((
                        format!("layers.{l}.{n}.weight"),
                        vec![d],
                        vec![1.0; d],
                        Kind::Norm,
                    ));
                    specs.push((
                        format!("layers.{l}.{n}.bias"),
                        vec![d],
                        vec![0.0; d],
                        Kind::Norm,
                    ));
                }
            }
        }
        if cfg.layernorm {
            specs.push(("ln_f.weight".into(), vec![d], vec![1.0; d], Kind::Norm));
            specs.push(("ln_f.bias".into(), vec![d], vec![0.0; d], Kind::Norm));
        }
        if !cfg.tie_embeddings {
            specs.push((
                "unembed".into(),
                vec![p, d],
                linear(cfg.init, &mut rng, p * d, d),
                Kind::Matrix,
            ));
        }
        let params = specs
            .into_iter()
            .map(|(name, shape, v, kind)| {
                let t = Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)?;
                Ok(Param {
                    name,
                    var: Var::from_tensor(&t)?,
                    kind,
                })
            })
            .collect::<CResult<Vec<_>>>()?;
        Ok(TModel {
            cfg: cfg.clone(),
            p,
            params,
        })
    }

    pub fn get(&self, name: &str) -> &Tensor {
        self.params
            .iter()
            .find(|q| q.name == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
            .var
            .as_tensor()
    }

    /// The output layer `[p, d]` (the token embedding when tied).
    pub fn unembed(&self) -> &Tensor {
        if self.cfg.tie_embeddings {
            self.get("tok_emb")
        } else {
            self.get("unembed")
        }
    }

    /// Logits `[B, p]` for `tokens` `[B, 2]` (u32), with dropout `masks` in training.
    pub fn forward(&self, tokens: &Tensor, masks: Option<&DropoutMasks>) -> CResult<Tensor> {
        let cfg = &self.cfg;
        let (b, _) = tokens.dims2()?;
        let (d, hd, nh) = (cfg.d_model, cfg.head_dim(), cfg.heads);
        let emb = self
            .get("tok_emb")
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, 2, d))?;
        let mut x = emb.broadcast_add(self.get("pos_emb"))?;
        if let Some(mk) = masks {
            x = (x * &mk.embedding)?;
        }
        for l in 0..cfg.layers {
            let w = |n: &str| self.get(&format!("layers.{l}.{n}"));
            let h = if cfg.layernorm {
                layer_norm(&x, w("ln1.weight"), w("ln1.bias"))?
            } else {
                x.clone()
            };
            let heads = |m: &Tensor| -> CResult<Tensor> {
                h.broadcast_matmul(&m.t()?)?
                    .reshape((b, 2, nh, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (
                heads(w("attn.wq"))?,
                heads(w("attn.wk"))?,
                heads(w("attn.wv"))?,
            );
            let scores = (q.matmul(&k.t()?.contiguous()?)? * cfg.attn_scale())?;
            let mut att = softmax_last(&scores)?;
            if let Some(mk) = masks {
                att = (att * &mk.layers[l].attention)?;
            }
            let o = att
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, 2, d))?
                .broadcast_matmul(&w("attn.wo").t()?)?;
            let o = match masks {
                Some(mk) => (o * &mk.layers[l].attn_out)?,
                None => o,
            };
            x = (x + o)?;
            let h2 = if cfg.layernorm {
                layer_norm(&x, w("ln2.weight"), w("ln2.bias"))?
            } else {
                x.clone()
            };
            let mut pre = h2.broadcast_matmul(&w("mlp.fc1").t()?)?;
            if cfg.mlp_bias {
                pre = pre.broadcast_add(w("mlp.fc1_bias"))?;
            }
            let act = match cfg.activation {
                TActivation::Relu => pre.relu()?,
                TActivation::Gelu => pre.gelu_erf()?,
            };
            let mut m = act.broadcast_matmul(&w("mlp.fc2").t()?)?;
            if cfg.mlp_bias {
                m = m.broadcast_add(w("mlp.fc2_bias"))?;
            }
            let m = match masks {
                Some(mk) => (m * &mk.layers[l].mlp_out)?,
                None => m,
            };
            x = (x + m)?;
        }
        let mut last = x.narrow(1, 1, 1)?.squeeze(1)?;
        if cfg.layernorm {
            last = layer_norm(&last, self.get("ln_f.weight"), self.get("ln_f.bias"))?;
        }
        last.matmul(&self.unembed().t()?)? * cfg.logit_scale()
    }
}

/// LayerNorm over the last dimension (eps 1e-5), written out so that candle differentiates
/// every part of it.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> CResult<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    xn.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// Softmax over the last dimension (max-subtracted).
pub fn softmax_last(x: &Tensor) -> CResult<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}
