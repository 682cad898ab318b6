//! Every fused kernel against the unfused candle computation it replaces, forward and
//! gradients, on random shapes including odd sizes and sizes large enough to take the
//! multi-threaded paths. Tolerance: `|got - want| ≤ 1e-5 · (1 + |want|)` element-wise.
#![allow(clippy::unwrap_used, reason = "test helpers: a failure is a test failure")]

use candle_core::{D, DType, Device, Result, Tensor, Var};
use kernels::{Activation, AdamStep, SgdStep};
use pipeline_core::rng;
use rand::Rng as _;

const TOL: f32 = 1e-5;

fn uniform(r: &mut pipeline_core::Rng, shape: &[usize], scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (r.random::<f32>() * 2.0 - 1.0) * scale).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn var(r: &mut pipeline_core::Rng, shape: &[usize], scale: f32) -> Var {
    Var::from_tensor(&uniform(r, shape, scale)).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes differ");
    let (g, w) = (flat(got), flat(want));
    let mut worst = (0.0f32, 0usize);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let err = (a - b).abs() / (1.0 + b.abs());
        assert!(!err.is_nan(), "{what}: NaN at {i} ({a} vs {b})");
        if err > worst.0 {
            worst = (err, i);
        }
    }
    assert!(worst.0 <= TOL, "{what}: element {} is {} vs {} (error {:e})", worst.1, g[worst.1], w[worst.1], worst.0);
}

/// The gradients of `Σ out · weights` with respect to each of `vars` (`None` where absent).
fn grads(out: &Tensor, weights: &Tensor, vars: &[&Var]) -> Vec<Option<Tensor>> {
    let store = (out * weights).unwrap().sum_all().unwrap().backward().unwrap();
    vars.iter().map(|v| store.get(v.as_tensor()).cloned()).collect()
}

fn compare_grads(got: &[Option<Tensor>], want: &[Option<Tensor>], names: &[&str], case: &str) {
    for ((g, w), name) in got.iter().zip(want).zip(names) {
        match (g, w) {
            (Some(g), Some(w)) => assert_close(g, w, &format!("{case}: grad {name}")),
            (None, None) => {}
            _ => panic!("{case}: grad {name} present in one computation only"),
        }
    }
}

fn reference_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    let w_t = w.t()?;
    let mut y = match x.rank() {
        2 => x.matmul(&w_t)?,
        _ => x.broadcast_matmul(&w_t)?,
    };
    if let Some(b) = b {
        y = y.broadcast_add(b)?;
    }
    match act {
        Activation::Relu => y.relu(),
        Activation::None => Ok(y),
    }
}

#[test]
fn linear_matches_matmul_bias_relu() {
    let mut r = rng(1, "linear");
    // (leading dims, in, out): odd sizes, a single row, a single feature, and products large
    // enough for the threaded forward and backward.
    let cases: &[(&[usize], usize, usize)] = &[
        (&[1], 1, 1),
        (&[7], 5, 3),
        (&[33], 13, 17),
        (&[2, 3], 9, 4),
        (&[129], 31, 10),
        (&[130], 785, 129),
        (&[257], 97, 65),
    ];
    for &(lead, inp, out) in cases {
        for act in [Activation::None, Activation::Relu] {
            for bias in [true, false] {
                for x_tracks in [true, false] {
                    let case = format!("linear {lead:?}x{inp}->{out} {act:?} bias={bias} x_tracks={x_tracks}");
                    let mut xs = lead.to_vec();
                    xs.push(inp);
                    let x = var(&mut r, &xs, 1.0);
                    let w = var(&mut r, &[out, inp], 1.0 / (inp as f32).sqrt());
                    let b = var(&mut r, &[out], 0.5);
                    let xt = if x_tracks { x.as_tensor().clone() } else { x.as_tensor().detach() };
                    let bt = bias.then(|| b.as_tensor());
                    let got = kernels::linear(&xt, w.as_tensor(), bt, act).unwrap();
                    let want = reference_linear(&xt, w.as_tensor(), bt, act).unwrap();
                    assert_close(&got, &want, &case);
                    let mut ys = lead.to_vec();
                    ys.push(out);
                    let weights = uniform(&mut r, &ys, 1.0);
                    let vars = [&x, &w, &b];
                    compare_grads(
                        &grads(&got, &weights, &vars),
                        &grads(&want, &weights, &vars),
                        &["x", "w", "b"],
                        &case,
                    );
                    // Without gradient tracking: the same values, no graph.
                    let plain = kernels::linear(&xt.detach(), &w.as_tensor().detach(), None, act).unwrap();
                    let plain_ref = reference_linear(&xt.detach(), &w.as_tensor().detach(), None, act).unwrap();
                    assert_close(&plain, &plain_ref, &format!("{case} (no grad)"));
                }
            }
        }
    }
}

