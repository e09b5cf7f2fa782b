//! The real Fourier basis over `Z_p` and what the progress measures read in it (SCIENCE.md
//! §10, Nanda et al. 2023): the directions of `cos(w_k(a ± b))` in the space of input pairs,
//! each hidden unit's share of variance per frequency (its *key* frequency), and the Fourier
//! norms of the weights that meet the tokens, with their Gini coefficient.
//!
//! A frequency's terms in the 2-D basis over pairs `(a, b)` are the eight products of
//! `{1, c_k, s_k}` with each other that are not the constant. Their summed squared
//! coefficients follow from four length-`p` sums of a unit's activation table `A`:
//! `E_k = (2/p²)(|R_k|² + |C_k|² + |D_k|² + |T_k|²)`, where `R_k`, `C_k`, `D_k`, `T_k` are the
//! DFTs at `k` of the row sums `Σ_b A[a,b]`, the column sums, the sums along `a + b ≡ s` and
//! along `a − b ≡ t` (docs/PROGRESS.md derives it). So a unit's frequency spectrum costs
//! `6p²` additions, not a 2-D transform.

use crate::data::{Operation, Pair};
use crate::kernels::{matmul, Mat};
use std::f64::consts::PI;

/// The frequencies of the basis: `1 … (p−1)/2` (for even `p` the Nyquist term is left out,
/// as SCIENCE.md §10 writes the basis).
pub fn n_freqs(p: usize) -> usize {
    p.saturating_sub(1) / 2
}

/// The orthonormal real Fourier basis over `Z_p`, one row per function: the constant
/// `1/√p`, then for `k = 1 … (p−1)/2` `√(2/p) cos(w_k x)` and `√(2/p) sin(w_k x)`,
/// `w_k = 2πk/p`. Row-major `[1 + 2K, p]`.
pub fn basis(p: usize) -> Vec<f64> {
    let k = n_freqs(p);
    let mut out = Vec::with_capacity((1 + 2 * k) * p);
    out.extend(std::iter::repeat_n(1.0 / (p as f64).sqrt(), p));
    let c = (2.0 / p as f64).sqrt();
    for f in 1..=k {
        for trig in [f64::cos, f64::sin] {
            out.extend((0..p).map(|x| c * trig(angle(f, x, p))));
        }
    }
    out
}

/// The matrices the measures multiply by, built once per run: the [`basis`] and the DFT
/// rows `cos(w_k x)`, `sin(w_k x)` for `k = 1 … K`, both in f32 (the products run in f32
/// `gemm`; the shares and norms they give are then summed in f64).
#[derive(Clone, Debug)]
pub struct Tables {
    pub p: usize,
    basis: Vec<f32>,
    dft: Vec<f32>,
}

impl Tables {
    pub fn new(p: usize) -> Tables {
        let mut dft = Vec::with_capacity(2 * n_freqs(p) * p);
        for k in 1..=n_freqs(p) {
            dft.extend((0..p).map(|x| angle(k, x, p).cos() as f32));
            dft.extend((0..p).map(|x| angle(k, x, p).sin() as f32));
        }
        Tables {
            p,
            basis: basis(p).into_iter().map(|x| x as f32).collect(),
            dft,
        }
    }
}

/// `w_k x = 2π (k x mod p) / p`, reduced first so that large products stay exact.
fn angle(k: usize, x: usize, p: usize) -> f64 {
    2.0 * PI * ((k * x) % p) as f64 / p as f64
}

/// What the labels of an operation are a function of, in the Fourier basis: the sum
/// `a + b` (addition) or the difference `a − b` (subtraction). The other operations have no
/// such directions (SCIENCE.md §10; docs/PROGRESS.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combo {
    Sum,
    Difference,
}

impl Combo {
    /// The combination `operation` follows, if any.
    pub fn of(operation: Operation) -> Option<Combo> {
        match operation {
            Operation::Add => Some(Combo::Sum),
            Operation::Sub => Some(Combo::Difference),
            _ => None,
        }
    }

    /// `(a + b) mod p` or `(a − b) mod p`: the argument of the directions at pair `(a, b)`.
    pub fn index(self, a: u32, b: u32, p: usize) -> usize {
        let (a, b) = (a as usize % p, b as usize % p);
        match self {
            Combo::Sum => (a + b) % p,
            Combo::Difference => (a + p - b) % p,
        }
    }
}

/// Per hidden unit, the sums over the pairs of its activation that give its share of variance
/// per frequency. Layout `[index, unit]`, so that adding a row of activations vectorises.
#[derive(Clone, Debug)]
pub struct PairSums {
    p: usize,
    width: usize,
    count: usize,
    /// The four sums in f32 (each adds at most `p` values per entry; f32 lanes are twice as
    /// many as f64 ones), the sum of squares in f64 (the variance is a difference).
    rows: Vec<f32>,
    cols: Vec<f32>,
    sums: Vec<f32>,
    diffs: Vec<f32>,
    sq: Vec<f64>,
}

