//! The CPU twin of pretraining on the GPU: the loss and gradient of a batch of (prefix, next
//! item) pairs for the global GRU4Rec model, with dropout multipliers on the final hidden states
//! ([`PairGrad`]), and the model's mean CE on a pair set ([`mean_loss`]). The backend's
//! pretraining step ([`super::Engine::pretrain_step_with`]) takes Adam's step with the engine's
//! own optimiser state.

use super::embedding::{embedding_backward, embedding_forward};
use super::float::Float;
use super::forest::SeqForest;
use super::gru::{gru_backward, gru_block_len, gru_forward, gru_split, gru_split_mut, GruCache};
use super::output_ce::{output_ce_backward, output_ce_forward, OutputWeights};
use super::simd::transpose;
use crate::data::PairSet;
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use rayon::prelude::*;

/// Chunks per batch (fixed, so that the reduction order does not depend on the thread count).
const CHUNKS: usize = 8;

/// Buffers of one chunk's forward and backward, reused from batch to batch.
#[derive(Debug, Default)]
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

/// The loss and gradient of a batch of pairs for the global model (pretraining), generic over
/// the float type (`f32` for the backend, `f64` for checks against finite differences): the mean
/// next-item CE with given dropout multipliers on the final hidden states.
///
/// The batch is cut into 8 chunks (`CHUNKS`) of `ceil(B / 8)` pairs that run in parallel and
/// whose gradients and losses are summed in chunk order, so the result does not depend on the
/// number of threads.
#[derive(Debug)]
pub struct PairGrad<F> {
    layout: ParamLayout,
    cap: usize,
    grad: Vec<F>,
    out_wt: Vec<F>,
    chunks: Vec<ChunkWs<F>>,
}

impl<F: Float> PairGrad<F> {
    /// Buffers for a model of `layout` with prefixes cut to their last `max_prefix_len` items.
    pub fn new(layout: &ParamLayout, max_prefix_len: usize) -> Self {
        let (p, v, h) = (layout.len, layout.dims.n_items, layout.dims.hidden_dim);
        PairGrad {
            layout: layout.clone(),
            cap: max_prefix_len,
            grad: vec![F::ZERO; p],
            out_wt: vec![F::ZERO; v * h],
            chunks: (0..CHUNKS).map(|_| ChunkWs::default()).collect(),
        }
    }

    /// The prefix cap.
    pub fn max_prefix_len(&self) -> usize {
        self.cap
    }

    /// The gradient of the last [`PairGrad::loss_grad`], `[P]`.
    pub fn grad(&self) -> &[F] {
        &self.grad
    }

    /// The batch's mean CE at `theta` with the dropout multipliers `mask [B, H]` (row `s` for
    /// pair `s`) applied to the final hidden states, and its gradient, assigned into
    /// [`PairGrad::grad`]. `theta` is unchanged.
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
