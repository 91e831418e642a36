//! The CPU engine, generic over [`Float`]: `Engine<f32>` is the [`Cpu`] backend, `Engine<f64>` the
//! reference that the fixture tests compare against PyTorch's float64 numbers.
//!
//! Each op family is one file named like its CUDA twin in `kernels/`: the layers [`embedding`],
//! [`gru`] and [`output_ce`] (each a forward/backward pair side by side, llm.c style), the inner
//! loop's [`sgd`], one task's inner loop and query gradient, [`task`], the reduction of the tasks'
//! gradients in task order, [`meta_grad`], and the outer update, [`clip`] and [`adam`]. [`Engine`]
//! (this file) runs a meta-batch with tasks in parallel (rayon) and reduces their gradients, so
//! that results are bit-identical across runs and thread counts. Beneath them: [`simd`] (the
//! dense loops on slices), [`forest`] (sequences packed as a prefix forest) and `scratch.rs`
//! (reused buffers); beside them, [`pretrain`] (pretraining's loss and gradient).
//!
//! Arguments of the layers come in the order outputs, inputs, sizes; gradient buffers start with
//! `d`.
//!
//! **Gradient convention**: parameter gradients accumulate (`+=`) into their buffers, so one buffer
//! can collect several losses or tasks; activation gradients are assigned (`=`).

pub mod adam;
pub mod clip;
pub mod embedding;
pub mod float;
pub mod forest;
pub mod gru;
pub mod meta_grad;
pub mod output_ce;
pub mod pretrain;
pub mod profile;
mod scratch;
pub mod sgd;
pub mod simd;
pub mod task;

pub use float::Float;
pub use pretrain::{mean_loss, PairGrad};
pub use task::{
    adapt, check_task, query_logits, query_loss_grad, support_loss_grad, Model, Split, TaskGrad,
    TaskWorkspace,
};

use crate::backend::{
    AdamState, Backend, InnerLoop, MetaStepStats, OuterConfig, PairBatch, PhaseProfile, Task,
    TaskEval,
};
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use adam::{adam_step, Adam};
use clip::clip_grad_norm;
use meta_grad::MetaGrad;
use rayon::prelude::*;
use std::sync::Mutex;

/// The f32 CPU backend.
pub type Cpu = Engine<f32>;

/// Meta-parameters, Adam state and reusable per-thread workspaces, generic over the float type.
#[derive(Debug)]
pub struct Engine<F: Float> {
    layout: ParamLayout,
    theta: Vec<F>,
    step: u64,
    m: Vec<F>,
    v: Vec<F>,
    /// Compute a prefix shared by several sequences of a task once (mathematically the same).
    share_prefixes: bool,
    pool: Mutex<Vec<TaskWorkspace<F>>>,
    task_grads: Vec<TaskGrad<F>>,
    grad: Vec<F>,
    /// θ's `output.weight` transposed, refreshed at each meta-gradient or evaluation.
    out_wt: Vec<F>,
    /// The meta-gradient reduction's buffers.
    meta_grad: MetaGrad<F>,
    /// Pretraining's buffers, made at the first pretraining step.
    pairs: Option<PairGrad<F>>,
    /// What an anchored meta-step pulls θ toward ([`Engine::set_anchor`]).
    anchor: Option<Vec<F>>,
}

/// A workspace borrowed from the pool for one rayon job, returned when dropped.
struct Lease<'a, F: Float> {
    pool: &'a Mutex<Vec<TaskWorkspace<F>>>,
    ws: Option<TaskWorkspace<F>>,
}

impl<'a, F: Float> Lease<'a, F> {
    fn new(pool: &'a Mutex<Vec<TaskWorkspace<F>>>) -> Self {
        let ws = pool.lock().ok().and_then(|mut p| p.pop());
        Lease {
            pool,
            ws: Some(ws.unwrap_or_default()),
        }
    }

    fn get(&mut self) -> &mut TaskWorkspace<F> {
        self.ws.get_or_insert_with(TaskWorkspace::new)
    }
}

