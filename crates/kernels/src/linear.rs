//! The fully connected layer `y = act(x · wᵀ + b)` as one candle op: the bias is the
//! multiply's starting value and the ReLU runs on each block of rows while it is in cache;
//! the backward masks the output gradient once and hands every transposed operand to the
//! multiply as strides (no transposed copies), computing `grad_w` and `grad_x` side by side on
//! the pool's threads.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::Activation;
use crate::gemm::{Mat, Par, gemm};
use crate::util::{PAR_WORK, contiguous, expect_cpu_f32, f32_slice, tensor, with_f32};

struct LinearOp {
    relu: bool,
    /// Rows (all leading dimensions of `x` together), input and output features.
    rows: usize,
    inp: usize,
    out: usize,
    out_shape: Shape,
}

/// Rows per block of the forward: one block per thread for large products, one block in all
/// for small ones.
fn row_blocks(rows: usize, work: usize) -> usize {
    let t = rayon::current_num_threads();
    if t <= 1 || work < 8 * PAR_WORK || rows < 2 * 8 { rows.max(1) } else { rows.div_ceil(t).max(1) }
}

impl LinearOp {
    fn forward(&self, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
        let (inp, out) = (self.inp, self.out);
        // With a bias, the output starts as the bias repeated (the multiply adds onto it).
        let mut y = match b {
            Some(b) => {
                let mut y = Vec::with_capacity(self.rows * out);
                for _ in 0..self.rows {
                    y.extend_from_slice(b);
                }
                y
            }
            None => vec![0.0f32; self.rows * out],
        };
        if y.is_empty() {
            return y;
        }
        let per = row_blocks(self.rows, self.rows * inp * out);
        y.par_chunks_mut(per * out).enumerate().for_each(|(ci, yc)| {
            let m = yc.len() / out;
            let xs = &x[ci * per * inp..][..m * inp];
            gemm(m, out, inp, yc, out, 1, b.is_some(), Mat::rows(xs, inp), Mat::rows_t(w, inp), Par::Seq);
            if self.relu {
                // A select rather than a conditional store, so the loop vectorizes; NaN stays NaN.
                for v in yc.iter_mut() {
                    *v = if *v < 0.0 { 0.0 } else { *v };
                }
            }
        });
        y
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let (need_x, need_w, need_b) = (x.track_op(), w.track_op(), b.is_some_and(Tensor::track_op));
        if !(need_x || need_w || need_b) {
            return Ok([None, None, None]);
        }
        let (rows, inp, out) = (self.rows, self.inp, self.out);
        let (gx, gw, gb) = with_f32(grad, "linear", |g| {
            let masked;
            let g: &[f32] = if self.relu {
                masked = with_f32(res, "linear", |y| {
                    Ok(g.iter().zip(y).map(|(&gv, &yv)| if yv > 0.0 { gv } else { 0.0 }).collect::<Vec<f32>>())
                })?;
                &masked
            } else {
                g
            };
            let gb = need_b.then(|| {
                let mut acc = vec![0.0f32; out];
                for row in g.chunks_exact(out) {
                    for (a, v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                acc
            });
            with_f32(x, "linear", |xs| {
                with_f32(w, "linear", |ws| {
                    // grad_w (out x in) = Gᵀ (out x rows) · x (rows x in)
                    let grad_w = |par| {
                        let mut gw = vec![0.0f32; out * inp];
                        gemm(out, inp, rows, &mut gw, inp, 1, false, Mat::rows_t(g, out), Mat::rows(xs, inp), par);
                        gw
                    };
                    // grad_x (rows x in) = G (rows x out) · w (out x in)
                    let grad_x = |par| {
                        let mut gx = vec![0.0f32; rows * inp];
                        gemm(rows, inp, out, &mut gx, inp, 1, false, Mat::rows(g, out), Mat::rows(ws, inp), par);
                        gx
                    };
                    let big = rows * inp * out >= 8 * PAR_WORK;
                    let par = if big { Par::Rayon } else { Par::Seq };
                    Ok(match (need_x, need_w) {
                        (true, true) if big && rayon::current_num_threads() > 1 => {
                            let (gx, gw) = rayon::join(|| grad_x(Par::Seq), || grad_w(Par::Seq));
                            (Some(gx), Some(gw), gb)
                        }
                        (true, true) => (Some(grad_x(par)), Some(grad_w(par)), gb),
                        (true, false) => (Some(grad_x(par)), None, gb),
                        (false, true) => (None, Some(grad_w(par)), gb),
                        (false, false) => (None, None, gb),
                    })
                })
            })
        })?;
        let gx = gx.map(|v| tensor(v, x.shape())).transpose()?;
        let gw = gw.map(|v| tensor(v, w.shape())).transpose()?;
        let gb = match (gb, b) {
            (Some(v), Some(b)) => Some(tensor(v, b.shape())?),
            _ => None,
        };
        Ok([gx, gw, gb])
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "kernels-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = self.forward(f32_slice(s1, l1, "linear")?, f32_slice(s2, l2, "linear")?, None);
        Ok((CpuStorage::F32(y), self.out_shape.clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [gx, gw, _] = self.grads(x, w, None, res, grad)?;
        Ok((gx, gw))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "kernels-linear"
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
        let b = f32_slice(s3, l3, "linear")?;
        let y = self.forward(f32_slice(s1, l1, "linear")?, f32_slice(s2, l2, "linear")?, Some(b));
        Ok((CpuStorage::F32(y), self.out_shape.clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [gx, gw, gb] = self.grads(x, w, Some(b), res, grad)?;
        Ok((gx, gw, gb))
    }
}

/// The fully connected layer `activation(x · wᵀ + b)` in one op: `x` is `[.., in]` (leading
/// dimensions are rows), `w` is `[out, in]` (PyTorch's layout, as `candle_nn::Linear` holds it),
/// `b` is `[out]`; the result is `[.., out]`. Equal to candle's
/// `x.matmul(&w.t())?.broadcast_add(&b)?.relu()?`, forward and backward.
///
/// CPU f32 only.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, activation: Activation) -> Result<Tensor> {
    expect_cpu_f32(x, "linear input")?;
    expect_cpu_f32(w, "linear weight")?;
    let (out, inp) = w.dims2()?;
    let Some((&last, lead)) = x.dims().split_last() else {
        bail!("linear: the input must have at least one dimension")
    };
    if last != inp {
        bail!("linear: the input has {last} features, the weight expects {inp}");
    }
    let rows = lead.iter().product();
    let mut out_dims = lead.to_vec();
    out_dims.push(out);
    let op = LinearOp { relu: activation == Activation::Relu, rows, inp, out, out_shape: Shape::from(out_dims) };
    let track = x.track_op() || w.track_op() || b.is_some_and(Tensor::track_op);
    let (x, w) = (contiguous(x)?, contiguous(w)?);
    match b {
        Some(b) => {
            expect_cpu_f32(b, "linear bias")?;
            if b.dims() != [out] {
                bail!("linear: bias of shape {:?} for {out} outputs", b.dims());
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
