//! One step of `torch.optim.Adam` on θ ([`adam_step`]) with its hyper-parameters ([`Adam`]),
//! taken by meta-training and pretraining alike. The CPU twin of `kernels/adam.cu`.

use super::float::Float;
use crate::backend::OuterConfig;
use rayon::prelude::*;

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
    // Element-wise, so chunks can run in parallel without changing a bit.
    params
        .par_chunks_mut(CHUNK)
        .zip(grads.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                *m += w1 * (g - *m);
                *v = *v * cfg.beta2 + w2 * g * g;
                let denom = v.sqrt() / bias_c2_sqrt + cfg.eps;
                *p -= step_size * (*m / denom);
            }
        });
}

/// Parameters per parallel chunk of the Adam step.
const CHUNK: usize = 16384;

#[cfg(test)]
mod tests {
    use super::*;

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
