//! Meta-training: meta-batches drawn without replacement, FOMAML steps on a [`Backend`], validation,
//! `best`/`final` weights, resumable checkpoints, and the run's results and report.

use crate::backend::{AdamState, Backend, InnerLoop, OuterConfig, Task};
use crate::checkpoint::{self, StateDict};
use crate::config::{BackendKind, Config};
use crate::data::{self, EpisodeSet};
use crate::error::{Error, Result};
use crate::metrics::{self, MetricSet};
use crate::model::{ModelDims, ParamLayout};
use crate::rng::Rng;
use crate::util::{atomic_write, run_tag, Progress};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// The K support weights of one episode under the configured scheme, as f32.
pub fn episode_weights(
    recency: &crate::config::RecencyConfig,
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

/// The inner loop of a configuration.
pub fn inner_loop(cfg: &Config) -> InnerLoop {
    InnerLoop {
        lr: cfg.maml.inner_lr as f32,
        steps: cfg.maml.inner_steps,
    }
}

/// The outer update of a configuration (clip 0 disables clipping).
pub fn outer_config(cfg: &Config) -> OuterConfig {
    let clip = if cfg.maml.grad_clip > 0.0 {
        cfg.maml.grad_clip as f32
    } else {
        f32::INFINITY
    };
    OuterConfig::adam(cfg.maml.outer_lr as f32, clip)
}

/// A backend for the configuration's `run.backend`: `cpu`, `cuda` (an error without a usable
/// GPU), or `auto`: CUDA when a driver and a device are found, else the CPU (also when the CUDA
/// backend cannot start there, with a warning on stderr saying why).
pub fn make_backend(
    cfg: &Config,
    layout: ParamLayout,
    theta: Vec<f32>,
) -> Result<Box<dyn Backend>> {
    match cfg.run.backend {
        BackendKind::Cpu => Ok(Box::new(crate::cpu::Cpu::new(layout, theta)?)),
        BackendKind::Cuda => Ok(Box::new(crate::cuda::Cuda::new(layout, theta)?)),
        BackendKind::Auto if crate::cuda::device_available() => {
            match crate::cuda::Cuda::new(layout.clone(), theta.clone()) {
                Ok(gpu) => Ok(Box::new(gpu)),
                Err(e) => {
                    eprintln!("warning: a CUDA device was found but cannot be used ({e}); running on the CPU");
                    Ok(Box::new(crate::cpu::Cpu::new(layout, theta)?))
                }
            }
        }
        BackendKind::Auto => Ok(Box::new(crate::cpu::Cpu::new(layout, theta)?)),
    }
}

/// One evaluated episode, as written to `--per-episode` JSONL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    pub episode_id: i64,
    pub user_id: String,
    pub zero_shot_loss: f64,
    pub few_shot_loss: f64,
    /// Predicted item per query pair at θ.
    pub zero_shot_top1: Vec<u32>,
    /// Predicted item per query pair after adaptation.
    pub few_shot_top1: Vec<u32>,
    /// Rank of each true label at θ (1 = top).
    pub zero_shot_rank: Vec<usize>,
    /// Rank of each true label after adaptation.
    pub few_shot_rank: Vec<usize>,
}

/// Zero- and few-shot metrics over an episode set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub n_episodes: usize,
    pub zero_shot: MetricSet,
    pub few_shot: MetricSet,
    pub zero_shot_loss: f64,
    pub few_shot_loss: f64,
}

/// Tasks evaluated per backend call (bounds the memory of the returned logits).
const EVAL_CHUNK: usize = 64;

