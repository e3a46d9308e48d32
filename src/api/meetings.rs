//! The meeting calls: create, join, end, isMeetingRunning, getMeetingInfo, getMeetings,
//! insertDocument and sendChatMessage.
//!
//! A meeting belongs to the server recorded for it at `create`; every later call goes to
//! that server. The mapping is checked against the server's health on `create`: a meeting
//! whose server is gone, offline, or no longer runs it is placed again instead of being
//! stuck (Scalelite's most reported failure).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::BodyDataStream;
use rand::distributions::Alphanumeric;
use rand::Rng;

use super::call::{Call, CallBody};
use crate::app::App;
use crate::balancer::{
    choose_healthy_server, counts_against_server, voice_bridge_candidates, TagSpec,
};
use crate::bbb::calls::ApiCall;
use crate::bbb::params::{cap_duration, Params, Policy};
use crate::bbb::{parse_meetings, CallError, Reply, Upload};
use crate::http::response::{self, answer, ApiError, ApiResult, HttpResponse};
use crate::store::{
    now_ms, ChoiceError, Chooser, Meeting, PlaceOutcome, PlaceRequest, Server, ServerState,
};
use crate::tenant::{scope, unscope_text};

/// How long a call to a server marked offline may take (it is probably down).
const OFFLINE_LIMIT: Duration = Duration::from_secs(1);

pub async fn dispatch(app: &App, call: Call) -> HttpResponse {
    answer(match call.kind {
        ApiCall::Create => create(app, call).await,
        ApiCall::Join => join(app, call).await,
        ApiCall::End => end(app, call).await,
        ApiCall::IsMeetingRunning => proxy(app, call, &["meetingID"]).await,
        ApiCall::GetMeetingInfo => proxy(app, call, &["meetingID"]).await,
        ApiCall::SendChatMessage => proxy(app, call, &["meetingID", "message", "userName"]).await,
        ApiCall::InsertDocument => insert_document(app, call).await,
        ApiCall::GetMeetings => get_meetings(app, call).await,
        _ => Err(ApiError::unsupported_request()),
    })
}

/// Scalelite's answer when there are no meetings (or getMeetings is disabled).
pub fn no_meetings() -> HttpResponse {
    response::xml(
        "<response><returncode>SUCCESS</returncode><messageKey>noMeetings</messageKey>\
         <message>no meetings were found on this server</message><meetings/></response>",
    )
}

/// Passes a BBB answer on: its `<response>` element on SUCCESS, as a minimal FAILED document otherwise
/// (as Scalelite does), falling back to `generic` when BBB gave no key. The tenant's
/// meeting IDs are unscoped first (`crate::tenant`).
fn relay(tenant_id: &str, reply: Reply, generic: &str) -> HttpResponse {
    if reply.success() {
        // The `<response>` element under our own declaration: never the backend's prolog.
        let body = reply.relayable();
        return match unscope_text(tenant_id, &body) {
            std::borrow::Cow::Borrowed(_) => response::xml(body),
            std::borrow::Cow::Owned(unscoped) => response::xml(unscoped),
        };
    }
    if reply.head.message_key.is_empty() && reply.head.message.is_empty() {
        return ApiError::internal(generic).into_response();
    }
    let message = unscope_text(tenant_id, reply.head.message.as_bytes());
    ApiError::new(
        reply.head.message_key,
        String::from_utf8_lossy(&message).into_owned(),
    )
    .into_response()
}

/// The tenant's settings as policy layers: (defaults, overrides). Empty without a tenant.
type Layers = (Vec<(String, String)>, Vec<(String, String)>);

async fn tenant_layers(app: &App, call: &Call) -> Result<Layers, ApiError> {
    if call.scope().is_none() {
        return Ok(Default::default());
    }
    let settings = app.store.tenant_settings(&call.tenant_id).await?;
    let (overrides, defaults): (Vec<_>, Vec<_>) = settings.into_iter().partition(|s| s.is_override);
    let pairs = |v: Vec<crate::store::TenantSetting>| {
        v.into_iter()
            .map(|s| (s.param, s.value))
            .collect::<Vec<_>>()
    };
    Ok((pairs(defaults), pairs(overrides)))
}

