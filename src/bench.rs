//! `recmaml bench`: meta-iterations per second of a backend on the reference configuration
//! (V 1519, E 64, H 64, N 32, K 5, Q 10, 5 inner steps, XuetangX-like prefix lengths: median 3,
//! p90 19, capped at 50), with the FLOP count of an iteration and the achieved rate.

use crate::backend::{Backend, InnerLoop, OuterConfig, Task};
use crate::config::Config;
use crate::data::{self, Episode};
use crate::error::{Error, Result};
use crate::model::{ModelDims, ParamLayout};
use crate::rng::Rng;
use crate::train;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// `recmaml bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// `cpu` or `cuda`.
    #[arg(long, default_value = "cpu")]
    pub backend: String,
    /// Read the tasks from this episode file instead of generating them.
    #[arg(long)]
    pub episodes: Option<PathBuf>,
    /// Tasks per meta-batch (N).
    #[arg(long, default_value_t = 32)]
    pub n: usize,
    /// Support pairs per task (K), for generated tasks.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Query pairs per task (Q), for generated tasks.
    #[arg(long, default_value_t = 10)]
    pub q: usize,
    /// Items (V), for generated tasks.
    #[arg(long, default_value_t = 1519)]
    pub items: usize,
    /// Embedding size (E).
    #[arg(long, default_value_t = 64)]
    pub embed_dim: usize,
    /// GRU hidden size (H).
    #[arg(long, default_value_t = 64)]
    pub hidden_dim: usize,
    /// Inner SGD steps (S).
    #[arg(long, default_value_t = 5)]
    pub inner_steps: usize,
    /// Longest prefix (generated prefixes are capped here).
    #[arg(long, default_value_t = 50)]
    pub prefix_cap: usize,
    /// Timed meta-iterations per repeat.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Repeats (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Untimed warm-up meta-iterations.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// CPU only: compute every prefix's GRU states separately instead of sharing common prefixes.
    #[arg(long)]
    pub no_prefix_sharing: bool,
    /// Seed for the generated tasks and the initial weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// One benchmark result.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
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
    pub prefix_len_median: usize,
    pub prefix_len_p90: usize,
    pub prefix_len_mean: f64,
    pub threads: usize,
    pub ms_per_iter_median: f64,
    pub iters_per_sec: f64,
    pub gflop_per_iter: f64,
    pub gflops_achieved: f64,
}

/// A prefix length with median about 3 and p90 about 19 (a discretised log-normal), in `1..=cap`.
pub fn xuetangx_prefix_len(rng: &mut Rng, cap: usize) -> usize {
    // ln L ~ N(ln 3, 1.44): median 3, 90th percentile exp(ln 3 + 1.2816 * 1.44) = 19.
    let l = (3f64.ln() + 1.44 * rng.normal()).exp().round() as usize;
    l.clamp(1, cap)
}

/// `n` generated episodes with random items in `1..v` and XuetangX-like prefix lengths.
pub fn generate_episodes(
    n: usize,
    k: usize,
    q: usize,
    v: usize,
    cap: usize,
    seed: u64,
) -> Vec<Episode> {
    let mut rng = Rng::new(seed);
    let pairs = |count: usize, rng: &mut Rng| -> (Vec<Vec<u32>>, Vec<u32>) {
        (0..count)
            .map(|_| {
                let len = xuetangx_prefix_len(rng, cap);
                let prefix = (0..len)
                    .map(|_| 1 + rng.below(v as u64 - 1) as u32)
                    .collect();
                (prefix, 1 + rng.below(v as u64 - 1) as u32)
            })
            .unzip()
    };
    (0..n)
        .map(|i| {
            let (sp, sl) = pairs(k, &mut rng);
            let (qp, ql) = pairs(q, &mut rng);
            Episode {
                episode_id: i as i64,
                user_id: format!("bench{i}"),
                support_prefixes: sp,
                support_labels: sl,
                query_prefixes: qp,
                query_labels: ql,
                support_label_ts: None,
                query_label_ts: None,
            }
        })
        .collect()
}

/// FLOPs of one meta-iteration, counting each prefix's GRU steps, the output layer, their
/// backward passes (twice the forward), the SGD updates, the meta-gradient sum and Adam.
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

