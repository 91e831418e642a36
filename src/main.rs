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
    /// The main job: synthetic log -> prepare -> meta-train -> test metrics.
    Quickstart(recmaml::commands::QuickstartArgs),
    /// Meta-train a GRU4Rec model with recency-weighted first-order MAML.
    Train(recmaml::commands::TrainArgs),
    /// Zero- and few-shot metrics of a model on an episode file.
    Eval(recmaml::commands::EvalArgs),
    /// Train the global GRU4Rec model on the train pairs (baseline and warm start).
    Pretrain(recmaml::pretrain::PretrainArgs),
    /// The seed's comparison matrix and ablation over several seeds, with reports and plots.
    Matrix(recmaml::matrix::MatrixArgs),
    /// Meta-iterations per second of a backend on the reference configuration.
    Bench(recmaml::bench::BenchArgs),
    /// The CUDA backend against the CPU engine on random tasks (for GPU machines).
    #[command(hide = true)]
    GpuCheck(recmaml::cuda::check::GpuCheckArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Synth(a) => _ = recmaml::data::synth::run(&a)?,
        Command::Prepare(a) => _ = recmaml::data::prepare::run(&a)?,
        Command::Quickstart(a) => recmaml::commands::run_quickstart(&a)?,
        Command::Train(a) => recmaml::commands::run_train(&a)?,
        Command::Eval(a) => recmaml::commands::run_eval(&a)?,
        Command::Pretrain(a) => recmaml::pretrain::run_cli(&a)?,
        Command::Matrix(a) => recmaml::matrix::run_cli(&a)?,
        Command::Bench(a) => recmaml::bench::run_cli(&a)?,
        Command::GpuCheck(a) => recmaml::cuda::check::run(&a)?,
    }
    Ok(())
}
