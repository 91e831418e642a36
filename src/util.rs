//! Small shared utilities: atomic file writes, run tags, progress reporting.

use crate::error::{Error, Result};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that a
/// reader never sees a half-written file.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// `YYYYmmdd_HHMMSS` (UTC) plus a short random suffix, like the seed's `RUN_TAG`.
pub fn run_tag() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    let suffix = crate::rng::Rng::new(now.as_nanos() as u64 ^ std::process::id() as u64).next_u64();
    format!(
        "{y:04}{m:02}{d:02}_{:02}{:02}{:02}_{:08x}",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60,
        suffix as u32
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Progress of long work on stderr: an `indicatif` bar (with rate and a status message) on a
/// terminal, otherwise a plain line at every tenth of the work (with the rate and the message).
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    next_tenth: u64,
    quiet: bool,
    message: String,
    started: Instant,
    start_done: Option<u64>,
}

impl Progress {
    /// Progress over `total` units called `label`; `bytes` formats the units as bytes; `quiet`
    /// shows nothing.
    pub fn new(label: &str, total: u64, bytes: bool, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let tmpl = if bytes {
                "{prefix:12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}"
            } else {
                "{prefix:12} [{bar:40}] {pos}/{len} {per_sec} eta {eta} {msg}"
            };
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(tmpl)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            next_tenth: 1,
            quiet,
            message: String::new(),
            started: Instant::now(),
            start_done: None,
        }
    }

    /// Sets the status message shown with the progress.
    pub fn set_message(&mut self, msg: &str) {
        self.message = msg.to_string();
        if let Some(bar) = &self.bar {
            bar.set_message(msg.to_string());
        }
    }

    /// Sets the amount done so far.
    pub fn set(&mut self, done: u64) {
        let start = *self.start_done.get_or_insert_with(|| {
            self.started = Instant::now();
            done
        });
        self.done = done;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if self.quiet || self.total == 0 {
            return;
        }
        let mut due = false;
        while self.next_tenth <= 10 && done * 10 >= self.next_tenth * self.total {
            self.next_tenth += 1;
            due = true;
        }
        if due && done > start {
            let rate = (done - start) as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "{}: {done}/{} ({:.0}%, {rate:.1}/s) {}",
                self.label,
                self.total,
                100.0 * done as f64 / self.total as f64,
                self.message
            );
        }
    }

    /// Adds `n` to the amount done.
    pub fn inc(&mut self, n: u64) {
        self.set(self.done + n);
    }

    /// Prints a line without breaking the bar.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }

    /// Clears the bar (or prints the last plain line).
    pub fn finish(mut self) {
        match self.bar.take() {
            Some(bar) => bar.finish_and_clear(),
            None => self.set(self.total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn atomic_write_leaves_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        atomic_write(&p, b"{}").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }
}
