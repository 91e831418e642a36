//! The fast path against the episodes written: taken for the writer's files (in one part and
//! in parts of a page or two), refused for every kind of invalid row.

use super::*;
use crate::data::episodes::write_episodes;

/// `n` episodes with K 3, Q 4, prefixes of 1 to 40 ids below 500, times on every third row.
fn episodes(n: usize) -> Vec<Episode> {
    let mut x = 12345u64;
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    (0..n)
        .map(|i| {
            let mut side = |count| -> (Vec<Vec<u32>>, Vec<u32>) {
                let prefixes = (0..count)
                    .map(|_| (0..1 + next(40)).map(|_| next(500) as u32).collect())
                    .collect();
                (prefixes, (0..count).map(|_| next(500) as u32).collect())
            };
            let ((sp, sl), (qp, ql)) = (side(3), side(4));
            let ts =
                |count: i64| (i % 3 == 0).then(|| (0..count).map(|t| t * 60 + i as i64).collect());
            Episode {
                episode_id: 1000 + i as i64,
                user_id: format!("u{}", i % 17),
                support_prefixes: sp,
                support_labels: sl,
                query_prefixes: qp,
                query_labels: ql,
                support_label_ts: ts(3),
                query_label_ts: ts(4),
            }
        })
        .collect()
}

fn written(dir: &tempfile::TempDir, name: &str, eps: &[Episode]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    write_episodes(&path, eps).unwrap();
    path
}

#[test]
fn reads_the_writers_files_whole_and_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let eps = episodes(10_000);
    let path = written(&dir, "e.parquet", &eps);
    let whole = read(&path, Bound(Some(500)), None, PART_BYTES).expect("fast path taken");
    assert_eq!(whole, (eps.clone(), (3, 4)));
    // Parts of a page or two (the writer's pages hold about 1 MB).
    let meta = ArrowReaderMetadata::load(
        &Bytes::from(std::fs::read(&path).unwrap()),
        ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional),
    )
    .unwrap();
    let qp = meta
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts()[0] == "query_prefixes");
    let parts = parts(meta.metadata(), qp.unwrap(), 1 << 20);
    assert!(parts.len() > 3);
    // The writer's pages are decoded without the column reader.
    let bytes = Arc::new(Bytes::from(std::fs::read(&path).unwrap()));
    for p in &parts {
        assert!(page_levels(&bytes, meta.metadata(), qp.unwrap(), p, |_, _| Some(())).is_some());
    }
    let split = read(&path, Bound(Some(500)), Some((3, 4)), 1 << 20).expect("fast path taken");
    assert_eq!(split, (eps, (3, 4)));
}

#[test]
fn gives_up_on_every_invalid_row() {
    let dir = tempfile::tempdir().unwrap();
    let eps = episodes(50);
    let path = written(&dir, "ok.parquet", &eps);
    assert!(read_valid(&path, Bound(None), None).is_some());
    // K or Q unlike the file name's, an empty prefix, K differing between rows, a missing
    // time, an id at the bound.
    assert!(read_valid(&path, Bound(Some(500)), Some((3, 5))).is_none());
    let mut bad = eps.clone();
    bad[40].query_prefixes[2].clear();
    assert!(read_valid(&written(&dir, "empty.parquet", &bad), Bound(None), None).is_none());
    let mut bad = eps.clone();
    bad[41].support_prefixes.pop();
    bad[41].support_labels.pop();
    assert!(read_valid(&written(&dir, "k.parquet", &bad), Bound(None), None).is_none());
    let mut bad = eps.clone();
    bad[30].support_label_ts.as_mut().unwrap().pop();
    assert!(read_valid(&written(&dir, "ts.parquet", &bad), Bound(None), None).is_none());
    let mut bad = eps;
    bad[49].query_labels[3] = 500;
    assert!(read_valid(&written(&dir, "id.parquet", &bad), Bound(Some(500)), None).is_none());
}

#[test]
fn pages_it_cannot_decode_go_through_the_column_reader() {
    // Version-2 data pages: `page_levels` refuses them, `levels` reads them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.parquet");
    let eps = episodes(3000);
    let batch = super::super::write::episode_batch(&path, &eps[..], 0..eps.len()).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_writer_version(parquet::file::properties::WriterVersion::PARQUET_2_0)
        .build();
    let file = std::fs::File::create(&path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let bytes = Arc::new(Bytes::from(std::fs::read(&path).unwrap()));
    let meta = ArrowReaderMetadata::load(
        bytes.as_ref(),
        ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional),
    )
    .unwrap();
    let pq = meta.metadata().as_ref();
    let c = meta
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts()[0] == "query_prefixes")
        .unwrap();
    let whole = Part {
        rg: 0,
        skip: 0,
        take: eps.len(),
    };
    assert!(page_levels(&bytes, pq, c, &whole, |_, _| Some(())).is_none());
    assert!(levels(&bytes, pq, c, &whole, |_, _, _| Some(())).is_some());
    let read = read(&path, Bound(Some(500)), None, 1 << 20).expect("fast path taken");
    assert_eq!(read, (eps, (3, 4)));
}
