//! The Transformer fleet: M Transformers trained together on the shared data with the
//! hand-derived passes of [`super::tpass`], AdamW with PyTorch's semantics, weight decay by
//! parameter group or the reference's `rescale_optim` (SCIENCE.md §8).
//!
//! A step cuts every model's batch into [`CHUNKS`] fixed row chunks and runs three phases:
//! (A) per model, the shared first-block table (2p rows) when no dropout acts on the
//! embeddings; (B) per (model, chunk), the forward and backward passes; (C) per model, the
//! chunks' gradients summed in chunk order, the shared table's backward, AdamW. Tasks of each
//! phase run in parallel on the rayon pool, each on one thread, so the numbers never depend
//! on the number of threads or on the other models of the fleet.

use super::adamw::{AdamWHyper, AdamWState};
use super::engine::{
    self, Engine, EvalOutput, EvalProbe, ModelHyper, NeuronView, TokenWeights, WeightStats,
};
use super::loss::{argmax, Loss, Precision};
use super::tpass::{self, Chunk, Examples, Shape, Table, TableGrads};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::kernels::{flush_denormals, Real};
use crate::model::ipr::{neuron_ipr, Ipr};
use crate::model::kind::NetworkKind;
use crate::model::transformer::{self as tm, Kind, ParamSpec, TransformerArch, TransformerConfig};
use rayon::prelude::*;

/// Every batch is cut into this many row chunks (fewer if it has fewer rows). Part of the
/// numerics: partial gradients are summed in chunk order.
pub use crate::model::transformer::CHUNKS;
/// At most this many (model, chunk) tasks hold workspaces at once; larger fleets run in waves.
const WAVE_TASKS: usize = 16;
/// Rows per evaluation task (at most).
const EVAL_ROWS: usize = 2048;
/// Models evaluated together when a probe keeps their outputs (bounds its memory).
const PROBE_MODELS: usize = 4;

/// One Transformer with its optimizer state.
pub struct TModelState<T: Real = f32> {
    /// Every parameter, flat in the fleet's [`TFleet::specs`] order.
    pub params: Vec<T>,
    /// One AdamW state per parameter.
    pub adam: Vec<AdamWState<T>>,
    pub hyper: ModelHyper,
    labels: Vec<u32>,
    eval_labels: Vec<u32>,
}

pub struct TFleet<T: Real = f32> {
    pub cfg: TransformerConfig,
    pub p: usize,
    pub loss: Loss,
    /// The training loss's softmax precision (`train.softmax_precision`; f32 unless set).
    pub softmax: Precision,
    /// The parameters in order: name, shape, kind, offset.
    pub specs: Vec<ParamSpec>,
    shape: Shape,
    pub models: Vec<TModelState<T>>,
    /// Which parameter kinds get weight decay (without `rescale_optim`).
    pub decay: fn(&TransformerConfig, Kind) -> bool,
    train_tokens: Vec<[u32; 2]>,
    eval_tokens: Vec<[u32; 2]>,
    pub step: u64,
    pool: Vec<Chunk<T>>,
    tables: Vec<Table<T>>,
    all_rows: Vec<u32>,
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

fn chunk_ranges(n: usize, c: usize) -> Vec<std::ops::Range<usize>> {
    let c = c.clamp(1, n.max(1));
    (0..c).map(|i| (i * n / c)..((i + 1) * n / c)).collect()
}

fn grow_with<X>(v: &mut Vec<X>, n: usize, f: impl Fn() -> X) {
    while v.len() < n {
        v.push(f());
    }
}

impl<T: Real> TFleet<T> {
    /// A fleet on `split` with one Transformer per `(init seed, hyper-parameters, labels)`.
    pub fn new(
        cfg: &TransformerConfig,
        loss: Loss,
        split: &Split,
        models: Vec<(u64, ModelHyper, Vec<u32>)>,
    ) -> TFleet<T> {
        let p = split.p;
        let specs = tm::layout(cfg, p);
        let shape = Shape::new(cfg, p, &specs);
        let models = models
            .into_iter()
            .map(|(seed, hyper, labels)| {
                let params: Vec<T> = tm::init(cfg, p, seed)
                    .into_iter()
                    .map(T::from_f32)
                    .collect();
                let adam = specs.iter().map(|s| AdamWState::new(s.len())).collect();
                let mut eval_labels = labels.clone();
                eval_labels.extend_from_slice(&split.test_labels);
                TModelState {
                    params,
                    adam,
                    hyper,
                    labels,
                    eval_labels,
                }
            })
            .collect();
        let pair = |&(a, b): &(u32, u32)| [a, b];
        let train_tokens: Vec<[u32; 2]> = split.train_pairs.iter().map(pair).collect();
        let mut eval_tokens = train_tokens.clone();
        eval_tokens.extend(split.test_pairs.iter().map(pair));
        TFleet {
            cfg: cfg.clone(),
            p,
            loss,
            softmax: Precision::F32,
            specs,
            shape,
            models,
            decay: default_decay,
            all_rows: (0..train_tokens.len() as u32).collect(),
            train_tokens,
            eval_tokens,
            step: 0,
            pool: Vec::new(),
            tables: Vec::new(),
        }
    }

