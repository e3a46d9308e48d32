//! The store contract: the behaviour every backend must show, written once and generic over
//! the traits, so SQLite, Redis and PostgreSQL are held to the same tests.
//!
//! A backend's test calls [`run_all`] (or the suite of each trait it implements: [`pool`],
//! [`outbox`], [`leases`], [`tokens`], [`recordings`]) with a function that makes a fresh,
//! empty store, on a multi-threaded tokio runtime (`#[tokio::test(flavor = "multi_thread")]`):
//! the concurrency cases race real tasks. Each case panics with a message naming the broken
//! promise.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::playback::NewToken;
use super::recordings::{PlaybackFormat, Recording, RecordingQuery};
use super::*;

/// Runs every suite against a backend that implements every trait.
pub async fn run_all<S, F>(make: F)
where
    S: PoolStore + Outbox + LeaseStore + TokenStore + RecordingStore,
    F: Fn() -> S,
{
    pool(&make).await;
    outbox(&make).await;
    leases(&make).await;
    tokens(&make).await;
    recordings(&make).await;
}

/// [`PoolStore`]: placement idempotency, one server per room, unique voice bridges and
/// tenant limits under concurrency, the participant limit's check-and-increment (alone and
/// in the join's lookup).
pub async fn pool<S: PoolStore, F: Fn() -> S>(make: &F) {
    placement_is_idempotent(Arc::new(make())).await;
    concurrent_creates_of_one_room_land_on_one_server(Arc::new(make())).await;
    voice_bridges_stay_unique_under_concurrency(Arc::new(make())).await;
    tenant_limits_hold_under_concurrency(Arc::new(make())).await;
    participant_limit_holds_under_concurrency(Arc::new(make())).await;
    placement_rechecks_the_server(Arc::new(make())).await;
    a_join_looks_up_and_admits_in_one_step(Arc::new(make())).await;
}

