//! The client for backend BBB servers: signed URLs, bounded calls, and reading answers.
//!
//! Every call has `CONNECT_TIMEOUT` and `RESPONSE_TIMEOUT` (or a tighter per-call limit), so
//! a slow or dead server never holds the API. Answers are classified into a [`Reply`]
//! (a BBB document with its returncode) or a [`CallError`] (no usable answer: refused,
//! timed out, 5xx, or not a BBB document). An answer is read into one buffer of at most
//! `BBB_MAX_ANSWER_SIZE` bytes; one carrying a DTD (`<!DOCTYPE`, entity declarations) is
//! not a BBB document (`xml`).

pub mod calls;
pub mod checksum;
pub mod params;
pub mod xml;

use std::time::Duration;

use bytes::Bytes;

use crate::bbb::checksum::{sign, Algorithm};
use crate::bbb::params::Params;

pub use xml::{parse_meetings, parse_reply, MeetingEntry, ReplyHead};

/// Longer queries are sent as a form POST instead of a GET URL (nginx in front of BBB
/// refuses request lines beyond 8 KB by default).
pub const MAX_GET_QUERY: usize = 6 * 1024;

/// A BBB answer that carried a `returncode`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: Bytes,
    pub head: ReplyHead,
}

impl Reply {
    pub fn success(&self) -> bool {
        self.head.returncode == "SUCCESS"
    }

    /// The answer as the load balancer relays it: the `<response>` element only, behind its
    /// own XML declaration (never the backend's prolog, nor anything after the element).
    pub fn relayable(&self) -> Bytes {
        let root = &self.body[self.head.root.clone()];
        let mut out = Vec::with_capacity(root.len() + XML_DECL.len());
        out.extend_from_slice(XML_DECL);
        out.extend_from_slice(root);
        out.into()
    }
}

/// The declaration in front of every relayed answer.
pub const XML_DECL: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Default cap on one answer (`BBB_MAX_ANSWER_SIZE`).
pub const DEFAULT_MAX_ANSWER: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("timed out")]
    Timeout,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("the answer is not a BBB document")]
    Garbage,
    #[error("{0}")]
    Other(String),
}

/// The body of an outgoing call that carries one (create with slides, insertDocument).
pub struct Upload {
    pub body: reqwest::Body,
}

#[derive(Clone)]
pub struct BbbClient {
    http: reqwest::Client,
    max_answer: usize,
}

/// `<server url>/<call>?<params>&checksum=<…>`, signed with the server's secret.
pub fn signed_url(
    server_url: &str,
    secret: &str,
    call: &str,
    params: &Params,
    alg: Algorithm,
) -> String {
    let query = params.encode();
    let checksum = sign(alg, call, &query, secret);
    let base = server_url.trim_end_matches('/');
    if query.is_empty() {
        format!("{base}/{call}?checksum={checksum}")
    } else {
        format!("{base}/{call}?{query}&checksum={checksum}")
    }
}

/// A BBB server as the client needs it: where its API is and the secret to sign with.
/// The store's server rows implement it, so this layer never needs the store's types.
pub trait Target {
    /// The API URL, normally ending in `/bigbluebutton/api`.
    fn url(&self) -> &str;
    fn secret(&self) -> &str;
}

impl BbbClient {
    pub fn new(connect_timeout: Duration, response_timeout: Duration) -> BbbClient {
        BbbClient::build(connect_timeout, response_timeout, 64)
    }

    /// A client that keeps no idle connections: for the poller, which talks to every server
    /// once per interval, where idle connections to hundreds of servers would only hold memory.
    pub fn unpooled(connect_timeout: Duration, response_timeout: Duration) -> BbbClient {
        BbbClient::build(connect_timeout, response_timeout, 0)
    }

