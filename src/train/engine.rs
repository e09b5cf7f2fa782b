//! What a fleet engine is ([`Engine`]) and the types the engines, the loop and the analysis
//! exchange: per-model settings, evaluation output, weight statistics, neuron views, and the
//! safetensors helpers both engines store their weights with.

use super::adamw::AdamWHyper;
use super::loss::Loss;
use crate::digest;
use crate::error::{Error, Result};
use crate::model::kind::Tensor;

/// What the training loop needs of a batched engine.
pub trait Engine {
    fn n_models(&self) -> usize;
    fn loss(&self) -> Loss;
    /// One optimizer step of every model on the training rows `batch`; returns each model's
    /// mean loss on the batch before the update, in training mode (dropout, batch statistics).
    fn step_batch(&mut self, batch: &[u32]) -> Result<Vec<f64>>;
    /// One optimizer step of every model on the full batch; returns the losses as
    /// [`Engine::step_batch`] does.
    fn step_all(&mut self) -> Result<Vec<f64>>;
    /// Predictions and row losses of every model on every pair (training, then test).
    fn eval_all(&mut self) -> Result<Vec<EvalOutput>>;
    /// [`Engine::eval_all`], showing `probe` each model's outputs and hidden activations on
    /// the way (for the progress measures, SCIENCE.md §10). A kind that cannot show them
    /// (the deep MLP on dense data) evaluates without calling the probe.
    fn eval_all_probed(&mut self, _probe: &mut dyn EvalProbe) -> Result<Vec<EvalOutput>> {
        self.eval_all()
    }
    /// Weight norms and per-neuron IPRs of one model.
    fn weight_stats(&self, model: usize) -> WeightStats;
    /// The parameters (and state such as BatchNorm statistics) of the models `models` as a
    /// safetensors file, each tensor stacked over them (leading dimension `models.len()`).
    fn save(&self, step: u64, models: &[usize]) -> Result<Vec<u8>>;
    /// Restores every model from a file written by [`Engine::save`] for the same fleet.
    fn load(&mut self, bytes: &[u8]) -> Result<()>;
    /// Everything training needs to continue to the same bits, as a safetensors file: the
    /// parameters, the AdamW moments and step counts, BatchNorm running statistics, and the
    /// fleet's step counter (which seeds the dropout masks).
    /// `extra` entries go into the file's metadata (the caller's bookkeeping).
    fn save_state(&self, extra: Vec<(&str, String)>) -> Result<Vec<u8>>;
    /// Restores a state written by [`Engine::save_state`] for the same fleet.
    fn load_state(&mut self, bytes: &[u8]) -> Result<()>;

    // What the analyses see of a model kind: its neurons as weight vectors over the tokens.

    /// The number of token values (the modulus p): the inputs' vocabulary and the outputs.
    fn vocab(&self) -> usize;
    /// What the vectors of a [`NeuronView`] are, in order.
    fn vector_names(&self) -> &'static [&'static str];
    /// A sentence on what the vectors of a [`NeuronView`] are (for figure captions).
    fn vector_description(&self) -> &'static str;
    /// Every neuron of model `m`.
    fn neurons(&self, m: usize) -> Vec<NeuronView>;
    /// The number of neurons per model.
    fn n_neurons(&self) -> usize;
    /// The (layer, neuron within the layer) of neuron `i` of [`Engine::neurons`].
    fn neuron_id(&self, i: usize) -> (usize, usize) {
        (0, i)
    }
    /// The columns of the token embedding of model `m` (`None`: the kind has none).
    fn embedding_columns(&self, _m: usize) -> Option<Vec<Vec<f32>>> {
        None
    }
    /// The weights of model `m` that meet the tokens: the input embedding and the read-out,
    /// each as vectors over the `p` tokens (`None`: the kind has no token embedding).
    fn token_weights(&self, _m: usize) -> Option<TokenWeights> {
        None
    }
    /// Predictions and row losses of model `m` on every pair, in evaluation mode.
    fn eval_model(&mut self, m: usize) -> Result<EvalOutput>;
    /// Every hidden unit's output and gradient attribution over the training examples, in
    /// evaluation mode, the loss of example `i` taken on `labels[i]` ([`UnitTraces`]; `None`:
    /// the kind has no such units, e.g. the Transformer).
    fn unit_traces(&mut self, _m: usize, _labels: &[u32]) -> Result<Option<UnitTraces>> {
        Ok(None)
    }
    /// The weights of model `m` that pruning changes, as named tensors (what
    /// [`Engine::prune_neurons`] starts from).
    fn prunable_weights(&self, m: usize) -> Vec<(String, Vec<f32>)>;
    /// Sets model `m`'s weights to `saved` (from [`Engine::prunable_weights`]) with the neurons
    /// `gone` (indices of [`Engine::neurons`]) removed; `gone` empty restores them.
    fn prune_neurons(
        &mut self,
        m: usize,
        saved: &[(String, Vec<f32>)],
        gone: &[usize],
    ) -> Result<()>;
}

