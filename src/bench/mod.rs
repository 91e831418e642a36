//! `recmaml bench`'s engine: meta-iterations per second of a backend on the reference
//! configuration (V 1519, E 64, H 64, N 32, K 5, Q 10, 5 inner steps, XuetangX-like prefix
//! lengths: median 3, p90 19, capped at 50), with the FLOP count of an iteration and the achieved
//! rate; a sweep varies one factor at a time around it. The workload export records the tasks and
//! meta-batches so that `benches/torch_fomaml.py` times exactly the same iterations in PyTorch.
//!
//! The parts: the work of an iteration ([`flops_per_iteration`], [`min_bytes_per_iteration`]),
//! the sweep's configurations ([`sweep_configs`]), the tasks and meta-batches of a run and their
//! timing, and the workload export ([`Workload`]). Printing the results is the command line's.

mod ceiling;
mod flops;
mod options;
mod sweep;
mod tasks;
mod timing;
mod workload;

pub use ceiling::Ceiling;
pub use flops::{flops_per_iteration, min_bytes_per_iteration};
pub use options::BenchOptions;
pub use sweep::{
    sweep_configs, BenchConfig, SWEEP_CAP, SWEEP_FACTORS, SWEEP_H, SWEEP_K, SWEEP_N, SWEEP_V,
};
pub use timing::{PhaseSummary, PhaseTime};
pub use workload::Workload;

use crate::backend::{Backend, BatchShape, MemoryNeed};
use crate::config::{BackendKind, Config};
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use crate::train;
use serde::Serialize;
use std::path::Path;
use tasks::{Plan, PrefixLengths};
use timing::Timings;

/// One benchmark result.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// The configuration's label (`reference`, or the sweep factor that differs).
    pub label: String,
    pub backend: String,
    pub prefix_sharing: bool,
    pub source: String,
    pub n: usize,
    pub k: usize,
    pub q: usize,
    pub v: usize,
    pub e: usize,
    pub h: usize,
    pub inner_steps: usize,
    pub prefix_cap: usize,
    pub prefix_len_median: usize,
    pub prefix_len_p90: usize,
    pub prefix_len_mean: f64,
    pub threads: usize,
    pub warmup: usize,
    pub iters: usize,
    pub repeats: usize,
    pub ms_per_iter_median: f64,
    pub iters_per_sec: f64,
    pub gflop_per_iter: f64,
    pub gflops_achieved: f64,
    /// The fewest bytes an iteration must move through memory: θ, Adam's two moments and the
    /// meta-gradient's use (each read and written once) plus the batch's integers and weights.
    pub min_mb_per_iter: f64,
    /// Median over every timed iteration of the device time between CUDA events around the
    /// iteration's copies and launches (CUDA backend only).
    pub device_ms_per_iter_median: Option<f64>,
    /// 1000 / device_ms_per_iter_median.
    pub device_iters_per_sec: Option<f64>,
    /// max(FLOPs / peak_gflops, bytes / peak_gbps) in ms, when both ceilings are given.
    pub floor_ms: Option<f64>,
    /// floor_ms over the measured time per iteration (device time where measured).
    pub fraction_of_floor: Option<f64>,
    /// With `RECMAML_CUDA_PROFILE=1` on the CUDA backend: clock cycles per meta-iteration spent in
    /// each phase of the task kernel, averaged over the tasks of the timed iterations; with
    /// `RECMAML_CPU_PROFILE=1` on the CPU backend: nanoseconds per meta-iteration in each phase,
    /// summed over threads.
    pub phase_profile: Option<PhaseSummary>,
    /// The device memory the backend allocates for this batch shape (CUDA backend only).
    pub device_memory: Option<MemoryNeed>,
    /// CPU backend: the measured FP32 ceiling of the engine's own matrix tiles.
    pub cpu_ceiling: Option<Ceiling>,
    /// gflops_achieved over the ceiling's rate.
    pub fraction_of_ceiling: Option<f64>,
}

