//! Writing episode and pair files: Snappy-compressed Parquet in record batches of [`BATCH`] rows,
//! the episodes in the schema and the pairs with upstream's columns.

use super::rows::{EpisodeRows, Side};
use crate::data::pipeline::Pair;
use crate::data::Episode;
use crate::error::{Error, Result};
use arrow::array::{
    ArrayRef, Int64Array, Int64Builder, ListArray, ListBuilder, RecordBatch, StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::Field;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// Rows per written record batch.
const BATCH: usize = 8192;

/// Rows per row group of an episode file: small enough that a large file's long prefix columns
/// are encoded (and read) in several pieces at once.
const EPISODE_GROUP_ROWS: usize = 8 * BATCH;

/// Row groups whose columns [`write_columns`] encodes at once (their encoded bytes wait in memory
/// until the file takes them in order).
const GROUPS_AT_ONCE: usize = 4;

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
    if n == 0 {
        // One empty batch, so that an empty file still has the schema.
        return write_batches(path, std::iter::once(episode_batch(path, rows, 0..0)));
    }
    // The first batch's schema, as `ArrowWriter` takes it: a field is nullable if it holds a null.
    let schema = episode_batch(path, rows, 0..n.min(BATCH))?.schema();
    let props = WriterProperties::into_builder(writer_properties())
        .set_max_row_group_row_count(Some(EPISODE_GROUP_ROWS))
        .build();
    write_columns(path, props, schema, n, |f, r| {
        Ok(episode_column(rows, f, r))
    })
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
    let schema = one(&pairs[..pairs.len().min(BATCH)])?.schema();
    write_columns(path, writer_properties(), schema, pairs.len(), |f, r| {
        Ok(pair_column(&pairs[r], users, sessions, f))
    })
}

/// Writes `n` rows (at least one) of a file whose field `f` holds `column(f, range)` for rows
/// `range`, with `props`: the bytes [`ArrowWriter`] gives for the same batches of [`BATCH`] rows
/// (row groups and pages cut at the same rows), but the columns of up to [`GROUPS_AT_ONCE`] row
/// groups are encoded at once, in parallel.
fn write_columns(
    path: &Path,
    props: WriterProperties,
    schema: SchemaRef,
    n: usize,
    column: impl Fn(usize, Range<usize>) -> Result<ArrayRef> + Sync,
) -> Result<()> {
    let werr = |e: parquet::errors::ParquetError| Error::Other(format!("{}: {e}", path.display()));
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX);
    debug_assert!(props.max_row_group_bytes().is_none() && group_rows.is_multiple_of(BATCH));
    let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(werr)?;
    let (mut file, factory) = writer.into_serialized_writer().map_err(werr)?;
    let fields = schema.fields().len();
    let groups: Vec<Range<usize>> = (0..n)
        .step_by(group_rows)
        .map(|first| first..(first + group_rows).min(n))
        .collect();
    for (w, window) in groups.chunks(GROUPS_AT_ONCE).enumerate() {
        let mut units = Vec::with_capacity(window.len() * fields);
        for (i, rows) in window.iter().enumerate() {
            let writers = (factory.create_column_writers(w * GROUPS_AT_ONCE + i)).map_err(werr)?;
            // Every field here is one leaf column (no structs), so writers and fields pair up.
            assert_eq!(writers.len(), fields, "one leaf per field");
            units.extend(writers.into_iter().enumerate().map(|(f, w)| (rows, f, w)));
        }
        let chunks: Vec<Result<ArrowColumnChunk>> = units
            .into_par_iter()
            .map(|(rows, f, mut w)| {
                for a in rows.clone().step_by(BATCH) {
                    let array = column(f, a..(a + BATCH).min(rows.end))?;
                    for leaf in compute_leaves(schema.field(f), &array).map_err(werr)? {
                        w.write(&leaf).map_err(werr)?;
                    }
                }
                w.close().map_err(werr)
            })
            .collect();
        let mut chunks = chunks.into_iter();
        for _ in window {
            let mut group = file.next_row_group().map_err(werr)?;
            for chunk in chunks.by_ref().take(fields) {
                chunk?.append_to_row_group(&mut group).map_err(werr)?;
            }
            group.close().map_err(werr)?;
        }
    }
    file.close().map_err(werr)?;
    Ok(())
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

