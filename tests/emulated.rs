//! The CUDA backend as users run it (`recmaml::cuda::Cuda`: its packing, launch order, argument
//! lists and shared-memory plans) on the emulated kernels (`tests/emu/`), against the CPU engine,
//! through the same comparison that `recmaml gpu-check` makes on a GPU (`recmaml::verify`); each
//! kernel variant under `kernels/variants/` too. `RECMAML_REQUIRE_EMU=1` (CI) makes a missing
//! C++ compiler a failure instead of a skip.

mod common;
mod emu;

use emu::EmuDevice;
use recmaml::backend::{Backend, BatchShape, OuterConfig, Task};
use recmaml::cuda::{plan, program, Cuda};
use recmaml::model::init_params;
use recmaml::verify::{self, Case, Tolerances};
use std::path::PathBuf;

/// Every row of the comparison must pass; a failure lists the rows that did not.
fn assert_rows(label: &str, rows: &[verify::diff::Row]) {
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| !verify::passes(r))
        .map(|(what, d, tol)| format!("{what}: {d:?} (tolerance {tol})"))
        .collect();
    assert!(!rows.is_empty(), "{label}: nothing compared");
    assert!(bad.is_empty(), "{label}:\n{}", bad.join("\n"));
}

/// The comparison on `dev`, then the same launches with each block's threads in reverse order,
/// which must give the same bytes (or a result depends on the order in which threads reach
/// shared memory: a race).
fn check_case(
    dev: EmuDevice,
    dims: (usize, usize, usize, usize, usize, usize, usize),
    max_len: usize,
    smem_whh: bool,
) {
    let (v, h, n) = (dims.0, dims.2, dims.3);
    let case = Case::new(dims, max_len, (v * 31 + h * 7 + n) as u64);
    let label = format!("{}, V E H N K Q S {}", dev.name_short(), case.label());
    let mut gpu = Cuda::on(dev, case.layout(), case.theta()).unwrap();
    gpu.set_smem_whh(smem_whh);
    let rows = verify::compare(&mut gpu, &case, &Tolerances::default()).unwrap();
    assert_rows(&label, &rows);

    let eps = case.episodes();
    let weights = verify::linear_weights(case.k);
    let tasks: Vec<Task> = eps.iter().map(|ep| Task::of(ep, &weights)).collect();
    let inner = case.inner();
    let mut run = |reverse: bool| {
        gpu.device().set_reverse(reverse).unwrap();
        let mut g = vec![f32::NAN; case.layout().len];
        let loss = gpu.meta_gradient(&tasks, &inner, &mut g).unwrap();
        let ev = gpu.evaluate(&tasks, &inner).unwrap();
        gpu.device().set_reverse(false).unwrap();
        (loss, g, ev)
    };
    let (fwd, rev) = (run(false), run(true));
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert!(
        fwd.0.to_bits() == rev.0.to_bits() && bits(&fwd.1) == bits(&rev.1),
        "{label}: the meta-gradient depends on the threads' order (a race)"
    );
    assert_eq!(fwd.2.len(), rev.2.len());
    for (x, y) in fwd.2.iter().zip(&rev.2) {
        assert!(
            bits(&x.few_shot_logits) == bits(&y.few_shot_logits)
                && bits(&x.zero_shot_logits) == bits(&y.zero_shot_logits),
            "{label}: the evaluation logits depend on the threads' order (a race)"
        );
    }
}

/// A large catalogue (V = 50,000, H = 128) at a reduced N: the CUDA backend trains (two
/// meta-steps) and evaluates within the device memory it reports for the batch shape, then
/// matches the CPU engine at that size.
#[test]
fn large_catalogue_within_the_reported_memory() {
    let Some(dev) = emu::device(plan::default_block(90)) else {
        return;
    };
    let case = Case::new((50_000, 64, 128, 2, 3, 2, 2), 8, 11);
    let shape = BatchShape {
        n: case.n,
        k: case.k,
        q: case.q,
        max_prefix_len: 8,
        steps: case.s,
    };
    let mut gpu = Cuda::on(dev, case.layout(), case.theta()).unwrap();
    let need = gpu
        .device_memory(&shape)
        .unwrap()
        .expect("the CUDA backend reports memory");
    let eps = case.episodes();
    let weights = verify::linear_weights(case.k);
    let tasks: Vec<Task> = eps.iter().map(|ep| Task::of(ep, &weights)).collect();
    let outer = OuterConfig::adam(1e-3, 1.0);
    for _ in 0..2 {
        gpu.meta_step(&tasks, &case.inner(), &outer).unwrap();
    }
    let evals = gpu.evaluate(&tasks, &case.inner()).unwrap();
    assert_eq!(evals.len(), case.n);
    // The emulator rounds each of the backend's 14 buffers up to 8 bytes, and a buffer that grows
    // holds an 8-byte placeholder while its new memory is allocated.
    let peak = gpu.device().peak_bytes();
    assert!(
        peak <= need.total() + 14 * 16,
        "allocated {peak} bytes at once, reported {need:?} = {}",
        need.total()
    );
    let mut gpu = Cuda::on(
        emu::device(plan::default_block(90)).unwrap(),
        case.layout(),
        case.theta(),
    )
    .unwrap();
    let rows = verify::compare(&mut gpu, &case, &Tolerances::default()).unwrap();
    assert_rows("V 50000 H 128", &rows);
}

