//! `recmaml pretrain`: trains the global GRU4Rec model on the train pairs
//! ([`recmaml::pretrain::pretrain`]) and prints its losses and test metrics beside popularity's.

use super::ConfigRun;
use clap::Args;
use recmaml::pretrain::{self, PretrainReport};

/// `recmaml pretrain`: train the global GRU4Rec model on the train pairs.
#[derive(Args, Debug)]
#[command(
    mut_arg("config", |a| a.help(
        "TOML configuration: `[data] pairs_train` and `test`, `[model]`, `[pretrain]`, `run.seed`"
    )),
    mut_arg("sets", |a| a.help(
        "Override a configuration key, e.g. `--set pretrain.epochs=3` (repeatable)"
    )),
    mut_arg("out", |a| a.help(
        "Output folder: `gru4rec.safetensors` (for `warmstart.pretrained_path`) and `pretrain.json`"
    )),
)]
pub struct PretrainArgs {
    #[command(flatten)]
    run: ConfigRun,
}

/// Runs `recmaml pretrain` and prints its summary.
pub fn run(args: &PretrainArgs) -> recmaml::Result<()> {
    let cfg = args.run.load()?;
    let p = pretrain::pretrain(&cfg, &args.run.out, false)?;
    print_report(&p.report);
    Ok(())
}

fn print_report(r: &PretrainReport) {
    println!(
        "pretrained GRU4Rec on {} pairs for {} epochs in {:.1}s: train CE {:.4} -> {:.4}",
        r.n_pairs, r.settings.epochs, r.wall_time_s, r.train_loss_before, r.train_loss_after
    );
    println!("weights: {}", r.checkpoint.display());
    if let (Some(g), Some(pop)) = (&r.test, &r.popularity_test) {
        println!("test query pairs of {} episodes:", r.n_test_episodes);
        println!("  {:<10} {:>18} {:>18}", "metric", "GRU4Rec", "popularity");
        for ((name, a), (_, b)) in g.entries().iter().zip(pop.entries()) {
            println!(
                "  {name:<10} {:>7.4} [{:.3},{:.3}] {:>7.4} [{:.3},{:.3}]",
                a.mean, a.ci_low, a.ci_high, b.mean, b.ci_low, b.ci_high
            );
        }
    }
}
