//! The one backend trait. The trainer, the episode loop and evaluation are generic over it; `Cpu`
//! is the reference implementation (and the backend for machines without a GPU), `Cuda` the fast one.
//!
//! A backend owns the meta-parameters θ and the Adam state between calls, so that a GPU backend
//! keeps them on the device.

use crate::error::Result;
use crate::model::ParamLayout;
use serde::{Deserialize, Serialize};

/// One few-shot task, borrowed from an episode, with its support weights already computed.
#[derive(Clone, Copy, Debug)]
pub struct Task<'a> {
    /// K prefixes, oldest pair first; each non-empty, item ids in `1..V`.
    pub support_prefixes: &'a [Vec<u32>],
    /// K labels.
    pub support_labels: &'a [u32],
    /// K recency weights (sum to 1), index 0 = oldest pair.
    pub support_weights: &'a [f32],
    /// Q prefixes.
    pub query_prefixes: &'a [Vec<u32>],
    /// Q labels.
    pub query_labels: &'a [u32],
}

impl<'a> Task<'a> {
    /// Borrows an episode as a task with the given support weights.
    pub fn of(ep: &'a crate::data::Episode, weights: &'a [f32]) -> Self {
        Task {
            support_prefixes: &ep.support_prefixes,
            support_labels: &ep.support_labels,
            support_weights: weights,
            query_prefixes: &ep.query_prefixes,
            query_labels: &ep.query_labels,
        }
    }
}

/// A batch of (prefix, next item) pairs for one pretraining step of the global model.
#[derive(Clone, Copy, Debug)]
pub struct PairBatch<'a> {
    /// B non-empty prefixes, item ids in `0..V`; each is cut to its last `max_prefix_len` items.
    pub prefixes: &'a [&'a [u32]],
    /// B labels.
    pub labels: &'a [u32],
    /// Dropout multipliers on the final hidden states, `[B, H]` (0 or `1 / (1 − p)`; all 1
    /// without dropout).
    pub mask: &'a [f32],
    pub max_prefix_len: usize,
}

/// The inner loop: `steps` steps of SGD with rate `lr` on the weighted support loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InnerLoop {
    pub lr: f32,
    pub steps: usize,
}

/// The outer update: add the anchor penalty's gradient `anchor_l2 · (θ − anchor)` to the
/// meta-gradient (when `anchor_l2 > 0`; the anchor is set with [`Backend::set_anchor`]), clip the
/// sum to total norm `clip` (PyTorch's `clip_grad_norm_`), then one step of `torch.optim.Adam`.
///
/// The anchor penalty `(anchor_l2 / 2) · ‖θ − anchor‖²` is how residual warm-start is trained:
/// θ = θ_pre + δ with θ_pre frozen as the anchor, so the penalty is the L2 penalty on δ, and since
/// ∂/∂δ = ∂/∂θ, Adam on θ from θ_pre takes the same steps as Adam on δ from 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OuterConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Max total norm; `f32::INFINITY` (or <= 0) disables clipping.
    pub clip: f32,
    /// Weight of the anchor penalty (0: none). Applies to `meta_step` only; pretraining steps
    /// ignore it.
    #[serde(default)]
    pub anchor_l2: f32,
}

impl OuterConfig {
    /// PyTorch's defaults (betas 0.9/0.999, eps 1e-8) with the given rate and clip.
    pub fn adam(lr: f32, clip: f32) -> Self {
        OuterConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip,
            anchor_l2: 0.0,
        }
    }
}

/// Adam's state: the step count and both moments, in the parameter layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamState {
    pub step: u64,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

impl AdamState {
    /// Fresh state for `p` parameters.
    pub fn zeros(p: usize) -> Self {
        AdamState {
            step: 0,
            m: vec![0.0; p],
            v: vec![0.0; p],
        }
    }

    /// An error unless both moments have `p` entries.
    pub fn check_len(&self, p: usize) -> Result<()> {
        if self.m.len() != p || self.v.len() != p {
            return Err(crate::error::Error::Shape(format!(
                "Adam state has {} / {} moments, the model needs {p}",
                self.m.len(),
                self.v.len()
            )));
        }
        Ok(())
    }
}

/// What one meta-iteration reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetaStepStats {
    /// Mean over tasks of the mean query CE at the adapted weights.
    pub meta_loss: f64,
    /// Total norm of the meta-gradient before clipping.
    pub grad_norm: f64,
}

/// Evaluation of one task: query logits before and after adaptation, row-major `[Q, V]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskEval {
    pub zero_shot_loss: f64,
    pub few_shot_loss: f64,
    pub zero_shot_logits: Vec<f32>,
    pub few_shot_logits: Vec<f32>,
}

