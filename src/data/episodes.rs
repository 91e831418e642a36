//! Episode and pair files (Parquet): the writer of the schema and the one reader every
//! command uses, which accepts three schemas and validates every row.
//!
//! Rows in errors are 0-based row indices of the Parquet file.

use super::pipeline::Pair;
use super::{Episode, EpisodeSet};
use crate::error::{Error, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, Int64Builder, ListBuilder, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Int32Type, Int64Type, UInt32Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Rows per written record batch.
const BATCH: usize = 8192;

// ---------------------------------------------------------------------------------------------
// Writing

fn write_batches(path: &Path, batches: impl Iterator<Item = Result<RecordBatch>>) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // Dictionary-encoding the long id lists costs more time than it saves space; the
        // repetitive string columns keep it.
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("user_id"), true)
        .set_column_dictionary_enabled(ColumnPath::from("session_id"), true)
        .build();
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

/// Which half of an episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Support,
    Query,
}

/// Episodes as the writer sees them, row by row and side by side.
pub trait EpisodeRows: Sync {
    /// Number of episodes.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn episode_id(&self, i: usize) -> i64;
    fn user_id(&self, i: usize) -> &str;
    /// The prefixes of one side of row `i`.
    fn prefixes(&self, i: usize, side: Side) -> impl Iterator<Item = &[u32]>;
    /// Its labels.
    fn labels(&self, i: usize, side: Side) -> impl Iterator<Item = u32>;
    /// Its label times, if the row has them.
    fn label_ts(&self, i: usize, side: Side) -> Option<impl Iterator<Item = i64>>;
}

impl EpisodeRows for [Episode] {
    fn len(&self) -> usize {
        <[Episode]>::len(self)
    }
    fn episode_id(&self, i: usize) -> i64 {
        self[i].episode_id
    }
    fn user_id(&self, i: usize) -> &str {
        &self[i].user_id
    }
    fn prefixes(&self, i: usize, side: Side) -> impl Iterator<Item = &[u32]> {
        let e = &self[i];
        match side {
            Side::Support => &e.support_prefixes,
            Side::Query => &e.query_prefixes,
        }
        .iter()
        .map(Vec::as_slice)
    }
    fn labels(&self, i: usize, side: Side) -> impl Iterator<Item = u32> {
        let e = &self[i];
        match side {
            Side::Support => &e.support_labels,
            Side::Query => &e.query_labels,
        }
        .iter()
        .copied()
    }
    fn label_ts(&self, i: usize, side: Side) -> Option<impl Iterator<Item = i64>> {
        let e = &self[i];
        match side {
            Side::Support => e.support_label_ts.as_ref(),
            Side::Query => e.query_label_ts.as_ref(),
        }
        .map(|t| t.iter().copied())
    }
}

/// Episodes given as windows over a split's pairs (what `prepare` computes).
pub struct WindowRows<'a> {
    pub pairs: &'a [Pair],
    /// Index of each episode's first pair.
    pub starts: &'a [usize],
    pub k: usize,
    pub q: usize,
    pub users: &'a [String],
}

impl WindowRows<'_> {
    fn side(&self, i: usize, side: Side) -> &[Pair] {
        let s = self.starts[i];
        match side {
            Side::Support => &self.pairs[s..s + self.k],
            Side::Query => &self.pairs[s + self.k..s + self.k + self.q],
        }
    }
}

impl EpisodeRows for WindowRows<'_> {
    fn len(&self) -> usize {
        self.starts.len()
    }
    fn episode_id(&self, i: usize) -> i64 {
        i as i64
    }
    fn user_id(&self, i: usize) -> &str {
        &self.users[self.pairs[self.starts[i]].user as usize]
    }
    fn prefixes(&self, i: usize, side: Side) -> impl Iterator<Item = &[u32]> {
        self.side(i, side).iter().map(|p| p.prefix.as_slice())
    }
    fn labels(&self, i: usize, side: Side) -> impl Iterator<Item = u32> {
        self.side(i, side).iter().map(|p| p.label)
    }
    fn label_ts(&self, i: usize, side: Side) -> Option<impl Iterator<Item = i64>> {
        Some(self.side(i, side).iter().map(|p| p.label_ts))
    }
}

