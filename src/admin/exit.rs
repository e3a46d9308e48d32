//! The exit codes of the `ferrolite` command, which scripts may rely on (docs/cli.md).

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: done.
    Ok,
    /// 1: nothing was done (the `error:` line says why).
    Failed,
    /// 3: done, but something needs a look: a polled server is offline or failed to
    /// answer, some items of an import failed (the lines on stderr say which).
    Problems,
    /// 75: another batch import holds the lock; nothing was done, try again later.
    Busy,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::Problems => 3,
            Outcome::Busy => 75,
        }
    }

    /// The worse of two outcomes.
    pub fn and(self, other: Outcome) -> Outcome {
        if other.code() > self.code() {
            other
        } else {
            self
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        ExitCode::from(o.code())
    }
}
