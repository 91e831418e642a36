//! Dense kernels on slices: dot products, matrix-vector and rank-1 updates, written with chunked
//! accumulators so that LLVM vectorizes them. Each public kernel is compiled twice, once for the
//! baseline target and once with AVX2+FMA (used when the running CPU has them, detected once),
//! so the crate needs no `target-cpu` flag and stays portable. On one machine the choice is
//! fixed, so results are reproducible bit for bit.
//!
//! Matrices are row-major; `w` with `rows` rows of length `n` is `w[r * n..(r + 1) * n]`.

use super::float::Float;

/// Whether the AVX2+FMA versions can run here (cached by the standard library).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// `a * b + c`, fused where the FMA instruction is enabled.
#[inline(always)]
fn madd<F: Float, const FMA: bool>(a: F, b: F, c: F) -> F {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Accumulator lanes of a dot product.
const LANES: usize = 16;

#[inline(always)]
fn dot_imp<F: Float, const FMA: bool>(a: &[F], b: &[F]) -> F {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [F::ZERO; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] = madd::<F, FMA>(x[i], y[i], acc[i]);
        }
    }
    let mut tail = F::ZERO;
    for (&x, &y) in ra.iter().zip(rb) {
        tail = madd::<F, FMA>(x, y, tail);
    }
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

#[inline(always)]
fn axpy_imp<F: Float, const FMA: bool>(y: &mut [F], a: F, x: &[F]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = madd::<F, FMA>(a, xi, *yi);
    }
}

/// Defines a public kernel `$name` that runs `$imp::<F, true>` under AVX2+FMA when available and
/// `$imp::<F, false>` otherwise.
macro_rules! kernel {
    ($(#[$m:meta])* $name:ident => $imp:ident ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$m])*
        pub fn $name<F: Float>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast<F: Float>($($arg: $ty),*) $(-> $ret)? {
                    $imp::<F, true>($($arg),*)
                }
                if has_avx2_fma() {
                    // SAFETY: the CPU supports every feature `fast` was compiled for.
                    return unsafe { fast::<F>($($arg),*) };
                }
            }
            $imp::<F, false>($($arg),*)
        }
    };
}

kernel!(
    /// `a · b` over the common length.
    dot => dot_imp(a: &[F], b: &[F]) -> F
);

kernel!(
    /// `y += a * x`.
    axpy => axpy_imp(y: &mut [F], a: F, x: &[F])
);

#[inline(always)]
fn gemm_nt_imp<F: Float, const FMA: bool>(y: &mut [F], x: &[F], w: &[F], n: usize) {
    let rows = w.len() / n;
    let b = x.len() / n;
    for r in 0..rows {
        let wr = &w[r * n..(r + 1) * n];
        for s in 0..b {
            y[s * rows + r] += dot_imp::<F, FMA>(wr, &x[s * n..(s + 1) * n]);
        }
    }
}

kernel!(
    /// `Y += X W^T`: `y [B, rows]`, `x [B, n]`, `w [rows, n]` (every row of `w` is read once and
    /// dotted with all B vectors).
    gemm_nt_acc => gemm_nt_imp(y: &mut [F], x: &[F], w: &[F], n: usize)
);

