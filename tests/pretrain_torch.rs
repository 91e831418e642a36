//! Three pretraining steps against PyTorch (tests/fixtures/torch-pretrain, made by its
//! `make_fixture.py`): the same batches, the keep patterns of the fixture turned into multipliers
//! by [`Dropout::multipliers`], and [`Engine::pretrain_step_with`], the CPU backend's step. After
//! each step the loss, the gradient and the update `θ_k − θ_{k−1}` are compared with PyTorch's as
//! relative errors `||a − b|| / ||b||` per tensor:
//!
//! - the float64 engine within 1e-9 (both sides compute in float64 from the same float32
//!   weights; what is left is the order of the sums: about 1e-15 measured);
//! - the float32 engine, which `fit` runs, within 1e-4, the tolerance of the other PyTorch
//!   fixtures for float32 against a float64 reference (measured: losses 6e-8, gradients 4e-7,
//!   updates 4e-6). Updates are compared, not weights: a step of `lr` = 0.01 on weights of size
//!   0.5 would hide an error of the whole update in 1e-4 of the weights' norm. Adam divides each
//!   entry by its own `|g| + eps`, so the float32 update's error is that of its gradient plus the
//!   rounding of `θ` (6e-8 of 0.5, 3e-6 of a step of 0.01), as long as no gradient entry comes
//!   near eps = 1e-8: there the update is ill-conditioned (one entry of 3e-8 puts an error of
//!   about 6e-4 on its tensor's update), so every non-zero entry of the fixture is at least 1e-6
//!   (asserted).
//!
//! Where PyTorch's update of an entry is exactly zero (the padding row, items no batch has used),
//! the engine's must be exactly zero too.

use recmaml::cpu::adam::Adam;
use recmaml::cpu::Engine;
use recmaml::cpu::Float;
use recmaml::model::{ModelDims, ParamLayout};
use recmaml::pretrain::Dropout;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

struct Fixture {
    cfg: Value,
    layout: ParamLayout,
    theta0: Vec<f64>,
    expected: HashMap<String, Vec<f64>>,
}

/// One step's batch: prefixes (as written, before the cap), labels and dropout multipliers.
struct Batch<F> {
    prefixes: Vec<Vec<u32>>,
    labels: Vec<u32>,
    mask: Vec<F>,
}

fn read_tensors(path: &Path) -> HashMap<String, Vec<f64>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let vals: Vec<f64> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                d => panic!("{}: unexpected dtype {d:?} for {name}", path.display()),
            };
            (name, vals)
        })
        .collect()
}

/// The fixture folder: in the source tree this binary was built from, or, where that is absent
/// (a test binary carried to another machine), under the working directory.
fn fixture_dir() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch-pretrain");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("tests/fixtures/torch-pretrain")
    }
}

fn load() -> Fixture {
    let dir = fixture_dir();
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let dim = |k: &str| cfg[k].as_u64().unwrap() as usize;
    let layout = ParamLayout::new(ModelDims {
        n_items: dim("n_items"),
        embed_dim: dim("embed_dim"),
        hidden_dim: dim("hidden_dim"),
    });
    let weights = read_tensors(&dir.join("weights.safetensors"));
    assert_eq!(weights.len(), layout.tensors.len());
    let mut theta0 = vec![0.0; layout.len];
    for t in &layout.tensors {
        let w = &weights[t.name];
        assert_eq!(w.len(), t.numel(), "{}", t.name);
        theta0[t.range()].copy_from_slice(w);
    }
    // The Adam settings of the fixture must be those pretraining uses (betas, eps).
    let adam = &cfg["adam"];
    assert_eq!(adam["betas"][0].as_f64(), Some(0.9));
    assert_eq!(adam["betas"][1].as_f64(), Some(0.999));
    assert_eq!(adam["eps"].as_f64(), Some(1e-8));
    Fixture {
        layout,
        theta0,
        expected: read_tensors(&dir.join("expected.safetensors")),
        cfg,
    }
}

impl Fixture {
    fn f(&self, key: &str) -> f64 {
        self.cfg[key].as_f64().unwrap()
    }

    fn batches<F: Float>(&self) -> Vec<Batch<F>> {
        let ids = |v: &Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let dropout = Dropout {
            p: self.f("dropout"),
        };
        self.cfg["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let kept: Vec<bool> = s["keep"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(ids)
                    .map(|k| k == 1)
                    .collect();
                let mut mask = Vec::new();
                dropout.multipliers::<F>(&kept, &mut mask);
                Batch {
                    prefixes: s["prefixes"].as_array().unwrap().iter().map(ids).collect(),
                    labels: ids(&s["labels"]),
                    mask,
                }
            })
            .collect()
    }

    fn exp(&self, key: &str) -> &[f64] {
        self.expected
            .get(key)
            .unwrap_or_else(|| panic!("no expected tensor {key}"))
    }

    /// PyTorch's weights after step `k` (0: the initial weights), flat.
    fn weights_after(&self, k: usize) -> Vec<f64> {
        if k == 0 {
            return self.theta0.clone();
        }
        let mut out = vec![0.0; self.layout.len];
        for t in &self.layout.tensors {
            out[t.range()].copy_from_slice(self.exp(&format!("step{k}.weights.{}", t.name)));
        }
        out
    }
}

