//! The sessions of a pairs file, as item sets: what session-KNN compares a prefix with.

use super::columns::{batches, column, string_at, typed, IntList, Ints, Loc};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The sessions of a pairs file written by `prepare` (columns `session_id`, `prefix`, `label`,
/// optionally `user_id`): the rows grouped by (`user_id`, `session_id`), each session as the
/// distinct items of its prefixes and labels in order of first appearance, the sessions in order
/// of their first row. Ids must lie in `1..n_items`; errors name the file, row and column.
pub fn read_pair_sessions(path: &Path, n_items: usize) -> Result<Vec<Vec<u32>>> {
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut sessions: Vec<Vec<u32>> = Vec::new();
    let mut seen: HashSet<(usize, u32)> = HashSet::new();
    let mut row = 0usize;
    for b in batches(path)? {
        let b = b?;
        let labels =
            typed(&b, "label", path, true, |_, a| Ints::try_new(a), "integers")?.expect("required");
        let prefix = typed(&b, "prefix", path, true, IntList::new, "list<int>")?.expect("required");
        let sid = column(&b, "session_id")
            .ok_or_else(|| Error::data(path, None, Some("session_id"), "missing column"))?;
        let uid = column(&b, "user_id");
        for i in 0..b.num_rows() {
            let loc = |column| Loc {
                file: path,
                row,
                column,
            };
            let s = string_at(sid.as_ref(), i).ok_or_else(|| loc("session_id").err("null"))?;
            let u = uid
                .and_then(|a| string_at(a.as_ref(), i))
                .unwrap_or_default();
            let items = prefix
                .get(i, &loc("prefix"))?
                .ok_or_else(|| loc("prefix").err("null list"))?;
            let label = labels.get(i).ok_or_else(|| loc("label").err("null"))?;
            let next = sessions.len();
            let k = *index.entry((u, s)).or_insert(next);
            if k == next {
                sessions.push(Vec::new());
            }
            for (id, column) in items
                .iter()
                .map(|&x| (x, "prefix"))
                .chain([(label, "label")])
            {
                if id < 1 || id as usize >= n_items {
                    return Err(loc(column).err(format!("item id {id} is outside 1..{n_items}")));
                }
                let id = id as u32;
                if seen.insert((k, id)) {
                    sessions[k].push(id);
                }
            }
            row += 1;
        }
    }
    Ok(sessions)
}