/// Rows `range` of `rows` as one record batch of the schema.
fn episode_batch<E: EpisodeRows + ?Sized>(
    path: &Path,
    rows: &E,
    range: std::ops::Range<usize>,
) -> Result<RecordBatch> {
    let list = || ListBuilder::new(Int64Builder::new());
    let mut prefixes = [ListBuilder::new(list()), ListBuilder::new(list())];
    let mut labels = [list(), list()];
    let mut times = [list(), list()];
    for i in range.clone() {
        for (n, side) in [Side::Support, Side::Query].into_iter().enumerate() {
            for p in rows.prefixes(i, side) {
                let pb = prefixes[n].values();
                for &x in p {
                    pb.values().append_value(i64::from(x));
                }
                pb.append(true);
            }
            prefixes[n].append(true);
            for l in rows.labels(i, side) {
                labels[n].values().append_value(i64::from(l));
            }
            labels[n].append(true);
            match rows.label_ts(i, side) {
                Some(ts) => {
                    for t in ts {
                        times[n].values().append_value(t);
                    }
                    times[n].append(true);
                }
                None => times[n].append(false),
            }
        }
    }
    let [mut sp, mut qp] = prefixes;
    let [mut sl, mut ql] = labels;
    let [mut st, mut qt] = times;
    batch(
        path,
        vec![
            (
                "episode_id",
                Arc::new(Int64Array::from_iter_values(
                    range.clone().map(|i| rows.episode_id(i)),
                )),
            ),
            (
                "user_id",
                Arc::new(StringArray::from_iter_values(
                    range.map(|i| rows.user_id(i)),
                )),
            ),
            ("support_prefixes", Arc::new(sp.finish())),
            ("support_labels", Arc::new(sl.finish())),
            ("query_prefixes", Arc::new(qp.finish())),
            ("query_labels", Arc::new(ql.finish())),
            ("support_label_ts", Arc::new(st.finish())),
            ("query_label_ts", Arc::new(qt.finish())),
        ],
    )
}

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
    let one = |c: &[Pair]| {
        batch(
            path,
            vec![
                (
                    "pair_id",
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|p| p.pair_id))),
                ),
                (
                    "user_id",
                    Arc::new(StringArray::from_iter_values(
                        c.iter().map(|p| &users[p.user as usize]),
                    )),
                ),
                (
                    "session_id",
                    Arc::new(StringArray::from_iter_values(
                        c.iter().map(|p| &sessions[p.session as usize]),
                    )),
                ),
                ("prefix", i64_list(c.iter().map(|p| &p.prefix[..]))),
                (
                    "label",
                    Arc::new(Int64Array::from_iter_values(
                        c.iter().map(|p| i64::from(p.label)),
                    )),
                ),
                (
                    "label_ts_epoch",
                    Arc::new(Int64Array::from_iter_values(c.iter().map(|p| p.label_ts))),
                ),
                (
                    "prefix_len",
                    Arc::new(Int64Array::from_iter_values(
                        c.iter().map(|p| p.prefix.len() as i64),
                    )),
                ),
            ],
        )
    };
    if pairs.is_empty() {
        return write_batches(path, std::iter::once(one(pairs)));
    }
    write_batches(path, pairs.chunks(BATCH).map(one))
}

// ---------------------------------------------------------------------------------------------
// Reading: column access

