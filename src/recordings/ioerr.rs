//! What an I/O failure during an import says about its cause: the machine (a full or
//! read-only disk, missing permissions — retry later, the tarball is fine) or the tarball.
//!
//! Classified by the error's [`io::ErrorKind`] and raw OS error, found by walking the error's
//! source chain (the tar crate wraps the OS error in its own error inside an `io::Error`, so
//! its text hides the cause and its outer `raw_os_error` is `None`). Never by message text.
//! Pure.

use std::error::Error;
use std::fmt;
use std::io;

/// Why the machine, not the tarball, made an import fail. Bounded: used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// `ENOSPC`: the filesystem is full.
    NoSpace,
    /// `EDQUOT`: a disk quota is exhausted.
    Quota,
    /// `EACCES` / `EPERM`: the process may not write there.
    Permission,
    /// `EROFS`: the filesystem is mounted read-only.
    ReadOnly,
    /// `EFBIG`: a file size limit (filesystem or `RLIMIT_FSIZE`).
    FileTooLarge,
    /// `EMFILE`/`ENFILE`/`ENOMEM`/`EIO`/`EBUSY`…: other trouble of the machine.
    System,
}

impl Cause {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Cause::NoSpace => "no_space",
            Cause::Quota => "quota",
            Cause::Permission => "permission",
            Cause::ReadOnly => "read_only",
            Cause::FileTooLarge => "file_too_large",
            Cause::System => "system",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::NoSpace => "the disk is full",
            Cause::Quota => "the disk quota is exhausted",
            Cause::Permission => "permission denied",
            Cause::ReadOnly => "the filesystem is read-only",
            Cause::FileTooLarge => "a file size limit was reached",
            Cause::System => "a system error",
        })
    }
}

/// The innermost `io::Error` in `e`'s chain that carries an OS error, else the innermost
/// `io::Error` at all. `io::Error::source` skips a custom error's own payload, so a custom
/// `io::Error` is looked into with `get_ref`.
pub fn root_io<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a io::Error> {
    let mut found: Option<&io::Error> = None;
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    let mut depth = 0;
    while let Some(err) = cur {
        depth += 1;
        if depth > 32 {
            break;
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.raw_os_error().is_some() {
                return Some(io);
            }
            found = Some(io);
            cur = match io.get_ref() {
                Some(inner) => Some(inner as &(dyn Error + 'static)),
                None => io.source(),
            };
        } else {
            cur = err.source();
        }
    }
    found
}

/// The machine's cause of `e`, or `None` when the error may be the tarball's (damaged
/// data, an unexpected end, a name that cannot be created…).
pub fn machine_cause(e: &io::Error) -> Option<Cause> {
    let root = root_io(e).unwrap_or(e);
    if let Some(code) = root.raw_os_error() {
        return cause_of_errno(code);
    }
    cause_of_kind(root.kind()).or_else(|| cause_of_kind(e.kind()))
}

/// Linux errno values (the only platform `serve` runs on).
fn cause_of_errno(code: i32) -> Option<Cause> {
    Some(match code {
        28 => Cause::NoSpace,                                     // ENOSPC
        122 => Cause::Quota,                                      // EDQUOT
        1 | 13 => Cause::Permission,                              // EPERM, EACCES
        30 => Cause::ReadOnly,                                    // EROFS
        27 => Cause::FileTooLarge,                                // EFBIG
        5 | 12 | 16 | 23 | 24 | 116 | 107 | 110 => Cause::System, // EIO ENOMEM EBUSY ENFILE EMFILE ESTALE ENOTCONN ETIMEDOUT
        _ => return None,
    })
}

fn cause_of_kind(kind: io::ErrorKind) -> Option<Cause> {
    use io::ErrorKind as K;
    Some(match kind {
        K::StorageFull => Cause::NoSpace,
        K::QuotaExceeded => Cause::Quota,
        K::PermissionDenied => Cause::Permission,
        K::ReadOnlyFilesystem => Cause::ReadOnly,
        K::FileTooLarge => Cause::FileTooLarge,
        K::OutOfMemory | K::ResourceBusy | K::StaleNetworkFileHandle => Cause::System,
        _ => return None,
    })
}

/// `"<what>: <error> (os error N)"` for logs: the path and the OS error, always.
pub fn describe(what: &str, e: &io::Error) -> String {
    match root_io(e).and_then(|r| r.raw_os_error()) {
        Some(code) if e.raw_os_error().is_none() => format!("{what}: {e} (os error {code})"),
        _ => format!("{what}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error shaped like the tar crate's: an `io::Error` whose payload is its own error
    /// type with the OS error as `source`, and a message that does not name the cause.
    #[derive(Debug)]
    struct Wrapper(io::Error);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("failed to unpack `presentation/r/video.webm`")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    fn wrapped(code: i32) -> io::Error {
        let os = io::Error::from_raw_os_error(code);
        io::Error::new(os.kind(), Wrapper(os))
    }

    #[test]
    fn the_os_error_is_found_under_a_wrapper() {
        for (code, cause) in [
            (28, Cause::NoSpace),
            (122, Cause::Quota),
            (13, Cause::Permission),
            (1, Cause::Permission),
            (30, Cause::ReadOnly),
            (27, Cause::FileTooLarge),
            (5, Cause::System),
            (24, Cause::System),
        ] {
            let e = wrapped(code);
            assert!(!e.to_string().contains("space"), "the text hides it: {e}");
            assert_eq!(e.raw_os_error(), None);
            assert_eq!(machine_cause(&e), Some(cause), "errno {code}");
            assert_eq!(
                machine_cause(&io::Error::from_raw_os_error(code)),
                Some(cause)
            );
            assert!(describe("x", &e).contains(&format!("os error {code}")));
        }
        // Twice wrapped.
        let e = io::Error::other(Wrapper(wrapped(28)));
        assert_eq!(machine_cause(&e), Some(Cause::NoSpace));
    }

    #[test]
    fn damaged_tarballs_are_not_the_machines_fault() {
        for e in [
            io::Error::new(io::ErrorKind::InvalidData, "bad header"),
            io::Error::new(io::ErrorKind::UnexpectedEof, "truncated"),
            io::Error::other(Wrapper(io::Error::new(io::ErrorKind::InvalidData, "x"))),
            io::Error::from_raw_os_error(36), // ENAMETOOLONG: a name in the tarball
            io::Error::from_raw_os_error(20), // ENOTDIR: a file where a dir should be
        ] {
            assert_eq!(machine_cause(&e), None, "{e}");
        }
    }
}
