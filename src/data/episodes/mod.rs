//! Episode and pair files (Parquet): the writer of the schema and the one reader every
//! command uses, which accepts three schemas and validates every row.
//!
//! Rows in errors are 0-based row indices of the Parquet file.
//!
//! - `rows`: the writer's view of episodes (`EpisodeRows`), from whole episodes or from
//!   windows over a split's pairs.
//! - `write`: episode and pair files, Snappy-compressed.
//! - `columns`: typed access to the columns of a record batch, with errors that name the row.
//! - `schema`: which of the three episode schemas a batch has.
//! - `read`: episode rows decoded and validated into an `EpisodeSet`.
//! - `flat`: the reader's fast path for valid files in the writer's own layout.
//! - `pages`: its decoder of the writer's own data pages.
//! - `pairs`: pair files, for upstream's episodes and for pretraining.
//! - `sessions`: a pair file's sessions as item sets, for session-KNN.
//! - `beside`: what a file's name and folder say: K and Q, the split, the vocabulary size.

mod beside;
mod columns;
mod flat;
mod pages;
mod pairs;
mod read;
mod rows;
mod schema;
mod sessions;
mod write;

pub use pairs::{read_pair_file, PairSet};
pub use read::read_episodes;
pub use rows::{EpisodeRows, Side, WindowRows};
pub use sessions::read_pair_sessions;
pub use write::{write_episode_rows, write_episodes, write_pairs};
