//! Label corruption (SCIENCE.md §1), written against the number of classes: it needs only a
//! dataset's true training labels, so every dataset (an operation table, real images) is
//! corrupted by the same draw.

use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How a corrupted label is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CorruptionMode {
    /// Uniform over the `K − 1` wrong labels (the default).
    #[default]
    Wrong,
    /// Uniform over all `K` labels; the picked examples whose draw is their true label are
    /// not counted as corrupted (they are clean).
    Any,
    /// The reference's MLP code: uniform over all `K` labels, and every picked example counts
    /// as corrupted (in `C`, `A_mem`, `A_inv`), also where the draw is its true label.
    Reference,
    /// The reference's Transformer notebook: uniform over `0 … K−2` (label `K − 1` is never
    /// drawn), every picked example counted as corrupted.
    #[serde(rename = "reference-transformer")]
    ReferenceTransformer,
    /// Class-dependent noise: a fixed pair-flip map, class `y` → `(y + 1) mod K` (the
    /// asymmetric noise of the noisy-label literature, SCIENCE.md §9); draws no label.
    #[serde(rename = "pair-flip")]
    PairFlip,
}

/// The corruption fraction ξ must satisfy 0 ≤ ξ < 1 (`data.corruption`; the one check of it,
/// for configs and for direct callers of [`corrupt`]).
pub fn check_xi(xi: f64) -> Result<()> {
    if (0.0..1.0).contains(&xi) {
        Ok(())
    } else {
        Err(Error::invalid(
            "data.corruption",
            format!("ξ must satisfy 0 ≤ ξ < 1, got {xi}"),
        ))
    }
}

/// The training labels of one model: of the training examples with true labels `truth` (each
/// below `n_classes`), `⌊ξ · n⌋` chosen with `seed` get a label drawn by `mode`.
pub fn corrupt(
    truth: &[u32],
    n_classes: usize,
    xi: f64,
    mode: CorruptionMode,
    seed: u64,
) -> Result<TrainLabels> {
    check_xi(xi)?;
    let n = truth.len();
    let k = (xi * n as f64).floor() as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let chosen = rand::seq::index::sample(&mut rng, n, k);
    let mut labels = truth.to_vec();
    let mut corrupted = vec![false; n];
    let p = u32::try_from(n_classes)
        .ok()
        .filter(|&c| c >= 2)
        .ok_or_else(|| {
            Error::invalid(
                "data",
                format!("corruption needs 2 to 2³² − 1 classes, got {n_classes}"),
            )
        })?;
    for i in chosen.iter() {
        let truth_i = labels[i];
        let new = match mode {
            CorruptionMode::Wrong => {
                let r = rng.random_range(0..p - 1);
                if r >= truth_i {
                    r + 1
                } else {
                    r
                }
            }
            CorruptionMode::Any | CorruptionMode::Reference => rng.random_range(0..p),
            CorruptionMode::ReferenceTransformer => rng.random_range(0..(p - 1).max(1)),
            CorruptionMode::PairFlip => (truth_i + 1) % p,
        };
        labels[i] = new;
        corrupted[i] = match mode {
            CorruptionMode::Wrong | CorruptionMode::Any | CorruptionMode::PairFlip => {
                new != truth_i
            }
            CorruptionMode::Reference | CorruptionMode::ReferenceTransformer => true,
        };
    }
    Ok(TrainLabels { labels, corrupted })
}

/// The labels one model trains on, aligned with a dataset's training examples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainLabels {
    pub labels: Vec<u32>,
    /// The examples of `C`: where the training label differs from the true label, and in the
    /// reference modes every example picked for corruption (its draw may be the true label).
    pub corrupted: Vec<bool>,
}

impl TrainLabels {
    pub fn n_corrupted(&self) -> usize {
        self.corrupted.iter().filter(|&&c| c).count()
    }
}
