//! The embedded store: one SQLite file (WAL mode), shared safely by `serve` and the CLI.
//!
//! Every call runs on the store's own threads (`sqlite_threads.rs`), or on tokio's blocking
//! pool for whole-table calls, never on an async worker, so a slow disk stalls no request;
//! writers wait up to five seconds for the file lock
//! (`busy_timeout`). Times the store compares (leases, token expiry) come from SQLite's own
//! clock ([`NOW_MS`]). The schema is migrated forward on open, tracked by
//! `PRAGMA user_version`, inside one transaction.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use async_trait::async_trait;
use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use super::sqlite_schema::MIGRATIONS;
use super::sqlite_threads::{queued_at, Lane, READERS};
use super::*;

#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool<SqliteConnectionManager>,
    /// Serializes this process's writers. SQLite allows one writer at a time and its busy
    /// handler waits by sleeping in steps of milliseconds, so in-process writers queue here
    /// instead (microseconds); the busy timeout then only covers other processes (the CLI,
    /// a second `serve`). Taken on the store's threads, never on an async worker.
    write_lock: Arc<Mutex<()>>,
    /// The threads that run point calls: [`SqliteStore::read`] and [`SqliteStore::write`].
    readers: Lane,
    writes: Lane,
}

/// A connection that may write: holds the in-process write lock while it lives.
pub(super) struct Writer<'a> {
    conn: r2d2::PooledConnection<SqliteConnectionManager>,
    _guard: MutexGuard<'a, ()>,
}

impl std::ops::Deref for Writer<'_> {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut rusqlite::Connection {
        &mut self.conn
    }
}

/// SQLite's clock as Unix ms, for SQL that compares store times (stable within a statement).
pub(super) const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// Runs `f` with `PRAGMA synchronous=FULL`: in WAL mode its commits are fsynced before they
/// return (with the default NORMAL a power loss can undo the last commits). Restores NORMAL
/// on the way out, error or not, so other traffic keeps its speed.
pub(super) fn durable<T>(
    conn: &mut rusqlite::Connection,
    f: impl FnOnce(&mut rusqlite::Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("PRAGMA synchronous=FULL")
        .map_err(backend)?;
    let result = f(conn);
    let restored = conn.execute_batch("PRAGMA synchronous=NORMAL");
    let value = result?;
    restored.map_err(backend)?;
    Ok(value)
}

/// The name of the reader threads (`sqlite-read-N`, as `top -H` shows them).
const READER_THREADS: &str = "sqlite-read";

/// How long a write waits for the database file's lock, in all.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const LOCKED: &str =
    "the database is locked by another process (a long CLI command or backup?); try again shortly";

pub(super) fn backend<E: std::fmt::Display + 'static>(e: E) -> StoreError {
    let any = &e as &dyn std::any::Any;
    if let Some(rusqlite::Error::SqliteFailure(f, _)) = any.downcast_ref::<rusqlite::Error>() {
        if matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        ) {
            return StoreError::Backend(LOCKED.into());
        }
    }
    StoreError::Backend(e.to_string())
}

const SERVER_COLUMNS: &str =
    "id, url, secret, tag, state, online, load, load_multiplier, meetings, users, \
     largest_meeting, videos, bbb_version, healthy_counter, unhealthy_counter";

fn server_from_row(r: &Row<'_>) -> rusqlite::Result<Server> {
    server_from_row_at(r, 0)
}

/// Reads the [`SERVER_COLUMNS`] starting at column `at`.
fn server_from_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Server> {
    let state: String = r.get(at + 4)?;
    Ok(Server {
        id: r.get(at)?,
        url: r.get(at + 1)?,
        secret: r.get(at + 2)?,
        tag: r.get(at + 3)?,
        state: ServerState::parse(&state).unwrap_or(ServerState::Disabled),
        online: r.get(at + 5)?,
        load: r.get(at + 6)?,
        load_multiplier: r.get(at + 7)?,
        stats: ServerStats {
            meetings: r.get(at + 8)?,
            users: r.get(at + 9)?,
            largest_meeting: r.get(at + 10)?,
            videos: r.get(at + 11)?,
        },
        bbb_version: r.get(at + 12)?,
        healthy_counter: r.get(at + 13)?,
        unhealthy_counter: r.get(at + 14)?,
    })
}

const MEETING_COLUMNS: &str =
    "tenant_id, meeting_id, server_id, moderator_pw, voice_bridge, created_at, bbb_id";

fn meeting_from_row(r: &Row<'_>) -> rusqlite::Result<Meeting> {
    meeting_from_row_with(r, 6)
}

