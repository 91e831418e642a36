//! The `recmaml serve` and `recmaml recommend` binaries: serve answers on the port it prints and
//! stops cleanly on SIGTERM; recommend writes its output file and names a bad flag.

use recmaml::model::{init_params, ModelDims, ParamLayout};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A random model over items `i00..i15` and its vocabulary, written into `dir`.
fn model_files(dir: &Path) {
    let layout = ParamLayout::new(ModelDims {
        n_items: 17,
        embed_dim: 8,
        hidden_dim: 12,
    });
    let theta = init_params(&layout, 3);
    recmaml::checkpoint::save_params(
        &dir.join("m.safetensors"),
        &layout,
        &theta,
        &Default::default(),
    )
    .unwrap();
    let map: serde_json::Map<String, serde_json::Value> = (0..16)
        .map(|i| (format!("i{i:02}"), (i + 1).into()))
        .collect();
    std::fs::create_dir_all(dir.join("vocab")).unwrap();
    std::fs::write(
        dir.join("vocab/item2id.json"),
        serde_json::to_string(&map).unwrap(),
    )
    .unwrap();
}

const USER: &str = r#"{"user":"u","interactions":[{"item":"i01","ts":1},{"item":"i02","ts":2},{"item":"i03","ts":3}]}"#;

#[cfg(unix)]
#[test]
fn serve_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    model_files(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args([
            "serve",
            "--model",
            "m.safetensors",
            "--vocab",
            "vocab",
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--set", "run.backend=cpu"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{USER}",
        USER.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"few_shot\":["), "{resp}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status:?} {rest}");
    assert!(rest.contains("stopped"), "{rest}");
}

#[test]
fn recommend_writes_answers_and_names_a_bad_flag() {
    let dir = tempfile::tempdir().unwrap();
    model_files(dir.path());
    std::fs::write(dir.path().join("users.jsonl"), format!("{USER}\n{USER}\n")).unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_recmaml"))
            .args([
                "recommend",
                "--model",
                "m.safetensors",
                "--vocab",
                "vocab/item2id.json",
            ])
            .args([
                "--input",
                "users.jsonl",
                "--out",
                "recs.jsonl",
                "--set",
                "run.backend=cpu",
            ])
            .args(extra)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&["--k", "3", "--exclude-seen"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("recs.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let few = lines[0]["few_shot"].as_array().unwrap();
    assert_eq!(few.len(), 3);
    assert!(few
        .iter()
        .all(|s| !["i01", "i02", "i03"].contains(&s["item"].as_str().unwrap())));
    let bad = run(&["--k", "0"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--k"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
