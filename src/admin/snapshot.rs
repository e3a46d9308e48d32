//! The data of one picture of the cluster (see `admin::status::snapshot`), apart from the
//! code that gathers it, so that the consumers that only read it (metrics, the status page)
//! need nothing of the gathering: plain serde types with stable field names.

use serde::Serialize;

/// How many recent callback failures the snapshot lists.
pub const RECENT_CALLBACK_FAILURES: usize = 20;
/// The longest reason text kept per set-aside tarball.
pub const MAX_REASON: usize = 2000;

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Unix ms.
    pub generated_at: i64,
    pub servers: Vec<ServerStatus>,
    pub roles: Vec<RoleStatus>,
    pub meetings: Vec<MeetingStatus>,
    pub tenants: Vec<TenantStatus>,
    /// Tarballs waiting in `RECORDING_SPOOL_DIR`.
    pub import_queue: Vec<QueuedTarball>,
    /// Tarballs in `<spool>/failed/`, each with its `.reason`.
    pub set_aside: Vec<SetAside>,
    pub callbacks: CallbackStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub id: String,
    pub host: String,
    pub state: String,
    pub online: bool,
    /// `None` until a successful poll computed it.
    pub load: Option<f64>,
    pub load_multiplier: f64,
    pub meetings: u32,
    pub users: u32,
    pub video_streams: u32,
    pub largest_meeting: u32,
    pub bbb_version: String,
    pub tag: Option<String>,
    pub last_poll: Option<LastPoll>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastPoll {
    /// Unix ms.
    pub at: i64,
    pub ok: bool,
    /// Empty when the poll succeeded.
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleStatus {
    pub role: String,
    /// The process holding it: `<node>:<pid>` (`NODE_ID`, else the host name).
    pub holder: String,
    /// Unix ms; past means nobody holds it right now.
    pub expires_at: i64,
    pub held: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MeetingStatus {
    /// Empty without multitenancy.
    pub tenant_id: String,
    pub tenant: String,
    pub meeting_id: String,
    pub server_id: String,
    pub host: String,
    pub participants: u32,
    /// Unix ms.
    pub created_at: i64,
    pub age_seconds: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    pub id: String,
    pub name: String,
    pub meetings: u32,
    pub participants: u32,
    pub max_meetings: Option<u32>,
    pub max_participants: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueuedTarball {
    pub name: String,
    pub bytes: u64,
    /// Unix ms.
    pub modified_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetAside {
    pub name: String,
    pub reason: String,
    /// Unix ms.
    pub modified_at: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallbackStatus {
    /// Callbacks waiting for delivery (the outbox depth).
    pub pending: u64,
    /// Callbacks given up on.
    pub failed: u64,
    /// Newest first: given up, or pending after a failed attempt.
    pub recent_failures: Vec<CallbackFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallbackFailure {
    pub id: String,
    pub kind: String,
    /// Scheme, host and path only (queries may carry tokens).
    pub target: String,
    pub status: String,
    pub attempts: u32,
    pub last_error: String,
    /// Unix ms.
    pub created_at: i64,
}
