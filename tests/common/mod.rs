//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared data folder: `$RECMAML_SHARED`, else `$CARGO_MANIFEST_DIR/../shared`, if it
/// exists. When it does not, prints `skipped: <reason>` and returns `None`, unless
/// `RECMAML_REQUIRE_SHARED=1`, in which case it panics (CI must not skip).
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
    let reason = format!(
        "shared data folder {} ({how}) not found; set RECMAML_SHARED to the folder that holds \
         data/ and docs/",
        dir.display()
    );
    if std::env::var("RECMAML_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!("RECMAML_REQUIRE_SHARED=1 but {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// A file inside the shared folder, if the folder and the file exist; same skip/require rules
/// as [`shared_dir`] (a missing file inside an existing folder is also a skip or a failure).
pub fn shared_file(rel: &str) -> Option<PathBuf> {
    let p = shared_dir()?.join(rel);
    if p.is_file() {
        return Some(p);
    }
    let reason = format!("{} not found", p.display());
    if std::env::var("RECMAML_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!("RECMAML_REQUIRE_SHARED=1 but {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// The repository's test fixtures folder.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
