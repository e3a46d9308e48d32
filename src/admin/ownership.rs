//! Keeping the service's files writable by the service user when the CLI runs as root.
//!
//! SQLite creates the database and its `-wal`/`-shm` files as whoever opens it first; if
//! that is root, the service (running as `ferrolite`) can no longer write. So, as root, the
//! CLI refuses to open a database whose file or directory belongs to another user, unless
//! `--fix-ownership` is given, and then hands every file it created back to that user.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The owner the database files must keep: `(uid, gid)` of the database (or, before it
/// exists, of its directory), when that is not the user running the CLI.
pub fn foreign_owner(db: &Path, my_uid: u32) -> Option<(u32, u32)> {
    let probe = if db.exists() {
        db.to_path_buf()
    } else {
        db.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let m = std::fs::metadata(probe).ok()?;
    (m.uid() != my_uid).then_some((m.uid(), m.gid()))
}

fn my_uid() -> u32 {
    // The owner of our own /proc entry is our effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// Checks before the database is opened; returns the owner to hand the files back to.
pub fn guard(db: &Path, fix: bool) -> Result<Option<(u32, u32)>, String> {
    let me = my_uid();
    if me != 0 {
        return Ok(None);
    }
    match foreign_owner(db, me) {
        None => Ok(None),
        Some(owner) if fix => Ok(Some(owner)),
        Some((uid, _)) => Err(format!(
            "{} belongs to uid {uid}, and files root creates there (the database, its -wal \
             and -shm) would be unwritable for the service: run the command as that user \
             (sudo -u ferrolite ferrolite …) or add --fix-ownership",
            db.display()
        )),
    }
}

/// Hands the database and its side files back to `owner`.
pub fn fix(db: &Path, owner: (u32, u32)) -> Result<(), String> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1))
                .map_err(|e| format!("cannot hand {} back to uid {}: {e}", p.display(), owner.0))?;
        }
    }
    Ok(())
}
