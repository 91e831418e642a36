//! Dense kernels on slices: dot products, matrix products and rank-1 updates, written with
//! register tiles of fixed-size accumulator arrays so that LLVM vectorizes them. Each public kernel
//! is compiled three times: for the baseline target, with AVX2+FMA and with AVX-512F (wider tiles);
//! the best one the running CPU supports is chosen once (see [`Isa`]), so the crate needs no
//! `target-cpu` flag and stays portable. The AVX2 and AVX-512 versions compute every output element
//! with the same operations in the same order, so they agree bit for bit; on one machine the choice
//! is fixed anyway, so results are reproducible.
//!
//! Matrices are row-major; `w` with `rows` rows of length `n` is `w[r * n..(r + 1) * n]`.

use super::float::Float;
use std::any::TypeId;
use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction sets a kernel has versions for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The target's baseline (no FMA).
    Base,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512F (with AVX2 and FMA).
    Avx512,
}

/// f32 lanes per vector register of each kernel version, the const parameter `W` of the
/// implementations (the baseline is taken as SSE2's 4; anything below [`AVX2`] means no FMA).
const BASE: usize = 4;
const AVX2: usize = 8;
const AVX512: usize = 16;

/// The detected [`Isa`], cached: 0 = not yet detected, else `1 + Isa as u8`.
static DETECTED: AtomicU8 = AtomicU8::new(0);

impl Isa {
    /// The best instruction set this CPU supports (detected once).
    pub fn detect() -> Isa {
        match DETECTED.load(Ordering::Relaxed) {
            1 => Isa::Base,
            2 => Isa::Avx2,
            3 => Isa::Avx512,
            _ => {
                let isa = Self::probe();
                DETECTED.store(
                    match isa {
                        Isa::Base => 1,
                        Isa::Avx2 => 2,
                        Isa::Avx512 => 3,
                    },
                    Ordering::Relaxed,
                );
                isa
            }
        }
    }

    fn probe() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                if std::is_x86_feature_detected!("avx512f") {
                    return Isa::Avx512;
                }
                return Isa::Avx2;
            }
        }
        Isa::Base
    }

    /// Whether this CPU can run kernels compiled for `self`.
    pub fn supported(self) -> bool {
        match self {
            Isa::Base => true,
            Isa::Avx2 => Isa::detect() != Isa::Base,
            Isa::Avx512 => Isa::detect() == Isa::Avx512,
        }
    }
}

