//! `recmaml bench`: meta-iterations per second of a backend ([`recmaml::bench`]), printed as a
//! small table (one row per configuration with `--sweep`) and written as JSON on request.

use clap::Args;
use recmaml::bench::{self, BenchOptions, BenchResult};
use std::path::PathBuf;

/// `recmaml bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// `cpu` or `cuda`.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Read the tasks from this episode file instead of generating them.
    #[arg(long)]
    episodes: Option<PathBuf>,
    /// Tasks per meta-batch (N).
    #[arg(long, default_value_t = 32)]
    n: usize,
    /// Support pairs per task (K), for generated tasks.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Query pairs per task (Q), for generated tasks.
    #[arg(long, default_value_t = 10)]
    q: usize,
    /// Items (V), for generated tasks.
    #[arg(long, default_value_t = 1519)]
    items: usize,
    /// Embedding size (E).
    #[arg(long, default_value_t = 64)]
    embed_dim: usize,
    /// GRU hidden size (H).
    #[arg(long, default_value_t = 64)]
    hidden_dim: usize,
    /// Inner SGD steps (S).
    #[arg(long, default_value_t = 5)]
    inner_steps: usize,
    /// Longest prefix (generated prefixes are capped here).
    #[arg(long, default_value_t = 50)]
    prefix_cap: usize,
    /// Timed meta-iterations per repeat.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Repeats (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Untimed warm-up meta-iterations.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// CPU only: compute every prefix's GRU states separately instead of sharing common prefixes.
    #[arg(long)]
    no_prefix_sharing: bool,
    /// Seed for the generated tasks and the initial weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also time the sweep, one factor at a time around the configuration above (not the
    /// cartesian product): N in {1,8,32,128,512}, K in {5,10,20}, V in {1519,10000,50000},
    /// H in {64,128}, prefix cap in {10,50}. Prints a table; --json writes an array.
    #[arg(long)]
    sweep: bool,
    /// With --sweep: which factors to vary, comma-separated from N,K,V,H,cap.
    #[arg(long, value_delimiter = ',', default_value = "N,K,V,H,cap")]
    sweep_factors: Vec<String>,
    /// Write the tasks (episodes.parquet) and the exact meta-batches (workload.json) here, for
    /// benches/torch_fomaml.py; with --sweep, one subfolder per configuration.
    #[arg(long)]
    write_workload: Option<PathBuf>,
    /// The device's measured arithmetic ceiling in GFLOP/s (e.g. an FP32 matrix product's rate),
    /// for the floor: max(FLOPs / this, bytes / --peak-gbps).
    #[arg(long)]
    peak_gflops: Option<f64>,
    /// The device's measured memory bandwidth in GB/s (bytes read plus written), for the floor.
    #[arg(long)]
    peak_gbps: Option<f64>,
    /// CPU backend: skip measuring the FP32 ceiling of the engine's own matrix tiles (about 1.3 s;
    /// printed with the fraction of it an iteration achieves).
    #[arg(long)]
    no_ceiling: bool,
}

impl BenchArgs {
    /// The library's options; an error naming `run.backend` for an unknown `--backend`.
    fn options(&self) -> recmaml::Result<BenchOptions> {
        Ok(BenchOptions {
            backend: self.backend.parse()?,
            episodes: self.episodes.clone(),
            n: self.n,
            k: self.k,
            q: self.q,
            items: self.items,
            embed_dim: self.embed_dim,
            hidden_dim: self.hidden_dim,
            inner_steps: self.inner_steps,
            prefix_cap: self.prefix_cap,
            iters: self.iters,
            repeats: self.repeats,
            warmup: self.warmup,
            prefix_sharing: !self.no_prefix_sharing,
            seed: self.seed,
            sweep_factors: self.sweep_factors.clone(),
            write_workload: self.write_workload.clone(),
            peak_gflops: self.peak_gflops,
            peak_gbps: self.peak_gbps,
            ceiling: !self.no_ceiling,
        })
    }
}

/// Runs the benchmark (or the sweep) and prints it as a table (and writes JSON when asked).
pub fn run(args: &BenchArgs) -> recmaml::Result<()> {
    let opts = args.options()?;
    if args.sweep {
        return sweep(args, &opts);
    }
    let r = bench::run(&opts)?;
    print_result(&r);
    if let Some(path) = &args.json {
        recmaml::train::write_json(path, &r)?;
    }
    Ok(())
}

