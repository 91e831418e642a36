//! The command line: the `recmaml` parser, the flags several commands share, and one file per
//! command that turns its flags into the library's options, runs it and prints the outcome.

mod bench;
mod eval;
mod gpu_check;
mod matrix;
mod prepare;
mod pretrain;
mod quickstart;
mod recommend;
mod serve;
mod synth;
mod train;

use clap::{Args, Parser, Subcommand};
use recmaml::config::Config;
use std::path::PathBuf;

/// `recmaml`.
#[derive(Parser)]
#[command(
    name = "recmaml",
    version,
    about = "Recency-weighted FOMAML over GRU4Rec for cold-start next-item recommendation"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic MOOC-like activity log (interactions CSV or XuetangX JSON).
    Synth(synth::SynthArgs),
    /// Turn a raw log into vocabulary, pairs and K-shot episodes (train/val/test).
    Prepare(prepare::PrepareArgs),
    /// The main job: synthetic log -> prepare -> meta-train -> test metrics.
    Quickstart(quickstart::QuickstartArgs),
    /// Meta-train a GRU4Rec model with recency-weighted first-order MAML.
    Train(train::TrainArgs),
    /// Zero- and few-shot metrics of a model on an episode file.
    Eval(eval::EvalArgs),
    /// Train the global GRU4Rec model on the train pairs (baseline and warm start).
    Pretrain(pretrain::PretrainArgs),
    /// The seed's comparison matrix and ablation over several seeds, with reports and plots.
    Matrix(matrix::MatrixArgs),
    /// Top-k items for each user of a JSONL file, zero-shot and adapted to the user.
    Recommend(recommend::RecommendArgs),
    /// An HTTP service answering recommendation requests, adapting batches of users together.
    Serve(serve::ServeArgs),
    /// Meta-iterations per second of a backend on the reference configuration.
    Bench(bench::BenchArgs),
    /// The CUDA backend against the CPU engine on random tasks (for GPU machines).
    #[command(hide = true)]
    GpuCheck(gpu_check::GpuCheckArgs),
}

/// Runs the command the arguments name.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Synth(a) => synth::run(&a)?,
        Command::Prepare(a) => prepare::run(&a)?,
        Command::Quickstart(a) => quickstart::run(&a)?,
        Command::Train(a) => train::run(&a)?,
        Command::Eval(a) => eval::run(&a)?,
        Command::Pretrain(a) => pretrain::run(&a)?,
        Command::Matrix(a) => matrix::run(&a)?,
        Command::Bench(a) => bench::run(&a)?,
        Command::Recommend(a) => recommend::run(&a)?,
        Command::Serve(a) => serve::run(&a)?,
        Command::GpuCheck(a) => gpu_check::run(&a)?,
    }
    Ok(())
}

/// An error with its chain of causes, `: `-separated, leaving out a cause that the text so far
/// already ends with (an I/O error's message includes its OS error, which is also its cause).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.ends_with(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// `--set KEY=VALUE`: configuration overrides, applied in order after the file.
#[derive(Args, Debug)]
pub struct Overrides {
    /// Override a configuration key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// `--config`, `--set` and `--out`: the flags of the commands that run a configuration file into
/// an output folder (train, pretrain, matrix). Each command words their help for itself with
/// `mut_arg` on the ids `config`, `sets` and `out`.
#[derive(Args, Debug)]
pub struct ConfigRun {
    /// TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
    #[command(flatten)]
    pub overrides: Overrides,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

impl ConfigRun {
    /// The configuration: defaults, then the file, then the overrides.
    pub fn load(&self) -> recmaml::Result<Config> {
        Config::load(Some(&self.config), &self.overrides.sets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_is_printed_once() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let os = missing.to_string();
        let e = anyhow::Error::from(recmaml::Error::io("/no/such/file", missing));
        let text = error_text(&e);
        assert_eq!(text, format!("/no/such/file: {os}"));
        // A cause that the message does not already end with is still printed.
        let e = anyhow::Error::from(recmaml::Error::io("/x", std::io::Error::other("disk")))
            .context("writing the report");
        assert_eq!(error_text(&e), "writing the report: /x: disk");
    }

    #[test]
    fn the_parser_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
