//! The SQL of PostgreSQL's schema steps that are longer than a line or two; the numbered
//! list that applies them is `postgres::MIGRATIONS`. Never edit a step that has shipped.

/// Migration 3: the recordings index.
pub(super) const RECORDINGS: &str = r#"
CREATE TABLE recordings (
    id BIGSERIAL PRIMARY KEY,
    record_id TEXT COLLATE "C" NOT NULL UNIQUE,
    meeting_id TEXT NOT NULL,
    internal_meeting_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    published BOOLEAN NOT NULL DEFAULT false,
    state TEXT,
    starttime BIGINT NOT NULL DEFAULT 0,
    endtime BIGINT NOT NULL DEFAULT 0,
    participants BIGINT,
    raw_size BIGINT,
    is_breakout BOOLEAN NOT NULL DEFAULT false,
    parent_meeting_id TEXT,
    protected BOOLEAN NOT NULL DEFAULT false,
    publish_updated BOOLEAN NOT NULL DEFAULT false,
    imported_at BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX recordings_meeting ON recordings (meeting_id, starttime DESC);
CREATE INDEX recordings_start ON recordings (starttime DESC, id DESC);
CREATE INDEX recordings_state ON recordings (state);
CREATE TABLE recording_metadata (
    recording_id BIGINT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE UNIQUE INDEX recording_metadata_key ON recording_metadata (recording_id, md5(key));
CREATE INDEX recording_metadata_kv ON recording_metadata (md5(key), md5(value), recording_id);
CREATE TABLE playback_formats (
    id BIGSERIAL PRIMARY KEY,
    recording_id BIGINT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    format TEXT NOT NULL,
    url TEXT NOT NULL,
    length BIGINT NOT NULL DEFAULT 0,
    processing_time BIGINT,
    size BIGINT,
    UNIQUE (recording_id, format)
);
CREATE TABLE thumbnails (
    playback_format_id BIGINT NOT NULL REFERENCES playback_formats (id) ON DELETE CASCADE,
    sequence BIGINT NOT NULL,
    width BIGINT,
    height BIGINT,
    alt TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL,
    PRIMARY KEY (playback_format_id, sequence)
);
CREATE TABLE recording_text_tracks (
    recording_id BIGINT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    lang TEXT NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    content BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (recording_id, kind, lang)
);
CREATE TABLE recording_ready_urls (
    tenant_id TEXT NOT NULL,
    meeting_id TEXT NOT NULL,
    url TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, meeting_id)
);
"#;
