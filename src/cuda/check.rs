//! `recmaml gpu-check` (hidden): the CUDA backend against the CPU engine on fresh random tasks,
//! per tensor: the gradient of a split's loss at θ (no inner step), the adapted weights of the
//! first and last task, the meta-gradient, two meta-steps (clip + Adam, the second with the
//! clip scaling: each tensor's update θ_after − θ_before, Adam's moments, the gradient norm;
//! [`step_rows`]), the evaluation logits, and the same inputs giving the same bytes twice on
//! the GPU. Host output buffers and every device output and workspace buffer are poisoned (NaN)
//! before each GPU call, so an element the kernels do not write fails the check, and so does a
//! missing or extra value ([`rel_diff`]). Prints one table; any mismatch beyond the tolerance
//! is an error. The emulator tests (`emu.rs`) run the same comparisons on the CPU.

use super::Cuda;
use crate::backend::{AdamState, Backend, InnerLoop, OuterConfig, Task};
use crate::cpu::Cpu;
use crate::data::workload::generate_episodes;
use crate::error::{Error, Result};
use crate::model::{init_params, ModelDims, ParamLayout, ParamTensor};
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
    /// Largest accepted relative difference of each tensor's update in a meta-step
    /// (||Δgpu - Δcpu|| / ||Δcpu||, Δ = θ_after - θ_before).
    #[arg(long, default_value_t = UPDATE_TOL)]
    pub update_tol: f64,
    /// Seed of the random tasks and weights.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Largest accepted relative difference of each tensor's change over the pretraining
    /// check's 2 epochs (θ_end - θ_start).
    #[arg(long, default_value_t = PRETRAIN_TOL)]
    pub pretrain_tol: f64,
}

/// The default of `--update-tol`. Adam amplifies gradient rounding where a gradient element is
/// near its ε (1e-8): there the update lr · m̂ / (√v̂ + ε) moves by a fraction of lr for a
/// gradient difference of 1e-9, so a single such element of a 12288-element tensor has given
/// 7.8e-4 on the emulator (the reference shape's first step, gru.weight_ih_l0); everything
/// else stays below 1e-4. 1e-2 leaves that more than 10× room, while a clip that does not
/// scale moves the second update by about a quarter, and a second-step bias correction that
/// is off (√(1 − β2) for √(1 − β2²)) by about 30% ([`clip_schedule`], [`step_rows`]).
pub(crate) const UPDATE_TOL: f64 = 1e-2;

/// The default of `--pretrain-tol`. The pretraining steps are not clipped and Adam's rounding
/// amplification averages out over their many steps: on the emulator the largest difference
/// of a tensor's change over the 2 epochs is 8e-6 (gru.weight_hh_l0); 1e-3 leaves that over
/// 100× room and still fails a bias correction that is off after the first step, which moves
/// every later update by tens of percent.
pub(crate) const PRETRAIN_TOL: f64 = 1e-3;

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

/// How `got` differs from the reference `want`:
/// `Ok((||got - want|| / ||want||, max |got - want| / max |want|))` (L2 norms, as in the PyTorch
/// fixtures' tolerance; the max-norm form is shown beside it). `Err` says why the two cannot be
/// compared, and counts as a failure: different lengths (a dropped or extra output), an empty
/// reference (nothing would be compared), a NaN or infinity in either (in `got`: an unwritten,
/// poisoned element), or a reference of zeros that `got` does not match exactly (there is no
/// scale to be relative to).
pub(crate) fn rel_diff<T: Copy + Into<f64>>(got: &[T], want: &[T]) -> Result<(f64, f64), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} values where the reference has {}",
            got.len(),
            want.len()
        ));
    }
    if want.is_empty() {
        return Err("the reference is empty".into());
    }
    for (side, xs) in [("", got), ("reference ", want)] {
        if let Some(i) = xs.iter().position(|&x| !x.into().is_finite()) {
            return Err(format!("{side}element {i} is {}", xs[i].into()));
        }
    }
    let (mut d2, mut b2, mut dmax, mut bmax) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in got.iter().zip(want) {
        let (x, y): (f64, f64) = (x.into(), y.into());
        d2 += (x - y) * (x - y);
        b2 += y * y;
        dmax = dmax.max((x - y).abs());
        bmax = bmax.max(y.abs());
    }
    if b2 == 0.0 {
        return if d2 == 0.0 {
            Ok((0.0, 0.0))
        } else {
            Err(format!(
                "the reference is all zeros, the values are not (max |difference| {dmax:.3e})"
            ))
        };
    }
    Ok((d2.sqrt() / b2.sqrt(), dmax / bmax))
}

