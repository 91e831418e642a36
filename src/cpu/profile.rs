//! The CPU engine's phase profile: with `RECMAML_CPU_PROFILE=1` in the environment, the time each
//! thread spends in each phase of a meta-iteration is added to process-wide counters (nanoseconds,
//! summed over threads), which `recmaml bench` prints per iteration. Off (the default) a phase
//! guard costs one branch on a flag read once.
//!
//! The counters are process-wide: two engines running at once in one process add to the same
//! counters, so profile one run at a time (as `recmaml bench` does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

/// The phases, in the order of a meta-iteration (their counters' order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Loading a task: its item table, fast weights and prefix forests.
    Load = 0,
    /// The GRU's input projection `W_ih x + b_ih` of the task's distinct items (and the weight
    /// transposes it uses).
    InputProjection,
    /// The GRU's forward recurrence, level by level.
    Recurrence,
    /// The output layer's logits (dense and low-rank terms) and the log-sum-exp.
    OutputForward,
    /// The output layer's backward: the scaled softmax, `dh` and the bias gradient.
    OutputBackward,
    /// The GRU's backward through time.
    RecurrenceBackward,
    /// The GRU's weight gradients and the input gradient `dx`.
    GruGradient,
    /// The embedding rows' gradient.
    EmbeddingBackward,
    /// The inner loop's SGD step.
    Sgd,
    /// Copying a task's query gradient out for the reduction.
    Export,
    /// The meta-gradient: the sum over tasks in task order.
    Reduction,
    /// The clip and the Adam step on θ.
    Adam,
}

/// The phases' names, in counter order.
pub const PHASES: [&str; 12] = [
    "task load",
    "input projection",
    "recurrence forward",
    "output forward",
    "output backward",
    "recurrence backward",
    "GRU gradient",
    "embedding backward",
    "SGD step",
    "gradient export",
    "reduction",
    "clip + Adam",
];

static ENABLED: LazyLock<bool> =
    LazyLock::new(|| std::env::var("RECMAML_CPU_PROFILE").is_ok_and(|v| v == "1"));

static COUNTERS: [AtomicU64; PHASES.len()] = [const { AtomicU64::new(0) }; PHASES.len()];

/// Whether `RECMAML_CPU_PROFILE=1` turned the profile on.
pub fn enabled() -> bool {
    *ENABLED
}

/// Times the enclosing scope as `phase` while it lives (nothing when the profile is off).
#[must_use = "the phase is timed until the guard is dropped"]
pub struct Guard(Option<(Phase, Instant)>);

/// A guard timing `phase` until it is dropped.
#[inline]
pub fn phase(phase: Phase) -> Guard {
    Guard(enabled().then(|| (phase, Instant::now())))
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        if let Some((phase, t0)) = self.0 {
            let ns = t0.elapsed().as_nanos().min(u64::MAX as u128) as u64;
            COUNTERS[phase as usize].fetch_add(ns, Ordering::Relaxed);
        }
    }
}

/// Sets every counter to zero.
pub fn reset() {
    for c in &COUNTERS {
        c.store(0, Ordering::Relaxed);
    }
}

/// The counters (nanoseconds summed over threads, in [`PHASES`] order) when the profile is on.
pub fn counters() -> Option<Vec<u64>> {
    enabled().then(|| COUNTERS.iter().map(|c| c.load(Ordering::Relaxed)).collect())
}
