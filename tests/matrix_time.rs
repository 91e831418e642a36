//! The matrix's `time` row (recency MAML whose support weights come from each episode's support
//! label timestamps, `exp(−(t_newest − t_i) / tau)`), end to end on a tiny prepared dataset.
//!
//! Its observable effect: with timestamps that all coincide within each episode the weights are
//! exactly equal, so the row must train and evaluate bit for bit like vanilla MAML (same seed,
//! same initialisation, same batches); with the dataset's real, differing timestamps it must
//! not. Without timestamps the row is an error that says what is missing.

use recmaml::config::Config;
use recmaml::data::{read_episodes, write_episodes, Episode};
use recmaml::matrix::{self, MatrixReport, SeedResult};
use std::path::{Path, PathBuf};
use std::process::Command;

fn recmaml(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "recmaml {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const SPLITS: [&str; 3] = ["train", "val", "test"];

/// A small synthetic log prepared into `dir/data` (a few episodes per split: about 1 user in 500
/// gives a val or test episode); returns the folder of its episode files.
fn prepared(dir: &Path) -> PathBuf {
    let log = dir.join("log.csv");
    let data = dir.join("data");
    recmaml(&[
        "synth",
        "--out",
        s(&log),
        "--users",
        "4000",
        "--items",
        "60",
        "--quiet",
    ]);
    recmaml(&[
        "prepare",
        "--input",
        s(&log),
        "--format",
        "interactions",
        "--out",
        s(&data),
    ]);
    data.join("episodes")
}

fn episode_file(dir: &Path, split: &str) -> PathBuf {
    dir.join(format!("episodes_{split}_K5_Q10.parquet"))
}

/// Copies the three episode files of `from` into `to`, each episode changed by `edit`.
fn rewrite(from: &Path, to: &Path, edit: fn(&mut Episode)) {
    std::fs::create_dir_all(to).unwrap();
    for split in SPLITS {
        let mut eps = read_episodes(&episode_file(from, split), None)
            .unwrap()
            .episodes;
        eps.iter_mut().for_each(edit);
        write_episodes(&episode_file(to, split), &eps).unwrap();
    }
}

/// The matrix of vanilla MAML and the `time` row, one seed, a few iterations, on the episode
/// files in `episodes`, written to `out`.
fn run_matrix(episodes: &Path, out: &Path) -> recmaml::Result<MatrixReport> {
    let f = |split| s(&episode_file(episodes, split)).to_string();
    let sets: Vec<String> = [
        format!("data.train={}", f("train")),
        format!("data.val={}", f("val")),
        format!("data.test={}", f("test")),
        "run.backend=cpu".into(),
        "matrix.seeds=[1]".into(),
        "matrix.rows=[\"time\"]".into(),
        "model.embed_dim=16".into(),
        "model.hidden_dim=16".into(),
        "maml.meta_batch_size=4".into(),
        "maml.num_meta_iterations=6".into(),
        "maml.val_every=3".into(),
        // Five minutes: the synthetic log's support labels lie minutes (inside a session) to
        // days apart.
        "recency.tau=300".into(),
    ]
    .into();
    let cfg = Config::load(None, &sets)?;
    matrix::run(&cfg, out)
}

fn seed_result(out: &Path, row: &str) -> SeedResult {
    let text = std::fs::read_to_string(out.join(format!("rows/{row}/seed1.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The trained θ of a row's seed-1 run, tensor by tensor.
fn theta(out: &Path, row: &str) -> Vec<(String, Vec<f32>)> {
    let t = recmaml::checkpoint::load_tensors_f32(
        &out.join(format!("runs/{row}/seed1/final.safetensors")),
    )
    .unwrap();
    t.tensors.into_iter().map(|(n, (_, v))| (n, v)).collect()
}

#[test]
fn the_time_row_weights_by_timestamp_equal_only_when_the_timestamps_coincide() {
    let tmp = tempfile::tempdir().unwrap();
    let real = prepared(tmp.path());

    // The prepared episodes carry support timestamps, and within most episodes they differ by
    // enough to move the weights far from 1/K at tau = 5 min.
    let test = read_episodes(&episode_file(&real, "test"), None).unwrap();
    let far_from_equal = test
        .episodes
        .iter()
        .filter(|e| {
            let ts = e
                .support_label_ts
                .as_ref()
                .expect("prepared episodes have timestamps");
            let newest = *ts.iter().max().unwrap();
            let raw: Vec<f64> = ts
                .iter()
                .map(|&t| (-((newest - t) as f64) / 300.0).exp())
                .collect();
            let sum: f64 = raw.iter().sum();
            raw.iter().any(|w| (w / sum - 0.2).abs() > 0.05)
        })
        .count();
    assert!(
        far_from_equal * 2 > test.episodes.len(),
        "{far_from_equal} of {} test episodes",
        test.episodes.len()
    );

    // The real timestamps: the time row is in the report, in the ablation table, and is not
    // vanilla MAML.
    let out_real = tmp.path().join("m-real");
    let rep = run_matrix(&real, &out_real).unwrap();
    let names: Vec<&str> = rep.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["vanilla", "time"]);
    let time = &rep.rows[1];
    assert_eq!(
        (time.scheme.as_str(), time.inner_loop.as_str()),
        ("Time decay", "Time decay")
    );
    assert!(time.in_ablation && !time.in_comparison);
    let md = std::fs::read_to_string(out_real.join("matrix.md")).unwrap();
    assert!(md.lines().any(|l| l.starts_with("| Time decay |")), "{md}");
    assert_ne!(
        theta(&out_real, "time"),
        theta(&out_real, "vanilla"),
        "differing timestamps trained the same θ as equal weights"
    );
    // The report's validation curve and the plot's line are the seed's validation history.
    let sr = seed_result(&out_real, "time");
    let history: Vec<(u64, f64)> = sr
        .val_iteration
        .iter()
        .copied()
        .zip(sr.val_acc1.iter().copied())
        .collect();
    assert_eq!(history.len(), 3, "validation at 0, 3 and 6");
    assert_eq!(time.val_curve, history);
    let line = matrix::val_curve_series(&rep)
        .into_iter()
        .find(|l| l.label == "Recency MAML (Time decay)")
        .expect("a validation line for the time row");
    let points: Vec<(f64, f64)> = history.iter().map(|&(i, a)| (i as f64, a)).collect();
    assert_eq!(line.points, points);

    // The same episodes with every support timestamp of an episode set to its newest: the weights
    // are exactly 1/K, and the time row is vanilla MAML, bit for bit.
    let same = tmp.path().join("same-ts");
    rewrite(&real, &same, |e| {
        let ts = e.support_label_ts.as_mut().unwrap();
        let newest = *ts.iter().max().unwrap();
        ts.iter_mut().for_each(|t| *t = newest);
    });
    let out_same = tmp.path().join("m-same");
    let rep = run_matrix(&same, &out_same).unwrap();
    assert_eq!(theta(&out_same, "time"), theta(&out_same, "vanilla"));
    let (t, v) = (
        seed_result(&out_same, "time"),
        seed_result(&out_same, "vanilla"),
    );
    assert_eq!(t.few_shot, v.few_shot);
    assert_eq!(t.val_acc1, v.val_acc1);
    for (metric, d) in &rep.rows[1].few_shot_vs_vanilla {
        assert_eq!((d.mean, d.ci_low, d.ci_high), (0.0, 0.0, 0.0), "{metric}");
    }

    // Without timestamps: an error that names the missing column and the scheme.
    let none = tmp.path().join("no-ts");
    rewrite(&real, &none, |e| {
        e.support_label_ts = None;
        e.query_label_ts = None;
    });
    let err = run_matrix(&none, &tmp.path().join("m-none"))
        .expect_err("the time row ran without timestamps")
        .to_string();
    assert!(
        err.contains("support_label_ts") && err.contains("`time` needs"),
        "{err}"
    );
}
