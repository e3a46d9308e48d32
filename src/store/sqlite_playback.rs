//! [`TokenStore`] on the embedded SQLite file: the schema step `0300-playback-tokens`,
//! token mint/consume, and the one-query access lookup behind `auth_request` (served by the
//! recordings index, `sqlite_recordings.rs`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::playback::*;
use super::recordings::RecordingState;
use super::sqlite::{backend, NOW_MS};
use super::{SqliteStore, StoreResult};

const ACCESS_SQL: &str = "SELECT r.record_id, r.published, r.protected, r.state,
        (SELECT m.value FROM recording_metadata m WHERE m.recording_id = r.id AND m.key = 'tenant-id'),
        f.format, f.url
     FROM recordings r LEFT JOIN playback_formats f ON f.recording_id = r.id";

pub(super) type AccessRow = (
    String,
    bool,
    bool,
    Option<RecordingState>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn access_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccessRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

/// Folds joined rows (one per format) into one access record per recording.
pub(super) fn fold(rows: Vec<AccessRow>) -> BTreeMap<String, PlaybackAccess> {
    let mut out: BTreeMap<String, PlaybackAccess> = BTreeMap::new();
    for (rid, published, protected, state, tenant, format, url) in rows {
        if state == Some(RecordingState::Deleted) {
            continue;
        }
        let a = out.entry(rid).or_insert_with(|| PlaybackAccess {
            published,
            protected,
            tenant_id: tenant,
            formats: Vec::new(),
        });
        if let (Some(f), Some(u)) = (format, url) {
            a.formats.push((f, u));
        }
    }
    out
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn mint_playback_tokens(&self, tokens: &[NewToken], ttl_ms: i64) -> StoreResult<()> {
        let tokens = tokens.to_vec();
        self.write(move |this| {
            let tokens = tokens.as_slice();
            if tokens.is_empty() {
                return Ok(());
            }
            let mut conn = this.writer()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.prepare_cached(&format!(
                "DELETE FROM playback_tokens WHERE expires_at <= {NOW_MS}"
            ))
            .and_then(|mut s| s.execute([]))
            .map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT OR REPLACE INTO playback_tokens (token_hash, record_id, format, expires_at)
                         VALUES (?1, ?2, ?3, {NOW_MS} + ?4)"
                    ))
                    .map_err(backend)?;
                for t in tokens {
                    stmt.execute(params![t.hash, t.record_id, t.format, ttl_ms])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn consume_playback_token(&self, hash: &str) -> StoreResult<Option<(String, String)>> {
        let hash = hash.to_owned();
        self.write(move |this| {
            let hash = hash.as_str();
            let conn = this.writer()?;
            let row: Option<(String, String, bool)> = conn
                .prepare_cached(&format!(
                    "DELETE FROM playback_tokens WHERE token_hash = ?1
                     RETURNING record_id, format, expires_at > {NOW_MS}"
                ))
                .and_then(|mut s| {
                    s.query_row([hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .map_err(backend)?;
            Ok(row.filter(|(_, _, live)| *live).map(|(r, f, _)| (r, f)))
        })
        .await
    }
}

/// The access facts of one recording (`None` if unknown or deleted), in one query.
pub(super) fn access_of(
    conn: &rusqlite::Connection,
    record_id: &str,
) -> StoreResult<Option<PlaybackAccess>> {
    let sql = format!("{ACCESS_SQL} WHERE r.record_id = ?1");
    let rows: Vec<AccessRow> = SqliteStore::query_all(conn, &sql, [record_id], access_row)?;
    Ok(fold(rows).into_values().next())
}

/// Every recording's access facts.
pub(super) fn access_all(
    conn: &rusqlite::Connection,
) -> StoreResult<Vec<(String, PlaybackAccess)>> {
    let rows: Vec<AccessRow> = SqliteStore::query_all(conn, ACCESS_SQL, [], access_row)?;
    Ok(fold(rows).into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RecordingStore;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        crate::store::sqlite::test_store()
    }

    #[tokio::test]
    async fn a_token_opens_once_and_not_after_expiry() {
        let (_d, s) = store();
        let t = |h: &str| NewToken {
            hash: h.into(),
            record_id: "r1".into(),
            format: "presentation".into(),
        };
        s.mint_playback_tokens(&[t("a")], 60_000).await.unwrap();
        s.mint_playback_tokens(&[t("b")], 100).await.unwrap();
        let got = s.consume_playback_token("a").await.unwrap();
        assert_eq!(got, Some(("r1".into(), "presentation".into())));
        assert_eq!(s.consume_playback_token("a").await.unwrap(), None);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(s.consume_playback_token("b").await.unwrap(), None);
        assert_eq!(s.consume_playback_token("zz").await.unwrap(), None);
        assert_eq!(s.playback_access("nope").await.unwrap(), None);
    }
}
