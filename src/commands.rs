//! The `train` and `eval` subcommands: argument structs and their entry points.

use crate::checkpoint;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::evaluate::{evaluate_set, EvalSummary};
use crate::model::ParamLayout;
use crate::train::{self, inner_loop, TrainOptions, WeightedSet};
use crate::util::{atomic_write, Progress};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `recmaml train`: meta-train a model.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML configuration (see configs/).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a configuration key, e.g. `--set maml.inner_lr=0.05` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output folder (weights, checkpoints, results.json, report.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the newest checkpoint in OUT/checkpoints. Its configuration must be this
    /// one, except maml.num_meta_iterations (to extend the run), maml.checkpoint_every,
    /// run.backend and the [pretrain] and [matrix] sections.
    #[arg(long)]
    pub resume: bool,
    /// Start a new run in a non-empty OUT, deleting the previous run's checkpoints/,
    /// final.safetensors, best.safetensors, results.json and report.json there first (other
    /// files are left alone).
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Stop after this many iterations (the run can be continued with --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<u64>,
}

/// Runs `recmaml train`.
pub fn run_train(args: &TrainArgs) -> Result<()> {
    let cfg = Config::load(Some(&args.config), &args.sets)?;
    let res = train::train(
        &cfg,
        &TrainOptions {
            out: args.out.clone(),
            resume: args.resume,
            force: args.force,
            stop_after: args.stop_after,
            quiet: false,
        },
    )?;
    if res.iterations < cfg.maml.num_meta_iterations {
        println!(
            "stopped at iteration {} of {}; continue with --resume",
            res.iterations, cfg.maml.num_meta_iterations
        );
        return Ok(());
    }
    println!(
        "trained {} meta-iterations in {:.1}s -> {}",
        res.iterations,
        res.wall_time_s,
        args.out.display()
    );
    print_results(&res);
    Ok(())
}

/// `recmaml eval`: zero- and few-shot metrics of a model on an episode file.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model weights: safetensors (recmaml or PyTorch names) or a PyTorch `.pth` state dict.
    #[arg(long)]
    pub model: PathBuf,
    /// Episode file (parquet).
    #[arg(long)]
    pub episodes: PathBuf,
    /// Optional TOML configuration for the inner-loop settings (maml.*, recency.*, run.*).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a configuration key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Where to write the metrics (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write one JSON record per episode here (JSONL).
    #[arg(long)]
    pub per_episode: Option<PathBuf>,
}

/// What `recmaml eval` writes.
#[derive(Serialize)]
struct EvalOutput<'a> {
    model: &'a Path,
    episodes: &'a Path,
    inner_lr: f64,
    inner_steps: usize,
    weighting_scheme: &'a str,
    #[serde(flatten)]
    summary: &'a EvalSummary,
}

/// Runs `recmaml eval`.
pub fn run_eval(args: &EvalArgs) -> Result<()> {
    let cfg = Config::load(args.config.as_deref(), &args.sets)?;
    let sd = checkpoint::load_state_dict(&args.model)?;
    let dims = checkpoint::dims_from_state_dict(&sd, &args.model)?;
    let layout = ParamLayout::new(dims);
    let theta = checkpoint::params_from_state_dict(&sd, &layout, &args.model)?;
    let ws = WeightedSet::load(&args.episodes, Some(dims.n_items), &cfg)?;
    let mut backend = train::make_backend(&cfg, layout, theta)?;
    let mut progress = Progress::new("eval", ws.len() as u64, false, false);
    let (summary, records) = evaluate_set(
        backend.as_mut(),
        &ws,
        &inner_loop(&cfg),
        Some(&mut progress),
    )?;
    progress.finish();
    let out = EvalOutput {
        model: &args.model,
        episodes: &args.episodes,
        inner_lr: cfg.maml.inner_lr,
        inner_steps: cfg.maml.inner_steps,
        weighting_scheme: &cfg.recency.weighting_scheme,
        summary: &summary,
    };
    if let Some(path) = &args.per_episode {
        let mut text = String::new();
        for r in &records {
            let line = serde_json::to_string(r)
                .map_err(|e| Error::Other(format!("serialising episode record: {e}")))?;
            text.push_str(&line);
            text.push('\n');
        }
        atomic_write(path, text.as_bytes())?;
    }
    train::write_json(&args.out, &out)?;
    println!(
        "{} episodes of {}:",
        summary.n_episodes,
        args.episodes.display()
    );
    print_summary(&summary);
    Ok(())
}

