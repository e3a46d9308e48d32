//! The state store, as one trait per concern so a backend can implement each where it fits:
//!
//! - [`PoolStore`]: servers, meetings, tenants and their settings (the live pool state);
//! - [`Outbox`]: queued outgoing callbacks;
//! - [`LeaseStore`]: the named leases of the roles that run once (poller, importer, …);
//! - [`TokenStore`]: one-time playback tokens;
//! - [`RecordingStore`]: the recordings index, with the playback access lookup.
//!
//! The API, poller and CLI only see these traits (held separately by `App`, built from
//! [`Stores`]); SQL lives in `sqlite*.rs`, and [`SqliteStore`] implements them all.
//! Operations that must be atomic across processes (placing a meeting, taking a lease) are
//! single store calls, so every backend can make them atomic its own way (a SQLite
//! `IMMEDIATE` transaction here; a Lua script in Redis). `contract.rs` is the behaviour
//! every backend must show.

pub mod backends;
pub mod claim;
pub mod contract;
mod contract_recordings;
pub mod fence;
pub mod ops;
pub mod placement;
pub mod playback;
pub mod postgres;
mod postgres_recordings;
mod postgres_schema;
mod postgres_tls;
pub mod recordings;
pub mod redis;
mod redis_conn;
mod redis_pool;
pub mod sqlite;
mod sqlite_fence;
mod sqlite_identity;
mod sqlite_ops;
mod sqlite_playback;
mod sqlite_reconcile;
mod sqlite_recordings;
mod sqlite_schema;
mod sqlite_threads;

use std::fmt;

use async_trait::async_trait;

pub use fence::Fence;
pub use ops::OpsStore;
pub use placement::{CommitOutcome, PlacementCommit, PlacementSnapshot};
pub use playback::TokenStore;
pub use recordings::{RecordingState, RecordingStore};
pub use sqlite::SqliteStore;

/// Administrative state of a BBB server, as in Scalelite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Takes new meetings when online.
    Enabled,
    /// Keeps its meetings, takes no new ones, becomes disabled once empty.
    Cordoned,
    /// Takes nothing; joins are refused.
    Disabled,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Enabled => "enabled",
            ServerState::Cordoned => "cordoned",
            ServerState::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<ServerState> {
        match s {
            "enabled" => Some(ServerState::Enabled),
            "cordoned" => Some(ServerState::Cordoned),
            "disabled" => Some(ServerState::Disabled),
            _ => None,
        }
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the poller last saw on a server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStats {
    pub meetings: u32,
    pub users: u32,
    pub largest_meeting: u32,
    pub videos: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub id: String,
    /// The API URL, normally ending in `/bigbluebutton/api`.
    pub url: String,
    pub secret: String,
    pub tag: Option<String>,
    pub state: ServerState,
    pub online: bool,
    /// `None` until a successful poll has computed it; a server without a load takes no
    /// new meetings (Scalelite's rule).
    pub load: Option<f64>,
    pub load_multiplier: f64,
    pub stats: ServerStats,
    pub bbb_version: String,
    pub healthy_counter: u32,
    pub unhealthy_counter: u32,
}

impl Server {
    /// A new server as `servers add` creates it: disabled, offline, load unknown.
    pub fn new(
        id: String,
        url: String,
        secret: String,
        load_multiplier: f64,
        tag: Option<String>,
    ) -> Server {
        Server {
            id,
            url,
            secret,
            tag,
            state: ServerState::Disabled,
            online: false,
            load: None,
            load_multiplier,
            stats: ServerStats::default(),
            bbb_version: String::new(),
            healthy_counter: 0,
            unhealthy_counter: 0,
        }
    }

    /// Whether this server may receive a new meeting.
    pub fn available(&self) -> bool {
        self.state == ServerState::Enabled && self.online && self.load.is_some()
    }

    /// Whether joins may be sent to this server: online and not disabled (a cordoned
    /// server keeps serving its meetings).
    pub fn takes_joins(&self) -> bool {
        self.online && self.state != ServerState::Disabled
    }

    /// The host part of the URL, for tables and dial-in.
    pub fn hostname(&self) -> String {
        url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| self.url.clone())
    }
}

