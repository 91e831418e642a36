//! `recmaml serve`: the model in memory behind HTTP ([`recmaml::serve`]), until SIGTERM or
//! Ctrl-C.

use super::recommend::TaskFlags;
use clap::Args;
use recmaml::recommend::Recommender;
use recmaml::serve::{self, batcher::BatchConfig, ServeOptions};
use std::net::SocketAddr;
use std::time::Duration;

/// `recmaml serve`: POST /recommend, GET /health, GET /metrics.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    task: TaskFlags,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// How long (milliseconds) the model waits for more requests to adapt together with the
    /// first one of a batch.
    #[arg(long, default_value_t = 2.0)]
    batch_window_ms: f64,
    /// Most requests adapted in one backend call.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Most requests waiting for the model; more get 503.
    #[arg(long, default_value_t = 1024)]
    queue: usize,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
}

/// Runs `recmaml serve`.
pub fn run(args: &ServeArgs) -> recmaml::Result<()> {
    let bad = |flag: &str, msg: &str| Err(recmaml::Error::config(flag, msg));
    if !(args.batch_window_ms.is_finite() && args.batch_window_ms >= 0.0) {
        return bad("--batch-window-ms", "must be a number >= 0");
    }
    if args.max_batch == 0 {
        return bad("--max-batch", "must be at least 1");
    }
    if args.queue == 0 {
        return bad("--queue", "must be at least 1");
    }
    let cfg = args.task.load()?;
    let (model, vocab, ropts) = (
        args.task.model.clone(),
        args.task.vocab.clone(),
        args.task.options(),
    );
    let make = move || Recommender::load(&cfg, &model, &vocab, ropts);
    let opts = ServeOptions {
        addr: args.addr,
        batch: BatchConfig {
            window: Duration::from_secs_f64(args.batch_window_ms / 1000.0),
            max_batch: args.max_batch,
            queue: args.queue,
        },
        max_body: args.max_body,
    };
    serve::run(make, &opts, |addr, backend| {
        eprintln!("recmaml serve: listening on http://{addr} ({backend} backend); SIGTERM or Ctrl-C stops");
    })?;
    eprintln!("recmaml serve: stopped");
    Ok(())
}
