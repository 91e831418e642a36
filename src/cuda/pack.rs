//! Packs a meta-batch for the kernels on the host: per task its distinct items (the local
//! embedding rows), each split's sequences as records of local rows, labels, loss weights and a
//! CSR from local rows to records; a CSR from global items to (task, row) for the meta-gradient;
//! and the per-task workspace layout sized for the largest task. Everything is integers in one
//! `ints` array and floats in one `floats` array, so a batch is three host-to-device copies.

use super::abi::{Dims, SplitDesc, TaskDesc, WsLayout, NONE};
use crate::backend::Task;
use crate::cpu::check_task;
use crate::error::{Error, Result};
use crate::model::ParamLayout;

/// Floats per alignment unit of workspace buffers (128 bytes).
const ALIGN: usize = 32;

/// A meta-batch ready for upload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Every integer table, addressed by the offsets in `descs` and `item_csr`.
    pub ints: Vec<u32>,
    /// Loss weights (support: recency weights; query: 1/Q).
    pub floats: Vec<f32>,
    /// One descriptor per task.
    pub descs: Vec<TaskDesc>,
    /// Offset in `ints` of the item CSR: V + 1 starts, then (task, local row) pairs.
    pub item_csr: u32,
    /// Per-task workspace layout.
    pub ws: WsLayout,
    /// Largest Q (row count of the evaluation logits).
    pub q_max: u32,
}

fn to_u32(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| {
        Error::Shape(format!(
            "{what} ({x}) does not fit the kernels' 32-bit offsets"
        ))
    })
}

/// Per-task replacements for the query split's loss weights (default 1/Q each) and a dropout mask
/// on its final hidden states (`[Q, H]` multipliers; default none): pretraining runs a batch of
/// pairs as tasks whose query is a chunk of the batch, weighted 1/batch size, with no inner step.
#[derive(Clone, Copy, Debug)]
pub struct QueryOverride<'a> {
    pub weights: &'a [f32],
    pub mask: Option<&'a [f32]>,
}

/// Appends one split to `ints` / `floats`; `ids` are the task's sorted distinct items.
fn pack_split(
    ints: &mut Vec<u32>,
    floats: &mut Vec<f32>,
    prefixes: &[Vec<u32>],
    labels: &[u32],
    weights: &[f32],
    mask: Option<&[f32]>,
    ids: &[u32],
) -> Result<SplitDesc> {
    let row = |id: &u32| ids.binary_search(id).unwrap_or(0) as u32;
    let mut s = SplitDesc {
        n_seqs: to_u32(prefixes.len(), "sequences")?,
        max_len: to_u32(
            prefixes.iter().map(Vec::len).max().unwrap_or(0),
            "prefix length",
        )?,
        ..Default::default()
    };
    s.seq_off = to_u32(ints.len(), "batch size")?;
    let mut off = 0u32;
    ints.push(0);
    for p in prefixes {
        off += to_u32(p.len(), "prefix length")?;
        ints.push(off);
    }
    s.n_steps = off;
    s.tokens = to_u32(ints.len(), "batch size")?;
    let tok_start = ints.len();
    ints.extend(prefixes.iter().flatten().map(row));
    s.labels = to_u32(ints.len(), "batch size")?;
    ints.extend_from_slice(labels);
    // CSR local row -> records, in record order.
    s.rows = to_u32(ints.len(), "batch size")?;
    let u = ids.len();
    let mut starts = vec![0u32; u + 1];
    for &t in &ints[tok_start..tok_start + off as usize] {
        starts[t as usize + 1] += 1;
    }
    for i in 0..u {
        starts[i + 1] += starts[i];
    }
    let mut next = starts.clone();
    let mut entries = vec![0u32; off as usize];
    for (rec, &t) in ints[tok_start..tok_start + off as usize].iter().enumerate() {
        entries[next[t as usize] as usize] = rec as u32;
        next[t as usize] += 1;
    }
    ints.extend_from_slice(&starts);
    ints.extend_from_slice(&entries);
    s.weights = to_u32(floats.len(), "batch size")?;
    floats.extend_from_slice(weights);
    s.mask = match mask {
        Some(m) => {
            let at = to_u32(floats.len(), "batch size")?;
            floats.extend_from_slice(m);
            at
        }
        None => NONE,
    };
    Ok(s)
}

