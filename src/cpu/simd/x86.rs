//! Explicit SIMD versions of the `f32` matrix tiles of `gemm.rs` for x86-64, one module per
//! instruction set (`avx512`, `avx2`), generated from one macro so that both compute every output
//! element with the same operations in the same order.

use super::isa::{reduce_lanes, LANES};

/// Explicit SIMD versions of `gemm::tile_rows` for `f32`, one module per
/// instruction set.
macro_rules! simd_tiles {
    ($(#[$m:meta])* $module:ident, $feat:literal, $v:ty, $lanes:literal, $regs:literal, $zero:ident, $set1:ident,
     $load:ident, $store:ident, $fmadd:ident, $add:ident) => {
        $(#[$m])*
        pub(super) mod $module {
            use std::arch::x86_64::*;

            /// f32 lanes per register.
            const L: usize = $lanes;

            /// Vector registers of the instruction set.
            const REGS: usize = $regs;

            /// `gemm::col_tile` with `NV` registers of columns: `y` points at
            /// `Y[i0][j]`, `mm` at `M[0][j]`; both have row stride `n`. Where the `R · NV`
            /// accumulators and `R` broadcast coefficients fit in the registers, each step of k
            /// broadcasts the coefficients first and streams the `NV` loads through one register;
            /// otherwise it loads the `NV` vectors first and broadcasts one coefficient at a
            /// time. Either order does the same multiply-adds on each accumulator.
            ///
            /// # Safety
            /// The CPU has the features; rows `0..R` of `y` and `0..kd` of `mm` have `NV · L`
            /// columns from the pointers on.
            #[target_feature(enable = $feat)]
            #[inline]
            #[allow(clippy::needless_range_loop)]
            unsafe fn tile<const R: usize, const NV: usize, const SET: bool>(
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
                    if R * NV + R < REGS {
                        let mut cb = [$zero(); R];
                        for r in 0..R {
                            cb[r] = $set1(c[r]);
                        }
                        for v in 0..NV {
                            let m = $load(p.add(v * L));
                            for r in 0..R {
                                acc[r][v] = $fmadd(cb[r], m, acc[r][v]);
                            }
                        }
                    } else {
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
                    }
                    p = p.wrapping_add(n);
                }
                for r in 0..R {
                    let yr = y.add(r * n);
                    if skip == 0 {
                        for v in 0..NV {
                            let q = yr.add(v * L);
                            if SET {
                                $store(q, acc[r][v]);
                            } else {
                                $store(q, $add($load(q), acc[r][v]));
                            }
                        }
                    } else {
                        let mut tmp = [[0.0f32; L]; NV];
                        for v in 0..NV {
                            $store(tmp[v].as_mut_ptr(), acc[r][v]);
                        }
                        for t in skip..NV * L {
                            if SET {
                                *yr.add(t) = tmp[t / L][t % L];
                            } else {
                                *yr.add(t) += tmp[t / L][t % L];
                            }
                        }
                    }
                }
            }

            /// `gemm::tile_rows` for `f32` (`SET`: `Y =` instead of `Y +=`): tiles of `NV` (or 4 where that divides a short
            /// row and `NV` does not), 4, 2 and 1 registers, then an overlapping one-register
            /// tile (or single columns when `n < L`).
            ///
            /// # Safety
            /// The CPU has the features.
            #[target_feature(enable = $feat)]
            #[inline]
            pub unsafe fn rows<const R: usize, const NV: usize, const SET: bool>(
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
                // n 64 in tiles of 4 registers rather than 6 + 2.
                let wide = n % (NV * L) == 0 || n % (4 * L) != 0 || n > 64 * L;
                while wide && j + NV * L <= n {
                    tile::<R, NV, SET>(yp.add(j), mp.add(j), n, kd, &coef, 0);
                    j += NV * L;
                }
                while j + 4 * L <= n {
                    tile::<R, 4, SET>(yp.add(j), mp.add(j), n, kd, &coef, 0);
                    j += 4 * L;
                }
                while j + 2 * L <= n {
                    tile::<R, 2, SET>(yp.add(j), mp.add(j), n, kd, &coef, 0);
                    j += 2 * L;
                }
                while j + L <= n {
                    tile::<R, 1, SET>(yp.add(j), mp.add(j), n, kd, &coef, 0);
                    j += L;
                }
                if j < n && n >= L {
                    tile::<R, 1, SET>(yp.add(n - L), mp.add(n - L), n, kd, &coef, j + L - n);
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
                            if SET {
                                y[(i0 + r) * n + j] = acc[r];
                            } else {
                                y[(i0 + r) * n + j] += acc[r];
                            }
                        }
                    }
                }
            }

            /// Registers per 16-lane dot-product accumulator.
            const NL: usize = super::LANES / L;

            /// `gemm::dot_tile` for `f32`, bit for bit.
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

            /// [`gemm_nt_acc`](super::super::gemm_nt_acc) for `f32`: tiles of `RR` rows by 2
            /// vectors.
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
simd_tiles!(
    /// AVX-512F tiles (16 lanes).
    avx512, "avx512f,avx2,fma", __m512, 16, 32, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps,
    _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps
);

simd_tiles!(
    /// AVX2+FMA tiles (8 lanes).
    avx2, "avx2,fma", __m256, 8, 16, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps,
    _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps
);

/// `out [cols, rows] = a^T` for `f32`, 8×8 blocks at a time in AVX registers.
pub(super) mod transpose8 {
    use std::arch::x86_64::*;

    /// Transposes the 8×8 block at `a` (row stride `lda`) into `out` (row stride `ldo`).
    ///
    /// # Safety
    /// The CPU has AVX; the 8 rows of 8 floats from each pointer are in bounds.
    #[target_feature(enable = "avx")]
    #[inline]
    unsafe fn block(out: *mut f32, ldo: usize, a: *const f32, lda: usize) {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(a.add(i * lda)));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let o = [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ];
        for (i, v) in o.iter().enumerate() {
            _mm256_storeu_ps(out.add(i * ldo), *v);
        }
    }

    /// `out [cols, rows] = a^T` for `a [rows, cols]`: the full 8×8 blocks in registers, the
    /// edges element by element.
    ///
    /// # Safety
    /// The CPU has AVX.
    #[target_feature(enable = "avx")]
    pub unsafe fn transpose(out: &mut [f32], a: &[f32], rows: usize, cols: usize) {
        assert!(a.len() >= rows * cols && out.len() >= rows * cols);
        let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
        let (op, ap) = (out.as_mut_ptr(), a.as_ptr());
        for r in (0..r8).step_by(8) {
            for c in (0..c8).step_by(8) {
                block(op.add(c * rows + r), rows, ap.add(r * cols + c), cols);
            }
        }
        for r in 0..rows {
            let cs = if r < r8 { c8 } else { 0 };
            for c in cs..cols {
                out[c * rows + r] = a[r * cols + c];
            }
        }
    }
}
