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
use super::recordings::{ImportPolicy, PlaybackFormat, Recording, RecordingQuery};
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
    fenced_pool(&make).await;
    fenced_outbox(&make).await;
    fenced_recordings(&make).await;
    fenced_by_the_lease(&make).await;
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
    meetings_keep_their_bbb_side_id(Arc::new(make())).await;
    a_join_looks_up_and_admits_in_one_step(Arc::new(make())).await;
}

/// [`Outbox`]: a callback is queued once; only due, pending ones are handed out; claims.
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
    callbacks_are_claimed_once_until_the_claim_expires(&make()).await;
}

/// `claim_callbacks` / `finish_callback`: a live claim is exclusive, an expired one is
/// claimed again, and a claimer that lost its claim cannot record an outcome. (Times are
/// given by the caller; ids are unique, so a backend's `make` may hand out one store.)
async fn callbacks_are_claimed_once_until_the_claim_expires<S: Outbox>(s: &S) {
    let ids = ["claim-a", "claim-b", "claim-c"];
    for id in ids {
        let cb = OutgoingCallback {
            id: id.into(),
            kind: "k".into(),
            method: "POST".into(),
            url: "http://x/".into(),
            variants: vec![],
            attempts: 0,
            next_attempt_at: 100,
            created_at: 100,
            status: CallbackStatus::Pending,
            last_error: String::new(),
        };
        assert!(s.enqueue_callback(&cb).await.unwrap());
    }
    let first = s.claim_callbacks(1000, 2, "p1", 5000, None).await.unwrap();
    assert_eq!(first.len(), 2, "the limit holds");
    let second = s.claim_callbacks(1000, 8, "p2", 8000, None).await.unwrap();
    assert_eq!(second.len(), 1, "claimed ones are not handed out again");
    assert!(first.iter().all(|c| c.id != second[0].id));
    assert!(
        s.claim_callbacks(2000, 8, "p3", 6000, None)
            .await
            .unwrap()
            .is_empty(),
        "live claims are exclusive"
    );
    // p1 dies; once its claim expired, another claimer takes its callbacks.
    let again = s.claim_callbacks(5001, 8, "p3", 9000, None).await.unwrap();
    assert_eq!(again.len(), 2, "an expired claim is claimed again");
    assert!(
        !s.finish_callback(
            "p1",
            &first[0].id,
            CallbackStatus::Delivered,
            1,
            0,
            "",
            None
        )
        .await
        .unwrap(),
        "a lost claim cannot record an outcome"
    );
    assert!(s
        .finish_callback(
            "p3",
            &first[0].id,
            CallbackStatus::Delivered,
            1,
            0,
            "",
            None
        )
        .await
        .unwrap());
    assert_eq!(
        s.prune_callbacks(101).await.unwrap(),
        1,
        "only finished ones created before the cut are pruned"
    );
    let left = s.callbacks().await.unwrap();
    assert_eq!(
        left.iter().filter(|c| ids.contains(&c.id.as_str())).count(),
        2
    );
}

/// [`LeaseStore`]: exclusive among concurrent takers, renewed by its holder, taken over
/// after expiry, released only by its holder, handed over atomically; recording claims;
/// the store's clock moves forward.
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
    lease_epochs_grow_with_each_hand_over(&*s).await;
    assert_eq!(s.generation("playback").await.unwrap(), 0, "unraised");
    let raised = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.bump_generation("playback").await.unwrap() })
    });
    let seen: HashSet<u64> = join(raised).await.into_iter().collect();
    assert_eq!(
        seen.len(),
        8,
        "concurrent raises each get their own generation"
    );
    assert_eq!(s.generation("playback").await.unwrap(), 8);
    a_gone_holders_lease_is_handed_over_atomically(&*s).await;
    recording_claims_are_exclusive(s).await;
}

/// `replace_lease`: only from the holder named, in one step; the old holder cannot take it
/// back.
async fn a_gone_holders_lease_is_handed_over_atomically<S: LeaseStore>(s: &S) {
    assert!(s.take_lease("hand-over", "n1:10", 60_000).await.unwrap());
    let (holder, expires) = s.lease_holder("hand-over").await.unwrap().unwrap();
    assert_eq!(
        holder, "n1:10",
        "the holder is reported as it took the lease"
    );
    assert!(
        expires > s.now().await.unwrap(),
        "a held lease expires in the future"
    );
    assert!(
        s.replace_lease("hand-over", "n1:9", "n1:11", 60_000)
            .await
            .unwrap()
            .is_none(),
        "a hand-over from a holder that does not hold it fails"
    );
    assert!(s
        .replace_lease("hand-over", "n1:10", "n1:11", 60_000)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.lease_holder("hand-over").await.unwrap().unwrap().0,
        "n1:11"
    );
    assert!(
        !s.take_lease("hand-over", "n1:10", 60_000).await.unwrap(),
        "the old holder cannot take a handed-over lease back"
    );
    assert_eq!(s.lease_holder("no-such-lease").await.unwrap(), None);
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

/// [`RecordingStore`]: import, publish, unpublish and delete of one recording, the access
/// facts playback reads, and imports that decide their flags against the stored row.
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

    import_decides_against_the_stored_row(&make()).await;
    super::contract_recordings::all(make).await;
}

