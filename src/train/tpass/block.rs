//! A block's example part: per example the 2 × 2 attention of each head on its table's
//! rows, the residual, LayerNorm and the MLP (one position per example in the last block),
//! and the backward pass through them.

use super::ops::{activate, activate_grad, axpy, dot, grow, layer_norm, layer_norm_back, sum_rows};
use super::shape::{LayerMasks, Shape};
use super::table::{Table, TableGrads};
use crate::kernels::{gemm_into, Mat, Real};

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
    /// The first `len` MLP activations of the last forward pass.
    pub fn act(&self, len: usize) -> &[T] {
        &self.act[..len.min(self.act.len())]
    }

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
