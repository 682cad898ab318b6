//! 2-D convolution (NCHW, f32, groups 1, dilation 1) by im2col and one matrix multiply per
//! sample, optionally fused with a ReLU and a max-pool, as a candle custom op with its backward.
//!
//! Forward, per sample `n`: `col = im2col(x[n])` (`K x P`, `K = C·KH·KW`, `P = OH·OW`), then
//! `y[n] = W (O x K) · col + b`, then the epilogue (ReLU, max-pool with the window's argmax
//! recorded for the backward). Backward, per sample: the output gradient goes back through the
//! epilogue (scatter to the argmax, ReLU mask), then `grad_w += G · colᵀ`, `grad_b += Σ_p G`,
//! `grad_x[n] = col2im(Wᵀ · G)`. Each gradient is computed only when its tensor tracks
//! gradients: the input image of a network never pays for `grad_x`. The batch is cut into
//! pieces run on rayon's pool, each with its own scratch buffers and gradient partial sums.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::Activation;
use crate::gemm::{Mat, Par, gemm};
use crate::pool::{pool_backward_plane, pool_plane};
use crate::util::{contiguous, expect_cpu_f32, f32_slice, pieces, tensor, with_f32};

/// The shape of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    /// Rows of the im2col matrix: `C · KH · KW`.
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output pixels per channel: `OH · OW`.
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// A 1x1 kernel with stride 1 and no padding reads the input itself as its im2col matrix.
    fn identity_cols(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
    /// Stride 1 (not 1x1): the "wide" im2col, where each row of the column matrix is one
    /// contiguous run of the (padded) input. Column `q` stands for output pixel
    /// `(q / Wp, q % Wp)` with `Wp` the padded width; columns with `q % Wp ≥ OW` are junk,
    /// computed and ignored forward, held at zero gradient backward.
    fn wide(&self) -> bool {
        self.stride == 1 && !self.identity_cols()
    }
    /// Padded height and width.
    fn padded(&self) -> (usize, usize) {
        (self.h + 2 * self.pad, self.w + 2 * self.pad)
    }
    /// Columns of the column matrix: `P`, or `(OH - 1)·Wp + OW` when [`wide`](Self::wide).
    fn cols(&self) -> usize {
        if self.wide() { (self.oh - 1) * self.padded().1 + self.ow } else { self.p() }
    }
    /// Distance between output rows in a column-matrix layout plane.
    fn col_row_stride(&self) -> usize {
        if self.wide() { self.padded().1 } else { self.ow }
    }
    /// Scratch for one zero-padded sample, when the wide layout needs one.
    fn pad_len(&self) -> usize {
        let (hp, wp) = self.padded();
        if self.wide() && self.pad > 0 { self.c * hp * wp } else { 0 }
    }
    /// Writes the column matrix of sample `x` into `col` (`K x cols()`), using `pad` as
    /// scratch (`pad_len()`).
    fn fill_cols(&self, x: &[f32], col: &mut [f32], pad: &mut [f32]) {
        if !self.wide() {
            im2col(self, x, col);
            return;
        }
        let (hp, wp) = self.padded();
        let src: &[f32] = if self.pad > 0 {
            for (c, plane) in pad.chunks_exact_mut(hp * wp).enumerate() {
                plane.fill(0.0);
                for (r, row) in x[c * self.h * self.w..][..self.h * self.w].chunks_exact(self.w).enumerate() {
                    plane[(r + self.pad) * wp + self.pad..][..self.w].copy_from_slice(row);
                }
            }
            pad
        } else {
            x
        };
        let l = self.cols();
        for (kk, row) in col.chunks_exact_mut(l).enumerate() {
            let (c, ky, kx) = (kk / (self.kh * self.kw), kk / self.kw % self.kh, kk % self.kw);
            row.copy_from_slice(&src[c * hp * wp + ky * wp + kx..][..l]);
        }
    }
    /// Adds the column-matrix gradient `col` back onto sample gradient `gx` (the adjoint of
    /// [`fill_cols`](Self::fill_cols)), using `pad` as scratch.
    fn scatter_cols(&self, col: &[f32], gx: &mut [f32], pad: &mut [f32]) {
        if !self.wide() {
            col2im(self, col, gx);
            return;
        }
        let (hp, wp) = self.padded();
        let l = self.cols();
        let add_rows = |dst: &mut [f32]| {
            for (kk, row) in col.chunks_exact(l).enumerate() {
                let (c, ky, kx) = (kk / (self.kh * self.kw), kk / self.kw % self.kh, kk % self.kw);
                for (d, s) in dst[c * hp * wp + ky * wp + kx..][..l].iter_mut().zip(row) {
                    *d += *s;
                }
            }
        };
        if self.pad == 0 {
            add_rows(gx);
            return;
        }
        pad.fill(0.0);
        add_rows(pad);
        for (c, plane) in pad.chunks_exact(hp * wp).enumerate() {
            for (r, row) in gx[c * self.h * self.w..][..self.h * self.w].chunks_exact_mut(self.w).enumerate() {
                for (d, s) in row.iter_mut().zip(&plane[(r + self.pad) * wp + self.pad..][..self.w]) {
                    *d += *s;
                }
            }
        }
    }
    /// The range of output columns `ow` whose input column `ow·s + kx - pad` lies in `[0, W)`.
    fn ow_range(&self, kx: usize) -> (usize, usize) {
        let s = self.stride;
        let lo = if self.pad > kx { (self.pad - kx).div_ceil(s) } else { 0 };
        let hi = if self.w + self.pad > kx { ((self.w + self.pad - kx - 1) / s + 1).min(self.ow) } else { 0 };
        (lo.min(self.ow), hi.max(lo.min(self.ow)))
    }
    /// The input row read by output row `oy` at kernel row `ky`, if inside the image.
    fn in_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride + ky).checked_sub(self.pad).filter(|&r| r < self.h)
    }
}

