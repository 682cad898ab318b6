//! Access to candle's CPU storage as plain slices, and the threading policy shared by the kernels.

use candle_core::backend::BackendStorage as _;
use candle_core::{CpuStorage, DType, Device, Layout, Result, Shape, Storage, Tensor, bail};

/// The contiguous f32 elements a layout views in a CPU storage.
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { bail!("{op}: expected f32 data, got {:?}", s.dtype()) };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{op}: expected a contiguous tensor"),
    }
}

/// Runs `f` on the contiguous f32 elements of `t` (a CPU tensor; copied first when strided).
pub(crate) fn with_f32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = if t.is_contiguous() { t.clone() } else { t.contiguous()? };
    let (s, l) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*s else { bail!("{op}: only CPU tensors are supported") };
    f(f32_slice(cpu, l, op)?)
}

/// A CPU f32 tensor of `shape` owning `data`.
pub(crate) fn tensor(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Fails unless `t` is an f32 tensor on the CPU.
pub(crate) fn expect_cpu_f32(t: &Tensor, what: &str) -> Result<()> {
    if !t.device().is_cpu() {
        bail!("{what}: the kernels run on the CPU only, got a tensor on {:?}", t.device().location());
    }
    if t.dtype() != DType::F32 {
        bail!("{what}: expected f32, got {:?}", t.dtype());
    }
    Ok(())
}

/// `t`, contiguous (no copy when it already is).
pub(crate) fn contiguous(t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() { Ok(t.clone()) } else { t.contiguous() }
}

/// Work (in multiply-adds or element visits) below which a kernel stays on the calling thread:
/// waking the pool costs more than it saves.
pub(crate) const PAR_WORK: usize = 1 << 15;

/// How many pieces to cut `n` independent items into: one per thread, a few more to even out
/// threads slowed by other work on a shared machine, never more than `n`, and 1 when the whole
/// job is below [`PAR_WORK`].
pub(crate) fn pieces(n: usize, total_work: usize) -> usize {
    let threads = rayon::current_num_threads();
    if threads <= 1 || total_work < PAR_WORK || n <= 1 {
        return 1;
    }
    n.min(threads * 2)
}
