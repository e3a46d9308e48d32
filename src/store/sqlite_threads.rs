//! The threads that run the SQLite store's calls: one writer and a few readers.
//!
//! A store call is a closure over the store. [`Lane::run`] queues it for the lane's
//! threads and awaits its answer on a oneshot channel, so SQLite never runs on an async
//! worker (a slow disk stalls no request). Writes go to a lane of one thread, because
//! SQLite takes one writer at a time anyway; reads go to a lane of [`READERS`] threads,
//! which WAL mode lets run side by side. A write waiting for another process's lock (a
//! backup, a long CLI command) therefore never holds up a join's lookup.
//!
//! Why not tokio's blocking pool for these: under concurrency `spawn_blocking` grows one
//! thread per waiting call (64 clients, 64 threads) that then queue for the connection
//! pool and the write lock, and every call wakes a thread on its way in. Measured with
//! `perf`, about a third of a join's CPU at 64 clients went to those task switches. Here a
//! thread that finishes a call takes the next queued one without sleeping, so under load
//! the only hand-off left is the caller's wake-up.
//!
//! Calls that scan or rewrite a whole table (listings, a poll's batches, pruning) stay on
//! the blocking pool ([`super::sqlite::SqliteStore::bulk`]), so a long scan never holds up
//! the point calls of the request path queued behind it.
//!
//! A call's time in the queue counts against its wait for the database lock
//! ([`queued_at`]): queued writes all give up one busy timeout after they were made, not
//! one after another. The threads end when the last handle to the store is dropped.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crossbeam_channel::{unbounded, Sender};

/// How many threads read for one store: enough to keep both cores busy while one read
/// waits for the disk, leaving most of the pool's eight connections for bulk calls.
pub(super) const READERS: usize = 3;

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// When the call running on this thread was queued (unset outside a lane's thread).
    static QUEUED_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// When the store call running on this thread was queued, on a lane's thread; `None`
/// elsewhere (a bulk call on the blocking pool, a test calling the store directly).
pub(super) fn queued_at() -> Option<Instant> {
    QUEUED_AT.get()
}

/// A queue of store calls and the threads that run them (cloned with the store; the
/// threads end with the last clone).
#[derive(Clone)]
pub(super) struct Lane {
    queue: Sender<(Instant, Job)>,
}

/// The call did not answer: its thread is gone or the call panicked.
#[derive(Debug)]
pub(super) struct Lost;

impl Lane {
    /// Starts `threads` threads named `name-N`.
    pub(super) fn start(name: &str, threads: usize) -> std::io::Result<Lane> {
        let (queue, jobs) = unbounded::<(Instant, Job)>();
        for i in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    while let Ok((queued, job)) = jobs.recv() {
                        QUEUED_AT.set(Some(queued));
                        // A panicking call drops its answer channel (its caller gets
                        // `Lost`); the thread lives on for the next call.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                        QUEUED_AT.set(None);
                    }
                })?;
        }
        Ok(Lane { queue })
    }

    /// Runs `f` on one of the lane's threads and returns its result.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, Lost>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone (a dropped request): nobody to tell.
            let _ = answer.send(f());
        });
        self.queue.send((Instant::now(), job)).map_err(|_| Lost)?;
        answered.await.map_err(|_| Lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_call_runs_off_the_callers_thread_and_answers() {
        let threads = Lane::start("test", READERS).unwrap();
        let caller = std::thread::current().id();
        let (ran_on, value) = threads
            .run(|| (std::thread::current().id(), 7))
            .await
            .unwrap();
        assert_ne!(ran_on, caller);
        assert_eq!(value, 7);
    }

    #[tokio::test]
    async fn a_panicking_call_is_lost_and_the_threads_go_on() {
        let threads = Lane::start("test", READERS).unwrap();
        for _ in 0..READERS * 2 {
            let lost = threads.run(|| -> u8 { panic!("a bug in one call") }).await;
            assert!(lost.is_err());
        }
        assert_eq!(threads.run(|| 1).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_call_knows_when_it_was_queued() {
        let lane = Lane::start("test", 1).unwrap();
        let before = Instant::now();
        // The first call holds the only thread, so the second waits in the queue.
        let (slow, queued) = futures_util::future::join(
            lane.run(|| std::thread::sleep(std::time::Duration::from_millis(200))),
            lane.run(|| (queued_at(), Instant::now())),
        )
        .await;
        slow.unwrap();
        let (at, ran) = queued.unwrap();
        let at = at.expect("set on the lane's thread");
        assert!(
            at >= before && ran.duration_since(at).as_millis() >= 150,
            "{at:?} {ran:?}"
        );
        assert_eq!(queued_at(), None, "unset elsewhere");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_run_side_by_side_on_every_thread() {
        let threads = Lane::start("test", READERS).unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(READERS));
        let calls = (0..READERS).map(|_| {
            let (inside, barrier) = (inside.clone(), barrier.clone());
            threads.run(move || {
                inside.fetch_add(1, Ordering::SeqCst);
                // Returns only once every thread holds a call at the same time.
                barrier.wait();
            })
        });
        for r in futures_util::future::join_all(calls).await {
            r.unwrap();
        }
        assert_eq!(inside.load(Ordering::SeqCst), READERS);
    }
}