/// The `list<int64>` array of `rows` of ids, made from its buffers: the array `ListBuilder` over
/// an `Int64Builder` gives for the same rows (no nulls), without a call per value.
fn id_list<'a>(rows: impl Iterator<Item = &'a [u32]>) -> ListArray {
    let mut offsets = vec![0i32];
    let mut values: Vec<i64> = Vec::new();
    for r in rows {
        values.extend(r.iter().map(|&x| i64::from(x)));
        offsets.push(offset(values.len()));
    }
    list(Arc::new(Int64Array::from(values)), offsets)
}

/// The `list<list<int64>>` array of `rows` of id lists, as [`id_list`] makes its rows.
fn id_list_lists<'a, R: Iterator<Item = &'a [u32]>>(rows: impl Iterator<Item = R>) -> ListArray {
    let mut offsets = vec![0i32];
    let mut inner = vec![0i32];
    let mut values: Vec<i64> = Vec::new();
    for row in rows {
        for r in row {
            values.extend(r.iter().map(|&x| i64::from(x)));
            inner.push(offset(values.len()));
        }
        offsets.push(offset(inner.len() - 1));
    }
    let inner = list(Arc::new(Int64Array::from(values)), inner);
    list(Arc::new(inner), offsets)
}

/// A list offset; more than `i32::MAX` values in one batch is a bug (`ListBuilder` panics too).
fn offset(n: usize) -> i32 {
    i32::try_from(n).expect("list offsets fit in i32")
}

/// A list array without nulls whose items (nullable, named as `ListBuilder` names them) are
/// `values`.
fn list(values: ArrayRef, offsets: Vec<i32>) -> ListArray {
    let item = Field::new_list_field(values.data_type().clone(), true);
    ListArray::new(
        Arc::new(item),
        OffsetBuffer::new(offsets.into()),
        values,
        None,
    )
}

fn batch(path: &Path, cols: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    RecordBatch::try_from_iter(cols).map_err(|e| Error::Other(format!("{}: {e}", path.display())))
}

/// The fields of the episode schema, in order.
const EPISODE_FIELDS: [&str; 8] = [
    "episode_id",
    "user_id",
    "support_prefixes",
    "support_labels",
    "query_prefixes",
    "query_labels",
    "support_label_ts",
    "query_label_ts",
];

