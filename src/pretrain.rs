//! `recmaml pretrain`: the global GRU4Rec model (the seed's "GRU4Rec baseline" and the warm start
//! of warm-start MAML), trained on every train pair with next-item cross-entropy and Adam, and the
//! popularity baseline.
//!
//! A step takes a batch of pairs (shuffled each epoch with the run's seed), cuts each prefix to
//! its last `max_prefix_len` items, runs the GRU with the hidden state read at each prefix's own
//! last item, applies dropout to that final hidden state (training only), and takes the mean CE
//! over the batch. The batch is cut into a fixed number of chunks that run in parallel and whose
//! gradients are summed in chunk order, so a run gives the same bytes on any number of threads.

use crate::backend::{Backend, InnerLoop, OuterConfig, PairBatch};
use crate::checkpoint;
use crate::config::Config;
use crate::cpu::{mean_loss, Cpu, Float};
use crate::data::{self, PairSet};
use crate::error::{Error, Result};
use crate::evaluate;
use crate::metrics::{self, MetricSet};
use crate::model::{ModelDims, ParamLayout};
use crate::rng::Rng;
use crate::train::{self, WeightedSet};
use crate::util::Progress;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Dropout on the final hidden state, inverted as in `nn.Dropout` during training: each element
/// is kept with probability `1 − p` and then multiplied by `1 / (1 − p)`, or zeroed. A step takes
/// the multipliers, `[B, H]`; a run draws them from its RNG ([`Dropout::draw`]), a check can
/// give its own keep pattern ([`Dropout::multipliers`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The probability `p` that an element is zeroed (`pretrain.dropout`, in [0, 1)).
    pub p: f64,
}

impl Dropout {
    /// The multiplier of an element that is kept (`1 / (1 − p)`) or dropped (0).
    pub fn multiplier<F: Float>(self, kept: bool) -> F {
        if kept {
            F::from_f64(1.0 / (1.0 - self.p))
        } else {
            F::ZERO
        }
    }

    /// The multipliers of the keep pattern `kept`, assigned into `out`.
    pub fn multipliers<F: Float>(self, kept: &[bool], out: &mut Vec<F>) {
        out.clear();
        out.extend(kept.iter().map(|&k| self.multiplier::<F>(k)));
    }

    /// `n` multipliers drawn from `rng`, assigned into `out`: each element is kept when its
    /// `rng.next_f64()` is below `1 − p`. With `p` 0 every multiplier is 1 and nothing is drawn.
    pub fn draw<F: Float>(self, rng: &mut Rng, n: usize, out: &mut Vec<F>) {
        out.clear();
        if self.p == 0.0 {
            out.resize(n, F::ONE);
            return;
        }
        let keep = 1.0 - self.p;
        out.extend((0..n).map(|_| self.multiplier::<F>(rng.next_f64() < keep)));
    }
}

/// The pretraining run's settings, from `[pretrain]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub dropout: f64,
    pub max_prefix_len: usize,
    pub seed: u64,
}

impl PretrainSettings {
    /// From a configuration (`[pretrain]` and `run.seed`).
    pub fn from_config(cfg: &Config) -> Self {
        let p = &cfg.pretrain;
        PretrainSettings {
            epochs: p.epochs,
            batch_size: p.batch_size,
            lr: p.lr,
            dropout: p.dropout,
            max_prefix_len: p.max_prefix_len,
            seed: cfg.run.seed,
        }
    }
}

/// One epoch's mean training loss (with dropout), as reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub seconds: f64,
}

/// The checks every pretraining run makes on its pairs.
fn check_pairs(layout: &ParamLayout, pairs: &PairSet) -> Result<()> {
    if pairs.labels.is_empty() {
        return Err(Error::data(&pairs.path, None, None, "no pairs to train on"));
    }
    if pairs.n_items > layout.dims.n_items {
        return Err(Error::Shape(format!(
            "{} uses ids up to {} but the model has {} items",
            pairs.path.display(),
            pairs.n_items - 1,
            layout.dims.n_items
        )));
    }
    Ok(())
}

