//! The `time` recency scheme end to end: `recmaml train` and `recmaml eval` on episodes whose
//! support labels carry timestamps (different spacings in every episode), against the library's
//! `Cpu` backend given time weights computed here from those timestamps; and a support timestamp
//! count other than K, or a row without timestamps, as an error naming the file and the row.

mod common;

use common::text;

use recmaml::backend::{Backend, InnerLoop, OuterConfig, Task};
use recmaml::checkpoint;
use recmaml::cpu::Cpu;
use recmaml::data::Episode;
use recmaml::model::ParamLayout;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The scheme's time constant for these tests (seconds): the support spacings below range from a
/// minute to ten hours, so the weights are far from equal and differ from episode to episode.
const TAU: f64 = 3600.0;
const INNER_LR: f64 = 0.5;
const INNER_STEPS: usize = 5;
const OUTER_LR: f64 = 0.001;
const CLIP: f64 = 10.0;
/// Tolerance of the comparisons with the library (relative error of the whole vector): the CLI
/// and the library run the same f32 engine on the same inputs; only the order in which the
/// trainer draws the meta-batch's tasks may differ, which can change the rounding of their mean.
/// A wrongly weighted run is off by more than 100 times this (checked below).
const TOL: f64 = 1e-5;

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch/exp-tiny")
        .join(file)
}

fn recmaml(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[String]) -> Output {
    let o = recmaml(args);
    assert!(o.status.success(), "recmaml {args:?} failed:\n{}", text(&o));
    o
}

/// `a` zipped with `b`, after asserting that they are equally long.
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
    (num / den.max(1e-300)).sqrt()
}

/// The exp-tiny fixture's episodes with support and query timestamps: support spacings of their
/// own in every episode, the query after the support.
fn timed_episodes() -> Vec<Episode> {
    let mut eps: Vec<Episode> =
        serde_json::from_str(&std::fs::read_to_string(fixture("episodes.json")).unwrap()).unwrap();
    let spacings: [[i64; 5]; 3] = [
        [0, 600, 1_800, 7_200, 9_000],
        [0, 60, 120, 180, 36_000],
        [0, 3_000, 3_100, 3_200, 3_300],
    ];
    assert_eq!(eps.len(), spacings.len());
    for (i, (e, sp)) in eps.iter_mut().zip(spacings).enumerate() {
        assert_eq!(e.support_labels.len(), sp.len());
        let base = 1_700_000_000 + 1_000_000 * i as i64;
        e.support_label_ts = Some(sp.iter().map(|s| base + s).collect());
        let last = base + sp[4];
        e.query_label_ts = Some(
            (1..=e.query_labels.len() as i64)
                .map(|j| last + 60 * j)
                .collect(),
        );
    }
    eps
}

