//! Max-pooling with a square `k x k` window and stride `k` (NCHW, f32). The forward records the
//! window-local index of each maximum (one byte per output), so the backward is a single
//! scatter instead of candle's compare-upsample-average chain.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::util::{PAR_WORK, contiguous, expect_cpu_f32, f32_slice, tensor, with_f32};

/// Pools one `h x w` plane (rows `stride` apart in `src`) into `(h / k) x (w / k)` outputs (rows and columns past the last
/// whole window are dropped), writing each window's argmax (`dy · k + dx`, first maximum wins,
/// NaN propagates as in PyTorch) to `idx` when given, and clamping outputs at 0 when `relu`.
#[allow(clippy::too_many_arguments, reason = "a strided plane, its window, and the optional outputs")]
pub(crate) fn pool_plane(
    src: &[f32],
    stride: usize,
    h: usize,
    w: usize,
    k: usize,
    dst: &mut [f32],
    idx: Option<&mut [u8]>,
    relu: bool,
) {
    let (ph, pw) = (h / k, w / k);
    let clamp = |v: f32| if relu && v < 0.0 { 0.0 } else { v };
    // A later element wins when it is greater or NaN: the first maximum, NaN propagating.
    let wins = |v: f32, best: f32| v > best || v.is_nan();
    match idx {
        // The 2x2 window of LeNet-style networks, unrolled.
        Some(idx) if k == 2 => {
            for py in 0..ph {
                let r0 = &src[2 * py * stride..][..2 * pw];
                let r1 = &src[(2 * py + 1) * stride..][..2 * pw];
                let out = &mut dst[py * pw..][..pw];
                let ids = &mut idx[py * pw..][..pw];
                for (((o, id), a), b) in out.iter_mut().zip(ids).zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    let (mut best, mut at) = (a[0], 0u8);
                    if wins(a[1], best) {
                        (best, at) = (a[1], 1);
                    }
                    if wins(b[0], best) {
                        (best, at) = (b[0], 2);
                    }
                    if wins(b[1], best) {
                        (best, at) = (b[1], 3);
                    }
                    *o = clamp(best);
                    *id = at;
                }
            }
        }
        None if k == 2 => {
            for py in 0..ph {
                let r0 = &src[2 * py * stride..][..2 * pw];
                let r1 = &src[(2 * py + 1) * stride..][..2 * pw];
                let out = &mut dst[py * pw..][..pw];
                for ((o, a), b) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    let mut best = a[0];
                    for v in [a[1], b[0], b[1]] {
                        if wins(v, best) {
                            best = v;
                        }
                    }
                    *o = clamp(best);
                }
            }
        }
        mut idx => {
            for py in 0..ph {
                for px in 0..pw {
                    let mut best = f32::NEG_INFINITY;
                    let mut at = 0usize;
                    for dy in 0..k {
                        let row = &src[(py * k + dy) * stride + px * k..][..k];
                        for (dx, &v) in row.iter().enumerate() {
                            if (dy == 0 && dx == 0) || wins(v, best) {
                                best = v;
                                at = dy * k + dx;
                            }
                        }
                    }
                    let j = py * pw + px;
                    dst[j] = clamp(best);
                    if let Some(idx) = idx.as_deref_mut() {
                        // k ≤ MAX_POOL_WINDOW = 16, so a window-local index fits in a byte.
                        idx[j] = at as u8;
                    }
                }
            }
        }
    }
}

/// The adjoint of [`pool_plane`]: writes the `h x w` gradient `gpre` (rows `stride` apart; zero but at each recorded
/// argmax, which receives its output's gradient — unless the fused ReLU clamped that output, as
/// `y` tells, then it is 0 too).
#[allow(clippy::too_many_arguments, reason = "a strided plane, its window, and the optional mask")]
pub(crate) fn pool_backward_plane(
    gy: &[f32],
    idx: &[u8],
    y: Option<&[f32]>,
    h: usize,
    w: usize,
    k: usize,
    gpre: &mut [f32],
    stride: usize,
) {
    let (ph, pw) = (h / k, w / k);
    gpre.fill(0.0);
    for py in 0..ph {
        for px in 0..pw {
            let j = py * pw + px;
            if y.is_some_and(|y| y[j] <= 0.0) {
                continue;
            }
            let at = usize::from(idx[j]);
            gpre[(py * k + at / k) * stride + px * k + at % k] = gy[j];
        }
    }
}