fn percentile(sorted: &[usize], q: f64) -> usize {
    sorted[((q * (sorted.len() - 1) as f64).round()) as usize]
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs) -> Result<BenchResult> {
    let (episodes, source, v) = match &args.episodes {
        Some(path) => {
            let set = data::read_episodes(path, None)?;
            (set.episodes, path.display().to_string(), set.n_items)
        }
        None => (
            generate_episodes(
                (args.n * 8).max(64),
                args.k,
                args.q,
                args.items,
                args.prefix_cap,
                args.seed,
            ),
            "generated (independent random prefixes)".to_string(),
            args.items,
        ),
    };
    if episodes.len() < args.n {
        return Err(Error::config(
            "--n",
            format!(
                "{} tasks requested but only {} episodes",
                args.n,
                episodes.len()
            ),
        ));
    }
    let dims = ModelDims {
        n_items: v,
        embed_dim: args.embed_dim,
        hidden_dim: args.hidden_dim,
    };
    let layout = ParamLayout::new(dims);
    let mut cfg = Config::default();
    cfg.run.backend = args.backend.clone();
    let theta = crate::model::init::init_params(&layout, args.seed);
    let mut backend: Box<dyn Backend> = if args.no_prefix_sharing {
        if args.backend != "cpu" {
            return Err(Error::config(
                "--no-prefix-sharing",
                "applies to --backend cpu only",
            ));
        }
        let mut cpu = crate::cpu::Cpu::new(layout, theta)?;
        cpu.set_share_prefixes(false);
        Box::new(cpu)
    } else {
        train::make_backend(&cfg, layout, theta)?
    };
    let k = episodes[0].support_labels.len();
    let weights = train::episode_weights(&cfg.recency, k, None)?;
    let inner = InnerLoop {
        lr: 0.01,
        steps: args.inner_steps,
    };
    let outer = OuterConfig::adam(1e-3, 10.0);
    let mut rng = Rng::new(args.seed);
    let batches: Vec<Vec<usize>> = (0..args.warmup + args.iters * args.repeats)
        .map(|_| rng.sample_without_replacement(episodes.len(), args.n))
        .collect();
    let tasks_of = |idx: &[usize]| -> Vec<Task> {
        idx.iter()
            .map(|&i| train::task_of(&episodes[i], &weights))
            .collect()
    };
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
    let mean_len = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
    let flops: f64 = batches
        .iter()
        .map(|b| flops_per_iteration(&tasks_of(b), dims, args.inner_steps))
        .sum::<f64>()
        / batches.len() as f64;
    for b in &batches[..args.warmup] {
        backend.meta_step(&tasks_of(b), &inner, &outer)?;
    }
    let mut per_iter_ms = Vec::with_capacity(args.repeats);
    for r in 0..args.repeats {
        let start = args.warmup + r * args.iters;
        let t0 = Instant::now();
        for b in &batches[start..start + args.iters] {
            backend.meta_step(&tasks_of(b), &inner, &outer)?;
        }
        per_iter_ms.push(t0.elapsed().as_secs_f64() * 1e3 / args.iters as f64);
    }
    per_iter_ms.sort_by(f64::total_cmp);
    let ms = per_iter_ms[per_iter_ms.len() / 2];
    let res = BenchResult {
        backend: backend.name().to_string(),
        prefix_sharing: !args.no_prefix_sharing,
        source,
        n: args.n,
        k,
        q: episodes[0].query_labels.len(),
        v,
        e: args.embed_dim,
        h: args.hidden_dim,
        inner_steps: args.inner_steps,
        prefix_len_median: percentile(&lens, 0.5),
        prefix_len_p90: percentile(&lens, 0.9),
        prefix_len_mean: mean_len,
        threads: rayon::current_num_threads(),
        ms_per_iter_median: ms,
        iters_per_sec: 1e3 / ms,
        gflop_per_iter: flops / 1e9,
        gflops_achieved: flops / 1e9 / (ms / 1e3),
    };
    Ok(res)
}

/// Runs the benchmark and prints it as a table (and JSON when asked).
pub fn run_cli(args: &BenchArgs) -> Result<()> {
    let r = run(args)?;
    println!(
        "backend {} ({} threads, prefix sharing {}), tasks: {}",
        r.backend,
        r.threads,
        if r.prefix_sharing { "on" } else { "off" },
        r.source
    );
    println!(
        "V {} E {} H {} N {} K {} Q {} S {}; prefix length median {} p90 {} mean {:.2}",
        r.v,
        r.e,
        r.h,
        r.n,
        r.k,
        r.q,
        r.inner_steps,
        r.prefix_len_median,
        r.prefix_len_p90,
        r.prefix_len_mean
    );
    println!(
        "{:>12} {:>12} {:>14} {:>12}",
        "it/s", "ms/it", "GFLOP/it", "GFLOP/s"
    );
    println!(
        "{:>12.2} {:>12.3} {:>14.4} {:>12.2}",
        r.iters_per_sec, r.ms_per_iter_median, r.gflop_per_iter, r.gflops_achieved
    );
    if let Some(path) = &args.json {
        train::write_json(path, &r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
