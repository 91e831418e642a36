//! The episode reader's fast path, for files in the writer's own layout (the or the
//! seed's schema with `list<int64>` and `list<list<int64>>` columns in the standard three-level
//! list layout): the list columns are decoded from their Parquet repetition and definition
//! levels straight into the episodes' vectors, without building Arrow arrays; each column in
//! runs of whole pages decoded in parallel (rayon); the writer's own data pages by `pages`, any
//! other page through the parquet crate's column reader. `episode_id` and `user_id` go through
//! the Arrow reader as in the general reader.
//!
//! It accepts only files whose every row is valid: any other layout, any null or empty list or
//! element, an id outside the bound, differing K or Q, or any error or panic of the parquet
//! crate makes it give up (`None`), and the caller reads the file again with the general reader,
//! which finds the same rows and reports the first problem by file, row and column. So for a
//! file this path accepts, the result is exactly the general reader's.

use super::columns::{string_at, Bound, Ints};
use super::pages::{page_levels, Part};
use crate::data::Episode;
use crate::util::limits::max_items;
use arrow::datatypes::{DataType, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::basic::Type as PhysicalType;
use parquet::column::reader::ColumnReaderImpl;
use parquet::data_type::Int64Type;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::serialized_reader::SerializedPageReader;
use rayon::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

/// Records decoded per call into the parquet column reader.
const CHUNK: usize = 1024;

/// The episodes of `path` and their K and Q, when the fast path applies and every row is valid
/// (ids checked against `bound`, K and Q against `from_name`); `None` otherwise.
pub(super) fn read_valid(
    path: &Path,
    bound: Bound,
    from_name: Option<(usize, usize)>,
) -> Option<(Vec<Episode>, (usize, usize))> {
    catch_unwind(AssertUnwindSafe(|| {
        read(path, bound, from_name, PART_BYTES)
    }))
    .ok()
    .flatten()
}

/// [`read_valid`] without the panic guard, the id columns decoded in parts of about
/// `part_bytes` uncompressed bytes.
fn read(
    path: &Path,
    bound: Bound,
    from_name: Option<(usize, usize)>,
    part_bytes: i64,
) -> Option<(Vec<Episode>, (usize, usize))> {
    // The whole file in memory, shared by the column tasks (a `File` would share its offset).
    let file = Bytes::from(std::fs::read(path).ok()?);
    let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
    let meta = ArrowReaderMetadata::load(&file, options).ok()?;
    let rows = usize::try_from(meta.metadata().file_metadata().num_rows()).ok()?;
    if rows == 0 {
        return None;
    }
    let schema = meta.schema().as_ref();
    let pq = meta.metadata().as_ref();
    let leaf = |name, depth, required| leaf(schema, pq, name, depth, required);
    let sp = leaf("support_prefixes", 2, true)??;
    let sl = leaf("support_labels", 1, true)??;
    let qp = leaf("query_prefixes", 2, true)??;
    let ql = leaf("query_labels", 1, true)??;
    let sts = leaf("support_label_ts", 1, false)?;
    let qts = leaf("query_label_ts", 1, false)?;
    let file = Arc::new(file);
    let limit = match bound.0 {
        Some(n) => n.min(1 << 32) as u64,
        None => max_items().min(u64::from(u32::MAX)),
    };
    let ids = |c| decode_ids(&file, pq, c, limit, part_bytes);
    let times = |c: Option<usize>| match c {
        None => Some(None),
        Some(c) => decode_times(&file, pq, c).map(Some),
    };
    let ((sp, qp), ((sl, ql), ((sts, qts), header))) = rayon::join(
        || rayon::join(|| ids(sp), || ids(qp)),
        || {
            rayon::join(
                || (ids(sl), ids(ql)),
                || {
                    (
                        rayon::join(|| times(sts), || times(qts)),
                        header(&file, &meta, rows),
                    )
                },
            )
        },
    );
    let cols = Columns {
        sp: sp?,
        sl: sl?,
        qp: qp?,
        ql: ql?,
        sts: sts?,
        qts: qts?,
    };
    let (ep_ids, users) = header?;
    if ep_ids.len() != rows || users.len() != rows {
        return None;
    }
    let kq = cols.check(rows, from_name)?;
    Some((cols.episodes(ep_ids, users), kq))
}

/// The leaf column of top-level field `name`: an arrow `list<int64>` (depth 1) or
/// `list<list<int64>>` (depth 2) stored as one INT64 leaf in the standard three-level lists
/// (any node optional or required: a value is present exactly where its definition level is
/// the leaf's maximum). `Some(None)` when the field is absent and not required; `None` (give
/// up) when it has another type or layout.
fn leaf(
    schema: &Schema,
    pq: &ParquetMetaData,
    name: &str,
    depth: usize,
    required: bool,
) -> Option<Option<usize>> {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| f.name() == name)
        .collect();
    let field = match fields[..] {
        [] if !required => return Some(None),
        [f] => f,
        _ => return None,
    };
    let mut t = field.data_type();
    for _ in 0..depth {
        match t {
            DataType::List(inner) => t = inner.data_type(),
            _ => return None,
        }
    }
    if *t != DataType::Int64 {
        return None;
    }
    let descr = pq.file_metadata().schema_descr();
    let leaves: Vec<usize> = (0..descr.num_columns())
        .filter(|&i| descr.column(i).path().parts().first().map(String::as_str) == Some(name))
        .collect();
    let [i] = leaves[..] else { return None };
    let c = descr.column(i);
    let layout = c.max_rep_level() as usize == depth && c.path().parts().len() == 2 * depth + 1;
    (c.physical_type() == PhysicalType::INT64 && layout).then_some(Some(i))
}

