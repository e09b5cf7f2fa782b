//! The Transformer fleet: M Transformers trained one after another with candle's autograd
//! (candle's CPU matrix products use both cores), AdamW with PyTorch's semantics and weight
//! decay only on the matrices unless configured (SPEC §8).

use super::adamw::{AdamWHyper, AdamWState};
use super::engine::{EvalOutput, ModelHyper};
use super::loss::{argmax, Loss};
use super::{Engine, WeightStats};
use crate::analysis::ipr::Ipr;
use crate::data::Split;
use crate::error::{Error, Result};
use crate::model::transformer::{
    CResult, DropoutMasks, Kind, LayerMasks, TModel, TransformerConfig,
};
use candle_core::{DType, Device, Tensor, D};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn ce(e: candle_core::Error) -> Error {
    Error::Output(format!("transformer: {e}"))
}

/// One Transformer with its optimizer state.
pub struct TModelState {
    pub model: TModel,
    /// Host copies of the parameters, in `model.params` order.
    pub host: Vec<Vec<f32>>,
    pub adam: Vec<AdamWState>,
    pub hyper: ModelHyper,
    labels: Tensor,
    eval_labels: Vec<u32>,
}

pub struct TFleet {
    pub cfg: TransformerConfig,
    pub p: usize,
    pub loss: Loss,
    pub models: Vec<TModelState>,
    /// Which parameter kinds get weight decay.
    pub decay: fn(&TransformerConfig, Kind) -> bool,
    train_tokens: Tensor,
    eval_tokens: Vec<Tensor>,
    pub step: u64,
}

/// Rows per evaluation chunk.
const EVAL_ROWS: usize = 2048;

fn tokens(pairs: &[(u32, u32)]) -> CResult<Tensor> {
    let flat: Vec<u32> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    Tensor::from_vec(flat, (pairs.len(), 2), &Device::Cpu)
}

/// Default decay groups: matrices always; embeddings and norms when configured; never biases.
pub fn default_decay(cfg: &TransformerConfig, kind: Kind) -> bool {
    match kind {
        Kind::Matrix => true,
        Kind::Embedding => cfg.decay_embeddings,
        Kind::Norm => cfg.decay_norms,
        Kind::Bias => false,
    }
}

impl TFleet {
    /// A fleet on `split` with one Transformer per `(init seed, hyper-parameters, labels)`,
    /// in `dtype` (f32 for training; f64 for gradient checks).
    pub fn new(
        cfg: &TransformerConfig,
        loss: Loss,
        split: &Split,
        models: Vec<(u64, ModelHyper, Vec<u32>)>,
        dtype: DType,
    ) -> Result<TFleet> {
        let p = split.p;
        let mut out = Vec::with_capacity(models.len());
        for (seed, hyper, labels) in models {
            let model = TModel::init(cfg, p, seed, dtype).map_err(ce)?;
            let host = model
                .params
                .iter()
                .map(|q| {
                    q.var
                        .as_tensor()
                        .flatten_all()?
                        .to_dtype(DType::F32)?
                        .to_vec1::<f32>()
                })
                .collect::<CResult<Vec<_>>>()
                .map_err(ce)?;
            let adam = host.iter().map(|h| AdamWState::new(h.len())).collect();
            let mut eval_labels = labels.clone();
            eval_labels.extend_from_slice(&split.test_labels);
            let n = labels.len();
            out.push(TModelState {
                model,
                host,
                adam,
                hyper,
                labels: Tensor::from_vec(labels, n, &Device::Cpu).map_err(ce)?,
                eval_labels,
            });
        }
        let mut all = split.train_pairs.clone();
        all.extend_from_slice(&split.test_pairs);
        let eval_tokens = all
            .chunks(EVAL_ROWS)
            .map(tokens)
            .collect::<CResult<Vec<_>>>()
            .map_err(ce)?;
        Ok(TFleet {
            cfg: cfg.clone(),
            p,
            loss,
            models: out,
            decay: default_decay,
            train_tokens: tokens(&split.train_pairs).map_err(ce)?,
            eval_tokens,
            step: 0,
        })
    }

    fn batch_tensors(&self, m: usize, batch: Option<&[u32]>) -> CResult<(Tensor, Tensor)> {
        match batch {
            None => Ok((self.train_tokens.clone(), self.models[m].labels.clone())),
            Some(rows) => {
                let idx = Tensor::from_slice(rows, rows.len(), &Device::Cpu)?;
                Ok((
                    self.train_tokens.index_select(&idx, 0)?,
                    self.models[m].labels.index_select(&idx, 0)?,
                ))
            }
        }
    }

