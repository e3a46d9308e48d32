//! Outgoing callbacks (recording ready, analytics, meeting ended): a persisted outbox.
//!
//! A handler calls [`enqueue`]; the callback is written to the store first, so it survives a
//! restart. The delivery worker ([`run`], one per cluster: it holds the `callbacks` lease)
//! sends due callbacks. One attempt tries the callback's variants in order (a variant per
//! signing secret, as Scalelite tries each secret): a 2xx delivers it, 404 or 410 means the
//! receiver does not want it (stop, as Scalelite), any other answer tries the next variant.
//! When no variant succeeds, the attempt is retried after an exponential back-off
//! ([`backoff`]) until `CALLBACK_MAX_ATTEMPTS`.
//!
//! Delivery is at least once, with a stable id: due callbacks are claimed in the store
//! ([`crate::store::Store::claim_callbacks`]: one atomic `UPDATE … RETURNING` with a visibility timeout),
//! so two processes never send the same callback at the same time, and one attempt is cut
//! off before its claim expires. A sender killed after the receiver got a callback but
//! before the outcome was recorded sends it again once the claim expires; the repeat is the
//! same callback (a recording-ready JWT carries the same `jti`). A delivered callback is
//! never sent again. Finished callbacks are pruned after `CALLBACK_RETENTION`.
//!
//! No SSRF through the load balancer: the URL's host is resolved once, every address must be
//! public ([`is_public`]) unless `ALLOW_PRIVATE_CALLBACKS=true`, and the request connects to
//! exactly the address that was checked (no DNS rebinding between check and use).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::app::App;
use crate::shutdown::Shutdown;
use crate::store::{now_ms, CallbackStatus, CallbackVariant, Fence, OutgoingCallback, StoreError};

/// Whether `ip` is a public unicast address (not loopback, private, link-local, unique-local,
/// CGNAT, multicast, broadcast, documentation, reserved or unspecified). An IPv6 address that
/// carries an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is judged by
/// the IPv4 address it leads to as well.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6) && embedded_ipv4(v6).iter().all(|v4| is_public_v4(*v4)),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
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

/// The IPv6 ranges that are never public by themselves.
fn is_public_v6(v6: Ipv6Addr) -> bool {
    let seg = v6.segments();
    !(v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard 100::/64
        || (seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 0x0001)) // local NAT64 64:ff9b:1::/48
}

/// The IPv4 addresses an IPv6 address leads to: IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::/48`, and
/// Teredo `2001:0::/32` (both its server and its obfuscated client address). Pure.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let seg = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    let last = v4(seg[6], seg[7]);
    match seg {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => vec![last],
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => vec![last],
        [0x2002, hi, lo, ..] => vec![v4(hi, lo)],
        [0x2001, 0, hi, lo, ..] => vec![v4(hi, lo), v4(!seg[6], !seg[7])],
        _ => vec![],
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

/// How long a claim reserves a callback for its sender. One attempt is cut off before the
/// claim ends ([`attempt_deadline`]), so no other process can claim a callback while it is
/// still being sent.
pub fn claim_ttl(connect: Duration, response: Duration) -> Duration {
    (connect + response) * 2 + Duration::from_secs(5)
}

/// The most one attempt may take under a claim of `claim`: what is left for recording it.
pub fn attempt_deadline(claim: Duration) -> Duration {
    claim.saturating_sub(Duration::from_secs(3))
}

/// Sends one claimed callback and records the outcome. The outcome is recorded under the
/// callback's own claim (`claimer`, until its visibility timeout), not under the lease's
/// fence: a sender whose lease was taken over meanwhile still holds this claim (nobody
/// else could have claimed the callback), and refusing its "delivered" would only make the
/// new sender send it again. New claims are what the fence stops ([`deliver_due`]).
async fn deliver(app: &App, claimer: &str, claim: Duration, cb: OutgoingCallback) {
    let attempts = cb.attempts + 1;
    let outcome = match tokio::time::timeout(attempt_deadline(claim), attempt(app, &cb)).await {
        Ok(o) => o,
        Err(_) => Outcome::Retry("the attempt outlasted its claim".into()),
    };
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
    match app
        .outbox
        .finish_callback(claimer, &cb.id, status, attempts, next, &error, None)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(id = %cb.id, "a callback's claim was lost before its attempt was recorded")
        }
        Err(e) => tracing::error!(id = %cb.id, error = %e, "could not record a callback attempt"),
    }
}

/// How many callbacks are claimed and sent at once.
const CONCURRENCY: usize = 8;

/// Sends every due callback once, as `claimer`: claims a few at a time (an atomic claim
/// with a visibility timeout in the store, so no two processes send the same one and a
/// sender that dies only delays its claimed ones until the claim expires). With the role's
/// `fence`, new claims are refused once another process took the role over.
pub async fn deliver_due(
    app: &App,
    claimer: &str,
    fence: Option<&Fence>,
) -> Result<usize, StoreError> {
    let claim = claim_ttl(app.config.connect_timeout, app.config.response_timeout);
    let mut n = 0;
    loop {
        let now = now_ms();
        let due = app
            .outbox
            .claim_callbacks(
                now,
                CONCURRENCY,
                claimer,
                now + claim.as_millis() as i64,
                fence,
            )
            .await?;
        if due.is_empty() {
            return Ok(n);
        }
        n += due.len();
        stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |cb| deliver(app, claimer, claim, cb))
            .await;
    }
}

