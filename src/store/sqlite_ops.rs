//! [`OpsStore`] on the embedded SQLite file: schema step `0600-ops` (last poll results,
//! the usage ledger), and reads of leases, meetings with participants and recordings per day.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::params;

use super::ops::*;
use super::sqlite::backend;
use super::{SqliteStore, StoreResult};

/// The time since the previous sighting, counted when the gap is short enough.
const ELAPSED: &str =
    "CASE WHEN ?5 > usage_meetings.last_seen AND ?5 - usage_meetings.last_seen <= ?6 \
     THEN ?5 - usage_meetings.last_seen ELSE 0 END";

#[async_trait]
impl OpsStore for SqliteStore {
    async fn leases(&self) -> StoreResult<Vec<LeaseInfo>> {
        self.read(move |this| {
            Self::query_all(
                &*this.conn()?,
                "SELECT name, holder, expires_at FROM leases ORDER BY name",
                [],
                |r| {
                    Ok(LeaseInfo {
                        role: r.get(0)?,
                        holder: r.get(1)?,
                        expires_at: r.get(2)?,
                    })
                },
            )
        })
        .await
    }

    async fn save_poll_result(&self, p: &PollResult) -> StoreResult<()> {
        let p = p.clone();
        self.write(move |this| {
        this.writer()?
            .execute(
                "INSERT INTO poll_results (server_id, at, ok, error) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(server_id) DO UPDATE SET at = excluded.at, ok = excluded.ok, error = excluded.error",
                params![p.server_id, p.at, p.ok, p.error],
            )
            .map_err(backend)?;
        Ok(())
        })
        .await
    }

    async fn poll_results(&self) -> StoreResult<Vec<PollResult>> {
        self.read(move |this| {
            Self::query_all(
                &*this.conn()?,
                "SELECT p.server_id, p.at, p.ok, p.error FROM poll_results p JOIN servers s ON s.id = p.server_id ORDER BY p.server_id",
                [],
                |r| {
                    Ok(PollResult {
                        server_id: r.get(0)?,
                        at: r.get(1)?,
                        ok: r.get(2)?,
                        error: r.get(3)?,
                    })
                },
            )
        })
        .await
    }

    async fn meeting_rows(&self) -> StoreResult<Vec<MeetingRow>> {
        self.bulk(move |this| {
            Self::query_all(
                &*this.conn()?,
                "SELECT tenant_id, meeting_id, server_id, moderator_pw, voice_bridge, created_at, participants, bbb_id
                 FROM meetings ORDER BY created_at, tenant_id, meeting_id",
                [],
                |r| {
                    Ok(MeetingRow {
                        meeting: super::sqlite::meeting_from_row_with(r, 7)?,
                        participants: r.get(6)?,
                    })
                },
            )
        })
        .await
    }

    async fn record_usage(&self, sightings: &[UsageSighting]) -> StoreResult<()> {
        // Bounded batches: a poll of a big server never holds the write lock for long. In
        // key order, so each batch touches a few neighbouring pages of the table instead of
        // hundreds scattered ones (every page a commit touches is written to the WAL).
        let mut sorted: Vec<&UsageSighting> = sightings.iter().collect();
        sorted.sort_unstable_by(|a, b| {
            (&a.day, &a.tenant_id, &a.meeting_key).cmp(&(&b.day, &b.tenant_id, &b.meeting_key))
        });
        for batch in sorted.chunks(USAGE_BATCH) {
            let batch: Vec<UsageSighting> = batch.iter().map(|s| (*s).clone()).collect();
            self.record_usage_batch(batch).await?;
        }
        Ok(())
    }

    async fn callback_summary(&self, recent: usize) -> StoreResult<CallbackSummary> {
        self.bulk(move |this| {
            let conn = this.conn()?;
            let counts = Self::query_all(
                &conn,
                "SELECT status, COUNT(*) FROM callbacks WHERE status IN ('pending', 'failed') GROUP BY status",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )?;
            let count = |s: &str| {
                counts
                    .iter()
                    .find(|(k, _)| k == s)
                    .map(|(_, n)| *n as u64)
                    .unwrap_or(0)
            };
            let recent_failures = Self::query_all(
                &conn,
                "SELECT id, kind, url, status, attempts, last_error, created_at FROM callbacks
                 WHERE status = 'failed' OR (status = 'pending' AND last_error <> '')
                 ORDER BY created_at DESC LIMIT ?1",
                [recent as i64],
                |r| {
                    Ok(CallbackProblem {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        url: r.get(2)?,
                        status: r.get(3)?,
                        attempts: r.get(4)?,
                        last_error: r.get(5)?,
                        created_at: r.get(6)?,
                    })
                },
            )?;
            Ok(CallbackSummary {
                pending: count("pending"),
                failed: count("failed"),
                recent_failures,
            })
        })
        .await
    }

