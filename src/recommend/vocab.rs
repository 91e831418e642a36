//! The vocabulary `prepare` writes (`vocab/item2id.json` or `vocab/course2id.json`: item name ->
//! id, ids `1..=n`), read back for turning names into ids and ids into names.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Item names and their ids (0 is padding and has no name).
#[derive(Clone, Debug)]
pub struct Vocab {
    /// The file it was read from.
    pub path: PathBuf,
    /// `names[id - 1]` is the name of item `id`.
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// Reads a vocabulary file, or the `item2id.json` / `course2id.json` inside a folder.
    pub fn load(path: &Path) -> Result<Self> {
        let file = if path.is_dir() {
            ["item2id.json", "course2id.json"]
                .iter()
                .map(|n| path.join(n))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    Error::data(path, None, None, "no item2id.json or course2id.json here")
                })?
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| {
                Error::data(
                    &file,
                    Some(e.line()),
                    None,
                    format!("not a JSON object: {e}"),
                )
            })?;
        Self::from_pairs(&file, map.into_iter())
    }

    /// A vocabulary from `(name, id)` entries; the ids must be exactly `1..=n`.
    pub fn from_pairs(
        file: &Path,
        entries: impl Iterator<Item = (String, serde_json::Value)>,
    ) -> Result<Self> {
        let entries: Vec<(String, serde_json::Value)> = entries.collect();
        let n = entries.len();
        let mut names = vec![None; n];
        let mut ids = HashMap::with_capacity(n);
        for (name, v) in entries {
            let bad = || {
                Error::data(
                    file,
                    None,
                    Some(&name),
                    format!("the id must be an integer in 1..={n} used once, got {v}"),
                )
            };
            let id = v
                .as_u64()
                .filter(|&i| (1..=n as u64).contains(&i))
                .ok_or_else(bad)?;
            let slot = &mut names[id as usize - 1];
            if slot.is_some() {
                return Err(bad());
            }
            *slot = Some(name.clone());
            ids.insert(name, id as u32);
        }
        Ok(Vocab {
            path: file.to_path_buf(),
            names: names.into_iter().map(Option::unwrap_or_default).collect(),
            ids,
        })
    }

    /// A vocabulary of `names` in id order (id of `names[i]` is `i + 1`).
    pub fn from_names(path: &Path, names: Vec<String>) -> Self {
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32 + 1))
            .collect();
        Vocab {
            path: path.to_path_buf(),
            names,
            ids,
        }
    }

    /// The id of `name`, if it is in the vocabulary.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of item `id` (`1..=len`).
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize - 1]
    }

    /// Number of named items (the model's V is this plus one, for padding).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no item has a name.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}
