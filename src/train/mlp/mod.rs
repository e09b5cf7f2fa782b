//! The batched engine: a *fleet* of M models that share the architecture and the training
//! pairs but have their own labels, init, weight decay, dropout rate and learning rate.
//!
//! One training step runs hand-derived forward and backward passes over [`matmul`]. The work is
//! cut into tasks `(model, row chunk)`; every model's batch is split into [`ROW_CHUNKS`] fixed
//! chunks, so the numbers never depend on the number of threads or on the other models of the
//! fleet. Tasks run in parallel on the rayon pool; without BatchNorm a task is one pass,
//! with BatchNorm it is three passes separated by the reductions of the batch statistics.
//!
//! Forward (rows `r` of the batch, neuron `k`):
//! `h = Uᵀ[a] + Vᵀ[b]`, `h' = h ⊙ mask/(1−q)`, `z = φ(h')`, (BN) `y = γ x̂ + β`,
//! `logits = y Wᵀ`. Backward: `dW = dlogitsᵀ y`, `dy = dlogits W`, (BN) `dz`, `dh' = dz ⊙ φ'(h')`,
//! `dh = dh' ⊙ mask/(1−q)`, and the scatter-adds `dUᵀ[a] += dh`, `dVᵀ[b] += dh`.

use crate::data::{Pair, Split};
use crate::error::Result;
use crate::kernels::flush_denormals;
use crate::model::ipr::neuron_iprs;
use crate::model::kind::NetworkKind;
use crate::model::{Arch, RunningStats};
use crate::train::adamw::AdamWState;
use crate::train::engine::{
    self, BnNeuron, EvalOutput, EvalProbe, ModelHyper, NeuronView, TokenWeights, UnitTraces,
    WeightStats,
};
use crate::train::loss::{Loss, Precision};
use rayon::prelude::*;

mod pass;
mod traces;
use pass::{
    backward_stats, batch_stats, chunk_ranges, eval_chunk, grow, grow_with, hidden, input_backward,
    output_and_backward, BnBatch, TaskCtx, Workspace,
};

/// Every batch is cut into this many row chunks (fewer if it has fewer rows). Part of the
/// numerics: partial gradients are summed in chunk order.
pub const ROW_CHUNKS: usize = 2;
/// At most this many tasks hold workspaces at once; larger fleets run in waves.
const WAVE_TASKS: usize = 16;
/// Rows per block within a task (without BatchNorm), so that a block's activations stay in
/// the core's L2 cache.
const BLOCK_ROWS: usize = 256;
/// Rows per evaluation task (at most).
const EVAL_ROWS: usize = 2048;

/// One model of the fleet.
#[derive(Clone, Debug)]
pub struct ModelState {
    pub params: Vec<f32>,
    pub adam: AdamWState,
    pub running: Option<RunningStats>,
    pub hyper: ModelHyper,
    /// Training labels, aligned with the split's training pairs.
    pub labels: Vec<u32>,
    /// Training labels followed by the test labels: what evaluation compares with.
    eval_labels: Vec<u32>,
}

pub struct Fleet {
    pub arch: Arch,
    pub loss: Loss,
    /// The training loss's softmax precision (`train.softmax_precision`; f64 unless set).
    pub softmax: Precision,
    pub models: Vec<ModelState>,
    train_pairs: Vec<Pair>,
    eval_pairs: Vec<Pair>,
    n_train: usize,
    /// Optimizer steps taken so far.
    pub step: u64,
    pool: Vec<Workspace>,
    tgrads: Vec<Vec<f32>>,
    all_rows: Vec<u32>,
}