    async fn usage(
        &self,
        tenant: Option<&str>,
        from: &str,
        to: &str,
    ) -> StoreResult<Vec<UsageDay>> {
        let (tenant, from, to) = (tenant.map(str::to_owned), from.to_owned(), to.to_owned());
        self.bulk(move |this| {
            let conn = this.conn()?;
            let mut days: BTreeMap<(String, String), UsageDay> = BTreeMap::new();
            let meetings = Self::query_all(
                &conn,
                "SELECT day, tenant_id, COUNT(*), SUM(meeting_ms), SUM(participant_ms), MAX(peak_participants)
                 FROM usage_meetings WHERE day >= ?1 AND day <= ?2 AND (?3 IS NULL OR tenant_id = ?3)
                 GROUP BY day, tenant_id",
                params![from, to, tenant.as_deref()],
                |r| {
                    Ok(UsageDay {
                        day: r.get(0)?,
                        tenant_id: r.get(1)?,
                        meetings: r.get::<_, i64>(2)? as u64,
                        meeting_minutes: r.get::<_, i64>(3)? as f64 / 60_000.0,
                        participant_minutes: r.get::<_, i64>(4)? as f64 / 60_000.0,
                        peak_participants: r.get(5)?,
                        ..Default::default()
                    })
                },
            )?;
            for d in meetings {
                days.insert((d.day.clone(), d.tenant_id.clone()), d);
            }
            // Recordings by the day their meeting started, and the bytes of their formats.
            let recordings = Self::query_all(
                &conn,
                "SELECT date(r.starttime / 1000, 'unixepoch') AS day,
                        COALESCE((SELECT m.value FROM recording_metadata m WHERE m.recording_id = r.id AND m.key = 'tenant-id'), '') AS tenant,
                        COUNT(*),
                        SUM(COALESCE((SELECT SUM(f.size) FROM playback_formats f WHERE f.recording_id = r.id), r.raw_size, 0))
                 FROM recordings r
                 WHERE (r.state IS NULL OR r.state <> 'deleted') AND day >= ?1 AND day <= ?2
                 GROUP BY day, tenant HAVING (?3 IS NULL OR tenant = ?3)",
                params![from, to, tenant.as_deref()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )?;
            for (day, tenant_id, n, bytes) in recordings {
                let d = days
                    .entry((day.clone(), tenant_id.clone()))
                    .or_insert_with(|| UsageDay {
                        day,
                        tenant_id,
                        ..Default::default()
                    });
                d.recordings = n as u64;
                d.recording_bytes = bytes.max(0) as u64;
            }
            Ok(days.into_values().collect())
        })
        .await
    }

    async fn prune_usage(&self, before_day: &str) -> StoreResult<usize> {
        let before_day = before_day.to_owned();
        self.bulk(move |this| {
            this.writer()?
                .execute("DELETE FROM usage_meetings WHERE day < ?1", [&before_day])
                .map_err(backend)
        })
        .await
    }
}

/// Sightings written in one transaction.
const USAGE_BATCH: usize = 500;

impl SqliteStore {
    async fn record_usage_batch(&self, sightings: Vec<UsageSighting>) -> StoreResult<()> {
        self.bulk(move |this| this.write_usage_batch(&sightings))
            .await
    }

