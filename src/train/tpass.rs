//! The Transformer's forward and backward passes, written out over [`gemm_into`]
//! (SCIENCE.md §8), for a chunk of examples of one model.
//!
//! The sequence is two tokens long, so every block splits into a *table* part and an
//! *example* part. The table part works on rows that the examples index: LayerNorm, the
//! Q, K, V projections and `VO = V_h · Wo_hᵀ` (each head's values already through its
//! slice of the output projection). The example part works per example: the 2 × 2 attention
//! of each head, `attn_i = Σ_h Σ_j a'_hij · VO[row_j, h]`, the residual, the MLP.
//!
//! The first block's inputs take only 2p values (token and position) unless dropout acts on
//! the embeddings, so its table has 2p rows, shared by all examples and computed once per
//! model and step; its gradients are summed over the chunks and back-propagated once.
//! Otherwise (later blocks, or embedding dropout) a chunk's table holds its own examples'
//! rows. In the last block only the last position's output is needed: its attention has one
//! query, and its MLP and the logits run on one row per example.
//!
//! The passes are generic over [`Real`]: f32 trains, f64 checks gradients against the
//! oracle (candle's autograd, in the tests). Every sum runs in a fixed order, so the
//! numbers do not depend on the thread count.

use super::loss::Loss;
use crate::kernels::{gemm_into, Mat, Real};
use crate::model::transformer::{ParamSpec, TActivation, TransformerConfig};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// LayerNorm's ε (PyTorch's default).
const LN_EPS: f64 = 1e-5;

/// Where one block's parameters sit in the flat vector.
#[derive(Clone, Debug)]
pub struct BlockAt {
    pub wq: usize,
    pub wk: usize,
    pub wv: usize,
    pub wo: usize,
    pub fc1: usize,
    pub fc1_b: Option<usize>,
    pub fc2: usize,
    pub fc2_b: Option<usize>,
    /// Offsets of `ln1.weight` and `ln2.weight` (each bias follows its weight).
    pub ln1: Option<usize>,
    pub ln2: Option<usize>,
}

/// The Transformer's sizes, options and parameter offsets, as the passes need them.
#[derive(Clone, Debug)]
pub struct Shape {
    pub p: usize,
    pub d: usize,
    pub nh: usize,
    pub hd: usize,
    pub h: usize,
    pub act: TActivation,
    pub tok: usize,
    pub pos: usize,
    pub blocks: Vec<BlockAt>,
    pub ln_f: Option<usize>,
    /// The output matrix `[p, d]` (the token embedding when tied).
    pub out: usize,
    pub n_params: usize,
    pub attn_scale: f64,
    pub logit_scale: f64,
}

impl Shape {
    pub fn new(cfg: &TransformerConfig, p: usize, specs: &[ParamSpec]) -> Shape {
        let at = |name: &str| specs.iter().find(|s| s.name == name).map(|s| s.offset);
        let need = |name: &str| at(name).unwrap_or_else(|| panic!("layout lacks {name}"));
        let blocks = (0..cfg.layers)
            .map(|l| {
                let n = |x: &str| format!("layers.{l}.{x}");
                BlockAt {
                    wq: need(&n("attn.wq")),
                    wk: need(&n("attn.wk")),
                    wv: need(&n("attn.wv")),
                    wo: need(&n("attn.wo")),
                    fc1: need(&n("mlp.fc1")),
                    fc1_b: at(&n("mlp.fc1_bias")),
                    fc2: need(&n("mlp.fc2")),
                    fc2_b: at(&n("mlp.fc2_bias")),
                    ln1: at(&n("ln1.weight")),
                    ln2: at(&n("ln2.weight")),
                }
            })
            .collect();
        let tok = need("tok_emb");
        Shape {
            p,
            d: cfg.d_model,
            nh: cfg.heads,
            hd: cfg.head_dim(),
            h: cfg.hidden(),
            act: cfg.activation,
            tok,
            pos: need("pos_emb"),
            blocks,
            ln_f: at("ln_f.weight"),
            out: at("unembed").unwrap_or(tok),
            n_params: specs.last().map(|s| s.offset + s.len()).unwrap_or(0),
            attn_scale: cfg.attn_scale(),
            logit_scale: cfg.logit_scale(),
        }
    }

    fn layers(&self) -> usize {
        self.blocks.len()
    }
}

// ---------------------------------------------------------------------------------------
// Dropout masks

/// Dropout masks for a range of a batch's examples (entries 0 or 1/(1−q)).
pub struct Masks<T> {
    /// On the sum of token and position embeddings, `[n, 2, d]`.
    pub emb: Vec<T>,
    pub layers: Vec<LayerMasks<T>>,
}

/// One block's dropout masks.
pub struct LayerMasks<T> {
    /// On the attention probabilities, `[n, heads, 2, 2]`.
    pub att: Vec<T>,
    /// On the attention output after `Wo`, `[n, 2, d]`.
    pub ao: Vec<T>,
    /// On the MLP output, `[n, 2, d]`.
    pub mlp: Vec<T>,
}

