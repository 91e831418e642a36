//! Small shared utilities: atomic file writes, calendar dates and run tags, progress reporting,
//! the lock on an output folder and the removal of stale temporaries, limits on what input may
//! make the program allocate.

mod atomic;
mod calendar;
pub mod limits;
mod out_lock;
mod progress;

pub use atomic::{atomic_replace, atomic_write, AtomicFile};
pub use calendar::{civil_from_days, days_from_civil, run_tag};
pub use out_lock::{
    claim_out_dir, lock_out_dir, process_alive, remove_stale_temporaries,
    remove_stale_temporaries_of, temporary_pid, OutDirLock, LOCK_FILE,
};
pub use progress::Progress;
