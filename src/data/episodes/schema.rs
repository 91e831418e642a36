//! Which of the three episode schemas a record batch has, and its columns downcast once: the
//! issue's and the seed's (prefix and label lists; the adds label times) or upstream's
//! (pair ids, resolved against the split's pairs file, read when first needed).

use super::columns::{column, typed, IntList, Ints, PrefixList};
use super::pairs::{read_pairs_beside, PairRow};
use crate::error::{Error, Result};
use arrow::array::{ArrayRef, RecordBatch};
use std::collections::HashMap;
use std::path::Path;

/// The pair and label columns of one batch.
#[allow(clippy::large_enum_variant)] // one per batch
pub(super) enum Body<'a> {
    /// The or the seed's schema: prefixes and labels inline.
    Own {
        sp: PrefixList<'a>,
        sl: IntList<'a>,
        qp: PrefixList<'a>,
        ql: IntList<'a>,
    },
    /// Upstream's schema: pair ids into the split's pairs file.
    Upstream { sid: IntList<'a>, qid: IntList<'a> },
}

/// The columns of a batch every schema may have.
pub(super) struct Header<'a> {
    pub(super) episode_id: Option<Ints<'a>>,
    pub(super) user_id: Option<&'a ArrayRef>,
    pub(super) support_ts: Option<IntList<'a>>,
    pub(super) query_ts: Option<IntList<'a>>,
}

/// The body of batch `b` of `path`; for upstream's schema, reads the pairs file into `pairs`
/// when it is not read yet.
pub(super) fn body<'a>(
    b: &'a RecordBatch,
    path: &Path,
    pairs: &mut Option<HashMap<i64, PairRow>>,
) -> Result<Body<'a>> {
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
        if pairs.is_none() {
            *pairs = Some(read_pairs_beside(path)?);
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

/// The optional columns of batch `b` of `path`.
pub(super) fn header<'a>(b: &'a RecordBatch, path: &Path) -> Result<Header<'a>> {
    let ts_list = |name| typed(b, name, path, false, IntList::new, "list<int>");
    Ok(Header {
        episode_id: column(b, "episode_id").and_then(|a| Ints::try_new(a.as_ref())),
        user_id: column(b, "user_id"),
        support_ts: ts_list("support_label_ts")?,
        query_ts: ts_list("query_label_ts")?,
    })
}