impl Fleet {
    /// A fleet on `split` with one model per `(params, hyper, labels)`.
    pub fn new(
        arch: Arch,
        loss: Loss,
        split: &Split,
        models: Vec<(Vec<f32>, ModelHyper, Vec<u32>)>,
    ) -> Fleet {
        let n_train = split.n_train();
        let models = models
            .into_iter()
            .map(|(params, hyper, labels)| {
                assert_eq!(params.len(), arch.n_params(), "parameter count");
                assert_eq!(labels.len(), n_train, "one label per training pair");
                let mut eval_labels = labels.clone();
                eval_labels.extend_from_slice(&split.test_labels);
                ModelState {
                    adam: AdamWState::new(params.len()),
                    running: arch.batchnorm.then(|| RunningStats::new(arch.width)),
                    params,
                    hyper,
                    labels,
                    eval_labels,
                }
            })
            .collect();
        let mut eval_pairs = split.train_pairs.clone();
        eval_pairs.extend_from_slice(&split.test_pairs);
        Fleet {
            arch,
            loss,
            softmax: Precision::F64,
            models,
            train_pairs: split.train_pairs.clone(),
            eval_pairs,
            n_train,
            step: 0,
            pool: Vec::new(),
            tgrads: Vec::new(),
            all_rows: (0..n_train as u32).collect(),
        }
    }

    pub fn n_train(&self) -> usize {
        self.n_train
    }

    /// Indices of all training pairs (the full batch).
    pub fn full_batch(&self) -> Vec<u32> {
        self.all_rows.clone()
    }

    /// One optimizer step of every model on the training rows `batch` (indices into the
    /// training pairs). Returns each model's mean loss on the batch before the step.
    pub fn step(&mut self, batch: &[u32]) -> Vec<f64> {
        let out = self.run_batch(batch, true);
        self.step += 1;
        out.into_iter().map(|(l, _)| l).collect()
    }

    /// One optimizer step on the full batch.
    pub fn step_full(&mut self) -> Vec<f64> {
        let rows = std::mem::take(&mut self.all_rows);
        let out = self.step(&rows);
        self.all_rows = rows;
        out
    }

    /// Loss and gradient of every model on `batch`, in training mode (dropout masks of the
    /// current step, batch statistics), without changing any state.
    pub fn gradients(&mut self, batch: &[u32]) -> Vec<(f64, Vec<f32>)> {
        self.run_batch(batch, false)
            .into_iter()
            .map(|(l, g)| (l, g.expect("gradients requested")))
            .collect()
    }

