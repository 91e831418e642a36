//! A run's inputs, read and validated before anything is written: the episode sets with the
//! support weights of the configured recency scheme ([`WeightedSet`]), the model's sizes and the
//! warm-start checkpoint ([`RunData`]), and the initial θ.

use crate::backend::Task;
use crate::checkpoint::{self, StateDict};
use crate::config::{Config, RecencyConfig};
use crate::data::{self, EpisodeSet};
use crate::error::{Error, Result};
use crate::model::{ModelDims, ParamLayout};
use std::path::Path;

/// Episodes of one split with their support weights.
pub struct WeightedSet {
    pub set: EpisodeSet,
    /// K weights per episode (they differ per episode only for the `time` scheme).
    pub weights: Vec<Vec<f32>>,
}

impl WeightedSet {
    /// Reads `path` (ids checked against `n_items` when given) and computes its weights.
    pub fn load(path: &Path, n_items: Option<usize>, cfg: &Config) -> Result<Self> {
        let set = data::read_episodes(path, n_items)?;
        Self::new(set, cfg)
    }

    /// As [`load`](Self::load), for the file of configuration key `key` (`data.val`, ...): a file
    /// without episodes is an error naming the key and the file.
    pub fn load_key(key: &str, path: &Path, n_items: Option<usize>, cfg: &Config) -> Result<Self> {
        let ws = Self::load(path, n_items, cfg)?;
        if ws.is_empty() {
            return Err(no_episodes(key, path));
        }
        Ok(ws)
    }

    /// Computes the weights of an already-read set.
    pub fn new(set: EpisodeSet, cfg: &Config) -> Result<Self> {
        let weights = set
            .episodes
            .iter()
            .enumerate()
            .map(|(row, ep)| {
                episode_weights(&cfg.recency, set.k, ep.support_label_ts.as_deref()).map_err(|e| {
                    Error::data(
                        &set.path,
                        Some(row),
                        Some("support_label_ts"),
                        e.to_string(),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(WeightedSet { set, weights })
    }

    /// The task of episode `i`.
    pub fn task(&self, i: usize) -> Task<'_> {
        Task::of(&self.set.episodes[i], &self.weights[i])
    }

    /// Number of episodes.
    pub fn len(&self) -> usize {
        self.set.episodes.len()
    }

    /// Whether there are no episodes.
    pub fn is_empty(&self) -> bool {
        self.set.episodes.is_empty()
    }
}

/// The error for the episode file of configuration key `key` that has no episodes.
fn no_episodes(key: &str, path: &Path) -> Error {
    Error::config(
        key,
        format!(
            "{} has no episodes (0 rows); give a file with episodes, or leave {key} empty where \
             it is optional",
            path.display()
        ),
    )
}

/// The K support weights of one episode under the configured scheme, as f32.
pub fn episode_weights(
    recency: &RecencyConfig,
    k: usize,
    label_ts: Option<&[i64]>,
) -> Result<Vec<f32>> {
    Ok(recency
        .scheme()
        .weights(k, label_ts)?
        .into_iter()
        .map(|w| w as f32)
        .collect())
}

/// All inputs of a run, read and validated before anything is written.
pub struct RunData {
    pub dims: ModelDims,
    /// The warm-start checkpoint, read once, when `warmstart.use_warmstart`.
    pub warm_start: Option<StateDict>,
    pub train: WeightedSet,
    pub val: Option<WeightedSet>,
    pub test: Option<WeightedSet>,
}

impl RunData {
    /// Reads train, val and test and fixes V.
    pub fn load(cfg: &Config) -> Result<Self> {
        if cfg.data.train.is_empty() {
            return Err(Error::config("data.train", "no train episode file given"));
        }
        let mut train_set = data::read_episodes(Path::new(&cfg.data.train), None)?;
        if train_set.episodes.is_empty() {
            return Err(no_episodes("data.train", Path::new(&cfg.data.train)));
        }
        let warm_start = cfg
            .warmstart
            .use_warmstart
            .then(|| checkpoint::load_state_dict(Path::new(&cfg.warmstart.pretrained_path)))
            .transpose()?;
        let dims = resolve_dims(cfg, warm_start.as_ref(), train_set.n_items)?;
        // Every id already lies below the file's own V, which is at most the checkpoint's.
        train_set.n_items = dims.n_items;
        if cfg.maml.meta_batch_size > train_set.episodes.len() {
            return Err(Error::config(
                "maml.meta_batch_size",
                format!(
                    "{} is larger than the {} episodes of {}",
                    cfg.maml.meta_batch_size,
                    train_set.episodes.len(),
                    cfg.data.train
                ),
            ));
        }
        let train = WeightedSet::new(train_set, cfg)?;
        let load = |key: &str, p: &str| -> Result<Option<WeightedSet>> {
            Config::optional_path(p)
                .map(|p| WeightedSet::load_key(key, &p, Some(dims.n_items), cfg))
                .transpose()
        };
        Ok(RunData {
            dims,
            warm_start,
            val: load("data.val", &cfg.data.val)?,
            test: load("data.test", &cfg.data.test)?,
            train,
        })
    }
}

/// V for a run: from the warm-start checkpoint when there is one, else from the train file.
fn resolve_dims(cfg: &Config, warm: Option<&StateDict>, train_n_items: usize) -> Result<ModelDims> {
    let mut dims = ModelDims {
        n_items: train_n_items,
        embed_dim: cfg.model.embed_dim,
        hidden_dim: cfg.model.hidden_dim,
    };
    if let Some(sd) = warm {
        let path = Path::new(&cfg.warmstart.pretrained_path);
        let ck = checkpoint::dims_from_state_dict(sd, path)?;
        if ck.n_items < train_n_items {
            return Err(Error::checkpoint(
                path,
                format!(
                    "has {} items but the train episodes use ids up to {}",
                    ck.n_items,
                    train_n_items - 1
                ),
            ));
        }
        dims.n_items = ck.n_items;
        dims.check_memory()
            .map_err(|m| Error::checkpoint(path, m))?;
    }
    dims.check_memory()
        .map_err(|m| Error::data(&cfg.data.train, None, None, m))?;
    Ok(dims)
}

/// Initial θ: the warm-start checkpoint or PyTorch-style initialisation.
pub(super) fn initial_params(
    cfg: &Config,
    warm: Option<&StateDict>,
    layout: &ParamLayout,
) -> Result<Vec<f32>> {
    match warm {
        Some(sd) => checkpoint::params_from_state_dict(
            sd,
            layout,
            Path::new(&cfg.warmstart.pretrained_path),
        ),
        None => Ok(crate::model::init::init_params(layout, cfg.run.seed)),
    }
}
