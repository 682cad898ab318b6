//! Fused, in-place optimizer steps: one pass over a parameter, its gradient and its state
//! buffers, updating all of them where they lie (no allocation), with exactly the floating-point
//! operations, in the same order, as the train crate's tensor-by-tensor implementation — so the
//! results are bit-for-bit those of the unfused steps (and so PyTorch's to ~1e-7).
//!
//! candle gives in-place access to one tensor at a time ([`Tensor::inplace_op1`]); a step that
//! updates several tensors nests one in-place op per tensor, each holding the previous ones'
//! storage, so the innermost sees them all at once. All of it is safe code: the tensors must be
//! contiguous CPU f32 tensors with distinct storage (checked, or each nested lock would wait on
//! itself).

use std::cell::RefCell;

use candle_core::backend::BackendStorage as _;
use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Storage, Tensor, Var, bail};
use rayon::prelude::*;

/// Elements per parallel chunk of an update; smaller tensors are updated on the calling thread.
const CHUNK: usize = 1 << 14;

type Body<'a> = dyn Fn(&mut [&mut [f32]]) -> Result<()> + 'a;

/// An update over the mutable target slices and the read-only gradient.
type StepBody<'a> = dyn Fn(&mut [&mut [f32]], &[f32]) -> Result<()> + 'a;

/// One level of the nest: takes `&mut` access to its tensor's storage, then either opens the
/// next level or, at the last, runs the body on every slice.
struct Nest<'a, 's> {
    rest: &'a [&'a Tensor],
    held: RefCell<Option<Vec<&'s mut [f32]>>>,
    body: &'a Body<'a>,
}

impl InplaceOp1 for Nest<'_, '_> {
    fn name(&self) -> &'static str {
        "kernels-optimizer-step"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(v) = storage else { bail!("optimizer step: expected f32 tensors") };
        let Some((a, b)) = layout.contiguous_offsets() else { bail!("optimizer step: expected contiguous tensors") };
        let mut held: Vec<&mut [f32]> = self.held.borrow_mut().take().unwrap_or_default();
        held.push(&mut v[a..b]);
        match self.rest.split_first() {
            None => (self.body)(&mut held),
            Some((next, rest)) => next.inplace_op1(&Nest { rest, held: RefCell::new(Some(held)), body: self.body }),
        }
    }

    fn cuda_fwd(&self, _: &mut candle_core::CudaStorage, _: &Layout) -> Result<()> {
        bail!("optimizer step: the kernels run on the CPU only")
    }

    fn metal_fwd(&self, _: &mut candle_core::MetalStorage, _: &Layout) -> Result<()> {
        bail!("optimizer step: the kernels run on the CPU only")
    }
}

/// The address of a CPU f32 tensor's storage buffer (to tell distinct storages apart).
fn storage_addr(t: &Tensor) -> Result<usize> {
    let (s, _) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(CpuStorage::F32(v)) => Ok(v.as_ptr() as usize),
        Storage::Cpu(other) => bail!("optimizer step: expected f32 tensors, got {:?}", other.dtype()),
        _ => bail!("optimizer step: the kernels run on the CPU only"),
    }
}

/// Runs `body` with mutable slices of every tensor of `targets` (in order) and the read-only
/// slice of `grad`, after checking shapes, contiguity and that no two share storage.
fn with_targets(targets: &[&Tensor], grad: &Tensor, body: &StepBody<'_>) -> Result<()> {
    let shape = grad.shape();
    let mut addrs = vec![storage_addr(grad)?];
    for t in targets {
        if t.shape() != shape {
            bail!("optimizer step: state of shape {:?} for a gradient of shape {:?}", t.dims(), grad.dims());
        }
        if !t.is_contiguous() {
            bail!("optimizer step: the parameter and its state must be contiguous");
        }
        addrs.push(storage_addr(t)?);
    }
    if grad.elem_count() == 0 {
        return Ok(());
    }
    let mut sorted = addrs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != addrs.len() {
        bail!("optimizer step: the parameter, its gradient and its state must not share storage");
    }
    let grad = if grad.is_contiguous() { grad.clone() } else { grad.contiguous()? };
    let (gs, gl) = grad.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(gv)) = &*gs else { bail!("optimizer step: expected an f32 CPU gradient") };
    let Some((a, b)) = gl.contiguous_offsets() else { bail!("optimizer step: non-contiguous gradient") };
    let g = &gv[a..b];
    let inner = |slices: &mut [&mut [f32]]| body(slices, g);
    let Some((first, rest)) = targets.split_first() else { return Ok(()) };
    first.inplace_op1(&Nest { rest, held: RefCell::new(None), body: &inner })
}