/// Evaluates every episode of `ws` at the backend's θ: per-episode records and the summary.
pub fn evaluate_set(
    backend: &mut dyn Backend,
    ws: &WeightedSet,
    inner: &InnerLoop,
    mut progress: Option<&mut Progress>,
) -> Result<(EvalSummary, Vec<EpisodeRecord>)> {
    let v = backend.layout().dims.n_items;
    let mut records = Vec::with_capacity(ws.len());
    for start in (0..ws.len()).step_by(EVAL_CHUNK) {
        let end = (start + EVAL_CHUNK).min(ws.len());
        let tasks: Vec<Task> = (start..end).map(|i| ws.task(i)).collect();
        let evals = backend.evaluate(&tasks, inner)?;
        if evals.len() != tasks.len() {
            return Err(Error::Other(format!(
                "backend {} evaluated {} of {} episodes",
                backend.name(),
                evals.len(),
                tasks.len()
            )));
        }
        for (i, te) in (start..end).zip(evals) {
            let ep = &ws.set.episodes[i];
            let per_query = |logits: &[f32]| -> (Vec<u32>, Vec<usize>) {
                ep.query_labels
                    .iter()
                    .enumerate()
                    .map(|(j, &y)| {
                        let row = &logits[j * v..(j + 1) * v];
                        (metrics::top1(row), metrics::rank_of(row, y))
                    })
                    .unzip()
            };
            let (zt, zr) = per_query(&te.zero_shot_logits);
            let (ft, fr) = per_query(&te.few_shot_logits);
            records.push(EpisodeRecord {
                episode_id: ep.episode_id,
                user_id: ep.user_id.clone(),
                zero_shot_loss: te.zero_shot_loss,
                few_shot_loss: te.few_shot_loss,
                zero_shot_top1: zt,
                few_shot_top1: ft,
                zero_shot_rank: zr,
                few_shot_rank: fr,
            });
        }
        if let Some(p) = progress.as_deref_mut() {
            p.set(end as u64);
        }
    }
    Ok((summarize(&records), records))
}

/// Metrics with bootstrap intervals from per-episode records.
pub fn summarize(records: &[EpisodeRecord]) -> EvalSummary {
    let zs: Vec<[f64; 5]> = records
        .iter()
        .map(|r| metrics::episode_metrics(&r.zero_shot_rank))
        .collect();
    let fs: Vec<[f64; 5]> = records
        .iter()
        .map(|r| metrics::episode_metrics(&r.few_shot_rank))
        .collect();
    let n = records.len().max(1) as f64;
    EvalSummary {
        n_episodes: records.len(),
        zero_shot: MetricSet::from_episodes(&zs, 0),
        few_shot: MetricSet::from_episodes(&fs, 0),
        zero_shot_loss: records.iter().map(|r| r.zero_shot_loss).sum::<f64>() / n,
        few_shot_loss: records.iter().map(|r| r.few_shot_loss).sum::<f64>() / n,
    }
}

/// Options of `recmaml train` beyond the configuration.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out/checkpoints` (a fresh start when there is
    /// none); the checkpoint's configuration must match but for [`RESUME_MAY_CHANGE`].
    pub resume: bool,
    /// Start a new run in a non-empty `out`: the outputs of a previous run there
    /// ([`RUN_OUTPUTS`] and `checkpoints/`) are deleted first. Not with `resume`.
    pub force: bool,
    /// Stop after this many iterations of this process (to test resume); `None` runs to the end.
    pub stop_after: Option<u64>,
    /// No progress bars (lines such as validation results are still printed).
    pub quiet: bool,
}

/// Per-run history, as written to `report.json` and carried in checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub iteration: Vec<u64>,
    pub meta_loss: Vec<f64>,
    pub grad_norm: Vec<f64>,
    /// Iterations at which validation ran (0 = before the first meta-update).
    pub val_iteration: Vec<u64>,
    /// Few-shot Acc@1 on the validation episodes (the model-selection criterion).
    pub val_acc1: Vec<f64>,
    /// Zero-shot Acc@1 on the validation episodes.
    #[serde(default)]
    pub val_zero_shot_acc1: Vec<f64>,
}

/// State saved in a checkpoint's metadata besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CheckpointMeta {
    iteration: u64,
    rng: Rng,
    adam_step: u64,
    best_val_acc: Option<f64>,
    best_iteration: Option<u64>,
    history: History,
    config: Config,
    run_tag: String,
}

