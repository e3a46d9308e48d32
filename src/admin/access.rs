//! Whether another user (the service user the systemd unit runs as, `ferrolite`) may write a
//! path, judged from owners and mode bits without switching users: `ferrolite doctor` runs
//! as root or an operator, and a write test as that user proves nothing about the service.
//!
//! [`Identity::resolve`] reads the user database (a name, or `uid[:gid]`); [`write_access`]
//! is the pure POSIX rule (owner bits for the owner, group bits for a member of the file's
//! group, other bits for everyone else; root may write anything) applied to the path and
//! every directory above it, which must be searchable. ACLs are not read.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The user a check is made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub uid: u32,
    /// The primary group first, then the supplementary ones.
    pub groups: Vec<u32>,
}

/// Owner and permission bits of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Perm {
    pub fn of(m: &std::fs::Metadata) -> Perm {
        Perm {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
        }
    }
}

/// `want` is a mask of the owner bits (0o2 write, 0o1 search/execute, 0o4 read), shifted
/// to the class that applies to `who`.
pub fn allows(p: Perm, who: &Identity, want: u32) -> bool {
    if who.uid == 0 {
        return true;
    }
    let shift = if p.uid == who.uid {
        6
    } else if who.groups.contains(&p.gid) {
        3
    } else {
        0
    };
    (p.mode >> shift) & want == want
}

/// Why `who` cannot write: the first path that stops it, and what is missing there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub path: PathBuf,
    pub missing: &'static str,
    pub owner: (u32, u32),
}

/// Whether `who` may write `target` (an existing file or directory; for a directory,
/// create files in it): every directory above must be searchable, the target writable (a
/// directory also searchable). `perms` lists the target first, then its parents up to `/`.
pub fn write_access(
    perms: &[(PathBuf, Perm)],
    who: &Identity,
    target_is_dir: bool,
) -> Result<(), Denied> {
    let denied = |(path, p): &(PathBuf, Perm), missing| Denied {
        path: path.clone(),
        missing,
        owner: (p.uid, p.gid),
    };
    for parent in perms.iter().skip(1).rev() {
        if !allows(parent.1, who, 0o1) {
            return Err(denied(parent, "search (x) permission"));
        }
    }
    let Some(target) = perms.first() else {
        return Ok(());
    };
    let want = if target_is_dir { 0o3 } else { 0o2 };
    if !allows(target.1, who, want) {
        return Err(denied(
            target,
            if target_is_dir {
                "write and search (wx) permission"
            } else {
                "write (w) permission"
            },
        ));
    }
    Ok(())
}

/// The owners and modes of `path` and every directory above it (I/O).
pub fn perms_up(path: &Path) -> std::io::Result<Vec<(PathBuf, Perm)>> {
    let abs = std::path::absolute(path)?;
    let mut out = Vec::new();
    for p in abs.ancestors() {
        out.push((p.to_path_buf(), Perm::of(&std::fs::metadata(p)?)));
    }
    Ok(out)
}

impl Identity {
    /// A user name from the user database, or a numeric `uid` / `uid:gid`. `None` when the
    /// name is unknown on this host.
    pub fn resolve(spec: &str) -> Option<Identity> {
        if let Some((uid, gid)) = numeric(spec) {
            return Some(Identity {
                name: spec.to_string(),
                uid,
                groups: gid.into_iter().collect(),
            });
        }
        let (uid, gid) = passwd(spec)?;
        Some(Identity {
            name: spec.to_string(),
            uid,
            groups: groups_of(spec, gid),
        })
    }
}

fn numeric(spec: &str) -> Option<(u32, Option<u32>)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = u.parse().ok()?;
    let gid = match g {
        Some(g) => Some(g.parse().ok()?),
        None => None,
    };
    Some((uid, gid))
}

fn passwd(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the answer points into `buf`/`pw`.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    (rc == 0 && !found.is_null()).then_some((pw.pw_uid, pw.pw_gid))
}

fn groups_of(name: &str, gid: u32) -> Vec<u32> {
    let Ok(c) = CString::new(name) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut got = n;
        // SAFETY: `groups` has room for `got` entries; getgrouplist writes at most that.
        let rc = unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut got) };
        if rc >= 0 {
            groups.truncate(got.max(0) as usize);
            groups.retain(|g| *g != gid);
            groups.insert(0, gid);
            return groups;
        }
        if got <= n || n > 65_536 {
            return vec![gid];
        }
        n = got;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(uid: u32, groups: &[u32]) -> Identity {
        Identity {
            name: "svc".into(),
            uid,
            groups: groups.to_vec(),
        }
    }

    fn perm(uid: u32, gid: u32, mode: u32) -> Perm {
        Perm { uid, gid, mode }
    }

    #[test]
    fn the_class_that_applies_decides() {
        let svc = who(100, &[100, 33]);
        assert!(allows(perm(100, 0, 0o700), &svc, 0o3));
        // The owner class applies even when the group class would allow more.
        assert!(!allows(perm(100, 100, 0o570), &svc, 0o2));
        assert!(allows(perm(0, 33, 0o770), &svc, 0o3));
        assert!(!allows(perm(0, 0, 0o755), &svc, 0o2));
        assert!(allows(perm(0, 0, 0o757), &svc, 0o2));
        assert!(allows(perm(0, 0, 0o000), &who(0, &[0]), 0o2));
    }

    #[test]
    fn every_directory_above_must_be_searchable() {
        let svc = who(100, &[100]);
        let chain = |target: Perm, parent: Perm| {
            vec![
                (PathBuf::from("/srv/db/f.db"), target),
                (PathBuf::from("/srv/db"), parent),
                (PathBuf::from("/"), perm(0, 0, 0o755)),
            ]
        };
        assert_eq!(
            write_access(
                &chain(perm(100, 100, 0o644), perm(100, 100, 0o755)),
                &svc,
                false
            ),
            Ok(())
        );
        let e = write_access(
            &chain(perm(100, 100, 0o644), perm(0, 0, 0o700)),
            &svc,
            false,
        )
        .unwrap_err();
        assert_eq!(e.path, PathBuf::from("/srv/db"));
        let e = write_access(
            &chain(perm(0, 0, 0o644), perm(100, 100, 0o755)),
            &svc,
            false,
        )
        .unwrap_err();
        assert_eq!((e.path.to_str(), e.owner), (Some("/srv/db/f.db"), (0, 0)));
        // A directory to create files in needs write and search.
        let dir = vec![(PathBuf::from("/srv/db"), perm(100, 100, 0o655))];
        assert!(write_access(&dir, &svc, true).is_err());
    }

    #[test]
    fn users_are_named_or_numeric() {
        assert_eq!(
            Identity::resolve("4242:4343"),
            Some(who_named("4242:4343", 4242, &[4343]))
        );
        assert_eq!(Identity::resolve("root").map(|i| i.uid), Some(0));
        assert_eq!(Identity::resolve("no-such-user-here"), None);
    }

    fn who_named(name: &str, uid: u32, groups: &[u32]) -> Identity {
        Identity {
            name: name.into(),
            uid,
            groups: groups.to_vec(),
        }
    }
}
