//! `POST /fsapi`: the HTTP side of FreeSWITCH dial-in (the dialplans are in
//! `crate::dialin`).
//!
//! Authentication is HTTP Basic with user `fsapi` and `FSAPI_PASSWORD` (default: the first
//! load balancer secret; set but empty: none), answered 401 with `WWW-Authenticate` as
//! Scalelite does. The form fields are those `mod_xml_curl` posts. Voice bridges are global
//! (not per tenant), so dial-in needs no tenant.

use base64::Engine;
use http::{header, Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::bbb::params::Params;
use crate::dialin;
use crate::http::response::{self, ApiError, HttpResponse};
use crate::store::StoreResult;

fn authorized(req: &Request<Incoming>, password: &str) -> bool {
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
    else {
        return false;
    };
    let expected = format!("fsapi:{password}");
    given.len() == expected.len() && bool::from(given.ct_eq(expected.as_bytes()))
}

fn dialplan(body: String) -> HttpResponse {
    response::with_status(StatusCode::OK, "application/xml", body)
}

/// Why `/fsapi` answered before a dialplan could be looked up.
#[derive(Debug)]
enum Refusal {
    Bbb(ApiError),
    /// No or wrong credentials: 401 with the realm.
    Unauthorized(String),
    /// A refusal of the HTTP layer (the body too large or too late).
    Http(HttpResponse),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        Refusal::Bbb(e)
    }
}

impl Refusal {
    fn into_response(self) -> HttpResponse {
        match self {
            Refusal::Bbb(e) => e.into_response(),
            Refusal::Unauthorized(realm) => {
                let mut r =
                    response::text(StatusCode::UNAUTHORIZED, "HTTP Basic: Access denied.\n");
                if let Ok(v) = header::HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                r
            }
            Refusal::Http(r) => r,
        }
    }
}

pub async fn handle(app: &App, req: Request<Incoming>) -> HttpResponse {
    match request(app, req).await {
        Ok(params) => dialplan(answer(app, &params).await),
        Err(r) => r.into_response(),
    }
}

/// The checks before a dialplan: method, credentials, the form.
async fn request(app: &App, req: Request<Incoming>) -> Result<Params, Refusal> {
    if !matches!(*req.method(), Method::POST | Method::GET) {
        return Err(ApiError::unsupported_request().into());
    }
    let cfg = &app.config;
    if let Some(password) = &cfg.tenancy.fsapi_password {
        if !authorized(&req, password) {
            let realm = cfg.url_host.as_deref().unwrap_or("Application");
            return Err(Refusal::Unauthorized(realm.to_string()));
        }
    }
    let mut params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let body = crate::http::body::read_limited(req.into_body(), crate::http::body::MAX_FORM_BODY)
        .await
        .map_err(Refusal::Http)?;
    params.merge_missing(Params::parse(&body));
    Ok(params)
}

/// The dialplan for a call: the PIN prompt, a bridge to the meeting's server, or (no such
/// meeting, or the store failed) the prompt again.
async fn answer(app: &App, params: &Params) -> String {
    let destination = params.get("Caller-Destination-Number").unwrap_or("");
    if params.get("section") != Some("dialplan") || destination.is_empty() {
        return dialin::not_found();
    }
    let cfg = &app.config.tenancy;
    let (min, max) = (cfg.voice_bridge_min, cfg.voice_bridge_max);
    let pin = params.get("variable_pin").unwrap_or("").trim();
    if pin.is_empty() {
        return dialin::pin_prompt(destination, cfg.fsapi_max_duration, min, max);
    }
    match bridge(app, params, destination, pin).await {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            tracing::info!("dial-in: no meeting for the PIN entered; prompting again");
            dialin::reprompt(destination, min, max)
        }
        Err(e) => {
            tracing::error!(error = %e, "dial-in: store error");
            dialin::reprompt(destination, min, max)
        }
    }
}

/// The bridge to the meeting whose voice bridge the PIN names, if there is one.
async fn bridge(
    app: &App,
    params: &Params,
    destination: &str,
    pin: &str,
) -> StoreResult<Option<String>> {
    let mut found = None;
    for candidate in dialin::pin_candidates(pin) {
        if let Some(m) = app.store.meeting_by_voice_bridge(&candidate).await? {
            found = Some(m);
            break;
        }
    }
    let Some(meeting) = found else {
        return Ok(None);
    };
    let Some(server) = app.store.server(&meeting.server_id).await? else {
        return Ok(None);
    };
    let caller = dialin::caller_id(
        params.get("Caller-Caller-ID-Name").unwrap_or(""),
        params.get("Caller-Privacy-Hide-Number") == Some("true"),
        params.get("Caller-Privacy-Hide-Name") == Some("true"),
    );
    let bbb_id = meeting.bbb_id.clone();
    tracing::info!(server = %server.id, "dial-in: bridging a call");
    Ok(Some(dialin::bridge(
        destination,
        &bbb_id,
        &caller,
        pin,
        &server.hostname(),
    )))
}