/// 64 threads: more (sequence, unit) items than threads (the non-prefetched cell path), one
/// column slice.
#[test]
fn emulated_kernels_match_cpu_with_64_threads() {
    let Some(dev) = emu::device(64) else { return };
    check_case(dev, (40, 16, 32, 3, 3, 4, 2), 12, true);
}

/// The default block at the reference model size (V 1519, E 64, H 64; 5 support and 10 query
/// sequences, two 8-column groups), w_hh in shared memory.
#[test]
fn emulated_kernels_match_cpu_reference_shape() {
    let Some(dev) = emu::device(program::DEFAULT_BLOCK) else {
        return;
    };
    check_case(dev, (1519, 64, 64, 3, 5, 10, 2), 20, true);
}

/// H and E not multiples of 4 (scalar tile and projection paths), w_hh read from global memory.
#[test]
fn emulated_kernels_match_cpu_odd_sizes_global_whh() {
    let Some(dev) = emu::device(96) else { return };
    check_case(dev, (57, 6, 10, 2, 4, 3, 2), 9, false);
}

/// H 128 with 20 support sequences (three 8-column groups), 384 threads.
#[test]
fn emulated_kernels_match_cpu_wide() {
    let Some(dev) = emu::device(384) else { return };
    check_case(dev, (300, 32, 128, 2, 20, 5, 1), 15, true);
}

/// The plans of smaller devices: sm_75 (64 KB of shared memory per block: w_hh stays in global
/// memory) and sm_86 (99 KB), each at its planned block size (384 threads), on the reference
/// shape and, for sm_86, H 128 with 20 support sequences.
#[test]
fn emulated_kernels_match_cpu_with_the_sm75_and_sm86_plans() {
    for (cc, dims, max_len) in [
        (75, (1519, 64, 64, 2, 5, 10, 2), 20),
        (86, (1519, 64, 64, 2, 5, 10, 2), 20),
        (86, (300, 32, 128, 2, 20, 5, 1), 15),
    ] {
        let Some(mut dev) = emu::device(plan::default_block(cc)) else {
            return;
        };
        dev.set_arch(cc);
        check_case(dev, dims, max_len, true);
    }
}

/// Pretraining (query weights 1/batch, dropout masks on the final hidden states, gradients
/// summed, no inner step) on the emulated kernels against the CPU, as `recmaml gpu-check` does
/// on a GPU.
#[test]
fn emulated_pretraining_matches_cpu() {
    let Some(dev) = emu::device(128) else { return };
    let pc = verify::pretraining_case((200, 16, 32), 60, 30, 5);
    let theta = init_params(&pc.1, 5);
    let mut gpu = Cuda::on(dev, pc.1.clone(), theta.clone()).unwrap();
    let rows = verify::compare_pretraining(&mut gpu, &pc, &Tolerances::default()).unwrap();
    assert_rows("pretraining", &rows);
    assert_ne!(gpu.params().unwrap(), theta, "pretraining changed nothing");
}

