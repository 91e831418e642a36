//! `recmaml gpu-check`: the CUDA backend against the CPU engine on random tasks
//! ([`recmaml::verify::gpu_check`]), for GPU machines.

use clap::Args;
use recmaml::verify::{self, GpuCheck, Tolerances};

/// `recmaml gpu-check`.
#[derive(Args, Debug)]
pub struct GpuCheckArgs {
    /// Only the first (small) case, e.g. under compute-sanitizer.
    #[arg(long)]
    small: bool,
    /// Largest accepted relative difference per tensor (||gpu - cpu|| / ||cpu||).
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Largest accepted relative difference of each tensor's update in a meta-step
    /// (||Δgpu - Δcpu|| / ||Δcpu||, Δ = θ_after - θ_before).
    #[arg(long, default_value_t = verify::UPDATE_TOL)]
    update_tol: f64,
    /// Seed of the random tasks and weights.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Largest accepted relative difference of each tensor's change over the pretraining
    /// check's 2 epochs (θ_end - θ_start).
    #[arg(long, default_value_t = verify::PRETRAIN_TOL)]
    pretrain_tol: f64,
}

/// Runs the check; it prints its own report as it goes.
pub fn run(a: &GpuCheckArgs) -> recmaml::Result<()> {
    verify::gpu_check(&GpuCheck {
        small: a.small,
        seed: a.seed,
        tols: Tolerances {
            tol: a.tol,
            update: a.update_tol,
            pretrain: a.pretrain_tol,
        },
    })
}
