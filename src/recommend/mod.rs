//! Recommendations for users the model has never seen: each user's recent history (item names
//! with timestamps, optionally in sessions) becomes a few-shot task ([`UserTask`]: support pairs
//! made as `prepare` makes them, the newest K, recency-weighted as configured), a batch of users
//! goes through the backend's [`Backend::evaluate`] like an episode batch in `eval`, and the
//! query logits before and after adaptation give each user's top-k items with scores
//! ([`Recommendation`]). `recmaml recommend` runs a JSONL file through it ([`recommend_file`]);
//! `recmaml serve` answers HTTP requests with it.

mod file;
mod user;
mod vocab;

pub use file::{recommend_file, FileOptions, FileSummary};
pub use user::{UserError, UserTask};
pub use vocab::Vocab;

use crate::backend::{Backend, InnerLoop, Task};
use crate::checkpoint;
use crate::config::{Config, RecencyConfig};
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use crate::train::{self, inner_loop};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::Path;

/// One user: an input line of `recmaml recommend`, the body of `POST /recommend`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserLine {
    pub user: String,
    /// Oldest first (they are sorted by time again, stably, as `prepare` sorts a log).
    pub interactions: Vec<Interaction>,
}

/// One interaction of a user's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interaction {
    /// The item's name, as in the vocabulary.
    pub item: String,
    /// Unix seconds, or an ISO 8601 string (`2026-12-03T10:00:00Z`).
    #[serde(deserialize_with = "timestamp")]
    pub ts: i64,
    /// The session it belongs to; either every interaction of a user has one or none has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// An item and its probability under the model (softmax over all items).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub item: String,
    pub score: f32,
}

/// One user's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub user: String,
    /// Support pairs the model was adapted on (at most K).
    pub support_pairs: usize,
    /// Interactions skipped because their item is not in the vocabulary.
    pub unknown_items: usize,
    /// Whether few-shot adaptation ran (false without support pairs: few-shot = zero-shot).
    pub adapted: bool,
    /// Top-k at the meta-learned weights θ.
    pub zero_shot: Vec<Scored>,
    /// Top-k after the inner loop on the user's support pairs.
    pub few_shot: Vec<Scored>,
}

/// How histories become tasks and logits become answers.
#[derive(Clone, Debug, PartialEq)]
pub struct RecommendOptions {
    /// Items returned per user.
    pub top_k: usize,
    /// Leave the user's own (known) history out of the answer.
    pub exclude_seen: bool,
    /// Support pairs: the newest this many (prepare's `--K`).
    pub support_k: usize,
    /// Prefixes keep their last this many items (prepare's `--max-prefix-len`).
    pub max_prefix_len: usize,
    /// Sessions are cut at gaps longer than this many seconds (prepare's `--session-gap`).
    pub session_gap: Option<i64>,
    /// Longest history accepted, in interactions.
    pub max_history: usize,
}

impl Default for RecommendOptions {
    fn default() -> Self {
        RecommendOptions {
            top_k: 10,
            exclude_seen: false,
            support_k: 5,
            max_prefix_len: 50,
            session_gap: None,
            max_history: 10_000,
        }
    }
}

