//! The PostgreSQL backend: the callback outbox ([`Outbox`]) shared by every node, in the
//! database `DATABASE_URL=postgres://…` names, through a `deadpool-postgres` pool (TLS by
//! rustls, `postgres_tls.rs`).
//!
//! Its schema is versioned by [`MIGRATIONS`], applied in order and recorded in
//! `ferrolite_migrations`; [`PostgresStore::connect`] applies the missing ones on start and
//! `ferrolite db migrate` does it by hand. Concurrent starts are serialized by an advisory
//! lock, so two nodes never apply one migration twice.

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use super::{
    CallbackStatus, CallbackVariant, Fence, Outbox, OutgoingCallback, StoreError, StoreResult,
};

/// The PostgreSQL side of [`Fence`]: inside the write's transaction, refuses it when an
/// older epoch than the newest seen for its lease, else records it as the newest (the
/// `fences` row stays locked until the transaction ends, so check and write are one step).
pub(super) async fn check_fence(
    tx: &tokio_postgres::Transaction<'_>,
    fence: Option<&Fence>,
) -> StoreResult<()> {
    let Some(f) = fence else {
        return Ok(());
    };
    let newest: i64 = tx
        .query_one(
            "INSERT INTO fences (name, epoch) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET epoch = GREATEST(fences.epoch, EXCLUDED.epoch)
             RETURNING epoch",
            &[&f.lease, &f.epoch_i64()],
        )
        .await
        .map_err(backend)?
        .get(0);
    if f.epoch_i64() < newest {
        return Err(f.refused(newest));
    }
    Ok(())
}

/// The schema, one step per entry: `(version, name, SQL)`. Append only.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "callback outbox",
        "CREATE TABLE callbacks (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        method TEXT NOT NULL,
        url TEXT NOT NULL,
        variants TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE status = 'pending';",
    ),
    (
        2,
        "callback-claims",
        "ALTER TABLE callbacks ADD COLUMN claimed_until BIGINT;
    ALTER TABLE callbacks ADD COLUMN claimed_by TEXT;",
    ),
    (3, "recordings index", super::postgres_schema::RECORDINGS),
    (
        4,
        "fences",
        "CREATE TABLE fences (name TEXT PRIMARY KEY, epoch BIGINT NOT NULL);",
    ),
];

/// The advisory lock key migrations run under (any constant unique to Ferrolite).
const MIGRATION_LOCK: i64 = 0x6665_7272_6f6c;

#[derive(Clone)]
pub struct PostgresStore {
    pub(super) pool: Pool,
}

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

/// A connection could not be had: the whole chain of causes (a refused certificate is
/// the innermost).
pub(super) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    backend(out)
}

const CALLBACK_COLUMNS: &str =
    "id, kind, method, url, variants, attempts, next_attempt_at, created_at, status, last_error";

