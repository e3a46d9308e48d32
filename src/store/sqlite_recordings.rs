//! [`RecordingStore`] on the embedded SQLite file: the schema step `0100-recordings` and
//! the queries behind getRecordings, the importer and the recording calls.
//!
//! getRecordings is planned so every filter Scalelite clients use hits an index: meeting IDs
//! (`recordings_meeting`), record-ID prefixes (a range on the unique `record_id` index),
//! a `meta_` filter or the tenant (`recording_metadata_kv`, covering `key, value,
//! recording_id`), and the unfiltered newest-first page (`recordings_start`, covering the
//! state filter so deep offsets stay index-only; `recordings_state` serves the count). A page is read
//! as ids first, then the rows, metadata, formats and thumbnails of those ids in four queries.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use super::recordings::*;
use super::sqlite::backend;
use super::{now_ms, SqliteStore, StoreResult};

impl rusqlite::types::ToSql for RecordingState {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for RecordingState {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let s = v.as_str()?;
        RecordingState::parse(s).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown recording state '{s}'").into())
        })
    }
}

const REC_COLUMNS: &str =
    "id, record_id, meeting_id, internal_meeting_id, name, published, state, \
     starttime, endtime, participants, raw_size, is_breakout, parent_meeting_id, protected, \
     publish_updated, imported_at";

fn rec_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Recording)> {
    Ok((
        r.get(0)?,
        Recording {
            record_id: r.get(1)?,
            meeting_id: r.get(2)?,
            internal_meeting_id: r.get(3)?,
            name: r.get(4)?,
            published: r.get(5)?,
            state: r.get(6)?,
            start_time: r.get(7)?,
            end_time: r.get(8)?,
            participants: r.get(9)?,
            raw_size: r.get(10)?,
            is_breakout: r.get(11)?,
            parent_meeting_id: r.get(12)?,
            protected: r.get(13)?,
            publish_updated: r.get(14)?,
            imported_at: r.get(15)?,
            metadata: Vec::new(),
            formats: Vec::new(),
        },
    ))
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// Reads the full recordings for `ids`, in the order given.
fn load(conn: &Connection, ids: &[i64]) -> StoreResult<Vec<Recording>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<Recording> = Vec::with_capacity(ids.len());
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let ph = placeholders(chunk.len());
        let vals = || chunk.iter().map(|i| Value::Integer(*i));
        let mut found: HashMap<i64, Recording> = HashMap::new();
        {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {REC_COLUMNS} FROM recordings WHERE id IN ({ph})"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params_from_iter(vals()), rec_from_row)
                .map_err(backend)?;
            for row in rows {
                let (id, rec) = row.map_err(backend)?;
                found.insert(id, rec);
            }
        }
        for id in chunk {
            if let Some(rec) = found.remove(id) {
                index.insert(*id, out.len());
                out.push(rec);
            }
        }
        {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT recording_id, key, value FROM recording_metadata WHERE recording_id IN ({ph}) ORDER BY recording_id, seq"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params_from_iter(vals()), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(backend)?;
            for row in rows {
                let (id, k, v) = row.map_err(backend)?;
                if let Some(&i) = index.get(&id) {
                    out[i].metadata.push((k, v));
                }
            }
        }
        let mut format_pos: HashMap<i64, (usize, usize)> = HashMap::new();
        {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT id, recording_id, format, url, length, processing_time, size FROM playback_formats WHERE recording_id IN ({ph}) ORDER BY recording_id, format"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params_from_iter(vals()), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        PlaybackFormat {
                            format: r.get(2)?,
                            url: r.get(3)?,
                            length: r.get(4)?,
                            processing_time: r.get(5)?,
                            size: r.get(6)?,
                            thumbnails: Vec::new(),
                        },
                    ))
                })
                .map_err(backend)?;
            for row in rows {
                let (fid, rid, f) = row.map_err(backend)?;
                if let Some(&i) = index.get(&rid) {
                    format_pos.insert(fid, (i, out[i].formats.len()));
                    out[i].formats.push(f);
                }
            }
        }
        if !format_pos.is_empty() {
            let fids: Vec<i64> = format_pos.keys().copied().collect();
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT playback_format_id, sequence, width, height, alt, url FROM thumbnails WHERE playback_format_id IN ({}) ORDER BY playback_format_id, sequence",
                    placeholders(fids.len())
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params_from_iter(fids.iter()), |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        Thumbnail {
                            sequence: r.get(1)?,
                            width: r.get(2)?,
                            height: r.get(3)?,
                            alt: r.get(4)?,
                            url: r.get(5)?,
                        },
                    ))
                })
                .map_err(backend)?;
            for row in rows {
                let (fid, t) = row.map_err(backend)?;
                if let Some(&(i, j)) = format_pos.get(&fid) {
                    out[i].formats[j].thumbnails.push(t);
                }
            }
        }
    }
    Ok(out)
}