/// Lays out the per-task workspace for the largest task (`u_max` distinct items, `t_max` records
/// and `b_max` sequences in a split, `r_max` low-rank SGD terms) and `block` threads per block.
pub fn workspace(
    d: &Dims,
    u_max: usize,
    t_max: usize,
    b_max: usize,
    r_max: usize,
    block: usize,
) -> Result<WsLayout> {
    let (v, e, h, g) = (d.v as usize, d.e as usize, d.h as usize, d.gru_len as usize);
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<u32> {
        let o = at;
        at += n.div_ceil(ALIGN) * ALIGN;
        to_u32(o, "workspace offset")
    };
    let mut ws = WsLayout {
        gru: take(g)?,
        dgru: take(g)?,
        table: take(u_max * e)?,
        dtable: take(u_max * e)?,
        bias: take(v)?,
        dbias: take(v)?,
        lr_d: take(r_max * v)?,
        lr_g: take(r_max * h)?,
        hprev: take(t_max * h)?,
        gates: take(t_max * 3 * h)?,
        ghn: take(t_max * h)?,
        dgi: take(t_max * 3 * h)?,
        dgh: take(t_max * 3 * h)?,
        dlt: take(v * b_max.div_ceil(8) * 8)?,
        hlast: take(b_max * h)?,
        dhlast: take(b_max * h)?,
        logits: take(b_max * v)?,
        lse: take(b_max)?,
        loss: take(b_max)?,
        coef: take(b_max * r_max.max(1))?,
        gru_t: take(3 * h * (e + h))?,
        rowsum: take(u_max * 3 * h)?,
        red: take(block * b_max)?,
        b_max: to_u32(b_max, "sequences per split")?,
        r_max: to_u32(r_max.max(1), "low-rank terms")?,
        pad_: 0,
        stride: 0,
    };
    ws.stride = at as u64;
    Ok(ws)
}

/// Packs `tasks` (checked like the CPU engine checks them) for a model of sizes `d`, an inner
/// loop of `steps` steps and kernels of `block` threads per block.
pub fn pack(tasks: &[Task], d: &Dims, steps: usize, block: u32) -> Result<Batch> {
    pack_with(tasks, d, steps, block, None)
}