/// A backend with freshly initialised weights for the benchmark.
fn bench_backend(args: &BenchOptions, layout: ParamLayout) -> Result<Box<dyn Backend>> {
    let theta = crate::model::init::init_params(&layout, args.seed);
    if !args.prefix_sharing {
        if args.backend != BackendKind::Cpu {
            return Err(Error::config(
                "--no-prefix-sharing",
                "applies to --backend cpu only",
            ));
        }
        let mut cpu = crate::cpu::Cpu::new(layout, theta)?;
        cpu.set_share_prefixes(false);
        return Ok(Box::new(cpu));
    }
    let mut cfg = Config::default();
    cfg.run.backend = args.backend;
    train::make_backend(&cfg, layout, theta)
}

/// Runs one configuration; with `workload_dir`, also writes its tasks and meta-batches there.
pub fn run_config(
    args: &BenchOptions,
    cfg: &BenchConfig,
    workload_dir: Option<&Path>,
) -> Result<BenchResult> {
    cfg.validate()?;
    if args.iters == 0 || args.repeats == 0 {
        return Err(Error::config(
            "--iters/--repeats",
            "both must be at least 1",
        ));
    }
    let plan = Plan::new(args, cfg)?;
    let layout = ParamLayout::new(plan.dims);
    let p = layout.len;
    let mut backend = bench_backend(args, layout)?;
    let flops = plan.mean_per_batch(|t| flops_per_iteration(t, plan.dims, cfg.inner_steps));
    if let Some(dir) = workload_dir {
        workload::write_workload(args, cfg, &plan, flops, dir)?;
    }
    let bytes = plan.mean_per_batch(|t| min_bytes_per_iteration(t, p));
    let memory = backend.device_memory(&BatchShape {
        n: cfg.n,
        k: plan.k(),
        q: plan.q(),
        max_prefix_len: cfg.prefix_cap,
        steps: cfg.inner_steps,
    })?;
    let timings = timing::time_plan(backend.as_mut(), &plan, args)?;
    let work = Work { flops, bytes };
    let mut r = result(args, cfg, &plan, backend.name(), work, timings);
    r.device_memory = memory;
    if args.ceiling && args.backend == BackendKind::Cpu {
        let c = ceiling::measured();
        r.fraction_of_ceiling = Some(r.gflops_achieved / c.gflops);
        r.cpu_ceiling = Some(c);
    }
    Ok(r)
}

/// The mean FLOPs and fewest bytes of an iteration of a plan.
struct Work {
    flops: f64,
    bytes: f64,
}

/// The result of a timed plan.
fn result(
    args: &BenchOptions,
    cfg: &BenchConfig,
    plan: &Plan,
    backend: &str,
    work: Work,
    t: Timings,
) -> BenchResult {
    let lens = PrefixLengths::of(&plan.episodes);
    let ms = t.ms_per_iter;
    let dev = t.device_ms_per_iter;
    let floor = flops::floor_ms(work.flops, work.bytes, args.peak_gflops, args.peak_gbps);
    BenchResult {
        label: cfg.label.clone(),
        backend: backend.to_string(),
        prefix_sharing: args.prefix_sharing,
        source: plan.source.clone(),
        n: cfg.n,
        k: plan.k(),
        q: plan.q(),
        v: plan.dims.n_items,
        e: cfg.e,
        h: cfg.h,
        inner_steps: cfg.inner_steps,
        prefix_cap: cfg.prefix_cap,
        prefix_len_median: lens.median,
        prefix_len_p90: lens.p90,
        prefix_len_mean: lens.mean,
        threads: rayon::current_num_threads(),
        warmup: args.warmup,
        iters: args.iters,
        repeats: args.repeats,
        ms_per_iter_median: ms,
        iters_per_sec: 1e3 / ms,
        gflop_per_iter: work.flops / 1e9,
        gflops_achieved: work.flops / 1e9 / (dev.unwrap_or(ms) / 1e3),
        min_mb_per_iter: work.bytes / 1e6,
        device_ms_per_iter_median: dev,
        device_iters_per_sec: dev.map(|d| 1e3 / d),
        floor_ms: floor,
        fraction_of_floor: floor.map(|f| f / dev.unwrap_or(ms)),
        phase_profile: t.phases,
        device_memory: None,
        cpu_ceiling: None,
        fraction_of_ceiling: None,
    }
}

