//! One task's computation, generic over the float type: the weighted support loss and its
//! gradient, the inner loop, the query loss and its gradient at the adapted weights, and query
//! logits. [`TaskWorkspace`] holds every buffer, so a thread reuses it from task to task without
//! allocating; the free functions at the end are the dense-buffer reference API (used by the
//! gradient checks and the PyTorch fixture tests).
//!
//! A task's fast weights are kept compactly: the GRU block is copied, the embedding only for the
//! items that occur in the task's prefixes (no other row can receive gradient), the output bias is
//! copied, and `output.weight` stays the shared θ plus the low-rank SGD updates (see
//! [`OutputWeights`]).

use super::embedding::{embedding_backward, embedding_forward};
use super::float::Float;
use super::forest::SeqForest;
use super::gru::{
    gru_backward_set, gru_block_len, gru_forward, gru_split, gru_split_mut, GruCache,
};
use super::output_ce::{output_ce_backward, output_ce_forward, OutputWeights};
use super::profile::{self, Phase};
use super::scratch::{ensure, resize};
use super::sgd::sgd;
use crate::backend::Task;
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use std::ops::Range;

/// The meta-parameters a task starts from, shared by all tasks of a meta-batch: θ in the flat
/// layout plus `output.weight` transposed (computed once, used by every task's forward).
#[derive(Clone, Copy, Debug)]
pub struct Model<'a, F> {
    /// The parameter layout.
    pub layout: &'a ParamLayout,
    /// θ, flat.
    pub theta: &'a [F],
    /// `output.weight^T [H, V]`, see [`Model::transpose_out`].
    pub out_wt: &'a [F],
}

impl<'a, F: Float> Model<'a, F> {
    /// `output.weight^T` of `theta`, written into `buf` (resized).
    pub fn transpose_out(layout: &ParamLayout, theta: &[F], buf: &mut Vec<F>) {
        let (v, h) = (layout.dims.n_items, layout.dims.hidden_dim);
        buf.clear();
        buf.resize(v * h, F::ZERO);
        super::simd::transpose(buf, &theta[layout.out_w()], v, h);
    }

    fn out_weights<'b>(&self, b: &'b [F], d: &'b [F], g: &'b [F]) -> OutputWeights<'b, F>
    where
        'a: 'b,
    {
        OutputWeights {
            w: &self.theta[self.layout.out_w()],
            wt: self.out_wt,
            b,
            d,
            g,
        }
    }
}

/// Which pairs of the task a forward/backward runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The K support pairs (weighted by the recency weights).
    Support,
    /// The Q query pairs (mean CE).
    Query,
}

/// Checks a task against the model before any computation: K ≥ 1 and Q ≥ 1, matching label and
/// weight counts, non-empty prefixes, every id and label in `0..n_items`, finite weights.
pub fn check_task(task: &Task, index: usize, weights_len: usize, n_items: usize) -> Result<()> {
    let err = |msg: String| Err(Error::Shape(format!("task {index}: {msg}")));
    let k = task.support_prefixes.len();
    let q = task.query_prefixes.len();
    if k == 0 || q == 0 {
        return err(format!(
            "needs at least one support and one query pair (K {k}, Q {q})"
        ));
    }
    if task.support_labels.len() != k || weights_len != k {
        return err(format!(
            "{k} support prefixes but {} labels and {weights_len} weights",
            task.support_labels.len()
        ));
    }
    if task.query_labels.len() != q {
        return err(format!(
            "{q} query prefixes but {} labels",
            task.query_labels.len()
        ));
    }
    for (name, prefixes, labels) in [
        ("support", task.support_prefixes, task.support_labels),
        ("query", task.query_prefixes, task.query_labels),
    ] {
        for (i, (p, &l)) in prefixes.iter().zip(labels).enumerate() {
            if p.is_empty() {
                return err(format!("{name} prefix {i} is empty"));
            }
            if let Some(&bad) = p.iter().chain([&l]).find(|&&id| id as usize >= n_items) {
                return err(format!(
                    "{name} pair {i} has item id {bad}, outside 0..{n_items} (model.n_items)"
                ));
            }
        }
    }
    if task.support_weights.iter().any(|w| !w.is_finite()) {
        return err("a support weight is not finite".into());
    }
    Ok(())
}