/// [`Outbox`]: a callback is queued once; only due, pending ones are handed out.
pub async fn outbox<S: Outbox, F: Fn() -> S>(make: &F) {
    let s = make();
    let now = s_now();
    let cb = |id: &str, next: i64| OutgoingCallback {
        id: id.into(),
        kind: "meeting-ended".into(),
        method: "GET".into(),
        url: format!("http://127.0.0.1:9/{id}"),
        variants: vec![CallbackVariant {
            body: String::new(),
            headers: vec![],
        }],
        attempts: 0,
        next_attempt_at: next,
        created_at: now,
        status: CallbackStatus::Pending,
        last_error: String::new(),
    };
    assert!(s.enqueue_callback(&cb("a", now - 1000)).await.unwrap());
    assert!(
        !s.enqueue_callback(&cb("a", now - 1000)).await.unwrap(),
        "a callback id is queued once"
    );
    assert!(s.enqueue_callback(&cb("b", now + 3_600_000)).await.unwrap());
    assert!(s.enqueue_callback(&cb("c", now - 500)).await.unwrap());
    let due: Vec<String> = s
        .due_callbacks(now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(due, ["a", "c"], "due callbacks, oldest attempt first");
    assert_eq!(
        s.due_callbacks(now, 1).await.unwrap().len(),
        1,
        "the limit holds"
    );
    s.update_callback("a", CallbackStatus::Delivered, 1, 0, "")
        .await
        .unwrap();
    s.update_callback("c", CallbackStatus::Pending, 1, now + 60_000, "timeout")
        .await
        .unwrap();
    assert!(
        s.due_callbacks(now, 10).await.unwrap().is_empty(),
        "delivered and postponed callbacks are not due"
    );
    let all = s.callbacks().await.unwrap();
    let a = all.iter().find(|c| c.id == "a").unwrap();
    assert_eq!((a.status, a.attempts), (CallbackStatus::Delivered, 1));
    let c = all.iter().find(|c| c.id == "c").unwrap();
    assert_eq!(
        (c.status, c.last_error.as_str()),
        (CallbackStatus::Pending, "timeout")
    );
}

/// [`LeaseStore`]: exclusive among concurrent takers, renewed by its holder, taken over
/// after expiry, released only by its holder; the store's clock moves forward.
pub async fn leases<S: LeaseStore, F: Fn() -> S>(make: &F) {
    let s = Arc::new(make());
    let t0 = s.now().await.unwrap();
    assert!(
        (t0 - s_now()).abs() < 60_000,
        "the store's clock is wall-clock time in ms"
    );
    let takers = (0..8).map(|i| {
        let s = s.clone();
        tokio::spawn(async move { s.take_lease("poller", &format!("h{i}"), 60_000).await })
    });
    let won = join(takers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1, "exactly one of concurrent takers holds a lease");

    assert!(s.take_lease("importer", "a", 300).await.unwrap());
    assert!(
        !s.take_lease("importer", "b", 300).await.unwrap(),
        "a held lease is exclusive"
    );
    assert!(
        s.take_lease("importer", "a", 300).await.unwrap(),
        "the holder renews"
    );
    s.release_lease("importer", "b").await.unwrap();
    assert!(
        !s.take_lease("importer", "b", 300).await.unwrap(),
        "only the holder releases"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        s.take_lease("importer", "b", 300).await.unwrap(),
        "an expired lease is taken over"
    );
    s.release_lease("importer", "b").await.unwrap();
    assert!(
        s.take_lease("importer", "c", 300).await.unwrap(),
        "a released lease is free"
    );
    assert!(s.now().await.unwrap() >= t0, "the clock does not go back");
    recording_claims_are_exclusive(s).await;
}

async fn recording_claims_are_exclusive<S: LeaseStore>(s: Arc<S>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let leases: Arc<dyn LeaseStore> = s;
    let first = claim::RecordingClaim::take(&leases, "rec-1").await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let second = {
        let (leases, done) = (leases.clone(), done.clone());
        tokio::spawn(async move {
            let c = claim::RecordingClaim::take(&leases, "rec-1").await.unwrap();
            let after = done.load(Ordering::SeqCst);
            c.release().await;
            after
        })
    };
    let other = claim::RecordingClaim::take(&leases, "rec-2").await;
    assert!(
        other.is_ok(),
        "claims on different recordings are independent"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    done.store(true, Ordering::SeqCst);
    first.release().await;
    assert!(
        second.await.unwrap(),
        "a second claim on a recording waits until the first is released"
    );
    drop(other);
}

/// [`TokenStore`]: a token opens once, even when raced, and not after it expired.
pub async fn tokens<S: TokenStore, F: Fn() -> S>(make: &F) {
    let s = Arc::new(make());
    let t = |h: &str| NewToken {
        hash: h.into(),
        record_id: "r1".into(),
        format: "presentation".into(),
    };
    s.mint_playback_tokens(&[t("a"), t("b")], 60_000)
        .await
        .unwrap();
    let racers = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.consume_playback_token("a").await })
    });
    let opened: Vec<_> = join(racers)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(
        opened,
        [("r1".to_string(), "presentation".to_string())],
        "a token opens exactly once"
    );
    assert_eq!(s.consume_playback_token("zz").await.unwrap(), None);
    s.mint_playback_tokens(&[t("short")], 50).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        s.consume_playback_token("short").await.unwrap(),
        None,
        "an expired token opens nothing"
    );
    assert!(s.consume_playback_token("b").await.unwrap().is_some());
}

/// [`RecordingStore`]: import, publish, unpublish and delete of one recording, and the
/// access facts playback reads.
pub async fn recordings<S: RecordingStore, F: Fn() -> S>(make: &F) {
    let s = make();
    let rec = Recording {
        record_id: "rec-1".into(),
        meeting_id: "m1".into(),
        internal_meeting_id: "rec-1".into(),
        name: "n".into(),
        published: true,
        state: Some(RecordingState::Published),
        start_time: 1,
        end_time: 2,
        metadata: vec![("tenant-id".into(), "t1".into())],
        formats: vec![PlaybackFormat {
            format: "presentation".into(),
            url: "/playback/presentation/2.3/rec-1".into(),
            length: 1,
            processing_time: None,
            size: None,
            thumbnails: vec![],
        }],
        ..Default::default()
    };
    let stored = s.import_recording(&rec).await.unwrap();
    assert_eq!((stored.published, stored.formats.len()), (true, 1));
    let a = s.playback_access("rec-1").await.unwrap().unwrap();
    assert_eq!((a.published, a.tenant_id.as_deref()), (true, Some("t1")));

    s.set_published("rec-1", false).await.unwrap();
    let r = s.recording("rec-1").await.unwrap().unwrap();
    assert_eq!(
        (r.published, r.state, r.publish_updated),
        (false, Some(RecordingState::Unpublished), true),
        "unpublish sets the flag and the state, and marks it as the API's decision"
    );
    assert!(!s.playback_access("rec-1").await.unwrap().unwrap().published);
    let unpublished = RecordingQuery {
        states: Some(vec![RecordingState::Unpublished.as_str().into()]),
        ..Default::default()
    };
    assert_eq!(
        s.find_recordings(&unpublished)
            .await
            .unwrap()
            .recordings
            .len(),
        1
    );

    s.set_published("rec-1", true).await.unwrap();
    assert_eq!(
        s.recording("rec-1").await.unwrap().unwrap().state,
        Some(RecordingState::Published)
    );

    assert!(s.tombstone_recording("rec-1").await.unwrap());
    let r = s.recording("rec-1").await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.published, r.formats.len(), r.metadata.len()),
        (Some(RecordingState::Deleted), false, 0, 0),
        "a deleted recording keeps only its tombstone"
    );
    assert_eq!(
        s.playback_access("rec-1").await.unwrap(),
        None,
        "deleted plays nothing"
    );
    assert!(!s.tombstone_recording("nope").await.unwrap());
}