/// `import_recording_decided`: the flags are decided against the row there at the commit,
/// so an API unpublish (or a protection) between the importer's read and its write holds.
async fn import_decides_against_the_stored_row<S: RecordingStore>(s: &S) {
    let rec = Recording {
        record_id: "rec-2".into(),
        meeting_id: "m2".into(),
        internal_meeting_id: "rec-2".into(),
        published: true,
        state: Some(RecordingState::Published),
        ..Default::default()
    };
    let policy = ImportPolicy {
        from_metadata: Some(true),
        import_unpublished: false,
        protect_new: false,
    };
    let first = s
        .import_recording_decided(&rec, policy, None)
        .await
        .unwrap();
    assert_eq!(
        (first.published, first.protected, first.publish_updated),
        (true, false, false),
        "a new recording follows its metadata"
    );
    // What the importer read before: published. Then the API unpublishes and protects it.
    s.set_published("rec-2", false).await.unwrap();
    s.update_recordings(&["rec-2".into()], None, &[], Some(true))
        .await
        .unwrap();
    let again = s
        .import_recording_decided(&rec, policy, None)
        .await
        .unwrap();
    assert_eq!(
        (
            again.published,
            again.state,
            again.protected,
            again.publish_updated
        ),
        (false, Some(RecordingState::Unpublished), true, true),
        "a re-import keeps the API's unpublish and the protection"
    );
    let stored = s.recording("rec-2").await.unwrap().unwrap();
    assert_eq!((stored.published, stored.protected), (false, true));
    let unpublished_import = ImportPolicy {
        import_unpublished: true,
        protect_new: true,
        ..policy
    };
    let mut other = rec.clone();
    other.record_id = "rec-3".into();
    let third = s
        .import_recording_decided(&other, unpublished_import, None)
        .await
        .unwrap();
    assert_eq!(
        (third.published, third.state, third.protected),
        (false, Some(RecordingState::Unpublished), true),
        "RECORDING_IMPORT_UNPUBLISHED and protection apply to new recordings"
    );
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
    choose: fn(&[Server]) -> Result<String, ChoiceError>,
    max: Option<u32>,
) -> PlaceOutcome {
    s.place_meeting(&PlaceRequest {
        tenant_id: tenant,
        meeting_id: meeting,
        moderator_pw: "pw",
        voice_bridges: vbs,
        choose: std::sync::Arc::new(choose),
        now_ms: now_ms(),
        max_tenant_meetings: max,
        bbb_id: None,
        only_server: None,
    })
    .await
    .expect("placement failed")
}

async fn placement_is_idempotent<S: PoolStore>(s: Arc<S>) {
    servers(&*s, 1).await;
    let vbs = vec!["111".to_string(), "222".to_string()];
    let PlaceOutcome::Placed(m, srv) = place(&*s, NO_TENANT, "m", &vbs, least_loaded, None).await
    else {
        panic!("the first create places the meeting")
    };
    assert_eq!((m.voice_bridge.as_str(), srv.load), ("111", Some(1.0)));
    let again = place(&*s, NO_TENANT, "m", &vbs, least_loaded, None).await;
    assert_eq!(
        again,
        PlaceOutcome::Existing(m.clone()),
        "a second create finds the first"
    );
    let PlaceOutcome::Placed(n, _) = place(&*s, NO_TENANT, "n", &vbs, least_loaded, None).await
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
        tokio::spawn(async move { place(&*s, NO_TENANT, "room", &vbs, any_available, None).await })
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
            place(&*s, NO_TENANT, &format!("m{i}"), &vbs, least_loaded, None).await
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
            place(&*s, "t1", &format!("m{i}"), &vbs, least_loaded, Some(3)).await
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
        least_loaded,
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
        place(&*s, "t1", m, &vbs, least_loaded, None).await;
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
    place(&*s, "t1", "a", &vbs, least_loaded, None).await;
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
        choose: std::sync::Arc::new(least_loaded),
        now_ms: now_ms(),
        max_tenant_meetings: None,
        bbb_id: None,
        only_server: None,
    };
    let placement::Decision::Commit(commit) = placement::decide(&req, &snap) else {
        panic!("the snapshot allows a placement")
    };
    // Two decisions on one snapshot: the second must not commit on the load the first raised.
    let other_vbs = vec!["4001".to_string()];
    let other = PlaceRequest {
        meeting_id: "other",
        voice_bridges: &other_vbs,
        choose: req.choose.clone(),
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
        place(&*s, NO_TENANT, "m", &vbs, least_loaded, None).await,
        PlaceOutcome::Refused(ChoiceError::NoServer),
        "the retry decides on the new state"
    );
}

