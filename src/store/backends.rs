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
    let sqlite = SqliteStore::open(&config.database_path).map_err(|e| {
        format!(
            "cannot open the database {} (DATABASE_URL): {e}",
            config.database_path.display()
        )
    })?;
    let mut stores = Stores::all(sqlite);
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
            .map_err(|e| format!("cannot open PostgreSQL (DATABASE_URL): {e}"))?;
        let pg = std::sync::Arc::new(pg);
        stores.outbox = pg.clone();
        stores.recordings = pg;
    }
    Ok(stores)
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
        .map_err(|e| format!("cannot migrate PostgreSQL (DATABASE_URL): {e}"))?;
    Ok(if applied.is_empty() {
        vec!["PostgreSQL schema is up to date".into()]
    } else {
        applied
            .into_iter()
            .map(|m| format!("applied {m}"))
            .collect()
    })
}