/// What an evaluation shows besides predictions and losses ([`Engine::eval_all_probed`]).
pub trait EvalProbe {
    /// Rows `row0 .. row0 + rows` of model `m`, in the row order of [`Engine::eval_all`]:
    /// `logits` `[rows, vocab]` and `hidden` `[rows, width]`, the activations of the hidden
    /// units the key frequencies are read from (the MLP's neurons; the Transformer's last MLP
    /// at the last position). A model's blocks arrive in row order; models may interleave.
    fn block(&mut self, m: usize, row0: usize, logits: &[f32], hidden: &[f32], width: usize);
}

/// The weights of a model that meet the tokens ([`Engine::token_weights`]): what the
/// progress measures take Fourier norms of. Each is a list of token-major matrices
/// `[p, cols]` (row `t` belongs to token or class `t`), as the engines store them.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenWeights {
    /// The input embedding (MLP: `Uᵀ` and `Vᵀ`, `[p, N]` each; Transformer: `tok_emb`,
    /// `[p, d]`).
    pub embed: Vec<(Vec<f32>, usize)>,
    /// The read-out (MLP: `W`, `[p, N]`; Transformer: the unembedding, or `tok_emb` when
    /// tied, `[p, d]`).
    pub unembed: Vec<(Vec<f32>, usize)>,
}

/// What the scores of memorizing units (SCIENCE.md §9) read from a model: for every hidden
/// unit `k` (in the order of [`Engine::neurons`]) and training example `i`, in evaluation
/// mode, the unit's output `a_k(x_i)` and its gradient attribution `|θ_k · ∂ℓ_i/∂θ_k|`
/// (`θ_k` the unit's incoming weights, `ℓ_i` the loss of example `i` on the label asked for:
/// its training label for Maini et al.'s score), which for a linear map is `|δ_ik (θ_k · x_i)|` with `δ_ik = ∂ℓ_i/∂h_ik` the
/// gradient at the unit's pre-activation.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitTraces {
    /// Per unit, one value per training example.
    pub act: Vec<Vec<f32>>,
    pub attr: Vec<Vec<f32>>,
}

/// The per-model settings a fleet may vary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelHyper {
    pub adam: AdamWHyper,
    /// Dropout rate q, `0 ≤ q < 1`.
    pub dropout: f32,
    /// Seed of the dropout masks.
    pub dropout_seed: u64,
}

/// The result of evaluating one model on every pair (training pairs, then test pairs).
#[derive(Clone, Debug)]
pub struct EvalOutput {
    /// Predicted class (argmax of the logits) per pair.
    pub preds: Vec<u32>,
    /// Unnormalised loss per pair (see [`Loss::row_loss`]) against the training label for
    /// training pairs and the true label for test pairs.
    pub row_loss: Vec<f64>,
}

