//! The episode reader: the PyTorch fixtures (seed schema), our own schema, int32 lists, the
//! upstream schema (pair ids), vocabulary-sized V, and the validation errors.

mod common;

use arrow::array::{
    ArrayRef, Int32Builder, Int64Array, Int64Builder, ListBuilder, RecordBatch, StringArray,
};
use recmaml::data::pipeline::Pair;
use recmaml::data::{read_episodes, write_episodes, write_pairs, Episode};
use std::path::Path;
use std::sync::Arc;

fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn ep(id: i64, user: &str, sp: &[&[u32]], sl: &[u32], qp: &[&[u32]], ql: &[u32]) -> Episode {
    Episode {
        episode_id: id,
        user_id: user.into(),
        support_prefixes: sp.iter().map(|p| p.to_vec()).collect(),
        support_labels: sl.to_vec(),
        query_prefixes: qp.iter().map(|p| p.to_vec()).collect(),
        query_labels: ql.to_vec(),
        support_label_ts: None,
        query_label_ts: None,
    }
}

#[test]
fn fixtures_read_exactly_as_their_json() {
    let root = common::fixtures_dir().join("torch");
    let mut cases = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("episodes.parquet").is_file() {
            continue;
        }
        let json: Vec<Episode> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("episodes.json")).unwrap())
                .unwrap();
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let v = expected["n_items"].as_u64().unwrap() as usize;
        let set = read_episodes(&dir.join("episodes.parquet"), Some(v)).unwrap();
        assert_eq!(set.episodes, json, "{}", dir.display());
        assert_eq!(set.k, expected["K"].as_u64().unwrap() as usize);
        assert_eq!(set.q, expected["Q"].as_u64().unwrap() as usize);
        assert_eq!(set.n_items, v);
        // Without V: the largest id + 1, which cannot exceed the configured V.
        let max = json
            .iter()
            .flat_map(|e| {
                e.support_prefixes
                    .iter()
                    .chain(&e.query_prefixes)
                    .flatten()
                    .chain(&e.support_labels)
                    .chain(&e.query_labels)
            })
            .max()
            .copied()
            .unwrap() as usize;
        let set = read_episodes(&dir.join("episodes.parquet"), None).unwrap();
        assert_eq!(set.n_items, max + 1);
        cases += 1;
    }
    assert_eq!(cases, 4, "expected the four PyTorch fixture cases");
}

#[test]
fn own_schema_round_trips_with_timestamps_and_vocab_gives_v() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("episodes")).unwrap();
    std::fs::create_dir_all(dir.path().join("vocab")).unwrap();
    let path = dir.path().join("episodes/episodes_train_K2_Q1.parquet");
    let mut a = ep(
        7,
        "alice",
        &[&[1, 2], &[3]],
        &[3, 4],
        &[&[1, 2, 3, 4]],
        &[5],
    );
    a.support_label_ts = Some(vec![10, 20]);
    a.query_label_ts = Some(vec![30]);
    let b = ep(8, "bob", &[&[6], &[6, 1]], &[1, 2], &[&[2]], &[6]);
    write_episodes(&path, &[a.clone(), b.clone()]).unwrap();
    let set = read_episodes(&path, None).unwrap();
    assert_eq!(set.episodes, vec![a.clone(), b.clone()]);
    assert_eq!((set.k, set.q, set.n_items), (2, 1, 7));

    // A vocabulary of 9 items beside the episodes folder makes V = 10.
    let vocab: serde_json::Map<String, serde_json::Value> =
        (1..=9).map(|i| (format!("item{i}"), i.into())).collect();
    std::fs::write(
        dir.path().join("vocab/item2id.json"),
        serde_json::to_string(&vocab).unwrap(),
    )
    .unwrap();
    assert_eq!(read_episodes(&path, None).unwrap().n_items, 10);
    // An explicit V wins, and ids must fit it.
    let e = read_episodes(&path, Some(6)).unwrap_err().to_string();
    assert!(
        e.contains("row 1")
            && e.contains("support_prefixes")
            && e.contains("item id 6 is outside [0, 6)"),
        "{e}"
    );
}

#[test]
fn int32_lists_without_ids_read_with_row_index_and_empty_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.parquet");
    let mut sp = ListBuilder::new(ListBuilder::new(Int32Builder::new()));
    let mut qp = ListBuilder::new(ListBuilder::new(Int32Builder::new()));
    let mut sl = ListBuilder::new(Int32Builder::new());
    let mut ql = ListBuilder::new(Int32Builder::new());
    for r in 0..3i32 {
        sp.values().values().append_slice(&[1 + r, 2]);
        sp.values().append(true);
        sp.append(true);
        qp.values().values().append_slice(&[3]);
        qp.values().append(true);
        qp.values().values().append_slice(&[3, 4 + r]);
        qp.values().append(true);
        qp.append(true);
        sl.values().append_value(5);
        sl.append(true);
        ql.values().append_slice(&[6, 7]);
        ql.append(true);
    }
    write_parquet(
        &path,
        vec![
            ("support_prefixes", Arc::new(sp.finish()) as ArrayRef),
            ("support_labels", Arc::new(sl.finish())),
            ("query_prefixes", Arc::new(qp.finish())),
            ("query_labels", Arc::new(ql.finish())),
        ],
    );
    let set = read_episodes(&path, None).unwrap();
    let want: Vec<Episode> = (0..3u32)
        .map(|r| {
            ep(
                r as i64,
                "",
                &[&[1 + r, 2]],
                &[5],
                &[&[3], &[3, 4 + r]],
                &[6, 7],
            )
        })
        .collect();
    assert_eq!(set.episodes, want);
    assert_eq!((set.k, set.q, set.n_items), (1, 2, 8));
}