impl PostgresStore {
    /// A pool of up to `max_connections` to `url`, without touching the database yet.
    /// TLS as `sslmode`/`sslrootcert` in the URL ask (`postgres_tls.rs`).
    pub fn open(url: &str, max_connections: usize) -> StoreResult<PostgresStore> {
        let target = crate::config::postgres_target(url).map_err(backend)?;
        let tls = super::postgres_tls::connector(&target).map_err(backend)?;
        let manager = Manager::from_config(
            target.config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(backend)?;
        Ok(PostgresStore { pool })
    }

    /// Opens the pool and applies missing migrations.
    pub async fn connect(url: &str, max_connections: usize) -> StoreResult<PostgresStore> {
        let store = PostgresStore::open(url, max_connections)?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet recorded, in one transaction under the advisory lock;
    /// returns the names of those it applied (empty when the schema is current).
    pub async fn migrate(&self) -> StoreResult<Vec<String>> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS ferrolite_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(backend)?;
        let done: Vec<i32> = tx
            .query("SELECT version FROM ferrolite_migrations", &[])
            .await
            .map_err(backend)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut applied = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            if done.contains(version) {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(|e| backend(format!("migration {version} ({name}): {e}")))?;
            tx.execute(
                "INSERT INTO ferrolite_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .map_err(backend)?;
            applied.push(format!("{version} {name}"));
        }
        tx.commit().await.map_err(backend)?;
        Ok(applied)
    }

    async fn callbacks_where(
        &self,
        tail: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<OutgoingCallback>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                &format!("SELECT {CALLBACK_COLUMNS} FROM callbacks {tail}"),
                params,
            )
            .await
            .map_err(backend)?;
        rows.iter().map(callback_of_row).collect()
    }
}

fn callback_of_row(r: &tokio_postgres::Row) -> StoreResult<OutgoingCallback> {
    let variants: Vec<CallbackVariant> =
        serde_json::from_str(r.get::<_, &str>(4)).map_err(backend)?;
    let status: &str = r.get(8);
    Ok(OutgoingCallback {
        id: r.get(0),
        kind: r.get(1),
        method: r.get(2),
        url: r.get(3),
        variants,
        attempts: r.get::<_, i32>(5).max(0) as u32,
        next_attempt_at: r.get(6),
        created_at: r.get(7),
        status: CallbackStatus::parse(status)
            .ok_or_else(|| backend(format!("unknown callback status {status:?}")))?,
        last_error: r.get(9),
    })
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn enqueue_callback(&self, cb: &OutgoingCallback) -> StoreResult<bool> {
        let variants = serde_json::to_string(&cb.variants).map_err(backend)?;
        let client = self.pool.get().await.map_err(pool_error)?;
        let n = client
            .execute(
                &format!(
                    "INSERT INTO callbacks ({CALLBACK_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING"
                ),
                &[
                    &cb.id,
                    &cb.kind,
                    &cb.method,
                    &cb.url,
                    &variants,
                    &(cb.attempts.min(i32::MAX as u32) as i32),
                    &cb.next_attempt_at,
                    &cb.created_at,
                    &cb.status.as_str(),
                    &cb.last_error,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn due_callbacks(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<OutgoingCallback>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.callbacks_where(
            "WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
            &[&now_ms, &limit],
        )
        .await
    }

    async fn update_callback(
        &self,
        id: &str,
        status: CallbackStatus,
        attempts: u32,
        next_attempt_at: i64,
        last_error: &str,
    ) -> StoreResult<()> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "UPDATE callbacks SET status = $2, attempts = $3, next_attempt_at = $4, last_error = $5 WHERE id = $1",
                &[
                    &id,
                    &status.as_str(),
                    &(attempts.min(i32::MAX as u32) as i32),
                    &next_attempt_at,
                    &last_error,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn callbacks(&self) -> StoreResult<Vec<OutgoingCallback>> {
        self.callbacks_where("ORDER BY created_at, id", &[]).await
    }

    async fn claim_callbacks(
        &self,
        now_ms: i64,
        limit: usize,
        claimer: &str,
        claim_until: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<OutgoingCallback>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(backend)?;
        check_fence(&tx, fence).await?;
        // SKIP LOCKED: two nodes claiming at once take different rows, neither waits.
        let rows = tx
            .query(
                "UPDATE callbacks SET claimed_until = $3, claimed_by = $4
                 WHERE id IN (SELECT id FROM callbacks
                     WHERE status = 'pending' AND next_attempt_at <= $1
                       AND (claimed_until IS NULL OR claimed_until < $1)
                     ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING id",
                &[&now_ms, &limit, &claim_until, &claimer],
            )
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        drop(client);
        let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.callbacks_where(
            "WHERE id = ANY($1) AND claimed_by = $2 ORDER BY next_attempt_at, id",
            &[&ids, &claimer],
        )
        .await
    }

    async fn finish_callback(
        &self,
        claimer: &str,
        id: &str,
        status: CallbackStatus,
        attempts: u32,
        next_attempt_at: i64,
        last_error: &str,
        fence: Option<&Fence>,
    ) -> StoreResult<bool> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(backend)?;
        check_fence(&tx, fence).await?;
        let n = tx
            .execute(
                "UPDATE callbacks SET status = $3, attempts = $4, next_attempt_at = $5, last_error = $6,
                     claimed_until = NULL, claimed_by = NULL
                 WHERE id = $1 AND claimed_by = $2",
                &[
                    &id,
                    &claimer,
                    &status.as_str(),
                    &(attempts.min(i32::MAX as u32) as i32),
                    &next_attempt_at,
                    &last_error,
                ],
            )
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(n > 0)
    }

    async fn prune_callbacks(&self, before_ms: i64) -> StoreResult<usize> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let n = client
            .execute(
                "DELETE FROM callbacks WHERE status <> 'pending' AND created_at < $1",
                &[&before_ms],
            )
            .await
            .map_err(backend)?;
        Ok(n as usize)
    }
}
