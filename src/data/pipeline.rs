//! From an [`EventLog`] to pairs and episodes, in memory: sessions, vocabulary, pairs, the user
//! split and the episodes of each split. `prepare` writes what this computes.
//!
//! Semantics (upstream's, with its defects fixed):
//! - A session is the input's session (column or hash), else the whole user; with a session gap,
//!   a session is further cut wherever two consecutive events are more than `gap` seconds apart.
//! - Events in a session are sorted by time, ties kept in input order; consecutive repeats of
//!   an item are removed (the first event of a run stands for it, with its timestamp).
//! - Item ids: items sorted as strings, numbered from 1; 0 is padding.
//! - Pairs: for each position t >= 1 of a session's sequence, prefix = the items before t (cut to
//!   the last `max_prefix_len`), label = item t; kept only if every prefix timestamp is strictly
//!   before the label's (the sequence is sorted, so: item t-1's time < item t's time).
//! - Users with at least one pair, sorted as strings, are shuffled with [`Rng`] seeded by
//!   `seed`; the first `floor(n * train)` are train, the next `floor(n * val)` val, the rest test.
//! - Episodes: a user's pairs sorted by label time (stable; ties in session order). Train: every
//!   window of K+Q consecutive pairs, starting at 0, `stride` apart; val/test: the last K+Q pairs.
//!   An episode is kept only if its newest support label is strictly older than its oldest
//!   query label. Users with fewer than K+Q pairs give no episode.
//! - Revisit counts ([`super::revisit`]): pairs whose label the user touched before, and per
//!   split how many query labels the support set or the query's own prefix shows.

use super::events::{EventLog, NO_SESSION};
use super::grouping::{group_events, sort_by_name, Grouped};
use super::revisit::{FirstTouch, QueryOverlap};
use super::Episode;
use crate::error::{Error, Result};
use crate::rng::Rng;
use rayon::prelude::*;
use serde::Serialize;

/// The split names, in order.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

/// What the pipeline needs to know.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PipelineConfig {
    /// Support pairs per episode.
    pub k: usize,
    /// Query pairs per episode.
    pub q: usize,
    /// Prefixes are cut to their last this many items.
    pub max_prefix_len: usize,
    /// Fractions of users in train, val, test (sum 1).
    pub split: [f64; 3],
    /// Seed of the user shuffle.
    pub seed: u64,
    /// Train windows start this many pairs apart.
    pub train_stride: usize,
    /// Cut sessions at gaps longer than this many seconds.
    pub session_gap: Option<i64>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            k: 5,
            q: 10,
            max_prefix_len: 50,
            split: [0.8, 0.1, 0.1],
            seed: 20_260_107,
            train_stride: 1,
            session_gap: None,
        }
    }
}

impl PipelineConfig {
    /// Checks the values, naming the flag at fault.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("--K", self.k),
            ("--Q", self.q),
            ("--max-prefix-len", self.max_prefix_len),
            ("--train-stride", self.train_stride),
        ];
        for (flag, v) in positive {
            if v == 0 {
                return Err(Error::config(flag, "must be at least 1"));
            }
        }
        let sum: f64 = self.split.iter().sum();
        if self.split.iter().any(|f| !f.is_finite() || *f < 0.0) || (sum - 1.0).abs() > 1e-6 {
            return Err(Error::config(
                "--split",
                format!(
                    "three non-negative fractions summing to 1 expected, got {:?}",
                    self.split
                ),
            ));
        }
        if matches!(self.session_gap, Some(g) if g <= 0) {
            return Err(Error::config(
                "--session-gap",
                "must be a positive number of seconds",
            ));
        }
        Ok(())
    }
}

/// One (prefix -> next item) pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// Unique across all splits; numbered train, then val, then test.
    pub pair_id: i64,
    /// Index into [`Prepared::users`].
    pub user: u32,
    /// Index into [`Prepared::sessions`].
    pub session: u32,
    /// Item ids (vocabulary), at most `max_prefix_len`, oldest first.
    pub prefix: Vec<u32>,
    pub label: u32,
    /// Unix seconds of the label's first event.
    pub label_ts: i64,
    /// Prefix length before the cut.
    pub full_prefix_len: u32,
}