/// What the metrics need of a model's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightStats {
    /// Three Frobenius norms, named by `model::Architecture::norm_names` (MLP: ‖U‖, ‖V‖,
    /// ‖W‖; Transformer: token embedding, MLP weights, output layer).
    pub norms: [f64; 3],
    /// Per-neuron IPR (`None`: dead neuron).
    pub neuron_iprs: Vec<Option<f64>>,
    /// The sum of the squares of every parameter (BatchNorm's and biases included), in f64.
    pub sum_sq: f64,
}

/// One neuron as the analysis sees it: its weight vectors over the `p` tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronView {
    pub layer: usize,
    pub neuron: usize,
    /// In the order of [`Network::vector_names`].
    pub vectors: Vec<Vec<f32>>,
    /// The BatchNorm after the neuron (MLP with BatchNorm).
    pub bn: Option<BnNeuron>,
}

/// One neuron's BatchNorm parameters and statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnNeuron {
    pub gamma: f32,
    pub beta: f32,
    pub running_var: f32,
    pub eps: f32,
}

/// The evaluation of each model from its blocks of rows: `parts` holds `per_model`
/// consecutive (predictions, row losses) blocks per model, in row order.
pub fn join_blocks(parts: &[(Vec<u32>, Vec<f64>)], per_model: usize) -> Vec<EvalOutput> {
    parts
        .chunks(per_model.max(1))
        .map(|ps| EvalOutput {
            preds: ps.iter().flat_map(|p| p.0.iter().copied()).collect(),
            row_loss: ps.iter().flat_map(|p| p.1.iter().copied()).collect(),
        })
        .collect()
}

/// The flat parameter vector of model `m` in `saved` (from a kind's `prunable_weights`, a
/// single `params` tensor of `n` values), or the error that pruning cannot start from it.
pub fn saved_params(saved: &[(String, Vec<f32>)], n: usize, m: usize) -> Result<&[f32]> {
    saved
        .iter()
        .find(|(name, v)| name == "params" && v.len() == n)
        .map(|(_, v)| v.as_slice())
        .ok_or_else(|| Error::Weights(format!("pruning needs the {n} parameters of model {m}")))
}

/// Refuses `labels` for [`Engine::unit_traces`] unless there is one per training example.
pub fn check_trace_labels(labels: &[u32], n_train: usize) -> Result<()> {
    if labels.len() == n_train {
        return Ok(());
    }
    Err(Error::invalid(
        "labels",
        format!("{} labels for {n_train} training examples", labels.len()),
    ))
}

/// The sum of the squares of the entries of `v`, in f64.
pub fn sum_sq(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64) * (x as f64)).sum()
}

/// Frobenius norm of the entries of `v`, in f64.
pub fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

/// A safetensors file from `(name, shape, f32 data)` tensors and metadata.
pub fn write_safetensors(
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    meta: Vec<(&str, String)>,
) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, data)| {
            (
                name,
                shape,
                data.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|t| (name.clone(), t))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // One metadata key holding a JSON object with sorted keys: safetensors keeps metadata in a
    // HashMap, whose order changes from process to process, and files must be reproducible
    // to the byte.
    // The file's digest (`digest`): a placeholder sealed in place once serialized.
    let mut info: std::collections::BTreeMap<&str, String> = meta.into_iter().collect();
    info.insert(digest::KEY, digest::PLACEHOLDER.to_string());
    let meta = std::collections::HashMap::from([(
        META_KEY.to_string(),
        serde_json::to_string(&info).unwrap_or_default(),
    )]);
    let mut bytes = safetensors::serialize(views, Some(meta))?;
    digest::seal(&mut bytes).map_err(Error::Weights)?;
    Ok(bytes)
}

