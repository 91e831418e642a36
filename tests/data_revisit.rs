//! The revisit statistics of `prepare` on a hand-built log, worked out by hand in the comments.

use recmaml::data::pipeline::{self, PipelineConfig, Prepared};
use recmaml::data::prepare::{self, Format, PrepareOptions};
use recmaml::data::revisit::QueryOverlap;
use std::path::Path;

/// u1 (sessions; item@time):
///   s3: e@5 (one course, no pair)
///   s1: a@10 b@20 a@30 c@40        -> P1 [a]->b@20, P2 [a b]->a@30, P3 [a b a]->c@40
///   s2: c@100 a@110 b@120 a@130    -> P4 [c]->a@110, P5 [c a]->b@120, P6 [c a b]->a@130
///   s4: e@200 a@210                -> P7 [e]->a@210
/// Revisits (label touched by u1 strictly before): P1 no (b first at 20), P2 yes (a@10), P3 no,
/// P4 yes, P5 yes (b@20), P6 yes, P7 yes: 5 of 7.
/// u2: t2: y@0; t1: x@5 y@6 -> [x]->y@6, a revisit through a session without pairs.
/// u3: r1: y@1 x@3 -> [y]->x@3, not a revisit (only u2 touched x before, at 5 anyway).
/// All pairs: 9, revisits 6.
const LOG: &str = "user_id,item_id,timestamp,session_id
u1,e,5,s3
u1,a,10,s1
u1,b,20,s1
u1,a,30,s1
u1,c,40,s1
u1,c,100,s2
u1,a,110,s2
u1,b,120,s2
u1,a,130,s2
u1,e,200,s4
u1,a,210,s4
u2,y,0,t2
u2,x,5,t1
u2,y,6,t1
u3,y,1,r1
u3,x,3,r1
";

fn cfg(split: [f64; 3]) -> PipelineConfig {
    PipelineConfig {
        k: 2,
        q: 2,
        split,
        ..PipelineConfig::default()
    }
}

fn run(dir: &Path, split: [f64; 3]) -> Prepared {
    let p = dir.join("log.csv");
    std::fs::write(&p, LOG).unwrap();
    let log = prepare::read_log(&p, Format::Interactions, true).unwrap();
    pipeline::run(&log, &cfg(split)).unwrap()
}

/// With K=2, Q=2 only u1 (7 pairs, label times strictly increasing) has episodes; its windows
/// start at P1..P4 (support labels | support prefix items | queries: label [own prefix]):
///   W0: b a | a b     | P3 c [a b a]: -,-,-   P4 a [c]: L,S,-        -> 1 1 0
///   W1: a c | a b c   | P4 a [c]: L,S,-       P5 b [c a]: -,S,-      -> 1 2 0
///   W2: c a | a b c   | P5 b [c a]: -,S,-     P6 a [c a b]: L,S,O    -> 1 2 1
///   W3: a b | a b c   | P6 a [c a b]: L,S,O   P7 a [e]: L,S,-        -> 2 2 1
/// (L = a support label, S = a support label or support prefix item, O = in its own prefix.)
const ALL_WINDOWS: QueryOverlap = QueryOverlap {
    query_labels: 8,
    in_support_labels: 5,
    in_support: 7,
    in_own_prefix: 2,
};

/// Val and test keep only the last window, W3.
const LAST_WINDOW: QueryOverlap = QueryOverlap {
    query_labels: 2,
    in_support_labels: 2,
    in_support: 2,
    in_own_prefix: 1,
};

#[test]
fn revisit_counts_match_the_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let p = run(dir.path(), [1.0, 0.0, 0.0]);
    assert_eq!(p.stages.pairs, 9);
    assert_eq!(p.stages.pairs_revisit, 6);
    assert_eq!(p.windows[0].len(), 4);
    assert_eq!(p.splits[0].query_overlap, ALL_WINDOWS);
    assert_eq!(p.splits[1].query_overlap, QueryOverlap::default());

    let p = run(dir.path(), [0.0, 1.0, 0.0]);
    assert_eq!(p.windows[1].len(), 1);
    assert_eq!(p.splits[1].query_overlap, LAST_WINDOW);
    assert_eq!(p.stages.pairs_revisit, 6);
}

#[test]
fn the_report_gives_the_shares() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("log.csv");
    std::fs::write(&input, LOG).unwrap();
    let opts = PrepareOptions {
        k: 2,
        q: 2,
        split: [1.0, 0.0, 0.0],
        ..PrepareOptions::new(&input, Format::Interactions, dir.path().join("out"))
    };
    let r = prepare::run(&opts).unwrap();
    assert_eq!(r.pairs_revisit_share, 6.0 / 9.0);
    let train = &r.splits[0];
    assert_eq!(train.query_in_support_labels_share, 5.0 / 8.0);
    assert_eq!(train.query_in_support_share, 7.0 / 8.0);
    assert_eq!(train.query_in_own_prefix_share, 2.0 / 8.0);
    assert_eq!(r.splits[2].query_in_support_share, 0.0, "no test episodes");

    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/prepare_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["stages"]["pairs_revisit"], 6);
    assert_eq!(json["splits"][0]["query_overlap"]["in_support"], 7);
    assert_eq!(json["splits"][0]["query_in_support_share"], 7.0 / 8.0);
    let table = r.table();
    assert!(table.contains("6 pairs (66.7%)"), "{table}");
    assert!(table.contains("87.5%"), "{table}");
}
