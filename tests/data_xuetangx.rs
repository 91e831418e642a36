//! The XuetangX activity reader on small hand-written JSON texts: a full log whose events,
//! pairs and episodes are worked out by hand in the comments from the format rules (not by the
//! synth writer), and the edge cases: trailing data, wrong container types at every level,
//! numeric timestamps, extra fields in an event, ignored events and deeply nested ignored values.

use recmaml::data::events::{Event, EventLog};
use recmaml::data::pipeline::{self, Pair, PipelineConfig};
use recmaml::data::prepare::{self, Format, PrepareOptions};
use recmaml::data::xuetangx::read_xuetangx;
use recmaml::data::{read_episodes, Episode};
use recmaml::Error;
use std::path::{Path, PathBuf};

/// 2017-01-01T00:00:00Z in Unix seconds (`date -u -d 2017-01-01 +%s`).
const T0: i64 = 1_483_228_800;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn read(text: &str) -> recmaml::Result<EventLog> {
    let dir = tempfile::tempdir().unwrap();
    read_xuetangx(&write(dir.path(), "log.json", text), true)
}

/// The data error for `text`, checked to name the file and to be a data error.
fn read_err(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.json", text);
    match read_xuetangx(&path, true) {
        Err(e @ Error::Data { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&path.display().to_string()),
                "error does not name the file: {msg}"
            );
            msg
        }
        other => panic!("expected a data error for {text:?}, got {other:?}"),
    }
}

/// Each event of the log as (user, session, item, seconds after [`T0`]), by name.
fn named_events(log: &EventLog) -> Vec<(&str, &str, &str, i64)> {
    log.events
        .iter()
        .map(|e: &Event| {
            (
                log.users[e.user as usize].as_str(),
                log.sessions[e.session as usize].as_str(),
                log.items[e.item as usize].as_str(),
                e.ts - T0,
            )
        })
        .collect()
}

/// The full log. Kept types start with `load_`, `problem_`, `video_`, `seek_`, `speed_` or
/// `pause_`; `play_video`, `xload_video` and the `click_`/`close_` events are not kept, and the
/// timestamp of an event that is not kept is not read. Course `cE` has only such events, and so
/// has user u3. The session hash `s1` belongs to u1 and to u2: two sessions. u1's `s1` spans
/// courses cB and cA, u2's spans cB, cA and cC, u1's `s2` spans cC and cD.
///
/// Timestamps, in seconds after T0: `2017-01-01T00:01:00` = 60; `1483229000.9` = 200 (the
/// fraction is dropped); `2017-01-01T01:03:20+01:00` = 200; `2017-01-01 00:00:02Z` = 2.
const LOG: &str = r#"[
 ["cB", {
   "u1": {"s1": [["load_video", "2017-01-01T00:00:20"],
                 ["seek_video", "2017-01-01T00:01:00", {"old": 3.5, "new": [1, {"x": null}]}, "z"]]},
   "u2": {"s1": [["problem_get", 1483228801], ["click_about", "not a time"]]}
 }],
 ["cE", {
   "u3": {"s7": [["click_courseware", "2017-01-01T00:00:00"], ["close_page", 1483228900]]}
 }],
 ["cA", {
   "u1": {"s1": [["load_video", "2017-01-01T00:00:10"],
                 ["play_video", "2017-01-01T00:00:12"],
                 ["pause_video", "2017-01-01T00:00:15"],
                 ["pause_video", "2017-01-01T00:00:40+00:00"],
                 ["problem_check", 1483229000.9]]},
   "u2": {"s1": [["video_load", "2017-01-01 00:00:02Z"], ["load_video", 1483228804]]}
 }],
 ["cC", {
   "u1": {"s2": [["load_video", "2017-01-01T00:01:40"],
                 ["speed_change_video", "2017-01-01T01:03:20+01:00"]]},
   "u2": {"s1": [["seek_video", "2017-01-01T00:00:03"]]}
 }],
 ["cD", {
   "u1": {"s2": [["video_x", 1483228900], ["load_x", "2017-01-01T00:02:30"],
                 ["xload_video", "2017-01-01T00:00:01"]]}
 }]
]
"#;

/// The kept events in input order (course after course): 19 read, 14 kept.
const LOG_EVENTS: [(&str, &str, &str, i64); 14] = [
    ("u1", "s1", "cB", 20),
    ("u1", "s1", "cB", 60),
    ("u2", "s1", "cB", 1),
    ("u1", "s1", "cA", 10),
    ("u1", "s1", "cA", 15),
    ("u1", "s1", "cA", 40),
    ("u1", "s1", "cA", 200),
    ("u2", "s1", "cA", 2),
    ("u2", "s1", "cA", 4),
    ("u1", "s2", "cC", 100),
    ("u1", "s2", "cC", 200),
    ("u2", "s1", "cC", 3),
    ("u1", "s2", "cD", 100),
    ("u1", "s2", "cD", 150),
];

