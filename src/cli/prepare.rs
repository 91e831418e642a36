//! `recmaml prepare`: turns a raw log into vocabulary, pairs and episodes
//! ([`recmaml::data::prepare`]) and prints the report's table.

use clap::{Args, ValueEnum};
use recmaml::data::prepare::{self, Format, PrepareOptions};
use std::path::PathBuf;

/// `--format` of `recmaml prepare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// CSV/TSV with a header: user_id, item_id, timestamp [, session_id].
    Interactions,
    /// GroupLens `ratings.csv`, `u.data` or `ratings.dat`, detected from the content.
    Movielens,
    /// XuetangX raw activity JSON, streamed.
    Xuetangx,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Interactions => Format::Interactions,
            FormatArg::Movielens => Format::Movielens,
            FormatArg::Xuetangx => Format::Xuetangx,
        }
    }
}

/// `--split`: three comma-separated fractions.
fn parse_split(s: &str) -> Result<[f64; 3], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let v: Vec<f64> = parts
        .iter()
        .map(|p| {
            p.parse::<f64>()
                .map_err(|_| format!("`{p}` is not a number"))
        })
        .collect::<Result<_, _>>()?;
    <[f64; 3]>::try_from(v)
        .map_err(|v| format!("expected three fractions (train,val,test), got {}", v.len()))
}

/// Arguments of `recmaml prepare`.
#[derive(Args, Clone, Debug)]
pub struct PrepareArgs {
    /// The raw log.
    #[arg(long)]
    input: PathBuf,
    /// Its format.
    #[arg(long, value_enum)]
    format: FormatArg,
    /// The output folder (refused if it exists and is not empty, unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Support pairs per episode.
    #[arg(long = "K", alias = "k", default_value_t = 5)]
    k: usize,
    /// Query pairs per episode.
    #[arg(long = "Q", alias = "q", default_value_t = 10)]
    q: usize,
    /// Prefixes keep their last this many items.
    #[arg(long, default_value_t = 50)]
    max_prefix_len: usize,
    /// User fractions train,val,test.
    #[arg(long, default_value = "0.8,0.1,0.1", value_parser = parse_split)]
    split: [f64; 3],
    /// Seed of the user shuffle.
    #[arg(long, default_value_t = 20_260_107)]
    seed: u64,
    /// Train episodes start this many pairs apart.
    #[arg(long, default_value_t = 1)]
    train_stride: usize,
    /// Start a new session after a gap longer than this many seconds.
    #[arg(long)]
    session_gap: Option<i64>,
    /// Replace an existing non-empty output folder.
    #[arg(long)]
    force: bool,
    /// No progress and no printed table.
    #[arg(long)]
    quiet: bool,
}

impl PrepareArgs {
    fn options(&self) -> PrepareOptions {
        PrepareOptions {
            input: self.input.clone(),
            format: self.format.into(),
            out: self.out.clone(),
            k: self.k,
            q: self.q,
            max_prefix_len: self.max_prefix_len,
            split: self.split,
            seed: self.seed,
            train_stride: self.train_stride,
            session_gap: self.session_gap,
            force: self.force,
            quiet: self.quiet,
        }
    }
}

/// Runs `recmaml prepare`.
pub fn run(args: &PrepareArgs) -> recmaml::Result<()> {
    let report = prepare::run(&args.options())?;
    if !args.quiet {
        println!("{}", report.table());
        println!("  -> {}", args.out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PrepareArgs,
    }

    #[test]
    fn the_flags_defaults_are_the_librarys() {
        let flags = [
            "prepare",
            "--input",
            "in.csv",
            "--format",
            "movielens",
            "--out",
            "o",
        ];
        let a = Cli::try_parse_from(flags).unwrap().args;
        let want = PrepareOptions {
            quiet: false,
            ..PrepareOptions::new("in.csv", Format::Movielens, "o")
        };
        assert_eq!(a.options(), want);
    }

    #[test]
    fn split_takes_three_fractions() {
        assert_eq!(parse_split("0.7, 0.2,0.1"), Ok([0.7, 0.2, 0.1]));
        assert!(parse_split("0.5,0.5").unwrap_err().contains("got 2"));
        assert!(parse_split("a,b,c").unwrap_err().contains("`a`"));
    }
}
