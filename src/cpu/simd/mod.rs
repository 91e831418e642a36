//! The CPU engine's dense loops on slices (dot products, matrix products, rank-1 updates and the
//! element-wise work of the layers), written with register tiles of fixed-size accumulator arrays
//! so that LLVM vectorizes them. Each public function is compiled three times: for the baseline
//! target, with AVX2+FMA and with AVX-512F (wider tiles); the best version the running CPU supports
//! is chosen once (see [`Isa`]), so the crate needs no `target-cpu` flag and stays portable. The
//! AVX2 and AVX-512 versions compute every output element with the same operations in the same
//! order, so they agree bit for bit; on one machine the choice is fixed anyway, so results are
//! reproducible.
//!
//! Matrices are row-major; `w` with `rows` rows of length `n` is `w[r * n..(r + 1) * n]`.
//!
//! Files: `isa.rs` (instruction sets, their detection, the `simd_fn!` macro that compiles and
//! dispatches each function), `gemm.rs` (dot products, matrix products, rank-1 updates), `x86.rs`
//! (their explicit AVX2 / AVX-512 tiles for `f32`) and `elementwise.rs` (axpy, log-sum-exp,
//! softmax, GRU cell, transpose).

#[macro_use]
mod isa;
mod elementwise;
mod gemm;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use elementwise::{
    axpy, axpy_isa, gru_cell, gru_cell_isa, log_sum_exp, log_sum_exp_isa, softmax_scaled,
    softmax_scaled_isa, transpose,
};
pub use gemm::{
    dot, dot_isa, gemm_nn_acc, gemm_nn_acc_isa, gemm_nt_acc, gemm_nt_acc_isa, ger_acc, ger_acc_isa,
    ger_set, ger_set_isa,
};
pub use isa::Isa;

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

    /// The f32 transpose (8×8 register blocks on AVX2 machines, edges element by element) on
    /// shapes with and without full blocks.
    #[test]
    fn f32_transposes_move_every_element() {
        for (rows, cols) in [
            (1, 1),
            (8, 8),
            (9, 17),
            (16, 5),
            (5, 16),
            (192, 64),
            (23, 40),
        ] {
            let a: Vec<f32> = (0..rows * cols).map(|i| i as f32 + 0.5).collect();
            let mut t = vec![-1.0f32; rows * cols];
            transpose(&mut t, &a, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], a[r * cols + c], "{rows}x{cols} at {r},{c}");
                }
            }
        }
    }
}