/// A column of integers of any common width, downcast once.
enum Ints<'a> {
    I32(&'a arrow::array::Int32Array),
    I64(&'a Int64Array),
    U32(&'a arrow::array::UInt32Array),
    U64(&'a arrow::array::UInt64Array),
}

impl Ints<'_> {
    fn try_new(a: &dyn Array) -> Option<Ints<'_>> {
        Some(match a.data_type() {
            DataType::Int32 => Ints::I32(a.as_primitive::<Int32Type>()),
            DataType::Int64 => Ints::I64(a.as_primitive::<Int64Type>()),
            DataType::UInt32 => Ints::U32(a.as_primitive::<UInt32Type>()),
            DataType::UInt64 => Ints::U64(a.as_primitive::<UInt64Type>()),
            _ => return None,
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Option<i64> {
        let (valid, v) = match self {
            Ints::I32(a) => (a.is_valid(i), i64::from(a.value(i))),
            Ints::I64(a) => (a.is_valid(i), a.value(i)),
            Ints::U32(a) => (a.is_valid(i), i64::from(a.value(i))),
            Ints::U64(a) => (a.is_valid(i), a.value(i).min(i64::MAX as u64) as i64),
        };
        valid.then_some(v)
    }
}

/// Where a value sits, for errors: file, 0-based row of the file, column.
struct Loc<'a> {
    file: &'a Path,
    row: usize,
    column: &'static str,
}

impl Loc<'_> {
    fn err(&self, msg: impl Into<String>) -> Error {
        Error::data(self.file, Some(self.row), Some(self.column), msg)
    }
}

/// Item ids are checked against this bound (`V`, or `u32::MAX` when V comes from the data).
#[derive(Clone, Copy)]
struct Bound(Option<usize>);

impl Bound {
    #[inline]
    fn check(self, x: i64, loc: &Loc) -> Result<u32> {
        let limit = self.0.map_or(i64::from(u32::MAX), |n| n as i64);
        if x < 0 || x >= limit {
            let range = self
                .0
                .map_or("[0, 2^32 - 1)".to_string(), |n| format!("[0, {n})"));
            return Err(loc.err(format!("item id {x} is outside {range}")));
        }
        Ok(x as u32)
    }
}

/// A `list<int>` column (offsets of either width) with its values downcast once.
struct IntList<'a> {
    name: &'static str,
    array: &'a dyn Array,
    offsets: Vec<usize>,
    values: Ints<'a>,
}

impl<'a> IntList<'a> {
    /// `a` as a list of integers; `None` if it is not one.
    fn new(name: &'static str, a: &'a dyn Array) -> Option<Self> {
        let (offsets, values) = list_parts(a)?;
        Some(IntList {
            name,
            array: a,
            offsets,
            values: Ints::try_new(values)?,
        })
    }

    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        self.array
            .is_valid(i)
            .then(|| self.offsets[i]..self.offsets[i + 1])
    }

    /// Row `i` (batch-local) as integers, or `None` if the row is null.
    fn get(&self, i: usize, loc: &Loc) -> Result<Option<Vec<i64>>> {
        self.range(i)
            .map(|r| {
                r.map(|j| self.values.get(j).ok_or_else(|| loc.err("null element")))
                    .collect()
            })
            .transpose()
    }

    /// Row `i` as item ids within `bound`.
    fn ids(&self, i: usize, loc: &Loc, bound: Bound) -> Result<Vec<u32>> {
        let r = self.range(i).ok_or_else(|| loc.err("null list"))?;
        r.map(|j| {
            let x = self.values.get(j).ok_or_else(|| loc.err("null element"))?;
            bound.check(x, loc)
        })
        .collect()
    }
}

/// The offsets and child values of a list or large-list array; `None` if `a` is neither.
fn list_parts(a: &dyn Array) -> Option<(Vec<usize>, &dyn Array)> {
    fn parts<O: arrow::array::OffsetSizeTrait>(
        l: &arrow::array::GenericListArray<O>,
    ) -> (Vec<usize>, &dyn Array) {
        let o = l.value_offsets().iter().map(|o| o.as_usize()).collect();
        (o, l.values().as_ref())
    }
    a.as_list_opt::<i32>()
        .map(parts)
        .or_else(|| a.as_list_opt::<i64>().map(parts))
}

/// A `list<list<int>>` column: per row, a list of prefixes.
struct PrefixList<'a> {
    outer: &'a dyn Array,
    outer_offsets: Vec<usize>,
    inner: IntList<'a>,
}

impl<'a> PrefixList<'a> {
    fn new(name: &'static str, a: &'a dyn Array) -> Option<Self> {
        let (outer_offsets, inner) = list_parts(a)?;
        Some(PrefixList {
            outer: a,
            outer_offsets,
            inner: IntList::new(name, inner)?,
        })
    }

    /// Row `i` as non-empty prefixes of item ids within `bound`.
    fn get(&self, i: usize, loc: &Loc, bound: Bound) -> Result<Vec<Vec<u32>>> {
        if !self.outer.is_valid(i) {
            return Err(loc.err("null list"));
        }
        (self.outer_offsets[i]..self.outer_offsets[i + 1])
            .enumerate()
            .map(|(n, j)| {
                let p = self.inner.ids(j, loc, bound)?;
                if p.is_empty() {
                    return Err(loc.err(format!("prefix #{n} is empty")));
                }
                Ok(p)
            })
            .collect()
    }
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    b.schema_ref().index_of(name).ok().map(|i| b.column(i))
}

