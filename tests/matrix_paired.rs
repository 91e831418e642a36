//! The matrix's few-shot difference to vanilla MAML (`matrix::paired_difference`: seed-averaged
//! per-episode differences, resampled over episodes jointly for both rows) and the verdicts drawn
//! from its interval, against hand-computed cases.

use recmaml::matrix::{paired_difference, verdict, Aggregate, MatrixReport, RowReport, SeedResult};
use recmaml::metrics::{Estimate, METRICS};
use std::collections::BTreeMap;

/// One (row, seed) result whose few-shot value of metric `metric` is `values[e]` on episode
/// `ids[e]`. Every other metric, and zero-shot, is NaN, so reading the wrong one shows.
fn result(row: &str, seed: u64, ids: &[i64], metric: usize, values: &[f64]) -> SeedResult {
    assert_eq!(ids.len(), values.len());
    let per_episode = |v: f64| {
        let mut m = [f64::NAN; 5];
        m[metric] = v;
        m
    };
    SeedResult {
        row: row.into(),
        seed,
        key: String::new(),
        episode_ids: ids.to_vec(),
        zero_shot: vec![[f64::NAN; 5]; ids.len()],
        few_shot: values.iter().map(|&v| per_episode(v)).collect(),
        val_iteration: Vec::new(),
        val_acc1: Vec::new(),
        best_iteration: None,
        wall_time_s: 0.0,
    }
}

fn ids(n: usize) -> Vec<i64> {
    // Not 0..n, so that a position is never mistaken for an id.
    (0..n as i64).map(|i| 100 + 3 * i).collect()
}

fn refs(v: &[SeedResult]) -> Vec<&SeedResult> {
    v.iter().collect()
}

#[test]
fn identical_rows_differ_by_exactly_zero_with_the_interval_exactly_zero() {
    // Per-episode values that vary a lot, and differ between the two seeds: only resampling
    // the same episodes for both rows makes every resample's difference exactly 0 (independent
    // resamples of the two rows would give differences of up to ±1).
    let n = 30;
    let a: Vec<f64> = (0..n).map(|e| ((e * 7) % 5) as f64 / 4.0).collect();
    let b: Vec<f64> = (0..n).map(|e| (e % 2) as f64).collect();
    let vanilla = [
        result("vanilla", 1, &ids(n), 0, &a),
        result("vanilla", 2, &ids(n), 0, &b),
    ];
    let same = [
        result("recency", 1, &ids(n), 0, &a),
        result("recency", 2, &ids(n), 0, &b),
    ];
    let d = paired_difference(&refs(&same), &refs(&vanilla), 0).unwrap();
    assert_eq!(
        d,
        Estimate {
            mean: 0.0,
            ci_low: 0.0,
            ci_high: 0.0
        }
    );
    // Vanilla against itself, as the matrix computes vanilla's own row.
    let d = paired_difference(&refs(&vanilla), &refs(&vanilla), 0).unwrap();
    assert_eq!((d.mean, d.ci_low, d.ci_high), (0.0, 0.0, 0.0));
}

#[test]
fn a_constant_shift_is_found_exactly_with_a_zero_width_interval() {
    // Values on a grid of 1/4 (exact in binary), so the seed averages and differences are exact:
    // the row is vanilla + 1/4 on every episode of every seed, the seed-averaged difference is
    // 1/4 on every episode, and so is the mean of every resample of it.
    let n = 25;
    let a: Vec<f64> = (0..n).map(|e| (e % 4) as f64 / 4.0).collect();
    let b: Vec<f64> = (0..n).map(|e| ((e * 3) % 5) as f64 / 4.0).collect();
    let vanilla = [
        result("vanilla", 1, &ids(n), 3, &a),
        result("vanilla", 2, &ids(n), 3, &b),
    ];
    let shifted = |c: f64| {
        [
            result(
                "recency",
                1,
                &ids(n),
                3,
                &a.iter().map(|v| v + c).collect::<Vec<_>>(),
            ),
            result(
                "recency",
                2,
                &ids(n),
                3,
                &b.iter().map(|v| v + c).collect::<Vec<_>>(),
            ),
        ]
    };
    for c in [0.25, -0.5] {
        let row = shifted(c);
        let d = paired_difference(&refs(&row), &refs(&vanilla), 3).unwrap();
        assert_eq!((d.mean, d.ci_low, d.ci_high), (c, c, c), "shift {c}");
    }
}

