//! Running blocking filesystem work from async code without stalling a tokio worker.
//!
//! [`run`] hands the current worker's other tasks to a fresh worker while `f` blocks
//! (`tokio::task::block_in_place`), so it suits call sites that borrow their inputs (a
//! rename that may turn into a copy of a large tarball, a directory walk). Outside a
//! multi-threaded runtime (unit tests, a current-thread runtime) it simply calls `f`.
//! Work that can own its inputs may use `tokio::task::spawn_blocking` instead.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, off the async worker threads when called on a multi-threaded runtime.
pub fn run<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn other_tasks_run_while_the_work_blocks() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            flag.store(true, Ordering::SeqCst);
        });
        tokio::task::yield_now().await;
        let seen = super::run(|| {
            std::thread::sleep(Duration::from_millis(500));
            ran.load(Ordering::SeqCst)
        });
        assert!(seen, "the only worker was free for the other task");
    }

    #[tokio::test]
    async fn a_current_thread_runtime_runs_it_in_place() {
        assert_eq!(super::run(|| 3), 3);
    }
}
