//! What an episode or pair file's name and folder say: K and Q (`..._K{K}_Q{Q}...`), the split
//! (`episodes_{split}_...`), the pairs file of that split, and V from the vocabulary beside it.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// `(K, Q)` from `..._K{K}_Q{Q}...` in the file name.
pub(super) fn kq_from_name(path: &Path) -> Option<(usize, usize)> {
    let stem = path.file_stem()?.to_str()?;
    let parts: Vec<&str> = stem.split('_').collect();
    parts.windows(2).find_map(|w| {
        let k = w[0].strip_prefix('K')?.parse().ok()?;
        let q = w[1].strip_prefix('Q')?.parse().ok()?;
        Some((k, q))
    })
}

/// The split name from `episodes_{split}_...parquet`.
fn split_of(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let rest = stem.strip_prefix("episodes_")?;
    Some(rest.split('_').next()?.to_string())
}

/// The `pairs_{split}.parquet` of an upstream episode file: in the same folder, its parent, or
/// `../pairs/`.
pub(super) fn pairs_file_for(path: &Path) -> Result<PathBuf> {
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
    let found = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
        Error::data(
            path,
            None,
            Some("support_pair_ids"),
            format!("upstream schema, but no {name} found at {candidates:?}"),
        )
    })?;
    Ok(found.clone())
}

/// The number of entries of `../vocab/item2id.json` (or `course2id.json`) relative to the
/// episode file's folder, if there is one.
pub(super) fn vocab_size(path: &Path) -> Result<Option<usize>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    vocab_size_in(&dir.join("..").join("vocab"))
}

/// The number of entries of `item2id.json` (or `course2id.json`) in `dir`, if there is one.
pub(super) fn vocab_size_in(dir: &Path) -> Result<Option<usize>> {
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