/// The smallest string greater than every string starting with `prefix` (for index ranges).
fn prefix_upper(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Whether a query has a filter selective enough to drive the plan (an id, a prefix, a meta
/// value); otherwise the newest-first index drives it.
fn selective(q: &RecordingQuery) -> bool {
    !q.meeting_ids.is_empty() || !q.record_id_prefixes.is_empty() || !q.meta.is_empty()
}

/// The WHERE clause and its arguments for a getRecordings query. The plan must not depend on
/// planner statistics (a fresh database has none): for the page query the state filter is
/// written `+r.state` so its low-selectivity index never drives it (the covering
/// `recordings_start` or a selective filter does); the count may use it.
fn where_clause(q: &RecordingQuery, for_count: bool) -> (String, Vec<Value>) {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if !q.meeting_ids.is_empty() {
        conds.push(format!(
            "r.meeting_id IN ({})",
            placeholders(q.meeting_ids.len())
        ));
        args.extend(q.meeting_ids.iter().cloned().map(Value::Text));
    }
    if !q.record_id_prefixes.is_empty() {
        let mut ors = Vec::new();
        for p in &q.record_id_prefixes {
            ors.push(
                "(r.record_id >= ? AND r.record_id < ? AND substr(r.record_id, 1, length(?)) = ?)"
                    .to_string(),
            );
            args.push(Value::Text(p.clone()));
            args.push(Value::Text(prefix_upper(p)));
            args.push(Value::Text(p.clone()));
            args.push(Value::Text(p.clone()));
        }
        conds.push(format!("({})", ors.join(" OR ")));
    }
    if let Some(states) = &q.states {
        let col = if for_count { "r.state" } else { "+r.state" };
        conds.push(format!("{col} IN ({})", placeholders(states.len().max(1))));
        if states.is_empty() {
            args.push(Value::Null);
        }
        args.extend(states.iter().cloned().map(Value::Text));
    }
    if !q.meta.is_empty() {
        let mut ors = Vec::new();
        for (k, vals) in &q.meta {
            ors.push(format!(
                "SELECT recording_id FROM recording_metadata WHERE key = ? AND value IN ({})",
                placeholders(vals.len().max(1))
            ));
            args.push(Value::Text(k.clone()));
            if vals.is_empty() {
                args.push(Value::Null);
            }
            args.extend(vals.iter().cloned().map(Value::Text));
        }
        conds.push(format!("r.id IN ({})", ors.join(" UNION ")));
    }
    if let Some(t) = &q.tenant_id {
        conds.push(
            "r.id IN (SELECT recording_id FROM recording_metadata WHERE key = 'tenant-id' AND value = ?)"
                .into(),
        );
        args.push(Value::Text(t.clone()));
    }
    let clause = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    (clause, args)
}

fn id_of(conn: &Connection, record_id: &str) -> StoreResult<Option<i64>> {
    conn.prepare_cached("SELECT id FROM recordings WHERE record_id = ?1")
        .and_then(|mut s| s.query_row([record_id], |r| r.get(0)).optional())
        .map_err(backend)
}

fn ids_for(
    conn: &Connection,
    record_ids: &[String],
    tenant_id: Option<&str>,
) -> StoreResult<Vec<i64>> {
    if record_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = format!(
        "SELECT r.id FROM recordings r WHERE r.record_id IN ({})",
        placeholders(record_ids.len())
    );
    let mut args: Vec<Value> = record_ids.iter().cloned().map(Value::Text).collect();
    if let Some(t) = tenant_id {
        sql.push_str(" AND r.id IN (SELECT recording_id FROM recording_metadata WHERE key = 'tenant-id' AND value = ?)");
        args.push(Value::Text(t.to_string()));
    }
    sql.push_str(" ORDER BY r.starttime DESC, r.id DESC");
    let mut stmt = conn.prepare(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |r| r.get(0))
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

fn upsert_meta(conn: &Connection, id: i64, key: &str, value: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO recording_metadata (recording_id, seq, key, value)
         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM recording_metadata WHERE recording_id = ?1), ?2, ?3)
         ON CONFLICT (recording_id, key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut s| s.execute(params![id, key, value]))
    .map_err(backend)?;
    Ok(())
}

impl SqliteStore {
    /// An import in one IMMEDIATE transaction; with a policy, its flags are decided against
    /// the row read inside that transaction.
    async fn import_with(
        &self,
        rec: Recording,
        policy: Option<ImportPolicy>,
        fence: Option<super::Fence>,
    ) -> StoreResult<Recording> {
        self.write(move |this| {
            let mut conn = this.writer()?;
            // The caller deletes the tarball once this commit returns: it must survive a
            // power loss, so this one commit is FULL-synchronous (fsync of the WAL).
            super::sqlite::durable(&mut conn, |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            super::sqlite_fence::check(&tx, fence.as_ref())?;
            let decided;
            let rec = match policy {
                Some(policy) => {
                    let existing = match id_of(&tx, &rec.record_id)? {
                        Some(id) => load(&tx, &[id])?.into_iter().next(),
                        None => None,
                    };
                    decided = policy.apply(&rec, existing.as_ref());
                    &decided
                }
                None => &rec,
            };
            let now = now_ms();
            tx.execute(
                "INSERT INTO recordings (record_id, meeting_id, internal_meeting_id, name, published, state,
                     starttime, endtime, participants, raw_size, is_breakout, parent_meeting_id, protected,
                     publish_updated, imported_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)
                 ON CONFLICT (record_id) DO UPDATE SET meeting_id = excluded.meeting_id,
                     internal_meeting_id = excluded.internal_meeting_id, name = excluded.name,
                     published = excluded.published, state = excluded.state, starttime = excluded.starttime,
                     endtime = excluded.endtime, participants = excluded.participants,
                     raw_size = COALESCE(excluded.raw_size, raw_size), is_breakout = excluded.is_breakout,
                     parent_meeting_id = excluded.parent_meeting_id, protected = excluded.protected,
                     publish_updated = excluded.publish_updated, imported_at = excluded.imported_at,
                     updated_at = excluded.updated_at",
                params![
                    rec.record_id,
                    rec.meeting_id,
                    rec.internal_meeting_id,
                    rec.name,
                    rec.published,
                    rec.state,
                    rec.start_time,
                    rec.end_time,
                    rec.participants,
                    rec.raw_size,
                    rec.is_breakout,
                    rec.parent_meeting_id,
                    rec.protected,
                    rec.publish_updated,
                    now
                ],
            )
            .map_err(backend)?;
            let id = id_of(&tx, &rec.record_id)?
                .ok_or_else(|| backend("the recording vanished inside its own transaction"))?;
            for (k, v) in &rec.metadata {
                upsert_meta(&tx, id, k, v)?;
            }
            for f in &rec.formats {
                tx.execute(
                    "DELETE FROM playback_formats WHERE recording_id = ?1 AND format = ?2",
                    params![id, f.format],
                )
                .map_err(backend)?;
                tx.execute(
                    "INSERT INTO playback_formats (recording_id, format, url, length, processing_time, size)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, f.format, f.url, f.length, f.processing_time, f.size],
                )
                .map_err(backend)?;
                let fid = tx.last_insert_rowid();
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO thumbnails (playback_format_id, sequence, width, height, alt, url)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(backend)?;
                for t in &f.thumbnails {
                    stmt.execute(params![fid, t.sequence, t.width, t.height, t.alt, t.url])
                        .map_err(backend)?;
                }
            }
            let stored = load(&tx, &[id])?.into_iter().next();
            tx.commit().map_err(backend)?;
            stored.ok_or_else(|| backend("the imported recording could not be read back"))
            })
        })
        .await
    }
}

