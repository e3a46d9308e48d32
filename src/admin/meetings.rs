//! Meeting actions shared by the CLI and the admin API: select the store's meetings by ID,
//! end one (forgotten in the store, then `end` on its BBB server), ask a server about a
//! meeting (`getMeetingInfo`) or about all it runs (`getMeetings`). BBB answers are read
//! with the `bbb` parsers; nothing here prints.

use crate::app::App;
use crate::bbb::params::Params;
use crate::store::{Meeting, Server};

use super::{AdminError, AdminResult};

/// The meetings named by `ids` (all of them when `ids` is empty). With tenants several
/// meetings may share an ID: each tenant's is selected. An ID that names none is an error.
pub fn select(all: Vec<Meeting>, ids: &[String]) -> AdminResult<Vec<Meeting>> {
    if ids.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for id in ids {
        let hits: Vec<_> = all
            .iter()
            .filter(|m| &m.meeting_id == id)
            .cloned()
            .collect();
        if hits.is_empty() {
            return Err(AdminError::NotFound(format!(
                "no meeting with id '{id}' (see `ferrolite meetings list`)"
            )));
        }
        out.extend(hits);
    }
    Ok(out)
}

/// The store's meetings named by `ids` (all when empty).
pub async fn list(app: &App, ids: &[String]) -> AdminResult<Vec<Meeting>> {
    select(app.store.meetings().await?, ids)
}

/// Sends `end` for a meeting the store has already forgotten; the text of the failure, if
/// it failed (the meeting stays forgotten either way).
pub async fn end_on_server(app: &App, server: &Server, m: &Meeting) -> Option<String> {
    app.end_on_bbb(server, m, None)
        .await
        .err()
        .map(|e| e.to_string())
}

/// Ends one meeting: forgotten in the store, then ended on its server (if that still
/// exists). `Ok(Some(why))`: forgotten, but the server's `end` failed.
pub async fn end(app: &App, m: &Meeting) -> AdminResult<Option<String>> {
    app.store
        .delete_meeting(&m.tenant_id, &m.meeting_id)
        .await?;
    match app.store.server(&m.server_id).await? {
        Some(server) => Ok(end_on_server(app, &server, m)
            .await
            .map(|e| format!("{} on {}: end failed: {e}", m.meeting_id, server.id))),
        None => Ok(None),
    }
}

/// What a meeting's server says about it.
#[derive(Debug, Clone)]
pub struct MeetingInfo {
    pub meeting: Meeting,
    pub server: Server,
    /// `getMeetingInfo`'s top-level fields (`meetingName`, `createDate`, …).
    pub fields: Vec<(String, String)>,
}

impl MeetingInfo {
    /// A field of the answer, empty when absent.
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Asks the meeting's server about it (`getMeetingInfo`, with the ID BBB knows it by).
pub async fn info(app: &App, id: &str) -> AdminResult<MeetingInfo> {
    let m = list(app, std::slice::from_ref(&id.to_string()))
        .await?
        .remove(0);
    let server = app.store.server(&m.server_id).await?.ok_or_else(|| {
        AdminError::NotFound(format!(
            "meeting '{id}' is mapped to server '{}', which was removed",
            m.server_id
        ))
    })?;
    let p: Params = [("meetingID", m.bbb_id.as_str())].into_iter().collect();
    let reply = app
        .bbb
        .call(
            &server,
            "getMeetingInfo",
            &p,
            app.config.outbound_algorithm,
            None,
            None,
        )
        .await
        .map_err(|e| {
            AdminError::Invalid(format!(
                "server '{}' did not answer getMeetingInfo: {e}",
                server.id
            ))
        })?;
    if !reply.success() {
        return Err(AdminError::Invalid(format!(
            "server '{}' answered {}: {}",
            server.id, reply.head.message_key, reply.head.message
        )));
    }
    let fields = crate::bbb::xml::parse_fields(&reply.body).unwrap_or_default();
    Ok(MeetingInfo {
        meeting: m,
        server,
        fields,
    })
}

/// A server's `getMeetings` answer (within `limit`, if given).
pub async fn get_meetings(
    app: &App,
    server: &Server,
    limit: Option<std::time::Duration>,
) -> Result<crate::bbb::Reply, crate::bbb::CallError> {
    app.bbb
        .call(
            server,
            "getMeetings",
            &Params::new(),
            app.config.outbound_algorithm,
            None,
            limit,
        )
        .await
}

/// The meeting IDs each server named by `ids` (all when empty) runs now, by `getMeetings`;
/// `None` for a server that did not answer.
pub async fn running_on(
    app: &App,
    ids: &[String],
) -> AdminResult<Vec<(Server, Option<Vec<String>>)>> {
    let all = app.store.servers().await?;
    for id in ids {
        if !all.iter().any(|s| &s.id == id) {
            return Err(AdminError::NotFound(format!(
                "no server with id '{id}' (see `ferrolite servers`)"
            )));
        }
    }
    let mut out = Vec::new();
    for s in all
        .into_iter()
        .filter(|s| ids.is_empty() || ids.contains(&s.id))
    {
        let names = get_meetings(app, &s, None)
            .await
            .ok()
            .and_then(|r| crate::bbb::parse_meetings(&r.body))
            .map(|ms| ms.into_iter().map(|m| m.meeting_id).collect());
        out.push((s, names));
    }
    Ok(out)
}
