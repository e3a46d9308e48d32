//! Carrying a running Scalelite's state over to Ferrolite (`ferrolite scalelite import`).
//!
//! Scalelite keeps servers, tenants, tenant settings and running meetings in Redis and its
//! recordings index (with callback data) in PostgreSQL. The import is four steps, each in
//! its own module:
//! - [`redis`] and [`postgres`] read Scalelite's stores into the plain types below, with
//!   read-only commands only (PostgreSQL in a `READ ONLY` session and transaction);
//! - [`plan`] decides, as a pure function of what was read and what Ferrolite's store
//!   already holds, what to carry over and what to skip (and why);
//! - [`write`] applies a plan through Ferrolite's store traits (whichever backend).
//!
//! Ids are kept (servers, tenants, tenant settings), so recordings keep their tenants (their
//! `tenant-id` metadatum) and meetings keep their servers. Running it again carries nothing
//! twice: whatever Ferrolite already holds is left alone.

pub mod cli;
pub mod plan;
pub mod postgres;
pub mod redis;
pub mod write;

/// A server hash (`server:<id>`) and what the sets and sorted sets say about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlServer {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub tag: Option<String>,
    /// `None` on records written before server states existed.
    pub state: Option<String>,
    /// Member of `server_enabled` (the truth when `state` is absent).
    pub enabled_member: bool,
    pub online: bool,
    /// As stored (`"1.0"`, `"2.5"`), `None` on records older than load multipliers.
    pub load_multiplier: Option<String>,
    /// Score in `server_load`, or in `cordoned_server_load` for cordoned servers.
    pub load: Option<f64>,
    pub meetings: u32,
    pub users: u32,
    pub largest_meeting: u32,
    pub videos: u32,
    pub bbb_version: String,
    pub healthy_counter: u32,
    pub unhealthy_counter: u32,
}

/// A tenant hash (`tenant:<id>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlTenant {
    pub id: String,
    pub name: String,
    /// `:`-separated.
    pub secrets: String,
    /// The LRS fields as stored (`lrs_endpoint`, `kc_token_url`, …).
    pub lrs: std::collections::BTreeMap<String, String>,
}

/// A tenant setting hash (`tenant_setting:<id>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlTenantSetting {
    pub id: String,
    pub tenant_id: String,
    pub param: String,
    pub value: String,
    /// Whatever the operator typed; only exactly `"true"` overrides.
    pub override_flag: String,
}

/// A running meeting (`meeting:<id>`); `None` fields were absent from the hash.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlMeeting {
    pub id: String,
    pub server_id: Option<String>,
    pub moderator_pw: String,
    pub voice_bridge: Option<String>,
    /// Empty when the meeting has no tenant.
    pub tenant_id: String,
}

/// Everything read from Scalelite's Redis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisState {
    pub servers: Vec<SlServer>,
    /// Ids in the `servers` set without a hash.
    pub servers_without_hash: Vec<String>,
    pub tenants: Vec<SlTenant>,
    pub tenants_without_hash: Vec<String>,
    pub settings: Vec<SlTenantSetting>,
    pub meetings: Vec<SlMeeting>,
    /// Ids in the `meetings` set whose hash expired (Scalelite's TTL) or was removed.
    pub meetings_without_hash: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlThumbnail {
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub alt: Option<String>,
    pub url: Option<String>,
    pub sequence: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlFormat {
    pub format: Option<String>,
    pub url: Option<String>,
    pub length: Option<i64>,
    pub processing_time: Option<i64>,
    pub thumbnails: Vec<SlThumbnail>,
}

/// A `recordings` row with its metadata, playback formats and thumbnails. Nullable columns
/// stay `Option` here (databases upgraded by migrations have NULLs Scalelite reads as false).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlRecording {
    pub record_id: Option<String>,
    pub meeting_id: Option<String>,
    pub name: Option<String>,
    pub published: Option<bool>,
    pub participants: Option<i64>,
    pub state: Option<String>,
    /// Unix ms.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub protected: Option<bool>,
    pub publish_updated: Option<bool>,
    /// In insertion order; a NULL value is kept as `None`.
    pub metadata: Vec<(String, Option<String>)>,
    pub formats: Vec<SlFormat>,
}

/// A `callback_data` row: the YAML-serialised callback URLs of a meeting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlCallbackData {
    pub meeting_id: Option<String>,
    /// Set once a recording of the meeting was imported (its callback was sent).
    pub recording_id: Option<i64>,
    pub attributes: Option<String>,
}

/// Everything read from Scalelite's PostgreSQL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgState {
    pub recordings: Vec<SlRecording>,
    pub callback_data: Vec<SlCallbackData>,
    /// How the database was built, for the operator: `schema.rb` (NOT NULL booleans) or
    /// `migrations` (nullable booleans, perhaps missing columns).
    pub flavour: String,
}

/// Why the import could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("Scalelite's Redis ({url}): {message}")]
    Redis { url: String, message: String },
    #[error("Scalelite's PostgreSQL ({url}): {message}")]
    Postgres { url: String, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A URL for messages: the password, if any, replaced.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}