#[test]
fn upstream_schema_resolves_pair_ids_against_the_pairs_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("episodes")).unwrap();
    let users = vec!["u".to_string()];
    let sessions = vec!["s".to_string()];
    let pairs: Vec<Pair> = (0..4u32)
        .map(|i| Pair {
            pair_id: 100 + i as i64,
            user: 0,
            session: 0,
            prefix: (1..=i + 1).collect(),
            label: 10 + i,
            label_ts: 1000 + i as i64,
            full_prefix_len: i + 1,
        })
        .collect();
    write_pairs(
        &dir.path().join("pairs_val.parquet"),
        &pairs,
        &users,
        &sessions,
    )
    .unwrap();
    let path = dir.path().join("episodes/episodes_val_K2_Q2.parquet");
    let id_lists = |rows: &[&[i64]]| -> ArrayRef {
        let mut b = ListBuilder::new(Int64Builder::new());
        for r in rows {
            b.values().append_slice(r);
            b.append(true);
        }
        Arc::new(b.finish())
    };
    write_parquet(
        &path,
        vec![
            (
                "episode_id",
                Arc::new(Int64Array::from(vec![5])) as ArrayRef,
            ),
            ("user_id", Arc::new(StringArray::from(vec!["u"]))),
            ("K", Arc::new(Int64Array::from(vec![2]))),
            ("Q", Arc::new(Int64Array::from(vec![2]))),
            ("support_pair_ids", id_lists(&[&[101, 100]])),
            ("query_pair_ids", id_lists(&[&[102, 103]])),
        ],
    );
    let set = read_episodes(&path, None).unwrap();
    let mut want = ep(
        5,
        "u",
        &[&[1, 2], &[1]],
        &[11, 10],
        &[&[1, 2, 3], &[1, 2, 3, 4]],
        &[12, 13],
    );
    want.support_label_ts = Some(vec![1001, 1000]);
    want.query_label_ts = Some(vec![1002, 1003]);
    assert_eq!(set.episodes, vec![want]);
    assert_eq!((set.k, set.q, set.n_items), (2, 2, 14));

    // A pair id that the pairs file lacks names row and column.
    write_parquet(
        &path,
        vec![
            ("support_pair_ids", id_lists(&[&[100, 101], &[100, 999]])),
            ("query_pair_ids", id_lists(&[&[102, 103], &[102, 103]])),
        ],
    );
    let e = read_episodes(&path, None).unwrap_err().to_string();
    assert!(
        e.contains("row 1") && e.contains("support_pair_ids") && e.contains("999"),
        "{e}"
    );
}

/// Writes `episodes` and returns the reader's error message.
fn read_error(episodes: &[Episode], name: &str, n_items: Option<usize>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    write_episodes(&path, episodes).unwrap();
    let e = read_episodes(&path, n_items).unwrap_err().to_string();
    assert!(e.contains(name), "error does not name the file: {e}");
    e
}

#[test]
fn validation_errors_name_file_row_and_column() {
    let good = ep(0, "a", &[&[1], &[2]], &[2, 3], &[&[3]], &[4]);
    let k3 = ep(1, "b", &[&[1], &[2], &[3]], &[2, 3, 4], &[&[3]], &[4]);
    let e = read_error(&[good.clone(), k3], "k.parquet", None);
    assert!(
        e.contains("row 1")
            && e.contains("`support_prefixes`")
            && e.contains("K = 3, but earlier rows have K = 2"),
        "{e}"
    );

    let q2 = ep(1, "b", &[&[1], &[2]], &[2, 3], &[&[3], &[4]], &[4, 5]);
    let e = read_error(&[good.clone(), q2], "q.parquet", None);
    assert!(
        e.contains("row 1") && e.contains("`query_prefixes`") && e.contains("Q = 2"),
        "{e}"
    );

    let e = read_error(
        std::slice::from_ref(&good),
        "episodes_train_K3_Q1.parquet",
        None,
    );
    assert!(
        e.contains("row 0") && e.contains("the file name says K = 3"),
        "{e}"
    );

    let empty = ep(0, "a", &[&[1], &[]], &[2, 3], &[&[3]], &[4]);
    let e = read_error(&[good.clone(), empty], "e.parquet", None);
    assert!(
        e.contains("row 1") && e.contains("prefix #1 is empty"),
        "{e}"
    );

    let labels = ep(0, "a", &[&[1], &[2]], &[2], &[&[3]], &[4]);
    let e = read_error(&[labels], "l.parquet", None);
    assert!(
        e.contains("row 0")
            && e.contains("`support_labels`")
            && e.contains("1 values for 2 prefixes"),
        "{e}"
    );

    let mut ts = good.clone();
    ts.query_label_ts = Some(vec![1, 2]);
    let e = read_error(&[ts], "t.parquet", None);
    assert!(e.contains("`query_label_ts`"), "{e}");

    let e = read_error(&[good.clone(), good.clone()], "v.parquet", Some(4));
    assert!(
        e.contains("row 0")
            && e.contains("`query_labels`")
            && e.contains("item id 4 is outside [0, 4)"),
        "{e}"
    );

    let none = ep(0, "a", &[], &[], &[&[3]], &[4]);
    let e = read_error(&[none], "n.parquet", None);
    assert!(e.contains("no pairs"), "{e}");

    // Not an episode file at all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.parquet");
    write_parquet(
        &path,
        vec![("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef)],
    );
    let e = read_episodes(&path, None).unwrap_err().to_string();
    assert!(e.contains("not an episode file"), "{e}");
    std::fs::write(&path, b"not parquet").unwrap();
    let e = read_episodes(&path, None).unwrap_err().to_string();
    assert!(e.contains("other.parquet") && e.contains("Parquet"), "{e}");
}
