//! `recmaml pretrain`: the global GRU4Rec model (the seed's "GRU4Rec baseline" and the warm start
//! of warm-start MAML), trained on every train pair with next-item cross-entropy and Adam, and the
//! popularity baseline.
//!
//! A step takes a batch of pairs (shuffled each epoch with the run's seed), cuts each prefix to
//! its last `max_prefix_len` items, runs the GRU with the hidden state read at each prefix's own
//! last item, applies dropout to that final hidden state (training only), and takes the mean CE
//! over the batch. The batch is cut into a fixed number of chunks that run in parallel and whose
//! gradients are summed in chunk order, so a run gives the same bytes on any number of threads.

use crate::backend::InnerLoop;
use crate::checkpoint;
use crate::config::Config;
use crate::cpu::forest::SeqForest;
use crate::cpu::ops::{
    embedding_backward, embedding_forward, gru_backward, gru_block_len, gru_forward, gru_split,
    gru_split_mut, output_ce_backward, output_ce_forward, GruCache, OutputWeights,
};
use crate::cpu::{kernels::transpose, Cpu, Float};
use crate::data::{self, PairSet};
use crate::error::{Error, Result};
use crate::eval::{self, MetricSet};
use crate::evaluate;
use crate::maml::{adam_step, Adam};
use crate::model::{ModelDims, ParamLayout};
use crate::rng::Rng;
use crate::train::{self, WeightedSet};
use crate::util::Progress;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Chunks per batch (fixed, so that the reduction order does not depend on the thread count).
const CHUNKS: usize = 8;

/// Buffers of one chunk's forward and backward, reused from batch to batch.
#[derive(Default)]
struct ChunkWs<F> {
    flat: Vec<u32>,
    offsets: Vec<usize>,
    forest: SeqForest,
    x: Vec<F>,
    cache: GruCache<F>,
    hlast: Vec<F>,
    hdrop: Vec<F>,
    logits: Vec<F>,
    lse: Vec<F>,
    losses: Vec<F>,
    coef: Vec<F>,
    weights: Vec<F>,
    dlogits: Vec<F>,
    dh: Vec<F>,
    dx: Vec<F>,
    grad: Vec<F>,
    loss: f64,
}

/// The model being trained: θ with `output.weight` transposed once per step.
struct Global<'a, F> {
    layout: &'a ParamLayout,
    theta: &'a [F],
    out_wt: &'a [F],
}

/// Writes the last `cap` items of each sequence into `ws.flat`/`ws.offsets` and builds the forest
/// over global item ids (`forest.uniq` are then rows of the full embedding table).
fn load_chunk<F, P: AsRef<[u32]>>(ws: &mut ChunkWs<F>, prefixes: &[P], cap: usize) {
    ws.flat.clear();
    ws.offsets.clear();
    ws.offsets.push(0);
    for p in prefixes {
        let p = p.as_ref();
        ws.flat.extend_from_slice(&p[p.len().saturating_sub(cap)..]);
        ws.offsets.push(ws.flat.len());
    }
    ws.forest.build(&ws.flat, &ws.offsets, true);
}

/// Hidden states at each sequence's last item for the loaded chunk, `[B, H]` in `ws.hlast`.
fn hidden<F: Float>(ws: &mut ChunkWs<F>, g: &Global<F>) {
    let d = g.layout.dims;
    let (e, h) = (d.embed_dim, d.hidden_dim);
    let (u, b) = (ws.forest.uniq.len(), ws.forest.n_seqs());
    ws.x.resize(u * e, F::ZERO);
    embedding_forward(
        &mut ws.x,
        &g.theta[g.layout.embedding()],
        &ws.forest.uniq,
        e,
    );
    ws.hlast.resize(b * h, F::ZERO);
    let gru = gru_split(&g.theta[g.layout.w_ih().start..g.layout.b_hh().end], e, h);
    gru_forward(&mut ws.hlast, &mut ws.cache, gru, &ws.x, &ws.forest, e, h);
}

fn output_weights<'a, F>(g: &'a Global<F>) -> OutputWeights<'a, F> {
    OutputWeights {
        w: &g.theta[g.layout.out_w()],
        wt: g.out_wt,
        b: &g.theta[g.layout.out_b()],
        d: &[],
        g: &[],
    }
}