/// The task's prefixes with ids mapped to rows of the task-local embedding table.
#[derive(Clone, Debug, Default)]
struct Prefixes {
    flat: Vec<u32>,
    offsets: Vec<usize>,
    forest: SeqForest,
}

impl Prefixes {
    fn load(&mut self, prefixes: &[Vec<u32>], ids: &[u32], share: bool) {
        self.flat.clear();
        self.offsets.clear();
        self.offsets.push(0);
        for p in prefixes {
            self.flat
                .extend(p.iter().map(|id| ids.binary_search(id).unwrap_or(0) as u32));
            self.offsets.push(self.flat.len());
        }
        self.forest.build(&self.flat, &self.offsets, share);
    }
}

/// Every buffer one task needs: its compact fast weights, activations and gradients.
#[derive(Clone, Debug, Default)]
pub struct TaskWorkspace<F> {
    v: usize,
    e: usize,
    h: usize,
    /// Global ids of the rows of the task-local embedding table (sorted, distinct).
    ids: Vec<u32>,
    /// Local row of the padding id 0, if it occurs.
    padding: Option<u32>,
    support: Prefixes,
    query: Prefixes,
    // Fast weights.
    gru: Vec<F>,
    table: Vec<F>,
    b_out: Vec<F>,
    lr_d: Vec<F>,
    lr_g: Vec<F>,
    // Activations of the last forward.
    x: Vec<F>,
    cache: GruCache<F>,
    hlast: Vec<F>,
    logits: Vec<F>,
    lse: Vec<F>,
    losses: Vec<F>,
    coef: Vec<F>,
    query_weights: Vec<F>,
    // Gradients of the last backward.
    dlogits: Vec<F>,
    dhlast: Vec<F>,
    dx: Vec<F>,
    dgru: Vec<F>,
    dtable: Vec<F>,
    db_out: Vec<F>,
    last: Option<Split>,
}

/// The GRU's contiguous range `w_ih | w_hh | b_ih | b_hh` in the flat layout.
fn gru_range(layout: &ParamLayout) -> Range<usize> {
    layout.w_ih().start..layout.b_hh().end
}

impl<F: Float> TaskWorkspace<F> {
    /// An empty workspace; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a task with fast weights = `theta` (dense, flat layout). `share` computes the GRU
    /// state of a prefix shared by several sequences once. The task must pass [`check_task`].
    pub fn load(&mut self, model: &Model<F>, task: &Task, share: bool) {
        let _p = profile::phase(Phase::Load);
        let (layout, theta) = (model.layout, model.theta);
        let d = layout.dims;
        (self.v, self.e, self.h) = (d.n_items, d.embed_dim, d.hidden_dim);
        self.ids.clear();
        for p in task.support_prefixes.iter().chain(task.query_prefixes) {
            self.ids.extend_from_slice(p);
        }
        self.ids.sort_unstable();
        self.ids.dedup();
        self.padding = self.ids.first().filter(|&&id| id == 0).map(|_| 0);
        self.support.load(task.support_prefixes, &self.ids, share);
        self.query.load(task.query_prefixes, &self.ids, share);

        self.gru.clear();
        self.gru.extend_from_slice(&theta[gru_range(layout)]);
        let (e, emb) = (self.e, &theta[layout.embedding()]);
        self.table.clear();
        for &id in &self.ids {
            let id = id as usize;
            self.table.extend_from_slice(&emb[id * e..(id + 1) * e]);
        }
        self.b_out.clear();
        self.b_out.extend_from_slice(&theta[layout.out_b()]);
        self.lr_d.clear();
        self.lr_g.clear();
        let q = task.query_prefixes.len();
        self.query_weights.clear();
        self.query_weights.resize(q, F::ONE / F::from_f64(q as f64));
        self.last = None;
    }