/// Counts for one split.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SplitCounts {
    /// Users assigned to the split (all have pairs).
    pub users: usize,
    /// Kept events of those users.
    pub events: usize,
    /// Their sessions.
    pub sessions: usize,
    pub pairs: usize,
    /// Users with fewer than K+Q pairs.
    pub users_too_short: usize,
    /// Users that gave at least one episode.
    pub users_with_episodes: usize,
    /// Candidate episodes dropped because a support label was not older than a query label.
    pub episodes_dropped_order: usize,
    pub episodes: usize,
    /// How many of the episodes' query labels their support set or own prefix shows.
    pub query_overlap: QueryOverlap,
}

/// Nearest-rank percentiles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub max: u32,
}

impl Percentiles {
    /// Of `v` (sorted in place); zeros when empty.
    pub fn of(v: &mut [u32]) -> Self {
        v.sort_unstable();
        let at = |p: f64| -> u32 {
            if v.is_empty() {
                return 0;
            }
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: v.last().copied().unwrap_or(0),
        }
    }
}

/// Counts per stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageCounts {
    pub events_read: u64,
    pub events_kept: usize,
    /// Users with at least one kept event.
    pub users: usize,
    pub items: usize,
    pub sessions: usize,
    /// Positions t >= 1 of the deduplicated session sequences.
    pub pair_candidates: usize,
    /// Candidates dropped because the label's time equals the previous item's.
    pub pairs_dropped_same_time: usize,
    pub pairs: usize,
    /// Pairs whose prefix was cut to `max_prefix_len`.
    pub pairs_truncated: usize,
    pub users_with_pairs: usize,
    /// Pairs whose label the same user touched before the label's time (see [`FirstTouch`]).
    pub pairs_revisit: usize,
    /// Prefix lengths of all pairs before the cut.
    pub prefix_len: Percentiles,
}

/// Everything `prepare` writes.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Item names; the id of `vocab[i]` is `i + 1`.
    pub vocab: Vec<String>,
    /// User names.
    pub users: Vec<String>,
    /// Session names (the input's, or the user id; `#k` appended for the k-th piece when a
    /// session gap is set).
    pub sessions: Vec<String>,
    /// Pairs of each split: users in name order, each user's pairs by label time.
    pub pairs: [Vec<Pair>; 3],
    /// Support pairs per episode.
    pub k: usize,
    /// Query pairs per episode.
    pub q: usize,
    /// The episodes of each split as the index in `pairs[split]` of their first pair (the K+Q
    /// pairs from there on, support first); episode id = position in this list.
    pub windows: [Vec<usize>; 3],
    pub stages: StageCounts,
    pub splits: [SplitCounts; 3],
}

impl Prepared {
    /// Episode `i` of split `s` (0 train, 1 val, 2 test).
    pub fn episode(&self, s: usize, i: usize) -> Episode {
        let start = self.windows[s][i];
        let pairs = &self.pairs[s][start..start + self.k + self.q];
        let (sup, qry) = pairs.split_at(self.k);
        Episode {
            episode_id: i as i64,
            user_id: self.users[pairs[0].user as usize].clone(),
            support_prefixes: sup.iter().map(|p| p.prefix.clone()).collect(),
            support_labels: sup.iter().map(|p| p.label).collect(),
            query_prefixes: qry.iter().map(|p| p.prefix.clone()).collect(),
            query_labels: qry.iter().map(|p| p.label).collect(),
            support_label_ts: Some(sup.iter().map(|p| p.label_ts).collect()),
            query_label_ts: Some(qry.iter().map(|p| p.label_ts).collect()),
        }
    }

    /// All episodes of split `s`, materialised.
    pub fn episodes(&self, s: usize) -> Vec<Episode> {
        (0..self.windows[s].len())
            .map(|i| self.episode(s, i))
            .collect()
    }
}

/// Item ids: the items used by any event, sorted as strings, numbered from 1. Returns the
/// vocabulary and the map from log item index to id (0 for unused items).
fn vocabulary(log: &EventLog) -> (Vec<String>, Vec<u32>) {
    let mut used = vec![false; log.items.len()];
    for e in &log.events {
        used[e.item as usize] = true;
    }
    let mut order: Vec<u32> = (0..log.items.len() as u32)
        .filter(|&i| used[i as usize])
        .collect();
    order.sort_unstable_by(|&a, &b| log.items[a as usize].cmp(&log.items[b as usize]));
    let mut remap = vec![0u32; log.items.len()];
    for (rank, &i) in order.iter().enumerate() {
        remap[i as usize] = rank as u32 + 1;
    }
    let vocab = order
        .iter()
        .map(|&i| log.items[i as usize].clone())
        .collect();
    (vocab, remap)
}

