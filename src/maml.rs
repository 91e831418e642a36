//! PyTorch's `clip_grad_norm_` and one step of `torch.optim.Adam`, on a flat gradient.

use crate::backend::OuterConfig;
use crate::cpu::Float;

/// PyTorch's `clip_grad_norm_` on one flat gradient: computes the total L2 norm and, when
/// `max_norm / (norm + 1e-6) < 1`, scales the gradient by that factor. `max_norm <= 0` or
/// infinite disables the clip. Returns the norm before clipping (accumulated in f64).
pub fn clip_grad_norm<F: Float>(grad: &mut [F], max_norm: f64) -> f64 {
    let norm = grad
        .iter()
        .map(|g| {
            let g = g.to_f64();
            g * g
        })
        .sum::<f64>()
        .sqrt();
    if max_norm > 0.0 && max_norm.is_finite() {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            let c = F::from_f64(coef);
            for g in grad.iter_mut() {
                *g *= c;
            }
        }
    }
    norm
}

/// `torch.optim.Adam`'s hyper-parameters in the engine's float type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam<F> {
    /// Learning rate.
    pub lr: F,
    /// First-moment decay (0.9).
    pub beta1: F,
    /// Second-moment decay (0.999).
    pub beta2: F,
    /// Added to the denominator (1e-8).
    pub eps: F,
}

impl<F: Float> Adam<F> {
    /// From the outer-loop configuration.
    pub fn from_outer(o: &OuterConfig) -> Self {
        let c = |x: f32| F::from_f64(x as f64);
        Adam {
            lr: c(o.lr),
            beta1: c(o.beta1),
            beta2: c(o.beta2),
            eps: c(o.eps),
        }
    }
}

/// One step of `torch.optim.Adam` (no weight decay, not amsgrad), exactly PyTorch's single-tensor
/// update: `m = lerp(m, g, 1 − β1)`, `v = β2 v + (1 − β2) g²`,
/// `denom = sqrt(v) / sqrt(1 − β2^t) + eps`, `params −= (lr / (1 − β1^t)) · m / denom`, where
/// `step` is t after the increment (1 on the first call).
pub fn adam_step<F: Float>(
    params: &mut [F],
    grads: &[F],
    m: &mut [F],
    v: &mut [F],
    step: u64,
    cfg: &Adam<F>,
) {
    let t = step.min(i32::MAX as u64) as i32;
    let bias_c1 = F::ONE - F::from_f64(cfg.beta1.to_f64().powi(t));
    let bias_c2 = F::ONE - F::from_f64(cfg.beta2.to_f64().powi(t));
    let step_size = cfg.lr / bias_c1;
    let bias_c2_sqrt = bias_c2.sqrt();
    let w1 = F::ONE - cfg.beta1;
    let w2 = F::ONE - cfg.beta2;
    for (((p, &g), m), v) in params
        .iter_mut()
        .zip(grads)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        *m += w1 * (g - *m);
        *v = *v * cfg.beta2 + w2 * g * g;
        let denom = v.sqrt() / bias_c2_sqrt + cfg.eps;
        *p -= step_size * (*m / denom);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn clip_scales_only_above_the_bound() {
        let mut g = vec![3.0f64, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 10.0), 5.0);
        assert_eq!(g, vec![3.0, 4.0]);
        let n = clip_grad_norm(&mut g, 1.0);
        assert_eq!(n, 5.0);
        let c = 1.0 / (5.0 + 1e-6);
        assert!((g[0] - 3.0 * c).abs() < 1e-15 && (g[1] - 4.0 * c).abs() < 1e-15);
        let mut g = vec![3.0f64, 4.0];
        clip_grad_norm(&mut g, f64::INFINITY);
        clip_grad_norm(&mut g, 0.0);
        assert_eq!(g, vec![3.0, 4.0]);
    }

    #[test]
    fn adam_first_step_moves_by_lr_times_sign() {
        let cfg = Adam {
            lr: 0.001f64,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut p = vec![1.0, 1.0, 1.0];
        let g = [0.5, -2.0, 0.0];
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        adam_step(&mut p, &g, &mut m, &mut v, 1, &cfg);
        // m̂ = g, v̂ = g², so the step is lr · g / (|g| + eps).
        assert!((p[0] - (1.0 - 0.001 * 0.5 / (0.5 + 1e-8))).abs() < 1e-15);
        assert!((p[1] - (1.0 + 0.001 * 2.0 / (2.0 + 1e-8))).abs() < 1e-15);
        assert_eq!(p[2], 1.0);
    }
}
