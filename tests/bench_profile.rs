//! `recmaml bench` on the CPU: the phase profile (`RECMAML_CPU_PROFILE=1`) covers the
//! meta-iteration, and the FP32 ceiling of the engine's own tiles is measured and related to the
//! achieved rate.

use std::process::Command;

const PHASES: [&str; 12] = [
    "task load",
    "input projection",
    "recurrence forward",
    "output forward",
    "output backward",
    "recurrence backward",
    "GRU gradient",
    "embedding backward",
    "SGD step",
    "gradient export",
    "reduction",
    "clip + Adam",
];

/// `recmaml bench` on a small configuration with one thread, `extra` flags and environment; its
/// JSON result.
fn bench(profile: bool, extra: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("r.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recmaml"));
    cmd.args(["bench", "--n", "4", "--items", "300", "--embed-dim", "16"])
        .args(["--hidden-dim", "16", "--iters", "5", "--repeats", "1"])
        .args(["--warmup", "1", "--json"])
        .arg(&json)
        .args(extra)
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("RECMAML_CPU_PROFILE");
    if profile {
        cmd.env("RECMAML_CPU_PROFILE", "1");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn the_cpu_profile_names_every_phase_and_covers_the_iteration() {
    let r = bench(true, &["--no-ceiling"]);
    let p = &r["phase_profile"];
    assert_eq!(p["unit"], "ns summed over threads");
    let phases = p["phases"].as_array().unwrap();
    let names: Vec<&str> = phases
        .iter()
        .map(|x| x["phase"].as_str().unwrap())
        .collect();
    assert_eq!(names, PHASES);
    let per: Vec<f64> = phases
        .iter()
        .map(|x| x["per_iter"].as_f64().unwrap())
        .collect();
    // Every phase runs in every meta-iteration.
    for (name, ns) in PHASES.iter().zip(&per) {
        assert!(*ns > 0.0, "phase {name} took no time");
    }
    let shares: f64 = phases.iter().map(|x| x["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9, "{shares}");
    // With one thread the phases are disjoint parts of the timed iterations (one repeat, so its
    // time is the median): their sum cannot exceed it. How much of it they cover depends on the
    // machine's load, so it is not checked here; `recmaml bench` prints both.
    let wall_ns = r["ms_per_iter_median"].as_f64().unwrap() * 1e6;
    let total: f64 = per.iter().sum();
    assert!(total <= wall_ns * 1.02, "phases {total} ns of {wall_ns} ns");
    assert!(r["cpu_ceiling"].is_null() && r["fraction_of_ceiling"].is_null());
}

#[test]
fn without_the_variable_there_is_no_profile_and_the_ceiling_is_measured() {
    let r = bench(false, &[]);
    assert!(r["phase_profile"].is_null(), "{}", r["phase_profile"]);
    let c = &r["cpu_ceiling"];
    let gflops = c["gflops"].as_f64().unwrap();
    assert!(gflops > 0.0, "{c}");
    assert_eq!(c["threads"], 1);
    let shape: Vec<u64> = c["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(shape.len(), 3);
    assert!(shape.iter().all(|&d| d > 0), "{c}");
    let achieved = r["gflops_achieved"].as_f64().unwrap();
    let frac = r["fraction_of_ceiling"].as_f64().unwrap();
    assert!(
        (frac - achieved / gflops).abs() <= 1e-12 * frac.abs().max(1.0),
        "{r}"
    );
}