impl crate::bbb::Target for Server {
    fn url(&self) -> &str {
        &self.url
    }
    fn secret(&self) -> &str {
        &self.secret
    }
}

/// Administrative changes to a server; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ServerPatch {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub load_multiplier: Option<f64>,
    /// `Some(None)` removes the tag.
    pub tag: Option<Option<String>>,
    pub state: Option<ServerState>,
}

/// The result of one poll, written by the poller in one call.
#[derive(Debug, Clone)]
pub struct PollUpdate {
    pub online: bool,
    pub load: Option<f64>,
    pub stats: ServerStats,
    pub bbb_version: Option<String>,
    pub healthy_counter: u32,
    pub unhealthy_counter: u32,
    /// A cordoned server that was found empty becomes disabled.
    pub state: Option<ServerState>,
}

/// The tenant id of meetings, settings and ready URLs when multitenancy is off (or a request
/// came to the bare host): no tenant.
pub const NO_TENANT: &str = crate::tenant::TenantScope::None.stored();

/// A meeting known to the load balancer: which server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Meeting {
    /// [`NO_TENANT`] when multitenancy is off.
    pub tenant_id: String,
    /// The meeting ID as the front end knows it.
    pub meeting_id: String,
    pub server_id: String,
    pub moderator_pw: String,
    pub voice_bridge: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The meeting ID as BBB knows it: [`crate::tenant::scope`] of the two above for a
    /// meeting Ferrolite created; a tenant meeting Scalelite created (adopted or imported)
    /// keeps its plain ID.
    pub bbb_id: String,
}

/// The BBB-side ID of a stored meeting: the stored one, or (a row written before the
/// field existed) the scoped ID Ferrolite gives the meetings it creates.
pub fn bbb_id_or_scoped(stored: Option<&str>, tenant_id: &str, meeting_id: &str) -> String {
    match stored.filter(|s| !s.is_empty()) {
        Some(id) => id.to_string(),
        None => crate::tenant::scope(tenant_id, meeting_id),
    }
}

/// Why no server could be chosen (from `balancer::choose_server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceError {
    NoServer,
    TagUnavailable(String),
}

/// The pure function that picks a server from the current pool (from `balancer`). Owned,
/// so a backend may run the whole placement on a thread of its own.
pub type Chooser = std::sync::Arc<dyn Fn(&[Server]) -> Result<String, ChoiceError> + Send + Sync>;

/// What [`PoolStore::place_meeting`] needs: the meeting, candidate voice bridges in order of
/// preference, and the pure function that picks a server from the current pool.
pub struct PlaceRequest<'a> {
    pub tenant_id: &'a str,
    pub meeting_id: &'a str,
    pub moderator_pw: &'a str,
    pub voice_bridges: &'a [String],
    pub choose: Chooser,
    pub now_ms: i64,
    /// The tenant's limit on concurrent meetings, checked inside the placing transaction.
    pub max_tenant_meetings: Option<u32>,
    /// The meeting's ID on BBB when it is not the scoped one (a meeting Scalelite created);
    /// `None` for the meetings Ferrolite creates.
    pub bbb_id: Option<&'a str>,
    /// The one server the chooser can pick (an adoption, an import): a backend may read
    /// only that server for its snapshot instead of the whole pool.
    pub only_server: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlaceOutcome {
    /// The meeting was already mapped (perhaps by a concurrent create): use its server.
    Existing(Meeting),
    /// Newly placed; the server's load was raised by its multiplier.
    Placed(Meeting, Server),
    Refused(ChoiceError),
    /// Every candidate voice bridge is taken.
    NoVoiceBridge,
    /// The tenant already runs its maximum number of meetings (the limit).
    TenantLimit(u32),
}

/// A tenant: an institution served from the shared pool, found by the request's Host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// A UUID.
    pub id: String,
    /// Unique, lower-case; the host label that selects the tenant.
    pub name: String,
    /// Any of them validates checksums on the tenant's host.
    pub secrets: Vec<String>,
    /// Concurrent meetings allowed (`None`: no limit).
    pub max_meetings: Option<u32>,
    /// Concurrent participants allowed over all the tenant's meetings (`None`: no limit).
    pub max_participants: Option<u32>,
}

