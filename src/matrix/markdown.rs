//! The matrix as Markdown (`matrix.md`): the comparison and ablation tables, the verdicts on the
//! hypotheses (from the paired intervals), every metric, and the run's context.

use super::report::{Aggregate, MatrixReport, RowReport};
use crate::metrics::{Estimate, METRICS};

/// `mean ± sd [low, high]`.
pub fn fmt_agg(a: &Aggregate) -> String {
    format!(
        "{:.4} ± {:.4} [{:.3}, {:.3}]",
        a.mean, a.sd, a.ci_low, a.ci_high
    )
}

/// `+0.0123 [-0.004, 0.029]`.
pub fn fmt_diff(e: &Estimate) -> String {
    format!("{:+.4} [{:+.3}, {:+.3}]", e.mean, e.ci_low, e.ci_high)
}

fn diff_cell(r: &RowReport) -> String {
    if r.name == "vanilla" {
        "baseline".into()
    } else {
        fmt_diff(&r.few_shot_vs_vanilla["acc@1"])
    }
}

/// The adaptation gain cell: few-shot minus zero-shot Acc@1 with its paired interval, or "none"
/// for a row that does not adapt.
pub fn gain_cell(r: &RowReport) -> String {
    if r.adapts {
        fmt_diff(&r.adaptation_gain)
    } else {
        "none (does not adapt)".into()
    }
}

/// The comparison matrix as a Markdown table.
pub fn comparison_table(rep: &MatrixReport) -> String {
    let mut s = String::from(
        "| Model | Init | Inner Loop | Zero-shot Acc@1 | Few-shot Acc@1 | Adaptation gain (Acc@1) | Few-shot HR@10 | Few-shot NDCG@10 | Few-shot MRR | Few-shot Acc@1 vs Vanilla |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rep.rows.iter().filter(|r| r.in_comparison) {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.model,
            r.init,
            r.inner_loop,
            fmt_agg(&r.zero_shot["acc@1"]),
            fmt_agg(&r.few_shot["acc@1"]),
            gain_cell(r),
            fmt_agg(&r.few_shot["hr@10"]),
            fmt_agg(&r.few_shot["ndcg@10"]),
            fmt_agg(&r.few_shot["mrr"]),
            diff_cell(r)
        );
    }
    s
}

/// The ablation over weighting schemes as a Markdown table.
pub fn ablation_table(rep: &MatrixReport) -> String {
    let mut s = String::from(
        "| Scheme | Lambda/Temp | Few-shot Acc@1 | Zero-shot Acc@1 | Adaptation gain (Acc@1) | Few-shot MRR | Few-shot Acc@1 vs Equal |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rep.rows.iter().filter(|r| r.in_ablation) {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.scheme,
            r.scheme_param,
            fmt_agg(&r.few_shot["acc@1"]),
            fmt_agg(&r.zero_shot["acc@1"]),
            gain_cell(r),
            fmt_agg(&r.few_shot["mrr"]),
            diff_cell(r)
        );
    }
    s
}

/// The inner-loop sensitivity block as a Markdown table: one line per (inner lr, steps) whose
/// two rows ran.
pub fn sensitivity_table(rep: &MatrixReport) -> String {
    let mut s = String::from(
        "| Inner lr | Inner steps | Equal: few-shot Acc@1 | Exponential λ=0.5: few-shot Acc@1 | Exponential − Equal |\n|---|---|---|---|---|\n",
    );
    for c in &rep.sensitivity {
        s += &format!(
            "| {} | {} | {} | {} | {} |\n",
            c.inner_lr,
            c.inner_steps,
            fmt_agg(&c.equal_few_shot_acc1),
            fmt_agg(&c.exponential_few_shot_acc1),
            fmt_diff(&c.exponential_minus_equal)
        );
    }
    s
}

/// A verdict on "row beats vanilla MAML in few-shot Acc@1" from the paired interval: better or
/// worse only when the interval excludes 0.
pub fn verdict(rep: &MatrixReport, name: &str) -> Option<String> {
    let r = rep.rows.iter().find(|r| r.name == name)?;
    let d = r.few_shot_vs_vanilla["acc@1"];
    let word = if d.ci_low > 0.0 {
        "better than vanilla"
    } else if d.ci_high < 0.0 {
        "worse than vanilla"
    } else {
        "no difference shown (the interval contains 0)"
    };
    Some(format!(
        "- {} vs vanilla MAML, few-shot Acc@1: {} → {word}",
        r.model,
        fmt_diff(&d)
    ))
}