    /// Dropout masks for model `m` at the current step: ChaCha8 from the model's dropout seed,
    /// stream = step; entries 0 or 1/(1−q).
    fn masks(&self, m: usize, b: usize, dtype: DType) -> CResult<Option<DropoutMasks>> {
        let q = self.models[m].hyper.dropout;
        if q <= 0.0 {
            return Ok(None);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.models[m].hyper.dropout_seed);
        rng.set_stream(self.step);
        let threshold = (q as f64 * u32::MAX as f64) as u32;
        let scale = 1.0 / (1.0 - q);
        let (d, nh) = (self.cfg.d_model, self.cfg.heads);
        let mut mask = |shape: &[usize]| -> CResult<Tensor> {
            let n = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    if rng.next_u32() >= threshold {
                        scale
                    } else {
                        0.0
                    }
                })
                .collect();
            Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)
        };
        let embedding = mask(&[b, 2, d])?;
        let mut layers = Vec::with_capacity(self.cfg.layers);
        for _ in 0..self.cfg.layers {
            layers.push(LayerMasks {
                attention: mask(&[b, nh, 2, 2])?,
                attn_out: mask(&[b, 2, d])?,
                mlp_out: mask(&[b, 2, d])?,
            });
        }
        Ok(Some(DropoutMasks { embedding, layers }))
    }

    /// The mean batch loss of model `m` (training mode: dropout of the current step).
    pub fn batch_loss(&self, m: usize, batch: Option<&[u32]>) -> CResult<Tensor> {
        let (tok, labels) = self.batch_tensors(m, batch)?;
        let model = &self.models[m].model;
        let dtype = model.params[0].var.dtype();
        let masks = self.masks(m, tok.dims2()?.0, dtype)?;
        let logits = model.forward(&tok, masks.as_ref())?;
        loss_tensor(self.loss, &logits, &labels, self.p)
    }

    /// Loss and gradient (flattened, in parameter order) of model `m`, without a step.
    pub fn gradients(&self, m: usize, batch: Option<&[u32]>) -> Result<(f64, Vec<Vec<f64>>)> {
        let loss = self.batch_loss(m, batch).map_err(ce)?;
        let grads = loss.backward().map_err(ce)?;
        let g = self.models[m]
            .model
            .params
            .iter()
            .map(|q| match grads.get(q.var.as_tensor()) {
                Some(g) => g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>(),
                None => Ok(vec![0.0; q.var.elem_count()]),
            })
            .collect::<CResult<Vec<_>>>()
            .map_err(ce)?;
        Ok((
            loss.to_dtype(DType::F64)
                .map_err(ce)?
                .to_scalar::<f64>()
                .map_err(ce)?,
            g,
        ))
    }

    fn step_on(&mut self, batch: Option<&[u32]>) -> Result<()> {
        for m in 0..self.models.len() {
            let loss = self.batch_loss(m, batch).map_err(ce)?;
            let grads = loss.backward().map_err(ce)?;
            let st = &mut self.models[m];
            for (j, q) in st.model.params.iter().enumerate() {
                let g: Vec<f32> = match grads.get(q.var.as_tensor()) {
                    Some(g) => g
                        .flatten_all()
                        .and_then(|g| g.to_dtype(DType::F32)?.to_vec1()),
                    None => Ok(vec![0.0; st.host[j].len()]),
                }
                .map_err(ce)?;
                let hyper = AdamWHyper {
                    weight_decay: if (self.decay)(&self.cfg, q.kind) {
                        st.hyper.adam.weight_decay
                    } else {
                        0.0
                    },
                    ..st.hyper.adam
                };
                st.adam[j].step(&hyper, &mut st.host[j], &g);
                let t = Tensor::from_slice(&st.host[j], q.var.shape(), &Device::Cpu)
                    .and_then(|t| t.to_dtype(q.var.dtype()))
                    .map_err(ce)?;
                q.var.set(&t).map_err(ce)?;
            }
        }
        self.step += 1;
        Ok(())
    }

    /// Predictions and row losses of model `m` on every pair (training, then test), in
    /// evaluation mode.
    pub fn eval_model(&self, m: usize) -> Result<EvalOutput> {
        let st = &self.models[m];
        let mut preds = Vec::new();
        let mut row_loss = Vec::new();
        for tok in &self.eval_tokens {
            let logits = st
                .model
                .forward(tok, None)
                .and_then(|l| l.to_dtype(DType::F32)?.to_vec2::<f32>())
                .map_err(ce)?;
            for row in logits {
                let r = preds.len();
                preds.push(argmax(&row));
                row_loss.push(self.loss.row_loss(&row, st.eval_labels[r]));
            }
        }
        Ok(EvalOutput { preds, row_loss })
    }

    /// Replaces model `m`'s parameter `name` (host copy and tensor) by `values`.
    pub fn set_param(&mut self, m: usize, name: &str, values: &[f32]) -> Result<()> {
        let st = &mut self.models[m];
        let j = st
            .model
            .params
            .iter()
            .position(|q| q.name == name)
            .ok_or_else(|| Error::Output(format!("transformer has no parameter {name}")))?;
        if st.host[j].len() != values.len() {
            return Err(Error::Output(format!(
                "{name}: {} values for a parameter of {}",
                values.len(),
                st.host[j].len()
            )));
        }
        st.host[j].copy_from_slice(values);
        let q = &st.model.params[j];
        let t = Tensor::from_slice(values, q.var.shape(), &Device::Cpu)
            .and_then(|t| t.to_dtype(q.var.dtype()))
            .map_err(ce)?;
        q.var.set(&t).map_err(ce)
    }

    /// Parameter names in order.
    pub fn param_names(&self) -> Vec<String> {
        self.models[0]
            .model
            .params
            .iter()
            .map(|q| q.name.clone())
            .collect()
    }

    /// Host copy of a parameter by name, with its shape.
    pub fn host(&self, m: usize, name: &str) -> Option<(&[f32], Vec<usize>)> {
        let st = &self.models[m];
        st.model
            .params
            .iter()
            .position(|q| q.name == name)
            .map(|j| {
                (
                    st.host[j].as_slice(),
                    st.model.params[j].var.dims().to_vec(),
                )
            })
    }
}