/// What `train` returns (also written as `results.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainResults {
    pub run_tag: String,
    pub config: Config,
    pub dims: ModelDims,
    pub n_train_episodes: usize,
    pub n_val_episodes: usize,
    pub n_test_episodes: usize,
    pub iterations: u64,
    pub best_val_acc1: Option<f64>,
    pub best_iteration: Option<u64>,
    /// `best` or `final`: which weights the test metrics are of.
    pub test_weights: Option<String>,
    pub test: Option<EvalSummary>,
    pub wall_time_s: f64,
    /// The run's history (in `report.json`, not in `results.json`).
    #[serde(skip)]
    pub history: History,
    /// Per-episode test records of the weights in `test_weights` (not written to `results.json`).
    #[serde(skip)]
    pub test_records: Vec<EpisodeRecord>,
}

/// The files a run writes into its output folder besides `checkpoints/`.
pub const RUN_OUTPUTS: [&str; 4] = [
    "final.safetensors",
    "best.safetensors",
    "results.json",
    "report.json",
];

/// The keys a `--resume` may change: the run's length (to extend it), how often checkpoints are
/// written, and the backend (the same arithmetic up to float32 rounding, so that a run begun on a
/// GPU can be finished on the CPU; continuing bit for bit needs the same backend). Every other key
/// changes what is computed or reported and is refused, except those of the sections in
/// [`RESUME_UNREAD_SECTIONS`].
pub const RESUME_MAY_CHANGE: [&str; 3] = [
    "maml.num_meta_iterations",
    "maml.checkpoint_every",
    "run.backend",
];

/// Sections that `train` does not read, so a `--resume` may change any of their keys.
pub const RESUME_UNREAD_SECTIONS: [&str; 2] = ["pretrain", "matrix"];

fn may_change_on_resume(key: &str) -> bool {
    RESUME_MAY_CHANGE.contains(&key)
        || key
            .split_once('.')
            .is_some_and(|(section, _)| RESUME_UNREAD_SECTIONS.contains(&section))
}

fn checkpoint_path(out: &Path, iteration: u64) -> PathBuf {
    out.join("checkpoints")
        .join(format!("iter_{iteration:06}.safetensors"))
}

fn latest_checkpoint(out: &Path) -> Option<(u64, PathBuf)> {
    let dir = std::fs::read_dir(out.join("checkpoints")).ok()?;
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let it = name
                .strip_prefix("iter_")?
                .strip_suffix(".safetensors")?
                .parse::<u64>()
                .ok()?;
            Some((it, e.path()))
        })
        .max_by_key(|(it, _)| *it)
}

/// Initial θ: the warm-start checkpoint or PyTorch-style initialisation.
fn initial_params(
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
    }
    Ok(dims)
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
        let load = |p: &str| -> Result<Option<WeightedSet>> {
            Config::optional_path(p)
                .map(|p| WeightedSet::load(&p, Some(dims.n_items), cfg))
                .transpose()
        };
        Ok(RunData {
            dims,
            warm_start,
            val: load(&cfg.data.val)?,
            test: load(&cfg.data.test)?,
            train,
        })
    }
}

