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

/// What the store already maps: the BBB-side ID and the voice bridge of every meeting.
#[derive(Debug, Default)]
pub struct Known {
    pub bbb_ids: HashSet<String>,
    pub voice_bridges: HashSet<String>,
}

impl Known {
    pub fn of(meetings: Vec<Meeting>) -> Known {
        let mut k = Known::default();
        for m in meetings {
            k.bbb_ids.insert(m.bbb_id);
            k.voice_bridges.insert(m.voice_bridge);
        }
        k
    }
}

/// Decides, for every meeting on `server_id` that no mapping points at (`known`), whether
/// and as what to adopt it. A meeting whose voice bridge another mapped meeting (or an
/// earlier one of this poll) has is left: BBB servers pick their bridges independently,
/// and a dial-in must reach one room (decided here, so such a meeting costs no placement
/// attempt on every poll). The tenant comes
/// from a scoped ID (`room~<tenant uuid>`, a meeting Ferrolite created) or, for a plain ID,
/// from its `tenant-id` metadatum (a meeting Scalelite created for a tenant: Scalelite
/// sends the front end's ID unchanged); either must name a known tenant. The adopted
/// meeting keeps the ID BBB knows it by as its `bbb_id`.
pub fn adoptions(
    server_id: &str,
    entries: &[MeetingEntry],
    known: &Known,
    tenants: &HashSet<String>,
    multitenancy: bool,
    now_ms: i64,
) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut bridges_taken: HashSet<&str> = HashSet::new();
    for e in entries {
        if e.meeting_id.is_empty() || e.load.is_breakout || known.bbb_ids.contains(&e.meeting_id) {
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
                    .find(|(k, v)| k.eq_ignore_ascii_case("tenant-id") && !v.trim().is_empty())
                    .map(|(_, v)| v.trim());
                match meta_tenant.filter(|_| multitenancy) {
                    Some(t) if tenants.contains(t) => (t.to_string(), e.meeting_id.clone()),
                    Some(_) => {
                        out.push(leave(
                            "its tenant-id metadata names no tenant Ferrolite knows (import the tenants first)",
                        ));
                        continue;
                    }
                    None => (String::new(), e.meeting_id.clone()),
                }
            }
        };
        if e.voice_bridge.is_empty() {
            out.push(leave("BBB reported no voice bridge"));
            continue;
        }
        if known.voice_bridges.contains(&e.voice_bridge) || !bridges_taken.insert(&e.voice_bridge) {
            out.push(leave(VOICE_BRIDGE_TAKEN));
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
            bbb_id: e.meeting_id.clone(),
        }));
    }
    out
}

/// Held by the one server whose adoptions run (see [`adopt_unknown`]).
static ADOPTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const VOICE_BRIDGE_TAKEN: &str = "its voice bridge is used by another meeting";

static LEFT: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn first_time(key: String) -> bool {
    let mut g = LEFT.lock().unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(HashSet::new).insert(key)
}