    fn run_batch(&mut self, batch: &[u32], update: bool) -> Vec<(f64, Option<Vec<f32>>)> {
        flush_denormals();
        assert!(!batch.is_empty(), "empty batch");
        let chunks = chunk_ranges(batch.len(), ROW_CHUNKS);
        let c = chunks.len();
        let per_wave = (WAVE_TASKS / c).max(1);
        let arch = self.arch;
        let loss_kind = self.loss;
        let softmax = self.softmax;
        let n_params = arch.n_params();
        let mut results = Vec::with_capacity(self.models.len());
        let n_models = self.models.len();
        grow_with(
            &mut self.pool,
            per_wave.min(n_models) * c,
            Workspace::default,
        );
        grow_with(&mut self.tgrads, per_wave.min(n_models) * c, Vec::new);
        for g in self.tgrads.iter_mut() {
            grow(g, n_params);
        }
        let step = self.step;
        for first in (0..n_models).step_by(per_wave) {
            let wave_models = &mut self.models[first..(first + per_wave).min(n_models)];
            let ntask = wave_models.len() * c;
            let pool = &mut self.pool[..ntask];
            let tgrads = &mut self.tgrads[..ntask];
            let pairs = &self.train_pairs;
            let wm: &[ModelState] = wave_models;
            let make = |t: usize| {
                let m = &wm[t / c];
                let r = chunks[t % c].clone();
                TaskCtx {
                    arch: &arch,
                    params: &m.params,
                    pairs,
                    rows: &batch[r.clone()],
                    labels: &m.labels,
                    row0: r.start,
                    batch_len: batch.len(),
                    dropout: m.hyper.dropout,
                    dropout_seed: m.hyper.dropout_seed,
                    step,
                    softmax,
                }
            };
            let mut bn: Vec<BnBatch> = Vec::new();
            if !arch.batchnorm {
                pool.par_iter_mut()
                    .zip(tgrads.par_iter_mut())
                    .enumerate()
                    .for_each(|(t, (ws, g))| {
                        // Row blocks small enough for the core's L2 cache; gradients accumulate.
                        let tc = make(t);
                        for (j, start) in (0..tc.rows.len()).step_by(BLOCK_ROWS).enumerate() {
                            let end = (start + BLOCK_ROWS).min(tc.rows.len());
                            let bc = TaskCtx {
                                rows: &tc.rows[start..end],
                                row0: tc.row0 + start,
                                ..tc
                            };
                            hidden(&bc, ws);
                            output_and_backward(&bc, loss_kind, ws, g, None, j > 0);
                            input_backward(&bc, ws, g, None, j > 0);
                        }
                    });
            } else {
                pool.par_iter_mut()
                    .enumerate()
                    .for_each(|(t, ws)| hidden(&make(t), ws));
                bn = (0..wm.len())
                    .map(|lm| batch_stats(&arch, &pool[lm * c..(lm + 1) * c], batch.len()))
                    .collect();
                pool.par_iter_mut()
                    .zip(tgrads.par_iter_mut())
                    .enumerate()
                    .for_each(|(t, (ws, g))| {
                        output_and_backward(&make(t), loss_kind, ws, g, Some(&bn[t / c]), false)
                    });
                for (lm, b) in bn.iter_mut().enumerate() {
                    backward_stats(b, &pool[lm * c..(lm + 1) * c], batch.len());
                }
                pool.par_iter_mut()
                    .zip(tgrads.par_iter_mut())
                    .enumerate()
                    .for_each(|(t, (ws, g))| {
                        input_backward(&make(t), ws, g, Some(&bn[t / c]), false)
                    });
            }
            let norm = loss_kind.norm(batch.len(), arch.p);
            let losses: Vec<f64> = pool
                .chunks(c)
                .map(|ws| ws.iter().map(|w| w.loss).sum::<f64>() / norm)
                .collect();
            // Reduce chunk gradients (in chunk order) and update each model.
            let out: Vec<Option<Vec<f32>>> = wave_models
                .par_iter_mut()
                .zip(tgrads.par_chunks_mut(c))
                .enumerate()
                .map(|(lm, (model, gs))| {
                    let (head, tail) = gs.split_at_mut(1);
                    let g = &mut head[0][..n_params];
                    for other in tail.iter() {
                        for (a, b) in g.iter_mut().zip(&other[..n_params]) {
                            *a += b;
                        }
                    }
                    if update {
                        if let (Some(rs), Some(b)) = (model.running.as_mut(), bn.get(lm)) {
                            let mom = arch.bn_momentum;
                            for k in 0..arch.width {
                                rs.mean[k] = (1.0 - mom) * rs.mean[k] + mom * b.mean[k];
                                rs.var[k] = (1.0 - mom) * rs.var[k] + mom * b.var_unbiased[k];
                            }
                        }
                        let hyper = model.hyper.adam;
                        hyper
                            .perp
                            .apply(&model.params, g, arch.tensor_ranges().into_iter());
                        model.adam.step(&hyper, &mut model.params, g);
                        None
                    } else {
                        Some(g.to_vec())
                    }
                })
                .collect();
            results.extend(losses.into_iter().zip(out));
        }
        results
    }

    /// Evaluates every model on every pair (training pairs first, then test pairs) in
    /// evaluation mode: no dropout, BatchNorm with its running statistics.
    pub fn evaluate(&mut self) -> Vec<EvalOutput> {
        self.evaluate_models(0..self.models.len(), None)
    }

