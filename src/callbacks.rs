//! Outgoing callbacks (recording ready, analytics, meeting ended): a persisted outbox.
//!
//! A handler calls [`enqueue`]; the callback is written to the store first, so it survives a
//! restart. The delivery worker ([`run`], one per cluster: it holds the `callbacks` lease)
//! sends due callbacks. One attempt tries the callback's variants in order (a variant per
//! signing secret, as Scalelite tries each secret): a 2xx delivers it, 404 or 410 means the
//! receiver does not want it (stop, as Scalelite), any other answer tries the next variant.
//! When no variant succeeds, the attempt is retried after an exponential back-off
//! ([`backoff`]) until `CALLBACK_MAX_ATTEMPTS`. A delivered callback is never sent again —
//! unlike bbblb, which sends each success three times.
//!
//! No SSRF through the load balancer: the URL's host is resolved once, every address must be
//! public ([`is_public`]) unless `ALLOW_PRIVATE_CALLBACKS=true`, and the request connects to
//! exactly the address that was checked (no DNS rebinding between check and use).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::app::App;
use crate::shutdown::Shutdown;
use crate::store::{now_ms, CallbackStatus, CallbackVariant, OutgoingCallback, StoreError};

/// Whether `ip` is a public unicast address (not loopback, private, link-local, unique-local,
/// CGNAT, multicast, documentation or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

/// The wait before attempt `attempts + 1`: `base × 2^attempts`, at most one hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.min(20));
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

/// Queues a callback; returns its id. `variants` are tried in order on every attempt.
pub async fn enqueue(
    app: &App,
    kind: &str,
    url: &str,
    variants: Vec<CallbackVariant>,
) -> Result<String, StoreError> {
    enqueue_request(app, kind, "POST", url, variants).await
}

/// [`enqueue`] with another HTTP method (`GET` for BBB's meeting-ended callback; a
/// variant's body is then not sent).
pub async fn enqueue_request(
    app: &App,
    kind: &str,
    method: &str,
    url: &str,
    variants: Vec<CallbackVariant>,
) -> Result<String, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    queue(app, id.clone(), kind, method, url, variants).await?;
    Ok(id)
}

/// Queues a POST callback under a caller-chosen `id`, once: if a callback with that id was
/// ever queued (delivered or not), nothing happens and `false` is returned. For callbacks
/// that must go out once per fact (a recording is ready), however often the fact is seen.
pub async fn enqueue_once(
    app: &App,
    id: &str,
    kind: &str,
    url: &str,
    variants: Vec<CallbackVariant>,
) -> Result<bool, StoreError> {
    queue(app, id.to_string(), kind, "POST", url, variants).await
}

async fn queue(
    app: &App,
    id: String,
    kind: &str,
    method: &str,
    url: &str,
    variants: Vec<CallbackVariant>,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let cb = OutgoingCallback {
        id,
        kind: kind.to_string(),
        method: method.to_string(),
        url: url.trim().to_string(),
        variants,
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
        status: CallbackStatus::Pending,
        last_error: String::new(),
    };
    if !app.outbox.enqueue_callback(&cb).await? {
        return Ok(false);
    }
    app.callbacks_due.notify_one();
    tracing::info!(kind, id = %cb.id, "callback queued");
    Ok(true)
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// The receiver answered 404 or 410: it does not want this callback.
    Gone(u16),
    /// Never deliverable (bad URL, private address): give up now.
    Refused(String),
    Retry(String),
}

/// Resolves the callback's host and checks every address against the SSRF guard.
async fn target(url: &url::Url, allow_private: bool) -> Result<(String, SocketAddr), Outcome> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Outcome::Refused(format!(
            "unsupported scheme {}",
            url.scheme()
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| Outcome::Refused("the URL has no host".into()))?
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let lookup_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((lookup_host.as_str(), port))
        .await
        .map_err(|e| Outcome::Retry(format!("cannot resolve {host}: {e}")))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| Outcome::Retry(format!("{host} has no address")))?;
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(Outcome::Refused(format!(
                "{host} resolves to the non-public address {}; set ALLOW_PRIVATE_CALLBACKS=true to allow it",
                bad.ip()
            )));
        }
    }
    Ok((lookup_host, first))
}

