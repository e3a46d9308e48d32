//! The SQLite schema: every named migration step, in order, in one place (the steps of
//! the recordings index, playback tokens and the ops ledger included), so the SQLite
//! modules that implement the store traits depend on `sqlite.rs` and never the other way.

/// Named schema steps, applied once each in this order. Add new steps at the end with a
/// new name; never edit a step that has shipped.
pub(super) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001-servers-meetings-leases",
        "CREATE TABLE servers (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        tag TEXT,
        state TEXT NOT NULL DEFAULT 'disabled',
        online INTEGER NOT NULL DEFAULT 0,
        load REAL,
        load_multiplier REAL NOT NULL DEFAULT 1.0,
        meetings INTEGER NOT NULL DEFAULT 0,
        users INTEGER NOT NULL DEFAULT 0,
        largest_meeting INTEGER NOT NULL DEFAULT 0,
        videos INTEGER NOT NULL DEFAULT 0,
        bbb_version TEXT NOT NULL DEFAULT '',
        healthy_counter INTEGER NOT NULL DEFAULT 0,
        unhealthy_counter INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE meetings (
        tenant_id TEXT NOT NULL,
        meeting_id TEXT NOT NULL,
        server_id TEXT NOT NULL,
        moderator_pw TEXT NOT NULL DEFAULT '',
        voice_bridge TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, meeting_id)
    );
    CREATE INDEX meetings_server ON meetings(server_id);
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    ),
    (
        "0050-callbacks",
        "CREATE TABLE callbacks (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        method TEXT NOT NULL,
        url TEXT NOT NULL,
        variants TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX callbacks_due ON callbacks(status, next_attempt_at);",
    ),
    ("0100-recordings", RECORDINGS),
    (
        "0200-tenants",
        "CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        secrets TEXT NOT NULL,
        max_meetings INTEGER,
        max_participants INTEGER
    );
    CREATE TABLE tenant_settings (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        param TEXT NOT NULL,
        value TEXT NOT NULL,
        is_override INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tenant_settings_tenant ON tenant_settings(tenant_id);
    ALTER TABLE meetings ADD COLUMN participants INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX meetings_tenant ON meetings(tenant_id);",
    ),
    ("0300-playback-tokens", PLAYBACK_TOKENS),
    (
        "0400-tenant-lrs",
        "CREATE TABLE tenant_lrs (
        tenant_id TEXT PRIMARY KEY,
        endpoint TEXT NOT NULL,
        username TEXT,
        password TEXT,
        kc_token_url TEXT,
        kc_client_id TEXT,
        kc_client_secret TEXT,
        kc_username TEXT,
        kc_password TEXT
    );",
    ),
    (
        "0500-callback-claims",
        "ALTER TABLE callbacks ADD COLUMN claimed_until INTEGER;
    ALTER TABLE callbacks ADD COLUMN claimed_by TEXT;",
    ),
    ("0600-ops", OPS),
    (
        "0700-store-identity",
        "CREATE TABLE store_identity (one INTEGER PRIMARY KEY CHECK (one = 1), id TEXT NOT NULL);",
    ),
    (
        "0710-meeting-bbb-id",
        "ALTER TABLE meetings ADD COLUMN bbb_id TEXT NOT NULL DEFAULT '';
    UPDATE meetings SET bbb_id = CASE WHEN tenant_id = '' THEN meeting_id
        ELSE meeting_id || '~' || tenant_id END;",
    ),
    (
        "0800-lease-epochs-fences-generations",
        "ALTER TABLE leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE fences (name TEXT PRIMARY KEY, epoch INTEGER NOT NULL);
    CREATE TABLE generations (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    ),
];

/// Schema step `0100-recordings`.
const RECORDINGS: &str = "
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    meeting_id TEXT NOT NULL,
    internal_meeting_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    published INTEGER NOT NULL DEFAULT 0,
    state TEXT,
    starttime INTEGER NOT NULL DEFAULT 0,
    endtime INTEGER NOT NULL DEFAULT 0,
    participants INTEGER,
    raw_size INTEGER,
    is_breakout INTEGER NOT NULL DEFAULT 0,
    parent_meeting_id TEXT,
    protected INTEGER NOT NULL DEFAULT 0,
    publish_updated INTEGER NOT NULL DEFAULT 0,
    imported_at INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX recordings_meeting ON recordings(meeting_id, starttime DESC);
CREATE INDEX recordings_start ON recordings(starttime DESC, id DESC, state);
CREATE INDEX recordings_state ON recordings(state);
CREATE TABLE recording_metadata (
    recording_id INTEGER NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (recording_id, key)
) WITHOUT ROWID;
CREATE INDEX recording_metadata_kv ON recording_metadata(key, value, recording_id);
CREATE TABLE playback_formats (
    id INTEGER PRIMARY KEY,
    recording_id INTEGER NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    format TEXT NOT NULL,
    url TEXT NOT NULL,
    length INTEGER NOT NULL DEFAULT 0,
    processing_time INTEGER,
    size INTEGER,
    UNIQUE (recording_id, format)
);
CREATE TABLE thumbnails (
    playback_format_id INTEGER NOT NULL REFERENCES playback_formats(id) ON DELETE CASCADE,
    sequence INTEGER NOT NULL,
    width INTEGER,
    height INTEGER,
    alt TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL,
    PRIMARY KEY (playback_format_id, sequence)
) WITHOUT ROWID;
CREATE TABLE recording_text_tracks (
    recording_id INTEGER NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    lang TEXT NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    content BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (recording_id, kind, lang)
) WITHOUT ROWID;
CREATE TABLE recording_ready_urls (
    tenant_id TEXT NOT NULL,
    meeting_id TEXT NOT NULL,
    url TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, meeting_id)
) WITHOUT ROWID;
";

/// Schema step `0300-playback-tokens`.
const PLAYBACK_TOKENS: &str = "
CREATE TABLE playback_tokens (
    token_hash TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    format TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX playback_tokens_expiry ON playback_tokens(expires_at);
";

/// Schema step `0600-ops`.
const OPS: &str = "
CREATE TABLE poll_results (
    server_id TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE usage_meetings (
    day TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    meeting_key TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    participants INTEGER NOT NULL,
    peak_participants INTEGER NOT NULL,
    meeting_ms INTEGER NOT NULL DEFAULT 0,
    participant_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant_id, meeting_key)
) WITHOUT ROWID;
";

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn meetings_stored_before_the_bbb_id_step_get_their_scoped_id() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let step = MIGRATIONS
            .iter()
            .position(|(n, _)| *n == "0710-meeting-bbb-id")
            .unwrap();
        for (_, sql) in &MIGRATIONS[..step] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO meetings (tenant_id, meeting_id, server_id, voice_bridge, created_at)
             VALUES ('', 'plain', 's', '1', 0), ('t1', 'room', 's', '2', 0);",
        )
        .unwrap();
        conn.execute_batch(MIGRATIONS[step].1).unwrap();
        let ids: Vec<String> = conn
            .prepare("SELECT bbb_id FROM meetings ORDER BY voice_bridge")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            ids,
            vec!["plain".to_string(), crate::tenant::scope("t1", "room"),]
        );
    }
}
