//! [`RecordingStore`] on PostgreSQL (its tables: migration 3, `postgres_schema.rs`): the queries behind getRecordings, the importer, the recording calls
//! and the playback access lookup, so every node of a cluster reads one index.
//!
//! The SQL mirrors `sqlite_recordings.rs`: getRecordings filters (meeting IDs, record-ID
//! prefixes, states, `meta_` values, the tenant) and its newest-first `LIMIT`/`OFFSET` page
//! are one query on indexed columns; a page is read as ids first, then its rows, metadata,
//! formats and thumbnails in four pipelined queries on one connection. Text that callers
//! control and that may be long (metadata keys and values) is indexed by its `md5`, so no
//! value is too long for a B-tree; record IDs compare byte-wise (`COLLATE "C"`), as in SQLite.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::playback::PlaybackAccess;
use super::postgres::{backend, check_fence, PostgresStore};
use super::recordings::*;
use super::{now_ms, StoreResult};

/// Ids read per round of [`load`].
const LOAD_CHUNK: usize = 1000;

/// The metadata row of `key` (by the unique `md5(key)` index).
const META_KEY: &str = "md5(key) = md5($2) AND key = $2";

/// Recordings whose `tenant-id` metadatum is the `$n` parameter.
fn tenant_ids(n: usize) -> String {
    format!(
        "SELECT recording_id FROM recording_metadata \
         WHERE md5(key) = md5('tenant-id') AND key = 'tenant-id' AND md5(value) = md5(${n}) AND value = ${n}"
    )
}

type Param = Box<dyn ToSql + Sync + Send>;

/// SQL arguments collected while a statement is written: [`Args::push`] returns the `$n`.
#[derive(Default)]
struct Args(Vec<Param>);

impl Args {
    fn push(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

fn state_of(s: Option<&str>) -> StoreResult<Option<RecordingState>> {
    s.map(|s| {
        RecordingState::parse(s).ok_or_else(|| backend(format!("unknown recording state '{s}'")))
    })
    .transpose()
}

fn rec_of_row(r: &tokio_postgres::Row) -> StoreResult<(i64, Recording)> {
    Ok((
        r.get(0),
        Recording {
            record_id: r.get(1),
            meeting_id: r.get(2),
            internal_meeting_id: r.get(3),
            name: r.get(4),
            published: r.get(5),
            state: state_of(r.get(6))?,
            start_time: r.get(7),
            end_time: r.get(8),
            participants: r.get(9),
            raw_size: r.get(10),
            is_breakout: r.get(11),
            parent_meeting_id: r.get(12),
            protected: r.get(13),
            publish_updated: r.get(14),
            imported_at: r.get(15),
            metadata: Vec::new(),
            formats: Vec::new(),
        },
    ))
}

/// What [`load`] reads for a set of row ids (`$1`): rows, metadata, formats, thumbnails.
const LOAD_SQL: [&str; 4] = [
    "SELECT id, record_id, meeting_id, internal_meeting_id, name, published, state, \
     starttime, endtime, participants, raw_size, is_breakout, parent_meeting_id, protected, \
     publish_updated, imported_at FROM recordings WHERE id = ANY($1)",
    "SELECT recording_id, key, value FROM recording_metadata \
     WHERE recording_id = ANY($1) ORDER BY recording_id, seq",
    "SELECT id, recording_id, format, url, length, processing_time, size \
     FROM playback_formats WHERE recording_id = ANY($1) \
     ORDER BY recording_id, format COLLATE \"C\"",
    "SELECT t.playback_format_id, t.sequence, t.width, t.height, t.alt, t.url \
     FROM thumbnails t JOIN playback_formats f ON f.id = t.playback_format_id \
     WHERE f.recording_id = ANY($1) ORDER BY t.playback_format_id, t.sequence",
];

/// A query through the connection's statement cache (one round trip once prepared).
async fn cached_query<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let stmt = c.prepare_cached(sql).await?;
    c.query(&stmt, params).await
}

/// Reads the full recordings for `ids`, in the order given (unknown ids are skipped).
async fn load<C: GenericClient>(c: &C, ids: &[i64]) -> StoreResult<Vec<Recording>> {
    let mut out: Vec<Recording> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(LOAD_CHUNK) {
        let chunk = chunk.to_vec();
        let p: [&(dyn ToSql + Sync); 1] = [&chunk];
        let (rows, meta, formats, thumbs) = tokio::try_join!(
            cached_query(c, LOAD_SQL[0], &p),
            cached_query(c, LOAD_SQL[1], &p),
            cached_query(c, LOAD_SQL[2], &p),
            cached_query(c, LOAD_SQL[3], &p),
        )
        .map_err(backend)?;
        let mut found: HashMap<i64, Recording> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let (id, rec) = rec_of_row(r)?;
            found.insert(id, rec);
        }
        for r in &meta {
            if let Some(rec) = found.get_mut(&r.get::<_, i64>(0)) {
                rec.metadata.push((r.get(1), r.get(2)));
            }
        }
        let mut thumbnails: HashMap<i64, Vec<Thumbnail>> = HashMap::new();
        for r in &thumbs {
            thumbnails.entry(r.get(0)).or_default().push(Thumbnail {
                sequence: r.get(1),
                width: r.get(2),
                height: r.get(3),
                alt: r.get(4),
                url: r.get(5),
            });
        }
        for r in &formats {
            let fid: i64 = r.get(0);
            if let Some(rec) = found.get_mut(&r.get::<_, i64>(1)) {
                rec.formats.push(PlaybackFormat {
                    format: r.get(2),
                    url: r.get(3),
                    length: r.get(4),
                    processing_time: r.get(5),
                    size: r.get(6),
                    thumbnails: thumbnails.remove(&fid).unwrap_or_default(),
                });
            }
        }
        out.extend(chunk.iter().filter_map(|id| found.remove(id)));
    }
    Ok(out)
}

