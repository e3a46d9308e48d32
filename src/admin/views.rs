//! What the listing commands print: one serde struct per listing (its field names are the
//! stable `--json` interface documented in docs/cli.md) and the one table printer every
//! human listing uses.
//!
//! Each view is built from the store's types by a pure function, so the JSON and the human
//! table of a command always show the same data.

use super::status::ServerStatus;
use std::io::Write;

use serde::Serialize;

use crate::poller::ServerReport;
use crate::store::recordings::Recording;
use crate::store::{Meeting, Server, Tenant, TenantLrs};
use crate::tenant::TenantScope;

/// One BBB server (`servers --json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerView {
    pub id: String,
    pub url: String,
    pub hostname: String,
    /// `enabled`, `cordoned` or `disabled`.
    pub state: String,
    pub online: bool,
    /// `null` until a successful poll.
    pub load: Option<f64>,
    pub load_multiplier: f64,
    pub tag: Option<String>,
    pub bbb_version: String,
    /// Only with `--show-secrets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl ServerView {
    pub fn new(s: &Server, show_secret: bool) -> ServerView {
        ServerView {
            id: s.id.clone(),
            url: s.url.clone(),
            hostname: s.hostname(),
            state: s.state.as_str().to_string(),
            online: s.online,
            load: s.load,
            load_multiplier: s.load_multiplier,
            tag: s.tag.clone(),
            bbb_version: s.bbb_version.clone(),
            secret: show_secret.then(|| s.secret.clone()),
        }
    }
}

/// One row of `status` (the human table prints exactly these fields).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusRow {
    pub id: String,
    pub hostname: String,
    pub state: String,
    pub online: bool,
    pub meetings: u32,
    pub users: u32,
    pub largest_meeting: u32,
    pub videos: u32,
    pub load: Option<f64>,
    pub bbb_version: String,
    pub tag: Option<String>,
}

/// The `status` rows, sorted by host name and then id.
pub fn status_rows(servers: &[ServerStatus]) -> Vec<StatusRow> {
    let mut rows: Vec<StatusRow> = servers
        .iter()
        .map(|s| StatusRow {
            id: s.id.clone(),
            hostname: s.host.clone(),
            state: s.state.clone(),
            online: s.online,
            meetings: s.meetings,
            users: s.users,
            largest_meeting: s.largest_meeting,
            videos: s.video_streams,
            load: s.load,
            bbb_version: s.bbb_version.clone(),
            tag: s.tag.clone(),
        })
        .collect();
    rows.sort_by(|a, b| (&a.hostname, &a.id).cmp(&(&b.hostname, &b.id)));
    rows
}

/// One running meeting (`meetings list --json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MeetingView {
    pub meeting_id: String,
    /// `null` when multitenancy is off.
    pub tenant_id: Option<String>,
    pub server_id: String,
    /// `null` when the server was removed.
    pub server_url: Option<String>,
    pub voice_bridge: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The meeting ID on BBB: scoped for a tenant meeting Ferrolite created, plain for one
    /// Scalelite created.
    pub bbb_id: String,
}

impl MeetingView {
    pub fn new(m: &Meeting, servers: &[Server]) -> MeetingView {
        MeetingView {
            meeting_id: m.meeting_id.clone(),
            tenant_id: TenantScope::from_stored(&m.tenant_id)
                .id()
                .map(str::to_string),
            server_id: m.server_id.clone(),
            server_url: servers
                .iter()
                .find(|s| s.id == m.server_id)
                .map(|s| s.url.clone()),
            voice_bridge: m.voice_bridge.clone(),
            created_at: m.created_at,
            bbb_id: m.bbb_id.clone(),
        }
    }
}

/// One tenant (`tenants --json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    /// `null`: no limit.
    pub max_meetings: Option<u32>,
    pub max_participants: Option<u32>,
    /// The LRS endpoint, when one is set.
    pub lrs_endpoint: Option<String>,
    /// `basic` or `keycloak`, when an LRS is set.
    pub lrs_auth: Option<String>,
    /// Only with `--show-secrets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<String>>,
}