/// Field `f` of [`EPISODE_FIELDS`] for rows `range` of `rows`.
fn episode_column<E: EpisodeRows + ?Sized>(rows: &E, f: usize, range: Range<usize>) -> ArrayRef {
    let side = match f {
        2 | 3 | 6 => Side::Support,
        _ => Side::Query,
    };
    let builder = || ListBuilder::new(Int64Builder::new());
    match f {
        0 => Arc::new(Int64Array::from_iter_values(
            range.map(|i| rows.episode_id(i)),
        )),
        1 => Arc::new(StringArray::from_iter_values(
            range.map(|i| rows.user_id(i)),
        )),
        2 | 4 => Arc::new(id_list_lists(range.map(|i| rows.prefixes(i, side)))),
        3 | 5 => {
            let mut b = builder();
            for i in range {
                b.values()
                    .extend(rows.labels(i, side).map(|l| Some(i64::from(l))));
                b.append(true);
            }
            Arc::new(b.finish())
        }
        6 | 7 => {
            let mut b = builder();
            for i in range {
                match rows.label_ts(i, side) {
                    Some(ts) => {
                        b.values().extend(ts.map(Some));
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
        _ => unreachable!("the episode schema has {} fields", EPISODE_FIELDS.len()),
    }
}

/// Rows `range` of `rows` as one record batch of the schema.
pub(super) fn episode_batch<E: EpisodeRows + ?Sized>(
    path: &Path,
    rows: &E,
    range: Range<usize>,
) -> Result<RecordBatch> {
    let cols = (EPISODE_FIELDS.iter().enumerate())
        .map(|(f, &name)| (name, episode_column(rows, f, range.clone())))
        .collect();
    batch(path, cols)
}

/// The fields of the pair files, in order.
const PAIR_FIELDS: [&str; 7] = [
    "pair_id",
    "user_id",
    "session_id",
    "prefix",
    "label",
    "label_ts_epoch",
    "prefix_len",
];

/// Field `f` of [`PAIR_FIELDS`] for the pairs `c`.
fn pair_column(c: &[Pair], users: &[String], sessions: &[String], f: usize) -> ArrayRef {
    let ints = |f: &dyn Fn(&Pair) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(c.iter().map(f)))
    };
    match f {
        0 => ints(&|p| p.pair_id),
        1 => Arc::new(StringArray::from_iter_values(
            c.iter().map(|p| &users[p.user as usize]),
        )),
        2 => Arc::new(StringArray::from_iter_values(
            c.iter().map(|p| &sessions[p.session as usize]),
        )),
        3 => Arc::new(id_list(c.iter().map(|p| &p.prefix[..]))),
        4 => ints(&|p| i64::from(p.label)),
        5 => ints(&|p| p.label_ts),
        6 => ints(&|p| p.prefix.len() as i64),
        _ => unreachable!("the pair files have {} fields", PAIR_FIELDS.len()),
    }
}

/// Pairs `c` as one record batch of upstream's pair columns.
fn pair_batch(
    path: &Path,
    c: &[Pair],
    users: &[String],
    sessions: &[String],
) -> Result<RecordBatch> {
    let cols = (PAIR_FIELDS.iter().enumerate())
        .map(|(f, &name)| (name, pair_column(c, users, sessions, f)))
        .collect();
    batch(path, cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::episodes::read_episodes;

    /// `n` episodes with prefixes of varied lengths, with label times or without.
    fn episodes(n: usize, times: bool) -> Vec<Episode> {
        let prefixes = |i: usize, m: usize| -> Vec<Vec<u32>> {
            (0..m)
                .map(|j| {
                    (0..(i * 7 + j) % 13 + 1)
                        .map(|x| (x + i + j) as u32 % 97 + 1)
                        .collect()
                })
                .collect()
        };
        (0..n)
            .map(|i| Episode {
                episode_id: i as i64,
                user_id: format!("u{}", i / 3),
                support_prefixes: prefixes(i, 2),
                support_labels: vec![i as u32 % 89 + 1, 2],
                query_prefixes: prefixes(i + 1, 3),
                query_labels: vec![3, i as u32 % 83 + 1, 4],
                support_label_ts: times.then(|| vec![i as i64, i as i64 + 1]),
                query_label_ts: times.then(|| vec![i as i64 + 2, i as i64 + 3, i as i64 + 4]),
            })
            .collect()
    }

    #[test]
    fn columns_written_in_parallel_give_the_arrow_writers_bytes() {
        let dir = tempfile::tempdir().unwrap();
        // 9 batches and a few rows: five row groups, more than are encoded at once.
        for (n, times) in [(9 * BATCH + 17, true), (BATCH - 1, false), (1, true)] {
            let eps = episodes(n, times);
            // Row groups of two batches, so that several are written.
            let props = || {
                WriterProperties::into_builder(writer_properties())
                    .set_max_row_group_row_count(Some(2 * BATCH))
                    .build()
            };
            let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
            let batches = (0..n)
                .step_by(BATCH)
                .map(|s| episode_batch(&a, &eps[..], s..(s + BATCH).min(n)).unwrap());
            let schema = episode_batch(&a, &eps[..], 0..n.min(BATCH))
                .unwrap()
                .schema();
            let mut w =
                ArrowWriter::try_new(File::create(&a).unwrap(), schema.clone(), Some(props()))
                    .unwrap();
            for batch in batches {
                w.write(&batch).unwrap();
            }
            w.close().unwrap();
            write_columns(&b, props(), schema, n, |f, r| {
                Ok(episode_column(&eps[..], f, r))
            })
            .unwrap();
            let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
            assert!(a == b, "{n} rows: {} and {} bytes differ", a.len(), b.len());
            // And the episodes read back are the ones written.
            let path = dir.path().join("c.parquet");
            write_episodes(&path, &eps).unwrap();
            assert_eq!(read_episodes(&path, None).unwrap().episodes, eps);
        }
    }
}
