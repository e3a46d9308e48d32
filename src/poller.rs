//! Health and load polling: every `POLL_INTERVAL`, ask each server `getMeetings`.
//!
//! One cycle ([`poll_once`]) asks all enabled and cordoned servers in parallel (at most
//! `POLLER_THREADS` at a time, the cycle bounded by `POLLER_WAIT_TIMEOUT`), then for each
//! server decides with the pure [`next_health`] whether it is online, computes its load
//! with `balancer::server_load`, and reconciles its meetings:
//! - a meeting is forgotten only when a *successful* poll no longer lists it;
//! - when a server crosses `SERVER_UNHEALTHY_THRESHOLD` failures it goes offline and its
//!   meetings are dropped (Scalelite's panic), so the next `create` lands elsewhere;
//! - a cordoned server with no meetings left becomes disabled.
//!
//! Only one process polls at a time: [`run`] holds the `poller` lease in the store and
//! renews it every cycle; another `serve` takes over when the lease expires.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::app::App;
use crate::balancer::{server_load, LoadParams};
use crate::bbb::params::Params;
use crate::bbb::xml::MeetingLoad;
use crate::bbb::{parse_meetings, CallError, MeetingEntry};
use crate::shutdown::Shutdown;
use crate::store::{now_ms, Fence, PollUpdate, Server, ServerState, ServerStats};

/// The health counters after one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub online: bool,
    pub healthy_counter: u32,
    pub unhealthy_counter: u32,
}

/// Hysteresis: `unhealthy` failures in a row take an online server offline, `healthy`
/// successes in a row bring an offline one back.
pub fn next_health(
    online: bool,
    healthy_counter: u32,
    unhealthy_counter: u32,
    ok: bool,
    healthy: u32,
    unhealthy: u32,
) -> Health {
    match (online, ok) {
        (true, true) => Health {
            online: true,
            healthy_counter: 0,
            unhealthy_counter: 0,
        },
        (true, false) => {
            let n = unhealthy_counter + 1;
            if n >= unhealthy.max(1) {
                Health {
                    online: false,
                    healthy_counter: 0,
                    unhealthy_counter: 0,
                }
            } else {
                Health {
                    online: true,
                    healthy_counter: 0,
                    unhealthy_counter: n,
                }
            }
        }
        (false, true) => {
            let n = healthy_counter + 1;
            if n >= healthy.max(1) {
                Health {
                    online: true,
                    healthy_counter: 0,
                    unhealthy_counter: 0,
                }
            } else {
                Health {
                    online: false,
                    healthy_counter: n,
                    unhealthy_counter: 0,
                }
            }
        }
        (false, false) => Health {
            online: false,
            healthy_counter: 0,
            unhealthy_counter: 0,
        },
    }
}

/// What one cycle did, for `ferrolite poll` and the logs.
#[derive(Debug, Clone)]
pub struct ServerReport {
    pub id: String,
    pub online: bool,
    pub load: Option<f64>,
    pub error: Option<String>,
    pub forgotten: usize,
}

fn load_params(app: &App) -> LoadParams {
    let c = &app.config;
    LoadParams {
        model: c.load_model,
        min_user_count: c.load_min_user_count,
        join_buffer_ms: c.load_join_buffer_time.as_millis() as i64,
        weights: c.weights,
    }
}

fn stats_of(entries: &[MeetingEntry]) -> ServerStats {
    ServerStats {
        meetings: entries.len() as u32,
        users: entries.iter().map(|e| e.load.participants).sum(),
        largest_meeting: entries
            .iter()
            .map(|e| e.load.participants)
            .max()
            .unwrap_or(0),
        videos: entries.iter().map(|e| e.load.video).sum(),
    }
}

async fn ask(app: &App, server: &Server) -> Result<(Vec<MeetingEntry>, Option<String>), String> {
    let reply = app
        .poll_bbb
        .call(
            server,
            "getMeetings",
            &Params::new(),
            app.config.outbound_algorithm,
            None,
            None,
        )
        .await
        .map_err(|e| match e {
            CallError::Garbage => "the answer is not a BBB document (garbage XML)".to_string(),
            e => e.to_string(),
        })?;
    if !reply.success() {
        return Err(format!(
            "BBB answered FAILED ({}: {})",
            reply.head.message_key, reply.head.message
        ));
    }
    // Tens of megabytes of XML for a large server: parsed on the blocking pool, so the
    // API's worker threads keep answering meanwhile.
    let body = reply.body.clone();
    let entries = tokio::task::spawn_blocking(move || parse_meetings(&body))
        .await
        .ok()
        .flatten()
        .ok_or("the getMeetings answer could not be read")?;
    let version = app.poll_bbb.version(server).await;
    Ok((entries, version))
}

/// What a successful poll writes, from its meetings: the IDs BBB lists (the meetings to
/// keep), participants per meeting (for the tenants' participant limits), and the loads.
fn poll_lists(entries: &[MeetingEntry]) -> (Vec<String>, Vec<(String, u32)>, Vec<MeetingLoad>) {
    let ids = entries.iter().map(|e| e.meeting_id.clone()).collect();
    let counts = entries
        .iter()
        .map(|e| (e.meeting_id.clone(), e.load.participants))
        .collect();
    let loads = entries.iter().map(|e| e.load.clone()).collect();
    (ids, counts, loads)
}