/// `bytes` (a file from [`write_safetensors`]) with the entries `extra` added to its metadata
/// and sealed again: how a caller tags a weights file with what only it knows (the run's
/// config fingerprint).
pub fn add_meta(bytes: &[u8], extra: &[(&str, String)]) -> Result<Vec<u8>> {
    let st = safetensors::SafeTensors::deserialize(bytes)?;
    let (_, head) = safetensors::SafeTensors::read_metadata(bytes)?;
    let mut info: std::collections::BTreeMap<String, String> =
        match head.metadata().as_ref().and_then(|m| m.get(META_KEY)) {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| Error::Weights(format!("metadata `{META_KEY}`: {e}")))?,
            None => Default::default(),
        };
    for (k, v) in extra {
        info.insert(k.to_string(), v.clone());
    }
    info.insert(digest::KEY.to_string(), digest::PLACEHOLDER.to_string());
    let meta = std::collections::HashMap::from([(
        META_KEY.to_string(),
        serde_json::to_string(&info).unwrap_or_default(),
    )]);
    let mut out = safetensors::serialize(st.tensors(), Some(meta))?;
    digest::seal(&mut out).map_err(Error::Weights)?;
    Ok(out)
}

/// The metadata key of grokscope's safetensors files: a JSON object (`format`, `p`, `models`,
/// `step`, …).
pub const META_KEY: &str = "grokscope";

/// The metadata entry `key` of a safetensors file (from the JSON object under [`META_KEY`],
/// or a top-level key as files before it had).
pub fn read_meta(bytes: &[u8], key: &str) -> Result<Option<String>> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)?;
    let Some(m) = meta.metadata().as_ref() else {
        return Ok(None);
    };
    if let Some(info) = m.get(META_KEY) {
        let info: std::collections::BTreeMap<String, String> = serde_json::from_str(info)
            .map_err(|e| Error::Weights(format!("metadata `{META_KEY}`: {e}")))?;
        return Ok(info.get(key).cloned());
    }
    Ok(m.get(key).cloned())
}

/// Checks the metadata a weights or state file records (e.g. `activation`, `width`) against
/// the network it is loaded into: a file written for another network is refused, naming the
/// disagreement. Keys the file does not record are not checked.
pub fn check_meta(bytes: &[u8], expected: &[(&str, String)]) -> Result<()> {
    for (key, want) in expected {
        if let Some(found) = read_meta(bytes, key)? {
            if &found != want {
                return Err(Error::Weights(format!(
                    "the file was written for {key} = {found}, but the config gives {key} = {want}"
                )));
            }
        }
    }
    Ok(())
}

/// Opens a safetensors file written by [`write_safetensors`] with `format` in its metadata (a
/// file without one is accepted), after checking its digest (a file without one, written
/// before grokscope recorded digests, is accepted).
pub fn open_safetensors<'a>(bytes: &'a [u8], format: &str) -> Result<safetensors::SafeTensors<'a>> {
    digest::verify(bytes).map_err(Error::Weights)?;
    if let Some(found) = read_meta(bytes, "format")? {
        if found != format {
            return Err(Error::Weights(format!(
                "the file holds {found} weights, the config asks for {format}"
            )));
        }
    }
    Ok(safetensors::SafeTensors::deserialize(bytes)?)
}

/// The f32 tensor `name` of a safetensors file, checked against `shape`.
pub fn read_tensor(st: &safetensors::SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let t = st.tensor(name)?;
    if t.shape() != shape || t.dtype() != safetensors::Dtype::F32 {
        return Err(Error::Weights(format!(
            "{name} has shape {:?} ({:?}); the config implies {shape:?} (F32)",
            t.shape(),
            t.dtype()
        )));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A state file ([`Engine::save_state`]): `tensors`, with the fleet's step and the AdamW step
/// counts of every parameter block (and the caller's `extra`) in its metadata.
/// `head` is (format, models, step).
pub fn write_state(
    head: (&str, usize, u64),
    adam_t: &[u64],
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    extra: Vec<(&str, String)>,
) -> Result<Vec<u8>> {
    let (format, models, step) = head;
    let t: Vec<String> = adam_t.iter().map(|t| t.to_string()).collect();
    let mut meta = vec![
        ("format", format.to_string()),
        ("models", models.to_string()),
        ("step", step.to_string()),
        ("adam_t", t.join(",")),
    ];
    meta.extend(extra);
    write_safetensors(tensors, meta)
}

/// Opens a state file written by [`write_state`]: its tensors, the fleet's step and the `n`
/// AdamW step counts.
pub fn read_state<'a>(
    bytes: &'a [u8],
    format: &str,
    n: usize,
) -> Result<(safetensors::SafeTensors<'a>, u64, Vec<u64>)> {
    let st = open_safetensors(bytes, format)?;
    let step = parse_step(read_meta(bytes, "step")?)?;
    let t = parse_counts(read_meta(bytes, "adam_t")?, n)?;
    Ok((st, step, t))
}

/// The optimizer step counts of a state file's metadata (`adam_t`: comma-separated).
fn parse_counts(text: Option<String>, n: usize) -> Result<Vec<u64>> {
    let text = text.ok_or_else(|| Error::Weights("state without AdamW step counts".into()))?;
    let v: Vec<u64> = text
        .split(',')
        .map(|x| x.trim().parse())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Weights(format!("bad AdamW step counts {text:?}")))?;
    if v.len() != n {
        return Err(Error::Weights(format!(
            "{} AdamW step counts for {n} parameter blocks",
            v.len()
        )));
    }
    Ok(v)
}