    /// The learning-rate factor and weight decay switch of parameter `j`.
    fn group(&self, j: usize) -> (f64, bool) {
        let s = &self.specs[j];
        self.cfg
            .rescaled(&s.name, s.kind)
            .unwrap_or((1.0, (self.decay)(&self.cfg, s.kind)))
    }

    /// Forward and backward of every model on `batch` (indices of training pairs); with
    /// `update`, an AdamW step. Returns each model's mean loss before the step and, without
    /// `update`, its gradient.
    fn run_batch(&mut self, batch: &[u32], update: bool) -> Vec<(f64, Option<Vec<T>>)> {
        flush_denormals();
        let chunks = chunk_ranges(batch.len(), CHUNKS);
        let c = chunks.len();
        let per_wave = (WAVE_TASKS / c).max(1);
        let n_models = self.models.len();
        grow_with(&mut self.pool, per_wave.min(n_models) * c, Chunk::default);
        grow_with(&mut self.tables, per_wave.min(n_models), Table::default);
        let groups: Vec<(f64, bool)> = (0..self.specs.len()).map(|j| self.group(j)).collect();
        let (sh, specs, loss, softmax, step) =
            (&self.shape, &self.specs, self.loss, self.softmax, self.step);
        let train = &self.train_tokens;
        let mut out = Vec::with_capacity(n_models);
        for first in (0..n_models).step_by(per_wave) {
            let wave = &mut self.models[first..(first + per_wave).min(n_models)];
            let tables = &mut self.tables[..wave.len()];
            // (A) The shared first-block tables.
            tables
                .par_iter_mut()
                .zip(wave.par_iter())
                .for_each(|(tab, m)| {
                    flush_denormals();
                    if m.hyper.dropout <= 0.0 {
                        tab.embeddings(sh, &m.params);
                        tab.forward(sh, 0, &m.params);
                    }
                });
            // (B) Forward and backward per (model, chunk).
            let pool = &mut self.pool[..wave.len() * c];
            let (wm, tabs): (&[TModelState<T>], &[Table<T>]) = (wave, tables);
            pool.par_iter_mut().enumerate().for_each(|(t, ch)| {
                flush_denormals();
                let (m, r) = (&wm[t / c], chunks[t % c].clone());
                let rows = &batch[r.clone()];
                let tokens: Vec<[u32; 2]> = rows.iter().map(|&i| train[i as usize]).collect();
                let labels: Vec<u32> = rows.iter().map(|&i| m.labels[i as usize]).collect();
                let ex = Examples {
                    tokens: &tokens,
                    labels: &labels,
                };
                let masks = tpass::masks::<T>(
                    sh,
                    m.hyper.dropout,
                    m.hyper.dropout_seed,
                    step,
                    batch.len(),
                    r,
                );
                let shared = Some(&tabs[t / c]);
                ch.forward(sh, &m.params, &ex, shared, masks.as_ref());
                ch.loss_grad(sh, loss, softmax, &labels, batch.len());
                ch.backward(sh, &m.params, &ex, shared, masks.as_ref());
            });
            // (C) Sum the chunks, the shared table's backward, AdamW.
            let pool: &[Chunk<T>] = pool;
            let norm = loss.norm(batch.len(), sh.p);
            let results: Vec<(f64, Option<Vec<T>>)> = wave
                .par_iter_mut()
                .zip(tables.par_iter())
                .zip(pool.par_chunks(c))
                .map(|((m, tab), parts)| {
                    flush_denormals();
                    let mut g = parts[0].grad[..sh.n_params].to_vec();
                    for part in &parts[1..] {
                        for (a, b) in g.iter_mut().zip(&part.grad[..sh.n_params]) {
                            *a += *b;
                        }
                    }
                    if m.hyper.dropout <= 0.0 {
                        let mut tg = TableGrads::default();
                        for part in parts {
                            tg.add_or_take(&part.tgrads[0], sh, tab.rows);
                        }
                        tpass::shared_backward(sh, &m.params, tab, &mut tg, &mut g);
                    }
                    let l = parts.iter().map(|p| p.loss).sum::<f64>() / norm;
                    if !update {
                        return (l, Some(g));
                    }
                    for (j, s) in specs.iter().enumerate() {
                        let (lr, decays) = groups[j];
                        let hyper = AdamWHyper {
                            lr: m.hyper.adam.lr * lr,
                            weight_decay: if decays {
                                m.hyper.adam.weight_decay
                            } else {
                                0.0
                            },
                            ..m.hyper.adam
                        };
                        let r = s.range();
                        hyper.perp.apply(
                            &m.params[r.clone()],
                            &mut g[r.clone()],
                            std::iter::once(0..r.len()),
                        );
                        m.adam[j].step(&hyper, &mut m.params[r.clone()], &g[r]);
                    }
                    (l, None)
                })
                .collect();
            out.extend(results);
        }
        if update {
            self.step += 1;
        }
        out
    }

