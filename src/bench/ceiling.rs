//! The CPU's measured FP32 arithmetic ceiling for `recmaml bench`: the best rate of the engine's
//! own register tiles (`cpu::simd::gemm_nn_acc`, the product most of an iteration runs) on
//! cache-resident matrix products, every thread of the pool running its own products at once.
//! The fraction of it an iteration achieves says how much of the machine the engine uses.

use crate::cpu::simd::gemm_nn_acc;
use serde::Serialize;
use std::sync::OnceLock;
use std::time::Instant;

/// The product shapes tried, `(m, k, n)` for `Y[m, n] += A[m, k] M[k, n]`: the output layer's
/// shape at the reference configuration (a task's 40 hidden states against V 1536 items), a
/// GRU-like one, and two square-ish ones whose operands stay in L2.
const SHAPES: [(usize, usize, usize); 4] = [
    (40, 64, 1536),
    (96, 64, 192),
    (128, 128, 256),
    (192, 256, 256),
];

/// The measured ceiling.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Ceiling {
    /// The best rate over the shapes, GFLOP/s over all threads.
    pub gflops: f64,
    /// The shape `[m, k, n]` that gave it.
    pub shape: [usize; 3],
    /// Threads that ran products at once (the pool's).
    pub threads: usize,
}

/// GFLOP/s of every pool thread repeating `Y += A M` of one shape for about `seconds`: each
/// thread's best rate over chunks of about a millisecond of products, summed over threads. The
/// best chunk rather than the mean keeps the figure a ceiling on a machine where other work
/// interrupts now and then.
fn rate(m: usize, k: usize, n: usize, seconds: f64) -> f64 {
    let seq = |len: usize, s: f32| -> Vec<f32> {
        (0..len).map(|i| ((i as f32) * s).sin() * 0.01).collect()
    };
    let flops_per = 2.0 * (m * k * n) as f64;
    // Products per chunk: about a millisecond of work at 50 GFLOP/s.
    let chunk = ((5e7 / flops_per) as usize).max(1);
    let t0 = Instant::now();
    let best: Vec<f64> = rayon::broadcast(|_| {
        let (a, mm) = (seq(m * k, 0.37), seq(k * n, 0.91));
        let mut y = vec![0.0f32; m * n];
        let mut best = 0.0f64;
        while t0.elapsed().as_secs_f64() < seconds {
            let t = Instant::now();
            for _ in 0..chunk {
                gemm_nn_acc(&mut y, &a, &mm, n);
            }
            best = best.max(chunk as f64 * flops_per / t.elapsed().as_secs_f64());
        }
        std::hint::black_box(&y);
        best
    });
    best.iter().sum::<f64>() / 1e9
}

/// Measures the ceiling: each shape once briefly (warming caches and clocks), then timed.
pub fn measure(seconds_per_shape: f64) -> Ceiling {
    let mut best = Ceiling {
        gflops: 0.0,
        shape: [0; 3],
        threads: rayon::current_num_threads(),
    };
    for (m, k, n) in SHAPES {
        rate(m, k, n, seconds_per_shape / 4.0);
        let g = rate(m, k, n, seconds_per_shape);
        if g > best.gflops {
            best.gflops = g;
            best.shape = [m, k, n];
        }
    }
    best
}

/// [`measure`] once per process (0.25 s per shape); later calls return the same figure.
pub fn measured() -> Ceiling {
    static CEILING: OnceLock<Ceiling> = OnceLock::new();
    CEILING.get_or_init(|| measure(0.25)).clone()
}