#[test]
fn a_small_case_gives_the_hand_computed_mean_and_an_interval_of_possible_resample_means() {
    // Two seeds, three episodes (metric 4, MRR):
    //   row      seed 1: 1, 0, 1   seed 2: 1, 1, 0   -> seed average 1, 1/2, 1/2
    //   vanilla  seed 1: 0, 0, 1   seed 2: 1, 0, 0   -> seed average 1/2, 0, 1/2
    //   per-episode difference: 1/2, 1/2, 0; mean 1/3.
    // A paired resample draws three episodes with replacement and averages their differences,
    // so it holds j copies of 1/2 (j = 0..3): its mean is j/6, one of 0, 1/6, 1/3, 1/2. Both ends
    // of a percentile interval are resample means. (Resampling the rows independently gives
    // row means in 1/2..1 minus vanilla means in 0..1/2: differences up to 1.)
    let id = [7, 3, 11];
    let row = [
        result("warmstart", 1, &id, 4, &[1.0, 0.0, 1.0]),
        result("warmstart", 2, &id, 4, &[1.0, 1.0, 0.0]),
    ];
    let vanilla = [
        result("vanilla", 1, &id, 4, &[0.0, 0.0, 1.0]),
        result("vanilla", 2, &id, 4, &[1.0, 0.0, 0.0]),
    ];
    let d = paired_difference(&refs(&row), &refs(&vanilla), 4).unwrap();
    assert!((d.mean - 1.0 / 3.0).abs() < 1e-15, "{d:?}");
    let possible = [0.0, 1.0 / 6.0, 1.0 / 3.0, 0.5];
    for end in [d.ci_low, d.ci_high] {
        assert!(
            possible.iter().any(|p| (p - end).abs() < 1e-12),
            "interval end {end} is not a possible paired resample mean {possible:?}: {d:?}"
        );
    }
    assert!(d.ci_low <= d.mean && d.mean <= d.ci_high, "{d:?}");
    // The three episodes do not all have the same difference: the interval is not a point.
    assert!(d.ci_low < d.ci_high, "{d:?}");
}

#[test]
fn pairing_finds_a_small_shift_that_the_spread_between_episodes_would_hide() {
    // 40 episodes whose vanilla values spread evenly over [0, 1] (standard deviation 0.29),
    // and a row better on every episode by 0.04 or 0.06 (mean 0.05). Every paired resample mean
    // is an average of 0.04s and 0.06s, so the interval lies within [0.04, 0.06] and excludes 0.
    // Resampling the two rows independently would give a standard error of about
    // 0.29 * sqrt(2 / 40) = 0.065 and an interval reaching below 0.
    let n = 40;
    let v: Vec<f64> = (0..n).map(|e| e as f64 / (n - 1) as f64).collect();
    let gain = |e: usize| if e.is_multiple_of(2) { 0.04 } else { 0.06 };
    let r: Vec<f64> = v.iter().enumerate().map(|(e, x)| x + gain(e)).collect();
    let vanilla = [result("vanilla", 1, &ids(n), 0, &v)];
    let row = [result("recency", 1, &ids(n), 0, &r)];
    let d = paired_difference(&refs(&row), &refs(&vanilla), 0).unwrap();
    assert!((d.mean - 0.05).abs() < 1e-12, "{d:?}");
    assert!(
        d.ci_low >= 0.04 - 1e-12 && d.ci_high <= 0.06 + 1e-12,
        "{d:?}"
    );
    let rep = report(vec![row_report("recency", "Recency MAML", d)]);
    assert!(
        verdict(&rep, "recency")
            .unwrap()
            .ends_with("→ better than vanilla"),
        "{d:?}"
    );
}

