//! The pure step of the import: from what was read in Scalelite's stores and what
//! Ferrolite's store already holds, decide what to carry over and what to skip, and why.
//!
//! Rules (Scalelite's semantics, from its models):
//! - a server without `state` is enabled iff it is in `server_enabled`; a missing or
//!   unparseable `load_multiplier` is 1.0;
//! - a tenant setting overrides only when `override` is exactly `"true"`;
//! - NULL booleans of a migrated database read as false; NULL names and metadata values as
//!   empty; `internalMeetingID` is the record id (what Scalelite answers);
//! - callback data carries the recording-ready URL of a meeting; it is kept so that the
//!   meeting's next recording gets its callback, and no callback is sent by the import.
//!
//! Whatever Ferrolite already holds (same id) is left alone, which makes re-runs no-ops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use super::{PgState, RedisState, SlRecording};
use crate::store::recordings::{PlaybackFormat, Recording, RecordingState, Thumbnail};
use crate::store::{
    Meeting, PollUpdate, Server, ServerState, ServerStats, Tenant, TenantLrs, TenantSetting,
};

/// What kind of thing a plan line is about (the rows of the summary table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Server,
    Tenant,
    TenantSetting,
    Lrs,
    Meeting,
    ReadyUrl,
    Recording,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Server,
        Kind::Tenant,
        Kind::TenantSetting,
        Kind::Lrs,
        Kind::Meeting,
        Kind::ReadyUrl,
        Kind::Recording,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Server => "servers",
            Kind::Tenant => "tenants",
            Kind::TenantSetting => "tenant settings",
            Kind::Lrs => "tenant LRS settings",
            Kind::Meeting => "running meetings",
            Kind::ReadyUrl => "recording-ready URLs",
            Kind::Recording => "recordings",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Something not carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub kind: Kind,
    pub id: String,
    pub reason: String,
    /// Already in Ferrolite (a re-run), as opposed to something that cannot be carried.
    pub present: bool,
}

/// What Ferrolite's store holds already, as far as the plan needs to know.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub servers: HashMap<String, String>,
    pub server_urls: HashMap<String, String>,
    pub tenant_ids: HashSet<String>,
    /// Lower-cased name → id.
    pub tenant_names: HashMap<String, String>,
    pub setting_ids: HashSet<String>,
    pub lrs_tenants: HashSet<String>,
    pub meetings: HashSet<(String, String)>,
    pub voice_bridges: HashSet<String>,
    pub ready_urls: HashSet<(String, String)>,
    pub recordings: HashSet<String>,
}

/// A server to add: as added (offline, load unknown) and the poll result that then gives it
/// Scalelite's online state, load and counters (after its meetings are placed, so placing
/// them does not raise the load twice).
#[derive(Debug, Clone)]
pub struct ServerPlan {
    pub server: Server,
    pub poll: PollUpdate,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub servers: Vec<ServerPlan>,
    pub tenants: Vec<Tenant>,
    pub lrs: Vec<(String, TenantLrs)>,
    pub settings: Vec<TenantSetting>,
    pub meetings: Vec<Meeting>,
    /// `(tenant_id, meeting_id, url)`.
    pub ready_urls: Vec<(String, String, String)>,
    pub recordings: Vec<Recording>,
    pub skipped: Vec<Skip>,
    /// Notes for the operator (database flavour, delivered callbacks …).
    pub notes: Vec<String>,
}

impl Plan {
    fn skip(&mut self, kind: Kind, id: &str, reason: impl Into<String>) {
        self.skipped.push(Skip {
            kind,
            id: id.to_string(),
            reason: reason.into(),
            present: false,
        });
    }

    fn present(&mut self, kind: Kind, id: &str) {
        self.skipped.push(Skip {
            kind,
            id: id.to_string(),
            reason: "already in Ferrolite".into(),
            present: true,
        });
    }

    /// How many of `kind` are carried over.
    pub fn carried(&self, kind: Kind) -> usize {
        match kind {
            Kind::Server => self.servers.len(),
            Kind::Tenant => self.tenants.len(),
            Kind::TenantSetting => self.settings.len(),
            Kind::Lrs => self.lrs.len(),
            Kind::Meeting => self.meetings.len(),
            Kind::ReadyUrl => self.ready_urls.len(),
            Kind::Recording => self.recordings.len(),
        }
    }

    /// `(kind, carried, already present, skipped)` per kind, in table order.
    pub fn summary(&self) -> Vec<(Kind, usize, usize, usize)> {
        Kind::ALL
            .iter()
            .map(|&k| {
                let of_kind = self.skipped.iter().filter(|s| s.kind == k);
                let present = of_kind.clone().filter(|s| s.present).count();
                let skipped = of_kind.filter(|s| !s.present).count();
                (k, self.carried(k), present, skipped)
            })
            .collect()
    }

