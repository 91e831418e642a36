//! Progress of long work on stderr: a bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::Instant;

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
