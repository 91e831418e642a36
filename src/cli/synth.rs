//! `recmaml synth`: writes a synthetic MOOC-like activity log ([`recmaml::data::synth`]) and
//! prints one line about it.

use clap::{Args, ValueEnum};
use recmaml::data::synth::{self, SynthFormat, SynthOptions, SynthSummary};
use std::path::{Path, PathBuf};

/// `--format` of `recmaml synth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// CSV `user_id,item_id,timestamp,session_id` (kept events only).
    Interactions,
    /// XuetangX raw activity JSON.
    Xuetangx,
}

impl From<FormatArg> for SynthFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Interactions => SynthFormat::Interactions,
            FormatArg::Xuetangx => SynthFormat::Xuetangx,
        }
    }
}

/// Arguments of `recmaml synth`.
#[derive(Args, Clone, Debug)]
pub struct SynthArgs {
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// Its format.
    #[arg(long, value_enum, default_value_t = FormatArg::Interactions)]
    format: FormatArg,
    /// Number of users.
    #[arg(long, default_value_t = synth::DEFAULT_USERS)]
    users: usize,
    /// Number of courses (items).
    #[arg(long, default_value_t = synth::DEFAULT_ITEMS)]
    items: usize,
    /// Random seed.
    #[arg(long, default_value_t = synth::DEFAULT_SEED)]
    seed: u64,
    /// Median number of events per course visit (the real XuetangX log has about 120 events
    /// per session; the default keeps the default file small).
    #[arg(long, default_value_t = synth::DEFAULT_EVENTS_PER_VISIT)]
    events_per_visit: f64,
    /// No progress display.
    #[arg(long)]
    quiet: bool,
}

impl SynthArgs {
    fn options(&self) -> SynthOptions {
        SynthOptions {
            out: self.out.clone(),
            format: self.format.into(),
            users: self.users,
            items: self.items,
            seed: self.seed,
            events_per_visit: self.events_per_visit,
            quiet: self.quiet,
        }
    }
}

/// Runs `recmaml synth`.
pub fn run(args: &SynthArgs) -> recmaml::Result<()> {
    let summary = synth::run(&args.options())?;
    if !args.quiet {
        print_summary(&summary, &args.out);
    }
    Ok(())
}

/// The line saying what was written to `out`.
pub fn print_summary(s: &SynthSummary, out: &Path) {
    println!(
        "synth: {} users, {} courses, {} sessions, {} events ({} kept) -> {} ({:.1} MB)",
        s.users,
        s.courses,
        s.sessions,
        s.events,
        s.kept_events,
        out.display(),
        s.bytes as f64 / 1e6
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SynthArgs,
    }

    #[test]
    fn the_flags_defaults_are_the_librarys() {
        let a = Cli::try_parse_from(["synth", "--out", "x.csv"])
            .unwrap()
            .args;
        let want = SynthOptions {
            quiet: false,
            ..SynthOptions::new("x.csv")
        };
        assert_eq!(a.options(), want);
    }
}
