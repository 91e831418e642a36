//! benches/torch_fomaml.py against the PyTorch fixtures, and its timing mode on a workload that
//! `recmaml bench --write-workload` recorded. Both need a Python with `torch`, `safetensors`,
//! `pyarrow` and `numpy`: `$RECMAML_PYTHON`, else `python3`. Without one the tests print
//! "skipped: ..." and pass, unless `RECMAML_REQUIRE_TORCH=1`, when they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python to use, or why there is none.
fn python() -> Result<String, String> {
    let py = std::env::var("RECMAML_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&py)
        .args(["-c", "import torch, safetensors, pyarrow, numpy"])
        .output();
    match probe {
        Ok(o) if o.status.success() => Ok(py),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.lines().last().unwrap_or("").to_string();
            Err(format!("torch not importable with {py} ({last})"))
        }
        Err(e) => Err(format!("torch not importable: cannot run {py} ({e})")),
    }
}

/// The Python, or `None` after printing why the test is skipped (a failure when required).
fn python_or_skip(test: &str) -> Option<String> {
    match python() {
        Ok(py) => Some(py),
        Err(why) => {
            common::skip(
                common::Needs::Torch,
                &format!("{test}: {why}; set RECMAML_PYTHON to a Python with torch"),
            );
            None
        }
    }
}

fn run(py: &str, args: &[&str]) -> String {
    let out = Command::new(py)
        .arg(root().join("benches/torch_fomaml.py"))
        .args(args)
        .output()
        .expect("running benches/torch_fomaml.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "torch_fomaml.py {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn both_pytorch_formulations_match_the_fixtures() {
    let Some(py) = python_or_skip("both_pytorch_formulations_match_the_fixtures") else {
        return;
    };
    let dir = root().join("tests/fixtures/torch");
    let out = run(
        &py,
        &[
            "--check-fixtures",
            dir.to_str().unwrap(),
            "--forms",
            "loop,batched,graph",
        ],
    );
    let summary = out
        .lines()
        .find(|l| l.starts_with("fixture check: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{out}"));
    // 4 cases x 3 formulations x 2 dtypes, each with dozens of tensor comparisons (the graph
    // form runs its padded computation eagerly on the CPU).
    let passed: usize = summary
        .trim_start_matches("fixture check: ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(summary.ends_with(" 0 failed"), "{summary}");
    assert!(passed >= 24 * 40, "too few comparisons: {summary}");
    for form in ["loop float64", "batched float32", "batched+static float64"] {
        assert!(out.contains(&format!("[{form}]")), "{form} not run:\n{out}");
    }
}

/// `recmaml bench --write-workload` then the PyTorch timing of the same meta-batches.
#[test]
fn pytorch_times_the_workload_that_recmaml_bench_wrote() {
    let Some(py) = python_or_skip("pytorch_times_the_workload_that_recmaml_bench_wrote") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let wl = tmp.path().join("wl");
    let status = Command::new(env!("CARGO_BIN_EXE_recmaml"))
        .args(["bench", "--n", "2", "--items", "50", "--embed-dim", "8"])
        .args(["--hidden-dim", "8", "--iters", "2", "--repeats", "1"])
        .args(["--warmup", "1", "--write-workload"])
        .arg(&wl)
        .status()
        .unwrap();
    assert!(status.success());
    let json = tmp.path().join("torch.json");
    let out = run(
        &py,
        &[
            "--workload",
            wl.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--threads",
            "1",
        ],
    );
    assert!(out.contains("loop") && out.contains("batched"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&json)).unwrap()).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["n"], 2);
        assert_eq!(r["v"], 50);
        assert_eq!(r["iters"], 2);
        assert!(r["iters_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    }
}