#[test]
fn linear_rejects_bad_shapes_and_dtypes() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((4, 3), DType::F32, &dev).unwrap();
    let w = Tensor::zeros((2, 5), DType::F32, &dev).unwrap();
    let e = kernels::linear(&x, &w, None, Activation::None).unwrap_err().to_string();
    assert!(e.contains("3 features") && e.contains("expects 5"), "{e}");
    let w = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
    let b = Tensor::zeros(3, DType::F32, &dev).unwrap();
    let e = kernels::linear(&x, &w, Some(&b), Activation::None).unwrap_err().to_string();
    assert!(e.contains("bias"), "{e}");
    let e = kernels::linear(&x.to_dtype(DType::F64).unwrap(), &w, None, Activation::None).unwrap_err().to_string();
    assert!(e.contains("f32"), "{e}");
}

struct ConvCase {
    n: usize,
    c: usize,
    hw: (usize, usize),
    o: usize,
    k: (usize, usize),
    stride: usize,
    pad: usize,
    pool: Option<usize>,
}

fn reference_conv(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
    act: Activation,
    pool: Option<usize>,
) -> Result<Tensor> {
    // candle's conv2d backward returns an input gradient a few columns short when the strided
    // windows leave input rows or columns unread ((size + 2·pad - kernel) % stride ≠ 0); the
    // reference pads explicitly and drops those, which changes neither the output nor the
    // gradient of what is read.
    let (_, _, kh, kw) = w.dims4()?;
    let fit = |x: Tensor, dim: usize, k: usize| -> Result<Tensor> {
        let size = x.dim(dim)?;
        let target = size + 2 * pad - (size + 2 * pad - k) % stride;
        let x = x.pad_with_zeros(dim, pad, 0)?;
        if target >= size + pad { x.pad_with_zeros(dim, 0, target - size - pad) } else { x.narrow(dim, 0, target) }
    };
    let x = fit(fit(x.clone(), 2, kh)?, 3, kw)?;
    let mut y = x.conv2d(w, 0, stride, 1, 1)?;
    if let Some(b) = b {
        y = y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?;
    }
    if act == Activation::Relu {
        y = y.relu()?;
    }
    match pool {
        Some(k) => reference_max_pool(&y, k),
        None => Ok(y),
    }
}

/// Max-pooling as reshapes and two `max` reductions, whose backward sends each gradient to
/// its window's maximum (PyTorch's rule). candle's own `max_pool2d` forward agrees, but its
/// backward multiplies the gradient by the fraction of the window holding the maximum (1/k²)
/// instead of dividing by their number, so it cannot serve as the gradient reference.
fn reference_max_pool(x: &Tensor, k: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (ph, pw) = (h / k, w / k);
    x.narrow(2, 0, ph * k)?.narrow(3, 0, pw * k)?.reshape((n, c, ph, k, pw, k))?.max(5)?.max(3)
}