/// Mean batch loss: cross-entropy over examples, or MSE over all `B × p` entries.
pub fn loss_tensor(loss: Loss, logits: &Tensor, labels: &Tensor, p: usize) -> CResult<Tensor> {
    match loss {
        Loss::CrossEntropy => {
            let lse = logits.log_sum_exp(D::Minus1)?;
            let picked = logits.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?;
            (lse - picked)?.mean_all()
        }
        Loss::Mse => {
            let b = labels.dims1()?;
            let idx = labels.to_vec1::<u32>()?;
            let mut onehot = vec![0.0f32; b * p];
            for (r, &y) in idx.iter().enumerate() {
                onehot[r * p + y as usize] = 1.0;
            }
            let t = Tensor::from_vec(onehot, (b, p), &Device::Cpu)?.to_dtype(logits.dtype())?;
            (logits - t)?.sqr()?.mean_all()
        }
    }
}

impl Engine for TFleet {
    fn n_models(&self) -> usize {
        self.models.len()
    }
    fn loss(&self) -> Loss {
        self.loss
    }
    fn step_batch(&mut self, batch: &[u32]) -> Result<()> {
        self.step_on(Some(batch))
    }
    fn step_all(&mut self) -> Result<()> {
        self.step_on(None)
    }
    fn eval_all(&mut self) -> Result<Vec<EvalOutput>> {
        (0..self.models.len()).map(|m| self.eval_model(m)).collect()
    }
    fn weight_stats(&self, m: usize) -> WeightStats {
        let norm = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| self.host(m, n))
                .flat_map(|(v, _)| v.iter().map(|&x| (x as f64) * (x as f64)))
                .sum::<f64>()
                .sqrt()
        };
        let mlp: Vec<String> = (0..self.cfg.layers)
            .flat_map(|l| [format!("layers.{l}.mlp.fc1"), format!("layers.{l}.mlp.fc2")])
            .collect();
        let mlp: Vec<&str> = mlp.iter().map(|s| s.as_str()).collect();
        let out_name = if self.cfg.tie_embeddings {
            "tok_emb"
        } else {
            "unembed"
        };
        WeightStats {
            norms: [norm(&["tok_emb"]), norm(&mlp), norm(&[out_name])],
            neuron_iprs: self
                .mlp_neuron_spectra(m)
                .into_iter()
                .map(|s| s.ipr)
                .collect(),
        }
    }
    fn safetensors(&self, step: u64) -> Result<Vec<u8>> {
        let st0 = &self.models[0];
        let mm = self.models.len();
        let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (j, q) in st0.model.params.iter().enumerate() {
            let mut shape = vec![mm];
            shape.extend_from_slice(q.var.dims());
            let data: Vec<u8> = self
                .models
                .iter()
                .flat_map(|st| st.host[j].iter().flat_map(|x| x.to_le_bytes()))
                .collect();
            bytes.push((q.name.clone(), shape, data));
        }
        let views = bytes
            .iter()
            .map(|(n, s, d)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .map(|t| (n.clone(), t))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Output(format!("safetensors: {e}")))?;
        let meta = std::collections::HashMap::from([
            ("format".to_string(), "grokscope-transformer".to_string()),
            ("p".to_string(), self.p.to_string()),
            ("models".to_string(), mm.to_string()),
            ("step".to_string(), step.to_string()),
            (
                "config".to_string(),
                serde_json::to_string(&self.cfg).unwrap_or_default(),
            ),
        ]);
        safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::Output(format!("safetensors: {e}")))
    }
}

