//! `recmaml recommend`: a JSONL file of users in, a JSONL file of answers out (one line per
//! input line, in order), written atomically, with progress over the input's bytes.

use super::{RecommendOptions, Recommender, UserError, UserLine};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::util::{AtomicFile, Progress};
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Instant;

/// What to run and where the answers go.
#[derive(Clone, Debug, PartialEq)]
pub struct FileOptions {
    /// Model weights (as `eval` reads them).
    pub model: PathBuf,
    /// The vocabulary file or folder `prepare` wrote.
    pub vocab: PathBuf,
    /// One user per line (JSON, see [`UserLine`]); blank lines are skipped.
    pub input: PathBuf,
    /// One answer per user (JSONL).
    pub out: PathBuf,
    /// Users per backend call.
    pub batch: usize,
    pub recommend: RecommendOptions,
    /// No progress display.
    pub quiet: bool,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileSummary {
    pub users: usize,
    /// Users answered.
    pub recommended: usize,
    /// Users whose history could not be used (their line has an `error`).
    pub failed: usize,
    /// Users answered without adaptation (no support pair in their history).
    pub not_adapted: usize,
    /// Interactions skipped because the item is not in the vocabulary (of every user, answered
    /// or not).
    pub unknown_items: usize,
    pub seconds: f64,
    pub backend: &'static str,
}

/// An output line for a user whose history cannot be used.
#[derive(Serialize)]
struct Failed<'a> {
    user: &'a str,
    error: String,
}

/// Runs every user of `opts.input` through the model of `opts.model` with `cfg`'s inner loop,
/// recency weighting and backend. A line that is not a user's JSON is an error naming the file
/// and line, and nothing is written.
pub fn recommend_file(cfg: &Config, opts: &FileOptions) -> Result<FileSummary> {
    if opts.batch == 0 {
        return Err(Error::config("--batch", "must be at least 1"));
    }
    let mut rec = Recommender::load(cfg, &opts.model, &opts.vocab, opts.recommend.clone())?;
    let file = std::fs::File::open(&opts.input).map_err(|e| Error::io(&opts.input, e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::new(file);
    let mut out = AtomicFile::create(&opts.out)?;
    let mut progress = Progress::new("recommend", size, true, opts.quiet);
    let t0 = Instant::now();
    let mut summary = FileSummary {
        users: 0,
        recommended: 0,
        failed: 0,
        not_adapted: 0,
        unknown_items: 0,
        seconds: 0.0,
        backend: rec.backend_name(),
    };
    let (mut line, mut row, mut read) = (String::new(), 0usize, 0u64);
    let mut batch: Vec<UserLine> = Vec::with_capacity(opts.batch);
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::io(&opts.input, e))?;
        if n > 0 {
            row += 1;
            read += n as u64;
            if !line.trim().is_empty() {
                let user: UserLine = serde_json::from_str(&line)
                    .map_err(|e| Error::data(&opts.input, Some(row), None, e.to_string()))?;
                batch.push(user);
            }
        }
        if batch.len() == opts.batch || (n == 0 && !batch.is_empty()) {
            write_batch(&mut rec, &batch, &mut out, &mut summary)?;
            batch.clear();
            progress.set(read);
        }
        if n == 0 {
            break;
        }
    }
    progress.finish();
    out.commit()?;
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok(summary)
}

/// Answers one batch and appends its lines.
fn write_batch(
    rec: &mut Recommender,
    batch: &[UserLine],
    out: &mut AtomicFile,
    summary: &mut FileSummary,
) -> Result<()> {
    let answers = rec.recommend(batch)?;
    let mut text = String::new();
    for (user, answer) in batch.iter().zip(answers) {
        summary.users += 1;
        let line = match answer {
            Ok(r) => {
                summary.recommended += 1;
                summary.not_adapted += usize::from(!r.adapted);
                summary.unknown_items += r.unknown_items;
                serde_json::to_string(&r)
            }
            Err(e) => {
                summary.failed += 1;
                if let UserError::NoKnownItems { unknown } = e {
                    summary.unknown_items += unknown;
                }
                serde_json::to_string(&Failed {
                    user: &user.user,
                    error: e.to_string(),
                })
            }
        };
        text.push_str(&line.map_err(|e| Error::Other(format!("serialising an answer: {e}")))?);
        text.push('\n');
    }
    let path = out.path().to_path_buf();
    out.write_all(text.as_bytes())
        .map_err(|e| Error::io(path, e))
}
