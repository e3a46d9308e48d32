//! The JSON admin API at `/scalelite/api/<action>`, compatible with Scalelite's, so existing
//! tooling keeps working: servers (getServers, getServerInfo, addServer, updateServer,
//! deleteServer, panicServer) and tenants (getTenants, getTenantInfo, addTenant,
//! updateTenant, deleteTenant).
//!
//! Checks run in Scalelite's order: a POST body must be `application/json` (else the XML
//! `unsupportedContentType`), then the checksum over the action name and the raw query,
//! with the load balancer's secrets only (else the XML `checksumError`). Parameters come
//! from the query string and the JSON body; the `server` / `tenant` wrapper object may be
//! left out (Rails' parameter wrapping). The actions are the ones the CLI runs
//! (`crate::admin`); this file only translates JSON and status codes. Bad payloads get a 4xx
//! JSON answer that says what is wrong.

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Map, Value};

use crate::admin::tenants::{self, TenantChanges};
use crate::admin::{servers, AdminError};
use crate::app::App;
use crate::bbb::checksum;
use crate::bbb::params::Params;
use crate::http::response::{self, ApiError, HttpResponse};
use crate::store::{Server, ServerState, Tenant};

/// Largest JSON body accepted.
const MAX_JSON_BODY: usize = 1024 * 1024;

const ACTIONS: &[&str] = &[
    "getServers",
    "getServerInfo",
    "addServer",
    "updateServer",
    "deleteServer",
    "panicServer",
    "getTenants",
    "getTenantInfo",
    "addTenant",
    "updateTenant",
    "deleteTenant",
];

fn reply(status: StatusCode, v: Value) -> HttpResponse {
    response::with_status(status, "application/json; charset=utf-8", v.to_string())
}

fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    reply(status, json!({ "error": message.into() }))
}

/// A server as Scalelite's `server_to_json` shows it.
pub fn server_json(s: &Server) -> Value {
    json!({
        "id": s.id,
        "url": s.url,
        "secret": s.secret,
        "tag": s.tag.clone().unwrap_or_default(),
        "bbb_version": s.bbb_version,
        "state": s.state.as_str(),
        "load": s.load.map(Value::from).unwrap_or_else(|| "unavailable".into()),
        "load_multiplier": decimal(s.load_multiplier),
        "online": if s.online { "online" } else { "offline" },
    })
}

/// A decimal as Ruby's BigDecimal prints it (`1.0`, `2.5`).
fn decimal(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// A tenant: Scalelite's `id`, `name`, `secrets` (`:`-separated) and Ferrolite's limits.
pub fn tenant_json(t: &Tenant) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "secrets": t.secrets.join(":"),
        "max_meetings": t.max_meetings,
        "max_participants": t.max_participants,
    })
}

/// A parameter as text: strings as they are, numbers and booleans printed.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| text(Some(x)))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.trim(), "true" | "1" | "yes"),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
        _ => false,
    }
}

/// The `wrapper` object, or the top-level parameters when the client left it out and
/// sent one of `attrs` there. `None`: the wrapper is missing.
fn wrapped<'a>(
    params: &'a Map<String, Value>,
    wrapper: &str,
    attrs: &[&str],
) -> Option<&'a Map<String, Value>> {
    match params.get(wrapper) {
        Some(Value::Object(o)) => Some(o),
        _ if attrs.iter().any(|a| params.contains_key(*a)) => Some(params),
        _ => None,
    }
}

fn missing(wrapper: &str) -> HttpResponse {
    error(
        StatusCode::BAD_REQUEST,
        format!("param is missing or the value is empty: {wrapper}; send {{\"{wrapper}\": {{…}}}}"),
    )
}

/// A number given as JSON number or string; `Err` when it is not one.
fn number(v: Option<&Value>) -> Result<Option<f64>, ()> {
    match text(v) {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => s.trim().parse::<f64>().map(Some).map_err(|_| ()),
    }
}

fn count(v: Option<&Value>, name: &str) -> Result<Option<u32>, String> {
    match number(v) {
        Ok(None) => Ok(None),
        Ok(Some(n)) if n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => Ok(Some(n as u32)),
        _ => Err(format!(
            "{name} must be a whole number of 0 or more (0 removes the limit)"
        )),
    }
}

