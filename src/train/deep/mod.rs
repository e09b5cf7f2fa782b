//! The deep MLP fleet (SCIENCE.md §9): M deep MLPs on the same dense examples, each with its
//! own labels, init, learning rate, weight decay and dropout, trained by minibatch AdamW with
//! the hand-derived passes of [`pass`].
//!
//! A step is one task per model (at most [`TASKS`] at once; larger fleets run in waves), each
//! on one thread over the model's whole batch, so the numbers never depend on the number of
//! threads or on the other models of the fleet. Evaluation runs one task per (model, block of
//! [`EVAL_ROWS`] examples).

mod eval;
pub mod pass;

use super::adamw::AdamWState;
use super::engine::{
    self, BnNeuron, Engine, EvalOutput, ModelHyper, NeuronView, UnitTraces, WeightStats,
};
use super::loss::{Loss, Precision};
use crate::data::DenseSplit;
use crate::error::{Error, Result};
use crate::kernels::{flush_denormals, Real};
use crate::model::deep::{DeepArch, Norm};
use crate::model::kind::NetworkKind;
use pass::{Mode, Running, Work};
use rayon::prelude::*;

/// At most this many training tasks hold workspaces at once.
pub const TASKS: usize = 16;
/// Rows per evaluation task (at most).
pub const EVAL_ROWS: usize = 2048;

/// One deep MLP with its optimizer state.
pub struct DModel<T: Real = f32> {
    /// Every parameter, flat in [`DeepArch::slots`] order.
    pub params: Vec<T>,
    pub adam: AdamWState<T>,
    /// BatchNorm's running statistics per hidden layer (with `norm = "batchnorm"`).
    pub running: Option<Vec<Running<T>>>,
    pub hyper: ModelHyper,
    labels: Vec<u32>,
}

pub struct DFleet<T: Real = f32> {
    pub arch: DeepArch,
    pub loss: Loss,
    /// The training loss's softmax precision (`train.softmax_precision`; f64 unless set).
    pub softmax: Precision,
    pub models: Vec<DModel<T>>,
    train_x: Vec<T>,
    test_x: Vec<T>,
    test_labels: Vec<u32>,
    n_train: usize,
    /// Optimizer steps taken so far (they seed the dropout masks).
    pub step: u64,
    pool: Vec<Work<T>>,
    /// The inputs of the current minibatch.
    xbuf: Vec<T>,
    /// The hidden outputs of one model on every example, for evaluations that recompute only
    /// the layers after a pruned unit ([`Engine::prune_neurons`]).
    cache: Option<eval::EvalCache<T>>,
}

impl<T: Real> DFleet<T> {
    /// A fleet on `data` with one model per `(initial parameters, hyper-parameters, labels)`.
    pub fn new(
        arch: DeepArch,
        loss: Loss,
        data: &DenseSplit,
        models: Vec<(Vec<f32>, ModelHyper, Vec<u32>)>,
    ) -> DFleet<T> {
        assert_eq!(arch.dim, data.dim, "input features");
        let n_train = data.train_true.len();
        let models = models
            .into_iter()
            .map(|(params, hyper, labels)| {
                assert_eq!(params.len(), arch.n_params(), "parameter count");
                assert_eq!(labels.len(), n_train, "one label per training example");
                let running = (arch.norm == Norm::Batchnorm).then(|| {
                    arch.widths
                        .iter()
                        .map(|&w| Running {
                            mean: vec![T::ZERO; w],
                            var: vec![T::ONE; w],
                        })
                        .collect()
                });
                DModel {
                    adam: AdamWState::new(params.len()),
                    params: params.into_iter().map(T::from_f32).collect(),
                    running,
                    hyper,
                    labels,
                }
            })
            .collect();
        let conv = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect::<Vec<T>>();
        DFleet {
            arch,
            loss,
            softmax: Precision::F64,
            models,
            train_x: conv(&data.train_x),
            test_x: conv(&data.test_x),
            test_labels: data.test_labels.clone(),
            n_train,
            step: 0,
            pool: Vec::new(),
            xbuf: Vec::new(),
            cache: None,
        }
    }