/// The smallest string greater than every string starting with `prefix` (for index ranges).
fn prefix_upper(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// The WHERE clause of a getRecordings query, its arguments pushed onto `args`.
fn where_clause(q: &RecordingQuery, args: &mut Args) -> String {
    let mut conds: Vec<String> = Vec::new();
    if !q.meeting_ids.is_empty() {
        let p = args.push(q.meeting_ids.clone());
        conds.push(format!("r.meeting_id = ANY({p})"));
    }
    if !q.record_id_prefixes.is_empty() {
        let ors: Vec<String> = q
            .record_id_prefixes
            .iter()
            .map(|prefix| {
                let p = args.push(prefix.clone());
                let upper = args.push(prefix_upper(prefix));
                format!(
                    "(r.record_id >= {p} AND r.record_id < {upper} AND left(r.record_id, length({p})) = {p})"
                )
            })
            .collect();
        conds.push(format!("({})", ors.join(" OR ")));
    }
    if let Some(states) = &q.states {
        let p = args.push(states.clone());
        conds.push(format!("r.state = ANY({p})"));
    }
    if !q.meta.is_empty() {
        let ors: Vec<String> = q
            .meta
            .iter()
            .map(|(key, values)| {
                let k = args.push(key.clone());
                let v = args.push(values.clone());
                format!(
                    "SELECT recording_id FROM recording_metadata WHERE md5(key) = md5({k}) AND key = {k} \
                     AND md5(value) = ANY(ARRAY(SELECT md5(x) FROM unnest({v}::text[]) x)) AND value = ANY({v})"
                )
            })
            .collect();
        conds.push(format!("r.id IN ({})", ors.join(" UNION ")));
    }
    if let Some(t) = &q.tenant_id {
        args.push(t.clone());
        conds.push(format!("r.id IN ({})", tenant_ids(args.0.len())));
    }
    if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    }
}

