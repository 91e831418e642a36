//! The device memory ([`MemoryNeed`]) the CUDA backend needs for a meta-batch shape, computed before anything is
//! allocated: the parameter buffers (θ, its gradient, Adam's m and v, the transposed output
//! weights), one workspace per task laid out by [`super::pack`] for the largest task the shape
//! allows, the packed batch tables and the evaluation logits. `recmaml bench --backend cuda`
//! prints it; the emulated tests check that the backend stays within it.

use super::abi::{Dims, TaskDesc, NORM_BLOCKS};
use super::pack;
use crate::backend::{BatchShape, MemoryNeed};
use crate::error::{Error, Result};
use crate::model::ParamLayout;

const F32: usize = std::mem::size_of::<f32>();

/// The bytes the backend allocates for `layout` with kernels of `block` threads per block, for
/// any meta-batch within `shape`.
pub fn need(layout: &ParamLayout, block: u32, shape: &BatchShape) -> Result<MemoryNeed> {
    let d = Dims::of(layout);
    let (v, h) = (layout.dims.n_items, layout.dims.hidden_dim);
    let p = layout.len;
    let BatchShape {
        n,
        k,
        q,
        max_prefix_len: len,
        steps,
    } = *shape;
    // Distinct prefix items, records per split and sequences per split of the largest task.
    let u = v.min((k + q) * len);
    let ws = pack::workspace(&d, u, k.max(q) * len, k.max(q), steps * k, block as usize).map_err(
        |e| {
            Error::Shape(format!(
                "{e}: a task's workspace for {v} items, H = {h}, K = {k}, Q = {q}, prefixes up \
                 to {len} and {steps} inner steps is too large for one task; lower the \
                 catalogue (prepare's item count), K, the prefix cap or maml.inner_steps"
            ))
        },
    )?;
    let workspace_per_task = ws.stride as usize * F32;
    // Per split (pack_split): sequence starts, tokens, labels, the row CSR's starts and entries.
    let split = |seqs: usize| (seqs + 1) + seqs * len + seqs + (u + 1) + seqs * len;
    let ints = n * (split(k) + split(q) + u) + (v + 1) + 2 * n * u;
    let floats = n * (k + q);
    let tables = ints * 4 + floats * F32 + n * std::mem::size_of::<TaskDesc>();
    Ok(MemoryNeed {
        params: (4 * p + v * h + NORM_BLOCKS as usize + 2) * F32,
        workspace_per_task,
        workspaces: n * workspace_per_task + n * F32,
        tables,
        eval: (n * 2 * q * v + 2 * n) * F32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Task;
    use crate::model::ModelDims;

    #[test]
    fn the_workspace_grows_with_v_and_the_batch_with_n() {
        let layout = |v| {
            ParamLayout::new(ModelDims {
                n_items: v,
                embed_dim: 8,
                hidden_dim: 16,
            })
        };
        let shape = BatchShape {
            n: 4,
            k: 3,
            q: 2,
            max_prefix_len: 5,
            steps: 2,
        };
        let small = need(&layout(100), 64, &shape).unwrap();
        let large = need(&layout(1000), 64, &shape).unwrap();
        // The V-sized workspace rows: bias, dbias, the 2 x 3 low-rank terms, the transposed
        // dlogits (8 columns), the logits of 3 sequences: 19 floats per item.
        let grown = large.workspace_per_task - small.workspace_per_task;
        assert!(
            (19 * 900 * 4 - 640..=19 * 900 * 4 + 640).contains(&grown),
            "{grown}"
        );
        let doubled = need(&layout(100), 64, &BatchShape { n: 8, ..shape }).unwrap();
        assert_eq!(doubled.workspaces, 2 * small.workspaces);
        assert_eq!(doubled.eval, 2 * small.eval);
        assert_eq!(small.params, doubled.params);
    }

    /// The workspace is sized for the largest task the shape allows: a task with every prefix at
    /// the cap and no item repeated packs to exactly the reported workspace and tables.
    #[test]
    fn the_largest_task_packs_to_exactly_the_reported_size() {
        let layout = ParamLayout::new(ModelDims {
            n_items: 500,
            embed_dim: 8,
            hidden_dim: 16,
        });
        let (k, q, len) = (3, 2, 6);
        let mut next = 1u32;
        let mut prefixes = |n: usize| -> Vec<Vec<u32>> {
            (0..n)
                .map(|_| {
                    next += len as u32;
                    (next - len as u32..next).collect()
                })
                .collect()
        };
        let (sp, qp) = (prefixes(k), prefixes(q));
        let (sl, ql, w) = (vec![7u32; k], vec![9u32; q], vec![1.0 / k as f32; k]);
        let task = Task {
            support_prefixes: &sp,
            support_labels: &sl,
            support_weights: &w,
            query_prefixes: &qp,
            query_labels: &ql,
        };
        let shape = BatchShape {
            n: 2,
            k,
            q,
            max_prefix_len: len,
            steps: 3,
        };
        let need = need(&layout, 128, &shape).unwrap();
        let b = pack::pack(&[task, task], &Dims::of(&layout), 3, 128).unwrap();
        assert_eq!(b.ws.stride as usize * F32, need.workspace_per_task);
        let tables = b.ints.len() * 4 + b.floats.len() * F32 + 2 * std::mem::size_of::<TaskDesc>();
        assert_eq!(tables, need.tables);
    }

    /// Catalogues up to 1,000,000 items and H up to 256 at the reference episode sizes fit every
    /// architecture's block size; one past the kernels' 32-bit offsets is an error that names
    /// what to lower.
    #[test]
    fn a_million_items_fit_and_a_too_large_task_names_the_setting() {
        for cc in crate::cuda::plan::ARCHS {
            let block = crate::cuda::plan::default_block(cc);
            for v in [1_000, 50_000, 1_000_000] {
                for h in [64, 128, 256] {
                    let layout = ParamLayout::new(ModelDims {
                        n_items: v,
                        embed_dim: 64,
                        hidden_dim: h,
                    });
                    let shape = BatchShape {
                        n: 32,
                        k: 10,
                        q: 10,
                        max_prefix_len: 50,
                        steps: 5,
                    };
                    let m = need(&layout, block, &shape).unwrap();
                    // The low-rank terms alone are K x steps rows of V floats.
                    assert!(m.workspace_per_task >= 50 * v * F32, "{m:?}");
                }
            }
        }
        let layout = ParamLayout::new(ModelDims {
            n_items: 1_000_000,
            embed_dim: 64,
            hidden_dim: 256,
        });
        let shape = BatchShape {
            n: 32,
            k: 50,
            q: 10,
            max_prefix_len: 50,
            steps: 100,
        };
        let e = need(&layout, 768, &shape).unwrap_err().to_string();
        for needle in ["1000000 items", "K = 50", "maml.inner_steps", "32-bit"] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
