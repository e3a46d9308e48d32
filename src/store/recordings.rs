//! The recordings index: recordings, their metadata, playback formats, thumbnails, text
//! tracks and recording-ready URLs, behind the [`RecordingStore`] trait.
//!
//! The API, the importer and the CLI only see this trait; the SQL lives in
//! `sqlite_recordings.rs` (and later a PostgreSQL twin). Every write that must be atomic is
//! one trait call (an import, a metadata update over several recordings, a tombstone), so each
//! backend can make it one transaction.

use async_trait::async_trait;

use super::playback::PlaybackAccess;
use super::StoreResult;

/// The states BBB and Scalelite know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordingState {
    Processing,
    Processed,
    Published,
    Unpublished,
    /// A tombstone: deleteRecordings dropped everything but the row.
    Deleted,
}

impl RecordingState {
    pub const ALL: [RecordingState; 5] = [
        RecordingState::Processing,
        RecordingState::Processed,
        RecordingState::Published,
        RecordingState::Unpublished,
        RecordingState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Processing => "processing",
            RecordingState::Processed => "processed",
            RecordingState::Published => "published",
            RecordingState::Unpublished => "unpublished",
            RecordingState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<RecordingState> {
        RecordingState::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The state that goes with a publish flag.
    pub fn of_published(published: bool) -> RecordingState {
        if published {
            RecordingState::Published
        } else {
            RecordingState::Unpublished
        }
    }

    /// Published or unpublished: a recording publishRecordings may change.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            RecordingState::Published | RecordingState::Unpublished
        )
    }
}