/// The relative difference of the scalar `got` from the reference `want`, in both columns; as
/// in [`rel_diff`], a non-finite value or a zero reference that `got` does not match is an `Err`.
pub(crate) fn rel_scalar(got: f64, want: f64) -> Result<(f64, f64), String> {
    rel_diff(&[got], &[want])
}

/// `after - before` elementwise, in double (each side rounded to f32 once, by its backend);
/// `Err` when the lengths differ.
pub(crate) fn update(after: &[f32], before: &[f32]) -> Result<Vec<f64>, String> {
    if after.len() != before.len() {
        return Err(format!(
            "{} values after the step, {} before it",
            after.len(),
            before.len()
        ));
    }
    Ok(after
        .iter()
        .zip(before)
        .map(|(&a, &b)| a as f64 - b as f64)
        .collect())
}

/// The relative difference of `got`'s update from `want`'s, per [`rel_diff`]; a reference
/// that did not change at all is an `Err` (there would be nothing to compare).
pub(crate) fn update_diff(
    (got_after, got_before): (&[f32], &[f32]),
    (want_after, want_before): (&[f32], &[f32]),
) -> Result<(f64, f64), String> {
    let want = update(want_after, want_before)?;
    if want.iter().all(|&d| d == 0.0) {
        return Err("the reference did not change, so nothing is compared".into());
    }
    rel_diff(&update(got_after, got_before)?, &want)
}

/// One backend's θ and Adam state.
#[derive(Clone, Debug)]
pub(crate) struct State {
    pub theta: Vec<f32>,
    pub adam: AdamState,
}

impl State {
    /// A backend's θ and Adam state, read back.
    pub fn of(b: &impl Backend) -> Result<Self> {
        Ok(State {
            theta: b.params()?,
            adam: b.adam()?,
        })
    }
}

/// The outer steps of the checks, with `lr` as the rate, from the norm of the meta-gradient at
/// θ (`norm`): the first allows four times that norm (clipping on, but not scaling), the second
/// clips to a quarter of it (scaling the gradient by about 1/4). Adam's update does not change
/// when every gradient it has seen is scaled alike, so a clip scale that is wrong on every step
/// would not show in θ; after these two, the second update weighs its own gradient 4× less
/// against the first than an unclipped one would, which moves it by about a quarter. Clipping
/// the second step rather than the first also keeps the first step's gradients well above
/// Adam's ε, where rounding differences would be amplified. The second item of each pair:
/// whether the clip must scale on that step.
pub(crate) fn clip_schedule(norm: f64, lr: f32) -> [(OuterConfig, bool); 2] {
    [
        (OuterConfig::adam(lr, (norm * 4.0) as f32), false),
        (OuterConfig::adam(lr, (norm / 4.0) as f32), true),
    ]
}

/// The tolerances of [`step_rows`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepTols {
    /// Adam's moments and the gradient norm (as for the meta-gradient).
    pub state: f64,
    /// Each tensor's update θ_after − θ_before, relative to the reference update's norm.
    pub update: f64,
}

/// One compared quantity: its name, the difference, the tolerance.
pub(crate) type Row = (String, Result<(f64, f64), String>, f64);

