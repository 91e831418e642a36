//! `recmaml quickstart`: the main job on a fresh machine. Generates the synthetic default log,
//! prepares its episodes, meta-trains recency MAML (the defaults of `configs/recency_maml.toml`)
//! and prints the test metrics, zero- and few-shot.

use super::Overrides;
use clap::Args;
use recmaml::config::Config;
use recmaml::data::{prepare, synth};
use recmaml::train::{self, TrainOptions};
use std::path::{Path, PathBuf};

/// `recmaml quickstart`.
#[derive(Args, Debug)]
#[command(mut_arg("sets", |a| a.help(
    "Override a configuration key (repeatable), e.g. `--set maml.num_meta_iterations=500`"
)))]
pub struct QuickstartArgs {
    /// Where the synthetic log and its episodes go (reused when already prepared).
    #[arg(long, default_value = "data/synth")]
    data: PathBuf,
    /// The training run's output folder (overwritten).
    #[arg(long, default_value = "runs/quickstart")]
    out: PathBuf,
    #[command(flatten)]
    overrides: Overrides,
}

/// The episode file of `split` that `prepare` writes under `data` with the default K and Q.
fn episodes(data: &Path, split: &str) -> PathBuf {
    data.join("episodes")
        .join(format!("episodes_{split}_K5_Q10.parquet"))
}

/// Runs `recmaml quickstart`.
pub fn run(args: &QuickstartArgs) -> recmaml::Result<()> {
    let data = &args.data;
    let mut sets = vec![
        format!("data.train={}", episodes(data, "train").display()),
        format!("data.val={}", episodes(data, "val").display()),
        format!("data.test={}", episodes(data, "test").display()),
    ];
    sets.extend(args.overrides.sets.iter().cloned());
    let cfg = Config::load(None, &sets)?;
    if episodes(data, "train").exists() {
        println!("[1/3] using the episodes prepared in {}", data.display());
    } else {
        make_episodes(data)?;
    }
    println!(
        "[2/3] meta-training: {} scheme, {} iterations, backend {} -> {}",
        cfg.recency.weighting_scheme,
        cfg.maml.num_meta_iterations,
        cfg.run.backend,
        args.out.display()
    );
    let opts = TrainOptions {
        out: args.out.clone(),
        resume: false,
        force: true,
        stop_after: None,
        quiet: false,
    };
    let res = train::train(&cfg, &opts)?;
    println!("[3/3] done in {:.1}s", res.wall_time_s);
    super::train::print_results(&res);
    Ok(())
}

/// Writes the synthetic default log beside `data` (as `data.csv`) and prepares it into `data`.
fn make_episodes(data: &Path) -> recmaml::Result<()> {
    let log = data.with_extension("csv");
    println!(
        "[1/3] synthetic log -> {}, episodes -> {}",
        log.display(),
        data.display()
    );
    let summary = synth::run(&synth::SynthOptions {
        quiet: false,
        ..synth::SynthOptions::new(&log)
    })?;
    super::synth::print_summary(&summary, &log);
    prepare::run(&prepare::PrepareOptions::new(
        &log,
        prepare::Format::Interactions,
        data,
    ))?;
    Ok(())
}
