//! `recmaml matrix`: the comparison matrix and ablation over several seeds
//! ([`recmaml::matrix::run`]), with the comparison table printed at the end.

use super::ConfigRun;
use clap::Args;
use recmaml::matrix;

/// `recmaml matrix`.
#[derive(Args, Debug)]
#[command(
    mut_arg("config", |a| a.help(
        "TOML configuration (configs/matrix.toml): data incl. `pairs_train`, model, maml, \
         pretrain, `matrix.seeds`, `matrix.rows` (empty: all of gru4rec, popularity, vanilla, \
         warmstart, recency, warmstart_recency, residual, sknn, exp0.3, exp1.0, linear, \
         softmax1.0, time, and the sensitivity rows lr<LR>x<STEPS>_{equal,exp} listed in \
         configs/matrix.toml), \
         `matrix.residual_l2`"
    )),
    mut_arg("sets", |a| a.help(
        "Override a configuration key, e.g. `--set matrix.seeds=[1,2]` (repeatable)"
    )),
    mut_arg("out", |a| a.help(
        "Output folder: matrix.json, matrix.md, plots/, and the rows' runs (reused when rerun)"
    )),
)]
pub struct MatrixArgs {
    #[command(flatten)]
    run: ConfigRun,
}

/// Runs the matrix (which writes `matrix.json`, `matrix.md` and the plots into `--out`) and
/// prints its comparison table.
pub fn run(args: &MatrixArgs) -> recmaml::Result<()> {
    let cfg = args.run.load()?;
    let report = matrix::run(&cfg, &args.run.out)?;
    println!(
        "matrix: {} rows x {} seeds ({} computed, {} reused) in {:.1}s",
        report.rows.len(),
        report.seeds.len(),
        report.computed.len(),
        report.reused.len(),
        report.wall_time_s
    );
    println!("{}", matrix::comparison_table(&report));
    println!("-> {}", args.run.out.join("matrix.md").display());
    Ok(())
}
