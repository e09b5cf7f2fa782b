//! What a model kind is to every stage that does not train it ([`NetworkKind`]): its
//! parameter layout as data, the names of its weight norms and its neurons, what decides the
//! time of a step, and the kind's part of a fleet's memory. Each kind implements it beside
//! its layout (`mlp.rs`, `transformer.rs`); `Architecture::kind` is the one `match` that
//! picks the implementation, and `Architecture` the one list of kinds.

/// The sizes of a fleet that a kind's memory depends on, in `f64` (no size can overflow).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizes {
    /// The vocabulary and number of classes.
    pub p: f64,
    /// Examples of the whole table (training and test).
    pub table: f64,
    /// Rows of one training step.
    pub rows: f64,
    pub models: f64,
}

/// One part of a memory estimate: what it is, the config key that drives it, bytes.
pub type Part = (&'static str, &'static str, f64);

/// Tasks that hold a workspace at once in the engines (`train::mlp::WAVE_TASKS`).
pub const TASKS: f64 = 16.0;

/// One named tensor of a model's parameters: its name in the weights file, its shape in the
/// flat parameter vector (tensors follow each other in layout order), and whether the
/// weights file holds it transposed (a matrix `[r, c]` in the vector is `[c, r]` in the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub transposed: bool,
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Its shape in the weights file.
    pub fn file_shape(&self) -> Vec<usize> {
        match (self.transposed, self.shape.as_slice()) {
            (true, &[r, c]) => vec![c, r],
            _ => self.shape.clone(),
        }
    }
}

/// What a model kind is, seen from outside its engine.
pub trait NetworkKind {
    /// The trainable parameters of one model, in the order of its flat parameter vector.
    fn parameters(&self) -> Vec<Tensor>;
    /// What the three weight norms of the metrics (`norm_u`, `norm_v`, `norm_w`) measure.
    fn norm_names(&self) -> [&'static str; 3];
    /// What one "neuron" of the per-neuron analysis is.
    fn neuron_noun(&self) -> &'static str;
    /// What decides the time of a training step besides the batch (sweeps measure one fleet
    /// of each): the shape, not the init.
    fn shape_key(&self) -> String;
    /// The kind's part of a fleet's peak memory: its models (parameters, AdamW moments and
    /// their copies while written), gradients and activations.
    fn memory_parts(&self, s: &Sizes) -> Vec<Part>;
}

/// The number of parameters of a layout.
pub fn n_parameters(layout: &[Tensor]) -> usize {
    layout.iter().map(Tensor::len).sum()
}