#[test]
fn full_log_reads_to_the_hand_listed_events() {
    let log = read(LOG).unwrap();
    assert_eq!(named_events(&log), LOG_EVENTS);
    assert_eq!(log.events_read, 19);
    // Numbered in order of first appearance, kept or not; sessions per (user, hash).
    assert_eq!(log.users, ["u1", "u2", "u3"]);
    assert_eq!(log.items, ["cB", "cE", "cA", "cC", "cD"]);
    assert_eq!(log.sessions, ["s1", "s1", "s7", "s2"]);
    let (u1s1, u2s1) = (log.events[0].session, log.events[2].session);
    assert_ne!(u1s1, u2s1, "one hash, two users: two sessions");
}

/// Vocabulary: the courses of kept events sorted as strings, from 1: cA 1, cB 2, cC 3, cD 4
/// (cE has no kept event).
const A: u32 = 1;
const B: u32 = 2;
const C: u32 = 3;
const D: u32 = 4;

/// A pair: (prefix, label, seconds after [`T0`], session index in the pipeline's session list).
type HandPair = (Vec<u32>, u32, i64, u32);

/// Each session's events sorted by time (ties in input order), consecutive repeats removed (the
/// first of a run stands, with its time), then one pair per later position, dropped when the
/// label's time is not after the previous item's:
/// - u1 `s1`: B20 B60 A10 A15 A40 A200 -> A10 A15 B20 A40 B60 A200 -> A10 B20 A40 B60 A200:
///   [A]->B@20, [A B]->A@40, [A B A]->B@60, [A B A B]->A@200.
/// - u2 `s1`: B1 A2 A4 C3 -> B1 A2 C3 A4: [B]->A@2, [B A]->C@3, [B A C]->A@4.
/// - u1 `s2`: C100 C200 D100 D150 -> C100 D100 D150 C200 -> C100 D100 C200: [C]->D@100 dropped
///   (same time as C100), [C D]->C@200.
///
/// A user's pairs are sorted by label time, ties in session order (u1's `s1` came first).
fn user_pairs() -> [Vec<HandPair>; 2] {
    [
        vec![
            (vec![A], B, 20, 0),
            (vec![A, B], A, 40, 0),
            (vec![A, B, A], B, 60, 0),
            (vec![A, B, A, B], A, 200, 0),
            (vec![C, D], C, 200, 2),
        ],
        vec![
            (vec![B], A, 2, 1),
            (vec![B, A], C, 3, 1),
            (vec![B, A, C], A, 4, 1),
        ],
    ]
}

fn episode(id: i64, user: &str, pairs: &[HandPair], k: usize) -> Episode {
    let (s, q) = pairs.split_at(k);
    Episode {
        episode_id: id,
        user_id: user.into(),
        support_prefixes: s.iter().map(|p| p.0.clone()).collect(),
        support_labels: s.iter().map(|p| p.1).collect(),
        query_prefixes: q.iter().map(|p| p.0.clone()).collect(),
        query_labels: q.iter().map(|p| p.1).collect(),
        support_label_ts: Some(s.iter().map(|p| T0 + p.2).collect()),
        query_label_ts: Some(q.iter().map(|p| T0 + p.2).collect()),
    }
}

/// With K = 2, Q = 1, train windows of 3 pairs start at every pair:
/// u1 at 0 (support @20 @40, query @60) and 1 (@40 @60 | @200) are kept, at 2 (@60 @200 | @200)
/// dropped: the newest support label is not strictly older than the query; u2 at 0 (@2 @3 | @4).
/// Written out:
/// - episode 0, u1: support [A]->B, [A B]->A; query [A B A]->B.
/// - episode 1, u1: support [A B]->A, [A B A]->B; query [A B A B]->A.
/// - episode 2, u2: support [B]->A, [B A]->C; query [B A C]->A.
fn train_episodes() -> Vec<Episode> {
    vec![
        Episode {
            episode_id: 0,
            user_id: "u1".into(),
            support_prefixes: vec![vec![A], vec![A, B]],
            support_labels: vec![B, A],
            query_prefixes: vec![vec![A, B, A]],
            query_labels: vec![B],
            support_label_ts: Some(vec![T0 + 20, T0 + 40]),
            query_label_ts: Some(vec![T0 + 60]),
        },
        Episode {
            episode_id: 1,
            user_id: "u1".into(),
            support_prefixes: vec![vec![A, B], vec![A, B, A]],
            support_labels: vec![A, B],
            query_prefixes: vec![vec![A, B, A, B]],
            query_labels: vec![A],
            support_label_ts: Some(vec![T0 + 40, T0 + 60]),
            query_label_ts: Some(vec![T0 + 200]),
        },
        Episode {
            episode_id: 2,
            user_id: "u2".into(),
            support_prefixes: vec![vec![B], vec![B, A]],
            support_labels: vec![A, C],
            query_prefixes: vec![vec![B, A, C]],
            query_labels: vec![A],
            support_label_ts: Some(vec![T0 + 2, T0 + 3]),
            query_label_ts: Some(vec![T0 + 4]),
        },
    ]
}

