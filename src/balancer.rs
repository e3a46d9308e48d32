//! Load models and server choice: pure functions, no I/O.
//!
//! The poller turns each server's `getMeetings` answer into one load number with
//! [`server_load`]; `create` picks a server with [`choose_server`], called by the store
//! inside the transaction that records the meeting, so two creates never act on the same
//! stale view. Voice bridges (conference PINs) come from [`voice_bridge_candidates`].

use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::config::{LoadModel, LoadWeights};
use crate::store::{ChoiceError, Server};

pub use crate::bbb::xml::MeetingLoad;

/// Parameters of the load models (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct LoadParams {
    pub model: LoadModel,
    pub min_user_count: u32,
    pub join_buffer_ms: i64,
    pub weights: LoadWeights,
}

/// The load of one meeting, before the server's multiplier.
pub fn meeting_load(m: &MeetingLoad, now_ms: i64, p: &LoadParams) -> f64 {
    let age_ms = (now_ms - m.create_time_ms).max(0);
    let young = age_ms < p.join_buffer_ms;
    match p.model {
        LoadModel::Scalelite => {
            if m.is_breakout {
                return 0.0;
            }
            // As Scalelite: participantCount already includes moderators, so they count twice.
            let attendees = m.participants + m.moderators;
            if young {
                attendees.max(p.min_user_count) as f64
            } else {
                attendees as f64
            }
        }
        LoadModel::Weighted => {
            let w = &p.weights;
            let mut load = w.meeting
                + m.participants as f64 * w.user
                + m.voice as f64 * w.voice
                + m.video as f64 * w.video;
            if young && p.join_buffer_ms > 0 {
                // Seats reserved for people about to join, shrinking linearly as the meeting ages
                // and as real participants take them.
                let remaining = 1.0 - age_ms as f64 / p.join_buffer_ms as f64;
                let reserved =
                    (p.min_user_count as f64 * remaining - m.participants as f64).max(0.0);
                load += reserved * w.user;
            }
            load
        }
    }
}

/// A server's load: the sum of its meetings' loads times its multiplier.
pub fn server_load(meetings: &[MeetingLoad], multiplier: f64, now_ms: i64, p: &LoadParams) -> f64 {
    meetings
        .iter()
        .fold(0.0, |acc, m| acc + meeting_load(m, now_ms, p))
        * multiplier
}

/// A parsed `meta_server-tag`: `a;b` lists tags, a trailing `!` makes them required.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSpec {
    pub tags: Vec<String>,
    pub required: bool,
}

impl TagSpec {
    pub fn parse(spec: Option<&str>) -> TagSpec {
        let spec = spec.unwrap_or("").trim();
        let (body, required) = match spec.strip_suffix('!') {
            Some(b) => (b, true),
            None => (spec, false),
        };
        let tags: Vec<String> = body
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let required = required && !tags.is_empty();
        TagSpec { tags, required }
    }
}

/// Picks the available server with the lowest load for a new meeting.
///
/// Servers with a matching tag (an untagged server matches `none`) are preferred; without a
/// match, a required tag fails and an optional one falls back to untagged servers. Untagged
/// requests never land on tagged servers. Ties go to the lowest id, so choices are stable.
pub fn choose_server(
    servers: &[Server],
    spec: &TagSpec,
    exclude: &[String],
) -> Result<String, ChoiceError> {
    let available: Vec<&Server> = servers
        .iter()
        .filter(|s| s.available() && !exclude.contains(&s.id))
        .collect();
    if available.is_empty() {
        return Err(ChoiceError::NoServer);
    }
    let tag_of = |s: &Server| s.tag.clone().unwrap_or_else(|| "none".to_string());
    let lowest = |c: &mut dyn Iterator<Item = &&Server>| {
        c.min_by(|a, b| {
            a.load
                .unwrap_or(f64::MAX)
                .total_cmp(&b.load.unwrap_or(f64::MAX))
                .then_with(|| a.id.cmp(&b.id))
        })
        .map(|s| s.id.clone())
    };
    if !spec.tags.is_empty() {
        if let Some(id) = lowest(&mut available.iter().filter(|s| spec.tags.contains(&tag_of(s)))) {
            return Ok(id);
        }
        if spec.required {
            return Err(ChoiceError::TagUnavailable(spec.tags.join(";")));
        }
    }
    lowest(&mut available.iter().filter(|s| s.tag.is_none())).ok_or(ChoiceError::NoServer)
}

