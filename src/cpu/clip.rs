//! PyTorch's `clip_grad_norm_` on the flat meta-gradient: its total norm and, above the bound,
//! the scaling. The CPU twin of `kernels/clip.cu` (the norm; `adam.cu` applies the scale).

use super::float::Float;

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
}