/// A required or optional column of a given kind, with a clear error if it has the wrong type.
fn typed<'a, T>(
    b: &'a RecordBatch,
    name: &'static str,
    file: &Path,
    required: bool,
    make: impl Fn(&'static str, &'a dyn Array) -> Option<T>,
    kind: &str,
) -> Result<Option<T>> {
    match column(b, name) {
        None if required => Err(Error::data(file, None, Some(name), "missing column")),
        None => Ok(None),
        Some(a) => make(name, a.as_ref()).map(Some).ok_or_else(|| {
            Error::data(
                file,
                None,
                Some(name),
                format!("expected {kind}, found {}", a.data_type()),
            )
        }),
    }
}

fn string_at(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    if let Some(s) = a.as_string_opt::<i32>() {
        return Some(s.value(i).to_string());
    }
    if let Some(s) = a.as_string_opt::<i64>() {
        return Some(s.value(i).to_string());
    }
    if let Some(s) = a.as_string_view_opt() {
        return Some(s.value(i).to_string());
    }
    Ints::try_new(a)?.get(i).map(|v| v.to_string())
}

/// The record batches of a Parquet file, one at a time.
fn batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch>> + '_> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let perr = move |e: &dyn std::fmt::Display| {
        Error::data(
            path,
            None,
            None,
            format!("not a readable Parquet file: {e}"),
        )
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| perr(&e))?
        .build()
        .map_err(|e| perr(&e))?;
    Ok(reader.map(move |b| b.map_err(|e| perr(&e))))
}

// ---------------------------------------------------------------------------------------------
// Reading: episodes

/// A pair looked up from `pairs_{split}.parquet` (upstream schema).
struct PairRow {
    prefix: Vec<i64>,
    label: i64,
    ts: Option<i64>,
}

/// Reads and validates an episode file. Accepts the schema, the seed's (the four
/// prefix/label columns, optionally `episode_id`/`user_id`; no timestamps), int32 or int64
/// lists, and upstream's (`support_pair_ids`/`query_pair_ids` resolved against
/// `pairs_{split}.parquet` in the same folder, its parent, or `../pairs/`). Missing
/// `episode_id`/`user_id` become the row index / `""`.
///
/// `n_items` (V) is the argument if given; else the size + 1 of `../vocab/item2id.json` (or
/// `course2id.json`) next to the file's folder; else the largest id seen + 1. Every row is
/// checked: K and Q the same in all rows (and equal to `_K{K}_Q{Q}` in the file name if there),
/// as many labels (and timestamps) as prefixes, no empty prefix, every id in `[0, V)`.
/// Errors name the file, the 0-based row and the column.
pub fn read_episodes(path: &Path, n_items: Option<usize>) -> Result<EpisodeSet> {
    let n_items = match n_items {
        Some(v) => Some(v),
        None => vocab_size(path)?.map(|n| n + 1),
    };
    let mut reader = EpisodeReader {
        path,
        bound: Bound(n_items),
        pairs: None,
        kq: None,
        from_name: kq_from_name(path),
        episodes: Vec::new(),
    };
    for b in batches(path)? {
        reader.batch(&b?)?;
    }
    let max_id = reader
        .episodes
        .iter()
        .flat_map(|e| {
            let prefixes = e.support_prefixes.iter().chain(&e.query_prefixes).flatten();
            prefixes.chain(&e.support_labels).chain(&e.query_labels)
        })
        .max()
        .map_or(0, |&m| m as usize + 1);
    let (k, q) = reader.kq.or(reader.from_name).unwrap_or((0, 0));
    Ok(EpisodeSet {
        path: path.to_path_buf(),
        episodes: reader.episodes,
        k,
        q,
        n_items: n_items.unwrap_or(max_id),
    })
}

/// The columns of one batch.
#[allow(clippy::large_enum_variant)] // one per batch
enum Body<'a> {
    Own {
        sp: PrefixList<'a>,
        sl: IntList<'a>,
        qp: PrefixList<'a>,
        ql: IntList<'a>,
    },
    Upstream {
        sid: IntList<'a>,
        qid: IntList<'a>,
    },
}