/// `matrix.md`: the seed's two tables, filled, plus every metric and the run's context.
pub fn markdown(rep: &MatrixReport) -> String {
    let mut s = String::from("# Comparison matrix and ablation\n\n");
    s += &context(rep);
    s += &format!(
        "Cells: mean ± standard deviation over seeds [95% bootstrap interval over test episodes]. Differences: seed-averaged per-episode difference to vanilla MAML with a paired bootstrap interval. Adaptation gain: seed-averaged per-episode few-shot minus zero-shot Acc@1, paired bootstrap interval over the same episodes. The baselines (GRU4Rec, popularity, session-KNN) do not adapt, so their few-shot value is their only prediction. Residual warm-start trains a delta δ (from 0) on top of the frozen GRU4Rec weights θ_pre, the model being θ_pre + δ, with the L2 penalty matrix.residual_l2 = {} on δ; its inner loop has 3 steps and its outer lr is 1e-4. Session-KNN: the 100 train sessions most similar to the prefix's last 50 items (position-weighted, the latest weighs most) vote for their items.\n\n",
        rep.config.matrix.residual_l2
    );
    s += "## Comparison matrix\n\n";
    s += &comparison_table(rep);
    s += "\n## Ablation: weighting schemes\n\n";
    s += &ablation_table(rep);
    if !rep.sensitivity.is_empty() {
        s += "\n## Ablation: inner-loop sensitivity\n\nRandom init, meta-trained as vanilla MAML but for the inner loop's learning rate and steps; the last column is the paired difference of the two weightings on the same episodes (where recency weighting starts to matter).\n\n";
        s += &sensitivity_table(rep);
    }
    s += "\n## Hypotheses\n\nDoes the row beat vanilla MAML? (The seed's hypotheses: recency weighting improves adaptation; warm start + recency is best.)\n\n";
    for name in [
        "recency",
        "warmstart",
        "warmstart_recency",
        "residual",
        "gru4rec",
        "sknn",
    ] {
        if let Some(v) = verdict(rep, name) {
            s += &v;
            s += "\n";
        }
    }
    s += "\n## All metrics\n\n";
    s += &all_metrics_table(rep);
    s += "\n## Plots\n\n![weights](plots/recency_weights.png)\n\n![validation](plots/val_acc1.png)\n\n![few-shot](plots/few_shot_acc1.png)\n";
    s
}

/// The paragraph on the test set, the settings, the machine and the time taken.
fn context(rep: &MatrixReport) -> String {
    let c = &rep.config;
    format!(
        "Test episodes: {} from `{}`. Seeds: {:?}. Meta-training: {} iterations, meta-batch {}, inner {} steps at lr {}, outer lr {}, validation every {} (best validation few-shot Acc@1 kept). Pretraining: {} epochs, batch {}, lr {}, dropout {}. Backend {}, {}, {}; this invocation {:.1} s ({} computed, {} reused); the rows' own compute time, summed: {:.1} min.\n\n",
        rep.n_test_episodes,
        rep.test_file,
        rep.seeds,
        c.maml.num_meta_iterations,
        c.maml.meta_batch_size,
        c.maml.inner_steps,
        c.maml.inner_lr,
        c.maml.outer_lr,
        c.maml.val_every,
        c.pretrain.epochs,
        c.pretrain.batch_size,
        c.pretrain.lr,
        c.pretrain.dropout,
        rep.backend,
        rep.machine,
        rep.date,
        rep.wall_time_s,
        rep.computed.len(),
        rep.reused.len(),
        rep.rows.iter().map(|r| r.wall_time_s).sum::<f64>() / 60.0
    )
}

/// Every row with every metric, zero- and few-shot, as a Markdown table.
fn all_metrics_table(rep: &MatrixReport) -> String {
    let mut s = String::from("| Row | Seeds | ");
    for m in METRICS {
        s += &format!("Zero-shot {m} | ");
    }
    for m in METRICS {
        s += &format!("Few-shot {m} | ");
    }
    s += "\n|---|---|";
    s += &"---|".repeat(2 * METRICS.len());
    s += "\n";
    for r in &rep.rows {
        s += &format!("| {} | {:?} | ", r.name, r.seeds);
        for m in METRICS {
            s += &format!("{} | ", fmt_agg(&r.zero_shot[m]));
        }
        for m in METRICS {
            s += &format!("{} | ", fmt_agg(&r.few_shot[m]));
        }
        s += "\n";
    }
    s
}