/// Which of the four sums a marginal is.
#[derive(Clone, Copy)]
enum Along {
    Row,
    Col,
    Sum,
    Diff,
}

crate::kernels::avx2_copy!(fn marginal<'a>(
    dst: &'a mut [f32],
    w: usize,
    p: usize,
    pairs: &'a [Pair],
    hidden: &'a [f32],
    along: Along,
) -> () = marginal_body);

#[inline(always)]
fn marginal_body(
    dst: &mut [f32],
    w: usize,
    p: usize,
    pairs: &[Pair],
    hidden: &[f32],
    along: Along,
) {
    for (&(a, b), h) in pairs.iter().zip(hidden.chunks_exact(w)) {
        let i = match along {
            Along::Row => a as usize % p,
            Along::Col => b as usize % p,
            Along::Sum => Combo::Sum.index(a, b, p),
            Along::Diff => Combo::Difference.index(a, b, p),
        };
        for (d, &x) in dst[i * w..(i + 1) * w].iter_mut().zip(h) {
            *d += x;
        }
    }
}

/// The dispatched and the plain marginal sums along `a + b`, for the test that they agree.
#[cfg(test)]
pub(crate) fn tests_marginal(
    fast: &mut [f32],
    plain: &mut [f32],
    p: usize,
    pairs: &[Pair],
    h: &[f32],
) {
    let w = h.len() / pairs.len().max(1);
    marginal(fast, w, p, pairs, h, Along::Sum);
    marginal_body(plain, w, p, pairs, h, Along::Sum);
}

crate::kernels::avx2_copy!(fn squares<'a>(sq: &'a mut [f64], w: usize, hidden: &'a [f32]) -> () = squares_body);

#[inline(always)]
fn squares_body(sq: &mut [f64], w: usize, hidden: &[f32]) {
    for h in hidden.chunks_exact(w) {
        for (q, &x) in sq.iter_mut().zip(h) {
            *q += x as f64 * x as f64;
        }
    }
}

/// A unit's dominant frequency and the share of its variance over the pairs that that
/// frequency's terms explain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dominant {
    pub freq: usize,
    pub share: f64,
}

impl PairSums {
    pub fn new(p: usize, width: usize) -> PairSums {
        let z = vec![0.0; p * width];
        PairSums {
            p,
            width,
            count: 0,
            rows: z.clone(),
            cols: z.clone(),
            sums: z.clone(),
            diffs: z,
            sq: vec![0.0; width],
        }
    }

    /// Empties the sums for a table of `width` units (keeping the memory).
    pub fn reset(&mut self, width: usize) {
        let n = self.p * width;
        self.width = width;
        self.count = 0;
        for v in [
            &mut self.rows,
            &mut self.cols,
            &mut self.sums,
            &mut self.diffs,
        ] {
            v.clear();
            v.resize(n, 0.0);
        }
        self.sq.clear();
        self.sq.resize(width, 0.0);
    }

    /// Adds the activations of `pairs` (`hidden` `[pairs, width]`, one row per pair); the
    /// five kinds of sums are taken in parallel.
    pub fn add_rows(&mut self, pairs: &[Pair], hidden: &[f32]) {
        let (p, w) = (self.p, self.width);
        if w == 0 || hidden.len() != pairs.len() * w {
            return;
        }
        let PairSums {
            rows: r,
            cols: c,
            sums: s,
            diffs: t,
            sq,
            ..
        } = self;
        rayon::scope(|sc| {
            sc.spawn(|_| marginal(r, w, p, pairs, hidden, Along::Row));
            sc.spawn(|_| marginal(c, w, p, pairs, hidden, Along::Col));
            sc.spawn(|_| marginal(s, w, p, pairs, hidden, Along::Sum));
            sc.spawn(|_| marginal(t, w, p, pairs, hidden, Along::Diff));
            sc.spawn(|_| squares(sq, w, hidden));
        });
        self.count += pairs.len();
    }

