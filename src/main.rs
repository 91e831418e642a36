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
    GpuCheck(GpuCheckArgs),
}

/// `recmaml gpu-check`.
#[derive(clap::Args, Debug)]
struct GpuCheckArgs {
    /// Only the first (small) case, e.g. under compute-sanitizer.
    #[arg(long)]
    small: bool,
    /// Largest accepted relative difference per tensor (||gpu - cpu|| / ||cpu||).
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Largest accepted relative difference of each tensor's update in a meta-step
    /// (||Δgpu - Δcpu|| / ||Δcpu||, Δ = θ_after - θ_before).
    #[arg(long, default_value_t = recmaml::verify::UPDATE_TOL)]
    update_tol: f64,
    /// Seed of the random tasks and weights.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Largest accepted relative difference of each tensor's change over the pretraining
    /// check's 2 epochs (θ_end - θ_start).
    #[arg(long, default_value_t = recmaml::verify::PRETRAIN_TOL)]
    pretrain_tol: f64,
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
        Command::GpuCheck(a) => recmaml::verify::gpu_check(&recmaml::verify::GpuCheck {
            small: a.small,
            seed: a.seed,
            tols: recmaml::verify::Tolerances {
                tol: a.tol,
                update: a.update_tol,
                pretrain: a.pretrain_tol,
            },
        })?,
    }
    Ok(())
}