fn call_failed(server: &Server, call: &str, e: &CallError, generic: &str) -> HttpResponse {
    tracing::warn!(server = %server.id, call, error = %e, "BBB server call failed");
    ApiError::internal(generic).into_response()
}

fn limit_for(server: &Server) -> Option<Duration> {
    (!server.online).then_some(OFFLINE_LIMIT)
}

/// The effective `meta_server-tag` (Scalelite's order): tenant override, operator
/// override, the request, tenant default, operator default.
fn tag_spec(app: &App, params: &Params, tenant: &Layers) -> TagSpec {
    let find = |list: &[(String, String)]| {
        list.iter()
            .find(|(k, v)| k == "meta_server-tag" && !v.trim().is_empty())
            .map(|(_, v)| v.clone())
    };
    let spec = find(&tenant.1)
        .or_else(|| find(&app.config.override_create_params))
        .or_else(|| params.non_empty("meta_server-tag").map(str::to_string))
        .or_else(|| find(&tenant.0))
        .or_else(|| find(&app.config.default_create_params));
    TagSpec::parse(spec.as_deref())
}

fn random_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(8)
        .map(char::from)
        .collect()
}

enum Placement {
    New(Meeting, Server),
    Existing(Meeting, Server),
}

/// Finds or makes the meeting's placement, re-placing a meeting whose server cannot hold it.
async fn place(
    app: &App,
    call: &Call,
    meeting_id: &str,
    spec: &TagSpec,
    exclude: &[String],
) -> Result<Placement, ApiError> {
    let cfg = &app.config;
    let external = cfg
        .use_external_voice_bridge
        .then(|| call.params.get("voiceBridge"))
        .flatten();
    let bbb_id = scope(&call.tenant_id, meeting_id);
    let voice_bridges = voice_bridge_candidates(&bbb_id, cfg.voice_bridge_len, external, 24);
    let moderator_pw = call
        .params
        .non_empty("moderatorPW")
        .map(str::to_string)
        .unwrap_or_else(random_password);
    // Servers that failed their last creates sit out a cool-down (`balancer::CreateStreak`).
    let limits = &cfg.backend;
    let tripped = app.create_health.tripped(
        now_ms(),
        limits.create_failure_limit,
        limits.create_failure_cooldown.as_millis() as i64,
    );
    let (spec, exclude) = (spec.clone(), exclude.to_vec());
    let choose: Chooser = Arc::new(move |servers: &[Server]| {
        choose_healthy_server(servers, &spec, &exclude, &tripped)
    });
    for _ in 0..3 {
        let req = PlaceRequest {
            tenant_id: &call.tenant_id,
            meeting_id,
            moderator_pw: &moderator_pw,
            voice_bridges: &voice_bridges,
            choose: choose.clone(),
            now_ms: now_ms(),
            max_tenant_meetings: call.tenant.as_ref().and_then(|t| t.max_meetings),
            bbb_id: None,
            only_server: None,
        };
        match app.store.place_meeting(&req).await? {
            PlaceOutcome::Placed(m, s) => {
                app.metrics.placements.get_or_create(&crate::metrics::ServerLabel { server: s.id.clone() }).inc();
                return Ok(Placement::New(m, s));
            }
            PlaceOutcome::Refused(ChoiceError::NoServer) => return Err(ApiError::no_server()),
            PlaceOutcome::Refused(ChoiceError::TagUnavailable(t)) => {
                return Err(ApiError::tag_unavailable(&t))
            }
            PlaceOutcome::TenantLimit(limit) => {
                return Err(ApiError::new(
                    "maxMeetingsReached",
                    format!("This tenant already runs its maximum of {limit} concurrent meetings; end a meeting or ask the operator to raise the limit."),
                ))
            }
            PlaceOutcome::NoVoiceBridge => {
                return Err(ApiError::internal(
                    "Could not allocate a unique voice bridge.",
                ))
            }
            PlaceOutcome::Existing(m) => {
                let server = app.store.server(&m.server_id).await?;
                let keep = match &server {
                    None => false,
                    Some(s) if !s.online => false,
                    Some(s) if s.state == ServerState::Enabled => true,
                    Some(s) => still_running(app, s, &m).await,
                };
                match server {
                    Some(s) if keep => return Ok(Placement::Existing(m, s)),
                    _ => {
                        tracing::info!(meeting = %m.meeting_id, server = %m.server_id, "re-placing a meeting whose server cannot hold it");
                        app.store
                            .delete_meeting_on(&m.tenant_id, &m.meeting_id, &m.server_id)
                            .await?;
                    }
                }
            }
        }
    }
    Err(ApiError::internal(
        "Could not place the meeting; try again.",
    ))
}