struct EpisodeReader<'p> {
    path: &'p Path,
    bound: Bound,
    pairs: Option<HashMap<i64, PairRow>>,
    kq: Option<(usize, usize)>,
    from_name: Option<(usize, usize)>,
    episodes: Vec<Episode>,
}

impl EpisodeReader<'_> {
    fn body<'a>(&mut self, b: &'a RecordBatch) -> Result<Body<'a>> {
        let path = self.path;
        let list = |name: &'static str| typed(b, name, path, true, IntList::new, "list<int>");
        let prefixes =
            |name: &'static str| typed(b, name, path, true, PrefixList::new, "list<list<int>>");
        if column(b, "support_prefixes").is_some() {
            return Ok(Body::Own {
                sp: prefixes("support_prefixes")?.expect("required"),
                sl: list("support_labels")?.expect("required"),
                qp: prefixes("query_prefixes")?.expect("required"),
                ql: list("query_labels")?.expect("required"),
            });
        }
        if column(b, "support_pair_ids").is_some() {
            if self.pairs.is_none() {
                self.pairs = Some(read_pairs_beside(path)?);
            }
            return Ok(Body::Upstream {
                sid: list("support_pair_ids")?.expect("required"),
                qid: list("query_pair_ids")?.expect("required"),
            });
        }
        let names: Vec<&String> = b.schema_ref().fields().iter().map(|f| f.name()).collect();
        Err(Error::data(
            path,
            None,
            Some("support_prefixes"),
            format!(
                "not an episode file: neither `support_prefixes` nor `support_pair_ids` among \
                 the columns {names:?}"
            ),
        ))
    }

    fn batch(&mut self, b: &RecordBatch) -> Result<()> {
        let body = self.body(b)?;
        let path = self.path;
        let episode_id = column(b, "episode_id").and_then(|a| Ints::try_new(a.as_ref()));
        let user_id = column(b, "user_id");
        let ts_list = |name| typed(b, name, path, false, IntList::new, "list<int>");
        let (sts, qts) = (ts_list("support_label_ts")?, ts_list("query_label_ts")?);
        for i in 0..b.num_rows() {
            let row = self.episodes.len();
            let loc = |column| Loc {
                file: path,
                row,
                column,
            };
            let ts = |c: &Option<IntList>| match c {
                Some(c) => c.get(i, &loc(c.name)),
                None => Ok(None),
            };
            let mut e = Episode {
                episode_id: episode_id
                    .as_ref()
                    .and_then(|c| c.get(i))
                    .unwrap_or(row as i64),
                user_id: user_id
                    .and_then(|a| string_at(a.as_ref(), i))
                    .unwrap_or_default(),
                support_prefixes: Vec::new(),
                support_labels: Vec::new(),
                query_prefixes: Vec::new(),
                query_labels: Vec::new(),
                support_label_ts: ts(&sts)?,
                query_label_ts: ts(&qts)?,
            };
            match &body {
                Body::Own { sp, sl, qp, ql } => {
                    e.support_prefixes = sp.get(i, &loc(sp.inner.name), self.bound)?;
                    e.support_labels = sl.ids(i, &loc(sl.name), self.bound)?;
                    e.query_prefixes = qp.get(i, &loc(qp.inner.name), self.bound)?;
                    e.query_labels = ql.ids(i, &loc(ql.name), self.bound)?;
                }
                Body::Upstream { sid, qid } => {
                    let map = self.pairs.as_ref().expect("read in body()");
                    let (sts, qts);
                    (e.support_prefixes, e.support_labels, sts) =
                        resolve(map, sid, i, &loc(sid.name), self.bound)?;
                    (e.query_prefixes, e.query_labels, qts) =
                        resolve(map, qid, i, &loc(qid.name), self.bound)?;
                    if e.support_label_ts.is_none() && e.query_label_ts.is_none() {
                        (e.support_label_ts, e.query_label_ts) = (sts, qts);
                    }
                }
            }
            self.check_shape(&e, row)?;
            self.episodes.push(e);
        }
        Ok(())
    }

    /// K and Q consistent, labels and timestamps as many as prefixes.
    fn check_shape(&mut self, e: &Episode, row: usize) -> Result<()> {
        let err = |column: &str, msg: String| Error::data(self.path, Some(row), Some(column), msg);
        let (k, q) = (e.support_prefixes.len(), e.query_prefixes.len());
        let counts = [
            ("support_labels", e.support_labels.len(), k),
            ("query_labels", e.query_labels.len(), q),
            (
                "support_label_ts",
                e.support_label_ts.as_ref().map_or(k, Vec::len),
                k,
            ),
            (
                "query_label_ts",
                e.query_label_ts.as_ref().map_or(q, Vec::len),
                q,
            ),
        ];
        for (column, got, want) in counts {
            if got != want {
                return Err(err(column, format!("{got} values for {want} prefixes")));
            }
        }
        if k == 0 || q == 0 {
            let column = if k == 0 {
                "support_prefixes"
            } else {
                "query_prefixes"
            };
            return Err(err(column, "no pairs".into()));
        }
        if let Some((ek, eq)) = self.kq.or(self.from_name) {
            let source = if self.kq.is_some() {
                "earlier rows have"
            } else {
                "the file name says"
            };
            if k != ek {
                return Err(err(
                    "support_prefixes",
                    format!("K = {k}, but {source} K = {ek}"),
                ));
            }
            if q != eq {
                return Err(err(
                    "query_prefixes",
                    format!("Q = {q}, but {source} Q = {eq}"),
                ));
            }
        }
        self.kq = Some((k, q));
        Ok(())
    }
}