    pub fn n_train(&self) -> usize {
        self.n_train
    }

    /// Forward and backward of every model on the training rows `batch`; with `update`, an
    /// AdamW step (and BatchNorm's running statistics). Returns each model's mean loss before
    /// the step and, without `update`, its gradient.
    fn run_batch(&mut self, batch: &[u32], update: bool) -> Vec<(f64, Option<Vec<T>>)> {
        flush_denormals();
        let dim = self.arch.dim;
        let identity = batch.len() * dim == self.train_x.len()
            && batch.iter().enumerate().all(|(i, &r)| r as usize == i);
        if !identity {
            self.xbuf.clear();
            for &r in batch {
                let r = r as usize;
                self.xbuf
                    .extend_from_slice(&self.train_x[r * dim..(r + 1) * dim]);
            }
        }
        let x: &[T] = if identity { &self.train_x } else { &self.xbuf };
        let n = batch.len();
        let (arch, loss, softmax, step) = (&self.arch, self.loss, self.softmax, self.step);
        let n_models = self.models.len();
        while self.pool.len() < TASKS.min(n_models) {
            self.pool.push(Work::default());
        }
        let norm = loss.norm(n, arch.classes);
        let mut out = Vec::with_capacity(n_models);
        for first in (0..n_models).step_by(TASKS) {
            let wave = &mut self.models[first..(first + TASKS).min(n_models)];
            let pool = &mut self.pool[..wave.len()];
            let results: Vec<(f64, Option<Vec<T>>)> = pool
                .par_iter_mut()
                .zip(wave.par_iter_mut())
                .map(|(ws, m)| {
                    flush_denormals();
                    let labels: Vec<u32> = batch.iter().map(|&i| m.labels[i as usize]).collect();
                    let mode = Mode::Train {
                        q: m.hyper.dropout,
                        seed: m.hyper.dropout_seed,
                        step,
                    };
                    ws.forward(arch, &m.params, x, n, mode);
                    let l = ws.loss_grad(loss, softmax, &labels, n, arch.classes) / norm;
                    ws.backward(arch, &m.params, x);
                    if !update {
                        return (l, Some(ws.grad[..arch.n_params()].to_vec()));
                    }
                    if let Some(run) = m.running.as_mut() {
                        let mom = T::from_f32(arch.bn_momentum);
                        let unbias = T::from_f64(if n > 1 {
                            n as f64 / (n - 1) as f64
                        } else {
                            1.0
                        });
                        for (r, (mean, var)) in run.iter_mut().zip(&ws.batch_stats) {
                            for (a, &b) in r.mean.iter_mut().zip(mean) {
                                *a = (T::ONE - mom) * *a + mom * b;
                            }
                            for (a, &b) in r.var.iter_mut().zip(var) {
                                *a = (T::ONE - mom) * *a + mom * b * unbias;
                            }
                        }
                    }
                    let n = arch.n_params();
                    let tensors = arch.slots().into_iter().flat_map(|sl| {
                        [Some(sl.weight), sl.bias, sl.gamma, sl.beta]
                            .into_iter()
                            .flatten()
                    });
                    m.hyper
                        .adam
                        .perp
                        .apply(&m.params, &mut ws.grad[..n], tensors);
                    m.adam.step(&m.hyper.adam, &mut m.params, &ws.grad[..n]);
                    (l, None)
                })
                .collect();
            out.extend(results);
        }
        if update {
            self.step += 1;
            self.cache = None;
        }
        out
    }

    /// One step of every model on `batch` (all training examples when `None`).
    pub fn step_on(&mut self, batch: Option<&[u32]>) -> Vec<f64> {
        let rows: Vec<u32> = match batch {
            Some(b) => b.to_vec(),
            None => (0..self.n_train as u32).collect(),
        };
        self.run_batch(&rows, true)
            .into_iter()
            .map(|(l, _)| l)
            .collect()
    }