impl std::fmt::Display for RecordingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub alt: String,
    /// Path only; the API prefixes the request's scheme and host.
    pub url: String,
    pub sequence: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackFormat {
    pub format: String,
    /// Path and query (`/playback/presentation/2.3/<id>`).
    pub url: String,
    /// Minutes.
    pub length: i64,
    pub processing_time: Option<i64>,
    /// Bytes of the published format directory, when BBB said.
    pub size: Option<i64>,
    pub thumbnails: Vec<Thumbnail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recording {
    pub record_id: String,
    /// The external meeting ID, as in metadata.xml.
    pub meeting_id: String,
    pub internal_meeting_id: String,
    pub name: String,
    pub published: bool,
    pub state: Option<RecordingState>,
    /// Unix ms.
    pub start_time: i64,
    pub end_time: i64,
    pub participants: Option<i64>,
    pub raw_size: Option<i64>,
    pub is_breakout: bool,
    pub parent_meeting_id: Option<String>,
    pub protected: bool,
    /// Set once publishRecordings changed `published`; a re-import then keeps it.
    pub publish_updated: bool,
    /// Key order: as stored (insertion order).
    pub metadata: Vec<(String, String)>,
    /// Ordered by format name.
    pub formats: Vec<PlaybackFormat>,
    /// Unix ms of the last import.
    pub imported_at: i64,
}

impl Recording {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What getRecordings asks for. Empty lists mean "no filter".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordingQuery {
    /// Exact external meeting IDs.
    pub meeting_ids: Vec<String>,
    /// Record ID prefixes (case-sensitive).
    pub record_id_prefixes: Vec<String>,
    /// `None` = any state.
    pub states: Option<Vec<String>>,
    /// `(key, accepted values)`; a recording matching any one qualifies (Scalelite ORs them).
    pub meta: Vec<(String, Vec<String>)>,
    /// Only recordings whose `tenant-id` metadatum equals this.
    pub tenant_id: Option<String>,
    pub offset: u64,
    /// `None` = every match (Scalelite has no pagination).
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordingPage {
    /// Newest first (start time descending).
    pub recordings: Vec<Recording>,
    /// Matches before paging (only computed when `limit` is set).
    pub total: Option<u64>,
}

/// A captions file stored with a recording (getRecordingTextTracks / putRecordingTextTrack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTrack {
    pub kind: String,
    pub lang: String,
    pub label: String,
    pub source: String,
    pub content: Vec<u8>,
}

/// How an import decides a recording's `published`, `state`, `protected` and
/// `publish_updated` against the row the index already holds, Scalelite's rule: an explicit
/// publish/unpublish through the API wins over a re-import; otherwise
/// `RECORDING_IMPORT_UNPUBLISHED`, otherwise what metadata.xml says. A protected recording
/// stays protected; new ones are protected when protection is on. Pure; a backend applies
/// it inside the import's transaction ([`RecordingStore::import_recording_decided`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportPolicy {
    /// metadata.xml's `<published>`.
    pub from_metadata: Option<bool>,
    pub import_unpublished: bool,
    pub protect_new: bool,
}

impl ImportPolicy {
    /// Whether the imported recording is published.
    pub fn published(&self, existing: Option<&Recording>) -> bool {
        match existing {
            Some(e) if e.publish_updated => e.published,
            _ if self.import_unpublished => false,
            _ => self.from_metadata.unwrap_or(true),
        }
    }

    /// `rec` (as metadata.xml describes it) with the flags decided against `existing`; the
    /// state follows the published flag.
    pub fn apply(&self, rec: &Recording, existing: Option<&Recording>) -> Recording {
        let published = self.published(existing);
        let state = match rec.state {
            Some(RecordingState::Published) | None if !published => {
                Some(RecordingState::Unpublished)
            }
            Some(RecordingState::Unpublished) if published => Some(RecordingState::Published),
            s => s,
        };
        Recording {
            published,
            state,
            protected: self.protect_new || existing.is_some_and(|e| e.protected),
            publish_updated: existing.is_some_and(|e| e.publish_updated),
            ..rec.clone()
        }
    }
}

/// A metadata change from updateRecordings: `None` removes the key.
pub type MetaChange = (String, Option<String>);

#[async_trait]
pub trait RecordingStore: Send + Sync + 'static {
    /// The recording with this exact id, any state.
    async fn recording(&self, record_id: &str) -> StoreResult<Option<Recording>>;
    /// The recordings with these exact ids (any state), restricted to a tenant if given.
    async fn recordings_by_ids(
        &self,
        record_ids: &[String],
        tenant_id: Option<&str>,
    ) -> StoreResult<Vec<Recording>>;
    async fn find_recordings(&self, q: &RecordingQuery) -> StoreResult<RecordingPage>;
    /// An import: upserts the recording (fields already decided: published, protected),
    /// merges its metadata (keys not listed are kept), replaces the formats it lists and their
    /// thumbnails (other formats are kept), all in one transaction. Returns the stored result.
    /// An operator's import, written as given (not fenced, no policy).
    async fn import_recording(&self, rec: &Recording) -> StoreResult<Recording>;
    /// The importer role's import: its flags are decided by `policy` against the row
    /// already there, in the same transaction as the write, so a publish/unpublish that
    /// lands between the importer's read and its write is not undone; with a fence (the
    /// importer lease's), nothing is written ([`StoreError::Fenced`](super::StoreError::Fenced))
    /// when its epoch is older than the importer's latest. Returns the stored result.
    async fn import_recording_decided(
        &self,
        rec: &Recording,
        policy: ImportPolicy,
        fence: Option<&super::Fence>,
    ) -> StoreResult<Recording>;
    /// Sets `published`, `state` and `publish_updated` (publishRecordings).
    async fn set_published(&self, record_id: &str, published: bool) -> StoreResult<()>;
    /// updateRecordings: all of `record_ids` must exist (tenant-scoped) or nothing changes
    /// and `Ok(None)` is returned; otherwise `Ok(Some(changed))`. `protect` applies to all.
    async fn update_recordings(
        &self,
        record_ids: &[String],
        tenant_id: Option<&str>,
        changes: &[MetaChange],
        protect: Option<bool>,
    ) -> StoreResult<Option<bool>>;
    /// deleteRecordings: drops metadata, formats, thumbnails and text tracks; the row stays
    /// with `state = deleted`.
    async fn tombstone_recording(&self, record_id: &str) -> StoreResult<bool>;
    /// Recordings (any state but deleted) that started before `before_ms`, oldest first.
    async fn recordings_started_before(&self, before_ms: i64) -> StoreResult<Vec<Recording>>;
    /// Every recording of a meeting (any state), or all when `meeting_id` is `None`.
    async fn list_recordings(&self, meeting_id: Option<&str>) -> StoreResult<Vec<Recording>>;

    async fn put_text_track(&self, record_id: &str, track: &TextTrack) -> StoreResult<bool>;
    async fn text_tracks(&self, record_id: &str) -> StoreResult<Vec<TextTrack>>;

    /// Remembers the recording-ready URL given at create (replacing an earlier one).
    async fn set_ready_url(&self, tenant_id: &str, meeting_id: &str, url: &str) -> StoreResult<()>;
    async fn ready_url(&self, tenant_id: &str, meeting_id: &str) -> StoreResult<Option<String>>;
    /// Forgets recording-ready URLs remembered before `before_ms`; returns how many.
    async fn prune_ready_urls(&self, before_ms: i64) -> StoreResult<usize>;
    /// The index row ids of every match of `q` (its `limit`/`offset` ignored), newest first,
    /// for reading a large answer in chunks ([`RecordingStore::recordings_by_row_ids`]).
    async fn find_recording_row_ids(&self, q: &RecordingQuery) -> StoreResult<Vec<i64>>;
    /// The recordings with these row ids, in this order.
    async fn recordings_by_row_ids(&self, ids: &[i64]) -> StoreResult<Vec<Recording>>;

    /// The recording's publish and protect flags, tenant and formats; `None` if unknown
    /// (or deleted).
    async fn playback_access(&self, record_id: &str) -> StoreResult<Option<PlaybackAccess>>;
    /// Every recording id with its access facts (for the public-link farm's reconciliation).
    async fn playback_all(&self) -> StoreResult<Vec<(String, PlaybackAccess)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_publish_survives_a_reimport() {
        let policy = |from_metadata, import_unpublished| ImportPolicy {
            from_metadata,
            import_unpublished,
            protect_new: false,
        };
        let mut e = Recording {
            published: false,
            publish_updated: true,
            protected: true,
            ..Default::default()
        };
        assert!(!policy(Some(true), false).published(Some(&e)));
        e.publish_updated = false;
        assert!(policy(Some(true), false).published(Some(&e)));
        assert!(!policy(Some(true), true).published(None));
        assert!(policy(None, false).published(None));
        assert!(!policy(Some(false), false).published(None));
        // The state follows the flag; protection and publish_updated are kept.
        e.publish_updated = true;
        let rec = Recording {
            published: true,
            state: Some(RecordingState::Published),
            ..Default::default()
        };
        let d = policy(Some(true), false).apply(&rec, Some(&e));
        assert_eq!(
            (d.published, d.state, d.protected, d.publish_updated),
            (false, Some(RecordingState::Unpublished), true, true)
        );
        let d = policy(Some(false), false).apply(&rec, None);
        assert_eq!(
            (d.published, d.state),
            (false, Some(RecordingState::Unpublished))
        );
        let new = ImportPolicy {
            protect_new: true,
            ..policy(None, false)
        };
        assert!(new.apply(&rec, None).protected);
    }
}
