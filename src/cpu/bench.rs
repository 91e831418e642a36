//! The reference workload for timing a backend: V 1519, E 64, H 64, meta-batches of 32 tasks with
//! K 5 support and Q 10 query pairs, 5 inner steps, prefix lengths log-normal with median 3 and
//! 90th percentile 19, capped at 50 (the XuetangX statistics). Items are drawn uniformly, so
//! prefixes share nothing: the measured rate does not lean on prefix sharing.

use crate::backend::{InnerLoop, OuterConfig, Task};
use crate::data::Episode;
use crate::model::{ModelDims, ParamLayout};
use crate::rng::Rng;

/// Synthetic episodes and weights of the reference configuration.
#[derive(Clone, Debug)]
pub struct Workload {
    /// V 1519, E 64, H 64.
    pub layout: ParamLayout,
    /// Meta-parameters, uniform in ±0.1.
    pub theta: Vec<f32>,
    /// Episodes, K 5 and Q 10 each.
    pub episodes: Vec<Episode>,
    /// Exponential recency weights (lambda 0.5) over K 5.
    pub weights: Vec<f32>,
    /// Tasks per meta-batch (32).
    pub meta_batch: usize,
    /// inner lr 0.01, 5 steps.
    pub inner: InnerLoop,
    /// Adam 1e-3, clip 10.
    pub outer: OuterConfig,
}

/// A prefix length: log-normal with median 3 and 90th percentile 19, rounded, in `1..=50`.
fn prefix_len(rng: &mut Rng) -> usize {
    let (mu, sigma) = (3f64.ln(), (19f64.ln() - 3f64.ln()) / 1.281_551_565_5);
    let x = (mu + sigma * rng.normal()).exp().round();
    x.clamp(1.0, 50.0) as usize
}

/// `n_episodes` episodes of the reference configuration, seeded.
pub fn reference_workload(seed: u64, n_episodes: usize) -> Workload {
    let dims = ModelDims {
        n_items: 1519,
        embed_dim: 64,
        hidden_dim: 64,
    };
    let layout = ParamLayout::new(dims);
    let mut rng = Rng::new(seed);
    let theta = (0..layout.len)
        .map(|_| rng.uniform(-0.1, 0.1) as f32)
        .collect();
    let item = |rng: &mut Rng| 1 + rng.below(dims.n_items as u64 - 1) as u32;
    let pairs = |rng: &mut Rng, n: usize| -> (Vec<Vec<u32>>, Vec<u32>) {
        (0..n)
            .map(|_| {
                let len = prefix_len(rng);
                ((0..len).map(|_| item(rng)).collect(), item(rng))
            })
            .unzip()
    };
    let episodes = (0..n_episodes)
        .map(|i| {
            let (support_prefixes, support_labels) = pairs(&mut rng, 5);
            let (query_prefixes, query_labels) = pairs(&mut rng, 10);
            Episode {
                episode_id: i as i64,
                user_id: format!("bench{i}"),
                support_prefixes,
                support_labels,
                query_prefixes,
                query_labels,
                support_label_ts: None,
                query_label_ts: None,
            }
        })
        .collect();
    let raw: Vec<f64> = (0..5).map(|i| (0.5 * i as f64 / 4.0).exp()).collect();
    let total: f64 = raw.iter().sum();
    Workload {
        layout,
        theta,
        episodes,
        weights: raw.iter().map(|w| (w / total) as f32).collect(),
        meta_batch: 32,
        inner: InnerLoop { lr: 0.01, steps: 5 },
        outer: OuterConfig::adam(1e-3, 10.0),
    }
}

impl Workload {
    /// The tasks of meta-batch `b` (episodes `b * 32..`, wrapping around).
    pub fn batch(&self, b: usize) -> Vec<Task<'_>> {
        let n = self.episodes.len();
        (0..self.meta_batch)
            .map(|j| {
                let e = &self.episodes[(b * self.meta_batch + j) % n];
                Task {
                    support_prefixes: &e.support_prefixes,
                    support_labels: &e.support_labels,
                    support_weights: &self.weights,
                    query_prefixes: &e.query_prefixes,
                    query_labels: &e.query_labels,
                }
            })
            .collect()
    }
}
