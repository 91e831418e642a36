//! One (row, seed) of the matrix: reused from its file under `OUT/rows/` when it was computed
//! with the same configuration, else computed (from the seed's pretrained model, or by a training
//! run under `OUT/runs/` that continues from its last checkpoint) and stored.

use super::knn;
use super::report::SeedResult;
use super::rows::{maml_config, pretrain_config, Kind, RowSpec};
use crate::config::Config;
use crate::data;
use crate::error::{Error, Result};
use crate::evaluate::EpisodeRecord;
use crate::metrics;
use crate::pretrain;
use crate::train::{self, TrainOptions, WeightedSet};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the matrix keeps its per-row state.
pub(super) struct Layout {
    out: PathBuf,
}

impl Layout {
    pub(super) fn new(out: &Path) -> Self {
        Layout {
            out: out.to_path_buf(),
        }
    }
    fn seed_file(&self, row: &str, seed: u64) -> PathBuf {
        self.out
            .join("rows")
            .join(row)
            .join(format!("seed{seed}.json"))
    }
    fn run_dir(&self, row: &str, seed: u64) -> PathBuf {
        self.out.join("runs").join(row).join(format!("seed{seed}"))
    }
    fn pretrain_dir(&self, seed: u64) -> PathBuf {
        self.out.join(Self::pretrain_rel(seed))
    }
    /// The pretrained model's folder of `seed`, relative to the matrix folder.
    fn pretrain_rel(seed: u64) -> PathBuf {
        Path::new("pretrain").join(format!("seed{seed}"))
    }
}

/// The JSON file at `path`, or `None` when it is missing or unreadable.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Per test episode: its id and the five metrics, zero- and few-shot.
fn per_episode(records: &[EpisodeRecord]) -> (Vec<i64>, Vec<[f64; 5]>, Vec<[f64; 5]>) {
    let ids = records.iter().map(|r| r.episode_id).collect();
    let z = records
        .iter()
        .map(|r| metrics::episode_metrics(&r.zero_shot_rank))
        .collect();
    let f = records
        .iter()
        .map(|r| metrics::episode_metrics(&r.few_shot_rank))
        .collect();
    (ids, z, f)
}

/// The pretrained model of `seed`, from `cache` or else [`load_or_pretrain`] (once per seed).
fn ensure_pretrained<'a>(
    cfg: &Config,
    seed: u64,
    lay: &Layout,
    cache: &'a mut PretrainedCache,
) -> Result<&'a pretrain::Pretrained> {
    match cache.entry(seed) {
        std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
        std::collections::btree_map::Entry::Vacant(e) => {
            Ok(e.insert(load_or_pretrain(cfg, seed, lay)?))
        }
    }
}

/// Trains the model of `seed` unless a finished one with the same settings is in its folder
/// (then only its test records are recomputed).
fn load_or_pretrain(cfg: &Config, seed: u64, lay: &Layout) -> Result<pretrain::Pretrained> {
    let dir = lay.pretrain_dir(seed);
    let pcfg = pretrain_config(cfg, seed);
    let key = pcfg.to_toml();
    let marker = dir.join("matrix_key.toml");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&key) {
        if let Some(p) = pretrain::load_finished(&pcfg, &dir)? {
            return Ok(p);
        }
    }
    eprintln!("[matrix] pretraining GRU4Rec (seed {seed})");
    let p = pretrain::pretrain(&pcfg, &dir, true)?;
    crate::util::atomic_write(&marker, key.as_bytes())?;
    Ok(p)
}

/// Each seed's pretrained model, loaded (or trained) once for all rows that need it.
pub(super) type PretrainedCache = BTreeMap<u64, pretrain::Pretrained>;