fn cfg(split: [f64; 3]) -> PipelineConfig {
    PipelineConfig {
        k: 2,
        q: 1,
        split,
        ..PipelineConfig::default()
    }
}

#[test]
fn full_log_gives_the_hand_worked_pairs_and_episodes() {
    let log = read(LOG).unwrap();
    let p = pipeline::run(&log, &cfg([1.0, 0.0, 0.0])).unwrap();
    assert_eq!(p.vocab, ["cA", "cB", "cC", "cD"]);
    assert_eq!(p.sessions, ["s1", "s1", "s2"]);

    let s = &p.stages;
    assert_eq!(
        (s.events_read, s.events_kept, s.users, s.items),
        (19, 14, 2, 4)
    );
    // Candidates: 4 (u1 s1) + 3 (u2 s1) + 2 (u1 s2); one dropped for equal times.
    assert_eq!(
        (
            s.sessions,
            s.pair_candidates,
            s.pairs_dropped_same_time,
            s.pairs
        ),
        (3, 9, 1, 8)
    );

    // All users in train, by name: u1's five pairs, then u2's three.
    let want: Vec<Pair> = user_pairs()
        .into_iter()
        .enumerate()
        .flat_map(|(u, pairs)| pairs.into_iter().map(move |p| (u as u32, p)))
        .enumerate()
        .map(|(i, (user, (prefix, label, t, session)))| Pair {
            pair_id: i as i64,
            user,
            session,
            full_prefix_len: prefix.len() as u32,
            prefix,
            label,
            label_ts: T0 + t,
        })
        .collect();
    assert_eq!(p.pairs[0], want);

    assert_eq!(p.episodes(0), train_episodes());
    let c = &p.splits[0];
    assert_eq!(
        (c.users, c.pairs, c.episodes, c.episodes_dropped_order),
        (2, 8, 3, 1)
    );

    // Everyone in test: one episode per user from its last K+Q pairs. u1's (@60 @200 | @200)
    // fails the order check; u2's is its only window.
    let p = pipeline::run(&log, &cfg([0.0, 0.0, 1.0])).unwrap();
    let [_, u2] = user_pairs();
    assert_eq!(p.episodes(2), vec![episode(0, "u2", &u2, 2)]);
    assert_eq!(p.splits[2].episodes_dropped_order, 1);
}

/// The same episodes through `prepare`, written to parquet and read back.
#[test]
fn prepare_writes_the_hand_worked_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "log.json", LOG);
    let out = dir.path().join("out");
    let mut args = PrepareOptions::new(&input, Format::Xuetangx, &out);
    (args.k, args.q, args.split) = (2, 1, [1.0, 0.0, 0.0]);
    prepare::run(&args).unwrap();
    let vocab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("vocab/course2id.json")).unwrap())
            .unwrap();
    assert_eq!(
        vocab,
        serde_json::json!({"cA": 1, "cB": 2, "cC": 3, "cD": 4})
    );
    let set = read_episodes(&out.join("episodes/episodes_train_K2_Q1.parquet"), None).unwrap();
    assert_eq!((set.k, set.q, set.n_items), (2, 1, 5));
    assert_eq!(set.episodes, train_episodes());
}

/// A small valid document: one kept event at T0 + 5.
const ONE: &str = r#"[["c1", {"u1": {"s1": [["load_video", 1483228805]]}}]]"#;