/// The rows comparing meta-step `k` of the GPU path with the CPU engine's; each side's state
/// before and after the step and the gradient norm it reported (before clipping). Compared:
/// the gradient norm; Adam's moments m and v over all parameters (m is linear in the clipped
/// gradients, m_k = β1 m_(k-1) + (1 − β1) c_k g_k, so a wrong clip scale c_k shows there in
/// full); the step counter; and the update θ_after − θ_before of each named tensor relative to
/// the CPU update's norm (the first step's update is about lr × sign(gradient) whatever the
/// clip; the second depends on both steps' clip scales and on the bias corrections). Also a
/// row that fails unless the CPU engine's clip did (or did not) scale, as `outer` meant.
pub(crate) fn step_rows(
    layout: &ParamLayout,
    k: usize,
    (outer, scales): (&OuterConfig, bool),
    (cpu_before, cpu_after, cpu_norm): (&State, &State, f64),
    (gpu_before, gpu_after, gpu_norm): (&State, &State, f64),
    tol: StepTols,
) -> Vec<Row> {
    let clip = outer.clip as f64;
    let clip_ok = if (cpu_norm > clip) == scales {
        Ok((0.0, 0.0))
    } else {
        Err(format!(
            "the case is meant to {}clip: CPU gradient norm {cpu_norm:.4e}, max norm {clip:.4e}",
            if scales { "" } else { "not " }
        ))
    };
    let mut rows: Vec<Row> = vec![
        (
            format!(
                "step {k} clip {}",
                if scales { "scales" } else { "on, idle" }
            ),
            clip_ok,
            0.0,
        ),
        (
            format!("step {k} grad norm"),
            rel_scalar(gpu_norm, cpu_norm),
            tol.state,
        ),
        (
            format!("step {k} Adam step count"),
            rel_scalar(gpu_after.adam.step as f64, cpu_after.adam.step as f64),
            0.0,
        ),
        (
            format!("step {k} Adam m"),
            rel_diff(&gpu_after.adam.m, &cpu_after.adam.m),
            tol.state,
        ),
        (
            format!("step {k} Adam v"),
            rel_diff(&gpu_after.adam.v, &cpu_after.adam.v),
            tol.state,
        ),
    ];
    for t in &layout.tensors {
        let r = t.range();
        let slice = |s: &State| s.theta.get(r.clone()).unwrap_or(&[]).to_vec();
        rows.push((
            format!("step {k} update {}", t.name),
            update_diff(
                (&slice(gpu_after), &slice(gpu_before)),
                (&slice(cpu_after), &slice(cpu_before)),
            ),
            tol.update,
        ));
    }
    rows
}

/// The Euclidean norm of `x`, in double.
pub(crate) fn norm(x: &[f32]) -> f64 {
    x.iter().map(|&g| g as f64 * g as f64).sum::<f64>().sqrt()
}

/// Prints one row of the table; whether `d` (the L2 form) is within `tol`. A row that could
/// not be compared fails and says why.
fn report_row(label: &str, what: &str, d: Result<(f64, f64), String>, tol: f64) -> bool {
    match d {
        Ok((d, dmax)) => {
            let ok = d <= tol;
            println!(
                "{label:<26} {what:<34} {d:>11.3e} {dmax:>11.3e} {:>5}",
                if ok { "ok" } else { "FAIL" }
            );
            ok
        }
        Err(why) => {
            println!(
                "{label:<26} {what:<34} {:>11} {:>11} {:>5}  {why}",
                "-", "-", "FAIL"
            );
            false
        }
    }
}

/// Tensor `t`'s part of the flat buffer `x`, or nothing where `x` is too short for it (which
/// [`rel_diff`] then reports).
pub(crate) fn part<'a, T>(x: &'a [T], t: &ParamTensor) -> &'a [T] {
    x.get(t.range()).unwrap_or(&[])
}

