//! `prepare` on small hand-built logs whose pairs, vocabulary and episodes are worked out by hand
//! in the comments, plus the bad-input cases.

use recmaml::data::pipeline::{self, Pair, PipelineConfig, Prepared};
use recmaml::data::prepare::{self, Format, PrepareOptions};
use recmaml::data::{read_episodes, Episode};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run_pipeline(path: &Path, format: Format, cfg: &PipelineConfig) -> Prepared {
    let log = prepare::read_log(path, format, true).unwrap();
    pipeline::run(&log, cfg).unwrap()
}

/// The main hand-built log. u1's events in input order (item@time):
/// x@10 y@20 y@25 z@30 w@30 x@40 v@5 q@50 r@50 s@60.
/// Sorted (ties in input order): v5 x10 y20 y25 z30 w30 x40 q50 r50 s60; the repeat y25 goes:
/// v5 x10 y20 z30 w30 x40 q50 r50 s60. Pairs: [v]->x@10, [v x]->y@20, [v x y]->z@30,
/// ([.. z]->w@30 dropped: same time), [v x y z w]->x@40, [.. x]->q@50, ([.. q]->r@50 dropped),
/// [v x y z w x q r]->s@60. u2 has one pair (a->b), u3 none (c, c).
const LOG: &str = "user_id,item_id,timestamp
u1,x,10
u1,y,20
u1,y,25
u1,z,30
u1,w,30
u1,x,40
u1,v,5
u1,q,50
u1,r,50
u1,s,60
u2,a,1
u2,b,2
u3,c,1
u3,c,2
";

/// Vocabulary: items sorted as strings, from 1.
const VOCAB: [&str; 11] = ["a", "b", "c", "q", "r", "s", "v", "w", "x", "y", "z"];

fn id(item: &str) -> u32 {
    VOCAB.iter().position(|v| *v == item).unwrap() as u32 + 1
}

fn ids(items: &str) -> Vec<u32> {
    items.split_whitespace().map(id).collect()
}

fn cfg(k: usize, q: usize, split: [f64; 3]) -> PipelineConfig {
    PipelineConfig {
        k,
        q,
        split,
        ..PipelineConfig::default()
    }
}

/// u1's six pairs: (prefix, label, label time).
fn u1_pairs(cap: usize) -> Vec<(Vec<u32>, u32, i64)> {
    let full = [
        ("v", "x", 10),
        ("v x", "y", 20),
        ("v x y", "z", 30),
        ("v x y z w", "x", 40),
        ("v x y z w x", "q", 50),
        ("v x y z w x q r", "s", 60),
    ];
    full.iter()
        .map(|(p, l, t)| {
            let p = ids(p);
            (p[p.len().saturating_sub(cap)..].to_vec(), id(l), *t)
        })
        .collect()
}

fn episode(id: i64, user: &str, pairs: &[(Vec<u32>, u32, i64)], k: usize) -> Episode {
    let (s, q) = pairs.split_at(k);
    Episode {
        episode_id: id,
        user_id: user.into(),
        support_prefixes: s.iter().map(|p| p.0.clone()).collect(),
        support_labels: s.iter().map(|p| p.1).collect(),
        query_prefixes: q.iter().map(|p| p.0.clone()).collect(),
        query_labels: q.iter().map(|p| p.1).collect(),
        support_label_ts: Some(s.iter().map(|p| p.2).collect()),
        query_label_ts: Some(q.iter().map(|p| p.2).collect()),
    }
}

