//! The tasks of one benchmark configuration (generated, or read from an episode file), the
//! meta-batches drawn from them, the settings of the meta-steps, and the prefix lengths'
//! statistics for the report.

use super::options::BenchOptions;
use super::sweep::BenchConfig;
use crate::backend::{InnerLoop, OuterConfig, Task};
use crate::config::Config;
use crate::data::workload::generate_episodes;
use crate::data::{self, Episode};
use crate::error::{Error, Result};
use crate::model::ModelDims;
use crate::rng::Rng;
use crate::train;

/// Everything one configuration's run steps through: its episodes, their support weights, the
/// meta-batches in the order they run (the warm-up ones, then `repeats` runs of `iters`), and
/// the inner and outer settings of every meta-step.
pub(super) struct Plan {
    pub episodes: Vec<Episode>,
    /// Where the episodes come from, for the report.
    pub source: String,
    pub dims: ModelDims,
    /// The K support weights every task uses (the default scheme of the configuration).
    pub weights: Vec<f32>,
    /// Row indices into `episodes`, one meta-batch each.
    pub batches: Vec<Vec<usize>>,
    pub inner: InnerLoop,
    pub outer: OuterConfig,
}

impl Plan {
    /// The plan of `cfg`: its tasks (an error when there are fewer than N) and the meta-batches,
    /// drawn with the options' seed.
    pub fn new(args: &BenchOptions, cfg: &BenchConfig) -> Result<Self> {
        let (episodes, source, v) = load_episodes(args, cfg)?;
        if episodes.len() < cfg.n {
            return Err(Error::config(
                "--n",
                format!(
                    "{} tasks requested but only {} episodes",
                    cfg.n,
                    episodes.len()
                ),
            ));
        }
        let k = episodes[0].support_labels.len();
        let weights = train::episode_weights(&Config::default().recency, k, None)?;
        let mut rng = Rng::new(args.seed);
        let batches = (0..args.warmup + args.iters * args.repeats)
            .map(|_| rng.sample_without_replacement(episodes.len(), cfg.n))
            .collect();
        Ok(Plan {
            episodes,
            source,
            dims: ModelDims {
                n_items: v,
                embed_dim: cfg.e,
                hidden_dim: cfg.h,
            },
            weights,
            batches,
            inner: InnerLoop {
                lr: 0.01,
                steps: cfg.inner_steps,
            },
            outer: OuterConfig::adam(1e-3, 10.0),
        })
    }

    /// The tasks of one meta-batch.
    pub fn tasks(&self, batch: &[usize]) -> Vec<Task<'_>> {
        batch
            .iter()
            .map(|&i| Task::of(&self.episodes[i], &self.weights))
            .collect()
    }

    /// The mean over every meta-batch of `f` of its tasks.
    pub fn mean_per_batch(&self, f: impl Fn(&[Task]) -> f64) -> f64 {
        self.batches.iter().map(|b| f(&self.tasks(b))).sum::<f64>() / self.batches.len() as f64
    }

    /// Tasks per meta-batch (N).
    pub fn n(&self) -> usize {
        self.batches[0].len()
    }

    /// Support pairs per task.
    pub fn k(&self) -> usize {
        self.episodes[0].support_labels.len()
    }

    /// Query pairs per task.
    pub fn q(&self) -> usize {
        self.episodes[0].query_labels.len()
    }
}

/// Episodes for a configuration: read from the options' episode file (V from the file), or
/// generated.
fn load_episodes(args: &BenchOptions, cfg: &BenchConfig) -> Result<(Vec<Episode>, String, usize)> {
    Ok(match &args.episodes {
        Some(path) => {
            let set = data::read_episodes(path, None)?;
            (set.episodes, path.display().to_string(), set.n_items)
        }
        None => (
            generate_episodes(
                (cfg.n * 8).max(64),
                cfg.k,
                cfg.q,
                cfg.v,
                cfg.prefix_cap,
                args.seed,
            ),
            "generated (independent random prefixes)".to_string(),
            cfg.v,
        ),
    })
}

/// Median, 90th percentile and mean of the lengths of every support and query prefix.
pub(super) struct PrefixLengths {
    pub median: usize,
    pub p90: usize,
    pub mean: f64,
}

impl PrefixLengths {
    pub fn of(episodes: &[Episode]) -> Self {
        let mut lens: Vec<usize> = episodes
            .iter()
            .flat_map(|e| {
                e.support_prefixes
                    .iter()
                    .chain(&e.query_prefixes)
                    .map(Vec::len)
            })
            .collect();
        lens.sort_unstable();
        PrefixLengths {
            median: percentile(&lens, 0.5),
            p90: percentile(&lens, 0.9),
            mean: lens.iter().sum::<usize>() as f64 / lens.len() as f64,
        }
    }
}

/// The `q` quantile of sorted values (the nearest rank).
fn percentile(sorted: &[usize], q: f64) -> usize {
    sorted[((q * (sorted.len() - 1) as f64).round()) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::workload::xuetangx_prefix_len;

    #[test]
    fn generated_prefix_lengths_look_like_xuetangx() {
        let mut rng = Rng::new(5);
        let mut lens: Vec<usize> = (0..20_000)
            .map(|_| xuetangx_prefix_len(&mut rng, 50))
            .collect();
        lens.sort_unstable();
        assert_eq!(percentile(&lens, 0.5), 3);
        let p90 = percentile(&lens, 0.9);
        assert!((17..=21).contains(&p90), "p90 {p90}");
        assert!(*lens.last().unwrap() <= 50 && lens[0] >= 1);
    }
}
