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

mod block;
pub(crate) mod ops;
mod shape;
mod table;

pub use block::{Block, Scratch};
pub use shape::{masks, BlockAt, LayerMasks, Masks, Shape};
pub use table::{Table, TableGrads};

use super::loss::{Loss, Precision};
use crate::kernels::{gemm_into, Mat, Real};
use ops::{grow, layer_norm, layer_norm_back, zero};

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
    /// The last block's MLP activations `[n, hidden]` (the last position) after
    /// [`Chunk::forward`] on `n` examples.
    pub fn last_hidden(&self, sh: &Shape, n: usize) -> &[T] {
        self.blocks.last().map(|b| b.act(n * sh.h)).unwrap_or(&[])
    }

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
    pub fn loss_grad(
        &mut self,
        sh: &Shape,
        loss: Loss,
        softmax: Precision,
        labels: &[u32],
        batch: usize,
    ) -> f64 {
        let p = sh.p;
        let mut total = 0.0f64;
        for (r, &y) in labels.iter().enumerate() {
            let row = &mut self.logits[r * p..(r + 1) * p];
            let y = y as usize;
            match loss {
                Loss::CrossEntropy | Loss::StableMax => {
                    total += super::loss::softmax_grad_in_place(loss, softmax, row, y, batch);
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
