//! [`Dataset`]: what every stage after `data` sees of the examples a model trains and is
//! tested on — the number of classes, the inputs (token pairs or dense feature vectors), the
//! true labels, and whether the inputs have a token space (what the Fourier analyses need).
//!
//! Which kind of dataset a run has is decided once, where its config is read; the engines,
//! the metrics, the run directory and Python take the one type.

use super::corrupt::{corrupt, CorruptionMode, TrainLabels};
use super::table::{Pair, Split};
use crate::error::{Error, Result};

/// The examples of a run, split into training and test sets.
#[derive(Clone, Debug)]
pub enum Dataset {
    /// An operation table over Z_p (SCIENCE.md §1): token pairs `(a, b)`, `p` classes.
    Table(Split),
    /// Dense feature vectors with class labels (real data, SCIENCE.md §9).
    Dense(DenseSplit),
}

/// The true labels of a set of examples, training then test: what the accuracies need.
pub trait Examples {
    fn n_classes(&self) -> usize;
    /// The true label of every training example.
    fn train_true(&self) -> &[u32];
    /// The (true) label of every test example.
    fn test_labels(&self) -> &[u32];
    fn n_train(&self) -> usize {
        self.train_true().len()
    }
    fn n_test(&self) -> usize {
        self.test_labels().len()
    }
}

/// The inputs of a dataset's examples, training set then test set.
#[derive(Clone, Copy, Debug)]
pub enum Inputs<'a> {
    /// Pairs of tokens over the vocabulary `0 .. vocab`.
    Tokens {
        vocab: usize,
        train: &'a [Pair],
        test: &'a [Pair],
    },
    /// Rows of `dim` features each (row-major).
    Dense {
        dim: usize,
        train: &'a [f32],
        test: &'a [f32],
    },
}

/// The token space of a token task: the vocabulary the Fourier transform runs over (its length
/// is the DFT length, SCIENCE.md §4). Datasets without one get no Fourier IPR, spectra or
/// analytic network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenSpace {
    pub vocab: usize,
}

/// A dataset of dense feature vectors, checked: `dim` features per example, every label below
/// `n_classes`, both sets non-empty.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseSplit {
    /// What the data is (for reports), e.g. `fashion-mnist`.
    pub name: String,
    pub n_classes: usize,
    pub dim: usize,
    /// How one example is drawn (`[28, 28]` for an image; `[dim]` for a vector).
    pub shape: Vec<usize>,
    /// `n_train × dim` features.
    pub train_x: Vec<f32>,
    pub train_true: Vec<u32>,
    /// `n_test × dim` features.
    pub test_x: Vec<f32>,
    pub test_labels: Vec<u32>,
}

impl DenseSplit {
    /// Checks the sizes and labels of a dense dataset.
    pub fn new(
        name: &str,
        n_classes: usize,
        shape: Vec<usize>,
        (train_x, train_true): (Vec<f32>, Vec<u32>),
        (test_x, test_labels): (Vec<f32>, Vec<u32>),
    ) -> Result<DenseSplit> {
        let bad = |why: String| Error::invalid("data", format!("dataset {name}: {why}"));
        let dim = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&d| d > 0)
            .ok_or_else(|| bad(format!("example shape {shape:?} has no features")))?;
        if !(2..=u32::MAX as usize).contains(&n_classes) {
            return Err(bad(format!("{n_classes} classes (at least 2 are needed)")));
        }
        for (set, x, y) in [
            ("training", &train_x, &train_true),
            ("test", &test_x, &test_labels),
        ] {
            if y.is_empty() {
                return Err(bad(format!("the {set} set is empty")));
            }
            if Some(x.len()) != y.len().checked_mul(dim) {
                return Err(bad(format!(
                    "the {set} set has {} values for {} examples of {dim} features",
                    x.len(),
                    y.len()
                )));
            }
            if let Some(l) = y.iter().find(|&&l| l as usize >= n_classes) {
                return Err(bad(format!(
                    "a {set} label is {l}, outside 0 … {}",
                    n_classes - 1
                )));
            }
            if x.iter().any(|v| !v.is_finite()) {
                return Err(bad(format!("the {set} set has a value that is not finite")));
            }
        }
        Ok(DenseSplit {
            name: name.to_string(),
            n_classes,
            dim,
            shape,
            train_x,
            train_true,
            test_x,
            test_labels,
        })
    }
}

