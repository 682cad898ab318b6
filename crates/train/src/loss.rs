//! Losses, averaged over the batch as PyTorch's `reduction="mean"` does.
//!
//! Unweighted cross-entropy on CPU f32 logits is one fused `kernels` op (log-softmax, pick,
//! mean and label smoothing forward; `(softmax - target) / batch` backward); everything else
//! is candle's tensor ops.

use candle_core::{D, DType, Result, Tensor};

use crate::config::{LossConfig, Penalty};

/// The loss of `outputs` (`[batch, outputs]`) against `targets` (`[batch]`: `u32` class ids for
/// classification, `f32` values for regression).
pub fn loss(config: &LossConfig, outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
    match config {
        LossConfig::CrossEntropy(c)
            if c.class_weights.is_none()
                && outputs.device().is_cpu()
                && outputs.dtype() == DType::F32
                && outputs.rank() == 2 =>
        {
            kernels::softmax_cross_entropy(outputs, targets, c.label_smoothing)
        }
        LossConfig::CrossEntropy(c) => {
            let log_p = candle_nn::ops::log_softmax(outputs, D::Minus1)?;
            let classes = log_p.dim(D::Minus1)?;
            let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
            let eps = c.label_smoothing;
            match &c.class_weights {
                None => {
                    let nll = picked.mean_all()?.neg()?;
                    if eps == 0.0 {
                        return Ok(nll);
                    }
                    // -(1/C) Σ_c log p_c, averaged over the batch.
                    let smooth = log_p.mean_all()?.neg()?;
                    (nll * (1.0 - eps))? + (smooth * eps)?
                }
                Some(w) => {
                    // PyTorch: weighted sums divided by the total weight of the targets.
                    let w: Vec<f32> = w.iter().map(|&v| v as f32).collect();
                    let w = Tensor::from_vec(w, classes, outputs.device())?;
                    let wt = w.index_select(targets, 0)?;
                    let total = wt.sum_all()?;
                    let nll = (picked * &wt)?.sum_all()?.neg()?.div(&total)?;
                    if eps == 0.0 {
                        return Ok(nll);
                    }
                    let smooth =
                        log_p.broadcast_mul(&w)?.sum_all()?.neg()?.div(&total)?.affine(1.0 / classes as f64, 0.0)?;
                    (nll * (1.0 - eps))? + (smooth * eps)?
                }
            }
        }
        LossConfig::BceWithLogits(c) => {
            let z = outputs.flatten_all()?;
            let y = targets.to_dtype(DType::F32)?;
            // log(1 + exp(-|z|)) + max(-z, 0) = -log sigmoid(z), computed stably.
            let log_sig_neg = ((z.abs()?.neg()?.exp()? + 1.0)?.log()? + z.neg()?.relu()?)?;
            let per = match c.pos_weight {
                None => ((&z - (&z * &y)?)? + &log_sig_neg)?,
                // (1 - y) z + (1 + (pw - 1) y) (log(1 + exp(-|z|)) + max(-z, 0))
                Some(pw) => (((&y.neg()? + 1.0)? * &z)? + ((&y * (pw - 1.0))? + 1.0)?.mul(&log_sig_neg)?)?,
            };
            per.mean_all()
        }
        LossConfig::Mse(_) => (outputs.flatten_all()? - targets)?.sqr()?.mean_all(),
        LossConfig::Mae(_) => (outputs.flatten_all()? - targets)?.abs()?.mean_all(),
        LossConfig::Huber(h) => {
            let d = (outputs.flatten_all()? - targets)?.abs()?;
            let delta = h.delta;
            // 0.5 d² where d < δ, δ (d - δ/2) elsewhere.
            let quadratic = (d.sqr()? * 0.5)?;
            let linear = ((&d - delta / 2.0)? * delta)?;
            d.lt(delta)?.where_cond(&quadratic, &linear)?.mean_all()
        }
    }
}

