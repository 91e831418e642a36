//! Every case in tests/fixtures/torch/ (PyTorch 2.15, float64 autograd) reproduced through the
//! library: the f64 reference within 1e-9 and the f32 `Cpu` and `Cuda` backends within 1e-4,
//! relative error `||a − b|| / ||b||` per tensor. The CUDA tests print "skipped" on a machine
//! without a usable GPU, unless `RECMAML_REQUIRE_CUDA=1` (benches/gpu_check.sh) makes that a
//! failure.

mod common;

use recmaml::backend::{Backend, InnerLoop, OuterConfig, Task};
use recmaml::cpu::adam::Adam;
use recmaml::cpu::{self, Cpu, Engine};
use recmaml::data::Episode;
use recmaml::model::{ModelDims, ParamLayout, Recency};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

const CASES: [&str; 4] = ["exp-tiny", "linear-small", "softmax-k7", "equal-wide"];
const TOL64: f64 = 1e-9;
const TOL32: f64 = 1e-4;

struct Case {
    name: &'static str,
    cfg: Value,
    layout: ParamLayout,
    theta32: Vec<f32>,
    theta64: Vec<f64>,
    episodes: Vec<Episode>,
    expected: HashMap<String, Vec<f64>>,
    w64: Vec<f64>,
    w32: Vec<f32>,
}

fn read_tensors(path: &PathBuf) -> HashMap<String, Vec<f64>> {
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

/// The fixtures folder: in the source tree this binary was built from, or, where that is absent
/// (a test binary carried to a GPU machine), `tests/fixtures/torch` under the working directory.
fn fixtures_dir() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("tests/fixtures/torch")
    }
}

fn load(name: &'static str) -> Case {
    let dir = fixtures_dir().join(name);
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let episodes: Vec<Episode> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("episodes.json")).unwrap()).unwrap();
    let dim = |k: &str| cfg[k].as_u64().unwrap() as usize;
    let layout = ParamLayout::new(ModelDims {
        n_items: dim("n_items"),
        embed_dim: dim("embed_dim"),
        hidden_dim: dim("hidden_dim"),
    });
    let weights = read_tensors(&dir.join("weights.safetensors"));
    let mut theta64 = vec![0.0; layout.len];
    for t in &layout.tensors {
        let w = &weights[t.name];
        assert_eq!(w.len(), t.numel(), "{name}: {}", t.name);
        theta64[t.range()].copy_from_slice(w);
    }
    let theta32 = theta64.iter().map(|&x| x as f32).collect();
    let scheme = match cfg["weighting"].as_str().unwrap() {
        "equal" => Recency::Equal,
        "exponential" => Recency::Exponential {
            lambda: cfg["lambda"].as_f64().unwrap(),
        },
        "linear" => Recency::Linear,
        "softmax" => Recency::Softmax {
            temperature: cfg["temperature"].as_f64().unwrap(),
        },
        s => panic!("unknown scheme {s}"),
    };
    let w64 = scheme.weights(dim("K"), None).unwrap();
    let w32 = w64.iter().map(|&x| x as f32).collect();
    assert_eq!(episodes.len(), dim("n_tasks"));
    assert_eq!(
        cfg["tasks"].as_array().map(Vec::len),
        Some(dim("n_tasks")),
        "{name}: tasks"
    );
    Case {
        name,
        cfg,
        layout,
        theta32,
        theta64,
        episodes,
        expected: read_tensors(&dir.join("expected.safetensors")),
        w64,
        w32,
    }
}

