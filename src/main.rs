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
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
