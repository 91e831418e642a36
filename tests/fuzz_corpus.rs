//! The fuzz targets' inputs replayed in the normal test suite (stable toolchain, no libFuzzer):
//! every committed seed under `tests/fuzz/corpus/<target>/` must read without an error (they are
//! valid files the project writes), and every input under `tests/fuzz/regressions/<target>/` (a
//! crash a fuzzer found once) must give an error, never a panic or an abort.

#[path = "fuzz/targets.rs"]
mod targets;

use std::path::Path;

fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn every_seed_reads_and_every_regression_is_an_error() {
    for target in targets::TARGETS {
        let seeds = inputs("corpus", target);
        assert!(!seeds.is_empty(), "no seeds for fuzz target {target}");
        for (name, data) in seeds {
            if let Err(e) = targets::run(target, &data) {
                panic!("{target}: seed {name} does not read: {e}");
            }
        }
        for (name, data) in inputs("regressions", target) {
            let r = targets::run(target, &data);
            assert!(
                r.is_err(),
                "{target}: regression {name} reads without an error"
            );
        }
    }
    std::fs::remove_dir_all(targets::scratch_dir()).unwrap();
}