/// A meeting from the columns of [`MEETING_COLUMNS`] but `bbb_id`, which is column `bbb_at`.
pub(super) fn meeting_from_row_with(r: &Row<'_>, bbb_at: usize) -> rusqlite::Result<Meeting> {
    let tenant_id: String = r.get(0)?;
    let meeting_id: String = r.get(1)?;
    let stored: Option<String> = r.get(bbb_at)?;
    Ok(Meeting {
        bbb_id: super::bbb_id_or_scoped(stored.as_deref(), &tenant_id, &meeting_id),
        tenant_id,
        meeting_id,
        server_id: r.get(2)?,
        moderator_pw: r.get(3)?,
        voice_bridge: r.get(4)?,
        created_at: r.get(5)?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        // Set the file up once, on one connection, before the pool opens its connections
        // (all switching the journal mode at once made some fail with "database is
        // locked"): WAL mode is stored in the file, so pooled connections need not set it.
        {
            let mut c = rusqlite::Connection::open(path)
                .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
            c.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
            c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;")
                .map_err(|e| {
                    StoreError::Backend(format!("cannot set up {}: {e}", path.display()))
                })?;
            Self::migrate(&mut c)?;
        }
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            c.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
        });
        let pool = Pool::builder()
            .max_size(8)
            // A local file does not go stale like a network connection: no test query
            // before every call.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let threads = |e| StoreError::Backend(format!("cannot start the store's threads: {e}"));
        Ok(SqliteStore {
            pool,
            write_lock: Arc::new(Mutex::new(())),
            readers: Lane::start(READER_THREADS, READERS).map_err(threads)?,
            writes: Lane::start("sqlite-write", 1).map_err(threads)?,
        })
    }

    pub(super) fn conn(&self) -> StoreResult<r2d2::PooledConnection<SqliteConnectionManager>> {
        self.pool.get().map_err(backend)
    }

    /// Every row of a fixed (cached) query, read with `row`.
    pub(super) fn query_all<T, P: rusqlite::Params>(
        conn: &rusqlite::Connection,
        sql: &str,
        params: P,
        row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
        let rows = stmt.query_map(params, row).map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    /// A connection that may write. Blocks: call it only inside [`SqliteStore::write`] (or
    /// [`SqliteStore::bulk`]). A write waits at most [`BUSY_TIMEOUT`] in all, from when it
    /// was queued — for this process's other writers and then for another process's lock —
    /// and then fails with a clear error, instead of every queued writer waiting a full busy
    /// timeout in turn.
    pub(super) fn writer(&self) -> StoreResult<Writer<'_>> {
        debug_assert!(
            !std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with(READER_THREADS)),
            "a write on a reader thread would hold up reads: run it with SqliteStore::write"
        );
        let deadline = queued_at().unwrap_or_else(std::time::Instant::now) + BUSY_TIMEOUT;
        let guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(StoreError::Backend(LOCKED.into()));
        }
        let conn = self.conn()?;
        conn.busy_timeout(left.max(Duration::from_millis(10)))
            .map_err(backend)?;
        Ok(Writer {
            conn,
            _guard: guard,
        })
    }

    /// Runs `f`, the body of one store call that reads a few rows, on a reader thread.
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteStore) -> StoreResult<T> + Send + 'static,
    {
        Self::on(&self.readers, self.clone(), f).await
    }

    /// Runs `f`, the body of one store call that writes (and takes [`SqliteStore::writer`]),
    /// on the writer thread.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteStore) -> StoreResult<T> + Send + 'static,
    {
        Self::on(&self.writes, self.clone(), f).await
    }

    async fn on<T, F>(lane: &Lane, this: SqliteStore, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteStore) -> StoreResult<T> + Send + 'static,
    {
        lane.run(move || f(&this))
            .await
            .map_err(|_| StoreError::Backend("a store call failed unexpectedly".into()))?
    }

    /// Runs `f` (the body of one store call that scans or rewrites many rows) on tokio's
    /// blocking pool, so it never holds up the point calls queued for the store's threads.
    pub(super) async fn bulk<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteStore) -> StoreResult<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(backend)?
    }

    fn migrate(conn: &mut rusqlite::Connection) -> StoreResult<()> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)")
            .map_err(backend)?;
        let applied: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT name FROM schema_migrations")
                .map_err(backend)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)?
        };
        if let Some(unknown) = applied
            .iter()
            .find(|a| !MIGRATIONS.iter().any(|(n, _)| n == a))
        {
            return Err(StoreError::Backend(format!(
                "the database was migrated by a newer ferrolite (step {unknown}); upgrade ferrolite before using this database"
            )));
        }
        for (name, sql) in MIGRATIONS
            .iter()
            .filter(|(n, _)| !applied.iter().any(|a| a == n))
        {
            tx.execute_batch(sql).map_err(backend)?;
            tx.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
                params![name, now_ms()],
            )
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }

    fn server_sync(conn: &rusqlite::Connection, id: &str) -> StoreResult<Option<Server>> {
        conn.prepare_cached(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers WHERE id = ?1"
        ))
        .and_then(|mut s| s.query_row([id], server_from_row).optional())
        .map_err(backend)
    }

    fn servers_sync(conn: &rusqlite::Connection) -> StoreResult<Vec<Server>> {
        let sql = format!("SELECT {SERVER_COLUMNS} FROM servers ORDER BY id");
        Self::query_all(conn, &sql, [], server_from_row)
    }

    fn meeting_sync(
        conn: &rusqlite::Connection,
        tenant_id: &str,
        meeting_id: &str,
    ) -> StoreResult<Option<Meeting>> {
        conn.prepare_cached(&format!(
            "SELECT {MEETING_COLUMNS} FROM meetings WHERE tenant_id = ?1 AND meeting_id = ?2"
        ))
        .and_then(|mut s| {
            s.query_row([tenant_id, meeting_id], meeting_from_row)
                .optional()
        })
        .map_err(backend)
    }

    fn tenant_meeting_count(conn: &rusqlite::Connection, tenant_id: &str) -> StoreResult<u32> {
        conn.prepare_cached("SELECT COUNT(*) FROM meetings WHERE tenant_id = ?1")
            .and_then(|mut st| st.query_row([tenant_id], |r| r.get(0)))
            .map_err(backend)
    }

    fn meetings_where(
        &self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> StoreResult<Vec<Meeting>> {
        let sql = format!(
            "SELECT {MEETING_COLUMNS} FROM meetings {clause} ORDER BY tenant_id, meeting_id"
        );
        Self::query_all(&*self.conn()?, &sql, args, meeting_from_row)
    }
}

impl SqliteStore {
    fn callbacks_where(
        &self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> StoreResult<Vec<OutgoingCallback>> {
        let sql = format!(
            "SELECT id, kind, method, url, variants, attempts, next_attempt_at, created_at, status, last_error FROM callbacks {clause}"
        );
        Self::query_all(&*self.conn()?, &sql, args, |r| {
            let variants: String = r.get(4)?;
            Ok(OutgoingCallback {
                id: r.get(0)?,
                kind: r.get(1)?,
                method: r.get(2)?,
                url: r.get(3)?,
                variants: serde_json::from_str(&variants).unwrap_or_default(),
                attempts: r.get(5)?,
                next_attempt_at: r.get(6)?,
                created_at: r.get(7)?,
                status: CallbackStatus::parse(&r.get::<_, String>(8)?)
                    .unwrap_or(CallbackStatus::Failed),
                last_error: r.get(9)?,
            })
        })
    }
}

const TENANT_COLUMNS: &str = "id, name, secrets, max_meetings, max_participants";

fn tenant_from_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    let secrets: String = r.get(2)?;
    Ok(Tenant {
        id: r.get(0)?,
        name: r.get(1)?,
        secrets: crate::tenant::parse_secrets(&secrets),
        max_meetings: r.get(3)?,
        max_participants: r.get(4)?,
    })
}

fn setting_from_row(r: &Row<'_>) -> rusqlite::Result<TenantSetting> {
    Ok(TenantSetting {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        param: r.get(2)?,
        value: r.get(3)?,
        is_override: r.get(4)?,
    })
}