    /// The summary table and every skip with its reason, as printed by the CLI.
    pub fn render(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would carry" } else { "carried" };
        let mut out = format!(
            "{:<22} {:>12} {:>16} {:>8}\n",
            "what",
            format!("{verb} over")
                .trim_start_matches("would ")
                .to_string(),
            "already present",
            "skipped"
        );
        for (k, c, p, s) in self.summary() {
            out.push_str(&format!("{:<22} {:>12} {:>16} {:>8}\n", k.label(), c, p, s));
        }
        let skips: Vec<&Skip> = self.skipped.iter().filter(|s| !s.present).collect();
        if !skips.is_empty() {
            out.push_str("skipped:\n");
            for s in skips {
                out.push_str(&format!("  {} {}: {}\n", s.kind, s.id, s.reason));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if dry_run {
            out.push_str("dry run: nothing was written\n");
        }
        out
    }
}

/// What the plan needs to know about Ferrolite's settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Ferrolite's MULTITENANCY_ENABLED.
    pub multitenancy: bool,
}

fn server_state(s: &super::SlServer) -> ServerState {
    match s.state.as_deref().and_then(ServerState::parse) {
        Some(st) => st,
        None if s.enabled_member => ServerState::Enabled,
        None => ServerState::Disabled,
    }
}

fn multiplier(raw: Option<&str>) -> f64 {
    raw.and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|m| m.is_finite() && *m > 0.0)
        .unwrap_or(1.0)
}

/// The recording-ready URL of a `callback_attributes` YAML document: a Ruby hash with symbol
/// keys (`:recording_ready_url:`) or string keys, perhaps tagged as a Ruby class.
pub fn ready_url_of(yaml: &str) -> Option<String> {
    attribute(yaml, "recording_ready_url")
}

/// One attribute of a `callback_attributes` document.
pub fn attribute(yaml: &str, name: &str) -> Option<String> {
    let mut v: serde_yaml::Value = serde_yaml::from_str(yaml).ok()?;
    while let serde_yaml::Value::Tagged(t) = v {
        v = t.value;
    }
    let map = v.as_mapping()?;
    map.iter().find_map(|(k, v)| {
        let k = k.as_str()?;
        (k.trim_start_matches(':') == name)
            .then(|| v.as_str().map(str::to_string))
            .flatten()
            .filter(|u| !u.is_empty())
    })
}

/// A Scalelite recording row as Ferrolite's store holds it.
pub fn recording_of(r: &SlRecording, record_id: &str) -> Recording {
    let mut formats: Vec<PlaybackFormat> = r
        .formats
        .iter()
        .filter_map(|f| {
            let mut thumbnails: Vec<Thumbnail> = f
                .thumbnails
                .iter()
                .map(|t| Thumbnail {
                    width: t.width,
                    height: t.height,
                    alt: t.alt.clone().unwrap_or_default(),
                    url: t.url.clone().unwrap_or_default(),
                    sequence: t.sequence.unwrap_or(0),
                })
                .collect();
            thumbnails.sort_by_key(|t| t.sequence);
            Some(PlaybackFormat {
                format: f.format.clone()?,
                url: f.url.clone().unwrap_or_default(),
                length: f.length.unwrap_or(0),
                processing_time: f.processing_time,
                size: None,
                thumbnails,
            })
        })
        .collect();
    formats.sort_by(|a, b| a.format.cmp(&b.format));
    Recording {
        record_id: record_id.to_string(),
        meeting_id: r.meeting_id.clone().unwrap_or_default(),
        internal_meeting_id: record_id.to_string(),
        name: r.name.clone().unwrap_or_default(),
        published: r.published.unwrap_or(false),
        state: r.state.as_deref().and_then(RecordingState::parse),
        start_time: r.start_ms.unwrap_or(0),
        end_time: r.end_ms.unwrap_or(0),
        participants: r.participants,
        raw_size: None,
        is_breakout: false,
        parent_meeting_id: None,
        protected: r.protected.unwrap_or(false),
        publish_updated: r.publish_updated.unwrap_or(false),
        metadata: r
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect(),
        formats,
        imported_at: 0,
    }
}