/// The fleet step of a state file's metadata.
fn parse_step(text: Option<String>) -> Result<u64> {
    text.and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Weights("state without a valid step".into()))
}

/// The tensors of a weights file for the models whose flat parameter vectors are `models`,
/// from the kind's parameter layout (`NetworkKind::parameters`): each tensor stacked over the
/// models (leading dimension `models.len()`), transposed where the layout says so.
pub fn stack_params(layout: &[Tensor], models: &[&[f32]]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut offset = 0;
    layout
        .iter()
        .map(|t| {
            let range = offset..offset + t.len();
            offset = range.end;
            let mut data = Vec::with_capacity(models.len() * t.len());
            for params in models {
                let v = &params[range.clone()];
                match (t.transposed, t.shape.as_slice()) {
                    (true, &[r, c]) => {
                        data.extend((0..c).flat_map(|j| (0..r).map(move |i| v[i * c + j])))
                    }
                    _ => data.extend_from_slice(v),
                }
            }
            let mut shape = vec![models.len()];
            shape.extend(t.file_shape());
            (t.name.clone(), shape, data)
        })
        .collect()
}

/// Reads every tensor of `layout` from a weights file of `params.len()` models (checked:
/// name, shape, dtype) and writes model `i`'s values into `params[i]`, its flat parameter
/// vector: the inverse of [`stack_params`]. Every tensor is read and checked before any model
/// changes, so that a bad file leaves the models as they were; a tensor that is neither in
/// the layout nor one of `also` (the kind's state, e.g. BatchNorm statistics) is an error (a
/// file of another kind, or with other options).
pub fn unstack_params(
    st: &safetensors::SafeTensors,
    layout: &[Tensor],
    also: &[&str],
    params: &mut [&mut [f32]],
) -> Result<()> {
    let mut unknown: Vec<&str> = st
        .names()
        .into_iter()
        .filter(|n| !also.contains(n) && !layout.iter().any(|t| t.name == *n))
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(Error::Weights(format!(
            "it holds tensors this run's model does not have ({}): a file of another model kind or with other settings (BatchNorm, layers, biases)?",
            unknown.join(", ")
        )));
    }
    let n = params.len();
    let read = layout
        .iter()
        .map(|t| {
            let mut shape = vec![n];
            shape.extend(t.file_shape());
            read_tensor(st, &t.name, &shape)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut offset = 0;
    for (t, all) in layout.iter().zip(read) {
        let range = offset..offset + t.len();
        offset = range.end;
        for i in 0..n {
            let src = &all[i * t.len()..(i + 1) * t.len()];
            let dst = &mut params[i][range.clone()];
            match (t.transposed, t.shape.as_slice()) {
                (true, &[r, c]) => {
                    for a in 0..r {
                        for k in 0..c {
                            dst[a * c + k] = src[k * r + a];
                        }
                    }
                }
                _ => dst.copy_from_slice(src),
            }
        }
    }
    Ok(())
}