/// Polls one server and writes the outcome.
async fn poll_server(
    app: &App,
    server: Server,
    outcome: Result<(Vec<MeetingEntry>, Option<String>), String>,
    started_ms: i64,
    fence: Option<&Fence>,
) -> ServerReport {
    let c = &app.config;
    let ok = outcome.is_ok();
    app.metrics
        .polls
        .get_or_create(&crate::metrics::PollLabels {
            server: server.id.clone(),
            outcome: if ok { "ok" } else { "failed" }.into(),
        })
        .inc();
    let h = next_health(
        server.online,
        server.healthy_counter,
        server.unhealthy_counter,
        ok,
        c.server_healthy_threshold,
        c.server_unhealthy_threshold,
    );
    let mut report = ServerReport {
        id: server.id.clone(),
        online: h.online,
        load: None,
        error: None,
        forgotten: 0,
    };
    crate::usage::after_poll(
        app,
        &server,
        outcome
            .as_ref()
            .map(|(e, _)| e.as_slice())
            .map_err(String::as_str),
    )
    .await;
    let update = match outcome {
        Ok((entries, version)) => {
            // Tens of thousands of meetings on a big server: the lists are built off the
            // async worker, so the requests queued on it keep moving.
            let (ids, counts, loads) = crate::blocking::run(|| poll_lists(&entries));
            match app
                .store
                .forget_meetings_except_fenced(
                    &server.id,
                    &ids,
                    unseen_before(app, started_ms),
                    fence,
                )
                .await
            {
                Ok(gone) => report.forgotten = gone.len(),
                Err(e) => {
                    tracing::warn!(server = %server.id, error = %e, "could not reconcile meetings")
                }
            }
            crate::adopt::adopt_unknown(app, &server, &entries).await;
            if let Err(e) = app
                .store
                .set_participants_fenced(&server.id, &counts, fence)
                .await
            {
                tracing::warn!(server = %server.id, error = %e, "could not record participants");
            }
            let load = h
                .online
                .then(|| server_load(&loads, server.load_multiplier, now_ms(), &load_params(app)));
            report.load = load;
            let drained = server.state == ServerState::Cordoned && entries.is_empty();
            if drained {
                tracing::info!(server = %server.id, "cordoned server has no meetings left; disabling it");
            }
            PollUpdate {
                online: h.online,
                load,
                stats: if h.online {
                    stats_of(&entries)
                } else {
                    ServerStats::default()
                },
                bbb_version: version,
                healthy_counter: h.healthy_counter,
                unhealthy_counter: h.unhealthy_counter,
                state: drained.then_some(ServerState::Disabled),
            }
        }
        Err(reason) => {
            tracing::warn!(server = %server.id, url = %server.url, reason = %reason, failures = server.unhealthy_counter + 1, online = h.online, "poll failed");
            report.error = Some(reason);
            if server.online && !h.online {
                tracing::warn!(server = %server.id, "server is offline; dropping its meetings");
                match app
                    .store
                    .forget_meetings_except_fenced(&server.id, &[], i64::MAX, fence)
                    .await
                {
                    Ok(gone) => {
                        report.forgotten = gone.len();
                        end_meetings(app, &server, &gone).await;
                    }
                    Err(e) => {
                        tracing::warn!(server = %server.id, error = %e, "could not drop meetings")
                    }
                }
            }
            PollUpdate {
                online: h.online,
                load: if h.online { server.load } else { None },
                stats: if h.online {
                    server.stats.clone()
                } else {
                    ServerStats::default()
                },
                bbb_version: None,
                healthy_counter: h.healthy_counter,
                unhealthy_counter: h.unhealthy_counter,
                state: None,
            }
        }
    };
    if let Err(e) = app.store.save_poll_fenced(&server.id, &update, fence).await {
        tracing::warn!(server = %server.id, error = %e, "could not save poll result");
    }
    report
}

/// The creation time before which a meeting missing from a poll that started at
/// `started_ms` is gone: a meeting placed shortly before may still have its `create` on the
/// way to the server (up to one BBB call's connect and response timeouts, on any node), and
/// forgetting it would let a repeated create place the room on a second server.
fn unseen_before(app: &App, started_ms: i64) -> i64 {
    let call = app.config.connect_timeout + app.config.response_timeout;
    started_ms - call.as_millis() as i64
}

/// Best-effort `end` for meetings of a server that was declared offline.
async fn end_meetings(app: &App, server: &Server, meetings: &[crate::store::Meeting]) {
    let limit = Some(Duration::from_secs(1));
    let calls = meetings.iter().map(|m| async move {
        let _ = app.end_on_bbb(server, m, limit).await;
    });
    futures_util::future::join_all(calls).await;
}

/// The servers a cycle polls: enabled and cordoned ones.
async fn pollable(app: &App) -> Result<Vec<Server>, crate::store::StoreError> {
    Ok(app
        .store
        .servers()
        .await?
        .into_iter()
        .filter(|s| s.state != ServerState::Disabled)
        .collect())
}

