//! The callbacks BBB makes about a meeting, relayed to the front end that created it:
//! learning-analytics data (`meta_analytics-callback-url`) and the meeting-ended
//! notification (`meta_endCallbackUrl` / `meetingEndedURL`).
//!
//! At `create` the front end's URL is replaced by a Ferrolite URL that carries the original
//! URL, the tenant (and the meeting) with an HMAC-SHA256 over them, keyed by the first load
//! balancer secret ([`rewrite_create`]). Nothing is stored per meeting, and nobody can make
//! Ferrolite call a URL it did not sign (no open relay). When BBB calls back:
//!
//! - `POST /bigbluebutton/api/analytics_callback`: the bearer JWT must be HS512-signed with a
//!   registered server's secret (Scalelite); the JSON is unscoped, gets `customer` (tenant
//!   name or `scalelite`) and is queued once, re-signed per tenant (or load balancer) secret
//!   as a fresh HS512 JWT valid 24 h. The answer is always 204, as Scalelite's.
//! - `GET|POST /ferrolite/callbacks/meeting-ended`: BBB appends `meetingID` and
//!   `recordingmarks`; the original URL is called (GET) with the front end's meeting ID.
//!
//! Delivery (once, with back-off, never to private addresses unless allowed) is the outbox's
//! job: `crate::callbacks`.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header, Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use sha2::Sha256;

use super::call::Call;
use crate::app::App;
use crate::bbb::params::Params;
use crate::http::response::{self, answer, ApiError, ApiResult, HttpResponse};
use crate::store::{CallbackVariant, StoreError};
use crate::tenant::unscope_text;

/// Where BBB's meeting-ended callbacks come back to.
pub const MEETING_ENDED_PATH: &str = "/ferrolite/callbacks/meeting-ended";
const ANALYTICS_PATH: &str = "/bigbluebutton/api/analytics_callback";
/// Largest analytics document accepted.
const MAX_ANALYTICS_BODY: usize = 16 * 1024 * 1024;

/// HMAC-SHA256 over the parts (joined by newlines), hex.
pub fn sign(key: &str, parts: &[&str]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(parts.join("\n").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `sig` is the HMAC of `parts` under any of `keys` (constant-time).
pub fn verify(keys: &[String], parts: &[&str], sig: &str) -> bool {
    let Ok(raw) = hex::decode(sig.trim()) else {
        return false;
    };
    keys.iter().filter(|k| !k.is_empty()).any(|k| {
        let mut mac = Hmac::<Sha256>::new_from_slice(k.as_bytes()).expect("HMAC takes any key");
        mac.update(parts.join("\n").as_bytes());
        mac.verify_slice(&raw).is_ok()
    })
}

/// The public base URL BBB should call back: `https://[<tenant>.]<URL_HOST>` (Scalelite;
/// tenants under `BASE_URL` when set), else the scheme and host the front end used.
fn own_base(app: &App, call: &Call) -> String {
    match &app.config.url_host {
        Some(url_host) => {
            let host = match &call.tenant {
                Some(t) => format!(
                    "{}.{}",
                    t.name,
                    app.config.tenancy.base_url.as_deref().unwrap_or(url_host)
                ),
                None => url_host.clone(),
            };
            format!("https://{host}")
        }
        None => format!("{}://{}", call.scheme, call.host),
    }
}

/// Every parameter named `key`, compared case-insensitively (BBB lower-cases meta keys, so
/// a second spelling must not slip past the rewrite).
fn find_keys(p: &Params, key: &str) -> Vec<(String, String)> {
    p.matching(key)
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect()
}

/// Points the create's callback URLs at Ferrolite (see the module documentation).
pub fn rewrite_create(app: &App, call: &Call, meeting_id: &str, p: &mut Params) {
    let Some(key) = app.config.secrets.first() else {
        return;
    };
    let base = own_base(app, call);
    for (k, url) in find_keys(p, "meta_analytics-callback-url") {
        if url.is_empty() {
            p.remove(&k);
            continue;
        }
        let sig = sign(key, &["analytics", &call.tenant_id, &url]);
        let q: Params = [("t", call.tenant_id.as_str()), ("u", &url), ("s", &sig)]
            .into_iter()
            .collect();
        p.set(&k, format!("{base}{ANALYTICS_PATH}?{}", q.encode()));
    }
    for name in ["meta_endCallbackUrl", "meetingEndedURL"] {
        for (k, url) in find_keys(p, name) {
            if url.is_empty() {
                p.remove(&k);
                continue;
            }
            let sig = sign(key, &["meeting-ended", &call.tenant_id, meeting_id, &url]);
            let q: Params = [
                ("t", call.tenant_id.as_str()),
                ("m", meeting_id),
                ("u", &url),
                ("s", &sig),
            ]
            .into_iter()
            .collect();
            p.set(&k, format!("{base}{MEETING_ENDED_PATH}?{}", q.encode()));
        }
    }
}

fn no_content() -> HttpResponse {
    response::with_status(StatusCode::NO_CONTENT, "text/plain", Bytes::new())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Expiry {
    exp: i64,
}

/// Whether the bearer token is an HS512 JWT signed with any registered server's secret.
async fn valid_server_token(app: &App, token: &str) -> bool {
    let servers = match app.store.servers().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "analytics callback: cannot read servers");
            return false;
        }
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS512);
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    servers.iter().any(|s| {
        jsonwebtoken::decode::<serde_json::Value>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(s.secret.as_bytes()),
            &validation,
        )
        .is_ok()
    })
}