/// A unique-constraint violation (a taken tenant name).
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl SqliteStore {
    fn tenant_where(&self, clause: &str, arg: &str) -> StoreResult<Option<Tenant>> {
        let conn = self.conn()?;
        conn.prepare_cached(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE {clause}"
        ))
        .and_then(|mut s| s.query_row([arg], tenant_from_row).optional())
        .map_err(backend)
    }
}

impl SqliteStore {
    /// [`PoolStore::meeting`] on `conn`: one query for the hottest path (join), the meeting
    /// and its server together.
    fn meeting_with_server_sync(
        conn: &rusqlite::Connection,
        tenant_id: &str,
        meeting_id: &str,
    ) -> StoreResult<Option<(Meeting, Option<Server>)>> {
        // Built once: this is the join's query.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let prefixed = |cols: &str, t: &str| {
                cols.split(", ")
                    .map(|c| format!("{t}.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "SELECT {}, s.id IS NOT NULL, {} FROM meetings m LEFT JOIN servers s ON s.id = m.server_id \
                 WHERE m.tenant_id = ?1 AND m.meeting_id = ?2",
                prefixed(MEETING_COLUMNS, "m"),
                prefixed(SERVER_COLUMNS, "s")
            )
        });
        let mut stmt = conn.prepare_cached(&SQL).map_err(backend)?;
        stmt.query_row([tenant_id, meeting_id], |r| {
            let m = meeting_from_row(r)?;
            let has_server: bool = r.get(7)?;
            let server = if has_server {
                Some(server_from_row_at(r, 8)?)
            } else {
                None
            };
            Ok((m, server))
        })
        .optional()
        .map_err(backend)
    }

    /// [`PoolStore::admit_participant`], blocking.
    fn admit_sync(&self, tenant_id: &str, meeting_id: &str, limit: u32) -> StoreResult<bool> {
        let n = self
            .writer()?
            .prepare_cached(
                "UPDATE meetings SET participants = participants + 1
                 WHERE tenant_id = ?1 AND meeting_id = ?2
                   AND (SELECT COALESCE(SUM(participants), 0) FROM meetings WHERE tenant_id = ?1) < ?3",
            )
            .and_then(|mut st| st.execute(params![tenant_id, meeting_id, limit]))
            .map_err(backend)?;
        Ok(n > 0)
    }
}

/// Placement on SQLite: the generic snapshot-decide-commit round (`placement`) taken in one
/// go, inside one `IMMEDIATE` transaction under the writer lock. Nothing can change between
/// the snapshot and the commit, so no conflict and no retry is possible, and concurrent
/// creates queue on the lock (microseconds) instead of colliding.
impl SqliteStore {
    /// [`PoolStore::place_meeting`], blocking: call it off the async workers.
    fn place_sync(&self, req: &PlaceRequest<'_>) -> StoreResult<PlaceOutcome> {
        let mut conn = self.writer()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let snap = Self::snapshot_sync(
            &tx,
            req.tenant_id,
            req.meeting_id,
            req.max_tenant_meetings.is_some(),
            req.voice_bridges,
            req.only_server,
        )?;
        let commit = match placement::decide(req, &snap) {
            placement::Decision::Answer(a) => return Ok(a),
            placement::Decision::Commit(c) => c,
        };
        match Self::commit_sync(&tx, &commit)? {
            CommitOutcome::Placed(server) => {
                tx.commit().map_err(backend)?;
                Ok(PlaceOutcome::Placed(commit.meeting, server))
            }
            CommitOutcome::Existing(m) => Ok(PlaceOutcome::Existing(m)),
            CommitOutcome::Conflict(c) => Err(StoreError::Busy(format!(
                "placing meeting '{}': {c:?} changed inside its own transaction",
                req.meeting_id
            ))),
        }
    }

    /// Placement's read ([`PoolStore::placement_snapshot`]) inside the caller's transaction.
    fn snapshot_sync(
        tx: &rusqlite::Transaction<'_>,
        tenant_id: &str,
        meeting_id: &str,
        count_tenant: bool,
        voice_bridges: &[String],
        only_server: Option<&str>,
    ) -> StoreResult<PlacementSnapshot> {
        let existing = Self::meeting_sync(tx, tenant_id, meeting_id)?;
        if existing.is_some() {
            return Ok(PlacementSnapshot {
                existing,
                ..Default::default()
            });
        }
        let tenant_meetings = if count_tenant {
            Self::tenant_meeting_count(tx, tenant_id)?
        } else {
            0
        };
        let servers = match only_server {
            Some(id) => Self::server_sync(tx, id)?.into_iter().collect(),
            None => Self::servers_sync(tx)?,
        };
        let mut free_voice_bridges = Vec::new();
        {
            let mut taken = tx
                .prepare_cached("SELECT 1 FROM meetings WHERE voice_bridge = ?1")
                .map_err(backend)?;
            for vb in voice_bridges {
                if !taken.exists([vb]).map_err(backend)? {
                    free_voice_bridges.push(vb.clone());
                }
            }
        }
        Ok(PlacementSnapshot {
            existing,
            servers,
            tenant_meetings,
            free_voice_bridges,
        })
    }