/// Meta-trains as configured, writing into `opts.out`.
pub fn train(cfg: &Config, opts: &TrainOptions) -> Result<TrainResults> {
    let started = Instant::now();
    if opts.resume && opts.force {
        return Err(Error::config(
            "--force",
            "cannot be combined with --resume: --resume continues the run in the output \
             folder, --force starts a new one there",
        ));
    }
    let run = RunData::load(cfg)?;
    let layout = ParamLayout::new(run.dims);
    let theta0 = initial_params(cfg, run.warm_start.as_ref(), &layout)?;
    let mut backend = make_backend(cfg, layout.clone(), theta0)?;
    let inner = inner_loop(cfg);
    let outer = outer_config(cfg);
    let mut state = TrainState::fresh(cfg);
    // The checkpoint is read and checked before anything is written, so that a refused resume
    // leaves the folder as it was.
    let resumed_from = if opts.resume {
        latest_checkpoint(&opts.out)
    } else {
        None
    };
    if let Some((_, path)) = &resumed_from {
        state = TrainState::restore(path, cfg, &layout, backend.as_mut())?;
    }
    prepare_out_dir(&opts.out, opts.resume, opts.force)?;
    if let Some((_, path)) = &resumed_from {
        eprintln!(
            "resumed from {} (iteration {})",
            path.display(),
            state.iteration
        );
    }

    let total = cfg.maml.num_meta_iterations;
    if state.iteration == 0 && cfg.maml.val_every > 0 {
        // The starting point is a candidate too (for a warm start, the pretrained model).
        state.validate(0, &run, backend.as_mut(), &inner, &layout, &opts.out)?;
    }
    let mut progress = Progress::new("meta-train", total, false, opts.quiet);
    progress.set(state.iteration);
    let mut last_good: Option<PathBuf> = latest_checkpoint(&opts.out).map(|(_, p)| p);
    let mut ran = 0u64;
    while state.iteration < total {
        if opts.stop_after.is_some_and(|s| ran >= s) {
            break;
        }
        let it = state.iteration + 1;
        let idx = state
            .rng
            .sample_without_replacement(run.train.len(), cfg.maml.meta_batch_size);
        let tasks: Vec<Task> = idx.iter().map(|&i| run.train.task(i)).collect();
        let stats = backend.meta_step(&tasks, &inner, &outer)?;
        if !stats.meta_loss.is_finite() || !stats.grad_norm.is_finite() {
            return Err(Error::NonFinite {
                iteration: it,
                last_good,
            });
        }
        state.iteration = it;
        ran += 1;
        state.history.iteration.push(it);
        state.history.meta_loss.push(stats.meta_loss);
        state.history.grad_norm.push(stats.grad_norm);
        let mut val_msg = String::new();
        if cfg.maml.val_every > 0 && it.is_multiple_of(cfg.maml.val_every) {
            if let Some(acc) =
                state.validate(it, &run, backend.as_mut(), &inner, &layout, &opts.out)?
            {
                val_msg = format!(" val acc@1 {:.4}", acc);
                progress.line(&format!(
                    "iteration {it}/{total}: meta-loss {:.4}, val few-shot acc@1 {acc:.4} (best {:.4} at {})",
                    stats.meta_loss,
                    state.best_val_acc.unwrap_or(f64::NAN),
                    state.best_iteration.unwrap_or(0)
                ));
            }
        }
        progress.set_message(&format!("meta-loss {:.4}{val_msg}", stats.meta_loss));
        progress.set(it);
        if cfg.maml.checkpoint_every > 0 && it.is_multiple_of(cfg.maml.checkpoint_every) {
            let path = checkpoint_path(&opts.out, it);
            state.save(&path, cfg, &layout, backend.as_ref())?;
            last_good = Some(path);
        }
    }
    progress.finish();

    let theta = backend.params()?;
    if state.iteration < total {
        // Stopped early on request: leave the checkpoints for --resume, write no final results.
        return Ok(results(cfg, &run, &state, None, None, started));
    }
    checkpoint::save_params(
        &opts.out.join("final.safetensors"),
        &layout,
        &theta,
        &BTreeMap::new(),
    )?;
    let (test_weights, test) = match &run.test {
        Some(test) => {
            let which = if state.best_params.is_some() {
                "best"
            } else {
                "final"
            };
            if let Some(best) = &state.best_params {
                backend.set_params(best)?;
            }
            let mut p = Progress::new("test eval", test.len() as u64, false, opts.quiet);
            let (summary, records) = evaluate_set(backend.as_mut(), test, &inner, Some(&mut p))?;
            p.finish();
            backend.set_params(&theta)?;
            (Some(which.to_string()), Some((summary, records)))
        }
        None => (None, None),
    };
    let (test, test_records) = test.unzip();
    let mut res = results(cfg, &run, &state, test_weights, test, started);
    write_json(&opts.out.join("results.json"), &res)?;
    let report = serde_json::json!({
        "config": cfg,
        "run_tag": state.run_tag,
        "dims": run.dims,
        "history": state.history,
        "best_val_acc1": state.best_val_acc,
        "best_iteration": state.best_iteration,
        "wall_time_s": res.wall_time_s,
        "backend": backend.name(),
    });
    write_json(&opts.out.join("report.json"), &report)?;
    res.test_records = test_records.unwrap_or_default();
    Ok(res)
}