fn rel(got: &[f64], exp: &[f64]) -> f64 {
    let num: f64 = got.iter().zip(exp).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = exp.iter().map(|b| b * b).sum();
    (num / den).sqrt()
}

/// Runs every step of the fixture with `Engine<F>` and compares as the module describes.
fn run<F: Float>(tol: f64) {
    let fx = load();
    let batches = fx.batches::<F>();
    let losses: Vec<f64> = fx.cfg["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(batches.len(), losses.len());
    assert!(batches.len() >= 3);
    let cap = fx.cfg["max_prefix_len"].as_u64().unwrap() as usize;
    let adam = Adam {
        lr: F::from_f64(fx.cfg["adam"]["lr"].as_f64().unwrap()),
        beta1: F::from_f64(0.9),
        beta2: F::from_f64(0.999),
        eps: F::from_f64(1e-8),
    };
    let theta0: Vec<F> = fx.theta0.iter().map(|&x| F::from_f64(x)).collect();
    let mut tr = Engine::<F>::new(fx.layout.clone(), theta0).unwrap();
    let mut step_grad = vec![F::ZERO; fx.layout.len];
    // Entries PyTorch left in place, over all steps.
    let mut still = 0;
    for (i, b) in batches.iter().enumerate() {
        let k = i + 1;
        let before: Vec<f64> = tr.theta().iter().map(|x| x.to_f64()).collect();
        tr.pretrain_loss_grad(&b.prefixes, &b.labels, &b.mask, cap, &mut step_grad)
            .unwrap();
        let loss = tr
            .pretrain_step_with(&b.prefixes, &b.labels, &b.mask, cap, &adam)
            .unwrap();
        assert_eq!(tr.steps(), k as u64);
        let e = ((loss - losses[i]) / losses[i]).abs();
        assert!(
            e < tol,
            "step {k}: loss {loss} vs PyTorch {} (relative {e:.2e})",
            losses[i]
        );
        let (exp_before, exp_after) = (fx.weights_after(i), fx.weights_after(k));
        for t in &fx.layout.tensors {
            let r = t.range();
            let grad_exp = fx.exp(&format!("step{k}.grad.{}", t.name));
            let grad: Vec<f64> = step_grad[r.clone()].iter().map(|x| x.to_f64()).collect();
            let e = rel(&grad, grad_exp);
            assert!(
                e < tol,
                "step {k}: gradient of {}: relative error {e:.2e}",
                t.name
            );
            assert!(
                grad_exp.iter().all(|&g| g == 0.0 || g.abs() >= 1e-6),
                "step {k}: {}: a gradient entry within 100 eps of 0 (see make_fixture.py)",
                t.name
            );
            let upd: Vec<f64> = tr.theta()[r.clone()]
                .iter()
                .zip(&before[r.clone()])
                .map(|(a, b)| a.to_f64() - b)
                .collect();
            let upd_exp: Vec<f64> = exp_after[r.clone()]
                .iter()
                .zip(&exp_before[r.clone()])
                .map(|(a, b)| a - b)
                .collect();
            let e = rel(&upd, &upd_exp);
            assert!(
                e < tol,
                "step {k}: update of {}: relative error {e:.2e}",
                t.name
            );
            for (j, (&u, &x)) in upd.iter().zip(&upd_exp).enumerate() {
                still += usize::from(x == 0.0);
                assert!(
                    x != 0.0 || u == 0.0,
                    "step {k}: {}[{j}] moved by {u:e}, PyTorch's did not move",
                    t.name
                );
            }
        }
    }
    // The padding row never moves, and neither do rows of items no batch has used yet.
    let e = fx.layout.dims.embed_dim;
    assert!(
        still > batches.len() * e,
        "only {still} entries stood still: the exact-zero check saw no unused item"
    );
    let emb = fx.layout.embedding();
    assert!(tr.theta()[emb.start..emb.start + e]
        .iter()
        .zip(&fx.theta0[emb.start..emb.start + e])
        .all(|(a, &b)| a.to_f64() == b));
    assert_ne!(
        fx.theta0,
        tr.theta().iter().map(|x| x.to_f64()).collect::<Vec<_>>()
    );
}

#[test]
fn pretraining_steps_match_pytorch_in_float64() {
    run::<f64>(1e-9);
}

#[test]
fn pretraining_steps_match_pytorch_in_float32() {
    run::<f32>(1e-4);
}