/// `Σ_s weight · CE_s` over the loaded chunk (logits, lse and losses kept in `ws`), from the
/// final hidden states with dropout (`ws.hdrop`) or without (`ws.hlast`).
fn chunk_loss<F: Float>(
    ws: &mut ChunkWs<F>,
    g: &Global<F>,
    labels: &[u32],
    weight: F,
    dropped: bool,
) -> F {
    let (v, h) = (g.layout.dims.n_items, g.layout.dims.hidden_dim);
    let b = labels.len();
    ws.weights.clear();
    ws.weights.resize(b, weight);
    ws.logits.resize(b * v, F::ZERO);
    ws.lse.resize(b, F::ZERO);
    ws.losses.resize(b, F::ZERO);
    output_ce_forward(
        &mut ws.logits,
        &mut ws.lse,
        &mut ws.losses,
        &mut ws.coef,
        if dropped { &ws.hdrop } else { &ws.hlast },
        output_weights(g),
        labels,
        &ws.weights,
        v,
        h,
    )
}

/// Loss (`Σ_s scale · CE_s`, with the dropout multipliers `mask [B, H]` on the final hidden
/// states) and its gradient, assigned into `ws.grad [P]`, for one chunk.
#[allow(clippy::too_many_arguments)]
fn chunk_grad<F: Float, P: AsRef<[u32]>>(
    ws: &mut ChunkWs<F>,
    g: &Global<F>,
    labels: &[u32],
    mask: &[F],
    scale: F,
    cap: usize,
    pref: &[P],
) {
    let d = g.layout.dims;
    let (v, e, h) = (d.n_items, d.embed_dim, d.hidden_dim);
    load_chunk(ws, pref, cap);
    hidden(ws, g);
    let b = labels.len();
    ws.hdrop.clear();
    ws.hdrop
        .extend(ws.hlast.iter().zip(mask).map(|(&x, &m)| x * m));
    ws.loss = chunk_loss(ws, g, labels, scale, true).to_f64();
    let ow = output_weights(g);
    ws.grad.clear();
    ws.grad.resize(g.layout.len, F::ZERO);
    let l = g.layout;
    let (rest, out_b) = ws.grad.split_at_mut(l.out_b().start);
    let (rest, out_w) = rest.split_at_mut(l.out_w().start);
    let (emb, gru) = rest.split_at_mut(l.w_ih().start);
    debug_assert_eq!(gru.len(), gru_block_len(e, h));
    ws.dlogits.resize(b * v, F::ZERO);
    ws.dh.resize(b * h, F::ZERO);
    output_ce_backward(
        &mut ws.dlogits,
        &mut ws.dh,
        out_b,
        Some(out_w),
        &mut ws.coef,
        &ws.logits,
        &ws.lse,
        &ws.hdrop,
        ow,
        labels,
        &ws.weights,
        v,
        h,
    );
    for (dh, &m) in ws.dh.iter_mut().zip(mask) {
        *dh *= m;
    }
    ws.dx.resize(ws.forest.uniq.len() * e, F::ZERO);
    let w = gru_split(&g.theta[l.w_ih().start..l.b_hh().end], e, h);
    gru_backward(
        &mut ws.dx,
        gru_split_mut(gru, e, h),
        &ws.dh,
        &mut ws.cache,
        w,
        &ws.x,
        &ws.forest,
        e,
        h,
    );
    embedding_backward(emb, &ws.dx, &ws.forest.uniq, Some(0), e);
}

/// Dropout on the final hidden state, inverted as in `nn.Dropout` during training: each element
/// is kept with probability `1 − p` and then multiplied by `1 / (1 − p)`, or zeroed. A step takes
/// the multipliers, `[B, H]`; a run draws them from its RNG ([`Dropout::draw`]), a check can
/// give its own keep pattern ([`Dropout::multipliers`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The probability `p` that an element is zeroed (`pretrain.dropout`, in [0, 1)).
    pub p: f64,
}

impl Dropout {
    /// The multiplier of an element that is kept (`1 / (1 − p)`) or dropped (0).
    pub fn multiplier<F: Float>(self, kept: bool) -> F {
        if kept {
            F::from_f64(1.0 / (1.0 - self.p))
        } else {
            F::ZERO
        }
    }

    /// The multipliers of the keep pattern `kept`, assigned into `out`.
    pub fn multipliers<F: Float>(self, kept: &[bool], out: &mut Vec<F>) {
        out.clear();
        out.extend(kept.iter().map(|&k| self.multiplier::<F>(k)));
    }