/// Adopts the unknown meetings a successful poll of `server` found.
pub async fn adopt_unknown(app: &App, server: &Server, entries: &[MeetingEntry]) {
    let unread = |e: crate::store::StoreError| {
        tracing::warn!(server = %server.id, error = %e, "could not read meetings to adopt unknown ones");
    };
    // Nearly every poll finds only meetings the store has on this server: check those
    // first, rather than reading the whole pool's meetings once per server per cycle.
    let on_server = match app.store.meetings_on(&server.id).await {
        Ok(ms) => ms,
        Err(e) => return unread(e),
    };
    let all_known = crate::blocking::run(|| {
        let known: HashSet<&str> = on_server.iter().map(|m| m.bbb_id.as_str()).collect();
        entries
            .iter()
            .filter(|e| !e.meeting_id.is_empty() && !e.load.is_breakout)
            .all(|e| known.contains(e.meeting_id.as_str()))
    });
    if all_known {
        return;
    }
    // One server's adoptions at a time: each reads the whole pool's meetings (a copy per
    // concurrent poll would be hundreds of MB on the first cycle after a switch), and each
    // then sees the meetings the one before it adopted.
    let _one_at_a_time = ADOPTING.lock().await;
    let known = match app.store.meetings().await {
        Ok(ms) => crate::blocking::run(|| Known::of(ms)),
        Err(e) => return unread(e),
    };
    let tenants: HashSet<String> = match app.store.tenants().await {
        Ok(ts) => ts.into_iter().map(|t| t.id).collect(),
        Err(_) => HashSet::new(),
    };
    let decisions = crate::blocking::run(|| {
        adoptions(
            &server.id,
            entries,
            &known,
            &tenants,
            app.config.tenancy.enabled,
            crate::store::now_ms(),
        )
    });
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
            choose: std::sync::Arc::new(choose),
            now_ms: m.created_at,
            max_tenant_meetings: None,
            bbb_id: Some(&m.bbb_id),
            only_server: Some(&m.server_id),
        };
        match app.store.place_meeting(&req).await {
            Ok(PlaceOutcome::Placed(..)) => tracing::info!(
                server = %server.id, meeting = %m.meeting_id, tenant = %m.tenant_id,
                bbb_id = %m.bbb_id, voice_bridge = %m.voice_bridge,
                "adopted a meeting the store did not know"
            ),
            Ok(PlaceOutcome::NoVoiceBridge) => {
                if first_time(format!("{}/{}", server.id, m.meeting_id)) {
                    tracing::warn!(server = %server.id, meeting = %m.meeting_id, voice_bridge = %m.voice_bridge, "meeting not adopted: {VOICE_BRIDGE_TAKEN}");
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
    fn unknown_meetings_are_adopted_with_their_tenant_and_bbb_side_id() {
        let tenants: HashSet<String> = ["t1".to_string()].into();
        let known = Known {
            bbb_ids: ["known".to_string()].into(),
            voice_bridges: ["70001".to_string()].into(),
        };
        let tagged = |id: &str, vb: &str, tenant: &str| {
            let mut e = entry(id, vb);
            e.metadata.push(("tenant-id".into(), tenant.into()));
            e
        };
        let mut breakout = entry("br", "74444");
        breakout.load.is_breakout = true;
        let es = vec![
            entry("known", "70001"),
            entry("room~t1", "71111"),
            entry("lonely", "72222"),
            tagged("plain-t", "73333", "t1"),
            tagged("stranger", "75555", "t-unknown"),
            breakout,
            entry("novb", ""),
        ];
        let d = adoptions("s1", &es, &known, &tenants, true, 5);
        let adopted: Vec<(&str, &str, &str)> = d
            .iter()
            .filter_map(|d| match d {
                Decision::Adopt(m) => Some((
                    m.tenant_id.as_str(),
                    m.meeting_id.as_str(),
                    m.bbb_id.as_str(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            adopted,
            vec![
                ("t1", "room", "room~t1"),
                ("", "lonely", "lonely"),
                // Scalelite's tenant meeting: the tenant from its metadata, BBB's plain ID kept.
                ("t1", "plain-t", "plain-t"),
            ]
        );
        let left: Vec<&str> = d
            .iter()
            .filter_map(|d| match d {
                Decision::Leave { bbb_id, .. } => Some(bbb_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(left, vec!["stranger", "novb"]);
        // Without multitenancy every ID is plain and no metadata names a tenant.
        let d = adoptions("s1", &es[1..4], &known, &tenants, false, 5);
        let plain: Vec<(&str, &str)> = d
            .iter()
            .filter_map(|d| match d {
                Decision::Adopt(m) => Some((m.tenant_id.as_str(), m.bbb_id.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            plain,
            vec![("", "room~t1"), ("", "lonely"), ("", "plain-t")]
        );
    }

    #[test]
    fn a_meeting_on_a_bridge_already_in_use_is_left_without_a_placement() {
        let known = Known {
            bbb_ids: ["mapped".to_string()].into(),
            voice_bridges: ["70000".to_string()].into(),
        };
        let es = vec![
            entry("mapped", "70000"),
            entry("same-as-mapped", "70000"),
            entry("first", "71000"),
            entry("second-on-71000", "71000"),
            entry("free", "72000"),
        ];
        let d = adoptions("s1", &es, &known, &HashSet::new(), false, 5);
        let summary: Vec<(&str, Option<&str>)> = d
            .iter()
            .map(|d| match d {
                Decision::Adopt(m) => (m.bbb_id.as_str(), None),
                Decision::Leave { bbb_id, reason } => (bbb_id.as_str(), Some(reason.as_str())),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("same-as-mapped", Some(VOICE_BRIDGE_TAKEN)),
                ("first", None),
                ("second-on-71000", Some(VOICE_BRIDGE_TAKEN)),
                ("free", None),
            ]
        );
    }
}