    fn write_usage_batch(&self, sightings: &[UsageSighting]) -> StoreResult<()> {
        let mut conn = self.writer()?;
        let tx = conn.transaction().map_err(backend)?;
        {
            let sql = format!(
                "INSERT INTO usage_meetings (day, tenant_id, meeting_key, first_seen, last_seen, participants, peak_participants)
                 VALUES (?1, ?2, ?3, ?5, ?5, ?4, ?4)
                 ON CONFLICT(day, tenant_id, meeting_key) DO UPDATE SET
                   meeting_ms = meeting_ms + {ELAPSED},
                   participant_ms = participant_ms + usage_meetings.participants * {ELAPSED},
                   participants = excluded.participants,
                   peak_participants = MAX(peak_participants, excluded.participants),
                   last_seen = MAX(last_seen, excluded.last_seen)"
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
            for s in sightings {
                stmt.execute(params![
                    s.day,
                    s.tenant_id,
                    s.meeting_key,
                    s.participants,
                    s.at,
                    s.max_gap_ms
                ])
                .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_store;

    fn sighting(day: &str, key: &str, participants: u32, at: i64) -> UsageSighting {
        UsageSighting {
            day: day.into(),
            tenant_id: "t1".into(),
            meeting_key: key.into(),
            participants,
            at,
            max_gap_ms: 300_000,
        }
    }

    #[tokio::test]
    async fn sightings_add_up_to_minutes_and_peaks() {
        let (_d, st) = test_store();
        let min = 60_000;
        st.record_usage(&[sighting("2026-01-02", "m1", 4, 0)])
            .await
            .unwrap();
        st.record_usage(&[sighting("2026-01-02", "m1", 10, min)])
            .await
            .unwrap();
        st.record_usage(&[sighting("2026-01-02", "m1", 2, 2 * min)])
            .await
            .unwrap();
        // A gap longer than max_gap_ms (the poller was down) is not counted.
        st.record_usage(&[sighting("2026-01-02", "m1", 2, 60 * min)])
            .await
            .unwrap();
        st.record_usage(&[sighting("2026-01-02", "m2", 3, 0)])
            .await
            .unwrap();
        let u = st.usage(None, "2026-01-01", "2026-01-31").await.unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].meetings, 2);
        assert_eq!(u[0].meeting_minutes, 2.0);
        // 4 participants for a minute, then 10 for a minute.
        assert_eq!(u[0].participant_minutes, 14.0);
        assert_eq!(u[0].peak_participants, 10);
        assert!(st
            .usage(Some("other"), "2026-01-01", "2026-01-31")
            .await
            .unwrap()
            .is_empty());
        assert_eq!(st.prune_usage("2026-01-03").await.unwrap(), 2);
        assert!(st
            .usage(None, "2026-01-01", "2026-01-31")
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn large_polls_are_written_in_batches() {
        let (_d, st) = test_store();
        let many: Vec<UsageSighting> = (0..1234)
            .map(|i| sighting("2026-01-02", &format!("m{i}"), 1, 0))
            .collect();
        st.record_usage(&many).await.unwrap();
        let u = st
            .usage(Some("t1"), "2026-01-02", "2026-01-02")
            .await
            .unwrap();
        assert_eq!(u[0].meetings, 1234);
    }

    #[tokio::test]
    async fn the_callback_summary_counts_and_lists_failures() {
        use crate::store::{Outbox, OutgoingCallback};
        let (_d, st) = test_store();
        for (i, status, error) in [
            (0, "pending", ""),
            (1, "pending", "HTTP 500"),
            (2, "failed", "timeout"),
            (3, "delivered", ""),
        ] {
            let cb = OutgoingCallback {
                id: format!("cb{i}"),
                kind: "analytics".into(),
                method: "POST".into(),
                url: "https://lms.example/cb?t=secret".into(),
                variants: vec![],
                attempts: 0,
                next_attempt_at: 0,
                created_at: i,
                status: crate::store::CallbackStatus::Pending,
                last_error: String::new(),
            };
            st.enqueue_callback(&cb).await.unwrap();
            st.update_callback(
                &cb.id,
                crate::store::CallbackStatus::parse(status).unwrap(),
                1,
                0,
                error,
            )
            .await
            .unwrap();
        }
        let s = st.callback_summary(10).await.unwrap();
        assert_eq!((s.pending, s.failed), (2, 1));
        let ids: Vec<&str> = s.recent_failures.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["cb2", "cb1"], "newest first, failures only");
        assert_eq!(
            st.callback_summary(1).await.unwrap().recent_failures.len(),
            1
        );
    }
}
