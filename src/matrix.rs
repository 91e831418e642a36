//! `recmaml matrix`: the seed notebook's comparison matrix (GRU4Rec baseline, popularity, vanilla
//! MAML, warm-start MAML, recency MAML, warm-start + recency) and its ablation over weighting
//! schemes, each row over several seeds, on one prepared dataset.
//!
//! Every row is evaluated on the same test episodes. A row reports, per metric, the mean and
//! standard deviation over seeds of the test mean, and a 95% bootstrap interval over test episodes
//! of the per-episode values averaged over seeds; the few-shot difference to vanilla MAML comes
//! with a paired bootstrap interval (episodes resampled jointly for both rows).
//!
//! Finished (row, seed) results are files under `OUT/rows/`, keyed by the exact configuration
//! they were computed with, so running the command again reuses them; an interrupted training run
//! continues from its last checkpoint.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::eval::{self, bootstrap_mean, Estimate, METRICS};
use crate::evaluate::EpisodeRecord;
use crate::pretrain;
use crate::train::{self, TrainOptions};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a row's model is obtained.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// The pretrained global model, not adapted.
    Gru4Rec,
    /// Most frequent train labels.
    Popularity,
    /// Meta-trained with FOMAML.
    Maml {
        warm: bool,
        scheme: &'static str,
        lambda: Option<f64>,
        temperature: Option<f64>,
    },
}

/// Which of the seed's two tables a row appears in.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tables {
    comparison: bool,
    ablation: bool,
}

/// One row of the matrix.
#[derive(Clone, Copy, Debug)]
struct RowSpec {
    name: &'static str,
    model: &'static str,
    init: &'static str,
    inner: &'static str,
    /// The ablation table's "Scheme" and "Lambda/Temp" cells.
    scheme_cell: (&'static str, &'static str),
    tables: Tables,
    kind: Kind,
}

const fn maml(warm: bool, scheme: &'static str, lambda: Option<f64>, t: Option<f64>) -> Kind {
    Kind::Maml {
        warm,
        scheme,
        lambda,
        temperature: t,
    }
}

const COMPARISON: Tables = Tables {
    comparison: true,
    ablation: false,
};
const ABLATION: Tables = Tables {
    comparison: false,
    ablation: true,
};
const BOTH: Tables = Tables {
    comparison: true,
    ablation: true,
};

/// Every row, in report order. The name is the row's folder and its key in `matrix.rows`.
const ROWS: [RowSpec; 11] = [
    RowSpec {
        name: "gru4rec",
        model: "GRU4Rec baseline",
        init: "Trained",
        inner: "N/A",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: Kind::Gru4Rec,
    },
    RowSpec {
        name: "popularity",
        model: "Popularity",
        init: "Train label counts",
        inner: "N/A",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: Kind::Popularity,
    },
    RowSpec {
        name: "vanilla",
        model: "Vanilla MAML",
        init: "Random",
        inner: "Equal weights",
        scheme_cell: ("Equal (baseline)", "-"),
        tables: BOTH,
        kind: maml(false, "equal", None, None),
    },
    RowSpec {
        name: "warmstart",
        model: "Warm-Start MAML",
        init: "GRU4Rec",
        inner: "Equal weights",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: maml(true, "equal", None, None),
    },
    RowSpec {
        name: "recency",
        model: "Recency MAML",
        init: "Random",
        inner: "Exponential λ=0.5",
        scheme_cell: ("Exponential", "λ=0.5"),
        tables: BOTH,
        kind: maml(false, "exponential", Some(0.5), None),
    },
    RowSpec {
        name: "warmstart_recency",
        model: "Warm-Start + Recency",
        init: "GRU4Rec",
        inner: "Exponential λ=0.5",
        scheme_cell: ("", ""),
        tables: COMPARISON,
        kind: maml(true, "exponential", Some(0.5), None),
    },
    RowSpec {
        name: "exp0.3",
        model: "Recency MAML",
        init: "Random",
        inner: "Exponential λ=0.3",
        scheme_cell: ("Exponential", "λ=0.3"),
        tables: ABLATION,
        kind: maml(false, "exponential", Some(0.3), None),
    },
    RowSpec {
        name: "exp1.0",
        model: "Recency MAML",
        init: "Random",
        inner: "Exponential λ=1.0",
        scheme_cell: ("Exponential", "λ=1.0"),
        tables: ABLATION,
        kind: maml(false, "exponential", Some(1.0), None),
    },
    RowSpec {
        name: "linear",
        model: "Recency MAML",
        init: "Random",
        inner: "Linear",
        scheme_cell: ("Linear", "-"),
        tables: ABLATION,
        kind: maml(false, "linear", None, None),
    },
    RowSpec {
        name: "softmax1.0",
        model: "Recency MAML",
        init: "Random",
        inner: "Softmax τ=1.0",
        scheme_cell: ("Softmax", "τ=1.0"),
        tables: ABLATION,
        kind: maml(false, "softmax", None, Some(1.0)),
    },
    RowSpec {
        name: "time",
        model: "Recency MAML",
        init: "Random",
        inner: "Time decay",
        scheme_cell: ("Time decay", "τ = recency.tau"),
        tables: ABLATION,
        kind: maml(false, "time", None, None),
    },
];

