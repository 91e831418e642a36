//! The matrix's figures: the recency weights of each scheme, the validation curves, and each
//! row's few-shot Acc@1 with its interval.

use super::report::{MatrixReport, RowReport};
use crate::data;
use crate::error::{Error, Result};
use crate::plot::{self, RowInterval, Series};
use std::path::Path;

/// A row's name in plots: the model, with the scheme for ablation-only rows.
fn plot_label(r: &RowReport) -> String {
    if r.in_comparison {
        r.model.clone()
    } else {
        format!("{} ({})", r.model, r.inner_loop)
    }
}

/// The lines of the validation plot: one per row that has a validation curve (the MAML rows), in
/// report order, with the points (iteration, validation few-shot Acc@1 averaged over seeds).
pub fn val_curve_series(rep: &MatrixReport) -> Vec<Series> {
    rep.rows
        .iter()
        .filter(|r| !r.val_curve.is_empty())
        .map(|r| Series {
            label: plot_label(r),
            points: r.val_curve.iter().map(|&(i, a)| (i as f64, a)).collect(),
        })
        .collect()
}

/// The rows of the few-shot plot: every row in report order with its few-shot Acc@1 (mean over
/// seeds and bootstrap interval over test episodes).
pub fn few_shot_intervals(rep: &MatrixReport) -> Vec<RowInterval> {
    rep.rows
        .iter()
        .map(|r| {
            let a = r.few_shot["acc@1"];
            RowInterval {
                label: plot_label(r),
                mean: a.mean,
                lo: a.ci_low,
                hi: a.ci_high,
            }
        })
        .collect()
}

/// The three figures, PNG and SVG, under `out/plots/`.
pub(super) fn write_plots(rep: &MatrixReport, out: &Path) -> Result<()> {
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let k = data::read_episodes(Path::new(&rep.test_file), None)?.k;
    plot::weight_schemes(&dir.join("recency_weights"), k)?;
    let series = val_curve_series(rep);
    if !series.is_empty() {
        plot::val_curves(
            &dir.join("val_acc1"),
            "Validation few-shot Acc@1 (mean over seeds)",
            &series,
        )?;
    }
    let rows = few_shot_intervals(rep);
    plot::row_intervals(
        &dir.join("few_shot_acc1"),
        "Few-shot Acc@1 on the test episodes (95% bootstrap interval)",
        "Acc@1",
        &rows,
    )
}
