//! Softmax cross-entropy with label smoothing, fused: the forward is one pass per row
//! (max, log-sum-exp, the target's and the mean log-probability), the backward writes
//! `(softmax - smoothed one-hot) / batch` directly.

use candle_core::backend::BackendStorage as _;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor, bail};

use crate::util::{contiguous, expect_cpu_f32, f32_slice, tensor, with_f32};

struct CrossEntropyOp {
    rows: usize,
    classes: usize,
    smoothing: f64,
}

fn u32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [u32]> {
    let CpuStorage::U32(v) = s else { bail!("softmax_cross_entropy: targets must be u32, got {:?}", s.dtype()) };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("softmax_cross_entropy: targets must be contiguous"),
    }
}

/// Per row: the log-sum-exp of the logits (`max + ln Σ exp(z - max)`).
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
    max + sum.ln()
}

impl CrossEntropyOp {
    fn check_targets(&self, t: &[u32]) -> Result<()> {
        if let Some(&bad) = t.iter().find(|&&v| v as usize >= self.classes) {
            bail!("softmax_cross_entropy: target class {bad} out of range for {} classes", self.classes);
        }
        Ok(())
    }

    fn forward(&self, z: &[f32], t: &[u32]) -> Result<f32> {
        self.check_targets(t)?;
        let (c, eps) = (self.classes, self.smoothing);
        let mut nll = 0.0f64;
        let mut smooth = 0.0f64;
        for (row, &ti) in z.chunks_exact(c).zip(t) {
            let lse = log_sum_exp(row);
            nll += f64::from(lse - row[ti as usize]);
            if eps != 0.0 {
                let mean: f64 = row.iter().map(|&v| f64::from(v)).sum::<f64>() / c as f64;
                smooth += f64::from(lse) - mean;
            }
        }
        let n = self.rows as f64;
        Ok(((1.0 - eps) * nll / n + eps * smooth / n) as f32)
    }

    fn backward(&self, z: &[f32], t: &[u32], upstream: f32) -> Vec<f32> {
        let c = self.classes;
        let scale = upstream / self.rows as f32;
        let off = (self.smoothing / c as f64) as f32;
        let on = (1.0 - self.smoothing) as f32;
        let mut g = vec![0.0f32; z.len()];
        for ((row, grow), &ti) in z.chunks_exact(c).zip(g.chunks_exact_mut(c)).zip(t) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for (gv, &zv) in grow.iter_mut().zip(row) {
                *gv = (zv - max).exp();
                sum += *gv;
            }
            let inv = 1.0 / sum;
            for gv in grow.iter_mut() {
                *gv = (*gv * inv - off) * scale;
            }
            grow[ti as usize] -= on * scale;
        }
        g
    }
}

impl CustomOp2 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "kernels-softmax-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let loss = self.forward(f32_slice(s1, l1, "softmax_cross_entropy")?, u32_slice(s2, l2)?)?;
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(&self, z: &Tensor, t: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !z.track_op() {
            return Ok((None, None));
        }
        let upstream = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let (ts, tl) = t.storage_and_layout();
        let Storage::Cpu(ts) = &*ts else { bail!("softmax_cross_entropy: only CPU tensors are supported") };
        let t = u32_slice(ts, tl)?;
        let g = with_f32(z, "softmax_cross_entropy", |zs| Ok(self.backward(zs, t, upstream)))?;
        Ok((Some(tensor(g, z.shape())?), None))
    }
}

/// The mean cross-entropy of `logits` (`[batch, classes]`) against class ids `targets`
/// (`[batch]`, u32) with label smoothing `label_smoothing` in `[0, 1)`: PyTorch's
/// `F.cross_entropy(logits, targets, label_smoothing=ε)`, i.e.
/// `(1 - ε) · mean(-log p[target]) + ε · mean(-(1/C) Σ_c log p[c])` — a scalar tensor, whose
/// gradient with respect to `logits` is `(softmax - ((1 - ε)·onehot + ε/C)) / batch`.
///
/// CPU only; `logits` f32.
pub fn softmax_cross_entropy(logits: &Tensor, targets: &Tensor, label_smoothing: f64) -> Result<Tensor> {
    expect_cpu_f32(logits, "softmax_cross_entropy logits")?;
    let (rows, classes) = logits.dims2()?;
    if targets.dims() != [rows] {
        bail!("softmax_cross_entropy: {} rows of logits but targets of shape {:?}", rows, targets.dims());
    }
    if !(0.0..1.0).contains(&label_smoothing) {
        bail!("softmax_cross_entropy: label smoothing must be in [0, 1), got {label_smoothing}");
    }
    if rows == 0 || classes == 0 {
        bail!("softmax_cross_entropy: empty logits {:?}", logits.dims());
    }
    let targets = if targets.dtype() == DType::U32 { contiguous(targets)? } else { targets.to_dtype(DType::U32)? };
    let op = CrossEntropyOp { rows, classes, smoothing: label_smoothing };
    let logits = contiguous(logits)?;
    if logits.track_op() { logits.apply_op2(&targets, op) } else { logits.apply_op2_no_bwd(&targets, &op) }
}
