//! One batch import at a time: an exclusive `flock` on a file next to the database, so a
//! cron job that overlaps the previous run (or an operator's manual import) does not import
//! the same tarballs twice at once. The kernel drops the lock when the process exits, so a
//! crashed run never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::{AdminError, AdminResult};

/// Held while a batch import runs; released on drop.
#[derive(Debug)]
pub struct BatchLock {
    _file: File,
    pub path: PathBuf,
}

/// The lock file of the installation that uses `database`: `<database>.import.lock`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_os_string();
    name.push(".import.lock");
    PathBuf::from(name)
}

/// Takes the lock. Without `wait`, `Ok(None)` when another process holds it; with `wait`,
/// blocks until it is free.
pub fn acquire(path: &Path, wait: bool) -> AdminResult<Option<BatchLock>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| {
            AdminError::Invalid(format!("cannot open the lock file {}: {e}", path.display()))
        })?;
    let locked = if wait {
        file.lock().map(|()| true).map_err(TryLockError::Error)
    } else {
        file.try_lock().map(|()| true)
    };
    match locked {
        Ok(_) => Ok(Some(BatchLock {
            _file: file,
            path: path.to_path_buf(),
        })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(AdminError::Invalid(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(&dir.path().join("ferrolite.db"));
        assert!(path.ends_with("ferrolite.db.import.lock"));
        let first = acquire(&path, false).unwrap().expect("free");
        assert!(acquire(&path, false).unwrap().is_none(), "held");
        drop(first);
        assert!(acquire(&path, false).unwrap().is_some(), "released on drop");
    }
}
