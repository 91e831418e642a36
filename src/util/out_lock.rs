//! One output folder, one run: [`lock_out_dir`] takes an exclusive OS advisory lock
//! (`File::try_lock`, `flock` on Linux) on the lock file [`LOCK_FILE`] inside the folder and
//! writes the holder's pid into it; a second run on the folder is refused with an error naming
//! that pid. The OS releases the lock when the holder exits, however it exits, so a lock file
//! left by a killed run is simply taken over.
//!
//! The temporary files and folders a run writes carry its pid in their names
//! (`.NAME.tmp-PID.RANDOM` for atomic writes, `.NAME.tmp-PID` for `prepare`'s folder and
//! `synth`'s log); [`remove_stale_temporaries`] removes those whose process is gone.

use crate::error::{Error, Result};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file inside a locked output folder.
pub const LOCK_FILE: &str = ".recmaml.lock";

/// The lock on an output folder, held until dropped. Dropping it deletes the lock file and, when
/// [`lock_out_dir`] made the folder and the folder is empty again, the folder.
#[derive(Debug)]
pub struct OutDirLock {
    file: File,
    path: PathBuf,
    dir: PathBuf,
    /// The folder, when this lock made it.
    made_dir: Option<FileId>,
}

impl OutDirLock {
    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for OutDirLock {
    fn drop(&mut self) {
        // Only our own lock file: the folder may have been replaced (`prepare`) since.
        if FileId::of_path(&self.path) == FileId::of_file(&self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Some(id) = self.made_dir {
            if FileId::of_path(&self.dir) == Some(id) {
                // Fails, as it should, unless the folder is empty.
                let _ = std::fs::remove_dir(&self.dir);
            }
        }
    }
}

/// Identity of a file (device and inode), to tell a path's current file from one we opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    #[cfg(unix)]
    fn of_meta(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileId(m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    fn of_meta(m: &std::fs::Metadata) -> Self {
        FileId(m.len(), 0)
    }
    fn of_path(p: &Path) -> Option<Self> {
        std::fs::symlink_metadata(p).ok().map(|m| Self::of_meta(&m))
    }
    fn of_file(f: &File) -> Option<Self> {
        f.metadata().ok().map(|m| Self::of_meta(&m))
    }
}

/// Locks the output folder `dir` for this process, making it if needed. Refused when another
/// run holds it: the error names `dir`, the holder's pid and the lock file.
pub fn lock_out_dir(dir: &Path) -> Result<OutDirLock> {
    if dir.is_file() {
        return Err(Error::config(
            "--out",
            format!("{} is a file, not a folder", dir.display()),
        ));
    }
    let made_dir = if dir.exists() {
        None
    } else {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        FileId::of_path(dir)
    };
    let res = take_lock(dir);
    if res.is_err() && made_dir.is_some() {
        let _ = std::fs::remove_dir(dir);
    }
    let (file, path) = res?;
    Ok(OutDirLock {
        file,
        path,
        dir: dir.to_path_buf(),
        made_dir,
    })
}

fn take_lock(dir: &Path) -> Result<(File, PathBuf)> {
    let path = dir.join(LOCK_FILE);
    // A holder deletes the file before it lets go of the lock, so the file we locked may be gone
    // from the folder: then try again with the current one.
    for _ in 0..8 {
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(in_use(dir, &path, &mut file)),
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        if FileId::of_path(&path) != FileId::of_file(&file) {
            continue;
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        return Ok((file, path));
    }
    Err(Error::Other(format!(
        "{}: could not take the lock file {LOCK_FILE}: it kept being replaced",
        dir.display()
    )))
}

/// The error for a folder held by another run, with the pid from its lock file.
fn in_use(dir: &Path, path: &Path, file: &mut File) -> Error {
    // The holder writes its pid just after locking: give it a moment.
    let mut pid = None;
    for _ in 0..20 {
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            pid = text.trim().parse::<u32>().ok();
        }
        if pid.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let holder = pid.map_or("another process (pid unknown)".to_string(), |p| {
        format!("another recmaml run, pid {p}")
    });
    Error::config(
        "--out",
        format!(
            "{} is in use by {holder} (lock file {}); wait for it to finish or choose another \
             output folder",
            dir.display(),
            path.display()
        ),
    )
}

/// Locks the output folder `dir` ([`lock_out_dir`]) and removes the temporaries that runs gone
/// since left in it, down to `depth` levels of subfolders ([`remove_stale_temporaries`]), with a
/// line on stderr for each.
pub fn claim_out_dir(dir: &Path, depth: usize) -> Result<OutDirLock> {
    let lock = lock_out_dir(dir)?;
    for p in remove_stale_temporaries(dir, depth)? {
        eprintln!("removed {}, left by a run that was stopped", p.display());
    }
    Ok(lock)
}

/// Whether process `pid` is running; `None` where this cannot be told (no `/proc`).
pub fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

/// The pid in the name of a temporary file or folder of a recmaml run, if `name` is one:
/// `.NAME.tmp-PID` (`prepare`, `synth`) or `.NAME.tmp-PID.RANDOM` (atomic writes).
pub fn temporary_pid(name: &str) -> Option<u32> {
    let (base, tail) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    let pid = match tail.split_once('.') {
        Some((pid, random))
            if !random.is_empty() && random.bytes().all(|c| c.is_ascii_alphanumeric()) =>
        {
            pid
        }
        Some(_) => return None,
        None => tail,
    };
    if base.is_empty() || pid.is_empty() || !pid.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the temporaries of runs that are gone (see [`temporary_pid`]) in `dir` and, down to
/// `depth` more levels, its subfolders; never this process's, nor any whose process may be alive.
/// Returns what it removed.
pub fn remove_stale_temporaries(dir: &Path, depth: usize) -> Result<Vec<PathBuf>> {
    remove_stale(dir, depth, &|_| true)
}

/// Removes, in `dir`, the temporaries of `name` (`.{name}.tmp-PID...`) of runs that are gone.
pub fn remove_stale_temporaries_of(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let prefix = format!(".{name}.tmp-");
    remove_stale(dir, 0, &|n| n.starts_with(&prefix))
}

fn remove_stale(dir: &Path, depth: usize, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(removed);
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        let name = entry.file_name();
        let pid = name.to_str().filter(|n| wanted(n)).and_then(temporary_pid);
        if let Some(pid) = pid {
            if pid != std::process::id() && process_alive(pid) == Some(false) {
                let res = if kind.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                res.map_err(|e| Error::io(&path, e))?;
                removed.push(path);
            }
        } else if kind.is_dir() && depth > 0 {
            removed.extend(remove_stale(&path, depth - 1, wanted)?);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_give_their_pid() {
        assert_eq!(temporary_pid(".best.safetensors.tmp-123.AbC9xy"), Some(123));
        assert_eq!(temporary_pid(".synth.tmp-77"), Some(77));
        assert_eq!(temporary_pid(".data.csv.tmp-77"), Some(77));
        for other in [
            "best.safetensors",
            ".recmaml.lock",
            ".best.safetensors.AbC9xy.tmp",
            ".notes.2024.backup.tmp",
            "..tmp-1",
            ".x.tmp-",
            ".x.tmp-12a",
            ".x.tmp-+12",
            ".x.tmp-12.",
            ".x.tmp-12.a-b",
            "x.tmp-12",
        ] {
            assert_eq!(temporary_pid(other), None, "{other}");
        }
    }

    /// A pid that no process has: above the kernel's maximum.
    fn dead_pid() -> u32 {
        let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304);
        max + 1
    }

    #[test]
    fn only_temporaries_of_dead_processes_are_removed() {
        if process_alive(std::process::id()) != Some(true) {
            return; // no /proc: nothing is ever removed, checked below
        }
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let dead = dead_pid();
        let me = std::process::id();
        let sub = d.join("checkpoints");
        std::fs::create_dir(&sub).unwrap();
        let stale = [
            d.join(format!(".best.safetensors.tmp-{dead}.aaaaaa")),
            sub.join(format!(".iter_000002.safetensors.tmp-{dead}.bbbbbb")),
        ];
        let stale_dir = d.join(format!(".data.tmp-{dead}"));
        std::fs::create_dir(&stale_dir).unwrap();
        std::fs::write(stale_dir.join("x"), "x").unwrap();
        let kept = [
            d.join(format!(".best.safetensors.tmp-{me}.cccccc")),
            d.join(".best.safetensors.tmp-1.dddddd"), // pid 1 is alive
            d.join("final.safetensors"),
            d.join(LOCK_FILE),
        ];
        for p in stale.iter().chain(&kept) {
            std::fs::write(p, "x").unwrap();
        }
        let mut removed = remove_stale_temporaries(d, 1).unwrap();
        removed.sort();
        let mut want = vec![stale[0].clone(), stale[1].clone(), stale_dir.clone()];
        want.sort();
        assert_eq!(removed, want);
        assert!(kept.iter().all(|p| p.exists()));
        assert!(stale.iter().all(|p| !p.exists()) && !stale_dir.exists());
        // Depth 0 leaves subfolders alone.
        std::fs::write(&stale[1], "x").unwrap();
        assert!(remove_stale_temporaries(d, 0).unwrap().is_empty());
        assert!(stale[1].exists());
        // By name: only that name's.
        let other = d.join(format!(".other.tmp-{dead}"));
        let mine = d.join(format!(".data.tmp-{dead}"));
        for p in [&other, &mine] {
            std::fs::write(p, "x").unwrap();
        }
        assert_eq!(remove_stale_temporaries_of(d, "data").unwrap(), vec![mine]);
        assert!(other.exists());
    }

    #[test]
    fn a_held_folder_is_refused_naming_the_pid_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new").join("run");
        let lock = lock_out_dir(&dir).unwrap();
        let lock_file = dir.join(LOCK_FILE);
        assert_eq!(
            std::fs::read_to_string(&lock_file).unwrap(),
            format!("{}\n", std::process::id())
        );
        // A second open file description conflicts even within one process.
        let e = lock_out_dir(&dir).unwrap_err().to_string();
        assert!(
            e.contains(&format!("pid {}", std::process::id()))
                && e.contains(&dir.display().to_string()),
            "{e}"
        );
        drop(lock);
        // The folder was made by the lock and is empty again: it is gone.
        assert!(!dir.exists());
        assert!(tmp.path().join("new").exists());

        // A lock file left behind (by a killed run) is taken over; a folder that existed stays.
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&lock_file, "999999999\n").unwrap();
        let lock = lock_out_dir(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(&lock_file).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(lock);
        assert!(dir.is_dir() && !lock_file.exists());
    }

    #[test]
    fn a_file_is_not_a_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let e = lock_out_dir(&f).unwrap_err().to_string();
        assert!(e.contains("is a file"), "{e}");
    }
}