    /// `n` multipliers drawn from `rng`, assigned into `out`: each element is kept when its
    /// `rng.next_f64()` is below `1 − p`. With `p` 0 every multiplier is 1 and nothing is drawn.
    pub fn draw<F: Float>(self, rng: &mut Rng, n: usize, out: &mut Vec<F>) {
        out.clear();
        if self.p == 0.0 {
            out.resize(n, F::ONE);
            return;
        }
        let keep = 1.0 - self.p;
        out.extend((0..n).map(|_| self.multiplier::<F>(rng.next_f64() < keep)));
    }
}

/// The CPU's pretraining step, generic over the float type (`f32` in [`fit`], `f64` for checks
/// against finite differences): the mean next-item CE over a batch of pairs with given dropout
/// multipliers on the final hidden states, its gradient, and one step of `torch.optim.Adam`
/// (betas 0.9/0.999, eps 1e-8) whose moments it keeps from step to step.
///
/// The batch is cut into 8 chunks (`CHUNKS`) of `ceil(B / 8)` pairs that run in parallel and
/// whose gradients and losses are summed in chunk order.
pub struct Pretrainer<F> {
    layout: ParamLayout,
    cap: usize,
    adam: Adam<F>,
    step: u64,
    m: Vec<F>,
    v: Vec<F>,
    grad: Vec<F>,
    out_wt: Vec<F>,
    chunks: Vec<ChunkWs<F>>,
}

impl<F: Float> Pretrainer<F> {
    /// A fresh state (Adam at step 0) for a model of `layout`, Adam's learning rate `lr` and
    /// prefixes cut to their last `max_prefix_len` items.
    pub fn new(layout: &ParamLayout, lr: f64, max_prefix_len: usize) -> Self {
        let (p, v, h) = (layout.len, layout.dims.n_items, layout.dims.hidden_dim);
        Pretrainer {
            layout: layout.clone(),
            cap: max_prefix_len,
            adam: Adam {
                lr: F::from_f64(lr),
                beta1: F::from_f64(0.9),
                beta2: F::from_f64(0.999),
                eps: F::from_f64(1e-8),
            },
            step: 0,
            m: vec![F::ZERO; p],
            v: vec![F::ZERO; p],
            grad: vec![F::ZERO; p],
            out_wt: vec![F::ZERO; v * h],
            chunks: (0..CHUNKS).map(|_| ChunkWs::default()).collect(),
        }
    }

    /// Adam steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The gradient of the last [`Pretrainer::loss_grad`] or [`Pretrainer::step`], `[P]`.
    pub fn grad(&self) -> &[F] {
        &self.grad
    }

    /// The batch's mean CE at `theta` with the dropout multipliers `mask [B, H]` (row `s` for
    /// pair `s`) applied to the final hidden states, and its gradient, assigned into
    /// [`Pretrainer::grad`]. `theta` is unchanged.
    pub fn loss_grad<P: AsRef<[u32]> + Sync>(
        &mut self,
        theta: &[F],
        prefixes: &[P],
        labels: &[u32],
        mask: &[F],
    ) -> Result<f64> {
        self.check(theta, prefixes, labels, mask)?;
        let layout = &self.layout;
        let (v, h) = (layout.dims.n_items, layout.dims.hidden_dim);
        transpose(&mut self.out_wt, &theta[layout.out_w()], v, h);
        let b = labels.len();
        let scale = F::ONE / F::from_f64(b as f64);
        let per = b.div_ceil(CHUNKS);
        let used = b.div_ceil(per);
        let g = Global {
            layout,
            theta,
            out_wt: &self.out_wt,
        };
        let cap = self.cap;
        self.chunks[..used]
            .par_iter_mut()
            .zip(prefixes.par_chunks(per))
            .zip(labels.par_chunks(per))
            .zip(mask.par_chunks(per * h))
            .for_each(|(((ws, pref), labels), mask)| {
                chunk_grad(ws, &g, labels, mask, scale, cap, pref);
            });
        self.grad.copy_from_slice(&self.chunks[0].grad);
        for ws in &self.chunks[1..used] {
            for (a, &b) in self.grad.iter_mut().zip(&ws.grad) {
                *a += b;
            }
        }
        Ok(self.chunks[..used].iter().map(|w| w.loss).sum())
    }

