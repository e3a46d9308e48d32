//! `OpsStore`: what operators read and the usage ledger — lease holders, each server's
//! last poll result, running meetings with their participants, and per-day usage.
//!
//! Kept apart from the pool-state traits so a backend can implement it where it fits
//! (the usage ledger is an append-mostly table, a natural PostgreSQL tenant).

use async_trait::async_trait;
use serde::Serialize;

use super::{Meeting, StoreResult};

/// One lease row: which process holds a role until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseInfo {
    pub role: String,
    pub holder: String,
    /// Unix ms.
    pub expires_at: i64,
}

/// The outcome of a server's last poll, as any node can read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollResult {
    pub server_id: String,
    /// Unix ms.
    pub at: i64,
    pub ok: bool,
    /// Empty when `ok`.
    pub error: String,
}

/// A mapped meeting and the participants the last poll saw (plus joins since).
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingRow {
    pub meeting: Meeting,
    pub participants: u32,
}

/// One poll's sighting of one running meeting, for the usage ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSighting {
    /// `YYYY-MM-DD` (UTC) of `at`.
    pub day: String,
    /// Empty without multitenancy.
    pub tenant_id: String,
    /// BBB's internal meeting ID (unique per session).
    pub meeting_key: String,
    pub participants: u32,
    /// Unix ms.
    pub at: i64,
    /// A gap between sightings longer than this (ms) is not counted as running time.
    pub max_gap_ms: i64,
}

/// One day of usage for one tenant (`tenant_id` empty: meetings without a tenant).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageDay {
    pub day: String,
    pub tenant_id: String,
    pub meetings: u64,
    pub meeting_minutes: f64,
    pub participant_minutes: f64,
    /// The most participants seen in one meeting that day.
    pub peak_participants: u32,
    pub recordings: u64,
    pub recording_bytes: u64,
}

/// A callback that failed at least once (the URL as queued; callers trim it for display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackProblem {
    pub id: String,
    pub kind: String,
    pub url: String,
    pub status: String,
    pub attempts: u32,
    pub last_error: String,
    /// Unix ms.
    pub created_at: i64,
}

/// The outbox at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackSummary {
    pub pending: u64,
    pub failed: u64,
    /// Newest first.
    pub recent_failures: Vec<CallbackProblem>,
}

#[async_trait]
pub trait OpsStore: Send + Sync + 'static {
    async fn leases(&self) -> StoreResult<Vec<LeaseInfo>>;
    async fn save_poll_result(&self, result: &PollResult) -> StoreResult<()>;
    async fn poll_results(&self) -> StoreResult<Vec<PollResult>>;
    async fn meeting_rows(&self) -> StoreResult<Vec<MeetingRow>>;
    /// Adds sightings to the ledger: a meeting's running time and participant time grow
    /// by the time since its previous sighting that day (gaps over `max_gap_ms` excluded).
    async fn record_usage(&self, sightings: &[UsageSighting]) -> StoreResult<()>;
    /// Days `from..=to` (`YYYY-MM-DD`), one row per day and tenant, ordered by day then
    /// tenant; `tenant` restricts to one tenant.
    async fn usage(&self, tenant: Option<&str>, from: &str, to: &str)
        -> StoreResult<Vec<UsageDay>>;
    /// Pending and given-up counts, and the `recent` newest callbacks that failed.
    async fn callback_summary(&self, recent: usize) -> StoreResult<CallbackSummary>;
    /// Deletes ledger days before `day`; returns the rows removed.
    async fn prune_usage(&self, before_day: &str) -> StoreResult<usize>;
}
