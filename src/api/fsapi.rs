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

pub async fn handle(app: &App, req: Request<Incoming>) -> HttpResponse {
    if !matches!(*req.method(), Method::POST | Method::GET) {
        return ApiError::unsupported_request().into_response();
    }
    let cfg = &app.config;
    if let Some(password) = &cfg.tenancy.fsapi_password {
        if !authorized(&req, password) {
            let realm = cfg.url_host.as_deref().unwrap_or("Application");
            let mut r = response::text(StatusCode::UNAUTHORIZED, "HTTP Basic: Access denied.\n");
            if let Ok(v) = header::HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return r;
        }
    }
    let mut params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    match crate::http::body::read_limited(req.into_body(), crate::http::body::MAX_FORM_BODY).await {
        Ok(b) => params.merge_missing(Params::parse(&b)),
        Err(resp) => return resp,
    }
    let destination = params.get("Caller-Destination-Number").unwrap_or("");
    if params.get("section") != Some("dialplan") || destination.is_empty() {
        return dialplan(dialin::not_found());
    }
    let (min, max) = (cfg.tenancy.voice_bridge_min, cfg.tenancy.voice_bridge_max);
    let pin = params.get("variable_pin").unwrap_or("").trim();
    if pin.is_empty() {
        return dialplan(dialin::pin_prompt(
            destination,
            cfg.tenancy.fsapi_max_duration,
            min,
            max,
        ));
    }
    let mut found = None;
    for candidate in dialin::pin_candidates(pin) {
        match app.store.meeting_by_voice_bridge(&candidate).await {
            Ok(Some(m)) => {
                found = Some(m);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "dial-in: store error");
                return dialplan(dialin::reprompt(destination, min, max));
            }
        }
    }
    let server = match &found {
        Some(m) => app.store.server(&m.server_id).await.ok().flatten(),
        None => None,
    };
    let (Some(meeting), Some(server)) = (found, server) else {
        tracing::info!("dial-in: no meeting for the PIN entered; prompting again");
        return dialplan(dialin::reprompt(destination, min, max));
    };
    let caller = dialin::caller_id(
        params.get("Caller-Caller-ID-Name").unwrap_or(""),
        params.get("Caller-Privacy-Hide-Number") == Some("true"),
        params.get("Caller-Privacy-Hide-Name") == Some("true"),
    );
    let bbb_id = meeting.bbb_id.clone();
    tracing::info!(server = %server.id, "dial-in: bridging a call");
    dialplan(dialin::bridge(
        destination,
        &bbb_id,
        &caller,
        pin,
        &server.hostname(),
    ))
}
