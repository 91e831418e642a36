//! A pretraining batch as the meta-iteration's kernels run it: tasks of [`CHUNK`] pairs whose
//! query split is the chunk (loss weights 1 / batch size, the dropout multipliers on their final
//! hidden states) and which take no inner step, their gradients summed rather than averaged.

use super::pack::QueryOverride;
use crate::backend::{PairBatch, Task};
use crate::error::{Error, Result};

/// Pairs per task (a batch of 256 runs as 32 blocks).
pub const CHUNK: usize = 8;

/// A batch cut into chunks: prefixes cut to the cap, labels, loss weights, multipliers.
pub struct Chunks<'a> {
    prefixes: Vec<Vec<Vec<u32>>>,
    labels: Vec<&'a [u32]>,
    weights: Vec<Vec<f32>>,
    masks: Vec<Option<&'a [f32]>>,
}

impl<'a> Chunks<'a> {
    /// `batch` for a model of hidden size `h`.
    pub fn of(batch: &PairBatch<'a>, h: usize) -> Result<Self> {
        let b = batch.labels.len();
        if b == 0 || batch.prefixes.len() != b || batch.mask.len() != b * h {
            return Err(Error::Shape(format!(
                "pretraining batch: {} prefixes, {b} labels, {} dropout multipliers for hidden size {h}",
                batch.prefixes.len(),
                batch.mask.len()
            )));
        }
        let cap = batch.max_prefix_len;
        let w = 1.0 / b as f32;
        // Multipliers of exactly 1 (no dropout) change nothing: the kernels then skip them.
        let dropout = batch.mask.iter().any(|&m| m != 1.0);
        Ok(Chunks {
            prefixes: batch
                .prefixes
                .chunks(CHUNK)
                .map(|c| {
                    c.iter()
                        .map(|p| p[p.len().saturating_sub(cap)..].to_vec())
                        .collect()
                })
                .collect(),
            labels: batch.labels.chunks(CHUNK).collect(),
            weights: batch
                .labels
                .chunks(CHUNK)
                .map(|l| vec![w; l.len()])
                .collect(),
            masks: batch
                .mask
                .chunks(CHUNK * h)
                .map(|m| dropout.then_some(m))
                .collect(),
        })
    }

    /// One task per chunk. With no inner step the support split is never read, but a task
    /// needs one pair there: the chunk's first, so that the batch is not checked and packed
    /// twice.
    pub fn tasks(&self) -> Vec<Task<'_>> {
        (0..self.prefixes.len())
            .map(|c| Task {
                support_prefixes: &self.prefixes[c][..1],
                support_labels: &self.labels[c][..1],
                support_weights: &self.weights[c][..1],
                query_prefixes: &self.prefixes[c],
                query_labels: self.labels[c],
            })
            .collect()
    }

    /// Each chunk's query weights and dropout multipliers.
    pub fn overrides(&self) -> Vec<QueryOverride<'_>> {
        self.weights
            .iter()
            .zip(&self.masks)
            .map(|(w, m)| QueryOverride {
                weights: w,
                mask: *m,
            })
            .collect()
    }
}
