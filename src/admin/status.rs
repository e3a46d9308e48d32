//! One picture of the cluster — `admin::status::snapshot()` — shared by `ferrolite status`,
//! the admin JSON (`/ferrolite/api/status`), the status page and `/metrics`.
//!
//! The pool with each server's last poll, the roles and which process holds them, running
//! meetings, tenants against their limits, the recording import queue and the tarballs set
//! aside (with their reasons), and recent callback failures. Field names are stable: they
//! are the JSON every consumer reads.

use std::path::Path;

use crate::app::App;
use crate::store::{now_ms, Server};

use super::AdminResult;

pub use super::snapshot::*;

impl ServerStatus {
    pub fn from_server(s: &Server, last_poll: Option<LastPoll>) -> ServerStatus {
        ServerStatus {
            id: s.id.clone(),
            host: s.hostname(),
            state: s.state.to_string(),
            online: s.online,
            load: s.load,
            load_multiplier: s.load_multiplier,
            meetings: s.stats.meetings,
            users: s.stats.users,
            video_streams: s.stats.videos,
            largest_meeting: s.stats.largest_meeting,
            bbb_version: s.bbb_version.clone(),
            tag: s.tag.clone(),
            last_poll,
        }
    }
}

/// A URL without its query, fragment or credentials.
fn target_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.path()
        ),
        Err(_) => "(not a URL)".into(),
    }
}

fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The tarballs waiting in the spool (sorted by name). A missing spool is an empty queue.
pub fn import_queue(spool: &Path) -> Vec<QueuedTarball> {
    let mut out: Vec<QueuedTarball> = std::fs::read_dir(spool)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata().ok()?;
            (meta.is_file() && crate::recordings::importer::is_tarball_name(&name)).then(|| {
                QueuedTarball {
                    name,
                    bytes: meta.len(),
                    modified_at: modified_ms(&meta),
                }
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The set-aside tarballs of `<spool>/failed/` and their reasons (sorted by name).
pub fn set_aside(failed: &Path) -> Vec<SetAside> {
    let mut out: Vec<SetAside> = std::fs::read_dir(failed)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let name = file.strip_suffix(".reason")?.to_string();
            let meta = e.metadata().ok()?;
            let mut reason = std::fs::read_to_string(e.path())
                .unwrap_or_else(|err| format!("(reason unreadable: {err})"));
            if reason.len() > MAX_REASON {
                let mut cut = MAX_REASON;
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason.truncate(cut);
                reason.push('…');
            }
            Some(SetAside {
                name,
                reason: reason.trim().to_string(),
                modified_at: modified_ms(&meta),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Everything an operator looks at, read now.
pub async fn snapshot(app: &App) -> AdminResult<Snapshot> {
    let now = now_ms();
    let mut servers = app.store.servers().await?;
    servers.sort_by_key(|s| (s.hostname(), s.id.clone()));
    let polls = app.ops.poll_results().await?;
    let host_of = |id: &str| {
        servers
            .iter()
            .find(|s| s.id == id)
            .map(Server::hostname)
            .unwrap_or_else(|| "(removed)".into())
    };
    let tenants = app.store.tenants().await?;
    let tenant_name = |id: &str| {
        tenants
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    let meetings = app
        .ops
        .meeting_rows()
        .await?
        .into_iter()
        .map(|r| MeetingStatus {
            tenant: tenant_name(&r.meeting.tenant_id),
            host: host_of(&r.meeting.server_id),
            participants: r.participants,
            age_seconds: ((now - r.meeting.created_at) / 1000).max(0),
            created_at: r.meeting.created_at,
            tenant_id: r.meeting.tenant_id,
            meeting_id: r.meeting.meeting_id,
            server_id: r.meeting.server_id,
        })
        .collect();
    let mut tenant_rows = Vec::with_capacity(tenants.len());
    for t in &tenants {
        let (meetings, participants) = app.store.tenant_usage(&t.id).await?;
        tenant_rows.push(TenantStatus {
            id: t.id.clone(),
            name: t.name.clone(),
            meetings,
            participants,
            max_meetings: t.max_meetings,
            max_participants: t.max_participants,
        });
    }
    let roles = app
        .ops
        .leases()
        .await?
        .into_iter()
        .map(|l| RoleStatus {
            held: l.expires_at > now,
            role: l.role,
            holder: l.holder,
            expires_at: l.expires_at,
        })
        .collect();
    let summary = app.ops.callback_summary(RECENT_CALLBACK_FAILURES).await?;
    let callbacks = CallbackStatus {
        pending: summary.pending,
        failed: summary.failed,
        recent_failures: summary
            .recent_failures
            .into_iter()
            .map(|cb| CallbackFailure {
                target: target_of(&cb.url),
                id: cb.id,
                kind: cb.kind,
                status: cb.status,
                attempts: cb.attempts,
                last_error: cb.last_error,
                created_at: cb.created_at,
            })
            .collect(),
    };
    let spool = app.config.recordings.spool_dir.clone();
    let failed = crate::recordings::importer::failed_dir(app);
    let (import_queue, set_aside) =
        tokio::task::spawn_blocking(move || (import_queue(&spool), set_aside(&failed)))
            .await
            .unwrap_or_default();
    Ok(Snapshot {
        generated_at: now,
        servers: servers
            .iter()
            .map(|s| {
                let last = polls
                    .iter()
                    .find(|p| p.server_id == s.id)
                    .map(|p| LastPoll {
                        at: p.at,
                        ok: p.ok,
                        error: p.error.clone(),
                    });
                ServerStatus::from_server(s, last)
            })
            .collect(),
        roles,
        meetings,
        tenants: tenant_rows,
        import_queue,
        set_aside,
        callbacks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_and_set_aside_are_read_from_the_spool() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.tar"), b"xx").unwrap();
        std::fs::write(d.path().join("b.tar.gz.part"), b"x").unwrap();
        std::fs::create_dir(d.path().join("failed")).unwrap();
        std::fs::write(d.path().join("failed/c.tar"), b"x").unwrap();
        std::fs::write(
            d.path().join("failed/c.tar.reason"),
            "metadata.xml missing\n",
        )
        .unwrap();
        let q = import_queue(d.path());
        assert_eq!(q.len(), 1);
        assert_eq!((q[0].name.as_str(), q[0].bytes), ("a.tar", 2));
        let s = set_aside(&d.path().join("failed"));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "c.tar");
        assert_eq!(s[0].reason, "metadata.xml missing");
        assert!(import_queue(&d.path().join("absent")).is_empty());
    }

    #[test]
    fn callback_targets_drop_queries_and_credentials() {
        assert_eq!(
            target_of("https://u:p@lms.example/cb?token=secret"),
            "https://lms.example/cb"
        );
    }
}
