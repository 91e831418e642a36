//! The revisit structure of prepared data: how often a label is an item the same user touched
//! before, and how often an episode's query labels appear in what its support set shows.
//!
//! - A pair is a *revisit* when its label's item occurs in the same user's kept events at a time
//!   strictly before the label's time (in any session, including the pair's own prefix).
//! - For each episode and each query pair: whether its label is among the episode's support
//!   labels; among the support labels or the items of the support prefixes (as stored, after the
//!   cut to `max_prefix_len`); and among the items of the query pair's own prefix.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;

/// The earliest time each user touched each item.
#[derive(Default)]
pub struct FirstTouch(FxHashMap<(u32, u32), i64>);

impl FirstTouch {
    /// Forgets every touch, keeping the memory.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Records `user`'s (time, item) events.
    pub fn record(&mut self, user: u32, events: &[(i64, u32)]) {
        for &(ts, item) in events {
            let t = self.0.entry((user, item)).or_insert(ts);
            *t = (*t).min(ts);
        }
    }

    /// Whether `user` touched `item` strictly before `ts`.
    pub fn seen_before(&self, user: u32, item: u32, ts: i64) -> bool {
        self.0.get(&(user, item)).is_some_and(|&t| t < ts)
    }

    /// How many of the pairs, given as (user, label, label time), are revisits.
    pub fn revisits(&self, pairs: impl IntoIterator<Item = (u32, u32, i64)>) -> usize {
        pairs
            .into_iter()
            .filter(|&(user, label, ts)| self.seen_before(user, label, ts))
            .count()
    }
}

/// Query labels of a split's episodes, and how many of them the support set or the query's own
/// prefix already shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueryOverlap {
    /// Query pairs over all episodes (episodes times Q).
    pub query_labels: usize,
    /// ... whose label is one of the episode's support labels;
    pub in_support_labels: usize,
    /// ... whose label is a support label or an item of a support prefix;
    pub in_support: usize,
    /// ... whose label is an item of the query pair's own prefix.
    pub in_own_prefix: usize,
}

impl QueryOverlap {
    /// Over the episodes of one split: `pair(i)` is the (prefix, label) of the split's pair `i`;
    /// `windows` are the indices of each episode's first pair; the K+Q pairs from there on are
    /// the episode, support first.
    ///
    /// The episodes are counted in blocks on rayon's threads, and the counts added.
    pub fn of<'a>(
        pair: impl Fn(usize) -> (&'a [u32], u32) + Sync,
        windows: &[usize],
        k: usize,
        q: usize,
    ) -> Self {
        (windows.par_chunks(4096))
            .map(|w| Self::of_block(&pair, w, k, q))
            .reduce(QueryOverlap::default, |a, b| QueryOverlap {
                query_labels: a.query_labels + b.query_labels,
                in_support_labels: a.in_support_labels + b.in_support_labels,
                in_support: a.in_support + b.in_support,
                in_own_prefix: a.in_own_prefix + b.in_own_prefix,
            })
    }

    fn of_block<'a>(
        pair: &impl Fn(usize) -> (&'a [u32], u32),
        windows: &[usize],
        k: usize,
        q: usize,
    ) -> Self {
        let mut o = QueryOverlap::default();
        let (mut labels, mut shown) = (Vec::new(), Vec::new());
        for &start in windows {
            labels.clear();
            shown.clear();
            for i in start..start + k {
                let (prefix, label) = pair(i);
                labels.push(label);
                shown.extend_from_slice(prefix);
            }
            labels.sort_unstable();
            shown.extend_from_slice(&labels);
            shown.sort_unstable();
            for i in start + k..start + k + q {
                let (prefix, label) = pair(i);
                o.query_labels += 1;
                o.in_support_labels += usize::from(labels.binary_search(&label).is_ok());
                o.in_support += usize::from(shown.binary_search(&label).is_ok());
                o.in_own_prefix += usize::from(prefix.contains(&label));
            }
        }
        o
    }

    /// The three shares (0 when there are no episodes): in support labels, in support, in own
    /// prefix.
    pub fn shares(&self) -> [f64; 3] {
        let n = self.query_labels.max(1) as f64;
        [
            self.in_support_labels as f64 / n,
            self.in_support as f64 / n,
            self.in_own_prefix as f64 / n,
        ]
    }
}
