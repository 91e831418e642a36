//! One user's history turned into a task for the backend: pairs made exactly as `prepare` makes
//! them ([`crate::data::pipeline::cut_sessions`]), the newest K as support with the configured
//! recency weights, and one query prefix: the newest session, whose next item is recommended.

use super::{Interaction, RecommendOptions, UserLine, Vocab};
use crate::backend::Task;
use crate::config::RecencyConfig;
use crate::data::pipeline::{cut_sessions, Pair, PipelineConfig};
use crate::train::episode_weights;
use std::collections::HashMap;

/// Why one user gets no recommendation (the rest of a file or batch goes on).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("the history is empty: at least one interaction is needed")]
    EmptyHistory,
    #[error("the history has {n} interactions, more than the limit of {max}")]
    TooLong { n: usize, max: usize },
    #[error("none of the {unknown} interacted items is in the vocabulary")]
    NoKnownItems { unknown: usize },
    #[error("either every interaction has a `session` or none has; interaction {index} differs from the first")]
    MixedSessions { index: usize },
    #[error("the user id is empty")]
    EmptyUser,
}

/// A user's task, owned: support pairs with weights and one query prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct UserTask {
    pub support_prefixes: Vec<Vec<u32>>,
    pub support_labels: Vec<u32>,
    pub support_weights: Vec<f32>,
    /// One prefix: the newest session's items (cut to `max_prefix_len`), oldest first.
    pub query_prefixes: Vec<Vec<u32>>,
    /// A placeholder label (the query prefix's last item); only the logits are used.
    pub query_labels: Vec<u32>,
    /// Whether the user has support pairs; without them the few-shot answer is the zero-shot one
    /// (the task then carries one placeholder support pair so that the backend accepts it).
    pub adapted: bool,
    /// Every known item of the history, sorted, without repeats.
    pub seen: Vec<u32>,
    /// Interactions whose item is not in the vocabulary (skipped).
    pub unknown: usize,
}

impl UserTask {
    /// The task of `line`'s history.
    pub fn new(
        line: &UserLine,
        vocab: &Vocab,
        opts: &RecommendOptions,
        recency: &RecencyConfig,
    ) -> Result<Self, UserError> {
        let hist = &line.interactions;
        if line.user.is_empty() {
            return Err(UserError::EmptyUser);
        }
        if hist.is_empty() {
            return Err(UserError::EmptyHistory);
        }
        if hist.len() > opts.max_history {
            return Err(UserError::TooLong {
                n: hist.len(),
                max: opts.max_history,
            });
        }
        let has_sessions = hist[0].session.is_some();
        if let Some(index) = hist
            .iter()
            .position(|i| i.session.is_some() != has_sessions)
        {
            return Err(UserError::MixedSessions { index });
        }
        let (groups, unknown) = base_sessions(hist, vocab);
        if groups.is_empty() {
            return Err(UserError::NoKnownItems { unknown });
        }
        let cfg = PipelineConfig {
            k: opts.support_k,
            max_prefix_len: opts.max_prefix_len,
            session_gap: opts.session_gap,
            ..PipelineConfig::default()
        };
        let mut pairs: Vec<Pair> = Vec::new();
        let mut seq = Vec::new();
        // The piece holding the newest event (a later piece wins a tie), as item ids.
        let mut newest: (i64, Vec<u32>) = (i64::MIN, Vec::new());
        let mut seen = Vec::new();
        let mut pieces = 0u32;
        for mut events in groups {
            seen.extend(events.iter().map(|e| e.1));
            let (n, _, _) = cut_sessions(
                &mut events,
                0,
                pieces,
                &cfg,
                &mut seq,
                &mut pairs,
                |piece| {
                    if let Some(&(ts, _)) = piece.last() {
                        if ts >= newest.0 {
                            newest = (ts, piece.iter().map(|p| p.1).collect());
                        }
                    }
                },
            );
            pieces += n as u32;
        }
        seen.sort_unstable();
        seen.dedup();
        // As `prepare` orders a user's pairs: by label time, stably (ties in session order).
        pairs.sort_by_key(|p| p.label_ts);
        let support = &pairs[pairs.len().saturating_sub(opts.support_k)..];
        let items = newest.1;
        let query = items[items.len().saturating_sub(opts.max_prefix_len)..].to_vec();
        let last = *query.last().expect("a piece has at least one event");
        let adapted = !support.is_empty();
        let (prefixes, labels, weights) = if adapted {
            let ts: Vec<i64> = support.iter().map(|p| p.label_ts).collect();
            let w = episode_weights(recency, support.len(), Some(&ts))
                .expect("the recency configuration was checked when the recommender was made");
            (
                support.iter().map(|p| p.prefix.clone()).collect(),
                support.iter().map(|p| p.label).collect(),
                w,
            )
        } else {
            (vec![vec![last]], vec![last], vec![1.0])
        };
        Ok(UserTask {
            support_prefixes: prefixes,
            support_labels: labels,
            support_weights: weights,
            query_prefixes: vec![query],
            query_labels: vec![last],
            adapted,
            seen,
            unknown,
        })
    }

    /// The task, borrowed.
    pub fn task(&self) -> Task<'_> {
        Task {
            support_prefixes: &self.support_prefixes,
            support_labels: &self.support_labels,
            support_weights: &self.support_weights,
            query_prefixes: &self.query_prefixes,
            query_labels: &self.query_labels,
        }
    }
}

/// The known events `(ts, item id)` grouped by base session (the `session` field, else the whole
/// history) in order of first appearance, input order kept inside each, as `prepare` groups a
/// log; and the number of interactions with an unknown item. Empty groups are left out.
fn base_sessions(hist: &[Interaction], vocab: &Vocab) -> (Vec<Vec<(i64, u32)>>, usize) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<(i64, u32)>> = Vec::new();
    let mut unknown = 0;
    for i in hist {
        let Some(id) = vocab.id(&i.item) else {
            unknown += 1;
            continue;
        };
        let key = i.session.as_deref().unwrap_or("");
        let g = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push((i.ts, id));
    }
    (groups, unknown)
}
