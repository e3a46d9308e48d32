//! The HTTP listener: TCP for development, a Unix socket behind nginx.
//!
//! Each connection is served by hyper (HTTP/1.1, keep-alive). On shutdown the listener
//! stops accepting and open connections finish their in-flight request before closing.

pub mod body;
pub mod request;
pub mod response;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, UnixListener};

use crate::app::App;
use crate::config::Bind;
use crate::http::response::{ApiError, HttpResponse};
use crate::shutdown::Shutdown;

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

/// Serves until `shutdown`, then lets in-flight requests finish (up to 30 s).
pub async fn serve<H, F>(listener: Listener, mut shutdown: Shutdown, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let http = hyper::server::conn::http1::Builder::new();
    loop {
        let handler = handler.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let fut = std::panic::AssertUnwindSafe(handler(req)).catch_unwind();
            async move {
                Ok::<_, Infallible>(fut.await.unwrap_or_else(|_| {
                    tracing::error!("a request handler panicked; answered internalError");
                    ApiError::internal("An unexpected error occurred.").into_response()
                }))
            }
        });
        tokio::select! {
            _ = shutdown.recv() => break,
            accepted = accept(&listener) => match accepted {
                Ok(Conn::Tcp(s)) => {
                    let _ = s.set_nodelay(true);
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(s), service));
                    tokio::spawn(async move { let _ = conn.await; });
                }
                Ok(Conn::Unix(s)) => {
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(s), service));
                    tokio::spawn(async move { let _ = conn.await; });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
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

/// Serves the BBB API for `app`.
pub async fn serve_app(app: Arc<App>, listener: Listener, shutdown: Shutdown) {
    serve(listener, shutdown, move |req| {
        let app = app.clone();
        async move { crate::api::handle(&app, req).await }
    })
    .await
}