/// The dropout masks of examples `rows` of a batch of `batch` examples at optimizer step
/// `step`: ChaCha8 seeded with `seed`, stream `step`; the stream holds, in order, the
/// embedding mask of the whole batch, then per block its attention, attention-output and
/// MLP-output masks, one 32-bit word per entry (kept when the word ≥ q·(2³²−1)). A range
/// reads its words by position, so chunks of a batch draw exactly the batch's masks.
pub fn masks<T: Real>(
    sh: &Shape,
    q: f32,
    seed: u64,
    step: u64,
    batch: usize,
    rows: Range<usize>,
) -> Option<Masks<T>> {
    if q <= 0.0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step);
    let threshold = (q as f64 * u32::MAX as f64) as u32;
    let scale = T::from_f32(1.0 / (1.0 - q));
    let (d, nh, n) = (sh.d, sh.nh, rows.len());
    let mut draw = |start: u128, len: usize| -> Vec<T> {
        rng.set_word_pos(start);
        (0..len)
            .map(|_| {
                if rng.next_u32() >= threshold {
                    scale
                } else {
                    T::ZERO
                }
            })
            .collect()
    };
    let (b, e0) = (batch as u128, rows.start as u128);
    let (d2, a4) = (2 * d as u128, 4 * nh as u128);
    let emb = draw(e0 * d2, n * 2 * d);
    let per_layer = b * (a4 + 2 * d2);
    let layers = (0..sh.layers() as u128)
        .map(|l| {
            let base = b * d2 + l * per_layer;
            LayerMasks {
                att: draw(base + e0 * a4, n * 4 * nh),
                ao: draw(base + b * a4 + e0 * d2, n * 2 * d),
                mlp: draw(base + b * a4 + b * d2 + e0 * d2, n * 2 * d),
            }
        })
        .collect();
    Some(Masks { emb, layers })
}

// ---------------------------------------------------------------------------------------
// Small kernels

fn grow<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

fn zero<T: Real>(v: &mut Vec<T>, n: usize) {
    grow(v, n);
    v[..n].fill(T::ZERO);
}

fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut s = T::ZERO;
    for (x, y) in a.iter().zip(b) {
        s += *x * *y;
    }
    s
}

fn axpy<T: Real>(y: &mut [T], a: T, x: &[T]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * *xi;
    }
}

/// `out = γ (x − μ)/σ + β` per row of `d`, keeping μ and 1/σ.
#[allow(clippy::too_many_arguments)]
fn layer_norm<T: Real>(
    x: &[T],
    rows: usize,
    d: usize,
    gamma: &[T],
    beta: &[T],
    out: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    let inv_d = T::from_f64(1.0 / d as f64);
    let eps = T::from_f64(LN_EPS);
    for r in 0..rows {
        let xr = &x[r * d..(r + 1) * d];
        let mut s = T::ZERO;
        for &v in xr {
            s += v;
        }
        let mu = s * inv_d;
        let mut var = T::ZERO;
        for &v in xr {
            var += (v - mu) * (v - mu);
        }
        let rs = T::ONE / (var * inv_d + eps).sqrt();
        mean[r] = mu;
        rstd[r] = rs;
        for (c, o) in out[r * d..(r + 1) * d].iter_mut().enumerate() {
            *o = gamma[c] * ((xr[c] - mu) * rs) + beta[c];
        }
    }
}

/// LayerNorm's backward: `dx += …`, `dgamma += dout ⊙ x̂`, `dbeta += dout`.
#[allow(clippy::too_many_arguments)]
fn layer_norm_back<T: Real>(
    x: &[T],
    mean: &[T],
    rstd: &[T],
    rows: usize,
    d: usize,
    gamma: &[T],
    dout: &[T],
    dgb: &mut [T],
    dx: &mut [T],
) {
    let inv_d = T::from_f64(1.0 / d as f64);
    let (dgamma, dbeta) = dgb.split_at_mut(d);
    for r in 0..rows {
        let (xr, dr) = (&x[r * d..(r + 1) * d], &dout[r * d..(r + 1) * d]);
        let (mu, rs) = (mean[r], rstd[r]);
        let mut m1 = T::ZERO;
        let mut m2 = T::ZERO;
        for c in 0..d {
            let xh = (xr[c] - mu) * rs;
            let dxh = dr[c] * gamma[c];
            dgamma[c] += dr[c] * xh;
            dbeta[c] += dr[c];
            m1 += dxh;
            m2 += dxh * xh;
        }
        let (m1, m2) = (m1 * inv_d, m2 * inv_d);
        for (c, o) in dx[r * d..(r + 1) * d].iter_mut().enumerate() {
            let xh = (xr[c] - mu) * rs;
            *o += rs * (dr[c] * gamma[c] - m1 - xh * m2);
        }
    }
}

fn activate<T: Real>(act: TActivation, x: T) -> T {
    match act {
        TActivation::Relu => x.max(T::ZERO),
        TActivation::Gelu => {
            let half = T::from_f64(0.5);
            half * x * (T::ONE + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf())
        }
    }
}

