//! Builds the [`Stores`] the configuration names (see `config::Backends`): the embedded
//! SQLite file for everything by default; with `REDIS_URL`, the pool state (servers,
//! meetings, tenants), leases and one-time tokens in Redis; with `DATABASE_URL=postgres://…`,
//! the callback outbox and the recordings index (with the playback access lookup) in
//! PostgreSQL (its migrations applied first). The concerns no shared backend takes yet stay
//! in SQLite.

use super::postgres::PostgresStore;
use super::redis::RedisStore;
use super::{SqliteStore, Stores};
use crate::config::Config;

/// Connections each PostgreSQL pool may open.
pub const POSTGRES_POOL: usize = 16;

/// Opens every backend the configuration names; the message says which one failed and why.
pub async fn open(config: &Config) -> Result<Stores, String> {
    Ok(open_parts(config).await?.0)
}

/// `serve`'s [`open`]: also refuses, in one line, to share Redis with processes that keep
/// the recordings index and the callback outbox in another SQLite file (another host's):
/// see [`SQLITE_FILE_LEASE`].
pub async fn open_to_serve(config: &Config) -> Result<Stores, String> {
    let (stores, sqlite) = open_parts(config).await?;
    if let (Some(redis), None) = (&config.backends.redis, &config.backends.postgres_url) {
        let ours = sqlite
            .identity()
            .await
            .map_err(|e| format!("cannot read the SQLite file's identity: {e}"))?;
        let bound = if stores
            .leases
            .take_lease(SQLITE_FILE_LEASE, &ours, SQLITE_FILE_TTL_MS)
            .await
            .map_err(|e| format!("cannot reach Redis (REDIS_URL): {e}"))?
        {
            None
        } else {
            stores
                .leases
                .lease_holder(SQLITE_FILE_LEASE)
                .await
                .map_err(|e| format!("cannot reach Redis (REDIS_URL): {e}"))?
                .map(|(holder, _)| holder)
        };
        one_sqlite_file(
            &ours,
            bound.as_deref(),
            &redis.namespace,
            &config.database_path,
        )?;
    }
    Ok(stores)
}

/// The lease that binds a Redis namespace to the one SQLite file its processes share while
/// the recordings index and the callback outbox are not in PostgreSQL; its holder is the
/// file's identity. Held for [`SQLITE_FILE_TTL_MS`], renewed by every start from that file.
pub const SQLITE_FILE_LEASE: &str = "sqlite-file";
/// Ten years: the binding outlives any outage; moving it is a deliberate act.
pub const SQLITE_FILE_TTL_MS: i64 = 10 * 365 * 24 * 3600 * 1000;

/// The rule: processes sharing a Redis namespace without PostgreSQL share one SQLite file
/// (one host, or containers on one host sharing the file). `bound` is the identity of the
/// file that holds the namespace when it is not `ours`.
pub fn one_sqlite_file(
    ours: &str,
    bound: Option<&str>,
    namespace: &str,
    path: &std::path::Path,
) -> Result<(), String> {
    match bound {
        Some(other) if other != ours => Err(format!(
            "REDIS_URL is shared with processes that keep recordings and callbacks in another SQLite file (store {other}; this one, {}, is {ours}): set DATABASE_URL=postgres://… on every node, or run every node on the host of that file (to move the namespace to this file on purpose, delete the Redis key {namespace}:lease:{SQLITE_FILE_LEASE})",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// `what: error`, with a hint when the server's certificate was refused.
fn postgres_failed(what: &str, e: &super::StoreError) -> String {
    let e = e.to_string();
    match super::postgres_tls::explain(&e) {
        Some(hint) => format!("{what}: {e}: {hint}"),
        None => format!("{what}: {e}"),
    }
}

/// The stores, and the SQLite file they are built on.
async fn open_parts(config: &Config) -> Result<(Stores, SqliteStore), String> {
    let sqlite = SqliteStore::open(&config.database_path).map_err(|e| {
        format!(
            "cannot open the database {} (DATABASE_URL): {e}",
            config.database_path.display()
        )
    })?;
    let mut stores = Stores::all(sqlite.clone());
    if let Some(redis) = &config.backends.redis {
        let r = std::sync::Arc::new(
            RedisStore::connect(redis)
                .await
                .map_err(|e| format!("cannot reach Redis (REDIS_URL): {e}"))?,
        );
        stores.pool = r.clone();
        stores.leases = r.clone();
        stores.tokens = r;
    }
    if let Some(url) = &config.backends.postgres_url {
        let pg = PostgresStore::connect(url, POSTGRES_POOL)
            .await
            .map_err(|e| postgres_failed("cannot open PostgreSQL (DATABASE_URL)", &e))?;
        let pg = std::sync::Arc::new(pg);
        stores.outbox = pg.clone();
        stores.recordings = pg;
    }
    Ok((stores, sqlite))
}

/// `ferrolite db migrate`: applies PostgreSQL's missing migrations (the SQLite file migrates
/// itself when opened); the lines to print.
pub async fn migrate(config: &Config) -> Result<Vec<String>, String> {
    let Some(url) = &config.backends.postgres_url else {
        return Ok(vec![
            "DATABASE_URL names no PostgreSQL database; SQLite migrates itself on start".into(),
        ]);
    };
    let pg = PostgresStore::open(url, 1).map_err(|e| e.to_string())?;
    let applied = pg
        .migrate()
        .await
        .map_err(|e| postgres_failed("cannot migrate PostgreSQL (DATABASE_URL)", &e))?;
    Ok(if applied.is_empty() {
        vec!["PostgreSQL schema is up to date".into()]
    } else {
        applied
            .into_iter()
            .map(|m| format!("applied {m}"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_file_is_refused() {
        let path = std::path::Path::new("/var/lib/ferrolite/ferrolite.db");
        assert!(
            one_sqlite_file("a", None, "ns", path).is_ok(),
            "the first file binds"
        );
        assert!(
            one_sqlite_file("a", Some("a"), "ns", path).is_ok(),
            "the same file"
        );
        let e = one_sqlite_file("b", Some("a"), "ns", path).unwrap_err();
        assert!(
            !e.contains('\n') && e.contains("store a") && e.contains("ns:lease:sqlite-file"),
            "{e}"
        );
    }
}