impl<F: Float> Drop for Lease<'_, F> {
    fn drop(&mut self) {
        if let (Some(ws), Ok(mut p)) = (self.ws.take(), self.pool.lock()) {
            p.push(ws);
        }
    }
}

fn shape_err(what: &str, got: usize, want: usize) -> Error {
    Error::Shape(format!(
        "{what}: {got} values given, the model needs {want}"
    ))
}

impl<F: Float> Engine<F> {
    /// An engine holding `theta` (length P of `layout`), with Adam's state at zero.
    pub fn new(layout: ParamLayout, theta: Vec<F>) -> Result<Self> {
        if theta.len() != layout.len {
            return Err(shape_err("parameters", theta.len(), layout.len));
        }
        let p = layout.len;
        Ok(Engine {
            layout,
            theta,
            step: 0,
            m: vec![F::ZERO; p],
            v: vec![F::ZERO; p],
            share_prefixes: true,
            pool: Mutex::new(Vec::new()),
            task_grads: Vec::new(),
            grad: vec![F::ZERO; p],
            out_wt: Vec::new(),
            meta_grad: MetaGrad::default(),
            pairs: None,
            anchor: None,
        })
    }

    /// Whether shared prefixes inside a task are computed once (default true). Off, every
    /// sequence is stepped on its own, exactly as `pack_padded_sequence` does; results agree to
    /// rounding.
    pub fn set_share_prefixes(&mut self, share: bool) {
        self.share_prefixes = share;
    }

    /// The model's layout.
    pub fn param_layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// θ.
    pub fn theta(&self) -> &[F] {
        &self.theta
    }

    /// Adam steps taken so far (meta-steps and pretraining steps).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Replaces θ.
    pub fn set_theta(&mut self, theta: &[F]) -> Result<()> {
        if theta.len() != self.layout.len {
            return Err(shape_err("parameters", theta.len(), self.layout.len));
        }
        self.theta.copy_from_slice(theta);
        Ok(())
    }

    /// Sets the anchor of [`Engine::meta_step_anchored`] (length P).
    pub fn set_anchor(&mut self, anchor: &[F]) -> Result<()> {
        if anchor.len() != self.layout.len {
            return Err(shape_err("anchor", anchor.len(), self.layout.len));
        }
        self.anchor = Some(anchor.to_vec());
        Ok(())
    }

    fn check_tasks(&self, tasks: &[Task], weights: &[&[F]]) -> Result<()> {
        if tasks.is_empty() {
            return Err(Error::Shape("a meta-batch needs at least one task".into()));
        }
        if weights.len() != tasks.len() {
            return Err(Error::Shape(format!(
                "{} tasks but {} weight vectors",
                tasks.len(),
                weights.len()
            )));
        }
        for (i, (t, w)) in tasks.iter().zip(weights).enumerate() {
            check_task(t, i, w.len(), self.layout.dims.n_items)?;
            if w.iter().any(|x| !x.is_finite()) {
                return Err(Error::Shape(format!(
                    "task {i}: a support weight is not finite"
                )));
            }
        }
        Ok(())
    }

