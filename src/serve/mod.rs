//! `recmaml serve`: the model in memory behind HTTP. `POST /recommend` takes one user (the JSON
//! of a `recmaml recommend` input line) and answers with a [`Recommendation`]; `GET /health`;
//! `GET /metrics` (Prometheus text). Requests are adapted together in batches by one worker
//! thread ([`batcher`]). Bad requests get a 4xx with `{"error": "..."}`: 400 malformed JSON or
//! unknown fields, 413 an oversized body or history, 422 a history that cannot be used, 503 a
//! full queue.

pub mod batcher;
pub mod metrics;

use crate::error::{Error, Result};
use crate::recommend::{Recommendation, Recommender, UserError, UserLine};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batcher::{BatchConfig, Batcher, Failure};
use metrics::Metrics;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the service listens and batches.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeOptions {
    /// Where to listen (port 0: any free port).
    pub addr: SocketAddr,
    pub batch: BatchConfig,
    /// Largest request body, in bytes.
    pub max_body: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            batch: BatchConfig {
                window: Duration::from_millis(2),
                max_batch: 64,
                queue: 1024,
            },
            max_body: 1 << 20,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    batcher: Batcher,
    metrics: Arc<Metrics>,
    backend: &'static str,
}

/// An error answer: status, metric kind and message.
struct Reject(StatusCode, &'static str, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.2 });
        (self.0, Json(body)).into_response()
    }
}

/// A running service (from [`spawn`]): its address, and [`Handle::stop`].
pub struct Handle {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Handle {
    /// Stops accepting, finishes the requests in flight, and waits for the service to end.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Other("the service thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Starts the service on a background thread (its own runtime), with the recommender `make`
/// builds on the model thread; it runs until [`Handle::stop`].
pub fn spawn(
    make: impl FnOnce() -> Result<Recommender> + Send + 'static,
    opts: ServeOptions,
) -> Result<Handle> {
    let rt = runtime()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(opts.addr))
        .map_err(|e| Error::config("--addr", format!("cannot listen on {}: {e}", opts.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Other(format!("the listener's address: {e}")))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let metrics = Arc::new(Metrics::default());
    let (batcher, worker, backend) = Batcher::start(make, opts.batch, metrics.clone())?;
    let state = AppState {
        batcher,
        metrics,
        backend,
    };
    let thread = std::thread::Builder::new()
        .name("recmaml-serve".into())
        .spawn(move || {
            rt.block_on(serve_on(listener, state, worker, &opts, async move {
                let _ = rx.await;
            }))
        })
        .map_err(|e| Error::Other(format!("starting the service thread: {e}")))?;
    Ok(Handle {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}

/// Runs the service on this thread until SIGTERM or Ctrl-C, with the recommender `make` builds on
/// the model thread; `ready` is told the bound address and the backend's name.
pub fn run(
    make: impl FnOnce() -> Result<Recommender> + Send + 'static,
    opts: &ServeOptions,
    ready: impl FnOnce(SocketAddr, &'static str),
) -> Result<()> {
    let rt = runtime()?;
    let metrics = Arc::new(Metrics::default());
    let (batcher, worker, backend) = Batcher::start(make, opts.batch, metrics.clone())?;
    let state = AppState {
        batcher,
        metrics,
        backend,
    };
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(|e| Error::config("--addr", format!("cannot listen on {}: {e}", opts.addr)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Other(format!("the listener's address: {e}")))?;
        ready(addr, backend);
        serve_on(listener, state, worker, opts, shutdown_signal()).await
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("starting the async runtime: {e}")))
}

/// Serves on `listener` until `shutdown` completes, then drains the requests in flight.
async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    worker: std::thread::JoinHandle<()>,
    opts: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = Router::new()
        .route("/recommend", post(recommend))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(opts.max_body))
        .with_state(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Other(format!("serving: {e}")));
    // Every sender is gone with the router: the worker finishes its batch and ends.
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    served
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn health(State(s): State<AppState>) -> Response {
    Json(serde_json::json!({ "status": "ok", "backend": s.backend })).into_response()
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn recommend(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let t0 = Instant::now();
    let (code, kind, response) = match answer(&s, body).await {
        Ok(r) => (StatusCode::OK, None, Json(r).into_response()),
        Err(r) => (r.0, Some(r.1), r.into_response()),
    };
    s.metrics.request(code.as_u16(), kind, t0.elapsed());
    response
}

async fn answer(
    s: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> std::result::Result<Recommendation, Reject> {
    let body = body.map_err(|e| {
        let status = e.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        Reject(
            status,
            kind,
            format!("the request body could not be read: {}", e.body_text()),
        )
    })?;
    let line: UserLine = serde_json::from_slice(&body).map_err(|e| {
        Reject(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not a user's JSON: {e}"),
        )
    })?;
    let rx = s.batcher.submit(line).ok_or_else(|| {
        Reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the queue is full; retry later".into(),
        )
    })?;
    match rx.await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(Failure::User(e))) => {
            let status = match e {
                UserError::TooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "unprocessable"
            };
            Err(Reject(status, kind, e.to_string()))
        }
        Ok(Err(Failure::Backend(msg))) => {
            Err(Reject(StatusCode::INTERNAL_SERVER_ERROR, "internal", msg))
        }
        Err(_) => Err(Reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            "the model thread has stopped".into(),
        )),
    }
}