/// A tenant's learning record store (xAPI), for `crate::lrs`: basic credentials, or a
/// Keycloak/OIDC password grant that yields a token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantLrs {
    pub endpoint: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub kc_token_url: Option<String>,
    pub kc_client_id: Option<String>,
    pub kc_client_secret: Option<String>,
    pub kc_username: Option<String>,
    pub kc_password: Option<String>,
}

/// Changes to a tenant; `None` leaves a field alone, `Some(None)` removes a limit.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub secrets: Option<Vec<String>>,
    pub max_meetings: Option<Option<u32>>,
    pub max_participants: Option<Option<u32>>,
}

/// A per-tenant create/join parameter: a default the request may change, or an override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSetting {
    pub id: String,
    pub tenant_id: String,
    pub param: String,
    pub value: String,
    pub is_override: bool,
}

/// One way of sending a callback: a body and headers. A callback carries several when it
/// may be signed with any of several secrets; they are tried in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallbackVariant {
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// A queued outgoing callback (see `crate::callbacks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingCallback {
    pub id: String,
    /// What it is for, for logs and operators: `recording-ready`, `analytics`, `meeting-ended`.
    pub kind: String,
    pub method: String,
    pub url: String,
    pub variants: Vec<CallbackVariant>,
    pub attempts: u32,
    /// Unix ms of the next attempt.
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub status: CallbackStatus,
    pub last_error: String,
}

/// Where a queued callback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// The receiver answered 404/410: it does not want it.
    Gone,
    /// Given up (refused, or out of attempts).
    Failed,
}

impl CallbackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Pending => "pending",
            CallbackStatus::Delivered => "delivered",
            CallbackStatus::Gone => "gone",
            CallbackStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<CallbackStatus> {
        [
            CallbackStatus::Pending,
            CallbackStatus::Delivered,
            CallbackStatus::Gone,
            CallbackStatus::Failed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for CallbackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles that run once per cluster, each under the lease of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRole {
    Poller,
    Importer,
    Callbacks,
    Autoscaler,
}

impl LeaseRole {
    pub const ALL: [LeaseRole; 4] = [
        LeaseRole::Poller,
        LeaseRole::Importer,
        LeaseRole::Callbacks,
        LeaseRole::Autoscaler,
    ];

    /// The lease's name in the store.
    pub fn name(self) -> &'static str {
        match self {
            LeaseRole::Poller => "poller",
            LeaseRole::Importer => "importer",
            LeaseRole::Callbacks => "callbacks",
            LeaseRole::Autoscaler => "autoscaler",
        }
    }

    /// How logs name the role.
    pub fn label(self) -> &'static str {
        match self {
            LeaseRole::Poller => "poller",
            LeaseRole::Importer => "recording importer",
            LeaseRole::Callbacks => "callback sender",
            LeaseRole::Autoscaler => "autoscaler",
        }
    }
}