type Resolved = (Vec<Vec<u32>>, Vec<u32>, Option<Vec<i64>>);

/// Looks up row `i`'s pair ids.
fn resolve(
    map: &HashMap<i64, PairRow>,
    ids: &IntList,
    i: usize,
    loc: &Loc,
    bound: Bound,
) -> Result<Resolved> {
    let ids = ids.get(i, loc)?.ok_or_else(|| loc.err("null list"))?;
    let mut prefixes = Vec::with_capacity(ids.len());
    let mut labels = Vec::with_capacity(ids.len());
    let mut ts = Some(Vec::with_capacity(ids.len()));
    for id in ids {
        let p = map
            .get(&id)
            .ok_or_else(|| loc.err(format!("pair id {id} not found in the pairs file")))?;
        if p.prefix.is_empty() {
            return Err(loc.err(format!("pair id {id} has an empty prefix")));
        }
        let prefix = p.prefix.iter().map(|&x| bound.check(x, loc));
        prefixes.push(prefix.collect::<Result<Vec<u32>>>()?);
        labels.push(bound.check(p.label, loc)?);
        ts = ts.zip(p.ts).map(|(mut v, t)| {
            v.push(t);
            v
        });
    }
    Ok((prefixes, labels, ts))
}

/// The split name from `episodes_{split}_...parquet`.
fn split_of(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let rest = stem.strip_prefix("episodes_")?;
    Some(rest.split('_').next()?.to_string())
}

fn read_pairs_beside(path: &Path) -> Result<HashMap<i64, PairRow>> {
    let split = split_of(path).ok_or_else(|| {
        Error::data(
            path,
            None,
            Some("support_pair_ids"),
            "upstream schema, but the split cannot be read from the file name \
             (expected episodes_{split}_...parquet)",
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = format!("pairs_{split}.parquet");
    let candidates = [
        dir.join(&name),
        dir.join("..").join(&name),
        dir.join("..").join("pairs").join(&name),
    ];
    let pairs_path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
        Error::data(
            path,
            None,
            Some("support_pair_ids"),
            format!("upstream schema, but no {name} found at {candidates:?}"),
        )
    })?;
    read_pairs(pairs_path)
}

fn read_pairs(path: &Path) -> Result<HashMap<i64, PairRow>> {
    Ok(read_pair_rows(path)?.into_iter().collect())
}

/// Every row of a pairs file, in file order, keyed by `pair_id`.
fn read_pair_rows(path: &Path) -> Result<Vec<(i64, PairRow)>> {
    let mut rows = Vec::new();
    for b in batches(path)? {
        let b = b?;
        let int = |name: &'static str, required| {
            typed(
                &b,
                name,
                path,
                required,
                |_, a| Ints::try_new(a),
                "integers",
            )
        };
        let ids = int("pair_id", true)?.expect("required");
        let labels = int("label", true)?.expect("required");
        let ts = match int("label_ts_epoch", false)? {
            Some(t) => Some(t),
            None => int("label_ts", false)?,
        };
        let prefix = typed(&b, "prefix", path, true, IntList::new, "list<int>")?.expect("required");
        for i in 0..b.num_rows() {
            let loc = |column| Loc {
                file: path,
                row: rows.len(),
                column,
            };
            let id = ids.get(i).ok_or_else(|| loc("pair_id").err("null"))?;
            let label = labels.get(i).ok_or_else(|| loc("label").err("null"))?;
            let prefix = prefix
                .get(i, &loc("prefix"))?
                .ok_or_else(|| loc("prefix").err("null list"))?;
            let ts = ts.as_ref().and_then(|t| t.get(i));
            rows.push((id, PairRow { prefix, label, ts }));
        }
    }
    Ok(rows)
}