    /// Loss and gradient of model `m` on `batch` (all training examples when `None`), in
    /// training mode at the current step, without a step.
    pub fn gradients(&mut self, m: usize, batch: Option<&[u32]>) -> (f64, Vec<T>) {
        let rows: Vec<u32> = match batch {
            Some(b) => b.to_vec(),
            None => (0..self.n_train as u32).collect(),
        };
        let mut all = self.run_batch(&rows, false);
        let (l, g) = all.swap_remove(m);
        (l, g.unwrap_or_default())
    }

    /// Model `m` on the rows `x` in evaluation mode: the pass's buffers and the row count.
    fn eval_pass(&self, m: usize, x: &[T]) -> (Work<T>, usize) {
        let st = &self.models[m];
        let rows = x.len() / self.arch.dim.max(1);
        let mut ws = Work::default();
        let mode = Mode::Eval(st.running.as_deref());
        ws.forward(&self.arch, &st.params, x, rows, mode);
        (ws, rows)
    }

    /// Logits (`rows × classes`) of model `m` on the rows `x`, in evaluation mode.
    pub fn logits(&self, m: usize, x: &[T]) -> Vec<T> {
        let (mut ws, rows) = self.eval_pass(m, x);
        ws.logits.truncate(rows * self.arch.classes);
        ws.logits
    }

    /// The hidden units' outputs (per layer, `rows × width`) of model `m` on the rows `x`, in
    /// evaluation mode: what the data-IPR of a unit is taken over.
    pub fn activations(&self, m: usize, x: &[T]) -> Vec<Vec<T>> {
        let (ws, rows) = self.eval_pass(m, x);
        ws.a.iter()
            .zip(&self.arch.widths)
            .map(|(a, &w)| a[..rows * w].to_vec())
            .collect()
    }
}

impl DFleet<f32> {
    fn running_names(&self) -> Vec<String> {
        if self.arch.norm != Norm::Batchnorm {
            return Vec::new();
        }
        (0..self.arch.depth())
            .flat_map(|l| {
                [
                    format!("layers.{l}.norm.running_mean"),
                    format!("layers.{l}.norm.running_var"),
                ]
            })
            .collect()
    }

    /// The settings a weights file must share with this fleet to be loaded into it.
    fn meta(&self) -> Vec<(&'static str, String)> {
        let a = &self.arch;
        let widths: Vec<String> = a.widths.iter().map(|w| w.to_string()).collect();
        vec![
            ("dim", a.dim.to_string()),
            ("classes", a.classes.to_string()),
            ("widths", widths.join(",")),
            ("activation", format!("{:?}", a.activation).to_lowercase()),
            ("norm", format!("{:?}", a.norm).to_lowercase()),
            ("bias", a.bias.to_string()),
        ]
    }

    /// The running statistics of the models `models`, per tensor of [`Self::running_names`].
    fn running_tensors(&self, models: &[usize]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let names = self.running_names();
        let mut out = Vec::new();
        for (l, &w) in self.arch.widths.iter().enumerate() {
            if names.is_empty() {
                break;
            }
            for (j, pick) in [0, 1].into_iter().enumerate() {
                let data: Vec<f32> = models
                    .iter()
                    .flat_map(|&i| {
                        let r = &self.models[i]
                            .running
                            .as_ref()
                            .expect("BatchNorm statistics")[l];
                        if pick == 0 {
                            r.mean.clone()
                        } else {
                            r.var.clone()
                        }
                    })
                    .collect();
                out.push((names[2 * l + j].clone(), vec![models.len(), w], data));
            }
        }
        out
    }

    fn set_running(&mut self, st: &safetensors::SafeTensors) -> Result<()> {
        let names = self.running_names();
        let mm = self.models.len();
        let mut read = Vec::new();
        for (l, &w) in self.arch.widths.iter().enumerate() {
            if names.is_empty() {
                break;
            }
            let mean = engine::read_tensor(st, &names[2 * l], &[mm, w])?;
            let var = engine::read_tensor(st, &names[2 * l + 1], &[mm, w])?;
            read.push((w, mean, var));
        }
        for (l, (w, mean, var)) in read.into_iter().enumerate() {
            for (i, m) in self.models.iter_mut().enumerate() {
                if let Some(run) = m.running.as_mut() {
                    run[l].mean.copy_from_slice(&mean[i * w..(i + 1) * w]);
                    run[l].var.copy_from_slice(&var[i * w..(i + 1) * w]);
                }
            }
        }
        Ok(())
    }
}