    /// One step of every model on `batch` (all training pairs when `None`).
    pub fn step_on(&mut self, batch: Option<&[u32]>) -> Vec<f64> {
        let rows = match batch {
            Some(b) => b.to_vec(),
            None => std::mem::take(&mut self.all_rows),
        };
        let out = self.run_batch(&rows, true);
        if batch.is_none() {
            self.all_rows = rows;
        }
        out.into_iter().map(|(l, _)| l).collect()
    }

    /// Loss and gradient (per parameter, in [`TFleet::specs`] order, as f64) of model `m` on
    /// `batch` (all training pairs when `None`), in training mode at the current step,
    /// without a step.
    pub fn gradients(&mut self, m: usize, batch: Option<&[u32]>) -> (f64, Vec<Vec<f64>>) {
        let rows = batch.map_or_else(|| self.all_rows.clone(), |b| b.to_vec());
        let all = self.run_batch(&rows, false);
        let (l, g) = &all[m];
        let g = g.as_deref().unwrap_or(&[]);
        let per = self
            .specs
            .iter()
            .map(|s| g[s.range()].iter().map(|x| x.to_f64()).collect())
            .collect();
        (*l, per)
    }

    /// Model `m`'s parameter `j` as f64.
    pub fn param_f64(&self, m: usize, j: usize) -> Vec<f64> {
        self.models[m].params[self.specs[j].range()]
            .iter()
            .map(|x| x.to_f64())
            .collect()
    }

    /// Logits `[n, p]` of model `m` on `tokens`, in evaluation mode.
    pub fn logits(&self, m: usize, tokens: &[[u32; 2]]) -> Vec<T> {
        let sh = &self.shape;
        let w = &self.models[m].params;
        let mut tab = Table::default();
        tab.embeddings(sh, w);
        tab.forward(sh, 0, w);
        let mut ch = Chunk::default();
        let ex = Examples {
            tokens,
            labels: &[],
        };
        ch.forward(sh, w, &ex, Some(&tab), None);
        ch.logits.truncate(tokens.len() * sh.p);
        ch.logits
    }