/// IPR and dominant frequency of one MLP neuron of the Transformer, seen from the tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct TNeuron {
    pub layer: usize,
    pub neuron: usize,
    /// IPR of `E · fc1[k]` over the p input tokens (its input as seen from the tokens).
    pub ipr_in: Option<f64>,
    /// IPR of `unembed · fc2[:, k]` over the p outputs.
    pub ipr_out: Option<f64>,
    /// Mean of the two (`None`: dead neuron).
    pub ipr: Option<f64>,
    pub dominant_in: usize,
}

impl TFleet {
    /// Every MLP neuron of model `m` (all layers) as seen from the tokens: `(layer, neuron,
    /// E · fc1[k], unembed · fc2[:, k])`, two p-vectors each.
    pub fn mlp_neuron_views(&self, m: usize) -> Vec<(usize, usize, Vec<f32>, Vec<f32>)> {
        let (p, d, h) = (self.p, self.cfg.d_model, self.cfg.hidden());
        let (emb, _) = self.host(m, "tok_emb").expect("token embedding");
        let out_name = if self.cfg.tie_embeddings {
            "tok_emb"
        } else {
            "unembed"
        };
        let (unembed, _) = self.host(m, out_name).expect("output layer");
        let mut out = Vec::new();
        for l in 0..self.cfg.layers {
            let (fc1, _) = self.host(m, &format!("layers.{l}.mlp.fc1")).expect("fc1");
            let (fc2, _) = self.host(m, &format!("layers.{l}.mlp.fc2")).expect("fc2");
            for k in 0..h {
                let w_in = &fc1[k * d..(k + 1) * d];
                let vin: Vec<f32> = (0..p)
                    .map(|t| {
                        emb[t * d..(t + 1) * d]
                            .iter()
                            .zip(w_in)
                            .map(|(a, b)| a * b)
                            .sum()
                    })
                    .collect();
                let vout: Vec<f32> = (0..p)
                    .map(|q| (0..d).map(|j| unembed[q * d + j] * fc2[j * h + k]).sum())
                    .collect();
                out.push((l, k, vin, vout));
            }
        }
        out
    }

    /// Every MLP neuron of model `m` (all layers), with its IPRs as seen from the tokens.
    pub fn mlp_neuron_spectra(&self, m: usize) -> Vec<TNeuron> {
        let mut calc = Ipr::new(self.p);
        self.mlp_neuron_views(m)
            .into_iter()
            .map(|(layer, neuron, vin, vout)| {
                let si = calc.of(&vin);
                let so = calc.of(&vout);
                let vals: Vec<f64> = [si.map(|s| s.ipr), so.map(|s| s.ipr)]
                    .into_iter()
                    .flatten()
                    .collect();
                TNeuron {
                    layer,
                    neuron,
                    ipr_in: si.map(|s| s.ipr),
                    ipr_out: so.map(|s| s.ipr),
                    ipr: (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64),
                    dominant_in: si.map(|s| s.dominant).unwrap_or(0),
                }
            })
            .collect()
    }

    /// IPR and dominant frequency of each token-embedding column (over the p tokens).
    pub fn embedding_spectra(&self, m: usize) -> Vec<Option<crate::analysis::ipr::Spectral>> {
        let d = self.cfg.d_model;
        let (emb, _) = self.host(m, "tok_emb").expect("token embedding");
        let mut calc = Ipr::new(self.p);
        (0..d).map(|j| calc.of_strided(emb, j, d)).collect()
    }
}
