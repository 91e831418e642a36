//! The inner loop's SGD step on a task's fast weights. The CPU twin of `kernels/sgd.cu`; as
//! there, `output.weight`'s step is not taken densely but appended as rank-1 terms
//! ([`TaskWorkspace::sgd_step`](super::task::TaskWorkspace::sgd_step)).

use super::float::Float;
use super::simd::axpy;

/// One SGD step `params -= lr · grads`.
pub fn sgd<F: Float>(params: &mut [F], grads: &[F], lr: F) {
    axpy(params, -lr, grads);
}