fn results(
    cfg: &Config,
    run: &RunData,
    state: &TrainState,
    test_weights: Option<String>,
    test: Option<EvalSummary>,
    started: Instant,
) -> TrainResults {
    TrainResults {
        run_tag: state.run_tag.clone(),
        config: cfg.clone(),
        dims: run.dims,
        n_train_episodes: run.train.len(),
        n_val_episodes: run.val.as_ref().map_or(0, |v| v.len()),
        n_test_episodes: run.test.as_ref().map_or(0, |v| v.len()),
        iterations: state.iteration,
        best_val_acc1: state.best_val_acc,
        best_iteration: state.best_iteration,
        test_weights,
        test,
        wall_time_s: started.elapsed().as_secs_f64(),
        history: state.history.clone(),
        test_records: Vec::new(),
    }
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Other(format!("serialising {}: {e}", path.display())))?;
    atomic_write(path, text.as_bytes())
}

/// Checks the output folder against `--resume`/`--force` and creates it (with `checkpoints/`).
/// A non-empty folder needs one of the two; `--force` first deletes a previous run's outputs
/// there (`checkpoints/` and [`RUN_OUTPUTS`], nothing else), so that no old checkpoint is left
/// for a later `--resume` and no old result beside the new ones.
fn prepare_out_dir(out: &Path, resume: bool, force: bool) -> Result<()> {
    let non_empty = std::fs::read_dir(out)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !resume && !force {
        return Err(Error::config(
            "--out",
            format!(
                "{} exists and is not empty; pass --resume to continue its run or --force to \
                 start a new run there (deleting the previous run's outputs)",
                out.display()
            ),
        ));
    }
    if non_empty && force {
        let checkpoints = out.join("checkpoints");
        if checkpoints.exists() {
            std::fs::remove_dir_all(&checkpoints).map_err(|e| Error::io(&checkpoints, e))?;
        }
        for name in RUN_OUTPUTS {
            let f = out.join(name);
            if f.exists() {
                std::fs::remove_file(&f).map_err(|e| Error::io(&f, e))?;
            }
        }
    }
    std::fs::create_dir_all(out.join("checkpoints")).map_err(|e| Error::io(out, e))
}

/// The mutable state of a run between iterations.
struct TrainState {
    iteration: u64,
    rng: Rng,
    history: History,
    best_val_acc: Option<f64>,
    best_iteration: Option<u64>,
    best_params: Option<Vec<f32>>,
    run_tag: String,
}

impl TrainState {
    fn fresh(cfg: &Config) -> Self {
        TrainState {
            iteration: 0,
            rng: Rng::new(cfg.run.seed),
            history: History::default(),
            best_val_acc: None,
            best_iteration: None,
            best_params: None,
            run_tag: run_tag(),
        }
    }

    /// Evaluates the validation episodes at iteration `it`: records zero- and few-shot Acc@1 in
    /// the history and keeps the weights (and `best.safetensors`) when few-shot Acc@1 is the best
    /// so far. Returns the few-shot Acc@1, or `None` without validation episodes.
    fn validate(
        &mut self,
        it: u64,
        run: &RunData,
        backend: &mut dyn Backend,
        inner: &InnerLoop,
        layout: &ParamLayout,
        out: &Path,
    ) -> Result<Option<f64>> {
        let Some(val) = &run.val else {
            return Ok(None);
        };
        let (summary, _) = evaluate_set(backend, val, inner, None)?;
        let acc = summary.few_shot.acc1.mean;
        self.history.val_iteration.push(it);
        self.history.val_acc1.push(acc);
        self.history
            .val_zero_shot_acc1
            .push(summary.zero_shot.acc1.mean);
        if self.best_val_acc.is_none_or(|b| acc > b) {
            self.best_val_acc = Some(acc);
            self.best_iteration = Some(it);
            let best = backend.params()?;
            checkpoint::save_params(
                &out.join("best.safetensors"),
                layout,
                &best,
                &BTreeMap::new(),
            )?;
            self.best_params = Some(best);
        }
        Ok(Some(acc))
    }