    /// [`Fleet::evaluate`] for the models `range` only (each model's numbers do not depend on
    /// the others), showing `probe` the logits and neuron outputs of every block.
    pub fn evaluate_models(
        &mut self,
        range: std::ops::Range<usize>,
        mut probe: Option<&mut dyn EvalProbe>,
    ) -> Vec<EvalOutput> {
        flush_denormals();
        let n_eval = self.eval_pairs.len();
        let mut ce = n_eval.div_ceil(EVAL_ROWS);
        ce += ce % 2;
        let chunks = chunk_ranges(n_eval, ce);
        let c = chunks.len();
        // Tasks (model, chunk) in order, at most WAVE_TASKS at once: memory does not grow
        // with the table (each row's numbers do not depend on the others).
        let tasks: Vec<(usize, usize)> = range
            .clone()
            .flat_map(|m| (0..c).map(move |ci| (m, ci)))
            .collect();
        grow_with(
            &mut self.pool,
            WAVE_TASKS.min(tasks.len()),
            Workspace::default,
        );
        let arch = self.arch;
        let loss_kind = self.loss;
        let mut out: Vec<EvalOutput> = range
            .clone()
            .map(|_| EvalOutput {
                preds: Vec::with_capacity(n_eval),
                row_loss: Vec::with_capacity(n_eval),
            })
            .collect();
        for wave in tasks.chunks(WAVE_TASKS) {
            let (models, pairs) = (&self.models, &self.eval_pairs);
            self.pool[..wave.len()]
                .par_iter_mut()
                .zip(wave)
                .for_each(|(ws, &(m, ci))| {
                    let m = &models[m];
                    let r = chunks[ci].clone();
                    eval_chunk(
                        &arch,
                        loss_kind,
                        &m.params,
                        m.running.as_ref(),
                        &pairs[r.clone()],
                        &m.eval_labels[r],
                        ws,
                    );
                });
            for (ws, &(m, ci)) in self.pool.iter().zip(wave) {
                let o = &mut out[m - range.start];
                o.preds.extend_from_slice(&ws.preds);
                o.row_loss.extend_from_slice(&ws.row_loss);
                if let Some(pr) = probe.as_deref_mut() {
                    let (rows, n) = (chunks[ci].len(), arch.width);
                    let logits = &ws.logits[..rows * arch.p];
                    pr.block(m, chunks[ci].start, logits, &ws.z[..rows * n], n);
                }
            }
        }
        out
    }
}

impl engine::Engine for Fleet {
    fn n_models(&self) -> usize {
        self.models.len()
    }
    fn loss(&self) -> Loss {
        self.loss
    }
    fn step_batch(&mut self, batch: &[u32]) -> Result<Vec<f64>> {
        Ok(self.step(batch))
    }
    fn step_all(&mut self) -> Result<Vec<f64>> {
        Ok(self.step_full())
    }
    fn eval_all(&mut self) -> Result<Vec<EvalOutput>> {
        Ok(self.evaluate())
    }
    fn eval_all_probed(&mut self, probe: &mut dyn EvalProbe) -> Result<Vec<EvalOutput>> {
        Ok(self.evaluate_models(0..self.models.len(), Some(probe)))
    }
    fn weight_stats(&self, model: usize) -> WeightStats {
        let (arch, params) = (&self.arch, &self.models[model].params);
        WeightStats {
            sum_sq: engine::sum_sq(params),
            norms: [
                engine::norm(&params[arch.u_range()]),
                engine::norm(&params[arch.v_range()]),
                engine::norm(&params[arch.w_range()]),
            ],
            neuron_iprs: neuron_iprs(
                &params[arch.u_range()],
                &params[arch.v_range()],
                &params[arch.w_range()],
                arch.p,
                arch.width,
            ),
        }
    }

    /// `U`, `V` `[M, N, p]`, `W` `[M, p, N]` (the paper's shapes), and with BatchNorm
    /// `bn.weight`, `bn.bias`, `bn.running_mean`, `bn.running_var` `[M, N]`.
    fn save(&self, step: u64, models: &[usize]) -> Result<Vec<u8>> {
        let arch = self.arch;
        let (p, n, mm) = (arch.p, arch.width, models.len());
        let chosen: Vec<&ModelState> = models.iter().map(|&i| &self.models[i]).collect();
        let views: Vec<&[f32]> = chosen.iter().map(|m| m.params.as_slice()).collect();
        let mut tensors = engine::stack_params(&arch.parameters(), &views);
        if arch.batchnorm {
            let cat = |f: &dyn Fn(&ModelState) -> &[f32]| -> Vec<f32> {
                chosen.iter().flat_map(|m| f(m).to_vec()).collect()
            };
            fn stats(m: &ModelState, mean: bool) -> &[f32] {
                match &m.running {
                    Some(rs) if mean => &rs.mean,
                    Some(rs) => &rs.var,
                    None => &[],
                }
            }
            for (name, data) in [
                ("bn.running_mean", cat(&|m| stats(m, true))),
                ("bn.running_var", cat(&|m| stats(m, false))),
            ] {
                tensors.push((name.to_string(), vec![mm, n], data));
            }
        }
        engine::write_safetensors(
            tensors,
            vec![
                ("format", "grokscope-mlp".to_string()),
                ("p", p.to_string()),
                ("width", n.to_string()),
                ("models", mm.to_string()),
                ("step", step.to_string()),
                ("activation", self.meta()[3].1.clone()),
            ],
        )
    }