/// One user's pairs and counts from all of its groups. Until the sessions are numbered, a pair's
/// `session` is an index into its chunk's [`ChunkPass::pieces`].
struct UserPass {
    user: u32,
    pairs: Vec<Pair>,
    sessions: usize,
}

/// What a range of users gives.
#[derive(Default)]
struct ChunkPass {
    users: Vec<UserPass>,
    /// (group, piece of the group) of each session piece, in the order the pairs name them.
    pieces: Vec<(u32, u32)>,
    candidates: usize,
    dropped: usize,
    revisits: usize,
}

/// The pairs of the users `users`, whose events are `events` (their groups side by side, as in
/// [`Grouped`]).
fn chunk_pass(
    g: &Grouped,
    users: std::ops::Range<usize>,
    events: &mut [(i64, u32)],
    cfg: &PipelineConfig,
) -> ChunkPass {
    let mut out = ChunkPass::default();
    let mut seq = Vec::new();
    let mut touch = FirstTouch::default();
    let mut at = 0;
    for u in users {
        let groups = &g.order[g.user_groups[u]..g.user_groups[u + 1]];
        if groups.is_empty() {
            continue;
        }
        let user = u as u32;
        let mut pass = UserPass {
            user,
            pairs: Vec::new(),
            sessions: 0,
        };
        touch.clear();
        for &group in groups {
            let len = g.len[group as usize];
            let first = out.pieces.len() as u32;
            let (n, cand, dropped) = cut_sessions(
                &mut events[at..at + len],
                user,
                first,
                cfg,
                &mut seq,
                &mut pass.pairs,
                |seq| touch.record(user, seq),
            );
            at += len;
            out.pieces.extend((0..n as u32).map(|k| (group, k)));
            pass.sessions += n;
            out.candidates += cand;
            out.dropped += dropped;
        }
        out.revisits += touch.revisits(pass.pairs.iter().map(|p| (user, p.label, p.label_ts)));
        out.users.push(pass);
    }
    out
}

/// The pairs of one session's time-sorted events, appended to `out`; returns (candidates,
/// dropped for equal times).
fn session_pairs(
    events: &[(i64, u32)],
    user: u32,
    session: u32,
    cap: usize,
    seq: &mut Vec<(i64, u32)>,
    out: &mut Vec<Pair>,
) -> (usize, usize) {
    seq.clear();
    for &(ts, item) in events {
        if seq.last().is_none_or(|&(_, last)| last != item) {
            seq.push((ts, item));
        }
    }
    let mut dropped = 0;
    for t in 1..seq.len() {
        let label_ts = seq[t].0;
        if seq[t - 1].0 >= label_ts {
            dropped += 1;
            continue;
        }
        out.push(Pair {
            pair_id: -1,
            user,
            session,
            prefix: seq[t.saturating_sub(cap)..t].iter().map(|p| p.1).collect(),
            label: seq[t].1,
            label_ts,
            full_prefix_len: t as u32,
        });
    }
    (seq.len().saturating_sub(1), dropped)
}

/// The pairs of one base session (the input's session, or the whole user) from its events
/// `(ts, item id)` in input order: sorts them by time (stably: ties keep input order), cuts them
/// at `cfg.session_gap`, and appends each piece's pairs to `out` with session numbers `first`,
/// `first + 1`, ...; `piece` sees each piece's deduplicated sequence. Returns (pieces,
/// candidates, dropped for equal times). [`run`] and `recmaml recommend` both make pairs here.
pub fn cut_sessions(
    events: &mut [(i64, u32)],
    user: u32,
    first: u32,
    cfg: &PipelineConfig,
    seq: &mut Vec<(i64, u32)>,
    out: &mut Vec<Pair>,
    mut piece: impl FnMut(&[(i64, u32)]),
) -> (usize, usize, usize) {
    events.sort_by_key(|e| e.0);
    let (mut n, mut cand, mut dropped) = (0, 0, 0);
    let pieces = events.chunk_by(|a, b| cfg.session_gap.is_none_or(|gap| b.0 - a.0 <= gap));
    for events in pieces {
        let session = first + n as u32;
        let (c, d) = session_pairs(events, user, session, cfg.max_prefix_len, seq, out);
        piece(seq);
        n += 1;
        cand += c;
        dropped += d;
    }
    (n, cand, dropped)
}

