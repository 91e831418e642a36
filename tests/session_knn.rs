//! Session-KNN (`matrix::SessionKnn`) on a hand-built log, against scores worked out by hand
//! from its definition: position weights i / L over the prefix's last `window` items,
//! similarity = the summed weights of the prefix items a session holds, the k most similar
//! sessions vote for their items with their similarity, ties broken by popularity then id.

use recmaml::matrix::{KnnParams, SessionKnn};

/// Four train sessions over items 1..=6 (V = 7, id 0 is padding).
fn log() -> Vec<Vec<u32>> {
    vec![vec![1, 2, 3], vec![2, 4], vec![3, 4, 5], vec![5, 6]]
}

/// Popularity (train label counts): item 2 above item 1, item 5 above item 4.
fn popularity() -> Vec<f64> {
    vec![0.0, 1.0, 3.0, 1.0, 1.0, 2.0, 0.0]
}

fn knn(k: usize, window: usize) -> SessionKnn {
    SessionKnn::new(log(), popularity(), KnnParams { k, window })
}

#[test]
fn scores_match_the_hand_computation() {
    // Prefix [2, 3]: L = 2, w(2) = 1/2, w(3) = 2/2 = 1.
    // sim: s0 {1,2,3} = 1/2 + 1 = 1.5; s1 {2,4} = 0.5; s2 {3,4,5} = 1; s3 {5,6} = 0.
    // k = 2: neighbours s0 (1.5), s2 (1.0).
    let m = knn(2, 50);
    assert_eq!(m.neighbours(&[2, 3]), vec![(0, 1.5), (2, 1.0)]);
    // item 1: s0 = 1.5; 2: s0 = 1.5; 3: s0 + s2 = 2.5; 4: s2 = 1; 5: s2 = 1; 6: 0.
    assert_eq!(m.scores(&[2, 3]), vec![0.0, 1.5, 1.5, 2.5, 1.0, 1.0, 0.0]);
    // k = 3 adds s1 (0.5): item 2: 1.5 + 0.5 = 2.0; 4: 1 + 0.5 = 1.5.
    let m3 = knn(3, 50);
    assert_eq!(m3.scores(&[2, 3]), vec![0.0, 1.5, 2.0, 2.5, 1.5, 1.0, 0.0]);
}

#[test]
fn only_the_window_counts_and_the_latest_items_weigh_most() {
    // Window 2: [6, 2, 3] is [2, 3]; s3 {5,6} is not a neighbour.
    assert_eq!(
        knn(4, 2).neighbours(&[6, 2, 3]),
        vec![(0, 1.5), (2, 1.0), (1, 0.5)]
    );
    // Window 3 on [3, 2, 3]: w = 1/3, 2/3, 1; item 3 counts at both positions.
    // s0 = 1/3 + 2/3 + 1 = 2; s2 = 1/3 + 1 = 4/3; s1 = 2/3.
    let n = knn(4, 3).neighbours(&[3, 2, 3]);
    let want = [(0usize, 2.0f64), (2, 4.0 / 3.0), (1, 2.0 / 3.0)];
    assert_eq!(n.len(), want.len());
    for ((s, x), (ws, wx)) in n.iter().zip(want) {
        assert_eq!(*s, ws);
        assert!((x - wx).abs() < 1e-12, "{x} vs {wx}");
    }
}

#[test]
fn ranks_break_ties_by_popularity_then_id() {
    let m = knn(2, 50);
    let s = m.scores(&[2, 3]);
    // Scores 1:1.5 2:1.5 3:2.5 4:1 5:1 6:0; popularity 2 > 1 and 5 > 4.
    // Order: 3, 2, 1, 5, 4, 6.
    let order = [3u32, 2, 1, 5, 4, 6];
    for (i, &y) in order.iter().enumerate() {
        assert_eq!(m.rank_and_top(&s, y), (i + 1, 3), "item {y}");
    }
    // [6, 6]: w = 1/2 + 1 for s3 {5, 6}, its only neighbour.
    assert_eq!(m.neighbours(&[6, 6]), vec![(3, 1.5)]);
    assert_eq!(m.scores(&[6, 6]), vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 1.5]);
    // An item no session holds: no neighbours, every score 0, so popularity ranks: 2, 5, then
    // 1, 3, 4 (count 1, by id), then 6.
    let mut log = log();
    log.push(vec![]);
    let lonely = SessionKnn::new(log, popularity(), KnnParams { k: 2, window: 50 });
    assert!(lonely.neighbours(&[0]).is_empty());
    let none = lonely.scores(&[0]);
    assert_eq!(none, vec![0.0; 7]);
    let by_pop = [2u32, 5, 1, 3, 4, 6];
    for (i, &y) in by_pop.iter().enumerate() {
        assert_eq!(m.rank_and_top(&none, y), (i + 1, 2), "item {y}");
    }
}

/// The sessions of a pairs file: rows grouped by (user, session id), each session the distinct
/// items of its prefixes and labels in order of first appearance; a session id that two users
/// share is two sessions; an id outside the vocabulary is an error naming file, row and column.
#[test]
fn a_pairs_file_s_sessions_are_its_item_sets_per_user_and_session() {
    use recmaml::data::pipeline::Pair;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("pairs_train.parquet");
    let pair = |pair_id, user, session, prefix: &[u32], label| Pair {
        pair_id,
        user,
        session,
        prefix: prefix.to_vec(),
        label,
        label_ts: 0,
        full_prefix_len: prefix.len() as u32,
    };
    let pairs = [
        pair(0, 0, 0, &[1], 2),
        pair(1, 0, 0, &[1, 2], 1),
        pair(2, 1, 1, &[4], 5),
        pair(3, 0, 0, &[1, 2, 1], 3),
        pair(4, 1, 0, &[6], 4),
    ];
    let users = ["u1".to_string(), "u2".to_string()];
    let sessions = ["s".to_string(), "t".to_string()];
    recmaml::data::write_pairs(&path, &pairs, &users, &sessions).unwrap();
    let got = recmaml::data::read_pair_sessions(&path, 7).unwrap();
    // (u1, s): 1, 2, 3; (u2, t): 4, 5; (u2, s): 6, 4.
    assert_eq!(got, vec![vec![1, 2, 3], vec![4, 5], vec![6, 4]]);
    let err = recmaml::data::read_pair_sessions(&path, 6)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pairs_train.parquet") && err.contains("row 4") && err.contains("prefix"),
        "{err}"
    );
}