/// The largest meta-batch a memory figure covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchShape {
    /// Tasks per meta-batch.
    pub n: usize,
    /// Support pairs per task (at most).
    pub k: usize,
    /// Query pairs per task (at most).
    pub q: usize,
    /// Longest prefix (the prefix cap).
    pub max_prefix_len: usize,
    /// Inner SGD steps.
    pub steps: usize,
}

/// Device bytes by use, for one [`BatchShape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryNeed {
    /// θ, its gradient, Adam's m and v, output.weight transposed, the norm partials.
    pub params: usize,
    /// One task's workspace (fast weights, activations, low-rank SGD terms, logits).
    pub workspace_per_task: usize,
    /// Every task's workspace.
    pub workspaces: usize,
    /// The packed batch: integer tables, loss weights, task descriptors.
    pub tables: usize,
    /// Evaluation's zero- and few-shot query logits and losses (allocated by `evaluate` only).
    pub eval: usize,
}

impl MemoryNeed {
    /// Everything at once.
    pub fn total(&self) -> usize {
        self.params + self.workspaces + self.tables + self.eval
    }
}

/// A compute backend for recency-weighted FOMAML over GRU4Rec.
pub trait Backend {
    /// "cpu" or "cuda".
    fn name(&self) -> &'static str;
    /// The model's parameter layout.
    fn layout(&self) -> &ParamLayout;
    /// Replace θ (length P).
    fn set_params(&mut self, theta: &[f32]) -> Result<()>;
    /// A copy of θ.
    fn params(&self) -> Result<Vec<f32>>;
    /// Sets the anchor (length P) that a `meta_step` with `anchor_l2 > 0` pulls θ toward; without
    /// one such a step is an error.
    fn set_anchor(&mut self, anchor: &[f32]) -> Result<()>;
    /// Replace the Adam state.
    fn set_adam(&mut self, state: &AdamState) -> Result<()>;
    /// A copy of the Adam state.
    fn adam(&self) -> Result<AdamState>;
    /// The first-order meta-gradient at θ: the mean over tasks of each task's query gradient at its
    /// adapted weights, assigned into `grad` (length P). Returns the meta-loss. θ is unchanged.
    fn meta_gradient(&mut self, tasks: &[Task], inner: &InnerLoop, grad: &mut [f32])
        -> Result<f64>;
    /// One meta-iteration: meta-gradient, clip, Adam step on θ.
    fn meta_step(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        outer: &OuterConfig,
    ) -> Result<MetaStepStats>;
    /// Zero-shot (at θ) and few-shot (after the inner loop) query logits of each task. θ is unchanged.
    fn evaluate(&mut self, tasks: &[Task], inner: &InnerLoop) -> Result<Vec<TaskEval>>;
    /// One pretraining step of the global model: the mean CE of `batch` with its dropout
    /// multipliers, its gradient, and one Adam step (`outer`'s rate and betas; pretraining
    /// passes no clip) on θ with the backend's Adam state. Returns the loss; when it is not
    /// finite, θ and Adam's state are unchanged.
    fn pretrain_step(&mut self, batch: &PairBatch, outer: &OuterConfig) -> Result<f64>;
    /// The device time of the last `meta_step` in milliseconds, where the backend measures one
    /// (CUDA events around its launches and copies); `None` otherwise.
    fn last_step_device_ms(&self) -> Option<f64> {
        None
    }
    /// The device memory the backend allocates for meta-batches within `shape`, where it has a
    /// device of its own (CUDA); `None` otherwise.
    fn device_memory(&self, _shape: &BatchShape) -> Result<Option<MemoryNeed>> {
        Ok(None)
    }
    /// Clears the phase counters, where the backend has them (CUDA with
    /// `RECMAML_CUDA_PROFILE=1`, CPU with `RECMAML_CPU_PROFILE=1`).
    fn reset_profile(&mut self) -> Result<()> {
        Ok(())
    }
    /// The phase counters since the last reset; `None` without them.
    fn profile(&self) -> Result<Option<PhaseProfile>> {
        Ok(None)
    }
}

/// A backend's phase counters since the last reset (see [`Backend::profile`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseProfile {
    /// The phases' names, in counter order.
    pub phases: Vec<String>,
    /// What a counter counts (`"clock cycles"`, `"ns"`).
    pub unit: &'static str,
    /// Counter rows, each in phase order: one per task of the meta-batch when `per_task` (the
    /// CUDA task kernel's), else rows to be summed (the CPU's, one row over every thread).
    pub rows: Vec<Vec<u64>>,
    /// Whether `rows` has one row per task.
    pub per_task: bool,
}
