//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a skipped check needed; each has its `RECMAML_REQUIRE_*` variable, which turns the skip
/// into a failure (`.ci/run` sets every one its machine can meet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// `../shared` (MovieLens): `RECMAML_REQUIRE_SHARED`.
    Shared,
    /// A Python with torch: `RECMAML_REQUIRE_TORCH`.
    Torch,
    /// NVRTC and ptxas: `RECMAML_REQUIRE_NVRTC`.
    Nvrtc,
    /// A CUDA device and driver: `RECMAML_REQUIRE_CUDA`.
    Cuda,
    /// A C++ compiler for the kernel emulator: `RECMAML_REQUIRE_EMU`.
    Emu,
}

impl Needs {
    fn name(self) -> &'static str {
        match self {
            Needs::Shared => "shared",
            Needs::Torch => "torch",
            Needs::Nvrtc => "nvrtc",
            Needs::Cuda => "cuda",
            Needs::Emu => "emu",
        }
    }

    fn require_var(self) -> &'static str {
        match self {
            Needs::Shared => "RECMAML_REQUIRE_SHARED",
            Needs::Torch => "RECMAML_REQUIRE_TORCH",
            Needs::Nvrtc => "RECMAML_REQUIRE_NVRTC",
            Needs::Cuda => "RECMAML_REQUIRE_CUDA",
            Needs::Emu => "RECMAML_REQUIRE_EMU",
        }
    }
}

/// Skips the running check for want of `needs`: panics when its `RECMAML_REQUIRE_*` is `1`;
/// otherwise prints `skipped: <reason>` and appends `<kind>\t<test>\t<reason>` to the file
/// `$RECMAML_SKIP_LOG` names, if set, so that `.ci/run` can list every skip at its end (the test
/// harness hides what a passing test prints).
pub fn skip(needs: Needs, reason: &str) {
    if std::env::var(needs.require_var()).as_deref() == Ok("1") {
        panic!("{}=1 but {reason}", needs.require_var());
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    eprintln!("{test}: skipped: {reason}");
    if let Some(log) = std::env::var_os("RECMAML_SKIP_LOG") {
        use std::io::Write;
        let line = format!("{}\t{test}\t{}\n", needs.name(), reason.replace('\n', " "));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("RECMAML_SKIP_LOG {}: {e}", log.to_string_lossy()));
        f.write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("RECMAML_SKIP_LOG {}: {e}", log.to_string_lossy()));
    }
}

/// The shared data folder: `$RECMAML_SHARED`, else `$CARGO_MANIFEST_DIR/../shared`, if it
/// exists. When it does not, the check is skipped ([`skip`], `Needs::Shared`) and this returns
/// `None`.
pub fn shared_dir() -> Option<PathBuf> {
    let (dir, how) = match std::env::var_os("RECMAML_SHARED") {
        Some(d) => (PathBuf::from(d), "$RECMAML_SHARED"),
        None => (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
            "$CARGO_MANIFEST_DIR/../shared",
        ),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    skip(
        Needs::Shared,
        &format!(
            "shared data folder {} ({how}) not found; set RECMAML_SHARED to the folder that \
             holds data/ and docs/",
            dir.display()
        ),
    );
    None
}

/// A file inside the shared folder, if the folder and the file exist; same skip rules as
/// [`shared_dir`] (a missing file inside an existing folder is also a skip).
pub fn shared_file(rel: &str) -> Option<PathBuf> {
    let p = shared_dir()?.join(rel);
    if p.is_file() {
        return Some(p);
    }
    skip(Needs::Shared, &format!("{} not found", p.display()));
    None
}

/// The repository's test fixtures folder.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every file under `dir` (relative path -> bytes), to show that a refused or failed run left a
/// folder exactly as it was.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, into);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                into.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// A finished command's standard output followed by its standard error, as text.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
