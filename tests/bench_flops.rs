//! `recmaml bench`'s FLOP count (`bench::flops_per_iteration`) against a hand count on a tiny
//! configuration.
//!
//! The counter's convention (its doc comment): a multiply-add is 2 FLOPs; element-wise work has
//! fixed allowances of 20 FLOPs per hidden unit per GRU step, 5 per logit for the softmax
//! cross-entropy, 2 per parameter for an SGD step (θ − α·g: a multiply and a subtract), 1 per
//! parameter per task for summing the meta-gradient and 12 per parameter for Adam; a backward
//! pass costs twice its forward; embedding lookups are free.
//!
//! The model is PyTorch's: `Embedding(V, E)`, `GRU(E, H)` with gates r, z, n
//! (`r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + … )`,
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`, `h' = (1 − z) ⊙ n + z ⊙ h`), and
//! `Linear(H, V)` on the last hidden state, trained with softmax cross-entropy; first-order MAML
//! with SGD inner steps and Adam on the meta-gradient.

use recmaml::backend::Task;
use recmaml::bench::flops_per_iteration;
use recmaml::model::{ModelDims, ParamLayout};

const DIMS: ModelDims = ModelDims {
    n_items: 5,
    embed_dim: 2,
    hidden_dim: 3,
};

// The tiny configuration: V 5, E 2, H 3; one task with K 1 support pair (prefix length 1) and
// Q 1 query pair (prefix length 2).
//
// Parameters P (PyTorch's shapes):
//   embedding.weight   V×E  = 5·2 = 10
//   gru.weight_ih_l0  3H×E  = 9·2 = 18
//   gru.weight_hh_l0  3H×H  = 9·3 = 27
//   gru.bias_ih_l0    3H    =       9
//   gru.bias_hh_l0    3H    =       9
//   output.weight      V×H  = 5·3 = 15
//   output.bias        V    =       5
//   P = 10 + 18 + 27 + 9 + 9 + 15 + 5 = 93
//
// One GRU step (forward):
//   W_i{r,z,n} x:  3H×E = 18 multiply-adds = 36
//   W_h{r,z,n} h:  3H×H = 27 multiply-adds = 54
//   element-wise:  20 per unit · H 3        = 60
//   = 150
// Output layer on the last hidden state (forward):
//   W h:           V×H = 15 multiply-adds   = 30
//   softmax CE:    5 per logit · V 5        = 25
//   = 55
// A prefix of length L, forward: L·150 + 55; forward and backward: 3·(L·150 + 55).
//   support prefix, L 1: 3·(150 + 55) = 615
//   query prefix,   L 2: 3·(300 + 55) = 1065
// Inner loop, 1 SGD step: the support pass and the update of every parameter, 615 + 2·93 = 801.
// Query: the adapted weights' loss and gradient (first order: no second derivatives), 1065.
// Meta-gradient: the task's query gradient added to the sum, 93.
// Task: 801 + 1065 + 93 = 1959.
// Adam on θ: 12·93 = 1116.
// Meta-iteration: 1959 + 1116 = 3075.
const SUPPORT_PASS: f64 = 615.0;
const SGD: f64 = 186.0;
const QUERY_PASS: f64 = 1065.0;
const META_SUM: f64 = 93.0;
const TASK: f64 = SUPPORT_PASS + SGD + QUERY_PASS + META_SUM; // 1959
const ADAM: f64 = 1116.0;
const GRU_STEP: f64 = 150.0;

#[test]
fn the_parameter_count_is_pytorchs() {
    assert_eq!(ParamLayout::new(DIMS).len, 93);
}

#[test]
fn one_meta_iteration_of_the_tiny_configuration_matches_the_hand_count() {
    let sp = [vec![1u32]];
    let qp = [vec![3u32, 4]];
    let task = Task {
        support_prefixes: &sp,
        support_labels: &[2],
        support_weights: &[1.0],
        query_prefixes: &qp,
        query_labels: &[1],
    };
    assert_eq!(TASK + ADAM, 3075.0);
    assert_eq!(flops_per_iteration(&[task], DIMS, 1), 3075.0);
}

#[test]
fn each_added_piece_of_work_adds_its_hand_counted_cost() {
    let sp = [vec![1u32]];
    let qp = [vec![3u32, 4]];
    let task = Task {
        support_prefixes: &sp,
        support_labels: &[2],
        support_weights: &[1.0],
        query_prefixes: &qp,
        query_labels: &[1],
    };
    let base = TASK + ADAM;
    // A second inner step: one more support pass and SGD update, 615 + 186 = 801.
    assert_eq!(
        flops_per_iteration(&[task], DIMS, 2),
        base + SUPPORT_PASS + SGD
    );
    // No inner step: the query pass on θ itself, the meta-gradient sum and Adam, 1065 + 93 + 1116.
    assert_eq!(
        flops_per_iteration(&[task], DIMS, 0),
        QUERY_PASS + META_SUM + ADAM
    );
    // A second task: its own 1959, while Adam runs once.
    assert_eq!(flops_per_iteration(&[task, task], DIMS, 1), base + TASK);
    // A query prefix one item longer: one more GRU step, forward and backward, 3·150 = 450.
    let qp3 = [vec![3u32, 4, 2]];
    let longer = Task {
        query_prefixes: &qp3,
        ..task
    };
    assert_eq!(
        flops_per_iteration(&[longer], DIMS, 1),
        base + 3.0 * GRU_STEP
    );
    // A second support pair of length 1: one more support pass per inner step, 615.
    let sp2 = [vec![1u32], vec![4u32]];
    let k2 = Task {
        support_prefixes: &sp2,
        support_labels: &[2, 3],
        support_weights: &[0.5, 0.5],
        ..task
    };
    assert_eq!(flops_per_iteration(&[k2], DIMS, 1), base + SUPPORT_PASS);
}