#[test]
fn conv2d_block_matches_conv_bias_relu_pool() {
    let mut r = rng(2, "conv");
    let cases = [
        // LeNet-5's two layers (28x28 input, with and without padding), small batch.
        ConvCase { n: 3, c: 1, hw: (28, 28), o: 6, k: (5, 5), stride: 1, pad: 2, pool: Some(2) },
        ConvCase { n: 3, c: 6, hw: (14, 14), o: 16, k: (5, 5), stride: 1, pad: 0, pool: Some(2) },
        // Odd sizes: non-square images and kernels, strides, padding, odd pooled maps.
        ConvCase { n: 1, c: 1, hw: (1, 1), o: 1, k: (1, 1), stride: 1, pad: 0, pool: None },
        ConvCase { n: 2, c: 3, hw: (7, 9), o: 5, k: (3, 2), stride: 1, pad: 1, pool: Some(2) },
        ConvCase { n: 5, c: 2, hw: (11, 10), o: 3, k: (3, 3), stride: 2, pad: 1, pool: None },
        ConvCase { n: 3, c: 4, hw: (9, 9), o: 7, k: (1, 1), stride: 1, pad: 0, pool: Some(3) },
        ConvCase { n: 2, c: 2, hw: (13, 8), o: 4, k: (5, 3), stride: 3, pad: 2, pool: None },
        ConvCase { n: 4, c: 3, hw: (10, 12), o: 2, k: (4, 4), stride: 1, pad: 0, pool: Some(3) },
        // Large enough for the threaded paths.
        ConvCase { n: 17, c: 3, hw: (12, 12), o: 8, k: (3, 3), stride: 1, pad: 1, pool: Some(2) },
    ];
    for cc in &cases {
        for act in [Activation::None, Activation::Relu] {
            for bias in [true, false] {
                for x_tracks in [true, false] {
                    let case = format!(
                        "conv n{} c{} {:?} o{} k{:?} s{} p{} pool {:?} {act:?} bias={bias} x_tracks={x_tracks}",
                        cc.n, cc.c, cc.hw, cc.o, cc.k, cc.stride, cc.pad, cc.pool
                    );
                    let x = var(&mut r, &[cc.n, cc.c, cc.hw.0, cc.hw.1], 1.0);
                    let fan_in = (cc.c * cc.k.0 * cc.k.1) as f32;
                    let w = var(&mut r, &[cc.o, cc.c, cc.k.0, cc.k.1], 1.0 / fan_in.sqrt());
                    let b = var(&mut r, &[cc.o], 0.3);
                    let xt = if x_tracks { x.as_tensor().clone() } else { x.as_tensor().detach() };
                    let bt = bias.then(|| b.as_tensor());
                    let got = kernels::conv2d_block(&xt, w.as_tensor(), bt, cc.stride, cc.pad, act, cc.pool).unwrap();
                    let want = reference_conv(&xt, w.as_tensor(), bt, cc.stride, cc.pad, act, cc.pool).unwrap();
                    assert_close(&got, &want, &case);
                    let weights = uniform(&mut r, got.dims(), 1.0);
                    let vars = [&x, &w, &b];
                    compare_grads(
                        &grads(&got, &weights, &vars),
                        &grads(&want, &weights, &vars),
                        &["x", "w", "b"],
                        &case,
                    );
                    if act == Activation::None && cc.pool.is_none() && bias {
                        let plain = kernels::conv2d(&xt, w.as_tensor(), bt, cc.stride, cc.pad).unwrap();
                        assert_close(&plain, &want, &format!("{case} (conv2d)"));
                    }
                }
            }
        }
    }
}

#[test]
fn conv2d_rejects_mismatched_channels_and_oversized_kernels() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 2, 5, 5), DType::F32, &dev).unwrap();
    let w = Tensor::zeros((3, 1, 3, 3), DType::F32, &dev).unwrap();
    let e = kernels::conv2d(&x, &w, None, 1, 0).unwrap_err().to_string();
    assert!(e.contains("2 channels"), "{e}");
    let w = Tensor::zeros((3, 2, 7, 7), DType::F32, &dev).unwrap();
    let e = kernels::conv2d(&x, &w, None, 1, 0).unwrap_err().to_string();
    assert!(e.contains("larger than"), "{e}");
    let e = kernels::conv2d(&x, &w, None, 0, 1).unwrap_err().to_string();
    assert!(e.contains("stride"), "{e}");
}