pub async fn handle(app: &App, action: &str, req: Request<Incoming>) -> HttpResponse {
    let Some(action) = ACTIONS.iter().copied().find(|a| *a == action) else {
        return ApiError::unsupported_request().into_response();
    };
    let read_only = action.starts_with("get");
    match *req.method() {
        Method::GET | Method::HEAD if read_only => {}
        Method::POST => {}
        _ => return ApiError::unsupported_request().into_response(),
    }
    let has_body = crate::http::request::has_body(&req);
    if has_body && crate::http::request::mime(&req).as_deref() != Some("application/json") {
        return ApiError::unsupported_content_type().into_response();
    }
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let query = Params::parse(raw_query.as_bytes());
    let body = if has_body {
        match crate::http::body::read_limited(req.into_body(), MAX_JSON_BODY).await {
            Ok(b) => b,
            Err(resp) => return resp,
        }
    } else {
        Default::default()
    };
    let parsed: Result<Map<String, Value>, String> = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Map::new())
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(o)) => Ok(o),
            Ok(_) => Err("the JSON body must be an object".into()),
            Err(e) => Err(format!("the body is not valid JSON ({e})")),
        }
    };
    let supplied = query
        .get("checksum")
        .map(str::to_string)
        .or_else(|| parsed.as_ref().ok().and_then(|o| text(o.get("checksum"))))
        .unwrap_or_default();
    if checksum::verify(
        action,
        &raw_query,
        &supplied,
        &app.config.secrets,
        &app.config.checksum_algorithms,
    )
    .is_none()
    {
        return ApiError::checksum().into_response();
    }
    let mut params = match parsed {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    for (k, v) in query.iter() {
        if k != "checksum" && !params.contains_key(k) {
            params.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    params.remove("checksum");
    if action.contains("Tenant") {
        if !app.config.tenancy.enabled {
            return reply(
                StatusCode::PRECONDITION_FAILED,
                json!({"message": "Multitenancy is disabled"}),
            );
        }
        return tenant_action(app, action, &params).await;
    }
    server_action(app, action, &params).await
}

fn server_not_found(id: &str) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        format!("Couldn't find server with id={id}"),
    )
}

fn store_error(e: AdminError) -> HttpResponse {
    tracing::error!(error = %e, "admin API: store error");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the load balancer's store is unavailable; try again",
    )
}

async fn server_action(app: &App, action: &str, params: &Map<String, Value>) -> HttpResponse {
    let id = text(params.get("id")).unwrap_or_default();
    match action {
        "getServers" => match app.store.servers().await {
            Ok(list) if list.is_empty() => {
                error(StatusCode::NOT_FOUND, "No servers are configured")
            }
            Ok(list) => reply(
                StatusCode::OK,
                Value::Array(list.iter().map(server_json).collect()),
            ),
            Err(e) => store_error(e.into()),
        },
        "getServerInfo" => match servers::get(app, &id).await {
            Ok(s) => reply(StatusCode::OK, server_json(&s)),
            Err(AdminError::NotFound(_)) => server_not_found(&id),
            Err(e) => store_error(e),
        },
        "addServer" => {
            let attrs = ["url", "secret", "load_multiplier", "tag"];
            let Some(s) = wrapped(params, "server", &attrs) else {
                return missing("server");
            };
            let url = text(s.get("url")).unwrap_or_default();
            let secret = text(s.get("secret")).unwrap_or_default();
            if url.trim().is_empty() || secret.trim().is_empty() {
                return error(StatusCode::BAD_REQUEST, "Server needs a URL and a secret");
            }
            let multiplier = match number(s.get("load_multiplier")) {
                Ok(m) => m.filter(|m| *m != 0.0),
                Err(()) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "Load-multiplier must be a non-zero number",
                    )
                }
            };
            match servers::add(app, &url, &secret, multiplier, text(s.get("tag"))).await {
                Ok(server) => reply(StatusCode::CREATED, server_json(&server)),
                Err(AdminError::Invalid(m)) => error(StatusCode::BAD_REQUEST, m),
                Err(e) => store_error(e),
            }
        }
        "updateServer" => update_server(app, &id, params).await,
        "deleteServer" => match servers::forget(app, &id).await {
            Ok(()) => reply(
                StatusCode::OK,
                json!({ "success": format!("Server id={id} was destroyed") }),
            ),
            Err(AdminError::NotFound(_)) => server_not_found(&id),
            Err(e) => error(
                StatusCode::BAD_REQUEST,
                format!("Couldn't destroy server id={id}: {e}"),
            ),
        },
        "panicServer" => {
            let keep_state = truthy(params.get("keep_state"))
                || matches!(params.get("server"), Some(Value::Object(o)) if truthy(o.get("keep_state")));
            match servers::panic(app, &id, keep_state, false).await {
                Ok(_) => reply(
                    StatusCode::OK,
                    json!({ "success": format!("Server id={id} has been disabled and the meetings have been destroyed") }),
                ),
                Err(AdminError::NotFound(_)) => server_not_found(&id),
                Err(e) => {
                    tracing::warn!(server = %id, error = %e, "panicServer failed");
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("Couldn't disable server id={id}"),
                    )
                }
            }
        }
        _ => ApiError::unsupported_request().into_response(),
    }
}

