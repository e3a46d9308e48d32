//! Placing a meeting without running code inside the backend's transaction: read a
//! [`PlacementSnapshot`], decide with pure functions ([`decide`], which calls the chooser
//! from `balancer.rs`), then hand the backend a [`PlacementCommit`] that it applies
//! atomically only if what was observed still holds; on a [`Conflict`] the whole round is
//! tried again, a bounded number of times.
//!
//! The commit is a compare-and-set over plain data (no business rule is evaluated by the
//! backend beyond "the tenant runs fewer than N meetings"), so it is one SQLite `IMMEDIATE`
//! transaction, one PostgreSQL transaction (`SELECT … FOR UPDATE` on the server row, the
//! unique indexes on the meeting key and the voice bridge) or one Redis Lua script
//! (`HGET`/`SCARD`/`SETNX` checks then `HSET`/`SADD`/`HINCRBYFLOAT`), all with the same
//! guarantees: concurrent creates of one room land on one server, two meetings never share
//! a voice bridge, and a tenant limit holds under concurrency.
//!
//! [`place`] is the round for backends whose snapshot and commit are separate round trips
//! (Redis). SQLite runs the same [`decide`] between its snapshot and its commit inside one
//! transaction under its writer lock (`SqliteStore::place_meeting`), so it never conflicts.

use super::{ChoiceError, Meeting, PlaceOutcome, PlaceRequest, PoolStore, Server, ServerState};
use super::{StoreError, StoreResult};

/// How many snapshot-decide-commit rounds a placement tries before giving up.
pub const MAX_ATTEMPTS: u32 = 32;

/// What placement reads first, as one consistent view.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlacementSnapshot {
    /// The meeting's current mapping, if it has one.
    pub existing: Option<Meeting>,
    /// Every server with its state, health and load.
    pub servers: Vec<Server>,
    /// How many meetings the meeting's tenant runs (only read when it has a limit).
    pub tenant_meetings: u32,
    /// The request's candidate voice bridges that were free, in the order given.
    pub free_voice_bridges: Vec<String>,
}

/// The facts about the chosen server that the decision rested on: what made it eligible and
/// the load it was compared by. The commit checks that they are unchanged (equality on
/// data, so every backend can check them). Including the load means two concurrent creates
/// that picked the same server cannot both commit on a stale load: the second retries and
/// sees the first, so a burst spreads as if the decisions had been taken one by one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerGuard {
    pub state: ServerState,
    pub online: bool,
    pub load: Option<f64>,
}

impl ServerGuard {
    pub fn of(s: &Server) -> ServerGuard {
        ServerGuard {
            state: s.state,
            online: s.online,
            load: s.load,
        }
    }
}

/// What the backend writes atomically, if and only if: the meeting is still absent, the
/// server still matches `guard`, the tenant runs fewer than `max_tenant_meetings`, and the
/// meeting's voice bridge is free. It then records the meeting and, when the server has a
/// load, raises it by the server's multiplier.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementCommit {
    pub meeting: Meeting,
    pub guard: ServerGuard,
    pub max_tenant_meetings: Option<u32>,
}

/// Which observation no longer held at commit time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The server is gone or its state, health or load changed.
    Server,
    /// The tenant reached its limit meanwhile.
    TenantLimit,
    /// Another meeting took the voice bridge meanwhile.
    VoiceBridge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommitOutcome {
    /// Recorded; the server as it is after its load was raised.
    Placed(Server),
    /// A concurrent create recorded the meeting first: its mapping.
    Existing(Meeting),
    Conflict(Conflict),
}

/// What to do with a snapshot: answer now, or try to commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Answer(PlaceOutcome),
    Commit(PlacementCommit),
}

/// The pure placement decision over one snapshot.
pub fn decide(req: &PlaceRequest<'_>, snap: &PlacementSnapshot) -> Decision {
    if let Some(m) = &snap.existing {
        return Decision::Answer(PlaceOutcome::Existing(m.clone()));
    }
    if let Some(limit) = req.max_tenant_meetings {
        if snap.tenant_meetings >= limit {
            return Decision::Answer(PlaceOutcome::TenantLimit(limit));
        }
    }
    let id = match (req.choose)(&snap.servers) {
        Ok(id) => id,
        Err(e) => return Decision::Answer(PlaceOutcome::Refused(e)),
    };
    let Some(server) = snap.servers.iter().find(|s| s.id == id) else {
        return Decision::Answer(PlaceOutcome::Refused(ChoiceError::NoServer));
    };
    let Some(voice_bridge) = snap.free_voice_bridges.first() else {
        return Decision::Answer(PlaceOutcome::NoVoiceBridge);
    };
    Decision::Commit(PlacementCommit {
        meeting: Meeting {
            tenant_id: req.tenant_id.to_string(),
            meeting_id: req.meeting_id.to_string(),
            server_id: server.id.clone(),
            moderator_pw: req.moderator_pw.to_string(),
            voice_bridge: voice_bridge.clone(),
            created_at: req.now_ms,
            bbb_id: super::bbb_id_or_scoped(req.bbb_id, req.tenant_id, req.meeting_id),
        },
        guard: ServerGuard::of(server),
        max_tenant_meetings: req.max_tenant_meetings,
    })
}