    /// Placement's checked write ([`PoolStore::commit_placement`]) inside the caller's
    /// `IMMEDIATE` transaction; the caller commits it on [`CommitOutcome::Placed`].
    fn commit_sync(
        tx: &rusqlite::Transaction<'_>,
        commit: &PlacementCommit,
    ) -> StoreResult<CommitOutcome> {
        use placement::{Conflict, ServerGuard};
        let m = &commit.meeting;
        if let Some(existing) = Self::meeting_sync(tx, &m.tenant_id, &m.meeting_id)? {
            return Ok(CommitOutcome::Existing(existing));
        }
        match Self::server_sync(tx, &m.server_id)? {
            Some(s) if ServerGuard::of(&s) == commit.guard => {}
            _ => return Ok(CommitOutcome::Conflict(Conflict::Server)),
        }
        if let Some(limit) = commit.max_tenant_meetings {
            if Self::tenant_meeting_count(tx, &m.tenant_id)? >= limit {
                return Ok(CommitOutcome::Conflict(Conflict::TenantLimit));
            }
        }
        let inserted = tx
            .prepare_cached(&format!(
                "INSERT INTO meetings ({MEETING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))
            .and_then(|mut st| {
                st.execute(params![
                    m.tenant_id,
                    m.meeting_id,
                    m.server_id,
                    m.moderator_pw,
                    m.voice_bridge,
                    m.created_at,
                    m.bbb_id
                ])
            });
        match inserted {
            Ok(_) => {}
            // The meeting key was checked above: the voice bridge is taken.
            Err(e) if is_unique_violation(&e) => {
                return Ok(CommitOutcome::Conflict(Conflict::VoiceBridge))
            }
            Err(e) => return Err(backend(e)),
        }
        if commit.guard.load.is_some() {
            tx.prepare_cached("UPDATE servers SET load = load + load_multiplier WHERE id = ?1")
                .and_then(|mut st| st.execute([&m.server_id]))
                .map_err(backend)?;
        }
        let server = Self::server_sync(tx, &m.server_id)?
            .ok_or_else(|| backend("the server vanished inside its own transaction"))?;
        Ok(CommitOutcome::Placed(server))
    }
}

#[async_trait]
impl PoolStore for SqliteStore {
    async fn place_meeting(&self, req: &PlaceRequest<'_>) -> StoreResult<PlaceOutcome> {
        // One step on the store's threads: the snapshot, the choice and the commit.
        let owned = (
            req.tenant_id.to_owned(),
            req.meeting_id.to_owned(),
            req.moderator_pw.to_owned(),
            req.voice_bridges.to_vec(),
            req.bbb_id.map(str::to_owned),
            req.only_server.map(str::to_owned),
        );
        let (choose, now_ms, max_tenant_meetings) =
            (req.choose.clone(), req.now_ms, req.max_tenant_meetings);
        self.write(move |this| {
            let (tenant_id, meeting_id, moderator_pw, voice_bridges, bbb_id, only_server) = &owned;
            this.place_sync(&PlaceRequest {
                tenant_id,
                meeting_id,
                moderator_pw,
                voice_bridges,
                choose,
                now_ms,
                max_tenant_meetings,
                bbb_id: bbb_id.as_deref(),
                only_server: only_server.as_deref(),
            })
        })
        .await
    }

    async fn add_server(&self, s: &Server) -> StoreResult<()> {
        let s = s.clone();
        self.write(move |this| {
            let s = &s;
            let conn = this.writer()?;
            let n = conn
                .execute(
                    "INSERT INTO servers (id, url, secret, tag, state, online, load, load_multiplier)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO NOTHING",
                    params![
                        s.id,
                        s.url,
                        s.secret,
                        s.tag,
                        s.state.as_str(),
                        s.online,
                        s.load,
                        s.load_multiplier
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(format!(
                    "a server with id '{}'",
                    s.id
                )));
            }
            Ok(())
        })
        .await
    }

    async fn server(&self, id: &str) -> StoreResult<Option<Server>> {
        let id = id.to_owned();
        self.read(move |this| {
            let id = id.as_str();
            Self::server_sync(&*this.conn()?, id)
        })
        .await
    }

    async fn servers(&self) -> StoreResult<Vec<Server>> {
        self.read(move |this| Self::servers_sync(&*this.conn()?))
            .await
    }

    async fn update_server(&self, id: &str, p: &ServerPatch) -> StoreResult<Option<Server>> {
        let id = id.to_owned();
        let p = p.clone();
        self.write(move |this| {
            let id = id.as_str();
            let p = &p;
            let mut conn = this.writer()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let Some(mut s) = Self::server_sync(&tx, id)? else {
                return Ok(None);
            };
            if let Some(url) = &p.url {
                s.url = url.clone();
            }
            if let Some(secret) = &p.secret {
                s.secret = secret.clone();
            }
            if let Some(m) = p.load_multiplier {
                s.load_multiplier = m;
            }
            if let Some(tag) = &p.tag {
                s.tag = tag.clone();
            }
            if let Some(state) = p.state {
                s.state = state;
                if state == ServerState::Disabled {
                    s.load = None;
                }
            }
            tx.execute(
                "UPDATE servers SET secret = ?2, load_multiplier = ?3, tag = ?4, state = ?5, load = ?6, url = ?7 WHERE id = ?1",
                params![id, s.secret, s.load_multiplier, s.tag, s.state.as_str(), s.load, s.url],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Some(s))
        })
        .await
    }

    async fn remove_server(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |this| {
            let id = id.as_str();
            let mut conn = this.writer()?;
            let tx = conn.transaction().map_err(backend)?;
            tx.execute("DELETE FROM meetings WHERE server_id = ?1", [id])
                .map_err(backend)?;
            let n = tx
                .execute("DELETE FROM servers WHERE id = ?1", [id])
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn add_load(&self, deltas: &[(String, f64)]) -> StoreResult<()> {
        let deltas = deltas.to_vec();
        self.write(move |this| {
            let deltas = deltas.as_slice();
            let mut conn = this.writer()?;
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached("UPDATE servers SET load = load + ?2 WHERE id = ?1 AND load IS NOT NULL AND state = 'enabled'")
                    .map_err(backend)?;
                for (id, d) in deltas {
                    stmt.execute(params![id, d]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn save_poll_fenced(
        &self,
        id: &str,
        u: &PollUpdate,
        fence: Option<&Fence>,
    ) -> StoreResult<()> {
        let id = id.to_owned();
        let u = u.clone();
        let fence = fence.cloned();
        self.write(move |this| {
            let id = id.as_str();
            let u = &u;
            let mut conn = this.writer()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            super::sqlite_fence::check(&tx, fence.as_ref())?;
            tx.execute(
                "UPDATE servers SET online = ?2, load = CASE WHEN state = 'disabled' THEN NULL ELSE ?3 END,
                     meetings = ?4, users = ?5, largest_meeting = ?6, videos = ?7,
                     bbb_version = COALESCE(?8, bbb_version), healthy_counter = ?9, unhealthy_counter = ?10,
                     state = COALESCE(?11, state)
                 WHERE id = ?1",
                params![
                    id,
                    u.online,
                    u.load,
                    u.stats.meetings,
                    u.stats.users,
                    u.stats.largest_meeting,
                    u.stats.videos,
                    u.bbb_version,
                    u.healthy_counter,
                    u.unhealthy_counter,
                    u.state.map(ServerState::as_str),
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn meeting(
        &self,
        tenant_id: &str,
        meeting_id: &str,
    ) -> StoreResult<Option<(Meeting, Option<Server>)>> {
        let tenant_id = tenant_id.to_owned();
        let meeting_id = meeting_id.to_owned();
        self.read(move |this| {
            let tenant_id = tenant_id.as_str();
            let meeting_id = meeting_id.as_str();
            Self::meeting_with_server_sync(&*this.conn()?, tenant_id, meeting_id)
        })
        .await
    }

    async fn join_meeting(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        limit: Option<u32>,
    ) -> StoreResult<Option<JoinLookup>> {
        let (tenant_id, meeting_id) = (tenant_id.to_owned(), meeting_id.to_owned());
        // One store step: the lookup, then (with a limit) the admission, which writes.
        let step = move |this: &SqliteStore| {
            let Some((meeting, server)) =
                Self::meeting_with_server_sync(&*this.conn()?, &tenant_id, &meeting_id)?
            else {
                return Ok(None);
            };
            let admitted = match (limit, &server) {
                (Some(limit), Some(s)) if s.takes_joins() => {
                    Some(this.admit_sync(&tenant_id, &meeting_id, limit)?)
                }
                _ => None,
            };
            Ok(Some(JoinLookup {
                meeting,
                server,
                admitted,
            }))
        };
        match limit {
            Some(_) => self.write(step).await,
            None => self.read(step).await,
        }
    }

    async fn placement_snapshot(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        count_tenant: bool,
        voice_bridges: &[String],
    ) -> StoreResult<PlacementSnapshot> {
        let tenant_id = tenant_id.to_owned();
        let meeting_id = meeting_id.to_owned();
        let voice_bridges = voice_bridges.to_vec();
        self.read(move |this| {
            let mut conn = this.conn()?;
            // One read transaction: a consistent snapshot (WAL), and no write lock taken.
            let tx = conn.transaction().map_err(backend)?;
            Self::snapshot_sync(
                &tx,
                &tenant_id,
                &meeting_id,
                count_tenant,
                &voice_bridges,
                None,
            )
        })
        .await
    }

    async fn commit_placement(&self, commit: &PlacementCommit) -> StoreResult<CommitOutcome> {
        let commit = commit.clone();
        self.write(move |this| {
            let mut conn = this.writer()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let out = Self::commit_sync(&tx, &commit)?;
            if matches!(out, CommitOutcome::Placed(_)) {
                tx.commit().map_err(backend)?;
            }
            Ok(out)
        })
        .await
    }

    async fn delete_meeting(
        &self,
        tenant_id: &str,
        meeting_id: &str,
    ) -> StoreResult<Option<Meeting>> {
        let tenant_id = tenant_id.to_owned();
        let meeting_id = meeting_id.to_owned();
        self.write(move |this| {
            let tenant_id = tenant_id.as_str();
            let meeting_id = meeting_id.as_str();
            let conn = this.writer()?;
            conn.prepare_cached(&format!(
                "DELETE FROM meetings WHERE tenant_id = ?1 AND meeting_id = ?2 RETURNING {MEETING_COLUMNS}"
            ))
            .and_then(|mut s| s.query_row([tenant_id, meeting_id], meeting_from_row).optional())
            .map_err(backend)
        })
        .await
    }

    async fn delete_meeting_on(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        server_id: &str,
    ) -> StoreResult<bool> {
        let tenant_id = tenant_id.to_owned();
        let meeting_id = meeting_id.to_owned();
        let server_id = server_id.to_owned();
        self.write(move |this| {
            let tenant_id = tenant_id.as_str();
            let meeting_id = meeting_id.as_str();
            let server_id = server_id.as_str();
            let conn = this.writer()?;
            let n = conn
                .execute(
                    "DELETE FROM meetings WHERE tenant_id = ?1 AND meeting_id = ?2 AND server_id = ?3",
                    [tenant_id, meeting_id, server_id],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn meetings(&self) -> StoreResult<Vec<Meeting>> {
        self.bulk(move |this| this.meetings_where("", &[])).await
    }

    async fn meetings_on(&self, server_id: &str) -> StoreResult<Vec<Meeting>> {
        let server_id = server_id.to_owned();
        self.bulk(move |this| {
            let server_id = server_id.as_str();
            this.meetings_where("WHERE server_id = ?1", &[&server_id])
        })
        .await
    }

    async fn forget_meetings_except_fenced(
        &self,
        server_id: &str,
        keep: &[String],
        created_before_ms: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<Meeting>> {
        // In bounded batches, off the write path (`sqlite_reconcile`).
        self.reconcile_forget(server_id, keep, created_before_ms, fence)
            .await
    }

    async fn meeting_by_voice_bridge(&self, voice_bridge: &str) -> StoreResult<Option<Meeting>> {
        let voice_bridge = voice_bridge.to_owned();
        self.read(move |this| {
            let voice_bridge = voice_bridge.as_str();
            Ok(this
                .meetings_where("WHERE voice_bridge = ?1", &[&voice_bridge])?
                .into_iter()
                .next())
        })
        .await
    }

    async fn add_tenant(&self, t: &Tenant) -> StoreResult<()> {
        let t = t.clone();
        self.write(move |this| {
            let t = &t;
            let conn = this.writer()?;
            conn.execute(
                &format!("INSERT INTO tenants ({TENANT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![
                    t.id,
                    t.name,
                    t.secrets.join(":"),
                    t.max_meetings,
                    t.max_participants
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::AlreadyExists(format!("a tenant named '{}'", t.name))
                } else {
                    backend(e)
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let id = id.to_owned();
        self.read(move |this| {
            let id = id.as_str();
            this.tenant_where("id = ?1", id)
        })
        .await
    }

    async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
        let name = name.to_owned();
        self.read(move |this| {
            let name = name.as_str();
            this.tenant_where("name = ?1", name)
        })
        .await
    }

    async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.read(move |this| {
            let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name");
            Self::query_all(&*this.conn()?, &sql, [], tenant_from_row)
        })
        .await
    }

    async fn update_tenant(&self, id: &str, p: &TenantPatch) -> StoreResult<Option<Tenant>> {
        let id = id.to_owned();
        let p = p.clone();
        self.write(move |this| {
            let id = id.as_str();
            let p = &p;
            let mut conn = this.writer()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let Some(mut t) = tx
                .prepare_cached(&format!(
                    "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"
                ))
                .and_then(|mut s| s.query_row([id], tenant_from_row).optional())
                .map_err(backend)?
            else {
                return Ok(None);
            };
            if let Some(n) = &p.name {
                t.name = n.clone();
            }
            if let Some(s) = &p.secrets {
                t.secrets = s.clone();
            }
            if let Some(m) = p.max_meetings {
                t.max_meetings = m;
            }
            if let Some(m) = p.max_participants {
                t.max_participants = m;
            }
            tx.execute(
                "UPDATE tenants SET name = ?2, secrets = ?3, max_meetings = ?4, max_participants = ?5 WHERE id = ?1",
                params![id, t.name, t.secrets.join(":"), t.max_meetings, t.max_participants],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::AlreadyExists(format!("a tenant named '{}'", t.name))
                } else {
                    backend(e)
                }
            })?;
            tx.commit().map_err(backend)?;
            Ok(Some(t))
        })
        .await
    }

    async fn set_tenant_lrs(&self, tenant_id: &str, lrs: Option<&TenantLrs>) -> StoreResult<bool> {
        let tenant_id = tenant_id.to_owned();
        let lrs = lrs.cloned();
        self.write(move |this| {
            let tenant_id = tenant_id.as_str();
            let lrs = lrs.as_ref();
            let mut conn = this.writer()?;
            let tx = conn.transaction().map_err(backend)?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM tenants WHERE id = ?1")
                .and_then(|mut st| st.exists([tenant_id]))
                .map_err(backend)?;
            if !exists {
                return Ok(false);
            }
            tx.execute("DELETE FROM tenant_lrs WHERE tenant_id = ?1", [tenant_id])
                .map_err(backend)?;
            if let Some(l) = lrs {
                tx.execute(
                    "INSERT INTO tenant_lrs (tenant_id, endpoint, username, password, kc_token_url, kc_client_id, kc_client_secret, kc_username, kc_password)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![tenant_id, l.endpoint, l.username, l.password, l.kc_token_url, l.kc_client_id, l.kc_client_secret, l.kc_username, l.kc_password],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn tenant_lrs(&self, tenant_id: &str) -> StoreResult<Option<TenantLrs>> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |this| {
            let tenant_id = tenant_id.as_str();
            this.conn()?
                .prepare_cached(
                    "SELECT endpoint, username, password, kc_token_url, kc_client_id, kc_client_secret, kc_username, kc_password
                     FROM tenant_lrs WHERE tenant_id = ?1",
                )
                .and_then(|mut st| {
                    st.query_row([tenant_id], |r| {
                        Ok(TenantLrs {
                            endpoint: r.get(0)?,
                            username: r.get(1)?,
                            password: r.get(2)?,
                            kc_token_url: r.get(3)?,
                            kc_client_id: r.get(4)?,
                            kc_client_secret: r.get(5)?,
                            kc_username: r.get(6)?,
                            kc_password: r.get(7)?,
                        })
                    })
                    .optional()
                })
                .map_err(backend)
        })
        .await
    }

    async fn remove_tenant(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |this| {
            let id = id.as_str();
            let mut conn = this.writer()?;
            let tx = conn.transaction().map_err(backend)?;
            tx.execute("DELETE FROM tenant_settings WHERE tenant_id = ?1", [id])
                .map_err(backend)?;
            tx.execute("DELETE FROM tenant_lrs WHERE tenant_id = ?1", [id])
                .map_err(backend)?;
            let n = tx
                .execute("DELETE FROM tenants WHERE id = ?1", [id])
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn add_tenant_setting(&self, s: &TenantSetting) -> StoreResult<()> {
        let s = s.clone();
        self.write(move |this| {
            let s = &s;
            this.writer()?
                .execute(
                    "INSERT INTO tenant_settings (id, tenant_id, param, value, is_override) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![s.id, s.tenant_id, s.param, s.value, s.is_override],
                )
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn tenant_settings(&self, tenant_id: &str) -> StoreResult<Vec<TenantSetting>> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |this| {
            let tenant_id = tenant_id.as_str();
            Self::query_all(
                &*this.conn()?,
                "SELECT id, tenant_id, param, value, is_override FROM tenant_settings WHERE tenant_id = ?1 ORDER BY rowid",
                [tenant_id],
                setting_from_row,
            )
        })
        .await
    }

    async fn remove_tenant_setting(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |this| {
            let id = id.as_str();
            let n = this
                .writer()?
                .execute("DELETE FROM tenant_settings WHERE id = ?1", [id])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn tenant_usage(&self, tenant_id: &str) -> StoreResult<(u32, u32)> {
        let tenant_id = tenant_id.to_owned();
        self.read(move |this| {
            let tenant_id = tenant_id.as_str();
            this.conn()?
                .query_row(
                    "SELECT COUNT(*), COALESCE(SUM(participants), 0) FROM meetings WHERE tenant_id = ?1",
                    [tenant_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(backend)
        })
        .await
    }

    async fn admit_participant(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        limit: u32,
    ) -> StoreResult<bool> {
        let (tenant_id, meeting_id) = (tenant_id.to_owned(), meeting_id.to_owned());
        self.write(move |this| this.admit_sync(&tenant_id, &meeting_id, limit))
            .await
    }

    async fn add_participant(&self, tenant_id: &str, meeting_id: &str) -> StoreResult<()> {
        let tenant_id = tenant_id.to_owned();
        let meeting_id = meeting_id.to_owned();
        self.write(move |this| {
            let tenant_id = tenant_id.as_str();
            let meeting_id = meeting_id.as_str();
            this.writer()?
                .execute(
                    "UPDATE meetings SET participants = participants + 1 WHERE tenant_id = ?1 AND meeting_id = ?2",
                    [tenant_id, meeting_id],
                )
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn set_participants_fenced(
        &self,
        server_id: &str,
        counts: &[(String, u32)],
        fence: Option<&Fence>,
    ) -> StoreResult<()> {
        // Only the counts that changed, in bounded batches (`sqlite_reconcile`).
        self.reconcile_participants(server_id, counts, fence).await
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn enqueue_callback(&self, cb: &OutgoingCallback) -> StoreResult<bool> {
        let cb = cb.clone();
        self.write(move |this| {
            let cb = &cb;
            let variants = serde_json::to_string(&cb.variants).map_err(backend)?;
            let n = this
                .writer()?
                .execute(
                    "INSERT INTO callbacks (id, kind, method, url, variants, attempts, next_attempt_at, created_at, status, last_error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(id) DO NOTHING",
                    params![cb.id, cb.kind, cb.method, cb.url, variants, cb.attempts, cb.next_attempt_at, cb.created_at, cb.status.as_str(), cb.last_error],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn due_callbacks(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<OutgoingCallback>> {
        self.read(move |this| {
            this.callbacks_where(
                "WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT ?2",
                &[&now_ms, &(limit as i64)],
            )
        })
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
        let id = id.to_owned();
        let last_error = last_error.to_owned();
        self.write(move |this| {
            let id = id.as_str();
            let last_error = last_error.as_str();
            this.writer()?
                .execute(
                    "UPDATE callbacks SET status = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5 WHERE id = ?1",
                    params![id, status.as_str(), attempts, next_attempt_at, last_error],
                )
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn callbacks(&self) -> StoreResult<Vec<OutgoingCallback>> {
        self.bulk(move |this| this.callbacks_where("ORDER BY created_at", &[]))
            .await
    }

    async fn claim_callbacks(
        &self,
        now_ms: i64,
        limit: usize,
        claimer: &str,
        claim_until: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<OutgoingCallback>> {
        let claimer = claimer.to_owned();
        let fence = fence.cloned();
        self.write(move |this| {
            let mut conn = this.writer()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            super::sqlite_fence::check(&tx, fence.as_ref())?;
            let ids: Vec<String> = Self::query_all(
                &tx,
                "UPDATE callbacks SET claimed_until = ?3, claimed_by = ?4
                 WHERE id IN (SELECT id FROM callbacks
                     WHERE status = 'pending' AND next_attempt_at <= ?1
                       AND (claimed_until IS NULL OR claimed_until < ?1)
                     ORDER BY next_attempt_at LIMIT ?2)
                 RETURNING id",
                params![now_ms, limit as i64, claim_until, claimer],
                |r| r.get(0),
            )?;
            tx.commit().map_err(backend)?;
            drop(conn);
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(
                    this.callbacks_where("WHERE id = ?1 AND claimed_by = ?2", &[&id, &claimer])?,
                );
            }
            out.sort_by_key(|c| c.next_attempt_at);
            Ok(out)
        })
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
        let (claimer, id, last_error) = (claimer.to_owned(), id.to_owned(), last_error.to_owned());
        let fence = fence.cloned();
        self.write(move |this| {
            let mut conn = this.writer()?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            super::sqlite_fence::check(&tx, fence.as_ref())?;
            let n = tx
                .execute(
                    "UPDATE callbacks SET status = ?3, attempts = ?4, next_attempt_at = ?5, last_error = ?6,
                         claimed_until = NULL, claimed_by = NULL
                     WHERE id = ?1 AND claimed_by = ?2",
                    params![id, claimer, status.as_str(), attempts, next_attempt_at, last_error],
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn prune_callbacks(&self, before_ms: i64) -> StoreResult<usize> {
        self.bulk(move |this| {
            this.writer()?
                .execute(
                    "DELETE FROM callbacks WHERE status <> 'pending' AND created_at < ?1",
                    [before_ms],
                )
                .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn now(&self) -> StoreResult<i64> {
        self.read(move |this| {
            this.conn()?
                .query_row(&format!("SELECT {NOW_MS}"), [], |r| r.get(0))
                .map_err(backend)
        })
        .await
    }

    async fn take_lease_epoch(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<u64>> {
        let name = name.to_owned();
        let holder = holder.to_owned();
        self.write(move |this| {
            let name = name.as_str();
            let holder = holder.as_str();
            let conn = this.writer()?;
            // The epoch stays while the holder renews; a hand-over sets it to the store's
            // now, and at least one more than before (see `store::fence`).
            let epoch: Option<i64> = conn
                .prepare_cached(&format!(
                    "INSERT INTO leases (name, holder, expires_at, epoch) VALUES (?1, ?2, {NOW_MS} + ?3, {NOW_MS})
                     ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
                         epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch
                                      ELSE MAX(leases.epoch + 1, excluded.epoch) END
                     WHERE leases.holder = excluded.holder OR leases.expires_at < {NOW_MS}
                     RETURNING epoch"
                ))
                .and_then(|mut st| st.query_row(params![name, holder, ttl_ms], |r| r.get(0)).optional())
                .map_err(backend)?;
            Ok(epoch.map(|e| e.max(1) as u64))
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        let name = name.to_owned();
        let holder = holder.to_owned();
        self.write(move |this| {
            let name = name.as_str();
            let holder = holder.as_str();
            let conn = this.writer()?;
            // The row stays, with its epoch: the next holder's epoch must be greater.
            conn.execute(
                "UPDATE leases SET holder = '', expires_at = 0 WHERE name = ?1 AND holder = ?2",
                [name, holder],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn lease_holder(&self, name: &str) -> StoreResult<Option<(String, i64)>> {
        let name = name.to_owned();
        self.read(move |this| {
            this.conn()?
                .prepare_cached(
                    "SELECT holder, expires_at FROM leases WHERE name = ?1 AND holder <> ''",
                )
                .and_then(|mut s| {
                    s.query_row([&name], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(backend)
        })
        .await
    }

    async fn replace_lease(
        &self,
        name: &str,
        previous: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<u64>> {
        let (name, previous, holder) = (name.to_owned(), previous.to_owned(), holder.to_owned());
        self.write(move |this| {
            let epoch: Option<i64> = this
                .writer()?
                .query_row(
                    &format!(
                        "UPDATE leases SET holder = ?3, expires_at = {NOW_MS} + ?4, epoch = MAX(epoch + 1, {NOW_MS})
                         WHERE name = ?1 AND holder = ?2 AND holder <> '' RETURNING epoch"
                    ),
                    params![name, previous, holder, ttl_ms],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(epoch.map(|e| e.max(1) as u64))
        })
        .await
    }

    async fn bump_generation(&self, name: &str) -> StoreResult<u64> {
        let name = name.to_owned();
        self.write(move |this| {
            this.writer()?
                .query_row(
                    "INSERT INTO generations (name, value) VALUES (?1, 1)
                     ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
                    [&name],
                    |r| r.get::<_, i64>(0),
                )
                .map(|v| v as u64)
                .map_err(backend)
        })
        .await
    }

    async fn generation(&self, name: &str) -> StoreResult<u64> {
        let name = name.to_owned();
        self.read(move |this| {
            this.conn()?
                .prepare_cached("SELECT value FROM generations WHERE name = ?1")
                .and_then(|mut s| s.query_row([&name], |r| r.get::<_, i64>(0)).optional())
                .map(|v| v.unwrap_or(0) as u64)
                .map_err(backend)
        })
        .await
    }
}

/// A store in a fresh temporary directory, for unit tests of every store module.
#[cfg(test)]
pub(crate) fn test_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    (dir, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        test_store()
    }

    fn pick_first(servers: &[Server]) -> Result<String, ChoiceError> {
        servers
            .first()
            .map(|s| s.id.clone())
            .ok_or(ChoiceError::NoServer)
    }

    #[tokio::test]
    async fn placing_twice_returns_the_first_mapping_and_bumps_load_once() {
        let (_d, st) = store();
        let mut s = Server::new(
            "a".into(),
            "http://a/bigbluebutton/api".into(),
            "x".into(),
            2.0,
            None,
        );
        st.add_server(&s).await.unwrap();
        s.state = ServerState::Enabled;
        st.update_server(
            "a",
            &ServerPatch {
                state: Some(ServerState::Enabled),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        st.save_poll(
            "a",
            &PollUpdate {
                online: true,
                load: Some(0.0),
                stats: ServerStats::default(),
                bbb_version: None,
                healthy_counter: 0,
                unhealthy_counter: 0,
                state: None,
            },
        )
        .await
        .unwrap();
        let vbs = vec!["111".to_string(), "222".to_string()];
        let req = PlaceRequest {
            tenant_id: "",
            meeting_id: "m",
            moderator_pw: "pw",
            voice_bridges: &vbs,
            choose: Arc::new(pick_first),
            now_ms: 1,
            max_tenant_meetings: None,
            bbb_id: None,
            only_server: None,
        };
        let PlaceOutcome::Placed(m, srv) = st.place_meeting(&req).await.unwrap() else {
            panic!()
        };
        assert_eq!((m.voice_bridge.as_str(), srv.load), ("111", Some(2.0)));
        assert!(matches!(
            st.place_meeting(&req).await.unwrap(),
            PlaceOutcome::Existing(_)
        ));
        let req2 = PlaceRequest {
            meeting_id: "n",
            ..req
        };
        let PlaceOutcome::Placed(m2, _) = st.place_meeting(&req2).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            m2.voice_bridge, "222",
            "voice bridges are unique across meetings"
        );
        assert_eq!(st.server("a").await.unwrap().unwrap().load, Some(4.0));
    }

    #[test]
    fn a_durable_commit_is_full_synchronous_and_the_rest_normal() {
        let (_d, st) = store();
        let mut conn = st.conn().unwrap();
        let sync = |c: &rusqlite::Connection| -> i64 {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(sync(&conn), 1, "NORMAL");
        let inside = durable(&mut conn, |c| Ok(sync(c))).unwrap();
        assert_eq!(inside, 2, "FULL");
        assert_eq!(sync(&conn), 1, "restored");
        let failed: StoreResult<()> = durable(&mut conn, |_| Err(backend("x")));
        assert!(failed.is_err());
        assert_eq!(sync(&conn), 1, "restored after an error");
    }

    #[tokio::test]
    async fn removing_a_server_forgets_its_meetings() {
        let (_d, st) = store();
        st.add_server(&Server::new("a".into(), "u".into(), "s".into(), 1.0, None))
            .await
            .unwrap();
        assert!(matches!(
            st.add_server(&Server::new("a".into(), "u".into(), "s".into(), 1.0, None))
                .await,
            Err(StoreError::AlreadyExists(_))
        ));
        let vbs = vec!["1".to_string()];
        let req = PlaceRequest {
            tenant_id: "",
            meeting_id: "m",
            moderator_pw: "",
            voice_bridges: &vbs,
            choose: Arc::new(pick_first),
            now_ms: 1,
            max_tenant_meetings: None,
            bbb_id: None,
            only_server: None,
        };
        st.place_meeting(&req).await.unwrap();
        assert!(st.remove_server("a").await.unwrap());
        assert!(st.meeting("", "m").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn tenants_have_unique_names_settings_and_a_meeting_limit() {
        let (_d, st) = store();
        let t = Tenant {
            id: "t1".into(),
            name: "alpha".into(),
            secrets: vec!["a".into(), "b".into()],
            max_meetings: Some(1),
            max_participants: None,
        };
        st.add_tenant(&t).await.unwrap();
        assert_eq!(st.tenant_by_name("alpha").await.unwrap(), Some(t.clone()));
        let dup = Tenant {
            id: "t2".into(),
            ..t.clone()
        };
        assert!(matches!(
            st.add_tenant(&dup).await,
            Err(StoreError::AlreadyExists(_))
        ));
        let renamed = st
            .update_tenant(
                "t1",
                &TenantPatch {
                    name: Some("beta".into()),
                    max_participants: Some(Some(5)),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (renamed.name.as_str(), renamed.max_participants),
            ("beta", Some(5))
        );
        assert!(st.tenant_by_name("alpha").await.unwrap().is_none());
        assert!(st
            .update_tenant("nope", &TenantPatch::default())
            .await
            .unwrap()
            .is_none());

        st.add_tenant_setting(&TenantSetting {
            id: "s1".into(),
            tenant_id: "t1".into(),
            param: "record".into(),
            value: "true".into(),
            is_override: true,
        })
        .await
        .unwrap();
        assert_eq!(st.tenant_settings("t1").await.unwrap().len(), 1);

        st.add_server(&Server::new("a".into(), "u".into(), "s".into(), 1.0, None))
            .await
            .unwrap();
        let vbs = vec!["1".to_string(), "2".to_string()];
        let req = PlaceRequest {
            tenant_id: "t1",
            meeting_id: "m",
            moderator_pw: "",
            voice_bridges: &vbs,
            choose: Arc::new(pick_first),
            now_ms: 1,
            max_tenant_meetings: Some(1),
            bbb_id: None,
            only_server: None,
        };
        assert!(matches!(
            st.place_meeting(&req).await.unwrap(),
            PlaceOutcome::Placed(..)
        ));
        let second = PlaceRequest {
            meeting_id: "n",
            ..req
        };
        assert_eq!(
            st.place_meeting(&second).await.unwrap(),
            PlaceOutcome::TenantLimit(1)
        );
        st.add_participant("t1", "m").await.unwrap();
        assert_eq!(st.tenant_usage("t1").await.unwrap(), (1, 1));
        st.set_participants("a", &[("m~t1".to_string(), 7)])
            .await
            .unwrap();
        assert_eq!(st.tenant_usage("t1").await.unwrap(), (1, 7));
        // The poll lists the meeting by its scoped ID: it is kept.
        assert!(st
            .forget_meetings_except("a", &["m~t1".to_string()], i64::MAX)
            .await
            .unwrap()
            .is_empty());

        assert!(st.remove_tenant("t1").await.unwrap());
        assert!(st.tenant_settings("t1").await.unwrap().is_empty());
        assert!(!st.remove_tenant("t1").await.unwrap());
    }
}
