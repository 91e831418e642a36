//! Parameter initialisation with the distributions PyTorch's modules use, drawn from the seeded
//! [`Rng`] (so the values differ from torch's but the distributions are the same):
//!
//! - `nn.Embedding(V, E, padding_idx=0)`: N(0, 1), then row 0 (the padding item) set to zero;
//! - `nn.GRU(E, H)`: every weight and bias U(-1/sqrt(H), 1/sqrt(H));
//! - `nn.Linear(H, V)`: weight `kaiming_uniform_(a=sqrt(5))`, which is U(-1/sqrt(H), 1/sqrt(H)),
//!   and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = H: the same bound.
//!
//! Values are drawn in f64 and rounded to f32, tensor by tensor in [`PARAM_NAMES`] order.
//!
//! [`PARAM_NAMES`]: super::PARAM_NAMES

use super::ParamLayout;
use crate::rng::Rng;

/// A freshly initialised flat parameter buffer for `layout`, determined by `seed`.
pub fn init_params(layout: &ParamLayout, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut theta = vec![0f32; layout.len];
    let bound = 1.0 / (layout.dims.hidden_dim as f64).sqrt();
    for t in &layout.tensors {
        let dst = &mut theta[t.range()];
        if t.name == "embedding.weight" {
            dst.iter_mut().for_each(|x| *x = rng.normal() as f32);
            // padding_idx = 0: the first row (E values) is zero.
            dst[..layout.dims.embed_dim].fill(0.0);
        } else {
            dst.iter_mut()
                .for_each(|x| *x = rng.uniform(-bound, bound) as f32);
        }
    }
    theta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelDims;

    fn mean_var(x: &[f32]) -> (f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    /// Tolerances are 5 standard errors of the statistic, so a correct sampler fails with
    /// probability below 1e-6 per check whatever the seed.
    #[test]
    fn distributions_match_pytorch_modules() {
        let dims = ModelDims {
            n_items: 1519,
            embed_dim: 64,
            hidden_dim: 64,
        };
        let layout = ParamLayout::new(dims);
        for seed in [0, 42] {
            let theta = init_params(&layout, seed);
            let emb = &theta[layout.embedding()];
            assert!(
                emb[..64].iter().all(|&v| v == 0.0),
                "padding row 0 must be zero"
            );
            // N(0, 1) on the other rows: mean, variance, and the mass within one sigma
            // (0.6827 for a normal, 0.577 for a uniform of the same variance).
            let rest = &emb[64..];
            let n = rest.len() as f64;
            let (m, v) = mean_var(rest);
            assert!(m.abs() < 5.0 / n.sqrt(), "embedding mean {m}");
            assert!(
                (v - 1.0).abs() < 5.0 * (2.0 / n).sqrt(),
                "embedding variance {v}"
            );
            let within = rest.iter().filter(|x| x.abs() < 1.0).count() as f64 / n;
            let p = 0.682_689_492;
            assert!(
                (within - p).abs() < 5.0 * (p * (1.0 - p) / n).sqrt(),
                "P(|x|<1) = {within}"
            );

            let k = 1.0 / 8.0; // 1/sqrt(H)
            for r in [
                layout.w_ih(),
                layout.w_hh(),
                layout.b_ih(),
                layout.b_hh(),
                layout.out_w(),
                layout.out_b(),
            ] {
                let x = &theta[r];
                let n = x.len() as f64;
                assert!(x.iter().all(|&v| v.abs() <= k as f32), "outside [-k, k]");
                let (m, v) = mean_var(x);
                // U(-k, k): mean 0, sd k/sqrt(3); variance k^2/3 with sd sqrt(4/45) k^2 / sqrt(n).
                assert!(m.abs() < 5.0 * k / (3.0 * n).sqrt(), "mean {m} over {n}");
                let v_se = (4.0f64 / 45.0).sqrt() * k * k / n.sqrt();
                assert!(
                    (v - k * k / 3.0).abs() < 5.0 * v_se,
                    "variance {v} over {n}"
                );
                // The range is filled: P(max < k (1 - d)) = (1 - d/2)^n, d = 20/n: e^-10.
                let d = 20.0 / n;
                let max = x.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
                let min = x.iter().fold(f32::MAX, |a, &b| a.min(b)) as f64;
                assert!(
                    max > k * (1.0 - d) && min < -k * (1.0 - d),
                    "range [{min}, {max}] over {n}"
                );
            }
        }
    }

    #[test]
    fn seeded_and_deterministic() {
        let layout = ParamLayout::new(ModelDims {
            n_items: 30,
            embed_dim: 4,
            hidden_dim: 5,
        });
        let a = init_params(&layout, 7);
        assert_eq!(a, init_params(&layout, 7));
        let b = init_params(&layout, 8);
        assert_eq!(a.len(), layout.len);
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert_eq!(
            same, 4,
            "only the zero padding row may coincide across seeds"
        );
    }
}
