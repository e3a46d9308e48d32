//! Poll reconciliation on the embedded SQLite file, without holding the write path.
//!
//! A poll of a server with tens of thousands of meetings used to forget and re-count them
//! in one write transaction that also compared every row with every listed meeting, so
//! creates queued behind it for the whole cycle. Here the store's rows are read on the
//! blocking pool from a read connection (WAL readers never wait for the writer), the
//! difference is computed by the pure [`to_forget`] and [`participant_changes`], and only
//! the rows that change are written, [`BATCH`] at a time, each batch its own short
//! transaction. Every write re-checks what was read (server, creation time), so a meeting
//! re-placed in between is left alone.

use std::collections::{HashMap, HashSet};

use rusqlite::params;

use super::sqlite::backend;
use super::{Fence, Meeting, SqliteStore, StoreError, StoreResult};

/// Rows written per write transaction.
pub const BATCH: usize = 500;

/// A meeting row as reconciliation reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub meeting: Meeting,
    pub participants: u32,
}

/// The meetings to forget: created before `created_before_ms` and not in `keep` (the IDs
/// BBB knows: each meeting's `bbb_id`).
pub fn to_forget(rows: &[Row], keep: &[String], created_before_ms: i64) -> Vec<Meeting> {
    let keep: HashSet<&str> = keep.iter().map(String::as_str).collect();
    rows.iter()
        .filter(|r| r.meeting.created_at < created_before_ms)
        .filter(|r| !keep.contains(r.meeting.bbb_id.as_str()))
        .map(|r| r.meeting.clone())
        .collect()
}

/// The rows whose participant count differs from what the poll saw: (row, new count).
pub fn participant_changes<'a>(
    rows: &'a [Row],
    counts: &[(String, u32)],
) -> Vec<(&'a Meeting, u32)> {
    let counts: HashMap<&str, u32> = counts.iter().map(|(id, n)| (id.as_str(), *n)).collect();
    rows.iter()
        .filter_map(|r| {
            counts
                .get(r.meeting.bbb_id.as_str())
                .filter(|n| **n != r.participants)
                .map(|n| (&r.meeting, *n))
        })
        .collect()
}