/// Whether a cordoned or disabled server still runs the meeting.
async fn still_running(app: &App, server: &Server, m: &Meeting) -> bool {
    let p: Params = [("meetingID", m.bbb_id.as_str())].into_iter().collect();
    match app
        .bbb
        .call(
            server,
            "isMeetingRunning",
            &p,
            app.config.outbound_algorithm,
            None,
            limit_for(server),
        )
        .await
    {
        Ok(r) => {
            r.success() && String::from_utf8_lossy(&r.body).contains("<running>true</running>")
        }
        Err(_) => false,
    }
}

/// The tenant's xAPI/LRS payload, if it has an LRS (see `crate::lrs`); never fails the create.
async fn lrs_payload(app: &App, call: &Call) -> Option<crate::lrs::Payload> {
    if call.scope().is_none() {
        return None;
    }
    let lrs = match app.store.tenant_lrs(&call.tenant_id).await {
        Ok(l) => l?,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the tenant's LRS");
            return None;
        }
    };
    crate::lrs::payload(&app.lrs_http, &lrs).await
}

async fn create(app: &App, mut call: Call) -> ApiResult {
    let Some(meeting_id) = call.params.non_empty("meetingID").map(str::to_string) else {
        return Err(ApiError::missing_meeting_id());
    };
    let cfg = &app.config;
    let layers = tenant_layers(app, &call).await?;
    let spec = tag_spec(app, &call.params, &layers);
    let lrs = lrs_payload(app, &call).await;
    let xml_body = match std::mem::replace(&mut call.body, CallBody::None) {
        CallBody::Xml(b) => Some(b),
        _ => None,
    };
    crate::recordings::callback::remember_at_create(
        app,
        &call.tenant_id,
        &meeting_id,
        &mut call.params,
    )
    .await;
    let mut failed: Vec<String> = Vec::new();
    loop {
        let (meeting, server, new) = match place(app, &call, &meeting_id, &spec, &failed).await {
            Ok(Placement::New(m, s)) => (m, s, true),
            Ok(Placement::Existing(m, s)) => (m, s, false),
            Err(_) if !failed.is_empty() => {
                tracing::warn!(meeting = %meeting_id, "no further server to try");
                return Err(ApiError::internal("Unable to create meeting on server."));
            }
            Err(e) => return Err(e),
        };

        let mut p = call.params.clone();
        p.set("voiceBridge", meeting.voice_bridge.clone());
        if new {
            p.set("moderatorPW", meeting.moderator_pw.clone());
        }
        match &server.tag {
            Some(t) => p.set("meta_server-tag", t.clone()),
            None => {
                p.remove("meta_server-tag");
            }
        }
        cap_duration(&mut p, cfg.max_meeting_duration);
        // Sealed with the chosen server's secret: only that BBB server can read it.
        if let Some(sealed) = lrs
            .as_ref()
            .and_then(|l| crate::lrs::seal(l, &server.secret))
        {
            p.set("meta_secret-lrs-payload", sealed);
        }
        let mut forwarded = Policy {
            defaults: &cfg.default_create_params,
            tenant_defaults: &layers.0,
            overrides: &cfg.override_create_params,
            tenant_overrides: &layers.1,
            exclude: &cfg.create_exclude_params,
        }
        .apply(&p);
        // Set after the policy so no setting can drop them: isolation depends on them.
        forwarded.set("meetingID", meeting.bbb_id.clone());
        if cfg.tenancy.enabled {
            // Nobody may claim a tenant (in any spelling: BBB lower-cases meta keys) but
            // the Host's; without a tenant, none.
            let claimed: Vec<String> = forwarded
                .keys()
                .filter(|k| {
                    k.eq_ignore_ascii_case("meta_tenant-id")
                        || k.eq_ignore_ascii_case("meta_tenant-name")
                })
                .map(str::to_string)
                .collect();
            for k in claimed {
                forwarded.remove(&k);
            }
        }
        if let Some(t) = &call.tenant {
            forwarded.set("meta_tenant-id", t.id.clone());
            forwarded.set("meta_tenant-name", t.name.clone());
        }
        super::callbacks::rewrite_create(app, &call, &meeting_id, &mut forwarded);

        let upload = xml_body.clone().map(|b: Bytes| Upload { body: b.into() });
        match app
            .bbb
            .call(
                &server,
                "create",
                &forwarded,
                app.config.outbound_algorithm,
                upload,
                limit_for(&server),
            )
            .await
        {
            Ok(reply) => {
                let failed_key = (!reply.success()).then_some(reply.head.message_key.as_str());
                if new {
                    let against = failed_key.is_some_and(|k| counts_against_server(Some(k)));
                    app.create_health.record(&server.id, against, now_ms());
                }
                if new && !reply.success() {
                    // BBB refused it (e.g. a validation error): do not keep a mapping to nothing.
                    let _ = app
                        .store
                        .delete_meeting_on(&meeting.tenant_id, &meeting.meeting_id, &server.id)
                        .await;
                }
                tracing::info!(meeting = %meeting_id, server = %server.id, new, "create");
                return Ok(relay(
                    &call.tenant_id,
                    reply,
                    "Unable to create meeting on server.",
                ));
            }
            Err(e) if new => {
                tracing::warn!(meeting = %meeting_id, server = %server.id, error = %e, "create failed; trying another server");
                app.create_health
                    .record(&server.id, counts_against_server(None), now_ms());
                let _ = app
                    .store
                    .delete_meeting_on(&meeting.tenant_id, &meeting.meeting_id, &server.id)
                    .await;
                if outcome_unknown(&e) {
                    end_ghost(app, &server, &meeting);
                }
                failed.push(server.id.clone());
            }
            Err(e) => {
                return Ok(call_failed(
                    &server,
                    "create",
                    &e,
                    "Unable to create meeting on server.",
                ))
            }
        }
    }
}