/// The guard page behind each block's dynamic shared memory: the task kernels launched with
/// less shared memory than their plan reserves must fail with an invalid access named by
/// kernel, block and thread, where a plain buffer would let them read whatever memory follows.
/// With the plan's own size the same launches succeed. Another emulator library loaded and
/// unloaded in between must not take over the fault handling.
#[test]
fn emulated_shared_memory_overrun_is_reported() {
    let Some(first) = emu::device(64) else { return };
    let case = Case::new((40, 16, 32, 2, 3, 4, 2), 12, 3);
    let eps = case.episodes();
    let weights = verify::linear_weights(case.k);
    let tasks: Vec<Task> = eps.iter().map(|ep| Task::of(ep, &weights)).collect();
    let inner = case.inner();
    let mut gpu = Cuda::on(first, case.layout(), case.theta()).unwrap();
    let mut g = vec![0.0f32; case.layout().len];
    gpu.meta_gradient(&tasks, &inner, &mut g).unwrap();
    // Another copy of the emulator library launched and unloaded after this one's first
    // launch: this one's faults must still come back here.
    if let Some(other) = emu::device(64) {
        Cuda::on(other, case.layout(), case.theta())
            .unwrap()
            .meta_gradient(&tasks, &inner, &mut g)
            .unwrap();
    }
    gpu.evaluate(&tasks, &inner)
        .unwrap_or_else(|e| panic!("task_forward with its planned smem: {e}"));
    // Half the plan: the upper regions (w_hh, the states) now lie past the buffer.
    gpu.device_mut().set_smem_scale(0.5);
    let backward = gpu
        .meta_gradient(&tasks, &inner, &mut g)
        .expect_err("an overrun of the shared memory went unnoticed (task_backward)")
        .to_string();
    let forward = gpu
        .evaluate(&tasks, &inner)
        .expect_err("an overrun of the shared memory went unnoticed (task_forward)")
        .to_string();
    for (name, err) in [("task_backward", backward), ("task_forward", forward)] {
        assert!(
            err.contains(&format!("emulator: {name}"))
                && err.contains("invalid memory access")
                && err.contains(" in block "),
            "{name}: unexpected error {err:?}"
        );
    }
}

/// The kernel variants (`kernels/variants/NAME/`, each a complete set of kernel files, as
/// `RECMAML_KERNEL_DIR` reads them): each one against the CPU engine at the reference shape.
#[test]
fn every_kernel_variant_matches_cpu() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kernels/variants");
    for variant in program::variant_dirs(&dir).unwrap() {
        let src = program::program_source_from(&variant).unwrap();
        let unit = emu::source_of(program::DEFAULT_BLOCK, &src).unwrap();
        let Some(dev) = emu::device_from(program::DEFAULT_BLOCK, &unit) else {
            return;
        };
        eprintln!("variant {}", variant.display());
        check_case(dev, (1519, 64, 64, 3, 5, 10, 2), 20, true);
    }
}

/// The anchor penalty of residual warm-start (clip_forward adds `anchor_l2 · (θ − anchor)` to the
/// meta-gradient) on the emulated kernels against the CPU engine: two anchored meta-steps from
/// weights away from the anchor, compared as updates, and the gradient norms.
#[test]
fn emulated_anchored_meta_steps_match_cpu() {
    let Some(dev) = emu::device(128) else { return };
    let case = Case::new((40, 16, 32, 3, 3, 4, 2), 12, 23);
    let theta0 = case.theta();
    let anchor: Vec<f32> = theta0
        .iter()
        .enumerate()
        .map(|(i, t)| t + 0.05 * ((i % 7) as f32 - 3.0))
        .collect();
    let eps = case.episodes();
    let weights = verify::linear_weights(case.k);
    let tasks: Vec<Task> = eps.iter().map(|ep| Task::of(ep, &weights)).collect();
    let outer = OuterConfig {
        anchor_l2: 2.0,
        ..OuterConfig::adam(1e-3, f32::INFINITY)
    };
    let mut gpu = Cuda::on(dev, case.layout(), theta0.clone()).unwrap();
    let mut cpu = recmaml::cpu::Cpu::new(case.layout(), theta0.clone()).unwrap();
    let mut free = recmaml::cpu::Cpu::new(case.layout(), theta0.clone()).unwrap();
    gpu.set_anchor(&anchor).unwrap();
    Backend::set_anchor(&mut cpu, &anchor).unwrap();
    let unanchored = OuterConfig {
        anchor_l2: 0.0,
        ..outer
    };
    for step in 1..=2 {
        let g = gpu.meta_step(&tasks, &case.inner(), &outer).unwrap();
        let c = cpu.meta_step(&tasks, &case.inner(), &outer).unwrap();
        let f = free.meta_step(&tasks, &case.inner(), &unanchored).unwrap();
        let norm = verify::diff::rel_scalar(g.grad_norm, c.grad_norm)
            .unwrap()
            .0;
        assert!(
            norm < 1e-4,
            "step {step}: gradient norm {} vs {}",
            g.grad_norm,
            c.grad_norm
        );
        // The penalty is in the norm: θ0 − anchor is far larger than the meta-gradient here.
        assert!(
            c.grad_norm > 2.0 * f.grad_norm,
            "step {step}: {} vs {}",
            c.grad_norm,
            f.grad_norm
        );
    }
    let (got, want) = (gpu.params().unwrap(), cpu.params().unwrap());
    let d = verify::diff::update_diff((&got, &theta0), (&want, &theta0)).unwrap();
    assert!(d.0 < verify::UPDATE_TOL, "anchored updates differ: {d:?}");
}