/// `l1 · Σ|w| + l2 · Σw²` over `weights`, or `None` when both coefficients are 0.
pub fn penalty(config: &Penalty, weights: &[Tensor]) -> Result<Option<Tensor>> {
    if (config.l1 == 0.0 && config.l2 == 0.0) || weights.is_empty() {
        return Ok(None);
    }
    let mut total: Option<Tensor> = None;
    for w in weights {
        let mut term = None;
        if config.l1 != 0.0 {
            term = Some((w.abs()?.sum_all()? * config.l1)?);
        }
        if config.l2 != 0.0 {
            let l2 = (w.sqr()?.sum_all()? * config.l2)?;
            term = Some(match term {
                Some(t) => (t + l2)?,
                None => l2,
            });
        }
        if let Some(t) = term {
            total = Some(match total {
                Some(acc) => (acc + t)?,
                None => t,
            });
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::config::{BceConfig, CrossEntropyConfig, HuberConfig, NoOptions};

    fn close(t: Tensor, want: f32, what: &str) {
        let got = t.to_scalar::<f32>().unwrap();
        assert!((got - want).abs() < 1e-6, "{what}: {got} vs {want}");
    }

    /// PyTorch 2.15:
    /// ```python
    /// logits = torch.tensor([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0], [0.3, 0.2, -0.4], [2.0, -2.0, 0.0]])
    /// t = torch.tensor([1, 0, 2, 0]); cw = torch.tensor([0.5, 2.0, 1.5])
    /// F.cross_entropy(logits, t)                                        # 1.288534164428711
    /// F.cross_entropy(logits, t, weight=cw)                             # 1.0777074098587036
    /// F.cross_entropy(logits, t, weight=cw, label_smoothing=0.2)        # 1.3164851665496826
    /// F.cross_entropy(logits, t, label_smoothing=0.2)                   # 1.3785343170166016
    /// ```
    #[test]
    fn cross_entropy_matches_pytorch() {
        let dev = Device::Cpu;
        let logits =
            Tensor::new(&[[1.0f32, 2.0, 0.5], [0.1, -1.0, 3.0], [0.3, 0.2, -0.4], [2.0, -2.0, 0.0]], &dev).unwrap();
        let t = Tensor::new(&[1u32, 0, 2, 0], &dev).unwrap();
        let ce = |label_smoothing, class_weights| {
            LossConfig::CrossEntropy(CrossEntropyConfig { label_smoothing, class_weights })
        };
        let cw = Some(vec![0.5, 2.0, 1.5]);
        close(loss(&ce(0.0, None), &logits, &t).unwrap(), 1.288534164428711, "ce");
        close(loss(&ce(0.0, cw.clone()), &logits, &t).unwrap(), 1.0777074098587036, "weighted");
        close(loss(&ce(0.2, cw), &logits, &t).unwrap(), 1.3164851665496826, "weighted, smoothed");
        close(loss(&ce(0.2, None), &logits, &t).unwrap(), 1.3785343170166016, "smoothed");
    }

    /// PyTorch 2.15:
    /// ```python
    /// z = torch.tensor([0.8, -1.5, 2.2, 0.0, -0.3]); y = torch.tensor([1., 0., 1., 1., 0.])
    /// F.binary_cross_entropy_with_logits(z, y)                               # 0.3850199580192566
    /// F.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(3.0)) # 0.8527523875236511
    /// pred = torch.tensor([0.5, -1.0, 2.5, 3.0, 0.1]); tgt = torch.tensor([1.0, -0.2, 0.0, 3.3, -1.5])
    /// F.mse_loss(pred, tgt)               # 1.9580001831054688
    /// F.l1_loss(pred, tgt)                # 1.1399999856948853
    /// F.huber_loss(pred, tgt, delta=1.0)  # 0.718000054359436
    /// F.huber_loss(pred, tgt, delta=0.5)  # 0.4490000307559967
    /// ```
    #[test]
    fn binary_and_regression_losses_match_pytorch() {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[0.8f32], [-1.5], [2.2], [0.0], [-0.3]], &dev).unwrap();
        let y = Tensor::new(&[1u32, 0, 1, 1, 0], &dev).unwrap();
        close(
            loss(&LossConfig::BceWithLogits(BceConfig { pos_weight: None }), &z, &y).unwrap(),
            0.3850199580192566,
            "bce",
        );
        close(
            loss(&LossConfig::BceWithLogits(BceConfig { pos_weight: Some(3.0) }), &z, &y).unwrap(),
            0.8527523875236511,
            "bce pos_weight",
        );
        let pred = Tensor::new(&[[0.5f32], [-1.0], [2.5], [3.0], [0.1]], &dev).unwrap();
        let tgt = Tensor::new(&[1.0f32, -0.2, 0.0, 3.3, -1.5], &dev).unwrap();
        close(loss(&LossConfig::Mse(NoOptions {}), &pred, &tgt).unwrap(), 1.9580001831054688, "mse");
        close(loss(&LossConfig::Mae(NoOptions {}), &pred, &tgt).unwrap(), 1.1399999856948853, "mae");
        close(loss(&LossConfig::Huber(HuberConfig { delta: 1.0 }), &pred, &tgt).unwrap(), 0.718000054359436, "huber 1");
        close(
            loss(&LossConfig::Huber(HuberConfig { delta: 0.5 }), &pred, &tgt).unwrap(),
            0.4490000307559967,
            "huber .5",
        );
    }

    #[test]
    fn penalties_sum_over_weights() {
        let dev = Device::Cpu;
        let w = [Tensor::new(&[1.0f32, -2.0], &dev).unwrap(), Tensor::new(&[[0.5f32, 0.0]], &dev).unwrap()];
        assert!(penalty(&Penalty::default(), &w).unwrap().is_none());
        // l1: 0.1 · (1 + 2 + 0.5) = 0.35; l2: 0.01 · (1 + 4 + 0.25) = 0.0525
        close(penalty(&Penalty { l1: 0.1, l2: 0.01 }, &w).unwrap().unwrap(), 0.4025, "l1 + l2");
    }
}
