//! Small shared utilities: atomic file writes, calendar dates and run tags, progress reporting,
//! limits on what input may make the program allocate.

mod atomic;
mod calendar;
pub mod limits;
mod progress;

pub use atomic::{atomic_replace, atomic_write};
pub use calendar::{civil_from_days, days_from_civil, run_tag};
pub use progress::Progress;
