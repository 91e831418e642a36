//! `recmaml bench`: meta-iterations per second of a backend on the reference configuration
//! (V 1519, E 64, H 64, N 32, K 5, Q 10, 5 inner steps, XuetangX-like prefix lengths: median 3,
//! p90 19, capped at 50), with the FLOP count of an iteration and the achieved rate; `--sweep`
//! varies one factor at a time around it. `--write-workload` records the tasks and meta-batches so
//! that `benches/torch_fomaml.py` times exactly the same iterations in PyTorch.

use crate::backend::{Backend, InnerLoop, OuterConfig, Task};
use crate::config::{BackendKind, Config};
use crate::data::workload::generate_episodes;
use crate::data::{self, Episode};
use crate::error::{Error, Result};
use crate::model::{ModelDims, ParamLayout};
use crate::rng::Rng;
use crate::train;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `bench` runs: the backend, where the tasks come from, the sizes (the reference
/// configuration by default), how long to time, and the optional extras.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    pub backend: BackendKind,
    /// Read the tasks from this episode file instead of generating them.
    pub episodes: Option<PathBuf>,
    /// Tasks per meta-batch (N).
    pub n: usize,
    /// Support pairs per task (K), for generated tasks.
    pub k: usize,
    /// Query pairs per task (Q), for generated tasks.
    pub q: usize,
    /// Items (V), for generated tasks.
    pub items: usize,
    /// Embedding size (E).
    pub embed_dim: usize,
    /// GRU hidden size (H).
    pub hidden_dim: usize,
    /// Inner SGD steps (S).
    pub inner_steps: usize,
    /// Longest prefix (generated prefixes are capped here).
    pub prefix_cap: usize,
    /// Timed meta-iterations per repeat.
    pub iters: usize,
    /// Repeats (the median is reported).
    pub repeats: usize,
    /// Untimed warm-up meta-iterations.
    pub warmup: usize,
    /// CPU only: `false` computes every prefix's GRU states separately instead of sharing
    /// common prefixes.
    pub prefix_sharing: bool,
    /// Seed for the generated tasks and the initial weights.
    pub seed: u64,
    /// Which factors a sweep varies, from [`SWEEP_FACTORS`].
    pub sweep_factors: Vec<String>,
    /// Write the tasks (episodes.parquet) and the exact meta-batches (workload.json) here, for
    /// benches/torch_fomaml.py; in a sweep, one subfolder per configuration.
    pub write_workload: Option<PathBuf>,
    /// The device's measured arithmetic ceiling in GFLOP/s, for the floor.
    pub peak_gflops: Option<f64>,
    /// The device's measured memory bandwidth in GB/s (bytes read plus written), for the floor.
    pub peak_gbps: Option<f64>,
}

impl Default for BenchOptions {
    /// The reference configuration on the CPU: V 1519, E 64, H 64, N 32, K 5, Q 10, 5 inner
    /// steps, prefixes capped at 50; the median of 5 repeats of 20 iterations after 3 warm-up.
    fn default() -> Self {
        BenchOptions {
            backend: BackendKind::Cpu,
            episodes: None,
            n: 32,
            k: 5,
            q: 10,
            items: 1519,
            embed_dim: 64,
            hidden_dim: 64,
            inner_steps: 5,
            prefix_cap: 50,
            iters: 20,
            repeats: 5,
            warmup: 3,
            prefix_sharing: true,
            seed: 1,
            sweep_factors: SWEEP_FACTORS.iter().map(|f| f.to_string()).collect(),
            write_workload: None,
            peak_gflops: None,
            peak_gbps: None,
        }
    }
}

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
    /// each phase of the task kernel, averaged over the tasks of the timed iterations.
    pub phase_cycles: Option<Vec<PhaseCycles>>,
}

/// One phase of the task kernel's profile.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseCycles {
    pub phase: String,
    pub cycles_per_iter: f64,
    pub share: f64,
}

/// Per phase, the cycles per iteration averaged over the first `n` tasks' counters.
fn phase_summary(counters: &[Vec<u64>], n: usize, iters: usize) -> Vec<PhaseCycles> {
    let tasks = &counters[..n.min(counters.len())];
    let per: Vec<f64> = (0..crate::cuda::program::PROFILE_PHASES.len())
        .map(|c| {
            tasks.iter().map(|t| t[c] as f64).sum::<f64>() / (tasks.len() * iters).max(1) as f64
        })
        .collect();
    let total: f64 = per.iter().sum();
    crate::cuda::program::PROFILE_PHASES
        .iter()
        .zip(per)
        .map(|(name, c)| PhaseCycles {
            phase: name.to_string(),
            cycles_per_iter: c,
            share: if total > 0.0 { c / total } else { 0.0 },
        })
        .collect()
}

