//! `recmaml pretrain`, warm starts from it and from a PyTorch checkpoint, and `recmaml matrix`,
//! end to end through the binary on small synthetic datasets.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn recmaml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = recmaml(args);
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "recmaml {args:?} failed:\n{t}");
    t
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A synthetic log of `users` users over `items` items, prepared into `dir/data`; returns the
/// path of a configuration file that points at it.
fn dataset(dir: &Path, users: usize, items: usize) -> PathBuf {
    let log = dir.join("log.csv");
    let data = dir.join("data");
    ok(&[
        "synth",
        "--out",
        s(&log),
        "--users",
        &users.to_string(),
        "--items",
        &items.to_string(),
        "--quiet",
    ]);
    ok(&[
        "prepare",
        "--input",
        s(&log),
        "--format",
        "interactions",
        "--out",
        s(&data),
    ]);
    let ep = |split: &str| data.join(format!("episodes/episodes_{split}_K5_Q10.parquet"));
    let cfg = format!(
        "[data]\ntrain = {:?}\nval = {:?}\ntest = {:?}\npairs_train = {:?}\n[run]\nbackend = \"cpu\"\n",
        s(&ep("train")),
        s(&ep("val")),
        s(&ep("test")),
        s(&data.join("pairs_train.parquet"))
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn acc1(metrics: &Value) -> f64 {
    metrics["acc@1"]["mean"].as_f64().unwrap()
}

#[test]
fn pretrain_lowers_its_loss_beats_popularity_and_warm_starts_meta_training_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    // About 20,000 pairs: the synthetic log has about 1.4 pairs per user.
    let cfg = dataset(tmp.path(), 14_000, 300);
    let pre = tmp.path().join("pre");
    let t = ok(&[
        "pretrain",
        "--config",
        s(&cfg),
        "--out",
        s(&pre),
        "--set",
        "pretrain.epochs=3",
    ]);
    assert!(t.contains("popularity"), "{t}");
    let r = json(&pre.join("pretrain.json"));
    let losses: Vec<f64> = r["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["train_loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 3);
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    let (before, after) = (
        r["train_loss_before"].as_f64().unwrap(),
        r["train_loss_after"].as_f64().unwrap(),
    );
    // Random init starts near ln V; training must get well below it.
    assert!((before - 301f64.ln()).abs() < 0.5, "{before}");
    assert!(after < before - 1.0, "{before} -> {after}");
    // Held-out users (the test split): the model beats the most-frequent-label baseline by more
    // than the popularity baseline's whole interval.
    let (g, p) = (&r["test"], &r["popularity_test"]);
    assert!(
        acc1(g) > p["acc@1"]["ci_high"].as_f64().unwrap(),
        "GRU4Rec {g} vs popularity {p}"
    );
    assert!(g["mrr"]["mean"].as_f64() > p["mrr"]["mean"].as_f64());

    // The pretrained weights, evaluated on their own, on the validation episodes.
    let ev = tmp.path().join("eval.json");
    ok(&[
        "eval",
        "--model",
        s(&pre.join("gru4rec.safetensors")),
        "--episodes",
        s(&episodes(&cfg, "val")),
        "--out",
        s(&ev),
    ]);
    let pretrained_zero = acc1(&json(&ev)["zero_shot"]);

    // Warm-started meta-training: its iteration-0 validation is of exactly those weights.
    let run = tmp.path().join("run");
    ok(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&run),
        "--set",
        "warmstart.use_warmstart=true",
        "--set",
        &format!(
            "warmstart.pretrained_path={}",
            s(&pre.join("gru4rec.safetensors"))
        ),
        "--set",
        "maml.num_meta_iterations=2",
        "--set",
        "maml.val_every=1",
    ]);
    let h = &json(&run.join("report.json"))["history"];
    assert_eq!(h["val_iteration"][0], 0);
    let zero_at_0 = h["val_zero_shot_acc1"][0].as_f64().unwrap();
    assert_eq!(zero_at_0, pretrained_zero);
    assert!(pretrained_zero > 0.05, "{pretrained_zero}");
}