/// PyTorch 2.15: `x = torch.tensor([[[[1., 4.], [3., 2.]]]], requires_grad=True)`,
/// `(F.max_pool2d(x, 2) * 0.5).sum().backward()`; `x.grad` is `[[[[0., 0.5], [0., 0.]]]]`.
#[test]
fn max_pool2d_gradient_goes_whole_to_the_maximum() {
    let x = Var::from_tensor(&Tensor::new(&[[[[1f32, 4.], [3., 2.]]]], &Device::Cpu).unwrap()).unwrap();
    let y = kernels::max_pool2d(x.as_tensor(), 2).unwrap();
    let g = (y * 0.5).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(flat(g.get(x.as_tensor()).unwrap()), [0.0, 0.5, 0.0, 0.0]);
}

#[test]
fn max_pool2d_matches_candle() {
    let mut r = rng(3, "pool");
    for (dims, k) in [([1, 1, 2, 2], 2), ([2, 3, 7, 9], 2), ([3, 2, 9, 10], 3), ([1, 4, 5, 5], 1), ([8, 16, 24, 24], 2)]
    {
        let case = format!("max_pool2d {dims:?} k{k}");
        let x = var(&mut r, &dims, 1.0);
        let got = kernels::max_pool2d(x.as_tensor(), k).unwrap();
        assert_close(&got, &x.as_tensor().max_pool2d(k).unwrap(), &case);
        let want = reference_max_pool(x.as_tensor(), k).unwrap();
        assert_close(&got, &want, &case);
        let weights = uniform(&mut r, got.dims(), 1.0);
        compare_grads(&grads(&got, &weights, &[&x]), &grads(&want, &weights, &[&x]), &["x"], &case);
    }
}

/// The train crate's cross-entropy (log-softmax, gather, mean, label smoothing).
fn reference_ce(z: &Tensor, t: &Tensor, eps: f64) -> Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(z, D::Minus1)?;
    let nll = log_p.gather(&t.unsqueeze(1)?, 1)?.squeeze(1)?.mean_all()?.neg()?;
    if eps == 0.0 {
        return Ok(nll);
    }
    (nll * (1.0 - eps))? + (log_p.mean_all()?.neg()? * eps)?
}

#[test]
fn softmax_cross_entropy_matches_log_softmax_gather_mean() {
    let mut r = rng(4, "ce");
    for (rows, classes) in [(1, 1), (1, 2), (7, 3), (128, 10), (33, 17), (5, 1000)] {
        for eps in [0.0, 0.1, 0.37] {
            let case = format!("cross-entropy {rows}x{classes} eps {eps}");
            let z = var(&mut r, &[rows, classes], 4.0);
            let t: Vec<u32> = (0..rows).map(|_| r.random_range(0..classes as u32)).collect();
            let t = Tensor::new(t, &Device::Cpu).unwrap();
            let got = kernels::softmax_cross_entropy(z.as_tensor(), &t, eps).unwrap();
            let want = reference_ce(z.as_tensor(), &t, eps).unwrap();
            assert_close(&got, &want, &case);
            // A non-unit upstream gradient, as accumulation or a penalty scale gives.
            let scale = Tensor::new(0.7f32, &Device::Cpu).unwrap();
            compare_grads(&grads(&got, &scale, &[&z]), &grads(&want, &scale, &[&z]), &["logits"], &case);
        }
    }
}

