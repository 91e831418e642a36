//! What a benchmark run is given: the backend, where the tasks come from, the sizes, how long to
//! time, and the extras (sweep factors, workload export, device ceilings).

use super::sweep::{BenchConfig, SWEEP_FACTORS};
use crate::config::BackendKind;
use std::path::PathBuf;

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
    /// CPU backend: measure the FP32 ceiling of the engine's own matrix tiles and report the
    /// fraction of it an iteration achieves.
    pub ceiling: bool,
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
            ceiling: true,
        }
    }
}

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
}