// ---- pool cases ----

/// Now in Unix ms, by this process's clock (only to sanity-check the store's).
fn s_now() -> i64 {
    now_ms()
}

async fn join<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("a contract task panicked"));
    }
    out
}

/// Adds `n` enabled, online servers with a known load of 0.
async fn servers<S: PoolStore>(s: &S, n: usize) {
    for i in 0..n {
        let id = format!("s{i}");
        s.add_server(&Server::new(
            id.clone(),
            format!("http://{id}/bigbluebutton/api"),
            "x".into(),
            1.0,
            None,
        ))
        .await
        .unwrap();
        s.update_server(
            &id,
            &ServerPatch {
                state: Some(ServerState::Enabled),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.save_poll(
            &id,
            &PollUpdate {
                online: true,
                load: Some(0.0),
                stats: ServerStats::default(),
                bbb_version: None,
                healthy_counter: 0,
                unhealthy_counter: 0,
                state: None,
            },
        )
        .await
        .unwrap();
    }
}

/// The least loaded available server (the balancer's rule, reduced).
fn least_loaded(servers: &[Server]) -> Result<String, ChoiceError> {
    servers
        .iter()
        .filter(|s| s.available())
        .min_by(|a, b| {
            a.load
                .partial_cmp(&b.load)
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|s| s.id.clone())
        .ok_or(ChoiceError::NoServer)
}

/// Any available server, at random: concurrent creates would disagree on their own.
fn any_available(servers: &[Server]) -> Result<String, ChoiceError> {
    use rand::seq::SliceRandom;
    let ok: Vec<&Server> = servers.iter().filter(|s| s.available()).collect();
    ok.choose(&mut rand::thread_rng())
        .map(|s| s.id.clone())
        .ok_or(ChoiceError::NoServer)
}

async fn place<S: PoolStore>(
    s: &S,
    tenant: &str,
    meeting: &str,
    vbs: &[String],
    choose: &(dyn Fn(&[Server]) -> Result<String, ChoiceError> + Sync),
    max: Option<u32>,
) -> PlaceOutcome {
    s.place_meeting(&PlaceRequest {
        tenant_id: tenant,
        meeting_id: meeting,
        moderator_pw: "pw",
        voice_bridges: vbs,
        choose,
        now_ms: now_ms(),
        max_tenant_meetings: max,
    })
    .await
    .expect("placement failed")
}

async fn placement_is_idempotent<S: PoolStore>(s: Arc<S>) {
    servers(&*s, 1).await;
    let vbs = vec!["111".to_string(), "222".to_string()];
    let PlaceOutcome::Placed(m, srv) = place(&*s, NO_TENANT, "m", &vbs, &least_loaded, None).await
    else {
        panic!("the first create places the meeting")
    };
    assert_eq!((m.voice_bridge.as_str(), srv.load), ("111", Some(1.0)));
    let again = place(&*s, NO_TENANT, "m", &vbs, &least_loaded, None).await;
    assert_eq!(
        again,
        PlaceOutcome::Existing(m.clone()),
        "a second create finds the first"
    );
    let PlaceOutcome::Placed(n, _) = place(&*s, NO_TENANT, "n", &vbs, &least_loaded, None).await
    else {
        panic!("another meeting is placed")
    };
    assert_eq!(
        n.voice_bridge, "222",
        "voice bridges are unique across meetings"
    );
    assert_eq!(
        s.server("s0").await.unwrap().unwrap().load,
        Some(2.0),
        "each placement raises the load once"
    );
    assert_eq!(s.meeting(NO_TENANT, "m").await.unwrap().unwrap().0, m);
    assert_eq!(s.meeting_by_voice_bridge("222").await.unwrap(), Some(n));
}

async fn concurrent_creates_of_one_room_land_on_one_server<S: PoolStore>(s: Arc<S>) {
    servers(&*s, 4).await;
    let vbs: Vec<String> = (0..24).map(|i| format!("5{i:03}")).collect();
    let vbs = Arc::new(vbs);
    let creates = (0..16).map(|_| {
        let (s, vbs) = (s.clone(), vbs.clone());
        tokio::spawn(async move { place(&*s, NO_TENANT, "room", &vbs, &any_available, None).await })
    });
    let outcomes = join(creates).await;
    let placed = outcomes
        .iter()
        .filter(|o| matches!(o, PlaceOutcome::Placed(..)))
        .count();
    assert_eq!(placed, 1, "exactly one concurrent create places the room");
    let homes: HashSet<String> = outcomes
        .iter()
        .map(|o| match o {
            PlaceOutcome::Placed(m, _) | PlaceOutcome::Existing(m) => m.server_id.clone(),
            other => panic!("unexpected outcome {other:?}"),
        })
        .collect();
    assert_eq!(homes.len(), 1, "every create answers with the same server");
    assert_eq!(s.meetings().await.unwrap().len(), 1);
}

async fn voice_bridges_stay_unique_under_concurrency<S: PoolStore>(s: Arc<S>) {
    servers(&*s, 2).await;
    // Groups of four creates prefer the same voice bridge, so they collide at commit.
    let pool: Vec<String> = (0..40).map(|i| format!("7{i:03}")).collect();
    let creates = (0..16).map(|i| {
        let s = s.clone();
        let mut vbs = pool.clone();
        vbs.rotate_left(i / 4);
        tokio::spawn(async move {
            place(&*s, NO_TENANT, &format!("m{i}"), &vbs, &least_loaded, None).await
        })
    });
    let outcomes = join(creates).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, PlaceOutcome::Placed(..))),
        "every meeting is placed: {outcomes:?}"
    );
    let meetings = s.meetings().await.unwrap();
    let bridges: HashSet<&str> = meetings.iter().map(|m| m.voice_bridge.as_str()).collect();
    assert_eq!(
        (meetings.len(), bridges.len()),
        (16, 16),
        "no two meetings share a voice bridge"
    );
    let load: f64 = s
        .servers()
        .await
        .unwrap()
        .iter()
        .filter_map(|s| s.load)
        .sum();
    assert_eq!(load, 16.0, "each placement raised one load once");
}