#[test]
fn softmax_cross_entropy_rejects_bad_targets() {
    let dev = Device::Cpu;
    let z = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
    let e = kernels::softmax_cross_entropy(&z, &Tensor::new(&[0u32, 3], &dev).unwrap(), 0.0).unwrap_err().to_string();
    assert!(e.contains("class 3 out of range for 3"), "{e}");
    let e = kernels::softmax_cross_entropy(&z, &Tensor::new(&[0u32], &dev).unwrap(), 0.0).unwrap_err().to_string();
    assert!(e.contains("targets of shape"), "{e}");
    let e = kernels::softmax_cross_entropy(&z, &Tensor::new(&[0u32, 1], &dev).unwrap(), 1.0).unwrap_err().to_string();
    assert!(e.contains("label smoothing"), "{e}");
}

/// The train crate's unfused Adam / AdamW update; returns the new `(p, m, v, vmax)`.
fn reference_adam(p: &Tensor, g: &Tensor, s: &[Tensor], h: &AdamStep) -> Result<Vec<Tensor>> {
    let (lr, b1, b2) = (h.lr, h.beta1, h.beta2);
    let (p, g) = match (h.weight_decay != 0.0, h.decoupled) {
        (true, true) => ((p * (1.0 - lr * h.weight_decay))?, g.clone()),
        (true, false) => (p.clone(), (g + (p * h.weight_decay)?)?),
        (false, _) => (p.clone(), g.clone()),
    };
    let m = ((&s[0] * b1)? + (&g * (1.0 - b1))?)?;
    let v = ((&s[1] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
    let t = h.step as i32;
    let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    let vmax = if s.len() > 2 { Some(s[2].maximum(&v)?) } else { None };
    let second = vmax.as_ref().unwrap_or(&v);
    let denom = (second.sqrt()? / bc2.sqrt())?.affine(1.0, h.eps)?;
    let p = (p - ((&m / denom)? * (lr / bc1))?)?;
    Ok([Some(p), Some(m), Some(v), vmax].into_iter().flatten().collect())
}

#[test]
fn adam_steps_match_the_unfused_update() {
    let mut r = rng(5, "adam");
    // Small tensors run on the calling thread, large ones in parallel chunks.
    for shape in [vec![1], vec![7, 3], vec![256, 784], vec![100_003]] {
        for (decoupled, wd, amsgrad) in
            [(true, 0.0, false), (true, 0.01, false), (false, 0.1, false), (true, 0.05, true)]
        {
            let case = format!("adam {shape:?} decoupled={decoupled} wd={wd} amsgrad={amsgrad}");
            let p = var(&mut r, &shape, 1.0);
            let state: Vec<Tensor> =
                (0..if amsgrad { 3 } else { 2 }).map(|_| p.as_tensor().zeros_like().unwrap()).collect();
            let mut want_p = p.as_tensor().copy().unwrap();
            let mut want_s: Vec<Tensor> = state.iter().map(|t| t.copy().unwrap()).collect();
            for step in 1..=4 {
                let g = uniform(&mut r, &shape, 0.5);
                let h = AdamStep { step, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: wd, decoupled };
                kernels::adam_step(&p, &g, &state[0], &state[1], state.get(2), &h).unwrap();
                let new = reference_adam(&want_p, &g, &want_s, &h).unwrap();
                want_p = new[0].clone();
                want_s = new[1..].to_vec();
                assert_close(p.as_tensor(), &want_p, &format!("{case} step {step}: param"));
                for (i, (got, want)) in state.iter().zip(&want_s).enumerate() {
                    assert_close(got, want, &format!("{case} step {step}: state {i}"));
                }
                // The fused step does the same float operations in the same order.
                assert_eq!(flat(p.as_tensor()), flat(&want_p), "{case} step {step}: not bit-identical");
            }
        }
    }
}

#[test]
fn adamw_step_is_adam_step_decoupled() {
    let mut r = rng(6, "adamw");
    let p1 = var(&mut r, &[5, 4], 1.0);
    let p2 = Var::from_tensor(&p1.as_tensor().copy().unwrap()).unwrap();
    let g = uniform(&mut r, &[5, 4], 1.0);
    let s1 = [p1.zeros_like().unwrap(), p1.zeros_like().unwrap()];
    let s2 = [p1.zeros_like().unwrap(), p1.zeros_like().unwrap()];
    kernels::adamw_step(&p1, &g, &s1[0], &s1[1], 1, 1e-3, 0.9, 0.999, 1e-8, 0.01).unwrap();
    let h = AdamStep { step: 1, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, decoupled: true };
    kernels::adam_step(&p2, &g, &s2[0], &s2[1], None, &h).unwrap();
    assert_eq!(flat(p1.as_tensor()), flat(p2.as_tensor()));
}

fn reference_sgd(p: &Tensor, g: &Tensor, buf: Option<&Tensor>, h: &SgdStep) -> Result<(Tensor, Option<Tensor>)> {
    let mut g = if h.weight_decay != 0.0 { (g + (p * h.weight_decay)?)? } else { g.clone() };
    let mut new_buf = None;
    if h.momentum > 0.0 {
        let b = match buf {
            Some(b) if h.step > 1 => ((b * h.momentum)? + (&g * (1.0 - h.dampening))?)?,
            _ => g.clone(),
        };
        g = if h.nesterov { (g + (&b * h.momentum)?)? } else { b.clone() };
        new_buf = Some(b);
    }
    Ok(((p - (g * h.lr)?)?, new_buf))
}

#[test]
fn sgd_steps_match_the_unfused_update() {
    let mut r = rng(7, "sgd");
    for shape in [vec![3], vec![11, 13], vec![70_001]] {
        for (momentum, dampening, nesterov, wd) in
            [(0.0, 0.0, false, 0.0), (0.0, 0.0, false, 0.05), (0.9, 0.1, false, 0.0), (0.9, 0.0, true, 0.01)]
        {
            let case = format!("sgd {shape:?} momentum={momentum} dampening={dampening} nesterov={nesterov} wd={wd}");
            let p = var(&mut r, &shape, 1.0);
            let buf = p.as_tensor().zeros_like().unwrap();
            let mut want_p = p.as_tensor().copy().unwrap();
            let mut want_b: Option<Tensor> = None;
            for step in 1..=3 {
                let g = uniform(&mut r, &shape, 1.0);
                let h = SgdStep { step, lr: 0.05, momentum, dampening, nesterov, weight_decay: wd };
                kernels::sgd_step(&p, &g, (momentum > 0.0).then_some(&buf), &h).unwrap();
                let (np, nb) = reference_sgd(&want_p, &g, want_b.as_ref(), &h).unwrap();
                want_p = np;
                want_b = nb;
                assert_close(p.as_tensor(), &want_p, &format!("{case} step {step}"));
                if let Some(b) = &want_b {
                    assert_close(&buf, b, &format!("{case} step {step}: buffer"));
                }
                assert_eq!(flat(p.as_tensor()), flat(&want_p), "{case} step {step}: not bit-identical");
            }
        }
    }
}

#[test]
fn optimizer_steps_refuse_shared_storage_and_wrong_shapes() {
    let mut r = rng(8, "shared");
    let p = var(&mut r, &[4], 1.0);
    let g = uniform(&mut r, &[4], 1.0);
    let m = p.zeros_like().unwrap();
    let h = AdamStep { step: 1, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: true };
    let e = kernels::adam_step(&p, &g, &m, &m, None, &h).unwrap_err().to_string();
    assert!(e.contains("share storage"), "{e}");
    let small = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let e = kernels::adam_step(&p, &g, &m, &small, None, &h).unwrap_err().to_string();
    assert!(e.contains("shape"), "{e}");
    let e = kernels::adam_step(&p, &g, &m, &p.zeros_like().unwrap(), None, &AdamStep { step: 0, ..h }).unwrap_err();
    assert!(e.to_string().contains("from 1"), "{e}");
}
