//! Usage accounting: per tenant and for the pool, per day — meetings, meeting-minutes,
//! participant-minutes, the largest meeting, recordings and their bytes.
//!
//! The poller calls [`after_poll`] after every poll of a server: it records the poll's
//! outcome for the status page and, on success, one sighting per running meeting in the
//! usage ledger (`OpsStore::record_usage`). Running time between two sightings counts
//! unless the gap is longer than a few poll intervals (the poller was down). Recordings
//! are counted from the index by the day their meeting started. Days older than
//! `USAGE_RETENTION_DAYS` are deleted. Read by `ferrolite usage` and `/ferrolite/api/usage`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::admin::{AdminError, AdminResult};
use crate::app::App;
use crate::bbb::MeetingEntry;
use crate::store::ops::{PollResult, UsageDay, UsageSighting};
use crate::store::{now_ms, Server};

const DAY_MS: i64 = 86_400_000;

/// `YYYY-MM-DD` (UTC) of a Unix-ms time.
pub fn day_of(ms: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Checks a `YYYY-MM-DD` day given by a person.
pub fn parse_day(s: &str) -> Result<String, String> {
    let b = s.trim().as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(0..4)
        && digits(5..7)
        && digits(8..10);
    let (m, d): (u32, u32) = if ok {
        (
            s.trim()[5..7].parse().unwrap_or(0),
            s.trim()[8..10].parse().unwrap_or(0),
        )
    } else {
        (0, 0)
    };
    if ok && (1..=12).contains(&m) && (1..=31).contains(&d) {
        Ok(s.trim().to_string())
    } else {
        Err(format!(
            "{s:?} is not a day; use YYYY-MM-DD, e.g. 2026-01-31"
        ))
    }
}

/// The tenant of a meeting BBB reported: its `tenant-id` metadatum (set on every tenant
/// create, by Ferrolite and by Scalelite, whose tenant meetings have plain IDs), else the
/// scope suffix of its ID (see `tenant::scope`).
fn tenant_of<'a>(multitenancy: bool, bbb_id: &'a str, metadata: &'a [(String, String)]) -> &'a str {
    if !multitenancy {
        return "";
    }
    metadata
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("tenant-id") && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
        .or_else(|| {
            bbb_id
                .rsplit_once(crate::tenant::SCOPE_SEPARATOR)
                .map(|(_, t)| t)
        })
        .unwrap_or("")
}

/// The sightings of one successful poll (pure).
pub fn sightings(
    entries: &[MeetingEntry],
    multitenancy: bool,
    at: i64,
    max_gap: Duration,
) -> Vec<UsageSighting> {
    let day = day_of(at);
    entries
        .iter()
        .map(|e| UsageSighting {
            day: day.clone(),
            tenant_id: tenant_of(multitenancy, &e.meeting_id, &e.metadata).to_string(),
            meeting_key: if e.internal_meeting_id.is_empty() {
                format!("{}@{}", e.meeting_id, e.load.create_time_ms)
            } else {
                e.internal_meeting_id.clone()
            },
            participants: e.load.participants,
            at,
            max_gap_ms: max_gap.as_millis() as i64,
        })
        .collect()
}

/// Last time this process pruned the ledger (Unix ms).
static LAST_PRUNE: AtomicI64 = AtomicI64::new(0);

/// The poller's hook: the poll's outcome for the status page, and on success the usage
/// sightings. Failures are logged, never passed to the poller.
pub async fn after_poll(app: &App, server: &Server, outcome: Result<&[MeetingEntry], &str>) {
    let now = now_ms();
    let result = PollResult {
        server_id: server.id.clone(),
        at: now,
        ok: outcome.is_ok(),
        error: outcome.err().unwrap_or("").to_string(),
    };
    if let Err(e) = app.ops.save_poll_result(&result).await {
        tracing::warn!(server = %server.id, error = %e, "could not record the poll result");
    }
    let Ok(entries) = outcome else {
        return;
    };
    let c = &app.config;
    let max_gap = (c.poll_interval * 3 + c.poller_wait_timeout).max(Duration::from_secs(60));
    let s = sightings(entries, c.tenancy.enabled, now, max_gap);
    if let Err(e) = app.ops.record_usage(&s).await {
        tracing::warn!(server = %server.id, error = %e, "could not record usage");
    }
    if now - LAST_PRUNE.load(Ordering::Relaxed) > 3_600_000 {
        LAST_PRUNE.store(now, Ordering::Relaxed);
        let keep = i64::from(c.ops.usage_retention_days.max(1)) * DAY_MS;
        match app.ops.prune_usage(&day_of(now - keep)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "usage older than USAGE_RETENTION_DAYS deleted"),
            Err(e) => tracing::warn!(error = %e, "could not prune usage"),
        }
    }
}