async fn tenant_limits_hold_under_concurrency<S: PoolStore>(s: Arc<S>) {
    servers(&*s, 2).await;
    let creates = (0..12).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            let vbs = vec![format!("9{i:03}")];
            place(&*s, "t1", &format!("m{i}"), &vbs, &least_loaded, Some(3)).await
        })
    });
    let outcomes = join(creates).await;
    let placed = outcomes
        .iter()
        .filter(|o| matches!(o, PlaceOutcome::Placed(..)))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| **o == PlaceOutcome::TenantLimit(3))
        .count();
    assert_eq!(
        (placed, refused),
        (3, 9),
        "a tenant limit holds under concurrency"
    );
    assert_eq!(s.tenant_usage("t1").await.unwrap().0, 3);
    let other = place(
        &*s,
        "t2",
        "m0",
        &["8000".to_string()],
        &least_loaded,
        Some(3),
    )
    .await;
    assert!(
        matches!(other, PlaceOutcome::Placed(..)),
        "the limit counts one tenant's meetings only"
    );
}

async fn participant_limit_holds_under_concurrency<S: PoolStore>(s: Arc<S>) {
    servers(&*s, 1).await;
    for m in ["a", "b"] {
        let vbs = vec![format!("6{m}")];
        place(&*s, "t1", m, &vbs, &least_loaded, None).await;
    }
    let joins = (0..20).map(|i| {
        let s = s.clone();
        let m = if i % 2 == 0 { "a" } else { "b" };
        tokio::spawn(async move { s.admit_participant("t1", m, 5).await.unwrap() })
    });
    let admitted = join(joins).await.into_iter().filter(|a| *a).count();
    assert_eq!(
        admitted, 5,
        "the participant limit is checked and counted in one step"
    );
    assert_eq!(s.tenant_usage("t1").await.unwrap(), (2, 5));
    assert!(
        !s.admit_participant("t1", "nope", 50).await.unwrap(),
        "an unknown meeting admits nobody"
    );
}

