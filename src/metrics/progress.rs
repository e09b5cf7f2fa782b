//! Nanda et al.'s progress measures at an evaluation step (SCIENCE.md §10; docs/PROGRESS.md):
//! the key frequencies of the hidden units, the restricted and excluded losses of the
//! outputs, and the Gini coefficients of the token weights' Fourier norms.
//!
//! With `L` the outputs on all `p²` pairs and `P_K` the projection, per output class, onto
//! the directions `cos(w_k s)`, `sin(w_k s)` (`s = a ± b`, `k` a key frequency): the
//! *restricted* outputs are `P_K L + mean(L − P_K L)`, the *excluded* ones `L − P_K L`. Every
//! loss is computed in f64 from the f32 outputs. On all pairs (full and restricted loss) the
//! labels are the true ones, `a ∘ b`: what the key-frequency circuit computes. On the training
//! pairs (excluded loss, and the clean and corrupted subsets of every loss) the labels are
//! the ones trained on, so that a corrupted example's loss says whether its memorized label
//! lives in those components.
//!
//! [`Collector`] is the probe an evaluation feeds: it keeps one model's outputs only until
//! the model's last block has arrived, then computes its measures.

use super::fourier::{self, Combo, PairSums, Tables};
use crate::data::{Pair, Split};
use crate::model::Loss;
use crate::train::{EvalProbe, TokenWeights};
use rayon::prelude::*;
use std::f64::consts::PI;
use std::sync::Mutex;

/// One loss on the sets it is measured on: `all` (all pairs for the full and restricted
/// loss, the training pairs for the excluded one), the clean and the corrupted training
/// examples (`None` when there are none).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    pub all: f64,
    pub clean: Option<f64>,
    pub corrupt: Option<f64>,
}

/// The full, restricted and excluded loss under one loss function.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossMeasures {
    pub full: Losses,
    pub restricted: Losses,
    pub excluded: Losses,
}

/// The progress measures of one model's outputs at one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Measures {
    /// The key frequencies, ascending ([`fourier::key_frequencies`]).
    pub key_freqs: Vec<u32>,
    /// Cross-entropy (as in Nanda et al.), whatever the network was trained with.
    pub ce: LossMeasures,
    /// MSE (mean over examples × classes, as the training loss), for a network trained with
    /// MSE.
    pub mse: Option<LossMeasures>,
}

/// What a run needs to take the progress measures, built once: the Fourier tables, the
/// pair table (for `add` and `sub`), and output buffers kept between evaluations.
pub struct Meter {
    tables: Tables,
    pairs: Option<PairTable>,
    spare: Mutex<Vec<Pending>>,
}

impl Meter {
    /// For a token task over `Z_p` (`split`: its table, `None` for dense data) and a network
    /// trained with `loss`.
    pub fn new(p: usize, split: Option<&Split>, loss: Loss) -> Meter {
        Meter {
            tables: Tables::new(p),
            pairs: split.and_then(|s| PairTable::new(s, loss)),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// The probe of one evaluation, for models with these training labels and corruption
    /// flags.
    pub fn collector<'a>(&'a self, labels: Vec<(&'a [u32], &'a [bool])>) -> Collector<'a> {
        let m = labels.len();
        Collector {
            progress: self,
            labels,
            pending: (0..m).map(|_| None).collect(),
            done: vec![None; m],
        }
    }

    /// The Gini coefficients of the Fourier-component norms of the embedding and the
    /// read-out.
    pub fn ginis(&self, w: &TokenWeights) -> (Option<f64>, Option<f64>) {
        (
            fourier::gini(&fourier::component_norms(&w.embed, &self.tables)),
            fourier::gini(&fourier::component_norms(&w.unembed, &self.tables)),
        )
    }
}

/// What the measures need of a table: its pairs in evaluation order (training, then test)
/// with their true labels, and the combination of `a`, `b` its operation follows.
#[derive(Clone, Debug)]
pub struct PairTable {
    p: usize,
    combo: Combo,
    pairs: Vec<Pair>,
    truth: Vec<u32>,
    n_train: usize,
    mse: bool,
}

impl PairTable {
    /// The table of `split` for a network trained with `loss`; `None` for an operation
    /// without Fourier directions (all but `add` and `sub`) or a table that is not all `p²`
    /// pairs.
    pub fn new(split: &Split, loss: Loss) -> Option<PairTable> {
        let combo = Combo::of(split.operation)?;
        let p = split.p;
        let mut pairs = split.train_pairs.clone();
        pairs.extend_from_slice(&split.test_pairs);
        let mut truth = split.train_true.clone();
        truth.extend_from_slice(&split.test_labels);
        (pairs.len() == p.checked_mul(p)? && fourier::n_freqs(p) > 0).then_some(PairTable {
            p,
            combo,
            pairs,
            truth,
            n_train: split.train_pairs.len(),
            mse: loss == Loss::Mse,
        })
    }