async fn update_server(app: &App, id: &str, params: &Map<String, Value>) -> HttpResponse {
    let attrs = ["state", "load_multiplier", "secret", "tag"];
    let Some(s) = wrapped(params, "server", &attrs) else {
        return missing("server");
    };
    match servers::get(app, id).await {
        Ok(_) => {}
        Err(AdminError::NotFound(_)) => return server_not_found(id),
        Err(e) => return store_error(e),
    }
    // Validate everything before saving anything (Scalelite saves nothing on error).
    let state = match text(s.get("state")).as_deref() {
        None => None,
        Some("enable") => Some(ServerState::Enabled),
        Some("cordon") => Some(ServerState::Cordoned),
        Some("disable") => Some(ServerState::Disabled),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Invalid state parameter: {other}"),
            )
        }
    };
    let multiplier = match number(s.get("load_multiplier")) {
        Ok(Some(m)) if m.is_finite() && m > 0.0 => Some(m),
        Ok(None) if s.get("load_multiplier").is_none() => None,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "Load-multiplier must be a non-zero number",
            )
        }
    };
    let secret = text(s.get("secret"));
    if secret.as_deref().is_some_and(|x| x.trim().is_empty()) {
        return error(StatusCode::BAD_REQUEST, "the secret must not be empty");
    }
    let tag = text(s.get("tag"));
    if secret.is_some() || multiplier.is_some() || tag.is_some() {
        if let Err(e) = servers::update(app, id, secret, multiplier, tag).await {
            return match e {
                AdminError::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
                AdminError::NotFound(_) => server_not_found(id),
                e => store_error(e),
            };
        }
    }
    if let Some(state) = state {
        if let Err(e) = servers::set_state(app, id, state).await {
            return match e {
                AdminError::NotFound(_) => server_not_found(id),
                e => store_error(e),
            };
        }
    }
    match servers::get(app, id).await {
        Ok(server) => reply(StatusCode::OK, server_json(&server)),
        Err(AdminError::NotFound(_)) => server_not_found(id),
        Err(e) => store_error(e),
    }
}

fn tenant_not_found(id: &str) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        format!("Couldn't find Tenant with id={id}"),
    )
}

