//! Recording files on disk: safe tarball extraction, and the moves that place, publish,
//! unpublish and delete `<dir>/<format>/<recordID>` trees.
//!
//! Extraction trusts nothing in the tarball: every member must be a plain relative path
//! (no `/…`, no `..`), a regular file, directory or a symlink that points *down* from where
//! it is (a relative target with no `..` component, at least two levels inside its own
//! `<format>/<recordID>` tree); device files, FIFOs and hard links are refused, and the
//! total size is bounded. Links are judged by their text one at a time, so after extraction
//! the whole tree is walked again without following links ([`verify_tree`]): every link must
//! resolve inside its recording and every file must have one name. A refusal names the
//! member, so the `.reason` file says what was wrong (docs/recordings.md lists the rules).
//!
//! Placing a format is a replace: the new tree is renamed next to the old one
//! (`.<id>.incoming-…`), the old one aside (`.<id>.old-…`), the new one into place, and the
//! old one removed. A crash between those renames leaves names that [`recover`] puts right at
//! the next start. All moves are renames when the work dir shares the filesystem with the
//! publish dirs; otherwise the tree is copied first.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Whether `s` can be one path component of a recording path (a format or a record id).
pub fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why a tarball was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A refusal, as a [`Refused`] or any error made from one (an [`ExtractError`]).
fn refused<E: From<Refused>>(m: impl Into<String>) -> E {
    E::from(Refused(m.into()))
}

/// Why an extraction failed: the tarball's fault, or the machine's (then the tarball is
/// kept and the import retried; see [`super::ioerr`]).
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{context}: {cause} ({source})")]
    Machine {
        context: String,
        cause: super::ioerr::Cause,
        source: io::Error,
    },
}

/// An I/O failure while reading the tarball or writing the work dir: the machine's when
/// its OS error says so, otherwise the tarball's.
fn io_failure(context: String, e: io::Error) -> ExtractError {
    match super::ioerr::machine_cause(&e) {
        Some(cause) => ExtractError::Machine {
            context,
            cause,
            source: e,
        },
        None => ExtractError::Refused(Refused(format!("{context}: {e}"))),
    }
}

/// The member's path as plain components, or a refusal.
fn checked_path(p: &Path) -> Result<Vec<String>, Refused> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(refused(format!(
                    "member {} climbs out with '..'",
                    p.display()
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(format!(
                    "member {} is an absolute path",
                    p.display()
                )))
            }
        }
    }
    Ok(out)
}

/// Whether a symlink at `parts` (at least `<format>/<recordID>/<name>`) pointing to `target`
/// points down from its own directory: relative, and no component climbs (`..`). Chains of
/// such links can only go further down, so none of them can leave the recording.
fn link_stays_inside(parts: &[String], target: &Path) -> bool {
    parts.len() >= 3
        && !target.as_os_str().is_empty()
        && target
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Checks an extracted tree without following links out of it: every symlink under each
/// `<format>/<recordID>` must resolve (when its target exists) inside that recording, and
/// every regular file must have exactly one name (no hard link to anything).
pub fn verify_tree(root: &Path) -> Result<(), Refused> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir)
            .map_err(|e| refused(format!("cannot read the extracted tree: {e}")))?;
        for e in entries {
            let e = e.map_err(|e| refused(format!("cannot read the extracted tree: {e}")))?;
            let path = e.path();
            check_entry(root, &path)?;
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                stack.push(path);
            }
        }
    }
    Ok(())
}

/// One entry of [`verify_tree`], read with `symlink_metadata` (links are not followed).
fn check_entry(root: &Path, path: &Path) -> Result<(), Refused> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let meta = fs::symlink_metadata(path)
        .map_err(|err| refused(format!("cannot read {}: {err}", rel.display())))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let mut it = rel.components();
        let (Some(f), Some(r)) = (it.next(), it.next()) else {
            return Err(refused(format!(
                "{} is a link above a recording",
                rel.display()
            )));
        };
        let recording = root.join(f).join(r);
        let inside = match (fs::canonicalize(path), fs::canonicalize(&recording)) {
            (Ok(t), Ok(rec)) => t.starts_with(&rec),
            // A link to nothing leads nowhere; its text was checked at extraction.
            (Err(err), _) if err.kind() == io::ErrorKind::NotFound => true,
            _ => false,
        };
        if !inside {
            return Err(refused(format!(
                "member {} is a link that resolves outside its recording (or loops)",
                rel.display()
            )));
        }
    } else if ft.is_file() {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(refused(format!(
                "member {} is hard-linked to another file",
                rel.display()
            )));
        }
    } else if !ft.is_dir() {
        return Err(refused(format!(
            "member {} is not a file, directory or link",
            rel.display()
        )));
    }
    Ok(())
}

/// Opens a tarball, gunzipping when it starts with the gzip magic.
fn open_tar(path: &Path) -> io::Result<tar::Archive<Box<dyn Read>>> {
    let mut f = fs::File::open(path)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic)?;
    let f = fs::File::open(path)?;
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(io::BufReader::new(f)))
    } else {
        Box::new(io::BufReader::new(f))
    };
    Ok(tar::Archive::new(reader))
}