/// `a * b + c`, fused where the FMA instruction is enabled.
#[inline(always)]
fn madd<F: Float, const W: usize>(a: F, b: F, c: F) -> F {
    if W >= AVX2 {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Accumulator lanes of a dot product.
const LANES: usize = 16;

/// Tree reduction of a dot product's lanes, plus its scalar tail.
#[inline(always)]
fn reduce_lanes<F: Float>(mut acc: [F; LANES], tail: F) -> F {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

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

#[inline(always)]
fn axpy_imp<F: Float, const W: usize>(y: &mut [F], a: F, x: &[F]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = madd::<F, W>(a, xi, *yi);
    }
}

/// Defines a public kernel `$name` that runs the best version of `$imp` for this CPU, and
/// `$name_isa` that runs the version for a given [`Isa`] (which must be supported).
macro_rules! kernel {
    ($(#[$m:meta])* $name:ident, $name_isa:ident => $imp:ident ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$m])*
        pub fn $name<F: Float>($($arg: $ty),*) $(-> $ret)? {
            $name_isa::<F>(Isa::detect(), $($arg),*)
        }

        $(#[$m])*
        ///
        /// This is the version compiled for `isa`, which must be [supported](Isa::supported)
        /// (else the baseline runs).
        pub fn $name_isa<F: Float>(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512<F: Float>($($arg: $ty),*) $(-> $ret)? {
                    $imp::<F, AVX512>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2<F: Float>($($arg: $ty),*) $(-> $ret)? {
                    $imp::<F, AVX2>($($arg),*)
                }
                if isa == Isa::Avx512 && isa.supported() {
                    // SAFETY: the CPU supports every feature `avx512` was compiled for.
                    return unsafe { avx512::<F>($($arg),*) };
                }
                if isa != Isa::Base && Isa::Avx2.supported() {
                    // SAFETY: the CPU supports every feature `avx2` was compiled for.
                    return unsafe { avx2::<F>($($arg),*) };
                }
            }
            let _ = isa;
            $imp::<F, BASE>($($arg),*)
        }
    };
}

kernel!(
    /// `a · b` over the common length.
    dot, dot_isa => dot_imp(a: &[F], b: &[F]) -> F
);

kernel!(
    /// `y += a * x`.
    axpy, axpy_isa => axpy_imp(y: &mut [F], a: F, x: &[F])
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

kernel!(
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
fn col_tile<F: Float, const W: usize, const R: usize, const T: usize>(
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
            yr[t] += a[t];
        }
    }
}

/// `Y[i0 + r][..] += Σ_k coef(k)[r] · M[k][..]` for `r < R`, over `kd` values of k, in tiles of
/// `T` columns (the last one overlapping, or single columns when `n < T`). The portable version.
#[inline(always)]
fn tile_rows<F: Float, const W: usize, const R: usize, const T: usize>(
    y: &mut [F],
    i0: usize,
    mm: &[F],
    n: usize,
    kd: usize,
    coef: impl Fn(usize) -> [F; R],
) {
    let mut j = 0;
    while j + T <= n {
        col_tile::<F, W, R, T>(y, i0, mm, n, kd, &coef, j, 0);
        j += T;
    }
    if j < n && n >= T {
        col_tile::<F, W, R, T>(y, i0, mm, n, kd, &coef, n - T, j + T - n);
    } else {
        for j in j..n {
            col_tile::<F, W, R, 1>(y, i0, mm, n, kd, &coef, j, 0);
        }
    }
}

/// Explicit SIMD versions of [`tile_rows`] for `f32`, one module per instruction set.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_tiles {
    ($(#[$m:meta])* $module:ident, $feat:literal, $v:ty, $lanes:literal, $zero:ident, $set1:ident,
     $load:ident, $store:ident, $fmadd:ident, $add:ident) => {
        $(#[$m])*
        pub(super) mod $module {
            use std::arch::x86_64::*;

            /// f32 lanes per register.
            const L: usize = $lanes;

            /// [`col_tile`](super::col_tile) with `NV` registers of columns: `y` points at
            /// `Y[i0][j]`, `mm` at `M[0][j]`; both have row stride `n`.
            ///
            /// # Safety
            /// The CPU has the features; rows `0..R` of `y` and `0..kd` of `mm` have `NV · L`
            /// columns from the pointers on.
            #[target_feature(enable = $feat)]
            #[inline]
            #[allow(clippy::needless_range_loop)]
            unsafe fn tile<const R: usize, const NV: usize>(
                y: *mut f32,
                mm: *const f32,
                n: usize,
                kd: usize,
                coef: &impl Fn(usize) -> [f32; R],
                skip: usize,
            ) {
                let mut acc = [[$zero(); NV]; R];
                let mut p = mm;
                for k in 0..kd {
                    let c = coef(k);
                    let mut m = [$zero(); NV];
                    for v in 0..NV {
                        m[v] = $load(p.add(v * L));
                    }
                    for r in 0..R {
                        let cb = $set1(c[r]);
                        for v in 0..NV {
                            acc[r][v] = $fmadd(cb, m[v], acc[r][v]);
                        }
                    }
                    p = p.wrapping_add(n);
                }
                for r in 0..R {
                    let yr = y.add(r * n);
                    if skip == 0 {
                        for v in 0..NV {
                            let q = yr.add(v * L);
                            $store(q, $add($load(q), acc[r][v]));
                        }
                    } else {
                        let mut tmp = [[0.0f32; L]; NV];
                        for v in 0..NV {
                            $store(tmp[v].as_mut_ptr(), acc[r][v]);
                        }
                        for t in skip..NV * L {
                            *yr.add(t) += tmp[t / L][t % L];
                        }
                    }
                }
            }

            /// [`tile_rows`](super::tile_rows) for `f32`: tiles of `NV`, 4, 2 and 1 registers,
            /// then an overlapping one-register tile (or single columns when `n < L`).
            ///
            /// # Safety
            /// The CPU has the features.
            #[target_feature(enable = $feat)]
            #[inline]
            pub unsafe fn rows<const R: usize, const NV: usize>(
                y: &mut [f32],
                i0: usize,
                mm: &[f32],
                n: usize,
                kd: usize,
                coef: impl Fn(usize) -> [f32; R],
            ) {
                assert!(y.len() >= (i0 + R) * n && mm.len() >= kd * n);
                let (yp, mp) = (y.as_mut_ptr().add(i0 * n), mm.as_ptr());
                let mut j = 0;
                while j + NV * L <= n {
                    tile::<R, NV>(yp.add(j), mp.add(j), n, kd, &coef, 0);
                    j += NV * L;
                }
                while j + 4 * L <= n {
                    tile::<R, 4>(yp.add(j), mp.add(j), n, kd, &coef, 0);
                    j += 4 * L;
                }
                while j + 2 * L <= n {
                    tile::<R, 2>(yp.add(j), mp.add(j), n, kd, &coef, 0);
                    j += 2 * L;
                }
                while j + L <= n {
                    tile::<R, 1>(yp.add(j), mp.add(j), n, kd, &coef, 0);
                    j += L;
                }
                if j < n && n >= L {
                    tile::<R, 1>(yp.add(n - L), mp.add(n - L), n, kd, &coef, j + L - n);
                } else {
                    for j in j..n {
                        let mut acc = [0.0f32; R];
                        for k in 0..kd {
                            let c = coef(k);
                            for r in 0..R {
                                acc[r] = c[r].mul_add(mm[k * n + j], acc[r]);
                            }
                        }
                        for r in 0..R {
                            y[(i0 + r) * n + j] += acc[r];
                        }
                    }
                }
            }

            /// Registers per 16-lane dot-product accumulator.
            const NL: usize = super::LANES / L;

            /// [`dot_tile`](super::dot_tile) for `f32`, bit for bit.
            ///
            /// # Safety
            /// The CPU has the features.
            #[target_feature(enable = $feat)]
            #[inline]
            #[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
            unsafe fn dots<const RR: usize, const SS: usize>(
                y: &mut [f32],
                x: &[f32],
                w: &[f32],
                n: usize,
                rows: usize,
                r: usize,
                s: usize,
            ) {
                assert!(w.len() >= (r + RR) * n && x.len() >= (s + SS) * n);
                let (wp, xp) = (w.as_ptr().add(r * n), x.as_ptr().add(s * n));
                let mut acc = [[[$zero(); NL]; SS]; RR];
                let full = n / super::LANES * super::LANES;
                let mut i = 0;
                while i < full {
                    for h in 0..NL {
                        let mut b = [$zero(); SS];
                        for q in 0..SS {
                            b[q] = $load(xp.add(q * n + i + h * L));
                        }
                        for p in 0..RR {
                            let a = $load(wp.add(p * n + i + h * L));
                            for q in 0..SS {
                                acc[p][q][h] = $fmadd(a, b[q], acc[p][q][h]);
                            }
                        }
                    }
                    i += super::LANES;
                }
                for p in 0..RR {
                    for q in 0..SS {
                        let mut lanes = [0.0f32; super::LANES];
                        for h in 0..NL {
                            $store(lanes.as_mut_ptr().add(h * L), acc[p][q][h]);
                        }
                        let mut tail = 0.0f32;
                        for k in full..n {
                            tail = (*wp.add(p * n + k)).mul_add(*xp.add(q * n + k), tail);
                        }
                        y[(s + q) * rows + r + p] += super::reduce_lanes(lanes, tail);
                    }
                }
            }

            /// [`gemm_nt_acc`](super::gemm_nt_acc) for `f32`: tiles of `RR` rows by 2 vectors.
            ///
            /// # Safety
            /// The CPU has the features.
            #[target_feature(enable = $feat)]
            #[inline]
            pub unsafe fn gemm_nt(y: &mut [f32], x: &[f32], w: &[f32], n: usize) {
                const RR: usize = 4 / NL;
                let rows = w.len() / n;
                let b = x.len() / n;
                let mut r = 0;
                while r < rows {
                    let full = r + RR <= rows;
                    let mut s = 0;
                    while s < b {
                        match (full, s + 2 <= b) {
                            (true, true) => dots::<RR, 2>(y, x, w, n, rows, r, s),
                            (true, false) => dots::<RR, 1>(y, x, w, n, rows, r, s),
                            (false, true) => dots::<1, 2>(y, x, w, n, rows, r, s),
                            (false, false) => dots::<1, 1>(y, x, w, n, rows, r, s),
                        }
                        s += 2;
                    }
                    r += if full { RR } else { 1 };
                }
            }
        }
    };
}

// The AVX-512 intrinsics are stable since Rust 1.89, the crate's declared rust-version.
#[cfg(target_arch = "x86_64")]
simd_tiles!(
    /// AVX-512F tiles (16 lanes).
    avx512, "avx512f,avx2,fma", __m512, 16, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps,
    _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps
);

#[cfg(target_arch = "x86_64")]
simd_tiles!(
    /// AVX2+FMA tiles (8 lanes).
    avx2, "avx2,fma", __m256, 8, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps,
    _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps
);

/// One arm of [`row_blocks`]: `$body` with the constants `$r` (rows) and `$nv` (registers of
/// columns) defined.
macro_rules! row_block_arm {
    ($r:ident, $nv:ident, $rv:literal, $nvv:literal, $body:block) => {{
        const $r: usize = $rv;
        const $nv: usize = $nvv;
        $body
    }};
}

/// Runs `$body` for blocks of rows `$i..$i + R` covering `0..$m`, with `R` and the tile width
/// `NV` (in registers) as constants chosen for the ISA `$w`: blocks as even as possible of at most
/// 8 rows (AVX-512), 6 (AVX2) or 4 (baseline), and 8 to 20 accumulator registers per tile.
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
            let rows = rest.div_ceil(rest.div_ceil(max_rows));
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
                    2 => row_block_arm!($r, $nv, 2, 4, $body),
                    3 => row_block_arm!($r, $nv, 3, 3, $body),
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
    ($w:ident, $r:ident, $nv:ident, $f:ty, $y:expr, $i:expr, $mm:expr, $n:expr, $kd:expr, $coef:expr) => {{
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
                            avx512::rows::<$r, $nv>(y, $i, mm, $n, $kd, coef);
                        } else {
                            avx2::rows::<$r, $nv>(y, $i, mm, $n, $kd, coef);
                        }
                    }
                    true
                }
                _ => false,
            };
        #[cfg(not(target_arch = "x86_64"))]
        let done = false;
        if !done {
            tile_rows::<$f, $w, $r, { $nv * 4 }>($y, $i, $mm, $n, $kd, $coef);
        }
    }};
}

