//! The CUDA backend against the CPU engine, one routine for every device: `recmaml gpu-check` runs
//! it on a GPU ([`crate::cuda::Driver`]), the test suite on the kernel emulator (`tests/emu/`).
//!
//! Per case of random tasks, per tensor: the gradient of a split's loss at θ (no inner step), the
//! meta-loss and meta-gradient, the adapted weights of the first and last task, the same inputs
//! giving the same bytes twice, two meta-steps (clip + Adam, the second with the clip scaling:
//! each tensor's update θ_after − θ_before, Adam's moments, the gradient norm;
//! [`diff::step_rows`]), and the evaluation logits. Every device output and workspace buffer is
//! poisoned (NaN) before each launch, so an element the kernels do not write fails, and so does
//! a missing or extra value ([`diff::rel_diff`]). Pretraining is compared over two epochs.

pub mod diff;

use crate::backend::{Backend, InnerLoop, Task, TaskEval};
use crate::cpu::Cpu;
use crate::cuda::{Cuda, Device};
use crate::data::workload::generate_episodes;
use crate::data::{Episode, PairSet};
use crate::error::{Error, Result};
use crate::model::{init_params, ModelDims, ParamLayout};
use crate::pretrain::PretrainSettings;
use diff::{
    clip_schedule, norm, part, rel_diff, rel_scalar, same_bits, step_rows, update_diff, Row, State,
    StepTols,
};

/// The default update tolerance. Adam amplifies gradient rounding where a gradient element is
/// near its ε (1e-8): there the update lr · m̂ / (√v̂ + ε) moves by a fraction of lr for a
/// gradient difference of 1e-9, so a single such element of a 12288-element tensor has given
/// 7.8e-4 on the emulator (the reference shape's first step, gru.weight_ih_l0); everything
/// else stays below 1e-4. 1e-2 leaves that more than 10× room, while a clip that does not
/// scale moves the second update by about a quarter, and a second-step bias correction that
/// is off (√(1 − β2) for √(1 − β2²)) by about 30% ([`clip_schedule`], [`step_rows`]).
pub const UPDATE_TOL: f64 = 1e-2;

/// The default pretraining tolerance. The pretraining steps are not clipped and Adam's rounding
/// amplification averages out over their many steps: on the emulator the largest difference
/// of a tensor's change over the 2 epochs is 8e-6 (gru.weight_hh_l0); 1e-3 leaves that over
/// 100× room and still fails a bias correction that is off after the first step, which moves
/// every later update by tens of percent.
pub const PRETRAIN_TOL: f64 = 1e-3;

/// The tolerances of a comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    /// Largest relative difference per tensor (||gpu − cpu|| / ||cpu||).
    pub tol: f64,
    /// Largest relative difference of each tensor's update in a meta-step.
    pub update: f64,
    /// Largest relative difference of each tensor's change over the pretraining epochs.
    pub pretrain: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            tol: 1e-4,
            update: UPDATE_TOL,
            pretrain: PRETRAIN_TOL,
        }
    }
}

/// One case: model sizes, the meta-batch, the inner loop and the generated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    pub v: usize,
    pub e: usize,
    pub h: usize,
    pub n: usize,
    pub k: usize,
    pub q: usize,
    pub s: usize,
    /// Longest generated prefix.
    pub max_len: usize,
    pub seed: u64,
}

impl Case {
    /// `(V, E, H, N, K, Q, S)`, prefixes up to `max_len`, data and weights from `seed`.
    pub fn new(
        (v, e, h, n, k, q, s): (usize, usize, usize, usize, usize, usize, usize),
        max_len: usize,
        seed: u64,
    ) -> Self {
        Case {
            v,
            e,
            h,
            n,
            k,
            q,
            s,
            max_len,
            seed,
        }
    }

    /// The model's layout.
    pub fn layout(&self) -> ParamLayout {
        ParamLayout::new(ModelDims {
            n_items: self.v,
            embed_dim: self.e,
            hidden_dim: self.h,
        })
    }

    /// The initial weights.
    pub fn theta(&self) -> Vec<f32> {
        init_params(&self.layout(), self.seed)
    }

    /// The case's episodes.
    pub fn episodes(&self) -> Vec<Episode> {
        generate_episodes(self.n, self.k, self.q, self.v, self.max_len, self.seed)
    }

    /// The inner loop.
    pub fn inner(&self) -> InnerLoop {
        InnerLoop {
            lr: 0.05,
            steps: self.s,
        }
    }

    /// How the case is named in a table.
    pub fn label(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.v, self.e, self.h, self.n, self.k, self.q, self.s
        )
    }
}

/// The recency weights of a task of `k` support pairs in the checks: 1..k, normalised.
pub fn linear_weights(k: usize) -> Vec<f32> {
    (1..=k)
        .map(|i| i as f32 / (k * (k + 1) / 2) as f32)
        .collect()
}

