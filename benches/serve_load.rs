//! A bounded load generator for `recmaml serve` (not a criterion benchmark): N clients, each a
//! thread with one keep-alive HTTP/1.1 connection, send `POST /recommend` back to back for a fixed
//! time; prints throughput, latency percentiles and errors per client count.
//!
//! ```text
//! # users for the requests, from an episode file (each user's newest support prefix + label)
//! cargo bench --bench serve_load -- users --episodes EP.parquet --vocab VOCAB --out users.jsonl
//! # the load, against a running `recmaml serve`
//! cargo bench --bench serve_load -- load --addr 127.0.0.1:8080 --input users.jsonl \
//!     --clients 1,16,64 --seconds 30
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` passes `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let get = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let need = |name: &str| get(name).unwrap_or_else(|| die(&format!("{name} is required")));
    match args.first().map(String::as_str) {
        Some("users") => users(
            &PathBuf::from(need("--episodes")),
            &PathBuf::from(need("--vocab")),
            &PathBuf::from(need("--out")),
        ),
        Some("load") => {
            let addr: SocketAddr = need("--addr")
                .parse()
                .unwrap_or_else(|e| die(&format!("--addr: {e}")));
            let input = PathBuf::from(need("--input"));
            let clients: Vec<usize> = get("--clients")
                .unwrap_or_else(|| "1,16,64".into())
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse()
                        .unwrap_or_else(|e| die(&format!("--clients: {e}")))
                })
                .collect();
            let seconds: f64 = get("--seconds")
                .unwrap_or_else(|| "30".into())
                .parse()
                .unwrap_or_else(|e| die(&format!("--seconds: {e}")));
            load(addr, &input, &clients, Duration::from_secs_f64(seconds));
        }
        // `cargo bench` with no arguments of ours: nothing to do without a server.
        _ => eprintln!("serve_load: `users ...` or `load ...` (see the file's header)"),
    }
}

fn die(msg: &str) -> ! {
    eprintln!("serve_load: {msg}");
    std::process::exit(2)
}

/// One JSON user line per episode: the newest support prefix and its label as one session.
fn users(episodes: &Path, vocab: &Path, out: &Path) {
    let set = recmaml::data::read_episodes(episodes, None).unwrap_or_else(|e| die(&e.to_string()));
    let vocab = recmaml::recommend::Vocab::load(vocab).unwrap_or_else(|e| die(&e.to_string()));
    let mut text = String::new();
    for ep in &set.episodes {
        let k = ep.support_labels.len();
        let mut items = ep.support_prefixes[k - 1].clone();
        items.push(ep.support_labels[k - 1]);
        let line = recmaml::recommend::UserLine {
            user: ep.user_id.clone(),
            interactions: items
                .iter()
                .enumerate()
                .map(|(t, &id)| recmaml::recommend::Interaction {
                    item: vocab.name(id).to_string(),
                    ts: 1_733_200_000 + 60 * t as i64,
                    session: None,
                })
                .collect(),
        };
        text.push_str(&serde_json::to_string(&line).unwrap());
        text.push('\n');
    }
    std::fs::write(out, text).unwrap_or_else(|e| die(&format!("{}: {e}", out.display())));
    eprintln!("{} users -> {}", set.episodes.len(), out.display());
}

/// What one client saw.
#[derive(Default)]
struct ClientStats {
    latencies: Vec<Duration>,
    errors: usize,
}

fn load(addr: SocketAddr, input: &Path, clients: &[usize], dur: Duration) {
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        std::fs::read_to_string(input)
            .unwrap_or_else(|e| die(&format!("{}: {e}", input.display())))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.as_bytes().to_vec())
            .collect(),
    );
    if bodies.is_empty() {
        die("the input has no users");
    }
    println!(
        "| clients | requests | seconds | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in clients {
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let threads: Vec<_> = (0..n)
            .map(|c| {
                let (bodies, stop) = (bodies.clone(), stop.clone());
                std::thread::spawn(move || client(addr, &bodies, c, &stop))
            })
            .collect();
        std::thread::sleep(dur);
        stop.store(true, Ordering::Relaxed);
        let mut lat = Vec::new();
        let mut errors = 0;
        for t in threads {
            let s = t.join().unwrap_or_default();
            lat.extend(s.latencies);
            errors += s.errors;
        }
        let secs = t0.elapsed().as_secs_f64();
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len().max(1)) - 1)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "| {n} | {} | {secs:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {errors} |",
            lat.len(),
            lat.len() as f64 / secs,
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0)
        );
    }
}

/// One client: a keep-alive connection, requests back to back until `stop`.
fn client(addr: SocketAddr, bodies: &[Vec<u8>], first: usize, stop: &AtomicBool) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let mut i = first;
    while !stop.load(Ordering::Relaxed) {
        let body = &bodies[i % bodies.len()];
        i += 1;
        let t = Instant::now();
        if conn.is_none() {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let r = BufReader::new(s.try_clone().expect("clone a socket"));
                    conn = Some((s, r));
                }
                Err(_) => {
                    stats.errors += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let (w, r) = conn.as_mut().expect("connected");
        match exchange(w, r, addr, body) {
            Ok(200) => stats.latencies.push(t.elapsed()),
            Ok(_) => stats.errors += 1,
            Err(_) => {
                stats.errors += 1;
                conn = None;
            }
        }
    }
    stats
}

/// One request on an open connection; the response's status.
fn exchange(
    w: &mut TcpStream,
    r: &mut BufReader<TcpStream>,
    addr: SocketAddr,
    body: &[u8],
) -> std::io::Result<u16> {
    let head = format!(
        "POST /recommend HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    w.write_all(&req)?;
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line `{line}`")))?;
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(std::io::Error::other)?;
            }
        }
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(status)
}
