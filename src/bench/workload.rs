//! The export for PyTorch (`--write-workload`): the tasks and the exact meta-batches of a
//! configuration's run, so that `benches/torch_fomaml.py` times the same iterations.

use super::options::BenchOptions;
use super::sweep::BenchConfig;
use super::tasks::Plan;
use crate::data;
use crate::error::{Error, Result};
use crate::train;
use serde::Serialize;
use std::path::{Path, PathBuf};

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

/// Writes `dir/episodes.parquet` (generated tasks only; an episode file is referred to where it
/// is) and `dir/workload.json`, with `flops` per iteration.
pub(super) fn write_workload(
    args: &BenchOptions,
    cfg: &BenchConfig,
    plan: &Plan,
    flops: f64,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let episodes = match &args.episodes {
        Some(p) => std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?,
        None => {
            let p = dir.join("episodes.parquet");
            data::write_episodes(&p, &plan.episodes)?;
            std::fs::canonicalize(&p).map_err(|e| Error::io(&p, e))?
        }
    };
    let w = Workload {
        label: &cfg.label,
        episodes,
        v: plan.dims.n_items,
        e: cfg.e,
        h: cfg.h,
        n: cfg.n,
        k: plan.k(),
        q: plan.q(),
        inner_steps: cfg.inner_steps,
        inner_lr: plan.inner.lr,
        outer_lr: plan.outer.lr,
        clip: plan.outer.clip,
        support_weights: &plan.weights,
        warmup: args.warmup,
        iters: args.iters,
        repeats: args.repeats,
        seed: args.seed,
        gflop_per_iter: flops / 1e9,
        batches: &plan.batches,
    };
    train::write_json(&dir.join("workload.json"), &w)
}