/// Extracts `tarball` into `dest` (which must exist and be empty), refusing anything unsafe,
/// more than `max_bytes` or more than `max_entries` members. Returns the number of bytes
/// written.
pub fn extract(
    tarball: &Path,
    dest: &Path,
    max_bytes: u64,
    max_entries: usize,
) -> Result<u64, ExtractError> {
    let mut archive = open_tar(tarball)
        .map_err(|e| io_failure(format!("cannot open {}", tarball.display()), e))?;
    archive.set_preserve_permissions(false);
    archive.set_overwrite(true);
    let entries = archive
        .entries()
        .map_err(|e| io_failure("not a tar archive".into(), e))?;
    let mut total: u64 = 0;
    let mut members = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| io_failure("the tarball is damaged".into(), e))?;
        members += 1;
        if members > max_entries {
            return Err(refused(format!(
                "the tarball has more than {max_entries} members (RECORDING_MAX_ENTRIES)"
            )));
        }
        let path = entry
            .path()
            .map_err(|e| refused::<Refused>(format!("a member has an unreadable name: {e}")))?
            .into_owned();
        let parts = checked_path(&path)?;
        if parts.is_empty() {
            continue;
        }
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::Directory => {}
            T::Symlink => {
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if !link_stays_inside(&parts, &target) {
                    return Err(refused(format!(
                        "member {} is a link pointing outside its recording: its target ({}) is absolute or climbs with '..'; only links pointing down inside a recording are accepted",
                        path.display(),
                        target.display()
                    )));
                }
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            other => {
                return Err(refused(format!(
                "member {} is a {:?} entry; only files, directories and inner links are accepted",
                path.display(),
                other
            )))
            }
        }
        total = total.saturating_add(entry.size());
        if total > max_bytes {
            return Err(refused(format!(
                "the tarball expands to more than {max_bytes} bytes (RECORDING_MAX_SIZE)"
            )));
        }
        match entry.unpack_in(dest) {
            Ok(true) => {}
            Ok(false) => {
                return Err(refused(format!(
                    "member {} would be written outside the work directory",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(io_failure(
                    format!(
                        "member {} could not be extracted into {}",
                        path.display(),
                        dest.display()
                    ),
                    e,
                ))
            }
        }
    }
    if members == 0 {
        return Err(refused("the tarball is empty"));
    }
    verify_tree(dest)?;
    Ok(total)
}

/// The `(format, record id)` pairs that have a `<format>/<recordID>/metadata.xml` in `root`.
pub fn format_dirs(root: &Path) -> io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for f in fs::read_dir(root)? {
        let f = f?;
        if !f.file_type()?.is_dir() {
            continue;
        }
        let format = f.file_name().to_string_lossy().into_owned();
        for r in fs::read_dir(f.path())? {
            let r = r?;
            if r.file_type()?.is_dir() && r.path().join("metadata.xml").is_file() {
                out.push((format.clone(), r.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Renames, or copies then removes when `from` and `to` are on different filesystems.
fn move_tree(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: copy into a hidden sibling first so `to` appears whole.
            let tmp = to.with_file_name(format!(
                ".{}.copy-{}",
                to.file_name().unwrap_or_default().to_string_lossy(),
                unique()
            ));
            copy_tree(from, &tmp)?;
            fs::rename(&tmp, to)?;
            fs::remove_dir_all(from)
        }
        Err(e) => Err(e),
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let t = e.file_type()?;
        let dst = to.join(e.file_name());
        if t.is_dir() {
            copy_tree(&e.path(), &dst)?;
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path())?, &dst)?;
        } else {
            fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}

/// `<root>/<format>/<record_id>`.
pub fn format_path(root: &Path, format: &str, record_id: &str) -> PathBuf {
    root.join(format).join(record_id)
}

/// Moves the tree `staged` to `<root>/<format>/<record_id>`, replacing what was there.
pub fn place(staged: &Path, root: &Path, format: &str, record_id: &str) -> io::Result<()> {
    let dir = root.join(format);
    fs::create_dir_all(&dir)?;
    let target = dir.join(record_id);
    let incoming = dir.join(format!(".{record_id}.incoming-{}", unique()));
    move_tree(staged, &incoming)?;
    if target.exists() {
        let old = dir.join(format!(".{record_id}.old-{}", unique()));
        fs::rename(&target, &old)?;
        fs::rename(&incoming, &target)?;
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(&incoming, &target)?;
    }
    Ok(())
}

/// Removes `<root>/<format>/<record_id>` if present.
pub fn remove(root: &Path, format: &str, record_id: &str) -> io::Result<()> {
    match fs::remove_dir_all(format_path(root, format, record_id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Moves one format between the publish and unpublish trees (publishRecordings): already at
/// the target → nothing (a leftover source copy is removed); in neither → an error.
pub fn relocate(from_root: &Path, to_root: &Path, format: &str, record_id: &str) -> io::Result<()> {
    let src = format_path(from_root, format, record_id);
    let dst = format_path(to_root, format, record_id);
    match (src.exists(), dst.exists()) {
        (_, true) => remove(from_root, format, record_id),
        (true, false) => {
            fs::create_dir_all(to_root.join(format))?;
            move_tree(&src, &dst)
        }
        (false, false) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is missing from both recording directories",
                dst.display()
            ),
        )),
    }
}

/// Puts right what a crash in [`place`] left under `root/*/`: an `.old-` tree whose target
/// is missing is restored, other `.incoming-`/`.old-`/`.copy-` leftovers are removed.
pub fn recover(root: &Path) -> io::Result<usize> {
    let mut fixed = 0;
    let Ok(formats) = fs::read_dir(root) else {
        return Ok(0);
    };
    for f in formats.flatten() {
        let Ok(entries) = fs::read_dir(f.path()) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix('.') else {
                continue;
            };
            let Some((rid, kind)) = rest
                .rsplit_once(".old-")
                .map(|(r, _)| (r, "old"))
                .or_else(|| rest.rsplit_once(".incoming-").map(|(r, _)| (r, "incoming")))
                .or_else(|| rest.rsplit_once(".copy-").map(|(r, _)| (r, "copy")))
            else {
                continue;
            };
            let target = f.path().join(rid);
            if kind == "old" && !target.exists() {
                fs::rename(e.path(), &target)?;
            } else {
                fs::remove_dir_all(e.path())?;
            }
            fixed += 1;
        }
    }
    Ok(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_links_are_checked() {
        assert!(safe_component("presentation"));
        assert!(safe_component("a0715c95-1715261728123"));
        assert!(!safe_component(".."));
        assert!(!safe_component("a/b"));
        assert!(!safe_component(""));
        let parts: Vec<String> = ["presentation", "r1", "video", "x.webm"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(link_stays_inside(&parts, Path::new("audio/a.webm")));
        assert!(link_stays_inside(&parts, Path::new("./a.webm")));
        assert!(!link_stays_inside(&parts, Path::new("../audio/a.webm")));
        assert!(!link_stays_inside(&parts, Path::new("a/../../b")));
        assert!(!link_stays_inside(&parts, Path::new("")));
        assert!(!link_stays_inside(&parts[..2], Path::new("x")));
        assert!(!link_stays_inside(&parts, Path::new("../../../etc/passwd")));
        assert!(!link_stays_inside(&parts, Path::new("/etc/passwd")));
        assert!(checked_path(Path::new("../x")).is_err());
        assert!(checked_path(Path::new("/x")).is_err());
    }

    #[test]
    fn the_tree_is_verified_without_following_links_out() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("x");
        let rec = root.join("presentation/r1");
        fs::create_dir_all(rec.join("video")).unwrap();
        fs::write(rec.join("video/a.webm"), "a").unwrap();
        symlink("a.webm", rec.join("video/b.webm")).unwrap();
        symlink("video", rec.join("v")).unwrap();
        symlink("missing", rec.join("dangling")).unwrap();
        assert_eq!(verify_tree(&root), Ok(()));
        // Into another recording, out of the tree, a loop, a hard link: each refused.
        fs::create_dir_all(root.join("presentation/r2")).unwrap();
        fs::write(d.path().join("secret"), "s").unwrap();
        for (name, make) in [
            (
                "other",
                &(|p: &Path| symlink("../r2", p).unwrap()) as &dyn Fn(&Path),
            ),
            ("out", &|p: &Path| {
                symlink(d.path().join("secret"), p).unwrap()
            }),
            ("loop", &|p: &Path| symlink("loop", p).unwrap()),
            ("hard", &|p: &Path| {
                fs::hard_link(rec.join("video/a.webm"), p).unwrap()
            }),
        ] {
            let p = rec.join(name);
            make(&p);
            assert!(verify_tree(&root).is_err(), "{name} accepted");
            fs::remove_file(&p).unwrap();
        }
        assert_eq!(verify_tree(&root), Ok(()));
    }

    #[test]
    fn place_replaces_and_recover_restores_an_interrupted_swap() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("published");
        let staged = d.path().join("s1");
        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("metadata.xml"), "one").unwrap();
        place(&staged, &root, "presentation", "r1").unwrap();
        let staged = d.path().join("s2");
        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("metadata.xml"), "two").unwrap();
        place(&staged, &root, "presentation", "r1").unwrap();
        let target = format_path(&root, "presentation", "r1");
        assert_eq!(
            fs::read_to_string(target.join("metadata.xml")).unwrap(),
            "two"
        );
        // A crash after moving the old tree aside, before the new one arrived.
        fs::rename(&target, root.join("presentation/.r1.old-abc")).unwrap();
        assert_eq!(recover(&root).unwrap(), 1);
        assert!(target.join("metadata.xml").is_file());
        let unpub = d.path().join("unpublished");
        relocate(&root, &unpub, "presentation", "r1").unwrap();
        assert!(format_path(&unpub, "presentation", "r1").is_dir() && !target.exists());
        assert!(relocate(&root, &d.path().join("x"), "presentation", "r1").is_err());
    }
}
