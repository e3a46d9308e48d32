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
use crate::store::{Server, ServerState, StoreError, Tenant};

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

/// Why an admin call was not done, as it is answered: JSON with Scalelite's status codes,
/// or the BBB-style XML error Scalelite gives for the checks before the action.
#[derive(Debug)]
pub enum Refusal {
    Json(StatusCode, Value),
    Bbb(ApiError),
    /// A refusal of the HTTP layer (the body too large or too late).
    Http(HttpResponse),
}

impl Refusal {
    /// `{"error": message}` with `status`.
    fn error(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal::Json(status, json!({ "error": message.into() }))
    }

    /// The store failed: logged, and the client told to try again.
    fn store(e: impl std::fmt::Display) -> Refusal {
        tracing::error!(error = %e, "admin API: store error");
        Refusal::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the load balancer's store is unavailable; try again",
        )
    }

    fn into_response(self) -> HttpResponse {
        match self {
            Refusal::Json(status, v) => reply(status, v),
            Refusal::Bbb(e) => e.into_response(),
            Refusal::Http(r) => r,
        }
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        Refusal::Bbb(e)
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::store(e)
    }
}

/// An admin action's error as the API answers it by default: a missing id 404, bad input
/// 400, a refusal 422, the store 503.
impl From<AdminError> for Refusal {
    fn from(e: AdminError) -> Refusal {
        match e {
            AdminError::NotFound(m) => Refusal::error(StatusCode::NOT_FOUND, m),
            AdminError::Invalid(m) => Refusal::error(StatusCode::BAD_REQUEST, m),
            AdminError::Refused(m) => Refusal::error(StatusCode::UNPROCESSABLE_ENTITY, m),
            AdminError::Store(e) => Refusal::store(e),
        }
    }
}

type Answer = Result<HttpResponse, Refusal>;