    /// Per unit, its dominant frequency and that frequency's share of its variance over the
    /// pairs; `None` for a unit whose activation is constant (no variance), and for every unit
    /// unless all `p²` pairs were added exactly once (counted, not checked pair by pair).
    pub fn dominant(&self, tables: &Tables) -> Vec<Option<Dominant>> {
        let (p, w, kf) = (self.p, self.width, n_freqs(self.p));
        if self.count != p * p || kf == 0 || tables.p != p {
            return vec![None; w];
        }
        // The DFT at k = 1 … K of the four sums: [2K, p] · [p, w] per sum.
        let mut energy = vec![0.0f64; kf * w];
        let mut dft = vec![0.0f32; 2 * kf * w];
        let mut total = vec![0.0f64; w];
        for (i, x) in self.rows.iter().enumerate() {
            total[i % w] += *x as f64;
        }
        for sums in [&self.rows, &self.cols, &self.sums, &self.diffs] {
            matmul(
                &mut dft,
                2 * kf,
                w,
                p,
                Mat::rows(&tables.dft, p),
                Mat::rows(sums, w),
                false,
            );
            for k in 0..kf {
                let (re, im) = (&dft[2 * k * w..][..w], &dft[(2 * k + 1) * w..][..w]);
                for ((e, &r), &i) in energy[k * w..(k + 1) * w].iter_mut().zip(re).zip(im) {
                    *e += r as f64 * r as f64 + i as f64 * i as f64;
                }
            }
        }
        let (n, norm) = ((p * p) as f64, 2.0 / (p * p) as f64);
        (0..w)
            .map(|u| {
                let var = self.sq[u] - total[u] * total[u] / n;
                if var.is_nan() || var <= 1e-12 * self.sq[u] || !var.is_finite() {
                    return None;
                }
                let (freq, e) = (0..kf).map(|k| (k + 1, energy[k * w + u])).fold(
                    (0, f64::NEG_INFINITY),
                    |best, x| if x.1 > best.1 { x } else { best },
                );
                Some(Dominant {
                    freq,
                    share: norm * e / var,
                })
            })
            .collect()
    }
}

/// A unit is *explained* by its dominant frequency when that frequency's terms carry at least
/// this share of its variance.
pub const KEY_SHARE: f64 = 0.5;
/// A frequency is *key* when at least this many hidden units are explained by it.
pub const KEY_MIN_UNITS: usize = 2;

/// The key frequencies (ascending): those that explain at least [`KEY_SHARE`] of the variance
/// of at least [`KEY_MIN_UNITS`] hidden units (docs/PROGRESS.md gives the rule's reasons: a
/// unit of a random or memorizing network is never explained by one frequency, and the MLPs
/// of the paper spread their periodic neurons over nearly all frequencies, a few each).
pub fn key_frequencies(dominant: &[Option<Dominant>], p: usize) -> Vec<u32> {
    let mut votes = vec![0usize; n_freqs(p) + 1];
    for d in dominant.iter().flatten().filter(|d| d.share >= KEY_SHARE) {
        votes[d.freq] += 1;
    }
    (1..votes.len())
        .filter(|&k| votes[k] >= KEY_MIN_UNITS)
        .map(|k| k as u32)
        .collect()
}

/// The norm of each Fourier component of token-major matrices `[p, cols]`: for every
/// function `f` of [`basis`], `sqrt(Σ_j (Σ_t f(t) M[t, j])²)` over the columns of all of them
/// (the norm of that component in Nanda et al.'s `W_E` in the Fourier basis). A matrix of
/// another shape is left out.
pub fn component_norms(mats: &[(Vec<f32>, usize)], tables: &Tables) -> Vec<f64> {
    let p = tables.p;
    let nb = tables.basis.len() / p.max(1);
    let mut sq = vec![0.0f64; nb];
    for (m, cols) in mats.iter().filter(|(m, c)| *c > 0 && m.len() == p * c) {
        let mut c = vec![0.0f32; nb * cols];
        matmul(
            &mut c,
            nb,
            *cols,
            p,
            Mat::rows(&tables.basis, p),
            Mat::rows(m, *cols),
            false,
        );
        for (j, s) in sq.iter_mut().enumerate() {
            *s += c[j * cols..(j + 1) * cols]
                .iter()
                .map(|&x| x as f64 * x as f64)
                .sum::<f64>();
        }
    }
    sq.into_iter().map(f64::sqrt).collect()
}