/// One row of a report: a day of one tenant, with its name.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDay {
    pub tenant: String,
    #[serde(flatten)]
    pub usage: UsageDay,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    /// The tenant asked for (its name), if any.
    pub tenant: Option<String>,
    /// One row per day and tenant (tenant empty: meetings without a tenant).
    pub days: Vec<TenantDay>,
    /// Per day, every tenant together (the whole pool when no tenant was asked for).
    pub pool: Vec<UsageDay>,
}

/// Sums rows into one per day (pure).
pub fn per_day(rows: &[UsageDay]) -> Vec<UsageDay> {
    let mut out: Vec<UsageDay> = Vec::new();
    for r in rows {
        let d = match out.iter_mut().find(|d| d.day == r.day) {
            Some(d) => d,
            None => {
                out.push(UsageDay {
                    day: r.day.clone(),
                    ..Default::default()
                });
                out.last_mut().expect("just pushed")
            }
        };
        d.meetings += r.meetings;
        d.meeting_minutes += r.meeting_minutes;
        d.participant_minutes += r.participant_minutes;
        d.peak_participants = d.peak_participants.max(r.peak_participants);
        d.recordings += r.recordings;
        d.recording_bytes += r.recording_bytes;
    }
    out.sort_by(|a, b| a.day.cmp(&b.day));
    out
}