    /// The progress measures of one model: `logits` `[p², p]` in evaluation order, `sums`
    /// its hidden units' pair sums, `labels` and `corrupted` its training labels.
    pub fn measure(
        &self,
        tables: &Tables,
        logits: &[f32],
        sums: &PairSums,
        labels: &[u32],
        corrupted: &[bool],
    ) -> Measures {
        let p = self.p;
        let key = fourier::key_frequencies(&sums.dominant(tables), p);
        let (proj, mean) = self.projection(logits, &key);
        // The restricted outputs depend on the pair only through s = a ± b.
        let restricted: Vec<f64> = (0..p * p).map(|i| proj[i] + mean[i % p]).collect();
        let stats: Vec<(f64, f64)> = restricted.chunks_exact(p).map(lse_and_sq).collect();
        const CHUNKS: usize = 16;
        let n = self.pairs.len();
        let rows = Rows {
            table: self,
            logits,
            labels,
            corrupted,
            proj: &proj,
            restricted: &restricted,
            stats: &stats,
        };
        let parts: Vec<Sums> = (0..CHUNKS)
            .into_par_iter()
            .map(|c| row_sums(&rows, c * n / CHUNKS, (c + 1) * n / CHUNKS))
            .collect();
        let mut acc = Sums::default();
        for part in &parts {
            acc.merge(part);
        }
        let n_corrupt = corrupted.iter().filter(|&&c| c).count();
        let counts = [n, self.n_train - n_corrupt, n_corrupt];
        let excl_counts = [self.n_train, counts[1], counts[2]];
        let measures = |k: usize, per: f64| LossMeasures {
            full: acc.full.losses(k, counts, per),
            restricted: acc.restricted.losses(k, counts, per),
            excluded: acc.excluded.losses(k, excl_counts, per),
        };
        Measures {
            key_freqs: key,
            ce: measures(0, 1.0),
            mse: self.mse.then(|| measures(1, p as f64)),
        }
    }

    /// `P_K L` as a `[p, p]` table over `s = a ± b` and the class, and the mean of `L` over
    /// the pairs per class (the mean of `L − P_K L`: the key directions sum to zero).
    fn projection(&self, logits: &[f32], key: &[u32]) -> (Vec<f64>, Vec<f64>) {
        let p = self.p;
        let mut g = vec![0.0f64; p * p];
        let mut mean = vec![0.0f64; p];
        for (i, &(a, b)) in self.pairs.iter().enumerate() {
            let s = self.combo.index(a, b, p);
            for ((gs, m), &l) in g[s * p..(s + 1) * p]
                .iter_mut()
                .zip(&mut mean)
                .zip(&logits[i * p..(i + 1) * p])
            {
                *gs += l as f64;
                *m += l as f64;
            }
        }
        for m in &mut mean {
            *m /= self.pairs.len() as f64;
        }
        // A direction is (√2/p)·cos(w_k s) (or sin); its coefficient per class is
        // (√2/p) Σ_s cos(w_k s) G[s, c], so its part of L is (2/p²) (Σ_s cos G) cos(w_k s).
        let mut proj = vec![0.0f64; p * p];
        let scale = 2.0 / (p * p) as f64;
        for &k in key {
            let (cos, sin): (Vec<f64>, Vec<f64>) = (0..p)
                .map(|s| {
                    let x = 2.0 * PI * ((k as usize * s) % p) as f64 / p as f64;
                    (x.cos(), x.sin())
                })
                .unzip();
            for c in 0..p {
                let (mut alpha, mut beta) = (0.0, 0.0);
                for s in 0..p {
                    alpha += cos[s] * g[s * p + c];
                    beta += sin[s] * g[s * p + c];
                }
                for s in 0..p {
                    proj[s * p + c] += scale * (alpha * cos[s] + beta * sin[s]);
                }
            }
        }
        (proj, mean)
    }
}

/// What the loop over the rows reads.
struct Rows<'a> {
    table: &'a PairTable,
    logits: &'a [f32],
    labels: &'a [u32],
    corrupted: &'a [bool],
    /// `P_K L` and the restricted outputs, `[p, p]` over `s` and the class.
    proj: &'a [f64],
    restricted: &'a [f64],
    /// Per `s`, the restricted row's log-sum-exp and sum of squares.
    stats: &'a [(f64, f64)],
}

