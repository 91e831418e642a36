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
    /// [`weights_digest`] of the warm-start weights the run started from (absent for a cold
    /// start, and in checkpoints written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warm_start_digest: Option<String>,
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
    /// [`weights_digest`] of the warm-start weights, if any.
    pub(super) warm_start_digest: Option<String>,
}

/// A digest of weights (FNV-1a, 64 bits, over their count and the bits of each value): whether a
/// warm-start file at another path holds the weights a run started from. Stable across builds
/// and machines; not a defence against a crafted file.
pub(super) fn weights_digest(params: &[f32]) -> String {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let count = (params.len() as u64).to_le_bytes();
    let bytes = params.iter().flat_map(|v| v.to_bits().to_le_bytes());
    for b in count.into_iter().chain(bytes) {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    format!("fnv1a64:{h:016x}:{}", params.len())
}

impl TrainState {
    /// The state before the first iteration of a new run (`warm_start_digest`: see
    /// [`weights_digest`]).
    pub(super) fn fresh(cfg: &Config, warm_start_digest: Option<String>) -> Self {
        TrainState {
            iteration: 0,
            rng: Rng::new(cfg.run.seed),
            history: History::default(),
            best_val_acc: None,
            best_iteration: None,
            best_params: None,
            run_tag: run_tag(),
            warm_start_digest,
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
            warm_start_digest: self.warm_start_digest.clone(),
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

    /// Reads the checkpoint `path`, checks that `cfg` may continue it (with warm-start weights of
    /// digest `warm_start_digest`), and sets the backend's θ and Adam state from it.
    pub(super) fn restore(
        path: &Path,
        cfg: &Config,
        layout: &ParamLayout,
        backend: &mut dyn Backend,
        warm_start_digest: Option<String>,
    ) -> Result<Self> {
        let ck = checkpoint::load_tensors_f32(path)?;
        let meta: CheckpointMeta = serde_json::from_str(ck.meta("recmaml_state")?)
            .map_err(|e| Error::checkpoint(path, format!("bad training state: {e}")))?;
        check_resumable(path, &meta, cfg, warm_start_digest.as_deref())?;
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
            warm_start_digest,
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
/// change differs, or when the run would already be past its end. The warm-start file may have
/// moved (`warmstart.pretrained_path` changed) when the checkpoint recorded the digest of its
/// weights and `warm_start_digest`, the digest of the weights at the new path, is the same; other
/// weights than those recorded are refused at any path.
fn check_resumable(
    path: &Path,
    meta: &CheckpointMeta,
    cfg: &Config,
    warm_start_digest: Option<&str>,
) -> Result<()> {
    const PRETRAINED: &str = "warmstart.pretrained_path";
    let recorded = meta.warm_start_digest.as_deref();
    let other_weights =
        recorded.is_some() && warm_start_digest.is_some_and(|d| Some(d) != recorded);
    let moved = recorded.is_some() && !other_weights;
    let mut refused: Vec<String> = meta
        .config
        .differences(cfg)
        .into_iter()
        .filter(|d| !(may_change_on_resume(&d.key) || (moved && d.key == PRETRAINED)))
        .map(|d| {
            let note = match d.key == PRETRAINED && other_weights {
                true => " (other weights than the run started from)",
                false => "",
            };
            format!("{} = {} there, {} now{note}", d.key, d.this, d.other)
        })
        .collect();
    if other_weights && !refused.iter().any(|r| r.starts_with(PRETRAINED)) {
        refused.push(format!(
            "{PRETRAINED} = {:?} holds other weights than the run started from",
            cfg.warmstart.pretrained_path
        ));
    }
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