impl Examples for Split {
    fn n_classes(&self) -> usize {
        self.p
    }
    fn train_true(&self) -> &[u32] {
        &self.train_true
    }
    fn test_labels(&self) -> &[u32] {
        &self.test_labels
    }
}

impl Examples for DenseSplit {
    fn n_classes(&self) -> usize {
        self.n_classes
    }
    fn train_true(&self) -> &[u32] {
        &self.train_true
    }
    fn test_labels(&self) -> &[u32] {
        &self.test_labels
    }
}

impl Examples for Dataset {
    fn n_classes(&self) -> usize {
        self.examples().n_classes()
    }
    fn train_true(&self) -> &[u32] {
        self.examples().train_true()
    }
    fn test_labels(&self) -> &[u32] {
        self.examples().test_labels()
    }
}

// The same, callable without importing [`Examples`].
impl Dataset {
    pub fn n_classes(&self) -> usize {
        self.examples().n_classes()
    }
    pub fn n_train(&self) -> usize {
        self.examples().n_train()
    }
    pub fn n_test(&self) -> usize {
        self.examples().n_test()
    }
    pub fn train_true(&self) -> &[u32] {
        self.examples().train_true()
    }
    pub fn test_labels(&self) -> &[u32] {
        self.examples().test_labels()
    }
}

impl From<Split> for Dataset {
    fn from(split: Split) -> Dataset {
        Dataset::Table(split)
    }
}

impl Dataset {
    fn examples(&self) -> &dyn Examples {
        match self {
            Dataset::Table(s) => s,
            Dataset::Dense(d) => d,
        }
    }

    /// The inputs of every example.
    pub fn inputs(&self) -> Inputs<'_> {
        match self {
            Dataset::Table(s) => Inputs::Tokens {
                vocab: s.p,
                train: &s.train_pairs,
                test: &s.test_pairs,
            },
            Dataset::Dense(d) => Inputs::Dense {
                dim: d.dim,
                train: &d.train_x,
                test: &d.test_x,
            },
        }
    }

    /// The token space, where the inputs are tokens (the Fourier analyses need it).
    pub fn token_space(&self) -> Option<TokenSpace> {
        match self {
            Dataset::Table(s) => Some(TokenSpace { vocab: s.p }),
            Dataset::Dense(_) => None,
        }
    }

    /// The operation table, for what reads token pairs (the engines of token tasks).
    pub fn table(&self) -> Option<&Split> {
        match self {
            Dataset::Table(s) => Some(s),
            Dataset::Dense(_) => None,
        }
    }

    /// The operation table, or an error saying that `what` reads token pairs and this dataset
    /// has none.
    pub fn require_table(&self, what: &str) -> Result<&Split> {
        self.table().ok_or_else(|| {
            Error::invalid(
                "model.kind",
                format!(
                    "{what} reads token pairs, and {} has dense feature vectors",
                    self.describe()
                ),
            )
        })
    }

    /// The dense features, or an error saying that `what` reads them and this dataset is an
    /// operation table.
    pub fn require_dense(&self, what: &str) -> Result<&DenseSplit> {
        match self {
            Dataset::Dense(d) => Ok(d),
            Dataset::Table(_) => Err(Error::invalid(
                "model.kind",
                format!(
                    "{what} reads dense feature vectors, and {} has token pairs",
                    self.describe()
                ),
            )),
        }
    }

    /// The training labels of one model (SCIENCE.md §1): [`corrupt`] over the dataset's
    /// classes.
    pub fn corrupt(&self, xi: f64, mode: CorruptionMode, seed: u64) -> Result<TrainLabels> {
        corrupt(
            Dataset::train_true(self),
            Dataset::n_classes(self),
            xi,
            mode,
            seed,
        )
    }

    /// The dataset in words (`add mod 97`, `fashion-mnist (784 features, 10 classes)`).
    pub fn describe(&self) -> String {
        match self {
            Dataset::Table(s) => format!("{} mod {}", s.operation.name(), s.p),
            Dataset::Dense(d) => {
                format!("{} ({} features, {} classes)", d.name, d.dim, d.n_classes)
            }
        }
    }
}
