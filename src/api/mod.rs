//! The BigBlueButton API as Ferrolite serves it: routing, request checks, dispatch.
//!
//! Every call goes through the same steps, in Scalelite's order: is the call known and the
//! method allowed (else `unsupportedRequest`), is a POST body of an accepted type (else
//! `unsupportedContentType`), read the parameters (query first, form body second), verify
//! the checksum (else `checksumError`), then run the call's handler. Handlers live in one
//! file per family (`meetings.rs`, …) and receive a ready [`Call`].

pub mod admin;
pub mod admin_auth;
pub mod call;
pub mod callbacks;
pub mod fsapi;
pub mod meetings;
pub mod ops;
pub mod recording_xml;
pub mod recordings;
pub mod status_page;
pub mod text_tracks;
pub mod upload;

use http::{header, Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;

use crate::app::App;
use crate::bbb::calls::{ApiCall, Bodies, Family};
use crate::bbb::checksum;
use crate::bbb::params::Params;
use crate::http::body::{read_limited, MAX_CREATE_XML_BODY, MAX_FORM_BODY};
use crate::http::request::{
    content_type, has_body, host_of, is_form, is_xml, mime, mime_of, scheme_of,
};
use crate::http::response::{self, ApiError, HttpResponse};
use call::{Call, CallBody};

/// Serves every route for `app` on `listener` until `shutdown` (the listener's limits
/// from `HTTP_*`).
pub async fn serve(
    app: std::sync::Arc<App>,
    listener: crate::http::Listener,
    shutdown: crate::shutdown::Shutdown,
) {
    let limits = app.config.http.clone();
    crate::http::serve_with(listener, shutdown, limits, move |req| {
        let app = app.clone();
        async move { handle(&app, req).await }
    })
    .await
}

/// Entry point for every HTTP request.
pub async fn handle(app: &App, req: Request<Incoming>) -> HttpResponse {
    let started = std::time::Instant::now();
    let call = crate::metrics::call_label(req.uri().path());
    let node: &str = match &app.config.node_id {
        Some(id) => id,
        None => crate::lease::host_name(),
    };
    let span = tracing::info_span!(
        "request",
        call = %call,
        tenant = tracing::field::Empty,
        node = node
    );
    let resp = tracing::Instrument::instrument(route(app, req), span).await;
    app.metrics
        .observe_request(call, resp.status().as_u16(), started.elapsed());
    resp
}

async fn route(app: &App, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_string();
    if !host_allowed(app, &req, &path) {
        return response::with_status(StatusCode::FORBIDDEN, "text/plain", "Blocked host");
    }
    match path.as_str() {
        "/health_check" | "/" => health(app).await,
        "/metrics" => metrics(app).await,
        "/bigbluebutton/api" | "/bigbluebutton/api/" => index(app, req).await,
        "/bigbluebutton/recording/upload" => upload::upload(app, req).await,
        "/bigbluebutton/api/analytics_callback" => callbacks::analytics(app, req).await,
        "/fsapi" => fsapi::handle(app, req).await,
        crate::playback::AUTH_PATH => crate::playback::auth(app, req).await,
        _ => {
            if let Some(call) = path.strip_prefix("/bigbluebutton/api/") {
                api_call(app, call, req).await
            } else if path.starts_with("/recording/") {
                crate::playback::play(app, req).await
            } else if ops::is_ops_path(&path) {
                ops::handle(app, req).await
            } else if let Some(action) = path.strip_prefix("/scalelite/api/") {
                admin::handle(app, action, req).await
            } else if let Some(rest) = path.strip_prefix(callbacks::MEETING_ENDED_PATH) {
                callbacks::meeting_ended(app, rest, req).await
            } else if let Some(rest) = path
                .strip_prefix("/bigbluebutton/textTrack/")
                .filter(|_| req.method() == Method::GET)
            {
                text_tracks::serve_text_track(app, rest).await
            } else {
                ApiError::unsupported_request().into_response()
            }
        }
    }
}

async fn metrics(app: &App) -> HttpResponse {
    ops::metrics(app).await
}

async fn health(app: &App) -> HttpResponse {
    match app.store.server("").await {
        Ok(_) => response::text(StatusCode::OK, "success"),
        Err(e) => response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Health Check Failure: {e}"),
        ),
    }
}

async fn index(app: &App, req: Request<Incoming>) -> HttpResponse {
    if req.method() == Method::POST && has_body(&req) && mime(&req).is_some_and(|m| !is_form(&m)) {
        return ApiError::unsupported_content_type().into_response();
    }
    let mut elements = vec![("version", "2.0")];
    if let Some(b) = &app.config.build_number {
        elements.push(("build", b.as_str()));
    }
    response::xml(response::success(&elements))
}

