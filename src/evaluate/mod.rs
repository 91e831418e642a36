//! The evaluation loop: every episode of a set adapted and scored on a [`Backend`] at its θ,
//! giving one [`EpisodeRecord`] per episode (top-1 items and label ranks before and after
//! adaptation) and their [`EvalSummary`] (metrics with bootstrap intervals, mean losses).

use crate::backend::{Backend, InnerLoop, Task, TaskEval};
use crate::data::Episode;
use crate::error::{Error, Result};
use crate::metrics::{self, MetricSet};
use crate::train::WeightedSet;
use crate::util::Progress;
use serde::{Deserialize, Serialize};

/// One evaluated episode, as written to `--per-episode` JSONL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    pub episode_id: i64,
    pub user_id: String,
    pub zero_shot_loss: f64,
    pub few_shot_loss: f64,
    /// Predicted item per query pair at θ.
    pub zero_shot_top1: Vec<u32>,
    /// Predicted item per query pair after adaptation.
    pub few_shot_top1: Vec<u32>,
    /// Rank of each true label at θ (1 = top).
    pub zero_shot_rank: Vec<usize>,
    /// Rank of each true label after adaptation.
    pub few_shot_rank: Vec<usize>,
}

impl EpisodeRecord {
    /// The record of a model that does not adapt (a baseline): the same top-1 items and ranks
    /// before and after adaptation, and no losses (NaN).
    pub fn unadapted(ep: &Episode, top1: Vec<u32>, ranks: Vec<usize>) -> Self {
        EpisodeRecord {
            episode_id: ep.episode_id,
            user_id: ep.user_id.clone(),
            zero_shot_loss: f64::NAN,
            few_shot_loss: f64::NAN,
            zero_shot_top1: top1.clone(),
            few_shot_top1: top1,
            zero_shot_rank: ranks.clone(),
            few_shot_rank: ranks,
        }
    }
}

/// Zero- and few-shot metrics over an episode set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub n_episodes: usize,
    pub zero_shot: MetricSet,
    pub few_shot: MetricSet,
    pub zero_shot_loss: f64,
    pub few_shot_loss: f64,
}

/// Tasks evaluated per backend call (bounds the memory of the returned logits).
const EVAL_CHUNK: usize = 64;

/// Evaluates every episode of `ws` at the backend's θ: per-episode records and the summary.
pub fn evaluate_set(
    backend: &mut dyn Backend,
    ws: &WeightedSet,
    inner: &InnerLoop,
    mut progress: Option<&mut Progress>,
) -> Result<(EvalSummary, Vec<EpisodeRecord>)> {
    let v = backend.layout().dims.n_items;
    let mut records = Vec::with_capacity(ws.len());
    for start in (0..ws.len()).step_by(EVAL_CHUNK) {
        let end = (start + EVAL_CHUNK).min(ws.len());
        let tasks: Vec<Task> = (start..end).map(|i| ws.task(i)).collect();
        let evals = backend.evaluate(&tasks, inner)?;
        if evals.len() != tasks.len() {
            return Err(Error::Other(format!(
                "backend {} evaluated {} of {} episodes",
                backend.name(),
                evals.len(),
                tasks.len()
            )));
        }
        for (i, te) in (start..end).zip(evals) {
            records.push(record(&ws.set.episodes[i], &te, v));
        }
        if let Some(p) = progress.as_deref_mut() {
            p.set(end as u64);
        }
    }
    Ok((summarize(&records), records))
}

/// The record of episode `ep` from its evaluation `te` over `v` items.
fn record(ep: &Episode, te: &TaskEval, v: usize) -> EpisodeRecord {
    let per_query = |logits: &[f32]| -> (Vec<u32>, Vec<usize>) {
        ep.query_labels
            .iter()
            .enumerate()
            .map(|(j, &y)| {
                let row = &logits[j * v..(j + 1) * v];
                (metrics::top1(row), metrics::rank_of(row, y))
            })
            .unzip()
    };
    let (zt, zr) = per_query(&te.zero_shot_logits);
    let (ft, fr) = per_query(&te.few_shot_logits);
    EpisodeRecord {
        episode_id: ep.episode_id,
        user_id: ep.user_id.clone(),
        zero_shot_loss: te.zero_shot_loss,
        few_shot_loss: te.few_shot_loss,
        zero_shot_top1: zt,
        few_shot_top1: ft,
        zero_shot_rank: zr,
        few_shot_rank: fr,
    }
}

/// Metrics with bootstrap intervals from per-episode records.
pub fn summarize(records: &[EpisodeRecord]) -> EvalSummary {
    let zs: Vec<[f64; 5]> = records
        .iter()
        .map(|r| metrics::episode_metrics(&r.zero_shot_rank))
        .collect();
    let fs: Vec<[f64; 5]> = records
        .iter()
        .map(|r| metrics::episode_metrics(&r.few_shot_rank))
        .collect();
    let n = records.len().max(1) as f64;
    EvalSummary {
        n_episodes: records.len(),
        zero_shot: MetricSet::from_episodes(&zs, 0),
        few_shot: MetricSet::from_episodes(&fs, 0),
        zero_shot_loss: records.iter().map(|r| r.zero_shot_loss).sum::<f64>() / n,
        few_shot_loss: records.iter().map(|r| r.few_shot_loss).sum::<f64>() / n,
    }
}

mod run;
pub use run::{evaluate, EvalOptions};
