//! The `recmaml` command line.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "recmaml",
    version,
    about = "Recency-weighted FOMAML over GRU4Rec for cold-start next-item recommendation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic MOOC-like activity log (interactions CSV or XuetangX JSON).
    Synth(recmaml::data::synth::SynthArgs),
    /// Turn a raw log into vocabulary, pairs and K-shot episodes (train/val/test).
    Prepare(recmaml::data::prepare::PrepareArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Synth(a) => _ = recmaml::data::synth::run(&a)?,
        Command::Prepare(a) => _ = recmaml::data::prepare::run(&a)?,
    }
    Ok(())
}