impl SqliteStore {
    /// The server's meeting rows, read off the async workers.
    async fn reconcile_rows(&self, server_id: &str) -> StoreResult<Vec<Row>> {
        let store = self.clone();
        let server_id = server_id.to_string();
        tokio::task::spawn_blocking(move || {
            let conn = store.conn()?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT tenant_id, meeting_id, server_id, moderator_pw, voice_bridge, created_at, participants, bbb_id \
                     FROM meetings WHERE server_id = ?1",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([&server_id], |r| {
                    Ok(Row {
                        meeting: super::sqlite::meeting_from_row_with(r, 7)?,
                        participants: r.get(6)?,
                    })
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reconciliation read failed: {e}")))?
    }

    /// `Store::forget_meetings_except`, in batches.
    pub(super) async fn reconcile_forget(
        &self,
        server_id: &str,
        keep: &[String],
        created_before_ms: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<Meeting>> {
        let rows = self.reconcile_rows(server_id).await?;
        let keep = keep.to_vec();
        let candidates = tokio::task::spawn_blocking(move || {
            let mut gone = to_forget(&rows, &keep, created_before_ms);
            gone.sort_unstable_by(by_key);
            gone
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reconciliation failed: {e}")))?;
        let mut gone = Vec::with_capacity(candidates.len());
        for batch in candidates.chunks(BATCH) {
            let (sid, batch, fence) = (server_id.to_owned(), batch.to_vec(), fence.cloned());
            gone.extend(
                self.write(move |this| {
                    let mut w = this.writer()?;
                    delete_batch(&mut w, &sid, &batch, fence.as_ref())
                })
                .await?,
            );
            tokio::task::yield_now().await;
        }
        Ok(gone)
    }

    /// `Store::set_participants`, writing only the counts that changed, in batches.
    pub(super) async fn reconcile_participants(
        &self,
        server_id: &str,
        counts: &[(String, u32)],
        fence: Option<&Fence>,
    ) -> StoreResult<()> {
        let rows = self.reconcile_rows(server_id).await?;
        let counts = counts.to_vec();
        let changes: Vec<(Meeting, u32)> = tokio::task::spawn_blocking(move || {
            let mut changes: Vec<(Meeting, u32)> = participant_changes(&rows, &counts)
                .into_iter()
                .map(|(m, n)| (m.clone(), n))
                .collect();
            changes.sort_unstable_by(|a, b| by_key(&a.0, &b.0));
            changes
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reconciliation failed: {e}")))?;
        for batch in changes.chunks(BATCH) {
            let (sid, batch, fence) = (server_id.to_owned(), batch.to_vec(), fence.cloned());
            self.write(move |this| {
                let mut w = this.writer()?;
                update_batch(&mut w, &sid, &batch, fence.as_ref())
            })
            .await?;
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

/// The table's key order: a batch written in it touches neighbouring pages, not hundreds
/// of scattered ones (every page a commit touches is copied to the WAL).
fn by_key(a: &Meeting, b: &Meeting) -> std::cmp::Ordering {
    (&a.tenant_id, &a.meeting_id).cmp(&(&b.tenant_id, &b.meeting_id))
}

/// Deletes one batch in one transaction; returns the meetings that were still there.
fn delete_batch(
    conn: &mut rusqlite::Connection,
    server_id: &str,
    batch: &[Meeting],
    fence: Option<&Fence>,
) -> StoreResult<Vec<Meeting>> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    super::sqlite_fence::check(&tx, fence)?;
    let mut gone = Vec::new();
    {
        let mut del = tx
            .prepare_cached(
                "DELETE FROM meetings WHERE tenant_id = ?1 AND meeting_id = ?2 AND server_id = ?3 AND created_at = ?4",
            )
            .map_err(backend)?;
        for m in batch {
            let n = del
                .execute(params![m.tenant_id, m.meeting_id, server_id, m.created_at])
                .map_err(backend)?;
            if n > 0 {
                gone.push(m.clone());
            }
        }
    }
    tx.commit().map_err(backend)?;
    Ok(gone)
}

/// Writes one batch of participant counts in one transaction.
fn update_batch(
    conn: &mut rusqlite::Connection,
    server_id: &str,
    batch: &[(Meeting, u32)],
    fence: Option<&Fence>,
) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    super::sqlite_fence::check(&tx, fence)?;
    {
        let mut upd = tx
            .prepare_cached(
                "UPDATE meetings SET participants = ?4 WHERE tenant_id = ?1 AND meeting_id = ?2 AND server_id = ?3",
            )
            .map_err(backend)?;
        for (m, n) in batch {
            upd.execute(params![m.tenant_id, m.meeting_id, server_id, n])
                .map_err(backend)?;
        }
    }
    tx.commit().map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tenant: &str, id: &str, created_at: i64, participants: u32) -> Row {
        Row {
            meeting: Meeting {
                tenant_id: tenant.into(),
                meeting_id: id.into(),
                server_id: "s".into(),
                moderator_pw: String::new(),
                voice_bridge: format!("{id}{tenant}"),
                created_at,
                bbb_id: crate::tenant::scope(tenant, id),
            },
            participants,
        }
    }

    #[test]
    fn forgets_only_old_unlisted_meetings_by_their_bbb_id() {
        let rows = vec![
            row("", "listed", 1, 0),
            row("", "gone", 1, 0),
            row("", "young", 100, 0),
            row("t1", "x", 1, 0),
        ];
        let keep = vec!["listed".to_string(), crate::tenant::scope("t1", "x")];
        let gone: Vec<String> = to_forget(&rows, &keep, 50)
            .into_iter()
            .map(|m| m.meeting_id)
            .collect();
        assert_eq!(gone, vec!["gone"]);
        // A tenant meeting is kept by its scoped ID only, not by its bare one.
        let gone = to_forget(&rows, &["x".to_string()], 50);
        assert!(gone.iter().any(|m| m.meeting_id == "x"));
    }

    #[test]
    fn writes_only_counts_that_changed() {
        let rows = vec![row("", "a", 1, 3), row("", "b", 1, 5), row("", "c", 1, 0)];
        let counts = vec![
            ("a".to_string(), 3),
            ("b".to_string(), 6),
            ("z".to_string(), 9),
        ];
        let changed: Vec<(&str, u32)> = participant_changes(&rows, &counts)
            .into_iter()
            .map(|(m, n)| (m.meeting_id.as_str(), n))
            .collect();
        assert_eq!(changed, vec![("b", 6)]);
    }
}
