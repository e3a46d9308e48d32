//! The BigBlueButton API as Ferrolite serves it: routing, request checks, dispatch.
//!
//! Every call goes through the same steps, in Scalelite's order: is the call known and the
//! method allowed (else `unsupportedRequest`), is a POST body of an accepted type (else
//! `unsupportedContentType`), read the parameters (query first, form body second), verify
//! the checksum (else `checksumError`), then run the call's handler. Handlers live in one
//! file per family (`meetings.rs`, …) and receive a ready [`Call`].

pub mod admin;
pub mod callbacks;
pub mod checksum;
pub mod fsapi;
pub mod meetings;
pub mod params;
pub mod recordings;
pub mod response;

use bytes::Bytes;
use http::{header, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;

use crate::app::App;
use checksum::Algorithm;
use params::Params;
use response::{ApiError, HttpResponse};

/// Largest form body read into memory (a BBB create with many parameters is a few KB).
pub const MAX_FORM_BODY: usize = 4 * 1024 * 1024;
/// Largest XML body buffered for `create` with pre-uploaded slides (kept to retry on
/// another server if the first one fails).
pub const MAX_CREATE_XML_BODY: usize = 64 * 1024 * 1024;

/// Which request bodies a call accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bodies {
    Form,
    FormOrXml,
    Xml,
}

struct CallSpec {
    name: &'static str,
    get: bool,
    post: bool,
    bodies: Bodies,
}

const fn spec(name: &'static str, get: bool, post: bool, bodies: Bodies) -> CallSpec {
    CallSpec {
        name,
        get,
        post,
        bodies,
    }
}

/// The BBB calls Ferrolite answers. Anything else is `unsupportedRequest`.
const CALLS: &[CallSpec] = &[
    spec("create", true, true, Bodies::FormOrXml),
    spec("join", true, false, Bodies::Form),
    spec("end", true, true, Bodies::Form),
    spec("isMeetingRunning", true, true, Bodies::Form),
    spec("getMeetingInfo", true, true, Bodies::Form),
    spec("getMeetings", true, true, Bodies::Form),
    spec("insertDocument", false, true, Bodies::Xml),
    spec("sendChatMessage", true, true, Bodies::Form),
    spec("getRecordings", true, true, Bodies::Form),
    spec("publishRecordings", true, false, Bodies::Form),
    spec("updateRecordings", true, true, Bodies::Form),
    spec("deleteRecordings", true, false, Bodies::Form),
    spec("getRecordingTextTracks", true, true, Bodies::Form),
    spec("putRecordingTextTrack", false, true, Bodies::Form),
];

/// Calls answered by [`recordings::disabled_stub`] when `RECORDING_DISABLED=true`.
const RECORDING_CALLS: &[&str] = &[
    "getRecordings",
    "publishRecordings",
    "updateRecordings",
    "deleteRecordings",
];

/// The body a handler may still consume.
pub enum CallBody {
    None,
    /// A buffered XML body (`create` with slides).
    Xml(Bytes),
    /// An XML body left unread, to be streamed to the backend (`insertDocument`).
    Stream(Incoming),
    /// A multipart form body, kept for the call (`putRecordingTextTrack`'s file).
    Multipart {
        body: Bytes,
        content_type: String,
    },
}

/// A verified API call, ready for its handler.
pub struct Call {
    pub name: &'static str,
    pub params: Params,
    /// The algorithm of the request's checksum; calls forwarded to BBB use it too.
    pub alg: Algorithm,
    /// Empty when multitenancy is off (or on the bare `BASE_URL` host).
    pub tenant_id: String,
    /// The tenant named by the Host, when multitenancy is on.
    pub tenant: Option<crate::store::Tenant>,
    pub body: CallBody,
    /// `http` or `https`, from `X-Forwarded-Proto` when nginx sets it.
    pub scheme: String,
    pub host: String,
}

/// Entry point for every HTTP request.
pub async fn handle(app: &App, req: Request<Incoming>) -> HttpResponse {
    let started = std::time::Instant::now();
    let call = crate::metrics::call_label(req.uri().path());
    let resp = route(app, req).await;
    app.metrics
        .observe_request(call, resp.status().as_u16(), started.elapsed());
    resp
}

async fn route(app: &App, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/health_check" | "/" => health(app).await,
        "/metrics" => metrics(app).await,
        "/bigbluebutton/api" | "/bigbluebutton/api/" => index(app, req).await,
        "/bigbluebutton/recording/upload" => recordings::upload(app, req).await,
        "/bigbluebutton/api/analytics_callback" => callbacks::analytics(app, req).await,
        "/fsapi" => fsapi::handle(app, req).await,
        crate::playback::AUTH_PATH => crate::playback::auth(app, req).await,
        _ => {
            if let Some(call) = path.strip_prefix("/bigbluebutton/api/") {
                api_call(app, call, req).await
            } else if path.starts_with("/recording/") {
                crate::playback::play(app, req).await
            } else if let Some(action) = path.strip_prefix("/scalelite/api/") {
                admin::handle(app, action, req).await
            } else if let Some(rest) = path.strip_prefix(callbacks::MEETING_ENDED_PATH) {
                callbacks::meeting_ended(app, rest, req).await
            } else if let Some(rest) = path
                .strip_prefix("/bigbluebutton/textTrack/")
                .filter(|_| req.method() == Method::GET)
            {
                recordings::serve_text_track(app, rest).await
            } else {
                ApiError::unsupported_request().into_response()
            }
        }
    }
}

async fn metrics(app: &App) -> HttpResponse {
    match app.store.servers().await {
        Ok(servers) => response::with_status(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            app.metrics.render(&servers),
        ),
        Err(e) => response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store is unavailable: {e}"),
        ),
    }
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