/// A fresh HS512 JWT valid 24 hours (what Scalelite signs forwarded analytics with).
fn forward_token(secret: &str) -> Option<String> {
    let claims = Expiry {
        exp: crate::store::now_ms() / 1000 + 24 * 3600,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .ok()
}

/// `POST /bigbluebutton/api/analytics_callback`. Always 204 once the Host is accepted.
/// Why an analytics callback was dropped (logged; the answer is 204 all the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Ignored {
    #[error("the body could not be read")]
    Body,
    #[error("missing or invalid bearer token; ignored")]
    Token,
    #[error("no signed front-end URL for this callback; ignored")]
    Unsigned,
    #[error("the body is not a JSON object; ignored")]
    NotJson,
}

pub async fn analytics(app: &App, req: Request<Incoming>) -> HttpResponse {
    answer(relay_analytics(app, req).await)
}

/// Checks the callback (the Host's tenant, the server's token, Ferrolite's signature) and
/// queues it; always 204 once the request is a POST to a known host.
async fn relay_analytics(app: &App, req: Request<Incoming>) -> ApiResult {
    if req.method() != Method::POST {
        return Err(ApiError::unsupported_request());
    }
    let tenant = app
        .host_tenant(&crate::http::request::host_of(&req))
        .await?;
    match queue_analytics(app, tenant.as_ref(), req).await {
        Ok(()) => {}
        Err(why) => tracing::warn!("analytics callback: {why}"),
    }
    Ok(no_content())
}

async fn queue_analytics(
    app: &App,
    tenant: Option<&crate::store::Tenant>,
    req: Request<Incoming>,
) -> Result<(), Ignored> {
    let q = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim()
        .to_string();
    let body = crate::http::body::read_limited(req.into_body(), MAX_ANALYTICS_BODY)
        .await
        .map_err(|_| Ignored::Body)?;
    if token.is_empty() || !valid_server_token(app, &token).await {
        return Err(Ignored::Token);
    }
    let tenant_id = tenant.map(|t| t.id.as_str()).unwrap_or("");
    let (t, url, sig) = (
        q.get("t").unwrap_or(""),
        q.get("u").unwrap_or(""),
        q.get("s").unwrap_or(""),
    );
    if url.is_empty() || t != tenant_id || !verify(&app.config.secrets, &["analytics", t, url], sig)
    {
        return Err(Ignored::Unsigned);
    }
    let mut doc = match serde_json::from_slice(&unscope_text(tenant_id, &body)) {
        Ok(serde_json::Value::Object(o)) => serde_json::Value::Object(o),
        _ => return Err(Ignored::NotJson),
    };
    doc["customer"] = serde_json::Value::String(
        tenant
            .map(|t| t.name.clone())
            .unwrap_or_else(|| "scalelite".into()),
    );
    let payload = doc.to_string();
    let secrets = match tenant {
        Some(t) => &t.secrets,
        None => &app.config.secrets,
    };
    let variants: Vec<CallbackVariant> = secrets
        .iter()
        .filter_map(|s| forward_token(s))
        .map(|jwt| CallbackVariant {
            body: payload.clone(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Authorization".into(), format!("Bearer {jwt}")),
                (
                    "User-Agent".into(),
                    "BigBlueButton Analytics Callback".into(),
                ),
            ],
        })
        .collect();
    if let Err(e) = crate::callbacks::enqueue(app, "analytics", url, variants).await {
        tracing::error!(error = %e, "analytics callback could not be queued");
    }
    Ok(())
}

