//! Small shared utilities: atomic file writes, calendar dates and run tags, progress reporting.

mod atomic;
mod calendar;
mod progress;

pub use atomic::{atomic_replace, atomic_write, AtomicFile};
pub use calendar::{civil_from_days, days_from_civil, run_tag};
pub use progress::Progress;