/// The training loop shared by both backends: each epoch shuffles the pairs with the run's seed,
/// cuts them into batches, draws each batch's dropout multipliers from the same RNG
/// ([`Dropout::draw`], `[batch, H]` in batch order) and calls `step(batch, mask)`, which takes one
/// Adam step and returns the batch's mean loss.
fn fit_with(
    pairs: &PairSet,
    s: &PretrainSettings,
    h: usize,
    quiet: bool,
    mut step: impl FnMut(&[usize], &[f32]) -> Result<f64>,
) -> Result<Vec<EpochLog>> {
    let n = pairs.labels.len();
    let steps_per_epoch = n.div_ceil(s.batch_size);
    let mut rng = Rng::new(s.seed ^ 0x5052_4554_5241_494e); // "PRETRAIN"
    let dropout = Dropout { p: s.dropout };
    let mut order: Vec<usize> = (0..n).collect();
    let mut mask = Vec::new();
    let mut logs = Vec::new();
    let mut progress = Progress::new(
        "pretrain",
        (s.epochs * steps_per_epoch) as u64,
        false,
        quiet,
    );
    for epoch in 1..=s.epochs {
        let started = Instant::now();
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for (bi, batch) in order.chunks(s.batch_size).enumerate() {
            dropout.draw(&mut rng, batch.len() * h, &mut mask);
            let loss = step(batch, &mask)?;
            if !loss.is_finite() {
                return Err(Error::Other(format!(
                    "pretraining diverged: non-finite loss at epoch {epoch}, batch {} (try a smaller pretrain.lr)",
                    bi + 1
                )));
            }
            loss_sum += loss * batch.len() as f64;
            progress.inc(1);
        }
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / n as f64,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.line(&format!(
            "epoch {epoch}/{}: train loss {:.4} ({:.1} s)",
            s.epochs, log.train_loss, log.seconds
        ));
        logs.push(log);
    }
    progress.finish();
    Ok(logs)
}

/// Trains the global model held by `backend` on `pairs`, one [`Backend::pretrain_step`] per
/// batch (Adam with `s.lr`, no clip); returns the per-epoch mean train loss. The pairs must fit
/// the backend's model.
pub fn fit(
    backend: &mut dyn Backend,
    pairs: &PairSet,
    s: &PretrainSettings,
    quiet: bool,
) -> Result<Vec<EpochLog>> {
    check_pairs(backend.layout(), pairs)?;
    let outer = OuterConfig::adam(s.lr as f32, f32::INFINITY);
    let mut prefixes: Vec<&[u32]> = Vec::new();
    let mut labels = Vec::new();
    let h = backend.layout().dims.hidden_dim;
    fit_with(pairs, s, h, quiet, |batch, mask| {
        prefixes.clear();
        prefixes.extend(batch.iter().map(|&i| &pairs.prefixes[i][..]));
        labels.clear();
        labels.extend(batch.iter().map(|&i| pairs.labels[i]));
        let b = PairBatch {
            prefixes: &prefixes,
            labels: &labels,
            mask,
            max_prefix_len: s.max_prefix_len,
        };
        backend.pretrain_step(&b, &outer)
    })
}

/// Item scores of the popularity baseline: each item's count among the train labels (ties
/// ranked by the lower id, as everywhere).
pub fn popularity_scores(pairs: &PairSet, n_items: usize) -> Vec<f32> {
    let mut counts = vec![0.0f32; n_items];
    for &y in &pairs.labels {
        counts[y as usize] += 1.0;
    }
    counts
}

/// Per-episode records of a fixed score vector (the same prediction for every query; zero- and
/// few-shot are the same, since nothing adapts; losses are not defined and left NaN).
pub fn fixed_records(scores: &[f32], set: &WeightedSet) -> Vec<evaluate::EpisodeRecord> {
    set.set
        .episodes
        .iter()
        .map(|ep| {
            let ranks: Vec<usize> = ep
                .query_labels
                .iter()
                .map(|&y| metrics::rank_of(scores, y))
                .collect();
            let top = vec![metrics::top1(scores); ranks.len()];
            evaluate::EpisodeRecord::unadapted(ep, top, ranks)
        })
        .collect()
}

/// What `recmaml pretrain` writes to `pretrain.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PretrainReport {
    pub pairs_train: String,
    pub n_pairs: usize,
    pub dims: ModelDims,
    pub settings: PretrainSettings,
    pub backend: String,
    pub epochs: Vec<EpochLog>,
    /// Mean CE without dropout on the train pairs, before and after training.
    pub train_loss_before: f64,
    pub train_loss_after: f64,
    /// Zero-shot metrics on the test episodes' query pairs ("GRU4Rec baseline"); `None` without a
    /// test file.
    pub test: Option<MetricSet>,
    /// The popularity baseline on the same query pairs.
    pub popularity_test: Option<MetricSet>,
    pub n_test_episodes: usize,
    pub checkpoint: PathBuf,
    pub wall_time_s: f64,
}

/// File name of the pretrained weights inside the output folder.
pub const CHECKPOINT_NAME: &str = "gru4rec.safetensors";

/// A pretraining run's results: the report and, on the test episodes, the per-episode records of
/// the pretrained model (zero-shot) and of the popularity baseline.
pub struct Pretrained {
    pub report: PretrainReport,
    pub gru4rec_records: Vec<evaluate::EpisodeRecord>,
    pub popularity_records: Vec<evaluate::EpisodeRecord>,
}