/// The pairs of a `pairs_{split}.parquet` file (prefix -> next item), for training the global
/// GRU4Rec model.
#[derive(Clone, Debug)]
pub struct PairSet {
    /// Where it was read from.
    pub path: std::path::PathBuf,
    /// Prefixes, oldest item first.
    pub prefixes: Vec<Vec<u32>>,
    /// The next item of each prefix.
    pub labels: Vec<u32>,
    /// V: ids lie in `1..n_items`.
    pub n_items: usize,
}

/// Reads and validates a pairs file written by `prepare` (columns `prefix list<int>` and `label
/// int`; other columns are ignored). V is `n_items` if given, else the size + 1 of
/// `vocab/item2id.json` beside the file (or in `../vocab/`), else the largest id + 1. Every row
/// needs a non-empty prefix and ids in `1..V`; errors name the file, row and column.
pub fn read_pair_file(path: &Path, n_items: Option<usize>) -> Result<PairSet> {
    let rows = read_pair_rows(path)?;
    let vocab = match n_items {
        Some(v) => Some(v),
        None => match vocab_size_in(&path.parent().unwrap_or(Path::new(".")).join("vocab"))? {
            Some(n) => Some(n + 1),
            None => vocab_size(path)?.map(|n| n + 1),
        },
    };
    let largest = rows
        .iter()
        .flat_map(|(_, r)| r.prefix.iter().chain([&r.label]))
        .copied()
        .max()
        .unwrap_or(0);
    let v = vocab.unwrap_or(largest.max(0) as usize + 1);
    let mut set = PairSet {
        path: path.to_path_buf(),
        prefixes: Vec::with_capacity(rows.len()),
        labels: Vec::with_capacity(rows.len()),
        n_items: v,
    };
    for (row, (_, r)) in rows.into_iter().enumerate() {
        let err = |column: &str, msg: String| Error::data(path, Some(row), Some(column), msg);
        if r.prefix.is_empty() {
            return Err(err("prefix", "empty prefix".into()));
        }
        let check = |column: &str, id: i64| -> Result<u32> {
            if id < 1 || id as usize >= v {
                return Err(err(
                    column,
                    format!("item id {id} is outside 1..{v} (V from the vocabulary or --items)"),
                ));
            }
            Ok(id as u32)
        };
        set.labels.push(check("label", r.label)?);
        set.prefixes.push(
            r.prefix
                .iter()
                .map(|&id| check("prefix", id))
                .collect::<Result<_>>()?,
        );
    }
    Ok(set)
}

/// The number of entries of `../vocab/item2id.json` (or `course2id.json`) relative to the
/// episode file's folder, if there is one.
fn vocab_size(path: &Path) -> Result<Option<usize>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    vocab_size_in(&dir.join("..").join("vocab"))
}

/// The number of entries of `item2id.json` (or `course2id.json`) in `dir`, if there is one.
fn vocab_size_in(dir: &Path) -> Result<Option<usize>> {
    for name in ["item2id.json", "course2id.json"] {
        let p = dir.join(name);
        if p.is_file() {
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
                .map_err(|e| {
                    Error::data(&p, Some(e.line()), None, format!("not a JSON object: {e}"))
                })?;
            return Ok(Some(map.len()));
        }
    }
    Ok(None)
}

/// `(K, Q)` from `..._K{K}_Q{Q}...` in the file name.
fn kq_from_name(path: &Path) -> Option<(usize, usize)> {
    let stem = path.file_stem()?.to_str()?;
    let parts: Vec<&str> = stem.split('_').collect();
    parts.windows(2).find_map(|w| {
        let k = w[0].strip_prefix('K')?.parse().ok()?;
        let q = w[1].strip_prefix('Q')?.parse().ok()?;
        Some((k, q))
    })
}