/// A row's name in plots: the model, with the scheme for ablation-only rows.
fn plot_label(r: &RowReport) -> String {
    if r.in_comparison {
        r.model.clone()
    } else {
        format!("{} ({})", r.model, r.inner_loop)
    }
}

/// The names `matrix.rows` accepts.
pub fn row_names() -> Vec<&'static str> {
    ROWS.iter().map(|r| r.name).collect()
}

/// `recmaml matrix`.
#[derive(Args, Debug)]
pub struct MatrixArgs {
    /// TOML configuration (configs/matrix.toml): data incl. `pairs_train`, model, maml,
    /// pretrain, `matrix.seeds`, `matrix.rows` (empty: all of gru4rec, popularity, vanilla,
    /// warmstart, recency, warmstart_recency, exp0.3, exp1.0, linear, softmax1.0, time).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a configuration key, e.g. `--set matrix.seeds=[1,2]` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output folder: matrix.json, matrix.md, plots/, and the rows' runs (reused when rerun).
    #[arg(long)]
    pub out: PathBuf,
}

/// One (row, seed) result, as stored in `OUT/rows/<row>/seed<S>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedResult {
    pub row: String,
    pub seed: u64,
    /// The exact configuration the result was computed with (reuse key).
    pub key: String,
    pub episode_ids: Vec<i64>,
    /// Per test episode: the five metrics (METRICS order), zero- and few-shot.
    pub zero_shot: Vec<[f64; 5]>,
    pub few_shot: Vec<[f64; 5]>,
    /// Validation few-shot Acc@1 against meta-iteration (MAML rows).
    pub val_iteration: Vec<u64>,
    pub val_acc1: Vec<f64>,
    pub best_iteration: Option<u64>,
    pub wall_time_s: f64,
}

/// A metric over seeds: mean and standard deviation of the seeds' test means, and a 95%
/// bootstrap interval over test episodes of the seed-averaged per-episode values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub mean: f64,
    pub sd: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// One row of `matrix.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowReport {
    pub name: String,
    pub model: String,
    pub init: String,
    pub inner_loop: String,
    pub scheme: String,
    pub scheme_param: String,
    pub in_comparison: bool,
    pub in_ablation: bool,
    pub seeds: Vec<u64>,
    /// Metric name -> aggregate.
    pub zero_shot: BTreeMap<String, Aggregate>,
    pub few_shot: BTreeMap<String, Aggregate>,
    /// Metric name -> few-shot difference to vanilla MAML, paired bootstrap over test episodes.
    pub few_shot_vs_vanilla: BTreeMap<String, Estimate>,
    /// Per seed: few-shot Acc@1 and best validation iteration.
    pub per_seed_few_shot_acc1: Vec<f64>,
    pub per_seed_best_iteration: Vec<Option<u64>>,
    /// Mean over seeds of validation few-shot Acc@1 against iteration.
    pub val_curve: Vec<(u64, f64)>,
    /// Total wall time of its seeds (as computed, also when reused).
    pub wall_time_s: f64,
}

