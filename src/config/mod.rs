//! The run configuration: TOML mirroring the seed notebook's `CFG`, every key overridable with
//! `--set section.key=value`. Unknown keys and invalid values are errors that name the key.
//!
//! Relative paths (data files, the warm-start checkpoint) are taken relative to the current
//! working directory, in a file and in `--set` alike.

mod choices;
mod overrides;

pub use choices::{BackendKind, WeightingScheme};

use crate::error::{Error, Result};
use crate::util::limits::elide_long_lines;
use overrides::{apply_set, check_known_keys};
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
    pub weighting_scheme: WeightingScheme,
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
    /// Residual warm start: the L2 penalty `(μ/2)·‖θ − θ_pre‖²` on the learned delta from the
    /// frozen pretrained weights θ_pre, added to the meta-loss (0: no penalty, and the residual
    /// parametrisation is exactly warm-start MAML). Needs `use_warmstart`.
    pub residual_l2: f64,
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
    /// The residual warm-start row's `warmstart.residual_l2`.
    pub residual_l2: f64,
}

/// `[run]`: seed and backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub seed: u64,
    pub backend: BackendKind,
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
            residual_l2: 0.0,
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
            weighting_scheme: WeightingScheme::Exponential,
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
            backend: BackendKind::Cpu,
        }
    }
}

impl RecencyConfig {
    /// The weighting this section describes: its scheme with the scheme's parameter.
    pub fn scheme(&self) -> crate::model::Recency {
        use crate::model::Recency;
        match self.weighting_scheme {
            WeightingScheme::Equal => Recency::Equal,
            WeightingScheme::Exponential => Recency::Exponential {
                lambda: self.lambda,
            },
            WeightingScheme::Linear => Recency::Linear,
            WeightingScheme::Softmax => Recency::Softmax {
                temperature: self.temperature,
            },
            WeightingScheme::Time => Recency::Time { tau: self.tau },
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
                    let msg = elide_long_lines(&format!("invalid TOML: {e}"));
                    Error::config(path.display().to_string(), msg)
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
        let cfg: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let msg = elide_long_lines(e.inner().message());
                Error::config(e.path().to_string(), msg)
            })?;
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
        at_least_one("maml.num_meta_iterations", m.num_meta_iterations)?;
        at_least_one("model.embed_dim", self.model.embed_dim as u64)?;
        at_least_one("model.hidden_dim", self.model.hidden_dim as u64)?;
        self.check_model_memory()?;
        let r = &self.recency;
        if !r.lambda.is_finite() {
            return Err(Error::config("recency.lambda", "must be a finite number"));
        }
        positive("recency.temperature", r.temperature)?;
        positive("recency.tau", r.tau)?;
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
        finite_nonneg("warmstart.residual_l2", self.warmstart.residual_l2)?;
        finite_nonneg("matrix.residual_l2", self.matrix.residual_l2)?;
        if self.warmstart.residual_l2 > 0.0 && !self.warmstart.use_warmstart {
            return Err(Error::config(
                "warmstart.residual_l2",
                "penalises the delta from the pretrained weights: it needs warmstart.use_warmstart = true",
            ));
        }
        if self.warmstart.use_warmstart && self.warmstart.pretrained_path.is_empty() {
            return Err(Error::config(
                "warmstart.pretrained_path",
                "is empty but warmstart.use_warmstart = true",
            ));
        }
        Ok(())
    }

    /// Fails, naming the key, when `model.embed_dim` or `model.hidden_dim` alone (with one item)
    /// would make a parameter vector over the memory limit; V is checked once the data fixes it.
    fn check_model_memory(&self) -> Result<()> {
        let (e, h) = (self.model.embed_dim, self.model.hidden_dim);
        let dims = |embed_dim, hidden_dim| crate::model::ModelDims {
            n_items: 1,
            embed_dim,
            hidden_dim,
        };
        for (key, d) in [
            ("model.embed_dim", dims(e, 1)),
            ("model.hidden_dim", dims(1, h)),
            ("model.embed_dim", dims(e, h)),
        ] {
            d.check_memory()
                .map_err(|msg| Error::config(key, format!("too large: {msg}")))?;
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
        assert_eq!(c.recency.weighting_scheme, WeightingScheme::Exponential);
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
        assert_eq!(c.recency.weighting_scheme, WeightingScheme::Linear);
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
            ("warmstart.residual_l2=-1", "warmstart.residual_l2"),
            ("warmstart.residual_l2=0.5", "warmstart.residual_l2"),
            ("matrix.residual_l2=nan", "matrix.residual_l2"),
        ] {
            let err = Config::load(None, &sets(&[set])).unwrap_err().to_string();
            assert!(err.contains(key), "{set}: {err}");
        }
    }

    #[test]
    fn invalid_values_in_a_file_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (text, want) in [
            (
                "[maml]\ninner_lr = \"abc\"\n",
                "config `maml.inner_lr`: invalid type: string \"abc\", expected f64",
            ),
            (
                "[recency]\nweighting_scheme = \"cubic\"\n",
                "config `recency.weighting_scheme`: `cubic` is not one of [\"equal\", \"exponential\", \"linear\", \"softmax\", \"time\"]",
            ),
            (
                "[run]\nbackend = 1\n",
                "config `run.backend`: invalid type: integer `1`, expected a string",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(Some(&path), &[]).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn schemes_and_backends_are_read_by_name() {
        let c = Config::load(
            None,
            &sets(&["recency.weighting_scheme=softmax", "run.backend=auto"]),
        )
        .unwrap();
        assert_eq!(c.recency.weighting_scheme, WeightingScheme::Softmax);
        assert_eq!(c.run.backend, BackendKind::Auto);
        assert_eq!("cuda".parse::<BackendKind>().unwrap(), BackendKind::Cuda);
        let err = "tpu".parse::<BackendKind>().unwrap_err().to_string();
        assert_eq!(
            err,
            "config `run.backend`: `tpu` is not one of [\"cpu\", \"cuda\", \"auto\"]"
        );
    }

    /// Stored reports and matrix rows are keyed by this text: it must not change for the same
    /// configuration.
    #[test]
    fn the_toml_of_a_configuration_is_stable() {
        let toml = Config::default().to_toml();
        let want = "[data]\ntrain = \"\"\nval = \"\"\ntest = \"\"\npairs_train = \"\"\n\n\
            [model]\nembed_dim = 64\nhidden_dim = 64\n\n\
            [maml]\ninner_lr = 0.01\nouter_lr = 0.001\ninner_steps = 5\nmeta_batch_size = 32\n\
            num_meta_iterations = 3000\nval_every = 100\ncheckpoint_every = 500\ngrad_clip = 10.0\n\n\
            [recency]\nweighting_scheme = \"exponential\"\nlambda = 0.5\ntemperature = 1.0\n\
            tau = 86400.0\n\n\
            [warmstart]\nuse_warmstart = false\npretrained_path = \"\"\nresidual_l2 = 0.0\n\n\
            [run]\nseed = 42\nbackend = \"cpu\"\n\n\
            [pretrain]\nepochs = 10\nbatch_size = 256\nlr = 0.001\ndropout = 0.2\n\
            max_prefix_len = 50\n\n\
            [matrix]\nseeds = [\n    42,\n    43,\n    44,\n]\nrows = []\nresidual_l2 = 0.0\n";
        assert_eq!(toml, want);
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