    fn save_state(&self, extra: Vec<(&str, String)>) -> Result<Vec<u8>> {
        self.state_impl(extra)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.load_state_impl(bytes)
    }

    fn vocab(&self) -> usize {
        self.arch.p
    }

    fn vector_names(&self) -> &'static [&'static str] {
        &["U", "V", "W"]
    }

    fn vector_description(&self) -> &'static str {
        "each neuron's U row, V row and W column"
    }

    fn neurons(&self, m: usize) -> Vec<NeuronView> {
        Fleet::neurons(self, m)
    }

    fn n_neurons(&self) -> usize {
        self.arch.width
    }

    fn token_weights(&self, m: usize) -> Option<TokenWeights> {
        let (a, w) = (&self.arch, &self.models[m].params);
        let block = |r: std::ops::Range<usize>| (w[r].to_vec(), a.width);
        Some(TokenWeights {
            embed: vec![block(a.u_range()), block(a.v_range())],
            unembed: vec![block(a.w_range())],
        })
    }
    fn eval_model(&mut self, m: usize) -> Result<EvalOutput> {
        Ok(self.evaluate_models(m..m + 1, None).remove(0))
    }

    fn prunable_weights(&self, m: usize) -> Vec<(String, Vec<f32>)> {
        vec![("params".to_string(), self.models[m].params.clone())]
    }

    fn unit_traces(&mut self, m: usize, labels: &[u32]) -> Result<Option<UnitTraces>> {
        engine::check_trace_labels(labels, self.n_train())?;
        Ok(Some(self.traces(m, labels)))
    }

    fn prune_neurons(
        &mut self,
        m: usize,
        saved: &[(String, Vec<f32>)],
        gone: &[usize],
    ) -> Result<()> {
        let n = self.arch.n_params();
        let params = engine::saved_params(saved, n, m)?;
        let arch = self.arch;
        let model = &mut self.models[m];
        model.params.copy_from_slice(params);
        for &k in gone {
            arch.zero_neuron(&mut model.params, k);
        }
        Ok(())
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let st = engine::open_safetensors(bytes, "grokscope-mlp")?;
        let arch = self.arch;
        let (n, m) = (arch.width, self.models.len());
        engine::check_meta(bytes, &self.meta())?;
        let get = |name: &str| engine::read_tensor(&st, name, &[m, n]);
        let stats = if arch.batchnorm {
            Some([get("bn.running_mean")?, get("bn.running_var")?])
        } else {
            None
        };
        let mut params: Vec<&mut [f32]> = self
            .models
            .iter_mut()
            .map(|m| m.params.as_mut_slice())
            .collect();
        let also: &[&str] = if arch.batchnorm {
            &["bn.running_mean", "bn.running_var"]
        } else {
            &[]
        };
        engine::unstack_params(&st, &arch.parameters(), also, &mut params)?;
        for (i, model) in self.models.iter_mut().enumerate() {
            if let (Some([rm, rv]), Some(rs)) = (&stats, model.running.as_mut()) {
                let r = i * n..(i + 1) * n;
                rs.mean.copy_from_slice(&rm[r.clone()]);
                rs.var.copy_from_slice(&rv[r]);
            }
        }
        Ok(())
    }
}

