//! Evaluating a weights file: zero- and few-shot metrics of a model on an episode file
//! (`recmaml eval`), written as JSON, with one record per episode on request.

use super::{evaluate_set, EpisodeRecord, EvalSummary};
use crate::checkpoint;
use crate::config::{Config, WeightingScheme};
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use crate::train::{self, inner_loop, WeightedSet};
use crate::util::{atomic_write, Progress};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What to evaluate and where the results go.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Model weights: safetensors (recmaml or PyTorch names) or a PyTorch `.pth` state dict.
    pub model: PathBuf,
    /// Episode file (parquet).
    pub episodes: PathBuf,
    /// Where to write the metrics (JSON).
    pub out: PathBuf,
    /// Also write one JSON record per episode here (JSONL).
    pub per_episode: Option<PathBuf>,
}

/// The metrics file.
#[derive(Serialize)]
struct EvalOutput<'a> {
    model: &'a Path,
    episodes: &'a Path,
    inner_lr: f64,
    inner_steps: usize,
    weighting_scheme: WeightingScheme,
    #[serde(flatten)]
    summary: &'a EvalSummary,
}

/// Evaluates `opts.model` on `opts.episodes` with the inner loop, recency weighting and backend
/// of `cfg` (its other sections are not read), writes the metrics to `opts.out` (and the
/// per-episode records when asked) and returns them. Shows a progress display on stderr.
pub fn evaluate(cfg: &Config, opts: &EvalOptions) -> Result<EvalSummary> {
    let sd = checkpoint::load_state_dict(&opts.model)?;
    let dims = checkpoint::dims_from_state_dict(&sd, &opts.model)?;
    let layout = ParamLayout::new(dims);
    let theta = checkpoint::params_from_state_dict(&sd, &layout, &opts.model)?;
    let ws = WeightedSet::load(&opts.episodes, Some(dims.n_items), cfg)?;
    if ws.is_empty() {
        return Err(Error::data(
            &opts.episodes,
            None,
            None,
            "has no episodes (0 rows): there is nothing to evaluate",
        ));
    }
    let mut backend = train::make_backend(cfg, layout, theta)?;
    let mut progress = Progress::new("eval", ws.len() as u64, false, false);
    let (summary, records) =
        evaluate_set(backend.as_mut(), &ws, &inner_loop(cfg), Some(&mut progress))?;
    progress.finish();
    if let Some(path) = &opts.per_episode {
        write_records(path, &records)?;
    }
    let out = EvalOutput {
        model: &opts.model,
        episodes: &opts.episodes,
        inner_lr: cfg.maml.inner_lr,
        inner_steps: cfg.maml.inner_steps,
        weighting_scheme: cfg.recency.weighting_scheme,
        summary: &summary,
    };
    train::write_json(&opts.out, &out)?;
    Ok(summary)
}

/// Writes one JSON line per episode.
fn write_records(path: &Path, records: &[EpisodeRecord]) -> Result<()> {
    let mut text = String::new();
    for r in records {
        let line = serde_json::to_string(r)
            .map_err(|e| Error::Other(format!("serialising episode record: {e}")))?;
        text.push_str(&line);
        text.push('\n');
    }
    atomic_write(path, text.as_bytes())
}