/// The time scheme's weights from its definition: `exp(-(newest - t) / tau)`, normalised to sum
/// to 1 (computed in f64, used in f32 as the trainer does).
fn time_weights(ts: &[i64], tau: f64) -> Vec<f32> {
    let newest = *ts.iter().max().unwrap();
    let raw: Vec<f64> = ts
        .iter()
        .map(|&t| (-((newest - t) as f64) / tau).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    raw.iter().map(|w| (w / total) as f32).collect()
}

fn tasks<'a>(eps: &'a [Episode], weights: &'a [Vec<f32>]) -> Vec<Task<'a>> {
    zip_eq(eps, weights, "episodes and weights")
        .map(|(e, w)| Task {
            support_prefixes: &e.support_prefixes,
            support_labels: &e.support_labels,
            support_weights: w,
            query_prefixes: &e.query_prefixes,
            query_labels: &e.query_labels,
        })
        .collect()
}

/// The flat parameters of a GRU4Rec safetensors file, with its layout.
fn params(path: &Path) -> (ParamLayout, Vec<f32>) {
    let sd = checkpoint::load_state_dict(path).unwrap();
    let layout = ParamLayout::new(checkpoint::dims_from_state_dict(&sd, path).unwrap());
    let theta = checkpoint::params_from_state_dict(&sd, &layout, path).unwrap();
    (layout, theta)
}

fn inner() -> InnerLoop {
    InnerLoop {
        lr: INNER_LR as f32,
        steps: INNER_STEPS,
    }
}

/// θ after one library meta-step from the fixture's weights on all episodes with `weights`.
fn library_step(eps: &[Episode], weights: &[Vec<f32>]) -> Vec<f32> {
    let (layout, theta0) = params(&fixture("weights.safetensors"));
    let mut cpu = Cpu::new(layout, theta0).unwrap();
    let stats = cpu
        .meta_step(
            &tasks(eps, weights),
            &inner(),
            &OuterConfig::adam(OUTER_LR as f32, CLIP as f32),
        )
        .unwrap();
    assert!(stats.meta_loss.is_finite());
    cpu.params().unwrap()
}

/// Few-shot query losses of every episode at the weights in `model`, from the library.
fn library_few_shot_losses(model: &Path, eps: &[Episode], weights: &[Vec<f32>]) -> Vec<f64> {
    let (layout, theta) = params(model);
    let mut cpu = Cpu::new(layout, theta).unwrap();
    let evals = cpu.evaluate(&tasks(eps, weights), &inner()).unwrap();
    assert_eq!(evals.len(), eps.len(), "library evaluate dropped episodes");
    evals.iter().map(|e| e.few_shot_loss).collect()
}

/// Weight sets a wrongly wired run could use instead of each episode's own time weights:
/// equal, the default `exponential` (λ = 0.5), and episode 0's time weights for every episode.
fn wrong_weights(eps: &[Episode], right: &[Vec<f32>]) -> Vec<(&'static str, Vec<Vec<f32>>)> {
    let k = right[0].len();
    let expo = recmaml::model::Recency::Exponential { lambda: 0.5 }
        .weights(k, None)
        .unwrap()
        .into_iter()
        .map(|w| w as f32)
        .collect::<Vec<_>>();
    vec![
        ("equal", vec![vec![1.0 / k as f32; k]; eps.len()]),
        ("exponential", vec![expo; eps.len()]),
        ("episode 0's", vec![right[0].clone(); eps.len()]),
    ]
}

fn time_sets() -> Vec<String> {
    vec![
        "recency.weighting_scheme=time".into(),
        format!("recency.tau={TAU}"),
        format!("maml.inner_lr={INNER_LR}"),
        format!("maml.inner_steps={INNER_STEPS}"),
    ]
}

fn with_sets(mut args: Vec<String>, sets: &[String]) -> Vec<String> {
    for s in sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    args
}

fn train_args(dir: &Path, out: &Path, train: &Path, extra: &[String]) -> Vec<String> {
    let cfg = dir.join("model.toml");
    std::fs::write(&cfg, "[model]\nembed_dim = 8\nhidden_dim = 6\n").unwrap();
    let mut sets = time_sets();
    sets.extend([
        format!("data.train={}", train.display()),
        format!("maml.outer_lr={OUTER_LR}"),
        format!("maml.grad_clip={CLIP}"),
        "maml.meta_batch_size=3".into(),
        "maml.val_every=0".into(),
        "maml.checkpoint_every=0".into(),
        "warmstart.use_warmstart=true".into(),
        format!(
            "warmstart.pretrained_path={}",
            fixture("weights.safetensors").display()
        ),
        "run.backend=cpu".into(),
    ]);
    sets.extend(extra.iter().cloned());
    with_sets(
        vec![
            "train".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ],
        &sets,
    )
}

fn eval_args(model: &Path, episodes: &Path, out: &Path, per: &Path) -> Vec<String> {
    with_sets(
        vec![
            "eval".into(),
            "--model".into(),
            model.display().to_string(),
            "--episodes".into(),
            episodes.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--per-episode".into(),
            per.display().to_string(),
        ],
        &time_sets(),
    )
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn time_scheme_trains_and_evaluates_with_each_episodes_time_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let eps = timed_episodes();
    let file = tmp.path().join("timed.parquet");
    recmaml::data::write_episodes(&file, &eps).unwrap();
    let right: Vec<Vec<f32>> = eps
        .iter()
        .map(|e| time_weights(e.support_label_ts.as_ref().unwrap(), TAU))
        .collect();

    // One meta-step through `recmaml train` (the test split is the same file).
    let out = tmp.path().join("run");
    ok(&train_args(
        tmp.path(),
        &out,
        &file,
        &[
            "maml.num_meta_iterations=1".into(),
            format!("data.test={}", file.display()),
        ],
    ));
    let final_path = out.join("final.safetensors");
    let (_, theta0) = params(&fixture("weights.safetensors"));
    let (_, got) = params(&final_path);
    let update = |theta: &[f32]| -> Vec<f64> {
        zip_eq(theta, &theta0, "θ")
            .map(|(a, b)| *a as f64 - *b as f64)
            .collect()
    };
    let want = update(&library_step(&eps, &right));
    let e = rel_err(&update(&got), &want);
    assert!(
        e < TOL,
        "train: update relative error {e:.3e} against the library"
    );
    for (what, w) in wrong_weights(&eps, &right) {
        let e = rel_err(&update(&library_step(&eps, &w)), &want);
        assert!(
            e > 100.0 * TOL,
            "the step with {what} weights is only {e:.3e} from the time weights' step: \
             this test cannot tell them apart"
        );
    }
    // The run's test metrics: the final weights (no validation) with the time weights.
    let want_losses = library_few_shot_losses(&final_path, &eps, &right);
    let res = read_json(&out.join("results.json"));
    assert_eq!(res["test_weights"], "final");
    assert_eq!(res["test"]["n_episodes"], eps.len());
    let mean = want_losses.iter().sum::<f64>() / want_losses.len() as f64;
    let got_mean = res["test"]["few_shot_loss"].as_f64().unwrap();
    assert!(
        ((got_mean - mean) / mean).abs() < TOL,
        "train: test few-shot loss {got_mean} vs {mean}"
    );

    // `recmaml eval` of the trained weights.
    let (summary, per) = (tmp.path().join("eval.json"), tmp.path().join("eval.jsonl"));
    ok(&eval_args(&final_path, &file, &summary, &per));
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&per)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got_losses: Vec<f64> = records
        .iter()
        .map(|r| r["few_shot_loss"].as_f64().unwrap())
        .collect();
    let e = rel_err(&got_losses, &want_losses);
    assert!(
        e < TOL,
        "eval: few-shot losses {got_losses:?} vs {want_losses:?}"
    );
    for (what, w) in wrong_weights(&eps, &right) {
        let e = rel_err(
            &library_few_shot_losses(&final_path, &eps, &w),
            &want_losses,
        );
        assert!(
            e > 100.0 * TOL,
            "few-shot losses with {what} weights are only {e:.3e} from the time weights' ones"
        );
    }
    assert_eq!(read_json(&summary)["weighting_scheme"], "time");
}

