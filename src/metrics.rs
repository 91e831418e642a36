//! Ranking metrics over query pairs (Acc@1, HR@5, HR@10, NDCG@10, MRR) with 95% bootstrap
//! intervals over episodes.
//!
//! Item 0 is padding and never a label, so it is excluded from the ranking. Ties are broken by the
//! lower item id, as `argmax` does: the rank of the label `y` is
//! `1 + #{v != 0 : l_v > l_y} + #{0 < v < y : l_v = l_y}`.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Names of the metrics, in report order.
pub const METRICS: [&str; 5] = ["acc@1", "hr@5", "hr@10", "ndcg@10", "mrr"];

/// The 1-based rank of `label` among items `1..V` by descending logit, ties to the lower id.
pub fn rank_of(logits: &[f32], label: u32) -> usize {
    let y = label as usize;
    let ly = logits[y];
    let mut rank = 1;
    for (v, &l) in logits.iter().enumerate().skip(1) {
        if l > ly || (l == ly && v < y) {
            rank += 1;
        }
    }
    rank
}

/// The highest-scoring item among `1..V` (the lowest id on ties).
pub fn top1(logits: &[f32]) -> u32 {
    let mut best = 1;
    for (v, &l) in logits.iter().enumerate().skip(1) {
        if l > logits[best] {
            best = v;
        }
    }
    best as u32
}

/// The five metrics of one query pair from the rank of its label.
pub fn metrics_of_rank(rank: usize) -> [f64; 5] {
    let r = rank as f64;
    [
        (rank == 1) as u8 as f64,
        (rank <= 5) as u8 as f64,
        (rank <= 10) as u8 as f64,
        if rank <= 10 {
            1.0 / (r + 1.0).log2()
        } else {
            0.0
        },
        1.0 / r,
    ]
}

/// Per-episode means of the five metrics from the ranks of its query labels.
pub fn episode_metrics(ranks: &[usize]) -> [f64; 5] {
    let mut acc = [0.0; 5];
    for &r in ranks {
        for (a, m) in acc.iter_mut().zip(metrics_of_rank(r)) {
            *a += m;
        }
    }
    acc.map(|a| a / ranks.len().max(1) as f64)
}

/// A mean with its 95% percentile-bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Number of bootstrap resamples.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// Mean of `values` with a 95% percentile-bootstrap interval (resampling the values).
pub fn bootstrap_mean(values: &[f64], seed: u64) -> Estimate {
    let n = values.len();
    if n == 0 {
        return Estimate {
            mean: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
        };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut rng = Rng::new(seed);
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            (0..n)
                .map(|_| values[rng.below(n as u64) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round()) as usize];
    Estimate {
        mean,
        ci_low: at(0.025),
        ci_high: at(0.975),
    }
}

/// The five metrics over a set of episodes, each with its interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSet {
    #[serde(rename = "acc@1")]
    pub acc1: Estimate,
    #[serde(rename = "hr@5")]
    pub hr5: Estimate,
    #[serde(rename = "hr@10")]
    pub hr10: Estimate,
    #[serde(rename = "ndcg@10")]
    pub ndcg10: Estimate,
    pub mrr: Estimate,
}

impl MetricSet {
    /// From the per-episode metric vectors (one `[f64; 5]` per episode).
    pub fn from_episodes(per_episode: &[[f64; 5]], seed: u64) -> Self {
        let est = |i: usize| {
            let v: Vec<f64> = per_episode.iter().map(|m| m[i]).collect();
            bootstrap_mean(&v, seed.wrapping_add(i as u64))
        };
        MetricSet {
            acc1: est(0),
            hr5: est(1),
            hr10: est(2),
            ndcg10: est(3),
            mrr: est(4),
        }
    }

    /// `(name, estimate)` pairs in report order.
    pub fn entries(&self) -> [(&'static str, Estimate); 5] {
        [
            (METRICS[0], self.acc1),
            (METRICS[1], self.hr5),
            (METRICS[2], self.hr10),
            (METRICS[3], self.ndcg10),
            (METRICS[4], self.mrr),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_counts_higher_items_and_breaks_ties_like_argmax() {
        // item 0 (padding) has the highest logit but never counts.
        let logits = [9.0, 0.5, 2.0, 2.0, -1.0];
        assert_eq!(rank_of(&logits, 2), 1);
        assert_eq!(rank_of(&logits, 3), 2);
        assert_eq!(rank_of(&logits, 1), 3);
        assert_eq!(rank_of(&logits, 4), 4);
        assert_eq!(top1(&logits), 2);
    }

    #[test]
    fn metric_values_follow_their_definitions() {
        assert_eq!(metrics_of_rank(1), [1.0, 1.0, 1.0, 1.0, 1.0]);
        let m = metrics_of_rank(3);
        assert_eq!(&m[..3], &[0.0, 1.0, 1.0]);
        assert!((m[3] - 0.5).abs() < 1e-12); // 1/log2(4)
        assert!((m[4] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(metrics_of_rank(11), [0.0, 0.0, 0.0, 0.0, 1.0 / 11.0]);
        let e = episode_metrics(&[1, 11]);
        assert_eq!(e[0], 0.5);
    }

    #[test]
    fn bootstrap_interval_brackets_the_mean_and_shrinks_with_n() {
        let small: Vec<f64> = (0..20).map(|i| (i % 2) as f64).collect();
        let large: Vec<f64> = (0..2000).map(|i| (i % 2) as f64).collect();
        let a = bootstrap_mean(&small, 1);
        let b = bootstrap_mean(&large, 1);
        assert_eq!(a.mean, 0.5);
        assert!(a.ci_low < 0.5 && a.ci_high > 0.5);
        assert!(b.ci_high - b.ci_low < a.ci_high - a.ci_low);
        // Binomial standard error at n=2000: sqrt(.25/2000) = 0.0112, so the 95% width is ~0.044.
        assert!((b.ci_high - b.ci_low - 0.044).abs() < 0.01, "{b:?}");
        let constant = bootstrap_mean(&[0.25; 10], 3);
        assert_eq!((constant.ci_low, constant.ci_high), (0.25, 0.25));
    }
}