/// The lease that claims one recording for a publish, unpublish or delete (files and index
/// change together under it).
pub fn recording_claim(record_id: &str) -> String {
    format!("recording:{record_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store failed: {0}")]
    Backend(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An optimistic operation kept conflicting with concurrent writers; try again later.
    #[error("the store is busy: {0}")]
    Busy(String),
    /// A role's write carried an older lease epoch than the backend has seen: another
    /// process took the role over (see [`fence`]). Nothing was written.
    #[error("fenced off: {0}")]
    Fenced(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Pool state: servers, meetings, tenants, their settings and LRS, and participant counts.
#[async_trait]
pub trait PoolStore: Send + Sync + 'static {
    async fn add_server(&self, server: &Server) -> StoreResult<()>;
    async fn server(&self, id: &str) -> StoreResult<Option<Server>>;
    async fn servers(&self) -> StoreResult<Vec<Server>>;
    /// Applies `patch`; `None` when the server does not exist. Disabling forgets the load.
    async fn update_server(&self, id: &str, patch: &ServerPatch) -> StoreResult<Option<Server>>;
    /// Removes the server and forgets its meetings.
    async fn remove_server(&self, id: &str) -> StoreResult<bool>;
    /// Raises loads (joins, creates) of servers that have a known load.
    async fn add_load(&self, deltas: &[(String, f64)]) -> StoreResult<()>;
    /// Writes a poll's outcome (an operator's: not fenced).
    async fn save_poll(&self, id: &str, update: &PollUpdate) -> StoreResult<()> {
        self.save_poll_fenced(id, update, None).await
    }
    /// [`PoolStore::save_poll`]; with a fence (the poller's), only if its epoch is not older
    /// than the poller's latest ([`StoreError::Fenced`] otherwise, nothing written).
    async fn save_poll_fenced(
        &self,
        id: &str,
        update: &PollUpdate,
        fence: Option<&Fence>,
    ) -> StoreResult<()>;

    /// The meeting and its server (`None` if the server was removed).
    async fn meeting(
        &self,
        tenant_id: &str,
        meeting_id: &str,
    ) -> StoreResult<Option<(Meeting, Option<Server>)>>;
    /// Returns the existing mapping or chooses a server, raises its load and records the
    /// meeting with a unique voice bridge, as one atomic outcome: a snapshot, the pure
    /// decision, and a checked commit, retried on conflict. A backend implements the two
    /// steps below and answers this with [`placement::place`] (or one atomic step of its own).
    async fn place_meeting(&self, req: &PlaceRequest<'_>) -> StoreResult<PlaceOutcome>;
    /// Placement's read, as one consistent view: the meeting's mapping, every server, the
    /// tenant's meeting count (when `count_tenant`), and which of `voice_bridges` are free.
    async fn placement_snapshot(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        count_tenant: bool,
        voice_bridges: &[String],
    ) -> StoreResult<PlacementSnapshot>;
    /// Placement's write, atomic: records `commit.meeting` and raises its server's load by
    /// the server's multiplier (if it has a load) only if the meeting is still absent
    /// ([`CommitOutcome::Existing`] otherwise), the server still matches `commit.guard`, the
    /// tenant runs fewer than `commit.max_tenant_meetings`, and the voice bridge is free
    /// ([`CommitOutcome::Conflict`] otherwise; nothing written). One SQLite or PostgreSQL
    /// transaction, or one Redis Lua script.
    async fn commit_placement(&self, commit: &PlacementCommit) -> StoreResult<CommitOutcome>;
    async fn delete_meeting(
        &self,
        tenant_id: &str,
        meeting_id: &str,
    ) -> StoreResult<Option<Meeting>>;
    /// Deletes the mapping only if it still points at `server_id`.
    async fn delete_meeting_on(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        server_id: &str,
    ) -> StoreResult<bool>;
    async fn meetings(&self) -> StoreResult<Vec<Meeting>>;
    async fn meetings_on(&self, server_id: &str) -> StoreResult<Vec<Meeting>>;
    /// Forgets the meetings of a server that were created before `created_before_ms`,
    /// except those listed (the ones a successful poll saw, as BBB knows them: each
    /// meeting's `bbb_id`). Younger meetings are kept: the
    /// poll may have been answered before their create reached the server.
    async fn forget_meetings_except(
        &self,
        server_id: &str,
        keep: &[String],
        created_before_ms: i64,
    ) -> StoreResult<Vec<Meeting>> {
        self.forget_meetings_except_fenced(server_id, keep, created_before_ms, None)
            .await
    }
    /// [`PoolStore::forget_meetings_except`]; with a fence (the poller's), each of its
    /// writes is refused ([`StoreError::Fenced`]) once a newer poller's epoch was seen, so a
    /// paused old poller cannot forget meetings on the strength of its stale poll.
    async fn forget_meetings_except_fenced(
        &self,
        server_id: &str,
        keep: &[String],
        created_before_ms: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<Meeting>>;
    async fn meeting_by_voice_bridge(&self, voice_bridge: &str) -> StoreResult<Option<Meeting>>;

    /// Adds a tenant; [`StoreError::AlreadyExists`] when the name is taken.
    async fn add_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    async fn tenant(&self, id: &str) -> StoreResult<Option<Tenant>>;
    async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>>;
    async fn tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// Applies `patch`; `None` when the tenant does not exist.
    async fn update_tenant(&self, id: &str, patch: &TenantPatch) -> StoreResult<Option<Tenant>>;
    /// Removes the tenant and its settings (its meetings are left to end on their own).
    async fn remove_tenant(&self, id: &str) -> StoreResult<bool>;
    async fn add_tenant_setting(&self, setting: &TenantSetting) -> StoreResult<()>;
    async fn tenant_settings(&self, tenant_id: &str) -> StoreResult<Vec<TenantSetting>>;
    async fn remove_tenant_setting(&self, id: &str) -> StoreResult<bool>;
    /// Sets (`Some`) or removes (`None`) the tenant's LRS; false when the tenant does not exist.
    async fn set_tenant_lrs(&self, tenant_id: &str, lrs: Option<&TenantLrs>) -> StoreResult<bool>;
    async fn tenant_lrs(&self, tenant_id: &str) -> StoreResult<Option<TenantLrs>>;
    /// The tenant's running meetings and their participants (last poll plus joins since).
    async fn tenant_usage(&self, tenant_id: &str) -> StoreResult<(u32, u32)>;
    /// Counts one join into a meeting until the next poll sets the true number.
    async fn add_participant(&self, tenant_id: &str, meeting_id: &str) -> StoreResult<()>;
    /// The join's participant limit as one step: counts one join into the meeting if the
    /// tenant has fewer than `limit` participants over all its meetings. False (nothing
    /// counted) at the limit or when the meeting is unknown.
    async fn admit_participant(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        limit: u32,
    ) -> StoreResult<bool>;
    /// Records the participants a poll saw per meeting, by the meeting ID BBB knows.
    async fn set_participants(&self, server_id: &str, counts: &[(String, u32)]) -> StoreResult<()> {
        self.set_participants_fenced(server_id, counts, None).await
    }
    /// [`PoolStore::set_participants`], fenced like [`PoolStore::forget_meetings_except_fenced`].
    async fn set_participants_fenced(
        &self,
        server_id: &str,
        counts: &[(String, u32)],
        fence: Option<&Fence>,
    ) -> StoreResult<()>;
    /// A join's store step: the meeting and its server ([`PoolStore::meeting`]) and, when
    /// `limit` is set and the server takes joins ([`Server::takes_joins`]), the participant
    /// admission ([`PoolStore::admit_participant`]). A backend may answer it in one round
    /// trip; this default makes the two calls.
    async fn join_meeting(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        limit: Option<u32>,
    ) -> StoreResult<Option<JoinLookup>> {
        let Some((meeting, server)) = self.meeting(tenant_id, meeting_id).await? else {
            return Ok(None);
        };
        let admitted = match (limit, &server) {
            (Some(limit), Some(s)) if s.takes_joins() => {
                Some(self.admit_participant(tenant_id, meeting_id, limit).await?)
            }
            _ => None,
        };
        Ok(Some(JoinLookup {
            meeting,
            server,
            admitted,
        }))
    }
}

/// What [`PoolStore::join_meeting`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinLookup {
    pub meeting: Meeting,
    /// `None` if the server was removed.
    pub server: Option<Server>,
    /// Whether the participant limit admitted the join; `None` when no limit was asked
    /// for or the server takes no joins (nothing counted).
    pub admitted: Option<bool>,
}

/// The callback outbox: queued outgoing callbacks and their delivery state.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Queues a callback for delivery.
    /// False (and nothing changes) when a callback with this id already exists.
    async fn enqueue_callback(&self, cb: &OutgoingCallback) -> StoreResult<bool>;
    /// Pending callbacks whose next attempt is due, oldest first.
    async fn due_callbacks(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<OutgoingCallback>>;
    /// Records the outcome of an attempt: a final status, or `pending` with the next time.
    async fn update_callback(
        &self,
        id: &str,
        status: CallbackStatus,
        attempts: u32,
        next_attempt_at: i64,
        last_error: &str,
    ) -> StoreResult<()>;
    async fn callbacks(&self) -> StoreResult<Vec<OutgoingCallback>>;
    /// Claims up to `limit` due pending callbacks for `claimer` until `claim_until` (Unix ms),
    /// in one atomic statement: a callback claimed by a live claim is not returned to anyone
    /// else; an expired claim (its claimer died) is claimed again. With a fence, nothing is
    /// claimed ([`StoreError::Fenced`]) when its epoch is older than the sender's latest.
    async fn claim_callbacks(
        &self,
        now_ms: i64,
        limit: usize,
        claimer: &str,
        claim_until: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<OutgoingCallback>>;
    /// [`Outbox::update_callback`] for a claimed callback, releasing the claim; false (and
    /// nothing changes) when `claimer` no longer holds it; [`StoreError::Fenced`] (nothing
    /// changes) when the fence's epoch is older than the sender's latest.
    #[allow(clippy::too_many_arguments)]
    async fn finish_callback(
        &self,
        claimer: &str,
        id: &str,
        status: CallbackStatus,
        attempts: u32,
        next_attempt_at: i64,
        last_error: &str,
        fence: Option<&Fence>,
    ) -> StoreResult<bool>;
    /// Deletes finished (not pending) callbacks created before `before_ms`; returns how many.
    async fn prune_callbacks(&self, before_ms: i64) -> StoreResult<usize>;
}

/// Named leases for the roles only one process may run at a time (see [`LeaseRole`]) and for
/// short claims ([`recording_claim`]). Expiry is judged by the store's own clock, so nodes
/// with skewed clocks still agree on who holds a lease.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// The store's clock, Unix ms (the database's or Redis's time): the one clock nodes
    /// compare lease, token and claim times against.
    async fn now(&self) -> StoreResult<i64>;
    /// Takes the named lease for `holder` if it is free, expired or already `holder`'s, until
    /// the store's now + `ttl_ms`; the epoch of this tenure if held (see [`fence`]: it stays
    /// while `holder` keeps renewing and grows whenever the lease changes hands), `None` if
    /// another holder's lease has not expired.
    async fn take_lease_epoch(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<u64>>;
    /// [`LeaseStore::take_lease_epoch`] without the epoch: true if held.
    async fn take_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool> {
        Ok(self.take_lease_epoch(name, holder, ttl_ms).await?.is_some())
    }
    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;

    /// The named lease's holder and expiry (Unix ms), if anyone holds or held it.
    async fn lease_holder(&self, name: &str) -> StoreResult<Option<(String, i64)>>;
    /// Hands the lease from `previous` (a holder known to be gone) to `holder`, atomically,
    /// with a new epoch (returned); `None` when someone else took it meanwhile.
    async fn replace_lease(
        &self,
        name: &str,
        previous: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<u64>>;

    /// Raises the named cluster-wide generation counter by one and returns it: tells every
    /// node that what it names changed (each polls [`LeaseStore::generation`]).
    async fn bump_generation(&self, name: &str) -> StoreResult<u64>;
    /// The named generation counter (0 until first raised).
    async fn generation(&self, name: &str) -> StoreResult<u64>;
}

/// Every store a running process uses, one per concern (see the module doc). A backend
/// that implements them all fills every field with itself ([`Stores::all`]).
#[derive(Clone)]
pub struct Stores {
    pub pool: std::sync::Arc<dyn PoolStore>,
    pub outbox: std::sync::Arc<dyn Outbox>,
    pub leases: std::sync::Arc<dyn LeaseStore>,
    pub tokens: std::sync::Arc<dyn TokenStore>,
    pub recordings: std::sync::Arc<dyn RecordingStore>,
    pub ops: std::sync::Arc<dyn OpsStore>,
}

impl Stores {
    /// One backend for every concern (the embedded SQLite default).
    pub fn all<S>(store: S) -> Stores
    where
        S: PoolStore + Outbox + LeaseStore + TokenStore + RecordingStore + OpsStore,
    {
        let s = std::sync::Arc::new(store);
        Stores {
            pool: s.clone(),
            outbox: s.clone(),
            leases: s.clone(),
            tokens: s.clone(),
            recordings: s.clone(),
            ops: s,
        }
    }
}

impl From<StoreError> for crate::http::response::ApiError {
    /// The store failed: logged here, answered as Scalelite's generic `internalError`.
    fn from(e: StoreError) -> crate::http::response::ApiError {
        tracing::error!(error = %e, "store error");
        crate::http::response::ApiError::internal("The load balancer's store is unavailable.")
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