/// Prints a run's best validation score and its test metrics.
fn print_results(res: &train::TrainResults) {
    if let (Some(acc), Some(it)) = (res.best_val_acc1, res.best_iteration) {
        println!("best val few-shot acc@1 {acc:.4} at iteration {it}");
    }
    if let Some(test) = &res.test {
        println!(
            "test ({} episodes, {} weights):",
            test.n_episodes,
            res.test_weights.as_deref().unwrap_or("final")
        );
        print_summary(test);
    }
}

/// Prints zero- and few-shot metrics with their intervals as a small table.
pub fn print_summary(s: &EvalSummary) {
    println!(
        "  {:<9} {:>24} {:>24}",
        "metric", "zero-shot [95% CI]", "few-shot [95% CI]"
    );
    for ((name, z), (_, f)) in s.zero_shot.entries().into_iter().zip(s.few_shot.entries()) {
        println!(
            "  {name:<9} {:>8.4} [{:.4}, {:.4}] {:>8.4} [{:.4}, {:.4}]",
            z.mean, z.ci_low, z.ci_high, f.mean, f.ci_low, f.ci_high
        );
    }
    println!(
        "  {:<9} {:>24.4} {:>24.4}",
        "loss", s.zero_shot_loss, s.few_shot_loss
    );
}

/// `recmaml quickstart`: the main job on a fresh machine. Generates the synthetic default log,
/// prepares its episodes, meta-trains recency MAML (the defaults of `configs/recency_maml.toml`)
/// and prints the test metrics, zero- and few-shot.
#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Where the synthetic log and its episodes go (reused when already prepared).
    #[arg(long, default_value = "data/synth")]
    pub data: PathBuf,
    /// The training run's output folder (overwritten).
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// Override a configuration key (repeatable), e.g. `--set maml.num_meta_iterations=500`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Runs `recmaml quickstart`.
pub fn run_quickstart(args: &QuickstartArgs) -> Result<()> {
    use crate::data::{prepare, synth};
    let episodes = |split: &str| {
        args.data
            .join("episodes")
            .join(format!("episodes_{split}_K5_Q10.parquet"))
    };
    let mut sets = vec![
        format!("data.train={}", episodes("train").display()),
        format!("data.val={}", episodes("val").display()),
        format!("data.test={}", episodes("test").display()),
    ];
    sets.extend(args.sets.iter().cloned());
    let cfg = Config::load(None, &sets)?;
    if episodes("train").exists() {
        println!(
            "[1/3] using the episodes prepared in {}",
            args.data.display()
        );
    } else {
        let log = args.data.with_extension("csv");
        println!(
            "[1/3] synthetic log -> {}, episodes -> {}",
            log.display(),
            args.data.display()
        );
        synth::run(&synth::SynthArgs {
            out: log.clone(),
            format: synth::SynthFormat::Interactions,
            users: synth::DEFAULT_USERS,
            items: synth::DEFAULT_ITEMS,
            seed: 20_260_107,
            events_per_visit: synth::DEFAULT_EVENTS_PER_VISIT,
            quiet: false,
        })?;
        prepare::run(&prepare::PrepareArgs::new(
            &log,
            prepare::Format::Interactions,
            &args.data,
        ))?;
    }
    println!(
        "[2/3] meta-training: {} scheme, {} iterations, backend {} -> {}",
        cfg.recency.weighting_scheme,
        cfg.maml.num_meta_iterations,
        cfg.run.backend,
        args.out.display()
    );
    let res = train::train(
        &cfg,
        &TrainOptions {
            out: args.out.clone(),
            resume: false,
            force: true,
            stop_after: None,
            quiet: false,
        },
    )?;
    println!("[3/3] done in {:.1}s", res.wall_time_s);
    print_results(&res);
    Ok(())
}