    /// The first-order meta-gradient at θ, assigned into `grad [P]`: the mean over tasks of each
    /// task's query-loss gradient at its adapted weights (`steps` SGD steps of rate `lr` on the
    /// support loss weighted by `weights[i]`). Returns the meta-loss, the mean over tasks of the
    /// mean query CE. θ is unchanged.
    pub fn meta_gradient_weighted(
        &mut self,
        tasks: &[Task],
        weights: &[&[F]],
        lr: F,
        steps: usize,
        grad: &mut [F],
    ) -> Result<f64> {
        self.check_tasks(tasks, weights)?;
        if grad.len() != self.layout.len {
            return Err(shape_err("gradient buffer", grad.len(), self.layout.len));
        }
        self.task_grads.resize_with(tasks.len(), TaskGrad::default);
        Model::transpose_out(&self.layout, &self.theta, &mut self.out_wt);
        let model = Model {
            layout: &self.layout,
            theta: &self.theta,
            out_wt: &self.out_wt,
        };
        let (model, share, pool) = (&model, self.share_prefixes, &self.pool);
        tasks
            .par_iter()
            .zip(weights.par_iter())
            .zip(self.task_grads.par_iter_mut())
            .for_each_init(
                || Lease::new(pool),
                |lease, ((task, w), out)| {
                    let ws = lease.get();
                    ws.load(model, task, share);
                    ws.inner_loop(model, task, w, lr, steps);
                    out.loss = ws.forward(model, task, w, Split::Query);
                    ws.backward(model, task, w);
                    ws.export_grad(out);
                },
            );
        {
            let _p = profile::phase(profile::Phase::Reduction);
            self.meta_grad.reduce(grad, &self.task_grads, &self.layout);
        }
        let n = tasks.len() as f64;
        Ok(self.task_grads[..tasks.len()]
            .iter()
            .map(|t| t.loss.to_f64())
            .sum::<f64>()
            / n)
    }

    /// One meta-iteration: meta-gradient, clip to total norm `clip` (`<= 0` or infinite: no
    /// clip), Adam step on θ. When the meta-loss or the gradient norm is not finite θ and Adam's
    /// state are left unchanged, and the returned stats show it.
    pub fn meta_step_weighted(
        &mut self,
        tasks: &[Task],
        weights: &[&[F]],
        lr: F,
        steps: usize,
        adam: &Adam<F>,
        clip: f64,
    ) -> Result<MetaStepStats> {
        self.meta_step_anchored(tasks, weights, lr, steps, adam, clip, F::ZERO)
    }

    /// [`Engine::meta_step_weighted`] with the anchor penalty `(anchor_l2 / 2)·‖θ − anchor‖²`
    /// added to the meta-loss: its gradient `anchor_l2 · (θ − anchor)` is added to the
    /// meta-gradient before the clip (the norm reported is that of the sum). `anchor_l2` 0 is
    /// `meta_step_weighted` exactly; above 0 it needs [`Engine::set_anchor`].
    #[allow(clippy::too_many_arguments)]
    pub fn meta_step_anchored(
        &mut self,
        tasks: &[Task],
        weights: &[&[F]],
        lr: F,
        steps: usize,
        adam: &Adam<F>,
        clip: f64,
        anchor_l2: F,
    ) -> Result<MetaStepStats> {
        if anchor_l2 != F::ZERO && self.anchor.is_none() {
            return Err(Error::Other(
                "an anchored meta-step needs an anchor (set_anchor)".into(),
            ));
        }
        let mut grad = std::mem::take(&mut self.grad);
        let result = self.meta_gradient_weighted(tasks, weights, lr, steps, &mut grad);
        if let (Ok(_), Some(anchor)) = (&result, &self.anchor) {
            if anchor_l2 != F::ZERO {
                for ((g, &t), &a) in grad.iter_mut().zip(&self.theta).zip(anchor) {
                    *g += anchor_l2 * (t - a);
                }
            }
        }
        let stats = result.map(|meta_loss| {
            let _p = profile::phase(profile::Phase::Adam);
            let grad_norm = clip_grad_norm(&mut grad, clip);
            if meta_loss.is_finite() && grad_norm.is_finite() {
                self.step += 1;
                adam_step(
                    &mut self.theta,
                    &grad,
                    &mut self.m,
                    &mut self.v,
                    self.step,
                    adam,
                );
            }
            MetaStepStats {
                meta_loss,
                grad_norm,
            }
        });
        self.grad = grad;
        stats
    }

