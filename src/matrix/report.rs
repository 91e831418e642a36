//! What the matrix reports: each (row, seed) result, the aggregates over seeds with their
//! bootstrap intervals, and the paired few-shot differences to vanilla MAML.

use super::rows::RowSpec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::{bootstrap_mean, Estimate, METRICS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One (row, seed) result, as stored in `OUT/rows/<row>/seed<S>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedResult {
    pub row: String,
    pub seed: u64,
    /// The exact configuration the result was computed with (reuse key).
    pub key: String,
    pub episode_ids: Vec<i64>,
    /// Per test episode: the five metrics (METRICS order), zero- and few-shot.
    pub zero_shot: Vec<[f64; 5]>,
    pub few_shot: Vec<[f64; 5]>,
    /// Validation few-shot Acc@1 against meta-iteration (MAML rows).
    pub val_iteration: Vec<u64>,
    pub val_acc1: Vec<f64>,
    pub best_iteration: Option<u64>,
    pub wall_time_s: f64,
}

/// A metric over seeds: mean and standard deviation of the seeds' test means, and a 95%
/// bootstrap interval over test episodes of the seed-averaged per-episode values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub mean: f64,
    pub sd: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// One row of `matrix.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowReport {
    pub name: String,
    pub model: String,
    pub init: String,
    pub inner_loop: String,
    pub scheme: String,
    pub scheme_param: String,
    pub in_comparison: bool,
    pub in_ablation: bool,
    pub seeds: Vec<u64>,
    /// Metric name -> aggregate.
    pub zero_shot: BTreeMap<String, Aggregate>,
    pub few_shot: BTreeMap<String, Aggregate>,
    /// Metric name -> few-shot difference to vanilla MAML, paired bootstrap over test episodes.
    pub few_shot_vs_vanilla: BTreeMap<String, Estimate>,
    /// Whether the row adapts to the support pairs (the MAML rows; the baselines do not).
    #[serde(default)]
    pub adapts: bool,
    /// Few-shot minus zero-shot Acc@1 (seed-averaged per episode, paired bootstrap over the same
    /// test episodes); exactly 0 for a row that does not adapt.
    #[serde(default = "nan_estimate")]
    pub adaptation_gain: Estimate,
    /// Per seed: few-shot Acc@1 and best validation iteration.
    pub per_seed_few_shot_acc1: Vec<f64>,
    pub per_seed_best_iteration: Vec<Option<u64>>,
    /// Mean over seeds of validation few-shot Acc@1 against iteration.
    pub val_curve: Vec<(u64, f64)>,
    /// Total wall time of its seeds (as computed, also when reused).
    pub wall_time_s: f64,
}

fn nan_estimate() -> Estimate {
    Estimate {
        mean: f64::NAN,
        ci_low: f64::NAN,
        ci_high: f64::NAN,
    }
}

/// One cell of the inner-loop sensitivity block: an inner learning rate and number of steps,
/// the few-shot Acc@1 of equal and of exponential (λ = 0.5) weights, and their paired difference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensitivityCell {
    pub inner_lr: f64,
    pub inner_steps: usize,
    pub equal_row: String,
    pub exponential_row: String,
    pub equal_few_shot_acc1: Aggregate,
    pub exponential_few_shot_acc1: Aggregate,
    /// Exponential minus equal few-shot Acc@1, paired bootstrap over test episodes.
    pub exponential_minus_equal: Estimate,
}

/// `matrix.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatrixReport {
    pub config: Config,
    pub test_file: String,
    pub n_test_episodes: usize,
    pub seeds: Vec<u64>,
    pub backend: String,
    pub machine: String,
    pub date: String,
    pub rows: Vec<RowReport>,
    /// The inner-loop sensitivity block: the cells whose two rows both ran.
    #[serde(default)]
    pub sensitivity: Vec<SensitivityCell>,
    /// Wall time of this invocation (reused rows cost nothing).
    pub wall_time_s: f64,
    /// Rows computed now / reused from an earlier invocation, as `row/seed`.
    pub computed: Vec<String>,
    pub reused: Vec<String>,
}

