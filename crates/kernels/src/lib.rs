//! Fast CPU kernels for training small networks with candle, each a candle custom op (so
//! candle's autograd differentiates through it) and each checked against the unfused candle
//! computation it replaces:
//!
//! - [`conv2d`] / [`conv2d_block`]: convolution by im2col and one matrix multiply per sample,
//!   optionally fused with ReLU and max-pooling; the backward computes `grad_w` and `grad_b` by
//!   matrix multiplies and skips `grad_x` when the input does not track gradients.
//! - [`max_pool2d`]: max-pooling whose backward scatters to the argmax recorded by the forward.
//! - [`linear`]: `x · wᵀ + b` with an optional fused ReLU; transposed operands are passed to the
//!   multiply as strides, never copied.
//! - [`softmax_cross_entropy`]: mean cross-entropy with label smoothing in one op, whose
//!   backward is `(softmax - smoothed one-hot) / batch`.
//! - [`adam_step`] / [`adamw_step`] / [`sgd_step`]: in-place, single-pass optimizer updates,
//!   bit-identical to the train crate's tensor-by-tensor updates.
//!
//! Everything here runs on the CPU in f32 and parallelises over rayon's global pool.

mod conv;
mod gemm;
mod linear;
mod loss;
mod optim;
mod pool;
mod util;

pub use conv::{conv2d, conv2d_block};
pub use linear::linear;
pub use loss::softmax_cross_entropy;
pub use optim::{AdamStep, SgdStep, adam_step, adamw_step, sgd_step};
pub use pool::max_pool2d;

/// The largest max-pooling window the kernels take (a window-local argmax fits in a byte).
pub const MAX_POOL_WINDOW: usize = 16;

/// An activation fused into a kernel's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Activation {
    /// The identity.
    #[default]
    None,
    /// `max(0, x)`, with gradient 0 at 0 (PyTorch's rule).
    Relu,
}
