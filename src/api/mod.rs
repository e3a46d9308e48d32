//! The BigBlueButton API as Ferrolite serves it: routing, request checks, dispatch.
//!
//! Every call goes through the same steps, in Scalelite's order: is the call known and the
//! method allowed (else `unsupportedRequest`), is a POST body of an accepted type (else
//! `unsupportedContentType`), read the parameters (query first, form body second), verify
//! the checksum (else `checksumError`), then run the call's handler. Handlers live in one
//! file per family (`meetings.rs`, …) and receive a ready [`Call`].

pub mod checksum;
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
    /// Empty when multitenancy is off.
    pub tenant_id: String,
    pub body: CallBody,
    /// `http` or `https`, from `X-Forwarded-Proto` when nginx sets it.
    pub scheme: String,
    pub host: String,
}

/// Entry point for every HTTP request.
pub async fn handle(app: &App, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/health_check" | "/" => health(app).await,
        "/bigbluebutton/api" | "/bigbluebutton/api/" => index(app, req).await,
        "/bigbluebutton/recording/upload" => recordings::upload(app, req).await,
        _ => match path.strip_prefix("/bigbluebutton/api/") {
            Some(call) => api_call(app, call, req).await,
            None => match path.strip_prefix("/bigbluebutton/textTrack/") {
                Some(rest) if req.method() == Method::GET => {
                    recordings::serve_text_track(app, rest).await
                }
                _ => ApiError::unsupported_request().into_response(),
            },
        },
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

fn has_body(req: &Request<Incoming>) -> bool {
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
fn mime(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
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
    let body_mime = if has_body(&req) {
        Some(mime(&req).unwrap_or_default())
    } else {
        None
    };
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
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut params = Params::parse(raw_query.as_bytes());
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
        Some(_) => match read_limited(incoming, MAX_CREATE_XML_BODY).await {
            Ok(bytes) => CallBody::Xml(bytes),
            Err(resp) => return resp,
        },
    };

    let supplied = params.get("checksum").unwrap_or("").to_string();
    let Some(alg) = checksum::verify(
        spec.name,
        &raw_query,
        &supplied,
        &app.config.secrets,
        &app.config.checksum_algorithms,
    ) else {
        return ApiError::checksum().into_response();
    };
    params.remove("checksum");

    let call = Call {
        name: spec.name,
        params,
        alg,
        tenant_id: String::new(),
        body,
        scheme,
        host,
    };
    dispatch(app, call).await
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

async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, HttpResponse> {
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