async fn a_join_looks_up_and_admits_in_one_step<S: PoolStore>(s: Arc<S>) {
    servers(&*s, 1).await;
    let vbs = vec!["6100".to_string()];
    place(&*s, "t1", "a", &vbs, &least_loaded, None).await;
    let joins = (0..12).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.join_meeting("t1", "a", Some(3)).await.unwrap() })
    });
    let found: Vec<_> = join(joins).await.into_iter().map(Option::unwrap).collect();
    assert!(found
        .iter()
        .all(|j| j.meeting.meeting_id == "a" && j.server.as_ref().is_some_and(|s| s.id == "s0")));
    let admitted = found.iter().filter(|j| j.admitted == Some(true)).count();
    assert_eq!(admitted, 3, "checked and counted in one step");
    assert_eq!(
        found.iter().filter(|j| j.admitted == Some(false)).count(),
        9
    );
    assert_eq!(s.tenant_usage("t1").await.unwrap(), (1, 3));

    let unlimited = s.join_meeting("t1", "a", None).await.unwrap().unwrap();
    assert_eq!(
        unlimited.admitted, None,
        "no limit: nothing asked, nothing counted"
    );
    assert!(s
        .join_meeting("t1", "nope", Some(50))
        .await
        .unwrap()
        .is_none());
    s.update_server(
        "s0",
        &ServerPatch {
            state: Some(ServerState::Disabled),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let refused = s.join_meeting("t1", "a", Some(50)).await.unwrap().unwrap();
    assert_eq!(
        refused.admitted, None,
        "a server that takes no joins admits nobody"
    );
    assert_eq!(s.tenant_usage("t1").await.unwrap(), (1, 3));
}

async fn placement_rechecks_the_server<S: PoolStore>(s: Arc<S>) {
    servers(&*s, 1).await;
    let vbs = vec!["4000".to_string()];
    let snap = s
        .placement_snapshot(NO_TENANT, "m", false, &vbs)
        .await
        .unwrap();
    assert_eq!(snap.free_voice_bridges, vbs);
    let req = PlaceRequest {
        tenant_id: NO_TENANT,
        meeting_id: "m",
        moderator_pw: "",
        voice_bridges: &vbs,
        choose: &least_loaded,
        now_ms: now_ms(),
        max_tenant_meetings: None,
    };
    let placement::Decision::Commit(commit) = placement::decide(&req, &snap) else {
        panic!("the snapshot allows a placement")
    };
    // Two decisions on one snapshot: the second must not commit on the load the first raised.
    let other_vbs = vec!["4001".to_string()];
    let other = PlaceRequest {
        meeting_id: "other",
        voice_bridges: &other_vbs,
        ..req
    };
    let other_snap = s
        .placement_snapshot(NO_TENANT, "other", false, &other_vbs)
        .await
        .unwrap();
    let placement::Decision::Commit(first) = placement::decide(&other, &other_snap) else {
        panic!("the snapshot allows a placement")
    };
    assert!(matches!(
        s.commit_placement(&first).await.unwrap(),
        placement::CommitOutcome::Placed(_)
    ));
    assert_eq!(
        s.commit_placement(&commit).await.unwrap(),
        placement::CommitOutcome::Conflict(placement::Conflict::Server),
        "a commit on a load that changed since the snapshot conflicts"
    );
    let snap = s
        .placement_snapshot(NO_TENANT, "m", false, &vbs)
        .await
        .unwrap();
    let placement::Decision::Commit(commit) = placement::decide(&req, &snap) else {
        panic!("the snapshot allows a placement")
    };
    // The server is cordoned between the snapshot and the commit.
    s.update_server(
        "s0",
        &ServerPatch {
            state: Some(ServerState::Cordoned),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.commit_placement(&commit).await.unwrap(),
        placement::CommitOutcome::Conflict(placement::Conflict::Server),
        "a commit re-checks what the decision observed"
    );
    assert!(s.meeting(NO_TENANT, "m").await.unwrap().is_none());
    assert_eq!(
        place(&*s, NO_TENANT, "m", &vbs, &least_loaded, None).await,
        PlaceOutcome::Refused(ChoiceError::NoServer),
        "the retry decides on the new state"
    );
}
