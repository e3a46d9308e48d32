//! Progress and summaries for long CLI work (`recordings import` of a tree, `servers sync`,
//! `scalelite import`): a progress bar when stderr is a terminal, one line of progress at
//! most every [`LINE_INTERVAL`] or every tenth of the work when it is not (cron, logs), and
//! nothing with `--quiet`. Progress goes to stderr so stdout stays parseable.
//!
//! [`Summary`] counts what a batch did and says which [`Outcome`] (exit code) that is.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::exit::Outcome;

/// The longest a non-terminal run stays silent between progress lines.
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A bar on a terminal, periodic lines otherwise.
    Auto,
    /// Nothing.
    Quiet,
}

impl Display {
    /// `Quiet` when asked, `Auto` otherwise.
    pub fn quiet_if(quiet: bool) -> Display {
        if quiet {
            Display::Quiet
        } else {
            Display::Auto
        }
    }
}

/// Whether a non-terminal run prints a progress line after item `done` of `total`: when
/// it crosses another tenth of the work, or `interval` has passed since the last line.
/// The last item prints nothing (the summary follows). Pure.
pub fn line_due(done: u64, total: u64, since_last: Duration, interval: Duration) -> bool {
    if total == 0 || done >= total {
        return false;
    }
    let tenth = |n: u64| n * 10 / total;
    since_last >= interval || tenth(done) != tenth(done - 1)
}

/// A progress reporter for `total` items of work named `label` ("importing").
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    bar: Option<ProgressBar>,
    lines: bool,
    quiet: bool,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    pub fn new(label: &str, total: u64, display: Display) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (display == Display::Auto && tty && total > 1).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} ({percent}%) {elapsed} elapsed, ~{eta} left",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar
        });
        let lines = bar.is_none() && display != Display::Quiet && total > 1;
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            bar,
            lines,
            quiet: display == Display::Quiet,
            started: now,
            last_line: now,
        }
    }

    /// A reporter that shows nothing (for callers that need none).
    pub fn hidden() -> Progress {
        Progress::new("", 0, Display::Quiet)
    }

    /// One more item is done.
    pub fn inc(&mut self) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
        } else if self.lines
            && line_due(
                self.done,
                self.total,
                self.last_line.elapsed(),
                LINE_INTERVAL,
            )
        {
            self.last_line = Instant::now();
            eprintln!(
                "{}: {}/{} ({}%), {:.0}s elapsed",
                self.label,
                self.done,
                self.total,
                self.done * 100 / self.total.max(1),
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    /// Prints a problem on stderr, above the bar when there is one (shown even when quiet).
    pub fn problem(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Prints a progress note from inside one item (a long tree's recordings), unless quiet.
    pub fn note(&self, line: &str) {
        if !self.quiet {
            self.problem(line);
        }
    }

    /// Removes the bar; returns the time the work took.
    pub fn finish(self) -> Duration {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.started.elapsed()
    }
}

/// What a batch did, printed at its end and (with `--json`) as JSON.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Items fully imported.
    pub imported: usize,
    /// Items left alone on purpose (not tarballs, already there).
    pub skipped: usize,
    /// Items moved aside as unusable (in-place and Scalelite imports).
    pub set_aside: usize,
    /// Items that could not be imported (partly or at all).
    pub failed: usize,
    pub seconds: f64,
}

impl Summary {
    /// `imported 3, skipped 1, set aside 0, failed 1 in 2.4s`.
    pub fn line(&self) -> String {
        format!(
            "imported {}, skipped {}, set aside {}, failed {} in {:.1}s",
            self.imported, self.skipped, self.set_aside, self.failed, self.seconds
        )
    }

    /// Everything went in: `Ok`; nothing did and something failed: `Failed`; else `Problems`.
    pub fn outcome(&self) -> Outcome {
        let bad = self.failed + self.set_aside;
        if bad == 0 {
            Outcome::Ok
        } else if self.imported == 0 {
            Outcome::Failed
        } else {
            Outcome::Problems
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_every_tenth_or_after_the_interval() {
        let i = LINE_INTERVAL;
        let quick = Duration::from_millis(5);
        let due: Vec<u64> = (1..=100).filter(|&d| line_due(d, 100, quick, i)).collect();
        assert_eq!(due, vec![10, 20, 30, 40, 50, 60, 70, 80, 90]);
        assert!(line_due(3, 1000, i, i), "the interval forces a line");
        assert!(!line_due(3, 1000, quick, i));
        assert!(!line_due(5, 5, i, i), "the summary follows the last item");
        assert!(!line_due(1, 0, i, i));
        // Few items: every item but the last crosses a tenth.
        let due: Vec<u64> = (1..=3).filter(|&d| line_due(d, 3, quick, i)).collect();
        assert_eq!(due, vec![1, 2]);
    }

    #[test]
    fn the_outcome_tells_all_from_some_from_none() {
        let s = |imported, failed| Summary {
            imported,
            failed,
            ..Default::default()
        };
        assert_eq!(s(3, 0).outcome(), Outcome::Ok);
        assert_eq!(s(0, 0).outcome(), Outcome::Ok);
        assert_eq!(s(2, 1).outcome(), Outcome::Problems);
        assert_eq!(s(0, 2).outcome(), Outcome::Failed);
        assert_eq!(
            s(1, 0).line().split(" in ").next(),
            Some("imported 1, skipped 0, set aside 0, failed 0")
        );
    }
}
