//! `recmaml gpu-check` (hidden): the CUDA backend against the CPU engine on fresh random tasks,
//! per tensor: the meta-gradient, θ after two meta-steps (clip + Adam), the evaluation logits, and
//! the same inputs giving the same bytes twice on the GPU. Host output buffers are poisoned (NaN)
//! before each GPU call. Prints one table; any mismatch beyond the tolerance is an error.

use super::Cuda;
use crate::backend::{Backend, InnerLoop, OuterConfig, Task};
use crate::bench::generate_episodes;
use crate::cpu::Cpu;
use crate::error::{Error, Result};
use crate::model::{init_params, ModelDims, ParamLayout};
use clap::Args;

/// `recmaml gpu-check`.
#[derive(Args, Debug)]
pub struct GpuCheckArgs {
    /// Only the first (small) case, e.g. under compute-sanitizer.
    #[arg(long)]
    pub small: bool,
    /// Largest accepted relative difference per tensor (max |gpu - cpu| / max |cpu|).
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Seed of the random tasks and weights.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// (V, E, H, N, K, Q, S) of the cases.
const CASES: [(usize, usize, usize, usize, usize, usize, usize); 6] = [
    (40, 16, 32, 1, 3, 4, 2),
    (1519, 64, 64, 32, 5, 10, 5),
    (40, 8, 32, 64, 1, 1, 1),
    (1519, 32, 128, 32, 20, 5, 3),
    (10000, 64, 32, 1, 10, 20, 2),
    (10000, 64, 128, 64, 20, 10, 5),
];

/// max |a - b| / max |b| (0 when both are 0).
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| (*y as f64).abs()).fold(0.0, f64::max);
    if a.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// Runs the checks and prints the table.
pub fn run(args: &GpuCheckArgs) -> Result<()> {
    let cases = if args.small { &CASES[..1] } else { &CASES[..] };
    println!(
        "{:<34} {:<24} {:>12} {:>6}",
        "case (V E H N K Q S)", "quantity", "rel diff", "ok"
    );
    let mut failures = 0;
    for (ci, &(v, e, h, n, k, q, s)) in cases.iter().enumerate() {
        let dims = ModelDims {
            n_items: v,
            embed_dim: e,
            hidden_dim: h,
        };
        let layout = ParamLayout::new(dims);
        let seed = args.seed + ci as u64;
        let theta = init_params(&layout, seed);
        let eps = generate_episodes(n, k, q, v, 50, seed);
        let weights: Vec<f32> = (1..=k)
            .map(|i| i as f32 / (k * (k + 1) / 2) as f32)
            .collect();
        let tasks: Vec<Task> = eps
            .iter()
            .map(|ep| crate::train::task_of(ep, &weights))
            .collect();
        let inner = InnerLoop { lr: 0.05, steps: s };
        let outer = OuterConfig::adam(1e-3, 1.0);
        let mut cpu = Cpu::new(layout.clone(), theta.clone())?;
        let mut gpu = Cuda::new(layout.clone(), theta.clone())?;
        let label = format!("{v} {e} {h} {n} {k} {q} {s}");
        let mut row = |what: &str, d: f64| {
            let ok = d <= args.tol;
            failures += usize::from(!ok);
            println!(
                "{label:<34} {what:<24} {d:>12.3e} {:>6}",
                if ok { "ok" } else { "FAIL" }
            );
        };
        let p = layout.len;
        let mut g_cpu = vec![0.0f32; p];
        let l_cpu = cpu.meta_gradient(&tasks, &inner, &mut g_cpu)?;
        let mut g_gpu = vec![f32::NAN; p];
        let l_gpu = gpu.meta_gradient(&tasks, &inner, &mut g_gpu)?;
        row("meta-loss", ((l_gpu - l_cpu) / l_cpu).abs());
        for t in &layout.tensors {
            row(
                &format!("grad {}", t.name),
                rel_diff(&g_gpu[t.range()], &g_cpu[t.range()]),
            );
        }
        let mut again = vec![f32::NAN; p];
        gpu.meta_gradient(&tasks, &inner, &mut again)?;
        let same = again
            .iter()
            .zip(&g_gpu)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        row("grad bytes, twice", if same { 0.0 } else { f64::INFINITY });
        for _ in 0..2 {
            let a = cpu.meta_step(&tasks, &inner, &outer)?;
            let b = gpu.meta_step(&tasks, &inner, &outer)?;
            row(
                "grad norm",
                ((b.grad_norm - a.grad_norm) / a.grad_norm).abs(),
            );
        }
        let (t_cpu, t_gpu) = (cpu.params()?, gpu.params()?);
        for t in &layout.tensors {
            row(
                &format!("θ after Adam {}", t.name),
                rel_diff(&t_gpu[t.range()], &t_cpu[t.range()]),
            );
        }
        let (e_cpu, e_gpu) = (cpu.evaluate(&tasks, &inner)?, gpu.evaluate(&tasks, &inner)?);
        let flat = |ev: &[crate::backend::TaskEval], few: bool| -> Vec<f32> {
            ev.iter()
                .flat_map(|x| {
                    if few {
                        x.few_shot_logits.clone()
                    } else {
                        x.zero_shot_logits.clone()
                    }
                })
                .collect()
        };
        row(
            "zero-shot logits",
            rel_diff(&flat(&e_gpu, false), &flat(&e_cpu, false)),
        );
        row(
            "few-shot logits",
            rel_diff(&flat(&e_gpu, true), &flat(&e_cpu, true)),
        );
    }
    if failures > 0 {
        return Err(Error::Backend {
            backend: "cuda".into(),
            msg: format!(
                "{failures} GPU-vs-CPU checks failed (tolerance {})",
                args.tol
            ),
        });
    }
    println!("all GPU-vs-CPU checks passed (tolerance {})", args.tol);
    Ok(())
}
