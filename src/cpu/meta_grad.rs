//! The first-order meta-gradient: the mean over a meta-batch's tasks of their query gradients,
//! summed in task order so that the result is the same bit for bit on every run and thread count.
//! The CPU twin of `kernels/meta_grad.cu`.

use super::float::Float;
use super::simd::{axpy, ger_acc};
use super::task::TaskGrad;
use crate::model::ParamLayout;
use rayon::prelude::*;

/// Rows of `output.weight` per parallel chunk of the meta-gradient reduction.
const REDUCE_ROWS: usize = 64;

/// Elements of the GRU block per parallel chunk of the reduction.
const SUM_CHUNK: usize = 4096;

/// The reduction of the tasks' gradients, with its buffers (reused between meta-iterations).
#[derive(Debug, Default)]
pub struct MetaGrad<F> {
    /// All tasks' `dlogits [ΣQ, V]` and `hlast [ΣQ, H]`, in task order.
    all_dlogits: Vec<F>,
    all_hlast: Vec<F>,
}

impl<F: Float> MetaGrad<F> {
    /// Sums the per-task gradients `task_grads` in task order into `grad [P]` (assigned) and
    /// divides by the task count.
    pub fn reduce(&mut self, grad: &mut [F], task_grads: &[TaskGrad<F>], layout: &ParamLayout) {
        let (v, e, h) = (
            layout.dims.n_items,
            layout.dims.embed_dim,
            layout.dims.hidden_dim,
        );
        let n = task_grads.len();
        let tg = &task_grads[..n];
        grad.fill(F::ZERO);
        // The GRU block and the output bias: each element sums the tasks in task order, so the
        // chunks can run in parallel without changing a bit.
        let gru = layout.w_ih().start..layout.b_hh().end;
        grad[gru]
            .par_chunks_mut(SUM_CHUNK)
            .enumerate()
            .for_each(|(c, g)| {
                for t in tg {
                    axpy(g, F::ONE, &t.gru[c * SUM_CHUNK..]);
                }
            });
        for t in tg {
            let emb = &mut grad[layout.embedding()];
            for (&id, row) in t.ids.iter().zip(t.emb.chunks_exact(e)) {
                let id = id as usize;
                axpy(&mut emb[id * e..(id + 1) * e], F::ONE, row);
            }
            axpy(&mut grad[layout.out_b()], F::ONE, &t.b_out);
        }
        // output.weight: one product `dlogits^T hlast` over every task's query pairs, in task
        // order; each row of the result depends only on that order, so the chunking (and the
        // thread count) does not change a bit.
        concat(&mut self.all_dlogits, tg, |t| &t.dlogits);
        concat(&mut self.all_hlast, tg, |t| &t.hlast);
        let (dl, hl) = (&self.all_dlogits, &self.all_hlast);
        grad[layout.out_w()]
            .par_chunks_mut(REDUCE_ROWS * h)
            .enumerate()
            .for_each(|(c, chunk)| {
                ger_acc(chunk, &dl[c * REDUCE_ROWS..], v, hl, h);
            });
        let scale = F::ONE / F::from_f64(n as f64);
        grad.par_chunks_mut(SUM_CHUNK).for_each(|c| {
            for g in c {
                *g *= scale;
            }
        });
    }
}

/// `out` = the concatenation of `part(t)` over `tasks` in order, the tasks' parts copied in
/// parallel.
fn concat<F: Float>(
    out: &mut Vec<F>,
    tasks: &[TaskGrad<F>],
    part: impl Fn(&TaskGrad<F>) -> &[F] + Sync,
) {
    let total = tasks.iter().map(|t| part(t).len()).sum();
    out.resize(total, F::ZERO);
    let mut slots = Vec::with_capacity(tasks.len());
    let mut rest = &mut out[..];
    for t in tasks {
        let (slot, tail) = rest.split_at_mut(part(t).len());
        slots.push(slot);
        rest = tail;
    }
    slots
        .into_par_iter()
        .zip(tasks)
        .for_each(|(slot, t)| slot.copy_from_slice(part(t)));
}
