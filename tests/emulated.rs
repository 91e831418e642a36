//! The CUDA backend (`recmaml::cuda::Cuda`, its host code as users run it) on the emulated
//! kernels (`tests/emu/`) against the CPU engine.

mod common;
mod emu;

use recmaml::backend::{Backend, InnerLoop, Task};
use recmaml::cpu::Cpu;
use recmaml::cuda::Cuda;
use recmaml::model::{init_params, ModelDims, ParamLayout};

#[test]
fn emulated_meta_gradient_matches_cpu() {
    let Some(dev) = emu::device(64) else { return };
    let layout = ParamLayout::new(ModelDims {
        n_items: 40,
        embed_dim: 16,
        hidden_dim: 32,
    });
    let theta = init_params(&layout, 3);
    let eps = recmaml::data::workload::generate_episodes(3, 3, 4, 40, 12, 3);
    let w = vec![1.0 / 3.0; 3];
    let tasks: Vec<Task> = eps
        .iter()
        .map(|e| recmaml::backend::Task::of(e, &w))
        .collect();
    let inner = InnerLoop { lr: 0.05, steps: 2 };
    let mut cpu = Cpu::new(layout.clone(), theta.clone()).unwrap();
    let mut gpu = Cuda::on(dev, layout.clone(), theta).unwrap();
    gpu.set_poison(true);
    let (mut a, mut b) = (vec![0.0; layout.len], vec![0.0; layout.len]);
    let la = cpu.meta_gradient(&tasks, &inner, &mut a).unwrap();
    let lb = gpu.meta_gradient(&tasks, &inner, &mut b).unwrap();
    assert!(((la - lb) / la).abs() < 1e-5, "{la} {lb}");
    let d: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let n: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    assert!(d / n < 1e-4, "{}", d / n);
}