/// Whether `a` and `b` hold the same bytes: `Ok((0, 0))`, else the number of differing
/// elements or the lengths.
pub(crate) fn same_bits(a: &[f32], b: &[f32]) -> Result<(f64, f64), String> {
    if a.len() != b.len() || a.is_empty() {
        return Err(format!("{} values, then {}", b.len(), a.len()));
    }
    let n = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    if n == 0 {
        Ok((0.0, 0.0))
    } else {
        Err(format!("{n} of {} values differ", a.len()))
    }
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
            .map(|ep| crate::backend::Task::of(ep, &weights))
            .collect();
        let inner = InnerLoop { lr: 0.05, steps: s };
        let mut cpu = Cpu::new(layout.clone(), theta.clone())?;
        let mut gpu = Cuda::new(layout.clone(), theta.clone())?;
        gpu.set_poison(true);
        let label = format!("{v} {e} {h} {n} {k} {q} {s}");
        let mut row = |what: &str, d: Result<(f64, f64), String>, tol: f64| {
            failures += usize::from(!report_row(&label, what, d, tol));
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
                rel_diff(part(&g_gpu, t), part(&g_cpu, t)),
                args.tol,
            );
        }
        let mut g_cpu = vec![0.0f32; p];
        let l_cpu = cpu.meta_gradient(&tasks, &inner, &mut g_cpu)?;
        let mut g_gpu = vec![f32::NAN; p];
        let l_gpu = gpu.meta_gradient(&tasks, &inner, &mut g_gpu)?;
        row("meta-loss", rel_scalar(l_gpu, l_cpu), args.tol);
        for i in [0, n - 1] {
            let phi_gpu = gpu.adapted_params(&tasks, &inner, i)?;
            let phi_cpu = cpu_adapted(&layout, &theta, &tasks[i], &inner)?;
            for ten in &layout.tensors {
                row(
                    &format!("task {i} adapted {}", ten.name),
                    rel_diff(part(&phi_gpu, ten), part(&phi_cpu, ten)),
                    args.tol,
                );
            }
        }
        for t in &layout.tensors {
            row(
                &format!("grad {}", t.name),
                rel_diff(part(&g_gpu, t), part(&g_cpu, t)),
                args.tol,
            );
        }
        let mut again = vec![f32::NAN; p];
        gpu.meta_gradient(&tasks, &inner, &mut again)?;
        row("grad bytes, twice", same_bits(&again, &g_gpu), args.tol);
        let tols = StepTols {
            state: args.tol,
            update: args.update_tol,
        };
        for (i, step) in clip_schedule(norm(&g_cpu), 1e-3).iter().enumerate() {
            let (cpu0, gpu0) = (State::of(&cpu)?, State::of(&gpu)?);
            let a = cpu.meta_step(&tasks, &inner, &step.0)?;
            let b = gpu.meta_step(&tasks, &inner, &step.0)?;
            let (cpu1, gpu1) = (State::of(&cpu)?, State::of(&gpu)?);
            for (what, d, tol) in step_rows(
                &layout,
                i + 1,
                (&step.0, step.1),
                (&cpu0, &cpu1, a.grad_norm),
                (&gpu0, &gpu1, b.grad_norm),
                tols,
            ) {
                row(&what, d, tol);
            }
        }
        let (e_cpu, e_gpu) = (cpu.evaluate(&tasks, &inner)?, gpu.evaluate(&tasks, &inner)?);
        row(
            "evaluated tasks",
            rel_scalar(e_gpu.len() as f64, e_cpu.len() as f64),
            0.0,
        );
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
            args.tol,
        );
        row(
            "few-shot logits",
            rel_diff(&flat(&e_gpu, true), &flat(&e_cpu, true)),
            args.tol,
        );
    }
    if !args.small {
        failures += check_pretraining(args)?;
    }
    if failures > 0 {
        return Err(Error::Backend {
            backend: "cuda".into(),
            msg: format!(
                "{failures} GPU-vs-CPU checks failed (tolerance {}, updates {})",
                args.tol, args.update_tol
            ),
        });
    }
    println!(
        "all GPU-vs-CPU checks passed (tolerance {}, updates {})",
        args.tol, args.update_tol
    );
    Ok(())
}