    /// Zero-shot (at θ) and few-shot (after the inner loop) query logits and mean query CE of
    /// each task. θ is unchanged.
    pub fn evaluate_weighted(
        &mut self,
        tasks: &[Task],
        weights: &[&[F]],
        lr: F,
        steps: usize,
    ) -> Result<Vec<TaskEval>> {
        self.check_tasks(tasks, weights)?;
        Model::transpose_out(&self.layout, &self.theta, &mut self.out_wt);
        let model = Model {
            layout: &self.layout,
            theta: &self.theta,
            out_wt: &self.out_wt,
        };
        let (model, share, pool) = (&model, self.share_prefixes, &self.pool);
        let to_f32 = |x: &[F]| x.iter().map(|v| v.to_f64() as f32).collect::<Vec<f32>>();
        Ok(tasks
            .par_iter()
            .zip(weights.par_iter())
            .map_init(
                || Lease::new(pool),
                |lease, (task, w)| {
                    let ws = lease.get();
                    ws.load(model, task, share);
                    let zero = ws.forward(model, task, w, Split::Query);
                    let zero_logits = to_f32(ws.logits());
                    ws.inner_loop(model, task, w, lr, steps);
                    let few = ws.forward(model, task, w, Split::Query);
                    TaskEval {
                        zero_shot_loss: zero.to_f64(),
                        few_shot_loss: few.to_f64(),
                        zero_shot_logits: zero_logits,
                        few_shot_logits: to_f32(ws.logits()),
                    }
                },
            )
            .collect())
    }
}

impl<F: Float> Engine<F> {
    /// Pretraining: the mean CE at θ of the pairs (`prefixes`, each cut to its last
    /// `max_prefix_len` items; `labels`) with the dropout multipliers `mask [B, H]` on the final
    /// hidden states, and its gradient, assigned into `grad`. θ is unchanged.
    pub fn pretrain_loss_grad<P: AsRef<[u32]> + Sync>(
        &mut self,
        prefixes: &[P],
        labels: &[u32],
        mask: &[F],
        max_prefix_len: usize,
        grad: &mut [F],
    ) -> Result<f64> {
        if grad.len() != self.layout.len {
            return Err(shape_err("gradient buffer", grad.len(), self.layout.len));
        }
        let pg = match &mut self.pairs {
            Some(pg) if pg.max_prefix_len() == max_prefix_len => pg,
            slot => slot.insert(PairGrad::new(&self.layout, max_prefix_len)),
        };
        let loss = pg.loss_grad(&self.theta, prefixes, labels, mask)?;
        grad.copy_from_slice(pg.grad());
        Ok(loss)
    }

    /// [`Engine::pretrain_loss_grad`], then, when the loss is finite, one Adam step on θ with the
    /// engine's Adam state (the same state meta-training steps). Returns the loss.
    pub fn pretrain_step_with<P: AsRef<[u32]> + Sync>(
        &mut self,
        prefixes: &[P],
        labels: &[u32],
        mask: &[F],
        max_prefix_len: usize,
        adam: &Adam<F>,
    ) -> Result<f64> {
        let mut grad = std::mem::take(&mut self.grad);
        let loss = self.pretrain_loss_grad(prefixes, labels, mask, max_prefix_len, &mut grad);
        if let Ok(l) = loss {
            if l.is_finite() {
                self.step += 1;
                adam_step(
                    &mut self.theta,
                    &grad,
                    &mut self.m,
                    &mut self.v,
                    self.step,
                    adam,
                );
            }
        }
        self.grad = grad;
        loss
    }
}

impl Backend for Engine<f32> {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn set_params(&mut self, theta: &[f32]) -> Result<()> {
        self.set_theta(theta)
    }

    fn params(&self) -> Result<Vec<f32>> {
        Ok(self.theta.clone())
    }

    fn set_anchor(&mut self, anchor: &[f32]) -> Result<()> {
        Engine::set_anchor(self, anchor)
    }

    fn set_adam(&mut self, state: &AdamState) -> Result<()> {
        state.check_len(self.layout.len)?;
        self.step = state.step;
        self.m.copy_from_slice(&state.m);
        self.v.copy_from_slice(&state.v);
        Ok(())
    }

