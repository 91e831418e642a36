//! What a configuration asks of a backend: the inner loop ([`inner_loop`]), the outer update
//! ([`outer_config`]) and the backend itself ([`make_backend`]).

use crate::backend::{Backend, InnerLoop, OuterConfig};
use crate::config::{BackendKind, Config};
use crate::error::Result;
use crate::model::ParamLayout;

/// The inner loop of a configuration.
pub fn inner_loop(cfg: &Config) -> InnerLoop {
    InnerLoop {
        lr: cfg.maml.inner_lr as f32,
        steps: cfg.maml.inner_steps,
    }
}

/// The outer update of a configuration (clip 0 disables clipping), with residual warm-start's
/// penalty `warmstart.residual_l2` as the anchor penalty (the anchor is the pretrained θ).
pub fn outer_config(cfg: &Config) -> OuterConfig {
    let clip = if cfg.maml.grad_clip > 0.0 {
        cfg.maml.grad_clip as f32
    } else {
        f32::INFINITY
    };
    OuterConfig {
        anchor_l2: cfg.warmstart.residual_l2 as f32,
        ..OuterConfig::adam(cfg.maml.outer_lr as f32, clip)
    }
}

/// A backend for the configuration's `run.backend`: `cpu`, `cuda` (an error without a usable
/// GPU), or `auto`: CUDA when a driver and a device are found, else the CPU (also when the CUDA
/// backend cannot start there, with a warning on stderr saying why).
pub fn make_backend(
    cfg: &Config,
    layout: ParamLayout,
    theta: Vec<f32>,
) -> Result<Box<dyn Backend>> {
    match cfg.run.backend {
        BackendKind::Cpu => Ok(Box::new(crate::cpu::Cpu::new(layout, theta)?)),
        BackendKind::Cuda => Ok(Box::new(crate::cuda::Cuda::new(layout, theta)?)),
        BackendKind::Auto if crate::cuda::device_available() => {
            match crate::cuda::Cuda::new(layout.clone(), theta.clone()) {
                Ok(gpu) => Ok(Box::new(gpu)),
                Err(e) => {
                    eprintln!("warning: a CUDA device was found but cannot be used ({e}); running on the CPU");
                    Ok(Box::new(crate::cpu::Cpu::new(layout, theta)?))
                }
            }
        }
        BackendKind::Auto => Ok(Box::new(crate::cpu::Cpu::new(layout, theta)?)),
    }
}
