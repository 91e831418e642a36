//! The work of one meta-iteration: its FLOP count, the fewest bytes it must move through memory,
//! and the floor these give on a device with known ceilings.

use crate::backend::Task;
use crate::model::{ModelDims, ParamLayout};

/// FLOPs of one meta-iteration, counting each prefix's GRU steps, the output layer, their
/// backward passes (twice the forward), the SGD updates, the meta-gradient sum and Adam.
///
/// A multiply-add counts 2 FLOPs, so a GRU step costs `2·3H·(E + H)` for its two matrix products
/// and the output layer `2·V·H`. The element-wise work has fixed allowances: 20 FLOPs per hidden
/// unit per GRU step (gate sums, sigmoid, tanh, the blend), 5 per logit (softmax cross-entropy),
/// 2 per parameter for an SGD step (multiply by the rate, subtract), 1 per parameter and task for
/// the meta-gradient sum, and 12 per parameter for Adam. Embedding lookups cost nothing. Every
/// prefix counts in full, as if no prefixes were shared.
pub fn flops_per_iteration(tasks: &[Task], dims: ModelDims, inner_steps: usize) -> f64 {
    let (v, e, h) = (
        dims.n_items as f64,
        dims.embed_dim as f64,
        dims.hidden_dim as f64,
    );
    let p = ParamLayout::new(dims).len as f64;
    let gru_step = 2.0 * 3.0 * h * (e + h) + 20.0 * h;
    let out = 2.0 * v * h + 5.0 * v;
    let pass = |prefixes: &[Vec<u32>]| -> f64 {
        prefixes
            .iter()
            .map(|x| 3.0 * (x.len() as f64 * gru_step + out))
            .sum()
    };
    let per_task: f64 = tasks
        .iter()
        .map(|t| {
            inner_steps as f64 * (pass(t.support_prefixes) + 2.0 * p) + pass(t.query_prefixes) + p
        })
        .sum();
    per_task + 12.0 * p
}

/// The fewest bytes one meta-iteration must move through device memory: θ, the two Adam moments
/// (each read and written once) and the meta-gradient (written and read once), 4 bytes each,
/// plus the batch itself (every prefix item, label and weight once).
pub fn min_bytes_per_iteration(tasks: &[Task], p: usize) -> f64 {
    let batch: usize = tasks
        .iter()
        .map(|t| {
            let items = |x: &[Vec<u32>]| x.iter().map(Vec::len).sum::<usize>();
            items(t.support_prefixes)
                + items(t.query_prefixes)
                + 2 * t.support_labels.len()
                + t.query_labels.len()
        })
        .sum();
    4.0 * (8 * p + batch) as f64
}

/// The floor in ms, `max(flops / peak_gflops, bytes / peak_gbps)`, when both ceilings are known.
pub(super) fn floor_ms(
    flops: f64,
    bytes: f64,
    peak_gflops: Option<f64>,
    peak_gbps: Option<f64>,
) -> Option<f64> {
    match (peak_gflops, peak_gbps) {
        (Some(f), Some(b)) => Some((flops / (f * 1e9)).max(bytes / (b * 1e9)) * 1e3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_floor_counts_theta_adam_gradient_and_the_batch() {
        let sp = [vec![1u32, 2, 3], vec![4]];
        let qp = [vec![5u32, 6]];
        let t = Task {
            support_prefixes: &sp,
            support_labels: &[7, 8],
            support_weights: &[0.5, 0.5],
            query_prefixes: &qp,
            query_labels: &[9],
        };
        // 8 floats per parameter (θ, m, v read and written; the gradient written and read) and
        // per task its 6 prefix items, 2 support labels + 2 weights and 1 query label.
        assert_eq!(
            min_bytes_per_iteration(&[t, t], 100),
            4.0 * (800.0 + 2.0 * 11.0)
        );
    }

    #[test]
    fn the_floor_is_the_slower_of_arithmetic_and_memory() {
        assert_eq!(floor_ms(2e9, 1e9, Some(1000.0), Some(100.0)), Some(10.0));
        assert_eq!(floor_ms(2e9, 1e6, Some(1000.0), Some(100.0)), Some(2.0));
        assert_eq!(floor_ms(2e9, 1e6, Some(1000.0), None), None);
    }
}
