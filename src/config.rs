//! The run configuration: TOML mirroring the seed notebook's `CFG`, every key overridable with
//! `--set section.key=value`. Unknown keys and invalid values are errors that name the key.
//!
//! Relative paths (data files, the warm-start checkpoint) are taken relative to the current
//! working directory, in a file and in `--set` alike.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[data]`: episode files. `val` and `test` may be empty (no validation / no test evaluation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub train: String,
    pub val: String,
    pub test: String,
    /// The train pairs (`pairs_train.parquet` from `prepare`) that `recmaml pretrain` fits the
    /// global GRU4Rec model on.
    pub pairs_train: String,
}

/// `[model]`: sizes. V (`n_items`) comes from the data or the warm-start checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub embed_dim: usize,
    pub hidden_dim: usize,
}

/// `[maml]`: the inner and outer loops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MamlConfig {
    pub inner_lr: f64,
    pub outer_lr: f64,
    pub inner_steps: usize,
    pub meta_batch_size: usize,
    pub num_meta_iterations: u64,
    /// Validate every this many iterations; 0 disables validation.
    pub val_every: u64,
    /// Write a checkpoint every this many iterations; 0 disables checkpoints.
    pub checkpoint_every: u64,
    /// Total-norm clip of the meta-gradient; 0 disables it.
    pub grad_clip: f64,
}

/// `[recency]`: the support-pair weighting of the inner loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecencyConfig {
    /// `equal`, `exponential`, `linear`, `softmax` or `time`.
    pub weighting_scheme: String,
    pub lambda: f64,
    pub temperature: f64,
    /// Time constant of the `time` scheme, in seconds.
    pub tau: f64,
}

/// `[warmstart]`: start meta-training from a pretrained checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WarmstartConfig {
    pub use_warmstart: bool,
    pub pretrained_path: String,
}

/// `[pretrain]`: the global GRU4Rec model (`recmaml pretrain`), next-item CE with Adam.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Dropout on the final hidden state, during training only.
    pub dropout: f64,
    /// Prefixes are cut to their last this many items.
    pub max_prefix_len: usize,
}

/// `[matrix]`: the comparison matrix and ablation (`recmaml matrix`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatrixConfig {
    /// Every row is trained and evaluated once per seed (`run.seed` is ignored).
    pub seeds: Vec<u64>,
    /// Rows to run, by name (empty: all); see `recmaml matrix --help`.
    pub rows: Vec<String>,
}

/// `[run]`: seed and backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub seed: u64,
    /// `cpu`, `cuda` or `auto`.
    pub backend: String,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub maml: MamlConfig,
    pub recency: RecencyConfig,
    pub warmstart: WarmstartConfig,
    pub run: RunConfig,
    pub pretrain: PretrainConfig,
    pub matrix: MatrixConfig,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            epochs: 10,
            batch_size: 256,
            lr: 1e-3,
            dropout: 0.2,
            max_prefix_len: 50,
        }
    }
}

impl Default for MatrixConfig {
    fn default() -> Self {
        MatrixConfig {
            seeds: vec![42, 43, 44],
            rows: Vec::new(),
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            embed_dim: 64,
            hidden_dim: 64,
        }
    }
}

impl Default for MamlConfig {
    fn default() -> Self {
        MamlConfig {
            inner_lr: 0.01,
            outer_lr: 0.001,
            inner_steps: 5,
            meta_batch_size: 32,
            num_meta_iterations: 3000,
            val_every: 100,
            checkpoint_every: 500,
            grad_clip: 10.0,
        }
    }
}

impl Default for RecencyConfig {
    fn default() -> Self {
        RecencyConfig {
            weighting_scheme: "exponential".into(),
            lambda: 0.5,
            temperature: 1.0,
            tau: 86_400.0,
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: 42,
            backend: "cpu".into(),
        }
    }
}

/// The recency schemes a configuration may name.
pub const SCHEMES: [&str; 5] = ["equal", "exponential", "linear", "softmax", "time"];

/// The backends a configuration may name.
pub const BACKENDS: [&str; 3] = ["cpu", "cuda", "auto"];

