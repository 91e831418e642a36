//! Timing a plan on a backend: the untimed warm-up, the timed repeats (wall clock, and device
//! time where the backend measures it), and the backend's phase profile where recorded.

use super::options::BenchOptions;
use super::tasks::Plan;
use crate::backend::{Backend, PhaseProfile};
use crate::error::Result;
use serde::Serialize;
use std::time::Instant;

/// One phase of a backend's profile, per meta-iteration.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseTime {
    pub phase: String,
    /// Counter units per iteration: clock cycles averaged over tasks (CUDA), or thread time
    /// summed over threads (CPU); see [`PhaseSummary::unit`].
    pub per_iter: f64,
    pub share: f64,
}

/// A backend's phase profile over the timed iterations.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseSummary {
    /// What `per_iter` counts: `"clock cycles per task"` or `"ns summed over threads"`.
    pub unit: String,
    pub phases: Vec<PhaseTime>,
}

/// What timing a plan measured.
pub(super) struct Timings {
    /// Median over repeats of the wall time per iteration.
    pub ms_per_iter: f64,
    /// Median over every timed iteration of the device time (backends that measure it).
    pub device_ms_per_iter: Option<f64>,
    /// Each phase's share of an iteration (when profiling is on).
    pub phases: Option<PhaseSummary>,
}

/// Runs the plan's `warmup` meta-batches untimed, then its `repeats` runs of `iters` timed.
pub(super) fn time_plan(
    backend: &mut dyn Backend,
    plan: &Plan,
    args: &BenchOptions,
) -> Result<Timings> {
    for b in &plan.batches[..args.warmup] {
        backend.meta_step(&plan.tasks(b), &plan.inner, &plan.outer)?;
    }
    backend.reset_profile()?;
    let mut per_iter_ms = Vec::with_capacity(args.repeats);
    let mut device_ms = Vec::with_capacity(args.repeats * args.iters);
    for timed in plan.batches[args.warmup..].chunks(args.iters) {
        let t0 = Instant::now();
        for b in timed {
            backend.meta_step(&plan.tasks(b), &plan.inner, &plan.outer)?;
            device_ms.extend(backend.last_step_device_ms());
        }
        per_iter_ms.push(t0.elapsed().as_secs_f64() * 1e3 / args.iters as f64);
    }
    let phases = backend
        .profile()?
        .map(|p| phase_summary(&p, plan.n(), args.iters * args.repeats));
    Ok(Timings {
        ms_per_iter: median(&mut per_iter_ms).expect("at least one repeat"),
        device_ms_per_iter: median(&mut device_ms),
        phases,
    })
}

/// The upper median (the middle value, or the higher of the two middle ones).
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Per phase, the count per iteration: averaged over the first `n` rows (one per task) when the
/// profile is per task, else summed over its rows; divided by the `iters` iterations.
fn phase_summary(p: &PhaseProfile, n: usize, iters: usize) -> PhaseSummary {
    let rows = if p.per_task {
        &p.rows[..n.min(p.rows.len())]
    } else {
        &p.rows[..]
    };
    let div = if p.per_task { rows.len() } else { 1 } * iters;
    let per: Vec<f64> = (0..p.phases.len())
        .map(|c| rows.iter().map(|t| t[c] as f64).sum::<f64>() / div.max(1) as f64)
        .collect();
    let total: f64 = per.iter().sum();
    let unit = if p.per_task {
        format!("{} per task", p.unit)
    } else {
        format!("{} summed over threads", p.unit)
    };
    PhaseSummary {
        unit,
        phases: p
            .phases
            .iter()
            .zip(per)
            .map(|(name, c)| PhaseTime {
                phase: name.clone(),
                per_iter: c,
                share: if total > 0.0 { c / total } else { 0.0 },
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(rows: Vec<Vec<u64>>, per_task: bool) -> PhaseProfile {
        PhaseProfile {
            phases: ["a", "b", "c"].map(String::from).to_vec(),
            unit: "u",
            rows,
            per_task,
        }
    }

    #[test]
    fn the_phase_summary_averages_over_tasks_and_iterations() {
        let a = vec![100, 600, 0];
        let b = vec![300, 0, 0];
        let unused = vec![1_000_000u64; 3]; // a counter row past the batch's tasks
        let s = phase_summary(&profile(vec![a, b, unused], true), 2, 10);
        let p = &s.phases;
        assert_eq!(p[0].per_iter, 20.0); // (100 + 300) / (2 tasks * 10 iterations)
        assert_eq!(p[1].per_iter, 30.0);
        assert_eq!(p[2].per_iter, 0.0);
        assert_eq!((p[0].share, p[1].share), (0.4, 0.6));
        assert_eq!(s.unit, "u per task");
    }

    #[test]
    fn a_summed_profile_adds_its_rows_and_divides_by_iterations_only() {
        let s = phase_summary(
            &profile(vec![vec![100, 300, 0], vec![0, 100, 0]], false),
            32,
            4,
        );
        let p = &s.phases;
        assert_eq!(
            (p[0].per_iter, p[1].per_iter, p[2].per_iter),
            (25.0, 100.0, 0.0)
        );
        assert_eq!((p[0].share, p[1].share), (0.2, 0.8));
        assert_eq!(s.unit, "u summed over threads");
    }

    #[test]
    fn the_median_is_the_upper_middle_value() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median(&mut []), None);
    }
}