/// A server's failed creates in a row, for placement (a server that answers FAILED to every
/// create keeps the lowest load and would otherwise attract every create).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateStreak {
    pub failures: u32,
    pub last_failure_ms: i64,
}

impl CreateStreak {
    /// The streak after one create: a success ends it, a failure extends it.
    pub fn after(self, failed: bool, now_ms: i64) -> CreateStreak {
        if failed {
            CreateStreak {
                failures: self.failures.saturating_add(1),
                last_failure_ms: now_ms,
            }
        } else {
            CreateStreak::default()
        }
    }

    /// Whether placement skips the server: `limit` failures in a row, the last one less
    /// than `cooldown_ms` ago. After the cool-down one create may try it again; one more
    /// failure takes it out for another cool-down. A limit of 0 disables the rule.
    pub fn tripped(&self, now_ms: i64, limit: u32, cooldown_ms: i64) -> bool {
        limit > 0 && self.failures >= limit && now_ms - self.last_failure_ms < cooldown_ms
    }
}

/// Whether a create's outcome counts against the server: no usable answer, or FAILED for
/// a reason that is not the request's own (a missing or invalid parameter says nothing
/// about the server, and must not let a client take servers out one by one).
pub fn counts_against_server(failed_key: Option<&str>) -> bool {
    match failed_key {
        None => true,
        Some(k) => {
            let k = k.to_ascii_lowercase();
            !(k.starts_with("missingparam")
                || k.starts_with("invalid")
                || k == "paramerror"
                || k == "idnotunique"
                || k == "duplicatewarning"
                || k == "sizeerror")
        }
    }
}

/// [`choose_server`] that avoids `tripped` servers while any other can take the meeting.
pub fn choose_healthy_server(
    servers: &[Server],
    spec: &TagSpec,
    exclude: &[String],
    tripped: &[String],
) -> Result<String, ChoiceError> {
    if !tripped.is_empty() {
        let all: Vec<String> = exclude.iter().chain(tripped).cloned().collect();
        if let Ok(id) = choose_server(servers, spec, &all) {
            return Ok(id);
        }
    }
    choose_server(servers, spec, exclude)
}

/// The create streaks of this process's servers (placement state, not I/O).
#[derive(Default)]
pub struct CreateHealth {
    streaks: std::sync::Mutex<std::collections::HashMap<String, CreateStreak>>,
}

impl CreateHealth {
    pub fn record(&self, server_id: &str, failed: bool, now_ms: i64) {
        let mut s = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        let next = s
            .get(server_id)
            .copied()
            .unwrap_or_default()
            .after(failed, now_ms);
        if next == CreateStreak::default() {
            s.remove(server_id);
        } else {
            s.insert(server_id.to_string(), next);
        }
    }

