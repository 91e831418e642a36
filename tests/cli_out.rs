//! `recmaml train`'s output folder: a non-empty `--out` needs `--resume` or `--force` and is left
//! untouched without them; `--force` starts a clean run there; `--resume` refuses a changed
//! configuration, naming the keys, and continues with the keys it may change.

mod common;

use common::{snapshot, text};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch/equal-wide")
        .join(file)
        .display()
        .to_string()
}

/// `recmaml train` into `out` with the base settings (the equal-wide episodes for training and
/// validation, a small model, validation and a checkpoint every 2 iterations, 6 iterations), then
/// `sets`, then the `flags`.
fn train(dir: &Path, out: &Path, sets: &[&str], flags: &[&str]) -> Output {
    let cfg = dir.join("base.toml");
    std::fs::write(&cfg, "[model]\nembed_dim = 16\nhidden_dim = 12\n").unwrap();
    let episodes = fixture("episodes.parquet");
    let mut args = vec![
        "train".to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    let base = [
        format!("data.train={episodes}"),
        format!("data.val={episodes}"),
        "maml.meta_batch_size=2".into(),
        "maml.num_meta_iterations=6".into(),
        "maml.val_every=2".into(),
        "maml.checkpoint_every=2".into(),
        "maml.inner_lr=0.1".into(),
        "maml.outer_lr=0.01".into(),
    ];
    for s in base.iter().map(String::as_str).chain(sets.iter().copied()) {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    args.extend(flags.iter().map(|f| f.to_string()));
    Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args(&args)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    t
}

fn fails(o: Output) -> String {
    let t = text(&o);
    assert!(!o.status.success(), "succeeded: {t}");
    assert!(!t.contains("panicked"), "{t}");
    t
}

fn names(files: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<String> {
    files.keys().map(|p| p.display().to_string()).collect()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn checkpoints(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_non_empty_out_without_resume_or_force_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    ok(train(tmp.path(), &out, &[], &[]));
    std::fs::write(out.join("notes.txt"), "the user's own file").unwrap();
    let before = snapshot(&out);
    assert!(
        before.contains_key(Path::new("checkpoints/iter_000006.safetensors")),
        "{:?}",
        names(&before)
    );
    for (sets, flags) in [
        (vec![], vec![]),
        (vec!["maml.inner_lr=0.2"], vec![]),
        (vec![], vec!["--resume", "--force"]),
    ] {
        let t = fails(train(tmp.path(), &out, &sets, &flags));
        if flags.is_empty() {
            assert!(
                t.contains(&out.display().to_string())
                    && t.contains("--resume")
                    && t.contains("--force"),
                "{sets:?}: {t}"
            );
        } else {
            assert!(
                t.contains("--resume") && t.contains("--force") && t.contains("cannot be used"),
                "{flags:?}: {t}"
            );
        }
        assert!(
            snapshot(&out) == before,
            "{sets:?} {flags:?} changed {}",
            out.display()
        );
    }
}

#[test]
fn force_starts_a_clean_run_in_a_used_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    ok(train(tmp.path(), &out, &[], &[]));
    assert!(out.join("best.safetensors").is_file());
    assert_eq!(checkpoints(&out).len(), 3);
    std::fs::write(out.join("notes.txt"), "the user's own file").unwrap();
    // A different run: no validation (so no best.safetensors), no checkpoints, 3 iterations.
    let new = [
        "maml.val_every=0",
        "maml.checkpoint_every=0",
        "maml.num_meta_iterations=3",
        "maml.inner_lr=0.2",
    ];
    ok(train(tmp.path(), &out, &new, &["--force"]));
    assert_eq!(
        checkpoints(&out),
        Vec::<String>::new(),
        "old checkpoints left for a later --resume"
    );
    assert!(
        !out.join("best.safetensors").exists(),
        "the previous run's best.safetensors is left"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "the user's own file"
    );
    assert_eq!(read_json(&out.join("results.json"))["iterations"], 3);
    assert_eq!(
        read_json(&out.join("report.json"))["history"]["meta_loss"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The same run in an empty folder ends with the same weights: nothing of the old run was used.
    let fresh = tmp.path().join("fresh");
    ok(train(tmp.path(), &fresh, &new, &[]));
    assert!(
        std::fs::read(out.join("final.safetensors")).unwrap()
            == std::fs::read(fresh.join("final.safetensors")).unwrap(),
        "the forced run's weights differ from a fresh run's"
    );
}

#[test]
fn resume_refuses_a_changed_configuration_naming_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("part");
    ok(train(tmp.path(), &out, &[], &["--stop-after", "3"]));
    assert_eq!(checkpoints(&out), ["iter_000002.safetensors"]);
    let before = snapshot(&out);
    let ck = out.join("checkpoints/iter_000002.safetensors");

    // Two keys that change the computation, one of them only in a file's default.
    let t = fails(train(
        tmp.path(),
        &out,
        &["maml.inner_lr=0.2", "recency.lambda=0.7"],
        &["--resume"],
    ));
    for needle in [
        ck.display().to_string(),
        "maml.inner_lr = 0.1 there, 0.2 now".into(),
        "recency.lambda = 0.5 there, 0.7 now".into(),
    ] {
        assert!(t.contains(&needle), "no `{needle}` in: {t}");
    }
    assert!(
        !t.contains("maml.outer_lr"),
        "an unchanged key is named: {t}"
    );
    assert!(
        snapshot(&out) == before,
        "a refused resume changed the folder"
    );

    // Fewer iterations than the checkpoint has done.
    let t = fails(train(
        tmp.path(),
        &out,
        &["maml.num_meta_iterations=1"],
        &["--resume"],
    ));
    assert!(
        t.contains("maml.num_meta_iterations") && t.contains("iteration 2"),
        "{t}"
    );
    assert!(
        snapshot(&out) == before,
        "a refused resume changed the folder"
    );
}

#[test]
fn resume_continues_with_the_keys_it_may_change() {
    let tmp = tempfile::tempdir().unwrap();
    // Uninterrupted: 8 iterations.
    let full = tmp.path().join("full");
    ok(train(
        tmp.path(),
        &full,
        &["maml.num_meta_iterations=8"],
        &[],
    ));
    // Stopped after 3 iterations of a 6-iteration run, then extended to 8 with checkpoints
    // every 4 iterations instead of 2.
    let part = tmp.path().join("part");
    ok(train(tmp.path(), &part, &[], &["--stop-after", "3"]));
    let t = ok(train(
        tmp.path(),
        &part,
        &["maml.num_meta_iterations=8", "maml.checkpoint_every=4"],
        &["--resume"],
    ));
    assert!(
        t.contains("iteration 2)"),
        "did not resume from iteration 2: {t}"
    );
    for f in ["final.safetensors", "best.safetensors"] {
        assert!(
            std::fs::read(full.join(f)).unwrap() == std::fs::read(part.join(f)).unwrap(),
            "{f} differs from the uninterrupted run's"
        );
    }
    assert_eq!(
        read_json(&full.join("report.json"))["history"],
        read_json(&part.join("report.json"))["history"]
    );
    assert_eq!(
        checkpoints(&part),
        [
            "iter_000002.safetensors",
            "iter_000004.safetensors",
            "iter_000008.safetensors"
        ]
    );
    // Another backend and sections `train` does not read.
    let t = ok(train(
        tmp.path(),
        &part,
        &[
            "maml.num_meta_iterations=8",
            "run.backend=auto",
            "pretrain.epochs=3",
            "matrix.seeds=[7]",
        ],
        &["--resume"],
    ));
    assert!(
        t.contains("iteration 8)"),
        "did not resume from iteration 8: {t}"
    );
}
