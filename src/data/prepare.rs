//! A raw log in, a folder of vocabulary, pairs, episodes and a report out (`recmaml prepare`),
//! written atomically (a temporary folder `.NAME.tmp-PID` beside the output folder, renamed into
//! place at the end). The output folder is locked for the whole run
//! ([`crate::util::lock_out_dir`]); an input inside it is refused, since it would be replaced.

use super::episodes::{write_episode_rows, write_pairs, WindowRows};
use super::events::{read_interactions, read_movielens, EventLog};
use super::pipeline::{self, PipelineConfig, Prepared, SplitCounts, StageCounts, SPLITS};
use super::xuetangx::read_xuetangx;
use crate::error::{Error, Result};
use crate::util::{claim_out_dir, remove_stale_temporaries_of, LOCK_FILE};
use rayon::prelude::*;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Input log formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CSV/TSV with a header: user_id, item_id, timestamp [, session_id].
    Interactions,
    /// GroupLens `ratings.csv`, `u.data` or `ratings.dat`, detected from the content.
    Movielens,
    /// XuetangX raw activity JSON, streamed.
    Xuetangx,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Interactions => "interactions",
            Format::Movielens => "movielens",
            Format::Xuetangx => "xuetangx",
        }
    }
}

/// What `prepare` reads, how, and where it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct PrepareOptions {
    /// The raw log.
    pub input: PathBuf,
    /// Its format.
    pub format: Format,
    /// The output folder (refused if it exists and is not empty, unless `force`).
    pub out: PathBuf,
    /// Support pairs per episode.
    pub k: usize,
    /// Query pairs per episode.
    pub q: usize,
    /// Prefixes keep their last this many items.
    pub max_prefix_len: usize,
    /// User fractions train, val, test.
    pub split: [f64; 3],
    /// Seed of the user shuffle.
    pub seed: u64,
    /// Train episodes start this many pairs apart.
    pub train_stride: usize,
    /// Start a new session after a gap longer than this many seconds.
    pub session_gap: Option<i64>,
    /// Replace an existing non-empty output folder.
    pub force: bool,
    /// No progress display.
    pub quiet: bool,
}

impl PrepareOptions {
    /// Default settings for `input` in `format`, written to `out`, without a progress display.
    pub fn new(input: impl Into<PathBuf>, format: Format, out: impl Into<PathBuf>) -> Self {
        let d = PipelineConfig::default();
        PrepareOptions {
            input: input.into(),
            format,
            out: out.into(),
            k: d.k,
            q: d.q,
            max_prefix_len: d.max_prefix_len,
            split: d.split,
            seed: d.seed,
            train_stride: d.train_stride,
            session_gap: d.session_gap,
            force: false,
            quiet: true,
        }
    }

    /// The pipeline settings.
    pub fn config(&self) -> PipelineConfig {
        PipelineConfig {
            k: self.k,
            q: self.q,
            max_prefix_len: self.max_prefix_len,
            split: self.split,
            seed: self.seed,
            train_stride: self.train_stride,
            session_gap: self.session_gap,
        }
    }
}

/// Counts for one split, with its name.
#[derive(Clone, Debug, Serialize)]
pub struct NamedSplit {
    pub split: &'static str,
    #[serde(flatten)]
    pub counts: SplitCounts,
    /// Shares of the query labels that are a support label; a support label or an item of a
    /// support prefix; an item of the query's own prefix (`counts.query_overlap` / query labels).
    pub query_in_support_labels_share: f64,
    pub query_in_support_share: f64,
    pub query_in_own_prefix_share: f64,
}

impl NamedSplit {
    fn new(split: &'static str, counts: SplitCounts) -> Self {
        let [labels, support, own] = counts.query_overlap.shares();
        NamedSplit {
            split,
            counts,
            query_in_support_labels_share: labels,
            query_in_support_share: support,
            query_in_own_prefix_share: own,
        }
    }
}

/// `prepare_report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct PrepareReport {
    pub input: PathBuf,
    pub format: Format,
    pub input_bytes: u64,
    pub read_seconds: f64,
    /// Sessions, pairs, split and episodes in memory.
    pub pipeline_seconds: f64,
    /// Writing the output files.
    pub write_seconds: f64,
    pub total_seconds: f64,
    pub config: PipelineConfig,
    pub stages: StageCounts,
    /// Share of pairs whose label the same user touched before the label's time
    /// (`stages.pairs_revisit / stages.pairs`).
    pub pairs_revisit_share: f64,
    pub splits: Vec<NamedSplit>,
}

