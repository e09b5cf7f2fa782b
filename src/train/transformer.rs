//! The Transformer fleet: M Transformers trained one after another with candle's autograd
//! (candle's CPU matrix products use both cores), AdamW with PyTorch's semantics and weight
//! decay only on the matrices unless configured (SCIENCE.md §8).

use super::adamw::{AdamWHyper, AdamWState};
use super::engine::{self, Engine, EvalOutput, ModelHyper, NeuronView, WeightStats};
use super::loss::{argmax, Loss};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::model::ipr::{neuron_ipr, Ipr};
use crate::model::transformer::{
    CResult, DropoutMasks, Kind, LayerMasks, TModel, TransformerConfig,
};
use candle_core::{DType, Device, Tensor, D};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
            let model = TModel::init(cfg, p, seed, dtype)?;
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
                .collect::<CResult<Vec<_>>>()?;
            let adam = host.iter().map(|h| AdamWState::new(h.len())).collect();
            let mut eval_labels = labels.clone();
            eval_labels.extend_from_slice(&split.test_labels);
            let n = labels.len();
            out.push(TModelState {
                model,
                host,
                adam,
                hyper,
                labels: Tensor::from_vec(labels, n, &Device::Cpu)?,
                eval_labels,
            });
        }
        let mut all = split.train_pairs.clone();
        all.extend_from_slice(&split.test_pairs);
        let eval_tokens = all
            .chunks(EVAL_ROWS)
            .map(tokens)
            .collect::<CResult<Vec<_>>>()?;
        Ok(TFleet {
            cfg: cfg.clone(),
            p,
            loss,
            models: out,
            decay: default_decay,
            train_tokens: tokens(&split.train_pairs)?,
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
        let loss = self.batch_loss(m, batch)?;
        let grads = loss.backward()?;
        let g = self.models[m]
            .model
            .params
            .iter()
            .map(|q| match grads.get(q.var.as_tensor()) {
                Some(g) => g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>(),
                None => Ok(vec![0.0; q.var.elem_count()]),
            })
            .collect::<CResult<Vec<_>>>()?;
        Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, g))
    }

    /// One step of every model; returns each one's batch loss before the update.
    fn step_on(&mut self, batch: Option<&[u32]>) -> Result<Vec<f64>> {
        let mut losses = Vec::with_capacity(self.models.len());
        for m in 0..self.models.len() {
            let loss = self.batch_loss(m, batch)?;
            losses.push(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?);
            let grads = loss.backward()?;
            let st = &mut self.models[m];
            for (j, q) in st.model.params.iter().enumerate() {
                let g: Vec<f32> = match grads.get(q.var.as_tensor()) {
                    Some(g) => g
                        .flatten_all()
                        .and_then(|g| g.to_dtype(DType::F32)?.to_vec1()),
                    None => Ok(vec![0.0; st.host[j].len()]),
                }?;
                let (lr, decays) = self
                    .cfg
                    .rescaled(&q.name, q.kind)
                    .unwrap_or((1.0, (self.decay)(&self.cfg, q.kind)));
                let hyper = AdamWHyper {
                    lr: st.hyper.adam.lr * lr,
                    weight_decay: if decays {
                        st.hyper.adam.weight_decay
                    } else {
                        0.0
                    },
                    ..st.hyper.adam
                };
                st.adam[j].step(&hyper, &mut st.host[j], &g);
                let t = Tensor::from_slice(&st.host[j], q.var.shape(), &Device::Cpu)
                    .and_then(|t| t.to_dtype(q.var.dtype()))?;
                q.var.set(&t)?;
            }
        }
        self.step += 1;
        Ok(losses)
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
                .and_then(|l| l.to_dtype(DType::F32)?.to_vec2::<f32>())?;
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
            .ok_or_else(|| Error::Weights(format!("the Transformer has no parameter {name}")))?;
        if st.host[j].len() != values.len() {
            return Err(Error::Weights(format!(
                "{name}: {} values for a parameter of {}",
                values.len(),
                st.host[j].len()
            )));
        }
        st.host[j].copy_from_slice(values);
        let q = &st.model.params[j];
        let t = Tensor::from_slice(values, q.var.shape(), &Device::Cpu)
            .and_then(|t| t.to_dtype(q.var.dtype()))?;
        Ok(q.var.set(&t)?)
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
    fn step_batch(&mut self, batch: &[u32]) -> Result<Vec<f64>> {
        self.step_on(Some(batch))
    }
    fn step_all(&mut self) -> Result<Vec<f64>> {
        self.step_on(None)
    }
    fn eval_all(&mut self) -> Result<Vec<EvalOutput>> {
        (0..self.models.len()).map(|m| self.eval_model(m)).collect()
    }
    fn weight_stats(&self, m: usize) -> WeightStats {
        let norm = |names: &[String]| {
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
        let mut calc = Ipr::new(self.p);
        WeightStats {
            norms: [
                norm(&["tok_emb".to_string()]),
                norm(&mlp),
                norm(&[self.output_name().to_string()]),
            ],
            neuron_iprs: self
                .neurons(m)
                .iter()
                .map(|v| neuron_ipr(&mut calc, &v.vectors))
                .collect(),
        }
    }

    /// Every parameter under its name, stacked over the models (leading dimension M).
    fn save(&self, step: u64, models: &[usize]) -> Result<Vec<u8>> {
        let mm = models.len();
        let tensors = self.models[0]
            .model
            .params
            .iter()
            .enumerate()
            .map(|(j, q)| {
                let mut shape = vec![mm];
                shape.extend_from_slice(q.var.dims());
                let data = models
                    .iter()
                    .flat_map(|&i| self.models[i].host[j].iter().copied())
                    .collect();
                (q.name.clone(), shape, data)
            })
            .collect();
        engine::write_safetensors(
            tensors,
            vec![
                ("format", "grokscope-transformer".to_string()),
                ("p", self.p.to_string()),
                ("models", mm.to_string()),
                ("step", step.to_string()),
                (
                    "config",
                    serde_json::to_string(&self.cfg).unwrap_or_default(),
                ),
            ],
        )
    }

    fn save_state(&self, extra: Vec<(&str, String)>) -> Result<Vec<u8>> {
        let mut tensors = Vec::new();
        let mut t = Vec::new();
        for (i, st) in self.models.iter().enumerate() {
            for (j, q) in st.model.params.iter().enumerate() {
                let n = st.host[j].len();
                tensors.push((format!("{i}.{}", q.name), vec![n], st.host[j].clone()));
                tensors.push((
                    format!("{i}.{}.adam_m", q.name),
                    vec![n],
                    st.adam[j].m.clone(),
                ));
                tensors.push((
                    format!("{i}.{}.adam_v", q.name),
                    vec![n],
                    st.adam[j].v.clone(),
                ));
                t.push(st.adam[j].t);
            }
        }
        let head = ("grokscope-transformer-state", self.models.len(), self.step);
        engine::write_state(head, &t, tensors, extra)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let names = self.param_names();
        let (st, step, t) = engine::read_state(
            bytes,
            "grokscope-transformer-state",
            self.models.len() * names.len(),
        )?;
        for i in 0..self.models.len() {
            for (j, name) in names.iter().enumerate() {
                let n = self.models[i].host[j].len();
                let host = engine::read_tensor(&st, &format!("{i}.{name}"), &[n])?;
                self.set_param(i, name, &host)?;
                let adam = &mut self.models[i].adam[j];
                adam.m = engine::read_tensor(&st, &format!("{i}.{name}.adam_m"), &[n])?;
                adam.v = engine::read_tensor(&st, &format!("{i}.{name}.adam_v"), &[n])?;
                adam.t = t[i * names.len() + j];
            }
        }
        self.step = step;
        Ok(())
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let st = engine::open_safetensors(bytes, "grokscope-transformer")?;
        let m = self.models.len();
        engine::check_meta(
            bytes,
            &[
                ("p", self.p.to_string()),
                ("models", m.to_string()),
                (
                    "config",
                    serde_json::to_string(&self.cfg).unwrap_or_default(),
                ),
            ],
        )?;
        for (j, name) in self.param_names().into_iter().enumerate() {
            let mut shape = vec![m];
            shape.extend_from_slice(self.models[0].model.params[j].var.dims());
            let all = engine::read_tensor(&st, &name, &shape)?;
            let per = all.len() / m.max(1);
            for i in 0..m {
                self.set_param(i, &name, &all[i * per..(i + 1) * per])?;
            }
        }
        Ok(())
    }
}

impl TFleet {
    /// The name of the output layer's matrix (`[p, d]`).
    fn output_name(&self) -> &'static str {
        if self.cfg.tie_embeddings {
            "tok_emb"
        } else {
            "unembed"
        }
    }

    /// A parameter's host copy; every name asked for here exists in every Transformer.
    fn param(&self, m: usize, name: &str) -> &[f32] {
        self.host(m, name).map(|(v, _)| v).unwrap_or(&[])
    }

    /// Every MLP neuron of model `m` (all layers) as seen from the tokens: its input
    /// `E · fc1[k]` and its output `unembed · fc2[:, k]`, two p-vectors.
    pub fn neurons(&self, m: usize) -> Vec<NeuronView> {
        let (p, d, h) = (self.p, self.cfg.d_model, self.cfg.hidden());
        let emb = self.param(m, "tok_emb");
        let unembed = self.param(m, self.output_name());
        let mut out = Vec::new();
        for l in 0..self.cfg.layers {
            let fc1 = self.param(m, &format!("layers.{l}.mlp.fc1"));
            let fc2 = self.param(m, &format!("layers.{l}.mlp.fc2"));
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
                out.push(NeuronView {
                    layer: l,
                    neuron: k,
                    vectors: vec![vin, vout],
                    bn: None,
                });
            }
        }
        out
    }

    /// Model `m`'s MLP parameters: per layer `fc1`, `fc2` and (with biases) `fc1_bias`.
    pub fn mlp_params(&self, m: usize) -> Vec<(String, Vec<f32>)> {
        let mut out = Vec::new();
        for l in 0..self.cfg.layers {
            for n in ["mlp.fc1", "mlp.fc2", "mlp.fc1_bias"] {
                let name = format!("layers.{l}.{n}");
                if let Some((v, _)) = self.host(m, &name) {
                    out.push((name, v.to_vec()));
                }
            }
        }
        out
    }

    /// Sets model `m`'s MLP parameters to `saved` (from [`TFleet::mlp_params`]) with the
    /// neurons `gone` (layer, neuron) zeroed: row `k` of `fc1`, column `k` of `fc2`, bias `k`.
    pub fn zero_mlp_neurons(
        &mut self,
        m: usize,
        saved: &[(String, Vec<f32>)],
        gone: &[(usize, usize)],
    ) -> Result<()> {
        let (d, h) = (self.cfg.d_model, self.cfg.hidden());
        let per_layer = if self.cfg.mlp_bias { 3 } else { 2 };
        let mut work = saved.to_vec();
        for &(layer, k) in gone {
            let base = per_layer * layer;
            work[base].1[k * d..(k + 1) * d].fill(0.0);
            for j in 0..d {
                work[base + 1].1[j * h + k] = 0.0;
            }
            if self.cfg.mlp_bias {
                work[base + 2].1[k] = 0.0;
            }
        }
        for (n, v) in &work {
            self.set_param(m, n, v)?;
        }
        Ok(())
    }

    /// The columns of the token embedding, each a p-vector over the tokens.
    pub fn embedding_columns(&self, m: usize) -> Vec<Vec<f32>> {
        let (p, d) = (self.p, self.cfg.d_model);
        let emb = self.param(m, "tok_emb");
        (0..d)
            .map(|j| (0..p).map(|t| emb[t * d + j]).collect())
            .collect()
    }
}
