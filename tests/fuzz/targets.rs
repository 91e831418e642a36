//! What each fuzz target does with its input: the bytes are written to a scratch file and read
//! by the library's own reader, exactly as `recmaml` reads a user's file. Shared by the fuzz
//! targets (`fuzz_targets/*.rs`) and by `tests/fuzz_corpus.rs`, which replays the committed
//! corpora and regressions in the normal test suite.

#![allow(dead_code)]

use std::path::PathBuf;

/// Every target, by name (the folder names under `corpus/` and `regressions/`).
pub const TARGETS: [&str; 7] = [
    "interactions_csv",
    "movielens_csv",
    "xuetangx_json",
    "episodes_parquet",
    "safetensors",
    "pth",
    "config_toml",
];

/// A scratch folder of this process and thread.
pub fn scratch_dir() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    std::env::temp_dir().join(format!("recmaml-fuzz-{}-{thread}", std::process::id()))
}

fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).expect("creating the scratch folder");
    let path = dir.join(name);
    std::fs::write(&path, data).expect("writing the scratch file");
    path
}

/// Reads `data` as target `target`'s file; the reader's error as text.
pub fn run(target: &str, data: &[u8]) -> Result<(), String> {
    use recmaml::data::{events, read_episodes, read_pair_file, xuetangx};
    let text = |r: recmaml::Result<()>| r.map_err(|e| e.to_string());
    match target {
        "interactions_csv" => {
            text(events::read_interactions(&scratch("interactions.csv", data), true).map(|_| ()))
        }
        "movielens_csv" => {
            text(events::read_movielens(&scratch("ratings.csv", data), true).map(|_| ()))
        }
        "xuetangx_json" => {
            text(xuetangx::read_xuetangx(&scratch("log.json", data), true).map(|_| ()))
        }
        "episodes_parquet" => {
            // The same bytes as an episode file and as a pairs file.
            let path = scratch("episodes.parquet", data);
            let episodes = text(read_episodes(&path, None).map(|_| ()));
            let pairs = text(read_pair_file(&path, None).map(|_| ()));
            episodes.or(pairs)
        }
        "safetensors" => {
            text(recmaml::checkpoint::load_state_dict(&scratch("w.safetensors", data)).map(|_| ()))
        }
        "pth" => text(recmaml::checkpoint::load_state_dict(&scratch("w.pth", data)).map(|_| ())),
        "config_toml" => {
            text(recmaml::config::Config::load(Some(&scratch("c.toml", data)), &[]).map(|_| ()))
        }
        other => panic!("unknown fuzz target {other}"),
    }
}
