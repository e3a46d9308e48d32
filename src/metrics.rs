//! Prometheus metrics at `GET /metrics` (text exposition format).
//!
//! What operators ask for and Scalelite never had: per-call request counts and latency,
//! each server's health, load and usage, poll outcomes, placements and callback delivery.
//! Server series are rebuilt from the store at every scrape, so a removed server's series
//! disappear and every `serve` process shows the same pool. Labels are bounded: call names
//! come from a fixed list, servers from the pool.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::store::Server;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub call: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallName {
    pub call: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabels {
    pub server: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabels {
    pub kind: String,
    pub status: String,
}

/// An import, move or set-aside failure: `stage` (extract, place, index, set_aside,
/// remove) and `reason` (an `ioerr::Cause` label, or `tarball` / `store`). Both bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ImportFailureLabels {
    pub stage: String,
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<CallLabels, Counter>,
    pub latency: Family<CallName, Histogram>,
    pub placements: Family<ServerLabel, Counter>,
    pub polls: Family<PollLabels, Counter>,
    pub poll_cycle: Histogram,
    pub callbacks: Family<CallbackLabels, Counter>,
    online: Family<ServerLabel, Gauge>,
    load: Family<ServerLabel, Gauge<f64, AtomicU64>>,
    meetings: Family<ServerLabel, Gauge>,
    users: Family<ServerLabel, Gauge>,
    videos: Family<ServerLabel, Gauge>,
    state: Family<PollLabels, Gauge>,
    pub import_failures: Family<ImportFailureLabels, Counter>,
}

/// The label for a request path: a known API call, or a fixed bucket.
pub fn call_label(path: &str) -> String {
    if let Some(call) = path.strip_prefix("/bigbluebutton/api/") {
        return match crate::bbb::calls::ApiCall::parse(call) {
            Some(c) => c.metrics_label().into(),
            None if call == "analytics_callback" => call.into(),
            None => "unknown".into(),
        };
    }
    match path {
        "/bigbluebutton/api" | "/bigbluebutton/api/" => "index".into(),
        "/health_check" | "/" => "health".into(),
        "/metrics" => "metrics".into(),
        "/fsapi" => "fsapi".into(),
        p if p.starts_with("/scalelite/api/") => "admin".into(),
        p if p.starts_with("/bigbluebutton/recording/") => "recording-upload".into(),
        _ => "other".into(),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ferrolite");
        let requests = Family::<CallLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests answered, by call and status",
            requests.clone(),
        );
        let latency = Family::<CallName, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.5, 14))
        });
        registry.register(
            "request_duration_seconds",
            "Time to answer a request, by call",
            latency.clone(),
        );
        let placements = Family::<ServerLabel, Counter>::default();
        registry.register(
            "placements",
            "New meetings placed, by server",
            placements.clone(),
        );
        let polls = Family::<PollLabels, Counter>::default();
        registry.register(
            "polls",
            "Server polls, by server and outcome (ok or failed)",
            polls.clone(),
        );
        let poll_cycle = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register(
            "poll_cycle_duration_seconds",
            "Wall time of one poll cycle over the pool",
            poll_cycle.clone(),
        );
        let callbacks = Family::<CallbackLabels, Counter>::default();
        registry.register(
            "callback_attempts",
            "Callback delivery attempts, by kind and resulting status",
            callbacks.clone(),
        );
        let online = Family::<ServerLabel, Gauge>::default();
        registry.register("server_online", "1 if the server is online", online.clone());
        let load = Family::<ServerLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "server_load",
            "The server's load as placement sees it (-1 when unknown)",
            load.clone(),
        );
        let meetings = Family::<ServerLabel, Gauge>::default();
        registry.register(
            "server_meetings",
            "Meetings on the server at the last poll",
            meetings.clone(),
        );
        let users = Family::<ServerLabel, Gauge>::default();
        registry.register(
            "server_users",
            "Participants on the server at the last poll",
            users.clone(),
        );
        let videos = Family::<ServerLabel, Gauge>::default();
        registry.register(
            "server_videos",
            "Video streams on the server at the last poll",
            videos.clone(),
        );
        let state = Family::<PollLabels, Gauge>::default();
        registry.register("server_state", "1 for the server's administrative state (label outcome = enabled, cordoned or disabled)", state.clone());
        let import_failures = Family::<ImportFailureLabels, Counter>::default();
        registry.register(
            "recording_import_failures",
            "Recording import, move and set-aside failures, by stage and reason",
            import_failures.clone(),
        );
        Metrics {
            import_failures,
            registry,
            requests,
            latency,
            placements,
            polls,
            poll_cycle,
            callbacks,
            online,
            load,
            meetings,
            users,
            videos,
            state,
        }
    }

    /// Counts one import failure (see [`ImportFailureLabels`]).
    pub fn import_failed(&self, stage: &str, reason: &str) {
        self.import_failures
            .get_or_create(&ImportFailureLabels {
                stage: stage.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn observe_request(&self, call: String, status: u16, elapsed: Duration) {
        self.latency
            .get_or_create(&CallName { call: call.clone() })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&CallLabels { call, status })
            .inc();
    }

    /// The exposition text, with server series taken from `servers`.
    pub fn render(&self, servers: &[Server]) -> String {
        for f in [&self.online, &self.meetings, &self.users, &self.videos] {
            f.clear();
        }
        self.load.clear();
        self.state.clear();
        for s in servers {
            let l = ServerLabel {
                server: s.id.clone(),
            };
            self.online.get_or_create(&l).set(i64::from(s.online));
            self.load.get_or_create(&l).set(s.load.unwrap_or(-1.0));
            self.meetings
                .get_or_create(&l)
                .set(i64::from(s.stats.meetings));
            self.users.get_or_create(&l).set(i64::from(s.stats.users));
            self.videos.get_or_create(&l).set(i64::from(s.stats.videos));
            self.state
                .get_or_create(&PollLabels {
                    server: s.id.clone(),
                    outcome: s.state.to_string(),
                })
                .set(1);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(call_label("/bigbluebutton/api/create"), "create");
        assert_eq!(call_label(&"/bigbluebutton/api/x".repeat(3)), "unknown");
        assert_eq!(call_label("/presentation/abc/slides.svg"), "other");
        assert_eq!(call_label("/bigbluebutton/api/evil-call-name"), "unknown");
        assert_eq!(call_label("/scalelite/api/getServers"), "admin");
    }

    #[test]
    fn renders_requests_and_servers() {
        let m = Metrics::new();
        m.observe_request("join".into(), 302, Duration::from_millis(2));
        let mut s = Server::new(
            "bbb1".into(),
            "http://bbb1/bigbluebutton/api".into(),
            "s".into(),
            1.0,
            None,
        );
        s.online = true;
        s.load = Some(12.5);
        let text = m.render(&[s]);
        assert!(
            text.contains("ferrolite_requests_total{call=\"join\",status=\"302\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ferrolite_server_load{server=\"bbb1\"} 12.5"),
            "{text}"
        );
        assert!(
            text.contains("ferrolite_server_online{server=\"bbb1\"} 1"),
            "{text}"
        );
        let text = m.render(&[]);
        assert!(
            !text.contains("server=\"bbb1\""),
            "removed servers disappear: {text}"
        );
    }
}
