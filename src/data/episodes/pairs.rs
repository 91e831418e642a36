//! Pair files (`pairs_{split}.parquet`): read by `pair_id` to resolve upstream's episodes, and
//! read whole and validated as a [`PairSet`] to pretrain the global GRU4Rec model.

use super::beside::{pairs_file_for, vocab_size, vocab_size_in};
use super::columns::{batches, typed, IntList, Ints, Loc};
use crate::error::{Error, Result};
use crate::util::limits::{items_limit_text, max_items};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A pair looked up from `pairs_{split}.parquet` (upstream schema).
pub(super) struct PairRow {
    pub(super) prefix: Vec<i64>,
    pub(super) label: i64,
    pub(super) ts: Option<i64>,
}

/// The pairs of the split of upstream episode file `path`, keyed by `pair_id`.
pub(super) fn read_pairs_beside(path: &Path) -> Result<HashMap<i64, PairRow>> {
    let pairs_path = pairs_file_for(path)?;
    Ok(read_pair_rows(&pairs_path)?.into_iter().collect())
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
            let id =
                (ids.get_checked(i, &loc("pair_id"))?).ok_or_else(|| loc("pair_id").err("null"))?;
            let label =
                (labels.get_checked(i, &loc("label"))?).ok_or_else(|| loc("label").err("null"))?;
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
    pub path: PathBuf,
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
    let v = match vocab {
        Some(v) => v,
        None => inferred_v(path, &rows)?,
    };
    let mut set = PairSet {
        path: path.to_path_buf(),
        prefixes: Vec::with_capacity(rows.len()),
        labels: Vec::with_capacity(rows.len()),
        n_items: v,
    };
    for (row, (_, r)) in rows.into_iter().enumerate() {
        let (prefix, label) = checked_pair(path, row, &r, v)?;
        set.labels.push(label);
        set.prefixes.push(prefix);
    }
    Ok(set)
}

/// V from the largest id of a file without a vocabulary, which must stay below
/// [`max_items`]; an error names the first row and column over it.
fn inferred_v(path: &Path, rows: &[(i64, PairRow)]) -> Result<usize> {
    let limit = max_items().min(u64::from(u32::MAX)) as i64;
    let mut largest = 0;
    for (row, (_, r)) in rows.iter().enumerate() {
        let ids = r.prefix.iter().map(|&x| ("prefix", x));
        for (column, id) in ids.chain([("label", r.label)]) {
            if id >= limit {
                return Err(Error::data(
                    path,
                    Some(row),
                    Some(column),
                    format!("item id {id} is too large: {}", items_limit_text()),
                ));
            }
            largest = largest.max(id);
        }
    }
    Ok(largest as usize + 1)
}

/// Row `row` of a pairs file as item ids: a non-empty prefix and every id in `1..v`.
fn checked_pair(path: &Path, row: usize, r: &PairRow, v: usize) -> Result<(Vec<u32>, u32)> {
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
    let label = check("label", r.label)?;
    let prefix = r
        .prefix
        .iter()
        .map(|&id| check("prefix", id))
        .collect::<Result<_>>()?;
    Ok((prefix, label))
}
