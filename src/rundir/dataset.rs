//! `dataset.safetensors`: the inputs, the split, the true labels and per model the labels it
//! trains on and its corrupted set — everything needed to recompute any accuracy outside
//! grokscope (docs/OUTPUTS.md).

use crate::data::{Dataset, Inputs, TrainLabels};
use crate::digest;
use crate::error::{Error, Result};

/// The tensors of `dataset.safetensors` as little-endian bytes: the inputs (`pairs` u32
/// [N, 2] for a token task, `features` f32 [N, dim] for dense data; the training examples,
/// then the test examples), `train` u8 [N] (1 for a training example), `labels` u32 [N] (the
/// true label, `a ∘ b mod p` on a table), `train_labels` u32 [M, n_train] (what model m
/// trains on) and `corrupted` u8 [M, n_train] (1 for an example of model m's corrupted set
/// C). Python's `grokscope.dataset` returns the same arrays.
pub struct DatasetArrays {
    pub n: usize,
    pub n_train: usize,
    pub models: usize,
    /// The inputs tensor's name: `pairs` (u32) or `features` (f32).
    pub inputs_name: &'static str,
    /// Its shape, `[N, 2]` or `[N, dim]`.
    pub inputs_shape: Vec<usize>,
    /// Its values, 4 little-endian bytes each.
    pub inputs: Vec<u8>,
    pub train: Vec<u8>,
    pub labels: Vec<u8>,
    pub train_labels: Vec<u8>,
    pub corrupted: Vec<u8>,
}

/// The arrays of `split` and the models' `labels`.
pub fn dataset_arrays(split: &Dataset, labels: &[TrainLabels]) -> DatasetArrays {
    let n_train = split.n_train();
    let n = n_train + split.n_test();
    let (inputs_name, width, inputs) = match split.inputs() {
        Inputs::Tokens { train, test, .. } => (
            "pairs",
            2,
            train
                .iter()
                .chain(test)
                .flat_map(|&(a, b)| [a.to_le_bytes(), b.to_le_bytes()])
                .flatten()
                .collect(),
        ),
        Inputs::Dense { dim, train, test } => (
            "features",
            dim,
            train
                .iter()
                .chain(test)
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
    };
    DatasetArrays {
        n,
        n_train,
        models: labels.len(),
        inputs_name,
        inputs_shape: vec![n, width],
        inputs,
        train: (0..n).map(|i| u8::from(i < n_train)).collect(),
        labels: split
            .train_true()
            .iter()
            .chain(split.test_labels())
            .flat_map(|l| l.to_le_bytes())
            .collect(),
        train_labels: labels
            .iter()
            .flat_map(|l| l.labels.iter().flat_map(|x| x.to_le_bytes()))
            .collect(),
        corrupted: labels
            .iter()
            .flat_map(|l| l.corrupted.iter().map(|&c| u8::from(c)))
            .collect(),
    }
}

/// `dataset.safetensors` of `split` and the models' `labels` ([`DatasetArrays`]). With
/// `config` (the run's training fingerprint) it is tagged with it and sealed with its
/// digest; without, it is the file grokscope wrote before it recorded either.
pub(super) fn dataset_bytes(
    split: &Dataset,
    labels: &[TrainLabels],
    config: Option<&str>,
) -> Result<Vec<u8>> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let DatasetArrays {
        n,
        n_train,
        models,
        inputs_name,
        inputs_shape,
        inputs,
        train,
        labels: truth,
        train_labels: trained,
        corrupted,
    } = dataset_arrays(split, labels);
    fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>> {
        TensorView::new(dtype, shape, data).map_err(|e| Error::Config(format!("dataset: {e}")))
    }
    let views = vec![
        (
            inputs_name,
            view(
                match split.inputs() {
                    Inputs::Tokens { .. } => Dtype::U32,
                    Inputs::Dense { .. } => Dtype::F32,
                },
                inputs_shape,
                &inputs,
            )?,
        ),
        ("train", view(Dtype::U8, vec![n], &train)?),
        ("labels", view(Dtype::U32, vec![n], &truth)?),
        (
            "train_labels",
            view(Dtype::U32, vec![models, n_train], &trained)?,
        ),
        (
            "corrupted",
            view(Dtype::U8, vec![models, n_train], &corrupted)?,
        ),
    ];
    // One metadata key holding sorted JSON, as in the weights: the file is the same to the
    // byte for the same config.
    let mut about = match split {
        Dataset::Table(s) => serde_json::json!({"format": "grokscope-dataset", "p": s.p}),
        Dataset::Dense(d) => serde_json::json!({
            "classes": d.n_classes,
            "format": "grokscope-dataset",
            "name": d.name,
            "shape": d.shape,
        }),
    };
    if let Some(tag) = config {
        about[super::paths::TRAINED_CONFIG] = tag.into();
        about[digest::KEY] = digest::PLACEHOLDER.into();
    }
    let meta = std::collections::HashMap::from([(
        crate::train::engine::META_KEY.to_string(),
        about.to_string(),
    )]);
    let mut bytes = safetensors::serialize(views, Some(meta))?;
    if config.is_some() {
        digest::seal(&mut bytes).map_err(|e| Error::Config(format!("dataset: {e}")))?;
    }
    Ok(bytes)
}