/// `matrix.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatrixReport {
    pub config: Config,
    pub test_file: String,
    pub n_test_episodes: usize,
    pub seeds: Vec<u64>,
    pub backend: String,
    pub machine: String,
    pub date: String,
    pub rows: Vec<RowReport>,
    /// Wall time of this invocation (reused rows cost nothing).
    pub wall_time_s: f64,
    /// Rows computed now / reused from an earlier invocation, as `row/seed`.
    pub computed: Vec<String>,
    pub reused: Vec<String>,
}

/// The rows selected by `matrix.rows` (all when empty); vanilla MAML is always included since
/// every difference is taken against it.
fn selected_rows(cfg: &Config) -> Result<Vec<RowSpec>> {
    for name in &cfg.matrix.rows {
        if !ROWS.iter().any(|r| r.name == name) {
            return Err(Error::config(
                "matrix.rows",
                format!("unknown row `{name}`; rows are {:?}", row_names()),
            ));
        }
    }
    Ok(ROWS
        .iter()
        .filter(|r| {
            cfg.matrix.rows.is_empty()
                || r.name == "vanilla"
                || cfg.matrix.rows.iter().any(|n| n == r.name)
        })
        .copied()
        .collect())
}

/// The configuration of a MAML row for one seed.
fn maml_config(base: &Config, row: &RowSpec, seed: u64, pretrained: &Path) -> Config {
    let mut c = base.clone();
    c.run.seed = seed;
    c.matrix = Default::default();
    if let Kind::Maml {
        warm,
        scheme,
        lambda,
        temperature,
    } = row.kind
    {
        c.recency.weighting_scheme = scheme.into();
        if let Some(l) = lambda {
            c.recency.lambda = l;
        }
        if let Some(t) = temperature {
            c.recency.temperature = t;
        }
        c.warmstart.use_warmstart = warm;
        c.warmstart.pretrained_path = if warm {
            pretrained.display().to_string()
        } else {
            String::new()
        };
    }
    c
}

/// The configuration pretraining depends on, for one seed (its reuse key).
fn pretrain_config(base: &Config, seed: u64) -> Config {
    let mut c = Config::default();
    c.data.pairs_train = base.data.pairs_train.clone();
    c.data.test = base.data.test.clone();
    c.model = base.model.clone();
    c.pretrain = base.pretrain.clone();
    c.recency = base.recency.clone();
    c.run.seed = seed;
    c.run.backend = base.run.backend.clone();
    c
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn per_episode(records: &[EpisodeRecord]) -> (Vec<i64>, Vec<[f64; 5]>, Vec<[f64; 5]>) {
    let ids = records.iter().map(|r| r.episode_id).collect();
    let z = records
        .iter()
        .map(|r| eval::episode_metrics(&r.zero_shot_rank))
        .collect();
    let f = records
        .iter()
        .map(|r| eval::episode_metrics(&r.few_shot_rank))
        .collect();
    (ids, z, f)
}

/// Where the matrix keeps its per-row state.
struct Layout {
    out: PathBuf,
}

impl Layout {
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
        self.out.join("pretrain").join(format!("seed{seed}"))
    }
}

/// Runs the matrix and writes `matrix.json`, `matrix.md` and the plots into `args.out`.
pub fn run_cli(args: &MatrixArgs) -> Result<()> {
    let cfg = Config::load(Some(&args.config), &args.sets)?;
    let report = run(&cfg, &args.out)?;
    println!(
        "matrix: {} rows x {} seeds ({} computed, {} reused) in {:.1}s",
        report.rows.len(),
        report.seeds.len(),
        report.computed.len(),
        report.reused.len(),
        report.wall_time_s
    );
    println!("{}", comparison_table(&report));
    println!("-> {}", args.out.join("matrix.md").display());
    Ok(())
}

