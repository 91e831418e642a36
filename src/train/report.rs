//! What a run returns ([`TrainResults`], also written as `results.json`) and the fuller
//! `report.json` (configuration, history, backend), each written as pretty JSON atomically.

use super::run_data::RunData;
use super::state::{History, TrainState};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::evaluate::{EpisodeRecord, EvalSummary};
use crate::model::ModelDims;
use crate::util::atomic_write;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// What `train` returns (also written as `results.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainResults {
    pub run_tag: String,
    pub config: Config,
    pub dims: ModelDims,
    pub n_train_episodes: usize,
    pub n_val_episodes: usize,
    pub n_test_episodes: usize,
    pub iterations: u64,
    pub best_val_acc1: Option<f64>,
    pub best_iteration: Option<u64>,
    /// `best` or `final`: which weights the test metrics are of.
    pub test_weights: Option<String>,
    pub test: Option<EvalSummary>,
    pub wall_time_s: f64,
    /// The run's history (in `report.json`, not in `results.json`).
    #[serde(skip)]
    pub history: History,
    /// Per-episode test records of the weights in `test_weights` (not written to `results.json`).
    #[serde(skip)]
    pub test_records: Vec<EpisodeRecord>,
}

/// The results of a run in `state`, with the test metrics of the weights `test_weights` when
/// there are test episodes, and no per-episode records.
pub(super) fn results(
    cfg: &Config,
    run: &RunData,
    state: &TrainState,
    test_weights: Option<String>,
    test: Option<EvalSummary>,
    started: Instant,
) -> TrainResults {
    TrainResults {
        run_tag: state.run_tag.clone(),
        config: cfg.clone(),
        dims: run.dims,
        n_train_episodes: run.train.len(),
        n_val_episodes: run.val.as_ref().map_or(0, |v| v.len()),
        n_test_episodes: run.test.as_ref().map_or(0, |v| v.len()),
        iterations: state.iteration,
        best_val_acc1: state.best_val_acc,
        best_iteration: state.best_iteration,
        test_weights,
        test,
        wall_time_s: started.elapsed().as_secs_f64(),
        history: state.history.clone(),
        test_records: Vec::new(),
    }
}

/// The content of `report.json`.
pub(super) fn report(
    cfg: &Config,
    run: &RunData,
    state: &TrainState,
    wall_time_s: f64,
    backend: &str,
) -> serde_json::Value {
    serde_json::json!({
        "config": cfg,
        "run_tag": state.run_tag,
        "dims": run.dims,
        "history": state.history,
        "best_val_acc1": state.best_val_acc,
        "best_iteration": state.best_iteration,
        "wall_time_s": wall_time_s,
        "backend": backend,
    })
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Other(format!("serialising {}: {e}", path.display())))?;
    atomic_write(path, text.as_bytes())
}
