//! Adopting meetings a poll finds on a server that the store does not know: meetings
//! created before the switch from Scalelite, or after the store was restored from a backup.
//! Adopted, they can be joined and ended, and a new create of the same room goes to the
//! server that holds it instead of splitting the class.
//!
//! [`adoptions`] is the pure decision; [`adopt_unknown`] is the poller's call after a
//! successful poll. Each adoption is logged once (it is in the store afterwards); a meeting
//! that cannot be adopted is logged once per process.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::app::App;
use crate::bbb::xml::MeetingEntry;
use crate::store::{ChoiceError, Meeting, PlaceOutcome, PlaceRequest, Server};
use crate::tenant::SCOPE_SEPARATOR;

/// What to do with one meeting the store does not know.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Adopt(Meeting),
    /// Cannot be represented; the reason is logged once.
    Leave {
        bbb_id: String,
        reason: String,
    },
}

/// Decides, for every meeting on `server_id` that no mapping points at (`known` holds the
/// BBB-side IDs of every mapped meeting), whether and as what to adopt it. The tenant comes
/// from a scoped ID (`room~<tenant uuid>`) of a known tenant; a plain ID carrying a
/// `tenant-id` metadatum (created by Scalelite for a tenant) cannot be mapped yet.
pub fn adoptions(
    server_id: &str,
    entries: &[MeetingEntry],
    known: &HashSet<String>,
    tenants: &HashSet<String>,
    multitenancy: bool,
    now_ms: i64,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for e in entries {
        if e.meeting_id.is_empty() || e.load.is_breakout || known.contains(&e.meeting_id) {
            continue;
        }
        let leave = |reason: &str| Decision::Leave {
            bbb_id: e.meeting_id.clone(),
            reason: reason.to_string(),
        };
        let scoped = e
            .meeting_id
            .rsplit_once(SCOPE_SEPARATOR)
            .filter(|(m, t)| multitenancy && !m.is_empty() && tenants.contains(*t));
        let (tenant_id, meeting_id) = match scoped {
            Some((m, t)) => (t.to_string(), m.to_string()),
            None => {
                let meta_tenant = e
                    .metadata
                    .iter()
                    .find(|(k, v)| k == "tenant-id" && !v.is_empty());
                if multitenancy && meta_tenant.is_some() {
                    out.push(leave(
                        "a tenant meeting with a plain ID (created by Scalelite); Ferrolite cannot map it yet",
                    ));
                    continue;
                }
                (String::new(), e.meeting_id.clone())
            }
        };
        if e.voice_bridge.is_empty() {
            out.push(leave("BBB reported no voice bridge"));
            continue;
        }
        out.push(Decision::Adopt(Meeting {
            tenant_id,
            meeting_id,
            server_id: server_id.to_string(),
            moderator_pw: e.moderator_pw.clone(),
            voice_bridge: e.voice_bridge.clone(),
            created_at: if e.load.create_time_ms > 0 {
                e.load.create_time_ms
            } else {
                now_ms
            },
        }));
    }
    out
}

static LEFT: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn first_time(key: String) -> bool {
    let mut g = LEFT.lock().unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(HashSet::new).insert(key)
}

/// Adopts the unknown meetings a successful poll of `server` found.
pub async fn adopt_unknown(app: &App, server: &Server, entries: &[MeetingEntry]) {
    let known: HashSet<String> = match app.store.meetings().await {
        Ok(ms) => ms
            .iter()
            .map(|m| crate::tenant::scope(&m.tenant_id, &m.meeting_id))
            .collect(),
        Err(e) => {
            tracing::warn!(server = %server.id, error = %e, "could not read meetings to adopt unknown ones");
            return;
        }
    };
    if entries.iter().all(|e| known.contains(&e.meeting_id)) {
        return;
    }
    let tenants: HashSet<String> = match app.store.tenants().await {
        Ok(ts) => ts.into_iter().map(|t| t.id).collect(),
        Err(_) => HashSet::new(),
    };
    let decisions = adoptions(
        &server.id,
        entries,
        &known,
        &tenants,
        app.config.tenancy.enabled,
        crate::store::now_ms(),
    );
    for d in decisions {
        let m = match d {
            Decision::Adopt(m) => m,
            Decision::Leave { bbb_id, reason } => {
                if first_time(format!("{}/{bbb_id}", server.id)) {
                    tracing::warn!(server = %server.id, meeting = %bbb_id, %reason, "meeting not adopted");
                }
                continue;
            }
        };
        let sid = server.id.clone();
        let choose = move |_: &[Server]| -> Result<String, ChoiceError> { Ok(sid.clone()) };
        let req = PlaceRequest {
            tenant_id: &m.tenant_id,
            meeting_id: &m.meeting_id,
            moderator_pw: &m.moderator_pw,
            voice_bridges: std::slice::from_ref(&m.voice_bridge),
            choose: &choose,
            now_ms: m.created_at,
            max_tenant_meetings: None,
        };
        match app.store.place_meeting(&req).await {
            Ok(PlaceOutcome::Placed(..)) => tracing::info!(
                server = %server.id, meeting = %m.meeting_id, tenant = %m.tenant_id,
                voice_bridge = %m.voice_bridge, "adopted a meeting the store did not know"
            ),
            Ok(PlaceOutcome::NoVoiceBridge) => {
                if first_time(format!("{}/{}", server.id, m.meeting_id)) {
                    tracing::warn!(server = %server.id, meeting = %m.meeting_id, voice_bridge = %m.voice_bridge, "meeting not adopted: its voice bridge is used by another meeting");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(server = %server.id, meeting = %m.meeting_id, error = %e, "could not adopt a meeting")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, vb: &str) -> MeetingEntry {
        MeetingEntry {
            meeting_id: id.into(),
            voice_bridge: vb.into(),
            moderator_pw: "mp".into(),
            ..MeetingEntry::default()
        }
    }

    #[test]
    fn unknown_meetings_are_adopted_with_their_tenant_from_the_scoped_id() {
        let tenants: HashSet<String> = ["t1".to_string()].into();
        let known: HashSet<String> = ["known".to_string()].into();
        let mut tagged = entry("plain-t", "73333");
        tagged.metadata.push(("tenant-id".into(), "t1".into()));
        let mut breakout = entry("br", "74444");
        breakout.load.is_breakout = true;
        let es = vec![
            entry("known", "70001"),
            entry("room~t1", "71111"),
            entry("lonely", "72222"),
            tagged,
            breakout,
            entry("novb", ""),
        ];
        let d = adoptions("s1", &es, &known, &tenants, true, 5);
        let adopted: Vec<(String, String)> = d
            .iter()
            .filter_map(|d| match d {
                Decision::Adopt(m) => Some((m.tenant_id.clone(), m.meeting_id.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            adopted,
            vec![
                ("t1".into(), "room".into()),
                (String::new(), "lonely".into())
            ]
        );
        assert_eq!(
            d.iter()
                .filter(|d| matches!(d, Decision::Leave { .. }))
                .count(),
            2
        );
        // Without multitenancy every ID is plain.
        let d = adoptions("s1", &es[1..2], &known, &tenants, false, 5);
        assert!(
            matches!(&d[0], Decision::Adopt(m) if m.meeting_id == "room~t1" && m.tenant_id.is_empty())
        );
    }
}