#[test]
fn hand_built_log_gives_exact_pairs_vocab_and_train_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "log.csv", LOG);
    let p = run_pipeline(&input, Format::Interactions, &cfg(2, 1, [1.0, 0.0, 0.0]));
    assert_eq!(p.vocab, VOCAB);

    let s = &p.stages;
    assert_eq!(
        (s.events_read, s.events_kept, s.users, s.items),
        (14, 14, 3, 11)
    );
    assert_eq!(s.sessions, 3);
    // u1: 9 sequence items -> 8 candidates, 2 dropped; u2: 1; u3: 0.
    assert_eq!(
        (s.pair_candidates, s.pairs_dropped_same_time, s.pairs),
        (9, 2, 7)
    );
    assert_eq!(s.users_with_pairs, 2);

    // All users in train: u1 (6 pairs) then u2 (1 pair), by name; ids in that order.
    let train = &p.pairs[0];
    let expected: Vec<Pair> = u1_pairs(50)
        .into_iter()
        .map(|(prefix, label, ts)| (0, prefix, label, ts))
        .chain(std::iter::once((1, ids("a"), id("b"), 2)))
        .enumerate()
        .map(|(i, (u, prefix, label, label_ts))| Pair {
            pair_id: i as i64,
            user: u,
            session: u,
            full_prefix_len: prefix.len() as u32,
            prefix,
            label,
            label_ts,
        })
        .collect();
    assert_eq!(train, &expected);
    assert!(p.pairs[1].is_empty() && p.pairs[2].is_empty());

    // K=2, Q=1: windows of 3 over u1's 6 pairs, stride 1 -> 4 episodes; u2 is too short.
    let pairs = u1_pairs(50);
    let want: Vec<Episode> = (0..4)
        .map(|s| episode(s as i64, "u1", &pairs[s..s + 3], 2))
        .collect();
    assert_eq!(p.episodes(0), want);
    let c = &p.splits[0];
    assert_eq!(
        (c.users, c.users_too_short, c.users_with_episodes),
        (2, 1, 1)
    );
    assert_eq!((c.pairs, c.episodes, c.events, c.sessions), (7, 4, 12, 2));
}

#[test]
fn stride_cap_and_val_episode_from_last_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "log.csv", LOG);
    let mut c = cfg(2, 1, [1.0, 0.0, 0.0]);
    c.train_stride = 2;
    c.max_prefix_len = 4;
    let p = run_pipeline(&input, Format::Interactions, &c);
    let pairs = u1_pairs(4);
    assert_eq!(pairs[5].0, ids("w x q r"), "cut to the last 4 items");
    assert_eq!(
        p.stages.pairs_truncated, 3,
        "full prefix lengths 5, 6, 8 exceed 4"
    );
    let want: Vec<Episode> = [0usize, 2]
        .iter()
        .enumerate()
        .map(|(i, &s)| episode(i as i64, "u1", &pairs[s..s + 3], 2))
        .collect();
    assert_eq!(p.episodes(0), want);

    // Everyone in val: one episode per user, from the last K+Q pairs.
    let p = run_pipeline(&input, Format::Interactions, &cfg(2, 1, [0.0, 1.0, 0.0]));
    let pairs = u1_pairs(50);
    assert_eq!(p.episodes(1), vec![episode(0, "u1", &pairs[3..6], 2)]);
    assert!(p.episodes(0).is_empty() && p.episodes(2).is_empty());
}

#[test]
fn session_column_gap_and_episode_order_check() {
    let dir = tempfile::tempdir().unwrap();
    // Two sessions given by the column; inside each, events out of order. Labels b@20 and d@20
    // tie across sessions, so with K=1,Q=1 the only window (support b@20, query d@20) is dropped.
    let text = "session_id\titem_id\tuser_id\ttimestamp\n\
                s1\tb\tg\t20\n\
                s1\ta\tg\t10\n\
                s2\td\tg\t20\n\
                s2\tc\tg\t5\n";
    let input = write(dir.path(), "log.tsv", text);
    let p = run_pipeline(&input, Format::Interactions, &cfg(1, 1, [1.0, 0.0, 0.0]));
    assert_eq!(p.vocab, ["a", "b", "c", "d"]);
    assert_eq!(p.sessions, ["s1", "s2"]);
    let got: Vec<(Vec<u32>, u32, u32)> = p.pairs[0]
        .iter()
        .map(|q| (q.prefix.clone(), q.label, q.session))
        .collect();
    assert_eq!(got, vec![(vec![1], 2, 0), (vec![3], 4, 1)]);
    assert_eq!(p.splits[0].episodes_dropped_order, 1);
    assert!(p.episodes(0).is_empty());

    // One session per user by default; --session-gap 100 cuts at the 990 s gap.
    let text = "user_id,item_id,timestamp\ng,a,0\ng,b,10\ng,c,1000\ng,d,1010\n";
    let input = write(dir.path(), "gap.csv", text);
    let p = run_pipeline(&input, Format::Interactions, &cfg(1, 1, [1.0, 0.0, 0.0]));
    let prefixes: Vec<Vec<u32>> = p.pairs[0].iter().map(|q| q.prefix.clone()).collect();
    assert_eq!(prefixes, vec![vec![1], vec![1, 2], vec![1, 2, 3]]);
    let mut c = cfg(1, 1, [1.0, 0.0, 0.0]);
    c.session_gap = Some(100);
    let p = run_pipeline(&input, Format::Interactions, &c);
    assert_eq!(p.sessions, ["g#0", "g#1"]);
    let got: Vec<(Vec<u32>, u32)> = p.pairs[0]
        .iter()
        .map(|q| (q.prefix.clone(), q.label))
        .collect();
    assert_eq!(got, vec![(vec![1], 2), (vec![3], 4)]);
}

