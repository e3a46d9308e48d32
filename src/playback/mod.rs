//! Playback behind nginx: the one-time links of protected recordings, the decision nginx's
//! `auth_request` asks for, the public-link farm, and the nginx configuration itself.
//!
//! - [`protect`] holds every decision as a pure function (URI parsing, tokens, cookies, the
//!   allow/deny rule).
//! - [`cache`] keeps the access facts of recordings being played for two seconds.
//! - [`links`] keeps `PLAYBACK_LINK_DIR`, the symlinks nginx serves without asking anyone.
//! - [`nginx`] renders the nginx configuration from the environment (pure).
//! - This file is the I/O edge: `GET /recording/<id>/<format>` (consume a token, set the
//!   cookie, redirect to the player), `GET /ferrolite/auth` (204 or 401 for nginx, from the
//!   store only, never the disk), minting links for getRecordings, and the farm's upkeep.

pub mod cache;
pub mod links;
pub mod nginx;
pub mod protect;

use std::collections::HashMap;

use http::{header, HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper::Request;

use crate::app::App;
use crate::http::response::{self, HttpResponse};
use crate::store::playback::{NewToken, PlaybackAccess};
use crate::store::recordings::Recording;
use crate::store::{now_ms, StoreError};

/// The path nginx's `auth_request` subrequest is proxied to.
pub const AUTH_PATH: &str = "/ferrolite/auth";
/// How often the link farm is reconciled with the store when no node announced a change.
pub const RECONCILE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);
/// How often each node checks whether another node announced a playback change.
pub const CHANGE_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// The cluster-wide generation counter that [`announce`] raises.
pub const GENERATION: &str = "playback";

/// The friendly 404 page (the worker's; nginx renders the same text).
pub const NOT_FOUND_HTML: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Recording not found</title></head>\
<body style=\"font-family:sans-serif;text-align:center;margin-top:15%\"><h1>Recording not found</h1>\
<p>This recording link is not valid. The recording may be protected (its links work once), unpublished, or deleted.</p></body></html>";

pub fn not_found() -> HttpResponse {
    response::with_status(
        StatusCode::NOT_FOUND,
        "text/html; charset=utf-8",
        NOT_FOUND_HTML,
    )
}

/// One-time tokens for a getRecordings answer, keyed by `(recordID, format)`.
pub type Links = HashMap<(String, String), String>;

/// Mints a fresh token per format of every protected recording in `recs`, in one write.
pub async fn mint_links(app: &App, recs: &[Recording]) -> Result<Links, StoreError> {
    let mut links = Links::new();
    let mut new = Vec::new();
    for r in recs.iter().filter(|r| r.protected) {
        for f in &r.formats {
            let t = protect::new_token();
            new.push(NewToken {
                hash: protect::token_hash(&t),
                record_id: r.record_id.clone(),
                format: f.format.clone(),
            });
            links.insert((r.record_id.clone(), f.format.clone()), t);
        }
    }
    let ttl = app.config.playback.token_timeout.as_millis() as i64;
    app.tokens.mint_playback_tokens(&new, ttl).await?;
    Ok(links)
}

fn header_str<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whose recordings the Host may play (see [`protect::HostScope`]); `Err(())` for an
/// unknown tenant host.
async fn host_scope(app: &App, host: &str) -> Result<protect::HostScope, ()> {
    if !app.config.tenancy.enabled {
        return Ok(protect::HostScope::Everyone);
    }
    match app.host_tenant(host).await {
        Ok(Some(t)) => Ok(protect::HostScope::Tenant(t.id)),
        Ok(None) => Ok(protect::HostScope::NoTenant),
        Err(_) => Err(()),
    }
}

/// The access facts of `rid`, from the cache when fresh, else from the store.
async fn access(app: &App, rid: &str) -> Result<Option<PlaybackAccess>, ()> {
    let now = std::time::Instant::now();
    if let Some(hit) = app.playback_cache.get(rid, now) {
        return Ok(hit);
    }
    let a = app.recordings.playback_access(rid).await.map_err(|e| {
        tracing::error!(error = %e, "store error during a playback check");
    })?;
    app.playback_cache.put(rid, a.clone(), now);
    Ok(a)
}

fn is_https(req: &Request<Incoming>) -> bool {
    header_str(req, "x-forwarded-proto")
        .map(|v| {
            v.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("https")
        })
        .unwrap_or(false)
}

/// `GET /ferrolite/auth` with `X-Original-URI` (nginx's `$request_uri`), `Host` and the
/// cookies: 204 to let nginx serve the file, 401 to refuse (nginx shows its 404 page).
pub async fn auth(app: &App, req: Request<Incoming>) -> HttpResponse {
    let deny = || response::with_status(StatusCode::UNAUTHORIZED, "text/plain", "");
    let uri = header_str(&req, "x-original-uri").unwrap_or("");
    let Some((format, rid)) = protect::parse_resource(uri, &app.config.playback.formats) else {
        return deny();
    };
    let Ok(scope) = host_scope(app, &crate::http::request::host_of(&req)).await else {
        return deny();
    };
    let Ok(a) = access(app, rid).await else {
        return response::with_status(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "");
    };
    let now = (now_ms() / 1000) as u64;
    let key = &app.config.playback.cookie_key;
    let cookie_valid = || {
        let name = protect::cookie_name(format, rid);
        let cookies = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        protect::find_cookie(cookies, &name)
            .is_some_and(|jwt| protect::cookie_ok(key, &jwt, format, rid, now))
    };
    match protect::resource_decision(
        a.as_ref(),
        format,
        &scope,
        app.config.recordings.protected_enabled,
        cookie_valid,
    ) {
        Ok(()) => response::with_status(StatusCode::NO_CONTENT, "text/plain", ""),
        Err(why) => {
            tracing::debug!(record = %rid, format = %format, reason = ?why, "playback refused");
            deny()
        }
    }
}