async fn tenant_action(app: &App, action: &str, params: &Map<String, Value>) -> HttpResponse {
    let id = text(params.get("id")).unwrap_or_default();
    let attrs = ["name", "secrets", "max_meetings", "max_participants"];
    match action {
        "getTenants" => match tenants::list(app).await {
            Ok(list) if list.is_empty() => {
                reply(StatusCode::OK, json!({"message": "No tenants exist"}))
            }
            Ok(list) => reply(
                StatusCode::OK,
                Value::Array(list.iter().map(tenant_json).collect()),
            ),
            Err(e) => store_error(e),
        },
        "getTenantInfo" => match tenants::get(app, &id).await {
            Ok(t) => reply(StatusCode::OK, tenant_json(&t)),
            Err(AdminError::NotFound(_)) => tenant_not_found(&id),
            Err(e) => store_error(e),
        },
        "addTenant" => {
            let t = wrapped(params, "tenant", &attrs);
            let name = t.and_then(|t| text(t.get("name"))).unwrap_or_default();
            let secrets = t.and_then(|t| text(t.get("secrets"))).unwrap_or_default();
            if name.trim().is_empty() || secrets.trim().is_empty() {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Error: both name and secrets are required to create a Tenant"}),
                );
            }
            let (max_meetings, max_participants) = match limits(t) {
                Ok(l) => l,
                Err(m) => return error(StatusCode::BAD_REQUEST, m),
            };
            let tenant = match tenants::add(app, &name, &secrets).await {
                Ok(t) => t,
                Err(AdminError::Invalid(m)) => return error(StatusCode::BAD_REQUEST, m),
                Err(e) => return store_error(e),
            };
            let tenant = if max_meetings.is_some() || max_participants.is_some() {
                let changes = TenantChanges {
                    max_meetings,
                    max_participants,
                    ..Default::default()
                };
                match tenants::update(app, &tenant.id, changes).await {
                    Ok(t) => t,
                    Err(e) => return store_error(e),
                }
            } else {
                tenant
            };
            reply(
                StatusCode::CREATED,
                json!({ "tenant": tenant_json(&tenant) }),
            )
        }
        "updateTenant" => {
            let Some(t) = wrapped(params, "tenant", &attrs) else {
                return missing("tenant");
            };
            let (max_meetings, max_participants) = match limits(Some(t)) {
                Ok(l) => l,
                Err(m) => return error(StatusCode::BAD_REQUEST, m),
            };
            let changes = TenantChanges {
                name: text(t.get("name")),
                secrets: text(t.get("secrets")),
                max_meetings,
                max_participants,
            };
            match tenants::update(app, &id, changes).await {
                Ok(t) => reply(StatusCode::OK, json!({ "tenant": tenant_json(&t) })),
                Err(AdminError::NotFound(_)) => tenant_not_found(&id),
                Err(AdminError::Invalid(m)) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
                Err(e) => store_error(e),
            }
        }
        "deleteTenant" => match tenants::remove(app, &id, truthy(params.get("force"))).await {
            Ok(()) => reply(
                StatusCode::OK,
                json!({ "success": format!("Tenant id={id} was destroyed") }),
            ),
            Err(AdminError::NotFound(_)) => tenant_not_found(&id),
            Err(AdminError::Refused(m)) => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{m} (send \"force\": true)"),
            ),
            Err(e) => store_error(e),
        },
        _ => ApiError::unsupported_request().into_response(),
    }
}

type Limits = (Option<u32>, Option<u32>);

fn limits(t: Option<&Map<String, Value>>) -> Result<Limits, String> {
    let Some(t) = t else {
        return Ok((None, None));
    };
    Ok((
        count(t.get("max_meetings"), "max_meetings")?,
        count(t.get("max_participants"), "max_participants")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_look_like_scalelites() {
        let mut s = Server::new(
            "a".into(),
            "https://x/bigbluebutton/api".into(),
            "sec".into(),
            1.5,
            None,
        );
        let v = server_json(&s);
        assert_eq!(v["tag"], "");
        assert_eq!(v["load"], "unavailable");
        assert_eq!(v["load_multiplier"], "1.5");
        assert_eq!(v["online"], "offline");
        assert_eq!(v["state"], "disabled");
        s.load = Some(2.0);
        s.load_multiplier = 1.0;
        let v = server_json(&s);
        assert_eq!(v["load"], 2.0);
        assert_eq!(v["load_multiplier"], "1.0");
    }

    #[test]
    fn the_wrapper_may_be_left_out() {
        let with: Map<String, Value> = serde_json::from_str(r#"{"server":{"url":"u"}}"#).unwrap();
        let without: Map<String, Value> = serde_json::from_str(r#"{"url":"u"}"#).unwrap();
        let none: Map<String, Value> = serde_json::from_str(r#"{"id":"x"}"#).unwrap();
        assert_eq!(wrapped(&with, "server", &["url"]).unwrap()["url"], "u");
        assert_eq!(wrapped(&without, "server", &["url"]).unwrap()["url"], "u");
        assert!(wrapped(&none, "server", &["url"]).is_none());
    }
}
