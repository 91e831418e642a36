//! The PyTorch fixtures reproduced through the command line: `recmaml train` with `--set`
//! overrides (all tasks in one meta-batch, one or two iterations, no validation, the fixture's
//! weights as the warm start) and `recmaml eval`; plus bit-identical `--resume`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(case)
}

const CASES: [&str; 4] = ["exp-tiny", "linear-small", "softmax-k7", "equal-wide"];

/// All tensors of a safetensors file as f64.
fn read_tensors(path: &Path) -> BTreeMap<String, Vec<f64>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                safetensors::Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                other => panic!("unexpected dtype {other:?}"),
            };
            (name, values)
        })
        .collect()
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

/// Relative error of the f32 `Cpu` backend against the PyTorch fixtures, as `torch_fixtures.rs`
/// meets it through the library. `train` and `eval` run that same backend on the same inputs, so
/// the command line meets it too (the largest update error is about 3e-5).
const TOL32: f64 = 1e-4;

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = zip_eq(a, b, "rel_err")
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-300)
}

/// The `--set` overrides that make a run compute exactly the fixture's configuration.
fn fixture_sets(case: &str, exp: &serde_json::Value) -> Vec<String> {
    let dir = fixture_dir(case);
    let scheme = exp["weighting"].as_str().unwrap();
    vec![
        format!("data.train={}", dir.join("episodes.parquet").display()),
        format!("model.embed_dim={}", exp["embed_dim"]),
        format!("model.hidden_dim={}", exp["hidden_dim"]),
        format!("maml.inner_lr={}", exp["inner_lr"]),
        format!("maml.inner_steps={}", exp["inner_steps"]),
        format!("maml.outer_lr={}", exp["outer_lr"]),
        format!("maml.grad_clip={}", exp["clip"]),
        format!("maml.meta_batch_size={}", exp["n_tasks"]),
        "maml.val_every=0".into(),
        "maml.checkpoint_every=0".into(),
        format!("recency.weighting_scheme={scheme}"),
        format!("recency.lambda={}", exp["lambda"]),
        format!("recency.temperature={}", exp["temperature"]),
        "warmstart.use_warmstart=true".into(),
        format!(
            "warmstart.pretrained_path={}",
            dir.join("weights.safetensors").display()
        ),
        "run.backend=cpu".into(),
    ]
}

fn recmaml(args: &[String]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recmaml {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn with_sets(mut args: Vec<String>, sets: &[String]) -> Vec<String> {
    for s in sets {
        args.push("--set".into());
        args.push(s.clone());
    }
    args
}

fn empty_config(dir: &Path) -> PathBuf {
    let p = dir.join("empty.toml");
    std::fs::write(&p, "# everything from --set\n").unwrap();
    p
}

#[test]
fn train_reproduces_adam_steps_of_every_fixture() {
    for case in CASES {
        let dir = fixture_dir(case);
        let exp: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let expected = read_tensors(&dir.join("expected.safetensors"));
        let start = read_tensors(&dir.join("weights.safetensors"));
        let tmp = tempfile::tempdir().unwrap();
        let cfg = empty_config(tmp.path());
        for (iters, prefix) in [(1, "after_adam"), (2, "after_adam2")] {
            let out = tmp.path().join(format!("run{iters}"));
            let mut sets = fixture_sets(case, &exp);
            sets.push(format!("maml.num_meta_iterations={iters}"));
            recmaml(&with_sets(
                vec![
                    "train".into(),
                    "--config".into(),
                    cfg.display().to_string(),
                    "--out".into(),
                    out.display().to_string(),
                ],
                &sets,
            ));
            let got = read_tensors(&out.join("final.safetensors"));
            let want: BTreeMap<&str, &Vec<f64>> = expected
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&format!("{prefix}.")).map(|n| (n, v)))
                .collect();
            // Every tensor of the model, in the output and in the fixture.
            assert_eq!(
                got.keys().map(String::as_str).collect::<Vec<_>>(),
                start.keys().map(String::as_str).collect::<Vec<_>>(),
                "{case}: tensors of final.safetensors"
            );
            assert_eq!(
                want.keys().copied().collect::<Vec<_>>(),
                start.keys().map(String::as_str).collect::<Vec<_>>(),
                "{case}: {prefix}.* tensors of the fixture"
            );
            for (name, want) in want {
                // Compare the updates (weights move by ~outer_lr per step), not the weights.
                let w0 = &start[name];
                let what = format!("{case} {prefix}.{name}");
                let du: Vec<f64> = zip_eq(&got[name], w0, &what).map(|(a, b)| a - b).collect();
                let dw: Vec<f64> = zip_eq(want, w0, &what).map(|(a, b)| a - b).collect();
                let e = rel_err(&du, &dw);
                assert!(e < TOL32, "{what}: update rel err {e:.3e}");
                let e = rel_err(&got[name], want);
                assert!(e < TOL32, "{what}: rel err {e:.3e}");
            }
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                    .unwrap();
            let losses = report["history"]["meta_loss"].as_array().unwrap();
            let norms = report["history"]["grad_norm"].as_array().unwrap();
            assert_eq!((losses.len(), norms.len()), (iters, iters), "{case}");
            let (lk, nk) = if iters == 1 {
                ("meta_loss", "meta_grad_norm")
            } else {
                ("meta_loss_2", "meta_grad_norm_2")
            };
            let l = losses[iters - 1].as_f64().unwrap();
            let n = norms[iters - 1].as_f64().unwrap();
            let (wl, wn) = (exp[lk].as_f64().unwrap(), exp[nk].as_f64().unwrap());
            assert!((l - wl).abs() / wl < 1e-5, "{case} {lk} {l} vs {wl}");
            assert!((n - wn).abs() / wn < 1e-4, "{case} {nk} {n} vs {wn}");
        }
    }
}