#[test]
fn iso_timestamps_equal_unix_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let unix = write(
        dir.path(),
        "unix.csv",
        "user_id,item_id,timestamp\nu,a,1488013987\nu,b,1488013990\nu,c,1488100000\n",
    );
    let iso = write(
        dir.path(),
        "iso.csv",
        "user_id,item_id,timestamp\nu,a,2017-02-25T09:13:07\nu,b,2017-02-25T10:13:10+01:00\nu,c,2017-02-26 09:06:40Z\n",
    );
    let c = cfg(1, 1, [1.0, 0.0, 0.0]);
    let a = run_pipeline(&unix, Format::Interactions, &c);
    let b = run_pipeline(&iso, Format::Interactions, &c);
    assert_eq!(a.pairs, b.pairs);
    assert_eq!(a.episodes(0), b.episodes(0));
    assert_eq!(a.episodes(0).len(), 1);
}

#[test]
fn prepare_writes_the_layout_and_the_reader_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "log.csv", LOG);
    let out = dir.path().join("out");
    let mut args = PrepareOptions::new(&input, Format::Interactions, &out);
    (args.k, args.q, args.split) = (2, 1, [1.0, 0.0, 0.0]);
    let report = prepare::run(&args).unwrap();
    assert_eq!(report.splits[0].counts.episodes, 4);
    for f in [
        "vocab/item2id.json",
        "pairs_train.parquet",
        "pairs_val.parquet",
        "pairs_test.parquet",
        "episodes/episodes_val_K2_Q1.parquet",
        "episodes/episodes_test_K2_Q1.parquet",
        "prepare_report.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("vocab/item2id.json")).unwrap())
            .unwrap();
    for (i, v) in VOCAB.iter().enumerate() {
        assert_eq!(vocab[*v], i + 1);
    }
    let set = read_episodes(&out.join("episodes/episodes_train_K2_Q1.parquet"), None).unwrap();
    assert_eq!((set.k, set.q, set.n_items), (2, 1, 12));
    let pairs = u1_pairs(50);
    assert_eq!(set.episodes[3], episode(3, "u1", &pairs[3..6], 2));
    let empty = read_episodes(&out.join("episodes/episodes_val_K2_Q1.parquet"), None).unwrap();
    assert_eq!((empty.episodes.len(), empty.k, empty.q), (0, 2, 1));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("prepare_report.json")).unwrap())
            .unwrap();
    assert_eq!(json["stages"]["pairs_dropped_same_time"], 2);
    assert_eq!(json["splits"][0]["episodes"], 4);

    // An existing non-empty folder is refused, then replaced with --force.
    let err = prepare::run(&args).unwrap_err().to_string();
    assert!(err.contains("--out") && err.contains("--force"), "{err}");
    args.force = true;
    args.k = 1;
    prepare::run(&args).unwrap();
    assert!(out.join("episodes/episodes_train_K1_Q1.parquet").is_file());
    assert!(!out.join("episodes/episodes_train_K2_Q1.parquet").exists());
}

/// Runs `prepare` on `text` and returns the error message; checks that no output and no
/// temporary folder were left behind.
fn prepare_error(name: &str, text: &str, format: Format) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), name, text);
    let out = dir.path().join("out");
    let err = prepare::run(&PrepareOptions::new(&input, format, &out))
        .unwrap_err()
        .to_string();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from(name)],
        "partial output left: {err}"
    );
    assert!(err.contains(name), "error does not name the file: {err}");
    err
}