    /// [`Pretrainer::loss_grad`], then, when the loss is finite, one Adam step on `theta` with
    /// that gradient. Returns the loss.
    pub fn step<P: AsRef<[u32]> + Sync>(
        &mut self,
        theta: &mut [F],
        prefixes: &[P],
        labels: &[u32],
        mask: &[F],
    ) -> Result<f64> {
        let loss = self.loss_grad(theta, prefixes, labels, mask)?;
        if loss.is_finite() {
            self.step += 1;
            adam_step(
                theta,
                &self.grad,
                &mut self.m,
                &mut self.v,
                self.step,
                &self.adam,
            );
        }
        Ok(loss)
    }

    /// An error unless the batch fits the model: one label and one non-empty prefix per pair,
    /// ids in `0..V`, `B · H` multipliers and `P` weights.
    fn check<P: AsRef<[u32]>>(
        &self,
        theta: &[F],
        prefixes: &[P],
        labels: &[u32],
        mask: &[F],
    ) -> Result<()> {
        let d = self.layout.dims;
        let b = labels.len();
        let bad = if theta.len() != self.layout.len {
            Some(format!(
                "{} weights, the model has {}",
                theta.len(),
                self.layout.len
            ))
        } else if b == 0 || prefixes.len() != b {
            Some(format!("{} prefixes and {b} labels", prefixes.len()))
        } else if mask.len() != b * d.hidden_dim {
            Some(format!(
                "{} dropout multipliers for {b} pairs of hidden size {}",
                mask.len(),
                d.hidden_dim
            ))
        } else if prefixes.iter().any(|p| p.as_ref().is_empty()) {
            Some("an empty prefix".into())
        } else if labels
            .iter()
            .chain(prefixes.iter().flat_map(|p| p.as_ref()))
            .any(|&id| id as usize >= d.n_items)
        {
            Some(format!("an item id outside 0..{}", d.n_items))
        } else {
            None
        };
        match bad {
            Some(what) => Err(Error::Shape(format!("pretraining batch: {what}"))),
            None => Ok(()),
        }
    }
}

/// The pretraining run's settings, from `[pretrain]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub dropout: f64,
    pub max_prefix_len: usize,
    pub seed: u64,
}

impl PretrainSettings {
    /// From a configuration (`[pretrain]` and `run.seed`).
    pub fn from_config(cfg: &Config) -> Self {
        let p = &cfg.pretrain;
        PretrainSettings {
            epochs: p.epochs,
            batch_size: p.batch_size,
            lr: p.lr,
            dropout: p.dropout,
            max_prefix_len: p.max_prefix_len,
            seed: cfg.run.seed,
        }
    }
}

/// One epoch's mean training loss (with dropout), as reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub seconds: f64,
}

/// The checks every pretraining run makes on its pairs.
fn check_pairs(layout: &ParamLayout, pairs: &PairSet) -> Result<()> {
    if pairs.labels.is_empty() {
        return Err(Error::data(&pairs.path, None, None, "no pairs to train on"));
    }
    if pairs.n_items > layout.dims.n_items {
        return Err(Error::Shape(format!(
            "{} uses ids up to {} but the model has {} items",
            pairs.path.display(),
            pairs.n_items - 1,
            layout.dims.n_items
        )));
    }
    Ok(())
}