/// One (row, seed): reused from its file when the key matches (`false`), else computed and stored
/// (`true`).
pub(super) fn row_seed(
    cfg: &Config,
    row: &RowSpec,
    seed: u64,
    lay: &Layout,
    pretrained: &mut PretrainedCache,
) -> Result<(SeedResult, bool)> {
    // A warm-started row's key names its pretrained checkpoint relative to the matrix folder, so
    // a moved or copied folder still matches (the checkpoint itself is keyed by its own
    // settings, which are part of this key); results stored with the full path still match it.
    let (row_cfg, key, path_key) = match row.kind {
        Kind::Maml(_) => {
            let ck = lay.pretrain_dir(seed).join(pretrain::CHECKPOINT_NAME);
            let in_folder = Path::new("<matrix folder>")
                .join(Layout::pretrain_rel(seed))
                .join(pretrain::CHECKPOINT_NAME);
            let row_cfg = maml_config(cfg, row, seed, &ck);
            let key = maml_config(cfg, row, seed, &in_folder).to_toml();
            let path_key = row_cfg.to_toml();
            (row_cfg, key, Some(path_key))
        }
        _ => {
            let row_cfg = pretrain_config(cfg, seed);
            let mut key = row_cfg.to_toml();
            if row.kind == Kind::SessionKnn {
                let p = knn::KNN_PARAMS;
                key += &format!("# session-knn k = {}, window = {}\n", p.k, p.window);
            }
            (row_cfg, key, None)
        }
    };
    let file = lay.seed_file(row.name, seed);
    if let Some(r) =
        read_json::<SeedResult>(&file).filter(|r| r.key == key || path_key.as_ref() == Some(&r.key))
    {
        return Ok((r, false));
    }
    let started = Instant::now();
    let mut res = match row.kind {
        Kind::Gru4Rec | Kind::Popularity => baseline(cfg, row, seed, key, lay, pretrained)?,
        Kind::SessionKnn => session_knn(cfg, row, seed, key)?,
        Kind::Maml(m) => {
            if m.warm {
                ensure_pretrained(cfg, seed, lay, pretrained)?;
            }
            meta_trained(&row_cfg, row, seed, key, lay)?
        }
    };
    if res.wall_time_s == 0.0 {
        res.wall_time_s = started.elapsed().as_secs_f64();
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    train::write_json(&file, &res)?;
    Ok((res, true))
}

/// A result from test records, without validation history or time.
fn seed_result(row: &RowSpec, seed: u64, key: String, records: &[EpisodeRecord]) -> SeedResult {
    let (ids, z, f) = per_episode(records);
    SeedResult {
        row: row.name.into(),
        seed,
        key,
        episode_ids: ids,
        zero_shot: z,
        few_shot: f,
        val_iteration: Vec::new(),
        val_acc1: Vec::new(),
        best_iteration: None,
        wall_time_s: 0.0,
    }
}

/// A baseline row (GRU4Rec or popularity) from the seed's pretrained model. The baselines do not
/// adapt: few-shot is their only prediction.
fn baseline(
    cfg: &Config,
    row: &RowSpec,
    seed: u64,
    key: String,
    lay: &Layout,
    pretrained: &mut PretrainedCache,
) -> Result<SeedResult> {
    let p = ensure_pretrained(cfg, seed, lay, pretrained)?;
    let gru4rec = row.kind == Kind::Gru4Rec;
    let records = if gru4rec {
        &p.gru4rec_records
    } else {
        &p.popularity_records
    };
    let mut res = seed_result(row, seed, key, records);
    // Pretraining's time counts once, in the GRU4Rec row; the popularity row gets its own
    // (elapsed) time.
    if gru4rec {
        res.wall_time_s = p.report.wall_time_s;
    }
    Ok(res)
}

/// The session-KNN row: its records on the test episodes, from the train pairs' sessions.
fn session_knn(cfg: &Config, row: &RowSpec, seed: u64, key: String) -> Result<SeedResult> {
    let path = Path::new(&cfg.data.pairs_train);
    if cfg.data.pairs_train.is_empty() {
        return Err(Error::config(
            "data.pairs_train",
            "session-KNN needs the train pairs (pairs_train.parquet from `recmaml prepare`)",
        ));
    }
    let pairs = data::read_pair_file(path, None)?;
    let v = pairs.n_items;
    let sessions = data::read_pair_sessions(path, v)?;
    let popularity = pretrain::popularity_scores(&pairs, v)
        .into_iter()
        .map(f64::from)
        .collect();
    let knn = knn::SessionKnn::new(sessions, popularity, knn::KNN_PARAMS);
    let test = WeightedSet::load(Path::new(&cfg.data.test), Some(v), cfg)?;
    Ok(seed_result(row, seed, key, &knn.records(&test)))
}

/// A MAML row: trains (or continues training) in the row's run folder and evaluates on the test
/// episodes.
fn meta_trained(
    row_cfg: &Config,
    row: &RowSpec,
    seed: u64,
    key: String,
    lay: &Layout,
) -> Result<SeedResult> {
    let dir = lay.run_dir(row.name, seed);
    // A run folder left by a different configuration is the matrix's own: start over.
    let marker = dir.join("matrix_key.toml");
    if dir.exists() && std::fs::read_to_string(&marker).ok().as_deref() != Some(&key) {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    crate::util::atomic_write(&marker, key.as_bytes())?;
    let opts = TrainOptions {
        out: dir,
        resume: true,
        force: false,
        stop_after: None,
        quiet: true,
    };
    let tr = train::train(row_cfg, &opts)?;
    let mut res = seed_result(row, seed, key, &tr.test_records);
    res.val_iteration = tr.history.val_iteration.clone();
    res.val_acc1 = tr.history.val_acc1.clone();
    res.best_iteration = tr.best_iteration;
    Ok(res)
}