#[test]
fn time_scheme_refuses_a_row_with_the_wrong_timestamp_count_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("weights.safetensors");
    for (row, what, needle) in [
        (1, "K - 1 timestamps", "4 values for 5 prefixes"),
        (2, "no timestamps", "needs the support labels' timestamps"),
    ] {
        let mut eps = timed_episodes();
        match what {
            "no timestamps" => {
                eps[row].support_label_ts = None;
                eps[row].query_label_ts = None;
            }
            _ => {
                eps[row].support_label_ts.as_mut().unwrap().pop();
            }
        }
        let file = tmp.path().join(format!("bad{row}.parquet"));
        recmaml::data::write_episodes(&file, &eps).unwrap();
        let out = tmp.path().join(format!("run{row}"));
        let eval_out = tmp.path().join(format!("eval{row}.json"));
        for (cmd, args) in [
            (
                "train",
                train_args(
                    tmp.path(),
                    &out,
                    &file,
                    &["maml.num_meta_iterations=1".into()],
                ),
            ),
            (
                "eval",
                eval_args(&model, &file, &eval_out, &tmp.path().join("per.jsonl")),
            ),
        ] {
            let o = recmaml(&args);
            let t = text(&o);
            assert!(!o.status.success(), "{cmd} with {what}: {t}");
            let place = format!("{}, row {row}, column `support_label_ts`", file.display());
            assert!(
                t.contains(&place) && t.contains(needle),
                "{cmd} with {what}: no `{place}` and `{needle}` in: {t}"
            );
            assert!(!t.contains("panicked"), "{cmd}: {t}");
        }
        assert!(!out.exists(), "train left {}", out.display());
        assert!(!eval_out.exists(), "eval wrote {}", eval_out.display());
    }
}
