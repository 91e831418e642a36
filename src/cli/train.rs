//! `recmaml train`: meta-trains a model on a configuration ([`recmaml::train::train`]) and prints
//! its best validation score and test metrics.

use super::ConfigRun;
use clap::Args;
use recmaml::evaluate::EvalSummary;
use recmaml::train::{self, TrainOptions, TrainResults};

/// `recmaml train`: meta-train a model.
#[derive(Args, Debug)]
#[command(
    mut_arg("config", |a| a.help("TOML configuration (see configs/)")),
    mut_arg("sets", |a| a.help(
        "Override a configuration key, e.g. `--set maml.inner_lr=0.05` (repeatable)"
    )),
    mut_arg("out", |a| a.help(
        "Output folder (weights, checkpoints, results.json, report.json)"
    )),
)]
pub struct TrainArgs {
    #[command(flatten)]
    run: ConfigRun,
    /// Continue from the newest checkpoint in OUT/checkpoints. Its configuration must be this
    /// one, except maml.num_meta_iterations (to extend the run), maml.checkpoint_every,
    /// run.backend and the [pretrain] and [matrix] sections.
    #[arg(long)]
    resume: bool,
    /// Start a new run in a non-empty OUT, deleting the previous run's checkpoints/,
    /// final.safetensors, best.safetensors, results.json and report.json there first (other
    /// files are left alone).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Stop after this many iterations (the run can be continued with --resume).
    #[arg(long, hide = true)]
    stop_after: Option<u64>,
}

/// Runs `recmaml train`.
pub fn run(args: &TrainArgs) -> recmaml::Result<()> {
    let cfg = args.run.load()?;
    let opts = TrainOptions {
        out: args.run.out.clone(),
        resume: args.resume,
        force: args.force,
        stop_after: args.stop_after,
        quiet: false,
    };
    let res = train::train(&cfg, &opts)?;
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
        args.run.out.display()
    );
    print_results(&res);
    Ok(())
}

/// Prints a run's best validation score and its test metrics.
pub fn print_results(res: &TrainResults) {
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
    if let Some(g) = &s.adaptation_gain {
        println!(
            "  adaptation gain (few-shot minus zero-shot Acc@1, paired over the {} episodes): \
             {:+.4} [{:+.4}, {:+.4}]",
            s.n_episodes, g.mean, g.ci_low, g.ci_high
        );
    }
}