#[async_trait]
impl RecordingStore for SqliteStore {
    async fn recording(&self, record_id: &str) -> StoreResult<Option<Recording>> {
        let record_id = record_id.to_owned();
        self.read(move |this| {
            let record_id = record_id.as_str();
            let conn = this.conn()?;
            match id_of(&conn, record_id)? {
                Some(id) => Ok(load(&conn, &[id])?.into_iter().next()),
                None => Ok(None),
            }
        })
        .await
    }

    async fn recordings_by_ids(
        &self,
        record_ids: &[String],
        tenant_id: Option<&str>,
    ) -> StoreResult<Vec<Recording>> {
        let record_ids = record_ids.to_vec();
        let tenant_id = tenant_id.map(str::to_owned);
        self.read(move |this| {
            let record_ids = record_ids.as_slice();
            let tenant_id = tenant_id.as_deref();
            let conn = this.conn()?;
            let ids = ids_for(&conn, record_ids, tenant_id)?;
            load(&conn, &ids)
        })
        .await
    }

    async fn find_recordings(&self, q: &RecordingQuery) -> StoreResult<RecordingPage> {
        let q = q.clone();
        self.read(move |this| {
            let q = &q;
            let conn = this.conn()?;
            let total = match q.limit {
                Some(_) => {
                    let (clause, args) = where_clause(q, true);
                    let n: i64 = conn
                        .prepare_cached(&format!("SELECT count(*) FROM recordings r {clause}"))
                        .and_then(|mut s| s.query_row(params_from_iter(args.iter()), |r| r.get(0)))
                        .map_err(backend)?;
                    Some(n as u64)
                }
                None => None,
            };
            let ids = matching_ids(&conn, q, q.limit.map(|l| (l, q.offset)))?;
            Ok(RecordingPage {
                recordings: load(&conn, &ids)?,
                total,
            })
        })
        .await
    }

