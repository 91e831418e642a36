//! Residual warm-start (θ = θ_pre + δ, θ_pre frozen, δ from 0 meta-trained, optional L2 penalty
//! on δ) against a direct computation in the δ parametrisation: the meta-gradient at θ_pre + δ,
//! plus the penalty's gradient μ·δ, clipped, and `torch.optim.Adam` on δ (the engine's own
//! `adam_step` and `clip_grad_norm` on a separate δ vector). With μ = 0 the first meta-iteration
//! is warm-start MAML's; with μ > 0 the backend's anchored steps are the penalised δ steps.

use recmaml::backend::{Backend, InnerLoop, OuterConfig, Task};
use recmaml::cpu::adam::{adam_step, Adam};
use recmaml::cpu::clip::clip_grad_norm;
use recmaml::cpu::Cpu;
use recmaml::data::Episode;
use recmaml::verify::{linear_weights, Case};

const LR: f32 = 1e-4;
const CLIP: f32 = 10.0;

/// The case (V E H N K Q S) and its "pretrained" weights θ_pre.
fn case() -> (Case, Vec<f32>, Vec<Episode>) {
    let case = Case::new((60, 8, 12, 4, 5, 6, 3), 10, 17);
    let mut theta = case.theta();
    // Not the initialisation: a warm start begins from trained weights (any fixed vector will do).
    for (i, t) in theta.iter_mut().enumerate() {
        *t += 0.01 * ((i % 13) as f32 - 6.0);
    }
    let eps = case.episodes();
    (case, theta, eps)
}

/// `steps` meta-iterations of δ from 0 with penalty `mu`, computed in the δ parametrisation;
/// returns θ_pre + δ.
fn delta_steps(case: &Case, pre: &[f32], tasks: &[Task], mu: f32, steps: usize) -> Vec<f32> {
    let inner = case.inner();
    let p = pre.len();
    let mut delta = vec![0.0f32; p];
    let (mut m, mut v) = (vec![0.0f32; p], vec![0.0f32; p]);
    let adam = Adam::from_outer(&OuterConfig::adam(LR, CLIP));
    let mut eval = Cpu::new(case.layout(), pre.to_vec()).unwrap();
    for t in 1..=steps {
        let theta: Vec<f32> = pre.iter().zip(&delta).map(|(a, d)| a + d).collect();
        eval.set_params(&theta).unwrap();
        let mut g = vec![0.0f32; p];
        eval.meta_gradient(tasks, &inner, &mut g).unwrap();
        for (g, d) in g.iter_mut().zip(&delta) {
            *g += mu * d;
        }
        clip_grad_norm(&mut g, CLIP as f64);
        adam_step(&mut delta, &g, &mut m, &mut v, t as u64, &adam);
    }
    pre.iter().zip(&delta).map(|(a, d)| a + d).collect()
}

/// `steps` meta-steps of the backend from θ_pre (anchored at θ_pre when `mu > 0`).
fn backend_steps(case: &Case, pre: &[f32], tasks: &[Task], mu: f32, steps: usize) -> Vec<f32> {
    let mut cpu = Cpu::new(case.layout(), pre.to_vec()).unwrap();
    if mu > 0.0 {
        Backend::set_anchor(&mut cpu, pre).unwrap();
    }
    let outer = OuterConfig {
        anchor_l2: mu,
        ..OuterConfig::adam(LR, CLIP)
    };
    let inner: InnerLoop = case.inner();
    for _ in 0..steps {
        cpu.meta_step(tasks, &inner, &outer).unwrap();
    }
    cpu.params().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Rounding of an f32 update near the weights' scale: a few ulps of the largest weight.
fn rounding(theta: &[f32]) -> f32 {
    let big = theta.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    4.0 * big * f32::EPSILON
}

#[test]
fn residual_warm_start_with_no_penalty_takes_warm_start_maml_s_first_step() {
    let (case, pre, eps) = case();
    let w = linear_weights(case.k);
    let tasks: Vec<Task> = eps.iter().map(|e| Task::of(e, &w)).collect();
    let warm = backend_steps(&case, &pre, &tasks, 0.0, 1);
    let residual = delta_steps(&case, &pre, &tasks, 0.0, 1);
    let moved = max_abs_diff(&warm, &pre);
    // Adam's first step moves every weight with a gradient by about lr.
    assert!(moved > 0.5 * LR, "the step moved θ by only {moved}");
    let d = max_abs_diff(&warm, &residual);
    assert!(
        d <= rounding(&pre),
        "warm-start θ1 and θ_pre + δ1 differ by {d} (rounding {})",
        rounding(&pre)
    );
}

#[test]
fn an_anchored_backend_takes_the_penalised_delta_steps() {
    let (case, pre, eps) = case();
    let w = linear_weights(case.k);
    let tasks: Vec<Task> = eps.iter().map(|e| Task::of(e, &w)).collect();
    // μ large enough that the penalty's gradient μ·δ (δ ~ lr per step) is comparable to the
    // meta-gradient's small entries by the third step.
    let mu = 50.0;
    let steps = 3;
    let anchored = backend_steps(&case, &pre, &tasks, mu, steps);
    let by_delta = delta_steps(&case, &pre, &tasks, mu, steps);
    let free = backend_steps(&case, &pre, &tasks, 0.0, steps);
    let d = max_abs_diff(&anchored, &by_delta);
    let effect = max_abs_diff(&anchored, &free);
    assert!(
        d <= rounding(&pre) * steps as f32,
        "anchored θ and θ_pre + δ differ by {d}"
    );
    // The penalty changed the steps, by much more than rounding.
    assert!(
        effect > 100.0 * rounding(&pre),
        "the penalty changed θ by only {effect}"
    );
}

#[test]
fn an_anchored_step_without_an_anchor_is_an_error() {
    let (case, pre, eps) = case();
    let w = linear_weights(case.k);
    let tasks: Vec<Task> = eps.iter().map(|e| Task::of(e, &w)).collect();
    let mut cpu = Cpu::new(case.layout(), pre).unwrap();
    let outer = OuterConfig {
        anchor_l2: 1.0,
        ..OuterConfig::adam(LR, CLIP)
    };
    let err = cpu
        .meta_step(&tasks, &case.inner(), &outer)
        .unwrap_err()
        .to_string();
    assert!(err.contains("anchor"), "{err}");
}