/// Whether a failed call may still have reached the server (the request was sent, the
/// answer was lost): anything but a refused connection.
fn outcome_unknown(e: &CallError) -> bool {
    !matches!(e, CallError::Connect(_))
}

/// A create whose outcome is unknown may have left a copy of the meeting on `server` while
/// the next server gets it: end that copy, in the background (best effort).
fn end_ghost(app: &App, server: &Server, meeting: &Meeting) {
    let bbb = app.bbb.clone();
    let alg = app.config.outbound_algorithm;
    let server = server.clone();
    let bbb_id = meeting.bbb_id.clone();
    let mut p: Params = [("meetingID", bbb_id.as_str())].into_iter().collect();
    p.set("password", meeting.moderator_pw.clone());
    let limit = Some(app.config.response_timeout);
    tokio::spawn(async move {
        match bbb.call(&server, "end", &p, alg, None, limit).await {
            Ok(r) => {
                tracing::info!(server = %server.id, meeting = %bbb_id, ended = r.success(), "ended a possible ghost copy after a lost create answer")
            }
            Err(e) => {
                tracing::warn!(server = %server.id, meeting = %bbb_id, error = %e, "could not end a possible ghost copy")
            }
        }
    });
}

/// Looks up the meeting named by `meetingID`; the error answer when it is missing.
async fn lookup(app: &App, call: &Call) -> Result<Option<(Meeting, Option<Server>)>, ApiError> {
    let Some(meeting_id) = call.params.non_empty("meetingID") else {
        return Err(ApiError::missing_meeting_id());
    };
    Ok(app.store.meeting(&call.tenant_id, meeting_id).await?)
}