/// A task's adapted weights by the CPU engine (the reference for the GPU's).
pub fn cpu_adapted(
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

/// Every logit of `ev`, zero-shot (`few` false) or few-shot, task after task.
fn flat_logits(ev: &[TaskEval], few: bool) -> Vec<f32> {
    ev.iter()
        .flat_map(|x| {
            if few {
                x.few_shot_logits.clone()
            } else {
                x.zero_shot_logits.clone()
            }
        })
        .collect()
}

/// Compares `gpu` (holding `case.theta()`, Adam at step 0) with the CPU engine on `case`; the
/// rows of every compared quantity, in order. `gpu` is poisoned for the comparison and takes the
/// case's two meta-steps.
pub fn compare<D: Device>(gpu: &mut Cuda<D>, case: &Case, tols: &Tolerances) -> Result<Vec<Row>> {
    let layout = case.layout();
    let theta = case.theta();
    let eps = case.episodes();
    let weights = linear_weights(case.k);
    let tasks: Vec<Task> = eps.iter().map(|ep| Task::of(ep, &weights)).collect();
    let inner = case.inner();
    let mut cpu = Cpu::new(layout.clone(), theta.clone())?;
    gpu.set_poison(true);
    let mut rows: Vec<Row> = Vec::new();
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
    let no_step = InnerLoop {
        lr: inner.lr,
        steps: 0,
    };
    let mut g_cpu = vec![0.0f32; p];
    cpu.meta_gradient(&at_theta, &no_step, &mut g_cpu)?;
    let mut g_gpu = vec![f32::NAN; p];
    gpu.meta_gradient(&at_theta, &no_step, &mut g_gpu)?;
    for t in &layout.tensors {
        let d = rel_diff(part(&g_gpu, t), part(&g_cpu, t));
        rows.push((format!("grad at θ {}", t.name), d, tols.tol));
    }
    let mut g_cpu = vec![0.0f32; p];
    let l_cpu = cpu.meta_gradient(&tasks, &inner, &mut g_cpu)?;
    let mut g_gpu = vec![f32::NAN; p];
    let l_gpu = gpu.meta_gradient(&tasks, &inner, &mut g_gpu)?;
    rows.push(("meta-loss".into(), rel_scalar(l_gpu, l_cpu), tols.tol));
    for i in [0, case.n - 1] {
        let phi_gpu = gpu.adapted_params(&tasks, &inner, i)?;
        let phi_cpu = cpu_adapted(&layout, &theta, &tasks[i], &inner)?;
        for ten in &layout.tensors {
            let d = rel_diff(part(&phi_gpu, ten), part(&phi_cpu, ten));
            rows.push((format!("task {i} adapted {}", ten.name), d, tols.tol));
        }
    }
    for t in &layout.tensors {
        let d = rel_diff(part(&g_gpu, t), part(&g_cpu, t));
        rows.push((format!("grad {}", t.name), d, tols.tol));
    }
    let mut again = vec![f32::NAN; p];
    gpu.meta_gradient(&tasks, &inner, &mut again)?;
    rows.push((
        "grad bytes, twice".into(),
        same_bits(&again, &g_gpu),
        tols.tol,
    ));
    let step_tols = StepTols {
        state: tols.tol,
        update: tols.update,
    };
    for (i, step) in clip_schedule(norm(&g_cpu), 1e-3).iter().enumerate() {
        let (cpu0, gpu0) = (State::of(&cpu)?, State::of(gpu)?);
        let a = cpu.meta_step(&tasks, &inner, &step.0)?;
        let b = gpu.meta_step(&tasks, &inner, &step.0)?;
        let (cpu1, gpu1) = (State::of(&cpu)?, State::of(gpu)?);
        rows.extend(step_rows(
            &layout,
            i + 1,
            (&step.0, step.1),
            (&cpu0, &cpu1, a.grad_norm),
            (&gpu0, &gpu1, b.grad_norm),
            step_tols,
        ));
    }
    let (e_cpu, e_gpu) = (cpu.evaluate(&tasks, &inner)?, gpu.evaluate(&tasks, &inner)?);
    rows.push((
        "evaluated tasks".into(),
        rel_scalar(e_gpu.len() as f64, e_cpu.len() as f64),
        0.0,
    ));
    for (few, what) in [(false, "zero-shot logits"), (true, "few-shot logits")] {
        let d = rel_diff(&flat_logits(&e_gpu, few), &flat_logits(&e_cpu, few));
        rows.push((what.into(), d, tols.tol));
    }
    Ok(rows)
}

/// The pretraining check's case: the query pairs of `users` generated users (prefixes up to
/// `max_len`), the model (V, E, H), and 2 epochs of batch 64 with dropout 0.2 and prefixes cut
/// to 20 items.
pub fn pretraining_case(
    (v, e, h): (usize, usize, usize),
    users: usize,
    max_len: usize,
    seed: u64,
) -> (PairSet, ParamLayout, PretrainSettings) {
    let eps = generate_episodes(users, 1, 6, v, max_len, seed + 100);
    let pairs = PairSet {
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
    let settings = PretrainSettings {
        epochs: 2,
        batch_size: 64,
        lr: 1e-3,
        dropout: 0.2,
        max_prefix_len: 20,
        seed,
    };
    (pairs, layout, settings)
}

/// Pretraining on `gpu` (holding `init_params(layout, seed)`) against the CPU on
/// [`pretraining_case`]: the epochs, the per-epoch mean losses within `tols.tol`, each tensor's
/// change over the 2 epochs within `tols.pretrain` of the CPU's change.
pub fn compare_pretraining<D: Device>(
    gpu: &mut Cuda<D>,
    (pairs, layout, settings): &(PairSet, ParamLayout, PretrainSettings),
    tols: &Tolerances,
) -> Result<Vec<Row>> {
    use crate::pretrain::fit;
    let theta = gpu.params()?;
    let mut cpu = Cpu::new(layout.clone(), theta.clone())?;
    let l_cpu = fit(&mut cpu, pairs, settings, true)?;
    let l_gpu = fit(gpu, pairs, settings, true)?;
    let (t_cpu, t_gpu) = (cpu.params()?, gpu.params()?);
    let mut rows: Vec<Row> = vec![(
        "epochs".into(),
        rel_scalar(l_gpu.len() as f64, l_cpu.len() as f64),
        0.0,
    )];
    for (i, a) in l_cpu.iter().enumerate() {
        let d = l_gpu.get(i).map_or(Err("missing".into()), |b| {
            rel_scalar(b.train_loss, a.train_loss)
        });
        rows.push((format!("epoch {} train loss", a.epoch), d, tols.tol));
    }
    for t in &layout.tensors {
        let d = update_diff(
            (part(&t_gpu, t), part(&theta, t)),
            (part(&t_cpu, t), part(&theta, t)),
        );
        let what = format!("update over {} epochs {}", settings.epochs, t.name);
        rows.push((what, d, tols.pretrain));
    }
    Ok(rows)
}

/// Whether a row is within its tolerance (a row that could not be compared is not).
pub fn passes(row: &Row) -> bool {
    matches!(row.1, Ok((d, _)) if d <= row.2)
}

/// `recmaml gpu-check`'s cases: (V, E, H, N, K, Q, S).
pub const CASES: [(usize, usize, usize, usize, usize, usize, usize); 6] = [
    (40, 16, 32, 1, 3, 4, 2),
    (1519, 64, 64, 32, 5, 10, 5),
    (40, 8, 32, 64, 1, 1, 1),
    (1519, 32, 128, 32, 20, 5, 3),
    (10000, 64, 32, 1, 10, 20, 2),
    (10000, 64, 128, 64, 20, 10, 5),
];

/// What `recmaml gpu-check` runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuCheck {
    /// Only the first (small) case and no pretraining, e.g. under compute-sanitizer.
    pub small: bool,
    pub tols: Tolerances,
    /// Seed of the random tasks and weights.
    pub seed: u64,
}

/// Prints one row of the table; whether it passes. A row that could not be compared fails and
/// says why.
fn print_row(label: &str, (what, d, tol): &Row) -> bool {
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

/// `recmaml gpu-check` on GPU 0: every case and pretraining, one table; any failed row is an
/// error.
pub fn gpu_check(c: &GpuCheck) -> Result<()> {
    let cases = if c.small { &CASES[..1] } else { &CASES[..] };
    println!(
        "{:<26} {:<34} {:>11} {:>11} {:>5}",
        "case (V E H N K Q S)", "quantity", "rel L2", "rel max", "ok"
    );
    let mut failures = 0;
    for (ci, &dims) in cases.iter().enumerate() {
        let case = Case::new(dims, 50, c.seed + ci as u64);
        let mut gpu = Cuda::new(case.layout(), case.theta())?;
        for row in compare(&mut gpu, &case, &c.tols)? {
            failures += usize::from(!print_row(&case.label(), &row));
        }
    }
    if !c.small {
        let (v, e, h) = (300, 32, 64);
        let pc = pretraining_case((v, e, h), 120, 50, c.seed);
        let mut gpu = Cuda::new(pc.1.clone(), init_params(&pc.1, c.seed))?;
        let label = format!("pretrain {v} {e} {h} ({} p)", pc.0.labels.len());
        for row in compare_pretraining(&mut gpu, &pc, &c.tols)? {
            failures += usize::from(!print_row(&label, &row));
        }
    }
    let t = &c.tols;
    if failures > 0 {
        return Err(Error::Backend {
            backend: "cuda".into(),
            msg: format!(
                "{failures} GPU-vs-CPU checks failed (tolerance {}, updates {})",
                t.tol, t.update
            ),
        });
    }
    println!(
        "all GPU-vs-CPU checks passed (tolerance {}, updates {})",
        t.tol, t.update
    );
    Ok(())
}