impl Engine for DFleet<f32> {
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
        Ok(self.evaluate(0..self.models.len()))
    }

    fn weight_stats(&self, m: usize) -> WeightStats {
        let slots = self.arch.slots();
        let p = &self.models[m].params;
        let sq = |r: &std::ops::Range<usize>| {
            p[r.clone()]
                .iter()
                .map(|&x| (x as f64) * (x as f64))
                .sum::<f64>()
        };
        let depth = self.arch.depth();
        let hidden: f64 = slots[1..depth].iter().map(|s| sq(&s.weight)).sum();
        WeightStats {
            norms: [
                sq(&slots[0].weight).sqrt(),
                hidden.sqrt(),
                sq(&slots[depth].weight).sqrt(),
            ],
            neuron_iprs: Vec::new(),
            sum_sq: engine::sum_sq(p),
        }
    }

    fn save(&self, step: u64, models: &[usize]) -> Result<Vec<u8>> {
        let views: Vec<&[f32]> = models
            .iter()
            .map(|&i| self.models[i].params.as_slice())
            .collect();
        let mut tensors = engine::stack_params(&self.arch.parameters(), &views);
        tensors.extend(self.running_tensors(models));
        let mut meta = vec![
            ("format", "grokscope-deep".to_string()),
            ("models", models.len().to_string()),
            ("step", step.to_string()),
        ];
        meta.extend(self.meta());
        engine::write_safetensors(tensors, meta)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let st = engine::open_safetensors(bytes, "grokscope-deep")?;
        let mut expected = vec![("models", self.models.len().to_string())];
        expected.extend(self.meta());
        engine::check_meta(bytes, &expected)?;
        let layout = self.arch.parameters();
        let names = self.running_names();
        let also: Vec<&str> = names.iter().map(String::as_str).collect();
        // Everything is read and checked before any model changes.
        let mut copies: Vec<Vec<f32>> = self.models.iter().map(|m| m.params.clone()).collect();
        let mut views: Vec<&mut [f32]> = copies.iter_mut().map(|c| c.as_mut_slice()).collect();
        engine::unstack_params(&st, &layout, &also, &mut views)?;
        self.set_running(&st)?;
        for (m, c) in self.models.iter_mut().zip(copies) {
            m.params = c;
        }
        Ok(())
    }

    fn save_state(&self, extra: Vec<(&str, String)>) -> Result<Vec<u8>> {
        let mut tensors = Vec::new();
        let mut t = Vec::new();
        let n = self.arch.n_params();
        for (i, m) in self.models.iter().enumerate() {
            tensors.push((format!("{i}.params"), vec![n], m.params.clone()));
            tensors.push((format!("{i}.adam_m"), vec![n], m.adam.m.clone()));
            tensors.push((format!("{i}.adam_v"), vec![n], m.adam.v.clone()));
            t.push(m.adam.t);
        }
        let all: Vec<usize> = (0..self.models.len()).collect();
        tensors.extend(self.running_tensors(&all));
        let head = ("grokscope-deep-state", self.models.len(), self.step);
        let mut extra = extra;
        extra.extend(self.meta());
        engine::write_state(head, &t, tensors, extra)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let mm = self.models.len();
        let (st, step, t) = engine::read_state(bytes, "grokscope-deep-state", mm)?;
        engine::check_meta(bytes, &self.meta())?;
        let n = self.arch.n_params();
        let mut read = Vec::with_capacity(mm);
        for i in 0..mm {
            read.push((
                engine::read_tensor(&st, &format!("{i}.params"), &[n])?,
                engine::read_tensor(&st, &format!("{i}.adam_m"), &[n])?,
                engine::read_tensor(&st, &format!("{i}.adam_v"), &[n])?,
            ));
        }
        self.set_running(&st)?;
        for ((m, (p, am, av)), t) in self.models.iter_mut().zip(read).zip(t) {
            m.params = p;
            m.adam.m = am;
            m.adam.v = av;
            m.adam.t = t;
        }
        self.step = step;
        Ok(())
    }

    fn vocab(&self) -> usize {
        self.arch.classes
    }

    fn vector_names(&self) -> &'static [&'static str] {
        &[]
    }

    fn vector_description(&self) -> &'static str {
        "the deep MLP's hidden units have no weight vectors over tokens"
    }

    fn neurons(&self, m: usize) -> Vec<NeuronView> {
        let slots = self.arch.slots();
        let p = &self.models[m].params;
        let bn = self.arch.norm == Norm::Batchnorm;
        let mut out = Vec::with_capacity(self.arch.n_neurons());
        for (l, s) in slots[..self.arch.depth()].iter().enumerate() {
            for k in 0..s.fan_out {
                let bn = match (&s.gamma, &s.beta, &self.models[m].running) {
                    (Some(g), Some(b), Some(run)) if bn => Some(BnNeuron {
                        gamma: p[g.start + k],
                        beta: p[b.start + k],
                        running_var: run[l].var[k],
                        eps: self.arch.bn_eps,
                    }),
                    _ => None,
                };
                out.push(NeuronView {
                    layer: l,
                    neuron: k,
                    vectors: Vec::new(),
                    bn,
                });
            }
        }
        out
    }

    fn n_neurons(&self) -> usize {
        self.arch.n_neurons()
    }

    fn neuron_id(&self, i: usize) -> (usize, usize) {
        let mut i = i;
        for (l, &w) in self.arch.widths.iter().enumerate() {
            if i < w {
                return (l, i);
            }
            i -= w;
        }
        (self.arch.depth(), i)
    }

    fn eval_model(&mut self, m: usize) -> Result<EvalOutput> {
        if m >= self.models.len() {
            return Err(Error::Weights(format!(
                "no model {m} in a fleet of {}",
                self.models.len()
            )));
        }
        Ok(self.evaluate(m..m + 1).remove(0))
    }

    fn unit_traces(&mut self, m: usize, labels: &[u32]) -> Result<Option<UnitTraces>> {
        engine::check_trace_labels(labels, self.n_train())?;
        Ok(Some(self.traces(m, labels)))
    }

    fn prunable_weights(&self, m: usize) -> Vec<(String, Vec<f32>)> {
        vec![("params".to_string(), self.models[m].params.clone())]
    }

    /// A unit is removed by zeroing its outgoing weights (the next layer's column): exactly
    /// the network without it.
    fn prune_neurons(
        &mut self,
        m: usize,
        saved: &[(String, Vec<f32>)],
        gone: &[usize],
    ) -> Result<()> {
        let n = self.arch.n_params();
        let params = engine::saved_params(saved, n, m)?.to_vec();
        let slots = self.arch.slots();
        let ids: Vec<(usize, usize)> = gone.iter().map(|&i| self.neuron_id(i)).collect();
        if let Some(&(l, k)) = ids
            .iter()
            .find(|&&(l, k)| slots.get(l + 1).is_none_or(|s| k >= s.fan_in))
        {
            return Err(Error::Weights(format!("no hidden unit {k} in layer {l}")));
        }
        self.models[m].params = params;
        if ids.is_empty() {
            if let Some(c) = self.cache.as_mut() {
                c.pruned = None;
            }
            return Ok(());
        }
        // The unpruned network's hidden outputs, once per saved parameters: an evaluation
        // then recomputes only the layers after the first pruned unit's.
        let fresh = match &self.cache {
            Some(c) => c.model != m || c.params != self.models[m].params,
            None => true,
        };
        if fresh {
            let acts = self.hidden_outputs(m);
            self.cache = Some(eval::EvalCache {
                model: m,
                params: self.models[m].params.clone(),
                acts,
                pruned: None,
            });
        }
        let st = &mut self.models[m];
        let mut first = usize::MAX;
        for (l, k) in ids {
            let next = &slots[l + 1];
            for r in 0..next.fan_out {
                st.params[next.weight.start + r * next.fan_in + k] = 0.0;
            }
            first = first.min(l + 1);
        }
        if let Some(c) = self.cache.as_mut() {
            c.pruned = Some((st.params.clone(), first));
        }
        Ok(())
    }
}