/// Asks one server (bounded by `POLLER_WAIT_TIMEOUT`) and writes the outcome.
async fn poll_one(app: Arc<App>, server: Server, fence: Option<Fence>) -> ServerReport {
    let started = now_ms();
    let wait = app.config.poller_wait_timeout;
    let outcome = match tokio::time::timeout(wait, ask(&app, &server)).await {
        Ok(o) => o,
        Err(_) => Err(format!(
            "no answer within POLLER_WAIT_TIMEOUT ({}s)",
            wait.as_secs_f64()
        )),
    };
    poll_server(&app, server, outcome, started, fence.as_ref()).await
}

/// One poll cycle over every enabled and cordoned server, waiting for all of them
/// (`ferrolite poll`).
pub async fn poll_once(app: &Arc<App>) -> Result<Vec<ServerReport>, crate::store::StoreError> {
    let started_at = std::time::Instant::now();
    let servers = pollable(app).await?;
    let reports = stream::iter(
        servers
            .into_iter()
            .map(|server| poll_one(app.clone(), server, None)),
    )
    .buffer_unordered(app.config.poller_threads)
    .collect::<Vec<_>>()
    .await;
    app.metrics
        .poll_cycle
        .observe(started_at.elapsed().as_secs_f64());
    Ok(reports)
}

/// Polls that outlive their cycle: a slow server keeps its poll running in the background
/// while the others are polled again on time; it is not asked again until that poll ends.
#[derive(Default)]
pub struct InFlight {
    polls: std::collections::HashMap<String, tokio::task::JoinHandle<ServerReport>>,
}

impl InFlight {
    /// Forgets the polls that finished; true when `id` is still being polled.
    fn busy(&mut self, id: &str) -> bool {
        self.polls.retain(|_, p| !p.is_finished());
        self.polls.contains_key(id)
    }
}

/// One cycle of the `serve` poller: starts a poll of every server not still being polled
/// (at most `POLLER_THREADS` at a time) and waits for them at most `within`; polls still
/// running then carry on into the next cycle. Their writes carry the poller's `fence`.
pub async fn poll_cycle(
    app: &Arc<App>,
    inflight: &mut InFlight,
    within: Duration,
    fence: Option<Fence>,
) -> Result<usize, crate::store::StoreError> {
    let started_at = std::time::Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(
        app.config.poller_threads.max(1),
    ));
    let mut started = Vec::new();
    for server in pollable(app).await? {
        if inflight.busy(&server.id) {
            tracing::debug!(server = %server.id, "previous poll still running; skipped this cycle");
            continue;
        }
        let (app, slots, id) = (app.clone(), slots.clone(), server.id.clone());
        let fence = fence.clone();
        let poll = tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            poll_one(app, server, fence).await
        });
        started.push(id.clone());
        inflight.polls.insert(id, poll);
    }
    let deadline = tokio::time::Instant::now() + within;
    for id in &started {
        if let Some(p) = inflight.polls.get_mut(id) {
            if tokio::time::timeout_at(deadline, p).await.is_err() {
                break;
            }
        }
    }
    app.metrics
        .poll_cycle
        .observe(started_at.elapsed().as_secs_f64());
    Ok(started.len())
}

/// The poller role of `serve`: polls every `POLL_INTERVAL` while holding the lease. Each
/// server is polled on its own: one that answers slowly does not delay the others' polls.
pub async fn run(app: Arc<App>, mut shutdown: Shutdown) {
    let interval = app.config.poll_interval;
    let ttl = (interval * 3).max(Duration::from_secs(3)) + app.config.poller_wait_timeout;
    let mut lease = crate::lease::Lease::new(app.clone(), crate::store::LeaseRole::Poller, ttl);
    let mut inflight = InFlight::default();
    loop {
        if lease.acquire().await {
            if let Err(e) = poll_cycle(&app, &mut inflight, interval, lease.fence()).await {
                tracing::warn!(error = %e, "poll cycle failed");
            }
        }
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    for (_, p) in inflight.polls.drain() {
        p.abort();
    }
    lease.release().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays a sequence of poll results through the hysteresis.
    fn run_seq(seq: &[bool], healthy: u32, unhealthy: u32) -> Vec<bool> {
        let mut h = Health {
            online: false,
            healthy_counter: 0,
            unhealthy_counter: 0,
        };
        seq.iter()
            .map(|&ok| {
                h = next_health(
                    h.online,
                    h.healthy_counter,
                    h.unhealthy_counter,
                    ok,
                    healthy,
                    unhealthy,
                );
                h.online
            })
            .collect()
    }

    #[test]
    fn thresholds_of_one_and_two_as_scalelite() {
        assert_eq!(
            run_seq(&[true, false, true, false, false, true], 1, 2),
            vec![true, true, true, true, false, true]
        );
    }

    #[test]
    fn a_flapping_server_needs_consecutive_results() {
        assert_eq!(
            run_seq(
                &[true, true, true, false, false, false, true, false, true, true, true],
                3,
                3
            ),
            vec![false, false, true, true, true, false, false, false, false, false, true]
        );
    }
}
