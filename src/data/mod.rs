//! Episodes: the data pipeline from raw interaction logs (`prepare`), the synthetic default log
//! (`synth`), and the episode reader every other command uses.

pub mod episodes;
pub mod events;
mod grouping;
pub mod intern;
pub mod json;
pub mod pipeline;
pub mod prepare;
pub mod revisit;
pub mod synth;
pub mod time;
pub mod workload;
pub mod xuetangx;

pub use episodes::{
    read_episodes, read_pair_file, read_pair_sessions, write_episodes, write_pairs, PairSet,
};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One user's few-shot task: K support pairs and Q query pairs (prefix -> next item), each
/// ordered oldest to newest, every support pair strictly older than every query pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    pub episode_id: i64,
    pub user_id: String,
    pub support_prefixes: Vec<Vec<u32>>,
    pub support_labels: Vec<u32>,
    pub query_prefixes: Vec<Vec<u32>>,
    pub query_labels: Vec<u32>,
    /// Unix seconds of each support label; `None` when the file has no timestamps (seed schema).
    pub support_label_ts: Option<Vec<i64>>,
    /// Unix seconds of each query label.
    pub query_label_ts: Option<Vec<i64>>,
}

/// A validated episode file.
#[derive(Clone, Debug)]
pub struct EpisodeSet {
    /// Where it was read from.
    pub path: PathBuf,
    pub episodes: Vec<Episode>,
    /// Support pairs per episode (the same in every row).
    pub k: usize,
    /// Query pairs per episode (the same in every row).
    pub q: usize,
    /// V: the number of item ids including padding id 0 (every id is in `0..n_items`).
    pub n_items: usize,
}