/// Deletes finished callbacks and recording-ready URLs older than `CALLBACK_RETENTION`.
pub async fn prune(app: &App) {
    let before = now_ms() - app.config.callback_retention.as_millis() as i64;
    match app.outbox.prune_callbacks(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, "pruned finished callbacks"),
        Err(e) => tracing::warn!(error = %e, "could not prune finished callbacks"),
    }
    match app.recordings.prune_ready_urls(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, "pruned recording-ready URLs"),
        Err(e) => tracing::warn!(error = %e, "could not prune recording-ready URLs"),
    }
}

/// How often the callback role prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The delivery role of `serve`: one process at a time (the `callbacks` lease).
pub async fn run(app: Arc<App>, mut shutdown: Shutdown) {
    let mut lease = crate::lease::Lease::new(
        app.clone(),
        crate::store::LeaseRole::Callbacks,
        app.config.role_lease_ttl,
    );
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        if lease.acquire().await {
            let heartbeat = lease.heartbeat();
            let fence = lease.fence();
            if let Err(e) = deliver_due(&app, lease.holder(), fence.as_ref()).await {
                tracing::warn!(error = %e, "callback delivery failed");
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                prune(&app).await;
                last_prune = Some(std::time::Instant::now());
            }
            heartbeat.stop().await;
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

    /// Every non-public IPv4 range, by a first, a middle and a last address.
    const PRIVATE_V4: &[&str] = &[
        "0.0.0.0",
        "0.1.2.3",
        "0.255.255.255", // this network, unspecified
        "10.0.0.0",
        "10.1.2.3",
        "10.255.255.255", // private
        "100.64.0.0",
        "100.100.1.1",
        "100.127.255.255", // CGNAT
        "127.0.0.0",
        "127.0.0.1",
        "127.255.255.255", // loopback
        "169.254.0.0",
        "169.254.169.254",
        "169.254.255.255", // link-local
        "172.16.0.0",
        "172.20.1.1",
        "172.31.255.255", // private
        "192.0.0.0",
        "192.0.0.170",
        "192.0.0.255", // IETF protocol assignments
        "192.0.2.0",
        "192.0.2.1",
        "192.0.2.255", // documentation
        "192.168.0.0",
        "192.168.1.1",
        "192.168.255.255", // private
        "198.18.0.0",
        "198.18.5.5",
        "198.19.255.255", // benchmarking
        "198.51.100.1",
        "203.0.113.1", // documentation
        "224.0.0.0",
        "224.0.0.1",
        "239.255.255.255", // multicast
        "240.0.0.0",
        "250.1.2.3",
        "255.255.255.254", // reserved
        "255.255.255.255", // broadcast
    ];

    const PUBLIC_V4: &[&str] = &[
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "172.32.0.1",
        "193.0.0.1",
    ];

    /// `v4` in each IPv6 form that carries an IPv4 address.
    fn embeddings(v4: &str) -> Vec<String> {
        let a: Ipv4Addr = v4.parse().unwrap();
        let o = a.octets();
        let (hi, lo) = (
            u16::from_be_bytes([o[0], o[1]]),
            u16::from_be_bytes([o[2], o[3]]),
        );
        vec![
            format!("::ffff:{v4}"),
            format!("::{v4}"),
            format!("64:ff9b::{v4}"),
            format!("2002:{hi:x}:{lo:x}::1"),
            format!("2002:{hi:x}:{lo:x}:ffff:ffff:ffff:ffff:ffff"),
            // Teredo: server address in bits 32..64, client address inverted in the last 32
            // (the other one public: 8.8.8.8).
            format!("2001:0:{hi:x}:{lo:x}::f7f7:f7f7"),
            format!("2001:0:808:808:0:0:{:x}:{:x}", !hi, !lo),
        ]
    }

    #[test]
    fn no_private_ipv4_range_passes_in_any_form() {
        for v4 in PRIVATE_V4 {
            assert!(!is_public(v4.parse().unwrap()), "{v4}");
            for v6 in embeddings(v4) {
                assert!(!is_public(v6.parse().unwrap()), "{v6} carries {v4}");
            }
        }
        for v4 in PUBLIC_V4 {
            assert!(is_public(v4.parse().unwrap()), "{v4}");
            for v6 in embeddings(v4) {
                assert!(is_public(v6.parse().unwrap()), "{v6} carries {v4}");
            }
        }
    }

    #[test]
    fn no_private_ipv6_range_passes() {
        for private in [
            "::",
            "::1",
            "fc00::",
            "fc00::1",
            "fd12:3456:789a::1",
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe80::",
            "fe80::1",
            "febf:ffff::1",
            "fec0::1",
            "ff00::",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "100::1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860:4860::8888",
        ] {
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