    async fn find_recording_row_ids(&self, q: &RecordingQuery) -> StoreResult<Vec<i64>> {
        let q = q.clone();
        self.read(move |this| matching_ids(&*this.conn()?, &q, None))
            .await
    }

    async fn recordings_by_row_ids(&self, ids: &[i64]) -> StoreResult<Vec<Recording>> {
        let ids = ids.to_vec();
        self.read(move |this| load(&*this.conn()?, &ids)).await
    }

    async fn import_recording(&self, rec: &Recording) -> StoreResult<Recording> {
        self.import_with(rec.clone(), None, None).await
    }

    async fn import_recording_decided(
        &self,
        rec: &Recording,
        policy: ImportPolicy,
        fence: Option<&super::Fence>,
    ) -> StoreResult<Recording> {
        self.import_with(rec.clone(), Some(policy), fence.cloned())
            .await
    }

    async fn set_published(&self, record_id: &str, published: bool) -> StoreResult<()> {
        let record_id = record_id.to_owned();
        self.write(move |this| {
            let record_id = record_id.as_str();
            this.writer()?
                .execute(
                    "UPDATE recordings SET published = ?2, publish_updated = 1, state = ?3, updated_at = ?4 WHERE record_id = ?1",
                    params![
                        record_id,
                        published,
                        RecordingState::of_published(published),
                        now_ms()
                    ],
                )
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn update_recordings(
        &self,
        record_ids: &[String],
        tenant_id: Option<&str>,
        changes: &[MetaChange],
        protect: Option<bool>,
    ) -> StoreResult<Option<bool>> {
        let record_ids = record_ids.to_vec();
        let tenant_id = tenant_id.map(str::to_owned);
        let changes = changes.to_vec();
        self.write(move |this| {
            let record_ids = record_ids.as_slice();
            let tenant_id = tenant_id.as_deref();
            let changes = changes.as_slice();
            let mut conn = this.writer()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let ids = ids_for(&tx, record_ids, tenant_id)?;
            if ids.is_empty() || ids.len() != record_ids.len() {
                return Ok(None);
            }
            let mut changed = false;
            for id in &ids {
                for (k, v) in changes {
                    match v {
                        Some(v) => {
                            upsert_meta(&tx, *id, k, v)?;
                            changed = true;
                        }
                        None => {
                            let n = tx
                                .execute(
                                    "DELETE FROM recording_metadata WHERE recording_id = ?1 AND key = ?2",
                                    params![id, k],
                                )
                                .map_err(backend)?;
                            changed |= n > 0;
                        }
                    }
                }
                if let Some(p) = protect {
                    tx.execute(
                        "UPDATE recordings SET protected = ?2 WHERE id = ?1",
                        params![id, p],
                    )
                    .map_err(backend)?;
                    changed = true;
                }
            }
            tx.commit().map_err(backend)?;
            Ok(Some(changed))
        })
        .await
    }

    async fn tombstone_recording(&self, record_id: &str) -> StoreResult<bool> {
        let record_id = record_id.to_owned();
        self.write(move |this| {
            let record_id = record_id.as_str();
            let mut conn = this.writer()?;
            let tx = conn.transaction().map_err(backend)?;
            let Some(id) = id_of(&tx, record_id)? else {
                return Ok(false);
            };
            for sql in [
                "DELETE FROM recording_metadata WHERE recording_id = ?1",
                "DELETE FROM playback_formats WHERE recording_id = ?1",
                "DELETE FROM recording_text_tracks WHERE recording_id = ?1",
                "UPDATE recordings SET state = 'deleted', published = 0 WHERE id = ?1", // RecordingState::Deleted
            ] {
                tx.execute(sql, [id]).map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn recordings_started_before(&self, before_ms: i64) -> StoreResult<Vec<Recording>> {
        self.bulk(move |this| {
            let conn = this.conn()?;
            let ids: Vec<i64> = {
                let mut stmt = conn
                    .prepare("SELECT id FROM recordings WHERE starttime < ?1 AND (state IS NULL OR state <> 'deleted') ORDER BY starttime")
                    .map_err(backend)?;
                let rows = stmt.query_map([before_ms], |r| r.get(0)).map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)?
            };
            load(&conn, &ids)
        })
        .await
    }

    async fn list_recordings(&self, meeting_id: Option<&str>) -> StoreResult<Vec<Recording>> {
        let meeting_id = meeting_id.map(str::to_owned);
        self.bulk(move |this| {
            let meeting_id = meeting_id.as_deref();
            let conn = this.conn()?;
            let ids: Vec<i64> = {
                let (sql, args): (&str, Vec<Value>) = match meeting_id {
                    Some(m) => (
                        "SELECT id FROM recordings WHERE meeting_id = ?1 ORDER BY starttime DESC, id DESC",
                        vec![Value::Text(m.to_string())],
                    ),
                    None => (
                        "SELECT id FROM recordings ORDER BY starttime DESC, id DESC",
                        vec![],
                    ),
                };
                let mut stmt = conn.prepare(sql).map_err(backend)?;
                let rows = stmt
                    .query_map(params_from_iter(args.iter()), |r| r.get(0))
                    .map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)?
            };
            load(&conn, &ids)
        })
        .await
    }

    async fn put_text_track(&self, record_id: &str, t: &TextTrack) -> StoreResult<bool> {
        let record_id = record_id.to_owned();
        let t = t.clone();
        self.write(move |this| {
            let record_id = record_id.as_str();
            let t = &t;
            let conn = this.writer()?;
            let Some(id) = id_of(&conn, record_id)? else {
                return Ok(false);
            };
            conn.execute(
                "INSERT INTO recording_text_tracks (recording_id, kind, lang, label, source, content, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (recording_id, kind, lang) DO UPDATE SET label = excluded.label,
                     source = excluded.source, content = excluded.content, created_at = excluded.created_at",
                params![id, t.kind, t.lang, t.label, t.source, t.content, now_ms()],
            )
            .map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn text_tracks(&self, record_id: &str) -> StoreResult<Vec<TextTrack>> {
        let record_id = record_id.to_owned();
        self.read(move |this| {
            let record_id = record_id.as_str();
            SqliteStore::query_all(
                &*this.conn()?,
                "SELECT t.kind, t.lang, t.label, t.source, t.content FROM recording_text_tracks t
                 JOIN recordings r ON r.id = t.recording_id WHERE r.record_id = ?1 ORDER BY t.lang, t.kind",
                [record_id],
                |r| {
                    Ok(TextTrack {
                        kind: r.get(0)?,
                        lang: r.get(1)?,
                        label: r.get(2)?,
                        source: r.get(3)?,
                        content: r.get(4)?,
                    })
                },
            )
        })
        .await
    }

    async fn set_ready_url(&self, tenant_id: &str, meeting_id: &str, url: &str) -> StoreResult<()> {
        let tenant_id = tenant_id.to_owned();
        let meeting_id = meeting_id.to_owned();
        let url = url.to_owned();
        self.write(move |this| {
            let tenant_id = tenant_id.as_str();
            let meeting_id = meeting_id.as_str();
            let url = url.as_str();
            this.writer()?
                .execute(
                    "INSERT INTO recording_ready_urls (tenant_id, meeting_id, url, created_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant_id, meeting_id) DO UPDATE SET url = excluded.url, created_at = excluded.created_at",
                    params![tenant_id, meeting_id, url, now_ms()],
                )
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn ready_url(&self, tenant_id: &str, meeting_id: &str) -> StoreResult<Option<String>> {
        let tenant_id = tenant_id.to_owned();
        let meeting_id = meeting_id.to_owned();
        self.read(move |this| {
            let tenant_id = tenant_id.as_str();
            let meeting_id = meeting_id.as_str();
            this.conn()?
                .prepare_cached(
                    "SELECT url FROM recording_ready_urls WHERE tenant_id = ?1 AND meeting_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row([tenant_id, meeting_id], |r| r.get(0))
                        .optional()
                })
                .map_err(backend)
        })
        .await
    }

    async fn playback_access(
        &self,
        record_id: &str,
    ) -> StoreResult<Option<super::playback::PlaybackAccess>> {
        let record_id = record_id.to_owned();
        self.read(move |this| {
            let record_id = record_id.as_str();
            super::sqlite_playback::access_of(&*this.conn()?, record_id)
        })
        .await
    }

    async fn playback_all(&self) -> StoreResult<Vec<(String, super::playback::PlaybackAccess)>> {
        self.bulk(move |this| super::sqlite_playback::access_all(&*this.conn()?))
            .await
    }

    async fn prune_ready_urls(&self, before_ms: i64) -> StoreResult<usize> {
        self.bulk(move |this| {
            this.writer()?
                .execute(
                    "DELETE FROM recording_ready_urls WHERE created_at < ?1",
                    [before_ms],
                )
                .map_err(backend)
        })
        .await
    }
}

/// The row ids of the matches of `q`, newest first, optionally one `(limit, offset)` page.
fn matching_ids(
    conn: &rusqlite::Connection,
    q: &RecordingQuery,
    page: Option<(u64, u64)>,
) -> StoreResult<Vec<i64>> {
    let (clause, mut args) = where_clause(q, false);
    // With a selective filter, sort its few matches; otherwise walk the newest-first index.
    let order = if selective(q) {
        "ORDER BY +r.starttime DESC, +r.id DESC"
    } else {
        "ORDER BY r.starttime DESC, r.id DESC"
    };
    let mut sql = format!("SELECT r.id FROM recordings r {clause} {order}");
    if let Some((limit, offset)) = page {
        sql.push_str(" LIMIT ? OFFSET ?");
        args.push(Value::Integer(limit as i64));
        args.push(Value::Integer(offset as i64));
    }
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |r| r.get(0))
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, meeting: &str, start: i64, meta: &[(&str, &str)]) -> Recording {
        Recording {
            record_id: id.into(),
            meeting_id: meeting.into(),
            internal_meeting_id: id.into(),
            name: "n".into(),
            published: true,
            state: Some(RecordingState::Published),
            start_time: start,
            end_time: start + 1000,
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            formats: vec![PlaybackFormat {
                format: "presentation".into(),
                url: format!("/playback/presentation/2.3/{id}"),
                length: 3,
                processing_time: None,
                size: None,
                thumbnails: vec![Thumbnail {
                    width: Some(176),
                    height: Some(136),
                    alt: "a".into(),
                    url: "/t.png".into(),
                    sequence: 0,
                }],
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_unpaged_answer_read_in_chunks_is_the_same_as_read_at_once() {
        let (_d, st) = super::super::sqlite::test_store();
        for i in 0..25 {
            st.import_recording(&rec(&format!("r-{i:02}"), "m", (i * 7 % 11) as i64, &[]))
                .await
                .unwrap();
        }
        let q = RecordingQuery::default();
        let whole = st.find_recordings(&q).await.unwrap().recordings;
        let ids = st.find_recording_row_ids(&q).await.unwrap();
        let mut chunked = Vec::new();
        for c in ids.chunks(4) {
            chunked.extend(st.recordings_by_row_ids(c).await.unwrap());
        }
        assert_eq!(whole.len(), 25);
        assert_eq!(chunked, whole);
        assert!(st.prune_ready_urls(i64::MAX).await.is_ok());
    }

    #[tokio::test]
    async fn filters_prefixes_meta_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let st = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        st.import_recording(&rec("abc-1", "m1", 1, &[("gl-listed", "true")]))
            .await
            .unwrap();
        st.import_recording(&rec("abc-2", "m1", 2, &[("tenant-id", "t1")]))
            .await
            .unwrap();
        st.import_recording(&rec("xyz-3", "m2", 3, &[]))
            .await
            .unwrap();
        let find = |q: RecordingQuery| {
            let st = st.clone();
            async move {
                st.find_recordings(&q)
                    .await
                    .unwrap()
                    .recordings
                    .into_iter()
                    .map(|r| r.record_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            find(RecordingQuery {
                record_id_prefixes: vec!["abc".into()],
                ..Default::default()
            })
            .await,
            vec!["abc-2", "abc-1"]
        );
        assert_eq!(
            find(RecordingQuery {
                record_id_prefixes: vec!["ABC".into()],
                ..Default::default()
            })
            .await,
            Vec::<String>::new()
        );
        assert_eq!(
            find(RecordingQuery {
                meeting_ids: vec!["m2".into()],
                ..Default::default()
            })
            .await,
            vec!["xyz-3"]
        );
        assert_eq!(
            find(RecordingQuery {
                meta: vec![
                    ("gl-listed".into(), vec!["true".into()]),
                    ("tenant-id".into(), vec!["t1".into()])
                ],
                ..Default::default()
            })
            .await,
            vec!["abc-2", "abc-1"]
        );
        assert_eq!(
            find(RecordingQuery {
                tenant_id: Some("t1".into()),
                ..Default::default()
            })
            .await,
            vec!["abc-2"]
        );
        let page = st
            .find_recordings(&RecordingQuery {
                offset: 1,
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.total, Some(3));
        assert_eq!(page.recordings[0].record_id, "abc-2");
        assert_eq!(page.recordings[0].formats[0].thumbnails[0].width, Some(176));

        // updateRecordings is all-or-nothing.
        assert_eq!(
            st.update_recordings(
                &["abc-1".into(), "nope".into()],
                None,
                &[("k".into(), Some("v".into()))],
                None
            )
            .await
            .unwrap(),
            None
        );
        assert_eq!(
            st.update_recordings(&["abc-1".into()], None, &[("gl-listed".into(), None)], None)
                .await
                .unwrap(),
            Some(true)
        );
        assert!(st
            .recording("abc-1")
            .await
            .unwrap()
            .unwrap()
            .metadata
            .is_empty());
        assert!(st.tombstone_recording("abc-1").await.unwrap());
        let r = st.recording("abc-1").await.unwrap().unwrap();
        assert_eq!(
            (r.state, r.formats.len()),
            (Some(RecordingState::Deleted), 0)
        );
    }
}