crate::kernels::avx2_copy!(fn row_sums<'a>(rows: &Rows<'a>, start: usize, end: usize) -> Sums = row_sums_body);

/// The unnormalised losses of rows `start .. end`.
#[inline(always)]
fn row_sums_body(r: &Rows, start: usize, end: usize) -> Sums {
    let t = r.table;
    let p = t.p;
    let mut acc = Sums::default();
    let mut excl = vec![0.0f64; p];
    for i in start..end {
        let (a, b) = t.pairs[i];
        let s = t.combo.index(a, b, p);
        let row = &r.logits[i * p..(i + 1) * p];
        let (lse, sq) = lse_and_sq_f32(row);
        let rrow = &r.restricted[s * p..(s + 1) * p];
        let (rlse, rsq) = r.stats[s];
        let y = t.truth[i] as usize;
        acc.full.add(
            Set::All,
            lse - row[y] as f64,
            sq - 2.0 * row[y] as f64 + 1.0,
        );
        acc.restricted
            .add(Set::All, rlse - rrow[y], rsq - 2.0 * rrow[y] + 1.0);
        if i >= t.n_train {
            continue;
        }
        let y = r.labels[i] as usize;
        let set = if r.corrupted[i] {
            Set::Corrupt
        } else {
            Set::Clean
        };
        acc.full
            .add(set, lse - row[y] as f64, sq - 2.0 * row[y] as f64 + 1.0);
        acc.restricted
            .add(set, rlse - rrow[y], rsq - 2.0 * rrow[y] + 1.0);
        for ((e, &l), &q) in excl.iter_mut().zip(row).zip(&r.proj[s * p..]) {
            *e = l as f64 - q;
        }
        let (xlse, xsq) = lse_and_sq(&excl);
        let (ce, mse) = (xlse - excl[y], xsq - 2.0 * excl[y] + 1.0);
        acc.excluded.add(Set::All, ce, mse);
        acc.excluded.add(set, ce, mse);
    }
    acc
}

#[derive(Clone, Copy)]
enum Set {
    All,
    Clean,
    Corrupt,
}

/// Sums of unnormalised row losses (cross-entropy, then MSE) per set.
#[derive(Clone, Copy, Default)]
struct SetSums {
    sums: [[f64; 3]; 2],
}