/// `GET /recording/<recordID>/<format>[?token=…]`: checks the recording, consumes the token
/// of a protected one and sets its cookie, then redirects (307) to the player.
pub async fn play(app: &App, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_string();
    let Some((rid, format)) = protect::parse_play(&path) else {
        return not_found();
    };
    let Ok(scope) = host_scope(app, &crate::http::request::host_of(&req)).await else {
        return not_found();
    };
    let a = match access(app, rid).await {
        Ok(Some(a)) => a,
        Ok(None) => return not_found(),
        Err(()) => {
            return response::with_status(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "The recordings index is unavailable; try again.",
            )
        }
    };
    if protect::base_checks(&a, format, &scope).is_err() {
        return not_found();
    }
    let url = a
        .formats
        .iter()
        .find(|(f, _)| f == format)
        .map(|(_, u)| u.clone())
        .unwrap_or_default();
    let mut cookie = None;
    if a.protected {
        let token = req
            .uri()
            .query()
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default();
        if !protect::token_shape_ok(&token) {
            return not_found();
        }
        match app
            .tokens
            .consume_playback_token(&protect::token_hash(&token))
            .await
        {
            Ok(Some((r, f))) if r == rid && f == format => {}
            Ok(_) => return not_found(),
            Err(e) => {
                tracing::error!(error = %e, "store error while consuming a playback token");
                return not_found();
            }
        }
        let ttl = app.config.playback.cookie_timeout.as_secs();
        let exp = (now_ms() / 1000) as u64 + ttl;
        let jwt = protect::mint_cookie(&app.config.playback.cookie_key, format, rid, exp);
        cookie = Some(protect::set_cookie(format, rid, jwt, ttl, is_https(&req)));
    }
    let mut resp = response::with_status(StatusCode::TEMPORARY_REDIRECT, "text/plain", "");
    let headers = resp.headers_mut();
    match HeaderValue::from_str(&url) {
        Ok(v) => {
            headers.insert(header::LOCATION, v);
        }
        Err(_) => return not_found(),
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, c);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Re-reads one recording and updates its public links (after an import, a publish,
/// a protect change or a delete). Errors are logged: the farm fails closed.
pub async fn refresh(app: &App, rid: &str) {
    app.playback_cache.invalidate(rid);
    let a = match app.recordings.playback_access(rid).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(record = %rid, error = %e, "could not read a recording to update its playback links");
            let _ = links::unlink(&app.config, rid);
            return;
        }
    };
    if let Err(e) = links::sync(&app.config, rid, a.as_ref()) {
        tracing::warn!(record = %rid, error = %e, dir = %app.config.playback.link_dir.display(), "could not update playback links (PLAYBACK_LINK_DIR); the worker will authorize these requests instead");
    }
}

/// Removes one recording's public links before it becomes protected.
pub fn unlink(app: &App, rid: &str) {
    app.playback_cache.invalidate(rid);
    if let Err(e) = links::unlink(&app.config, rid) {
        tracing::error!(record = %rid, error = %e, "could not remove playback links; fix PLAYBACK_LINK_DIR's permissions");
    }
}

/// Tells every node that a recording lost public access (protected, unpublished, deleted):
/// raises the shared [`GENERATION`], which each node's [`run_links`] checks every
/// [`CHANGE_POLL`], so no other node's link farm keeps serving it for minutes. (A recording
/// that gains access needs no announcement: without its link, nginx asks a worker.)
pub async fn announce(app: &App) {
    if let Err(e) = app.leases.bump_generation(GENERATION).await {
        tracing::warn!(error = %e, "could not tell the other nodes about a playback change; their links follow at the next reconciliation");
    }
}

/// Reconciles the link farm with the store now, whenever a node [`announce`]d a change, and
/// every [`RECONCILE_INTERVAL`]; a node's own changes are applied at once.
pub async fn run_links(app: std::sync::Arc<App>, mut shutdown: crate::shutdown::Shutdown) {
    let mut seen = app.leases.generation(GENERATION).await.ok();
    let mut last = std::time::Instant::now();
    reconcile_links(&app).await;
    loop {
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = tokio::time::sleep(CHANGE_POLL) => {}
        }
        let now = app.leases.generation(GENERATION).await.ok();
        if (now.is_some() && now != seen) || last.elapsed() >= RECONCILE_INTERVAL {
            // Read before the reconciliation: a change announced during it is seen next time.
            seen = now.or(seen);
            last = std::time::Instant::now();
            reconcile_links(&app).await;
        }
    }
}

async fn reconcile_links(app: &App) {
    {
        match app.recordings.playback_all().await {
            Ok(all) => {
                let cfg = app.config.clone();
                match tokio::task::spawn_blocking(move || links::reconcile(&cfg, &all)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::warn!(
                        errors = n,
                        "some playback links could not be updated (PLAYBACK_LINK_DIR)"
                    ),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "could not reconcile playback links (PLAYBACK_LINK_DIR)")
                    }
                    Err(_) => {}
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not reconcile playback links"),
        }
    }
}
