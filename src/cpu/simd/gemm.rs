//! Matrix products on slices: dot products (`dot`, `gemm_nt_acc`), `Y += A M` (`gemm_nn_acc`) and
//! sums of rank-1 updates (`ger_acc`), as register tiles of fixed-size accumulator arrays that
//! LLVM vectorizes (the portable versions) or explicit AVX2 / AVX-512 tiles for `f32` (in `x86`).

use super::isa::{madd, reduce_lanes, Isa, AVX2, AVX512, BASE, LANES};
#[cfg(target_arch = "x86_64")]
use super::x86::{avx2, avx512};
use crate::cpu::float::Float;
use std::any::TypeId;

/// `RR × SS` dot products at once, `w` rows `r..r + RR` against `x` rows `s..s + SS` (length
/// `n`), each added to `y[(s + q) * rows + r + p]`; every product is computed exactly as
/// [`dot`] computes it (16 lanes, scalar tail, tree reduction), with the loads shared.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dot_tile<F: Float, const W: usize, const RR: usize, const SS: usize>(
    y: &mut [F],
    x: &[F],
    w: &[F],
    n: usize,
    rows: usize,
    r: usize,
    s: usize,
) {
    let wr: [&[F]; RR] = std::array::from_fn(|p| &w[(r + p) * n..(r + p + 1) * n]);
    let xs: [&[F]; SS] = std::array::from_fn(|q| &x[(s + q) * n..(s + q + 1) * n]);
    let mut acc = [[[F::ZERO; LANES]; SS]; RR];
    let full = n / LANES * LANES;
    let mut i = 0;
    while i < full {
        let a: [&[F; LANES]; RR] = std::array::from_fn(|p| wr[p][i..i + LANES].try_into().unwrap());
        let b: [&[F; LANES]; SS] = std::array::from_fn(|q| xs[q][i..i + LANES].try_into().unwrap());
        for p in 0..RR {
            for q in 0..SS {
                for l in 0..LANES {
                    acc[p][q][l] = madd::<F, W>(a[p][l], b[q][l], acc[p][q][l]);
                }
            }
        }
        i += LANES;
    }
    for p in 0..RR {
        for q in 0..SS {
            let mut tail = F::ZERO;
            for k in full..n {
                tail = madd::<F, W>(wr[p][k], xs[q][k], tail);
            }
            y[(s + q) * rows + r + p] += reduce_lanes(acc[p][q], tail);
        }
    }
}

#[inline(always)]
fn dot_imp<F: Float, const W: usize>(a: &[F], b: &[F]) -> F {
    let n = a.len().min(b.len());
    let mut y = [F::ZERO];
    dot_tile::<F, W, 1, 1>(&mut y, &b[..n], &a[..n], n, 1, 0, 0);
    y[0]
}

simd_fn!(
    /// `a · b` over the common length.
    dot, dot_isa => dot_imp(a: &[F], b: &[F]) -> F
);

#[inline(always)]
fn gemm_nt_imp<F: Float, const W: usize>(y: &mut [F], x: &[F], w: &[F], n: usize) {
    #[cfg(target_arch = "x86_64")]
    if W >= AVX2 {
        if let (Some(y), Some(x), Some(w)) = (as_f32_mut(y), as_f32(x), as_f32(w)) {
            // SAFETY: the W >= AVX2 versions only run where the CPU has their features.
            unsafe {
                if W >= AVX512 {
                    avx512::gemm_nt(y, x, w, n);
                } else {
                    avx2::gemm_nt(y, x, w, n);
                }
            }
            return;
        }
    }
    // The portable version: tiles of 2 rows by 2 vectors, then the edges one at a time.
    let rows = w.len() / n;
    let b = x.len() / n;
    let mut r = 0;
    while r < rows {
        let full = r + 2 <= rows;
        let mut s = 0;
        while s < b {
            match (full, s + 2 <= b) {
                (true, true) => dot_tile::<F, W, 2, 2>(y, x, w, n, rows, r, s),
                (true, false) => dot_tile::<F, W, 2, 1>(y, x, w, n, rows, r, s),
                (false, true) => dot_tile::<F, W, 1, 2>(y, x, w, n, rows, r, s),
                (false, false) => dot_tile::<F, W, 1, 1>(y, x, w, n, rows, r, s),
            }
            s += 2;
        }
        r += if full { 2 } else { 1 };
    }
}

simd_fn!(
    /// `Y += X W^T`: `y [B, rows]`, `x [B, n]`, `w [rows, n]` (register-tiled dot products, each
    /// computed as [`dot`] does).
    gemm_nt_acc, gemm_nt_acc_isa => gemm_nt_imp(y: &mut [F], x: &[F], w: &[F], n: usize)
);