/// The matches before paging, when the page itself tells: a page shorter than `limit` that
/// is not empty (or starts at 0) ends the matches. Otherwise they must be counted.
fn total_of_short_page(limit: u64, offset: u64, found: usize) -> Option<u64> {
    let found = found as u64;
    (found < limit && (found > 0 || offset == 0)).then(|| offset + found)
}

/// The row ids of the matches of `q`, newest first, optionally one `(limit, offset)` page.
async fn matching_ids<C: GenericClient>(
    c: &C,
    q: &RecordingQuery,
    page: Option<(u64, u64)>,
) -> StoreResult<Vec<i64>> {
    let mut args = Args::default();
    let clause = where_clause(q, &mut args);
    let mut sql =
        format!("SELECT r.id FROM recordings r {clause} ORDER BY r.starttime DESC, r.id DESC");
    if let Some((limit, offset)) = page {
        let l = args.push(limit.min(i64::MAX as u64) as i64);
        let o = args.push(offset.min(i64::MAX as u64) as i64);
        sql.push_str(&format!(" LIMIT {l} OFFSET {o}"));
    }
    let stmt = c.prepare_cached(&sql).await.map_err(backend)?;
    let rows = c.query(&stmt, &args.refs()).await.map_err(backend)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn id_of<C: GenericClient>(c: &C, record_id: &str) -> StoreResult<Option<i64>> {
    let stmt = c
        .prepare_cached("SELECT id FROM recordings WHERE record_id = $1")
        .await
        .map_err(backend)?;
    Ok(c.query_opt(&stmt, &[&record_id])
        .await
        .map_err(backend)?
        .map(|r| r.get(0)))
}

/// The row ids of `record_ids` (restricted to a tenant), newest first; `lock` takes their
/// rows for the rest of the transaction.
async fn ids_for<C: GenericClient>(
    c: &C,
    record_ids: &[String],
    tenant_id: Option<&str>,
    lock: bool,
) -> StoreResult<Vec<i64>> {
    if record_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = Args::default();
    let p = args.push(record_ids.to_vec());
    let mut sql = format!("SELECT r.id FROM recordings r WHERE r.record_id = ANY({p})");
    if let Some(t) = tenant_id {
        args.push(t.to_string());
        sql.push_str(&format!(" AND r.id IN ({})", tenant_ids(args.0.len())));
    }
    sql.push_str(" ORDER BY r.starttime DESC, r.id DESC");
    if lock {
        sql.push_str(" FOR UPDATE");
    }
    let rows = c.query(&sql, &args.refs()).await.map_err(backend)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Sets `key` to `value` on each recording of `ids`, keeping a key's place when it exists
/// and appending it otherwise.
async fn upsert_meta<C: GenericClient>(
    c: &C,
    ids: &[i64],
    key: &str,
    value: &str,
) -> StoreResult<()> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO recording_metadata (recording_id, seq, key, value)
             SELECT i.id, (SELECT COALESCE(MAX(m.seq), 0) + 1 FROM recording_metadata m WHERE m.recording_id = i.id), $2, $3
             FROM unnest($1::bigint[]) AS i(id)
             ON CONFLICT (recording_id, md5(key)) DO UPDATE SET value = excluded.value",
        )
        .await
        .map_err(backend)?;
    c.execute(&stmt, &[&ids, &key, &value])
        .await
        .map_err(backend)?;
    Ok(())
}

/// `(keys, values)` of an import's metadata, each key once: a repeated key keeps its first
/// place and its last value (what one upsert per pair would leave).
fn merged_meta(metadata: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let mut keys: Vec<String> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (k, v) in metadata {
        match at.get(k.as_str()) {
            Some(&i) => values[i] = v.clone(),
            None => {
                at.insert(k, keys.len());
                keys.push(k.clone());
                values.push(v.clone());
            }
        }
    }
    (keys, values)
}