/// The usage of `from..=to` (default: the last 30 days), for one tenant (name or id) or all.
pub async fn report(
    app: &App,
    tenant: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> AdminResult<Report> {
    let to = match to {
        Some(t) => parse_day(t).map_err(AdminError::Invalid)?,
        None => day_of(now_ms()),
    };
    let from = match from {
        Some(f) => parse_day(f).map_err(AdminError::Invalid)?,
        None => day_of(now_ms() - 30 * DAY_MS),
    };
    if from > to {
        return Err(AdminError::Invalid(format!(
            "--from {from} is after --to {to}"
        )));
    }
    let tenants = app.store.tenants().await?;
    let wanted = match tenant {
        None => None,
        Some(t) => Some(
            tenants
                .iter()
                .find(|x| x.name == t.to_ascii_lowercase() || x.id == t)
                .ok_or_else(|| {
                    AdminError::NotFound(format!("no tenant named '{t}' (see `ferrolite tenants`)"))
                })?,
        ),
    };
    let rows = app
        .ops
        .usage(wanted.map(|t| t.id.as_str()), &from, &to)
        .await?;
    let pool = per_day(&rows);
    let days = rows
        .into_iter()
        .map(|u| TenantDay {
            tenant: tenants
                .iter()
                .find(|t| t.id == u.tenant_id)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            usage: u,
        })
        .collect();
    Ok(Report {
        from,
        to,
        tenant: wanted.map(|t| t.name.clone()),
        days,
        pool,
    })
}

fn csv_field(s: &str) -> String {
    // Quote, and defuse spreadsheet formulas in names.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The report as CSV: a `scope` column says `tenant` or `pool`.
pub fn to_csv(r: &Report) -> String {
    let mut out = String::from("scope,day,tenant_id,tenant,meetings,meeting_minutes,participant_minutes,peak_participants,recordings,recording_bytes\n");
    let mut line = |scope: &str, tenant_id: &str, tenant: &str, u: &UsageDay| {
        out.push_str(&format!(
            "{scope},{},{},{},{},{:.1},{:.1},{},{},{}\n",
            u.day,
            csv_field(tenant_id),
            csv_field(tenant),
            u.meetings,
            u.meeting_minutes,
            u.participant_minutes,
            u.peak_participants,
            u.recordings,
            u.recording_bytes
        ))
    };
    for d in &r.days {
        line("tenant", &d.usage.tenant_id, &d.tenant, &d.usage);
    }
    for p in &r.pool {
        line("pool", "", "", p);
    }
    out
}

/// `ferrolite usage`.
#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// One tenant (name or id); default every tenant and the pool.
    #[arg(long)]
    pub tenant: Option<String>,
    /// First day, YYYY-MM-DD (UTC; default 30 days ago).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (UTC; default today).
    #[arg(long)]
    pub to: Option<String>,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV.
    #[arg(long)]
    pub csv: bool,
}

/// Runs `ferrolite usage`, writing to `out`.
pub async fn cli(app: &App, args: &UsageArgs, out: &mut impl std::io::Write) -> AdminResult<()> {
    let io = |e: std::io::Error| AdminError::Invalid(format!("cannot write output: {e}"));
    let r = report(
        app,
        args.tenant.as_deref(),
        args.from.as_deref(),
        args.to.as_deref(),
    )
    .await?;
    if args.json {
        let text =
            serde_json::to_string_pretty(&r).map_err(|e| AdminError::Invalid(e.to_string()))?;
        return writeln!(out, "{text}").map_err(io);
    }
    if args.csv {
        return write!(out, "{}", to_csv(&r)).map_err(io);
    }
    writeln!(
        out,
        "{:<10}  {:<20}  {:>8}  {:>12}  {:>16}  {:>5}  {:>10}  {:>14}",
        "DAY",
        "TENANT",
        "MEETINGS",
        "MEETING-MIN",
        "PARTICIPANT-MIN",
        "PEAK",
        "RECORDINGS",
        "RECORDING-BYTES"
    )
    .map_err(io)?;
    let rows = r
        .days
        .iter()
        .map(|d| {
            (
                crate::tenant::TenantScope::from_stored(&d.tenant)
                    .id()
                    .unwrap_or("(no tenant)"),
                &d.usage,
            )
        })
        .chain(r.pool.iter().map(|p| ("(all)", p)));
    for (name, u) in rows {
        writeln!(
            out,
            "{:<10}  {:<20}  {:>8}  {:>12.1}  {:>16.1}  {:>5}  {:>10}  {:>14}",
            u.day,
            name,
            u.meetings,
            u.meeting_minutes,
            u.participant_minutes,
            u.peak_participants,
            u.recordings,
            u.recording_bytes
        )
        .map_err(io)?;
    }
    if r.pool.is_empty() {
        eprintln!("No usage recorded from {} to {}", r.from, r.to);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
        assert_eq!(day_of(1_767_225_599_999), "2025-12-31");
        assert_eq!(day_of(1_767_225_600_000), "2026-01-01");
        assert_eq!(day_of(-1), "1969-12-31");
    }

    #[test]
    fn days_given_by_people_are_checked() {
        assert_eq!(parse_day(" 2026-01-31 ").unwrap(), "2026-01-31");
        for bad in [
            "2026-1-31",
            "2026-13-01",
            "yesterday",
            "2026-01-32",
            "",
            "2026-01-3x",
        ] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenants_come_from_the_metadata_or_the_scope_suffix() {
        let tagged = vec![("tenant-id".to_string(), "t-2".to_string())];
        assert_eq!(tenant_of(true, "room~t-1", &[]), "t-1");
        assert_eq!(tenant_of(true, "room", &[]), "");
        assert_eq!(tenant_of(false, "room~t-1", &[]), "");
        // Scalelite's tenant meetings: a plain ID, the tenant in the metadata.
        assert_eq!(tenant_of(true, "room", &tagged), "t-2");
        assert_eq!(tenant_of(false, "room", &tagged), "");
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let r = Report {
            from: "a".into(),
            to: "b".into(),
            tenant: None,
            days: vec![TenantDay {
                tenant: "=HYPERLINK(\"x\")".into(),
                usage: UsageDay {
                    day: "2026-01-01".into(),
                    meetings: 2,
                    ..Default::default()
                },
            }],
            pool: vec![],
        };
        let csv = to_csv(&r);
        assert!(csv.contains(",\"'=HYPERLINK(\"\"x\"\")\",2,"), "{csv}");
    }
}