    /// Forward of `split` at the current fast weights: fills the activations and returns the
    /// loss (`Σ w_i CE_i` on the support pairs, mean CE on the query pairs). `model` is the one
    /// the task was loaded from (its `output.weight` is shared).
    pub fn forward(&mut self, model: &Model<F>, task: &Task, weights: &[F], split: Split) -> F {
        let (v, e, h) = (self.v, self.e, self.h);
        let (pre, labels, weights) = match split {
            Split::Support => (&self.support, task.support_labels, weights),
            Split::Query => (&self.query, task.query_labels, &self.query_weights[..]),
        };
        let forest = &pre.forest;
        let (u, b) = (forest.uniq.len(), forest.n_seqs());
        ensure(&mut self.x, u * e);
        {
            let _p = profile::phase(Phase::InputProjection);
            embedding_forward(&mut self.x, &self.table, &forest.uniq, e);
        }
        ensure(&mut self.hlast, b * h);
        let w = gru_split(&self.gru, e, h);
        gru_forward(&mut self.hlast, &mut self.cache, w, &self.x, forest, e, h);
        ensure(&mut self.logits, b * v);
        ensure(&mut self.lse, b);
        ensure(&mut self.losses, b);
        let ow = model.out_weights(&self.b_out, &self.lr_d, &self.lr_g);
        self.last = Some(split);
        let _p = profile::phase(Phase::OutputForward);
        output_ce_forward(
            &mut self.logits,
            &mut self.lse,
            &mut self.losses,
            &mut self.coef,
            &self.hlast,
            ow,
            labels,
            weights,
            v,
            h,
        )
    }

    /// Backward of the last [`forward`](Self::forward) (same arguments): sets the gradient of its
    /// loss w.r.t. the fast weights (GRU block, local embedding rows, output bias; for
    /// `output.weight` the factors `dlogits` and `hlast`, see [`add_dense_grad`](Self::add_dense_grad)).
    pub fn backward(&mut self, model: &Model<F>, task: &Task, weights: &[F]) {
        let (v, e, h) = (self.v, self.e, self.h);
        let split = self.last.expect("backward after forward");
        let (pre, labels, weights) = match split {
            Split::Support => (&self.support, task.support_labels, weights),
            Split::Query => (&self.query, task.query_labels, &self.query_weights[..]),
        };
        let forest = &pre.forest;
        let (u, b) = (forest.uniq.len(), forest.n_seqs());
        // Assigned whole by `gru_backward_set`.
        ensure(&mut self.dgru, gru_block_len(e, h));
        resize(&mut self.dtable, self.table.len());
        resize(&mut self.db_out, v);
        ensure(&mut self.dlogits, b * v);
        ensure(&mut self.dhlast, b * h);
        let ow = model.out_weights(&self.b_out, &self.lr_d, &self.lr_g);
        let p = profile::phase(Phase::OutputBackward);
        output_ce_backward(
            &mut self.dlogits,
            &mut self.dhlast,
            &mut self.db_out,
            None,
            &mut self.coef,
            &self.logits,
            &self.lse,
            &self.hlast,
            ow,
            labels,
            weights,
            v,
            h,
        );
        drop(p);
        ensure(&mut self.dx, u * e);
        let w = gru_split(&self.gru, e, h);
        let dw = gru_split_mut(&mut self.dgru, e, h);
        gru_backward_set(
            &mut self.dx,
            dw,
            &self.dhlast,
            &mut self.cache,
            w,
            &self.x,
            forest,
            e,
            h,
        );
        let _p = profile::phase(Phase::EmbeddingBackward);
        embedding_backward(&mut self.dtable, &self.dx, &forest.uniq, self.padding, e);
    }

    /// One SGD step with the gradient of the last backward; `output.weight`'s update is kept as
    /// B rank-1 terms `(−lr · dlogits_s) ⊗ hlast_s`.
    pub fn sgd_step(&mut self, lr: F) {
        let _p = profile::phase(Phase::Sgd);
        let b = self.dlogits.len() / self.v;
        sgd(&mut self.gru, &self.dgru, lr);
        sgd(&mut self.table, &self.dtable, lr);
        sgd(&mut self.b_out, &self.db_out, lr);
        self.lr_d
            .extend(self.dlogits[..b * self.v].iter().map(|&d| -lr * d));
        self.lr_g.extend_from_slice(&self.hlast[..b * self.h]);
    }