#[test]
fn mismatched_episode_ids_are_an_error_naming_the_row_seed_and_ids() {
    let v = [0.0, 1.0, 0.5];
    let vanilla = [
        result("vanilla", 1, &[10, 20, 30], 0, &v),
        result("vanilla", 2, &[10, 20, 30], 0, &v),
    ];
    let err = |row: &[SeedResult], van: &[SeedResult]| {
        paired_difference(&refs(row), &refs(van), 0)
            .expect_err("mismatched episodes were paired")
            .to_string()
    };
    // Another episode at one position.
    let row = [
        result("recency", 1, &[10, 20, 30], 0, &v),
        result("recency", 2, &[10, 21, 30], 0, &v),
    ];
    let e = err(&row, &vanilla);
    assert!(
        e.contains("row recency seed 2")
            && e.contains("episode id 21 at position 1")
            && e.contains("vanilla MAML seed 1 has 20"),
        "{e}"
    );
    // The same episodes in another order: pairing by position would compare different episodes.
    let row = [result("linear", 1, &[20, 10, 30], 0, &v)];
    let e = err(&row, &vanilla);
    assert!(
        e.contains("row linear seed 1") && e.contains("episode id 20 at position 0"),
        "{e}"
    );
    // Fewer episodes.
    let row = [result("recency", 1, &[10, 20], 0, &v[..2])];
    let e = err(&row, &vanilla);
    assert!(
        e.contains("row recency seed 1")
            && e.contains("2 episodes where vanilla MAML seed 1 has 3"),
        "{e}"
    );
    // Vanilla's own seeds disagree.
    let odd_vanilla = [
        result("vanilla", 1, &[10, 20, 30], 0, &v),
        result("vanilla", 2, &[10, 20, 31], 0, &v),
    ];
    let row = [result("recency", 1, &[10, 20, 30], 0, &v)];
    let e = err(&row, &odd_vanilla);
    assert!(
        e.contains("row vanilla seed 2") && e.contains("episode id 31"),
        "{e}"
    );
    // Fewer values than episode ids.
    let mut short = result("recency", 1, &[10, 20, 30], 0, &v);
    short.few_shot.pop();
    let e = err(&[short], &vanilla);
    assert!(
        e.contains("row recency seed 1") && e.contains("2 few-shot values for 3 test episodes"),
        "{e}"
    );
}

fn agg(x: f64) -> Aggregate {
    Aggregate {
        mean: x,
        sd: 0.0,
        ci_low: x,
        ci_high: x,
    }
}

/// A report row whose few-shot Acc@1 difference to vanilla MAML is `d`.
fn row_report(name: &str, model: &str, d: Estimate) -> RowReport {
    let all = |x: f64| -> BTreeMap<String, Aggregate> {
        METRICS.iter().map(|m| (m.to_string(), agg(x))).collect()
    };
    RowReport {
        name: name.into(),
        model: model.into(),
        init: "Random".into(),
        inner_loop: "Equal weights".into(),
        scheme: String::new(),
        scheme_param: String::new(),
        in_comparison: true,
        in_ablation: false,
        seeds: vec![1],
        zero_shot: all(0.1),
        few_shot: all(0.2),
        few_shot_vs_vanilla: METRICS.iter().map(|m| (m.to_string(), d)).collect(),
        adapts: true,
        adaptation_gain: d,
        per_seed_few_shot_acc1: vec![0.2],
        per_seed_best_iteration: vec![None],
        val_curve: Vec::new(),
        wall_time_s: 0.0,
    }
}