impl RecencyConfig {
    /// The weighting scheme this section names (validated by [`Config::validate`]).
    pub fn scheme(&self) -> crate::model::Recency {
        use crate::model::Recency;
        match self.weighting_scheme.as_str() {
            "equal" => Recency::Equal,
            "linear" => Recency::Linear,
            "softmax" => Recency::Softmax {
                temperature: self.temperature,
            },
            "time" => Recency::Time { tau: self.tau },
            _ => Recency::Exponential {
                lambda: self.lambda,
            },
        }
    }
}

impl Config {
    /// Defaults, then the TOML file (if any), then each `key=value` override in order; validated.
    pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Config> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                toml::from_str::<toml::Table>(&text).map_err(|e| {
                    Error::config(path.display().to_string(), format!("invalid TOML: {e}"))
                })?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| Error::Other(format!("serialising default config: {e}")))?;
        check_known_keys(&table, &defaults, file)?;
        for set in sets {
            apply_set(&mut table, &defaults, set)?;
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::config("config", e.message().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value that does not depend on the data.
    pub fn validate(&self) -> Result<()> {
        let m = &self.maml;
        positive("maml.inner_lr", m.inner_lr)?;
        positive("maml.outer_lr", m.outer_lr)?;
        finite_nonneg("maml.grad_clip", m.grad_clip)?;
        at_least_one("maml.inner_steps", m.inner_steps as u64)?;
        at_least_one("maml.meta_batch_size", m.meta_batch_size as u64)?;
        at_least_one("model.embed_dim", self.model.embed_dim as u64)?;
        at_least_one("model.hidden_dim", self.model.hidden_dim as u64)?;
        let r = &self.recency;
        if !SCHEMES.contains(&r.weighting_scheme.as_str()) {
            return Err(Error::config(
                "recency.weighting_scheme",
                format!("`{}` is not one of {SCHEMES:?}", r.weighting_scheme),
            ));
        }
        if !r.lambda.is_finite() {
            return Err(Error::config("recency.lambda", "must be a finite number"));
        }
        positive("recency.temperature", r.temperature)?;
        positive("recency.tau", r.tau)?;
        if !BACKENDS.contains(&self.run.backend.as_str()) {
            return Err(Error::config(
                "run.backend",
                format!("`{}` is not one of {BACKENDS:?}", self.run.backend),
            ));
        }
        let p = &self.pretrain;
        at_least_one("pretrain.epochs", p.epochs as u64)?;
        at_least_one("pretrain.batch_size", p.batch_size as u64)?;
        at_least_one("pretrain.max_prefix_len", p.max_prefix_len as u64)?;
        positive("pretrain.lr", p.lr)?;
        if !(0.0..1.0).contains(&p.dropout) {
            return Err(Error::config(
                "pretrain.dropout",
                format!("must be in [0, 1), got {}", p.dropout),
            ));
        }
        if self.matrix.seeds.is_empty() {
            return Err(Error::config("matrix.seeds", "needs at least one seed"));
        }
        if self.warmstart.use_warmstart && self.warmstart.pretrained_path.is_empty() {
            return Err(Error::config(
                "warmstart.pretrained_path",
                "is empty but warmstart.use_warmstart = true",
            ));
        }
        Ok(())
    }

    /// The configuration as pretty TOML (what a run used, for its report).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// `path` as a `PathBuf` when non-empty.
    pub fn optional_path(path: &str) -> Option<PathBuf> {
        (!path.is_empty()).then(|| PathBuf::from(path))
    }

    /// Every key (`section.key`) whose value differs between `self` and `other`, in key order,
    /// with both values as TOML text (`self`'s first).
    pub fn differences(&self, other: &Config) -> Vec<KeyDifference> {
        let flat = |c: &Config| -> std::collections::BTreeMap<String, String> {
            let table = toml::Table::try_from(c).unwrap_or_default();
            table
                .iter()
                .flat_map(|(section, v)| {
                    v.as_table()
                        .into_iter()
                        .flatten()
                        .map(move |(k, v)| (format!("{section}.{k}"), v.to_string()))
                })
                .collect()
        };
        let (a, b) = (flat(self), flat(other));
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| KeyDifference {
                key: k.clone(),
                this: a.get(k).cloned().unwrap_or_else(|| "(none)".into()),
                other: b.get(k).cloned().unwrap_or_else(|| "(none)".into()),
            })
            .collect()
    }
}

