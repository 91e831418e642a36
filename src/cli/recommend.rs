//! `recmaml recommend`: top-k items for each user of a JSONL file, zero-shot and after few-shot
//! adaptation on the user's own history ([`recmaml::recommend::recommend_file`]).

use super::Overrides;
use clap::Args;
use recmaml::config::Config;
use recmaml::recommend::{self, FileOptions, RecommendOptions};
use std::path::PathBuf;

/// How a history becomes a task: the flags `recommend` and `serve` share.
#[derive(Args, Debug)]
pub struct TaskFlags {
    /// Model weights: safetensors (recmaml or PyTorch names) or a PyTorch `.pth` state dict.
    #[arg(long)]
    pub model: PathBuf,
    /// The vocabulary `prepare` wrote (`vocab/item2id.json`, or the `vocab` folder).
    #[arg(long)]
    pub vocab: PathBuf,
    /// Items returned per user.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Leave items the user has already interacted with out of the answer.
    #[arg(long)]
    pub exclude_seen: bool,
    /// Support pairs: the user's newest this many pairs (prepare's --K).
    #[arg(long = "K", default_value_t = 5)]
    pub support_k: usize,
    /// Prefixes keep their last this many items (prepare's --max-prefix-len).
    #[arg(long, default_value_t = 50)]
    pub max_prefix_len: usize,
    /// Start a new session after a gap longer than this many seconds (prepare's --session-gap).
    #[arg(long)]
    pub session_gap: Option<i64>,
    /// Longest history accepted, in interactions.
    #[arg(long, default_value_t = 10_000)]
    pub max_history: usize,
    /// Optional TOML configuration for the inner loop, recency weighting and backend
    /// (maml.*, recency.*, run.backend).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
}

impl TaskFlags {
    /// The configuration: defaults, then the file, then the overrides.
    pub fn load(&self) -> recmaml::Result<Config> {
        Config::load(self.config.as_deref(), &self.overrides.sets)
    }

    /// The recommendation options.
    pub fn options(&self) -> RecommendOptions {
        RecommendOptions {
            top_k: self.k,
            exclude_seen: self.exclude_seen,
            support_k: self.support_k,
            max_prefix_len: self.max_prefix_len,
            session_gap: self.session_gap,
            max_history: self.max_history,
        }
    }
}

/// `recmaml recommend`: top-k items per user of a JSONL file.
#[derive(Args, Debug)]
pub struct RecommendArgs {
    #[command(flatten)]
    task: TaskFlags,
    /// Users, one JSON object per line: {"user": "u1", "interactions": [{"item": "c3", "ts":
    /// 1733220000, "session": "s1"}, ...]} (session optional, oldest first).
    #[arg(long)]
    input: PathBuf,
    /// Answers, one JSON line per user (written when all are done).
    #[arg(long)]
    out: PathBuf,
    /// Users per backend call.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// No progress display and no summary.
    #[arg(long)]
    quiet: bool,
}

/// Runs `recmaml recommend`.
pub fn run(args: &RecommendArgs) -> recmaml::Result<()> {
    let cfg = args.task.load()?;
    let opts = FileOptions {
        model: args.task.model.clone(),
        vocab: args.task.vocab.clone(),
        input: args.input.clone(),
        out: args.out.clone(),
        batch: args.batch,
        recommend: args.task.options(),
        quiet: args.quiet,
    };
    let s = recommend::recommend_file(&cfg, &opts)?;
    if !args.quiet {
        println!(
            "{} users in {:.2} s on {} ({:.0} users/s): {} answered ({} without support pairs), \
             {} failed; {} unknown items skipped -> {}",
            s.users,
            s.seconds,
            s.backend,
            s.users as f64 / s.seconds.max(1e-9),
            s.recommended,
            s.not_adapted,
            s.failed,
            s.unknown_items,
            args.out.display()
        );
    }
    Ok(())
}
