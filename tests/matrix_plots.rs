//! What the matrix's plots are given: the validation curves and the few-shot Acc@1 intervals of
//! the report's rows (`matrix::val_curve_series`, `matrix::few_shot_intervals`, the inputs of
//! `plot::val_curves` and `plot::row_intervals`). The drawing itself is tested in `plots.rs`.

use recmaml::matrix::{few_shot_intervals, val_curve_series, Aggregate, MatrixReport, RowReport};
use recmaml::metrics::{Estimate, METRICS};
use recmaml::plot::{RowInterval, Series};
use std::collections::BTreeMap;

/// Every metric of a row gets its own numbers, from `base`: metric `i` has mean `base + i/100`,
/// interval `[mean - 0.01, mean + 0.02]`. Zero- and few-shot use different bases, so a plot fed
/// the wrong metric or the zero-shot values shows.
fn metrics(base: f64) -> BTreeMap<String, Aggregate> {
    METRICS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mean = base + i as f64 / 100.0;
            let a = Aggregate {
                mean,
                sd: 0.005,
                ci_low: mean - 0.01,
                ci_high: mean + 0.02,
            };
            (m.to_string(), a)
        })
        .collect()
}

fn row(
    name: &str,
    model: &str,
    inner: &str,
    tables: (bool, bool),
    few: f64,
    val_curve: Vec<(u64, f64)>,
) -> RowReport {
    RowReport {
        name: name.into(),
        model: model.into(),
        init: "Random".into(),
        inner_loop: inner.into(),
        scheme: String::new(),
        scheme_param: String::new(),
        in_comparison: tables.0,
        in_ablation: tables.1,
        seeds: vec![1, 2],
        zero_shot: metrics(few - 0.1),
        few_shot: metrics(few),
        few_shot_vs_vanilla: METRICS
            .iter()
            .map(|m| {
                let e = Estimate {
                    mean: 0.0,
                    ci_low: 0.0,
                    ci_high: 0.0,
                };
                (m.to_string(), e)
            })
            .collect(),
        adapts: true,
        adaptation_gain: Estimate {
            mean: 0.1,
            ci_low: 0.05,
            ci_high: 0.15,
        },
        per_seed_few_shot_acc1: vec![few, few],
        per_seed_best_iteration: vec![None, None],
        val_curve,
        wall_time_s: 0.0,
    }
}

fn report() -> MatrixReport {
    MatrixReport {
        config: Default::default(),
        test_file: "test.parquet".into(),
        n_test_episodes: 10,
        seeds: vec![1, 2],
        backend: "cpu".into(),
        machine: "test".into(),
        date: "today".into(),
        rows: vec![
            row(
                "gru4rec",
                "GRU4Rec baseline",
                "N/A",
                (true, false),
                0.30,
                vec![],
            ),
            row(
                "vanilla",
                "Vanilla MAML",
                "Equal weights",
                (true, true),
                0.40,
                vec![(0, 0.11), (10, 0.21)],
            ),
            row(
                "popularity",
                "Popularity",
                "N/A",
                (true, false),
                0.05,
                vec![],
            ),
            row(
                "linear",
                "Recency MAML",
                "Linear",
                (false, true),
                0.45,
                vec![(0, 0.12), (10, 0.25), (20, 0.31)],
            ),
            row(
                "recency",
                "Recency MAML",
                "Exponential λ=0.5",
                (true, true),
                0.50,
                vec![(0, 0.13), (5, 0.14)],
            ),
        ],
        sensitivity: Vec::new(),
        wall_time_s: 0.0,
        computed: Vec::new(),
        reused: Vec::new(),
    }
}

#[test]
fn the_validation_plot_gets_each_maml_rows_curve_under_its_name() {
    // The rows with a validation curve, in report order; ablation-only rows are named with their
    // scheme, since several share the model name.
    let want = vec![
        Series {
            label: "Vanilla MAML".into(),
            points: vec![(0.0, 0.11), (10.0, 0.21)],
        },
        Series {
            label: "Recency MAML (Linear)".into(),
            points: vec![(0.0, 0.12), (10.0, 0.25), (20.0, 0.31)],
        },
        Series {
            label: "Recency MAML".into(),
            points: vec![(0.0, 0.13), (5.0, 0.14)],
        },
    ];
    assert_eq!(val_curve_series(&report()), want);
}

#[test]
fn the_few_shot_plot_gets_every_rows_few_shot_acc1_and_interval() {
    // Every row, in report order: few-shot Acc@1 (metric 0: mean = base) with its interval
    // [base - 0.01, base + 0.02].
    let bar = |label: &str, base: f64| RowInterval {
        label: label.into(),
        mean: base,
        lo: base - 0.01,
        hi: base + 0.02,
    };
    let want = vec![
        bar("GRU4Rec baseline", 0.30),
        bar("Vanilla MAML", 0.40),
        bar("Popularity", 0.05),
        bar("Recency MAML (Linear)", 0.45),
        bar("Recency MAML", 0.50),
    ];
    assert_eq!(few_shot_intervals(&report()), want);
}

#[test]
fn a_report_without_validation_curves_gives_no_validation_lines() {
    let mut rep = report();
    for r in &mut rep.rows {
        r.val_curve.clear();
    }
    assert!(val_curve_series(&rep).is_empty());
    assert_eq!(few_shot_intervals(&rep).len(), rep.rows.len());
}