impl SetSums {
    /// Adds a row's losses; a rounding below zero counts as zero (NaN stays NaN).
    #[inline(always)]
    fn add(&mut self, set: Set, ce: f64, mse: f64) {
        let j = set as usize;
        let clamp = |x: f64| if x < 0.0 { 0.0 } else { x };
        self.sums[0][j] += clamp(ce);
        self.sums[1][j] += clamp(mse);
    }
    fn merge(&mut self, o: &SetSums) {
        for (a, b) in self.sums.iter_mut().zip(&o.sums) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
    /// The means of loss `k` (0 cross-entropy, 1 MSE) over sets of `counts` rows, each row
    /// worth `per` entries.
    fn losses(&self, k: usize, counts: [usize; 3], per: f64) -> Losses {
        let mean = |j: usize| (counts[j] > 0).then(|| self.sums[k][j] / (counts[j] as f64 * per));
        Losses {
            all: mean(0).unwrap_or(f64::NAN),
            clean: mean(1),
            corrupt: mean(2),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Sums {
    full: SetSums,
    restricted: SetSums,
    excluded: SetSums,
}

impl Sums {
    fn merge(&mut self, o: &Sums) {
        self.full.merge(&o.full);
        self.restricted.merge(&o.restricted);
        self.excluded.merge(&o.excluded);
    }
}

/// `logsumexp(x)` and `Σ x²` of a row, in f64 (NaN if the row holds one).
#[inline(always)]
fn lse_and_sq(x: &[f64]) -> (f64, f64) {
    lse_and_sq_of(x, |v| v)
}

#[inline(always)]
fn lse_and_sq_f32(x: &[f32]) -> (f64, f64) {
    lse_and_sq_of(x, |v| v as f64)
}

/// The sums run in eight lanes, so that they vectorise (a single running sum cannot be
/// reordered by the compiler).
#[inline(always)]
fn lse_and_sq_of<T: Copy>(x: &[T], f: impl Fn(T) -> f64) -> (f64, f64) {
    let mut mx = [f64::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks.clone() {
        for j in 0..8 {
            let v = f(c[j]);
            mx[j] = if v > mx[j] { v } else { mx[j] };
        }
    }
    for (j, &v) in rest.iter().enumerate() {
        let v = f(v);
        mx[j] = if v > mx[j] { v } else { mx[j] };
    }
    let m = mx
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let (mut e, mut sq) = ([0.0f64; 8], [0.0f64; 8]);
    for c in chunks {
        for j in 0..8 {
            let v = f(c[j]);
            e[j] += exp_nonpositive(v - m);
            sq[j] += v * v;
        }
    }
    for (j, &v) in rest.iter().enumerate() {
        let v = f(v);
        e[j] += exp_nonpositive(v - m);
        sq[j] += v * v;
    }
    let (e, sq): (f64, f64) = (e.iter().sum(), sq.iter().sum());
    // A NaN or infinite entry makes Σ x² NaN or infinite.
    if !sq.is_finite() || !m.is_finite() {
        return (f64::NAN, sq);
    }
    (m + e.ln(), sq)
}

/// `e^x` for `x ≤ 0` to about 1 ulp, in a form the compiler vectorises: `x = n ln 2 + r`,
/// `|r| ≤ ln 2 / 2`, `e^r` by its Taylor polynomial of degree 12 (error below 2·10⁻¹⁶),
/// times `2^n` built in the exponent bits. Below −700 it returns `e^{−700}` (≈ 10⁻³⁰⁴),
/// which no sum of terms led by `e^0 = 1` can tell from the true value. Written here because
/// the progress measures' log-sum-exps were the largest part of their cost with the C
/// library's `exp` (docs/PROGRESS.md, "Cost").
#[inline(always)]
fn exp_nonpositive(x: f64) -> f64 {
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52: adding it rounds to an integer
    let x = if x < -700.0 { -700.0 } else { x };
    let t = x * std::f64::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // The low bits of t hold n: 2^n is (n + 1023) in the exponent field.
    let two_n = f64::from_bits(t.to_bits().wrapping_sub(SHIFT.to_bits()).wrapping_add(1023) << 52);
    let mut poly = 1.0 / 479_001_600.0;
    for c in [
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        poly = poly * r + c;
    }
    poly * two_n
}

/// One model's outputs and pair sums while its blocks arrive.
struct Pending {
    logits: Vec<f32>,
    sums: PairSums,
    rows: usize,
}

/// The probe of one evaluation ([`EvalProbe`], made by [`Meter::collector`]): every
/// model's measures once its last block has arrived.
pub struct Collector<'a> {
    progress: &'a Meter,
    /// Per model, its training labels and which are corrupted.
    labels: Vec<(&'a [u32], &'a [bool])>,
    pending: Vec<Option<Pending>>,
    done: Vec<Option<Measures>>,
}

impl Collector<'_> {
    /// Every model's measures (`None` for one whose outputs did not all arrive).
    pub fn finish(self) -> Vec<Option<Measures>> {
        if let Ok(mut spare) = self.progress.spare.lock() {
            spare.extend(self.pending.into_iter().flatten());
        }
        self.done
    }
}

impl EvalProbe for Collector<'_> {
    fn block(&mut self, m: usize, row0: usize, logits: &[f32], hidden: &[f32], width: usize) {
        let Some(t) = self.progress.pairs.as_ref() else {
            return;
        };
        let (p, n) = (t.p, t.pairs.len());
        let Some(slot) = self.pending.get_mut(m) else {
            return;
        };
        let rows = logits.len() / p;
        if row0 + rows > n || hidden.len() != rows * width {
            return;
        }
        let spare = &self.progress.spare;
        let pend = slot.get_or_insert_with(|| {
            let mut pend = spare
                .lock()
                .ok()
                .and_then(|mut s| s.pop())
                .unwrap_or(Pending {
                    logits: Vec::new(),
                    sums: PairSums::new(p, width),
                    rows: 0,
                });
            pend.logits.resize(n * p, 0.0);
            pend.sums.reset(width);
            pend.rows = 0;
            pend
        });
        pend.logits[row0 * p..(row0 + rows) * p].copy_from_slice(&logits[..rows * p]);
        pend.sums.add_rows(&t.pairs[row0..row0 + rows], hidden);
        pend.rows += rows;
        if pend.rows == n {
            if let Some(pend) = slot.take() {
                let (labels, corrupted) = self.labels[m];
                let tables = &self.progress.tables;
                self.done[m] = Some(t.measure(tables, &pend.logits, &pend.sums, labels, corrupted));
                if let Ok(mut s) = spare.lock() {
                    s.push(pend);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