/// Runs the whole pipeline on `log`.
pub fn run(log: &EventLog, cfg: &PipelineConfig) -> Result<Prepared> {
    run_owned(log.clone(), cfg)
}

/// [`run`], consuming the log: its user and session names move into the result instead of
/// being copied (millions of strings on a large log).
pub fn run_owned(log: EventLog, cfg: &PipelineConfig) -> Result<Prepared> {
    run_in_chunks(log, cfg, 64)
}

/// [`run_owned`], the users made into pairs in at most `n_chunks` ranges at once.
fn run_in_chunks(mut log: EventLog, cfg: &PipelineConfig, n_chunks: usize) -> Result<Prepared> {
    cfg.validate()?;
    let (vocab, remap) = vocabulary(&log);
    let mut grouped = group_events(&log, &remap);
    let n_users = log.users.len();
    let has_sessions = log.events.first().is_some_and(|e| e.session != NO_SESSION);

    let mut stages = StageCounts {
        events_read: log.events_read,
        events_kept: log.events.len(),
        items: vocab.len(),
        ..Default::default()
    };
    // Ranges of users with about equal numbers of events, each made into pairs on its own; the
    // results do not depend on the cut.
    let n_chunks = n_chunks.clamp(1, n_users.max(1));
    let total = log.events.len();
    let mut bounds: Vec<usize> = (0..=n_chunks)
        .map(|c| {
            grouped
                .user_events
                .partition_point(|&e| e * n_chunks < total * c)
        })
        .map(|u| u.min(n_users))
        .collect();
    bounds[n_chunks] = n_users;
    bounds.dedup();
    let mut events = std::mem::take(&mut grouped.events);
    let mut slices = Vec::with_capacity(bounds.len());
    let mut rest = &mut events[..];
    for w in bounds.windows(2) {
        let n = grouped.user_events[w[1]] - grouped.user_events[w[0]];
        let (head, tail) = rest.split_at_mut(n);
        slices.push((w[0]..w[1], head));
        rest = tail;
    }
    let mut chunks: Vec<ChunkPass> = slices
        .into_par_iter()
        .map(|(users, ev)| chunk_pass(&grouped, users, ev, cfg))
        .collect();
    drop(events);

    // Sessions numbered in group order, as one pass over the groups would.
    let mut pieces = vec![0u32; grouped.len.len()];
    for c in &chunks {
        for &(group, _) in &c.pieces {
            pieces[group as usize] += 1;
        }
    }
    let mut first_session = vec![0u32; pieces.len()];
    let mut sessions = Vec::new();
    for (group, &n) in pieces.iter().enumerate() {
        first_session[group] = sessions.len() as u32;
        let base = if has_sessions {
            &mut log.sessions[group]
        } else {
            &mut log.users[grouped.user[group] as usize]
        };
        for k in 0..n {
            sessions.push(match cfg.session_gap {
                Some(_) => format!("{base}#{k}"),
                // Each input session is one group: its name is not needed again.
                None if has_sessions && k + 1 == n => std::mem::take(base),
                None => base.clone(),
            });
        }
    }
    drop(pieces);
    chunks.par_iter_mut().for_each(|c| {
        for p in c.users.iter_mut().flat_map(|u| u.pairs.iter_mut()) {
            let (group, k) = c.pieces[p.session as usize];
            p.session = first_session[group as usize] + k;
        }
    });
    drop(first_session);
    let user_events: Vec<usize> = (grouped.user_events.windows(2))
        .map(|w| w[1] - w[0])
        .collect();
    drop(grouped);
    let mut user_sessions = vec![0usize; n_users];
    let mut user_pairs: Vec<Vec<Pair>> = vec![Vec::new(); n_users];
    for c in chunks {
        stages.pair_candidates += c.candidates;
        stages.pairs_dropped_same_time += c.dropped;
        stages.pairs_revisit += c.revisits;
        for u in c.users {
            user_sessions[u.user as usize] = u.sessions;
            user_pairs[u.user as usize] = u.pairs;
        }
    }
    stages.sessions = sessions.len();
    stages.users = user_events.iter().filter(|&&n| n > 0).count();
    let mut lens: Vec<u32> = user_pairs
        .iter()
        .flatten()
        .map(|p| p.full_prefix_len)
        .collect();
    stages.pairs = lens.len();
    stages.pairs_truncated = lens
        .iter()
        .filter(|&&l| l as usize > cfg.max_prefix_len)
        .count();
    stages.prefix_len = Percentiles::of(&mut lens);
    drop(lens);

    let mut with_pairs: Vec<u32> = (0..n_users as u32)
        .filter(|&u| !user_pairs[u as usize].is_empty())
        .collect();
    stages.users_with_pairs = with_pairs.len();
    if with_pairs.is_empty() {
        return Err(Error::data(
            &log.source,
            None,
            None,
            format!(
                "no pairs: no session has two distinct items at increasing times \
                 ({} events, {} sessions)",
                stages.events_kept, stages.sessions
            ),
        ));
    }
    sort_by_name(&mut with_pairs, &log.users);
    Rng::new(cfg.seed).shuffle(&mut with_pairs);
    let n = with_pairs.len() as f64;
    let n_train = ((n * cfg.split[0]) + 1e-9).floor() as usize;
    let n_val = (((n * cfg.split[1]) + 1e-9).floor() as usize).min(with_pairs.len() - n_train);
    let bounds = [0, n_train, n_train + n_val, with_pairs.len()];

    // Each user's pairs by label time (stable: ties in session order).
    (user_pairs.par_iter_mut()).for_each(|up| up.sort_by_key(|p| p.label_ts));
    let mut pairs: [Vec<Pair>; 3] = Default::default();
    let mut windows: [Vec<usize>; 3] = Default::default();
    let mut splits: [SplitCounts; 3] = Default::default();
    let mut next_pair_id = 0i64;
    for s in 0..3 {
        let mut users = with_pairs[bounds[s]..bounds[s + 1]].to_vec();
        sort_by_name(&mut users, &log.users);
        let c = &mut splits[s];
        c.users = users.len();
        for &u in &users {
            let mut up = std::mem::take(&mut user_pairs[u as usize]);
            for p in &mut up {
                p.pair_id = next_pair_id;
                next_pair_id += 1;
            }
            c.events += user_events[u as usize];
            c.sessions += user_sessions[u as usize];
            c.pairs += up.len();
            let before = windows[s].len();
            if up.len() < cfg.k + cfg.q {
                c.users_too_short += 1;
            } else {
                c.episodes_dropped_order +=
                    user_windows(&up, pairs[s].len(), s == 0, cfg, &mut windows[s]);
            }
            c.users_with_episodes += usize::from(windows[s].len() > before);
            pairs[s].extend(up);
        }
        c.episodes = windows[s].len();
        let split_pairs = &pairs[s];
        let pair = |i: usize| (&split_pairs[i].prefix[..], split_pairs[i].label);
        c.query_overlap = QueryOverlap::of(pair, &windows[s], cfg.k, cfg.q);
    }
    Ok(Prepared {
        vocab,
        users: log.users,
        sessions,
        pairs,
        k: cfg.k,
        q: cfg.q,
        windows,
        stages,
        splits,
    })
}

/// Appends the episode windows of one user's time-sorted pairs (at least K+Q of them), as
/// indices offset by `base`; returns how many windows were dropped by the order check.
fn user_windows(
    pairs: &[Pair],
    base: usize,
    train: bool,
    cfg: &PipelineConfig,
    out: &mut Vec<usize>,
) -> usize {
    let w = cfg.k + cfg.q;
    let last = pairs.len() - w;
    let first = if train { 0 } else { last };
    let mut dropped = 0;
    for s in (first..=last).step_by(cfg.train_stride) {
        // Pairs are sorted by label time: newest support = s+K-1, oldest query = s+K.
        if pairs[s + cfg.k - 1].label_ts >= pairs[s + cfg.k].label_ts {
            dropped += 1;
        } else {
            out.push(base + s);
        }
    }
    dropped
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
