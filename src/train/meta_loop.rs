//! The meta-training loop: [`train`] reads the run's inputs, starts or resumes, takes FOMAML steps
//! on meta-batches drawn without replacement, validates and checkpoints as configured, and ends
//! with the `final` weights, the test metrics and the run's results and report.

use super::out_dir::{checkpoint_path, clean_up_failed_run, latest_checkpoint, prepare_out_dir};
use super::report::{report, results, write_json, TrainResults};
use super::run_data::{initial_params, RunData};
use super::setup::{inner_loop, make_backend, outer_config};
use super::state::{weights_digest, TrainState};
use crate::backend::{Backend, InnerLoop, MetaStepStats, OuterConfig, Task};
use crate::checkpoint;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::evaluate::{evaluate_set, EpisodeRecord, EvalSummary};
use crate::model::ParamLayout;
use crate::util::{claim_out_dir, Progress};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `recmaml train` beyond the configuration.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out/checkpoints` (a fresh start when there is
    /// none); the checkpoint's configuration must match but for
    /// [`RESUME_MAY_CHANGE`](super::RESUME_MAY_CHANGE).
    pub resume: bool,
    /// Start a new run in a non-empty `out`: the outputs of a previous run there
    /// ([`RUN_OUTPUTS`](super::RUN_OUTPUTS) and `checkpoints/`) are deleted first. Not with
    /// `resume`.
    pub force: bool,
    /// Stop after this many iterations of this process (to test resume); `None` runs to the end.
    pub stop_after: Option<u64>,
    /// No progress bars (lines such as validation results are still printed).
    pub quiet: bool,
}

/// Meta-trains as configured, writing into `opts.out`, which the run holds locked throughout (a
/// second run on it is refused). A run that fails leaves its checkpoints for `--resume`; when it
/// has none, it removes what it wrote (and the folder, if it made it and nothing else is there).
pub fn train(cfg: &Config, opts: &TrainOptions) -> Result<TrainResults> {
    let started = Instant::now();
    if opts.resume && opts.force {
        return Err(Error::config(
            "--force",
            "cannot be combined with --resume: --resume continues the run in the output \
             folder, --force starts a new one there",
        ));
    }
    // Held until the end of this function: after the clean-up of a failed run.
    let _lock = claim_out_dir(&opts.out, 1)?;
    let run = RunData::load(cfg)?;
    let layout = ParamLayout::new(run.dims);
    let theta0 = initial_params(cfg, run.warm_start.as_ref(), &layout)?;
    let warm_digest = run.warm_start.is_some().then(|| weights_digest(&theta0));
    // Residual warm-start: the pretrained weights stay as they were loaded, as the anchor that
    // the delta θ − θ_pre is measured from (also on resume, which restores θ afterwards).
    let anchor = (cfg.warmstart.residual_l2 > 0.0).then(|| theta0.clone());
    let mut backend = make_backend(cfg, layout.clone(), theta0)?;
    if let Some(a) = &anchor {
        backend.set_anchor(a)?;
    }
    let mut trainer = Trainer {
        cfg,
        opts,
        run: &run,
        layout,
        inner: inner_loop(cfg),
        outer: outer_config(cfg),
        backend,
        state: TrainState::fresh(cfg, warm_digest),
        last_good: None,
        prepared: false,
        written: Vec::new(),
    };
    let res = trainer
        .start()
        .and_then(|()| trainer.iterate())
        .and_then(|()| trainer.finish(started));
    if res.is_err() && trainer.prepared {
        clean_up_failed_run(&opts.out, &trainer.written);
    }
    res
}

/// Which weights were tested (`best` or `final`), with their summary and per-episode records.
type TestOutcome = (Option<String>, Option<(EvalSummary, Vec<EpisodeRecord>)>);

/// A run in progress: its inputs, its backend and its state.
struct Trainer<'a> {
    cfg: &'a Config,
    opts: &'a TrainOptions,
    run: &'a RunData,
    layout: ParamLayout,
    inner: InnerLoop,
    outer: OuterConfig,
    backend: Box<dyn Backend>,
    state: TrainState,
    /// The newest checkpoint written or found, named by the error of a non-finite step.
    last_good: Option<PathBuf>,
    /// Whether the output folder was checked and prepared (before, a failure writes nothing).
    prepared: bool,
    /// The files besides checkpoints this run wrote into the output folder.
    written: Vec<PathBuf>,
}

impl Trainer<'_> {
    /// Resumes from the newest checkpoint when asked, prepares the output folder, and validates
    /// the starting point of a new run.
    fn start(&mut self) -> Result<()> {
        let out = &self.opts.out;
        // The checkpoint is read and checked before anything is written, so that a refused resume
        // leaves the folder as it was.
        let resumed_from = if self.opts.resume {
            latest_checkpoint(out)
        } else {
            None
        };
        if let Some((_, path)) = &resumed_from {
            let backend = self.backend.as_mut();
            let digest = self.state.warm_start_digest.clone();
            self.state = TrainState::restore(path, self.cfg, &self.layout, backend, digest)?;
        }
        prepare_out_dir(out, self.opts.resume, self.opts.force)?;
        self.prepared = true;
        if let Some((_, path)) = &resumed_from {
            eprintln!(
                "resumed from {} (iteration {})",
                path.display(),
                self.state.iteration
            );
        }
        if self.state.iteration == 0 && self.cfg.maml.val_every > 0 {
            // The starting point is a candidate too (for a warm start, the pretrained model).
            self.validate(0)?;
        }
        Ok(())
    }

    /// Runs iterations up to the configured number, or as many as `stop_after` allows.
    fn iterate(&mut self) -> Result<()> {
        let total = self.cfg.maml.num_meta_iterations;
        let mut progress = Progress::new("meta-train", total, false, self.opts.quiet);
        progress.set(self.state.iteration);
        self.last_good = latest_checkpoint(&self.opts.out).map(|(_, p)| p);
        let mut ran = 0u64;
        while self.state.iteration < total {
            if self.opts.stop_after.is_some_and(|s| ran >= s) {
                break;
            }
            self.step(&mut progress)?;
            ran += 1;
        }
        progress.finish();
        Ok(())
    }

    /// One meta-update, then validation and a checkpoint where they are due.
    fn step(&mut self, progress: &mut Progress) -> Result<()> {
        let cfg = self.cfg;
        let run = self.run;
        let it = self.state.iteration + 1;
        let idx = self
            .state
            .rng
            .sample_without_replacement(run.train.len(), cfg.maml.meta_batch_size);
        let tasks: Vec<Task> = idx.iter().map(|&i| run.train.task(i)).collect();
        let stats = self.backend.meta_step(&tasks, &self.inner, &self.outer)?;
        if !stats.meta_loss.is_finite() || !stats.grad_norm.is_finite() {
            return Err(Error::NonFinite {
                iteration: it,
                last_good: self.last_good.take(),
            });
        }
        self.state.iteration = it;
        self.state.history.iteration.push(it);
        self.state.history.meta_loss.push(stats.meta_loss);
        self.state.history.grad_norm.push(stats.grad_norm);
        let mut val_msg = String::new();
        if cfg.maml.val_every > 0 && it.is_multiple_of(cfg.maml.val_every) {
            if let Some(acc) = self.validate(it)? {
                val_msg = format!(" val acc@1 {:.4}", acc);
                progress.line(&self.validation_line(it, &stats, acc));
            }
        }
        progress.set_message(&format!("meta-loss {:.4}{val_msg}", stats.meta_loss));
        progress.set(it);
        if cfg.maml.checkpoint_every > 0 && it.is_multiple_of(cfg.maml.checkpoint_every) {
            let path = checkpoint_path(&self.opts.out, it);
            self.state
                .save(&path, cfg, &self.layout, self.backend.as_ref())?;
            self.last_good = Some(path);
        }
        Ok(())
    }

    /// Notes that this run writes `path` (before writing it, so that a failed write counts).
    fn note_written(&mut self, path: &std::path::Path) {
        if !self.written.iter().any(|p| p == path) {
            self.written.push(path.to_path_buf());
        }
    }

    /// The line printed after a validation at iteration `it`.
    fn validation_line(&self, it: u64, stats: &MetaStepStats, acc: f64) -> String {
        format!(
            "iteration {it}/{}: meta-loss {:.4}, val few-shot acc@1 {acc:.4} (best {:.4} at {})",
            self.cfg.maml.num_meta_iterations,
            stats.meta_loss,
            self.state.best_val_acc.unwrap_or(f64::NAN),
            self.state.best_iteration.unwrap_or(0)
        )
    }

    /// Evaluates the validation episodes at iteration `it`: records zero- and few-shot Acc@1 in
    /// the history and keeps the weights (and `best.safetensors`) when few-shot Acc@1 is the best
    /// so far. Returns the few-shot Acc@1, or `None` without validation episodes.
    fn validate(&mut self, it: u64) -> Result<Option<f64>> {
        let Some(val) = &self.run.val else {
            return Ok(None);
        };
        let (summary, _) = evaluate_set(self.backend.as_mut(), val, &self.inner, None)?;
        let acc = summary.few_shot.acc1.mean;
        let state = &mut self.state;
        state.history.val_iteration.push(it);
        state.history.val_acc1.push(acc);
        state
            .history
            .val_zero_shot_acc1
            .push(summary.zero_shot.acc1.mean);
        if state.best_val_acc.is_none_or(|b| acc > b) {
            state.best_val_acc = Some(acc);
            state.best_iteration = Some(it);
            let best = self.backend.params()?;
            let path = self.opts.out.join("best.safetensors");
            self.note_written(&path);
            checkpoint::save_params(&path, &self.layout, &best, &BTreeMap::new())?;
            self.state.best_params = Some(best);
        }
        Ok(Some(acc))
    }

    /// After the last iteration: `final.safetensors`, the test metrics, `results.json` and
    /// `report.json`. A run stopped early by `stop_after` writes none of them.
    fn finish(&mut self, started: Instant) -> Result<TrainResults> {
        let (cfg, run, opts) = (self.cfg, self.run, self.opts);
        let out = &opts.out;
        let theta = self.backend.params()?;
        if self.state.iteration < cfg.maml.num_meta_iterations {
            // Stopped early on request: leave the checkpoints for --resume, write no final results.
            return Ok(results(cfg, run, &self.state, None, None, started));
        }
        let final_path = out.join("final.safetensors");
        self.note_written(&final_path);
        checkpoint::save_params(&final_path, &self.layout, &theta, &BTreeMap::new())?;
        let (test_weights, test) = self.test(&theta)?;
        let (test, test_records) = test.unzip();
        let mut res = results(cfg, run, &self.state, test_weights, test, started);
        let (results_path, report_path) = (out.join("results.json"), out.join("report.json"));
        self.note_written(&results_path);
        write_json(&results_path, &res)?;
        let report = report(cfg, run, &self.state, res.wall_time_s, self.backend.name());
        self.note_written(&report_path);
        write_json(&report_path, &report)?;
        res.test_records = test_records.unwrap_or_default();
        Ok(res)
    }

    /// The test metrics of the best weights (the final ones without validation), named, when
    /// there are test episodes; θ is `theta` again afterwards.
    fn test(&mut self, theta: &[f32]) -> Result<TestOutcome> {
        let Some(test) = &self.run.test else {
            return Ok((None, None));
        };
        let which = if self.state.best_params.is_some() {
            "best"
        } else {
            "final"
        };
        if let Some(best) = &self.state.best_params {
            self.backend.set_params(best)?;
        }
        let mut p = Progress::new("test eval", test.len() as u64, false, self.opts.quiet);
        let (summary, records) =
            evaluate_set(self.backend.as_mut(), test, &self.inner, Some(&mut p))?;
        p.finish();
        self.backend.set_params(theta)?;
        Ok((Some(which.to_string()), Some((summary, records))))
    }
}