/// The training loop shared by both backends: each epoch shuffles the pairs with the run's seed,
/// cuts them into batches, draws each batch's dropout multipliers from the same RNG
/// ([`Dropout::draw`], `[batch, H]` in batch order) and calls `step(batch, mask)`, which takes one
/// Adam step and returns the batch's mean loss.
fn fit_with(
    pairs: &PairSet,
    s: &PretrainSettings,
    h: usize,
    quiet: bool,
    mut step: impl FnMut(&[usize], &[f32]) -> Result<f64>,
) -> Result<Vec<EpochLog>> {
    let n = pairs.labels.len();
    let steps_per_epoch = n.div_ceil(s.batch_size);
    let mut rng = Rng::new(s.seed ^ 0x5052_4554_5241_494e); // "PRETRAIN"
    let dropout = Dropout { p: s.dropout };
    let mut order: Vec<usize> = (0..n).collect();
    let mut mask = Vec::new();
    let mut logs = Vec::new();
    let mut progress = Progress::new(
        "pretrain",
        (s.epochs * steps_per_epoch) as u64,
        false,
        quiet,
    );
    for epoch in 1..=s.epochs {
        let started = Instant::now();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for (bi, batch) in order.chunks(s.batch_size).enumerate() {
            dropout.draw(&mut rng, batch.len() * h, &mut mask);
            let loss = step(batch, &mask)?;
            if !loss.is_finite() {
                return Err(Error::Other(format!(
                    "pretraining diverged: non-finite loss at epoch {epoch}, batch {} (try a smaller pretrain.lr)",
                    bi + 1
                )));
            }
            loss_sum += loss * batch.len() as f64;
            progress.inc(1);
        }
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / n as f64,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.line(&format!(
            "epoch {epoch}/{}: train loss {:.4} ({:.1} s)",
            s.epochs, log.train_loss, log.seconds
        ));
        logs.push(log);
    }
    progress.finish();
    Ok(logs)
}

/// Trains the global model on `pairs` from `theta` (flat layout) in place on the CPU, one
/// [`Pretrainer::step`] per batch; returns the per-epoch mean train loss.
pub fn fit(
    layout: &ParamLayout,
    theta: &mut [f32],
    pairs: &PairSet,
    s: &PretrainSettings,
    quiet: bool,
) -> Result<Vec<EpochLog>> {
    check_pairs(layout, pairs)?;
    let mut trainer = Pretrainer::<f32>::new(layout, s.lr, s.max_prefix_len);
    let (mut prefixes, mut labels) = (Vec::new(), Vec::new());
    fit_with(pairs, s, layout.dims.hidden_dim, quiet, |batch, mask| {
        prefixes.clear();
        prefixes.extend(batch.iter().map(|&i| &pairs.prefixes[i][..]));
        labels.clear();
        labels.extend(batch.iter().map(|&i| pairs.labels[i]));
        trainer.step(theta, &prefixes, &labels, mask)
    })
}

/// Pairs per task of a pretraining batch on the GPU (a batch of 256 runs as 32 blocks).
const GPU_CHUNK: usize = 8;

/// A device that takes one pretraining step on a batch cut into tasks: the CUDA backend, and in
/// tests the CPU emulator of its kernels.
pub trait ChunkStepper {
    /// One Adam step on the gradient of Σ w · CE over the chunks' query pairs (see
    /// [`Cuda::pretrain_step`](crate::cuda::Cuda::pretrain_step)); returns that loss.
    fn pretrain_step(
        &mut self,
        chunks: &[crate::backend::Task],
        over: &[crate::cuda::pack::QueryOverride],
        outer: &crate::backend::OuterConfig,
    ) -> Result<f64>;
    /// The current weights.
    fn params(&self) -> Result<Vec<f32>>;
}

impl<D: crate::cuda::Device> ChunkStepper for crate::cuda::Cuda<D> {
    fn pretrain_step(
        &mut self,
        chunks: &[crate::backend::Task],
        over: &[crate::cuda::pack::QueryOverride],
        outer: &crate::backend::OuterConfig,
    ) -> Result<f64> {
        crate::cuda::Cuda::<D>::pretrain_step(self, chunks, over, outer)
    }
    fn params(&self) -> Result<Vec<f32>> {
        crate::backend::Backend::params(self)
    }
}

/// [`fit`] on the CUDA backend: the same batches, dropout multipliers and Adam steps, each batch
/// run by the meta-iteration's kernels as tasks of [`GPU_CHUNK`] pairs with no inner step
/// ([`Cuda::pretrain_step`](crate::cuda::Cuda::pretrain_step)). Sums run in another order than
/// on the CPU, so the weights agree to rounding, not bit for bit.
pub fn fit_cuda(
    layout: &ParamLayout,
    theta: &mut [f32],
    pairs: &PairSet,
    s: &PretrainSettings,
    quiet: bool,
) -> Result<Vec<EpochLog>> {
    check_pairs(layout, pairs)?;
    let mut gpu = crate::cuda::Cuda::new(layout.clone(), theta.to_vec())?;
    fit_chunked(layout, theta, pairs, s, quiet, &mut gpu)
}

