//! One process at a time per run folder: `{run}/.lock`, an advisory lock (`flock`) on a file
//! that holds the owner's PID. A second pipeline, sweep or stage command on the same folder is
//! refused with the owner's PID instead of interleaving its writes. The operating system drops
//! the lock when its process dies, so the lock of a killed run is never in the way; the PID it
//! left behind is reported as stale when the next run takes the lock.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

/// Folders this process holds: taking one again (a stage command that runs the pipeline, a
/// sweep that runs stages) is a no-op.
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Held until dropped.
#[derive(Debug)]
pub struct RunLock {
    /// `None` when an outer guard of this process holds the folder.
    held: Option<(PathBuf, File)>,
}

impl RunLock {
    /// Takes the lock of `dir` (created if missing), or fails naming the process that has it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the run folder", dir.display()))?;
        let key = dir.canonicalize().with_context(|| format!("{}: cannot resolve the run folder", dir.display()))?;
        let mut held = HELD.lock().expect("lock registry poisoned");
        if held.get_or_insert_with(HashSet::new).contains(&key) {
            return Ok(RunLock { held: None });
        }
        let path = dir.join(".lock");
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).with_context(|| format!("{}: cannot open the lock file", path.display()))?;
        let mut previous = String::new();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                file.read_to_string(&mut previous).ok();
                let owner = previous.trim();
                let owner = if owner.is_empty() { "another process".to_string() } else { format!("process {owner}") };
                bail!("{}: in use by {owner} ({}); wait for it to finish or stop it, then run again", dir.display(), path.display());
            }
            Err(TryLockError::Error(e)) => return Err(e).with_context(|| format!("{}: cannot lock", path.display())),
        }
        file.read_to_string(&mut previous).ok();
        if let Some(pid) = previous.trim().parse::<u32>().ok().filter(|&p| p != std::process::id()) {
            tracing::warn!(lock = %path.display(), pid, "a stale lock of a process that ended without releasing it; taking it over");
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        held.get_or_insert_with(HashSet::new).insert(key.clone());
        Ok(RunLock { held: Some((key, file)) })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some((key, file)) = self.held.take() {
            // Emptied first, so a reader never sees a released lock naming this process.
            let _ = file.set_len(0);
            let _ = file.unlock();
            if let Ok(mut held) = HELD.lock() {
                held.get_or_insert_with(HashSet::new).remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_locked_once_per_process_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let outer = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(".lock")).unwrap(), std::process::id().to_string());
        // Re-entrant within the process; another open file description is refused meanwhile.
        let inner = RunLock::acquire(dir.path()).unwrap();
        assert!(inner.held.is_none());
        let other = File::open(dir.path().join(".lock")).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(inner);
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)), "the inner guard released the outer's lock");
        drop(outer);
        other.try_lock().unwrap();
        other.unlock().unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(".lock")).unwrap(), "");
        let again = RunLock::acquire(dir.path()).unwrap();
        assert!(again.held.is_some());
    }
}