pub(crate) fn has_body(req: &Request<Incoming>) -> bool {
    let len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match len {
        Some(n) => n > 0,
        None => req.headers().contains_key(header::TRANSFER_ENCODING),
    }
}

/// The MIME type of the body, lower-cased, without parameters.
pub(crate) fn mime(req: &Request<Incoming>) -> Option<String> {
    content_type(req).map(mime_of)
}

/// The request's Content-Type header, as sent.
fn content_type(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// A Content-Type's MIME type, lower-cased, without parameters.
fn mime_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_form(m: &str) -> bool {
    m == "application/x-www-form-urlencoded" || m == "multipart/form-data"
}

fn is_xml(m: &str) -> bool {
    m == "application/xml" || m == "text/xml" || m == "application/x-xml"
}

async fn api_call(app: &App, name: &str, req: Request<Incoming>) -> HttpResponse {
    let Some(spec) = CALLS.iter().find(|c| c.name == name) else {
        return ApiError::unsupported_request().into_response();
    };
    let allowed = match *req.method() {
        Method::GET | Method::HEAD => spec.get,
        Method::POST => spec.post,
        _ => false,
    };
    if !allowed {
        return ApiError::unsupported_request().into_response();
    }
    if spec.name == "getMeetings" && app.config.get_meetings_api_disabled {
        return meetings::no_meetings();
    }
    if app.config.recordings.disabled && RECORDING_CALLS.contains(&spec.name) {
        return recordings::disabled_stub(spec.name);
    }

    // Body kind, checked before the checksum as Scalelite does.
    let content_type = content_type(&req).unwrap_or("").to_string();
    let body_mime = has_body(&req).then(|| mime_of(&content_type));
    let body_kind = match (&body_mime, spec.bodies) {
        (None, _) => None,
        // A POST without Content-Type counts as a form (Rails does the same).
        (Some(m), Bodies::Form | Bodies::FormOrXml) if m.is_empty() || is_form(m) => {
            Some(Bodies::Form)
        }
        (Some(m), Bodies::FormOrXml | Bodies::Xml) if is_xml(m) => Some(Bodies::Xml),
        _ => return ApiError::unsupported_content_type().into_response(),
    };

    let raw_query = req.uri().query().unwrap_or("").to_string();
    let scheme = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
        .filter(|v| v == "https" || v == "http")
        .unwrap_or_else(|| "http".into());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let multipart = body_mime.as_deref() == Some("multipart/form-data");
    let mut params = Params::parse(raw_query.as_bytes());

    // The tenant's secrets only on a tenant host; the load balancer's only without tenant.
    let tenant = match request_tenant(app, &host).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let secrets = match &tenant {
        Some(t) => &t.secrets,
        None => &app.config.secrets,
    };
    let verify = |params: &Params| {
        checksum::verify(
            spec.name,
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
        Some(Bodies::Form) => match read_limited(incoming, MAX_FORM_BODY).await {
            Ok(bytes) if !multipart => {
                params.merge_missing(Params::parse(&bytes));
                CallBody::None
            }
            Ok(body) => CallBody::Multipart { body, content_type },
            Err(resp) => return resp,
        },
        Some(_) if spec.name == "insertDocument" => CallBody::Stream(incoming),
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
        name: spec.name,
        params,
        alg,
        tenant_id: tenant
            .as_ref()
            .map_or_else(|| crate::store::NO_TENANT.to_string(), |t| t.id.clone()),
        tenant,
        body,
        scheme,
        host,
    };
    dispatch(app, call).await
}

/// The tenant a request's Host names: `Ok(None)` when multitenancy is off or the Host is
/// the bare `BASE_URL`; `checksumError` when the Host names no known tenant (Scalelite).
pub async fn request_tenant(
    app: &App,
    host: &str,
) -> Result<Option<crate::store::Tenant>, HttpResponse> {
    let t = &app.config.tenancy;
    if !t.enabled {
        return Ok(None);
    }
    match crate::tenant::host_tenant(host, t.base_url.as_deref()) {
        crate::tenant::HostTenant::Bare => Ok(None),
        crate::tenant::HostTenant::Unknown => Err(ApiError::checksum().into_response()),
        crate::tenant::HostTenant::Named(name) => match app.store.tenant_by_name(&name).await {
            Ok(Some(tenant)) => Ok(Some(tenant)),
            Ok(None) => Err(ApiError::checksum().into_response()),
            Err(e) => {
                tracing::error!(error = %e, "store error while resolving a tenant");
                Err(ApiError::internal("The load balancer's store is unavailable.").into_response())
            }
        },
    }
}

/// The Host header (the authority for HTTP/2-style requests).
pub fn host_of<B>(req: &Request<B>) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Sends a verified call to its family's handler.
async fn dispatch(app: &App, call: Call) -> HttpResponse {
    // Each family (meetings, recordings, …) adds its calls to CALLS and a branch here.
    match call.name {
        "getRecordings"
        | "publishRecordings"
        | "updateRecordings"
        | "deleteRecordings"
        | "getRecordingTextTracks"
        | "putRecordingTextTrack" => recordings::dispatch(app, call).await,
        _ => meetings::dispatch(app, call).await,
    }
}

pub(crate) async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, HttpResponse> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(response::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/xml; charset=utf-8",
            ApiError::new(
                "requestTooLarge",
                format!("The request body is larger than {limit} bytes."),
            )
            .to_xml(),
        )),
        Err(_) => Err(response::with_status(
            StatusCode::BAD_REQUEST,
            "text/xml; charset=utf-8",
            ApiError::new("badRequest", "The request body could not be read.").to_xml(),
        )),
    }
}
