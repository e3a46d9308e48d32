//! The HTTP listener: TCP for development, a Unix socket behind nginx.
//!
//! Each connection is served by hyper (HTTP/1.1, keep-alive). On shutdown the listener
//! stops accepting and open connections finish their in-flight request before closing.
//! The edge is bounded ([`HttpLimits`]): open connections, time to send headers, idle
//! keep-alive, header size, body time (`body`), and methods (only GET, HEAD and POST; any
//! other is 405 before a handler runs).

pub mod body;
pub mod conn;
pub mod request;
pub mod response;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::{header, Method, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::config::{Bind, HttpLimits};
use crate::shutdown::Shutdown;
use response::{ApiError, HttpResponse};

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
}

impl Listener {
    pub async fn bind(bind: &Bind) -> std::io::Result<Listener> {
        match bind {
            Bind::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            Bind::Unix(path) => {
                // A socket left by a previous run would make bind fail; only remove sockets.
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        std::fs::remove_file(path)?;
                    }
                }
                let l = UnixListener::bind(path)?;
                use std::os::unix::fs::PermissionsExt;
                // nginx runs as another user; the socket's directory controls who may reach it.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
                Ok(Listener::Unix(l, path.clone()))
            }
        }
    }

    /// Where the listener actually is (resolves port 0).
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("http://{a}"),
                Err(_) => "tcp".into(),
            },
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

/// Serves until `shutdown` with the default [`HttpLimits`].
pub async fn serve<H, F>(listener: Listener, shutdown: Shutdown, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    serve_with(listener, shutdown, HttpLimits::default(), handler).await
}

/// Methods the API, playback and admin routes use; anything else is 405 at the edge.
fn method_allowed(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::POST)
}

fn method_not_allowed() -> HttpResponse {
    let mut r = response::text(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed: use GET, HEAD or POST.",
    );
    r.headers_mut().insert(
        header::ALLOW,
        header::HeaderValue::from_static("GET, HEAD, POST"),
    );
    r
}

/// Serves until `shutdown`, then lets in-flight requests finish (up to 30 s).
///
/// At most `limits.max_connections` connections are open; when a new one arrives at the
/// limit, connections with nothing in flight are closed to make room, and the new one waits
/// up to a second for a free slot before it is dropped.
pub async fn serve_with<H, F>(
    listener: Listener,
    mut shutdown: Shutdown,
    limits: HttpLimits,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head, so it is the idle
        // timeout; slow heads are cut shorter by the watcher (`conn::Activity`).
        .header_read_timeout(limits.idle_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(100);
    let max = conn::connection_limit(limits.max_connections, conn::raise_fd_limit());
    let slots = Arc::new(Semaphore::new(max));
    let shedding = watch::channel(0u64).0;
    let tick = (limits.header_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.recv() => break,
            accepted = accept(&listener) => accepted,
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = slot(&slots, &shedding).await else {
            tracing::warn!(
                limit = max,
                "connection limit reached and nothing to shed; dropped a connection"
            );
            continue;
        };
        let activity = conn::Activity::new();
        let handler = handler.clone();
        let in_service = activity.clone();
        let body_timeout = limits.body_timeout;
        let service = service_fn(move |req: Request<Incoming>| {
            let guard = in_service.request_started();
            let fut = (!method_allowed(req.method()))
                .then(method_not_allowed)
                .ok_or(req)
                .map_err(|req| {
                    std::panic::AssertUnwindSafe(body::with_body_timeout(
                        body_timeout,
                        handler(req),
                    ))
                    .catch_unwind()
                });
            async move {
                let resp = match fut {
                    Ok(refused) => refused,
                    Err(fut) => fut.await.unwrap_or_else(|_| {
                        tracing::error!("a request handler panicked; answered internalError");
                        ApiError::internal("An unexpected error occurred.").into_response()
                    }),
                };
                drop(guard);
                Ok::<_, Infallible>(resp)
            }
        });
        let served: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match stream {
            Conn::Tcp(s) => {
                let _ = s.set_nodelay(true);
                let io = TokioIo::new(conn::Tracked::new(s, activity.clone()));
                let c = graceful.watch(http.serve_connection(io, service));
                Box::pin(async move {
                    let _ = c.await;
                })
            }
            Conn::Unix(s) => {
                let io = TokioIo::new(conn::Tracked::new(s, activity.clone()));
                let c = graceful.watch(http.serve_connection(io, service));
                Box::pin(async move {
                    let _ = c.await;
                })
            }
        };
        let mut shed = shedding.subscribe();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(served);
            let mut ticks = tokio::time::interval(tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let shedding = tokio::select! {
                    _ = &mut served => return,
                    _ = ticks.tick() => false,
                    changed = shed.changed() => changed.is_ok(),
                };
                if let Some(why) = activity.verdict(header_timeout, shedding) {
                    tracing::debug!(?why, "closing a connection");
                    return;
                }
            }
        });
    }
    if let Listener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within 30 s");
    }
}

/// A free connection slot: at once, or after asking idle connections to close (for up to
/// a second, asking again every 100 ms as connections age past their grace period).
async fn slot(
    slots: &Arc<Semaphore>,
    shedding: &watch::Sender<u64>,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = slots.clone().try_acquire_owned() {
        return Some(p);
    }
    for _ in 0..10 {
        shedding.send_modify(|n| *n += 1);
        if let Ok(Ok(p)) =
            tokio::time::timeout(Duration::from_millis(100), slots.clone().acquire_owned()).await
        {
            return Some(p);
        }
    }
    None
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Conn> {
    match l {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Conn::Tcp(s)),
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
    }
}
