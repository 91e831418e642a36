//! `recmaml gpu-check` (hidden): the CUDA backend against the CPU engine on fresh random tasks,
//! per tensor: the gradient of a split's loss at θ (no inner step), the adapted weights of the
//! first and last task, the meta-gradient, θ after two meta-steps (clip + Adam), the evaluation
//! logits, and the same inputs giving the same bytes twice on the GPU. Host output buffers and
//! every device output and workspace buffer are poisoned (NaN) before each GPU call, so an
//! element the kernels do not write fails the check. Prints one table; any mismatch beyond the
//! tolerance is an error.

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
    /// Largest accepted relative difference per tensor (||gpu - cpu|| / ||cpu||).
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Seed of the random tasks and weights.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Largest accepted relative difference of the weights after the pretraining check's 2
    /// epochs (Adam steps amplify rounding differences, so this is looser than --tol).
    #[arg(long, default_value_t = 1e-3)]
    pub pretrain_tol: f64,
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

/// A task's adapted weights by the CPU engine (the reference for the GPU's).
pub(crate) fn cpu_adapted(
    layout: &ParamLayout,
    theta: &[f32],
    t: &Task,
    inner: &InnerLoop,
) -> Result<Vec<f32>> {
    let mut phi = vec![0.0f32; layout.len];
    crate::cpu::adapt(
        layout,
        theta,
        t,
        t.support_weights,
        inner.lr,
        inner.steps,
        &mut phi,
    )?;
    Ok(phi)
}

/// The recency weights of a task of `k` support pairs in the checks: 1..k, normalised.
pub(crate) fn linear_weights(k: usize) -> Vec<f32> {
    (1..=k)
        .map(|i| i as f32 / (k * (k + 1) / 2) as f32)
        .collect()
}

/// The pretraining checks' case: the query pairs of `users` generated users (prefixes up to
/// `max_len`), the model (V, E, H), and 2 epochs of batch 64 with dropout 0.2 and prefixes cut
/// to 20 items.
pub(crate) fn pretraining_case(
    (v, e, h): (usize, usize, usize),
    users: usize,
    max_len: usize,
    seed: u64,
) -> (
    crate::data::PairSet,
    ParamLayout,
    crate::pretrain::PretrainSettings,
) {
    let eps = generate_episodes(users, 1, 6, v, max_len, seed + 100);
    let pairs = crate::data::PairSet {
        path: "generated pairs".into(),
        prefixes: eps
            .iter()
            .flat_map(|ep| ep.query_prefixes.clone())
            .collect(),
        labels: eps.iter().flat_map(|ep| ep.query_labels.clone()).collect(),
        n_items: v,
    };
    let layout = ParamLayout::new(ModelDims {
        n_items: v,
        embed_dim: e,
        hidden_dim: h,
    });
    let settings = crate::pretrain::PretrainSettings {
        epochs: 2,
        batch_size: 64,
        lr: 1e-3,
        dropout: 0.2,
        max_prefix_len: 20,
        seed,
    };
    (pairs, layout, settings)
}

/// The relative difference of `a` from `b`: `(||a - b|| / ||b||, max |a - b| / max |b|)`
/// (L2 norms, as in the PyTorch fixtures' tolerance; the max-norm form is shown beside it).
/// Infinite when `a` holds a NaN or an infinity (an unwritten, poisoned element).
pub(crate) fn rel_diff(a: &[f32], b: &[f32]) -> (f64, f64) {
    if a.iter().any(|x| !x.is_finite()) {
        return (f64::INFINITY, f64::INFINITY);
    }
    let (mut d2, mut b2, mut dmax, mut bmax) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (*x as f64, *y as f64);
        d2 += (x - y) * (x - y);
        b2 += y * y;
        dmax = dmax.max((x - y).abs());
        bmax = bmax.max(y.abs());
    }
    let rel = |num: f64, den: f64| if den == 0.0 { num } else { num / den };
    (rel(d2.sqrt(), b2.sqrt()), rel(dmax, bmax))
}

/// The relative difference of two scalars, in both columns.
fn rel_scalar(a: f64, b: f64) -> (f64, f64) {
    let d = ((a - b) / b).abs();
    (d, d)
}

/// Prints one row of the table; whether `d` (the L2 form) is within `tol`.
fn report_row(label: &str, what: &str, (d, dmax): (f64, f64), tol: f64) -> bool {
    let ok = d <= tol;
    println!(
        "{label:<26} {what:<34} {d:>11.3e} {dmax:>11.3e} {:>5}",
        if ok { "ok" } else { "FAIL" }
    );
    ok
}