/// FLOPs of one meta-iteration, counting each prefix's GRU steps, the output layer, their
/// backward passes (twice the forward), the SGD updates, the meta-gradient sum and Adam.
///
/// A multiply-add counts 2 FLOPs, so a GRU step costs `2·3H·(E + H)` for its two matrix products
/// and the output layer `2·V·H`. The element-wise work has fixed allowances: 20 FLOPs per hidden
/// unit per GRU step (gate sums, sigmoid, tanh, the blend), 5 per logit (softmax cross-entropy),
/// 2 per parameter for an SGD step (multiply by the rate, subtract), 1 per parameter and task for
/// the meta-gradient sum, and 12 per parameter for Adam. Embedding lookups cost nothing. Every
/// prefix counts in full, as if no prefixes were shared.
pub fn flops_per_iteration(tasks: &[Task], dims: ModelDims, inner_steps: usize) -> f64 {
    let (v, e, h) = (
        dims.n_items as f64,
        dims.embed_dim as f64,
        dims.hidden_dim as f64,
    );
    let p = ParamLayout::new(dims).len as f64;
    let gru_step = 2.0 * 3.0 * h * (e + h) + 20.0 * h;
    let out = 2.0 * v * h + 5.0 * v;
    let pass = |prefixes: &[Vec<u32>]| -> f64 {
        prefixes
            .iter()
            .map(|x| 3.0 * (x.len() as f64 * gru_step + out))
            .sum()
    };
    let per_task: f64 = tasks
        .iter()
        .map(|t| {
            inner_steps as f64 * (pass(t.support_prefixes) + 2.0 * p) + pass(t.query_prefixes) + p
        })
        .sum();
    per_task + 12.0 * p
}

/// The fewest bytes one meta-iteration must move through device memory: θ, the two Adam moments
/// (each read and written once) and the meta-gradient (written and read once), 4 bytes each,
/// plus the batch itself (every prefix item, label and weight once).
pub fn min_bytes_per_iteration(tasks: &[Task], p: usize) -> f64 {
    let batch: usize = tasks
        .iter()
        .map(|t| {
            let items = |x: &[Vec<u32>]| x.iter().map(Vec::len).sum::<usize>();
            items(t.support_prefixes)
                + items(t.query_prefixes)
                + 2 * t.support_labels.len()
                + t.query_labels.len()
        })
        .sum();
    4.0 * (8 * p + batch) as f64
}

fn percentile(sorted: &[usize], q: f64) -> usize {
    sorted[((q * (sorted.len() - 1) as f64).round()) as usize]
}

/// The sizes of one benchmark configuration (tasks are generated with them unless `--episodes`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchConfig {
    /// Short name: `reference`, or the factor that differs from it (`N128`, `V50000`, ...).
    pub label: String,
    pub n: usize,
    pub k: usize,
    pub q: usize,
    pub v: usize,
    pub e: usize,
    pub h: usize,
    pub inner_steps: usize,
    pub prefix_cap: usize,
}

/// Tasks per meta-batch in the sweep.
pub const SWEEP_N: [usize; 5] = [1, 8, 32, 128, 512];
/// Support pairs per task in the sweep.
pub const SWEEP_K: [usize; 3] = [5, 10, 20];
/// Items in the sweep.
pub const SWEEP_V: [usize; 3] = [1519, 10_000, 50_000];
/// GRU hidden sizes in the sweep.
pub const SWEEP_H: [usize; 2] = [64, 128];
/// Prefix caps in the sweep.
pub const SWEEP_CAP: [usize; 2] = [10, 50];

impl BenchConfig {
    /// The configuration the options describe, labelled `reference`.
    pub fn from_options(args: &BenchOptions) -> Self {
        BenchConfig {
            label: "reference".into(),
            n: args.n,
            k: args.k,
            q: args.q,
            v: args.items,
            e: args.embed_dim,
            h: args.hidden_dim,
            inner_steps: args.inner_steps,
            prefix_cap: args.prefix_cap,
        }
    }