#[test]
fn bad_text_inputs_name_file_line_and_column() {
    let e = prepare_error(
        "a.csv",
        "user_id,item_id,timestamp\nu,a,1\nu,b\n",
        Format::Interactions,
    );
    assert!(
        e.contains("row 3") && e.contains("expected 3 fields, found 2"),
        "{e}"
    );
    let e = prepare_error(
        "b.csv",
        "user_id,item_id,timestamp\nu,a,yesterday\n",
        Format::Interactions,
    );
    assert!(
        e.contains("row 2") && e.contains("`timestamp`") && e.contains("yesterday"),
        "{e}"
    );
    let e = prepare_error(
        "c.csv",
        "user_id,item_id,time\nu,a,1\n",
        Format::Interactions,
    );
    assert!(e.contains("missing column `timestamp`"), "{e}");
    let e = prepare_error("d.csv", "", Format::Interactions);
    assert!(e.contains("empty"), "{e}");
    let e = prepare_error("e.csv", "user_id,item_id,timestamp\n", Format::Interactions);
    assert!(e.contains("no events"), "{e}");
    let e = prepare_error(
        "f.csv",
        "user_id,item_id,timestamp\nu,a,1\nu,a,2\n",
        Format::Interactions,
    );
    assert!(e.contains("no pairs"), "{e}");
    let e = prepare_error("u.data", "1\t2\t5\t881250949\n1\t3\tx\n", Format::Movielens);
    assert!(
        e.contains("row 2") && e.contains("expected 4 fields"),
        "{e}"
    );
    let e = prepare_error("r.txt", "hello world\n", Format::Movielens);
    assert!(e.contains("not a MovieLens ratings file"), "{e}");
}

#[test]
fn bad_xuetangx_inputs_name_file_line_and_field() {
    let e = prepare_error(
        "x1.json",
        "[[\"c1\", {\"u1\": {\"s1\": [[\"load_video\", \"2017-01-01T00:00:00\"]\n[\"video_play\", \"2017-01-01T00:00:09\"]]}}]]",
        Format::Xuetangx,
    );
    assert!(
        e.contains("row 2") && e.contains("expected `,` or `]`"),
        "{e}"
    );
    assert!(
        e.contains("course #1 `c1` / user `u1` / session `s1`"),
        "{e}"
    );
    let e = prepare_error(
        "x2.json",
        "[[\"c1\", {\"u1\": {\"s1\": [[\"load_video\", \"2017-01-01T00:00:00\"], [\"video_play\", \"soon\"]]}}]]",
        Format::Xuetangx,
    );
    assert!(e.contains("event #2") && e.contains("`soon`"), "{e}");
    let e = prepare_error(
        "x3.json",
        "[[\"c1\", {\"u1\": {\"s1\": [[\"click_info\", \"2017-01-01T00:00:00\"]]}}]]",
        Format::Xuetangx,
    );
    assert!(e.contains("no user left"), "{e}");
    let e = prepare_error("x4.json", "[[\"c1\", {\"u1\": ", Format::Xuetangx);
    assert!(e.contains("end of the input"), "{e}");
    let e = prepare_error("x5.json", "  \n", Format::Xuetangx);
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn unknown_format_and_bad_flags_are_refused_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "log.csv", LOG);
    let run = |extra: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_recmaml"))
            .arg("prepare")
            .arg("--input")
            .arg(&input)
            .arg("--out")
            .arg(dir.path().join("out"))
            .args(extra)
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(&["--format", "parquet"]);
    assert!(e.contains("--format") && e.contains("parquet"), "{e}");
    let e = run(&["--format", "interactions", "--split", "0.5,0.5"]);
    assert!(e.contains("--split"), "{e}");
    let e = run(&["--format", "interactions", "--split", "0.5,0.4,0.3"]);
    assert!(e.contains("--split") && e.contains("summing to 1"), "{e}");
    let e = run(&["--format", "interactions", "--K", "0"]);
    assert!(e.contains("--K"), "{e}");
    assert!(!dir.path().join("out").exists());
}