/// Runs the checks and prints the table.
pub fn run(args: &GpuCheckArgs) -> Result<()> {
    let cases = if args.small { &CASES[..1] } else { &CASES[..] };
    println!(
        "{:<26} {:<34} {:>11} {:>11} {:>5}",
        "case (V E H N K Q S)", "quantity", "rel L2", "rel max", "ok"
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
        let weights = linear_weights(k);
        let tasks: Vec<Task> = eps
            .iter()
            .map(|ep| crate::train::task_of(ep, &weights))
            .collect();
        let inner = InnerLoop { lr: 0.05, steps: s };
        let outer = OuterConfig::adam(1e-3, 1.0);
        let mut cpu = Cpu::new(layout.clone(), theta.clone())?;
        let mut gpu = Cuda::new(layout.clone(), theta.clone())?;
        gpu.set_poison(true);
        let label = format!("{v} {e} {h} {n} {k} {q} {s}");
        let mut row = |what: &str, d: (f64, f64)| {
            failures += usize::from(!report_row(&label, what, d, args.tol));
        };
        let p = layout.len;
        // The gradient of a split's loss at θ: the support pairs as the query, no inner step.
        let at_theta: Vec<Task> = tasks
            .iter()
            .map(|t| Task {
                query_prefixes: t.support_prefixes,
                query_labels: t.support_labels,
                ..*t
            })
            .collect();
        let no_step = InnerLoop { lr: 0.05, steps: 0 };
        let mut g_cpu = vec![0.0f32; p];
        cpu.meta_gradient(&at_theta, &no_step, &mut g_cpu)?;
        let mut g_gpu = vec![f32::NAN; p];
        gpu.meta_gradient(&at_theta, &no_step, &mut g_gpu)?;
        for t in &layout.tensors {
            row(
                &format!("grad at θ {}", t.name),
                rel_diff(&g_gpu[t.range()], &g_cpu[t.range()]),
            );
        }
        let mut g_cpu = vec![0.0f32; p];
        let l_cpu = cpu.meta_gradient(&tasks, &inner, &mut g_cpu)?;
        let mut g_gpu = vec![f32::NAN; p];
        let l_gpu = gpu.meta_gradient(&tasks, &inner, &mut g_gpu)?;
        row("meta-loss", rel_scalar(l_gpu, l_cpu));
        for i in [0, n - 1] {
            let phi_gpu = gpu.adapted_params(&tasks, &inner, i)?;
            let phi_cpu = cpu_adapted(&layout, &theta, &tasks[i], &inner)?;
            for ten in &layout.tensors {
                row(
                    &format!("task {i} adapted {}", ten.name),
                    rel_diff(&phi_gpu[ten.range()], &phi_cpu[ten.range()]),
                );
            }
        }
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
        let d = if same { 0.0 } else { f64::INFINITY };
        row("grad bytes, twice", (d, d));
        for _ in 0..2 {
            let a = cpu.meta_step(&tasks, &inner, &outer)?;
            let b = gpu.meta_step(&tasks, &inner, &outer)?;
            row("grad norm", rel_scalar(b.grad_norm, a.grad_norm));
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
    if !args.small {
        failures += check_pretraining(args)?;
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

/// Pretraining on the GPU ([`crate::pretrain::fit_cuda`]) against the CPU ([`crate::pretrain::fit`])
/// on generated pairs: 2 epochs, batch 64, dropout 0.2, prefixes cut to 20 items; the per-epoch
/// mean losses within `tol`, the weights within `pretrain_tol`. Returns the number of failures.
fn check_pretraining(args: &GpuCheckArgs) -> Result<usize> {
    use crate::pretrain::{fit, fit_cuda};
    let (v, e, h) = (300, 32, 64);
    let (pairs, layout, settings) = pretraining_case((v, e, h), 120, 50, args.seed);
    let theta = init_params(&layout, args.seed);
    let (mut t_cpu, mut t_gpu) = (theta.clone(), theta);
    let l_cpu = fit(&layout, &mut t_cpu, &pairs, &settings, true)?;
    let l_gpu = fit_cuda(&layout, &mut t_gpu, &pairs, &settings, true)?;
    let label = format!("pretrain {v} {e} {h} ({} p)", pairs.labels.len());
    let mut failures = 0;
    let mut row = |what: &str, d: (f64, f64), tol: f64| {
        failures += usize::from(!report_row(&label, what, d, tol));
    };
    for (a, b) in l_cpu.iter().zip(&l_gpu) {
        row(
            &format!("epoch {} train loss", a.epoch),
            rel_scalar(b.train_loss, a.train_loss),
            args.tol,
        );
    }
    for t in &layout.tensors {
        row(
            &format!("θ after 2 epochs {}", t.name),
            rel_diff(&t_gpu[t.range()], &t_cpu[t.range()]),
            args.pretrain_tol,
        );
    }
    Ok(failures)
}
