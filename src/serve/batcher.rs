//! The one worker thread that owns the model: requests queue up on a bounded channel, and the
//! worker adapts whatever arrives within a short window of the first request (up to a maximum
//! batch) in one backend call, then replies to each request on its own channel.

use super::metrics::Metrics;
use crate::error::{Error, Result};
use crate::recommend::{Recommendation, Recommender, UserError, UserLine};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Why a queued request got no recommendation.
#[derive(Debug)]
pub enum Failure {
    /// The user's history cannot be used (a 4xx).
    User(UserError),
    /// The backend failed on the batch (a 5xx); the service keeps running.
    Backend(String),
}

/// One answer.
pub type Reply = std::result::Result<Recommendation, Failure>;

/// A queued request.
struct Job {
    line: UserLine,
    reply: oneshot::Sender<Reply>,
}

/// The sending side: cheap to clone, one per request handler.
#[derive(Clone)]
pub struct Batcher {
    tx: SyncSender<Job>,
}

/// Batching limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchConfig {
    /// How long the worker waits for more requests after the first one of a batch.
    pub window: Duration,
    /// Most requests adapted in one backend call.
    pub max_batch: usize,
    /// Most requests waiting; more are refused (503) instead of queued.
    pub queue: usize,
}

impl Batcher {
    /// Starts the worker thread, which makes its recommender with `make` (so that the backend
    /// is created, used and dropped on that one thread) and then serves the queue until every
    /// [`Batcher`] is dropped. Returns once `make` has finished: its error, or the backend's name.
    pub fn start(
        make: impl FnOnce() -> Result<Recommender> + Send + 'static,
        cfg: BatchConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(Batcher, JoinHandle<()>, &'static str)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("recmaml-model".into())
            .spawn(move || match make() {
                Ok(rec) => {
                    let _ = ready_tx.send(Ok(rec.backend_name()));
                    work(rec, rx, cfg, &metrics);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::Other(format!("starting the model thread: {e}")))?;
        let name = match ready_rx.recv() {
            Ok(r) => r?,
            Err(_) => return Err(Error::Other("the model thread ended while starting".into())),
        };
        Ok((Batcher { tx }, worker, name))
    }

    /// Queues `line`; `None` when the queue is full or the worker has stopped.
    pub fn submit(&self, line: UserLine) -> Option<oneshot::Receiver<Reply>> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { line, reply }) {
            Ok(()) => Some(rx),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => None,
        }
    }
}

/// The worker loop.
fn work(mut rec: Recommender, rx: Receiver<Job>, cfg: BatchConfig, metrics: &Metrics) {
    let max = cfg.max_batch.max(1);
    let mut jobs: Vec<Job> = Vec::with_capacity(max);
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + cfg.window;
        jobs.push(first);
        while jobs.len() < max {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                rx.recv_timeout(left)
            };
            match next {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let lines: Vec<UserLine> = jobs
            .iter_mut()
            .map(|j| std::mem::replace(&mut j.line, empty_line()))
            .collect();
        let answers = catch_unwind(AssertUnwindSafe(|| rec.recommend(&lines)));
        let adapted = match &answers {
            Ok(Ok(a)) => a
                .iter()
                .filter(|r| r.as_ref().is_ok_and(|r| r.adapted))
                .count(),
            _ => 0,
        };
        metrics.batch(jobs.len(), adapted);
        match answers {
            Ok(Ok(answers)) => {
                for (job, answer) in jobs.drain(..).zip(answers) {
                    let _ = job.reply.send(answer.map_err(Failure::User));
                }
            }
            Ok(Err(e)) => fail_all(&mut jobs, e.to_string()),
            Err(_) => fail_all(&mut jobs, "the backend panicked on this batch".into()),
        }
    }
}

fn fail_all(jobs: &mut Vec<Job>, msg: String) {
    for job in jobs.drain(..) {
        let _ = job.reply.send(Err(Failure::Backend(msg.clone())));
    }
}

fn empty_line() -> UserLine {
    UserLine {
        user: String::new(),
        interactions: Vec::new(),
    }
}
