//! A run's output folder: checked against `--resume`/`--force` and prepared before the first
//! write, and the checkpoints in its `checkpoints/` (`iter_{iteration:06}.safetensors`).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The files a run writes into its output folder besides `checkpoints/`.
pub const RUN_OUTPUTS: [&str; 4] = [
    "final.safetensors",
    "best.safetensors",
    "results.json",
    "report.json",
];

/// The checkpoint of iteration `iteration` in `out`.
pub(super) fn checkpoint_path(out: &Path, iteration: u64) -> PathBuf {
    out.join("checkpoints")
        .join(format!("iter_{iteration:06}.safetensors"))
}

/// The newest checkpoint in `out` and its iteration, if there is one.
pub(super) fn latest_checkpoint(out: &Path) -> Option<(u64, PathBuf)> {
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

/// Checks the output folder against `--resume`/`--force` and creates it (with `checkpoints/`).
/// A non-empty folder needs one of the two; `--force` first deletes a previous run's outputs
/// there (`checkpoints/` and [`RUN_OUTPUTS`], nothing else), so that no old checkpoint is left
/// for a later `--resume` and no old result beside the new ones.
pub(super) fn prepare_out_dir(out: &Path, resume: bool, force: bool) -> Result<()> {
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
        delete_run_outputs(out)?;
    }
    std::fs::create_dir_all(out.join("checkpoints")).map_err(|e| Error::io(out, e))
}

/// Deletes `checkpoints/` and [`RUN_OUTPUTS`] in `out`, where they exist.
fn delete_run_outputs(out: &Path) -> Result<()> {
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
    Ok(())
}