/// `x` as `f32`s when `F` is `f32`.
#[inline(always)]
fn as_f32<F: Float>(x: &[F]) -> Option<&[f32]> {
    // SAFETY: F is f32, so the memory holds f32s.
    (TypeId::of::<F>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast(), x.len()) })
}

/// `x` as `f32`s when `F` is `f32`.
#[inline(always)]
fn as_f32_mut<F: Float>(x: &mut [F]) -> Option<&mut [f32]> {
    // SAFETY: F is f32, so the memory holds f32s.
    (TypeId::of::<F>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast(), x.len()) })
}

/// Columns `j..j + T` of rows `i0..i0 + R` of `Y += Σ_k coef(k) ⊗ M[k]`: the `R × T` accumulators
/// stay in registers across the whole k loop, then `Y[i0 + r][j + t] += acc[r][t]` for
/// `t >= skip` (a tile overlapping the previous one at the right edge adds only its new columns).
/// Every element is the sum over k in order from zero, added to Y once: the tiling does not change
/// a bit, and the explicit SIMD versions ([`avx512`], [`avx2`]) compute the same.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn col_tile<F: Float, const W: usize, const R: usize, const T: usize, const SET: bool>(
    y: &mut [F],
    i0: usize,
    mm: &[F],
    n: usize,
    kd: usize,
    coef: &impl Fn(usize) -> [F; R],
    j: usize,
    skip: usize,
) {
    let mut acc = [[F::ZERO; T]; R];
    for k in 0..kd {
        let m: &[F; T] = mm[k * n + j..k * n + j + T].try_into().unwrap();
        let c = coef(k);
        for r in 0..R {
            for t in 0..T {
                acc[r][t] = madd::<F, W>(c[r], m[t], acc[r][t]);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let yr = &mut y[(i0 + r) * n + j..(i0 + r) * n + j + T];
        for t in skip..T {
            if SET {
                yr[t] = a[t];
            } else {
                yr[t] += a[t];
            }
        }
    }
}

/// `Y[i0 + r][..] += Σ_k coef(k)[r] · M[k][..]` for `r < R`, over `kd` values of k, in tiles of
/// `T` columns (the last one overlapping, or single columns when `n < T`). The portable version.
#[inline(always)]
fn tile_rows<F: Float, const W: usize, const R: usize, const T: usize, const SET: bool>(
    y: &mut [F],
    i0: usize,
    mm: &[F],
    n: usize,
    kd: usize,
    coef: impl Fn(usize) -> [F; R],
) {
    let mut j = 0;
    while j + T <= n {
        col_tile::<F, W, R, T, SET>(y, i0, mm, n, kd, &coef, j, 0);
        j += T;
    }
    if j < n && n >= T {
        col_tile::<F, W, R, T, SET>(y, i0, mm, n, kd, &coef, n - T, j + T - n);
    } else {
        for j in j..n {
            col_tile::<F, W, R, 1, SET>(y, i0, mm, n, kd, &coef, j, 0);
        }
    }
}

/// One arm of `row_blocks!`: `$body` with the constants `$r` (rows) and `$nv` (registers of
/// columns) defined.
macro_rules! row_block_arm {
    ($r:ident, $nv:ident, $rv:literal, $nvv:literal, $body:block) => {{
        const $r: usize = $rv;
        const $nv: usize = $nvv;
        $body
    }};
}

/// Runs `$body` for blocks of rows `$i..$i + R` covering `0..$m`, with `R` and the tile width
/// `NV` (in registers) as constants chosen for the ISA `$w`, and 8 to 20 accumulator registers per
/// tile: blocks as even as possible of at most 8 rows (AVX-512) or 4 (baseline); with AVX2, blocks
/// of 6 rows with the rest as 5, 3, 2 or 1 rows (a rest of 4 as 2 + 2, of 7, 8 and 10 as 5 and
/// the rest), because on Zen 2 the 4-row tile runs slower per row than the others (GFLOP/s with
/// k 64 and n 192, one core: 1 row 52, 2 rows 90, 3 rows 96, 4 rows 66, 5 rows 99, 6 rows 101).
/// The blocking does not change a bit of the result: every element is the same sum in the same
/// order.
macro_rules! row_blocks {
    ($w:ident, $m:expr, |$i:ident, $r:ident, $nv:ident| $body:block) => {{
        let m = $m;
        let max_rows = if $w >= AVX512 {
            8
        } else if $w >= AVX2 {
            6
        } else {
            4
        };
        let mut $i = 0;
        while $i < m {
            let rest = m - $i;
            let rows = if $w >= AVX2 && $w < AVX512 {
                match rest {
                    4 => 2,
                    7 | 8 | 10 => 5,
                    r => r.min(max_rows),
                }
            } else {
                rest.div_ceil(rest.div_ceil(max_rows))
            };
            if $w >= AVX512 {
                match rows {
                    1 => row_block_arm!($r, $nv, 1, 8, $body),
                    2 => row_block_arm!($r, $nv, 2, 4, $body),
                    3 => row_block_arm!($r, $nv, 3, 4, $body),
                    4 => row_block_arm!($r, $nv, 4, 4, $body),
                    5 => row_block_arm!($r, $nv, 5, 4, $body),
                    6 => row_block_arm!($r, $nv, 6, 2, $body),
                    7 => row_block_arm!($r, $nv, 7, 2, $body),
                    _ => row_block_arm!($r, $nv, 8, 2, $body),
                }
            } else if $w >= AVX2 {
                match rows {
                    1 => row_block_arm!($r, $nv, 1, 8, $body),
                    2 => row_block_arm!($r, $nv, 2, 6, $body),
                    3 => row_block_arm!($r, $nv, 3, 4, $body),
                    4 => row_block_arm!($r, $nv, 4, 2, $body),
                    5 => row_block_arm!($r, $nv, 5, 2, $body),
                    _ => row_block_arm!($r, $nv, 6, 2, $body),
                }
            } else {
                match rows {
                    1 => row_block_arm!($r, $nv, 1, 16, $body),
                    2 => row_block_arm!($r, $nv, 2, 8, $body),
                    3 => row_block_arm!($r, $nv, 3, 4, $body),
                    _ => row_block_arm!($r, $nv, 4, 4, $body),
                }
            }
            $i += rows;
        }
    }};
}

/// Rows `i..i + R` of `Y += Σ_k coef(k) ⊗ M[k]` with the tiles of ISA `W`: explicit SIMD for
/// `f32` on AVX2 and AVX-512, else the portable [`tile_rows`] (tiles of `NV` × 4 columns).
macro_rules! rows_of {
    ($w:ident, $r:ident, $nv:ident, $set:expr, $f:ty, $y:expr, $i:expr, $mm:expr, $n:expr, $kd:expr, $coef:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let done = $w >= AVX2
            && match (as_f32_mut($y), as_f32($mm)) {
                (Some(y), Some(mm)) => {
                    let coef = $coef;
                    // The f32 instantiation's coefficients, unchanged.
                    let coef = move |k: usize| -> [f32; $r] {
                        let c: [$f; $r] = coef(k);
                        std::array::from_fn(|q| c[q].to_f64() as f32)
                    };
                    // SAFETY: the W >= AVX2 versions only run where the CPU has their features.
                    unsafe {
                        if $w >= AVX512 {
                            avx512::rows::<$r, $nv, $set>(y, $i, mm, $n, $kd, coef);
                        } else {
                            avx2::rows::<$r, $nv, $set>(y, $i, mm, $n, $kd, coef);
                        }
                    }
                    true
                }
                _ => false,
            };
        #[cfg(not(target_arch = "x86_64"))]
        let done = false;
        if !done {
            tile_rows::<$f, $w, $r, { $nv * 4 }, $set>($y, $i, $mm, $n, $kd, $coef);
        }
    }};
}

#[inline(always)]
fn gemm_nn_imp<F: Float, const W: usize>(y: &mut [F], a: &[F], mm: &[F], n: usize) {
    let kd = mm.len() / n;
    row_blocks!(W, y.len() / n, |i, R, NV| {
        let rows: [&[F]; R] = std::array::from_fn(|q| &a[(i + q) * kd..(i + q + 1) * kd]);
        rows_of!(
            W,
            R,
            NV,
            false,
            F,
            y,
            i,
            mm,
            n,
            kd,
            |k| std::array::from_fn(|q| { rows[q][k] })
        );
    });
}

simd_fn!(
    /// `Y += A M`: `y [m, n]`, `a [m, kd]`, `mm [kd, n]` (register-tiled).
    gemm_nn_acc, gemm_nn_acc_isa => gemm_nn_imp(y: &mut [F], a: &[F], mm: &[F], n: usize)
);

/// `Y (+)= A^T X` (`SET`: assigned), the sums of [`ger_acc`].
#[inline(always)]
fn ger_into<F: Float, const W: usize, const SET: bool>(
    y: &mut [F],
    a: &[F],
    lda: usize,
    x: &[F],
    n: usize,
) {
    let kd = x.len() / n;
    row_blocks!(W, y.len() / n, |i, R, NV| {
        rows_of!(W, R, NV, SET, F, y, i, x, n, kd, |k| -> [F; R] {
            a[k * lda + i..k * lda + i + R].try_into().unwrap()
        });
    });
}

#[inline(always)]
fn ger_imp<F: Float, const W: usize>(y: &mut [F], a: &[F], lda: usize, x: &[F], n: usize) {
    ger_into::<F, W, false>(y, a, lda, x, n);
}

#[inline(always)]
fn ger_set_imp<F: Float, const W: usize>(y: &mut [F], a: &[F], lda: usize, x: &[F], n: usize) {
    ger_into::<F, W, true>(y, a, lda, x, n);
}

simd_fn!(
    /// `Y += A^T X`, a sum of kd rank-1 updates: `y [m, n]`, `x [kd, n]`, and `A^T[i][k] =
    /// a[k * lda + i]` (row k of A holds the coefficients of sample k; `lda >= m` lets `y` be a
    /// block of rows of a larger product).
    ger_acc, ger_acc_isa => ger_imp(y: &mut [F], a: &[F], lda: usize, x: &[F], n: usize)
);

simd_fn!(
    /// `Y = A^T X`, assigned: [`ger_acc`] into a `y` of zeros, bit for bit (each element's sum
    /// starts from +0, so it is never −0, and `0 + s = s`), without reading `y`; kd 0 writes
    /// zeros.
    ger_set, ger_set_isa => ger_set_imp(y: &mut [F], a: &[F], lda: usize, x: &[F], n: usize)
);

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize, k: f64) -> Vec<f64> {
        (0..n).map(|i| ((i as f64) * k).sin()).collect()
    }

    /// f32 products of every shape class (row blocks of 1 to 11 rows, column tiles, overlapping
    /// and single-column edges) on each ISA this CPU supports: close to an f64 reference, and the
    /// AVX2 and AVX-512 versions equal bit for bit (they must compute the same operations).
    #[test]
    fn isa_versions_agree() {
        let isas: Vec<Isa> = [Isa::Base, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| i.supported())
            .collect();
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        for (m, kd, n) in [
            (1, 3, 5),
            (5, 64, 1519),
            (10, 25, 200),
            (11, 7, 16),
            (3, 192, 64),
        ] {
            let a = seq(m * kd, 0.31);
            let mm = seq(kd * n, 0.77);
            let x = seq(m * n, 0.13);
            let at = seq(kd * m, 0.59); // A^T for ger: row k holds sample k's m coefficients
            let mut want_nn = vec![0.0; m * n];
            let mut want_ger = vec![0.0; m * n];
            let mut want_nt = vec![0.0; m * kd];
            gemm_nn_acc_isa(Isa::Base, &mut want_nn, &a, &mm, n);
            ger_acc_isa(Isa::Base, &mut want_ger, &at, m, &mm, n);
            gemm_nt_acc_isa(Isa::Base, &mut want_nt, &x, &mm, n);
            let mut bits: Vec<Vec<u32>> = Vec::new();
            for &isa in &isas {
                let mut nn = vec![1.0f32; m * n];
                let mut ger = vec![1.0f32; m * n];
                let mut nt = vec![1.0f32; m * kd];
                gemm_nn_acc_isa(isa, &mut nn, &f32s(&a), &f32s(&mm), n);
                ger_acc_isa(isa, &mut ger, &f32s(&at), m, &f32s(&mm), n);
                gemm_nt_acc_isa(isa, &mut nt, &f32s(&x), &f32s(&mm), n);
                for (got, want) in [(&nn, &want_nn), (&ger, &want_ger), (&nt, &want_nt)] {
                    let tol = 1e-5 * (n.max(kd) as f64);
                    for (g, w) in got.iter().zip(want.iter()) {
                        assert!(((*g as f64) - 1.0 - w).abs() < tol, "{isa:?} {m}x{kd}x{n}");
                    }
                }
                // The assigning ger over garbage equals ger_acc into zeros, bit for bit.
                let mut zeros = vec![0.0f32; m * n];
                ger_acc_isa(isa, &mut zeros, &f32s(&at), m, &f32s(&mm), n);
                let mut set = vec![f32::NAN; m * n];
                ger_set_isa(isa, &mut set, &f32s(&at), m, &f32s(&mm), n);
                assert!(
                    set.iter()
                        .zip(&zeros)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{isa:?} ger_set {m}x{kd}x{n}"
                );
                let mut empty = vec![f32::NAN; m * n];
                ger_set_isa(isa, &mut empty, &[], m, &[], n);
                assert!(
                    empty.iter().all(|v| v.to_bits() == 0),
                    "{isa:?} ger_set kd 0"
                );
                let all = nn.iter().chain(&ger).chain(&nt);
                bits.push(all.map(|v| v.to_bits()).collect());
            }
            if let Some(pos) = isas.iter().position(|&i| i == Isa::Avx2) {
                for b in &bits[pos..] {
                    assert!(b == &bits[pos], "AVX2 and AVX-512 differ at {m}x{kd}x{n}");
                }
            }
        }
    }
}