/// [`fit_cuda`]'s loop on any [`ChunkStepper`] that starts from `theta`; `pairs` are already
/// checked against `layout` ([`check_pairs`], before the device is set up).
pub fn fit_chunked(
    layout: &ParamLayout,
    theta: &mut [f32],
    pairs: &PairSet,
    s: &PretrainSettings,
    quiet: bool,
    dev: &mut impl ChunkStepper,
) -> Result<Vec<EpochLog>> {
    use crate::backend::{OuterConfig, Task};
    use crate::cuda::pack::QueryOverride;
    let h = layout.dims.hidden_dim;
    let outer = OuterConfig::adam(s.lr as f32, f32::INFINITY);
    let cap = s.max_prefix_len;
    let logs = fit_with(pairs, s, h, quiet, |batch, mask| {
        let w = 1.0 / batch.len() as f32;
        let cut: Vec<Vec<Vec<u32>>> = batch
            .chunks(GPU_CHUNK)
            .map(|idx| {
                idx.iter()
                    .map(|&i| {
                        let p = &pairs.prefixes[i];
                        p[p.len().saturating_sub(cap)..].to_vec()
                    })
                    .collect()
            })
            .collect();
        let labels: Vec<Vec<u32>> = batch
            .chunks(GPU_CHUNK)
            .map(|idx| idx.iter().map(|&i| pairs.labels[i]).collect())
            .collect();
        let weights: Vec<Vec<f32>> = labels.iter().map(|l| vec![w; l.len()]).collect();
        // With no inner step the support split is never read, but a task needs one pair there:
        // the chunk's first, so that the batch is not checked and packed twice.
        let tasks: Vec<Task> = (0..cut.len())
            .map(|c| Task {
                support_prefixes: &cut[c][..1],
                support_labels: &labels[c][..1],
                support_weights: &weights[c][..1],
                query_prefixes: &cut[c],
                query_labels: &labels[c],
            })
            .collect();
        let over: Vec<QueryOverride> = weights
            .iter()
            .zip(mask.chunks(GPU_CHUNK * h))
            .map(|(w, m)| QueryOverride {
                weights: w,
                mask: (s.dropout > 0.0).then_some(m),
            })
            .collect();
        dev.pretrain_step(&tasks, &over, &outer)
    })?;
    theta.copy_from_slice(&dev.params()?);
    Ok(logs)
}

/// Mean next-item CE of the model (no dropout) on `pairs`.
pub fn mean_loss(layout: &ParamLayout, theta: &[f32], pairs: &PairSet, cap: usize) -> f64 {
    let (v, h) = (layout.dims.n_items, layout.dims.hidden_dim);
    let mut out_wt = vec![0.0f32; v * h];
    transpose(&mut out_wt, &theta[layout.out_w()], v, h);
    let g = Global {
        layout,
        theta,
        out_wt: &out_wt,
    };
    let idx: Vec<usize> = (0..pairs.labels.len()).collect();
    let sums: Vec<f64> = idx
        .par_chunks(256)
        .map_init(ChunkWs::<f32>::default, |ws, idx| {
            let pref: Vec<&[u32]> = idx.iter().map(|&i| &pairs.prefixes[i][..]).collect();
            let labels: Vec<u32> = idx.iter().map(|&i| pairs.labels[i]).collect();
            load_chunk(ws, &pref, cap);
            hidden(ws, &g);
            chunk_loss(ws, &g, &labels, 1.0, false) as f64
        })
        .collect();
    sums.iter().sum::<f64>() / pairs.labels.len().max(1) as f64
}

/// Item scores of the popularity baseline: each item's count among the train labels (ties
/// ranked by the lower id, as everywhere).
pub fn popularity_scores(pairs: &PairSet, n_items: usize) -> Vec<f32> {
    let mut counts = vec![0.0f32; n_items];
    for &y in &pairs.labels {
        counts[y as usize] += 1.0;
    }
    counts
}

/// Per-episode records of a fixed score vector (the same prediction for every query; zero- and
/// few-shot are the same, since nothing adapts; losses are not defined and left NaN).
pub fn fixed_records(scores: &[f32], set: &WeightedSet) -> Vec<evaluate::EpisodeRecord> {
    set.set
        .episodes
        .iter()
        .map(|ep| {
            let ranks: Vec<usize> = ep
                .query_labels
                .iter()
                .map(|&y| eval::rank_of(scores, y))
                .collect();
            let top = vec![eval::top1(scores); ranks.len()];
            evaluate::EpisodeRecord {
                episode_id: ep.episode_id,
                user_id: ep.user_id.clone(),
                zero_shot_loss: f64::NAN,
                few_shot_loss: f64::NAN,
                zero_shot_top1: top.clone(),
                few_shot_top1: top,
                zero_shot_rank: ranks.clone(),
                few_shot_rank: ranks,
            }
        })
        .collect()
}