struct MaxPoolOp {
    k: usize,
    dims: (usize, usize, usize, usize),
    argmax: OnceLock<Vec<u8>>,
    record: bool,
}

impl MaxPoolOp {
    fn planes(&self) -> (usize, usize, usize) {
        let (n, c, h, w) = self.dims;
        (n * c, h * w, (h / self.k) * (w / self.k))
    }
}

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "kernels-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "max_pool2d")?;
        let (n, c, h, w) = self.dims;
        let (planes, in_len, out_len) = self.planes();
        let mut y = vec![0.0f32; planes * out_len];
        let mut idx = vec![0u8; if self.record { planes * out_len } else { 0 }];
        if out_len > 0 {
            let per = if planes * in_len < PAR_WORK { planes.max(1) } else { planes.div_ceil(16).max(1) };
            if self.record {
                y.par_chunks_mut(per * out_len).zip(idx.par_chunks_mut(per * out_len)).enumerate().for_each(
                    |(ci, (yc, ic))| {
                        for (i, (yp, ip)) in yc.chunks_exact_mut(out_len).zip(ic.chunks_exact_mut(out_len)).enumerate()
                        {
                            let src = &x[(ci * per + i) * in_len..][..in_len];
                            pool_plane(src, w, h, w, self.k, yp, Some(ip), false);
                        }
                    },
                );
            } else {
                y.par_chunks_mut(per * out_len).enumerate().for_each(|(ci, yc)| {
                    for (i, yp) in yc.chunks_exact_mut(out_len).enumerate() {
                        let src = &x[(ci * per + i) * in_len..][..in_len];
                        pool_plane(src, w, h, w, self.k, yp, None, false);
                    }
                });
            }
        }
        if self.record {
            let _ = self.argmax.set(idx);
        }
        Ok((CpuStorage::F32(y), Shape::from((n, c, h / self.k, w / self.k))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !arg.track_op() {
            return Ok(None);
        }
        let Some(idx) = self.argmax.get() else { bail!("max_pool2d backward: the forward did not record its indices") };
        let (_, _, h, w) = self.dims;
        let (planes, in_len, out_len) = self.planes();
        let gx = with_f32(grad, "max_pool2d", |gy| {
            let mut gx = vec![0.0f32; planes * in_len];
            if out_len > 0 && in_len > 0 {
                let per = if planes * in_len < PAR_WORK { planes.max(1) } else { planes.div_ceil(16).max(1) };
                gx.par_chunks_mut(per * in_len).enumerate().for_each(|(ci, gc)| {
                    for (i, gp) in gc.chunks_exact_mut(in_len).enumerate() {
                        let pl = ci * per + i;
                        let r = pl * out_len..(pl + 1) * out_len;
                        pool_backward_plane(&gy[r.clone()], &idx[r], None, h, w, self.k, gp, w);
                    }
                });
            }
            Ok(gx)
        })?;
        Ok(Some(tensor(gx, arg.shape())?))
    }
}

/// Max-pooling of `x` (`[N, C, H, W]`) over `k x k` windows with stride `k` — what candle's
/// `x.max_pool2d(k)` computes (trailing rows and columns that do not fill a window are
/// dropped), with a backward that scatters each gradient to its window's recorded argmax.
///
/// CPU f32 only; `k` in `1..=16`.
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    expect_cpu_f32(x, "max_pool2d input")?;
    if !(1..=crate::MAX_POOL_WINDOW).contains(&k) {
        bail!("max_pool2d: window must be in 1..={}, got {k}", crate::MAX_POOL_WINDOW);
    }
    let dims = x.dims4()?;
    if dims.2 < k || dims.3 < k {
        bail!("max_pool2d: window {k} is larger than the {}x{} input", dims.2, dims.3);
    }
    let record = x.track_op();
    let op = MaxPoolOp { k, dims, argmax: OnceLock::new(), record };
    let x = contiguous(x)?;
    if record { x.apply_op1(op) } else { x.apply_op1_no_bwd(&op) }
}