/// Runs the benchmark on the configuration the options describe (the reference by default).
pub fn run(args: &BenchOptions) -> Result<BenchResult> {
    run_config(
        args,
        &BenchConfig::from_options(args),
        args.write_workload.as_deref(),
    )
}

/// The configurations of a sweep ([`sweep_configs`] around the options' sizes); an error when
/// the options read their tasks from a file (a sweep generates its own).
pub fn sweep_plan(args: &BenchOptions) -> Result<Vec<BenchConfig>> {
    if args.episodes.is_some() {
        return Err(Error::config(
            "--sweep",
            "generates its tasks; it cannot be combined with --episodes",
        ));
    }
    sweep_configs(&BenchConfig::from_options(args), &args.sweep_factors)
}

/// Runs the configurations of a sweep in order, calling `each` with every result as it finishes;
/// with `write_workload` DIR, each configuration's workload goes to `DIR/<label>/`.
pub fn run_sweep(
    args: &BenchOptions,
    plan: &[BenchConfig],
    mut each: impl FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    let mut out = Vec::new();
    for cfg in plan {
        let dir = args.write_workload.as_ref().map(|d| d.join(&cfg.label));
        let r = run_config(args, cfg, dir.as_deref())?;
        each(&r);
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{self, workload::generate_episodes};
    use crate::rng::Rng;

    #[test]
    fn bad_sizes_are_errors_naming_the_flag() {
        let reference = BenchOptions::default();
        for (flag, a) in [
            (
                "--items",
                BenchOptions {
                    items: 1,
                    ..reference.clone()
                },
            ),
            ("--k", BenchOptions { k: 0, ..reference }),
        ] {
            let err = run(&a).unwrap_err().to_string();
            assert!(err.contains(flag), "{err}");
        }
        let a = BenchOptions {
            episodes: Some("x.parquet".into()),
            ..BenchOptions::default()
        };
        assert!(sweep_plan(&a).unwrap_err().to_string().contains("--sweep"));
    }

    #[test]
    fn workload_records_the_tasks_and_batches_that_were_timed() {
        let dir = tempfile::tempdir().unwrap();
        let a = BenchOptions {
            n: 3,
            items: 30,
            embed_dim: 4,
            hidden_dim: 4,
            iters: 2,
            repeats: 2,
            warmup: 1,
            ..BenchOptions::default()
        };
        let cfg = BenchConfig::from_options(&a);
        let r = run_config(&a, &cfg, Some(dir.path())).unwrap();
        assert_eq!((r.n, r.v, r.iters, r.repeats), (3, 30, 2, 2));
        let w: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("workload.json")).unwrap(),
        )
        .unwrap();
        let set = data::read_episodes(
            std::path::Path::new(w["episodes"].as_str().unwrap()),
            Some(30),
        )
        .unwrap();
        let generated = generate_episodes(64, 5, 10, 30, 50, 1);
        assert_eq!(set.episodes.len(), generated.len());
        for (a, b) in set.episodes.iter().zip(&generated) {
            assert_eq!(a.support_prefixes, b.support_prefixes);
            assert_eq!(a.query_labels, b.query_labels);
        }
        let batches = w["batches"].as_array().unwrap();
        assert_eq!(batches.len(), 1 + 2 * 2);
        let mut rng = Rng::new(1);
        for b in batches {
            let want = rng.sample_without_replacement(64, 3);
            let got: Vec<usize> = b
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(got, want);
        }
        let weights = w["support_weights"].as_array().unwrap();
        assert_eq!(weights.len(), 5);
        assert!(w["gflop_per_iter"].as_f64().unwrap() > 0.0);
    }
}
