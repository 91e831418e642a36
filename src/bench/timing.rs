//! Timing a plan on a backend: the untimed warm-up, the timed repeats (wall clock, and device
//! time where the backend measures it), and the task kernel's phase profile where recorded.

use super::options::BenchOptions;
use super::tasks::Plan;
use crate::backend::Backend;
use crate::cuda::program::PROFILE_PHASES;
use crate::error::Result;
use serde::Serialize;
use std::time::Instant;

/// One phase of the task kernel's profile.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseCycles {
    pub phase: String,
    pub cycles_per_iter: f64,
    pub share: f64,
}

/// What timing a plan measured.
pub(super) struct Timings {
    /// Median over repeats of the wall time per iteration.
    pub ms_per_iter: f64,
    /// Median over every timed iteration of the device time (backends that measure it).
    pub device_ms_per_iter: Option<f64>,
    /// Cycles per iteration in each phase of the task kernel (when profiling is on).
    pub phase_cycles: Option<Vec<PhaseCycles>>,
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
    let phase_cycles = backend
        .profile()?
        .map(|c| phase_summary(&c, plan.n(), args.iters * args.repeats));
    Ok(Timings {
        ms_per_iter: median(&mut per_iter_ms).expect("at least one repeat"),
        device_ms_per_iter: median(&mut device_ms),
        phase_cycles,
    })
}

/// The upper median (the middle value, or the higher of the two middle ones).
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Per phase, the cycles per iteration averaged over the first `n` tasks' counters.
fn phase_summary(counters: &[Vec<u64>], n: usize, iters: usize) -> Vec<PhaseCycles> {
    let tasks = &counters[..n.min(counters.len())];
    let per: Vec<f64> = (0..PROFILE_PHASES.len())
        .map(|c| {
            tasks.iter().map(|t| t[c] as f64).sum::<f64>() / (tasks.len() * iters).max(1) as f64
        })
        .collect();
    let total: f64 = per.iter().sum();
    PROFILE_PHASES
        .iter()
        .zip(per)
        .map(|(name, c)| PhaseCycles {
            phase: name.to_string(),
            cycles_per_iter: c,
            share: if total > 0.0 { c / total } else { 0.0 },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_summary_averages_over_tasks_and_iterations() {
        let n = PROFILE_PHASES.len();
        let mut a = vec![0u64; n];
        let mut b = vec![0u64; n];
        a[0] = 100;
        b[0] = 300;
        a[1] = 600;
        let unused = vec![1_000_000u64; n]; // a counter row past the batch's tasks
        let p = phase_summary(&[a, b, unused], 2, 10);
        assert_eq!(p[0].cycles_per_iter, 20.0); // (100 + 300) / (2 tasks * 10 iterations)
        assert_eq!(p[1].cycles_per_iter, 30.0);
        assert_eq!(p[2].cycles_per_iter, 0.0);
        assert_eq!((p[0].share, p[1].share), (0.4, 0.6));
    }

    #[test]
    fn the_median_is_the_upper_middle_value() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median(&mut []), None);
    }
}