/// `--sweep`: a line about the setting, then one table row per configuration as it finishes.
fn sweep(args: &BenchArgs, opts: &BenchOptions) -> recmaml::Result<()> {
    println!(
        "backend {}, {} threads, prefix sharing {}; generated tasks; median of {} x {} \
         iterations after {} warm-up",
        opts.backend,
        rayon::current_num_threads(),
        if opts.prefix_sharing { "on" } else { "off" },
        opts.repeats,
        opts.iters,
        opts.warmup
    );
    let plan = bench::sweep_plan(opts)?;
    print_table_header();
    let rs = bench::run_sweep(opts, &plan, print_table_row)?;
    if let Some(path) = &args.json {
        recmaml::train::write_json(path, &rs)?;
    }
    Ok(())
}

fn print_table_header() {
    println!(
        "{:<10} {:>4} {:>3} {:>6} {:>4} {:>4} {:>10} {:>10} {:>10} {:>10} {:>11}",
        "config", "N", "K", "V", "H", "cap", "it/s", "ms/it", "GFLOP/it", "GFLOP/s", "device it/s"
    );
}

fn print_table_row(r: &BenchResult) {
    println!(
        "{:<10} {:>4} {:>3} {:>6} {:>4} {:>4} {:>10.2} {:>10.3} {:>10.4} {:>10.2} {:>11}",
        r.label,
        r.n,
        r.k,
        r.v,
        r.h,
        r.prefix_cap,
        r.iters_per_sec,
        r.ms_per_iter_median,
        r.gflop_per_iter,
        r.gflops_achieved,
        r.device_iters_per_sec
            .map_or("-".to_string(), |x| format!("{x:.1}"))
    );
}

/// One configuration's result: the setting, the rates, and the device time, phase profile and
/// floor where measured.
fn print_result(r: &BenchResult) {
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
        "{:>12} {:>12} {:>14} {:>12} {:>10}",
        "it/s", "ms/it", "GFLOP/it", "GFLOP/s", "MB/it min"
    );
    println!(
        "{:>12.2} {:>12.3} {:>14.4} {:>12.2} {:>10.3}",
        r.iters_per_sec,
        r.ms_per_iter_median,
        r.gflop_per_iter,
        r.gflops_achieved,
        r.min_mb_per_iter
    );
    print_device_time(r);
}

/// The CUDA backend's device memory, device time and phase profile, and the floor, where
/// present.
fn print_device_time(r: &BenchResult) {
    if let Some(m) = &r.device_memory {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        println!(
            "device memory: workspace {:.2} MiB per task; {} tasks: parameters {:.1} + \
             workspaces {:.1} + batch tables {:.1} + evaluation logits {:.1} = {:.1} MiB",
            mib(m.workspace_per_task),
            r.n,
            mib(m.params),
            mib(m.workspaces),
            mib(m.tables),
            mib(m.eval),
            mib(m.total())
        );
    }
    if let Some(d) = r.device_ms_per_iter_median {
        println!(
            "device time (CUDA events, median of {} iterations): {d:.4} ms/it = {:.1} it/s",
            r.iters * r.repeats,
            1e3 / d
        );
    }
    if let Some(profile) = &r.phase_profile {
        println!("phases ({} per iteration):", profile.unit);
        for p in &profile.phases {
            println!(
                "  {:<24} {:>12.0} {:>6.1}%",
                p.phase,
                p.per_iter,
                100.0 * p.share
            );
        }
    }
    if let (Some(c), Some(frac)) = (&r.cpu_ceiling, r.fraction_of_ceiling) {
        println!(
            "FP32 ceiling of the engine's own tiles ({} threads, best product {}x{}x{}): {:.1} \
             GFLOP/s; achieved {:.1}% of it",
            c.threads,
            c.shape[0],
            c.shape[1],
            c.shape[2],
            c.gflops,
            100.0 * frac
        );
    }
    if let (Some(f), Some(frac)) = (r.floor_ms, r.fraction_of_floor) {
        println!(
            "floor max(FLOPs / peak, bytes / bandwidth) = {:.5} ms; achieved {:.2}% of it",
            f,
            100.0 * frac
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn the_flags_defaults_are_the_reference_configuration() {
        let a = Cli::try_parse_from(["bench"]).unwrap().args;
        assert_eq!(a.options().unwrap(), BenchOptions::default());
    }

    #[test]
    fn an_unknown_backend_names_the_setting() {
        let a = Cli::try_parse_from(["bench", "--backend", "tpu"])
            .unwrap()
            .args;
        let err = a.options().unwrap_err().to_string();
        assert!(err.contains("run.backend") && err.contains("tpu"), "{err}");
    }
}