async fn api_call(app: &App, name: &str, req: Request<Incoming>) -> HttpResponse {
    let Some(kind) = ApiCall::parse(name) else {
        return ApiError::unsupported_request().into_response();
    };
    let allowed = match *req.method() {
        Method::GET | Method::HEAD => kind.allows_get(),
        Method::POST => kind.allows_post(),
        _ => false,
    };
    if !allowed {
        return ApiError::unsupported_request().into_response();
    }
    if kind == ApiCall::GetMeetings && app.config.get_meetings_api_disabled {
        return meetings::no_meetings();
    }
    if app.config.recordings.disabled && kind.stubbed_when_recording_disabled() {
        return recordings::disabled_stub(kind);
    }

    // Body kind, checked before the checksum as Scalelite does.
    let content_type = content_type(&req).unwrap_or("").to_string();
    let body_mime = has_body(&req).then(|| mime_of(&content_type));
    let body_kind = match (&body_mime, kind.bodies()) {
        (None, _) => None,
        // A POST without Content-Type counts as a form (Rails does the same).
        (Some(m), Bodies::Form | Bodies::FormOrXml) if m.is_empty() || is_form(m) => {
            Some(Bodies::Form)
        }
        (Some(m), Bodies::FormOrXml | Bodies::Xml) if is_xml(m) => Some(Bodies::Xml),
        _ => return ApiError::unsupported_content_type().into_response(),
    };

    let raw_query = req.uri().query().unwrap_or("").to_string();
    let scheme = scheme_of(&req);
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let multipart = body_mime.as_deref() == Some("multipart/form-data");
    let mut params = Params::parse(raw_query.as_bytes());

    // The tenant's secrets only on a tenant host; the load balancer's only without tenant.
    let tenant = match app.host_tenant(&host).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if let Some(t) = &tenant {
        tracing::Span::current().record("tenant", t.name.as_str());
    }
    let secrets = match &tenant {
        Some(t) => &t.secrets,
        None => &app.config.secrets,
    };
    let verify = |params: &Params| {
        checksum::verify(
            kind.name(),
            &raw_query,
            params.get("checksum").unwrap_or(""),
            secrets,
            &app.config.checksum_algorithms,
        )
    };
    let mut verified = None;
    let incoming = req.into_body();
    let body = match body_kind {
        None => CallBody::None,
        Some(Bodies::Form) if multipart => {
            // Multipart fields are not parameters: the checksum is in the query, so it is
            // checked before the body is read.
            verified = verify(&params);
            if verified.is_none() {
                return ApiError::checksum().into_response();
            }
            match read_limited(incoming, MAX_FORM_BODY).await {
                Ok(body) => CallBody::Multipart { body, content_type },
                Err(resp) => return resp,
            }
        }
        Some(Bodies::Form) => match read_limited(incoming, MAX_FORM_BODY).await {
            Ok(bytes) => {
                params.merge_missing(Params::parse(&bytes));
                CallBody::None
            }
            Err(resp) => return resp,
        },
        Some(_) if kind == ApiCall::InsertDocument => CallBody::Stream(incoming),
        Some(_) => {
            // With an XML body the checksum can only be in the query: check it before
            // buffering up to MAX_CREATE_XML_BODY for a caller who may not know the secret.
            verified = verify(&params);
            if verified.is_none() {
                return ApiError::checksum().into_response();
            }
            match read_limited(incoming, MAX_CREATE_XML_BODY).await {
                Ok(bytes) => CallBody::Xml(bytes),
                Err(resp) => return resp,
            }
        }
    };

    // A form body may carry the checksum, so it is checked once the body is read.
    let Some(alg) = verified.or_else(|| verify(&params)) else {
        return ApiError::checksum().into_response();
    };
    params.remove("checksum");

    let call = Call {
        kind,
        name: kind.name(),
        params,
        alg,
        tenant_id: crate::tenant::TenantScope::from_option(tenant.as_ref().map(|t| t.id.as_str()))
            .stored()
            .to_string(),
        tenant,
        body,
        scheme,
        host,
    };
    dispatch(app, call).await
}

/// Whether the request's Host may be served ([`crate::tenant::host_allowed`]).
fn host_allowed<B>(app: &App, req: &Request<B>, path: &str) -> bool {
    let c = &app.config;
    crate::tenant::host_allowed(
        &host_of(req),
        path,
        c.url_host.as_deref(),
        c.tenancy.base_url.as_deref(),
        c.tenancy.enabled,
    )
}

/// Sends a verified call to its family's handler.
async fn dispatch(app: &App, call: Call) -> HttpResponse {
    match call.kind.family() {
        Family::Recordings => match call.kind {
            ApiCall::GetRecordingTextTracks => text_tracks::get_text_tracks(app, call).await,
            ApiCall::PutRecordingTextTrack => text_tracks::put_text_track(app, call).await,
            _ => recordings::dispatch(app, call).await,
        },
        Family::Meetings => meetings::dispatch(app, call).await,
    }
}
