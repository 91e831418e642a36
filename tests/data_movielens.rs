//! `prepare --format movielens` on the shared MovieLens sample; the episode files pass the reader.

mod common;

use recmaml::data::prepare::{self, Format, PrepareOptions};
use recmaml::data::read_episodes;
use std::collections::HashSet;

#[test]
fn movielens_ratings_csv_prepares_valid_disjoint_episodes() {
    let Some(input) = common::shared_file("data/movielens-latest-small/ratings.csv") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ml");
    let report = prepare::run(&PrepareOptions::new(&input, Format::Movielens, &out)).unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("vocab/item2id.json")).unwrap())
            .unwrap();
    assert_eq!(vocab.len(), report.stages.items);

    let mut seen: Vec<HashSet<String>> = Vec::new();
    for (s, split) in ["train", "val", "test"].iter().enumerate() {
        let path = out.join(format!("episodes/episodes_{split}_K5_Q10.parquet"));
        let set = read_episodes(&path, None).unwrap();
        assert_eq!((set.k, set.q), (5, 10));
        assert_eq!(set.n_items, vocab.len() + 1, "V from ../vocab/item2id.json");
        assert_eq!(set.episodes.len(), report.splits[s].counts.episodes);
        assert!(!set.episodes.is_empty(), "{split} has no episodes");
        let users: HashSet<String> = set.episodes.iter().map(|e| e.user_id.clone()).collect();
        if *split != "train" {
            assert_eq!(
                users.len(),
                set.episodes.len(),
                "one {split} episode per user"
            );
        }
        for e in &set.episodes {
            assert_eq!((e.support_labels.len(), e.query_labels.len()), (5, 10));
            for p in e.support_prefixes.iter().chain(&e.query_prefixes) {
                assert!(!p.is_empty() && p.len() <= 50);
                assert!(p.iter().all(|&i| i >= 1));
            }
            let st = e.support_label_ts.as_ref().unwrap();
            let qt = e.query_label_ts.as_ref().unwrap();
            assert!(st.windows(2).all(|w| w[0] <= w[1]) && qt.windows(2).all(|w| w[0] <= w[1]));
            assert!(st.last() < qt.first(), "support strictly older than query");
        }
        seen.push(users);
    }
    for a in 0..3 {
        for b in a + 1..3 {
            assert!(
                seen[a].is_disjoint(&seen[b]),
                "splits {a} and {b} share users"
            );
        }
    }
    // 610 users rate at least 20 movies each; MovieLens has many same-second ratings.
    assert_eq!(report.stages.users, 610);
    assert!(report.stages.pairs_dropped_same_time > 0);
}