/// What `recmaml pretrain` writes to `pretrain.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PretrainReport {
    pub pairs_train: String,
    pub n_pairs: usize,
    pub dims: ModelDims,
    pub settings: PretrainSettings,
    pub backend: String,
    pub epochs: Vec<EpochLog>,
    /// Mean CE without dropout on the train pairs, before and after training.
    pub train_loss_before: f64,
    pub train_loss_after: f64,
    /// Zero-shot metrics on the test episodes' query pairs ("GRU4Rec baseline"); `None` without a
    /// test file.
    pub test: Option<MetricSet>,
    /// The popularity baseline on the same query pairs.
    pub popularity_test: Option<MetricSet>,
    pub n_test_episodes: usize,
    pub checkpoint: PathBuf,
    pub wall_time_s: f64,
}

/// File name of the pretrained weights inside the output folder.
pub const CHECKPOINT_NAME: &str = "gru4rec.safetensors";

/// A pretraining run's results: the report and, on the test episodes, the per-episode records of
/// the pretrained model (zero-shot) and of the popularity baseline.
pub struct Pretrained {
    pub report: PretrainReport,
    pub gru4rec_records: Vec<evaluate::EpisodeRecord>,
    pub popularity_records: Vec<evaluate::EpisodeRecord>,
}

/// A finished pretraining run in `out` (its report and weights), with the test records
/// recomputed; `None` when `out` holds no finished run.
pub fn load_finished(cfg: &Config, out: &Path) -> Result<Option<Pretrained>> {
    let (json, ck) = (out.join("pretrain.json"), out.join(CHECKPOINT_NAME));
    let Some(report) = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str::<PretrainReport>(&t).ok())
    else {
        return Ok(None);
    };
    if !ck.is_file() {
        return Ok(None);
    }
    let layout = ParamLayout::new(report.dims);
    let sd = checkpoint::load_state_dict(&ck)?;
    let theta = checkpoint::params_from_state_dict(&sd, &layout, &ck)?;
    let pairs = data::read_pair_file(Path::new(&cfg.data.pairs_train), None)?;
    let (gru4rec_records, popularity_records) = test_records(cfg, &layout, &theta, &pairs)?;
    Ok(Some(Pretrained {
        report,
        gru4rec_records,
        popularity_records,
    }))
}

/// Per-episode test records of the model at `theta` (zero-shot) and of the popularity baseline;
/// empty without a test file.
fn test_records(
    cfg: &Config,
    layout: &ParamLayout,
    theta: &[f32],
    pairs: &PairSet,
) -> Result<(Vec<evaluate::EpisodeRecord>, Vec<evaluate::EpisodeRecord>)> {
    let Some(path) = Config::optional_path(&cfg.data.test) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let test = WeightedSet::load(&path, Some(layout.dims.n_items), cfg)?;
    let mut cpu = Cpu::new(layout.clone(), theta.to_vec())?;
    // Zero-shot only; the few-shot half of these records is not used (lr 0, one step).
    let inner = InnerLoop { lr: 0.0, steps: 1 };
    let (_, mut gru) = evaluate::evaluate_set(&mut cpu, &test, &inner, None)?;
    for r in &mut gru {
        r.few_shot_rank = r.zero_shot_rank.clone();
        r.few_shot_top1 = r.zero_shot_top1.clone();
        r.few_shot_loss = r.zero_shot_loss;
    }
    let pop = fixed_records(&popularity_scores(pairs, layout.dims.n_items), &test);
    Ok((gru, pop))
}