/// The mean over episodes of one metric.
pub(super) fn mean_of(v: &[[f64; 5]], metric: usize) -> f64 {
    v.iter().map(|m| m[metric]).sum::<f64>() / v.len().max(1) as f64
}

fn aggregate(
    per_seed: &[&SeedResult],
    pick: fn(&SeedResult) -> &Vec<[f64; 5]>,
    metric: usize,
    boot_seed: u64,
) -> Aggregate {
    let n_ep = pick(per_seed[0]).len();
    let means: Vec<f64> = per_seed.iter().map(|r| mean_of(pick(r), metric)).collect();
    let mean = means.iter().sum::<f64>() / means.len() as f64;
    let sd = if means.len() > 1 {
        (means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (means.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    let averaged: Vec<f64> = (0..n_ep)
        .map(|e| per_seed.iter().map(|r| pick(r)[e][metric]).sum::<f64>() / per_seed.len() as f64)
        .collect();
    let ci = bootstrap_mean(&averaged, boot_seed);
    Aggregate {
        mean,
        sd,
        ci_low: ci.ci_low,
        ci_high: ci.ci_high,
    }
}

/// Checks that every seed of `rows` and of `vanilla` was evaluated on the test episodes of
/// vanilla's first seed, in the same order, with one zero- and one few-shot value per episode:
/// the seed averages and the paired bootstrap match episodes by position.
fn check_same_episodes(rows: &[&SeedResult], vanilla: &[&SeedResult]) -> Result<()> {
    let reference = vanilla
        .first()
        .ok_or_else(|| Error::Other("no vanilla MAML seed to compare with".into()))?;
    let ids = &reference.episode_ids;
    for r in rows.iter().chain(vanilla) {
        let n = r.episode_ids.len();
        if r.zero_shot.len() != n || r.few_shot.len() != n {
            return Err(Error::Other(format!(
                "row {} seed {} has {} zero-shot and {} few-shot values for {n} test episodes; \
                 delete its file under rows/ and rerun",
                r.row,
                r.seed,
                r.zero_shot.len(),
                r.few_shot.len()
            )));
        }
        if r.episode_ids != *ids {
            let detail = match r.episode_ids.iter().zip(ids).position(|(a, b)| a != b) {
                Some(i) => format!(
                    "episode id {} at position {i} where vanilla MAML seed {} has {}",
                    r.episode_ids[i], reference.seed, ids[i]
                ),
                None => format!(
                    "{n} episodes where vanilla MAML seed {} has {}",
                    reference.seed,
                    ids.len()
                ),
            };
            return Err(Error::Other(format!(
                "row {} seed {} was evaluated on different test episodes than vanilla MAML \
                 ({detail}); delete its file under rows/ and rerun",
                r.row, r.seed
            )));
        }
    }
    Ok(())
}

/// Seed-averaged few-shot value of each episode minus vanilla's, with a bootstrap interval
/// (a paired bootstrap: both rows are resampled on the same episodes). An error when any seed of
/// either row was evaluated on other test episodes than vanilla's first seed.
pub fn paired_difference(
    per_seed: &[&SeedResult],
    vanilla: &[&SeedResult],
    metric: usize,
) -> Result<Estimate> {
    check_same_episodes(per_seed, vanilla)?;
    if per_seed.is_empty() {
        return Err(Error::Other("no seeds to compare with vanilla MAML".into()));
    }
    let avg = |rs: &[&SeedResult], e: usize| {
        rs.iter().map(|r| r.few_shot[e][metric]).sum::<f64>() / rs.len() as f64
    };
    let diffs: Vec<f64> = (0..vanilla[0].few_shot.len())
        .map(|e| avg(per_seed, e) - avg(vanilla, e))
        .collect();
    Ok(bootstrap_mean(&diffs, 7_000 + metric as u64))
}

/// The adaptation gain of a row: per test episode, few-shot minus zero-shot Acc@1 averaged over
/// the seeds, with a bootstrap interval over episodes (paired: both values come from the same
/// episode and seed). Checked like [`paired_difference`].
pub fn adaptation_gain(per_seed: &[&SeedResult], vanilla: &[&SeedResult]) -> Result<Estimate> {
    check_same_episodes(per_seed, vanilla)?;
    if per_seed.is_empty() {
        return Err(Error::Other(
            "no seeds to take the adaptation gain of".into(),
        ));
    }
    let gains: Vec<f64> = (0..per_seed[0].few_shot.len())
        .map(|e| {
            per_seed
                .iter()
                .map(|r| r.few_shot[e][0] - r.zero_shot[e][0])
                .sum::<f64>()
                / per_seed.len() as f64
        })
        .collect();
    Ok(bootstrap_mean(&gains, crate::evaluate::GAIN_SEED))
}

/// The report of one row from its seeds' results, with the differences to vanilla's.
pub(super) fn row_report(
    row: &RowSpec,
    per_seed: &[&SeedResult],
    vanilla: &[&SeedResult],
) -> Result<RowReport> {
    check_same_episodes(per_seed, vanilla)?;
    let mut zero = BTreeMap::new();
    let mut few = BTreeMap::new();
    let mut diff = BTreeMap::new();
    for (i, name) in METRICS.iter().enumerate() {
        zero.insert(
            name.to_string(),
            aggregate(per_seed, |r| &r.zero_shot, i, 100 + i as u64),
        );
        few.insert(
            name.to_string(),
            aggregate(per_seed, |r| &r.few_shot, i, 200 + i as u64),
        );
        diff.insert(name.to_string(), paired_difference(per_seed, vanilla, i)?);
    }
    Ok(RowReport {
        name: row.name.into(),
        model: row.model.into(),
        init: row.init.into(),
        inner_loop: row.inner.into(),
        scheme: row.scheme_cell.0.into(),
        scheme_param: row.scheme_cell.1.into(),
        in_comparison: row.tables.comparison,
        in_ablation: row.tables.ablation,
        seeds: per_seed.iter().map(|r| r.seed).collect(),
        zero_shot: zero,
        few_shot: few,
        few_shot_vs_vanilla: diff,
        adapts: row.kind.adapts(),
        adaptation_gain: adaptation_gain(per_seed, vanilla)?,
        per_seed_few_shot_acc1: per_seed.iter().map(|r| mean_of(&r.few_shot, 0)).collect(),
        per_seed_best_iteration: per_seed.iter().map(|r| r.best_iteration).collect(),
        val_curve: val_curve(per_seed),
        wall_time_s: per_seed.iter().map(|r| r.wall_time_s).sum(),
    })
}

/// The sensitivity cell of `equal` and `exponential` (each a row's seeds), with the few-shot
/// Acc@1 of both and their paired difference.
pub(super) fn sensitivity_cell(
    (inner_lr, inner_steps): (f64, usize),
    (equal, exponential): (&RowReport, &RowReport),
    (eq_seeds, exp_seeds): (&[&SeedResult], &[&SeedResult]),
) -> Result<SensitivityCell> {
    Ok(SensitivityCell {
        inner_lr,
        inner_steps,
        equal_row: equal.name.clone(),
        exponential_row: exponential.name.clone(),
        equal_few_shot_acc1: equal.few_shot["acc@1"],
        exponential_few_shot_acc1: exponential.few_shot["acc@1"],
        exponential_minus_equal: paired_difference(exp_seeds, eq_seeds, 0)?,
    })
}

/// The mean validation curve over the seeds, when they share the same validation iterations
/// (else empty).
fn val_curve(per_seed: &[&SeedResult]) -> Vec<(u64, f64)> {
    let its = &per_seed[0].val_iteration;
    if !per_seed.iter().all(|r| &r.val_iteration == its) {
        return Vec::new();
    }
    its.iter()
        .enumerate()
        .map(|(j, &it)| {
            let m = per_seed.iter().map(|r| r.val_acc1[j]).sum::<f64>() / per_seed.len() as f64;
            (it, m)
        })
        .collect()
}

/// The CPU model and core count, for the report.
pub(super) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {n} threads")
}