    fn adam(&self) -> Result<AdamState> {
        Ok(AdamState {
            step: self.step,
            m: self.m.clone(),
            v: self.v.clone(),
        })
    }

    fn meta_gradient(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        grad: &mut [f32],
    ) -> Result<f64> {
        let weights: Vec<&[f32]> = tasks.iter().map(|t| t.support_weights).collect();
        Engine::meta_gradient_weighted(self, tasks, &weights, inner.lr, inner.steps, grad)
    }

    fn meta_step(
        &mut self,
        tasks: &[Task],
        inner: &InnerLoop,
        outer: &OuterConfig,
    ) -> Result<MetaStepStats> {
        let weights: Vec<&[f32]> = tasks.iter().map(|t| t.support_weights).collect();
        let adam = Adam::from_outer(outer);
        Engine::meta_step_anchored(
            self,
            tasks,
            &weights,
            inner.lr,
            inner.steps,
            &adam,
            outer.clip as f64,
            outer.anchor_l2,
        )
    }

    fn evaluate(&mut self, tasks: &[Task], inner: &InnerLoop) -> Result<Vec<TaskEval>> {
        let weights: Vec<&[f32]> = tasks.iter().map(|t| t.support_weights).collect();
        Engine::evaluate_weighted(self, tasks, &weights, inner.lr, inner.steps)
    }

    fn pretrain_step(&mut self, batch: &PairBatch, outer: &OuterConfig) -> Result<f64> {
        let adam = Adam::from_outer(outer);
        self.pretrain_step_with(
            batch.prefixes,
            batch.labels,
            batch.mask,
            batch.max_prefix_len,
            &adam,
        )
    }

    fn reset_profile(&mut self) -> Result<()> {
        profile::reset();
        Ok(())
    }

    fn profile(&self) -> Result<Option<PhaseProfile>> {
        Ok(profile::counters().map(|row| PhaseProfile {
            phases: profile::PHASES.map(String::from).to_vec(),
            unit: "ns",
            rows: vec![row],
            per_task: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two meta-iterations on a pool of `threads` threads; θ and the stats, bit for bit.
    fn run(threads: usize, share: bool) -> (Vec<u32>, Vec<u64>) {
        let episodes = crate::data::workload::generate_episodes(64, 5, 10, 1519, 50, 3);
        let layout = ParamLayout::new(crate::model::ModelDims {
            n_items: 1519,
            embed_dim: 64,
            hidden_dim: 64,
        });
        let theta = crate::model::init_params(&layout, 3);
        let weights = [0.1f32, 0.15, 0.2, 0.25, 0.3];
        let inner = InnerLoop { lr: 0.01, steps: 5 };
        let outer = OuterConfig::adam(1e-3, 10.0);
        let batch = |b: usize| -> Vec<Task> {
            episodes[b * 32..(b + 1) * 32]
                .iter()
                .map(|e| crate::backend::Task::of(e, &weights))
                .collect()
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut cpu = Cpu::new(layout.clone(), theta.clone()).unwrap();
            cpu.set_share_prefixes(share);
            let mut stats = Vec::new();
            for b in 0..2 {
                let s = cpu.meta_step(&batch(b), &inner, &outer).unwrap();
                stats.extend([s.meta_loss.to_bits(), s.grad_norm.to_bits()]);
            }
            let bits = cpu.params().unwrap().iter().map(|x| x.to_bits()).collect();
            (bits, stats)
        })
    }

    #[test]
    fn bit_identical_across_thread_counts() {
        let one = run(1, true);
        assert_eq!(run(2, true), one);
        assert_eq!(run(3, true), one);
        // Without prefix sharing the numbers agree to rounding, not bit for bit.
        let (p, _) = run(2, false);
        let diff = p
            .iter()
            .zip(&one.0)
            .map(|(a, b)| (f32::from_bits(*a) - f32::from_bits(*b)).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{diff}");
    }
}