fn activate_grad<T: Real>(act: TActivation, x: T) -> T {
    match act {
        TActivation::Relu => {
            if x > T::ZERO {
                T::ONE
            } else {
                T::ZERO
            }
        }
        TActivation::Gelu => {
            let half = T::from_f64(0.5);
            let cdf = half * (T::ONE + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf());
            let pdf = (-(half * x * x)).exp() * T::from_f64(0.3989422804014327);
            cdf + x * pdf
        }
    }
}

/// `dst[r] += Σ_rows src[r]` over `rows` rows of `n`.
fn sum_rows<T: Real>(dst: &mut [T], src: &[T], rows: usize, n: usize) {
    for r in 0..rows {
        for (a, b) in dst[..n].iter_mut().zip(&src[r * n..(r + 1) * n]) {
            *a += *b;
        }
    }
}

// ---------------------------------------------------------------------------------------
// A block's table part

/// A block's rows: input, normalised input and the projections.
#[derive(Default)]
pub struct Table<T> {
    pub rows: usize,
    /// Input rows `[R, d]`.
    pub x: Vec<T>,
    /// LayerNorm of the input (unused without LayerNorm: `x` is read instead).
    h: Vec<T>,
    mean: Vec<T>,
    rstd: Vec<T>,
    q: Vec<T>,
    k: Vec<T>,
    v: Vec<T>,
    /// `[R, heads, d]`: each head's values through its slice of `Wo`.
    vo: Vec<T>,
}

/// The gradients a block's example part leaves at its table.
#[derive(Default)]
pub struct TableGrads<T> {
    dq: Vec<T>,
    dk: Vec<T>,
    dvo: Vec<T>,
    /// The residual path's gradient at the input rows.
    pub dx: Vec<T>,
}

impl<T: Real> TableGrads<T> {
    fn reset(&mut self, sh: &Shape, rows: usize) {
        zero(&mut self.dq, rows * sh.d);
        zero(&mut self.dk, rows * sh.d);
        zero(&mut self.dvo, rows * sh.nh * sh.d);
        zero(&mut self.dx, rows * sh.d);
    }

    /// Adds `other` (same rows); an empty `self` becomes a copy.
    pub fn add_or_take(&mut self, other: &TableGrads<T>, sh: &Shape, rows: usize) {
        if self.dq.is_empty() {
            self.reset(sh, rows);
        }
        let pairs = [
            (&mut self.dq, &other.dq, rows * sh.d),
            (&mut self.dk, &other.dk, rows * sh.d),
            (&mut self.dvo, &other.dvo, rows * sh.nh * sh.d),
            (&mut self.dx, &other.dx, rows * sh.d),
        ];
        for (a, b, n) in pairs {
            for (x, y) in a[..n].iter_mut().zip(&b[..n]) {
                *x += *y;
            }
        }
    }
}

impl<T: Real> Table<T> {
    /// Sizes the table for `rows` rows (its input `x` is then filled by the caller).
    pub fn resize(&mut self, sh: &Shape, rows: usize) {
        self.rows = rows;
        let n = rows * sh.d;
        for v in [
            &mut self.x,
            &mut self.h,
            &mut self.q,
            &mut self.k,
            &mut self.v,
        ] {
            grow(v, n);
        }
        grow(&mut self.vo, rows * sh.nh * sh.d);
        grow(&mut self.mean, rows);
        grow(&mut self.rstd, rows);
    }

    fn normed(&self, ln: bool) -> &[T] {
        if ln {
            &self.h
        } else {
            &self.x
        }
    }

    /// The table of the shared first block: row `pos·p + token` = `E[token] + P[pos]`.
    pub fn embeddings(&mut self, sh: &Shape, w: &[T]) {
        let (p, d) = (sh.p, sh.d);
        self.resize(sh, 2 * p);
        for pos in 0..2 {
            let pe = &w[sh.pos + pos * d..sh.pos + (pos + 1) * d];
            for t in 0..p {
                let e = &w[sh.tok + t * d..sh.tok + (t + 1) * d];
                let row = &mut self.x[(pos * p + t) * d..(pos * p + t + 1) * d];
                for c in 0..d {
                    row[c] = e[c] + pe[c];
                }
            }
        }
    }

    /// LayerNorm, Q, K, V and VO of block `l` on the table's rows.
    pub fn forward(&mut self, sh: &Shape, l: usize, w: &[T]) {
        let b = &sh.blocks[l];
        let (r, d, hd, nh) = (self.rows, sh.d, sh.hd, sh.nh);
        if let Some(o) = b.ln1 {
            layer_norm(
                &self.x,
                r,
                d,
                &w[o..o + d],
                &w[o + d..o + 2 * d],
                &mut self.h,
                &mut self.mean,
                &mut self.rstd,
            );
        }
        let ln = b.ln1.is_some();
        let h = if ln { &self.h } else { &self.x };
        for (dst, at) in [
            (&mut self.q, b.wq),
            (&mut self.k, b.wk),
            (&mut self.v, b.wv),
        ] {
            gemm_into(
                dst,
                d,
                r,
                d,
                d,
                Mat::rows(&h[..r * d], d),
                Mat::transposed(&w[at..at + d * d], d),
                false,
                1,
            );
        }
        let wo = &w[b.wo..b.wo + d * d];
        for hh in 0..nh {
            gemm_into(
                &mut self.vo[hh * d..],
                nh * d,
                r,
                d,
                hd,
                Mat::strided(&self.v[hh * hd..], d),
                Mat::strided_t(&wo[hh * hd..], d),
                false,
                1,
            );
        }
    }