    /// The inner loop: `steps` SGD steps with rate `lr` on the weighted support loss.
    pub fn inner_loop(
        &mut self,
        model: &Model<F>,
        task: &Task,
        weights: &[F],
        lr: F,
        steps: usize,
    ) {
        for _ in 0..steps {
            self.forward(model, task, weights, Split::Support);
            self.backward(model, task, weights);
            self.sgd_step(lr);
        }
    }

    /// Logits `[B, V]` of the last forward.
    pub fn logits(&self) -> &[F] {
        &self.logits
    }

    /// Per-pair CE of the last forward.
    pub fn losses(&self) -> &[F] {
        &self.losses
    }

    /// Adds the last backward's gradient to a dense `[P]` buffer (`+=`).
    pub fn add_dense_grad(&self, layout: &ParamLayout, grad: &mut [F]) {
        let h = self.h;
        for (g, d) in grad[gru_range(layout)].iter_mut().zip(&self.dgru) {
            *g += *d;
        }
        self.scatter_rows(&mut grad[layout.embedding()], &self.dtable);
        for (g, d) in grad[layout.out_b()].iter_mut().zip(&self.db_out) {
            *g += *d;
        }
        let b = self.dlogits.len() / self.v;
        super::simd::ger_acc(
            &mut grad[layout.out_w()],
            &self.dlogits,
            self.v,
            &self.hlast[..b * h],
            h,
        );
    }

    /// Adds task-local embedding rows `rows [U, E]` to the global table `emb [V, E]`.
    fn scatter_rows(&self, emb: &mut [F], rows: &[F]) {
        let e = self.e;
        for (&id, row) in self.ids.iter().zip(rows.chunks_exact(e)) {
            let id = id as usize;
            for (g, d) in emb[id * e..(id + 1) * e].iter_mut().zip(row) {
                *g += *d;
            }
        }
    }

    /// Writes the fast weights densely into `out [P]`, starting from `theta`.
    pub fn dense_params(&self, layout: &ParamLayout, theta: &[F], out: &mut [F]) {
        out.copy_from_slice(theta);
        out[gru_range(layout)].copy_from_slice(&self.gru);
        let e = self.e;
        let emb = &mut out[layout.embedding()];
        for (&id, row) in self.ids.iter().zip(self.table.chunks_exact(e)) {
            let id = id as usize;
            emb[id * e..(id + 1) * e].copy_from_slice(row);
        }
        out[layout.out_b()].copy_from_slice(&self.b_out);
        super::simd::ger_acc(
            &mut out[layout.out_w()],
            &self.lr_d,
            self.v,
            &self.lr_g,
            self.h,
        );
    }

    /// Moves the last backward's gradient out in compact form, for a deterministic reduction
    /// over tasks: its buffers are swapped with `out`'s (no copy), so the workspace holds no
    /// gradient afterwards, only buffers to reuse; the next task's [`load`](Self::load) and
    /// passes size and overwrite them.
    pub fn export_grad(&mut self, out: &mut TaskGrad<F>) {
        let _p = profile::phase(Phase::Export);
        debug_assert_eq!(self.dlogits.len() / self.v, self.hlast.len() / self.h);
        std::mem::swap(&mut out.gru, &mut self.dgru);
        out.ids.clear();
        out.ids.extend_from_slice(&self.ids);
        std::mem::swap(&mut out.emb, &mut self.dtable);
        std::mem::swap(&mut out.b_out, &mut self.db_out);
        std::mem::swap(&mut out.dlogits, &mut self.dlogits);
        std::mem::swap(&mut out.hlast, &mut self.hlast);
        self.last = None;
    }
}

