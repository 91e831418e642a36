//! Typed access to the columns of a Parquet record batch: integers of any common width, lists
//! and lists of lists of them, strings, each downcast once per batch, with errors that name the
//! file, the 0-based row and the column.

use crate::error::{Error, Result};
use crate::util::limits::{items_limit_text, max_items};
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, UInt32Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// A column of integers of any common width, downcast once.
pub(super) enum Ints<'a> {
    I32(&'a arrow::array::Int32Array),
    I64(&'a Int64Array),
    U32(&'a arrow::array::UInt32Array),
    U64(&'a arrow::array::UInt64Array),
}

impl Ints<'_> {
    pub(super) fn try_new(a: &dyn Array) -> Option<Ints<'_>> {
        Some(match a.data_type() {
            DataType::Int32 => Ints::I32(a.as_primitive::<Int32Type>()),
            DataType::Int64 => Ints::I64(a.as_primitive::<Int64Type>()),
            DataType::UInt32 => Ints::U32(a.as_primitive::<UInt32Type>()),
            DataType::UInt64 => Ints::U64(a.as_primitive::<UInt64Type>()),
            _ => return None,
        })
    }

    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<i64> {
        let (valid, v) = match self {
            Ints::I32(a) => (a.is_valid(i), i64::from(a.value(i))),
            Ints::I64(a) => (a.is_valid(i), a.value(i)),
            Ints::U32(a) => (a.is_valid(i), i64::from(a.value(i))),
            Ints::U64(a) => (a.is_valid(i), a.value(i).min(i64::MAX as u64) as i64),
        };
        valid.then_some(v)
    }

    /// Element `i` as its exact value (a u64 beyond `i64::MAX` included), or `None` if null.
    #[inline]
    pub(super) fn get_wide(&self, i: usize) -> Option<i128> {
        match self {
            Ints::U64(a) => a.is_valid(i).then(|| i128::from(a.value(i))),
            _ => self.get(i).map(i128::from),
        }
    }

    /// Element `i`, or an error naming its exact value when it does not fit in an `i64`.
    pub(super) fn get_checked(&self, i: usize, loc: &Loc) -> Result<Option<i64>> {
        self.get_wide(i)
            .map(|x| {
                i64::try_from(x).map_err(|_| loc.err(format!("value {x} does not fit in an i64")))
            })
            .transpose()
    }
}

/// Where a value sits, for errors: file, 0-based row of the file, column.
pub(super) struct Loc<'a> {
    pub(super) file: &'a Path,
    pub(super) row: usize,
    pub(super) column: &'static str,
}

impl Loc<'_> {
    pub(super) fn err(&self, msg: impl Into<String>) -> Error {
        Error::data(self.file, Some(self.row), Some(self.column), msg)
    }
}

/// Item ids are checked against this bound (`V`, or [`max_items`] when V comes from the data).
#[derive(Clone, Copy)]
pub(super) struct Bound(pub(super) Option<usize>);

impl Bound {
    #[inline]
    pub(super) fn check(self, x: i128, loc: &Loc) -> Result<u32> {
        let limit = match self.0 {
            Some(n) => n as i128,
            None => i128::from(max_items().min(u64::from(u32::MAX))),
        };
        if x < 0 || x >= limit {
            let why = match self.0 {
                Some(n) => format!("outside [0, {n})"),
                None if x < 0 => "negative".to_string(),
                None => format!("too large: {}", items_limit_text()),
            };
            return Err(loc.err(format!("item id {x} is {why}")));
        }
        Ok(x as u32)
    }
}

/// A `list<int>` column (offsets of either width) with its values downcast once.
pub(super) struct IntList<'a> {
    pub(super) name: &'static str,
    array: &'a dyn Array,
    offsets: Vec<usize>,
    values: Ints<'a>,
}

impl<'a> IntList<'a> {
    /// `a` as a list of integers; `None` if it is not one.
    pub(super) fn new(name: &'static str, a: &'a dyn Array) -> Option<Self> {
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
    pub(super) fn get(&self, i: usize, loc: &Loc) -> Result<Option<Vec<i64>>> {
        self.range(i)
            .map(|r| {
                r.map(|j| (self.values.get_checked(j, loc)?).ok_or_else(|| loc.err("null element")))
                    .collect()
            })
            .transpose()
    }

    /// Row `i` as item ids within `bound`.
    pub(super) fn ids(&self, i: usize, loc: &Loc, bound: Bound) -> Result<Vec<u32>> {
        let r = self.range(i).ok_or_else(|| loc.err("null list"))?;
        r.map(|j| {
            let x = (self.values.get_wide(j)).ok_or_else(|| loc.err("null element"))?;
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
pub(super) struct PrefixList<'a> {
    outer: &'a dyn Array,
    outer_offsets: Vec<usize>,
    pub(super) inner: IntList<'a>,
}

impl<'a> PrefixList<'a> {
    pub(super) fn new(name: &'static str, a: &'a dyn Array) -> Option<Self> {
        let (outer_offsets, inner) = list_parts(a)?;
        Some(PrefixList {
            outer: a,
            outer_offsets,
            inner: IntList::new(name, inner)?,
        })
    }

    /// Row `i` as non-empty prefixes of item ids within `bound`.
    pub(super) fn get(&self, i: usize, loc: &Loc, bound: Bound) -> Result<Vec<Vec<u32>>> {
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

pub(super) fn column<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    b.schema_ref().index_of(name).ok().map(|i| b.column(i))
}

/// A required or optional column of a given kind, with a clear error if it has the wrong type.
pub(super) fn typed<'a, T>(
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

pub(super) fn string_at(a: &dyn Array, i: usize) -> Option<String> {
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
pub(super) fn batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch>> + '_> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let perr = move |e: &dyn std::fmt::Display| {
        Error::data(
            path,
            None,
            None,
            format!("not a readable Parquet file: {e}"),
        )
    };
    // The parquet crate asserts some invariants of a file's metadata (e.g. non-negative column
    // offsets) with a panic; a damaged or crafted file is an error here instead.
    let caught = move |payload: Box<dyn std::any::Any + Send>| {
        let msg = (payload.downcast_ref::<String>().cloned())
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        perr(&format!("damaged metadata ({msg})"))
    };
    let open = || -> Result<_> {
        ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| perr(&e))?
            .build()
            .map_err(|e| perr(&e))
    };
    let mut reader = catch_unwind(AssertUnwindSafe(open)).map_err(caught)??;
    Ok(std::iter::from_fn(move || {
        match catch_unwind(AssertUnwindSafe(|| reader.next())) {
            Ok(b) => b.map(|b| b.map_err(|e| perr(&e))),
            Err(payload) => Some(Err(caught(payload))),
        }
    }))
}
