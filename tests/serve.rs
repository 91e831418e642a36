//! `recmaml serve`: the service started on a loopback port and called over real HTTP/1.1 (a
//! `TcpStream` client written here): answers equal the library's for the same users, also when
//! many requests are batched together; each kind of bad request gets its 4xx and a message, and
//! the service keeps serving; `/health` and `/metrics`.

use recmaml::config::Config;
use recmaml::cpu::Cpu;
use recmaml::model::{init_params, ModelDims, ParamLayout};
use recmaml::recommend::{
    Interaction, RecommendOptions, Recommendation, Recommender, UserLine, Vocab,
};
use recmaml::serve::{self, batcher::BatchConfig, Handle, ServeOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

fn recommender() -> Recommender {
    let vocab: Vec<String> = (0..16).map(|i| format!("i{i:02}")).collect();
    let layout = ParamLayout::new(ModelDims {
        n_items: 17,
        embed_dim: 8,
        hidden_dim: 12,
    });
    let theta = init_params(&layout, 11);
    let sets = vec![
        "maml.inner_lr=0.5".to_string(),
        "run.backend=cpu".to_string(),
    ];
    let cfg = Config::load(None, &sets).unwrap();
    let opts = RecommendOptions {
        max_history: 50,
        ..RecommendOptions::default()
    };
    let backend = Box::new(Cpu::new(layout, theta).unwrap());
    Recommender::new(
        backend,
        Vocab::from_names(Path::new("v"), vocab),
        &cfg,
        opts,
    )
    .unwrap()
}

fn start(window_ms: u64) -> Handle {
    let opts = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        batch: BatchConfig {
            window: Duration::from_millis(window_ms),
            max_batch: 16,
            queue: 256,
        },
        max_body: 4096,
    };
    serve::spawn(|| Ok(recommender()), opts).unwrap()
}

/// One HTTP/1.1 exchange: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|p| p.1).unwrap_or("");
    (status, body.to_string())
}

fn user(name: &str, items: &[usize]) -> UserLine {
    UserLine {
        user: name.into(),
        interactions: items
            .iter()
            .enumerate()
            .map(|(t, &i)| Interaction {
                item: format!("i{i:02}"),
                ts: 100 + 10 * t as i64,
                session: None,
            })
            .collect(),
    }
}

#[test]
fn answers_equal_the_librarys_also_under_concurrent_batched_load() {
    let server = start(50);
    let addr = server.addr;
    let users: Vec<UserLine> = (0..24)
        .map(|u| {
            user(
                &format!("u{u}"),
                &[u % 16, (u * 7 + 3) % 16, (u * 5 + 1) % 16, 2],
            )
        })
        .collect();
    let mut direct = recommender();
    let want: Vec<Recommendation> = direct
        .recommend(&users)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let threads: Vec<_> = users
        .iter()
        .map(|u| {
            let body = serde_json::to_vec(u).unwrap();
            std::thread::spawn(move || http(addr, "POST", "/recommend", &body))
        })
        .collect();
    for (t, want) in threads.into_iter().zip(&want) {
        let (status, body) = t.join().unwrap();
        assert_eq!(status, 200, "{body}");
        let got: Recommendation = serde_json::from_str(&body).unwrap();
        assert_eq!(&got, want);
    }
    let (status, metrics) = http(addr, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("recmaml_requests_total{code=\"200\"} 24"),
        "{metrics}"
    );
    assert!(
        metrics.contains("recmaml_batched_requests_total 24"),
        "{metrics}"
    );
    assert!(
        metrics.contains("recmaml_request_duration_seconds_count 24"),
        "{metrics}"
    );
    // 24 requests sent at once, a 50 ms window and 16 per batch: fewer backend calls than requests.
    let batches: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("recmaml_batches_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..24).contains(&batches), "{batches} batches");
    server.stop().unwrap();
}

/// Sends `body` to /recommend and checks the status and that the message mentions `words`.
fn rejected(addr: SocketAddr, body: &[u8], status: u16, words: &str) {
    let (got, text) = http(addr, "POST", "/recommend", body);
    assert_eq!(got, status, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains(words), "`{msg}` lacks `{words}`");
}

#[test]
fn malformed_json_is_400() {
    let s = start(0);
    rejected(
        s.addr,
        b"{\"user\": \"u\", \"interactions\": [",
        400,
        "not a user's JSON",
    );
}

#[test]
fn an_unknown_field_is_400() {
    let s = start(0);
    let body = br#"{"user":"u","interactions":[{"item":"i01","ts":1}],"k":3}"#;
    rejected(s.addr, body, 400, "unknown field `k`");
}

#[test]
fn a_bad_timestamp_is_400() {
    let s = start(0);
    let body = br#"{"user":"u","interactions":[{"item":"i01","ts":"yesterday"}]}"#;
    rejected(s.addr, body, 400, "not a timestamp");
}

#[test]
fn an_empty_history_is_422() {
    let s = start(0);
    rejected(
        s.addr,
        br#"{"user":"u","interactions":[]}"#,
        422,
        "history is empty",
    );
}

#[test]
fn a_history_of_unknown_items_is_422() {
    let s = start(0);
    let body = br#"{"user":"u","interactions":[{"item":"nope","ts":1}]}"#;
    rejected(s.addr, body, 422, "in the vocabulary");
}

#[test]
fn an_oversized_body_is_413() {
    let s = start(0);
    let big = format!(r#"{{"user":"{}","interactions":[]}}"#, "x".repeat(5000));
    rejected(s.addr, big.as_bytes(), 413, "could not be read");
}

#[test]
fn an_oversized_history_is_413_and_the_service_keeps_serving() {
    let s = start(0);
    let long = serde_json::to_vec(&user("u", &[1; 51])).unwrap();
    rejected(s.addr, &long, 413, "more than the limit of 50");
    let (status, body) = http(
        s.addr,
        "POST",
        "/recommend",
        &serde_json::to_vec(&user("u", &[1, 2])).unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    let (status, metrics) = http(s.addr, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("recmaml_errors_total{kind=\"too_large\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("recmaml_requests_total{code=\"413\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("recmaml_adaptations_total 1"), "{metrics}");
}

#[test]
fn health_answers_and_unknown_paths_are_404() {
    let s = start(0);
    let (status, body) = http(s.addr, "GET", "/health", b"");
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"backend":"cpu","status":"ok"}"#);
    assert_eq!(http(s.addr, "GET", "/nothing", b"").0, 404);
    assert_eq!(http(s.addr, "GET", "/recommend", b"").0, 405);
}
