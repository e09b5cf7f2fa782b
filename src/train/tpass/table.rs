//! A block's table part: the rows its examples index (the first block's 2p
//! token-and-position rows, or a chunk's own rows), their LayerNorm, Q, K, V and
//! `VO = V_h · Wo_hᵀ`, and the backward pass through them.

use super::ops::{grow, layer_norm, layer_norm_back, zero};
use super::shape::Shape;
use crate::kernels::{gemm_into, Mat, Real};

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
    pub(super) q: Vec<T>,
    pub(super) k: Vec<T>,
    v: Vec<T>,
    /// `[R, heads, d]`: each head's values through its slice of `Wo`.
    pub(super) vo: Vec<T>,
}

/// The gradients a block's example part leaves at its table.
#[derive(Default)]
pub struct TableGrads<T> {
    pub(super) dq: Vec<T>,
    pub(super) dk: Vec<T>,
    pub(super) dvo: Vec<T>,
    /// The residual path's gradient at the input rows.
    pub dx: Vec<T>,
}

impl<T: Real> TableGrads<T> {
    pub(super) fn reset(&mut self, sh: &Shape, rows: usize) {
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
        // Field by field (not `normed`): q, k, v are written while h or x is read.
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
