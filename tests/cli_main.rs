//! The main job and the trainer's error paths, through the `recmaml` binary.

mod common;

use common::text;

use recmaml::backend::{AdamState, Backend, Task};
use recmaml::config::Config;
use recmaml::cpu::Cpu;
use recmaml::model::{ModelDims, ParamLayout};
use recmaml::rng::Rng;
use recmaml::train::{self, WeightedSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn recmaml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args(args)
        .output()
        .unwrap()
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

/// The configuration file and `--set` overrides of [`train_fixture`]: a small model on the
/// exp-tiny episodes, two tasks per meta-batch, no validation, then `sets`.
fn fixture_config(out: &Path, sets: &[&str]) -> (PathBuf, Vec<String>) {
    let cfg = out.with_extension("toml");
    std::fs::write(&cfg, "[model]\nembed_dim = 8\nhidden_dim = 6\n").unwrap();
    let mut all = vec![
        format!("data.train={}", fixture("exp-tiny", "episodes.parquet")),
        "maml.meta_batch_size=2".to_string(),
        "maml.val_every=0".to_string(),
    ];
    all.extend(sets.iter().map(|s| s.to_string()));
    (cfg, all)
}

fn train_fixture(out: &Path, sets: &[&str]) -> Output {
    let (cfg, sets) = fixture_config(out, sets);
    let mut args = vec![
        "train".to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    for s in sets {
        args.extend(["--set".to_string(), s]);
    }
    Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args(&args)
        .output()
        .unwrap()
}

/// The text after the first `prefix` in `t`, up to the first character that `keep` rejects.
fn after<'a>(t: &'a str, prefix: &str, keep: impl Fn(char) -> bool) -> Option<&'a str> {
    let rest = &t[t.find(prefix)? + prefix.len()..];
    Some(&rest[..rest.find(|c| !keep(c)).unwrap_or(rest.len())])
}

/// A run whose weights overflow after a few good iterations: the error names the iteration that
/// diverged (found again here by replaying the run with the library from the checkpoint the error
/// names) and the last good checkpoint, which is the newest one on disk and holds finite weights.
#[test]
fn diverging_run_stops_with_an_error_naming_the_iteration_and_keeps_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("diverge");
    // Adam moves every weight by about outer_lr per step: with 1e37 the weights reach float32's
    // limit (3.4e38) after a few steps, and the losses overflow. A checkpoint every 3 iterations,
    // so that the last good checkpoint is not always the iteration just before the divergence.
    let every = 3;
    let sets = [
        "maml.outer_lr=1e37",
        "maml.num_meta_iterations=50",
        "maml.checkpoint_every=3",
        "maml.grad_clip=0",
    ];
    let o = train_fixture(&out, &sets);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(!out.join("final.safetensors").exists());
    assert!(!out.join("results.json").exists());
    let diverged: u64 = after(&t, "non-finite meta-loss at iteration ", |c| {
        c.is_ascii_digit()
    })
    .unwrap_or_else(|| panic!("no iteration in: {t}"))
    .parse()
    .unwrap();
    assert!(
        diverged > every,
        "diverged at iteration {diverged}, before the first checkpoint: this test needs one"
    );
    let named = PathBuf::from(
        after(&t, "last good checkpoint kept at ", |c| !c.is_whitespace())
            .unwrap_or_else(|| panic!("no last good checkpoint in: {t}")),
    );
    // The newest checkpoint written before the divergence, and none after it.
    let good = (diverged - 1) / every * every;
    let expected = out.join(format!("checkpoints/iter_{good:06}.safetensors"));
    assert_eq!(named, expected, "{t}");
    let mut on_disk: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk.last().map(String::as_str),
        expected.file_name().and_then(|n| n.to_str()),
        "{on_disk:?}"
    );

    // Replay from the named checkpoint with the library: the same meta-batches (the checkpoint's
    // random state) and Adam state; the first non-finite step must be the one the error names.
    let (cfg_path, all_sets) = fixture_config(&out, &sets);
    let cfg = Config::load(Some(&cfg_path), &all_sets).unwrap();
    let ws = WeightedSet::load(Path::new(&cfg.data.train), None, &cfg).unwrap();
    let layout = ParamLayout::new(ModelDims {
        n_items: ws.set.n_items,
        embed_dim: cfg.model.embed_dim,
        hidden_dim: cfg.model.hidden_dim,
    });
    let ck = recmaml::checkpoint::load_tensors_f32(&named).unwrap();
    let meta: serde_json::Value = serde_json::from_str(ck.meta("recmaml_state").unwrap()).unwrap();
    assert_eq!(meta["iteration"], good);
    let p = [layout.len];
    let theta = ck.get("params", &p).unwrap().to_vec();
    assert!(
        theta.iter().all(|x| x.is_finite()),
        "the kept checkpoint is not finite"
    );
    let mut cpu = Cpu::new(layout.clone(), theta).unwrap();
    cpu.set_adam(&AdamState {
        step: meta["adam_step"].as_u64().unwrap(),
        m: ck.get("adam_m", &p).unwrap().to_vec(),
        v: ck.get("adam_v", &p).unwrap().to_vec(),
    })
    .unwrap();
    let mut rng: Rng = serde_json::from_value(meta["rng"].clone()).unwrap();
    let (inner, outer) = (train::inner_loop(&cfg), train::outer_config(&cfg));
    let mut it = good;
    let replayed = loop {
        it += 1;
        assert!(
            it <= cfg.maml.num_meta_iterations,
            "the replay never diverged"
        );
        let idx = rng.sample_without_replacement(ws.len(), cfg.maml.meta_batch_size);
        let tasks: Vec<Task> = idx.iter().map(|&i| ws.task(i)).collect();
        let s = cpu.meta_step(&tasks, &inner, &outer).unwrap();
        if !(s.meta_loss.is_finite() && s.grad_norm.is_finite()) {
            break it;
        }
    };
    assert_eq!(diverged, replayed, "{t}");
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