/// A list column's rows: row `i` holds items `rows[i]..rows[i + 1]` (prefixes, or values).
struct Flat<T> {
    rows: Vec<usize>,
    items: Vec<T>,
}

impl<T> Flat<T> {
    /// The parts' rows one after the other.
    fn concat(parts: Vec<Flat<T>>) -> Flat<T> {
        let mut out = Flat {
            rows: Vec::new(),
            items: Vec::new(),
        };
        for p in parts {
            let base = out.items.len();
            out.rows.extend(p.rows.iter().map(|r| r + base));
            out.items.extend(p.items);
        }
        out.rows.push(out.items.len());
        out
    }
}

/// A time column: as [`Flat`], with the rows whose list is null (no times).
struct Times {
    flat: Flat<i64>,
    null: Vec<bool>,
}

/// Leaf `c` cut into runs of whole pages of about `bytes` uncompressed bytes each, at the page
/// starts the offset index gives (pages start on rows there); one run per row group without it.
fn parts(pq: &ParquetMetaData, c: usize, bytes: i64) -> Vec<Part> {
    let mut out = Vec::new();
    for (rg, meta) in pq.row_groups().iter().enumerate() {
        let rows = usize::try_from(meta.num_rows()).unwrap_or(0);
        let want = (meta.column(c).uncompressed_size() / bytes.max(1)).max(1) as usize;
        let index = pq.page_index_for_row_group(rg);
        let starts: Vec<usize> = (index.page_locations(c).into_iter().flatten())
            .filter_map(|l| usize::try_from(l.first_row_index).ok())
            .filter(|&r| r > 0 && r < rows)
            .collect();
        let mut cuts = vec![0];
        for k in 1..want {
            let target = rows * k / want;
            let near = starts.iter().min_by_key(|&&r| r.abs_diff(target));
            cuts.extend(near.filter(|&&r| r > *cuts.last().unwrap_or(&0)));
        }
        cuts.push(rows);
        out.extend(cuts.windows(2).map(|w| Part {
            rg,
            skip: w[0],
            take: w[1] - w[0],
        }));
    }
    out
}

