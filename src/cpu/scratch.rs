//! Scratch buffers that the layers reuse from call to call, grown to the largest size seen.

use super::float::Float;

/// Sets the length to `n` with every element 0.
pub(super) fn resize<F: Float>(v: &mut Vec<F>, n: usize) {
    v.clear();
    v.resize(n, F::ZERO);
}

/// Sets the length to `n` keeping old contents, for buffers the caller overwrites entirely.
pub(super) fn ensure<F: Float>(v: &mut Vec<F>, n: usize) {
    v.resize(n, F::ZERO);
}