/// Applies `f` to aligned chunks of `n` mutable slices and one read-only slice, in parallel
/// when large.
fn chunked<const N: usize>(
    slices: &mut [&mut [f32]],
    g: &[f32],
    f: impl Fn([&mut [f32]; N], &[f32]) + Sync + Send,
) -> Result<()> {
    let Ok(arr): std::result::Result<&mut [&mut [f32]; N], _> = slices.try_into() else {
        bail!("optimizer step: internal error, expected {N} tensors")
    };
    let len = g.len();
    if len < 2 * CHUNK || rayon::current_num_threads() <= 1 {
        let parts: [&mut [f32]; N] = std::array::from_fn(|i| std::mem::take(&mut arr[i]));
        f(parts, g);
        return Ok(());
    }
    // Cut every slice at the same boundaries, then hand out the aligned pieces.
    let pieces = len.div_ceil(CHUNK);
    let mut cut: Vec<[&mut [f32]; N]> = Vec::with_capacity(pieces);
    let mut rest: [&mut [f32]; N] = std::array::from_fn(|i| std::mem::take(&mut arr[i]));
    for _ in 0..pieces {
        let take = CHUNK.min(rest[0].len());
        let mut head: [&mut [f32]; N] = std::array::from_fn(|_| <&mut [f32]>::default());
        for i in 0..N {
            let (h, t) = std::mem::take(&mut rest[i]).split_at_mut(take);
            head[i] = h;
            rest[i] = t;
        }
        cut.push(head);
    }
    cut.into_par_iter().zip(g.par_chunks(CHUNK)).for_each(|(parts, gc)| f(parts, gc));
    Ok(())
}

/// The hyperparameters of one Adam or AdamW step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// The step number `t`, from 1 (for the bias corrections `1 - βᵗ`).
    pub step: u64,
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay: decoupled (AdamW: `p ← p · (1 - lr · wd)`) or L2 (Adam: `g ← g + wd · p`).
    pub weight_decay: f64,
    /// AdamW's decoupled weight decay (true) or Adam's L2 penalty (false).
    pub decoupled: bool,
}

/// One Adam / AdamW step on `param` in place, updating `exp_avg`, `exp_avg_sq` (and, for
/// AMSGrad, `max_exp_avg_sq`) in place too — the update of the train crate's `adam` (PyTorch's
/// single-tensor Adam/AdamW) with its operations in the same order:
///
/// ```text
/// p  ← p · (1 - lr·wd)                      (AdamW)      g ← g + p · wd   (Adam, L2)
/// m  ← m · β1 + g · (1 - β1)
/// v  ← v · β2 + g² · (1 - β2)
/// v̂  ← max(v̂, v)                            (AMSGrad; v̂ replaces v below)
/// p  ← p - (m / (√v / √(1 - β2ᵗ) + eps)) · (lr / (1 - β1ᵗ))
/// ```
///
/// All tensors: contiguous CPU f32 of the parameter's shape, with storage of their own.
pub fn adam_step(
    param: &Var,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    max_exp_avg_sq: Option<&Tensor>,
    h: &AdamStep,
) -> Result<()> {
    if h.step == 0 {
        bail!("adam step: steps count from 1");
    }
    let t = i32::try_from(h.step).unwrap_or(i32::MAX);
    let bc1 = 1.0 - h.beta1.powi(t);
    let bc2 = 1.0 - h.beta2.powi(t);
    let k = AdamConsts {
        decay: (1.0 - h.lr * h.weight_decay) as f32,
        wd: h.weight_decay as f32,
        use_wd: h.weight_decay != 0.0,
        decoupled: h.decoupled,
        b1: h.beta1 as f32,
        one_b1: (1.0 - h.beta1) as f32,
        b2: h.beta2 as f32,
        one_b2: (1.0 - h.beta2) as f32,
        inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
        eps: h.eps as f32,
        step_size: (h.lr / bc1) as f32,
    };
    let p = param.as_tensor();
    match max_exp_avg_sq {
        None => with_targets(&[p, exp_avg, exp_avg_sq], grad, &|s, g| {
            chunked::<3>(s, g, |[p, m, v], g| k.run(p, m, v, None, g))
        }),
        Some(vmax) => with_targets(&[p, exp_avg, exp_avg_sq, vmax], grad, &|s, g| {
            chunked::<4>(s, g, |[p, m, v, vm], g| k.run(p, m, v, Some(vm), g))
        }),
    }
}

/// [`adam_step`] for AdamW without AMSGrad, the optimizer of the benchmarks (PyTorch's
/// `torch.optim.AdamW(lr, betas=(beta1, beta2), eps, weight_decay)`); `step` counts from 1.
#[allow(clippy::too_many_arguments, reason = "the hyperparameters of one update rule, as PyTorch names them")]
pub fn adamw_step(
    param: &Var,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    step: u64,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
) -> Result<()> {
    let h = AdamStep { step, lr, beta1, beta2, eps, weight_decay, decoupled: true };
    adam_step(param, grad, exp_avg, exp_avg_sq, None, &h)
}

/// The f32 constants of an Adam step, rounded from f64 as candle's scalar ops round them.
#[derive(Clone, Copy)]
struct AdamConsts {
    decay: f32,
    wd: f32,
    use_wd: bool,
    decoupled: bool,
    b1: f32,
    one_b1: f32,
    b2: f32,
    one_b2: f32,
    inv_sqrt_bc2: f32,
    eps: f32,
    step_size: f32,
}