/// `dst.copy_from_slice(src)` for the short rows of small images (tens of values), in blocks of
/// eight moved as whole arrays: the compiler would turn a plain loop into a `memcpy` call, whose
/// set-up costs more than such a copy.
#[inline]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let block: [f32; 8] = [s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]];
        d.copy_from_slice(&block);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// Writes the `K x P` im2col matrix of one sample `x` (`C x H x W`) into `col`.
fn im2col(g: &Geom, x: &[f32], col: &mut [f32]) {
    let (p, ow) = (g.p(), g.ow);
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &mut col[((c * g.kh + ky) * g.kw + kx) * p..][..p];
                let (lo, hi) = g.ow_range(kx);
                for oy in 0..g.oh {
                    let dst = &mut row[oy * ow..][..ow];
                    let Some(iy) = g.in_row(oy, ky) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &plane[iy * g.w..][..g.w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    if hi > lo {
                        let first = lo * g.stride + kx - g.pad;
                        if g.stride == 1 {
                            copy_short(&mut dst[lo..hi], &src[first..first + hi - lo]);
                        } else {
                            for (d, s) in dst[lo..hi].iter_mut().zip(src[first..].iter().step_by(g.stride)) {
                                *d = *s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds the `K x P` column gradient `col` back onto one sample's input gradient `gx`
/// (`C x H x W`), the adjoint of [`im2col`].
fn col2im(g: &Geom, col: &[f32], gx: &mut [f32]) {
    let (p, ow) = (g.p(), g.ow);
    for c in 0..g.c {
        let plane = &mut gx[c * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &col[((c * g.kh + ky) * g.kw + kx) * p..][..p];
                let (lo, hi) = g.ow_range(kx);
                if hi <= lo {
                    continue;
                }
                for oy in 0..g.oh {
                    let Some(iy) = g.in_row(oy, ky) else { continue };
                    let src = &row[oy * ow + lo..oy * ow + hi];
                    let first = lo * g.stride + kx - g.pad;
                    let dst = &mut plane[iy * g.w..][..g.w];
                    if g.stride == 1 {
                        for (d, s) in dst[first..first + hi - lo].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in dst[first..].iter_mut().step_by(g.stride).zip(src) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}

/// The gradients `(x, w, b)` as plain vectors, each only when asked for.
type Grads = (Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>);

/// One piece of the batch's partial sums of `grad_w` and `grad_b`.
struct Partial {
    gw: Vec<f32>,
    gb: Vec<f32>,
}

/// The convolution op, with its fused epilogue.
struct ConvOp {
    g: Geom,
    relu: bool,
    pool: Option<usize>,
    /// Window-local argmax of every pooled output, kept by the forward for the backward.
    argmax: OnceLock<Vec<u8>>,
    record: bool,
}

impl ConvOp {
    fn out_hw(&self) -> (usize, usize) {
        match self.pool {
            Some(k) => (self.g.oh / k, self.g.ow / k),
            None => (self.g.oh, self.g.ow),
        }
    }

    fn out_shape(&self) -> Shape {
        let (h, w) = self.out_hw();
        Shape::from((self.g.n, self.g.o, h, w))
    }

    fn forward(&self, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
        let g = self.g;
        let (k, p) = (g.k(), g.p());
        let (ph, pw) = self.out_hw();
        let out_len = g.o * ph * pw;
        let mut y = vec![0.0f32; g.n * out_len];
        let mut idx = vec![0u8; if self.pool.is_some() && self.record { g.n * out_len } else { 0 }];
        if g.n == 0 || out_len == 0 {
            self.keep(idx);
            return y;
        }
        let per = g.n.div_ceil(pieces(g.n, g.n * g.o * k * p));
        let idx_per = if idx.is_empty() { 0 } else { per * out_len };
        let (l, rs) = (g.cols(), g.col_row_stride());
        // The multiply writes straight into the output unless an epilogue reshapes it.
        let direct = self.pool.is_none() && !g.wide();
        let run = |n0: usize, y: &mut [f32], idx: &mut [u8]| {
            let mut col = if g.identity_cols() { Vec::new() } else { vec![0.0f32; k * l] };
            let mut pad = vec![0.0f32; g.pad_len()];
            let mut conv = if direct { Vec::new() } else { vec![0.0f32; g.o * l] };
            for (i, yn) in y.chunks_exact_mut(out_len).enumerate() {
                let xn = &x[(n0 + i) * g.in_len()..][..g.in_len()];
                let cols: &[f32] = if g.identity_cols() {
                    xn
                } else {
                    g.fill_cols(xn, &mut col, &mut pad);
                    &col
                };
                let dst: &mut [f32] = if direct { yn } else { &mut conv };
                if let Some(b) = b {
                    for (row, &bv) in dst.chunks_exact_mut(l).zip(b) {
                        row.fill(bv);
                    }
                }
                // dstᵀ (L x O) = colᵀ (L x K) · Wᵀ (K x O): the long axis is the multiply's row
                // axis and `dst` (O x L, row-major) is column-major to it, the layout its
                // kernels write natively; few output channels then fill the narrow side.
                gemm(l, g.o, k, dst, 1, l, b.is_some(), Mat::rows_t(cols, l), Mat::rows_t(w, k), Par::Seq);
                match self.pool {
                    Some(kp) => {
                        let plen = ph * pw;
                        for o in 0..g.o {
                            let ids =
                                if idx.is_empty() { None } else { Some(&mut idx[(i * g.o + o) * plen..][..plen]) };
                            pool_plane(
                                &conv[o * l..][..l],
                                rs,
                                g.oh,
                                g.ow,
                                kp,
                                &mut yn[o * plen..][..plen],
                                ids,
                                self.relu,
                            );
                        }
                    }
                    None if direct => {
                        if self.relu {
                            yn.iter_mut().for_each(|v| *v = if *v < 0.0 { 0.0 } else { *v });
                        }
                    }
                    None => {
                        // The valid columns of the wide layout, row by row.
                        for (o, plane) in yn.chunks_exact_mut(p).enumerate() {
                            for (oy, row) in plane.chunks_exact_mut(g.ow).enumerate() {
                                for (d, &v) in row.iter_mut().zip(&conv[o * l + oy * rs..][..g.ow]) {
                                    *d = if self.relu && v < 0.0 { 0.0 } else { v };
                                }
                            }
                        }
                    }
                }
            }
        };
        if idx_per == 0 {
            y.par_chunks_mut(per * out_len).enumerate().for_each(|(ci, yc)| run(ci * per, yc, &mut []));
        } else {
            y.par_chunks_mut(per * out_len)
                .zip(idx.par_chunks_mut(idx_per))
                .enumerate()
                .for_each(|(ci, (yc, ic))| run(ci * per, yc, ic));
        }
        self.keep(idx);
        y
    }

    fn keep(&self, idx: Vec<u8>) {
        if self.record && self.pool.is_some() {
            // A fresh op is made per call, so this is its only forward.
            let _ = self.argmax.set(idx);
        }
    }

    /// The gradients `(x, w, b)` of the op, each only when asked for.
    #[allow(clippy::too_many_arguments, reason = "the op's inputs, output and the three requests")]
    fn backward(
        &self,
        x: &[f32],
        w: &[f32],
        y: &[f32],
        gy: &[f32],
        need_x: bool,
        need_w: bool,
        need_b: bool,
    ) -> Result<Grads> {
        let g = self.g;
        let (k, p) = (g.k(), g.p());
        let (ph, pw) = self.out_hw();
        let out_len = g.o * ph * pw;
        let argmax: &[u8] = match self.pool {
            Some(_) => match self.argmax.get() {
                Some(a) => a,
                None => bail!("conv2d backward: the forward did not record its pooling indices"),
            },
            None => &[],
        };
        let work = g.n * g.o * k * p * (usize::from(need_x) + usize::from(need_w));
        let per = g.n.div_ceil(pieces(g.n, work)).max(1);
        let (l, rs) = (g.cols(), g.col_row_stride());
        // The output gradient is rewritten into the column layout unless it already is it.
        let rewrite = self.pool.is_some() || self.relu || g.wide();
        // One piece's work: returns its partial grad_w and grad_b.
        let run = |n0: usize, count: usize, mut gx: Option<&mut [f32]>| -> Partial {
            let mut gw = vec![0.0f32; if need_w { g.o * k } else { 0 }];
            let mut gb = vec![0.0f32; if need_b { g.o } else { 0 }];
            let mut col = vec![0.0f32; if (need_w || need_x) && !g.identity_cols() { k * l } else { 0 }];
            let mut pad = vec![0.0f32; g.pad_len()];
            let mut gpre = vec![0.0f32; if rewrite { g.o * l } else { 0 }];
            for i in 0..count {
                let n = n0 + i;
                let gyn = &gy[n * out_len..][..out_len];
                let yn = &y[n * out_len..][..out_len];
                // The gradient at the convolution's output, through the epilogue.
                let gn: &[f32] = match self.pool {
                    Some(kp) => {
                        let plen = ph * pw;
                        for o in 0..g.o {
                            let r = (n * g.o + o) * plen..(n * g.o + o + 1) * plen;
                            pool_backward_plane(
                                &gyn[o * plen..][..plen],
                                &argmax[r.clone()],
                                if self.relu { Some(&yn[o * plen..][..plen]) } else { None },
                                g.oh,
                                g.ow,
                                kp,
                                &mut gpre[o * l..][..l],
                                rs,
                            );
                        }
                        &gpre
                    }
                    None if rewrite => {
                        if g.wide() {
                            gpre.fill(0.0);
                        }
                        for o in 0..g.o {
                            for oy in 0..g.oh {
                                let at = o * p + oy * g.ow;
                                let dst = &mut gpre[o * l + oy * rs..][..g.ow];
                                for ((d, &gv), &yv) in dst.iter_mut().zip(&gyn[at..at + g.ow]).zip(&yn[at..at + g.ow]) {
                                    *d = if self.relu && yv <= 0.0 { 0.0 } else { gv };
                                }
                            }
                        }
                        &gpre
                    }
                    None => gyn,
                };
                if need_b {
                    for (acc, row) in gb.iter_mut().zip(gn.chunks_exact(l)) {
                        *acc += row.iter().sum::<f32>();
                    }
                }
                let xn = &x[n * g.in_len()..][..g.in_len()];
                if need_w {
                    let cols: &[f32] = if g.identity_cols() {
                        xn
                    } else {
                        g.fill_cols(xn, &mut col, &mut pad);
                        &col
                    };
                    // grad_wᵀ (K x O) += col (K x L) · Gᵀ (L x O)
                    gemm(k, g.o, l, &mut gw, 1, k, true, Mat::rows(cols, l), Mat::rows_t(gn, l), Par::Seq);
                }
                if let Some(gx) = gx.as_deref_mut() {
                    let gxn = &mut gx[i * g.in_len()..][..g.in_len()];
                    // col (K x L) = Wᵀ (K x O) · G (O x L), then scattered back onto the input.
                    if g.identity_cols() {
                        gemm(k, p, g.o, gxn, p, 1, false, Mat::rows_t(w, k), Mat::rows(gn, p), Par::Seq);
                    } else {
                        gemm(k, l, g.o, &mut col, l, 1, false, Mat::rows_t(w, k), Mat::rows(gn, l), Par::Seq);
                        g.scatter_cols(&col, gxn, &mut pad);
                    }
                }
            }
            Partial { gw, gb }
        };
        let pieces_n = g.n.div_ceil(per);
        let (gx, partials): (Option<Vec<f32>>, Vec<Partial>) = if need_x {
            let mut gx = vec![0.0f32; g.n * g.in_len()];
            let parts = if g.in_len() == 0 {
                Vec::new()
            } else {
                gx.par_chunks_mut(per * g.in_len())
                    .enumerate()
                    .map(|(ci, c)| run(ci * per, c.len() / g.in_len(), Some(c)))
                    .collect()
            };
            (Some(gx), parts)
        } else {
            let parts = (0..pieces_n).into_par_iter().map(|ci| run(ci * per, per.min(g.n - ci * per), None)).collect();
            (None, parts)
        };
        let sum = |pick: fn(&Partial) -> &Vec<f32>, len: usize| {
            let mut acc = vec![0.0f32; len];
            for part in &partials {
                for (a, v) in acc.iter_mut().zip(pick(part)) {
                    *a += v;
                }
            }
            acc
        };
        let gw = need_w.then(|| sum(|t| &t.gw, g.o * k));
        let gb = need_b.then(|| sum(|t| &t.gb, g.o));
        Ok((gx, gw, gb))
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (need_x, need_w, need_b) = (x.track_op(), w.track_op(), b.is_some_and(Tensor::track_op));
        if !(need_x || need_w || need_b) {
            return Ok((None, None, None));
        }
        let (gx, gw, gb) = with_f32(x, "conv2d", |xs| {
            with_f32(w, "conv2d", |ws| {
                with_f32(res, "conv2d", |ys| {
                    with_f32(grad, "conv2d", |gs| self.backward(xs, ws, ys, gs, need_x, need_w, need_b))
                })
            })
        })?;
        let gx = gx.map(|v| tensor(v, x.shape())).transpose()?;
        let gw = gw.map(|v| tensor(v, w.shape())).transpose()?;
        let gb = match (gb, b) {
            (Some(v), Some(b)) => Some(tensor(v, b.shape())?),
            _ => None,
        };
        Ok((gx, gw, gb))
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "kernels-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = self.forward(f32_slice(s1, l1, "conv2d")?, f32_slice(s2, l2, "conv2d")?, None);
        Ok((CpuStorage::F32(y), self.out_shape()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (gx, gw, _) = self.grads(x, w, None, res, grad)?;
        Ok((gx, gw))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "kernels-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let b = f32_slice(s3, l3, "conv2d")?;
        let y = self.forward(f32_slice(s1, l1, "conv2d")?, f32_slice(s2, l2, "conv2d")?, Some(b));
        Ok((CpuStorage::F32(y), self.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.grads(x, w, Some(b), res, grad)
    }
}

/// A 2-D convolution of `x` (`[N, C, H, W]`) with `w` (`[O, C, KH, KW]`) plus the optional
/// bias `b` (`[O]`), with the same `stride` and zero `padding` on both axes — what candle's
/// `x.conv2d(w, padding, stride, 1, 1)` (then `+ b`) computes, differentiable, in one op.
///
/// CPU f32 only; groups 1, dilation 1.
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    conv2d_block(x, w, b, stride, padding, Activation::None, None)
}

/// [`conv2d`] followed, in the same kernel, by `activation` and a `max_pool`x`max_pool` max-pool
/// with stride `max_pool` (when given): `max_pool2d(act(conv2d(x, w, b)))` with the
/// intermediate maps never materialised as tensors — the block of a LeNet-style network.
///
/// Ties in a pooling window go to the first maximum (PyTorch's rule); the ReLU's gradient at 0
/// is 0 (PyTorch's rule).
pub fn conv2d_block(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    activation: Activation,
    max_pool: Option<usize>,
) -> Result<Tensor> {
    expect_cpu_f32(x, "conv2d input")?;
    expect_cpu_f32(w, "conv2d weight")?;
    let (n, c, h, wd) = x.dims4()?;
    let (o, cw, kh, kw) = w.dims4()?;
    if c != cw {
        bail!("conv2d: the input has {c} channels, the weight expects {cw}");
    }
    if stride == 0 {
        bail!("conv2d: stride must be at least 1");
    }
    if h + 2 * padding < kh || wd + 2 * padding < kw {
        bail!("conv2d: kernel {kh}x{kw} is larger than the {h}x{wd} input padded by {padding}");
    }
    let g = Geom {
        n,
        c,
        h,
        w: wd,
        o,
        kh,
        kw,
        stride,
        pad: padding,
        oh: (h + 2 * padding - kh) / stride + 1,
        ow: (wd + 2 * padding - kw) / stride + 1,
    };
    if let Some(k) = max_pool
        && !(1..=crate::MAX_POOL_WINDOW).contains(&k)
    {
        bail!("conv2d: max-pool window must be in 1..={}, got {k}", crate::MAX_POOL_WINDOW);
    }
    let track = x.track_op() || w.track_op() || b.is_some_and(Tensor::track_op);
    let op = ConvOp { g, relu: activation == Activation::Relu, pool: max_pool, argmax: OnceLock::new(), record: track };
    let (x, w) = (contiguous(x)?, contiguous(w)?);
    match b {
        Some(b) => {
            expect_cpu_f32(b, "conv2d bias")?;
            if b.dims() != [o] {
                bail!("conv2d: bias of shape {:?} for {o} output channels", b.dims());
            }
            let b = contiguous(b)?;
            if track { x.apply_op3(&w, &b, op) } else { x.apply_op3_no_bwd(&w, &b, &op) }
        }
        None => {
            if track {
                x.apply_op2(&w, op)
            } else {
                x.apply_op2_no_bwd(&w, &op)
            }
        }
    }
}
