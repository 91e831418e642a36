//! Progress on long work: an `indicatif` bar on a terminal, a plain line every 10% otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A byte- or count-based progress display on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    next_tenth: u64,
    quiet: bool,
}

impl Progress {
    /// Progress over `total` units; `bytes` selects byte formatting. `quiet` shows nothing.
    pub fn new(label: &str, total: u64, bytes: bool, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let tmpl = if bytes {
                "{msg:12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            } else {
                "{msg:12} [{bar:40}] {pos}/{len} eta {eta}"
            };
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(tmpl)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            next_tenth: 1,
            quiet,
        }
    }

    /// Sets the amount done so far.
    pub fn set(&mut self, done: u64) {
        self.done = done;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        } else if !self.quiet && self.total > 0 {
            while self.next_tenth <= 10 && done * 10 >= self.next_tenth * self.total {
                eprintln!("{}: {}%", self.label, self.next_tenth * 10);
                self.next_tenth += 1;
            }
        }
    }

    /// Adds `n` to the amount done.
    pub fn inc(&mut self, n: u64) {
        self.set(self.done + n);
    }

    /// Clears the bar (or prints the last plain line).
    pub fn finish(mut self) {
        match self.bar.take() {
            Some(bar) => bar.finish_and_clear(),
            None => self.set(self.total),
        }
    }
}