#[inline(always)]
fn gemm_nn_imp<F: Float, const W: usize>(y: &mut [F], a: &[F], mm: &[F], n: usize) {
    let kd = mm.len() / n;
    row_blocks!(W, y.len() / n, |i, R, NV| {
        let rows: [&[F]; R] = std::array::from_fn(|q| &a[(i + q) * kd..(i + q + 1) * kd]);
        rows_of!(W, R, NV, F, y, i, mm, n, kd, |k| std::array::from_fn(|q| {
            rows[q][k]
        }));
    });
}

kernel!(
    /// `Y += A M`: `y [m, n]`, `a [m, kd]`, `mm [kd, n]` (register-tiled).
    gemm_nn_acc, gemm_nn_acc_isa => gemm_nn_imp(y: &mut [F], a: &[F], mm: &[F], n: usize)
);

#[inline(always)]
fn ger_imp<F: Float, const W: usize>(y: &mut [F], a: &[F], lda: usize, x: &[F], n: usize) {
    let kd = x.len() / n;
    row_blocks!(W, y.len() / n, |i, R, NV| {
        rows_of!(W, R, NV, F, y, i, x, n, kd, |k| -> [F; R] {
            a[k * lda + i..k * lda + i + R].try_into().unwrap()
        });
    });
}

kernel!(
    /// `Y += A^T X`, a sum of kd rank-1 updates: `y [m, n]`, `x [kd, n]`, and `A^T[i][k] =
    /// a[k * lda + i]` (row k of A holds the coefficients of sample k; `lda >= m` lets `y` be a
    /// block of rows of a larger product).
    ger_acc, ger_acc_isa => ger_imp(y: &mut [F], a: &[F], lda: usize, x: &[F], n: usize)
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

kernel!(
    /// `log Σ_i exp(row_i)`, stable (shifted by the maximum). `row` must be non-empty.
    log_sum_exp, log_sum_exp_isa => log_sum_exp_imp(row: &[F]) -> F
);

#[inline(always)]
fn softmax_scaled_imp<F: Float, const W: usize>(out: &mut [F], logits: &[F], lse: F, w: F) {
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = w * (l - lse).fast_exp();
    }
}

kernel!(
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

kernel!(
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