#[test]
fn only_whitespace_may_follow_the_top_level_array() {
    let log = read(&format!("{ONE} \n\t\r\n  ")).unwrap();
    assert_eq!(named_events(&log), [("u1", "s1", "c1", 5)]);

    // The first byte after the document is at offset ONE.len() + 1 (after one space); the
    // newline case puts it on line 2.
    let n = ONE.len();
    for (tail, found, line, byte) in [
        (" x", "`x`", 1, n + 1),
        (" []", "`[`", 1, n + 1),
        (",", "`,`", 1, n),
        ("\n  ]", "`]`", 2, n + 3),
    ] {
        let e = read_err(&format!("{ONE}{tail}"));
        assert!(
            e.contains(&format!(
                "line {line}, byte {byte}: unexpected {found} after the end of the document"
            )),
            "{tail:?}: {e}"
        );
        assert!(e.contains("after course #1 `c1`"), "{tail:?}: {e}");
    }
}

#[test]
fn wrong_container_types_are_named_with_their_position() {
    // (text, byte offset of the offending character, where, what was expected).
    let cases: [(&str, usize, &str, &str); 12] = [
        (
            r#"{"c1": {}}"#,
            0,
            "",
            "expected the top-level array (`[`), found `{`",
        ),
        (
            r#"["c1"]"#,
            1,
            "course #1",
            "expected a [course_id, {users}] pair (`[`), found `\"`",
        ),
        (
            r#"[{"c1": {}}]"#,
            1,
            "course #1",
            "expected a [course_id, {users}] pair (`[`), found `{`",
        ),
        (
            r#"[[7, {}]]"#,
            2,
            "course #1",
            "expected a string (`\"`), found `7`",
        ),
        (
            r#"[["c1"]]"#,
            6,
            "course #1 `c1`",
            "expected a comma after the course id (`,`), found `]`",
        ),
        (
            r#"[["c1", [["u1"]]]]"#,
            8,
            "course #1 `c1`",
            "expected the users object (`{`), found `[`",
        ),
        (
            r#"[["c1", {}, {}]]"#,
            10,
            "course #1 `c1`",
            "expected the end of the [course_id, {users}] pair (`]`), found `,`",
        ),
        (
            r#"[["c1", {"u1": ["s1"]}]]"#,
            15,
            "course #1 `c1` / user `u1`",
            "expected the sessions object (`{`), found `[`",
        ),
        (
            r#"[["c1", {"u1": {"s1": {"load_video": 5}}}]]"#,
            22,
            "course #1 `c1` / user `u1` / session `s1`",
            "expected the events array (`[`), found `{`",
        ),
        (
            r#"[["c1", {"u1": {"s1": [{"load_video": 5}]}}]]"#,
            23,
            "session `s1` / event #1",
            "expected an [event_type, timestamp] pair (`[`), found `{`",
        ),
        (
            r#"[["c1", {"u1": {"s1": [["load_video", 5], "video_x"]}}]]"#,
            42,
            "session `s1` / event #2",
            "expected an [event_type, timestamp] pair (`[`), found `\"`",
        ),
        (
            r#"[["c1", {"u1": {"s1": [[5, 6]]}}]]"#,
            24,
            "session `s1` / event #1",
            "expected a string (`\"`), found `5`",
        ),
    ];
    for (text, byte, place, what) in cases {
        assert_eq!(
            text.as_bytes()[byte],
            what.as_bytes()[what.len() - 2],
            "test case: byte {byte} of {text} is not the one found"
        );
        let e = read_err(text);
        assert!(
            e.contains(&format!("line 1, byte {byte}: {what}")),
            "{text}: {e}"
        );
        if place.is_empty() {
            assert!(!e.contains("course #"), "{text}: {e}");
        } else {
            assert!(e.contains(place), "{text}: {e}");
        }
    }
}

#[test]
fn timestamps_are_iso_strings_or_unix_seconds_as_numbers_or_strings() {
    let numeric = read(
        r#"[["c1", {"u1": {"s1": [
            ["load_video", 1483228800], ["video_play", 1483228860.75],
            ["seek_video", "1483228920"], ["pause_video", 1483229040.0]]}}]]"#,
    )
    .unwrap();
    let iso = read(
        r#"[["c1", {"u1": {"s1": [
            ["load_video", "2017-01-01T00:00:00"], ["video_play", "2017-01-01T00:01:00.75Z"],
            ["seek_video", "2017-01-01 00:02:00"], ["pause_video", "2017-01-01T02:04:00+02:00"]]}}]]"#,
    )
    .unwrap();
    let want = [0, 60, 120, 240];
    for log in [&numeric, &iso] {
        let ts: Vec<i64> = log.events.iter().map(|e| e.ts - T0).collect();
        assert_eq!(ts, want);
    }

    // A number that is not plain seconds, or not a number, is an error naming the event.
    for (ts, shown) in [
        ("1.4832288e9", "`1.4832288e9`"),
        ("null", "`null`"),
        ("true", "`true`"),
        ("\"yesterday\"", "`yesterday`"),
    ] {
        let e = read_err(&format!(
            r#"[["c1", {{"u1": {{"s1": [["load_video", 1483228800], ["load_video", {ts}]]}}}}]]"#
        ));
        assert!(
            e.contains("session `s1` / event #2")
                && e.contains(&format!("cannot parse timestamp {shown}")),
            "{ts}: {e}"
        );
    }
    // A container in the timestamp's place.
    for (ts, found) in [("{\"t\": 5}", "`{`"), ("[1483228800]", "`[`")] {
        let e = read_err(&format!(
            r#"[["c1", {{"u1": {{"s1": [["load_video", {ts}]]}}}}]]"#
        ));
        assert!(
            e.contains("event #1")
                && e.contains(&format!(
                    "expected the timestamp (a string or a number), found {found}"
                )),
            "{ts}: {e}"
        );
    }
}