/// One key on which two configurations differ ([`Config::differences`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDifference {
    /// `section.key`.
    pub key: String,
    /// The value in the configuration `differences` was called on, as TOML.
    pub this: String,
    /// The value in the other one, as TOML.
    pub other: String,
}

fn positive(key: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            key,
            format!("must be a finite number > 0, got {v}"),
        ))
    }
}

fn finite_nonneg(key: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            key,
            format!("must be a finite number >= 0, got {v}"),
        ))
    }
}

fn at_least_one(key: &str, v: u64) -> Result<()> {
    if v >= 1 {
        Ok(())
    } else {
        Err(Error::config(key, format!("must be >= 1, got {v}")))
    }
}

fn check_known_keys(
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
fn apply_set(table: &mut toml::Table, defaults: &toml::Table, set: &str) -> Result<()> {
    let Some((key, raw)) = set.split_once('=') else {
        return Err(Error::config(set, "expected --set section.key=value"));
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
                format!("`{raw}` is not a valid {}", d.type_str()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_mirror_the_seed() {
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(c.maml.inner_lr, 0.01);
        assert_eq!(c.maml.meta_batch_size, 32);
        assert_eq!(c.maml.num_meta_iterations, 3000);
        assert_eq!(c.recency.weighting_scheme, "exponential");
        assert_eq!(c.run.seed, 42);
    }

    #[test]
    fn set_overrides_and_converts_types() {
        let c = Config::load(
            None,
            &sets(&[
                "maml.inner_lr=1",
                "maml.inner_steps=3",
                "data.train=a/b.parquet",
                "recency.weighting_scheme=\"linear\"",
                "warmstart.use_warmstart=true",
                "warmstart.pretrained_path=w.safetensors",
            ]),
        )
        .unwrap();
        assert_eq!(c.maml.inner_lr, 1.0);
        assert_eq!(c.maml.inner_steps, 3);
        assert_eq!(c.data.train, "a/b.parquet");
        assert_eq!(c.recency.weighting_scheme, "linear");
        assert!(c.warmstart.use_warmstart);
    }

    #[test]
    fn errors_name_the_key() {
        for (set, key) in [
            ("maml.inner_lr=0", "maml.inner_lr"),
            ("maml.outer_lr=-1", "maml.outer_lr"),
            ("maml.inner_lr=nan", "maml.inner_lr"),
            ("maml.inner_steps=0", "maml.inner_steps"),
            ("maml.bogus=1", "maml.bogus"),
            ("nosuch.key=1", "nosuch.key"),
            ("maml.inner_steps=abc", "maml.inner_steps"),
            ("recency.weighting_scheme=cubic", "recency.weighting_scheme"),
            ("run.backend=tpu", "run.backend"),
        ] {
            let err = Config::load(None, &sets(&[set])).unwrap_err().to_string();
            assert!(err.contains(key), "{set}: {err}");
        }
    }

    #[test]
    fn differences_name_each_changed_key_with_both_values() {
        let a = Config::load(None, &sets(&["maml.inner_lr=0.1", "data.train=a.parquet"])).unwrap();
        assert!(a.differences(&a).is_empty());
        let b = Config::load(
            None,
            &sets(&[
                "maml.inner_lr=0.2",
                "data.train=a.parquet",
                "matrix.seeds=[1, 2]",
            ]),
        )
        .unwrap();
        let d = a.differences(&b);
        let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["maml.inner_lr", "matrix.seeds"]);
        assert_eq!((d[0].this.as_str(), d[0].other.as_str()), ("0.1", "0.2"));
        assert_eq!(d[1].this, "[42, 43, 44]");
        assert_eq!(d[1].other, "[1, 2]");
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[maml]\ninner_lr = 0.1\nstepz = 3\n").unwrap();
        let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
        assert!(
            err.contains("maml.stepz") && err.contains("c.toml"),
            "{err}"
        );
        std::fs::write(&path, "[maml]\ninner_lr = 0.1\n").unwrap();
        assert_eq!(Config::load(Some(&path), &[]).unwrap().maml.inner_lr, 0.1);
    }
}