#[test]
fn eval_reproduces_zero_and_few_shot_predictions_and_losses() {
    for case in CASES {
        let dir = fixture_dir(case);
        let exp: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("eval.json");
        let per = tmp.path().join("eval.jsonl");
        recmaml(&with_sets(
            vec![
                "eval".into(),
                "--model".into(),
                dir.join("weights.safetensors").display().to_string(),
                "--episodes".into(),
                dir.join("episodes.parquet").display().to_string(),
                "--out".into(),
                out.display().to_string(),
                "--per-episode".into(),
                per.display().to_string(),
            ],
            &fixture_sets(case, &exp)
                .into_iter()
                .filter(|s| s.starts_with("maml.inner") || s.starts_with("recency."))
                .collect::<Vec<_>>(),
        ));
        let records: Vec<serde_json::Value> = std::fs::read_to_string(&per)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let tasks = exp["tasks"].as_array().unwrap();
        for (i, (r, t)) in zip_eq(&records, tasks, case).enumerate() {
            for (got, want) in [
                ("zero_shot_top1", "zero_shot_pred"),
                ("few_shot_top1", "few_shot_pred"),
            ] {
                assert_eq!(r[got], t[want], "{case} task {i} {got}");
            }
            for k in ["zero_shot_query_loss", "few_shot_query_loss"] {
                let g = r[k.replace("_query", "").as_str()].as_f64().unwrap();
                let w = t[k].as_f64().unwrap();
                assert!((g - w).abs() / w < 1e-5, "{case} task {i} {k}: {g} vs {w}");
            }
        }
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(summary["n_episodes"], tasks.len());
        // Acc@1 from the fixture's own predictions and the episodes' labels.
        let episodes: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("episodes.json")).unwrap())
                .unwrap();
        let hits: usize = zip_eq(&episodes, tasks, case)
            .map(|(e, t)| {
                zip_eq(
                    e["query_labels"].as_array().unwrap(),
                    t["few_shot_pred"].as_array().unwrap(),
                    case,
                )
                .filter(|(a, b)| a == b)
                .count()
            })
            .sum();
        let total: usize = episodes
            .iter()
            .map(|e| e["query_labels"].as_array().unwrap().len())
            .sum();
        let acc = summary["few_shot"]["acc@1"]["mean"].as_f64().unwrap();
        assert!((acc - hits as f64 / total as f64).abs() < 1e-12, "{case}");
    }
}

