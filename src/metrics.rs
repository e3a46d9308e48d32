//! Prometheus metrics at `GET /metrics` (text exposition format).
//!
//! What operators ask for and Scalelite never had: per-call request counts and latency,
//! each server's health, load and usage, poll outcomes, placements and callback delivery.
//! Server series are rebuilt from the store at every scrape, so a removed server's series
//! disappear and every `serve` process shows the same pool. Labels are bounded: call names
//! come from a fixed list, servers from the pool.
//!
//! Operations series (issue 12) are rebuilt from `admin::status::snapshot` at every scrape:
//! importer backlog and set-aside tarballs, the callback outbox, which process holds each
//! role, the autoscaling signal; server gauges carry the host name as well as the id.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::admin::snapshot::Snapshot;
use crate::autoscale::Decision;

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

/// A server gauge's labels: the id, and the host for people.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerHost {
    pub server: String,
    pub host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerStateLabels {
    pub server: String,
    pub host: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: String,
    pub holder: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub build: String,
}

/// Series rebuilt at each scrape from the status snapshot.
struct OpsGauges {
    build: Family<BuildLabels, Gauge>,
    import_backlog: Gauge,
    import_backlog_bytes: Gauge,
    set_aside: Gauge,
    outbox: Family<OutcomeLabel, Gauge>,
    role: Family<RoleLabels, Gauge>,
    meetings: Gauge,
    desired: Gauge,
    serving: Gauge,
    pressure: Gauge<f64, AtomicU64>,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<CallLabels, Counter>,
    pub latency: Family<CallName, Histogram>,
    pub placements: Family<ServerLabel, Counter>,
    pub polls: Family<PollLabels, Counter>,
    pub poll_cycle: Histogram,
    pub callbacks: Family<CallbackLabels, Counter>,
    pub import_failures: Family<ImportFailureLabels, Counter>,
    /// Spool imports, by outcome (imported, partial, refused, retry).
    pub imports: Family<OutcomeLabel, Counter>,
    /// Autoscale hook runs, by outcome (ok, failed).
    pub autoscale_hooks: Family<OutcomeLabel, Counter>,
    online: Family<ServerHost, Gauge>,
    load: Family<ServerHost, Gauge<f64, AtomicU64>>,
    meetings: Family<ServerHost, Gauge>,
    users: Family<ServerHost, Gauge>,
    videos: Family<ServerHost, Gauge>,
    state: Family<ServerStateLabels, Gauge>,
    ops: OpsGauges,
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
        let imports = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "imports",
            "Recording tarballs taken from the spool, by outcome (imported, partial = some formats set aside, refused = set aside, retry = left for later)",
            imports.clone(),
        );
        let autoscale_hooks = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "autoscale_hook_runs",
            "AUTOSCALE_HOOK runs, by outcome (ok or failed)",
            autoscale_hooks.clone(),
        );
        let ops = OpsGauges {
            build: Family::default(),
            import_backlog: Gauge::default(),
            import_backlog_bytes: Gauge::default(),
            set_aside: Gauge::default(),
            outbox: Family::default(),
            role: Family::default(),
            meetings: Gauge::default(),
            desired: Gauge::default(),
            serving: Gauge::default(),
            pressure: Gauge::default(),
        };
        registry.register(
            "build_info",
            "1, labelled with the version and BUILD_NUMBER of this process",
            ops.build.clone(),
        );
        registry.register(
            "import_backlog",
            "Recording tarballs waiting in RECORDING_SPOOL_DIR",
            ops.import_backlog.clone(),
        );
        registry.register(
            "import_backlog_bytes",
            "Bytes of the tarballs waiting in RECORDING_SPOOL_DIR",
            ops.import_backlog_bytes.clone(),
        );
        registry.register(
            "import_set_aside",
            "Recording tarballs set aside in <spool>/failed/ (each with a .reason file)",
            ops.set_aside.clone(),
        );
        registry.register(
            "callback_outbox",
            "Callbacks in the outbox, by status (pending = waiting for delivery, failed = given up)",
            ops.outbox.clone(),
        );
        registry.register(
            "role_holder",
            "1 for the process holding each role's lease (poller, importer, callbacks, autoscaler)",
            ops.role.clone(),
        );
        registry.register(
            "meetings",
            "Meetings the load balancer knows to be running",
            ops.meetings.clone(),
        );
        registry.register(
            "autoscale_desired_servers",
            "Servers the pool should serve with (AUTOSCALE_TARGET_LOAD)",
            ops.desired.clone(),
        );
        registry.register(
            "autoscale_serving_servers",
            "Enabled and online servers",
            ops.serving.clone(),
        );
        registry.register(
            "autoscale_pressure",
            "Load per serving server divided by AUTOSCALE_TARGET_LOAD (1 = at target)",
            ops.pressure.clone(),
        );
        let online = Family::<ServerHost, Gauge>::default();
        registry.register("server_online", "1 if the server is online", online.clone());
        let load = Family::<ServerHost, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "server_load",
            "The server's load as placement sees it (-1 when unknown)",
            load.clone(),
        );
        let meetings = Family::<ServerHost, Gauge>::default();
        registry.register(
            "server_meetings",
            "Meetings on the server at the last poll",
            meetings.clone(),
        );
        let users = Family::<ServerHost, Gauge>::default();
        registry.register(
            "server_users",
            "Participants on the server at the last poll",
            users.clone(),
        );
        let videos = Family::<ServerHost, Gauge>::default();
        registry.register(
            "server_videos",
            "Video streams on the server at the last poll",
            videos.clone(),
        );
        let import_failures = Family::<ImportFailureLabels, Counter>::default();
        registry.register(
            "recording_import_failures",
            "Recording import, move and set-aside failures, by stage and reason",
            import_failures.clone(),
        );
        let state = Family::<ServerStateLabels, Gauge>::default();
        registry.register(
            "server_state",
            "1 for the server's administrative state (label state = enabled, cordoned or disabled)",
            state.clone(),
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
            imports,
            autoscale_hooks,
            online,
            load,
            meetings,
            users,
            videos,
            state,
            ops,
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

    /// Counts one spool import by its outcome (imported, partial, refused, retry).
    pub fn observe_import(&self, outcome: &'static str) {
        self.imports
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts one autoscale hook run.
    pub fn autoscale_hook(&self, ok: bool) {
        self.autoscale_hooks
            .get_or_create(&OutcomeLabel {
                outcome: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
    }

    /// The exposition text, with pool and operations series taken from `snap`.
    pub fn render(&self, snap: &Snapshot, autoscale: Option<&Decision>) -> String {
        for f in [&self.online, &self.meetings, &self.users, &self.videos] {
            f.clear();
        }
        self.load.clear();
        self.state.clear();
        for s in &snap.servers {
            let l = ServerHost {
                server: s.id.clone(),
                host: s.host.clone(),
            };
            self.online.get_or_create(&l).set(i64::from(s.online));
            self.load.get_or_create(&l).set(s.load.unwrap_or(-1.0));
            self.meetings.get_or_create(&l).set(i64::from(s.meetings));
            self.users.get_or_create(&l).set(i64::from(s.users));
            self.videos
                .get_or_create(&l)
                .set(i64::from(s.video_streams));
            self.state
                .get_or_create(&ServerStateLabels {
                    server: s.id.clone(),
                    host: s.host.clone(),
                    state: s.state.clone(),
                })
                .set(1);
        }
        let o = &self.ops;
        o.build.clear();
        o.build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                build: std::env::var("BUILD_NUMBER").unwrap_or_default(),
            })
            .set(1);
        o.import_backlog.set(snap.import_queue.len() as i64);
        o.import_backlog_bytes
            .set(snap.import_queue.iter().map(|t| t.bytes as i64).sum());
        o.set_aside.set(snap.set_aside.len() as i64);
        for (status, n) in [
            ("pending", snap.callbacks.pending),
            ("failed", snap.callbacks.failed),
        ] {
            o.outbox
                .get_or_create(&OutcomeLabel {
                    outcome: status.into(),
                })
                .set(n as i64);
        }
        o.role.clear();
        for r in snap.roles.iter().filter(|r| r.held) {
            o.role
                .get_or_create(&RoleLabels {
                    role: r.role.clone(),
                    holder: r.holder.clone(),
                })
                .set(1);
        }
        o.meetings.set(snap.meetings.len() as i64);
        if let Some(d) = autoscale {
            o.desired.set(i64::from(d.desired));
            o.serving.set(i64::from(d.serving));
            o.pressure.set(if d.pressure.is_finite() {
                d.pressure
            } else {
                -1.0
            });
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

    fn snapshot(servers: Vec<crate::admin::snapshot::ServerStatus>) -> Snapshot {
        Snapshot {
            generated_at: 0,
            servers,
            roles: vec![crate::admin::status::RoleStatus {
                role: "poller".into(),
                holder: "h1".into(),
                expires_at: i64::MAX,
                held: true,
            }],
            meetings: vec![],
            tenants: vec![],
            import_queue: vec![],
            set_aside: vec![],
            callbacks: Default::default(),
        }
    }

    fn server(id: &str) -> crate::admin::snapshot::ServerStatus {
        crate::admin::snapshot::ServerStatus {
            id: id.into(),
            host: format!("{id}.example"),
            state: "enabled".into(),
            online: true,
            load: Some(12.5),
            load_multiplier: 1.0,
            meetings: 1,
            users: 2,
            video_streams: 0,
            largest_meeting: 2,
            bbb_version: "3.0".into(),
            tag: None,
            last_poll: None,
        }
    }

    #[test]
    fn renders_requests_and_servers() {
        let m = Metrics::new();
        m.observe_request("join".into(), 302, Duration::from_millis(2));
        let text = m.render(&snapshot(vec![server("bbb1")]), None);
        for line in [
            "ferrolite_requests_total{call=\"join\",status=\"302\"} 1",
            "ferrolite_server_load{server=\"bbb1\",host=\"bbb1.example\"} 12.5",
            "ferrolite_server_online{server=\"bbb1\",host=\"bbb1.example\"} 1",
            "ferrolite_role_holder{role=\"poller\",holder=\"h1\"} 1",
            "ferrolite_import_backlog 0",
        ] {
            assert!(text.contains(line), "missing {line}: {text}");
        }
        let text = m.render(&snapshot(vec![]), None);
        assert!(
            !text.contains("server=\"bbb1\""),
            "removed servers disappear: {text}"
        );
    }

    #[test]
    fn every_family_has_help_and_a_type() {
        let m = Metrics::new();
        m.observe_import("imported");
        m.autoscale_hook(true);
        let text = m.render(&snapshot(vec![server("bbb1")]), None);
        let mut families = 0;
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            families += 1;
            assert!(
                text.lines().any(|l| l.starts_with(&format!("# HELP {name} ")) && l.len() > 12 + name.len()),
                "no HELP text for {name}"
            );
        }
        assert!(families >= 20, "{families} families");
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad metric name {name}"
            );
        }
    }
}