/// [`pack`] with per-task query overrides (one per task).
pub fn pack_with(
    tasks: &[Task],
    d: &Dims,
    steps: usize,
    block: u32,
    over: Option<&[QueryOverride]>,
) -> Result<Batch> {
    if tasks.is_empty() {
        return Err(Error::Shape("a meta-batch needs at least one task".into()));
    }
    if let Some(o) = over {
        let bad = tasks.iter().zip(o).position(|(t, o)| {
            o.weights.len() != t.query_labels.len()
                || o.mask
                    .is_some_and(|m| m.len() != t.query_labels.len() * d.h as usize)
        });
        if o.len() != tasks.len() || bad.is_some() {
            return Err(Error::Shape(format!(
                "query overrides: {} given for {} tasks, or task {} has weights / mask of the wrong length",
                o.len(),
                tasks.len(),
                bad.unwrap_or(0)
            )));
        }
    }
    let v = d.v as usize;
    let mut b = Batch::default();
    let (mut u_max, mut t_max, mut b_max, mut k_max) = (0, 0, 0, 0);
    let mut task_ids: Vec<Vec<u32>> = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        check_task(t, i, t.support_weights.len(), v)?;
        let mut ids: Vec<u32> = t
            .support_prefixes
            .iter()
            .chain(t.query_prefixes)
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let support = pack_split(
            &mut b.ints,
            &mut b.floats,
            t.support_prefixes,
            t.support_labels,
            t.support_weights,
            None,
            &ids,
        )?;
        let q = t.query_prefixes.len();
        let qw = vec![1.0f32 / q as f32; q];
        let o = over.map(|o| o[i]);
        let query = pack_split(
            &mut b.ints,
            &mut b.floats,
            t.query_prefixes,
            t.query_labels,
            o.map_or(&qw[..], |o| o.weights),
            o.and_then(|o| o.mask),
            &ids,
        )?;
        let desc = TaskDesc {
            support,
            query,
            n_rows: to_u32(ids.len(), "distinct items")?,
            ids: to_u32(b.ints.len(), "batch size")?,
            padding_row: if ids.first() == Some(&0) { 0 } else { NONE },
            pad_: 0,
        };
        b.ints.extend_from_slice(&ids);
        u_max = u_max.max(ids.len());
        t_max = t_max.max(support.n_steps.max(query.n_steps) as usize);
        b_max = b_max.max(support.n_seqs.max(query.n_seqs) as usize);
        k_max = k_max.max(support.n_seqs as usize);
        b.q_max = b.q_max.max(query.n_seqs);
        b.descs.push(desc);
        task_ids.push(ids);
    }
    // Item CSR: for each global item, the (task, local row) pairs that hold it, in task order.
    b.item_csr = to_u32(b.ints.len(), "batch size")?;
    let mut starts = vec![0u32; v + 1];
    for ids in &task_ids {
        for &id in ids {
            starts[id as usize + 1] += 1;
        }
    }
    for i in 0..v {
        starts[i + 1] += starts[i];
    }
    let mut pairs = vec![0u32; 2 * starts[v] as usize];
    let mut next = starts.clone();
    for (t, ids) in task_ids.iter().enumerate() {
        for (row, &id) in ids.iter().enumerate() {
            let slot = next[id as usize] as usize;
            pairs[2 * slot] = t as u32;
            pairs[2 * slot + 1] = row as u32;
            next[id as usize] += 1;
        }
    }
    b.ints.extend_from_slice(&starts);
    b.ints.extend_from_slice(&pairs);
    to_u32(b.ints.len(), "batch size")?;
    b.ws = workspace(d, u_max, t_max, b_max, steps * k_max, block as usize)?;
    Ok(b)
}

/// Task `i`'s adapted weights as a dense flat vector: `theta` with the fast GRU block, embedding
/// rows and output bias of its workspace `ws` (one task's `stride` floats, after the inner loop
/// of `steps` steps) and output.weight as θ's plus the SGD steps' rank-1 terms.
pub fn adapted_dense(
    layout: &ParamLayout,
    d: &Dims,
    b: &Batch,
    i: usize,
    steps: usize,
    ws: &[f32],
    theta: Vec<f32>,
) -> Vec<f32> {
    let mut phi = theta;
    let (l, t) = (layout, &b.descs[i]);
    let (e, h, v) = (d.e as usize, d.h as usize, d.v as usize);
    let at = |off: u32, n: usize| &ws[off as usize..off as usize + n];
    phi[l.w_ih().start..l.b_hh().end].copy_from_slice(at(b.ws.gru, d.gru_len as usize));
    let ids = &b.ints[t.ids as usize..][..t.n_rows as usize];
    let table = at(b.ws.table, ids.len() * e);
    for (row, &id) in ids.iter().enumerate() {
        let dst = l.embedding().start + id as usize * e;
        phi[dst..dst + e].copy_from_slice(&table[row * e..(row + 1) * e]);
    }
    phi[l.out_b()].copy_from_slice(at(b.ws.bias, v));
    let rank = steps * t.support.n_seqs as usize;
    let (lr_d, lr_g) = (at(b.ws.lr_d, rank * v), at(b.ws.lr_g, rank * h));
    let w = &mut phi[l.out_w()];
    for r in 0..rank {
        for item in 0..v {
            let c = lr_d[r * v + item];
            for k in 0..h {
                w[item * h + k] += c * lr_g[r * h + k];
            }
        }
    }
    phi
}

