//! The service's counters, written in the Prometheus text format for `GET /metrics`: requests by
//! status code, a latency histogram, errors by kind, batches, adaptations and their rate.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` follows.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The rate of adaptations is taken over this much recent time.
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Inner {
    /// `/recommend` requests by status code.
    requests: BTreeMap<u16, u64>,
    /// Errors by kind (`bad_request`, `too_large`, `unprocessable`, `overloaded`, `internal`).
    errors: BTreeMap<&'static str, u64>,
    /// Cumulative counts per bucket of [`BUCKETS`], then the total.
    latency: [u64; BUCKETS.len()],
    latency_count: u64,
    latency_sum: f64,
    batches: u64,
    batched_requests: u64,
    adaptations: u64,
    /// (time, adaptations) of recent batches.
    recent: VecDeque<(Instant, u64)>,
}

/// Thread-safe counters.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One answered `/recommend` request: its status, error kind if any, and latency.
    pub fn request(&self, code: u16, error: Option<&'static str>, latency: Duration) {
        let mut m = self.lock();
        *m.requests.entry(code).or_default() += 1;
        if let Some(kind) = error {
            *m.errors.entry(kind).or_default() += 1;
        }
        let s = latency.as_secs_f64();
        for (b, &le) in m.latency.iter_mut().zip(&BUCKETS) {
            *b += u64::from(s <= le);
        }
        m.latency_count += 1;
        m.latency_sum += s;
    }

    /// One backend call over `size` requests, `adapted` of them adapted.
    pub fn batch(&self, size: usize, adapted: usize) {
        let mut m = self.lock();
        m.batches += 1;
        m.batched_requests += size as u64;
        m.adaptations += adapted as u64;
        let now = Instant::now();
        m.recent.push_back((now, adapted as u64));
        while m
            .recent
            .front()
            .is_some_and(|&(t, _)| now - t > RATE_WINDOW)
        {
            m.recent.pop_front();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut m = self.lock();
        let now = Instant::now();
        while m
            .recent
            .front()
            .is_some_and(|&(t, _)| now - t > RATE_WINDOW)
        {
            m.recent.pop_front();
        }
        let rate = m.recent.iter().map(|r| r.1).sum::<u64>() as f64 / RATE_WINDOW.as_secs_f64();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP recmaml_requests_total POST /recommend requests by status code."
        );
        let _ = writeln!(s, "# TYPE recmaml_requests_total counter");
        for (code, n) in &m.requests {
            let _ = writeln!(s, "recmaml_requests_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP recmaml_errors_total Failed requests by kind.");
        let _ = writeln!(s, "# TYPE recmaml_errors_total counter");
        for (kind, n) in &m.errors {
            let _ = writeln!(s, "recmaml_errors_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP recmaml_request_duration_seconds Latency of POST /recommend."
        );
        let _ = writeln!(s, "# TYPE recmaml_request_duration_seconds histogram");
        for (le, n) in BUCKETS.iter().zip(&m.latency) {
            let _ = writeln!(
                s,
                "recmaml_request_duration_seconds_bucket{{le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            s,
            "recmaml_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            m.latency_count
        );
        let _ = writeln!(s, "recmaml_request_duration_seconds_sum {}", m.latency_sum);
        let _ = writeln!(
            s,
            "recmaml_request_duration_seconds_count {}",
            m.latency_count
        );
        let _ = writeln!(s, "# HELP recmaml_batches_total Backend calls.");
        let _ = writeln!(s, "# TYPE recmaml_batches_total counter");
        let _ = writeln!(s, "recmaml_batches_total {}", m.batches);
        let _ = writeln!(
            s,
            "# HELP recmaml_batched_requests_total Requests answered by backend calls."
        );
        let _ = writeln!(s, "# TYPE recmaml_batched_requests_total counter");
        let _ = writeln!(s, "recmaml_batched_requests_total {}", m.batched_requests);
        let _ = writeln!(
            s,
            "# HELP recmaml_adaptations_total Users adapted (few-shot inner loops run)."
        );
        let _ = writeln!(s, "# TYPE recmaml_adaptations_total counter");
        let _ = writeln!(s, "recmaml_adaptations_total {}", m.adaptations);
        let _ = writeln!(
            s,
            "# HELP recmaml_adaptations_per_second Adaptations per second over the last 10 s."
        );
        let _ = writeln!(s, "# TYPE recmaml_adaptations_per_second gauge");
        let _ = writeln!(s, "recmaml_adaptations_per_second {rate}");
        s
    }
}