impl Fleet {
    /// What a weights file of this fleet records about it: `p`, `width`, `models`,
    /// `activation`.
    fn meta(&self) -> Vec<(&'static str, String)> {
        vec![
            ("p", self.arch.p.to_string()),
            ("width", self.arch.width.to_string()),
            ("models", self.models.len().to_string()),
            (
                "activation",
                format!("{:?}", self.arch.activation).to_lowercase(),
            ),
        ]
    }

    fn state_impl(&self, extra: Vec<(&str, String)>) -> Result<Vec<u8>> {
        let n = self.arch.n_params();
        let mut tensors = Vec::new();
        for (i, m) in self.models.iter().enumerate() {
            tensors.push((format!("{i}.params"), vec![n], m.params.clone()));
            tensors.push((format!("{i}.adam_m"), vec![n], m.adam.m.clone()));
            tensors.push((format!("{i}.adam_v"), vec![n], m.adam.v.clone()));
            if let Some(rs) = &m.running {
                tensors.push((format!("{i}.bn_mean"), vec![rs.mean.len()], rs.mean.clone()));
                tensors.push((format!("{i}.bn_var"), vec![rs.var.len()], rs.var.clone()));
            }
        }
        let t: Vec<u64> = self.models.iter().map(|m| m.adam.t).collect();
        let head = ("grokscope-mlp-state", self.models.len(), self.step);
        engine::write_state(head, &t, tensors, extra)
    }

    fn load_state_impl(&mut self, bytes: &[u8]) -> Result<()> {
        let (st, step, t) = engine::read_state(bytes, "grokscope-mlp-state", self.models.len())?;
        let n = self.arch.n_params();
        let w = self.arch.width;
        for (i, m) in self.models.iter_mut().enumerate() {
            m.params = engine::read_tensor(&st, &format!("{i}.params"), &[n])?;
            m.adam.m = engine::read_tensor(&st, &format!("{i}.adam_m"), &[n])?;
            m.adam.v = engine::read_tensor(&st, &format!("{i}.adam_v"), &[n])?;
            m.adam.t = t[i];
            if let Some(rs) = m.running.as_mut() {
                rs.mean = engine::read_tensor(&st, &format!("{i}.bn_mean"), &[w])?;
                rs.var = engine::read_tensor(&st, &format!("{i}.bn_var"), &[w])?;
            }
        }
        self.step = step;
        Ok(())
    }

    /// Every neuron of model `m`: its `U` row, `V` row and `W` column, and its BatchNorm.
    pub fn neurons(&self, m: usize) -> Vec<NeuronView> {
        let (arch, model) = (&self.arch, &self.models[m]);
        let (p, n) = (arch.p, arch.width);
        let col = |r: std::ops::Range<usize>, k: usize| -> Vec<f32> {
            (0..p).map(|a| model.params[r.start + a * n + k]).collect()
        };
        (0..n)
            .map(|k| NeuronView {
                layer: 0,
                neuron: k,
                vectors: vec![
                    col(arch.u_range(), k),
                    col(arch.v_range(), k),
                    col(arch.w_range(), k),
                ],
                bn: model.running.as_ref().map(|rs| BnNeuron {
                    gamma: model.params[arch.gamma_range().start + k],
                    beta: model.params[arch.beta_range().start + k],
                    running_var: rs.var[k],
                    eps: arch.bn_eps,
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_ranges;

    #[test]
    fn chunks_cover_the_rows_in_order_without_empty_ones() {
        for n in [1usize, 2, 3, 7, 100, 4704] {
            for c in [1usize, 2, 3, 16] {
                let r = chunk_ranges(n, c);
                assert_eq!(r.len(), c.min(n), "n = {n}, c = {c}");
                assert_eq!(r[0].start, 0);
                assert_eq!(r.last().unwrap().end, n);
                for w in r.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                assert!(r.iter().all(|x| !x.is_empty()));
                let (min, max) = (
                    r.iter().map(|x| x.len()).min().unwrap(),
                    r.iter().map(|x| x.len()).max().unwrap(),
                );
                assert!(max - min <= 1, "nearly equal");
            }
        }
        assert_eq!(chunk_ranges(0, 2), vec![0..0]);
    }
}