async fn join(app: &App, call: Call) -> ApiResult {
    let Some(meeting_id) = call.params.non_empty("meetingID") else {
        return Err(ApiError::missing_meeting_id());
    };
    // The lookup and the participant limit (checked and counted in one store step, so
    // concurrent joins cannot overshoot) in one store call.
    let limit = call.tenant.as_ref().and_then(|t| t.max_participants);
    let Some(found) = app
        .store
        .join_meeting(&call.tenant_id, meeting_id, limit)
        .await?
    else {
        return Err(ApiError::meeting_not_found());
    };
    let (meeting, Some(server)) = (found.meeting, found.server) else {
        return Err(ApiError::meeting_not_found());
    };
    if !server.takes_joins() {
        return Err(ApiError::server_unavailable());
    }
    if let (Some(limit), Some(false)) = (limit, found.admitted) {
        return Err(ApiError::new(
            "maxParticipantsReached",
            format!("This tenant already has its maximum of {limit} participants in its meetings; try again later or ask the operator to raise the limit."),
        ));
    }
    let layers = tenant_layers(app, &call).await?;
    let cfg = &app.config;
    let mut forwarded = Policy {
        defaults: &cfg.default_join_params,
        tenant_defaults: &layers.0,
        overrides: &cfg.override_join_params,
        tenant_overrides: &layers.1,
        exclude: &cfg.join_exclude_params,
    }
    .apply(&call.params);
    forwarded.set("meetingID", meeting.bbb_id.clone());
    app.bump_load(&server);
    Ok(response::redirect(&crate::bbb::signed_url(
        &server.url,
        &server.secret,
        "join",
        &forwarded,
        app.config.outbound_algorithm,
    )))
}

async fn end(app: &App, call: Call) -> ApiResult {
    let Some((meeting, Some(server))) = lookup(app, &call).await? else {
        return Err(ApiError::meeting_not_found());
    };
    // Forget the meeting first (as Scalelite), so a failing server cannot pin it.
    app.store
        .delete_meeting(&meeting.tenant_id, &meeting.meeting_id)
        .await?;
    let mut p: Params = [("meetingID", meeting.bbb_id.as_str())]
        .into_iter()
        .collect();
    if let Some(pw) = call.params.get("password") {
        p.set("password", pw);
    }
    Ok(
        match app
            .bbb
            .call(
                &server,
                "end",
                &p,
                app.config.outbound_algorithm,
                None,
                limit_for(&server),
            )
            .await
        {
            Ok(reply) => relay(
                &call.tenant_id,
                reply,
                "Unable to access meeting on server.",
            ),
            Err(e) => call_failed(&server, "end", &e, "Unable to access meeting on server."),
        },
    )
}

/// Forwards a meeting call with only `keep` parameters to the meeting's server.
async fn proxy(app: &App, call: Call, keep: &[&str]) -> ApiResult {
    let (meeting, server) = match lookup(app, &call).await? {
        Some((m, Some(s))) => (m, s),
        _ if call.name == "isMeetingRunning" => {
            return Ok(response::xml(response::success(&[("running", "false")])))
        }
        _ => return Err(ApiError::meeting_not_found()),
    };
    let mut p = call.params.only(keep);
    p.set("meetingID", meeting.bbb_id);
    Ok(
        match app
            .bbb
            .call(
                &server,
                call.name,
                &p,
                app.config.outbound_algorithm,
                None,
                limit_for(&server),
            )
            .await
        {
            Ok(reply) => relay(
                &call.tenant_id,
                reply,
                "Unable to access meeting on server.",
            ),
            Err(e) => call_failed(
                &server,
                call.name,
                &e,
                "Unable to access meeting on server.",
            ),
        },
    )
}