    /// Predictions and row losses of every model on every pair (training, then test); with
    /// a probe, models go in groups of [`PROBE_MODELS`] and the probe sees each block's logits
    /// and the last MLP's activations at the last position.
    fn evaluate(&self, mut probe: Option<&mut dyn EvalProbe>) -> Vec<EvalOutput> {
        let sh = &self.shape;
        let chunks: Vec<_> = (0..self.eval_tokens.len()).step_by(EVAL_ROWS).collect();
        let nc = chunks.len();
        let group = if probe.is_some() {
            PROBE_MODELS
        } else {
            self.models.len().max(1)
        };
        let mut parts: Vec<(Vec<u32>, Vec<f64>)> = Vec::with_capacity(self.models.len() * nc);
        for g0 in (0..self.models.len()).step_by(group) {
            let models = &self.models[g0..(g0 + group).min(self.models.len())];
            let tables: Vec<Table<T>> = models
                .par_iter()
                .map(|m| {
                    flush_denormals();
                    let mut tab = Table::default();
                    tab.embeddings(sh, &m.params);
                    tab.forward(sh, 0, &m.params);
                    tab
                })
                .collect();
            let keep = probe.is_some();
            let done: Vec<_> = (0..models.len() * nc)
                .into_par_iter()
                .map(|t| {
                    flush_denormals();
                    let (mi, start) = (t / nc, chunks[t % nc]);
                    let m = &models[mi];
                    let end = (start + EVAL_ROWS).min(self.eval_tokens.len());
                    let mut ch = Chunk::default();
                    let ex = Examples {
                        tokens: &self.eval_tokens[start..end],
                        labels: &[],
                    };
                    ch.forward(sh, &m.params, &ex, Some(&tables[mi]), None);
                    let p = sh.p;
                    let logits: Vec<f32> = ch.logits[..(end - start) * p]
                        .iter()
                        .map(|x| x.to_f32())
                        .collect();
                    let mut preds = Vec::with_capacity(end - start);
                    let mut losses = Vec::with_capacity(end - start);
                    for (r, row) in logits.chunks_exact(p).enumerate() {
                        preds.push(argmax(row));
                        losses.push(self.loss.row_loss(row, m.eval_labels[start + r]));
                    }
                    let hidden: Vec<f32> = match keep {
                        true => ch
                            .last_hidden(sh, end - start)
                            .iter()
                            .map(|x| x.to_f32())
                            .collect(),
                        false => Vec::new(),
                    };
                    (preds, losses, logits, hidden, start)
                })
                .collect();
            for (t, (preds, losses, logits, hidden, start)) in done.into_iter().enumerate() {
                if let Some(pr) = probe.as_deref_mut() {
                    pr.block(g0 + t / nc, start, &logits, &hidden, sh.h);
                }
                parts.push((preds, losses));
            }
        }
        engine::join_blocks(&parts, nc)
    }
}

impl TFleet<f32> {
    /// Predictions and row losses of model `m` on every pair (training, then test), in
    /// evaluation mode.
    pub fn eval_model(&self, m: usize) -> Result<EvalOutput> {
        let sh = &self.shape;
        let logits = self.logits(m, &self.eval_tokens);
        let st = &self.models[m];
        let mut out = EvalOutput {
            preds: Vec::with_capacity(self.eval_tokens.len()),
            row_loss: Vec::with_capacity(self.eval_tokens.len()),
        };
        for (r, row) in logits.chunks_exact(sh.p).enumerate() {
            out.preds.push(argmax(row));
            out.row_loss
                .push(self.loss.row_loss(row, st.eval_labels[r]));
        }
        Ok(out)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name == name)
    }

    /// Replaces model `m`'s parameter `name` by `values`.
    pub fn set_param(&mut self, m: usize, name: &str, values: &[f32]) -> Result<()> {
        let j = self
            .index(name)
            .ok_or_else(|| Error::Weights(format!("the Transformer has no parameter {name}")))?;
        let s = &self.specs[j];
        if s.len() != values.len() {
            return Err(Error::Weights(format!(
                "{name}: {} values for a parameter of {}",
                values.len(),
                s.len()
            )));
        }
        self.models[m].params[s.range()].copy_from_slice(values);
        Ok(())
    }