/// Decodes part `p` of leaf `c` chunk by chunk, calling `each(def, rep, values)` on the levels
/// and non-null values of whole records; gives the number of levels, or `None` on any error or
/// inconsistent count.
fn levels(
    file: &Arc<Bytes>,
    pq: &ParquetMetaData,
    c: usize,
    p: &Part,
    mut each: impl FnMut(&[i16], &[i16], &[i64]) -> Option<()>,
) -> Option<usize> {
    let descr = pq.file_metadata().schema_descr().column(c);
    let meta = pq.row_group(p.rg);
    let rows = usize::try_from(meta.num_rows()).ok()?;
    let locations = pq.page_index_for_row_group(p.rg).page_locations(c).cloned();
    let pages =
        SerializedPageReader::new(Arc::clone(file), meta.column(c), rows, locations).ok()?;
    let mut reader = ColumnReaderImpl::<Int64Type>::new(descr.clone(), Box::new(pages));
    if reader.skip_records(p.skip).ok()? != p.skip {
        return None;
    }
    let (mut def, mut rep, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let (mut records, mut levels) = (0, 0);
    while records < p.take {
        def.clear();
        rep.clear();
        values.clear();
        let want = CHUNK.min(p.take - records);
        let (r, _, l) = reader
            .read_records(want, Some(&mut def), Some(&mut rep), &mut values)
            .ok()?;
        if r == 0 || def.len() != l || rep.len() != l || rep.first() != Some(&0) {
            return None;
        }
        each(&def, &rep, &values)?;
        (records, levels) = (records + r, levels + l);
    }
    (records == p.take).then_some(levels)
}

/// Decodes every part of leaf `c` in parallel, in order; checks that together they cover every
/// level of the column.
fn decode_parts<T: Send>(
    pq: &ParquetMetaData,
    c: usize,
    bytes: i64,
    decode: impl Fn(&Part) -> Option<(T, usize)> + Sync + Send,
) -> Option<Vec<T>> {
    let parts = parts(pq, c, bytes);
    let done: Vec<(T, usize)> = parts.par_iter().map(decode).collect::<Option<_>>()?;
    let levels: usize = done.iter().map(|d| d.1).sum();
    let want: i64 = pq
        .row_groups()
        .iter()
        .map(|g| g.column(c).num_values())
        .sum();
    (i64::try_from(levels).ok()? == want).then(|| done.into_iter().map(|d| d.0).collect())
}

/// Uncompressed bytes of an id column decoded as one task (about 4 M ids).
const PART_BYTES: i64 = 32 << 20;

/// A column of item ids (`list<int64>` labels or `list<list<int64>>` prefixes), every list and
/// element present, every prefix non-empty, every id below `limit`: depth 2 gives each row's
/// prefixes as vectors, depth 1 the ids of all rows in one vector.
fn decode_ids(
    file: &Arc<Bytes>,
    pq: &ParquetMetaData,
    c: usize,
    limit: u64,
    part_bytes: i64,
) -> Option<Ids> {
    let descr = pq.file_metadata().schema_descr().column(c);
    let max = descr.max_def_level();
    let nested = descr.max_rep_level() == 2;
    let part = |p: &Part| {
        let from_pages = || {
            let (mut sink, mut ids) = (IdSink::default(), Vec::new());
            let n = page_levels(file, pq, c, p, |rep, values| {
                let values = values.chunks_exact(8);
                let wide = values
                    .clone()
                    .map(|v| u64::from_le_bytes(v.try_into().expect("8")));
                if wide.fold(false, |bad, x| bad | (x >= limit)) {
                    return None;
                }
                ids.clear();
                // Below the limit, so below 2^32: the low four bytes are the id.
                ids.extend(values.map(|v| u32::from_le_bytes(v[..4].try_into().expect("4"))));
                sink.push(nested, rep, &ids);
                Some(())
            })?;
            Some((sink, n))
        };
        let from_reader = || {
            let (mut sink, mut ids) = (IdSink::default(), Vec::new());
            let n = levels(file, pq, c, p, |def, rep, values| {
                // Folds rather than `all`, so that the compiler vectorizes them.
                let absent = def.iter().fold(false, |a, &d| a | (d != max));
                let bad = values.iter().fold(false, |b, &v| b | (v as u64 >= limit));
                if absent || bad || values.len() != def.len() {
                    return None;
                }
                ids.clear();
                ids.extend(values.iter().map(|&v| v as u32));
                sink.push(nested, rep, &ids);
                Some(())
            })?;
            Some((sink, n))
        };
        let (sink, n) = from_pages().or_else(from_reader)?;
        let IdSink {
            rows,
            prefixes,
            labels,
        } = sink;
        Some(if nested {
            (
                Ids::Prefixes(Flat {
                    rows,
                    items: prefixes,
                }),
                n,
            )
        } else {
            (
                Ids::Labels(Flat {
                    rows,
                    items: labels,
                }),
                n,
            )
        })
    };
    let parts = decode_parts(pq, c, part_bytes, part)?;
    Some(if nested {
        let parts = parts.into_iter().map(|p| match p {
            Ids::Prefixes(f) => f,
            Ids::Labels(_) => unreachable!("one kind per column"),
        });
        Ids::Prefixes(Flat::concat(parts.collect()))
    } else {
        let parts = parts.into_iter().map(|p| match p {
            Ids::Labels(f) => f,
            Ids::Prefixes(_) => unreachable!("one kind per column"),
        });
        Ids::Labels(Flat::concat(parts.collect()))
    })
}

/// The ids of whole records as they are decoded: row starts, and prefixes (depth 2) or labels.
#[derive(Default)]
struct IdSink {
    rows: Vec<usize>,
    prefixes: Vec<Vec<u32>>,
    labels: Vec<u32>,
}

impl IdSink {
    /// Appends whole records given by their repetition levels `rep` and the id at each level.
    fn push<R: Copy + Into<i16>>(&mut self, nested: bool, rep: &[R], ids: &[u32]) {
        let r = |j: usize| rep[j].into();
        if !nested {
            let base = self.labels.len();
            self.rows
                .extend((0..rep.len()).filter(|&j| r(j) == 0).map(|j| base + j));
            self.labels.extend_from_slice(ids);
            return;
        }
        let mut start = 0;
        for j in 1..=rep.len() {
            if j == rep.len() || r(j) <= 1 {
                if r(start) == 0 {
                    self.rows.push(self.prefixes.len());
                }
                self.prefixes.push(ids[start..j].to_vec());
                start = j;
            }
        }
    }
}

/// A decoded id column.
enum Ids {
    Prefixes(Flat<Vec<u32>>),
    Labels(Flat<u32>),
}

/// A `list<int64>` time column: a row's list may be null (no times), its elements may not.
fn decode_times(file: &Arc<Bytes>, pq: &ParquetMetaData, c: usize) -> Option<Times> {
    let descr = pq.file_metadata().schema_descr();
    let max = descr.column(c).max_def_level();
    // Level 0 is a null list only where the column itself is optional (else an empty one).
    let nullable = descr.get_column_root(c).is_optional();
    let part = |p: &Part| {
        let (mut rows, mut items, mut null) = (Vec::new(), Vec::new(), Vec::new());
        let n = levels(file, pq, c, p, |def, rep, values| {
            let mut v = values.iter();
            for (&d, &r) in def.iter().zip(rep) {
                if r == 0 {
                    rows.push(items.len());
                    null.push(nullable && d == 0);
                }
                match d {
                    0 if r == 0 && nullable => {}
                    d if d == max => items.push(*v.next()?),
                    _ => return None,
                }
            }
            v.next().is_none().then_some(())
        })?;
        Some(((Flat { rows, items }, null), n))
    };
    let parts = decode_parts(pq, c, i64::MAX, part)?;
    let null = parts.iter().flat_map(|p| p.1.iter().copied()).collect();
    let flat = Flat::concat(parts.into_iter().map(|p| p.0).collect());
    Some(Times { flat, null })
}

/// `episode_id` and `user_id` of every row through the Arrow reader, read as the general reader
/// reads them.
#[allow(clippy::type_complexity)]
fn header(
    file: &Arc<Bytes>,
    meta: &ArrowReaderMetadata,
    rows: usize,
) -> Option<(Vec<Option<i64>>, Vec<Option<String>>)> {
    let schema = meta.schema();
    let roots: Vec<usize> = ["episode_id", "user_id"]
        .iter()
        .filter_map(|n| schema.index_of(n).ok())
        .collect();
    if roots.is_empty() {
        return Some((vec![None; rows], vec![None; rows]));
    }
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    let reader =
        ParquetRecordBatchReaderBuilder::new_with_metadata(Bytes::clone(file), meta.clone())
            .with_projection(mask)
            .build()
            .ok()?;
    let (mut ids, mut users) = (Vec::new(), Vec::new());
    for b in reader {
        let b = b.ok()?;
        let col = |n| b.schema_ref().index_of(n).ok().map(|i| b.column(i));
        let id = col("episode_id").and_then(|a| Ints::try_new(a.as_ref()));
        let user = col("user_id");
        for i in 0..b.num_rows() {
            ids.push(id.as_ref().and_then(|c| c.get(i)));
            users.push(user.and_then(|a| string_at(a.as_ref(), i)));
        }
    }
    Some((ids, users))
}

/// The decoded columns of a file.
struct Columns {
    sp: Ids,
    sl: Ids,
    qp: Ids,
    ql: Ids,
    sts: Option<Times>,
    qts: Option<Times>,
}

impl Columns {
    /// Every column has `rows` rows; every row has K support and Q query pairs (both > 0, the
    /// same in every row and as the file name says), as many labels and times; gives (K, Q).
    fn check(&self, rows: usize, from_name: Option<(usize, usize)>) -> Option<(usize, usize)> {
        let (Ids::Prefixes(sp), Ids::Labels(sl), Ids::Prefixes(qp), Ids::Labels(ql)) =
            (&self.sp, &self.sl, &self.qp, &self.ql)
        else {
            return None;
        };
        let n = |r: &[usize], i: usize| r[i + 1] - r[i];
        let all_rows = [&sp.rows, &sl.rows, &qp.rows, &ql.rows]
            .into_iter()
            .chain(self.sts.iter().map(|t| &t.flat.rows))
            .chain(self.qts.iter().map(|t| &t.flat.rows))
            .all(|r| r.len() == rows + 1);
        if !all_rows {
            return None;
        }
        let kq = from_name.unwrap_or((n(&sp.rows, 0), n(&qp.rows, 0)));
        let times_fit = |t: &Option<Times>, i: usize, want: usize| {
            t.as_ref()
                .is_none_or(|t| t.null[i] || n(&t.flat.rows, i) == want)
        };
        let ok = (0..rows).all(|i| {
            let (k, q) = (n(&sp.rows, i), n(&qp.rows, i));
            (k, q) == kq
                && k > 0
                && q > 0
                && n(&sl.rows, i) == k
                && n(&ql.rows, i) == q
                && times_fit(&self.sts, i, k)
                && times_fit(&self.qts, i, q)
        });
        ok.then_some(kq)
    }

    /// The episodes, in file order (after [`check`](Self::check)).
    fn episodes(self, ids: Vec<Option<i64>>, users: Vec<Option<String>>) -> Vec<Episode> {
        let (Ids::Prefixes(sp), Ids::Labels(sl), Ids::Prefixes(qp), Ids::Labels(ql)) =
            (self.sp, self.sl, self.qp, self.ql)
        else {
            unreachable!("checked")
        };
        let slice = |f: &Flat<u32>, i: usize| f.items[f.rows[i]..f.rows[i + 1]].to_vec();
        let times = |t: &Option<Times>, i: usize| {
            let t = t.as_ref()?;
            (!t.null[i]).then(|| t.flat.items[t.flat.rows[i]..t.flat.rows[i + 1]].to_vec())
        };
        let (mut sp_items, mut qp_items) = (sp.items.into_iter(), qp.items.into_iter());
        let mut out = Vec::with_capacity(ids.len());
        for (i, (id, user)) in ids.into_iter().zip(users).enumerate() {
            out.push(Episode {
                episode_id: id.unwrap_or(i as i64),
                user_id: user.unwrap_or_default(),
                support_prefixes: sp_items
                    .by_ref()
                    .take(sp.rows[i + 1] - sp.rows[i])
                    .collect(),
                support_labels: slice(&sl, i),
                query_prefixes: qp_items
                    .by_ref()
                    .take(qp.rows[i + 1] - qp.rows[i])
                    .collect(),
                query_labels: slice(&ql, i),
                support_label_ts: times(&self.sts, i),
                query_label_ts: times(&self.qts, i),
            });
        }
        out
    }
}

#[cfg(test)]
#[path = "flat_tests.rs"]
mod tests;