impl PrepareReport {
    /// The report as a short text table.
    pub fn table(&self) -> String {
        let s = &self.stages;
        let mb = self.input_bytes as f64 / 1e6;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "prepare {} ({}): {:.1} MB in {:.1} s ({:.0} MB/s): read {:.1} s, pipeline {:.1} s, write {:.1} s",
            self.input.display(),
            self.format.name(),
            mb,
            self.total_seconds,
            mb / self.total_seconds.max(1e-9),
            self.read_seconds,
            self.pipeline_seconds,
            self.write_seconds,
        );
        let rows: [(&str, String); 9] = [
            (
                "events",
                format!("{} read, {} kept", s.events_read, s.events_kept),
            ),
            (
                "users",
                format!("{} with events, {} with pairs", s.users, s.users_with_pairs),
            ),
            ("items", s.items.to_string()),
            ("sessions", s.sessions.to_string()),
            ("pair candidates", s.pair_candidates.to_string()),
            ("dropped (same time)", s.pairs_dropped_same_time.to_string()),
            (
                "pairs",
                format!(
                    "{} ({} prefixes cut to {})",
                    s.pairs, s.pairs_truncated, self.config.max_prefix_len
                ),
            ),
            (
                "prefix length",
                format!(
                    "p50 {}  p90 {}  p99 {}  max {}",
                    s.prefix_len.p50, s.prefix_len.p90, s.prefix_len.p99, s.prefix_len.max
                ),
            ),
            (
                "revisits",
                format!(
                    "{} pairs ({:.1}%) whose label the user touched before",
                    s.pairs_revisit,
                    100.0 * self.pairs_revisit_share
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(t, "  {k:<20} {v}");
        }
        let _ = writeln!(
            t,
            "  {:<6} {:>8} {:>10} {:>9} {:>9} {:>7} {:>9} {:>9}",
            "split", "users", "events", "sessions", "pairs", "short", "episodes", "dropped"
        );
        for sp in &self.splits {
            let c = &sp.counts;
            let _ = writeln!(
                t,
                "  {:<6} {:>8} {:>10} {:>9} {:>9} {:>7} {:>9} {:>9}",
                sp.split,
                c.users,
                c.events,
                c.sessions,
                c.pairs,
                c.users_too_short,
                c.episodes,
                c.episodes_dropped_order
            );
        }
        let _ = writeln!(
            t,
            "  (K={} Q={}; short = users with fewer than K+Q pairs; dropped = episodes whose support is not older than its query)",
            self.config.k, self.config.q
        );
        let _ = writeln!(
            t,
            "  {:<6} {:>13} {:>16} {:>18} {:>14}",
            "split", "query labels", "in sup. labels", "in sup. (+prefix)", "in own prefix"
        );
        for sp in &self.splits {
            let pct = |x: f64| format!("{:.1}%", 100.0 * x);
            let _ = writeln!(
                t,
                "  {:<6} {:>13} {:>16} {:>18} {:>14}",
                sp.split,
                sp.counts.query_overlap.query_labels,
                pct(sp.query_in_support_labels_share),
                pct(sp.query_in_support_share),
                pct(sp.query_in_own_prefix_share)
            );
        }
        let _ = write!(
            t,
            "  (share of query labels that are a support label; a support label or an item of a support prefix; an item of the query's own prefix)"
        );
        t
    }
}

/// Reads a log of the given format.
pub fn read_log(path: &Path, format: Format, quiet: bool) -> Result<EventLog> {
    match format {
        Format::Interactions => read_interactions(path, quiet),
        Format::Movielens => read_movielens(path, quiet),
        Format::Xuetangx => read_xuetangx(path, quiet),
    }
}

/// A temporary folder removed on drop unless kept.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Refuses an input that lies inside the output folder, which `prepare` replaces whole.
fn check_input_outside(input: &Path, out: &Path) -> Result<()> {
    let (Ok(i), Ok(o)) = (input.canonicalize(), out.canonicalize()) else {
        return Ok(());
    };
    if i.starts_with(&o) {
        return Err(Error::config(
            "--out",
            format!(
                "the input {} lies inside {}, which prepare replaces whole; choose another --out \
                 or move the input out of it",
                input.display(),
                out.display()
            ),
        ));
    }
    Ok(())
}

fn check_out(out: &Path, force: bool) -> Result<()> {
    if out.is_file() {
        return Err(Error::config(
            "--out",
            format!("{} is a file, not a folder", out.display()),
        ));
    }
    if out.is_dir() {
        let non_empty = std::fs::read_dir(out)
            .map_err(|e| Error::io(out, e))?
            .any(|e| e.is_ok_and(|e| e.file_name() != LOCK_FILE));
        if non_empty && !force {
            return Err(Error::config(
                "--out",
                format!(
                    "{} exists and is not empty; pass --force to replace it",
                    out.display()
                ),
            ));
        }
    }
    Ok(())
}

fn write_all(dir: &Path, p: &Prepared, format: Format, cfg: &PipelineConfig) -> Result<()> {
    let vocab_dir = dir.join("vocab");
    let ep_dir = dir.join("episodes");
    for d in [&vocab_dir, &ep_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let vocab_name = match format {
        Format::Xuetangx => "course2id.json",
        _ => "item2id.json",
    };
    write_vocab(&vocab_dir.join(vocab_name), &p.vocab)?;
    // Seven independent files: write them in parallel, biggest (train episodes) first.
    let mut jobs: Vec<Box<dyn FnOnce() -> Result<()> + Send + '_>> = Vec::new();
    for (s, name) in SPLITS.iter().enumerate() {
        let file = ep_dir.join(format!("episodes_{name}_K{}_Q{}.parquet", cfg.k, cfg.q));
        jobs.push(Box::new(move || {
            let rows = WindowRows {
                pairs: &p.pairs[s],
                starts: &p.windows[s],
                k: p.k,
                q: p.q,
                users: &p.users,
            };
            write_episode_rows(&file, &rows)
        }));
    }
    for (s, name) in SPLITS.iter().enumerate() {
        let file = dir.join(format!("pairs_{name}.parquet"));
        jobs.push(Box::new(move || {
            write_pairs(&file, &p.pairs[s], &p.users, &p.sessions)
        }));
    }
    let results: Vec<Result<()>> = jobs.into_par_iter().map(|job| job()).collect();
    results.into_iter().collect()
}

/// Writes `{"item": id, ...}` in id order.
fn write_vocab(path: &Path, vocab: &[String]) -> Result<()> {
    let mut s = String::from("{\n");
    for (i, name) in vocab.iter().enumerate() {
        let key = serde_json::to_string(name).map_err(|e| Error::Other(e.to_string()))?;
        let sep = if i + 1 < vocab.len() { "," } else { "" };
        let _ = writeln!(s, "  {key}: {}{sep}", i + 1);
    }
    s.push_str("}\n");
    std::fs::write(path, s).map_err(|e| Error::io(path, e))
}

/// Runs `prepare`: reads, computes, writes everything into a temporary folder beside `args.out`
/// and renames it into place.
pub fn run(args: &PrepareOptions) -> Result<PrepareReport> {
    let t0 = Instant::now();
    let cfg = args.config();
    cfg.validate()?;
    check_input_outside(&args.input, &args.out)?;
    // Checked before the lock, so that a refused run does not touch the folder, and again under
    // it. The lock is held to the end; the folder is replaced then, lock file and all.
    check_out(&args.out, args.force)?;
    let _lock = claim_out_dir(&args.out, 0)?;
    check_out(&args.out, args.force)?;
    let input_bytes = std::fs::metadata(&args.input)
        .map_err(|e| Error::io(&args.input, e))?
        .len();
    let log = read_log(&args.input, args.format, args.quiet)?;
    let read_seconds = t0.elapsed().as_secs_f64();
    let prepared = pipeline::run_owned(log, &cfg)?;
    let pipeline_seconds = t0.elapsed().as_secs_f64() - read_seconds;

    let name = args
        .out
        .file_name()
        .ok_or_else(|| Error::config("--out", "needs a folder name"))?
        .to_string_lossy()
        .into_owned();
    let parent = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    for p in remove_stale_temporaries_of(&parent, &name)? {
        eprintln!("removed {}, left by a run that was stopped", p.display());
    }
    let tmp_path = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp_path.exists() {
        std::fs::remove_dir_all(&tmp_path).map_err(|e| Error::io(&tmp_path, e))?;
    }
    std::fs::create_dir(&tmp_path).map_err(|e| Error::io(&tmp_path, e))?;
    let mut tmp = TempDir(Some(tmp_path.clone()));
    write_all(&tmp_path, &prepared, args.format, &cfg)?;
    let write_seconds = t0.elapsed().as_secs_f64() - read_seconds - pipeline_seconds;
    let report = PrepareReport {
        input: args.input.clone(),
        format: args.format,
        input_bytes,
        read_seconds,
        pipeline_seconds,
        write_seconds,
        total_seconds: t0.elapsed().as_secs_f64(),
        config: cfg,
        stages: prepared.stages.clone(),
        pairs_revisit_share: prepared.stages.pairs_revisit as f64
            / prepared.stages.pairs.max(1) as f64,
        splits: SPLITS
            .iter()
            .zip(&prepared.splits)
            .map(|(s, c)| NamedSplit::new(s, c.clone()))
            .collect(),
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error::Other(e.to_string()))?;
    let rp = tmp_path.join("prepare_report.json");
    std::fs::write(&rp, json + "\n").map_err(|e| Error::io(&rp, e))?;

    check_out(&args.out, args.force)?;
    if args.out.is_dir() {
        std::fs::remove_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    }
    std::fs::rename(&tmp_path, &args.out).map_err(|e| Error::io(&args.out, e))?;
    tmp.0 = None;
    // Millions of small allocations (names, prefixes): freed on another thread, so that the
    // caller does not wait for it (a command that exits next does not wait at all).
    std::thread::spawn(move || drop(prepared));
    Ok(report)
}