impl AdamConsts {
    fn run(&self, p: &mut [f32], m: &mut [f32], v: &mut [f32], vmax: Option<&mut [f32]>, g: &[f32]) {
        match (vmax, self.use_wd, self.decoupled) {
            (Some(vmax), _, _) => self.amsgrad(p, m, v, vmax, g),
            (None, false, _) => self.plain::<false, false>(p, m, v, g),
            (None, true, true) => self.plain::<true, true>(p, m, v, g),
            (None, true, false) => self.plain::<true, false>(p, m, v, g),
        }
    }

    /// The update without AMSGrad, with the weight-decay variant fixed at compile time so the
    /// loop has no branches and vectorizes. Each `x * c + 0.0` is candle's `affine(c, 0)` (the
    /// `+ 0.0` only turns -0 into +0, kept so the results are bit-identical to the unfused
    /// tensor ops).
    #[inline]
    fn plain<const WD: bool, const DECOUPLED: bool>(&self, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        let k = *self;
        for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            let mut pi = *p;
            let mut gi = g;
            if WD {
                if DECOUPLED {
                    pi = pi * k.decay + 0.0;
                } else {
                    gi += pi * k.wd + 0.0;
                }
            }
            let mi = (*m * k.b1 + 0.0) + (gi * k.one_b1 + 0.0);
            let vi = (*v * k.b2 + 0.0) + ((gi * gi) * k.one_b2 + 0.0);
            *m = mi;
            *v = vi;
            let denom = (vi.sqrt() * k.inv_sqrt_bc2 + 0.0) * 1.0 + k.eps;
            *p = pi - ((mi / denom) * k.step_size + 0.0);
        }
    }

    /// The update with AMSGrad (the running maximum of the second moment in the denominator).
    fn amsgrad(&self, p: &mut [f32], m: &mut [f32], v: &mut [f32], vmax: &mut [f32], g: &[f32]) {
        let k = *self;
        for ((((p, m), v), vm), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(vmax.iter_mut()).zip(g) {
            let mut pi = *p;
            let mut gi = g;
            if k.use_wd {
                if k.decoupled {
                    pi = pi * k.decay + 0.0;
                } else {
                    gi += pi * k.wd + 0.0;
                }
            }
            let mi = (*m * k.b1 + 0.0) + (gi * k.one_b1 + 0.0);
            let vi = (*v * k.b2 + 0.0) + ((gi * gi) * k.one_b2 + 0.0);
            *m = mi;
            *v = vi;
            let second = if *vm < vi { vi } else { *vm };
            *vm = second;
            let denom = (second.sqrt() * k.inv_sqrt_bc2 + 0.0) * 1.0 + k.eps;
            *p = pi - ((mi / denom) * k.step_size + 0.0);
        }
    }
}

/// The hyperparameters of one SGD step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdStep {
    /// The step number `t`, from 1 (the momentum buffer starts as the first gradient).
    pub step: u64,
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: none, and no buffer is needed).
    pub momentum: f64,
    /// Dampening of the new gradient in the momentum.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
}

/// One SGD step on `param` in place (and on `momentum_buffer`, required when
/// `momentum > 0`), as the train crate's (PyTorch's) SGD:
///
/// ```text
/// g ← g + p · wd
/// b ← g  (t = 1),   b ← b · μ + g · (1 - dampening)  (t > 1)
/// g ← g + b · μ  (Nesterov),   g ← b  (otherwise)
/// p ← p - g · lr
/// ```
pub fn sgd_step(param: &Var, grad: &Tensor, momentum_buffer: Option<&Tensor>, h: &SgdStep) -> Result<()> {
    if h.step == 0 {
        bail!("sgd step: steps count from 1");
    }
    let (lr, wd, mu, damp) = (h.lr as f32, h.weight_decay as f32, h.momentum as f32, (1.0 - h.dampening) as f32);
    let use_wd = h.weight_decay != 0.0;
    let (first, nesterov) = (h.step == 1, h.nesterov);
    let p = param.as_tensor();
    let decayed = move |pi: f32, gi: f32| if use_wd { gi + (pi * wd + 0.0) } else { gi };
    if h.momentum > 0.0 {
        let Some(buf) = momentum_buffer else { bail!("sgd step: momentum needs a momentum buffer") };
        with_targets(&[p, buf], grad, &|s, g| {
            chunked::<2>(s, g, |[p, b], g| {
                for i in 0..g.len() {
                    let gi = decayed(p[i], g[i]);
                    let bi = if first { gi } else { (b[i] * mu + 0.0) + (gi * damp + 0.0) };
                    b[i] = bi;
                    let step = if nesterov { gi + (bi * mu + 0.0) } else { bi };
                    p[i] -= step * lr + 0.0;
                }
            })
        })
    } else {
        with_targets(&[p], grad, &|s, g| {
            chunked::<1>(s, g, |[p], g| {
                for i in 0..g.len() {
                    let gi = decayed(p[i], g[i]);
                    p[i] -= gi * lr + 0.0;
                }
            })
        })
    }
}
