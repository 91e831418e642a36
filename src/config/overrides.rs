//! The configuration as a TOML table, before it becomes a [`Config`](super::Config): every key
//! must be one the defaults have, and each `--set section.key=value` is read as the key's type.

use crate::error::{Error, Result};
use crate::util::limits::elide_long_lines;
use std::path::Path;

/// Checks that every section and key of `table` is one of `defaults`; errors name the key and
/// the file.
pub(super) fn check_known_keys(
    table: &toml::Table,
    defaults: &toml::Table,
    file: Option<&Path>,
) -> Result<()> {
    let origin = file
        .map(|f| format!(" (in {})", f.display()))
        .unwrap_or_default();
    for (section, value) in table {
        let Some(known) = defaults.get(section).and_then(|v| v.as_table()) else {
            return Err(Error::config(section, format!("unknown section{origin}")));
        };
        let Some(entries) = value.as_table() else {
            return Err(Error::config(
                section,
                format!("must be a [section]{origin}"),
            ));
        };
        for key in entries.keys() {
            if !known.contains_key(key) {
                return Err(Error::config(
                    format!("{section}.{key}"),
                    format!(
                        "unknown key{origin}; known keys in [{section}]: {}",
                        known.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Applies one `section.key=value` override. The value is read as a TOML value when it parses as
/// one of the key's type (so `0.01`, `true`, `"x"` work), else as a bare string.
pub(super) fn apply_set(table: &mut toml::Table, defaults: &toml::Table, set: &str) -> Result<()> {
    let Some((key, raw)) = set.split_once('=') else {
        return Err(Error::config(
            elide_long_lines(set),
            "expected --set section.key=value",
        ));
    };
    let key = key.trim();
    let raw = raw.trim();
    let Some((section, name)) = key.split_once('.') else {
        return Err(Error::config(
            key,
            "expected section.key, e.g. maml.inner_lr",
        ));
    };
    let default = defaults
        .get(section)
        .and_then(|s| s.as_table())
        .and_then(|s| s.get(name))
        .ok_or_else(|| Error::config(key, "unknown key"))?;
    let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    let value = match (default, parsed) {
        (toml::Value::String(_), Some(v @ toml::Value::String(_))) => v,
        (toml::Value::String(_), _) => toml::Value::String(raw.to_string()),
        (toml::Value::Float(_), Some(toml::Value::Integer(i))) => toml::Value::Float(i as f64),
        (toml::Value::Float(_), _) if raw.eq_ignore_ascii_case("nan") => {
            return Err(Error::config(key, "NaN is not a valid value"));
        }
        (d, Some(v)) if d.type_str() == v.type_str() => v,
        (d, _) => {
            return Err(Error::config(
                key,
                elide_long_lines(&format!("`{raw}` is not a valid {}", d.type_str())),
            ))
        }
    };
    let section_table = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(section_table) = section_table else {
        return Err(Error::config(section, "must be a [section]"));
    };
    section_table.insert(name.to_string(), value);
    Ok(())
}