/// Decides the whole import.
pub fn plan(redis: &RedisState, pg: &PgState, existing: &Existing, opts: Options) -> Plan {
    let mut p = Plan::default();
    p.notes.push(format!(
        "Scalelite's database was built by {} (NULL flags read as false)",
        pg.flavour
    ));

    // Servers, remembering which Scalelite id ends up as which Ferrolite id.
    let mut server_ids: HashMap<String, String> = HashMap::new();
    for id in &redis.servers_without_hash {
        p.skip(
            Kind::Server,
            id,
            "listed in `servers` but has no server hash",
        );
    }
    for s in &redis.servers {
        if existing.servers.contains_key(&s.id) {
            server_ids.insert(s.id.clone(), s.id.clone());
            p.present(Kind::Server, &s.id);
            continue;
        }
        if let Some(other) = existing.server_urls.get(&s.url) {
            server_ids.insert(s.id.clone(), other.clone());
            p.skip(
                Kind::Server,
                &s.id,
                format!("its URL is already registered as server {other} (its meetings go there)"),
            );
            continue;
        }
        if s.url.is_empty() || s.secret.is_empty() {
            p.skip(Kind::Server, &s.id, "the server hash has no url or secret");
            continue;
        }
        let state = server_state(s);
        let mut server = Server::new(
            s.id.clone(),
            s.url.clone(),
            s.secret.clone(),
            multiplier(s.load_multiplier.as_deref()),
            s.tag.clone(),
        );
        server.state = state;
        let load = match state {
            ServerState::Disabled => None,
            _ => s.load,
        };
        server_ids.insert(s.id.clone(), s.id.clone());
        p.servers.push(ServerPlan {
            server,
            poll: PollUpdate {
                online: s.online,
                load,
                stats: ServerStats {
                    meetings: s.meetings,
                    users: s.users,
                    largest_meeting: s.largest_meeting,
                    videos: s.videos,
                },
                bbb_version: Some(s.bbb_version.clone()).filter(|v| !v.is_empty()),
                healthy_counter: s.healthy_counter,
                unhealthy_counter: s.unhealthy_counter,
                state: None,
            },
        });
    }

    // Tenants, their LRS and settings.
    let mut names: HashMap<String, String> = existing.tenant_names.clone();
    let mut tenant_ok: HashSet<String> = existing.tenant_ids.clone();
    for id in &redis.tenants_without_hash {
        p.skip(
            Kind::Tenant,
            id,
            "listed in `tenants` but has no tenant hash",
        );
    }
    for t in &redis.tenants {
        if existing.tenant_ids.contains(&t.id) {
            p.present(Kind::Tenant, &t.id);
        } else {
            let name = t.name.trim().to_ascii_lowercase();
            let secrets: Vec<String> = t
                .secrets
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if name.is_empty() || secrets.is_empty() {
                p.skip(
                    Kind::Tenant,
                    &t.id,
                    "the tenant hash has no name or no secrets",
                );
                continue;
            }
            if let Some(other) = names.get(&name) {
                p.skip(
                    Kind::Tenant,
                    &t.id,
                    format!("its name {name:?} is already taken by tenant {other} (Ferrolite's names are unique)"),
                );
                continue;
            }
            if name != t.name {
                p.notes.push(format!(
                    "tenant {} is named {:?} in Scalelite; Ferrolite keeps it as {name:?} (host labels are lower-case)",
                    t.id, t.name
                ));
            }
            names.insert(name.clone(), t.id.clone());
            tenant_ok.insert(t.id.clone());
            p.tenants.push(Tenant {
                id: t.id.clone(),
                name,
                secrets,
                max_meetings: None,
                max_participants: None,
            });
        }
        if let Some(endpoint) = t.lrs.get("lrs_endpoint") {
            if existing.lrs_tenants.contains(&t.id) {
                p.present(Kind::Lrs, &t.id);
            } else if tenant_ok.contains(&t.id) {
                let f = |k: &str| t.lrs.get(k).cloned();
                p.lrs.push((
                    t.id.clone(),
                    TenantLrs {
                        endpoint: endpoint.clone(),
                        username: f("lrs_username"),
                        password: f("lrs_password"),
                        kc_token_url: f("kc_token_url"),
                        kc_client_id: f("kc_client_id"),
                        kc_client_secret: f("kc_client_secret"),
                        kc_username: f("kc_username"),
                        kc_password: f("kc_password"),
                    },
                ));
            }
        }
    }
    for s in &redis.settings {
        if existing.setting_ids.contains(&s.id) {
            p.present(Kind::TenantSetting, &s.id);
        } else if !tenant_ok.contains(&s.tenant_id) {
            p.skip(
                Kind::TenantSetting,
                &s.id,
                format!("its tenant {} is not carried over", s.tenant_id),
            );
        } else if s.param.is_empty() {
            p.skip(Kind::TenantSetting, &s.id, "the setting has no param");
        } else {
            p.settings.push(TenantSetting {
                id: s.id.clone(),
                tenant_id: s.tenant_id.clone(),
                param: s.param.clone(),
                value: s.value.clone(),
                is_override: s.override_flag == "true",
            });
        }
    }

    // Running meetings.
    let now = crate::store::now_ms();
    let mut bridges = existing.voice_bridges.clone();
    let mut meeting_tenant: HashMap<String, String> = HashMap::new();
    for id in &redis.meetings_without_hash {
        p.skip(
            Kind::Meeting,
            id,
            "its mapping expired in Scalelite (meeting TTL)",
        );
    }
    for m in &redis.meetings {
        meeting_tenant.insert(m.id.clone(), m.tenant_id.clone());
        let tenant = if opts.multitenancy {
            m.tenant_id.clone()
        } else {
            String::new()
        };
        if existing.meetings.contains(&(tenant.clone(), m.id.clone())) {
            p.present(Kind::Meeting, &m.id);
            continue;
        }
        let Some(server) = m.server_id.as_ref().and_then(|s| server_ids.get(s)) else {
            p.skip(Kind::Meeting, &m.id, "its server is not carried over");
            continue;
        };
        if !tenant.is_empty() && !tenant_ok.contains(&tenant) {
            p.skip(
                Kind::Meeting,
                &m.id,
                format!("its tenant {tenant} is not carried over"),
            );
            continue;
        }
        let Some(vb) = m.voice_bridge.clone() else {
            p.skip(Kind::Meeting, &m.id, "the mapping has no voice bridge");
            continue;
        };
        if !bridges.insert(vb.clone()) {
            p.skip(
                Kind::Meeting,
                &m.id,
                format!("voice bridge {vb} is already used by another meeting"),
            );
            continue;
        }
        p.meetings.push(Meeting {
            tenant_id: tenant,
            meeting_id: m.id.clone(),
            server_id: server.clone(),
            moderator_pw: m.moderator_pw.clone(),
            voice_bridge: vb,
            created_at: now,
            // Scalelite sends the front end's ID to BBB unchanged, for tenants too.
            bbb_id: m.id.clone(),
        });
    }

    // Recordings.
    let mut record_tenant: HashMap<String, String> = HashMap::new();
    let mut seen = HashSet::new();
    for r in &pg.recordings {
        let Some(rid) = r.record_id.clone().filter(|s| !s.is_empty()) else {
            p.skip(
                Kind::Recording,
                "(no record_id)",
                "the row has no record_id",
            );
            continue;
        };
        if !seen.insert(rid.clone()) {
            p.skip(Kind::Recording, &rid, "duplicate record_id");
            continue;
        }
        let rec = recording_of(r, &rid);
        if let Some(t) = rec.meta("tenant-id") {
            record_tenant.insert(rec.meeting_id.clone(), t.to_string());
        }
        if existing.recordings.contains(&rid) {
            p.present(Kind::Recording, &rid);
            continue;
        }
        p.recordings.push(rec);
    }

    // Callback data: keep recording-ready URLs (never send anything now).
    let mut delivered = 0;
    let mut ready: BTreeMap<(String, String), String> = BTreeMap::new();
    for c in &pg.callback_data {
        let Some(mid) = c.meeting_id.clone().filter(|s| !s.is_empty()) else {
            continue;
        };
        let attrs = c.attributes.as_deref().unwrap_or("");
        if attribute(attrs, "analytics_callback_url").is_some() {
            p.skip(
                Kind::ReadyUrl,
                &format!("{mid} (analytics)"),
                "analytics callback URLs are signed into the meeting at create; Scalelite's meetings keep posting to Scalelite's URL",
            );
        }
        let Some(url) = ready_url_of(attrs) else {
            continue;
        };
        if c.recording_id.is_some() {
            delivered += 1;
        }
        let tenant = if opts.multitenancy {
            meeting_tenant
                .get(&mid)
                .filter(|t| !t.is_empty())
                .or_else(|| record_tenant.get(&mid))
                .cloned()
                .unwrap_or_default()
        } else {
            String::new()
        };
        ready.insert((tenant, mid), url);
    }
    for ((tenant, mid), url) in ready {
        if existing.ready_urls.contains(&(tenant.clone(), mid.clone())) {
            p.present(Kind::ReadyUrl, &mid);
        } else {
            p.ready_urls.push((tenant, mid, url));
        }
    }
    if delivered > 0 {
        p.notes.push(format!(
            "{delivered} recording-ready callback(s) were already sent by Scalelite; none is sent again"
        ));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalelite::{SlMeeting, SlServer, SlTenant, SlTenantSetting};

    fn opts() -> Options {
        Options { multitenancy: true }
    }

    #[test]
    fn legacy_servers_take_their_state_from_the_enabled_set_and_multiplier_one() {
        let redis = RedisState {
            servers: vec![
                SlServer {
                    id: "a".into(),
                    url: "https://a/b/api".into(),
                    secret: "s".into(),
                    enabled_member: true,
                    online: true,
                    load: Some(3.0),
                    ..Default::default()
                },
                SlServer {
                    id: "b".into(),
                    url: "https://b/b/api".into(),
                    secret: "s".into(),
                    load_multiplier: Some("2.5".into()),
                    state: Some("cordoned".into()),
                    ..Default::default()
                },
                SlServer {
                    id: "c".into(),
                    url: "https://c/b/api".into(),
                    secret: "s".into(),
                    load_multiplier: Some("0.0".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let p = plan(&redis, &PgState::default(), &Existing::default(), opts());
        let s: Vec<_> = p
            .servers
            .iter()
            .map(|s| (s.server.state, s.server.load_multiplier, s.poll.load))
            .collect();
        assert_eq!(
            s,
            vec![
                (ServerState::Enabled, 1.0, Some(3.0)),
                (ServerState::Cordoned, 2.5, None),
                (ServerState::Disabled, 1.0, None)
            ]
        );
    }

    #[test]
    fn only_the_exact_string_true_overrides_and_ids_are_kept() {
        let redis = RedisState {
            tenants: vec![SlTenant {
                id: "t1".into(),
                name: "Bn".into(),
                secrets: "x:y".into(),
                ..Default::default()
            }],
            settings: vec![
                SlTenantSetting {
                    id: "s1".into(),
                    tenant_id: "t1".into(),
                    param: "record".into(),
                    value: "true".into(),
                    override_flag: "true".into(),
                },
                SlTenantSetting {
                    id: "s2".into(),
                    tenant_id: "t1".into(),
                    param: "welcome".into(),
                    value: "hi".into(),
                    override_flag: "yes".into(),
                },
                SlTenantSetting {
                    id: "s3".into(),
                    tenant_id: "gone".into(),
                    param: "x".into(),
                    value: "y".into(),
                    override_flag: "true".into(),
                },
            ],
            ..Default::default()
        };
        let p = plan(&redis, &PgState::default(), &Existing::default(), opts());
        assert_eq!(p.tenants[0].id, "t1");
        assert_eq!(p.tenants[0].name, "bn");
        assert_eq!(p.tenants[0].secrets, vec!["x", "y"]);
        let o: Vec<_> = p
            .settings
            .iter()
            .map(|s| (s.id.as_str(), s.is_override))
            .collect();
        assert_eq!(o, vec![("s1", true), ("s2", false)]);
        assert!(p.skipped.iter().any(|s| s.id == "s3" && !s.present));
    }

    #[test]
    fn what_ferrolite_holds_is_left_alone() {
        let redis = RedisState {
            servers: vec![SlServer {
                id: "a".into(),
                url: "https://a/".into(),
                secret: "s".into(),
                ..Default::default()
            }],
            meetings: vec![SlMeeting {
                id: "m".into(),
                server_id: Some("a".into()),
                voice_bridge: Some("71234".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut ex = Existing::default();
        ex.servers.insert("a".into(), "https://a/".into());
        ex.meetings.insert((String::new(), "m".into()));
        let p = plan(&redis, &PgState::default(), &ex, opts());
        assert!(p.servers.is_empty() && p.meetings.is_empty());
        assert_eq!(p.summary()[0], (Kind::Server, 0, 1, 0));
    }

    #[test]
    fn null_flags_of_migrated_databases_read_as_false() {
        let r = SlRecording {
            record_id: Some("r1".into()),
            published: None,
            protected: None,
            metadata: vec![("k".into(), None)],
            ..Default::default()
        };
        let rec = recording_of(&r, "r1");
        assert!(!rec.published && !rec.protected && !rec.publish_updated);
        assert_eq!(rec.metadata, vec![("k".to_string(), String::new())]);
        assert_eq!(rec.internal_meeting_id, "r1");
    }

    #[test]
    fn ready_urls_come_from_ruby_yaml_with_symbol_or_string_keys() {
        assert_eq!(
            ready_url_of("---\n:recording_ready_url: https://x/y\n").as_deref(),
            Some("https://x/y")
        );
        assert_eq!(
            ready_url_of("--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess\nrecording_ready_url: https://z/\n").as_deref(),
            Some("https://z/")
        );
        assert_eq!(ready_url_of("--- {}\n"), None);
        assert_eq!(ready_url_of("not: [valid"), None);
    }
}