/// The Gini coefficient of non-negative values: `Σ_i (2i − n − 1) x_(i) / (n Σ x)` over the
/// values sorted ascending (`i = 1 … n`); 0 when all are equal, `(n−1)/n` when one holds
/// everything. `None` for no values or a zero or non-finite sum.
pub fn gini(values: &[f64]) -> Option<f64> {
    let n = values.len();
    let total: f64 = values.iter().sum();
    if n == 0 || total.is_nan() || total <= 0.0 || !total.is_finite() {
        return None;
    }
    let mut x = values.to_vec();
    x.sort_by(f64::total_cmp);
    let weighted: f64 = x
        .iter()
        .enumerate()
        .map(|(i, v)| (2.0 * (i + 1) as f64 - n as f64 - 1.0) * v)
        .sum();
    Some(weighted / (n as f64 * total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_basis_is_orthonormal() {
        for p in [5usize, 8, 13] {
            let b = basis(p);
            let nb = b.len() / p;
            assert_eq!(nb, 1 + 2 * n_freqs(p));
            for i in 0..nb {
                for j in 0..nb {
                    let d: f64 = (0..p).map(|x| b[i * p + x] * b[j * p + x]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((d - want).abs() < 1e-12, "p {p}: <{i},{j}> = {d}");
                }
            }
        }
    }

    /// The share from the four sums against the 2-D basis written out, on a random table.
    #[test]
    fn shares_match_the_two_dimensional_basis() {
        let (p, w) = (7usize, 3usize);
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) as f32 - 0.5
        };
        let table: Vec<f32> = (0..p * p * w).map(|_| rnd()).collect();
        let mut sums = PairSums::new(p, w);
        for a in 0..p {
            for b in 0..p {
                sums.add_rows(&[(a as u32, b as u32)], &table[(a * p + b) * w..][..w]);
            }
        }
        let dom = sums.dominant(&Tables::new(p));
        let basis = basis(p);
        for u in 0..w {
            let at = |a: usize, b: usize| table[(a * p + b) * w + u] as f64;
            let coef = |i: usize, j: usize| -> f64 {
                let mut s = 0.0;
                for a in 0..p {
                    for b in 0..p {
                        s += at(a, b) * basis[i * p + a] * basis[j * p + b];
                    }
                }
                s
            };
            let mut total = 0.0;
            let mut per_freq = vec![0.0; n_freqs(p) + 1];
            let nb = 1 + 2 * n_freqs(p);
            let freq = |i: usize| i.div_ceil(2);
            for i in 0..nb {
                for j in 0..nb {
                    if i == 0 && j == 0 {
                        continue;
                    }
                    let c2 = coef(i, j).powi(2);
                    total += c2;
                    let (fi, fj) = (freq(i), freq(j));
                    if fi == 0 || fj == 0 || fi == fj {
                        per_freq[fi.max(fj)] += c2;
                    }
                }
            }
            let (best, e) = (1..per_freq.len())
                .map(|k| (k, per_freq[k]))
                .fold((0, -1.0), |b, x| if x.1 > b.1 { x } else { b });
            let d = dom[u].expect("a random unit has variance");
            assert_eq!(d.freq, best, "unit {u}");
            assert!(
                (d.share - e / total).abs() < 1e-5,
                "{} vs {}",
                d.share,
                e / total
            );
        }
    }

    #[test]
    fn a_pure_frequency_is_explained_and_counts_as_key() {
        let (p, w, k) = (13usize, 4usize, 3usize);
        let mut sums = PairSums::new(p, w);
        for a in 0..p {
            for b in 0..p {
                let x = angle(k, (a + b) % p, p);
                let h = [x.cos() as f32, (2.0 * x).sin() as f32, 1.5, x.cos() as f32];
                sums.add_rows(&[(a as u32, b as u32)], &h);
            }
        }
        let dom = sums.dominant(&Tables::new(p));
        assert_eq!(dom[0].map(|d| d.freq), Some(k));
        assert!((dom[0].unwrap().share - 1.0).abs() < 1e-5);
        assert_eq!(dom[1].map(|d| d.freq), Some(2 * k));
        assert_eq!(dom[2], None, "a constant unit has no frequency");
        assert_eq!(
            key_frequencies(&dom, p),
            vec![3],
            "6 explains one unit only"
        );
    }

    #[test]
    fn gini_by_hand() {
        assert_eq!(gini(&[1.0, 1.0, 1.0, 1.0]), Some(0.0));
        assert!((gini(&[0.0, 0.0, 0.0, 4.0]).unwrap() - 0.75).abs() < 1e-12);
        // Sorted 1, 2, 3: (−2·1 + 0·2 + 2·3) / (3 · 6) = 4/18.
        assert!((gini(&[3.0, 1.0, 2.0]).unwrap() - 4.0 / 18.0).abs() < 1e-12);
        assert_eq!(gini(&[]), None);
        assert_eq!(gini(&[0.0, 0.0]), None);
    }

    #[test]
    fn component_norms_of_a_cosine() {
        let p = 9usize;
        let v: Vec<f32> = (0..p).map(|x| angle(2, x, p).cos() as f32).collect();
        let n = component_norms(&[(v, 1)], &Tables::new(p));
        // cos(w_2 x) = √(p/2) · c_2: only component 3 (c_2) is non-zero.
        let want = (p as f64 / 2.0).sqrt();
        for (j, x) in n.iter().enumerate() {
            let w = if j == 3 { want } else { 0.0 };
            assert!((x - w).abs() < 1e-5, "component {j}: {x}");
        }
    }
}