/// Why a meeting-ended callback was not relayed, answered as plain text.
#[derive(Debug)]
enum Refusal {
    Bbb(ApiError),
    /// The URL was not signed by this load balancer.
    Unsigned,
    BadUrl,
    /// The outbox could not take it: the client may retry.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Store(e)
    }
}

impl Refusal {
    fn into_response(self) -> HttpResponse {
        match self {
            Refusal::Bbb(e) => e.into_response(),
            Refusal::Unsigned => response::text(
                StatusCode::FORBIDDEN,
                "This callback URL was not issued by this load balancer.",
            ),
            Refusal::BadUrl => {
                response::text(StatusCode::BAD_REQUEST, "The callback URL is invalid.")
            }
            Refusal::Store(e) => {
                tracing::error!(error = %e, "meeting-ended callback could not be queued");
                response::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The callback could not be queued; try again.",
                )
            }
        }
    }
}

pub async fn meeting_ended(app: &App, rest: &str, req: Request<Incoming>) -> HttpResponse {
    relay_meeting_ended(app, rest, req)
        .await
        .unwrap_or_else(Refusal::into_response)
}

async fn relay_meeting_ended(
    app: &App,
    rest: &str,
    req: Request<Incoming>,
) -> Result<HttpResponse, Refusal> {
    if !rest.is_empty() && rest != "/" {
        return Err(Refusal::Bbb(ApiError::unsupported_request()));
    }
    let q = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let (t, m, url, sig) = (
        q.get("t").unwrap_or(""),
        q.get("m").unwrap_or(""),
        q.get("u").unwrap_or(""),
        q.get("s").unwrap_or(""),
    );
    if url.is_empty() || !verify(&app.config.secrets, &["meeting-ended", t, m, url], sig) {
        return Err(Refusal::Unsigned);
    }
    let mut forward = url::Url::parse(url).map_err(|_| Refusal::BadUrl)?;
    forward.query_pairs_mut().append_pair("meetingID", m);
    if let Some(marks) = q.get("recordingmarks") {
        forward
            .query_pairs_mut()
            .append_pair("recordingmarks", marks);
    }
    let variant = CallbackVariant {
        body: String::new(),
        headers: vec![],
    };
    crate::callbacks::enqueue_request(app, "meeting-ended", "GET", forward.as_str(), vec![variant])
        .await?;
    Ok(response::text(StatusCode::OK, "OK"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_part() {
        let s = sign("k", &["analytics", "t1", "https://x/cb"]);
        let keys = vec!["old".to_string(), "k".to_string()];
        assert!(verify(&keys, &["analytics", "t1", "https://x/cb"], &s));
        assert!(!verify(&keys, &["analytics", "t2", "https://x/cb"], &s));
        assert!(!verify(&keys, &["analytics", "t1", "https://evil/cb"], &s));
        assert!(!verify(
            &["other".to_string()],
            &["analytics", "t1", "https://x/cb"],
            &s
        ));
        assert!(!verify(&keys, &["analytics", "t1", "https://x/cb"], "zz"));
    }
}
