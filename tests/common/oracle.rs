//! The oracle for the Transformer engine: the same network written with candle tensors and
//! differentiated by candle's autograd, trained by the same AdamW. Tests only.

use candle_core::{DType, Device, Tensor, Var, D};
use grokscope::model::transformer::{ParamSpec, TActivation, TransformerConfig};
use grokscope::train::adamw::{AdamWHyper, AdamWState};
use grokscope::train::loss::Loss;
use grokscope::train::tpass::{self, Shape};
use grokscope::train::transformer::default_decay;

type CResult<T> = candle_core::Result<T>;

/// One Transformer on candle variables.
pub struct Oracle {
    pub cfg: TransformerConfig,
    pub p: usize,
    pub specs: Vec<ParamSpec>,
    pub vars: Vec<Var>,
    pub dtype: DType,
    adam: Vec<AdamWState<f64>>,
    adam32: Vec<AdamWState<f32>>,
}

/// Dropout masks as tensors, at the places of the engine.
struct TMasks {
    emb: Tensor,
    layers: Vec<(Tensor, Tensor, Tensor)>,
}

impl Oracle {
    /// The network with the flat parameters `values` (in `specs` order).
    pub fn new(cfg: &TransformerConfig, p: usize, values: &[f64], dtype: DType) -> Oracle {
        let specs = grokscope::model::transformer::layout(cfg, p);
        let vars = specs
            .iter()
            .map(|s| {
                let t = Tensor::from_vec(values[s.range()].to_vec(), s.shape.clone(), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                Var::from_tensor(&t).unwrap()
            })
            .collect();
        let adam = specs.iter().map(|s| AdamWState::new(s.len())).collect();
        let adam32 = specs.iter().map(|s| AdamWState::new(s.len())).collect();
        Oracle {
            cfg: cfg.clone(),
            p,
            specs,
            vars,
            dtype,
            adam,
            adam32,
        }
    }

    fn get(&self, name: &str) -> &Tensor {
        let j = self.specs.iter().position(|s| s.name == name).unwrap();
        self.vars[j].as_tensor()
    }

    fn unembed(&self) -> &Tensor {
        if self.cfg.tie_embeddings {
            self.get("tok_emb")
        } else {
            self.get("unembed")
        }
    }

    fn masks(&self, q: f32, seed: u64, step: u64, b: usize) -> Option<TMasks> {
        let sh = Shape::new(&self.cfg, self.p, &self.specs);
        let m = tpass::masks::<f64>(&sh, q, seed, step, b, 0..b)?;
        let (d, nh) = (self.cfg.d_model, self.cfg.heads);
        let t = |v: Vec<f64>, shape: &[usize]| {
            Tensor::from_vec(v, shape, &Device::Cpu)
                .unwrap()
                .to_dtype(self.dtype)
                .unwrap()
        };
        Some(TMasks {
            emb: t(m.emb, &[b, 2, d]),
            layers: m
                .layers
                .into_iter()
                .map(|l| {
                    (
                        t(l.att, &[b, nh, 2, 2]),
                        t(l.ao, &[b, 2, d]),
                        t(l.mlp, &[b, 2, d]),
                    )
                })
                .collect(),
        })
    }

    /// Logits `[B, p]` for `tokens` `[B, 2]` (u32).
    fn forward(&self, tokens: &Tensor, masks: Option<&TMasks>) -> CResult<Tensor> {
        let cfg = &self.cfg;
        let (b, _) = tokens.dims2()?;
        let (d, hd, nh) = (cfg.d_model, cfg.head_dim(), cfg.heads);
        let emb = self
            .get("tok_emb")
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, 2, d))?;
        let mut x = emb.broadcast_add(self.get("pos_emb"))?;
        if let Some(mk) = masks {
            x = (x * &mk.emb)?;
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
                att = (att * &mk.layers[l].0)?;
            }
            let o = att
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, 2, d))?
                .broadcast_matmul(&w("attn.wo").t()?)?;
            let o = match masks {
                Some(mk) => (o * &mk.layers[l].1)?,
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
                // 0.5 x (1 + erf(x/√2)) from its parts: candle's fused `gelu_erf`
                // differentiates with 1/√(2π) rounded to 0.398942 (relative error 7e-7).
                TActivation::Gelu => {
                    ((&pre * 0.5)? * ((&pre * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)?)?
                }
            };
            let mut m = act.broadcast_matmul(&w("mlp.fc2").t()?)?;
            if cfg.mlp_bias {
                m = m.broadcast_add(w("mlp.fc2_bias"))?;
            }
            let m = match masks {
                Some(mk) => (m * &mk.layers[l].2)?,
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

    /// Mean batch loss and its gradient (per parameter, f64) on `tokens`/`labels`, with the
    /// dropout masks of rate `q` of fleet step `step`.
    pub fn gradients(
        &self,
        loss: Loss,
        tokens: &[[u32; 2]],
        labels: &[u32],
        dropout: (f32, u64, u64),
    ) -> (f64, Vec<Vec<f64>>) {
        let b = tokens.len();
        let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
        let tok = Tensor::from_vec(flat, (b, 2), &Device::Cpu).unwrap();
        let masks = self.masks(dropout.0, dropout.1, dropout.2, b);
        let logits = self.forward(&tok, masks.as_ref()).unwrap();
        let lab = Tensor::from_vec(labels.to_vec(), b, &Device::Cpu).unwrap();
        let l = loss_tensor(loss, &logits, &lab, self.p).unwrap();
        let grads = l.backward().unwrap();
        let g = self
            .vars
            .iter()
            .map(|v| match grads.get(v.as_tensor()) {
                Some(g) => g
                    .flatten_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap(),
                None => vec![0.0; v.elem_count()],
            })
            .collect();
        (
            l.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap(),
            g,
        )
    }

    /// One AdamW step with gradient `g` (f64 state in f64, f32 state in f32), groups as the
    /// engine's.
    pub fn step(&mut self, adam: &AdamWHyper, g: &[Vec<f64>]) {
        for (j, s) in self.specs.iter().enumerate() {
            let (lr, decays) = self
                .cfg
                .rescaled(&s.name, s.kind)
                .unwrap_or((1.0, default_decay(&self.cfg, s.kind)));
            let h = AdamWHyper {
                lr: adam.lr * lr,
                weight_decay: if decays { adam.weight_decay } else { 0.0 },
                ..*adam
            };
            let v = self.vars[j].as_tensor().flatten_all().unwrap();
            let t = if self.dtype == DType::F64 {
                let mut w = v.to_vec1::<f64>().unwrap();
                self.adam[j].step(&h, &mut w, &g[j]);
                Tensor::from_vec(w, s.shape.clone(), &Device::Cpu).unwrap()
            } else {
                let mut w = v.to_vec1::<f32>().unwrap();
                let g32: Vec<f32> = g[j].iter().map(|&x| x as f32).collect();
                self.adam32[j].step(&h, &mut w, &g32);
                Tensor::from_vec(w, s.shape.clone(), &Device::Cpu).unwrap()
            };
            self.vars[j].set(&t).unwrap();
        }
    }

    /// Parameter `j` as f64.
    pub fn param(&self, j: usize) -> Vec<f64> {
        self.vars[j]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
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
fn softmax_last(x: &Tensor) -> CResult<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Mean batch loss: cross-entropy over examples, or MSE over all `B × p` entries.
pub fn loss_tensor(loss: Loss, logits: &Tensor, labels: &Tensor, p: usize) -> CResult<Tensor> {
    match loss {
        Loss::CrossEntropy => {
            let lse = logits.log_sum_exp(D::Minus1)?;
            let picked = logits.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?;
            (lse - picked)?.mean_all()
        }
        Loss::StableMax => {
            // s(x) = x + 1 (x ≥ 0), 1/(1 − x) (x < 0), written as relu(x) + 1/(1 + relu(−x)).
            let s = (logits.relu()? + ((logits.neg()?.relu()? + 1.0)?.recip())?)?;
            let total = s.sum_keepdim(D::Minus1)?.squeeze(1)?.log()?;
            let picked = s.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.log()?;
            (total - picked)?.mean_all()
        }
        Loss::Mse => {
            let b = labels.dims1()?;
            let idx = labels.to_vec1::<u32>()?;
            let mut onehot = vec![0.0f64; b * p];
            for (r, &y) in idx.iter().enumerate() {
                onehot[r * p + y as usize] = 1.0;
            }
            let t = Tensor::from_vec(onehot, (b, p), &Device::Cpu)?.to_dtype(logits.dtype())?;
            (logits - t)?.sqr()?.mean_all()
        }
    }
}
