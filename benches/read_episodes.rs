//! Times the episode reader as `train` and `eval` call it at start-up (not a criterion
//! benchmark): `read_episodes(FILE, None)` repeated, with the median and the best wall time, the
//! episode and value counts, and a digest of everything read (ids, users, prefixes, labels,
//! label times, K, Q, V), so that two builds of the reader can be checked to read the same.
//!
//! ```text
//! cargo bench --bench read_episodes -- FILE [--repeats N]
//! # or, for /usr/bin/time -v around single reads, the built binary:
//! cargo bench --bench read_episodes --no-run
//! /usr/bin/time -v target/release/deps/read_episodes-HASH FILE --repeats 1
//! ```

use recmaml::data::{read_episodes, EpisodeSet};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    // `cargo bench` passes `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(file) = args.first().filter(|a| !a.starts_with("--")) else {
        eprintln!("usage: read_episodes FILE [--repeats N]");
        std::process::exit(2);
    };
    let repeats: usize = args
        .iter()
        .position(|a| a == "--repeats")
        .and_then(|i| args.get(i + 1))
        .map_or(5, |n| n.parse().expect("--repeats takes a number"));
    let path = PathBuf::from(file);
    let mut times = Vec::new();
    let mut digest = None;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let set = read_episodes(&path, None).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1);
        });
        times.push(t.elapsed().as_secs_f64());
        let d = summary(&set);
        if digest.is_some_and(|prev| prev != d) {
            panic!("two reads of the same file differ");
        }
        digest = Some(d);
        drop(set);
    }
    let (episodes, values, hash) = digest.expect("at least one read");
    times.sort_by(f64::total_cmp);
    println!(
        "{}: {episodes} episodes, {values} prefix items; digest {hash:016x}; \
         {} reads: median {:.3} s, best {:.3} s",
        path.display(),
        times.len(),
        times[times.len() / 2],
        times[0]
    );
}

/// Episodes, prefix items, and a hash of everything the reader returns.
fn summary(set: &EpisodeSet) -> (usize, usize, u64) {
    let mut h = DefaultHasher::new();
    (set.k, set.q, set.n_items).hash(&mut h);
    let mut values = 0;
    for e in &set.episodes {
        e.episode_id.hash(&mut h);
        e.user_id.hash(&mut h);
        for p in [&e.support_prefixes, &e.query_prefixes] {
            p.hash(&mut h);
            values += p.iter().map(Vec::len).sum::<usize>();
        }
        e.support_labels.hash(&mut h);
        e.query_labels.hash(&mut h);
        e.support_label_ts.hash(&mut h);
        e.query_label_ts.hash(&mut h);
    }
    (set.episodes.len(), values, h.finish())
}
