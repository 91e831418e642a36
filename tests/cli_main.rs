//! The main job and the trainer's error paths, through the `recmaml` binary.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn recmaml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn quickstart_runs_synth_prepare_train_and_test_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("synth");
    let out = tmp.path().join("run");
    let o = recmaml(&[
        "quickstart",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "maml.num_meta_iterations=30",
        "--set",
        "maml.val_every=10",
        "--set",
        "maml.checkpoint_every=15",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("zero-shot") && t.contains("few-shot") && t.contains("acc@1"),
        "{t}"
    );
    for f in [
        "final.safetensors",
        "best.safetensors",
        "results.json",
        "report.json",
        "checkpoints/iter_000030.safetensors",
    ] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    let res: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(res["iterations"], 30);
    let n_test = res["test"]["n_episodes"].as_u64().unwrap();
    assert!(n_test > 100, "{n_test} test episodes");
    let acc = &res["test"]["few_shot"]["acc@1"];
    let (m, lo, hi) = (
        acc["mean"].as_f64().unwrap(),
        acc["ci_low"].as_f64().unwrap(),
        acc["ci_high"].as_f64().unwrap(),
    );
    assert!(lo <= m && m <= hi && hi - lo > 0.0, "{acc}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["history"]["meta_loss"].as_array().unwrap().len(), 30);
    // Validation at iteration 0 (the starting weights) and every 10 iterations.
    assert_eq!(report["history"]["val_acc1"].as_array().unwrap().len(), 4);
    assert_eq!(
        report["history"]["val_iteration"],
        serde_json::json!([0, 10, 20, 30])
    );
    // A second run reuses the prepared episodes.
    let o = recmaml(&[
        "quickstart",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "maml.num_meta_iterations=2",
        "--set",
        "maml.val_every=0",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("using the episodes prepared"));
}

fn fixture(case: &str, file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(case)
        .join(file)
        .display()
        .to_string()
}

fn train_fixture(out: &Path, sets: &[&str]) -> Output {
    let tmp_cfg = out.with_extension("toml");
    std::fs::write(&tmp_cfg, "[model]\nembed_dim = 8\nhidden_dim = 6\n").unwrap();
    let train = format!("data.train={}", fixture("exp-tiny", "episodes.parquet"));
    let mut args = vec![
        "train",
        "--config",
        tmp_cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        &train,
        "--set",
        "maml.meta_batch_size=2",
        "--set",
        "maml.val_every=0",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    recmaml(&args)
}

#[test]
fn diverging_run_stops_with_an_error_naming_the_iteration_and_keeps_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("diverge");
    // Rates this large overflow the weights within a few iterations.
    let o = train_fixture(
        &out,
        &[
            "maml.inner_lr=1e30",
            "maml.outer_lr=1e30",
            "maml.num_meta_iterations=50",
            "maml.checkpoint_every=1",
            "maml.grad_clip=0",
        ],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("non-finite meta-loss at iteration"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(!out.join("final.safetensors").exists());
}

#[test]
fn bad_settings_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (sets, needle) in [
        (vec!["maml.meta_batch_size=99"], "maml.meta_batch_size"),
        (vec!["maml.inner_lr=-1"], "maml.inner_lr"),
        (vec!["recency.weighting_scheme=time"], "support_label_ts"),
        (
            vec![
                "warmstart.use_warmstart=true",
                "warmstart.pretrained_path=/nonexistent.safetensors",
            ],
            "/nonexistent.safetensors",
        ),
    ] {
        let out = tmp.path().join("bad");
        let o = train_fixture(&out, &sets);
        let t = text(&o);
        assert!(!o.status.success(), "{sets:?}: {t}");
        assert!(t.contains(needle), "{sets:?}: {t}");
        assert!(!t.contains("panicked"), "{sets:?}: {t}");
        assert!(!out.exists(), "{sets:?} left output behind");
    }
}

/// `run.backend = "cuda"`: where a CUDA device is found, the run trains on it and writes its
/// outputs; elsewhere it is a clear error naming the setting to change, and leaves no output
/// folder (and the GPU half is reported as skipped, a failure under `RECMAML_REQUIRE_CUDA=1`).
#[test]
fn training_on_the_cuda_backend_runs_on_a_gpu_and_is_a_clear_error_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cuda");
    let iterations = 3;
    let o = train_fixture(
        &out,
        &[
            "run.backend=cuda",
            &format!("maml.num_meta_iterations={iterations}"),
        ],
    );
    let t = text(&o);
    assert!(!t.contains("panicked"), "{t}");
    if recmaml::cuda::device_available() {
        assert!(
            o.status.success(),
            "run.backend = cuda on a machine with a GPU: {t}"
        );
        for f in ["final.safetensors", "results.json", "report.json"] {
            assert!(out.join(f).is_file(), "missing {f}");
        }
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(report["backend"], "cuda");
        let losses = report["history"]["meta_loss"].as_array().unwrap();
        assert_eq!(losses.len(), iterations);
        assert!(
            losses.iter().all(|l| l.as_f64().unwrap().is_finite()),
            "{losses:?}"
        );
        return;
    }
    assert!(
        !o.status.success(),
        "run.backend = cuda succeeded without a GPU: {t}"
    );
    assert!(
        t.contains("CUDA") && t.contains("run.backend = \"cpu\""),
        "{t}"
    );
    assert!(!out.exists(), "a failed run left {}", out.display());
    common::skip(
        common::Needs::Cuda,
        "no CUDA device found: only the error without one was checked",
    );
}

#[test]
fn warm_start_with_the_wrong_hidden_size_names_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ws");
    let w = format!(
        "warmstart.pretrained_path={}",
        fixture("exp-tiny", "weights.safetensors")
    );
    let o = train_fixture(
        &out,
        &["warmstart.use_warmstart=true", &w, "model.hidden_dim=7"],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("gru.weight_hh_l0") && t.contains("model.hidden_dim"),
        "{t}"
    );
}