/// The episode file of `split` of the dataset that [`dataset`] wrote beside `cfg`.
fn episodes(cfg: &Path, split: &str) -> PathBuf {
    cfg.parent()
        .unwrap()
        .join(format!("data/episodes/episodes_{split}_K5_Q10.parquet"))
}

#[test]
fn a_pytorch_hidden128_fc_checkpoint_warm_starts_a_hidden128_configuration() {
    let pth = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch-pth/upstream_hidden128_fc.pth");
    let tmp = tempfile::tempdir().unwrap();
    // The checkpoint has V = 100: ids 1..99.
    let cfg = dataset(tmp.path(), 1500, 99);
    let ev = tmp.path().join("eval.json");
    ok(&[
        "eval",
        "--model",
        s(&pth),
        "--episodes",
        s(&episodes(&cfg, "val")),
        "--out",
        s(&ev),
    ]);
    let run = tmp.path().join("run");
    let common = [
        "--set",
        "model.hidden_dim=128",
        "--set",
        "warmstart.use_warmstart=true",
        "--set",
        "maml.num_meta_iterations=2",
        "--set",
        "maml.val_every=1",
    ];
    let pth_set = format!("warmstart.pretrained_path={}", s(&pth));
    let mut args = vec![
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&run),
        "--set",
        &pth_set,
    ];
    args.extend(common);
    ok(&args);
    let rep = json(&run.join("report.json"));
    assert_eq!(rep["dims"]["hidden_dim"], 128);
    assert_eq!(rep["dims"]["n_items"], 100);
    assert_eq!(
        rep["history"]["val_zero_shot_acc1"][0].as_f64().unwrap(),
        acc1(&json(&ev)["zero_shot"])
    );
    // The hidden-64 default cannot take it: a clear error that names the sizes.
    let bad = recmaml(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&tmp.path().join("bad")),
        "--set",
        &pth_set,
        "--set",
        "warmstart.use_warmstart=true",
    ]);
    assert!(!bad.status.success());
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(msg.contains("128") && msg.contains("64"), "{msg}");
}

