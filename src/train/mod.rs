//! Meta-training: meta-batches drawn without replacement, FOMAML steps on a [`Backend`],
//! validation, `best`/`final` weights, resumable checkpoints, and the run's results and report.
//!
//! - `run_data`: the run's inputs, read and validated before anything is written: the episode
//!   sets with their support weights ([`WeightedSet`]), V, the warm start ([`RunData`]).
//! - `setup`: what a configuration asks of a backend: the inner loop, the outer update and the
//!   backend itself.
//! - `meta_loop`: the loop: [`train`], its validation and its test evaluation.
//! - `state`: the state a run carries between iterations, saved into and restored from
//!   checkpoints, and what a `--resume` may change.
//! - `out_dir`: the output folder: its preparation for `--resume`/`--force`, its checkpoints.
//! - `report`: what a run returns ([`TrainResults`]) and writes (`results.json`, `report.json`).
//!
//! [`Backend`]: crate::backend::Backend

mod meta_loop;
mod out_dir;
mod report;
mod run_data;
mod setup;
mod state;

pub use meta_loop::{train, TrainOptions};
pub use out_dir::RUN_OUTPUTS;
pub use report::{write_json, TrainResults};
pub use run_data::{episode_weights, RunData, WeightedSet};
pub use setup::{inner_loop, make_backend, outer_config};
pub use state::{History, RESUME_MAY_CHANGE, RESUME_UNREAD_SECTIONS};