const ACCESS_SQL: &str = "SELECT r.record_id, r.published, r.protected, r.state,
        (SELECT m.value FROM recording_metadata m WHERE m.recording_id = r.id
            AND md5(m.key) = md5('tenant-id') AND m.key = 'tenant-id'),
        f.format, f.url
     FROM recordings r LEFT JOIN playback_formats f ON f.recording_id = r.id";

async fn access_rows<C: GenericClient>(
    c: &C,
    tail: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<super::sqlite_playback::AccessRow>> {
    let stmt = c
        .prepare_cached(&format!("{ACCESS_SQL} {tail}"))
        .await
        .map_err(backend)?;
    let rows = c.query(&stmt, params).await.map_err(backend)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.get(0),
                r.get(1),
                r.get(2),
                state_of(r.get(3))?,
                r.get(4),
                r.get(5),
                r.get(6),
            ))
        })
        .collect()
}

impl PostgresStore {
    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool.get().await.map_err(super::postgres::pool_error)
    }

    /// The recordings matching `sql` (which selects row ids), read in full.
    async fn load_where(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Recording>> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await.map_err(backend)?;
        let ids: Vec<i64> = c
            .query(&stmt, params)
            .await
            .map_err(backend)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        load(&c, &ids).await
    }
}

#[async_trait]
impl RecordingStore for PostgresStore {
    async fn recording(&self, record_id: &str) -> StoreResult<Option<Recording>> {
        let c = self.client().await?;
        match id_of(&c, record_id).await? {
            Some(id) => Ok(load(&c, &[id]).await?.into_iter().next()),
            None => Ok(None),
        }
    }

    async fn recordings_by_ids(
        &self,
        record_ids: &[String],
        tenant_id: Option<&str>,
    ) -> StoreResult<Vec<Recording>> {
        let c = self.client().await?;
        let ids = ids_for(&c, record_ids, tenant_id, false).await?;
        load(&c, &ids).await
    }

    async fn find_recordings(&self, q: &RecordingQuery) -> StoreResult<RecordingPage> {
        let c = self.client().await?;
        let ids = matching_ids(&c, q, q.limit.map(|l| (l, q.offset))).await?;
        let total = match q.limit {
            Some(limit) => match total_of_short_page(limit, q.offset, ids.len()) {
                Some(n) => Some(n),
                None => {
                    let mut args = Args::default();
                    let clause = where_clause(q, &mut args);
                    let stmt = c
                        .prepare_cached(&format!("SELECT count(*) FROM recordings r {clause}"))
                        .await
                        .map_err(backend)?;
                    let n: i64 = c
                        .query_one(&stmt, &args.refs())
                        .await
                        .map_err(backend)?
                        .get(0);
                    Some(n.max(0) as u64)
                }
            },
            None => None,
        };
        Ok(RecordingPage {
            recordings: load(&c, &ids).await?,
            total,
        })
    }

    async fn import_recording(&self, rec: &Recording) -> StoreResult<Recording> {
        self.import_with(rec, None, None).await
    }

    async fn import_recording_decided(
        &self,
        rec: &Recording,
        policy: ImportPolicy,
        fence: Option<&super::Fence>,
    ) -> StoreResult<Recording> {
        self.import_with(rec, Some(policy), fence).await
    }

