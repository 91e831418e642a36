//! Atomic file writes: the bytes go to a temporary file in the target's folder
//! (`tempfile::NamedTempFile` named `.NAME.tmp-PID.RANDOM`, removed again on any failure), are
//! synced, and the file is renamed onto the target, so that a reader never sees a half-written
//! file. A killed process's temporary stays; the pid in its name lets the next run in the folder
//! remove it ([`super::remove_stale_temporaries`]). Errors name the target.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating its folder first if needed.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = folder_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    atomic_replace(path, bytes)
}

/// Writes `bytes` to `path` atomically, in a folder that must already exist.
pub fn atomic_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    write_and_persist(folder_of(path), path, bytes).map_err(|e| Error::io(path, e))
}

/// The folder `path` is in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn write_and_persist(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    // Opened as `File::create` would (permissions 0o666 less the umask), and through `make_in`
    // so that an error is the OS error alone, not one naming the temporary file.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-{}.", std::process::id()))
        .make_in(dir, |p| {
            File::options().write(true).create_new(true).open(p)
        })?;
    tmp.as_file_mut().write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // On failure the temporary file comes back in the error and is deleted when it is dropped.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A file written in pieces (it is [`Write`]) into a temporary file beside `path`, and renamed
/// onto `path` by [`AtomicFile::commit`]; dropped without a commit, it leaves nothing behind.
pub struct AtomicFile {
    path: std::path::PathBuf,
    tmp: std::io::BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing `path`, creating its folder first if needed.
    pub fn create(path: &Path) -> Result<Self> {
        let dir = folder_of(path);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .make_in(dir, |p| {
                File::options().write(true).create_new(true).open(p)
            })
            .map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp: std::io::BufWriter::new(tmp),
        })
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the file onto its target.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        atomic_write(&p, b"{}").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }

    #[test]
    fn a_failed_write_leaves_nothing_and_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x.json");
        std::fs::create_dir(&target).unwrap();
        let e = atomic_write(&target, b"{}").unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, Error::Io { path, .. } if *path == target)
                && msg.starts_with(&target.display().to_string())
                && !msg.contains(".x.json."),
            "{msg}"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }

    #[test]
    fn replacing_in_a_missing_folder_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing").join("y.json");
        let e = atomic_replace(&target, b"{}").unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, Error::Io { path, .. } if *path == target) && !msg.contains(".y.json."),
            "{msg}"
        );
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn an_atomic_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"a\n").unwrap();
        f.write_all(b"b\n").unwrap();
        assert!(!p.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"a\nb\n");
        let dropped = AtomicFile::create(&dir.path().join("no.jsonl")).unwrap();
        drop(dropped);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.jsonl")]);
    }
}
