//! The evaluation loop: every episode of a set adapted and scored on a [`Backend`] at its θ,
//! giving one [`EpisodeRecord`] per episode (top-1 items and label ranks before and after
//! adaptation) and their [`EvalSummary`] (metrics with bootstrap intervals, mean losses).

use crate::backend::{Backend, InnerLoop, Task, TaskEval};
use crate::data::Episode;
use crate::error::{Error, Result};
use crate::metrics::{self, Estimate, MetricSet};
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
    /// What adaptation is worth: few-shot minus zero-shot Acc@1 per episode, with a paired
    /// bootstrap interval over episodes (both values come from the same episode). `None` in
    /// results written before it was reported.
    #[serde(default)]
    pub adaptation_gain: Option<Estimate>,
}

/// The bootstrap seed of [`EvalSummary::adaptation_gain`] (the matrix's gain column uses it too).
pub const GAIN_SEED: u64 = 7_500;

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
    let gains: Vec<f64> = zs.iter().zip(&fs).map(|(z, f)| f[0] - z[0]).collect();
    EvalSummary {
        n_episodes: records.len(),
        zero_shot: MetricSet::from_episodes(&zs, 0),
        few_shot: MetricSet::from_episodes(&fs, 0),
        zero_shot_loss: records.iter().map(|r| r.zero_shot_loss).sum::<f64>() / n,
        few_shot_loss: records.iter().map(|r| r.few_shot_loss).sum::<f64>() / n,
        adaptation_gain: Some(metrics::bootstrap_mean(&gains, GAIN_SEED)),
    }
}

mod run;
pub use run::{evaluate, EvalOptions};

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: i64, zero: &[usize], few: &[usize]) -> EpisodeRecord {
        EpisodeRecord {
            episode_id: id,
            user_id: format!("u{id}"),
            zero_shot_loss: 1.0,
            few_shot_loss: 0.5,
            zero_shot_top1: vec![0; zero.len()],
            few_shot_top1: vec![0; few.len()],
            zero_shot_rank: zero.to_vec(),
            few_shot_rank: few.to_vec(),
        }
    }

    #[test]
    fn the_adaptation_gain_is_few_minus_zero_shot_acc1_per_episode() {
        // Episode 1: Acc@1 1/2 -> 2/2 (+0.5); episode 2: 1/1 -> 0/1 (-1); episode 3: 0/3 -> 1/3.
        let rs = [
            rec(1, &[1, 2], &[1, 1]),
            rec(2, &[1], &[3]),
            rec(3, &[2, 4, 9], &[1, 5, 2]),
        ];
        let g = summarize(&rs).adaptation_gain.unwrap();
        let want = (0.5 - 1.0 + 1.0 / 3.0) / 3.0;
        assert!((g.mean - want).abs() < 1e-12, "{g:?}");
        // Every resample mean lies between the smallest and the largest episode gain.
        assert!(g.ci_low >= -1.0 && g.ci_high <= 0.5 && g.ci_low <= g.mean && g.mean <= g.ci_high);
        // The same ranks before and after: exactly no gain, with no width.
        let same = [rec(1, &[1, 2], &[1, 2]), rec(2, &[3], &[3])];
        let g = summarize(&same).adaptation_gain.unwrap();
        assert_eq!((g.mean, g.ci_low, g.ci_high), (0.0, 0.0, 0.0));
    }

    #[test]
    fn results_written_without_the_gain_still_read() {
        let s = summarize(&[rec(1, &[1], &[2])]);
        let mut v = serde_json::to_value(&s).unwrap();
        v.as_object_mut().unwrap().remove("adaptation_gain");
        let back: EvalSummary = serde_json::from_value(v).unwrap();
        assert_eq!(back.adaptation_gain, None);
        assert_eq!(back.zero_shot, s.zero_shot);
    }
}