impl TenantView {
    pub fn new(t: &Tenant, lrs: Option<&TenantLrs>, show_secrets: bool) -> TenantView {
        TenantView {
            id: t.id.clone(),
            name: t.name.clone(),
            max_meetings: t.max_meetings,
            max_participants: t.max_participants,
            lrs_endpoint: lrs.map(|l| l.endpoint.clone()),
            lrs_auth: lrs.map(|l| {
                if l.username.is_some() {
                    "basic".to_string()
                } else {
                    "keycloak".to_string()
                }
            }),
            secrets: show_secrets.then(|| t.secrets.clone()),
        }
    }
}

/// One recording (`recordings list --json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordingView {
    pub record_id: String,
    pub meeting_id: String,
    pub name: String,
    /// `published`, `unpublished`, `deleted`, … (`null` when BBB gave none).
    pub state: Option<String>,
    pub published: bool,
    /// Unix milliseconds.
    pub start_time: i64,
    pub end_time: i64,
    pub participants: Option<i64>,
    pub formats: Vec<String>,
    pub protected: bool,
    /// BBB's `meta_` values (the tenant in `tenant-id`), by key.
    pub metadata: std::collections::BTreeMap<String, String>,
}

impl RecordingView {
    pub fn new(r: &Recording) -> RecordingView {
        RecordingView {
            record_id: r.record_id.clone(),
            meeting_id: r.meeting_id.clone(),
            name: r.name.clone(),
            state: r.state.map(|s| s.as_str().to_string()),
            published: r.published,
            start_time: r.start_time,
            end_time: r.end_time,
            participants: r.participants,
            formats: r.formats.iter().map(|f| f.format.clone()).collect(),
            protected: r.protected,
            metadata: r.metadata.iter().cloned().collect(),
        }
    }
}

/// What `poll` found on one server (`poll --json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PollView {
    pub id: String,
    pub online: bool,
    pub load: Option<f64>,
    /// Why this poll failed, `null` when it succeeded.
    pub error: Option<String>,
    /// Meetings forgotten because the server no longer had them (or went offline).
    pub forgotten_meetings: usize,
}

impl PollView {
    pub fn new(r: &ServerReport) -> PollView {
        PollView {
            id: r.id.clone(),
            online: r.online,
            load: r.load,
            error: r.error.clone(),
            forgotten_meetings: r.forgotten,
        }
    }

    /// Whether this server needs a look: the poll failed or it is offline.
    pub fn is_problem(&self) -> bool {
        !self.online || self.error.is_some()
    }
}

/// Writes `value` as pretty JSON and a newline.
pub fn write_json(out: &mut dyn Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::other)?;
    writeln!(out)
}

/// Writes a table: the header, then the rows, columns padded to their widest cell and
/// separated by two spaces.
pub fn write_table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        cells
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for r in rows {
        writeln!(out, "{}", line(&mut r.iter().map(String::as_str)))?;
    }
    Ok(())
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM UTC` (`-` for 0 or out of range).
pub fn fmt_time(ms: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    if ms <= 0 {
        return "-".into();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_readable_utc() {
        assert_eq!(fmt_time(0), "-");
        assert_eq!(fmt_time(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(fmt_time(i64::MAX), "-");
    }

    #[test]
    fn tables_pad_to_the_widest_cell() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &["A", "LONG HEADER"],
            &[vec!["wide cell".into(), "x".into()]],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A          LONG HEADER\nwide cell  x\n"
        );
    }

    #[test]
    fn status_rows_sort_by_host_then_id_and_keep_both() {
        let mk = |id: &str, url: &str| {
            ServerStatus::from_server(
                &Server::new(id.into(), url.into(), "s".into(), 1.0, None),
                None,
            )
        };
        let rows = status_rows(&[
            mk("b", "https://h2/bigbluebutton/api"),
            mk("z", "https://h1:8443/bigbluebutton/api"),
            mk("a", "https://h1/bigbluebutton/api"),
        ]);
        let ids: Vec<_> = rows
            .iter()
            .map(|r| (r.hostname.as_str(), r.id.as_str()))
            .collect();
        assert_eq!(ids, vec![("h1", "a"), ("h1", "z"), ("h2", "b")]);
    }
}