/// task_forward's outputs as per-task results: logits [N, 2, Q_max, V] (slot 0 at θ, slot 1
/// after the inner loop) and losses [N, 2].
pub fn task_evals(
    tasks: &[Task],
    logits: &[f32],
    losses: &[f32],
    q_max: usize,
    v: usize,
) -> Vec<crate::backend::TaskEval> {
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let q = t.query_labels.len();
            let slot = |s: usize| logits[(i * 2 + s) * q_max * v..][..q * v].to_vec();
            crate::backend::TaskEval {
                zero_shot_loss: losses[2 * i] as f64,
                few_shot_loss: losses[2 * i + 1] as f64,
                zero_shot_logits: slot(0),
                few_shot_logits: slot(1),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelDims, ParamLayout};

    fn dims() -> Dims {
        Dims::of(&ParamLayout::new(ModelDims {
            n_items: 12,
            embed_dim: 4,
            hidden_dim: 3,
        }))
    }

    /// Decodes the packed split back to prefixes, labels and weights, and checks the CSR.
    fn unpack(b: &Batch, s: &SplitDesc, ids: &[u32]) -> (Vec<Vec<u32>>, Vec<u32>, Vec<f32>) {
        let ints = &b.ints;
        let off = &ints[s.seq_off as usize..][..s.n_seqs as usize + 1];
        let tok = &ints[s.tokens as usize..][..s.n_steps as usize];
        let prefixes: Vec<Vec<u32>> = off
            .windows(2)
            .map(|w| {
                tok[w[0] as usize..w[1] as usize]
                    .iter()
                    .map(|&r| ids[r as usize])
                    .collect()
            })
            .collect();
        assert_eq!(
            s.max_len as usize,
            prefixes.iter().map(Vec::len).max().unwrap()
        );
        let u = ids.len();
        let starts = &ints[s.rows as usize..][..u + 1];
        let entries = &ints[s.rows as usize + u + 1..][..s.n_steps as usize];
        for row in 0..u {
            let recs = &entries[starts[row] as usize..starts[row + 1] as usize];
            assert!(recs.windows(2).all(|w| w[0] < w[1]), "records in order");
            let want: Vec<u32> = (0..s.n_steps)
                .filter(|&r| tok[r as usize] == row as u32)
                .collect();
            assert_eq!(recs, &want[..]);
        }
        let labels = ints[s.labels as usize..][..s.n_seqs as usize].to_vec();
        let w = b.floats[s.weights as usize..][..s.n_seqs as usize].to_vec();
        (prefixes, labels, w)
    }

    #[test]
    fn a_packed_batch_decodes_to_its_tasks() {
        let sp = [vec![3, 5, 3], vec![0, 7]];
        let qp = [vec![5], vec![9, 9, 9, 3], vec![11]];
        let sp2 = [vec![2]];
        let qp2 = [vec![3, 2]];
        let tasks = [
            Task {
                support_prefixes: &sp,
                support_labels: &[4, 1],
                support_weights: &[0.25, 0.75],
                query_prefixes: &qp,
                query_labels: &[6, 8, 2],
            },
            Task {
                support_prefixes: &sp2,
                support_labels: &[1],
                support_weights: &[1.0],
                query_prefixes: &qp2,
                query_labels: &[10],
            },
        ];
        let d = dims();
        let b = pack(&tasks, &d, 3, 256).unwrap();
        for (t, desc) in tasks.iter().zip(&b.descs) {
            let ids = &b.ints[desc.ids as usize..][..desc.n_rows as usize];
            assert!(ids.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(desc.padding_row, if ids[0] == 0 { 0 } else { NONE });
            let (p, l, w) = unpack(&b, &desc.support, ids);
            assert_eq!(
                (&p[..], &l[..], &w[..]),
                (t.support_prefixes, t.support_labels, t.support_weights)
            );
            let (p, l, w) = unpack(&b, &desc.query, ids);
            assert_eq!((&p[..], &l[..]), (t.query_prefixes, t.query_labels));
            assert!(w.iter().all(|&x| x == 1.0 / t.query_labels.len() as f32));
        }
        assert!(b
            .descs
            .iter()
            .all(|d| d.support.mask == NONE && d.query.mask == NONE));
        // Query overrides (pretraining): the given weights and mask, task by task.
        let (w0, w1) = ([0.5f32, 0.25, 0.125], [2.0f32]);
        let m0: Vec<f32> = (0..3 * d.h).map(|i| i as f32).collect();
        let over = [
            QueryOverride {
                weights: &w0,
                mask: Some(&m0),
            },
            QueryOverride {
                weights: &w1,
                mask: None,
            },
        ];
        let bo = pack_with(&tasks, &d, 0, 256, Some(&over)).unwrap();
        let ids = &bo.ints[bo.descs[0].ids as usize..][..bo.descs[0].n_rows as usize];
        assert_eq!(unpack(&bo, &bo.descs[0].query, ids).2, w0);
        let q0 = bo.descs[0].query;
        assert_eq!(&bo.floats[q0.mask as usize..][..m0.len()], &m0[..]);
        assert_eq!(bo.descs[1].query.mask, NONE);
        let wrong = [over[0]];
        let err = pack_with(&tasks, &d, 0, 256, Some(&wrong))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 given for 2 tasks"), "{err}");
        let short = [
            over[0],
            QueryOverride {
                weights: &[],
                mask: None,
            },
        ];
        let err = pack_with(&tasks, &d, 0, 256, Some(&short))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 given for 2 tasks") && err.contains("task 1 has weights"),
            "{err}"
        );
        // Item CSR: item 3 is in both tasks, task 0 first; item 4 (a label only) in none.
        let v = d.v as usize;
        let starts = &b.ints[b.item_csr as usize..][..v + 1];
        let pairs = &b.ints[b.item_csr as usize + v + 1..];
        let of = |item: usize| -> Vec<(u32, u32)> {
            (starts[item]..starts[item + 1])
                .map(|q| (pairs[2 * q as usize], pairs[2 * q as usize + 1]))
                .collect()
        };
        assert_eq!(of(3), vec![(0, 1), (1, 1)]);
        assert_eq!(of(4), vec![]);
        assert_eq!(of(0), vec![(0, 0)]);
        assert_eq!(
            starts[v] as usize,
            b.descs.iter().map(|d| d.n_rows as usize).sum::<usize>()
        );
        // Workspace: sized for the largest task, buffers aligned and disjoint.
        assert_eq!((b.ws.b_max, b.ws.r_max, b.q_max), (3, 6, 3));
        let offs = [
            b.ws.gru,
            b.ws.dgru,
            b.ws.table,
            b.ws.dtable,
            b.ws.bias,
            b.ws.dbias,
            b.ws.lr_d,
            b.ws.lr_g,
            b.ws.hprev,
            b.ws.gates,
            b.ws.ghn,
            b.ws.dgi,
            b.ws.dgh,
            b.ws.dlt,
            b.ws.hlast,
            b.ws.dhlast,
            b.ws.logits,
            b.ws.lse,
            b.ws.loss,
            b.ws.coef,
            b.ws.gru_t,
            b.ws.rowsum,
            b.ws.red,
        ];
        assert!(offs
            .windows(2)
            .all(|w| w[0] < w[1] && w[0] % ALIGN as u32 == 0));
        assert!(b.ws.stride > u64::from(b.ws.coef));
        assert_eq!(b.ws.dgru - b.ws.gru, d.gru_len.div_ceil(32) * 32);
        // T_max = 6 (query of task 0: 1 + 4 + 1 steps): gates hold 3H floats per record.
        assert_eq!(b.ws.ghn - b.ws.gates, (6 * 3 * 3u32).div_ceil(32) * 32);
    }

    #[test]
    fn bad_tasks_are_errors_naming_the_task() {
        let sp = [vec![3, 50]];
        let t = Task {
            support_prefixes: &sp,
            support_labels: &[1],
            support_weights: &[1.0],
            query_prefixes: &sp,
            query_labels: &[1],
        };
        let err = pack(&[t], &dims(), 1, 256).unwrap_err().to_string();
        assert!(err.contains("task 0") && err.contains("50"), "{err}");
        let err = pack(&[], &dims(), 1, 256).unwrap_err().to_string();
        assert!(err.contains("at least one task"), "{err}");
    }
}