/// A finished pretraining run in `out` (its report and weights), with the test records
/// recomputed; `None` when `out` holds no finished run.
pub fn load_finished(cfg: &Config, out: &Path) -> Result<Option<Pretrained>> {
    let (json, ck) = (out.join("pretrain.json"), out.join(CHECKPOINT_NAME));
    let Some(report) = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str::<PretrainReport>(&t).ok())
    else {
        return Ok(None);
    };
    if !ck.is_file() {
        return Ok(None);
    }
    let layout = ParamLayout::new(report.dims);
    let sd = checkpoint::load_state_dict(&ck)?;
    let theta = checkpoint::params_from_state_dict(&sd, &layout, &ck)?;
    let pairs = data::read_pair_file(Path::new(&cfg.data.pairs_train), None)?;
    let (gru4rec_records, popularity_records) = test_records(cfg, &layout, &theta, &pairs)?;
    Ok(Some(Pretrained {
        report,
        gru4rec_records,
        popularity_records,
    }))
}

/// Per-episode test records of the model at `theta` (zero-shot) and of the popularity baseline;
/// empty without a test file.
fn test_records(
    cfg: &Config,
    layout: &ParamLayout,
    theta: &[f32],
    pairs: &PairSet,
) -> Result<(Vec<evaluate::EpisodeRecord>, Vec<evaluate::EpisodeRecord>)> {
    let Some(path) = Config::optional_path(&cfg.data.test) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let test = WeightedSet::load_key("data.test", &path, Some(layout.dims.n_items), cfg)?;
    let mut cpu = Cpu::new(layout.clone(), theta.to_vec())?;
    // Zero-shot only; the few-shot half of these records is not used (lr 0, one step).
    let inner = InnerLoop { lr: 0.0, steps: 1 };
    let (_, mut gru) = evaluate::evaluate_set(&mut cpu, &test, &inner, None)?;
    for r in &mut gru {
        r.few_shot_rank = r.zero_shot_rank.clone();
        r.few_shot_top1 = r.zero_shot_top1.clone();
        r.few_shot_loss = r.zero_shot_loss;
    }
    let pop = fixed_records(&popularity_scores(pairs, layout.dims.n_items), &test);
    Ok((gru, pop))
}

/// Pretrains as configured and writes `out/gru4rec.safetensors` and `out/pretrain.json`, holding
/// `out` locked throughout (a second run on it is refused). A run that cannot start, fails while
/// training or has a bad test file writes neither (and leaves no folder it made).
pub fn pretrain(cfg: &Config, out: &Path, quiet: bool) -> Result<Pretrained> {
    let started = Instant::now();
    if cfg.data.pairs_train.is_empty() {
        return Err(Error::config(
            "data.pairs_train",
            "no train pairs file given (pairs_train.parquet from `recmaml prepare`)",
        ));
    }
    let _lock = crate::util::claim_out_dir(out, 0)?;
    let pairs = data::read_pair_file(Path::new(&cfg.data.pairs_train), None)?;
    let v = pairs.n_items;
    let dims = ModelDims {
        n_items: v,
        embed_dim: cfg.model.embed_dim,
        hidden_dim: cfg.model.hidden_dim,
    };
    dims.check_memory()
        .map_err(|m| Error::data(&cfg.data.pairs_train, None, None, m))?;
    let layout = ParamLayout::new(dims);
    let theta = crate::model::init::init_params(&layout, cfg.run.seed);
    let settings = PretrainSettings::from_config(cfg);
    let before = mean_loss(&layout, &theta, &pairs, settings.max_prefix_len);
    check_pairs(&layout, &pairs)?;
    let mut backend = train::make_backend(cfg, layout.clone(), theta)?;
    let epochs = fit(backend.as_mut(), &pairs, &settings, quiet)?;
    let theta = backend.params()?;
    let backend = backend.name();
    let after = mean_loss(&layout, &theta, &pairs, settings.max_prefix_len);
    // The test records first: a run whose test file is bad writes nothing.
    let (gru_records, pop_records) = test_records(cfg, &layout, &theta, &pairs)?;
    let ck = out.join(CHECKPOINT_NAME);
    let mut meta = BTreeMap::new();
    meta.insert(
        "recmaml_pretrain".to_string(),
        serde_json::to_string(&settings).unwrap_or_default(),
    );
    checkpoint::save_params(&ck, &layout, &theta, &meta)?;
    let (test_metrics, pop_metrics) = if gru_records.is_empty() {
        (None, None)
    } else {
        (
            Some(evaluate::summarize(&gru_records).zero_shot),
            Some(evaluate::summarize(&pop_records).zero_shot),
        )
    };
    let n_test = gru_records.len();
    let report = PretrainReport {
        pairs_train: cfg.data.pairs_train.clone(),
        n_pairs: pairs.labels.len(),
        dims,
        settings,
        backend: backend.into(),
        epochs,
        train_loss_before: before,
        train_loss_after: after,
        test: test_metrics,
        popularity_test: pop_metrics,
        n_test_episodes: n_test,
        checkpoint: ck,
        wall_time_s: started.elapsed().as_secs_f64(),
    };
    train::write_json(&out.join("pretrain.json"), &report)?;
    Ok(Pretrained {
        report,
        gru4rec_records: gru_records,
        popularity_records: pop_records,
    })
}