#[test]
fn resumed_run_ends_with_the_same_bytes() {
    let dir = fixture_dir("equal-wide");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = empty_config(tmp.path());
    let episodes = dir.join("episodes.parquet").display().to_string();
    let sets = vec![
        format!("data.train={episodes}"),
        format!("data.val={episodes}"),
        "model.embed_dim=16".into(),
        "model.hidden_dim=12".into(),
        "maml.meta_batch_size=2".into(),
        "maml.num_meta_iterations=7".into(),
        "maml.val_every=2".into(),
        "maml.checkpoint_every=2".into(),
        "maml.inner_lr=0.1".into(),
        "maml.outer_lr=0.01".into(),
    ];
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = vec![
            "train".to_string(),
            "--config".into(),
            cfg.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        recmaml(&with_sets(args, &sets));
        out
    };
    let full = run("full", &[]);
    let part = run("part", &["--stop-after", "5"]);
    assert!(!part.join("final.safetensors").exists());
    assert!(part.join("checkpoints/iter_000004.safetensors").exists());
    run("part", &["--resume"]);
    for f in ["final.safetensors", "best.safetensors"] {
        let a = std::fs::read(full.join(f)).unwrap();
        let b = std::fs::read(part.join(f)).unwrap();
        assert!(a == b, "{f} differs after resume");
    }
    let ra: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("report.json")).unwrap()).unwrap();
    let rb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(part.join("report.json")).unwrap()).unwrap();
    assert_eq!(ra["history"], rb["history"]);
    // The training actually moved the weights.
    let w0 = read_tensors(&full.join("checkpoints/iter_000002.safetensors"))["params"].clone();
    let w1 = read_tensors(&full.join("checkpoints/iter_000006.safetensors"))["params"].clone();
    assert!(rel_err(&w1, &w0) > 1e-4);
}

#[test]
fn a_resume_takes_the_same_warm_start_weights_from_another_path() {
    let case = "equal-wide";
    let dir = fixture_dir(case);
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = empty_config(tmp.path());
    let weights = |name: &str| {
        let p = tmp.path().join(name);
        std::fs::copy(dir.join("weights.safetensors"), &p).unwrap();
        p
    };
    let run = |name: &str, pretrained: &Path, extra: &[&str]| {
        let mut sets = fixture_sets(case, &exp);
        sets.extend([
            "maml.num_meta_iterations=6".to_string(),
            "maml.checkpoint_every=2".into(),
            "maml.inner_lr=0.1".into(),
            format!("warmstart.pretrained_path={}", pretrained.display()),
        ]);
        let out = tmp.path().join(name);
        let mut args = vec![
            "train".to_string(),
            "--config".into(),
            cfg.display().to_string(),
        ];
        args.extend(["--out".into(), out.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let res = Command::new(env!("CARGO_BIN_EXE_recmaml"))
            .args(with_sets(args, &sets))
            .output()
            .unwrap();
        (out, res)
    };
    let (full, res) = run("full", &weights("a.safetensors"), &[]);
    assert!(res.status.success());
    // Interrupted, then its warm-start file moved: the resume finds the same weights there and
    // ends with the uninterrupted run's bytes.
    let b = weights("b.safetensors");
    let (part, res) = run("part", &b, &["--stop-after", "3"]);
    assert!(res.status.success() && !part.join("final.safetensors").exists());
    let moved = tmp.path().join("moved.safetensors");
    std::fs::rename(&b, &moved).unwrap();
    let (_, res) = run("part", &moved, &["--resume"]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        res.status.success() && err.contains("resumed from"),
        "{err}"
    );
    let f = "final.safetensors";
    let (x, y) = (full.join(f), part.join(f));
    assert!(
        std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
        "{f} differs"
    );
    // Other weights at the new path are refused, naming the setting; the folder is untouched.
    let (other, res) = run("other", &weights("c.safetensors"), &["--stop-after", "3"]);
    assert!(res.status.success());
    let changed = tmp.path().join("d.safetensors");
    let mut bytes = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&changed, bytes).unwrap();
    let listing = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing(&other);
    let (_, res) = run("other", &changed, &["--resume"]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{err}");
    assert!(
        err.contains("warmstart.pretrained_path") && err.contains("other weights"),
        "{err}"
    );
    assert_eq!(listing(&other), before);
    // Also at the run's own path.
    let c = tmp.path().join("c.safetensors");
    std::fs::copy(&changed, &c).unwrap();
    let (_, res) = run("other", &c, &["--resume"]);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        !res.status.success() && err.contains("holds other weights"),
        "{err}"
    );
    assert_eq!(listing(&other), before);
}
