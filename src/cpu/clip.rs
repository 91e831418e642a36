//! PyTorch's `clip_grad_norm_` on the flat meta-gradient: its total norm and, above the bound,
//! the scaling. The CPU twin of `kernels/clip.cu` (the norm; `adam.cu` applies the scale).

use super::float::Float;
use rayon::prelude::*;

/// Elements per chunk of the norm's sum of squares and of the scaling.
const CHUNK: usize = 16384;

/// PyTorch's `clip_grad_norm_` on one flat gradient: computes the total L2 norm and, when
/// `max_norm / (norm + 1e-6) < 1`, scales the gradient by that factor. `max_norm <= 0` or
/// infinite disables the clip. Returns the norm before clipping, accumulated in f64: each chunk
/// of `CHUNK` elements summed in order (chunks in parallel), then the chunks' sums in order, so
/// the thread count does not change a bit.
pub fn clip_grad_norm<F: Float>(grad: &mut [F], max_norm: f64) -> f64 {
    let sums: Vec<f64> = grad
        .par_chunks(CHUNK)
        .map(|c| {
            c.iter()
                .map(|g| {
                    let g = g.to_f64();
                    g * g
                })
                .sum::<f64>()
        })
        .collect();
    let norm = sums.iter().sum::<f64>().sqrt();
    if max_norm > 0.0 && max_norm.is_finite() {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            let c = F::from_f64(coef);
            grad.par_chunks_mut(CHUNK).for_each(|chunk| {
                for g in chunk {
                    *g *= c;
                }
            });
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
