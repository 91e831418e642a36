//! `recmaml eval`: zero- and few-shot metrics of a model on an episode file
//! ([`recmaml::evaluate::evaluate`]), printed as a table.

use super::train::print_summary;
use super::Overrides;
use clap::Args;
use recmaml::config::Config;
use recmaml::evaluate::{self, EvalOptions};
use std::path::PathBuf;

/// `recmaml eval`: zero- and few-shot metrics of a model on an episode file.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model weights: safetensors (recmaml or PyTorch names) or a PyTorch `.pth` state dict.
    #[arg(long)]
    model: PathBuf,
    /// Episode file (parquet).
    #[arg(long)]
    episodes: PathBuf,
    /// Optional TOML configuration for the inner-loop settings (maml.*, recency.*, run.*).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    /// Where to write the metrics (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Also write one JSON record per episode here (JSONL).
    #[arg(long)]
    per_episode: Option<PathBuf>,
}

/// Runs `recmaml eval`.
pub fn run(args: &EvalArgs) -> recmaml::Result<()> {
    let cfg = Config::load(args.config.as_deref(), &args.overrides.sets)?;
    let opts = EvalOptions {
        model: args.model.clone(),
        episodes: args.episodes.clone(),
        out: args.out.clone(),
        per_episode: args.per_episode.clone(),
    };
    let summary = evaluate::evaluate(&cfg, &opts)?;
    println!(
        "{} episodes of {}:",
        summary.n_episodes,
        args.episodes.display()
    );
    print_summary(&summary);
    Ok(())
}