    async fn set_published(&self, record_id: &str, published: bool) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute(
            "UPDATE recordings SET published = $2, publish_updated = true, state = $3, updated_at = $4
             WHERE record_id = $1",
            &[
                &record_id,
                &published,
                &RecordingState::of_published(published).as_str(),
                &now_ms(),
            ],
        )
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn update_recordings(
        &self,
        record_ids: &[String],
        tenant_id: Option<&str>,
        changes: &[MetaChange],
        protect: Option<bool>,
    ) -> StoreResult<Option<bool>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(backend)?;
        let ids = ids_for(&tx, record_ids, tenant_id, true).await?;
        if ids.is_empty() || ids.len() != record_ids.len() {
            return Ok(None);
        }
        let mut changed = false;
        for (k, v) in changes {
            match v {
                Some(v) => {
                    upsert_meta(&tx, &ids, k, v).await?;
                    changed = true;
                }
                None => {
                    let n = tx
                        .execute(
                            &format!(
                                "DELETE FROM recording_metadata WHERE recording_id = ANY($1) AND {META_KEY}"
                            ),
                            &[&ids, k],
                        )
                        .await
                        .map_err(backend)?;
                    changed |= n > 0;
                }
            }
        }
        if let Some(p) = protect {
            tx.execute(
                "UPDATE recordings SET protected = $2 WHERE id = ANY($1)",
                &[&ids, &p],
            )
            .await
            .map_err(backend)?;
            changed = true;
        }
        tx.commit().await.map_err(backend)?;
        Ok(Some(changed))
    }

    async fn tombstone_recording(&self, record_id: &str) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(backend)?;
        let Some(id) = id_of(&tx, record_id).await? else {
            return Ok(false);
        };
        for sql in [
            "DELETE FROM recording_metadata WHERE recording_id = $1",
            "DELETE FROM playback_formats WHERE recording_id = $1",
            "DELETE FROM recording_text_tracks WHERE recording_id = $1",
            "UPDATE recordings SET state = 'deleted', published = false WHERE id = $1", // RecordingState::Deleted
        ] {
            tx.execute(sql, &[&id]).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn recordings_started_before(&self, before_ms: i64) -> StoreResult<Vec<Recording>> {
        self.load_where(
            "SELECT id FROM recordings WHERE starttime < $1 AND (state IS NULL OR state <> 'deleted')
             ORDER BY starttime, id",
            &[&before_ms],
        )
        .await
    }

    async fn list_recordings(&self, meeting_id: Option<&str>) -> StoreResult<Vec<Recording>> {
        match meeting_id {
            Some(m) => {
                self.load_where(
                    "SELECT id FROM recordings WHERE meeting_id = $1 ORDER BY starttime DESC, id DESC",
                    &[&m],
                )
                .await
            }
            None => {
                self.load_where(
                    "SELECT id FROM recordings ORDER BY starttime DESC, id DESC",
                    &[],
                )
                .await
            }
        }
    }

    async fn put_text_track(&self, record_id: &str, t: &TextTrack) -> StoreResult<bool> {
        let c = self.client().await?;
        let Some(id) = id_of(&c, record_id).await? else {
            return Ok(false);
        };
        c.execute(
            "INSERT INTO recording_text_tracks (recording_id, kind, lang, label, source, content, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (recording_id, kind, lang) DO UPDATE SET label = excluded.label,
                 source = excluded.source, content = excluded.content, created_at = excluded.created_at",
            &[&id, &t.kind, &t.lang, &t.label, &t.source, &t.content, &now_ms()],
        )
        .await
        .map_err(backend)?;
        Ok(true)
    }

    async fn text_tracks(&self, record_id: &str) -> StoreResult<Vec<TextTrack>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT t.kind, t.lang, t.label, t.source, t.content FROM recording_text_tracks t
                 JOIN recordings r ON r.id = t.recording_id WHERE r.record_id = $1
                 ORDER BY t.lang COLLATE \"C\", t.kind COLLATE \"C\"",
                &[&record_id],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| TextTrack {
                kind: r.get(0),
                lang: r.get(1),
                label: r.get(2),
                source: r.get(3),
                content: r.get(4),
            })
            .collect())
    }

    async fn set_ready_url(&self, tenant_id: &str, meeting_id: &str, url: &str) -> StoreResult<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO recording_ready_urls (tenant_id, meeting_id, url, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, meeting_id) DO UPDATE SET url = excluded.url, created_at = excluded.created_at",
            &[&tenant_id, &meeting_id, &url, &now_ms()],
        )
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn ready_url(&self, tenant_id: &str, meeting_id: &str) -> StoreResult<Option<String>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT url FROM recording_ready_urls WHERE tenant_id = $1 AND meeting_id = $2",
            )
            .await
            .map_err(backend)?;
        Ok(c.query_opt(&stmt, &[&tenant_id, &meeting_id])
            .await
            .map_err(backend)?
            .map(|r| r.get(0)))
    }

    async fn prune_ready_urls(&self, before_ms: i64) -> StoreResult<usize> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM recording_ready_urls WHERE created_at < $1",
                &[&before_ms],
            )
            .await
            .map_err(backend)?;
        Ok(n as usize)
    }

    async fn find_recording_row_ids(&self, q: &RecordingQuery) -> StoreResult<Vec<i64>> {
        let c = self.client().await?;
        matching_ids(&c, q, None).await
    }

    async fn recordings_by_row_ids(&self, ids: &[i64]) -> StoreResult<Vec<Recording>> {
        let c = self.client().await?;
        load(&c, ids).await
    }

    async fn playback_access(&self, record_id: &str) -> StoreResult<Option<PlaybackAccess>> {
        let c = self.client().await?;
        let rows = access_rows(&c, "WHERE r.record_id = $1 ORDER BY f.id", &[&record_id]).await?;
        Ok(super::sqlite_playback::fold(rows).into_values().next())
    }

    async fn playback_all(&self) -> StoreResult<Vec<(String, PlaybackAccess)>> {
        let c = self.client().await?;
        let rows = access_rows(&c, "ORDER BY r.id, f.id", &[]).await?;
        Ok(super::sqlite_playback::fold(rows).into_iter().collect())
    }
}