    /// The servers placement should skip now.
    pub fn tripped(&self, now_ms: i64, limit: u32, cooldown_ms: i64) -> Vec<String> {
        let s = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        s.iter()
            .filter(|(_, st)| st.tripped(now_ms, limit, cooldown_ms))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Candidate conference PINs for a meeting, in order of preference: the client's own when
/// allowed, then digits drawn from a generator seeded with the meeting ID, so the same room
/// tends to get the same PIN again. The first digit is never 0; BBB's test bridge is skipped.
pub fn voice_bridge_candidates(
    meeting_id: &str,
    len: usize,
    external: Option<&str>,
    count: usize,
) -> Vec<String> {
    let mut out = Vec::with_capacity(count + 1);
    if let Some(vb) = external
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    {
        out.push(vb.to_string());
    }
    let seed: [u8; 32] = Sha256::digest(meeting_id.as_bytes()).into();
    let mut rng = rand::rngs::StdRng::from_seed(seed);
    while out.len() < count {
        let mut s = String::with_capacity(len);
        s.push(char::from(b'0' + rng.gen_range(1..=9)));
        for _ in 1..len {
            s.push(char::from(b'0' + rng.gen_range(0..=9)));
        }
        if s != "99999" && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ServerState;

    fn server(id: &str, load: Option<f64>, tag: Option<&str>) -> Server {
        let mut s = Server::new(
            id.into(),
            format!("http://{id}/bigbluebutton/api"),
            "s".into(),
            1.0,
            tag.map(Into::into),
        );
        s.state = ServerState::Enabled;
        s.online = true;
        s.load = load;
        s
    }

    fn params(model: LoadModel) -> LoadParams {
        LoadParams {
            model,
            min_user_count: 15,
            join_buffer_ms: 15 * 60_000,
            weights: LoadWeights::default(),
        }
    }

    #[test]
    fn scalelite_load_counts_moderators_twice_floors_young_meetings_and_skips_breakouts() {
        let now = 100 * 60_000;
        let p = params(LoadModel::Scalelite);
        let old = MeetingLoad {
            participants: 10,
            moderators: 2,
            create_time_ms: 0,
            ..Default::default()
        };
        let young = MeetingLoad {
            participants: 3,
            moderators: 1,
            create_time_ms: now - 60_000,
            ..Default::default()
        };
        let breakout = MeetingLoad {
            participants: 50,
            is_breakout: true,
            ..Default::default()
        };
        assert_eq!(meeting_load(&old, now, &p), 12.0);
        assert_eq!(meeting_load(&young, now, &p), 15.0);
        assert_eq!(meeting_load(&breakout, now, &p), 0.0);
        assert_eq!(server_load(&[old, young, breakout], 2.0, now, &p), 54.0);
        assert_eq!(server_load(&[], 3.0, now, &p), 0.0);
    }

    #[test]
    fn weighted_load_counts_streams_and_its_reservation_decays_in_milliseconds() {
        let p = params(LoadModel::Weighted);
        let created = 1_700_000_000_000;
        let m = MeetingLoad {
            participants: 5,
            voice: 2,
            video: 1,
            create_time_ms: created,
            ..Default::default()
        };
        // At creation: 1 + 5 + 1 + 2 + reserved (15 - 5) = 19.
        assert_eq!(meeting_load(&m, created, &p), 19.0);
        // Half-way through the buffer the reservation is 7.5 - 5 = 2.5.
        assert_eq!(meeting_load(&m, created + 450_000, &p), 11.5);
        // After the buffer, only what is really there.
        assert_eq!(meeting_load(&m, created + 900_000, &p), 9.0);
    }

    #[test]
    fn picks_the_lowest_load_and_breaks_ties_by_id() {
        let servers = vec![
            server("b", Some(3.0), None),
            server("a", Some(3.0), None),
            server("c", Some(1.0), None),
        ];
        assert_eq!(
            choose_server(&servers, &TagSpec::default(), &[]),
            Ok("c".into())
        );
        assert_eq!(
            choose_server(&servers, &TagSpec::default(), &["c".into()]),
            Ok("a".into())
        );
    }

    #[test]
    fn unavailable_servers_are_never_chosen() {
        let mut offline = server("a", Some(0.0), None);
        offline.online = false;
        let mut cordoned = server("b", Some(0.0), None);
        cordoned.state = ServerState::Cordoned;
        let unknown = server("c", None, None);
        let servers = vec![offline, cordoned, unknown];
        assert_eq!(
            choose_server(&servers, &TagSpec::default(), &[]),
            Err(ChoiceError::NoServer)
        );
        assert_eq!(
            choose_server(&[], &TagSpec::parse(Some("x!")), &[]),
            Err(ChoiceError::NoServer)
        );
    }

    #[test]
    fn tags_prefer_matches_and_fall_back_to_untagged_unless_required() {
        let servers = vec![
            server("t1", Some(5.0), Some("test")),
            server("t2", Some(1.0), Some("test2")),
            server("u", Some(9.0), None),
        ];
        let choose = |spec: &str| choose_server(&servers, &TagSpec::parse(Some(spec)), &[]);
        assert_eq!(choose("test"), Ok("t1".into()));
        assert_eq!(choose("test!"), Ok("t1".into()));
        assert_eq!(choose("test;test2"), Ok("t2".into()));
        assert_eq!(choose("none"), Ok("u".into()));
        assert_eq!(choose("other"), Ok("u".into()));
        assert_eq!(
            choose("other!"),
            Err(ChoiceError::TagUnavailable("other".into()))
        );
        assert_eq!(
            choose(""),
            Ok("u".into()),
            "untagged requests never go to tagged servers"
        );
        assert_eq!(choose("!"), Ok("u".into()));
    }

    #[test]
    fn all_tagged_servers_offline() {
        let mut t = server("t", Some(0.0), Some("gpu"));
        t.online = false;
        let servers = vec![t, server("u", Some(3.0), None)];
        assert_eq!(
            choose_server(&servers, &TagSpec::parse(Some("gpu")), &[]),
            Ok("u".into())
        );
        assert_eq!(
            choose_server(&servers, &TagSpec::parse(Some("gpu!")), &[]),
            Err(ChoiceError::TagUnavailable("gpu".into()))
        );
    }

    #[test]
    fn voice_bridges_are_deterministic_per_meeting() {
        let a = voice_bridge_candidates("room-1", 9, None, 5);
        assert_eq!(a, voice_bridge_candidates("room-1", 9, None, 5));
        assert_ne!(a, voice_bridge_candidates("room-2", 9, None, 5));
        assert!(a.iter().all(|v| v.len() == 9 && !v.starts_with('0')));
        let b = voice_bridge_candidates("room-1", 9, Some("1234567"), 5);
        assert_eq!(b[0], "1234567");
        assert_eq!(
            voice_bridge_candidates("room-1", 9, Some("12a"), 3)[0].len(),
            9
        );
    }

    #[test]
    fn a_failing_streak_takes_a_server_out_for_the_cooldown_then_one_try() {
        let mut st = CreateStreak::default();
        for t in 0..2 {
            st = st.after(true, t);
            assert!(!st.tripped(t, 3, 60_000));
        }
        st = st.after(true, 10);
        assert!(st.tripped(10, 3, 60_000));
        assert!(st.tripped(60_009, 3, 60_000));
        assert!(
            !st.tripped(60_010, 3, 60_000),
            "after the cool-down it may be tried"
        );
        assert!(st.after(true, 60_010).tripped(60_011, 3, 60_000));
        assert_eq!(st.after(false, 60_010), CreateStreak::default());
        assert!(!st.tripped(10, 0, 60_000), "limit 0 disables the rule");
    }

    #[test]
    fn only_server_side_failures_count() {
        assert!(counts_against_server(None));
        assert!(counts_against_server(Some("createFailed")));
        assert!(counts_against_server(Some("checksumError")));
        for k in [
            "missingParamMeetingID",
            "invalidMeetingIdentifier",
            "paramError",
            "idNotUnique",
        ] {
            assert!(!counts_against_server(Some(k)), "{k}");
        }
    }

    #[test]
    fn tripped_servers_are_avoided_unless_nothing_else_can_take_it() {
        let servers = vec![server("a", Some(1.0), None), server("b", Some(5.0), None)];
        let spec = TagSpec::default();
        assert_eq!(
            choose_healthy_server(&servers, &spec, &[], &["a".into()]).unwrap(),
            "b"
        );
        assert_eq!(
            choose_healthy_server(&servers, &spec, &[], &["a".into(), "b".into()]).unwrap(),
            "a"
        );
        assert_eq!(
            choose_healthy_server(&servers, &spec, &["b".into()], &["a".into()]).unwrap(),
            "a"
        );
    }
}
