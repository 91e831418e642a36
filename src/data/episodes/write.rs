//! Writing episode and pair files: Snappy-compressed Parquet in record batches of [`BATCH`] rows,
//! the episodes in the schema and the pairs with upstream's columns.

use super::rows::{EpisodeRows, Side};
use crate::data::pipeline::Pair;
use crate::data::Episode;
use crate::error::{Error, Result};
use arrow::array::{ArrayRef, Int64Array, Int64Builder, ListBuilder, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Rows per written record batch.
const BATCH: usize = 8192;

/// Writes episodes in the schema (`episode_id int64, user_id string, support_prefixes
/// list<list<int64>>, support_labels list<int64>, query_prefixes list<list<int64>>,
/// query_labels list<int64>, support_label_ts list<int64>, query_label_ts list<int64>`),
/// Snappy-compressed. Rows without timestamps get nulls there.
pub fn write_episodes(path: &Path, episodes: &[Episode]) -> Result<()> {
    write_episode_rows(path, episodes)
}

/// [`write_episodes`] for any [`EpisodeRows`].
pub fn write_episode_rows<E: EpisodeRows + ?Sized>(path: &Path, rows: &E) -> Result<()> {
    let n = rows.len();
    // At least one (possibly empty) batch, so that an empty file still has the schema.
    let ranges = (0..n.max(1)).step_by(BATCH).map(|a| a..(a + BATCH).min(n));
    write_batches(path, ranges.map(|r| episode_batch(path, rows, r)))
}

/// Writes pairs with upstream's columns: `pair_id int64, user_id string, session_id string,
/// prefix list<int64>, label int64, label_ts_epoch int64 (seconds), prefix_len int64` (the
/// length of the stored, cut prefix).
pub fn write_pairs(
    path: &Path,
    pairs: &[Pair],
    users: &[String],
    sessions: &[String],
) -> Result<()> {
    let one = |c: &[Pair]| pair_batch(path, c, users, sessions);
    if pairs.is_empty() {
        return write_batches(path, std::iter::once(one(pairs)));
    }
    write_batches(path, pairs.chunks(BATCH).map(one))
}

fn write_batches(path: &Path, batches: impl Iterator<Item = Result<RecordBatch>>) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let props = writer_properties();
    let werr = |e: parquet::errors::ParquetError| Error::Other(format!("{}: {e}", path.display()));
    let mut writer: Option<ArrowWriter<File>> = None;
    let mut file = Some(file);
    for batch in batches {
        let batch = batch?;
        if writer.is_none() {
            let f = file.take().expect("file used once");
            writer =
                Some(ArrowWriter::try_new(f, batch.schema(), Some(props.clone())).map_err(werr)?);
        }
        writer
            .as_mut()
            .expect("writer")
            .write(&batch)
            .map_err(werr)?;
    }
    match writer {
        Some(w) => {
            w.close().map_err(werr)?;
        }
        None => {
            return Err(Error::Other(format!(
                "{}: nothing to write",
                path.display()
            )))
        }
    }
    Ok(())
}

/// Snappy; dictionaries only for the string columns.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // Dictionary-encoding the long id lists costs more time than it saves space; the
        // repetitive string columns keep it.
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("user_id"), true)
        .set_column_dictionary_enabled(ColumnPath::from("session_id"), true)
        .build()
}

fn i64_list<'a>(rows: impl Iterator<Item = &'a [u32]>) -> ArrayRef {
    let mut b = ListBuilder::new(Int64Builder::new());
    for v in rows {
        for &x in v {
            b.values().append_value(i64::from(x));
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn batch(path: &Path, cols: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    RecordBatch::try_from_iter(cols).map_err(|e| Error::Other(format!("{}: {e}", path.display())))
}

/// The three list columns of one side of the episodes, as they are built.
struct SideColumns {
    prefixes: ListBuilder<ListBuilder<Int64Builder>>,
    labels: ListBuilder<Int64Builder>,
    times: ListBuilder<Int64Builder>,
}

impl SideColumns {
    fn new() -> Self {
        let list = || ListBuilder::new(Int64Builder::new());
        SideColumns {
            prefixes: ListBuilder::new(list()),
            labels: list(),
            times: list(),
        }
    }

    /// Appends `side` of row `i`: its prefixes, its labels, and its label times or a null.
    fn push<E: EpisodeRows + ?Sized>(&mut self, rows: &E, i: usize, side: Side) {
        for p in rows.prefixes(i, side) {
            let pb = self.prefixes.values();
            for &x in p {
                pb.values().append_value(i64::from(x));
            }
            pb.append(true);
        }
        self.prefixes.append(true);
        for l in rows.labels(i, side) {
            self.labels.values().append_value(i64::from(l));
        }
        self.labels.append(true);
        match rows.label_ts(i, side) {
            Some(ts) => {
                for t in ts {
                    self.times.values().append_value(t);
                }
                self.times.append(true);
            }
            None => self.times.append(false),
        }
    }
}

/// Rows `range` of `rows` as one record batch of the schema.
pub(super) fn episode_batch<E: EpisodeRows + ?Sized>(
    path: &Path,
    rows: &E,
    range: std::ops::Range<usize>,
) -> Result<RecordBatch> {
    let (mut s, mut q) = (SideColumns::new(), SideColumns::new());
    for i in range.clone() {
        s.push(rows, i, Side::Support);
        q.push(rows, i, Side::Query);
    }
    let ids = range.clone().map(|i| rows.episode_id(i));
    let users = range.map(|i| rows.user_id(i));
    batch(
        path,
        vec![
            ("episode_id", Arc::new(Int64Array::from_iter_values(ids))),
            ("user_id", Arc::new(StringArray::from_iter_values(users))),
            ("support_prefixes", Arc::new(s.prefixes.finish())),
            ("support_labels", Arc::new(s.labels.finish())),
            ("query_prefixes", Arc::new(q.prefixes.finish())),
            ("query_labels", Arc::new(q.labels.finish())),
            ("support_label_ts", Arc::new(s.times.finish())),
            ("query_label_ts", Arc::new(q.times.finish())),
        ],
    )
}

/// Pairs `c` as one record batch of upstream's pair columns.
fn pair_batch(
    path: &Path,
    c: &[Pair],
    users: &[String],
    sessions: &[String],
) -> Result<RecordBatch> {
    let ints = |f: &dyn Fn(&Pair) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(c.iter().map(f)))
    };
    let user = c.iter().map(|p| &users[p.user as usize]);
    let session = c.iter().map(|p| &sessions[p.session as usize]);
    batch(
        path,
        vec![
            ("pair_id", ints(&|p| p.pair_id)),
            ("user_id", Arc::new(StringArray::from_iter_values(user))),
            (
                "session_id",
                Arc::new(StringArray::from_iter_values(session)),
            ),
            ("prefix", i64_list(c.iter().map(|p| &p.prefix[..]))),
            ("label", ints(&|p| i64::from(p.label))),
            ("label_ts_epoch", ints(&|p| p.label_ts)),
            ("prefix_len", ints(&|p| p.prefix.len() as i64)),
        ],
    )
}
