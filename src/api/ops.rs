//! The operator's HTTP surface under `/ferrolite/`: the status page (`/ferrolite/status`,
//! its login, logout and server actions) and the admin JSON (`/ferrolite/api/status`,
//! `/ferrolite/api/capacity`, `/ferrolite/api/usage`), plus `/metrics` and the optional
//! `METRICS_BIND` listener.
//!
//! Everything here answers 404 unless `ADMIN_PASSWORD` is set, and needs the password
//! (`api/admin_auth.rs`). Server actions run the same code as the CLI (`admin::servers`).

use std::sync::Arc;

use http::{header, HeaderValue, Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;

use super::admin_auth::{self as auth, Credential};
use super::status_page::{self, Filter, Page};
use crate::admin::{servers, status, AdminError};
use crate::app::App;
use crate::http::response::{self, HttpResponse};
use crate::store::{now_ms, ServerState};

/// Largest form body (login, actions).
const MAX_FORM: usize = 16 * 1024;
/// Default seconds between page reloads.
const REFRESH: u32 = 10;

/// Whether `path` is one of ours.
pub fn is_ops_path(path: &str) -> bool {
    path == "/ferrolite/status"
        || path.starts_with("/ferrolite/status/")
        || path.starts_with("/ferrolite/api/")
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    let mut r = response::with_status(status, "text/html; charset=utf-8", body);
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

fn json(status: StatusCode, v: &impl serde::Serialize) -> HttpResponse {
    let mut r = response::with_status(
        status,
        "application/json",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into()),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    json(status, &serde_json::json!({ "error": message }))
}

fn see_other(location: &str, cookie: Option<String>) -> HttpResponse {
    let mut r = response::with_status(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

fn admin_error_status(e: &AdminError) -> StatusCode {
    match e {
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::Refused(_) => StatusCode::CONFLICT,
        AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn is_https<B>(req: &Request<B>) -> bool {
    req.headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

async fn form(req: Request<Incoming>) -> Result<Vec<(String, String)>, HttpResponse> {
    let body = crate::http::body::read_limited(req.into_body(), MAX_FORM).await?;
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Entry point for `/ferrolite/status…` and `/ferrolite/api/…`.
pub async fn handle(app: &App, req: Request<Incoming>) -> HttpResponse {
    let Some(password) = app.config.ops.admin_password.as_deref() else {
        return response::text(
            StatusCode::NOT_FOUND,
            "Not found (set ADMIN_PASSWORD to enable the status page)\n",
        );
    };
    let key = auth::key(password, &app.config.playback.cookie_key);
    let now = now_ms();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let cred = auth::check(password, &key, req.headers(), now);
    let api = path.starts_with("/ferrolite/api/");
    if path == "/ferrolite/status/login" && method == Method::POST {
        return login(app, password, &key, req).await;
    }
    let Some(cred) = cred else {
        if api {
            let mut r = json_error(
                StatusCode::UNAUTHORIZED,
                "the admin password is required (HTTP Basic, ADMIN_PASSWORD)",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ferrolite admin\""),
            );
            return r;
        }
        let mut r = html(StatusCode::UNAUTHORIZED, status_page::login(None));
        let browser = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if !browser {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ferrolite admin\""),
            );
        }
        return r;
    };
    match (method.clone(), path.as_str()) {
        (Method::GET | Method::HEAD, "/ferrolite/status") => {
            let query = req.uri().query().unwrap_or("").to_string();
            page(app, &key, &cred, &query, None, StatusCode::OK).await
        }
        (Method::POST, "/ferrolite/status/action") => action(app, &key, cred, req).await,
        (Method::POST, "/ferrolite/status/logout") => {
            let host = crate::http::request::host_of(&req);
            if !auth::same_origin(req.headers(), &host) {
                return html(
                    StatusCode::FORBIDDEN,
                    status_page::login(Some("Refused: the form came from another site.")),
                );
            }
            see_other("/ferrolite/status", Some(auth::clear_cookie()))
        }
        (Method::GET | Method::HEAD, "/ferrolite/api/status") => match snapshot(app).await {
            Ok((s, _)) => json(StatusCode::OK, &s),
            Err(e) => json_error(admin_error_status(&e), &e.to_string()),
        },
        (Method::GET | Method::HEAD, "/ferrolite/api/capacity") => capacity(app).await,
        (Method::GET | Method::HEAD, "/ferrolite/api/usage") => {
            usage(app, req.uri().query().unwrap_or("")).await
        }
        _ if api => json_error(
            StatusCode::NOT_FOUND,
            "no such admin call (status, capacity, usage)",
        ),
        _ => response::text(StatusCode::NOT_FOUND, "Not found\n"),
    }
}

async fn snapshot(
    app: &App,
) -> Result<(status::Snapshot, Option<crate::autoscale::Decision>), AdminError> {
    let s = status::snapshot(app).await?;
    let servers = app.store.servers().await?;
    let d = crate::autoscaler::current(app, &servers);
    Ok((s, d))
}

async fn page(
    app: &App,
    key: &[u8],
    cred: &Credential,
    query: &str,
    error: Option<&str>,
    code: StatusCode,
) -> HttpResponse {
    let (snap, decision) = match snapshot(app).await {
        Ok(s) => s,
        Err(e) => {
            return response::text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store is unavailable: {e}\n"),
            )
        }
    };
    let filter = Filter::from_query(query);
    let mut notice = None;
    let mut refresh = REFRESH;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "done" => notice = Some(v.into_owned()),
            "refresh" => refresh = v.parse().unwrap_or(REFRESH).min(3600),
            _ => {}
        }
    }
    // Only our own fixed notices are shown: `done=<action>:<server>`.
    let notice = notice.and_then(|n| {
        let (act, server) = n.split_once(':')?;
        let verb = match act {
            "enable" => "enabled",
            "cordon" => "cordoned (it drains: no new meetings; disabled once empty)",
            "disable" => "disabled",
            _ => return None,
        };
        Some(format!("Server {server} {verb}."))
    });
    let csrf = auth::csrf_token(key, cred);
    html(
        code,
        status_page::render(&Page {
            snapshot: &snap,
            autoscale: decision.as_ref(),
            filter: &filter,
            csrf: &csrf,
            notice: notice.as_deref(),
            error,
            refresh,
        }),
    )
}

async fn login(app: &App, password: &str, key: &[u8], req: Request<Incoming>) -> HttpResponse {
    let host = crate::http::request::host_of(&req);
    if !auth::same_origin(req.headers(), &host) {
        return html(
            StatusCode::FORBIDDEN,
            status_page::login(Some("Refused: the form came from another site.")),
        );
    }
    let secure = is_https(&req);
    let f = match form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !auth::password_ok(password, field(&f, "password")) {
        tracing::warn!("status page: wrong admin password");
        // Slows guessing; the password itself should be long.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        return html(
            StatusCode::UNAUTHORIZED,
            status_page::login(Some("Wrong password.")),
        );
    }
    let _ = app;
    let session = auth::new_session(key, now_ms());
    see_other(
        "/ferrolite/status",
        Some(auth::session_cookie(&session, secure)),
    )
}

async fn action(app: &App, key: &[u8], cred: Credential, req: Request<Incoming>) -> HttpResponse {
    let host = crate::http::request::host_of(&req);
    if !auth::same_origin(req.headers(), &host) {
        return page(
            app,
            key,
            &cred,
            "",
            Some("Refused: the form came from another site."),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let f = match form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !auth::csrf_ok(key, &cred, field(&f, "csrf")) {
        return page(app, key, &cred, "", Some("Refused: the form is stale or forged (CSRF token mismatch). Reload the page and try again."), StatusCode::FORBIDDEN).await;
    }
    let id = field(&f, "server");
    let act = field(&f, "action");
    let result = match act {
        "enable" => servers::set_state(app, id, ServerState::Enabled)
            .await
            .map(|_| ()),
        "cordon" => servers::set_state(app, id, ServerState::Cordoned)
            .await
            .map(|_| ()),
        "disable" => servers::disable(app, id, false).await.map(|_| ()),
        _ => Err(AdminError::Invalid(format!(
            "unknown action {act:?} (enable, cordon or disable)"
        ))),
    };
    match result {
        Ok(()) => {
            tracing::info!(server = %id, action = act, "server changed from the status page");
            let done: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("done", &format!("{act}:{id}"))
                .finish();
            see_other(&format!("/ferrolite/status?{done}"), None)
        }
        Err(e) => {
            page(
                app,
                key,
                &cred,
                "",
                Some(&e.to_string()),
                admin_error_status(&e),
            )
            .await
        }
    }
}

async fn capacity(app: &App) -> HttpResponse {
    let servers = match app.store.servers().await {
        Ok(s) => s,
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    match crate::autoscaler::current(app, &servers) {
        Some(d) => json(StatusCode::OK, &d),
        None => json_error(
            StatusCode::NOT_FOUND,
            "autoscaling is off: set AUTOSCALE_TARGET_LOAD",
        ),
    }
}

async fn usage(app: &App, query: &str) -> HttpResponse {
    let mut tenant = None;
    let mut from = None;
    let mut to = None;
    let mut csv = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "tenant" => tenant = Some(v.into_owned()),
            "from" => from = Some(v.into_owned()),
            "to" => to = Some(v.into_owned()),
            "format" => csv = v == "csv",
            _ => {}
        }
    }
    match crate::usage::report(app, tenant.as_deref(), from.as_deref(), to.as_deref()).await {
        Ok(r) if csv => response::with_status(
            StatusCode::OK,
            "text/csv; charset=utf-8",
            crate::usage::to_csv(&r),
        ),
        Ok(r) => json(StatusCode::OK, &r),
        Err(e) => json_error(admin_error_status(&e), &e.to_string()),
    }
}

/// The `/metrics` answer.
pub async fn metrics(app: &App) -> HttpResponse {
    match snapshot(app).await {
        Ok((s, d)) => response::with_status(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            app.metrics.render(&s, d.as_ref()),
        ),
        Err(e) => response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store is unavailable: {e}"),
        ),
    }
}

/// The `METRICS_BIND` listener: `/metrics` only, everything else 404.
pub async fn serve_metrics(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: crate::shutdown::Shutdown,
) {
    crate::http::serve(
        crate::http::Listener::Tcp(listener),
        shutdown,
        move |req: Request<Incoming>| {
            let app = app.clone();
            async move {
                if req.uri().path() == "/metrics"
                    && matches!(*req.method(), Method::GET | Method::HEAD)
                {
                    metrics(&app).await
                } else {
                    response::text(
                        StatusCode::NOT_FOUND,
                        "Not found: this listener serves /metrics only\n",
                    )
                }
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_paths() {
        for p in [
            "/ferrolite/status",
            "/ferrolite/status/action",
            "/ferrolite/api/usage",
        ] {
            assert!(is_ops_path(p), "{p}");
        }
        for p in ["/ferrolite/auth", "/ferrolite/statusx", "/ferrolite/apix"] {
            assert!(!is_ops_path(p), "{p}");
        }
    }
}