    fn validate(&self) -> Result<()> {
        let positive = [
            ("--n", self.n),
            ("--k", self.k),
            ("--q", self.q),
            ("--embed-dim", self.e),
            ("--hidden-dim", self.h),
            ("--prefix-cap", self.prefix_cap),
        ];
        for (flag, x) in positive {
            if x == 0 {
                return Err(Error::config(flag, "must be at least 1"));
            }
        }
        if self.v < 2 {
            return Err(Error::config(
                "--items",
                "must be at least 2 (id 0 is padding)",
            ));
        }
        Ok(())
    }
}

/// Sets one factor of a configuration.
type SetFactor = fn(&mut BenchConfig, usize);

/// The factors a sweep can vary, by the name `--sweep-factors` uses.
pub const SWEEP_FACTORS: [&str; 5] = ["N", "K", "V", "H", "cap"];

/// The sweep around `base`: `base` itself, then one factor at a time, in the order of
/// [`SWEEP_FACTORS`], over the values in [`SWEEP_N`], [`SWEEP_K`], [`SWEEP_V`], [`SWEEP_H`] and
/// [`SWEEP_CAP`], every other size as in `base` (not the cartesian product). `factors` names the
/// factors to vary; an unknown name is an error naming `--sweep-factors`.
pub fn sweep_configs(base: &BenchConfig, factors: &[String]) -> Result<Vec<BenchConfig>> {
    if let Some(bad) = factors
        .iter()
        .find(|f| !SWEEP_FACTORS.contains(&f.as_str()))
    {
        return Err(Error::config(
            "--sweep-factors",
            format!(
                "unknown factor {bad:?} (known: {})",
                SWEEP_FACTORS.join(",")
            ),
        ));
    }
    let mut out = vec![base.clone()];
    let sets: [(&[usize], SetFactor); 5] = [
        (&SWEEP_N, |c, x| c.n = x),
        (&SWEEP_K, |c, x| c.k = x),
        (&SWEEP_V, |c, x| c.v = x),
        (&SWEEP_H, |c, x| c.h = x),
        (&SWEEP_CAP, |c, x| c.prefix_cap = x),
    ];
    for (name, (values, set)) in SWEEP_FACTORS.iter().zip(sets) {
        if !factors.iter().any(|f| f == name) {
            continue;
        }
        for &x in values {
            let mut c = base.clone();
            set(&mut c, x);
            if c != *base {
                c.label = format!("{name}{x}");
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// What `--write-workload` records for `benches/torch_fomaml.py`: the episode file, the sizes and
/// hyper-parameters, and the exact meta-batches (row indices into the episode file) in the order
/// they were run: the first `warmup` untimed, then `repeats` runs of `iters`.
#[derive(Debug, Serialize)]
pub struct Workload<'a> {
    pub label: &'a str,
    pub episodes: PathBuf,
    pub v: usize,
    pub e: usize,
    pub h: usize,
    pub n: usize,
    pub k: usize,
    pub q: usize,
    pub inner_steps: usize,
    pub inner_lr: f32,
    pub outer_lr: f32,
    pub clip: f32,
    pub support_weights: &'a [f32],
    pub warmup: usize,
    pub iters: usize,
    pub repeats: usize,
    pub seed: u64,
    pub gflop_per_iter: f64,
    pub batches: &'a [Vec<usize>],
}

/// Episodes for a configuration: read from `--episodes` (V from the file), or generated.
fn load_episodes(args: &BenchOptions, cfg: &BenchConfig) -> Result<(Vec<Episode>, String, usize)> {
    Ok(match &args.episodes {
        Some(path) => {
            let set = data::read_episodes(path, None)?;
            (set.episodes, path.display().to_string(), set.n_items)
        }
        None => (
            generate_episodes(
                (cfg.n * 8).max(64),
                cfg.k,
                cfg.q,
                cfg.v,
                cfg.prefix_cap,
                args.seed,
            ),
            "generated (independent random prefixes)".to_string(),
            cfg.v,
        ),
    })
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

/// Sorted lengths of every support and query prefix.
fn prefix_lengths(episodes: &[Episode]) -> Vec<usize> {
    let mut lens: Vec<usize> = episodes
        .iter()
        .flat_map(|e| {
            e.support_prefixes
                .iter()
                .chain(&e.query_prefixes)
                .map(Vec::len)
        })
        .collect();
    lens.sort_unstable();
    lens
}

/// Writes `dir/episodes.parquet` (generated tasks only) and `dir/workload.json`.
fn write_workload(
    args: &BenchOptions,
    dir: &Path,
    episodes: &[Episode],
    w: Workload,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let episodes_path = match &args.episodes {
        Some(p) => std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?,
        None => {
            let p = dir.join("episodes.parquet");
            data::write_episodes(&p, episodes)?;
            std::fs::canonicalize(&p).map_err(|e| Error::io(&p, e))?
        }
    };
    let w = Workload {
        episodes: episodes_path,
        ..w
    };
    train::write_json(&dir.join("workload.json"), &w)
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
    let (episodes, source, v) = load_episodes(args, cfg)?;
    if episodes.len() < cfg.n {
        return Err(Error::config(
            "--n",
            format!(
                "{} tasks requested but only {} episodes",
                cfg.n,
                episodes.len()
            ),
        ));
    }
    let dims = ModelDims {
        n_items: v,
        embed_dim: cfg.e,
        hidden_dim: cfg.h,
    };
    let layout = ParamLayout::new(dims);
    let mut backend = bench_backend(args, layout)?;
    let k = episodes[0].support_labels.len();
    let weights = train::episode_weights(&Config::default().recency, k, None)?;
    let inner = InnerLoop {
        lr: 0.01,
        steps: cfg.inner_steps,
    };
    let outer = OuterConfig::adam(1e-3, 10.0);
    let mut rng = Rng::new(args.seed);
    let batches: Vec<Vec<usize>> = (0..args.warmup + args.iters * args.repeats)
        .map(|_| rng.sample_without_replacement(episodes.len(), cfg.n))
        .collect();
    let tasks_of = |idx: &[usize]| -> Vec<Task> {
        idx.iter()
            .map(|&i| crate::backend::Task::of(&episodes[i], &weights))
            .collect()
    };
    let lens = prefix_lengths(&episodes);
    let mean_len = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
    let flops: f64 = batches
        .iter()
        .map(|b| flops_per_iteration(&tasks_of(b), dims, cfg.inner_steps))
        .sum::<f64>()
        / batches.len() as f64;
    if let Some(dir) = workload_dir {
        let w = Workload {
            label: &cfg.label,
            episodes: PathBuf::new(),
            v,
            e: cfg.e,
            h: cfg.h,
            n: cfg.n,
            k,
            q: episodes[0].query_labels.len(),
            inner_steps: cfg.inner_steps,
            inner_lr: inner.lr,
            outer_lr: outer.lr,
            clip: outer.clip,
            support_weights: &weights,
            warmup: args.warmup,
            iters: args.iters,
            repeats: args.repeats,
            seed: args.seed,
            gflop_per_iter: flops / 1e9,
            batches: &batches,
        };
        write_workload(args, dir, &episodes, w)?;
    }
    for b in &batches[..args.warmup] {
        backend.meta_step(&tasks_of(b), &inner, &outer)?;
    }
    backend.reset_profile()?;
    let bytes: f64 = batches
        .iter()
        .map(|b| min_bytes_per_iteration(&tasks_of(b), ParamLayout::new(dims).len))
        .sum::<f64>()
        / batches.len() as f64;
    let mut per_iter_ms = Vec::with_capacity(args.repeats);
    let mut device_ms = Vec::with_capacity(args.repeats * args.iters);
    for r in 0..args.repeats {
        let start = args.warmup + r * args.iters;
        let t0 = Instant::now();
        for b in &batches[start..start + args.iters] {
            backend.meta_step(&tasks_of(b), &inner, &outer)?;
            device_ms.extend(backend.last_step_device_ms());
        }
        per_iter_ms.push(t0.elapsed().as_secs_f64() * 1e3 / args.iters as f64);
    }
    per_iter_ms.sort_by(f64::total_cmp);
    let ms = per_iter_ms[per_iter_ms.len() / 2];
    let phase_cycles = backend
        .profile()?
        .map(|c| phase_summary(&c, cfg.n, args.iters * args.repeats));
    device_ms.sort_by(f64::total_cmp);
    let dev = device_ms.get(device_ms.len() / 2).copied();
    let floor_ms = match (args.peak_gflops, args.peak_gbps) {
        (Some(f), Some(b)) => Some((flops / (f * 1e9)).max(bytes / (b * 1e9)) * 1e3),
        _ => None,
    };
    Ok(BenchResult {
        label: cfg.label.clone(),
        backend: backend.name().to_string(),
        prefix_sharing: args.prefix_sharing,
        source,
        n: cfg.n,
        k,
        q: episodes[0].query_labels.len(),
        v,
        e: cfg.e,
        h: cfg.h,
        inner_steps: cfg.inner_steps,
        prefix_cap: cfg.prefix_cap,
        prefix_len_median: percentile(&lens, 0.5),
        prefix_len_p90: percentile(&lens, 0.9),
        prefix_len_mean: mean_len,
        threads: rayon::current_num_threads(),
        warmup: args.warmup,
        iters: args.iters,
        repeats: args.repeats,
        ms_per_iter_median: ms,
        iters_per_sec: 1e3 / ms,
        gflop_per_iter: flops / 1e9,
        gflops_achieved: flops / 1e9 / (dev.unwrap_or(ms) / 1e3),
        min_mb_per_iter: bytes / 1e6,
        device_ms_per_iter_median: dev,
        device_iters_per_sec: dev.map(|d| 1e3 / d),
        floor_ms,
        fraction_of_floor: floor_ms.map(|f| f / dev.unwrap_or(ms)),
        phase_cycles,
    })
}

/// Runs the benchmark on the configuration the flags describe (the reference by default).
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
    use crate::data::workload::xuetangx_prefix_len;

    #[test]
    fn sweep_varies_one_factor_at_a_time() {
        let a = BenchOptions::default();
        let base = BenchConfig::from_options(&a);
        let all = sweep_configs(&base, &a.sweep_factors).unwrap();
        let labels: Vec<&str> = all.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "reference",
                "N1",
                "N8",
                "N128",
                "N512",
                "K10",
                "K20",
                "V10000",
                "V50000",
                "H128",
                "cap10"
            ]
        );
        for c in &all[1..] {
            let differing = [
                c.n != base.n,
                c.k != base.k,
                c.v != base.v,
                c.h != base.h,
                c.prefix_cap != base.prefix_cap,
            ];
            assert_eq!(differing.iter().filter(|&&d| d).count(), 1, "{c:?}");
            assert_eq!(
                (c.q, c.e, c.inner_steps),
                (base.q, base.e, base.inner_steps)
            );
        }
        let only_n = sweep_configs(&base, &["N".to_string()]).unwrap();
        assert_eq!(only_n.len(), 5);
        let err = sweep_configs(&base, &["L".to_string()]).unwrap_err();
        assert!(err.to_string().contains("--sweep-factors"), "{err}");
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
    fn generated_prefix_lengths_look_like_xuetangx() {
        let mut rng = Rng::new(5);
        let mut lens: Vec<usize> = (0..20_000)
            .map(|_| xuetangx_prefix_len(&mut rng, 50))
            .collect();
        lens.sort_unstable();
        assert_eq!(percentile(&lens, 0.5), 3);
        let p90 = percentile(&lens, 0.9);
        assert!((17..=21).contains(&p90), "p90 {p90}");
        assert!(*lens.last().unwrap() <= 50 && lens[0] >= 1);
    }

    #[test]
    fn the_byte_floor_counts_theta_adam_gradient_and_the_batch() {
        let sp = [vec![1u32, 2, 3], vec![4]];
        let qp = [vec![5u32, 6]];
        let t = Task {
            support_prefixes: &sp,
            support_labels: &[7, 8],
            support_weights: &[0.5, 0.5],
            query_prefixes: &qp,
            query_labels: &[9],
        };
        // 8 floats per parameter (θ, m, v read and written; the gradient written and read) and
        // per task its 6 prefix items, 2 support labels + 2 weights and 1 query label.
        assert_eq!(
            min_bytes_per_iteration(&[t, t], 100),
            4.0 * (800.0 + 2.0 * 11.0)
        );
    }

    #[test]
    fn the_phase_summary_averages_over_tasks_and_iterations() {
        let n = crate::cuda::program::PROFILE_PHASES.len();
        let mut a = vec![0u64; n];
        let mut b = vec![0u64; n];
        a[0] = 100;
        b[0] = 300;
        a[1] = 600;
        let unused = vec![1_000_000u64; n]; // a counter row past the batch's tasks
        let p = phase_summary(&[a, b, unused], 2, 10);
        assert_eq!(p[0].cycles_per_iter, 20.0); // (100 + 300) / (2 tasks * 10 iterations)
        assert_eq!(p[1].cycles_per_iter, 30.0);
        assert_eq!(p[2].cycles_per_iter, 0.0);
        assert_eq!((p[0].share, p[1].share), (0.4, 0.6));
    }
}
