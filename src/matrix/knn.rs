//! Session-KNN, the standard non-neural session baseline (Jannach & Ludewig 2017, in its
//! position-weighted "V-SKNN" form): a prefix is compared with every train session that shares
//! an item with it, the most similar sessions vote for their items.
//!
//! For a prefix cut to its last `window` items `p_1 … p_L` (`p_L` the most recent):
//!
//! - position weight `w_i = i / L` (the most recent item 1, the oldest `1 / L`);
//! - similarity to a train session `n` (a set of items): `sim(n) = Σ_i w_i · [p_i ∈ n]` (an item
//!   that occurs twice in the prefix counts twice);
//! - neighbours: the `k` sessions of highest similarity above 0 (ties: the earlier session);
//! - score of item `v`: `Σ_{n ∈ neighbours} sim(n) · [v ∈ n]`.
//!
//! Items are ranked by score, then (ties, including every item no neighbour holds) by
//! popularity (count among the train labels), then by the lower id; the padding id 0 is never
//! ranked. The model does not adapt: its zero- and few-shot predictions are the same.

use crate::evaluate::EpisodeRecord;
use crate::train::WeightedSet;
use rayon::prelude::*;

/// Session-KNN's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KnnParams {
    /// Neighbours that vote.
    pub k: usize,
    /// The prefix's last items that count.
    pub window: usize,
}

/// The matrix's setting: 100 neighbours, the last 50 items (as GRU4Rec's pretraining sees).
pub const KNN_PARAMS: KnnParams = KnnParams { k: 100, window: 50 };

/// Train sessions indexed by item, with the popularity that breaks ties.
#[derive(Clone, Debug)]
pub struct SessionKnn {
    sessions: Vec<Vec<u32>>,
    /// Item -> the sessions holding it, in session order.
    by_item: Vec<Vec<u32>>,
    popularity: Vec<f64>,
    params: KnnParams,
}

impl SessionKnn {
    /// Over `sessions` (each a set of item ids in `1..popularity.len()`), with `popularity[v]`
    /// breaking ties between equal scores.
    pub fn new(sessions: Vec<Vec<u32>>, popularity: Vec<f64>, params: KnnParams) -> Self {
        let mut by_item = vec![Vec::new(); popularity.len()];
        for (s, items) in sessions.iter().enumerate() {
            for &v in items {
                let list: &mut Vec<u32> = &mut by_item[v as usize];
                if list.last() != Some(&(s as u32)) {
                    list.push(s as u32);
                }
            }
        }
        SessionKnn {
            sessions,
            by_item,
            popularity,
            params,
        }
    }

    /// The neighbours of `prefix`: (session index, similarity), most similar first.
    pub fn neighbours(&self, prefix: &[u32]) -> Vec<(usize, f64)> {
        let start = prefix.len().saturating_sub(self.params.window);
        let window = &prefix[start..];
        let l = window.len() as f64;
        let mut sim: std::collections::HashMap<u32, f64> = std::collections::HashMap::new();
        for (i, &v) in window.iter().enumerate() {
            let w = (i + 1) as f64 / l;
            if let Some(list) = self.by_item.get(v as usize) {
                for &s in list {
                    *sim.entry(s).or_insert(0.0) += w;
                }
            }
        }
        let mut n: Vec<(usize, f64)> = sim
            .into_iter()
            .filter(|&(_, x)| x > 0.0)
            .map(|(s, x)| (s as usize, x))
            .collect();
        n.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        n.truncate(self.params.k);
        n
    }

    /// The score of every item id `0..V` for `prefix`.
    pub fn scores(&self, prefix: &[u32]) -> Vec<f64> {
        let mut scores = vec![0.0; self.popularity.len()];
        for (s, x) in self.neighbours(prefix) {
            for &v in &self.sessions[s] {
                scores[v as usize] += x;
            }
        }
        scores
    }

    /// The rank (1 = top) of `label` among the items `1..V` by score, then popularity, then
    /// lower id; and the top item.
    pub fn rank_and_top(&self, scores: &[f64], label: u32) -> (usize, u32) {
        let key = |v: usize| (scores[v], self.popularity[v]);
        let better = |a: usize, b: usize| {
            let (ka, kb) = (key(a), key(b));
            ka.0 > kb.0 || (ka.0 == kb.0 && (ka.1 > kb.1 || (ka.1 == kb.1 && a < b)))
        };
        let y = label as usize;
        let mut rank = 1;
        let mut top = 1usize;
        for v in 1..scores.len() {
            if v != y && better(v, y) {
                rank += 1;
            }
            if v > 1 && better(v, top) {
                top = v;
            }
        }
        (rank, top as u32)
    }

    /// Per-episode records on `set`'s query pairs (zero- and few-shot the same; losses NaN).
    pub fn records(&self, set: &WeightedSet) -> Vec<EpisodeRecord> {
        set.set
            .episodes
            .par_iter()
            .map(|ep| {
                let (ranks, top): (Vec<usize>, Vec<u32>) = ep
                    .query_prefixes
                    .iter()
                    .zip(&ep.query_labels)
                    .map(|(p, &y)| self.rank_and_top(&self.scores(p), y))
                    .unzip();
                EpisodeRecord::unadapted(ep, top, ranks)
            })
            .collect()
    }
}
