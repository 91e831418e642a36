//! The seed notebook's comparison matrix (GRU4Rec baseline, popularity, vanilla
//! MAML, warm-start MAML, recency MAML, warm-start + recency) with upstream's residual warm-start
//! and session-KNN rows, its ablation over weighting schemes and an inner-loop sensitivity block
//! (inner lr × steps, equal and exponential weights), each row over several seeds, on one
//! prepared dataset (`recmaml matrix`).
//!
//! Every row is evaluated on the same test episodes. A row reports, per metric, the mean and
//! standard deviation over seeds of the test mean, and a 95% bootstrap interval over test episodes
//! of the per-episode values averaged over seeds; the few-shot difference to vanilla MAML comes
//! with a paired bootstrap interval (episodes resampled jointly for both rows), and so does each
//! row's adaptation gain (few-shot minus zero-shot Acc@1 on the same episodes).
//!
//! Finished (row, seed) results are files under `OUT/rows/`, keyed by the exact configuration
//! they were computed with, so running the command again reuses them; an interrupted training run
//! continues from its last checkpoint.
//!
//! The parts: the rows ([`row_names`]), running and reusing one (row, seed), the report's
//! aggregates and paired differences ([`paired_difference`]), its Markdown ([`markdown`]) and
//! its figures ([`val_curve_series`], [`few_shot_intervals`]).

mod knn;
mod markdown;
mod plots;
mod report;
mod rows;
mod runs;

pub use knn::{KnnParams, SessionKnn, KNN_PARAMS};
pub use markdown::{
    ablation_table, comparison_table, fmt_agg, fmt_diff, gain_cell, markdown, sensitivity_table,
    verdict,
};
pub use plots::{few_shot_intervals, val_curve_series};
pub use report::{
    adaptation_gain, paired_difference, Aggregate, MatrixReport, RowReport, SeedResult,
    SensitivityCell,
};
pub use rows::row_names;

use crate::config::{BackendKind, Config};
use crate::error::{Error, Result};
use crate::train;
use report::{machine, mean_of, row_report, sensitivity_cell};
use rows::{selected_rows, RowSpec, SENSITIVITY};
use runs::{row_seed, Layout, PretrainedCache};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Runs every selected row for every seed (reusing finished ones) and writes the reports, holding
/// `out` locked throughout (a second run on it is refused; each training and pretraining run
/// below it locks its own folder).
pub fn run(cfg: &Config, out: &Path) -> Result<MatrixReport> {
    let started = Instant::now();
    let rows = check(cfg)?;
    let _lock = crate::util::claim_out_dir(out, 2)?;
    let done = run_rows(cfg, &rows, &Layout::new(out))?;
    let seeds = cfg.matrix.seeds.clone();
    let vanilla: Vec<&SeedResult> = seeds
        .iter()
        .map(|&s| &done.results[&("vanilla", s)])
        .collect();
    let n_test = vanilla[0].episode_ids.len();
    let of_row = |name: &str| -> Vec<&SeedResult> {
        seeds
            .iter()
            .map(|&s| &done.results[&(name_of(&rows, name), s)])
            .collect()
    };
    let mut reports = Vec::new();
    for row in &rows {
        reports.push(row_report(row, &of_row(row.name), &vanilla)?);
    }
    let mut sensitivity = Vec::new();
    for (lr, steps, eq, exp) in SENSITIVITY {
        let find = |n: &str| reports.iter().find(|r: &&RowReport| r.name == n);
        if let (Some(e), Some(x)) = (find(eq), find(exp)) {
            sensitivity.push(sensitivity_cell(
                (lr, steps),
                (e, x),
                (&of_row(eq), &of_row(exp)),
            )?);
        }
    }
    let report = MatrixReport {
        config: cfg.clone(),
        test_file: cfg.data.test.clone(),
        n_test_episodes: n_test,
        seeds,
        backend: "cpu".into(),
        machine: machine(),
        date: crate::util::run_tag(),
        rows: reports,
        sensitivity,
        wall_time_s: started.elapsed().as_secs_f64(),
        computed: done.computed,
        reused: done.reused,
    };
    write_reports(&report, out)?;
    Ok(report)
}

/// The `&'static` name of the selected row called `name` (the key of the results).
fn name_of(rows: &[RowSpec], name: &str) -> &'static str {
    rows.iter()
        .find(|r| r.name == name)
        .map_or("vanilla", |r| r.name)
}

/// The rows to run, after checking the settings the matrix needs.
fn check(cfg: &Config) -> Result<Vec<RowSpec>> {
    if cfg.run.backend == BackendKind::Cuda {
        return Err(Error::config(
            "run.backend",
            "the matrix pretrains on the CPU; use cpu (or auto)",
        ));
    }
    let rows = selected_rows(cfg)?;
    if cfg.data.test.is_empty() {
        return Err(Error::config("data.test", "the matrix needs test episodes"));
    }
    Ok(rows)
}

/// Every (row, seed) result of an invocation, and which were computed now or reused, as
/// `row/seed`.
struct Finished {
    results: BTreeMap<(&'static str, u64), SeedResult>,
    computed: Vec<String>,
    reused: Vec<String>,
}

/// Runs (or reuses) every row for every seed, seed by seed, with a line on stderr for each.
fn run_rows(cfg: &Config, rows: &[RowSpec], lay: &Layout) -> Result<Finished> {
    let seeds = &cfg.matrix.seeds;
    let total = rows.len() * seeds.len();
    let mut done = Finished {
        results: BTreeMap::new(),
        computed: Vec::new(),
        reused: Vec::new(),
    };
    let mut pretrained = PretrainedCache::new();
    for &seed in seeds {
        for row in rows {
            let tag = format!("{}/seed{seed}", row.name);
            let (res, fresh) = row_seed(cfg, row, seed, lay, &mut pretrained)?;
            eprintln!(
                "[matrix {}/{total}] {tag}: few-shot acc@1 {:.4}{}",
                done.results.len() + 1,
                mean_of(&res.few_shot, 0),
                if fresh {
                    format!(" ({:.1}s)", res.wall_time_s)
                } else {
                    " (reused)".into()
                }
            );
            if fresh {
                done.computed.push(tag);
            } else {
                done.reused.push(tag);
            }
            done.results.insert((row.name, seed), res);
        }
    }
    Ok(done)
}

/// `matrix.json`, `matrix.md` and the plots, under `out`.
fn write_reports(report: &MatrixReport, out: &Path) -> Result<()> {
    train::write_json(&out.join("matrix.json"), report)?;
    crate::util::atomic_write(&out.join("matrix.md"), markdown(report).as_bytes())?;
    plots::write_plots(report, out)
}