/// `Y[i0 + r][..] += Σ_k coef(k)[r] · M[k][..]` for `r < R`, over `kd` values of k, keeping the
/// R×TILE accumulators of each column tile in registers across the whole k loop (R·TILE = 64
/// gives 8 independent FMA chains of 8 lanes).
#[inline(always)]
fn tile_rows<F: Float, const FMA: bool, const R: usize, const TILE: usize>(
    y: &mut [F],
    i0: usize,
    mm: &[F],
    n: usize,
    kd: usize,
    coef: impl Fn(usize) -> [F; R],
) {
    let mut j = 0;
    while j + TILE <= n {
        let mut acc = [[F::ZERO; TILE]; R];
        for k in 0..kd {
            let m: &[F; TILE] = mm[k * n + j..k * n + j + TILE].try_into().unwrap();
            let c = coef(k);
            for r in 0..R {
                for t in 0..TILE {
                    acc[r][t] = madd::<F, FMA>(c[r], m[t], acc[r][t]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let yr = &mut y[(i0 + r) * n + j..(i0 + r) * n + j + TILE];
            for t in 0..TILE {
                yr[t] += a[t];
            }
        }
        j += TILE;
    }
    let w = n - j;
    if w > 0 {
        let mut acc = [[F::ZERO; TILE]; R];
        for k in 0..kd {
            let m = &mm[k * n + j..k * n + n];
            let c = coef(k);
            for r in 0..R {
                for t in 0..w {
                    acc[r][t] = madd::<F, FMA>(c[r], m[t], acc[r][t]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let yr = &mut y[(i0 + r) * n + j..(i0 + r) * n + n];
            for (o, &x) in yr.iter_mut().zip(a) {
                *o += x;
            }
        }
    }
}

/// Rows handled together by one register tile.
const ROWS: usize = 4;

#[inline(always)]
fn gemm_nn_imp<F: Float, const FMA: bool>(y: &mut [F], a: &[F], mm: &[F], n: usize) {
    let kd = mm.len() / n;
    let m = y.len() / n;
    let mut i = 0;
    while i < m {
        // Blocks of 4 rows, then 2, then 1 (each block is a 64-lane register tile).
        let r = match m - i {
            1 => 1,
            2 | 3 => 2,
            _ => ROWS,
        };
        macro_rules! rows {
            ($r:literal) => {{
                let rows: [&[F]; $r] = std::array::from_fn(|q| &a[(i + q) * kd..(i + q + 1) * kd]);
                tile_rows::<F, FMA, $r, { 64 / $r }>(y, i, mm, n, kd, |k| {
                    std::array::from_fn(|q| rows[q][k])
                })
            }};
        }
        match r {
            4 => rows!(4),
            2 => rows!(2),
            _ => rows!(1),
        }
        i += r;
    }
}

kernel!(
    /// `Y += A M`: `y [m, n]`, `a [m, kd]`, `mm [kd, n]` (register-tiled).
    gemm_nn_acc => gemm_nn_imp(y: &mut [F], a: &[F], mm: &[F], n: usize)
);

#[inline(always)]
fn ger_imp<F: Float, const FMA: bool>(y: &mut [F], a: &[F], lda: usize, x: &[F], n: usize) {
    let kd = x.len() / n;
    let m = y.len() / n;
    let mut i = 0;
    while i < m {
        // Blocks of 4 rows, then 2, then 1 (each block is a 64-lane register tile).
        let r = match m - i {
            1 => 1,
            2 | 3 => 2,
            _ => ROWS,
        };
        macro_rules! rows {
            ($r:literal) => {{
                tile_rows::<F, FMA, $r, { 64 / $r }>(y, i, x, n, kd, |k| {
                    a[k * lda + i..k * lda + i + $r].try_into().unwrap()
                })
            }};
        }
        match r {
            4 => rows!(4),
            2 => rows!(2),
            _ => rows!(1),
        }
        i += r;
    }
}

kernel!(
    /// `Y += A^T X`, a sum of kd rank-1 updates: `y [m, n]`, `x [kd, n]`, and `A^T[i][k] =
    /// a[k * lda + i]` (row k of A holds the coefficients of sample k; `lda >= m` lets `y` be a
    /// block of rows of a larger product).
    ger_acc => ger_imp(y: &mut [F], a: &[F], lda: usize, x: &[F], n: usize)
);

#[inline(always)]
fn log_sum_exp_imp<F: Float, const FMA: bool>(row: &[F]) -> F {
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

kernel!(
    /// `log Σ_i exp(row_i)`, stable (shifted by the maximum). `row` must be non-empty.
    log_sum_exp => log_sum_exp_imp(row: &[F]) -> F
);

#[inline(always)]
fn softmax_scaled_imp<F: Float, const FMA: bool>(out: &mut [F], logits: &[F], lse: F, w: F) {
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = w * (l - lse).fast_exp();
    }
}

kernel!(
    /// `out_i = w · exp(logits_i − lse)`: the softmax scaled by w, given its log-sum-exp.
    softmax_scaled => softmax_scaled_imp(out: &mut [F], logits: &[F], lse: F, w: F)
);

#[inline(always)]
fn gru_cell_imp<F: Float, const FMA: bool>(
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

kernel!(
    /// One GRU cell (PyTorch's): from the input projection `xi = W_i x + b_i` and the hidden one
    /// `gh = W_h h_prev + b_h` (both `[3H]`, gates r, z, n) and `hp = h_prev [H]`, writes the
    /// activated gates `rzn [3H]`, the candidate's hidden term `ghn [H]` and the new state `hs [H]`.
    gru_cell => gru_cell_imp(
        rzn: &mut [F],
        ghn: &mut [F],
        hs: &mut [F],
        xi: &[F],
        gh: &[F],
        hp: &[F]
    )
);

/// `out [cols, rows] = a^T` for `a [rows, cols]`.
pub fn transpose<F: Float>(out: &mut [F], a: &[F], rows: usize, cols: usize) {
    for (r, row) in a.chunks_exact(cols).take(rows).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            out[c * rows + r] = x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn seq(n: usize, k: f64) -> Vec<f64> {
        (0..n).map(|i| ((i as f64) * k).sin()).collect()
    }

    #[test]
    fn kernels_agree_with_naive_loops() {
        for n in [1, 7, 16, 33, 64] {
            let (a, b) = (seq(n, 0.7), seq(n, 1.3));
            assert!((dot(&a, &b) - naive_dot(&a, &b)).abs() < 1e-12);
            let (rows, bs) = (9, 6);
            let w = seq(rows * n, 0.37);
            let x = seq(bs * n, 0.91);
            let mut y = vec![0.0; bs * rows];
            gemm_nt_acc(&mut y, &x, &w, n);
            for s in 0..bs {
                for r in 0..rows {
                    let e = naive_dot(&w[r * n..(r + 1) * n], &x[s * n..(s + 1) * n]);
                    assert!((y[s * rows + r] - e).abs() < 1e-12);
                }
            }
            let a = seq(bs * rows, 0.53);
            let mut z = vec![0.0; bs * n];
            gemm_nn_acc(&mut z, &a, &w, n);
            let mut g = vec![0.0; rows * n];
            ger_acc(&mut g, &a, rows, &x, n);
            for s in 0..bs {
                for k in 0..n {
                    let e: f64 = (0..rows).map(|r| a[s * rows + r] * w[r * n + k]).sum();
                    assert!((z[s * n + k] - e).abs() < 1e-12);
                }
            }
            for r in 0..rows {
                for k in 0..n {
                    let e: f64 = (0..bs).map(|s| a[s * rows + r] * x[s * n + k]).sum();
                    assert!((g[r * n + k] - e).abs() < 1e-12);
                }
            }
            // A block of rows 2..7 of the same product, through `lda`.
            let mut blk = vec![0.0; 5 * n];
            ger_acc(&mut blk, &a[2..], rows, &x, n);
            for (q, v) in blk.iter().enumerate() {
                assert!((v - g[2 * n + q]).abs() < 1e-12);
            }
            let mut t = vec![0.0; rows * n];
            transpose(&mut t, &w, rows, n);
            assert!((0..rows).all(|r| (0..n).all(|k| t[k * rows + r] == w[r * n + k])));
        }
    }
}