impl RecommendOptions {
    /// Checks the values, naming the flag at fault.
    pub fn validate(&self) -> Result<()> {
        for (flag, v) in [
            ("--k", self.top_k),
            ("--K", self.support_k),
            ("--max-prefix-len", self.max_prefix_len),
            ("--max-history", self.max_history),
        ] {
            if v == 0 {
                return Err(Error::config(flag, "must be at least 1"));
            }
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

/// A model in memory on a backend, with its vocabulary and inner loop: answers batches of users.
pub struct Recommender {
    backend: Box<dyn Backend>,
    vocab: Vocab,
    inner: InnerLoop,
    recency: RecencyConfig,
    opts: RecommendOptions,
}

impl Recommender {
    /// A recommender over `backend` (the model's V must be the vocabulary's size plus one), with
    /// the inner loop and recency weighting of `cfg`.
    pub fn new(
        backend: Box<dyn Backend>,
        vocab: Vocab,
        cfg: &Config,
        opts: RecommendOptions,
    ) -> Result<Self> {
        opts.validate()?;
        cfg.recency.scheme().validate()?;
        let v = backend.layout().dims.n_items;
        if vocab.len() + 1 != v {
            return Err(Error::data(
                &vocab.path,
                None,
                None,
                format!(
                    "{} items, but the model has {} (V = {v} counts padding id 0)",
                    vocab.len(),
                    v - 1
                ),
            ));
        }
        Ok(Recommender {
            backend,
            vocab,
            inner: inner_loop(cfg),
            recency: cfg.recency.clone(),
            opts,
        })
    }

    /// Loads a weights file and a vocabulary and starts `cfg`'s backend on them.
    pub fn load(cfg: &Config, model: &Path, vocab: &Path, opts: RecommendOptions) -> Result<Self> {
        let sd = checkpoint::load_state_dict(model)?;
        let dims = checkpoint::dims_from_state_dict(&sd, model)?;
        let layout = ParamLayout::new(dims);
        let theta = checkpoint::params_from_state_dict(&sd, &layout, model)?;
        let vocab = Vocab::load(vocab)?;
        let backend = train::make_backend(cfg, layout, theta)?;
        Self::new(backend, vocab, cfg, opts)
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The options.
    pub fn options(&self) -> &RecommendOptions {
        &self.opts
    }

    /// The task of one user.
    pub fn task_of(&self, line: &UserLine) -> std::result::Result<UserTask, UserError> {
        UserTask::new(line, &self.vocab, &self.opts, &self.recency)
    }

    /// Answers a batch of users in one backend call; a user whose history cannot be used gets
    /// its [`UserError`], the others their answer. An error is the backend's.
    pub fn recommend(
        &mut self,
        users: &[UserLine],
    ) -> Result<Vec<std::result::Result<Recommendation, UserError>>> {
        let tasks: Vec<_> = users.iter().map(|u| self.task_of(u)).collect();
        let ok: Vec<&UserTask> = tasks.iter().filter_map(|t| t.as_ref().ok()).collect();
        let borrowed: Vec<Task> = ok.iter().map(|t| t.task()).collect();
        let evals = if borrowed.is_empty() {
            Vec::new()
        } else {
            self.backend.evaluate(&borrowed, &self.inner)?
        };
        if evals.len() != borrowed.len() {
            return Err(Error::Other(format!(
                "backend {} evaluated {} of {} users",
                self.backend.name(),
                evals.len(),
                borrowed.len()
            )));
        }
        let mut evals = evals.into_iter();
        let mut out = Vec::with_capacity(users.len());
        for (line, task) in users.iter().zip(tasks) {
            out.push(task.map(|t| {
                let e = evals.next().expect("one evaluation per usable user");
                let few = if t.adapted {
                    &e.few_shot_logits
                } else {
                    &e.zero_shot_logits
                };
                Recommendation {
                    user: line.user.clone(),
                    support_pairs: if t.adapted { t.support_labels.len() } else { 0 },
                    unknown_items: t.unknown,
                    adapted: t.adapted,
                    zero_shot: self.scored(&e.zero_shot_logits, &t.seen),
                    few_shot: self.scored(few, &t.seen),
                }
            }));
        }
        Ok(out)
    }

    /// The top-k of one row of logits, named, with softmax probabilities.
    fn scored(&self, logits: &[f32], seen: &[u32]) -> Vec<Scored> {
        let exclude = if self.opts.exclude_seen { seen } else { &[] };
        let probs = softmax(logits);
        top_k(logits, self.opts.top_k, exclude)
            .into_iter()
            .map(|id| Scored {
                item: self.vocab.name(id).to_string(),
                score: probs[id as usize],
            })
            .collect()
    }
}

/// The `k` highest-scoring items among `1..V` not in `exclude` (sorted), best first; ties go to
/// the lower id, as in [`crate::metrics::rank_of`].
pub fn top_k(logits: &[f32], k: usize, exclude: &[u32]) -> Vec<u32> {
    let mut ids: Vec<u32> = (1..logits.len() as u32)
        .filter(|id| exclude.binary_search(id).is_err())
        .collect();
    let better = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    let k = k.min(ids.len());
    if k > 0 && k < ids.len() {
        ids.select_nth_unstable_by(k - 1, better);
        ids.truncate(k);
    }
    ids.sort_unstable_by(better);
    ids
}

/// Softmax over items `1..V` (padding id 0 gets 0).
fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits[1..]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let mut out = vec![0f32; logits.len()];
    let mut sum = 0f64;
    for (o, &l) in out.iter_mut().zip(logits).skip(1) {
        let e = ((l - max) as f64).exp();
        *o = e as f32;
        sum += e;
    }
    for o in &mut out[1..] {
        *o = (*o as f64 / sum) as f32;
    }
    out
}

/// A timestamp: an integer (Unix seconds) or a string in any form `prepare` reads.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    struct Ts;
    impl serde::de::Visitor<'_> for Ts {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("Unix seconds (an integer) or an ISO 8601 date-time string")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("timestamp {v} is out of range")))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<i64, E> {
            // As `prepare` reads a decimal: the fraction is dropped.
            if v.is_finite() && v.abs() < 9.0e18 {
                Ok(v.trunc() as i64)
            } else {
                Err(E::custom(format!("timestamp {v} is out of range")))
            }
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<i64, E> {
            crate::data::time::parse_timestamp(v.as_bytes()).ok_or_else(|| {
                E::custom(format!(
                    "`{v}` is not a timestamp (Unix seconds or ISO 8601)"
                ))
            })
        }
    }
    d.deserialize_any(Ts)
}