/// One task's gradient in compact form: dense GRU block, embedding rows of the task's items,
/// output bias, and `output.weight`'s gradient as the factors `dlogits^T hlast`.
#[derive(Clone, Debug, Default)]
pub struct TaskGrad<F> {
    /// The loss the gradient belongs to.
    pub loss: F,
    /// Gradient of the GRU block `w_ih | w_hh | b_ih | b_hh`.
    pub gru: Vec<F>,
    /// Global ids of the embedding rows in `emb`.
    pub ids: Vec<u32>,
    /// Embedding gradient rows, `[ids.len(), E]`.
    pub emb: Vec<F>,
    /// Gradient of `output.bias`.
    pub b_out: Vec<F>,
    /// Gradient of the logits, `[B, V]`.
    pub dlogits: Vec<F>,
    /// Hidden states, `[B, H]`: `d output.weight = dlogits^T · hlast`.
    pub hlast: Vec<F>,
}

// ---------------------------------------------------------------------------------------------
// Reference API on dense buffers.

fn dense_model<'a, F: Float>(
    layout: &'a ParamLayout,
    theta: &'a [F],
    wt: &'a mut Vec<F>,
) -> Model<'a, F> {
    Model::transpose_out(layout, theta, wt);
    Model {
        layout,
        theta,
        out_wt: wt,
    }
}

fn check_dense<F>(
    layout: &ParamLayout,
    params: &[F],
    task: &Task,
    weights_len: usize,
) -> Result<()> {
    if params.len() != layout.len {
        return Err(Error::Shape(format!(
            "{} parameters given, the layout has {}",
            params.len(),
            layout.len
        )));
    }
    check_task(task, 0, weights_len, layout.dims.n_items)
}

/// The weighted support loss `Σ_i weights[i] · CE_i` at `theta`; its gradient is added to
/// `grad [P]` (flat layout).
pub fn support_loss_grad<F: Float>(
    layout: &ParamLayout,
    theta: &[F],
    task: &Task,
    weights: &[F],
    grad: &mut [F],
) -> Result<F> {
    check_dense(layout, theta, task, weights.len())?;
    let wt = &mut Vec::new();
    let model = dense_model(layout, theta, wt);
    let mut ws = TaskWorkspace::new();
    ws.load(&model, task, true);
    let loss = ws.forward(&model, task, weights, Split::Support);
    ws.backward(&model, task, weights);
    ws.add_dense_grad(layout, grad);
    Ok(loss)
}

/// The adapted weights after `steps` SGD steps with rate `lr` on the weighted support loss,
/// written into `phi [P]`.
pub fn adapt<F: Float>(
    layout: &ParamLayout,
    theta: &[F],
    task: &Task,
    weights: &[F],
    lr: F,
    steps: usize,
    phi: &mut [F],
) -> Result<()> {
    check_dense(layout, theta, task, weights.len())?;
    let wt = &mut Vec::new();
    let model = dense_model(layout, theta, wt);
    let mut ws = TaskWorkspace::new();
    ws.load(&model, task, true);
    ws.inner_loop(&model, task, weights, lr, steps);
    ws.dense_params(layout, theta, phi);
    Ok(())
}

/// The mean query CE at `params`; its gradient is added to `grad [P]`.
pub fn query_loss_grad<F: Float>(
    layout: &ParamLayout,
    params: &[F],
    task: &Task,
    grad: &mut [F],
) -> Result<F> {
    query_pass(layout, params, task, |ws, model| {
        ws.backward(model, task, &[]);
        ws.add_dense_grad(layout, grad);
    })
}

/// Query logits `[Q, V]` at `params`, written into `logits`; returns the mean query CE.
pub fn query_logits<F: Float>(
    layout: &ParamLayout,
    params: &[F],
    task: &Task,
    logits: &mut [F],
) -> Result<F> {
    query_pass(layout, params, task, |ws, _| {
        logits.copy_from_slice(ws.logits())
    })
}

/// The query forward at dense `params` (mean CE returned), then `after` on its workspace.
fn query_pass<F: Float>(
    layout: &ParamLayout,
    params: &[F],
    task: &Task,
    after: impl FnOnce(&mut TaskWorkspace<F>, &Model<F>),
) -> Result<F> {
    check_dense(layout, params, task, task.support_prefixes.len())?;
    let wt = &mut Vec::new();
    let model = dense_model(layout, params, wt);
    let mut ws = TaskWorkspace::new();
    ws.load(&model, task, true);
    let loss = ws.forward(&model, task, &[], Split::Query);
    after(&mut ws, &model);
    Ok(loss)
}
