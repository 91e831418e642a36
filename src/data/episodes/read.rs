//! The episode reader: every row of an episode file decoded, whatever its schema, and validated
//! (ids within V, K and Q the same in every row, as many labels and times as prefixes).

use super::beside::{kq_from_name, vocab_size};
use super::columns::{batches, string_at, Bound, IntList, Loc};
use super::flat;
use super::pairs::PairRow;
use super::schema::{body, header, Body, Header};
use crate::data::{Episode, EpisodeSet};
use crate::error::{Error, Result};
use arrow::array::RecordBatch;
use std::collections::HashMap;
use std::path::Path;

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
/// Errors name the file, the 0-based row and the column. Valid files in the writer's own layout
/// are decoded by the fast path of [`flat`](super::flat), which gives the same episodes; any other
/// file, or any invalid row, goes through the general reader below.
pub fn read_episodes(path: &Path, n_items: Option<usize>) -> Result<EpisodeSet> {
    let n_items = match n_items {
        Some(v) => Some(v),
        None => vocab_size(path)?.map(|n| n + 1),
    };
    let from_name = kq_from_name(path);
    if let Some((episodes, (k, q))) = flat::read_valid(path, Bound(n_items), from_name) {
        return Ok(finish(path, episodes, k, q, n_items));
    }
    let mut reader = EpisodeReader {
        path,
        bound: Bound(n_items),
        pairs: None,
        kq: None,
        from_name,
        episodes: Vec::new(),
    };
    for b in batches(path)? {
        reader.batch(&b?)?;
    }
    let (k, q) = reader.kq.or(reader.from_name).unwrap_or((0, 0));
    Ok(finish(path, reader.episodes, k, q, n_items))
}

/// The set read from `path`; V is `n_items` if known, else the largest id seen + 1.
fn finish(
    path: &Path,
    episodes: Vec<Episode>,
    k: usize,
    q: usize,
    n_items: Option<usize>,
) -> EpisodeSet {
    let n_items = n_items.unwrap_or_else(|| {
        episodes
            .iter()
            .flat_map(|e| {
                let prefixes = e.support_prefixes.iter().chain(&e.query_prefixes).flatten();
                prefixes.chain(&e.support_labels).chain(&e.query_labels)
            })
            .max()
            .map_or(0, |&m| m as usize + 1)
    });
    EpisodeSet {
        path: path.to_path_buf(),
        episodes,
        k,
        q,
        n_items,
    }
}

/// The state of a read: the rows so far and what they fix for the rows to come.
struct EpisodeReader<'p> {
    path: &'p Path,
    bound: Bound,
    /// Upstream's pairs by id, read with the first upstream batch.
    pairs: Option<HashMap<i64, PairRow>>,
    /// K and Q of the rows so far.
    kq: Option<(usize, usize)>,
    /// K and Q from the file name.
    from_name: Option<(usize, usize)>,
    episodes: Vec<Episode>,
}

impl EpisodeReader<'_> {
    fn batch(&mut self, b: &RecordBatch) -> Result<()> {
        let body = body(b, self.path, &mut self.pairs)?;
        let header = header(b, self.path)?;
        for i in 0..b.num_rows() {
            let row = self.episodes.len();
            let mut e = self.row_header(&header, i, row)?;
            self.decode_pairs(&body, &mut e, i, row)?;
            self.check_shape(&e, row)?;
            self.episodes.push(e);
        }
        Ok(())
    }

    /// Batch row `i` (file row `row`) with its id, user and label times, and no pairs yet.
    fn row_header(&self, h: &Header, i: usize, row: usize) -> Result<Episode> {
        let ts = |c: &Option<IntList>| match c {
            Some(c) => c.get(i, &self.loc(row, c.name)),
            None => Ok(None),
        };
        Ok(Episode {
            episode_id: h
                .episode_id
                .as_ref()
                .and_then(|c| c.get(i))
                .unwrap_or(row as i64),
            user_id: h
                .user_id
                .and_then(|a| string_at(a.as_ref(), i))
                .unwrap_or_default(),
            support_prefixes: Vec::new(),
            support_labels: Vec::new(),
            query_prefixes: Vec::new(),
            query_labels: Vec::new(),
            support_label_ts: ts(&h.support_ts)?,
            query_label_ts: ts(&h.query_ts)?,
        })
    }

    /// Fills in the prefixes and labels of batch row `i`; upstream's rows take their label
    /// times from the pairs when the episode file has none.
    fn decode_pairs(&self, body: &Body, e: &mut Episode, i: usize, row: usize) -> Result<()> {
        let loc = |column| self.loc(row, column);
        match body {
            Body::Own { sp, sl, qp, ql } => {
                e.support_prefixes = sp.get(i, &loc(sp.inner.name), self.bound)?;
                e.support_labels = sl.ids(i, &loc(sl.name), self.bound)?;
                e.query_prefixes = qp.get(i, &loc(qp.inner.name), self.bound)?;
                e.query_labels = ql.ids(i, &loc(ql.name), self.bound)?;
            }
            Body::Upstream { sid, qid } => {
                let map = self.pairs.as_ref().expect("read by schema::body");
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
        Ok(())
    }

    fn loc(&self, row: usize, column: &'static str) -> Loc<'_> {
        Loc {
            file: self.path,
            row,
            column,
        }
    }

    fn err(&self, row: usize, column: &str, msg: String) -> Error {
        Error::data(self.path, Some(row), Some(column), msg)
    }

    /// K and Q consistent, labels and timestamps as many as prefixes.
    fn check_shape(&mut self, e: &Episode, row: usize) -> Result<()> {
        self.check_counts(e, row)?;
        let (k, q) = (e.support_prefixes.len(), e.query_prefixes.len());
        if let Some((ek, eq)) = self.kq.or(self.from_name) {
            let source = if self.kq.is_some() {
                "earlier rows have"
            } else {
                "the file name says"
            };
            if k != ek {
                let msg = format!("K = {k}, but {source} K = {ek}");
                return Err(self.err(row, "support_prefixes", msg));
            }
            if q != eq {
                let msg = format!("Q = {q}, but {source} Q = {eq}");
                return Err(self.err(row, "query_prefixes", msg));
            }
        }
        self.kq = Some((k, q));
        Ok(())
    }

    /// As many labels and timestamps as prefixes, and pairs on both sides.
    fn check_counts(&self, e: &Episode, row: usize) -> Result<()> {
        let (k, q) = (e.support_prefixes.len(), e.query_prefixes.len());
        let ts_len = |t: &Option<Vec<i64>>, n: usize| t.as_ref().map_or(n, Vec::len);
        let counts = [
            ("support_labels", e.support_labels.len(), k),
            ("query_labels", e.query_labels.len(), q),
            ("support_label_ts", ts_len(&e.support_label_ts, k), k),
            ("query_label_ts", ts_len(&e.query_label_ts, q), q),
        ];
        for (column, got, want) in counts {
            if got != want {
                return Err(self.err(row, column, format!("{got} values for {want} prefixes")));
            }
        }
        if k == 0 || q == 0 {
            let column = if k == 0 {
                "support_prefixes"
            } else {
                "query_prefixes"
            };
            return Err(self.err(row, column, "no pairs".into()));
        }
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
        let prefix = p.prefix.iter().map(|&x| bound.check(x.into(), loc));
        prefixes.push(prefix.collect::<Result<Vec<u32>>>()?);
        labels.push(bound.check(p.label.into(), loc)?);
        ts = ts.zip(p.ts).map(|(mut v, t)| {
            v.push(t);
            v
        });
    }
    Ok((prefixes, labels, ts))
}