impl PostgresStore {
    /// One import in one transaction: the fence checked, the flags decided by `policy`
    /// against the row there (locked with `FOR UPDATE`), then the upsert.
    async fn import_with(
        &self,
        rec: &Recording,
        policy: Option<ImportPolicy>,
        fence: Option<&super::Fence>,
    ) -> StoreResult<Recording> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(backend)?;
        check_fence(&tx, fence).await?;
        let decided;
        let rec = match policy {
            Some(policy) => {
                let existing: Option<i64> = tx
                    .query_opt(
                        "SELECT id FROM recordings WHERE record_id = $1 FOR UPDATE",
                        &[&rec.record_id],
                    )
                    .await
                    .map_err(backend)?
                    .map(|r| r.get(0));
                let existing = match existing {
                    Some(id) => load(&tx, &[id]).await?.into_iter().next(),
                    None => None,
                };
                decided = policy.apply(rec, existing.as_ref());
                &decided
            }
            None => rec,
        };
        let now = now_ms();
        let state = rec.state.map(RecordingState::as_str);
        let id: i64 = tx
            .query_one(
                "INSERT INTO recordings (record_id, meeting_id, internal_meeting_id, name, published, state,
                     starttime, endtime, participants, raw_size, is_breakout, parent_meeting_id, protected,
                     publish_updated, imported_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
                 ON CONFLICT (record_id) DO UPDATE SET meeting_id = excluded.meeting_id,
                     internal_meeting_id = excluded.internal_meeting_id, name = excluded.name,
                     published = excluded.published, state = excluded.state, starttime = excluded.starttime,
                     endtime = excluded.endtime, participants = excluded.participants,
                     raw_size = COALESCE(excluded.raw_size, recordings.raw_size),
                     is_breakout = excluded.is_breakout, parent_meeting_id = excluded.parent_meeting_id,
                     protected = excluded.protected, publish_updated = excluded.publish_updated,
                     imported_at = excluded.imported_at, updated_at = excluded.updated_at
                 RETURNING id",
                &[
                    &rec.record_id,
                    &rec.meeting_id,
                    &rec.internal_meeting_id,
                    &rec.name,
                    &rec.published,
                    &state,
                    &rec.start_time,
                    &rec.end_time,
                    &rec.participants,
                    &rec.raw_size,
                    &rec.is_breakout,
                    &rec.parent_meeting_id,
                    &rec.protected,
                    &rec.publish_updated,
                    &now,
                ],
            )
            .await
            .map_err(backend)?
            .get(0);
        let (keys, values) = merged_meta(&rec.metadata);
        if !keys.is_empty() {
            tx.execute(
                "INSERT INTO recording_metadata (recording_id, seq, key, value)
                 SELECT $1, (SELECT COALESCE(MAX(seq), 0) FROM recording_metadata WHERE recording_id = $1) + t.n, t.k, t.v
                 FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(k, v, n)
                 ON CONFLICT (recording_id, md5(key)) DO UPDATE SET value = excluded.value",
                &[&id, &keys, &values],
            )
            .await
            .map_err(backend)?;
        }
        for f in &rec.formats {
            tx.execute(
                "DELETE FROM playback_formats WHERE recording_id = $1 AND format = $2",
                &[&id, &f.format],
            )
            .await
            .map_err(backend)?;
            let fid: i64 = tx
                .query_one(
                    "INSERT INTO playback_formats (recording_id, format, url, length, processing_time, size)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[&id, &f.format, &f.url, &f.length, &f.processing_time, &f.size],
                )
                .await
                .map_err(backend)?
                .get(0);
            if !f.thumbnails.is_empty() {
                let col = |g: fn(&Thumbnail) -> i64| f.thumbnails.iter().map(g).collect::<Vec<_>>();
                let sequences = col(|t| t.sequence);
                let widths: Vec<Option<i64>> = f.thumbnails.iter().map(|t| t.width).collect();
                let heights: Vec<Option<i64>> = f.thumbnails.iter().map(|t| t.height).collect();
                let alts: Vec<&str> = f.thumbnails.iter().map(|t| t.alt.as_str()).collect();
                let urls: Vec<&str> = f.thumbnails.iter().map(|t| t.url.as_str()).collect();
                tx.execute(
                    "INSERT INTO thumbnails (playback_format_id, sequence, width, height, alt, url)
                     SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[])",
                    &[&fid, &sequences, &widths, &heights, &alts, &urls],
                )
                .await
                .map_err(backend)?;
            }
        }
        let stored = load(&tx, &[id]).await?.into_iter().next();
        tx.commit().await.map_err(backend)?;
        stored.ok_or_else(|| backend("the imported recording could not be read back"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_its_last_value() {
        let m = |k: &str, v: &str| (k.to_string(), v.to_string());
        let (keys, values) = merged_meta(&[m("a", "1"), m("b", "2"), m("a", "3")]);
        assert_eq!(
            (keys, values),
            (
                vec!["a".to_string(), "b".into()],
                vec!["3".to_string(), "2".into()]
            )
        );
    }

    #[test]
    fn only_a_short_page_that_is_not_past_the_end_tells_the_total() {
        assert_eq!(total_of_short_page(25, 50, 7), Some(57));
        assert_eq!(total_of_short_page(25, 0, 0), Some(0));
        assert_eq!(total_of_short_page(25, 50, 0), None, "past the end");
        assert_eq!(total_of_short_page(25, 50, 25), None, "a full page");
    }

    #[test]
    fn every_query_argument_is_numbered_in_the_order_it_is_written() {
        let q = RecordingQuery {
            meeting_ids: vec!["m".into()],
            record_id_prefixes: vec!["a".into(), "b".into()],
            states: Some(vec!["published".into()]),
            meta: vec![("k".into(), vec!["v".into()])],
            tenant_id: Some("t".into()),
            ..Default::default()
        };
        let mut args = Args::default();
        let clause = where_clause(&q, &mut args);
        assert_eq!(
            args.0.len(),
            9,
            "1 meeting list, 2 per prefix, 1 state list, 2 per meta, 1 tenant"
        );
        for n in 1..=9 {
            assert!(clause.contains(&format!("${n}")), "{clause}");
        }
        assert!(!clause.contains("$10"));
    }
}
