//! A run's output folder: checked against `--resume`/`--force` and prepared before the first
//! write, the checkpoints in its `checkpoints/` (`iter_{iteration:06}.safetensors`), and what a
//! run that fails removes again.

use crate::error::{Error, Result};
use crate::util::LOCK_FILE;
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

/// Whether `out` holds anything but the run's own lock file and an empty `checkpoints/`.
fn holds_something(out: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(out) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name();
        if name == LOCK_FILE {
            return false;
        }
        let empty_dir = |p: &Path| std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none());
        !(name == "checkpoints" && empty_dir(&e.path()))
    })
}

/// Checks the output folder against `--resume`/`--force` and creates it (with `checkpoints/`).
/// A non-empty folder needs one of the two; `--force` first deletes a previous run's outputs
/// there (`checkpoints/` and [`RUN_OUTPUTS`], nothing else), so that no old checkpoint is left
/// for a later `--resume` and no old result beside the new ones.
pub(super) fn prepare_out_dir(out: &Path, resume: bool, force: bool) -> Result<()> {
    let non_empty = holds_something(out);
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

/// After a run failed: when `out` holds no checkpoint that a `--resume` could continue, deletes
/// the files the run wrote (`written`) and `checkpoints/` if it is empty, so that the folder is as
/// before the run; otherwise leaves everything for `--resume`.
pub(super) fn clean_up_failed_run(out: &Path, written: &[PathBuf]) {
    if latest_checkpoint(out).is_some() {
        return;
    }
    for f in written {
        if let Err(e) = std::fs::remove_file(f) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("could not remove {} after the failed run: {e}", f.display());
            }
        }
    }
    // Fails, as it should, unless it is empty.
    let _ = std::fs::remove_dir(out.join("checkpoints"));
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