/// A lease's epoch stays while its holder renews and grows whenever it changes hands —
/// taken over after expiry, released and taken again, handed over from a gone holder.
async fn lease_epochs_grow_with_each_hand_over<S: LeaseStore>(s: &S) {
    let e1 = s
        .take_lease_epoch("epochs", "a", 300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.take_lease_epoch("epochs", "a", 300).await.unwrap(),
        Some(e1),
        "a renewal keeps the epoch"
    );
    assert_eq!(s.take_lease_epoch("epochs", "b", 300).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let e2 = s
        .take_lease_epoch("epochs", "b", 300)
        .await
        .unwrap()
        .unwrap();
    assert!(
        e2 > e1,
        "a take-over after expiry raises the epoch ({e1} -> {e2})"
    );
    s.release_lease("epochs", "b").await.unwrap();
    assert_eq!(s.lease_holder("epochs").await.unwrap(), None, "released");
    let e3 = s
        .take_lease_epoch("epochs", "a", 300)
        .await
        .unwrap()
        .unwrap();
    assert!(e3 > e2, "the epoch survives a release ({e2} -> {e3})");
    let e4 = s
        .replace_lease("epochs", "a", "c", 300)
        .await
        .unwrap()
        .unwrap();
    assert!(e4 > e3, "a hand-over from a gone holder raises the epoch");
    assert_eq!(
        s.replace_lease("epochs", "a", "d", 300).await.unwrap(),
        None,
        "only from the holder named"
    );
}

fn fence(epoch: u64) -> Fence {
    Fence::new("poller", epoch)
}

fn is_fenced<T: std::fmt::Debug>(r: StoreResult<T>) -> bool {
    matches!(r, Err(StoreError::Fenced(_)))
}

fn poll_with_load(load: f64) -> PollUpdate {
    PollUpdate {
        online: true,
        load: Some(load),
        stats: ServerStats::default(),
        bbb_version: None,
        healthy_counter: 0,
        unhealthy_counter: 0,
        state: None,
    }
}

async fn load_of<S: PoolStore>(s: &S) -> Option<f64> {
    s.server("s0").await.unwrap().unwrap().load
}

/// Fenced [`PoolStore::save_poll`]: once a write of epoch 200 was seen, one of epoch 100 is
/// refused and changes nothing; the same or a newer epoch, and unfenced writes, pass.
pub async fn fenced_pool<S: PoolStore, F: Fn() -> S>(make: &F) {
    let s = make();
    servers(&s, 1).await;
    s.save_poll_fenced("s0", &poll_with_load(1.0), Some(&fence(100)))
        .await
        .unwrap();
    s.save_poll_fenced("s0", &poll_with_load(2.0), Some(&fence(200)))
        .await
        .unwrap();
    assert!(
        is_fenced(
            s.save_poll_fenced("s0", &poll_with_load(9.0), Some(&fence(100)))
                .await
        ),
        "an older epoch's poll result is refused"
    );
    assert_eq!(
        load_of(&s).await,
        Some(2.0),
        "a refused write changes nothing"
    );
    s.save_poll_fenced("s0", &poll_with_load(3.0), Some(&fence(200)))
        .await
        .unwrap();
    s.save_poll_fenced("s0", &poll_with_load(4.0), None)
        .await
        .unwrap();
    assert_eq!(
        load_of(&s).await,
        Some(4.0),
        "the current epoch and operators write"
    );
    assert!(
        s.save_poll_fenced("s0", &poll_with_load(5.0), Some(&Fence::new("other", 1)))
            .await
            .is_ok(),
        "each lease has its own epochs"
    );

    // The poll's reconciliation is fenced the same way: a stale poller neither forgets
    // meetings nor overwrites participant counts.
    let vbs = vec!["7100".to_string()];
    let req = PlaceRequest {
        tenant_id: "",
        meeting_id: "fenced-room",
        moderator_pw: "pw",
        voice_bridges: &vbs,
        choose: std::sync::Arc::new(least_loaded),
        now_ms: 1000,
        max_tenant_meetings: None,
        bbb_id: None,
        only_server: None,
    };
    let PlaceOutcome::Placed(m, _) = s.place_meeting(&req).await.unwrap() else {
        panic!("the meeting is placed")
    };
    assert!(
        is_fenced(
            s.set_participants_fenced("s0", &[(m.bbb_id.clone(), 5)], Some(&fence(100)))
                .await
        ),
        "an older epoch's participant counts are refused"
    );
    assert!(
        is_fenced(
            s.forget_meetings_except_fenced("s0", &[], i64::MAX, Some(&fence(100)))
                .await
        ),
        "an older epoch's forget is refused"
    );
    assert!(
        s.meeting("", "fenced-room").await.unwrap().is_some(),
        "a refused forget forgets nothing"
    );
    s.set_participants_fenced("s0", &[(m.bbb_id.clone(), 5)], Some(&fence(200)))
        .await
        .unwrap();
    let gone = s
        .forget_meetings_except_fenced("s0", &[], i64::MAX, Some(&fence(200)))
        .await
        .unwrap();
    assert_eq!(
        gone.iter()
            .map(|g| g.meeting_id.as_str())
            .collect::<Vec<_>>(),
        ["fenced-room"],
        "the current poller forgets"
    );
}

/// Fenced claims and outcomes ([`Outbox::claim_callbacks`], [`Outbox::finish_callback`]):
/// the old sender can neither claim nor record once the new one's epoch was seen.
pub async fn fenced_outbox<S: Outbox, F: Fn() -> S>(make: &F) {
    let s = make();
    let now = s_now();
    // Other cases may have left due callbacks in a shared outbox: settle them first.
    for c in s
        .claim_callbacks(now, 1000, "drain", now + 60_000, None)
        .await
        .unwrap()
    {
        s.finish_callback("drain", &c.id, CallbackStatus::Delivered, 1, 0, "", None)
            .await
            .unwrap();
    }
    for id in ["fenced-a", "fenced-b", "fenced-c"] {
        let cb = OutgoingCallback {
            id: id.into(),
            kind: "analytics".into(),
            method: "POST".into(),
            url: format!("http://127.0.0.1:9/{id}"),
            variants: vec![],
            attempts: 0,
            next_attempt_at: now - 1000,
            created_at: now,
            status: CallbackStatus::Pending,
            last_error: String::new(),
        };
        assert!(s.enqueue_callback(&cb).await.unwrap());
    }
    let f = |e| Fence::new("callbacks", e);
    let old = s
        .claim_callbacks(now, 1, "old", now + 60_000, Some(&f(100)))
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    let new = s
        .claim_callbacks(now, 1, "new", now + 60_000, Some(&f(200)))
        .await
        .unwrap();
    assert_eq!(new.len(), 1);
    assert!(
        is_fenced(
            s.finish_callback(
                "old",
                &old[0].id,
                CallbackStatus::Delivered,
                1,
                0,
                "",
                Some(&f(100))
            )
            .await
        ),
        "the old sender's outcome is refused"
    );
    assert!(
        is_fenced(
            s.claim_callbacks(now, 8, "old", now + 60_000, Some(&f(100)))
                .await
        ),
        "the old sender claims nothing more"
    );
    let left = s.callbacks().await.unwrap();
    let a = left.iter().find(|c| c.id == old[0].id).unwrap();
    assert_eq!(
        (a.status, a.attempts),
        (CallbackStatus::Pending, 0),
        "a refused outcome changes nothing"
    );
    assert!(s
        .finish_callback(
            "new",
            &new[0].id,
            CallbackStatus::Delivered,
            1,
            0,
            "",
            Some(&f(200))
        )
        .await
        .unwrap());
    let rest = s
        .claim_callbacks(now, 8, "new", now + 60_000, Some(&f(200)))
        .await
        .unwrap();
    assert_eq!(
        rest.len(),
        1,
        "the third, unclaimed one goes to the new sender"
    );
}

/// Fenced [`RecordingStore::import_recording`]: an old importer's commit is refused.
pub async fn fenced_recordings<S: RecordingStore, F: Fn() -> S>(make: &F) {
    let s = make();
    let rec = |name: &str| Recording {
        record_id: "rec-f".into(),
        meeting_id: "m1".into(),
        internal_meeting_id: "rec-f".into(),
        name: name.into(),
        published: true,
        state: Some(RecordingState::Published),
        start_time: 1,
        end_time: 2,
        ..Default::default()
    };
    let f = |e| Fence::new("importer", e);
    s.import_recording_decided(&rec("first"), ImportPolicy::default(), Some(&f(100)))
        .await
        .unwrap();
    s.import_recording_decided(&rec("second"), ImportPolicy::default(), Some(&f(200)))
        .await
        .unwrap();
    assert!(
        is_fenced(
            s.import_recording_decided(&rec("stale"), ImportPolicy::default(), Some(&f(100)))
                .await
        ),
        "an old importer's commit is refused"
    );
    assert_eq!(
        s.recording("rec-f").await.unwrap().unwrap().name,
        "second",
        "a refused commit changes nothing"
    );
    s.import_recording(&rec("by hand")).await.unwrap();
}

/// Where the lease lives in the same backend as the write, a write of a tenure that was
/// taken over is refused at once, before the new holder wrote anything.
pub async fn fenced_by_the_lease<S: LeaseStore + PoolStore, F: Fn() -> S>(make: &F) {
    let s = make();
    servers(&s, 1).await;
    let old = s
        .take_lease_epoch("poller", "old", 200)
        .await
        .unwrap()
        .unwrap();
    s.save_poll_fenced("s0", &poll_with_load(1.0), Some(&fence(old)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new = s
        .take_lease_epoch("poller", "new", 60_000)
        .await
        .unwrap()
        .unwrap();
    assert!(new > old);
    assert!(
        is_fenced(
            s.save_poll_fenced("s0", &poll_with_load(7.0), Some(&fence(old)))
                .await
        ),
        "a taken-over tenure's write is refused before the new holder writes"
    );
    s.save_poll_fenced("s0", &poll_with_load(2.0), Some(&fence(new)))
        .await
        .unwrap();
    assert_eq!(s.server("s0").await.unwrap().unwrap().load, Some(2.0));
}

/// A meeting placed with the ID BBB already knows it by (Scalelite's plain ID of a tenant
/// meeting) keeps it; reconciliation and participant counts go by it, not by the scoped ID.
async fn meetings_keep_their_bbb_side_id<S: PoolStore>(s: Arc<S>) {
    servers(&*s, 1).await;
    let (vb, scoped_vb) = (vec!["6100".to_string()], vec!["6101".to_string()]);
    let at = now_ms() - 10_000;
    let req = |meeting_id, bbb_id, vbs| PlaceRequest {
        tenant_id: "t1",
        meeting_id,
        moderator_pw: "pw",
        voice_bridges: vbs,
        choose: std::sync::Arc::new(least_loaded),
        now_ms: at,
        max_tenant_meetings: None,
        bbb_id,
        only_server: None,
    };
    let PlaceOutcome::Placed(m, _) = s
        .place_meeting(&req("plain", Some("plain"), &vb))
        .await
        .unwrap()
    else {
        panic!("the meeting is placed")
    };
    assert_eq!(m.bbb_id, "plain");
    let PlaceOutcome::Placed(n, _) = s
        .place_meeting(&req("ours", None, &scoped_vb))
        .await
        .unwrap()
    else {
        panic!("the meeting is placed")
    };
    assert_eq!(n.bbb_id, crate::tenant::scope("t1", "ours"));
    assert_eq!(s.meeting("t1", "plain").await.unwrap().unwrap().0, m);
    let ids: HashSet<String> = s
        .meetings_on("s0")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.bbb_id)
        .collect();
    assert_eq!(ids, HashSet::from(["plain".to_string(), n.bbb_id.clone()]));
    s.set_participants(
        "s0",
        &[
            ("plain".into(), 4),
            (crate::tenant::scope("t1", "plain"), 9),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        s.tenant_usage("t1").await.unwrap(),
        (2, 4),
        "counted by BBB's ID"
    );
    let keep = vec!["plain".to_string(), crate::tenant::scope("t1", "plain")];
    let gone = s
        .forget_meetings_except("s0", &keep, now_ms())
        .await
        .unwrap();
    assert_eq!(
        gone,
        vec![n],
        "the scoped meeting BBB did not list is forgotten"
    );
    let gone = s
        .forget_meetings_except("s0", &[crate::tenant::scope("t1", "plain")], now_ms())
        .await
        .unwrap();
    assert_eq!(
        gone,
        vec![m],
        "a plain-ID meeting is not kept by its scoped ID"
    );
}