    /// Back-propagates the gradients `tg` left at this table through block `l`'s VO, Q, K, V
    /// and LayerNorm: parameter gradients into `g`, the input gradient added to `tg.dx`.
    pub fn backward(&self, sh: &Shape, l: usize, w: &[T], tg: &mut TableGrads<T>, g: &mut [T]) {
        let b = &sh.blocks[l];
        let (r, d, hd, nh) = (self.rows, sh.d, sh.hd, sh.nh);
        let wo = &w[b.wo..b.wo + d * d];
        // dV_h = dVO_h · Wo_h ; dWo_h += dVO_hᵀ · V_h. dV reuses `dk`'s layout: own buffer.
        let mut dv = vec![T::ZERO; r * d];
        for hh in 0..nh {
            gemm_into(
                &mut dv[hh * hd..],
                d,
                r,
                hd,
                d,
                Mat::strided(&tg.dvo[hh * d..], nh * d),
                Mat::strided(&wo[hh * hd..], d),
                false,
                1,
            );
            gemm_into(
                &mut g[b.wo + hh * hd..],
                d,
                d,
                hd,
                r,
                Mat::strided_t(&tg.dvo[hh * d..], nh * d),
                Mat::strided(&self.v[hh * hd..], d),
                true,
                1,
            );
        }
        let ln = b.ln1.is_some();
        let h = self.normed(ln);
        let mut dh = vec![T::ZERO; r * d];
        for (dz, at) in [(&tg.dq, b.wq), (&tg.dk, b.wk), (&dv, b.wv)] {
            // dH += dZ · W ; dW += dZᵀ · H.
            gemm_into(
                &mut dh,
                d,
                r,
                d,
                d,
                Mat::rows(&dz[..r * d], d),
                Mat::rows(&w[at..at + d * d], d),
                true,
                1,
            );
            gemm_into(
                &mut g[at..at + d * d],
                d,
                d,
                d,
                r,
                Mat::transposed(&dz[..r * d], d),
                Mat::rows(&h[..r * d], d),
                true,
                1,
            );
        }
        match b.ln1 {
            Some(o) => layer_norm_back(
                &self.x,
                &self.mean,
                &self.rstd,
                r,
                d,
                &w[o..o + d],
                &dh,
                &mut g[o..o + 2 * d],
                &mut tg.dx,
            ),
            None => {
                for (a, b) in tg.dx[..r * d].iter_mut().zip(&dh) {
                    *a += *b;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A block's example part

/// A block's per-example activations for a chunk.
#[derive(Default)]
pub struct Block<T> {
    /// Positions computed per example: 2, or 1 (the last position) in the last block.
    np: usize,
    /// Attention probabilities before dropout, `[n, heads, np, 2]`.
    att: Vec<T>,
    /// After the attention's residual, `[n, np, d]`.
    xr: Vec<T>,
    h2: Vec<T>,
    mean2: Vec<T>,
    rstd2: Vec<T>,
    pre: Vec<T>,
    act: Vec<T>,
    /// The block's output, `[n, np, d]`.
    pub y: Vec<T>,
}

/// The position of the `k`-th computed position when `np` are computed.
fn position(np: usize, k: usize) -> usize {
    if np == 1 {
        1
    } else {
        k
    }
}

impl<T: Real> Block<T> {
    /// Block `l`'s example part on `n` examples whose positions read table rows `idx`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        sh: &Shape,
        l: usize,
        w: &[T],
        tab: &Table<T>,
        idx: &[[u32; 2]],
        np: usize,
        masks: Option<&LayerMasks<T>>,
    ) {
        let b = &sh.blocks[l];
        let (n, d, hd, nh, hid) = (idx.len(), sh.d, sh.hd, sh.nh, sh.h);
        let rows = n * np;
        self.np = np;
        grow(&mut self.att, n * nh * np * 2);
        grow(&mut self.xr, rows * d);
        grow(&mut self.h2, rows * d);
        grow(&mut self.mean2, rows);
        grow(&mut self.rstd2, rows);
        grow(&mut self.pre, rows * hid);
        grow(&mut self.act, rows * hid);
        grow(&mut self.y, rows * d);
        let scale = T::from_f64(sh.attn_scale);
        for (e, ix) in idx.iter().enumerate() {
            let rj = [ix[0] as usize, ix[1] as usize];
            for k in 0..np {
                let i = position(np, k);
                let xr = &mut self.xr[(e * np + k) * d..(e * np + k + 1) * d];
                xr.fill(T::ZERO);
                for hh in 0..nh {
                    let qi = &tab.q[rj[i] * d + hh * hd..rj[i] * d + (hh + 1) * hd];
                    let s0 =
                        scale * dot(qi, &tab.k[rj[0] * d + hh * hd..rj[0] * d + (hh + 1) * hd]);
                    let s1 =
                        scale * dot(qi, &tab.k[rj[1] * d + hh * hd..rj[1] * d + (hh + 1) * hd]);
                    let m = s0.max(s1);
                    let (e0, e1) = ((s0 - m).exp(), (s1 - m).exp());
                    let z = e0 + e1;
                    let a = [e0 / z, e1 / z];
                    let at = ((e * nh + hh) * np + k) * 2;
                    self.att[at] = a[0];
                    self.att[at + 1] = a[1];
                    for j in 0..2 {
                        let aj = match masks {
                            Some(mk) => a[j] * mk.att[((e * nh + hh) * 2 + i) * 2 + j],
                            None => a[j],
                        };
                        let vo = &tab.vo[(rj[j] * nh + hh) * d..(rj[j] * nh + hh + 1) * d];
                        axpy(xr, aj, vo);
                    }
                }
                if let Some(mk) = masks {
                    let m = &mk.ao[(e * 2 + i) * d..(e * 2 + i + 1) * d];
                    for (o, mv) in xr.iter_mut().zip(m) {
                        *o *= *mv;
                    }
                }
                let x = &tab.x[rj[i] * d..(rj[i] + 1) * d];
                for (o, xv) in xr.iter_mut().zip(x) {
                    *o += *xv;
                }
            }
        }
        if let Some(o) = b.ln2 {
            layer_norm(
                &self.xr,
                rows,
                d,
                &w[o..o + d],
                &w[o + d..o + 2 * d],
                &mut self.h2,
                &mut self.mean2,
                &mut self.rstd2,
            );
        }
        let h2 = if b.ln2.is_some() { &self.h2 } else { &self.xr };
        gemm_into(
            &mut self.pre,
            hid,
            rows,
            hid,
            d,
            Mat::rows(&h2[..rows * d], d),
            Mat::transposed(&w[b.fc1..b.fc1 + hid * d], d),
            false,
            1,
        );
        if let Some(bo) = b.fc1_b {
            for r in 0..rows {
                for (x, bv) in self.pre[r * hid..(r + 1) * hid]
                    .iter_mut()
                    .zip(&w[bo..bo + hid])
                {
                    *x += *bv;
                }
            }
        }
        for (a, &x) in self.act[..rows * hid]
            .iter_mut()
            .zip(&self.pre[..rows * hid])
        {
            *a = activate(sh.act, x);
        }
        gemm_into(
            &mut self.y,
            d,
            rows,
            d,
            hid,
            Mat::rows(&self.act[..rows * hid], hid),
            Mat::transposed(&w[b.fc2..b.fc2 + d * hid], hid),
            false,
            1,
        );
        for e in 0..n {
            for k in 0..np {
                let r = e * np + k;
                let y = &mut self.y[r * d..(r + 1) * d];
                if let Some(bo) = b.fc2_b {
                    for (x, bv) in y.iter_mut().zip(&w[bo..bo + d]) {
                        *x += *bv;
                    }
                }
                if let Some(mk) = masks {
                    let i = position(np, k);
                    for (x, mv) in y
                        .iter_mut()
                        .zip(&mk.mlp[(e * 2 + i) * d..(e * 2 + i + 1) * d])
                    {
                        *x *= *mv;
                    }
                }
                for (x, xr) in y.iter_mut().zip(&self.xr[r * d..(r + 1) * d]) {
                    *x += *xr;
                }
            }
        }
    }

    /// Back-propagates `dy` (the gradient at the block's output, `[n, np, d]`; overwritten)
    /// through the example part: parameter gradients into `g`, the gradients at the table's
    /// Q, K, VO and input rows into `tg`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        sh: &Shape,
        l: usize,
        w: &[T],
        tab: &Table<T>,
        idx: &[[u32; 2]],
        masks: Option<&LayerMasks<T>>,
        dy: &mut [T],
        scratch: &mut Scratch<T>,
        tg: &mut TableGrads<T>,
        g: &mut [T],
    ) {
        let b = &sh.blocks[l];
        let np = self.np;
        let (n, d, hd, nh, hid) = (idx.len(), sh.d, sh.hd, sh.nh, sh.h);
        let rows = n * np;
        // dM = dY ⊙ mask (into `dm`); dY itself flows on through the residual.
        let dm = &mut scratch.dm;
        grow(dm, rows * d);
        dm[..rows * d].copy_from_slice(&dy[..rows * d]);
        if let Some(mk) = masks {
            for e in 0..n {
                for k in 0..np {
                    let i = position(np, k);
                    let r = e * np + k;
                    for (x, mv) in dm[r * d..(r + 1) * d]
                        .iter_mut()
                        .zip(&mk.mlp[(e * 2 + i) * d..(e * 2 + i + 1) * d])
                    {
                        *x *= *mv;
                    }
                }
            }
        }
        if let Some(bo) = b.fc2_b {
            sum_rows(&mut g[bo..bo + d], dm, rows, d);
        }
        // dAct = dM · fc2 ; dfc2 += dMᵀ · act.
        let dact = &mut scratch.dact;
        grow(dact, rows * hid);
        gemm_into(
            dact,
            hid,
            rows,
            hid,
            d,
            Mat::rows(&dm[..rows * d], d),
            Mat::rows(&w[b.fc2..b.fc2 + d * hid], hid),
            false,
            1,
        );
        gemm_into(
            &mut g[b.fc2..b.fc2 + d * hid],
            hid,
            d,
            hid,
            rows,
            Mat::transposed(&dm[..rows * d], d),
            Mat::rows(&self.act[..rows * hid], hid),
            true,
            1,
        );
        for (da, &x) in dact[..rows * hid].iter_mut().zip(&self.pre[..rows * hid]) {
            *da *= activate_grad(sh.act, x);
        }
        if let Some(bo) = b.fc1_b {
            sum_rows(&mut g[bo..bo + hid], dact, rows, hid);
        }
        let h2 = if b.ln2.is_some() { &self.h2 } else { &self.xr };
        gemm_into(
            &mut g[b.fc1..b.fc1 + hid * d],
            d,
            hid,
            d,
            rows,
            Mat::transposed(&dact[..rows * hid], hid),
            Mat::rows(&h2[..rows * d], d),
            true,
            1,
        );
        // dX' = dY + (LN2)ᵀ(dAct · fc1).
        let dh2 = &mut scratch.dh2;
        grow(dh2, rows * d);
        gemm_into(
            dh2,
            d,
            rows,
            d,
            hid,
            Mat::rows(&dact[..rows * hid], hid),
            Mat::rows(&w[b.fc1..b.fc1 + hid * d], d),
            false,
            1,
        );
        match b.ln2 {
            Some(o) => layer_norm_back(
                &self.xr,
                &self.mean2,
                &self.rstd2,
                rows,
                d,
                &w[o..o + d],
                dh2,
                &mut g[o..o + 2 * d],
                dy,
            ),
            None => {
                for (a, b) in dy[..rows * d].iter_mut().zip(dh2.iter()) {
                    *a += *b;
                }
            }
        }
        // Attention, per example and computed position.
        let scale = T::from_f64(sh.attn_scale);
        let da = &mut scratch.da;
        grow(da, d);
        for (e, ix) in idx.iter().enumerate() {
            let rj = [ix[0] as usize, ix[1] as usize];
            for k in 0..np {
                let i = position(np, k);
                let r = e * np + k;
                let dx = &dy[r * d..(r + 1) * d];
                // Residual.
                for (a, b) in tg.dx[rj[i] * d..(rj[i] + 1) * d].iter_mut().zip(dx) {
                    *a += *b;
                }
                da[..d].copy_from_slice(dx);
                if let Some(mk) = masks {
                    for (x, mv) in da[..d]
                        .iter_mut()
                        .zip(&mk.ao[(e * 2 + i) * d..(e * 2 + i + 1) * d])
                    {
                        *x *= *mv;
                    }
                }
                for hh in 0..nh {
                    let at = ((e * nh + hh) * np + k) * 2;
                    let a = [self.att[at], self.att[at + 1]];
                    let mut dprob = [T::ZERO; 2];
                    for j in 0..2 {
                        let o = (rj[j] * nh + hh) * d;
                        let mk = masks.map(|mk| mk.att[((e * nh + hh) * 2 + i) * 2 + j]);
                        let aj = mk.map_or(a[j], |m| a[j] * m);
                        axpy(&mut tg.dvo[o..o + d], aj, &da[..d]);
                        let dv = dot(&da[..d], &tab.vo[o..o + d]);
                        dprob[j] = mk.map_or(dv, |m| dv * m);
                    }
                    let s = a[0] * dprob[0] + a[1] * dprob[1];
                    let ds = [a[0] * (dprob[0] - s), a[1] * (dprob[1] - s)];
                    let qo = rj[i] * d + hh * hd;
                    for j in 0..2 {
                        let ko = rj[j] * d + hh * hd;
                        let c = scale * ds[j];
                        for t in 0..hd {
                            tg.dq[qo + t] += c * tab.k[ko + t];
                        }
                        for t in 0..hd {
                            tg.dk[ko + t] += c * tab.q[qo + t];
                        }
                    }
                }
            }
        }
    }
}

/// Scratch buffers of a block's backward pass.
#[derive(Default)]
pub struct Scratch<T> {
    dm: Vec<T>,
    dact: Vec<T>,
    dh2: Vec<T>,
    da: Vec<T>,
}

// ---------------------------------------------------------------------------------------
// A chunk: the whole network on a set of examples

/// Everything one chunk of one model needs, kept between steps.
#[derive(Default)]
pub struct Chunk<T> {
    /// Per block: its own table (unused for the first block when it is shared).
    tables: Vec<Table<T>>,
    blocks: Vec<Block<T>>,
    /// Per block: the gradients left at its table.
    pub tgrads: Vec<TableGrads<T>>,
    idx0: Vec<[u32; 2]>,
    idx: Vec<[u32; 2]>,
    z: Vec<T>,
    meanf: Vec<T>,
    rstdf: Vec<T>,
    /// Logits `[n, p]`, then their gradient.
    pub logits: Vec<T>,
    dz: Vec<T>,
    dy: Vec<T>,
    scratch: Scratch<T>,
    /// Parameter gradients of this chunk.
    pub grad: Vec<T>,
    /// The chunk's unnormalised loss.
    pub loss: f64,
}

/// One chunk's examples: token pairs and (for training) labels.
pub struct Examples<'a> {
    pub tokens: &'a [[u32; 2]],
    pub labels: &'a [u32],
}

impl<T: Real> Chunk<T> {
    /// The forward pass on `ex`; logits land in `self.logits` (`[n, p]`). `shared` is the
    /// model's first-block table when no dropout acts on the embeddings (`masks` is `None`).
    pub fn forward(
        &mut self,
        sh: &Shape,
        w: &[T],
        ex: &Examples,
        shared: Option<&Table<T>>,
        masks: Option<&Masks<T>>,
    ) {
        let (n, d, p, nl) = (ex.tokens.len(), sh.d, sh.p, sh.layers());
        while self.tables.len() < nl {
            self.tables.push(Table::default());
        }
        while self.blocks.len() < nl {
            self.blocks.push(Block::default());
        }
        self.idx0.clear();
        self.idx.clear();
        for (e, t) in ex.tokens.iter().enumerate() {
            self.idx0.push([t[0], p as u32 + t[1]]);
            self.idx.push([2 * e as u32, 2 * e as u32 + 1]);
        }
        for l in 0..nl {
            let np = if l + 1 == nl { 1 } else { 2 };
            let (before, rest) = self.blocks.split_at_mut(l);
            let blk = &mut rest[0];
            let tab = &mut self.tables[l];
            let lm = masks.map(|m| &m.layers[l]);
            if l == 0 {
                if let Some(s) = shared.filter(|_| masks.is_none()) {
                    blk.forward(sh, 0, w, s, &self.idx0, np, None);
                    continue;
                }
                tab.resize(sh, 2 * n);
                for (e, t) in ex.tokens.iter().enumerate() {
                    for i in 0..2 {
                        let te = &w[sh.tok + t[i] as usize * d..][..d];
                        let pe = &w[sh.pos + i * d..][..d];
                        let row = &mut tab.x[(2 * e + i) * d..(2 * e + i + 1) * d];
                        for c in 0..d {
                            row[c] = te[c] + pe[c];
                        }
                        if let Some(m) = masks {
                            for (x, mv) in row.iter_mut().zip(&m.emb[(2 * e + i) * d..][..d]) {
                                *x *= *mv;
                            }
                        }
                    }
                }
            } else {
                tab.resize(sh, 2 * n);
                tab.x[..2 * n * d].copy_from_slice(&before[l - 1].y[..2 * n * d]);
            }
            tab.forward(sh, l, w);
            blk.forward(sh, l, w, tab, &self.idx, np, lm);
        }
        // The last position → (LayerNorm) → logits.
        let last = &self.blocks[nl - 1].y;
        grow(&mut self.z, n * d);
        match sh.ln_f {
            Some(o) => {
                grow(&mut self.meanf, n);
                grow(&mut self.rstdf, n);
                layer_norm(
                    last,
                    n,
                    d,
                    &w[o..o + d],
                    &w[o + d..o + 2 * d],
                    &mut self.z,
                    &mut self.meanf,
                    &mut self.rstdf,
                );
            }
            None => self.z[..n * d].copy_from_slice(&last[..n * d]),
        }
        grow(&mut self.logits, n * p);
        gemm_into(
            &mut self.logits,
            p,
            n,
            p,
            d,
            Mat::rows(&self.z[..n * d], d),
            Mat::transposed(&w[sh.out..sh.out + p * d], d),
            false,
            1,
        );
        let ls = T::from_f64(sh.logit_scale);
        for x in self.logits[..n * p].iter_mut() {
            *x *= ls;
        }
    }

    /// Replaces the logits by the gradient of the mean loss over a batch of `batch`
    /// examples and returns the chunk's unnormalised loss.
    pub fn loss_grad(&mut self, sh: &Shape, loss: Loss, labels: &[u32], batch: usize) -> f64 {
        let p = sh.p;
        let mut total = 0.0f64;
        for (r, &y) in labels.iter().enumerate() {
            let row = &mut self.logits[r * p..(r + 1) * p];
            let y = y as usize;
            match loss {
                Loss::CrossEntropy => {
                    let m = row.iter().fold(row[0], |a, &b| a.max(b));
                    let mut s = T::ZERO;
                    for &x in row.iter() {
                        s += (x - m).exp();
                    }
                    let lse = m + s.ln();
                    total += (lse - row[y]).to_f64();
                    let inv = T::from_f64(1.0 / batch as f64);
                    for (q, x) in row.iter_mut().enumerate() {
                        let t = if q == y { T::ONE } else { T::ZERO };
                        *x = ((*x - lse).exp() - t) * inv;
                    }
                }
                Loss::Mse => {
                    let c = T::from_f64(2.0 / (batch * p) as f64);
                    for (q, x) in row.iter_mut().enumerate() {
                        let t = if q == y { T::ONE } else { T::ZERO };
                        let e = *x - t;
                        total += (e * e).to_f64();
                        *x = c * e;
                    }
                }
            }
        }
        self.loss = total;
        total
    }

    /// The backward pass after [`Chunk::forward`] and [`Chunk::loss_grad`]: this chunk's
    /// parameter gradients into `self.grad`. With a `shared` first-block table, the
    /// gradients at it stay in `self.tgrads[0]` for [`shared_backward`] once the chunks are
    /// summed.
    pub fn backward(
        &mut self,
        sh: &Shape,
        w: &[T],
        ex: &Examples,
        shared: Option<&Table<T>>,
        masks: Option<&Masks<T>>,
    ) {
        let (n, d, p, nl) = (ex.tokens.len(), sh.d, sh.p, sh.layers());
        zero(&mut self.grad, sh.n_params);
        while self.tgrads.len() < nl {
            self.tgrads.push(TableGrads::default());
        }
        let g = &mut self.grad;
        let ls = T::from_f64(sh.logit_scale);
        for x in self.logits[..n * p].iter_mut() {
            *x *= ls;
        }
        gemm_into(
            &mut g[sh.out..sh.out + p * d],
            d,
            p,
            d,
            n,
            Mat::transposed(&self.logits[..n * p], p),
            Mat::rows(&self.z[..n * d], d),
            true,
            1,
        );
        grow(&mut self.dz, n * d);
        gemm_into(
            &mut self.dz,
            d,
            n,
            d,
            p,
            Mat::rows(&self.logits[..n * p], p),
            Mat::rows(&w[sh.out..sh.out + p * d], d),
            false,
            1,
        );
        zero(&mut self.dy, 2 * n * d);
        match sh.ln_f {
            Some(o) => layer_norm_back(
                &self.blocks[nl - 1].y,
                &self.meanf,
                &self.rstdf,
                n,
                d,
                &w[o..o + d],
                &self.dz,
                &mut g[o..o + 2 * d],
                &mut self.dy,
            ),
            None => self.dy[..n * d].copy_from_slice(&self.dz[..n * d]),
        }
        let shared = shared.filter(|_| masks.is_none());
        for l in (0..nl).rev() {
            let lm = masks.map(|m| &m.layers[l]);
            let tg = &mut self.tgrads[l];
            if l == 0 {
                if let Some(s) = shared {
                    tg.reset(sh, s.rows);
                    self.blocks[0].backward(
                        sh,
                        0,
                        w,
                        s,
                        &self.idx0,
                        None,
                        &mut self.dy,
                        &mut self.scratch,
                        tg,
                        g,
                    );
                    return;
                }
            }
            let tab = &self.tables[l];
            tg.reset(sh, tab.rows);
            self.blocks[l].backward(
                sh,
                l,
                w,
                tab,
                &self.idx,
                lm,
                &mut self.dy,
                &mut self.scratch,
                tg,
                g,
            );
            tab.backward(sh, l, w, tg, g);
            if l > 0 {
                self.dy[..2 * n * d].copy_from_slice(&tg.dx[..2 * n * d]);
            } else {
                for (e, t) in ex.tokens.iter().enumerate() {
                    for (i, &tok) in t.iter().enumerate() {
                        let r = 2 * e + i;
                        let dx = &tg.dx[r * d..(r + 1) * d];
                        let mk = masks.map(|m| &m.emb[r * d..(r + 1) * d]);
                        let te = sh.tok + tok as usize * d;
                        let pe = sh.pos + i * d;
                        for c in 0..d {
                            let v = mk.map_or(dx[c], |m| dx[c] * m[c]);
                            g[te + c] += v;
                            g[pe + c] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Back-propagates the summed gradients `tg` at the shared first-block table (rows
/// `pos·p + token`) into the parameter gradients `g`.
pub fn shared_backward<T: Real>(
    sh: &Shape,
    w: &[T],
    tab: &Table<T>,
    tg: &mut TableGrads<T>,
    g: &mut [T],
) {
    tab.backward(sh, 0, w, tg, g);
    let (p, d) = (sh.p, sh.d);
    for pos in 0..2 {
        for t in 0..p {
            let dx = &tg.dx[(pos * p + t) * d..(pos * p + t + 1) * d];
            for c in 0..d {
                g[sh.tok + t * d + c] += dx[c];
                g[sh.pos + pos * d + c] += dx[c];
            }
        }
    }
}