    fn save(
        &self,
        path: &Path,
        cfg: &Config,
        layout: &ParamLayout,
        backend: &dyn Backend,
    ) -> Result<()> {
        let theta = backend.params()?;
        let adam = backend.adam()?;
        let meta = CheckpointMeta {
            iteration: self.iteration,
            rng: self.rng.clone(),
            adam_step: adam.step,
            best_val_acc: self.best_val_acc,
            best_iteration: self.best_iteration,
            history: self.history.clone(),
            config: cfg.clone(),
            run_tag: self.run_tag.clone(),
        };
        let meta_json = serde_json::to_string(&meta)
            .map_err(|e| Error::Other(format!("serialising checkpoint state: {e}")))?;
        let p = [layout.len];
        let mut tensors: Vec<(&str, &[usize], &[f32])> = vec![
            ("params", &p, &theta),
            ("adam_m", &p, &adam.m),
            ("adam_v", &p, &adam.v),
        ];
        if let Some(best) = &self.best_params {
            tensors.push(("best_params", &p, best));
        }
        let metadata = BTreeMap::from([("recmaml_state".to_string(), meta_json)]);
        checkpoint::save_safetensors(path, &tensors, &metadata)
    }

    fn restore(
        path: &Path,
        cfg: &Config,
        layout: &ParamLayout,
        backend: &mut dyn Backend,
    ) -> Result<Self> {
        let ck = checkpoint::load_tensors_f32(path)?;
        let meta: CheckpointMeta = serde_json::from_str(ck.meta("recmaml_state")?)
            .map_err(|e| Error::checkpoint(path, format!("bad training state: {e}")))?;
        let refused: Vec<String> = meta
            .config
            .differences(cfg)
            .into_iter()
            .filter(|d| !may_change_on_resume(&d.key))
            .map(|d| format!("{} = {} there, {} now", d.key, d.this, d.other))
            .collect();
        if !refused.is_empty() {
            return Err(Error::checkpoint(
                path,
                format!(
                    "was written with a different configuration: {}. --resume continues a run \
                     with its own settings (only {} and the [{}] sections may change); start a \
                     new run with another --out, or with --force in this one",
                    refused.join("; "),
                    RESUME_MAY_CHANGE.join(", "),
                    RESUME_UNREAD_SECTIONS.join("], [")
                ),
            ));
        }
        if meta.iteration > cfg.maml.num_meta_iterations {
            return Err(Error::config(
                "maml.num_meta_iterations",
                format!(
                    "{} is below iteration {} of {}, the checkpoint --resume continues from",
                    cfg.maml.num_meta_iterations,
                    meta.iteration,
                    path.display()
                ),
            ));
        }
        let p = [layout.len];
        backend.set_params(ck.get("params", &p)?)?;
        backend.set_adam(&AdamState {
            step: meta.adam_step,
            m: ck.get("adam_m", &p)?.to_vec(),
            v: ck.get("adam_v", &p)?.to_vec(),
        })?;
        let best_params = ck
            .tensors
            .contains_key("best_params")
            .then(|| ck.get("best_params", &p).map(<[f32]>::to_vec))
            .transpose()?;
        Ok(TrainState {
            iteration: meta.iteration,
            rng: meta.rng,
            history: meta.history,
            best_val_acc: meta.best_val_acc,
            best_iteration: meta.best_iteration,
            best_params,
            run_tag: meta.run_tag,
        })
    }
}