#[test]
fn extra_event_fields_are_ignored_but_must_be_json() {
    let log = read(
        r#"[["c1", {"u1": {"s1": [
            ["load_video", 1483228801, {"a": [1, 2, {"b": "]"}]}, "x", -3.5e2, null, true, []],
            ["click_about", 1483228802, {"c": 1}],
            ["video_play", "2017-01-01T00:00:03", {}]]}}]]"#,
    )
    .unwrap();
    assert_eq!(
        named_events(&log),
        [("u1", "s1", "c1", 1), ("u1", "s1", "c1", 3)]
    );
    assert_eq!(log.events_read, 3);

    for (event, what) in [
        (
            r#"["load_video", 1483228801, ]"#,
            "expected a value, found `]`",
        ),
        (
            r#"["load_video", 1483228801, tru]"#,
            "invalid JSON value `tru`",
        ),
        (
            r#"["load_video", 1483228801, {"a" 1}]"#,
            "expected a colon (`:`), found `1`",
        ),
        (
            r#"["load_video", 1483228801 "x"]"#,
            "expected `,` or `]`, found `\"`",
        ),
        (
            r#"["load_video"]"#,
            "expected a comma after the event type (`,`), found `]`",
        ),
    ] {
        let e = read_err(&format!(r#"[["c1", {{"u1": {{"s1": [{event}]}}}}]]"#));
        assert!(e.contains("event #1") && e.contains(what), "{event}: {e}");
    }
}

#[test]
fn ignored_events_are_counted_and_their_values_not_read() {
    // Events that are not kept: their second field may be anything, even absent from the
    // kept types' rules (a string that is no time, an object).
    let log = read(
        r#"[["c1", {"u1": {"s1": [
            ["click_info", "not a time"], ["load_video", 1483228801],
            ["close_courseware", {"t": [1, 2]}], ["play_video", 7], ["Load_video", 8],
            ["problem", 9], ["video_x", 1483228802]]}}]]"#,
    )
    .unwrap();
    assert_eq!(
        named_events(&log),
        [("u1", "s1", "c1", 1), ("u1", "s1", "c1", 2)]
    );
    assert_eq!(log.events_read, 7);

    let e = read_err(r#"[["c1", {"u1": {"s1": [["click_info", 1], ["play_video", 2]]}}]]"#);
    assert!(
        e.contains("no user left: none of the 2 events passed the filter"),
        "{e}"
    );
}

#[test]
fn deeply_nested_ignored_values_are_skipped_without_recursion() {
    // A million levels: far past what a recursive skip survives on a test thread's stack.
    let depth = 1_000_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let text = format!(
        r#"[["c1", {{"u1": {{"s1": [["load_video", 1483228801, {deep}], ["click_x", {objects}], ["video_y", 1483228802, {objects}]]}}}}]]"#
    );
    let log = read(&text).unwrap();
    assert_eq!(
        named_events(&log),
        [("u1", "s1", "c1", 1), ("u1", "s1", "c1", 2)]
    );

    // Unbalanced or mismatched: an error, not a crash.
    let open = "[".repeat(depth);
    let e = read_err(&format!(
        r#"[["c1", {{"u1": {{"s1": [["load_video", 1483228801, {open}"#
    ));
    assert!(
        e.contains("event #1") && e.contains("end of the input"),
        "{e}"
    );
    let start = r#"[["c1", {"u1": {"s1": [["click_x", "#.len();
    let e = read_err(&format!(
        r#"[["c1", {{"u1": {{"s1": [["click_x", {open}1}}]]}}}}]]"#
    ));
    assert!(
        e.contains(&format!(
            "byte {}: expected `,` or `]`, found `}}`",
            start + depth + 1
        )),
        "{e}"
    );
}