fn report(rows: Vec<RowReport>) -> MatrixReport {
    MatrixReport {
        config: Default::default(),
        test_file: "test.parquet".into(),
        n_test_episodes: 3,
        seeds: vec![1],
        backend: "cpu".into(),
        machine: "test".into(),
        date: "today".into(),
        rows,
        sensitivity: Vec::new(),
        wall_time_s: 0.0,
        computed: Vec::new(),
        reused: Vec::new(),
    }
}

fn est(lo: f64, hi: f64) -> Estimate {
    Estimate {
        mean: (lo + hi) / 2.0,
        ci_low: lo,
        ci_high: hi,
    }
}

#[test]
fn verdicts_follow_the_sign_of_the_whole_interval() {
    const BETTER: &str = "better than vanilla";
    const WORSE: &str = "worse than vanilla";
    const NONE: &str = "no difference shown (the interval contains 0)";
    // (interval, verdict): better or worse only when the whole interval is on one side of 0; an
    // interval that ends at 0 contains it.
    let cases = [
        ((0.01, 0.05), BETTER),
        ((1e-9, 0.3), BETTER),
        ((-0.05, -0.01), WORSE),
        ((-0.3, -1e-9), WORSE),
        ((-0.01, 0.02), NONE),
        ((0.0, 0.03), NONE),
        ((-0.03, 0.0), NONE),
        ((0.0, 0.0), NONE),
    ];
    for ((lo, hi), want) in cases {
        let rep = report(vec![row_report("recency", "Recency MAML", est(lo, hi))]);
        let line = verdict(&rep, "recency").unwrap();
        let cell = format!("{:+.4} [{:+.3}, {:+.3}]", (lo + hi) / 2.0, lo, hi);
        assert_eq!(
            line,
            format!("- Recency MAML vs vanilla MAML, few-shot Acc@1: {cell} → {want}"),
            "[{lo}, {hi}]"
        );
    }
    assert_eq!(verdict(&report(Vec::new()), "recency"), None);

    // matrix.md's hypotheses: one verdict per hypothesis row present, each from its own interval.
    let rep = report(vec![
        row_report("vanilla", "Vanilla MAML", est(0.0, 0.0)),
        row_report("gru4rec", "GRU4Rec baseline", est(-0.2, -0.1)),
        row_report("recency", "Recency MAML", est(0.02, 0.04)),
        row_report("warmstart", "Warm-Start MAML", est(-0.01, 0.01)),
    ]);
    let md = recmaml::matrix::markdown(&rep);
    let hyp: Vec<&str> = md
        .lines()
        .skip_while(|l| *l != "## Hypotheses")
        .filter(|l| l.starts_with("- "))
        .collect();
    assert_eq!(hyp.len(), 3, "{md}");
    assert!(hyp[0].starts_with("- Recency MAML ") && hyp[0].ends_with(BETTER));
    assert!(hyp[1].starts_with("- Warm-Start MAML ") && hyp[1].ends_with(NONE));
    assert!(hyp[2].starts_with("- GRU4Rec baseline ") && hyp[2].ends_with(WORSE));
}

#[test]
fn verdicts_from_computed_differences() {
    // The identical, shifted and worse rows of the hand cases above, through the verdict.
    let n = 20;
    let a: Vec<f64> = (0..n).map(|e| (e % 4) as f64 / 4.0).collect();
    let vanilla = [result("vanilla", 1, &ids(n), 0, &a)];
    let with = |c: f64| {
        [result(
            "recency",
            1,
            &ids(n),
            0,
            &a.iter().map(|v| v + c).collect::<Vec<_>>(),
        )]
    };
    for (c, want) in [
        (0.0, "no difference shown (the interval contains 0)"),
        (0.25, "better than vanilla"),
        (-0.25, "worse than vanilla"),
    ] {
        let d = paired_difference(&refs(&with(c)), &refs(&vanilla), 0).unwrap();
        let rep = report(vec![row_report("recency", "Recency MAML", d)]);
        let line = verdict(&rep, "recency").unwrap();
        assert!(line.ends_with(want), "shift {c}: {line}");
    }
}