    fn build(
        connect_timeout: Duration,
        response_timeout: Duration,
        idle_per_host: usize,
    ) -> BbbClient {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(response_timeout + connect_timeout)
            .read_timeout(response_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(idle_per_host)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ferrolite/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client configuration is valid");
        BbbClient {
            http,
            max_answer: DEFAULT_MAX_ANSWER,
        }
    }

    /// The same client with answers capped at `max` bytes (`BBB_MAX_ANSWER_SIZE`).
    pub fn max_answer(mut self, max: usize) -> BbbClient {
        self.max_answer = max;
        self
    }

    /// Calls `call` on `server`. `limit` tightens the overall time for this call.
    pub async fn call(
        &self,
        server: &(impl Target + ?Sized),
        call: &str,
        params: &Params,
        alg: Algorithm,
        upload: Option<Upload>,
        limit: Option<Duration>,
    ) -> Result<Reply, CallError> {
        let mut req = match upload {
            Some(u) => self
                .http
                .post(signed_url(server.url(), server.secret(), call, params, alg))
                .header(reqwest::header::CONTENT_TYPE, "application/xml")
                .body(u.body),
            None => {
                let query = params.encode();
                if query.len() > MAX_GET_QUERY {
                    // Too long for a URL: send the parameters as a form body. BBB hashes only
                    // the URL's query string, which is then empty.
                    let empty = Params::new();
                    self.http
                        .post(signed_url(server.url(), server.secret(), call, &empty, alg))
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(query)
                } else {
                    self.http
                        .get(signed_url(server.url(), server.secret(), call, params, alg))
                }
            }
        };
        if let Some(limit) = limit {
            req = req.timeout(limit);
        }
        let resp = req.send().await.map_err(classify)?;
        let status = resp.status();
        let body = read_capped(resp, self.max_answer).await?;
        if status.is_server_error() {
            return Err(CallError::Status(status.as_u16()));
        }
        let head = read_answer(body.clone(), parse_reply)
            .await
            .map_err(|e| CallError::Other(e.to_string()))?;
        match head {
            Some(head) => Ok(Reply { body, head }),
            None if !status.is_success() => Err(CallError::Status(status.as_u16())),
            None => Err(CallError::Garbage),
        }
    }
}

/// Answers up to this size are read where they arrive; larger ones (a `getMeetings` of a
/// big server is tens of megabytes, a hundred milliseconds of parsing) on the blocking pool,
/// so the async worker keeps serving the requests queued on it.
const INLINE_PARSE_MAX: usize = 256 * 1024;

/// Runs `read` over an answer's bytes: in place when the answer is small, on the blocking
/// pool when it is larger than [`INLINE_PARSE_MAX`]. The error is the blocking task's
/// (a panic inside `read`).
pub async fn read_answer<T, F>(body: Bytes, read: F) -> Result<T, tokio::task::JoinError>
where
    T: Send + 'static,
    F: FnOnce(&[u8]) -> T + Send + 'static,
{
    if body.len() <= INLINE_PARSE_MAX {
        return Ok(read(&body));
    }
    tokio::task::spawn_blocking(move || read(&body)).await
}

/// Reads an answer into one buffer, refusing it once it passes `max` bytes (declared or
/// received), so one server cannot make the process hold an arbitrarily large body.
async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Bytes, CallError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(CallError::TooLarge(max));
    }
    let hint = resp.content_length().unwrap_or(0).min(max as u64) as usize;
    let mut buf = bytes::BytesMut::with_capacity(hint);
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if buf.len() + chunk.len() > max {
            return Err(CallError::TooLarge(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn classify(e: reqwest::Error) -> CallError {
    if e.is_timeout() {
        CallError::Timeout
    } else if e.is_connect() {
        CallError::Connect(
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "connection failed".into()),
        )
    } else {
        CallError::Other(e.without_url().to_string())
    }
}

impl BbbClient {
    /// The server's BBB version from the API index (`<bbbVersion>`), if it reveals it.
    pub async fn version(&self, server: &(impl Target + ?Sized)) -> Option<String> {
        let resp = self
            .http
            .get(server.url().trim_end_matches('/'))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let body = read_capped(resp, 64 * 1024).await.ok()?;
        let text = String::from_utf8_lossy(&body);
        let start = text.find("<bbbVersion>")? + "<bbbVersion>".len();
        let end = text[start..].find("</bbbVersion>")? + start;
        Some(text[start..end].trim().to_string())
    }
}
