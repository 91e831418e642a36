//! The state a run carries from one iteration to the next ([`TrainState`]: iteration, random
//! stream, history, best weights, run tag), saved with θ and Adam's moments into a checkpoint and
//! restored from one by `--resume`, which refuses a changed configuration except for the keys in
//! [`RESUME_MAY_CHANGE`] and the sections in [`RESUME_UNREAD_SECTIONS`].

use crate::backend::{AdamState, Backend};
use crate::checkpoint::{self, TensorsF32};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use crate::rng::Rng;
use crate::util::run_tag;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Per-run history, as written to `report.json` and carried in checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub iteration: Vec<u64>,
    pub meta_loss: Vec<f64>,
    pub grad_norm: Vec<f64>,
    /// Iterations at which validation ran (0 = before the first meta-update).
    pub val_iteration: Vec<u64>,
    /// Few-shot Acc@1 on the validation episodes (the model-selection criterion).
    pub val_acc1: Vec<f64>,
    /// Zero-shot Acc@1 on the validation episodes.
    #[serde(default)]
    pub val_zero_shot_acc1: Vec<f64>,
}

/// The keys a `--resume` may change: the run's length (to extend it), how often checkpoints are
/// written, and the backend (the same arithmetic up to float32 rounding, so that a run begun on a
/// GPU can be finished on the CPU; continuing bit for bit needs the same backend). Every other key
/// changes what is computed or reported and is refused, except those of the sections in
/// [`RESUME_UNREAD_SECTIONS`].
pub const RESUME_MAY_CHANGE: [&str; 3] = [
    "maml.num_meta_iterations",
    "maml.checkpoint_every",
    "run.backend",
];

/// Sections that `train` does not read, so a `--resume` may change any of their keys.
pub const RESUME_UNREAD_SECTIONS: [&str; 2] = ["pretrain", "matrix"];

fn may_change_on_resume(key: &str) -> bool {
    RESUME_MAY_CHANGE.contains(&key)
        || key
            .split_once('.')
            .is_some_and(|(section, _)| RESUME_UNREAD_SECTIONS.contains(&section))
}

/// State saved in a checkpoint's metadata besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CheckpointMeta {
    iteration: u64,
    rng: Rng,
    adam_step: u64,
    best_val_acc: Option<f64>,
    best_iteration: Option<u64>,
    history: History,
    config: Config,
    run_tag: String,
}

/// The mutable state of a run between iterations.
pub(super) struct TrainState {
    pub(super) iteration: u64,
    pub(super) rng: Rng,
    pub(super) history: History,
    pub(super) best_val_acc: Option<f64>,
    pub(super) best_iteration: Option<u64>,
    pub(super) best_params: Option<Vec<f32>>,
    pub(super) run_tag: String,
}

impl TrainState {
    /// The state before the first iteration of a new run.
    pub(super) fn fresh(cfg: &Config) -> Self {
        TrainState {
            iteration: 0,
            rng: Rng::new(cfg.run.seed),
            history: History::default(),
            best_val_acc: None,
            best_iteration: None,
            best_params: None,
            run_tag: run_tag(),
        }
    }

    /// Writes the checkpoint `path`: θ, Adam's moments, the best weights so far and, in the
    /// metadata, the rest of the state with the configuration.
    pub(super) fn save(
        &self,
        path: &Path,
        cfg: &Config,
        layout: &ParamLayout,
        backend: &dyn Backend,
    ) -> Result<()> {
        let theta = backend.params()?;
        let adam = backend.adam()?;
        let meta = CheckpointMeta {
            iteration: self.iteration,
            rng: self.rng.clone(),
            adam_step: adam.step,
            best_val_acc: self.best_val_acc,
            best_iteration: self.best_iteration,
            history: self.history.clone(),
            config: cfg.clone(),
            run_tag: self.run_tag.clone(),
        };
        let meta_json = serde_json::to_string(&meta)
            .map_err(|e| Error::Other(format!("serialising checkpoint state: {e}")))?;
        let p = [layout.len];
        let mut tensors: Vec<(&str, &[usize], &[f32])> = vec![
            ("params", &p, &theta),
            ("adam_m", &p, &adam.m),
            ("adam_v", &p, &adam.v),
        ];
        if let Some(best) = &self.best_params {
            tensors.push(("best_params", &p, best));
        }
        let metadata = BTreeMap::from([("recmaml_state".to_string(), meta_json)]);
        checkpoint::save_safetensors(path, &tensors, &metadata)
    }

    /// Reads the checkpoint `path`, checks that `cfg` may continue it, and sets the backend's θ
    /// and Adam state from it.
    pub(super) fn restore(
        path: &Path,
        cfg: &Config,
        layout: &ParamLayout,
        backend: &mut dyn Backend,
    ) -> Result<Self> {
        let ck = checkpoint::load_tensors_f32(path)?;
        let meta: CheckpointMeta = serde_json::from_str(ck.meta("recmaml_state")?)
            .map_err(|e| Error::checkpoint(path, format!("bad training state: {e}")))?;
        check_resumable(path, &meta, cfg)?;
        let p = [layout.len];
        backend.set_params(ck.get("params", &p)?)?;
        backend.set_adam(&AdamState {
            step: meta.adam_step,
            m: ck.get("adam_m", &p)?.to_vec(),
            v: ck.get("adam_v", &p)?.to_vec(),
        })?;
        Ok(TrainState {
            iteration: meta.iteration,
            rng: meta.rng,
            history: meta.history,
            best_val_acc: meta.best_val_acc,
            best_iteration: meta.best_iteration,
            best_params: best_params(&ck, &p)?,
            run_tag: meta.run_tag,
        })
    }
}

/// The best weights saved in a checkpoint, if it has them.
fn best_params(ck: &TensorsF32, shape: &[usize]) -> Result<Option<Vec<f32>>> {
    ck.tensors
        .contains_key("best_params")
        .then(|| ck.get("best_params", shape).map(<[f32]>::to_vec))
        .transpose()
}

/// Refuses to continue the checkpoint `path` under `cfg` when a key other than those a resume may
/// change differs, or when the run would already be past its end.
fn check_resumable(path: &Path, meta: &CheckpointMeta, cfg: &Config) -> Result<()> {
    let refused: Vec<String> = meta
        .config
        .differences(cfg)
        .into_iter()
        .filter(|d| !may_change_on_resume(&d.key))
        .map(|d| format!("{} = {} there, {} now", d.key, d.this, d.other))
        .collect();
    if !refused.is_empty() {
        return Err(Error::checkpoint(
            path,
            format!(
                "was written with a different configuration: {}. --resume continues a run \
                 with its own settings (only {} and the [{}] sections may change); start a \
                 new run with another --out, or with --force in this one",
                refused.join("; "),
                RESUME_MAY_CHANGE.join(", "),
                RESUME_UNREAD_SECTIONS.join("], [")
            ),
        ));
    }
    if meta.iteration > cfg.maml.num_meta_iterations {
        return Err(Error::config(
            "maml.num_meta_iterations",
            format!(
                "{} is below iteration {} of {}, the checkpoint --resume continues from",
                cfg.maml.num_meta_iterations,
                meta.iteration,
                path.display()
            ),
        ));
    }
    Ok(())
}
