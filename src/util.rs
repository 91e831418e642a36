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

/// Progress of long work: a bar on a terminal, plain lines (about twenty per run) otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    label: String,
    started: Instant,
    start_pos: u64,
    next_line: u64,
}

impl Progress {
    /// Progress over `total` units of work called `label`.
    pub fn new(total: u64, label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_prefix(label.to_string());
            b
        });
        Progress {
            bar,
            total,
            label: label.to_string(),
            started: Instant::now(),
            start_pos: 0,
            next_line: 0,
        }
    }

    /// Sets the position (and a status message).
    pub fn set(&mut self, pos: u64, msg: &str) {
        if self.next_line == 0 {
            self.start_pos = pos;
            self.started = Instant::now();
            self.next_line = pos + (self.total / 20).max(1);
        }
        match &self.bar {
            Some(b) => {
                b.set_position(pos);
                if !msg.is_empty() {
                    b.set_message(msg.to_string());
                }
            }
            None => {
                if pos >= self.next_line || pos == self.total {
                    let rate = (pos - self.start_pos) as f64
                        / self.started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!("{}: {pos}/{} ({rate:.1}/s) {msg}", self.label, self.total);
                    self.next_line = pos + (self.total / 20).max(1);
                }
            }
        }
    }

    /// Prints a line without breaking the bar.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Ends the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
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
