//! The operation tables of SCIENCE.md §1 and their seeded train/test split ([`Split`]).

use super::corrupt::{corrupt, CorruptionMode, TrainLabels};
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The binary operations of SCIENCE.md §1, all modulo `p`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    #[serde(rename = "add")]
    Add,
    #[serde(rename = "sub")]
    Sub,
    #[serde(rename = "mul")]
    Mul,
    /// `a · b⁻¹`; pairs with `b = 0` are left out; `p` must be prime.
    #[serde(rename = "div")]
    Div,
    #[serde(rename = "x2+y2")]
    X2PlusY2,
    #[serde(rename = "x2+xy+y2")]
    X2PlusXyPlusY2,
    #[serde(rename = "x3+xy")]
    X3PlusXy,
    #[serde(rename = "x3+xy2+y")]
    X3PlusXy2PlusY,
}

impl Operation {
    /// `a ∘ b mod p`, or `None` where the operation is undefined (division by 0).
    pub fn apply(self, a: u64, b: u64, p: u64) -> Option<u64> {
        let (a, b) = (a % p, b % p);
        let m = |x: u64, y: u64| (x * y) % p;
        Some(match self {
            Operation::Add => (a + b) % p,
            Operation::Sub => (a + p - b) % p,
            Operation::Mul => m(a, b),
            Operation::Div => {
                if b == 0 {
                    return None;
                }
                m(a, pow_mod(b, p - 2, p))
            }
            Operation::X2PlusY2 => (m(a, a) + m(b, b)) % p,
            Operation::X2PlusXyPlusY2 => (m(a, a) + m(a, b) + m(b, b)) % p,
            Operation::X3PlusXy => (m(m(a, a), a) + m(a, b)) % p,
            Operation::X3PlusXy2PlusY => (m(m(a, a), a) + m(a, m(b, b)) + b) % p,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Add => "add",
            Operation::Sub => "sub",
            Operation::Mul => "mul",
            Operation::Div => "div",
            Operation::X2PlusY2 => "x2+y2",
            Operation::X2PlusXyPlusY2 => "x2+xy+y2",
            Operation::X3PlusXy => "x3+xy",
            Operation::X3PlusXy2PlusY => "x3+xy2+y",
        }
    }
}

fn pow_mod(mut base: u64, mut exp: u64, p: u64) -> u64 {
    let mut acc = 1 % p;
    base %= p;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc * base % p;
        }
        base = base * base % p;
        exp >>= 1;
    }
    acc
}

fn is_prime(p: u64) -> bool {
    if p < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= p {
        if p.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// One input pair `(a, b)`.
pub type Pair = (u32, u32);

/// The labelled table of all pairs, split into a training and a test set.
#[derive(Clone, Debug)]
pub struct Split {
    pub p: usize,
    pub operation: Operation,
    pub train_pairs: Vec<Pair>,
    pub train_true: Vec<u32>,
    pub test_pairs: Vec<Pair>,
    pub test_labels: Vec<u32>,
}

/// The training fraction α must satisfy 0 < α < 1 (`data.train_fraction`; the one check of
/// it, for configs and for direct callers of [`Split::new`]).
pub fn check_alpha(alpha: f64) -> Result<()> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "data.train_fraction",
            format!("α must satisfy 0 < α < 1, got {alpha}"),
        ))
    }
}

impl Split {
    /// Builds the full table, shuffles it with `seed` and keeps the first `⌊α · |table|⌋`
    /// pairs for training (for `div`, the table has `p(p−1)` pairs).
    pub fn new(p: usize, operation: Operation, alpha: f64, seed: u64) -> Result<Split> {
        validate_table(p, operation)?;
        check_alpha(alpha)?;
        let mut pairs: Vec<(Pair, u32)> = Vec::with_capacity(p * p);
        for a in 0..p as u64 {
            for b in 0..p as u64 {
                if let Some(y) = operation.apply(a, b, p as u64) {
                    pairs.push(((a as u32, b as u32), y as u32));
                }
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        pairs.shuffle(&mut rng);
        let n_train = (alpha * pairs.len() as f64).floor() as usize;
        if n_train == 0 || n_train == pairs.len() {
            return Err(Error::invalid(
                "data.train_fraction",
                format!(
                    "α = {alpha} gives {n_train} training examples out of {}; both the training and the test set must be non-empty",
                    pairs.len()
                ),
            ));
        }
        let (train, test) = pairs.split_at(n_train);
        Ok(Split {
            p,
            operation,
            train_pairs: train.iter().map(|x| x.0).collect(),
            train_true: train.iter().map(|x| x.1).collect(),
            test_pairs: test.iter().map(|x| x.0).collect(),
            test_labels: test.iter().map(|x| x.1).collect(),
        })
    }

    pub fn n_train(&self) -> usize {
        self.train_pairs.len()
    }

    pub fn n_test(&self) -> usize {
        self.test_pairs.len()
    }

    /// The training labels of one model: `⌊ξ · n_train⌋` examples chosen with `seed` get a
    /// random label (SCIENCE.md §1; [`corrupt`] over the `p` classes).
    pub fn corrupt(&self, xi: f64, mode: CorruptionMode, seed: u64) -> Result<TrainLabels> {
        corrupt(&self.train_true, self.p, xi, mode, seed)
    }
}

/// Checks `p` and the operation; returns warnings that do not stop a run.
pub fn validate_table(p: usize, operation: Operation) -> Result<Vec<String>> {
    if p < 2 {
        return Err(Error::invalid(
            "data.p",
            format!("the modulus must be at least 2, got {p}"),
        ));
    }
    if p > 65_521 {
        return Err(Error::invalid(
            "data.p",
            format!("the modulus must be at most 65521, got {p}"),
        ));
    }
    let prime = is_prime(p as u64);
    if operation == Operation::Div && !prime {
        return Err(Error::invalid(
            "data.p",
            format!("operation `div` needs a prime modulus, got p = {p}"),
        ));
    }
    let mut warnings = Vec::new();
    // Z_p under + is a group for every p; products need a prime p to be a group (without
    // zero), and the Fourier picture of the paper (SPEC §4) assumes one throughout.
    if !prime {
        let why = match operation {
            Operation::Mul => {
                "Z_p without zero is a group under multiplication only for a prime p"
            }
            _ => "the task is well defined, but the paper's analysis (the frequencies of Z_p, SPEC §4) assumes a prime modulus",
        };
        warnings.push(format!(
            "p = {p} is not prime ({} mod p): {why}",
            operation.name()
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::is_prime;

    #[test]
    fn primes_by_hand() {
        let primes: Vec<u64> = (0..40).filter(|&p| is_prime(p)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
        assert!(is_prime(65521) && !is_prime(65521 * 3) && !is_prime(97 * 89));
    }
}