    /// Parameter names in order.
    /// The kind's view of this fleet's shape (its parameter layout, norms, memory).
    pub fn arch(&self) -> TransformerArch {
        TransformerArch {
            cfg: self.cfg.clone(),
            p: self.p,
        }
    }

    pub fn param_names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    /// A parameter of model `m` by name, with its shape.
    pub fn host(&self, m: usize, name: &str) -> Option<(&[f32], Vec<usize>)> {
        self.index(name).map(|j| {
            let s = &self.specs[j];
            (&self.models[m].params[s.range()], s.shape.clone())
        })
    }
}

impl Engine for TFleet<f32> {
    fn n_models(&self) -> usize {
        self.models.len()
    }
    fn loss(&self) -> Loss {
        self.loss
    }
    fn step_batch(&mut self, batch: &[u32]) -> Result<Vec<f64>> {
        Ok(self.step_on(Some(batch)))
    }
    fn step_all(&mut self) -> Result<Vec<f64>> {
        Ok(self.step_on(None))
    }
    fn eval_all(&mut self) -> Result<Vec<EvalOutput>> {
        Ok(self.evaluate(None))
    }
    fn eval_all_probed(&mut self, probe: &mut dyn EvalProbe) -> Result<Vec<EvalOutput>> {
        Ok(self.evaluate(Some(probe)))
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
            sum_sq: engine::sum_sq(&self.models[m].params),
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
        let views: Vec<&[f32]> = models
            .iter()
            .map(|&i| self.models[i].params.as_slice())
            .collect();
        let tensors = engine::stack_params(&self.arch().parameters(), &views);
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
            for (j, q) in self.specs.iter().enumerate() {
                let n = q.len();
                tensors.push((
                    format!("{i}.{}", q.name),
                    vec![n],
                    st.params[q.range()].to_vec(),
                ));
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

    fn vocab(&self) -> usize {
        self.p
    }

    fn vector_names(&self) -> &'static [&'static str] {
        &["in", "out"]
    }

    fn vector_description(&self) -> &'static str {
        "each MLP neuron's input E·fc1[k] and output unembed·fc2[:,k] as seen from the tokens"
    }

    fn neurons(&self, m: usize) -> Vec<NeuronView> {
        TFleet::neurons(self, m)
    }

    fn n_neurons(&self) -> usize {
        self.cfg.hidden() * self.cfg.layers
    }

    fn neuron_id(&self, i: usize) -> (usize, usize) {
        let h = self.cfg.hidden().max(1);
        (i / h, i % h)
    }

    fn embedding_columns(&self, m: usize) -> Option<Vec<Vec<f32>>> {
        Some(TFleet::embedding_columns(self, m))
    }

    fn token_weights(&self, m: usize) -> Option<TokenWeights> {
        Some(TFleet::token_weights(self, m))
    }

    fn eval_model(&mut self, m: usize) -> Result<EvalOutput> {
        TFleet::eval_model(self, m)
    }

    fn prunable_weights(&self, m: usize) -> Vec<(String, Vec<f32>)> {
        self.mlp_params(m)
    }

    fn prune_neurons(
        &mut self,
        m: usize,
        saved: &[(String, Vec<f32>)],
        gone: &[usize],
    ) -> Result<()> {
        let gone: Vec<(usize, usize)> = gone.iter().map(|&i| Engine::neuron_id(self, i)).collect();
        self.zero_mlp_neurons(m, saved, &gone)
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
                let n = self.specs[j].len();
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
        let layout = self.arch().parameters();
        let mut params: Vec<&mut [f32]> = self
            .models
            .iter_mut()
            .map(|m| m.params.as_mut_slice())
            .collect();
        engine::unstack_params(&st, &layout, &[], &mut params)?;
        Ok(())
    }
}