async fn insert_document(app: &App, call: Call) -> ApiResult {
    let Some((meeting, Some(server))) = lookup(app, &call).await? else {
        return Err(ApiError::meeting_not_found());
    };
    let mut p = call.params.only(&["meetingID"]);
    p.set("meetingID", meeting.bbb_id);
    let tenant_id = call.tenant_id.clone();
    let upload = match call.body {
        CallBody::Stream(incoming) => Some(Upload {
            body: reqwest::Body::wrap_stream(BodyDataStream::new(incoming)),
        }),
        CallBody::Xml(b) => Some(Upload { body: b.into() }),
        _ => None,
    };
    Ok(
        match app
            .bbb
            .call(
                &server,
                "insertDocument",
                &p,
                app.config.outbound_algorithm,
                upload,
                limit_for(&server),
            )
            .await
        {
            Ok(reply) => relay(&tenant_id, reply, "Unable to insert document on server."),
            Err(e) => call_failed(
                &server,
                "insertDocument",
                &e,
                "Unable to insert document on server.",
            ),
        },
    )
}

/// Asks every online, non-disabled server in parallel and merges their meetings. A server
/// that fails or does not answer within `GET_MEETINGS_TIMEOUT` is left out, not fatal.
async fn get_meetings(app: &App, call: Call) -> ApiResult {
    let servers = app.store.servers().await?;
    let limit = app.config.get_meetings_timeout;
    // A tenant sees only meetings tagged with its id, and the bare host (or a load balancer
    // without multitenancy) only meetings without a tenant: Scalelite's filter on the
    // `tenant-id` metadata, which it applies in single-tenant mode too.
    let empty = &Params::new();
    let alg = app.config.outbound_algorithm;
    let asks = servers
        .iter()
        .filter(|s| s.online && s.state != ServerState::Disabled)
        .map(|s| async move {
            let r = app
                .bbb
                .call(s, "getMeetings", empty, alg, None, Some(limit))
                .await;
            (s, r)
        });
    let mut merged = Vec::new();
    for (server, result) in join_all(asks).await {
        match result {
            Ok(reply) if reply.success() => {
                match tenant_meetings(reply.body, &call.tenant_id).await {
                    Some(xml) => merged.extend_from_slice(&xml),
                    None => {
                        tracing::warn!(server = %server.id, "getMeetings answer could not be read")
                    }
                }
            }
            Ok(reply) => {
                tracing::warn!(server = %server.id, key = %reply.head.message_key, "getMeetings refused")
            }
            Err(e) => tracing::warn!(server = %server.id, error = %e, "getMeetings failed"),
        }
    }
    if merged.is_empty() {
        return Ok(no_meetings());
    }
    let mut body = Vec::with_capacity(merged.len() + 80);
    body.extend_from_slice(b"<response><returncode>SUCCESS</returncode><meetings>");
    body.extend_from_slice(&unscope_text(&call.tenant_id, &merged));
    body.extend_from_slice(b"</meetings></response>");
    Ok(response::xml(body))
}

/// The `<meeting>` elements of one server's getMeetings answer that belong to `tenant_id`,
/// as BBB wrote them; `None` if the answer cannot be read. A large answer (tens of
/// thousands of meetings) is read on the blocking pool ([`crate::bbb::read_answer`]), so
/// the requests queued on this async worker keep moving.
async fn tenant_meetings(body: Bytes, tenant_id: &str) -> Option<Vec<u8>> {
    let tenant_id = tenant_id.to_owned();
    crate::bbb::read_answer(body, move |body| {
        let mut out = Vec::new();
        for e in parse_meetings(body)? {
            if belongs_to(&e.metadata, &tenant_id) {
                out.extend_from_slice(&body[e.raw]);
            }
        }
        Some(out)
    })
    .await
    .ok()
    .flatten()
}

/// Whether a meeting's metadata says it belongs to `tenant_id` (empty: to no tenant).
fn belongs_to(metadata: &[(String, String)], tenant_id: &str) -> bool {
    let tagged = metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("tenant-id"))
        .map(|(_, v)| v.trim())
        .unwrap_or("");
    tagged == tenant_id
}
