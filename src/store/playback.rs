//! What playback needs from the store: one-time playback tokens (minted by getRecordings,
//! consumed by `/recording/<id>/<format>`) behind the [`TokenStore`] trait, and the facts of
//! the lean access lookup for nginx's `auth_request` (served by
//! [`RecordingStore::playback_access`](super::RecordingStore::playback_access)).
//!
//! Tokens live in the store, not in memory, so a link handed out before a worker restart
//! (or by another node) still works once. Only a SHA-256 of each token is stored: a copy of
//! the database does not hand out playable links.

use async_trait::async_trait;

use super::StoreResult;

/// A token to remember: who it opens, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Hex SHA-256 of the token given to the client.
    pub hash: String,
    pub record_id: String,
    pub format: String,
}

/// What an access decision needs to know about a recording, read in one query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlaybackAccess {
    pub published: bool,
    pub protected: bool,
    /// The `tenant-id` metadatum, when the recording has one.
    pub tenant_id: Option<String>,
    /// `(format, stored playback url)` of each format.
    pub formats: Vec<(String, String)>,
}

#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Stores tokens valid for `ttl_ms` from the store's now, in one write; also forgets
    /// expired ones.
    async fn mint_playback_tokens(&self, tokens: &[NewToken], ttl_ms: i64) -> StoreResult<()>;
    /// Deletes the token and returns `(record_id, format)` if it existed and had not
    /// expired by the store's clock. Atomic: two concurrent uses never both succeed.
    async fn consume_playback_token(&self, hash: &str) -> StoreResult<Option<(String, String)>>;
}