async fn attempt(app: &App, cb: &OutgoingCallback) -> Outcome {
    let url = match url::Url::parse(&cb.url) {
        Ok(u) => u,
        Err(e) => return Outcome::Refused(format!("invalid URL: {e}")),
    };
    let (host, addr) = match target(&url, app.config.allow_private_callbacks).await {
        Ok(t) => t,
        Err(o) => return o,
    };
    let client = match reqwest::Client::builder()
        .resolve(&host, addr)
        .connect_timeout(app.config.connect_timeout)
        .timeout(app.config.response_timeout + app.config.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ferrolite/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => return Outcome::Retry(e.to_string()),
    };
    let mut last = String::from("no variant to send");
    for v in &cb.variants {
        let mut req = if cb.method.eq_ignore_ascii_case("GET") {
            client.get(url.clone())
        } else {
            client.post(url.clone()).body(v.body.clone())
        };
        for (k, val) in &v.headers {
            req = req.header(k, val);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return Outcome::Delivered,
            Ok(r) if matches!(r.status().as_u16(), 404 | 410) => {
                return Outcome::Gone(r.status().as_u16())
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => return Outcome::Retry(e.without_url().to_string()),
        }
    }
    Outcome::Retry(last)
}

async fn deliver(app: &App, cb: OutgoingCallback) {
    let attempts = cb.attempts + 1;
    let outcome = attempt(app, &cb).await;
    let (status, next, error) = match &outcome {
        Outcome::Delivered => (CallbackStatus::Delivered, 0, String::new()),
        Outcome::Gone(code) => (
            CallbackStatus::Gone,
            0,
            format!("the receiver answered {code}"),
        ),
        Outcome::Refused(e) => (CallbackStatus::Failed, 0, e.clone()),
        Outcome::Retry(e) if attempts >= app.config.callback_max_attempts => {
            (CallbackStatus::Failed, 0, e.clone())
        }
        Outcome::Retry(e) => (
            CallbackStatus::Pending,
            now_ms() + backoff(app.config.callback_retry_base, cb.attempts).as_millis() as i64,
            e.clone(),
        ),
    };
    match &outcome {
        Outcome::Delivered => {
            tracing::info!(kind = %cb.kind, id = %cb.id, attempts, "callback delivered")
        }
        _ => {
            tracing::warn!(kind = %cb.kind, id = %cb.id, attempts, status = %status, error = %error, "callback not delivered")
        }
    }
    app.metrics
        .callbacks
        .get_or_create(&crate::metrics::CallbackLabels {
            kind: cb.kind.clone(),
            status: status.to_string(),
        })
        .inc();
    if let Err(e) = app
        .outbox
        .update_callback(&cb.id, status, attempts, next, &error)
        .await
    {
        tracing::error!(id = %cb.id, error = %e, "could not record a callback attempt");
    }
}

/// Sends every due callback once.
pub async fn deliver_due(app: &App) -> Result<usize, StoreError> {
    let due = app.outbox.due_callbacks(now_ms(), 64).await?;
    let n = due.len();
    stream::iter(due)
        .for_each_concurrent(8, |cb| deliver(app, cb))
        .await;
    Ok(n)
}

/// The delivery role of `serve`: one process at a time (the `callbacks` lease).
pub async fn run(app: Arc<App>, mut shutdown: Shutdown) {
    let mut lease = crate::lease::Lease::new(
        app.clone(),
        crate::store::LeaseRole::Callbacks,
        Duration::from_secs(30),
    );
    loop {
        if lease.acquire().await {
            if let Err(e) = deliver_due(&app).await {
                tracing::warn!(error = %e, "callback delivery failed");
            }
        }
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = app.callbacks_due.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    lease.release().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass_the_guard() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Duration::from_secs(5);
        assert_eq!(backoff(b, 0), Duration::from_secs(5));
        assert_eq!(backoff(b, 3), Duration::from_secs(40));
        assert_eq!(backoff(b, 30), Duration::from_secs(3600));
    }
}
