//! The output layer `logits = W h + b` with the weighted cross-entropy over a batch of hidden
//! states, forward and backward. `W` is `output.weight` plus the inner loop's SGD updates kept as
//! low-rank terms ([`OutputWeights`]). The CPU twin of `kernels/output_ce.cu`.

use super::float::Float;
use super::scratch::resize;
use super::simd::{axpy, gemm_nn_acc, gemm_nt_acc, ger_acc, log_sum_exp, softmax_scaled};

/// The output layer `logits = W h + b` with `W = w + Σ_r d_r ⊗ g_r`: the dense `output.weight
/// [V, H]` plus a low-rank correction (`d [R, V]`, `g [R, H]`, R may be 0). The inner loop keeps
/// its SGD updates of `output.weight` in this form: a step on K samples adds K rank-1 terms
/// instead of touching all V×H weights.
#[derive(Clone, Copy, Debug)]
pub struct OutputWeights<'a, F> {
    /// `output.weight [V, H]`.
    pub w: &'a [F],
    /// The same transposed, `[H, V]`.
    pub wt: &'a [F],
    /// `output.bias [V]`.
    pub b: &'a [F],
    /// Low-rank factors over items, `[R, V]`.
    pub d: &'a [F],
    /// Low-rank factors over hidden units, `[R, H]`.
    pub g: &'a [F],
}

impl<F> OutputWeights<'_, F> {
    fn rank(&self) -> usize {
        self.g.len() / (self.w.len() / self.b.len()).max(1)
    }
}

/// Forward of the output layer and cross-entropy for B samples with hidden states `h [B, H]`:
/// writes `logits [B, V]`, `lse [B]` (log-sum-exp per sample, kept for the backward) and
/// `losses [B]` (`CE_s = lse_s − logit_s[label_s]`); returns `Σ_s weights[s] · CE_s`. `coef [B, R]`
/// is scratch.
#[allow(clippy::too_many_arguments)]
pub fn output_ce_forward<F: Float>(
    logits: &mut [F],
    lse: &mut [F],
    losses: &mut [F],
    coef: &mut Vec<F>,
    h: &[F],
    ow: OutputWeights<F>,
    labels: &[u32],
    weights: &[F],
    v: usize,
    hd: usize,
) -> F {
    let b = labels.len();
    let (logits, h) = (&mut logits[..b * v], &h[..b * hd]);
    for row in logits.chunks_exact_mut(v) {
        row.copy_from_slice(ow.b);
    }
    gemm_nn_acc(logits, h, ow.wt, v);
    let rank = ow.rank();
    if rank > 0 {
        resize(coef, b * rank);
        gemm_nt_acc(coef, h, ow.g, hd);
        gemm_nn_acc(logits, coef, ow.d, v);
    }
    let mut total = F::ZERO;
    for s in 0..b {
        let row = &logits[s * v..(s + 1) * v];
        lse[s] = log_sum_exp(row);
        losses[s] = lse[s] - row[labels[s] as usize];
        total += weights[s] * losses[s];
    }
    total
}

/// Backward of [`output_ce_forward`]: `dlogits [B, V]` (assigned) `= weights[s] · (softmax(logits_s)
/// − onehot(label_s))`, `dh [B, H]` (assigned), `db [V]` (accumulated) and, when given, the dense
/// `dw [V, H]` (accumulated; the inner loop instead keeps `dlogits` and `h` as a low-rank update).
#[allow(clippy::too_many_arguments)]
pub fn output_ce_backward<F: Float>(
    dlogits: &mut [F],
    dh: &mut [F],
    db: &mut [F],
    dw: Option<&mut [F]>,
    coef: &mut Vec<F>,
    logits: &[F],
    lse: &[F],
    h: &[F],
    ow: OutputWeights<F>,
    labels: &[u32],
    weights: &[F],
    v: usize,
    hd: usize,
) {
    let b = labels.len();
    let (dlogits, dh, h) = (&mut dlogits[..b * v], &mut dh[..b * hd], &h[..b * hd]);
    for s in 0..b {
        let d = &mut dlogits[s * v..(s + 1) * v];
        softmax_scaled(d, &logits[s * v..(s + 1) * v], lse[s], weights[s]);
        d[labels[s] as usize] -= weights[s];
        axpy(db, F::ONE, d);
    }
    dh.fill(F::ZERO);
    gemm_nn_acc(dh, dlogits, ow.w, hd);
    let rank = ow.rank();
    if rank > 0 {
        resize(coef, b * rank);
        gemm_nt_acc(coef, dlogits, ow.d, v);
        gemm_nn_acc(dh, coef, ow.g, hd);
    }
    if let Some(dw) = dw {
        ger_acc(dw, dlogits, v, h, hd);
    }
}