impl Case {
    fn tasks<'a>(&'a self, weights: &'a [f32]) -> Vec<Task<'a>> {
        self.episodes
            .iter()
            .map(|e| Task {
                support_prefixes: &e.support_prefixes,
                support_labels: &e.support_labels,
                support_weights: weights,
                query_prefixes: &e.query_prefixes,
                query_labels: &e.query_labels,
            })
            .collect()
    }
    fn f(&self, key: &str) -> f64 {
        self.cfg[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{}: {key}", self.name))
    }
    fn steps(&self) -> usize {
        self.cfg["inner_steps"].as_u64().unwrap() as usize
    }
    fn exp(&self, key: &str) -> &[f64] {
        self.expected
            .get(key)
            .unwrap_or_else(|| panic!("{}: no expected tensor {key}", self.name))
    }
    fn adam64(&self) -> Adam<f64> {
        let betas = self.cfg["adam"]["betas"].as_array().unwrap();
        Adam {
            lr: self.f("outer_lr"),
            beta1: betas[0].as_f64().unwrap(),
            beta2: betas[1].as_f64().unwrap(),
            eps: self.cfg["adam"]["eps"].as_f64().unwrap(),
        }
    }
    fn outer32(&self) -> OuterConfig {
        OuterConfig::adam(self.f("outer_lr") as f32, self.f("clip") as f32)
    }
    fn inner32(&self) -> InnerLoop {
        InnerLoop {
            lr: self.f("inner_lr") as f32,
            steps: self.steps(),
        }
    }

    /// Compares every named tensor of the flat buffer `got` with `<prefix>.<name>`.
    fn check_params<F: cpu::Float>(&self, prefix: &str, got: &[F], tol: f64) {
        assert_eq!(got.len(), self.layout.len, "{}: {prefix} length", self.name);
        for t in &self.layout.tensors {
            let got: Vec<f64> = got[t.range()].iter().map(|x| x.to_f64()).collect();
            check(
                self.name,
                &format!("{prefix}.{}", t.name),
                &got,
                self.exp(&format!("{prefix}.{}", t.name)),
                tol,
            );
        }
    }

    /// Compares the change from θ (`got − θ` against `expected − θ`) on every named tensor.
    fn check_update<F: cpu::Float>(&self, prefix: &str, base: &[f64], got: &[F], tol: f64) {
        assert_eq!(got.len(), self.layout.len, "{}: {prefix} length", self.name);
        assert_eq!(base.len(), self.layout.len, "{}: θ length", self.name);
        for t in &self.layout.tensors {
            let key = format!("{prefix}.{}", t.name);
            let r = t.range();
            let d_got: Vec<f64> = zip_eq(&got[r.clone()], &base[r.clone()], &key)
                .map(|(g, b)| g.to_f64() - b)
                .collect();
            let d_exp: Vec<f64> = zip_eq(self.exp(&key), &base[r], &key)
                .map(|(e, b)| e - b)
                .collect();
            if d_exp.iter().all(|&d| d == 0.0) {
                assert!(
                    d_got.iter().all(|&d| d == 0.0),
                    "{}: {key} moved",
                    self.name
                );
                continue;
            }
            check(self.name, &format!("update of {key}"), &d_got, &d_exp, tol);
        }
    }
}

impl Case {
    /// Compares the second meta-step's update (`after − before`, each side's own θ after the first
    /// step) with PyTorch's (`after_adam2 − after_adam`) on every named tensor: the second step is
    /// the one that depends on the clip's scale (softmax-k7 clips), which a comparison of θ itself
    /// would hide in the size of θ.
    fn check_second_update<F: cpu::Float>(&self, before: &[F], after: &[F], tol: f64) {
        assert_eq!(before.len(), self.layout.len, "{}: θ length", self.name);
        assert_eq!(after.len(), self.layout.len, "{}: θ length", self.name);
        for t in &self.layout.tensors {
            let (k1, k2) = (
                format!("after_adam.{}", t.name),
                format!("after_adam2.{}", t.name),
            );
            let r = t.range();
            let d_got: Vec<f64> = zip_eq(&after[r.clone()], &before[r], &k2)
                .map(|(a, b)| a.to_f64() - b.to_f64())
                .collect();
            let d_exp: Vec<f64> = zip_eq(self.exp(&k2), self.exp(&k1), &k2)
                .map(|(a, b)| a - b)
                .collect();
            assert!(
                d_exp.iter().any(|&d| d != 0.0),
                "{}: {k2} equals {k1}, nothing to compare",
                self.name
            );
            check(
                self.name,
                &format!("second update of {}", t.name),
                &d_got,
                &d_exp,
                tol,
            );
        }
    }
}

/// `a` zipped with `b`, after asserting that they are equally long (a missing output must fail,
/// not shorten the comparison).
fn zip_eq<'a, A, B>(
    a: &'a [A],
    b: &'a [B],
    what: &str,
) -> std::iter::Zip<std::slice::Iter<'a, A>, std::slice::Iter<'a, B>> {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    a.iter().zip(b)
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = zip_eq(a, b, "rel_err")
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn check(case: &str, what: &str, got: &[f64], want: &[f64], tol: f64) {
    let e = rel_err(got, want);
    if std::env::var_os("FIXTURE_VERBOSE").is_some() {
        eprintln!("{case}: {what}: {e:.2e}");
    }
    assert!(e < tol, "{case}: {what}: relative error {e:.3e} >= {tol:e}");
}

fn check_scalar(case: &str, what: &str, got: f64, want: f64, tol: f64) {
    let e = ((got - want) / want).abs();
    assert!(
        e < tol,
        "{case}: {what}: {got} vs {want} (relative error {e:.3e})"
    );
}

fn argmax(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

#[test]
fn recency_weights_match() {
    for name in CASES {
        let c = load(name);
        let want: Vec<f64> = c.cfg["recency_weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        check(name, "recency_weights", &c.w64, &want, 1e-14);
    }
}

/// Task 0 through the per-task functions: support loss and gradient, adapted weights, query
/// gradient at the adapted weights. `strict` also compares the inner loop's change of every
/// tensor (`adapted − θ`), which float32 storage of weights near 1 cannot resolve to 1e-4 for
/// small updates, so only the f64 path does it.
fn task0<F: cpu::Float>(c: &Case, theta: &[F], w: &[F], tol: f64, strict: bool) {
    let w32 = c.w32.clone();
    let tasks = c.tasks(&w32);
    let t0 = &tasks[0];
    let mut g = vec![F::ZERO; c.layout.len];
    let loss = cpu::support_loss_grad(&c.layout, theta, t0, w, &mut g).unwrap();
    check_scalar(
        c.name,
        "task0_support_loss",
        loss.to_f64(),
        c.f("task0_support_loss"),
        tol,
    );
    c.check_params("task0.support_grad", &g, tol);
    let mut phi = vec![F::ZERO; c.layout.len];
    let lr = F::from_f64(c.f("inner_lr"));
    cpu::adapt(&c.layout, theta, t0, w, lr, c.steps(), &mut phi).unwrap();
    c.check_params("task0.adapted", &phi, tol);
    if strict {
        c.check_update("task0.adapted", &c.theta64, &phi, tol);
    }
    let mut gq = vec![F::ZERO; c.layout.len];
    cpu::query_loss_grad(&c.layout, &phi, t0, &mut gq).unwrap();
    c.check_params("task0.query_grad", &gq, tol);
}

#[test]
fn task0_gradients_and_adaptation_f64() {
    for name in CASES {
        let c = load(name);
        task0(&c, &c.theta64, &c.w64, TOL64, true);
    }
}

#[test]
fn task0_gradients_and_adaptation_f32() {
    for name in CASES {
        let c = load(name);
        task0(&c, &c.theta32, &c.w32, TOL32, false);
    }
}

/// Checks zero-/few-shot logits, losses and predictions of every task.
fn check_eval(c: &Case, i: usize, zero: (&[f64], f64), few: (&[f64], f64), tol: f64) {
    let v = c.layout.dims.n_items;
    let t = &c.cfg["tasks"][i];
    for (kind, (logits, loss)) in [("zero_shot", zero), ("few_shot", few)] {
        check(
            c.name,
            &format!("task{i}.{kind}_logits"),
            logits,
            c.exp(&format!("task{i}.{kind}_logits")),
            tol,
        );
        check_scalar(
            c.name,
            &format!("task{i}.{kind}_query_loss"),
            loss,
            t[format!("{kind}_query_loss")].as_f64().unwrap(),
            tol,
        );
        let preds: Vec<u64> = t[format!("{kind}_pred")]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect();
        let got: Vec<u64> = logits.chunks_exact(v).map(|r| argmax(r) as u64).collect();
        assert_eq!(got, preds, "{}: task{i} {kind} predictions", c.name);
    }
}

#[test]
fn logits_of_every_task_f64() {
    for name in CASES {
        let c = load(name);
        let tasks = c.tasks(&c.w32);
        let q = c.cfg["Q"].as_u64().unwrap() as usize;
        let v = c.layout.dims.n_items;
        for (i, t) in tasks.iter().enumerate() {
            let mut zero = vec![0.0; q * v];
            let zl = cpu::query_logits(&c.layout, &c.theta64, t, &mut zero).unwrap();
            let mut phi = vec![0.0; c.layout.len];
            cpu::adapt(
                &c.layout,
                &c.theta64,
                t,
                &c.w64,
                c.f("inner_lr"),
                c.steps(),
                &mut phi,
            )
            .unwrap();
            let mut few = vec![0.0; q * v];
            let fl = cpu::query_logits(&c.layout, &phi, t, &mut few).unwrap();
            check_eval(&c, i, (&zero, zl), (&few, fl), TOL64);
        }
    }
}

type MakeBackend = fn(&Case) -> Option<Box<dyn Backend>>;

fn cpu_backend(c: &Case) -> Option<Box<dyn Backend>> {
    Some(Box::new(
        Cpu::new(c.layout.clone(), c.theta32.clone()).unwrap(),
    ))
}

/// The CUDA backend on θ, or None (the reason printed) on a machine without a usable GPU;
/// `RECMAML_REQUIRE_CUDA=1` turns that into a failure.
fn cuda_backend(c: &Case) -> Option<Box<dyn Backend>> {
    match recmaml::cuda::Cuda::new(c.layout.clone(), c.theta32.clone()) {
        Ok(gpu) => Some(Box::new(gpu)),
        Err(e) => {
            common::skip(
                common::Needs::Cuda,
                &format!("the CUDA backend cannot start here ({e})"),
            );
            None
        }
    }
}

#[test]
fn logits_of_every_task_cpu_backend() {
    logits_of_every_task_backend(cpu_backend);
}

#[test]
fn logits_of_every_task_cuda_backend() {
    logits_of_every_task_backend(cuda_backend);
}

fn logits_of_every_task_backend(make: MakeBackend) {
    for name in CASES {
        let c = load(name);
        let tasks = c.tasks(&c.w32);
        let Some(mut be) = make(&c) else { return };
        let evals = be.evaluate(&tasks, &c.inner32()).unwrap();
        assert_eq!(evals.len(), tasks.len(), "{name}: evaluations");
        assert_eq!(
            be.params().unwrap(),
            c.theta32,
            "{name}: evaluate must not change θ"
        );
        for (i, ev) in evals.iter().enumerate() {
            let z: Vec<f64> = ev.zero_shot_logits.iter().map(|&x| x as f64).collect();
            let f: Vec<f64> = ev.few_shot_logits.iter().map(|&x| x as f64).collect();
            check_eval(
                &c,
                i,
                (&z, ev.zero_shot_loss),
                (&f, ev.few_shot_loss),
                TOL32,
            );
        }
    }
}

#[test]
fn meta_iterations_f64() {
    for name in CASES {
        let c = load(name);
        let tasks = c.tasks(&c.w32);
        let weights: Vec<&[f64]> = tasks.iter().map(|_| &c.w64[..]).collect();
        for share in [true, false] {
            let mut eng = Engine::<f64>::new(c.layout.clone(), c.theta64.clone()).unwrap();
            eng.set_share_prefixes(share);
            let (lr, steps) = (c.f("inner_lr"), c.steps());
            let mut g = vec![0.0; c.layout.len];
            let loss = eng
                .meta_gradient_weighted(&tasks, &weights, lr, steps, &mut g)
                .unwrap();
            check_scalar(name, "meta_loss", loss, c.f("meta_loss"), TOL64);
            c.check_params("meta_grad", &g, TOL64);
            let adam = c.adam64();
            let s1 = eng
                .meta_step_weighted(&tasks, &weights, lr, steps, &adam, c.f("clip"))
                .unwrap();
            check_scalar(name, "meta_loss", s1.meta_loss, c.f("meta_loss"), TOL64);
            check_scalar(
                name,
                "meta_grad_norm",
                s1.grad_norm,
                c.f("meta_grad_norm"),
                TOL64,
            );
            c.check_params("after_adam", eng.theta(), TOL64);
            c.check_update("after_adam", &c.theta64, eng.theta(), TOL64);
            let p1 = eng.theta().to_vec();
            let s2 = eng
                .meta_step_weighted(&tasks, &weights, lr, steps, &adam, c.f("clip"))
                .unwrap();
            check_scalar(name, "meta_loss_2", s2.meta_loss, c.f("meta_loss_2"), TOL64);
            check_scalar(
                name,
                "meta_grad_norm_2",
                s2.grad_norm,
                c.f("meta_grad_norm_2"),
                TOL64,
            );
            c.check_params("after_adam2", eng.theta(), TOL64);
            c.check_second_update(&p1, eng.theta(), TOL64);
        }
    }
}

#[test]
fn meta_iterations_cpu_backend() {
    meta_iterations_backend(cpu_backend);
}

#[test]
fn meta_iterations_cuda_backend() {
    meta_iterations_backend(cuda_backend);
}

fn meta_iterations_backend(make: MakeBackend) {
    for name in CASES {
        let c = load(name);
        let tasks = c.tasks(&c.w32);
        let Some(mut be) = make(&c) else { return };
        let mut g = vec![f32::NAN; c.layout.len];
        let loss = be.meta_gradient(&tasks, &c.inner32(), &mut g).unwrap();
        check_scalar(name, "meta_loss", loss, c.f("meta_loss"), TOL32);
        c.check_params("meta_grad", &g, TOL32);
        let s1 = be.meta_step(&tasks, &c.inner32(), &c.outer32()).unwrap();
        check_scalar(name, "meta_loss", s1.meta_loss, c.f("meta_loss"), TOL32);
        check_scalar(
            name,
            "meta_grad_norm",
            s1.grad_norm,
            c.f("meta_grad_norm"),
            TOL32,
        );
        let p1 = be.params().unwrap();
        c.check_params("after_adam", &p1, TOL32);
        c.check_update("after_adam", &c.theta64, &p1, TOL32);
        let s2 = be.meta_step(&tasks, &c.inner32(), &c.outer32()).unwrap();
        check_scalar(name, "meta_loss_2", s2.meta_loss, c.f("meta_loss_2"), TOL32);
        check_scalar(
            name,
            "meta_grad_norm_2",
            s2.grad_norm,
            c.f("meta_grad_norm_2"),
            TOL32,
        );
        let p2 = be.params().unwrap();
        c.check_params("after_adam2", &p2, TOL32);
        c.check_second_update(&p1, &p2, TOL32);
        assert_eq!(be.adam().unwrap().step, 2);
    }
}

/// Task 0's adapted weights on the GPU (read back from its workspace after the meta-gradient)
/// against PyTorch's `task0.adapted`, and, where the support weights are equal (so the support
/// loss is the mean CE that the query pass computes), `task0.support_grad` as the gradient at θ
/// with the support pairs as the query and no inner step.
#[test]
fn task0_adaptation_cuda_backend() {
    for name in CASES {
        let c = load(name);
        let tasks = c.tasks(&c.w32);
        if cuda_backend(&c).is_none() {
            return;
        }
        let mut gpu = recmaml::cuda::Cuda::new(c.layout.clone(), c.theta32.clone()).unwrap();
        gpu.set_poison(true);
        let mut g = vec![f32::NAN; c.layout.len];
        gpu.meta_gradient(&tasks, &c.inner32(), &mut g).unwrap();
        let phi = gpu.adapted_params(&tasks, &c.inner32(), 0).unwrap();
        c.check_params("task0.adapted", &phi, TOL32);
        if c.cfg["weighting"].as_str() == Some("equal") {
            check_support_grad_as_query(&c, &mut gpu);
        }
    }
}

/// Task 0 with its support pairs as the query and no inner step: with equal support weights its
/// meta-gradient is PyTorch's `task0.support_grad`.
fn check_support_grad_as_query(c: &Case, be: &mut dyn Backend) {
    let tasks = c.tasks(&c.w32);
    let t0 = Task {
        query_prefixes: tasks[0].support_prefixes,
        query_labels: tasks[0].support_labels,
        ..tasks[0]
    };
    let no_step = InnerLoop {
        lr: c.inner32().lr,
        steps: 0,
    };
    let mut g = vec![f32::NAN; c.layout.len];
    be.meta_gradient(&[t0], &no_step, &mut g).unwrap();
    c.check_params("task0.support_grad", &g, TOL32);
}

/// The identity the CUDA test above relies on, on the CPU: with equal support weights, the
/// meta-gradient with no inner step and the support pairs as the query is PyTorch's
/// `task0.support_grad`.
#[test]
fn support_grad_as_query_pass_cpu_backend() {
    let c = load("equal-wide");
    let mut cpu = Cpu::new(c.layout.clone(), c.theta32.clone()).unwrap();
    check_support_grad_as_query(&c, &mut cpu);
}