/// Runs every selected row for every seed (reusing finished ones) and writes the reports.
pub fn run(cfg: &Config, out: &Path) -> Result<MatrixReport> {
    let started = Instant::now();
    if cfg.run.backend == "cuda" {
        return Err(Error::config(
            "run.backend",
            "the matrix pretrains on the CPU; use cpu (or auto)",
        ));
    }
    let rows = selected_rows(cfg)?;
    if cfg.data.test.is_empty() {
        return Err(Error::config("data.test", "the matrix needs test episodes"));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let lay = Layout {
        out: out.to_path_buf(),
    };
    let seeds = cfg.matrix.seeds.clone();
    let total = rows.len() * seeds.len();
    let (mut computed, mut reused) = (Vec::new(), Vec::new());
    let mut results: BTreeMap<(&str, u64), SeedResult> = BTreeMap::new();
    let mut done = 0;
    // Each seed's pretrained model, loaded (or trained) once for all rows that need it.
    let mut pretrained: BTreeMap<u64, pretrain::Pretrained> = BTreeMap::new();
    for &seed in &seeds {
        for row in &rows {
            done += 1;
            let tag = format!("{}/seed{seed}", row.name);
            let (res, fresh) = row_seed(cfg, row, seed, &lay, &mut pretrained)?;
            eprintln!(
                "[matrix {done}/{total}] {tag}: few-shot acc@1 {:.4}{}",
                mean_of(&res.few_shot, 0),
                if fresh {
                    format!(" ({:.1}s)", res.wall_time_s)
                } else {
                    " (reused)".into()
                }
            );
            if fresh {
                computed.push(tag);
            } else {
                reused.push(tag);
            }
            results.insert((row.name, seed), res);
        }
    }
    let vanilla: Vec<&SeedResult> = seeds.iter().map(|&s| &results[&("vanilla", s)]).collect();
    let n_test = vanilla[0].episode_ids.len();
    let mut reports = Vec::new();
    for row in &rows {
        let per_seed: Vec<&SeedResult> = seeds.iter().map(|&s| &results[&(row.name, s)]).collect();
        reports.push(row_report(row, &per_seed, &vanilla)?);
    }
    let report = MatrixReport {
        config: cfg.clone(),
        test_file: cfg.data.test.clone(),
        n_test_episodes: n_test,
        seeds,
        backend: "cpu".into(),
        machine: machine(),
        date: crate::util::run_tag(),
        rows: reports,
        wall_time_s: started.elapsed().as_secs_f64(),
        computed,
        reused,
    };
    train::write_json(&out.join("matrix.json"), &report)?;
    crate::util::atomic_write(&out.join("matrix.md"), markdown(&report).as_bytes())?;
    write_plots(&report, out)?;
    Ok(report)
}

fn mean_of(v: &[[f64; 5]], metric: usize) -> f64 {
    v.iter().map(|m| m[metric]).sum::<f64>() / v.len().max(1) as f64
}

/// One (row, seed): reused from its file when the key matches, else computed.
fn row_seed(
    cfg: &Config,
    row: &RowSpec,
    seed: u64,
    lay: &Layout,
    pretrained: &mut BTreeMap<u64, pretrain::Pretrained>,
) -> Result<(SeedResult, bool)> {
    let pre_dir = lay.pretrain_dir(seed);
    let ck = pre_dir.join(pretrain::CHECKPOINT_NAME);
    let row_cfg = match row.kind {
        Kind::Maml { .. } => maml_config(cfg, row, seed, &ck),
        _ => pretrain_config(cfg, seed),
    };
    let key = row_cfg.to_toml();
    let file = lay.seed_file(row.name, seed);
    if let Some(r) = read_json::<SeedResult>(&file) {
        if r.key == key {
            return Ok((r, false));
        }
    }
    let started = Instant::now();
    let mut res = match row.kind {
        Kind::Gru4Rec | Kind::Popularity => {
            let p = ensure_pretrained(cfg, seed, lay, pretrained)?;
            let recs = if row.kind == Kind::Gru4Rec {
                &p.gru4rec_records
            } else {
                &p.popularity_records
            };
            let (ids, z, f) = per_episode(recs);
            SeedResult {
                row: row.name.into(),
                seed,
                key,
                episode_ids: ids,
                // The baselines do not adapt: few-shot is their only prediction.
                zero_shot: z,
                few_shot: f,
                val_iteration: Vec::new(),
                val_acc1: Vec::new(),
                best_iteration: None,
                // Pretraining's time counts once, in the GRU4Rec row; the popularity row
                // gets its own (elapsed) time below.
                wall_time_s: if row.kind == Kind::Gru4Rec {
                    p.report.wall_time_s
                } else {
                    0.0
                },
            }
        }
        Kind::Maml { warm, .. } => {
            if warm {
                ensure_pretrained(cfg, seed, lay, pretrained)?;
            }
            let dir = lay.run_dir(row.name, seed);
            // A run folder left by a different configuration is the matrix's own: start over.
            let marker = dir.join("matrix_key.toml");
            if dir.exists() && std::fs::read_to_string(&marker).ok().as_deref() != Some(&key) {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            crate::util::atomic_write(&marker, key.as_bytes())?;
            let tr = train::train(
                &row_cfg,
                &TrainOptions {
                    out: dir,
                    resume: true,
                    force: false,
                    stop_after: None,
                    quiet: true,
                },
            )?;
            let (ids, z, f) = per_episode(&tr.test_records);
            SeedResult {
                row: row.name.into(),
                seed,
                key,
                episode_ids: ids,
                zero_shot: z,
                few_shot: f,
                val_iteration: tr.history.val_iteration.clone(),
                val_acc1: tr.history.val_acc1.clone(),
                best_iteration: tr.best_iteration,
                wall_time_s: 0.0,
            }
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

/// The pretrained model of `seed`, from `cache` or else [`load_or_pretrain`] (once per seed).
fn ensure_pretrained<'a>(
    cfg: &Config,
    seed: u64,
    lay: &Layout,
    cache: &'a mut BTreeMap<u64, pretrain::Pretrained>,
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

fn aggregate(
    per_seed: &[&SeedResult],
    pick: fn(&SeedResult) -> &Vec<[f64; 5]>,
    metric: usize,
    boot_seed: u64,
) -> Aggregate {
    let n_ep = pick(per_seed[0]).len();
    let means: Vec<f64> = per_seed.iter().map(|r| mean_of(pick(r), metric)).collect();
    let mean = means.iter().sum::<f64>() / means.len() as f64;
    let sd = if means.len() > 1 {
        (means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (means.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    let averaged: Vec<f64> = (0..n_ep)
        .map(|e| per_seed.iter().map(|r| pick(r)[e][metric]).sum::<f64>() / per_seed.len() as f64)
        .collect();
    let ci = bootstrap_mean(&averaged, boot_seed);
    Aggregate {
        mean,
        sd,
        ci_low: ci.ci_low,
        ci_high: ci.ci_high,
    }
}

/// Checks that every seed of `rows` and of `vanilla` was evaluated on the test episodes of
/// vanilla's first seed, in the same order, with one zero- and one few-shot value per episode:
/// the seed averages and the paired bootstrap match episodes by position.
fn check_same_episodes(rows: &[&SeedResult], vanilla: &[&SeedResult]) -> Result<()> {
    let reference = vanilla
        .first()
        .ok_or_else(|| Error::Other("no vanilla MAML seed to compare with".into()))?;
    let ids = &reference.episode_ids;
    for r in rows.iter().chain(vanilla) {
        let n = r.episode_ids.len();
        if r.zero_shot.len() != n || r.few_shot.len() != n {
            return Err(Error::Other(format!(
                "row {} seed {} has {} zero-shot and {} few-shot values for {n} test episodes; \
                 delete its file under rows/ and rerun",
                r.row,
                r.seed,
                r.zero_shot.len(),
                r.few_shot.len()
            )));
        }
        if r.episode_ids != *ids {
            let detail = match r.episode_ids.iter().zip(ids).position(|(a, b)| a != b) {
                Some(i) => format!(
                    "episode id {} at position {i} where vanilla MAML seed {} has {}",
                    r.episode_ids[i], reference.seed, ids[i]
                ),
                None => format!(
                    "{n} episodes where vanilla MAML seed {} has {}",
                    reference.seed,
                    ids.len()
                ),
            };
            return Err(Error::Other(format!(
                "row {} seed {} was evaluated on different test episodes than vanilla MAML \
                 ({detail}); delete its file under rows/ and rerun",
                r.row, r.seed
            )));
        }
    }
    Ok(())
}

/// Seed-averaged few-shot value of each episode minus vanilla's, with a bootstrap interval
/// (a paired bootstrap: both rows are resampled on the same episodes). An error when any seed of
/// either row was evaluated on other test episodes than vanilla's first seed.
pub fn paired_difference(
    per_seed: &[&SeedResult],
    vanilla: &[&SeedResult],
    metric: usize,
) -> Result<Estimate> {
    check_same_episodes(per_seed, vanilla)?;
    if per_seed.is_empty() {
        return Err(Error::Other("no seeds to compare with vanilla MAML".into()));
    }
    let avg = |rs: &[&SeedResult], e: usize| {
        rs.iter().map(|r| r.few_shot[e][metric]).sum::<f64>() / rs.len() as f64
    };
    let diffs: Vec<f64> = (0..vanilla[0].few_shot.len())
        .map(|e| avg(per_seed, e) - avg(vanilla, e))
        .collect();
    Ok(bootstrap_mean(&diffs, 7_000 + metric as u64))
}

fn row_report(
    row: &RowSpec,
    per_seed: &[&SeedResult],
    vanilla: &[&SeedResult],
) -> Result<RowReport> {
    check_same_episodes(per_seed, vanilla)?;
    let mut zero = BTreeMap::new();
    let mut few = BTreeMap::new();
    let mut diff = BTreeMap::new();
    for (i, name) in METRICS.iter().enumerate() {
        zero.insert(
            name.to_string(),
            aggregate(per_seed, |r| &r.zero_shot, i, 100 + i as u64),
        );
        few.insert(
            name.to_string(),
            aggregate(per_seed, |r| &r.few_shot, i, 200 + i as u64),
        );
        diff.insert(name.to_string(), paired_difference(per_seed, vanilla, i)?);
    }
    // Mean validation curve over the seeds that share the same validation iterations.
    let its = &per_seed[0].val_iteration;
    let val_curve = if per_seed.iter().all(|r| &r.val_iteration == its) {
        its.iter()
            .enumerate()
            .map(|(j, &it)| {
                let m = per_seed.iter().map(|r| r.val_acc1[j]).sum::<f64>() / per_seed.len() as f64;
                (it, m)
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(RowReport {
        name: row.name.into(),
        model: row.model.into(),
        init: row.init.into(),
        inner_loop: row.inner.into(),
        scheme: row.scheme_cell.0.into(),
        scheme_param: row.scheme_cell.1.into(),
        in_comparison: row.tables.comparison,
        in_ablation: row.tables.ablation,
        seeds: per_seed.iter().map(|r| r.seed).collect(),
        zero_shot: zero,
        few_shot: few,
        few_shot_vs_vanilla: diff,
        per_seed_few_shot_acc1: per_seed.iter().map(|r| mean_of(&r.few_shot, 0)).collect(),
        per_seed_best_iteration: per_seed.iter().map(|r| r.best_iteration).collect(),
        val_curve,
        wall_time_s: per_seed.iter().map(|r| r.wall_time_s).sum(),
    })
}

/// The CPU model and core count, for the report.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {n} threads")
}

/// `mean ± sd [low, high]`.
pub fn fmt_agg(a: &Aggregate) -> String {
    format!(
        "{:.4} ± {:.4} [{:.3}, {:.3}]",
        a.mean, a.sd, a.ci_low, a.ci_high
    )
}

/// `+0.0123 [-0.004, 0.029]`.
pub fn fmt_diff(e: &Estimate) -> String {
    format!("{:+.4} [{:+.3}, {:+.3}]", e.mean, e.ci_low, e.ci_high)
}

fn diff_cell(r: &RowReport) -> String {
    if r.name == "vanilla" {
        "baseline".into()
    } else {
        fmt_diff(&r.few_shot_vs_vanilla["acc@1"])
    }
}

/// The comparison matrix as a Markdown table.
pub fn comparison_table(rep: &MatrixReport) -> String {
    let mut s = String::from(
        "| Model | Init | Inner Loop | Zero-shot Acc@1 | Few-shot Acc@1 | Few-shot HR@10 | Few-shot NDCG@10 | Few-shot MRR | Few-shot Acc@1 vs Vanilla |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rep.rows.iter().filter(|r| r.in_comparison) {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.model,
            r.init,
            r.inner_loop,
            fmt_agg(&r.zero_shot["acc@1"]),
            fmt_agg(&r.few_shot["acc@1"]),
            fmt_agg(&r.few_shot["hr@10"]),
            fmt_agg(&r.few_shot["ndcg@10"]),
            fmt_agg(&r.few_shot["mrr"]),
            diff_cell(r)
        );
    }
    s
}

/// The ablation over weighting schemes as a Markdown table.
pub fn ablation_table(rep: &MatrixReport) -> String {
    let mut s = String::from(
        "| Scheme | Lambda/Temp | Few-shot Acc@1 | Zero-shot Acc@1 | Few-shot MRR | Few-shot Acc@1 vs Equal |\n|---|---|---|---|---|---|\n",
    );
    for r in rep.rows.iter().filter(|r| r.in_ablation) {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.scheme,
            r.scheme_param,
            fmt_agg(&r.few_shot["acc@1"]),
            fmt_agg(&r.zero_shot["acc@1"]),
            fmt_agg(&r.few_shot["mrr"]),
            diff_cell(r)
        );
    }
    s
}

/// A verdict on "row beats vanilla MAML in few-shot Acc@1" from the paired interval: better or
/// worse only when the interval excludes 0.
pub fn verdict(rep: &MatrixReport, name: &str) -> Option<String> {
    let r = rep.rows.iter().find(|r| r.name == name)?;
    let d = r.few_shot_vs_vanilla["acc@1"];
    let word = if d.ci_low > 0.0 {
        "better than vanilla"
    } else if d.ci_high < 0.0 {
        "worse than vanilla"
    } else {
        "no difference shown (the interval contains 0)"
    };
    Some(format!(
        "- {} vs vanilla MAML, few-shot Acc@1: {} → {word}",
        r.model,
        fmt_diff(&d)
    ))
}

/// `matrix.md`: the seed's two tables, filled, plus every metric and the run's context.
pub fn markdown(rep: &MatrixReport) -> String {
    let c = &rep.config;
    let mut s = String::from("# Comparison matrix and ablation\n\n");
    s += &format!(
        "Test episodes: {} from `{}`. Seeds: {:?}. Meta-training: {} iterations, meta-batch {}, inner {} steps at lr {}, outer lr {}, validation every {} (best validation few-shot Acc@1 kept). Pretraining: {} epochs, batch {}, lr {}, dropout {}. Backend {}, {}, {}; this invocation {:.1} s ({} computed, {} reused); the rows' own compute time, summed: {:.1} min.\n\n",
        rep.n_test_episodes,
        rep.test_file,
        rep.seeds,
        c.maml.num_meta_iterations,
        c.maml.meta_batch_size,
        c.maml.inner_steps,
        c.maml.inner_lr,
        c.maml.outer_lr,
        c.maml.val_every,
        c.pretrain.epochs,
        c.pretrain.batch_size,
        c.pretrain.lr,
        c.pretrain.dropout,
        rep.backend,
        rep.machine,
        rep.date,
        rep.wall_time_s,
        rep.computed.len(),
        rep.reused.len(),
        rep.rows.iter().map(|r| r.wall_time_s).sum::<f64>() / 60.0
    );
    s += "Cells: mean ± standard deviation over seeds [95% bootstrap interval over test episodes]. Differences: seed-averaged per-episode difference to vanilla MAML with a paired bootstrap interval. The baselines (GRU4Rec, popularity) do not adapt, so their few-shot value is their only prediction.\n\n";
    s += "## Comparison matrix\n\n";
    s += &comparison_table(rep);
    s += "\n## Ablation: weighting schemes\n\n";
    s += &ablation_table(rep);
    s += "\n## Hypotheses\n\nDoes the row beat vanilla MAML? (The seed's hypotheses: recency weighting improves adaptation; warm start + recency is best.)\n\n";
    for name in ["recency", "warmstart", "warmstart_recency", "gru4rec"] {
        if let Some(v) = verdict(rep, name) {
            s += &v;
            s += "\n";
        }
    }
    s += "\n## All metrics\n\n| Row | Seeds | ";
    for m in METRICS {
        s += &format!("Zero-shot {m} | ");
    }
    for m in METRICS {
        s += &format!("Few-shot {m} | ");
    }
    s += "\n|---|---|";
    s += &"---|".repeat(2 * METRICS.len());
    s += "\n";
    for r in &rep.rows {
        s += &format!("| {} | {:?} | ", r.name, r.seeds);
        for m in METRICS {
            s += &format!("{} | ", fmt_agg(&r.zero_shot[m]));
        }
        for m in METRICS {
            s += &format!("{} | ", fmt_agg(&r.few_shot[m]));
        }
        s += "\n";
    }
    s += "\n## Plots\n\n![weights](plots/recency_weights.png)\n\n![validation](plots/val_acc1.png)\n\n![few-shot](plots/few_shot_acc1.png)\n";
    s
}

/// The lines of the validation plot: one per row that has a validation curve (the MAML rows), in
/// report order, with the points (iteration, validation few-shot Acc@1 averaged over seeds).
pub fn val_curve_series(rep: &MatrixReport) -> Vec<crate::plot::Series> {
    rep.rows
        .iter()
        .filter(|r| !r.val_curve.is_empty())
        .map(|r| crate::plot::Series {
            label: plot_label(r),
            points: r.val_curve.iter().map(|&(i, a)| (i as f64, a)).collect(),
        })
        .collect()
}

/// The rows of the few-shot plot: every row in report order with its few-shot Acc@1 (mean over
/// seeds and bootstrap interval over test episodes).
pub fn few_shot_intervals(rep: &MatrixReport) -> Vec<crate::plot::RowInterval> {
    rep.rows
        .iter()
        .map(|r| {
            let a = r.few_shot["acc@1"];
            crate::plot::RowInterval {
                label: plot_label(r),
                mean: a.mean,
                lo: a.ci_low,
                hi: a.ci_high,
            }
        })
        .collect()
}

/// The three figures, PNG and SVG, under `out/plots/`.
fn write_plots(rep: &MatrixReport, out: &Path) -> Result<()> {
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let k = crate::data::read_episodes(Path::new(&rep.test_file), None)?.k;
    crate::plot::weight_schemes(&dir.join("recency_weights"), k)?;
    let series = val_curve_series(rep);
    if !series.is_empty() {
        crate::plot::val_curves(
            &dir.join("val_acc1"),
            "Validation few-shot Acc@1 (mean over seeds)",
            &series,
        )?;
    }
    let rows = few_shot_intervals(rep);
    crate::plot::row_intervals(
        &dir.join("few_shot_acc1"),
        "Few-shot Acc@1 on the test episodes (95% bootstrap interval)",
        "Acc@1",
        &rows,
    )
}
