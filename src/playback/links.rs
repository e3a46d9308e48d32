//! The public-link farm: `PLAYBACK_LINK_DIR/<format>/<recordID>` is a symlink to the
//! published files of every recording anyone may play. nginx serves a playback path from
//! this farm when the link exists — no call to the worker — and otherwise asks the worker
//! (`auth_request`) before serving the file from `RECORDING_PUBLISH_DIR`.
//!
//! The farm fails closed: a missing link only costs one worker call (the worker still
//! answers from the store), while a link exists only for recordings the store says are
//! published and not protected. Links are removed *before* a recording becomes protected
//! and added *after* it becomes public; a reconciliation at start and every few minutes
//! repairs anything the CLI or another node changed.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::store::playback::PlaybackAccess;

use super::protect::{publicly_servable, safe_id};

fn link_path(cfg: &Config, format: &str, rid: &str) -> PathBuf {
    cfg.playback.link_dir.join(format).join(rid)
}

/// Removes every link of `rid` (all formats). Missing links are fine.
pub fn unlink(cfg: &Config, rid: &str) -> io::Result<()> {
    if !safe_id(rid) {
        return Ok(());
    }
    for f in &cfg.playback.formats {
        remove_link(&link_path(cfg, f, rid))?;
    }
    Ok(())
}

fn remove_link(p: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(p),
        Ok(_) => Ok(()), // not ours: never delete a real file or directory
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the links of `rid` match what the store says (`None`: unknown or deleted).
pub fn sync(cfg: &Config, rid: &str, access: Option<&PlaybackAccess>) -> io::Result<()> {
    if !safe_id(rid) {
        return Ok(());
    }
    let public = access.is_some_and(|a| {
        publicly_servable(a, cfg.recordings.protected_enabled, cfg.tenancy.enabled)
    });
    for f in &cfg.playback.formats {
        let link = link_path(cfg, f, rid);
        let has_format = access.is_some_and(|a| a.formats.iter().any(|(x, _)| x == f));
        if public && has_format {
            let target = cfg.recordings.publish_dir.join(f).join(rid);
            if std::fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
                continue;
            }
            std::fs::create_dir_all(link.parent().unwrap_or(Path::new(".")))?;
            let tmp = link.with_file_name(format!(".{rid}.{}.tmp", uuid::Uuid::new_v4().simple()));
            std::os::unix::fs::symlink(&target, &tmp)?;
            std::fs::rename(&tmp, &link)?;
        } else {
            remove_link(&link)?;
        }
    }
    Ok(())
}

/// Brings the whole farm in line with the store: syncs every recording and removes links
/// of recordings the store no longer knows.
pub fn reconcile(cfg: &Config, all: &[(String, PlaybackAccess)]) -> io::Result<usize> {
    let mut errors = 0;
    for (rid, a) in all {
        if sync(cfg, rid, Some(a)).is_err() {
            errors += 1;
        }
    }
    let known: std::collections::HashSet<&str> = all.iter().map(|(r, _)| r.as_str()).collect();
    for f in &cfg.playback.formats {
        let Ok(dir) = std::fs::read_dir(cfg.playback.link_dir.join(f)) else {
            continue;
        };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(name.as_str()) && remove_link(&e.path()).is_err() {
                errors += 1;
            }
        }
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(root: &Path, protection: bool, tenants: bool) -> Config {
        let mut m: HashMap<String, String> = HashMap::new();
        m.insert("LOADBALANCER_SECRET".into(), "s".into());
        m.insert(
            "RECORDING_PUBLISH_DIR".into(),
            root.join("pub").display().to_string(),
        );
        m.insert(
            "PLAYBACK_LINK_DIR".into(),
            root.join("links").display().to_string(),
        );
        m.insert(
            "PROTECTED_RECORDINGS_ENABLED".into(),
            protection.to_string(),
        );
        m.insert("MULTITENANCY_ENABLED".into(), tenants.to_string());
        Config::from_map(&m, crate::config::Purpose::Serve).unwrap()
    }

    fn access(published: bool, protected: bool) -> PlaybackAccess {
        PlaybackAccess {
            published,
            protected,
            tenant_id: None,
            formats: vec![("presentation".into(), "/playback/presentation/2.3/r".into())],
        }
    }

    #[test]
    fn links_exist_only_for_public_recordings_and_real_files_are_never_removed() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path(), true, false);
        let link = d.path().join("links/presentation/r");
        sync(&c, "r", Some(&access(true, false))).unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            d.path().join("pub/presentation/r")
        );
        assert!(!d.path().join("links/video/r").exists());
        sync(&c, "r", Some(&access(true, true))).unwrap();
        assert!(
            std::fs::symlink_metadata(&link).is_err(),
            "protected: no link"
        );
        sync(&c, "r", Some(&access(true, false))).unwrap();
        sync(&c, "r", Some(&access(false, false))).unwrap();
        assert!(
            std::fs::symlink_metadata(&link).is_err(),
            "unpublished: no link"
        );
        sync(&c, "r", Some(&access(true, false))).unwrap();
        unlink(&c, "r").unwrap();
        assert!(std::fs::symlink_metadata(&link).is_err());
        // Protection off: protected recordings are public (Scalelite serves them).
        sync(&cfg(d.path(), false, false), "r", Some(&access(true, true))).unwrap();
        assert!(std::fs::symlink_metadata(&link).is_ok());
        // Multitenancy: never.
        sync(&cfg(d.path(), false, true), "r", Some(&access(true, false))).unwrap();
        assert!(std::fs::symlink_metadata(&link).is_err());
        // Reconcile drops unknown links, keeps real directories.
        sync(&c, "r", Some(&access(true, false))).unwrap();
        std::fs::create_dir_all(d.path().join("links/presentation/realdir")).unwrap();
        assert_eq!(reconcile(&c, &[]).unwrap(), 0);
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert!(d.path().join("links/presentation/realdir").is_dir());
        // Hostile ids are ignored.
        sync(&c, "..", Some(&access(true, false))).unwrap();
        assert!(!d.path().join("links/presentation/..").join("x").exists());
    }
}
