//! Element-wise and per-row functions: `axpy`, the stable log-sum-exp and the scaled softmax of a
//! row of logits, the GRU cell, and `transpose`.

use super::isa::{madd, Isa, AVX2, AVX512, BASE, LANES};
use crate::cpu::float::Float;

#[inline(always)]
fn axpy_imp<F: Float, const W: usize>(y: &mut [F], a: F, x: &[F]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = madd::<F, W>(a, xi, *yi);
    }
}

simd_fn!(
    /// `y += a * x`.
    axpy, axpy_isa => axpy_imp(y: &mut [F], a: F, x: &[F])
);

#[inline(always)]
fn log_sum_exp_imp<F: Float, const W: usize>(row: &[F]) -> F {
    let mut mx = [row[0]; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks.clone() {
        for i in 0..LANES {
            mx[i] = mx[i].max(c[i]);
        }
    }
    let m = tail.iter().chain(&mx).fold(row[0], |a, &b| a.max(b));
    let mut acc = [F::ZERO; LANES];
    for c in chunks {
        for i in 0..LANES {
            acc[i] += (c[i] - m).fast_exp();
        }
    }
    let t = tail.iter().fold(F::ZERO, |a, &x| a + (x - m).fast_exp());
    m + (acc.iter().fold(F::ZERO, |a, &b| a + b) + t).ln()
}

simd_fn!(
    /// `log Σ_i exp(row_i)`, stable (shifted by the maximum). `row` must be non-empty.
    log_sum_exp, log_sum_exp_isa => log_sum_exp_imp(row: &[F]) -> F
);

#[inline(always)]
fn softmax_scaled_imp<F: Float, const W: usize>(out: &mut [F], logits: &[F], lse: F, w: F) {
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = w * (l - lse).fast_exp();
    }
}

simd_fn!(
    /// `out_i = w · exp(logits_i − lse)`: the softmax scaled by w, given its log-sum-exp.
    softmax_scaled, softmax_scaled_isa => softmax_scaled_imp(out: &mut [F], logits: &[F], lse: F, w: F)
);

#[inline(always)]
fn gru_cell_imp<F: Float, const W: usize>(
    rzn: &mut [F],
    ghn: &mut [F],
    hs: &mut [F],
    xi: &[F],
    gh: &[F],
    hp: &[F],
) {
    let h = hs.len();
    let (rg, rest) = rzn.split_at_mut(h);
    let (zg, ng) = rest.split_at_mut(h);
    let (xr, xz, xn) = (&xi[..h], &xi[h..2 * h], &xi[2 * h..3 * h]);
    let (hr, hz, hn) = (&gh[..h], &gh[h..2 * h], &gh[2 * h..3 * h]);
    let (ghn, hp, ng) = (&mut ghn[..h], &hp[..h], &mut ng[..h]);
    for k in 0..h {
        let r = (xr[k] + hr[k]).sigmoid();
        let z = (xz[k] + hz[k]).sigmoid();
        let n = (xn[k] + r * hn[k]).fast_tanh();
        rg[k] = r;
        zg[k] = z;
        ng[k] = n;
        ghn[k] = hn[k];
        hs[k] = (F::ONE - z) * n + z * hp[k];
    }
}

simd_fn!(
    /// One GRU cell (PyTorch's): from the input projection `xi = W_i x + b_i` and the hidden one
    /// `gh = W_h h_prev + b_h` (both `[3H]`, gates r, z, n) and `hp = h_prev [H]`, writes the
    /// activated gates `rzn [3H]`, the candidate's hidden term `ghn [H]` and the new state `hs [H]`.
    gru_cell, gru_cell_isa => gru_cell_imp(
        rzn: &mut [F],
        ghn: &mut [F],
        hs: &mut [F],
        xi: &[F],
        gh: &[F],
        hp: &[F]
    )
);

/// `out [cols, rows] = a^T` for `a [rows, cols]`: for `f32` on AVX2 machines 8×8 blocks in
/// registers, else in square blocks so that the rows read and the rows written both stay in cache.
pub fn transpose<F: Float>(out: &mut [F], a: &[F], rows: usize, cols: usize) {
    #[cfg(target_arch = "x86_64")]
    if matches!(Isa::detect(), Isa::Avx2 | Isa::Avx512)
        && std::any::TypeId::of::<F>() == std::any::TypeId::of::<f32>()
    {
        let n = rows * cols;
        // SAFETY: F is f32, so the memory holds f32s; AVX2 implies AVX.
        unsafe {
            let a = std::slice::from_raw_parts(a[..n].as_ptr().cast::<f32>(), n);
            let out = std::slice::from_raw_parts_mut(out[..n].as_mut_ptr().cast::<f32>(), n);
            super::x86::transpose8::transpose(out, a, rows, cols);
        }
        return;
    }
    const B: usize = 8;
    let (a, out) = (&a[..rows * cols], &mut out[..rows * cols]);
    for r0 in (0..rows).step_by(B) {
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            let c1 = (c0 + B).min(cols);
            for r in r0..r1 {
                let row = &a[r * cols..(r + 1) * cols];
                for c in c0..c1 {
                    out[c * rows + r] = row[c];
                }
            }
        }
    }
}
