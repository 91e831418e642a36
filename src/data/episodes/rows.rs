//! The writer's view of episodes: [`EpisodeRows`] gives row by row and side by side what
//! [`write_episode_rows`](super::write_episode_rows) writes, from whole [`Episode`]s or from
//! windows over a split's pairs ([`WindowRows`], what `prepare` computes).

use crate::data::pipeline::Pair;
use crate::data::Episode;

/// Which half of an episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Support,
    Query,
}

/// Episodes as the writer sees them, row by row and side by side.
pub trait EpisodeRows: Sync {
    /// Number of episodes.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn episode_id(&self, i: usize) -> i64;
    fn user_id(&self, i: usize) -> &str;
    /// The prefixes of one side of row `i`.
    fn prefixes(&self, i: usize, side: Side) -> impl Iterator<Item = &[u32]>;
    /// Its labels.
    fn labels(&self, i: usize, side: Side) -> impl Iterator<Item = u32>;
    /// Its label times, if the row has them.
    fn label_ts(&self, i: usize, side: Side) -> Option<impl Iterator<Item = i64>>;
}

impl EpisodeRows for [Episode] {
    fn len(&self) -> usize {
        <[Episode]>::len(self)
    }
    fn episode_id(&self, i: usize) -> i64 {
        self[i].episode_id
    }
    fn user_id(&self, i: usize) -> &str {
        &self[i].user_id
    }
    fn prefixes(&self, i: usize, side: Side) -> impl Iterator<Item = &[u32]> {
        let e = &self[i];
        match side {
            Side::Support => &e.support_prefixes,
            Side::Query => &e.query_prefixes,
        }
        .iter()
        .map(Vec::as_slice)
    }
    fn labels(&self, i: usize, side: Side) -> impl Iterator<Item = u32> {
        let e = &self[i];
        match side {
            Side::Support => &e.support_labels,
            Side::Query => &e.query_labels,
        }
        .iter()
        .copied()
    }
    fn label_ts(&self, i: usize, side: Side) -> Option<impl Iterator<Item = i64>> {
        let e = &self[i];
        match side {
            Side::Support => e.support_label_ts.as_ref(),
            Side::Query => e.query_label_ts.as_ref(),
        }
        .map(|t| t.iter().copied())
    }
}

/// Episodes given as windows over a split's pairs (what `prepare` computes).
pub struct WindowRows<'a> {
    pub pairs: &'a [Pair],
    /// Index of each episode's first pair.
    pub starts: &'a [usize],
    pub k: usize,
    pub q: usize,
    pub users: &'a [String],
}

impl WindowRows<'_> {
    fn side(&self, i: usize, side: Side) -> &[Pair] {
        let s = self.starts[i];
        match side {
            Side::Support => &self.pairs[s..s + self.k],
            Side::Query => &self.pairs[s + self.k..s + self.k + self.q],
        }
    }
}

impl EpisodeRows for WindowRows<'_> {
    fn len(&self) -> usize {
        self.starts.len()
    }
    fn episode_id(&self, i: usize) -> i64 {
        i as i64
    }
    fn user_id(&self, i: usize) -> &str {
        &self.users[self.pairs[self.starts[i]].user as usize]
    }
    fn prefixes(&self, i: usize, side: Side) -> impl Iterator<Item = &[u32]> {
        self.side(i, side).iter().map(|p| p.prefix.as_slice())
    }
    fn labels(&self, i: usize, side: Side) -> impl Iterator<Item = u32> {
        self.side(i, side).iter().map(|p| p.label)
    }
    fn label_ts(&self, i: usize, side: Side) -> Option<impl Iterator<Item = i64>> {
        Some(self.side(i, side).iter().map(|p| p.label_ts))
    }
}