#[test]
fn a_tiny_matrix_runs_end_to_end_its_json_and_markdown_agree_and_a_rerun_reuses_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = dataset(tmp.path(), 1500, 200);
    let out = tmp.path().join("matrix");
    let args = [
        "matrix",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--set",
        "matrix.seeds=[1,2]",
        "--set",
        "matrix.rows=[\"gru4rec\",\"popularity\",\"warmstart\",\"recency\",\"residual\",\"sknn\",\"linear\",\"lr0.1x1_equal\",\"lr0.1x1_exp\"]",
        "--set",
        "matrix.residual_l2=0.5",
        "--set",
        "maml.num_meta_iterations=20",
        "--set",
        "maml.val_every=10",
        "--set",
        "pretrain.epochs=1",
    ];
    ok(&args);
    let m = json(&out.join("matrix.json"));
    let md = std::fs::read_to_string(out.join("matrix.md")).unwrap();
    let rows = m["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "gru4rec",
            "popularity",
            "vanilla",
            "warmstart",
            "recency",
            "residual",
            "sknn",
            "linear",
            "lr0.1x1_equal",
            "lr0.1x1_exp"
        ]
    );
    assert_eq!(m["computed"].as_array().unwrap().len(), 20);
    for r in rows {
        let cell = |a: &Value| {
            format!(
                "{:.4} ± {:.4} [{:.3}, {:.3}]",
                a["mean"].as_f64().unwrap(),
                a["sd"].as_f64().unwrap(),
                a["ci_low"].as_f64().unwrap(),
                a["ci_high"].as_f64().unwrap()
            )
        };
        let few = cell(&r["few_shot"]["acc@1"]);
        let zero = cell(&r["zero_shot"]["acc@1"]);
        // Every row of the JSON is a line of the Markdown with the same numbers.
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {} |", r["name"].as_str().unwrap())))
            .unwrap_or_else(|| panic!("no all-metrics line for {r}"));
        assert!(
            line.contains(&few) && line.contains(&zero),
            "{line}\n{few}\n{zero}"
        );
        // The seed mean is the mean of the per-seed values.
        let per: Vec<f64> = r["per_seed_few_shot_acc1"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mean = per.iter().sum::<f64>() / per.len() as f64;
        assert!((mean - r["few_shot"]["acc@1"]["mean"].as_f64().unwrap()).abs() < 1e-12);
        // The adaptation gain is few- minus zero-shot Acc@1 on the same episodes: its mean is the
        // difference of the two means; a row that does not adapt gains exactly 0.
        let gain = &r["adaptation_gain"];
        let want = r["few_shot"]["acc@1"]["mean"].as_f64().unwrap()
            - r["zero_shot"]["acc@1"]["mean"].as_f64().unwrap();
        assert!((gain["mean"].as_f64().unwrap() - want).abs() < 1e-12, "{r}");
        let adapts = r["adapts"].as_bool().unwrap();
        assert_eq!(
            adapts,
            !["gru4rec", "popularity", "sknn"].contains(&r["name"].as_str().unwrap())
        );
        if !adapts {
            assert_eq!(gain["mean"], 0.0);
            assert_eq!(
                r["few_shot"]["acc@1"]["mean"],
                r["zero_shot"]["acc@1"]["mean"]
            );
        }
        let lo = gain["ci_low"].as_f64().unwrap();
        let hi = gain["ci_high"].as_f64().unwrap();
        assert!(lo <= want + 1e-12 && want <= hi + 1e-12, "{gain}");
        if r["in_comparison"].as_bool().unwrap() {
            let model = r["model"].as_str().unwrap();
            assert!(
                md.lines()
                    .any(|l| l.starts_with(&format!("| {model} |")) && l.contains(&few)),
                "comparison table lacks {model} {few}"
            );
        }
    }
    // The GRU4Rec row is the pretrained model: its per-seed Acc@1 is pretrain.json's.
    for (i, seed) in [1, 2].iter().enumerate() {
        let p = json(&out.join(format!("pretrain/seed{seed}/pretrain.json")));
        assert_eq!(
            rows[0]["per_seed_few_shot_acc1"][i].as_f64().unwrap(),
            acc1(&p["test"])
        );
    }
    // The paired difference of vanilla to itself is exactly 0; popularity is far below.
    assert_eq!(rows[2]["few_shot_vs_vanilla"]["acc@1"]["mean"], 0.0);
    // The comparison table shows each row's gain ("none" for the baselines).
    let comparison_line = |model: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| {model} |")))
            .unwrap_or_else(|| panic!("no comparison line for {model}"))
            .to_string()
    };
    assert!(comparison_line("Session-KNN").contains("none (does not adapt)"));
    let g = &rows[5]["adaptation_gain"];
    let cell = format!(
        "{:+.4} [{:+.3}, {:+.3}]",
        g["mean"].as_f64().unwrap(),
        g["ci_low"].as_f64().unwrap(),
        g["ci_high"].as_f64().unwrap()
    );
    assert!(
        comparison_line("Residual Warm-Start").contains(&cell),
        "{cell}"
    );
    // Residual warm-start trains from the pretrained weights with its own outer lr, inner steps
    // and the matrix's penalty.
    let key = std::fs::read_to_string(out.join("runs/residual/seed1/matrix_key.toml")).unwrap();
    for want in [
        "outer_lr = 0.0001",
        "inner_steps = 3",
        "use_warmstart = true",
        "residual_l2 = 0.5",
    ] {
        assert!(key.contains(want), "{want} not in\n{key}");
    }
    // Session-KNN does not depend on the seed.
    assert_eq!(
        rows[6]["per_seed_few_shot_acc1"][0],
        rows[6]["per_seed_few_shot_acc1"][1]
    );
    // The sensitivity block: the cells whose two rows ran, each difference paired.
    let cells = m["sensitivity"].as_array().unwrap();
    let lr_steps: Vec<(f64, u64)> = cells
        .iter()
        .map(|c| {
            (
                c["inner_lr"].as_f64().unwrap(),
                c["inner_steps"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(lr_steps, [(0.01, 5), (0.1, 1)]);
    assert!(md.contains("## Ablation: inner-loop sensitivity"));
    for c in cells {
        let d = &c["exponential_minus_equal"];
        let want = c["exponential_few_shot_acc1"]["mean"].as_f64().unwrap()
            - c["equal_few_shot_acc1"]["mean"].as_f64().unwrap();
        assert!((d["mean"].as_f64().unwrap() - want).abs() < 1e-12, "{c}");
        let line = format!(
            "| {} | {} |",
            c["inner_lr"].as_f64().unwrap(),
            c["inner_steps"].as_u64().unwrap()
        );
        let diff = format!(
            "{:+.4} [{:+.3}, {:+.3}]",
            d["mean"].as_f64().unwrap(),
            d["ci_low"].as_f64().unwrap(),
            d["ci_high"].as_f64().unwrap()
        );
        assert!(
            md.lines()
                .any(|l| l.starts_with(&line) && l.ends_with(&format!("{diff} |"))),
            "no sensitivity line {line} … {diff}"
        );
    }
    for f in ["recency_weights", "val_acc1", "few_shot_acc1"] {
        for ext in ["png", "svg"] {
            let p = out.join(format!("plots/{f}.{ext}"));
            assert!(
                std::fs::metadata(&p).unwrap().len() > 1000,
                "{}",
                p.display()
            );
        }
    }

    // Again: nothing is recomputed and the report is the same.
    let t = ok(&args);
    let m2 = json(&out.join("matrix.json"));
    assert_eq!(m2["computed"].as_array().unwrap().len(), 0, "{t}");
    assert_eq!(m2["reused"].as_array().unwrap().len(), 20);
    assert_eq!(m2["rows"], m["rows"]);

    // The folder moved elsewhere: still nothing recomputed, the warm-started rows included.
    let moved = tmp.path().join("moved");
    std::fs::rename(&out, &moved).unwrap();
    let moved_args: Vec<&str> = args
        .iter()
        .map(|a| if *a == s(&out) { s(&moved) } else { a })
        .collect();
    let t = ok(&moved_args);
    let mm = json(&moved.join("matrix.json"));
    assert_eq!(mm["computed"].as_array().unwrap().len(), 0, "{t}");
    assert_eq!(mm["rows"], m["rows"]);
    std::fs::rename(&moved, &out).unwrap();

    // A changed setting recomputes only what depends on it.
    let mut changed = args.to_vec();
    changed.extend([
        "--set",
        "matrix.rows=[\"linear\"]",
        "--set",
        "maml.inner_lr=0.02",
    ]);
    ok(&changed);
    let m3 = json(&out.join("matrix.json"));
    let computed: Vec<&str> = m3["computed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        computed,
        [
            "vanilla/seed1",
            "linear/seed1",
            "vanilla/seed2",
            "linear/seed2"
        ]
    );
}

#[test]
fn matrix_rejects_an_unknown_row_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[data]\ntrain = \"x.parquet\"\ntest = \"y.parquet\"\n",
    )
    .unwrap();
    let o = recmaml(&[
        "matrix",
        "--config",
        s(&cfg),
        "--out",
        s(&tmp.path().join("m")),
        "--set",
        "matrix.rows=[\"vanila\"]",
    ]);
    assert!(!o.status.success());
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(
        msg.contains("matrix.rows") && msg.contains("vanila"),
        "{msg}"
    );
    assert!(!tmp.path().join("m").exists(), "no output on bad input");
}

/// `pretrain` with `run.backend = "cuda"`: on a machine without a usable GPU a clear error that
/// names the backend, and no output folder; on a GPU machine it pretrains (checked against the
/// CPU by `recmaml gpu-check`), so there this test only asks that it succeeds.
#[test]
fn pretrain_on_the_cuda_backend_is_a_clear_error_without_a_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = dataset(tmp.path(), 300, 60);
    let out = tmp.path().join("pre-cuda");
    let args = [
        "pretrain",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--set",
        "run.backend=cuda",
        "--set",
        "pretrain.epochs=1",
    ];
    if recmaml::cuda::device_available() {
        ok(&args);
        assert!(out.join("gru4rec.safetensors").is_file());
        return;
    }
    let o = recmaml(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "pretrain on cuda succeeded without a GPU"
    );
    assert!(err.contains("cuda") && err.contains("CUDA"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "a failed run left {}", out.display());
}