/// Pretrains as configured and writes `out/gru4rec.safetensors` and `out/pretrain.json`.
pub fn pretrain(cfg: &Config, out: &Path, quiet: bool) -> Result<Pretrained> {
    let started = Instant::now();
    if cfg.data.pairs_train.is_empty() {
        return Err(Error::config(
            "data.pairs_train",
            "no train pairs file given (pairs_train.parquet from `recmaml prepare`)",
        ));
    }
    let pairs = data::read_pair_file(Path::new(&cfg.data.pairs_train), None)?;
    let v = pairs.n_items;
    let dims = ModelDims {
        n_items: v,
        embed_dim: cfg.model.embed_dim,
        hidden_dim: cfg.model.hidden_dim,
    };
    let layout = ParamLayout::new(dims);
    let mut theta = crate::model::init::init_params(&layout, cfg.run.seed);
    let settings = PretrainSettings::from_config(cfg);
    let before = mean_loss(&layout, &theta, &pairs, settings.max_prefix_len);
    let backend = match cfg.run.backend.as_str() {
        "cpu" => "cpu",
        "cuda" => "cuda",
        "auto" if crate::cuda::device_available() => "cuda",
        "auto" => "cpu",
        other => {
            return Err(Error::config(
                "run.backend",
                format!("`{other}` is not one of {:?}", crate::config::BACKENDS),
            ))
        }
    };
    let epochs = if backend == "cuda" {
        fit_cuda(&layout, &mut theta, &pairs, &settings, quiet)?
    } else {
        fit(&layout, &mut theta, &pairs, &settings, quiet)?
    };
    let after = mean_loss(&layout, &theta, &pairs, settings.max_prefix_len);
    // The folder is made only now, so a run that cannot start (no GPU, bad pairs) leaves none.
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let ck = out.join(CHECKPOINT_NAME);
    let mut meta = BTreeMap::new();
    meta.insert(
        "recmaml_pretrain".to_string(),
        serde_json::to_string(&settings).unwrap_or_default(),
    );
    checkpoint::save_params(&ck, &layout, &theta, &meta)?;
    let (gru_records, pop_records) = test_records(cfg, &layout, &theta, &pairs)?;
    let (test_metrics, pop_metrics) = if gru_records.is_empty() {
        (None, None)
    } else {
        (
            Some(evaluate::summarize(&gru_records).zero_shot),
            Some(evaluate::summarize(&pop_records).zero_shot),
        )
    };
    let n_test = gru_records.len();
    let report = PretrainReport {
        pairs_train: cfg.data.pairs_train.clone(),
        n_pairs: pairs.labels.len(),
        dims,
        settings,
        backend: backend.into(),
        epochs,
        train_loss_before: before,
        train_loss_after: after,
        test: test_metrics,
        popularity_test: pop_metrics,
        n_test_episodes: n_test,
        checkpoint: ck,
        wall_time_s: started.elapsed().as_secs_f64(),
    };
    train::write_json(&out.join("pretrain.json"), &report)?;
    Ok(Pretrained {
        report,
        gru4rec_records: gru_records,
        popularity_records: pop_records,
    })
}

/// `recmaml pretrain`: train the global GRU4Rec model on the train pairs.
#[derive(clap::Args, Debug)]
pub struct PretrainArgs {
    /// TOML configuration: `[data] pairs_train` and `test`, `[model]`, `[pretrain]`, `run.seed`.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a configuration key, e.g. `--set pretrain.epochs=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output folder: `gru4rec.safetensors` (for `warmstart.pretrained_path`) and `pretrain.json`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `recmaml pretrain` and prints its summary.
pub fn run_cli(args: &PretrainArgs) -> Result<()> {
    let cfg = Config::load(Some(&args.config), &args.sets)?;
    let p = pretrain(&cfg, &args.out, false)?;
    let r = &p.report;
    println!(
        "pretrained GRU4Rec on {} pairs for {} epochs in {:.1}s: train CE {:.4} -> {:.4}",
        r.n_pairs, r.settings.epochs, r.wall_time_s, r.train_loss_before, r.train_loss_after
    );
    println!("weights: {}", r.checkpoint.display());
    if let (Some(g), Some(pop)) = (&r.test, &r.popularity_test) {
        println!("test query pairs of {} episodes:", r.n_test_episodes);
        println!("  {:<10} {:>18} {:>18}", "metric", "GRU4Rec", "popularity");
        for ((name, a), (_, b)) in g.entries().iter().zip(pop.entries()) {
            println!(
                "  {name:<10} {:>7.4} [{:.3},{:.3}] {:>7.4} [{:.3},{:.3}]",
                a.mean, a.ci_low, a.ci_high, b.mean, b.ci_low, b.ci_high
            );
        }
    }
    Ok(())
}