/// Snapshot, decide, commit; again on a conflict (after a short random pause that grows
/// with the attempts, so colliding creates drift apart), at most [`MAX_ATTEMPTS`] times.
pub async fn place<S: PoolStore + ?Sized>(
    store: &S,
    req: &PlaceRequest<'_>,
) -> StoreResult<PlaceOutcome> {
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            let pause = {
                use rand::Rng;
                rand::thread_rng().gen_range(0..=200 * attempt.min(10) as u64)
            };
            tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
        }
        let snap = store
            .placement_snapshot(
                req.tenant_id,
                req.meeting_id,
                req.max_tenant_meetings.is_some(),
                req.voice_bridges,
            )
            .await?;
        let commit = match decide(req, &snap) {
            Decision::Answer(a) => return Ok(a),
            Decision::Commit(c) => c,
        };
        match store.commit_placement(&commit).await? {
            CommitOutcome::Placed(server) => {
                return Ok(PlaceOutcome::Placed(commit.meeting, server))
            }
            CommitOutcome::Existing(m) => return Ok(PlaceOutcome::Existing(m)),
            CommitOutcome::Conflict(c) => {
                tracing::debug!(meeting = %req.meeting_id, conflict = ?c, "placement conflicted; trying again")
            }
        }
    }
    Err(StoreError::Busy(format!(
        "placing meeting '{}' conflicted {MAX_ATTEMPTS} times",
        req.meeting_id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, online: bool) -> Server {
        let mut s = Server::new(id.into(), "u".into(), "s".into(), 1.0, None);
        s.state = ServerState::Enabled;
        s.online = online;
        s.load = Some(0.0);
        s
    }

    fn first_available(servers: &[Server]) -> Result<String, ChoiceError> {
        servers
            .iter()
            .find(|s| s.available())
            .map(|s| s.id.clone())
            .ok_or(ChoiceError::NoServer)
    }

    #[test]
    fn the_decision_answers_or_commits_with_the_guard_it_observed() {
        let vbs = vec!["1".to_string()];
        let req = PlaceRequest {
            tenant_id: "t",
            meeting_id: "m",
            moderator_pw: "pw",
            voice_bridges: &vbs,
            choose: std::sync::Arc::new(first_available),
            now_ms: 5,
            max_tenant_meetings: Some(2),
            bbb_id: None,
            only_server: None,
        };
        let mut snap = PlacementSnapshot {
            servers: vec![server("a", false), server("b", true)],
            free_voice_bridges: vec!["1".into()],
            ..Default::default()
        };
        let Decision::Commit(c) = decide(&req, &snap) else {
            panic!("expected a commit")
        };
        assert_eq!(
            (
                c.meeting.server_id.as_str(),
                c.meeting.voice_bridge.as_str()
            ),
            ("b", "1")
        );
        assert_eq!(c.guard, ServerGuard::of(&snap.servers[1]));
        assert_eq!(c.max_tenant_meetings, Some(2));

        snap.tenant_meetings = 2;
        assert_eq!(
            decide(&req, &snap),
            Decision::Answer(PlaceOutcome::TenantLimit(2))
        );
        snap.tenant_meetings = 0;
        snap.free_voice_bridges.clear();
        assert_eq!(
            decide(&req, &snap),
            Decision::Answer(PlaceOutcome::NoVoiceBridge)
        );
        snap.servers[1].online = false;
        assert_eq!(
            decide(&req, &snap),
            Decision::Answer(PlaceOutcome::Refused(ChoiceError::NoServer))
        );
        let m = c.meeting.clone();
        snap.existing = Some(m.clone());
        assert_eq!(
            decide(&req, &snap),
            Decision::Answer(PlaceOutcome::Existing(m))
        );
    }
}