/// `NotFound` answered as `not_found`; every other error as the store's.
fn found_or(not_found: Refusal) -> impl FnOnce(AdminError) -> Refusal {
    move |e| match e {
        AdminError::NotFound(_) => not_found,
        e => Refusal::store(e),
    }
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

fn missing(wrapper: &str) -> Refusal {
    Refusal::error(
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
    handle_action(app, action, req)
        .await
        .unwrap_or_else(Refusal::into_response)
}

async fn handle_action(app: &App, action: &str, req: Request<Incoming>) -> Answer {
    let action = ACTIONS
        .iter()
        .copied()
        .find(|a| *a == action)
        .ok_or_else(ApiError::unsupported_request)?;
    let read_only = action.starts_with("get");
    match *req.method() {
        Method::GET | Method::HEAD if read_only => {}
        Method::POST => {}
        _ => return Err(ApiError::unsupported_request().into()),
    }
    let has_body = crate::http::request::has_body(&req);
    if has_body && crate::http::request::mime(&req).as_deref() != Some("application/json") {
        return Err(ApiError::unsupported_content_type().into());
    }
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let query = Params::parse(raw_query.as_bytes());
    let body = if has_body {
        crate::http::body::read_limited(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(Refusal::Http)?
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
    checksum::verify(
        action,
        &raw_query,
        &supplied,
        &app.config.secrets,
        &app.config.checksum_algorithms,
    )
    .ok_or_else(ApiError::checksum)?;
    let mut params = parsed.map_err(|e| Refusal::error(StatusCode::BAD_REQUEST, e))?;
    for (k, v) in query.iter() {
        if k != "checksum" && !params.contains_key(k) {
            params.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    params.remove("checksum");
    if action.contains("Tenant") {
        if !app.config.tenancy.enabled {
            return Err(Refusal::Json(
                StatusCode::PRECONDITION_FAILED,
                json!({"message": "Multitenancy is disabled"}),
            ));
        }
        return tenant_action(app, action, &params).await;
    }
    server_action(app, action, &params).await
}

fn server_not_found(id: &str) -> Refusal {
    Refusal::error(
        StatusCode::NOT_FOUND,
        format!("Couldn't find server with id={id}"),
    )
}

async fn server_action(app: &App, action: &str, params: &Map<String, Value>) -> Answer {
    let id = text(params.get("id")).unwrap_or_default();
    match action {
        "getServers" => {
            let list = app.store.servers().await?;
            if list.is_empty() {
                return Err(Refusal::error(
                    StatusCode::NOT_FOUND,
                    "No servers are configured",
                ));
            }
            Ok(reply(
                StatusCode::OK,
                Value::Array(list.iter().map(server_json).collect()),
            ))
        }
        "getServerInfo" => {
            let s = servers::get(app, &id)
                .await
                .map_err(found_or(server_not_found(&id)))?;
            Ok(reply(StatusCode::OK, server_json(&s)))
        }
        "addServer" => {
            let attrs = ["url", "secret", "load_multiplier", "tag"];
            let s = wrapped(params, "server", &attrs).ok_or_else(|| missing("server"))?;
            let url = text(s.get("url")).unwrap_or_default();
            let secret = text(s.get("secret")).unwrap_or_default();
            if url.trim().is_empty() || secret.trim().is_empty() {
                return Err(Refusal::error(
                    StatusCode::BAD_REQUEST,
                    "Server needs a URL and a secret",
                ));
            }
            let multiplier = number(s.get("load_multiplier"))
                .map_err(|()| {
                    Refusal::error(
                        StatusCode::BAD_REQUEST,
                        "Load-multiplier must be a non-zero number",
                    )
                })?
                .filter(|m| *m != 0.0);
            let server = servers::add(app, &url, &secret, multiplier, text(s.get("tag"))).await?;
            Ok(reply(StatusCode::CREATED, server_json(&server)))
        }
        "updateServer" => update_server(app, &id, params).await,
        "deleteServer" => {
            servers::forget(app, &id).await.map_err(|e| match e {
                AdminError::NotFound(_) => server_not_found(&id),
                e => Refusal::error(
                    StatusCode::BAD_REQUEST,
                    format!("Couldn't destroy server id={id}: {e}"),
                ),
            })?;
            Ok(reply(
                StatusCode::OK,
                json!({ "success": format!("Server id={id} was destroyed") }),
            ))
        }
        "panicServer" => {
            let keep_state = truthy(params.get("keep_state"))
                || matches!(params.get("server"), Some(Value::Object(o)) if truthy(o.get("keep_state")));
            servers::panic(app, &id, keep_state, false)
                .await
                .map_err(|e| match e {
                    AdminError::NotFound(_) => server_not_found(&id),
                    e => {
                        tracing::warn!(server = %id, error = %e, "panicServer failed");
                        Refusal::error(
                            StatusCode::BAD_REQUEST,
                            format!("Couldn't disable server id={id}"),
                        )
                    }
                })?;
            Ok(reply(
                StatusCode::OK,
                json!({ "success": format!("Server id={id} has been disabled and the meetings have been destroyed") }),
            ))
        }
        _ => Err(ApiError::unsupported_request().into()),
    }
}

async fn update_server(app: &App, id: &str, params: &Map<String, Value>) -> Answer {
    let attrs = ["state", "load_multiplier", "secret", "tag"];
    let s = wrapped(params, "server", &attrs).ok_or_else(|| missing("server"))?;
    servers::get(app, id)
        .await
        .map_err(found_or(server_not_found(id)))?;
    // Validate everything before saving anything (Scalelite saves nothing on error).
    let state = match text(s.get("state")).as_deref() {
        None => None,
        Some("enable") => Some(ServerState::Enabled),
        Some("cordon") => Some(ServerState::Cordoned),
        Some("disable") => Some(ServerState::Disabled),
        Some(other) => {
            return Err(Refusal::error(
                StatusCode::BAD_REQUEST,
                format!("Invalid state parameter: {other}"),
            ))
        }
    };
    let multiplier = match number(s.get("load_multiplier")) {
        Ok(Some(m)) if m.is_finite() && m > 0.0 => Some(m),
        Ok(None) if s.get("load_multiplier").is_none() => None,
        _ => {
            return Err(Refusal::error(
                StatusCode::BAD_REQUEST,
                "Load-multiplier must be a non-zero number",
            ))
        }
    };
    let secret = text(s.get("secret"));
    if secret.as_deref().is_some_and(|x| x.trim().is_empty()) {
        return Err(Refusal::error(
            StatusCode::BAD_REQUEST,
            "the secret must not be empty",
        ));
    }
    let tag = text(s.get("tag"));
    if secret.is_some() || multiplier.is_some() || tag.is_some() {
        servers::update(app, id, secret, multiplier, tag)
            .await
            .map_err(|e| match e {
                AdminError::Invalid(m) => Refusal::error(StatusCode::BAD_REQUEST, m),
                e => found_or(server_not_found(id))(e),
            })?;
    }
    if let Some(state) = state {
        servers::set_state(app, id, state)
            .await
            .map_err(found_or(server_not_found(id)))?;
    }
    let server = servers::get(app, id)
        .await
        .map_err(found_or(server_not_found(id)))?;
    Ok(reply(StatusCode::OK, server_json(&server)))
}

fn tenant_not_found(id: &str) -> Refusal {
    Refusal::error(
        StatusCode::NOT_FOUND,
        format!("Couldn't find Tenant with id={id}"),
    )
}

async fn tenant_action(app: &App, action: &str, params: &Map<String, Value>) -> Answer {
    let id = text(params.get("id")).unwrap_or_default();
    let attrs = ["name", "secrets", "max_meetings", "max_participants"];
    let bad = |m: String| Refusal::error(StatusCode::BAD_REQUEST, m);
    match action {
        "getTenants" => {
            let list = tenants::list(app).await.map_err(Refusal::store)?;
            if list.is_empty() {
                return Ok(reply(
                    StatusCode::OK,
                    json!({"message": "No tenants exist"}),
                ));
            }
            Ok(reply(
                StatusCode::OK,
                Value::Array(list.iter().map(tenant_json).collect()),
            ))
        }
        "getTenantInfo" => {
            let t = tenants::get(app, &id)
                .await
                .map_err(found_or(tenant_not_found(&id)))?;
            Ok(reply(StatusCode::OK, tenant_json(&t)))
        }
        "addTenant" => {
            let t = wrapped(params, "tenant", &attrs);
            let name = t.and_then(|t| text(t.get("name"))).unwrap_or_default();
            let secrets = t.and_then(|t| text(t.get("secrets"))).unwrap_or_default();
            if name.trim().is_empty() || secrets.trim().is_empty() {
                return Err(Refusal::Json(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "Error: both name and secrets are required to create a Tenant"}),
                ));
            }
            let (max_meetings, max_participants) = limits(t).map_err(bad)?;
            let tenant = tenants::add(app, &name, &secrets)
                .await
                .map_err(|e| match e {
                    AdminError::Invalid(m) => bad(m),
                    e => Refusal::store(e),
                })?;
            let tenant = if max_meetings.is_some() || max_participants.is_some() {
                let changes = TenantChanges {
                    max_meetings,
                    max_participants,
                    ..Default::default()
                };
                tenants::update(app, &tenant.id, changes)
                    .await
                    .map_err(Refusal::store)?
            } else {
                tenant
            };
            Ok(reply(
                StatusCode::CREATED,
                json!({ "tenant": tenant_json(&tenant) }),
            ))
        }
        "updateTenant" => {
            let t = wrapped(params, "tenant", &attrs).ok_or_else(|| missing("tenant"))?;
            let (max_meetings, max_participants) = limits(Some(t)).map_err(bad)?;
            let changes = TenantChanges {
                name: text(t.get("name")),
                secrets: text(t.get("secrets")),
                max_meetings,
                max_participants,
            };
            let t = tenants::update(app, &id, changes)
                .await
                .map_err(|e| match e {
                    AdminError::Invalid(m) => Refusal::error(StatusCode::UNPROCESSABLE_ENTITY, m),
                    e => found_or(tenant_not_found(&id))(e),
                })?;
            Ok(reply(StatusCode::OK, json!({ "tenant": tenant_json(&t) })))
        }
        "deleteTenant" => {
            tenants::remove(app, &id, truthy(params.get("force")))
                .await
                .map_err(|e| match e {
                    AdminError::Refused(m) => Refusal::error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("{m} (send \"force\": true)"),
                    ),
                    e => found_or(tenant_not_found(&id))(e),
                })?;
            Ok(reply(
                StatusCode::OK,
                json!({ "success": format!("Tenant id={id} was destroyed") }),
            ))
        }
        _ => Err(ApiError::unsupported_request().into()),
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
