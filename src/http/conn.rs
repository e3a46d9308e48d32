//! Per-connection guards: what a client may hold of the listener and for how long.
//!
//! hyper's own header-read timer (set to `HTTP_IDLE_TIMEOUT`) closes a connection that sends
//! nothing; [`Activity`] adds what hyper cannot tell apart: *when a request's head started*
//! to arrive, so one whose headers dribble in is closed after `HTTP_HEADER_TIMEOUT`, and
//! whether a request is in flight, so that at the connection limit only connections with
//! nothing in flight are shed ([`should_close`] is the pure decision).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const NONE: u64 = u64::MAX;

/// A connection younger than this is never shed: its first request may still be in flight.
pub const SHED_GRACE: Duration = Duration::from_millis(500);

/// What one connection is doing, shared by its I/O, its service and its watcher.
pub struct Activity {
    born: Instant,
    /// Milliseconds since `born` when the first byte of the current request head arrived.
    head_since: AtomicU64,
    inflight: AtomicUsize,
}

/// Why a watcher closes its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    SlowHeaders,
    Shed,
}

/// The decision: slow headers close a connection with nothing in flight; at the connection
/// limit (`shedding`), so does being idle past the grace period.
pub fn should_close(
    age: Duration,
    head_for: Option<Duration>,
    inflight: usize,
    header_timeout: Duration,
    shedding: bool,
) -> Option<Close> {
    if inflight > 0 {
        return None;
    }
    if head_for.is_some_and(|d| d >= header_timeout) {
        return Some(Close::SlowHeaders);
    }
    (shedding && age >= SHED_GRACE).then_some(Close::Shed)
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            head_since: AtomicU64::new(NONE),
            inflight: AtomicUsize::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn bytes_read(&self) {
        if self.inflight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == NONE
        {
            self.head_since.store(self.now_ms(), Ordering::Release);
        }
    }

    /// A request reached the service: its head is complete.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        InFlight(self.clone())
    }

    /// The decision for this connection now.
    pub fn verdict(&self, header_timeout: Duration, shedding: bool) -> Option<Close> {
        let now = self.now_ms();
        let head = self.head_since.load(Ordering::Acquire);
        let head_for = (head != NONE).then(|| Duration::from_millis(now.saturating_sub(head)));
        should_close(
            self.born.elapsed(),
            head_for,
            self.inflight.load(Ordering::Acquire),
            header_timeout,
            shedding,
        )
    }
}

/// Held while a request is being answered.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that tells its [`Activity`] when bytes arrive.
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Tracked<S> {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Raises the soft file-descriptor limit to the hard one and returns the soft limit now.
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
    Some(lim.rlim_cur as u64)
}

/// The connection limit that fits the descriptor limit, keeping room for the store,
/// outgoing calls and files.
pub fn connection_limit(configured: usize, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(n) => configured.min((n.saturating_sub(256) as usize).max(16)),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);
    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_request_in_flight_is_never_closed() {
        assert_eq!(should_close(S * 100, Some(S * 100), 1, T, true), None);
    }

    #[test]
    fn slow_headers_close_after_the_header_timeout() {
        assert_eq!(should_close(S * 20, Some(S * 9), 0, T, false), None);
        assert_eq!(
            should_close(S * 20, Some(T), 0, T, false),
            Some(Close::SlowHeaders)
        );
    }

    #[test]
    fn idle_connections_are_shed_only_at_the_limit_and_after_the_grace() {
        assert_eq!(should_close(S * 20, None, 0, T, false), None);
        assert_eq!(should_close(S * 20, None, 0, T, true), Some(Close::Shed));
        assert_eq!(
            should_close(Duration::from_millis(10), None, 0, T, true),
            None
        );
    }

    #[test]
    fn the_limit_keeps_room_for_other_descriptors() {
        assert_eq!(connection_limit(4096, Some(1024)), 768);
        assert_eq!(connection_limit(4096, Some(1_048_576)), 4096);
        assert_eq!(connection_limit(4096, Some(10)), 16);
        assert_eq!(connection_limit(100, None), 100);
    }
}
