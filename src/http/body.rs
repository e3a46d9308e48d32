//! Reading a request body into memory: one buffer, a size limit and a deadline.
//!
//! hyper hands the body over in frames as they arrive; keeping each frame (as `collect`
//! does) lets a client that dribbles a few bytes per packet pin a whole read buffer per
//! byte. [`read_bounded`] copies the frames into one buffer sized from `Content-Length`
//! (never above the limit), and gives up when the body has not arrived by the deadline of
//! the connection's `HTTP_BODY_TIMEOUT` ([`body_timeout`]).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::response::{self, ApiError, HttpResponse};

/// Largest form body read into memory (a BBB create with many parameters is a few KB).
pub const MAX_FORM_BODY: usize = 4 * 1024 * 1024;
/// Largest XML body buffered for `create` with pre-uploaded slides (kept to retry on
/// another server if the first one fails).
pub const MAX_CREATE_XML_BODY: usize = 64 * 1024 * 1024;

tokio::task_local! {
    static BODY_TIMEOUT: Duration;
}

/// The body timeout of the request being served (30 s outside a listener).
pub fn body_timeout() -> Duration {
    BODY_TIMEOUT
        .try_with(|t| *t)
        .unwrap_or(Duration::from_secs(30))
}

/// Runs `fut` (a request's handler) with `timeout` as its body timeout.
pub async fn with_body_timeout<F: std::future::Future>(timeout: Duration, fut: F) -> F::Output {
    BODY_TIMEOUT.scope(timeout, fut).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request body did not arrive in time")]
    TimedOut,
    #[error("the request body could not be read")]
    Broken,
}

/// Reads a request body into memory with [`read_bounded`], answering a refusal BBB-style:
/// too large is 413, too late 408; both close the connection.
pub async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, HttpResponse> {
    let declared = hyper::body::Body::size_hint(&body).exact();
    let (status, key, message) = match read_bounded(body, declared, limit).await {
        Ok(bytes) => return Ok(bytes),
        Err(BodyError::TooLarge(_)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "requestTooLarge",
            format!("The request body is larger than {limit} bytes."),
        ),
        Err(BodyError::TimedOut) => (
            StatusCode::REQUEST_TIMEOUT,
            "requestTimeout",
            "The request body did not arrive in time.".to_string(),
        ),
        Err(BodyError::Broken) => (
            StatusCode::BAD_REQUEST,
            "badRequest",
            "The request body could not be read.".to_string(),
        ),
    };
    let mut resp = response::with_status(
        status,
        "text/xml; charset=utf-8",
        ApiError::new(key, message).to_xml(),
    );
    // The rest of the body is not read: the connection cannot carry another request.
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    Err(resp)
}

/// Reads the whole body, at most `limit` bytes, within the body timeout.
pub async fn read_bounded(
    body: Incoming,
    declared: Option<u64>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let timeout = body_timeout();
    match tokio::time::timeout(timeout, collect(body, declared, limit)).await {
        Ok(r) => r,
        Err(_) => Err(BodyError::TimedOut),
    }
}

async fn collect(
    mut body: Incoming,
    declared: Option<u64>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// The next data frame of a streamed body, waiting at most the body timeout for it.
/// `Ok(None)` at the end of the body.
pub async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, BodyError> {
    loop {
        match tokio::time::timeout(body_timeout(), body.frame()).await {
            Err(_) => return Err(BodyError::TimedOut),
            Ok(None) => return Ok(None),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}