/// Pretraining on the GPU ([`crate::pretrain::fit_cuda`]) against the CPU ([`crate::pretrain::fit`])
/// on generated pairs: 2 epochs, batch 64, dropout 0.2, prefixes cut to 20 items; the per-epoch
/// mean losses within `tol`, each tensor's change over the 2 epochs within `pretrain_tol` of the
/// CPU's change. Returns the number of failures.
fn check_pretraining(args: &GpuCheckArgs) -> Result<usize> {
    use crate::pretrain::{fit, fit_cuda};
    let (v, e, h) = (300, 32, 64);
    let (pairs, layout, settings) = pretraining_case((v, e, h), 120, 50, args.seed);
    let theta = init_params(&layout, args.seed);
    let (mut t_cpu, mut t_gpu) = (theta.clone(), theta.clone());
    let l_cpu = fit(&layout, &mut t_cpu, &pairs, &settings, true)?;
    let l_gpu = fit_cuda(&layout, &mut t_gpu, &pairs, &settings, true)?;
    let label = format!("pretrain {v} {e} {h} ({} p)", pairs.labels.len());
    let mut failures = 0;
    let mut row = |what: &str, d, tol: f64| {
        failures += usize::from(!report_row(&label, what, d, tol));
    };
    row(
        "epochs",
        rel_scalar(l_gpu.len() as f64, l_cpu.len() as f64),
        0.0,
    );
    for (i, a) in l_cpu.iter().enumerate() {
        row(
            &format!("epoch {} train loss", a.epoch),
            l_gpu.get(i).map_or(Err("missing".into()), |b| {
                rel_scalar(b.train_loss, a.train_loss)
            }),
            args.tol,
        );
    }
    for t in &layout.tensors {
        row(
            &format!("update over 2 epochs {}", t.name),
            update_diff(
                (part(&t_gpu, t), part(&theta, t)),
                (part(&t_cpu, t), part(&theta, t)),
            ),
            args.pretrain_tol,
        );
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A difference only within tolerance passes; a dropped or extra value, an empty
    /// reference, an unwritten (NaN) element or values where the reference is zero fail.
    #[test]
    fn rel_diff_fails_what_it_cannot_compare() {
        let want = [1.0f32, -2.0, 2.0];
        assert_eq!(rel_diff(&want, &want), Ok((0.0, 0.0)));
        let (d, dmax) = rel_diff(&[1.0f32, -2.0, 2.3], &want).unwrap();
        assert!(
            (d - 0.1).abs() < 1e-6 && (dmax - 0.15).abs() < 1e-6,
            "{d} {dmax}"
        );
        let dropped = rel_diff(&want[..2], &want).unwrap_err();
        assert!(
            dropped.contains("2 values") && dropped.contains("has 3"),
            "{dropped}"
        );
        assert!(rel_diff(&[1.0f32, -2.0, 2.0, 0.0], &want).is_err());
        assert!(rel_diff::<f32>(&[], &[]).unwrap_err().contains("empty"));
        assert!(rel_diff(&[1.0f32, f32::NAN, 2.0], &want).is_err());
        assert!(rel_diff(&want, &[1.0f32, f32::INFINITY, 2.0]).is_err());
        assert_eq!(rel_diff(&[0.0f32; 2], &[0.0; 2]), Ok((0.0, 0.0)));
        assert!(rel_diff(&[0.0f32, 1e-30], &[0.0; 2]).is_err());
        assert!(rel_scalar(f64::NAN, 1.0).is_err());
        assert!(rel_scalar(1.0, 0.0).is_err());
        assert!(same_bits(&want[..2], &want).is_err());
        assert!(same_bits(&[], &[]).is_err());
        assert!(same_bits(&[1.0, -2.0, 2.0000002], &want).is_err());
        assert_eq!(same_bits(&want, &want), Ok((0.0, 0.0)));
    }

    /// Updates: lengths must agree, and a reference that did not move compares nothing.
    #[test]
    fn update_diff_needs_a_moving_reference() {
        let before = [1.0f32, 2.0, 3.0];
        let after = [1.5f32, 2.0, 2.0];
        assert_eq!(update(&after, &before), Ok(vec![0.5, 0.0, -1.0]));
        assert_eq!(
            update_diff((&after, &before), (&after, &before)),
            Ok((0.0, 0.0))
        );
        assert!(update_diff((&after[..2], &before), (&after, &before)).is_err());
        assert!(update_diff((&after, &before), (&before, &before)).is_err());
        // The same θ after, compared as θ rather than as update, hides a 10% error of the
        // update in 1% of θ.
        let off = [1.55f32, 2.0, 1.9];
        let (d, _) = update_diff((&off, &before), (&after, &before)).unwrap();
        assert!((d - 0.1).abs() < 1e-6, "{d}");
    }

    /// [`step_rows`] on two CPU engines (the same code, so any difference is the one made
    /// here): with the same steps every row passes; with a clip that never scales (the
    /// schedule's clip disabled on the second engine) the clip-dependent rows fail, the second
    /// step's update among them; a θ missing its last value fails the last tensor's update.
    #[test]
    fn step_rows_catch_a_clip_that_does_not_scale() {
        let layout = ParamLayout::new(ModelDims {
            n_items: 40,
            embed_dim: 8,
            hidden_dim: 16,
        });
        let theta = init_params(&layout, 11);
        let eps = generate_episodes(3, 3, 4, 40, 12, 11);
        let weights = linear_weights(3);
        let tasks: Vec<Task> = eps
            .iter()
            .map(|ep| crate::backend::Task::of(ep, &weights))
            .collect();
        let inner = InnerLoop { lr: 0.05, steps: 2 };
        let mut g = vec![0.0f32; layout.len];
        Cpu::new(layout.clone(), theta.clone())
            .unwrap()
            .meta_gradient(&tasks, &inner, &mut g)
            .unwrap();
        let schedule = clip_schedule(norm(&g), 1e-3);
        let tol = StepTols {
            state: 1e-4,
            update: UPDATE_TOL,
        };
        let failing = |no_scale: bool, drop_last: bool| -> Vec<String> {
            let mut cpu = Cpu::new(layout.clone(), theta.clone()).unwrap();
            let mut other = Cpu::new(layout.clone(), theta.clone()).unwrap();
            let mut failed = Vec::new();
            for (i, step) in schedule.iter().enumerate() {
                let mut o = step.0;
                if no_scale {
                    o.clip = f32::INFINITY;
                }
                let (c0, o0) = (State::of(&cpu).unwrap(), State::of(&other).unwrap());
                let a = cpu.meta_step(&tasks, &inner, &step.0).unwrap();
                let b = other.meta_step(&tasks, &inner, &o).unwrap();
                let (c1, mut o1) = (State::of(&cpu).unwrap(), State::of(&other).unwrap());
                if drop_last {
                    o1.theta.pop();
                }
                for (what, d, tol) in step_rows(
                    &layout,
                    i + 1,
                    (&step.0, step.1),
                    (&c0, &c1, a.grad_norm),
                    (&o0, &o1, b.grad_norm),
                    tol,
                ) {
                    if !matches!(d, Ok((d, _)) if d <= tol) {
                        failed.push(what);
                    }
                }
            }
            failed
        };
        assert_eq!(failing(false, false), Vec::<String>::new());
        let no_scale = failing(true, false);
        for what in [
            "step 2 Adam m",
            "step 2 Adam v",
            "step 2 update output.weight",
        ] {
            assert!(no_scale.iter().any(|w| w == what), "{what}: {no_scale:?}");
        }
        assert!(
            no_scale.iter().all(|w| w.starts_with("step 2")),
            "{no_scale:?}"
        );
        assert_eq!(
            failing(false, true),
            vec!["step 1 update output.bias", "step 2 update output.bias"]
        );
    }
}
