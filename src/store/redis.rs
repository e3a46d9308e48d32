//! The Redis backend: the state several processes and hosts share through one Redis (or a
//! Sentinel-managed master) — fenced leases for the roles that run once ([`LeaseStore`]) and
//! one-time playback tokens ([`TokenStore`]), and the pool state ([`PoolStore`](super::PoolStore),
//! in `redis_pool.rs`). Every key starts with `<REDIS_NAMESPACE>:`.
//!
//! - A lease is a hash `<ns>:lease:<name>` {holder, until, epoch}, taken and renewed by one
//!   Lua script judged by Redis's own clock (`TIME`). The epoch increments each time the
//!   lease changes hands and is kept after release, so a holder can fence its writes with it
//!   ([`RedisStore::take_lease_epoch`]).
//! - A token is a string `<ns>:token:<sha256>` set with `PX` and consumed with `GETDEL`:
//!   Redis's expiry is the store clock, and two concurrent uses never both succeed.
//!
//! Connections are `redis`'s multiplexed [`ConnectionManager`]s (reconnecting), `REDIS_POOL`
//! of them used in turn; with Sentinel they follow the master through failovers
//! (`redis_conn.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use super::playback::NewToken;
use super::redis_conn::Connections;
use super::{LeaseStore, StoreError, StoreResult, TokenStore};
use crate::config::RedisConfig;

/// Takes or renews the lease KEYS[1] for ARGV[1] for ARGV[2] ms; returns the epoch held, or
/// 0 when another holder's lease has not expired. The epoch stays while the holder renews;
/// a hand-over sets it to Redis's now in ms, at least the previous + 1 (`store::fence`).
const TAKE_LEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'holder', 'until', 'epoch')
local epoch = tonumber(cur[3]) or 0
if cur[1] and cur[1] ~= '' and cur[1] ~= ARGV[1] and tonumber(cur[2]) > now then
  return 0
end
if cur[1] ~= ARGV[1] then
  epoch = math.max(epoch + 1, now)
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'until', now + tonumber(ARGV[2]), 'epoch', epoch)
return epoch
";

/// Releases KEYS[1] if ARGV[1] holds it; the epoch stays.
const RELEASE_LEASE: &str = r"
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'holder', '', 'until', 0)
end
return 1
";

/// Hands KEYS[1] from ARGV[1] (a holder known to be gone) to ARGV[2] for ARGV[3] ms, a new
/// epoch; 0 when someone else holds it now.
const REPLACE_LEASE: &str = r"
local prev = redis.call('HGET', KEYS[1], 'holder')
if not prev or prev == '' or prev ~= ARGV[1] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = math.max((tonumber(redis.call('HGET', KEYS[1], 'epoch')) or 0) + 1, now)
redis.call('HSET', KEYS[1], 'holder', ARGV[2], 'until', now + tonumber(ARGV[3]), 'epoch', epoch)
return epoch
";

#[derive(Clone)]
pub struct RedisStore {
    conns: Arc<Connections>,
    ns: String,
    take: Arc<redis::Script>,
    release: Arc<redis::Script>,
    replace: Arc<redis::Script>,
}

fn backend(e: redis::RedisError) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects `config.pool` connections (to the master the Sentinels name, if so, and
    /// then to whichever server they promote).
    pub async fn connect(config: &RedisConfig) -> StoreResult<RedisStore> {
        let conns = Connections::open(config).await?;
        Ok(RedisStore::over(conns, &config.namespace))
    }

    /// A store over existing connections, under `namespace` (tests give each store its own).
    pub fn with_connections(conns: Vec<ConnectionManager>, namespace: &str) -> RedisStore {
        RedisStore::over(Connections::fixed(conns), namespace)
    }

    fn over(conns: Arc<Connections>, namespace: &str) -> RedisStore {
        RedisStore {
            conns,
            ns: namespace.to_string(),
            take: Arc::new(redis::Script::new(TAKE_LEASE)),
            release: Arc::new(redis::Script::new(RELEASE_LEASE)),
            replace: Arc::new(redis::Script::new(REPLACE_LEASE)),
        }
    }

    pub(super) fn con(&self) -> ConnectionManager {
        self.conns.get()
    }

    /// A failed command's error; a dropped connection or a `READONLY` answer also makes
    /// the Sentinel watcher look for a new master at once.
    pub(super) fn err(&self, e: redis::RedisError) -> StoreError {
        self.conns.failed(&e);
        backend(e)
    }

    /// `<namespace>:<rest>`.
    pub(super) fn k(&self, rest: &str) -> String {
        format!("{}:{rest}", self.ns)
    }

    pub(super) fn namespace(&self) -> &str {
        &self.ns
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.ns)
    }
}

#[async_trait]
impl LeaseStore for RedisStore {
    async fn now(&self) -> StoreResult<i64> {
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok(secs * 1000 + micros / 1000)
    }

    async fn take_lease_epoch(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<u64>> {
        let epoch: u64 = self
            .take
            .key(self.key("lease", name))
            .arg(holder)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok((epoch > 0).then_some(epoch))
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        let _: i64 = self
            .release
            .key(self.key("lease", name))
            .arg(holder)
            .invoke_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn lease_holder(&self, name: &str) -> StoreResult<Option<(String, i64)>> {
        let (holder, until): (Option<String>, Option<i64>) = redis::cmd("HMGET")
            .arg(self.key("lease", name))
            .arg("holder")
            .arg("until")
            .query_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok(holder
            .filter(|h| !h.is_empty())
            .map(|h| (h, until.unwrap_or(0))))
    }

    async fn replace_lease(
        &self,
        name: &str,
        previous: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> StoreResult<Option<u64>> {
        let epoch: u64 = self
            .replace
            .key(self.key("lease", name))
            .arg(previous)
            .arg(holder)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok((epoch > 0).then_some(epoch))
    }

    async fn bump_generation(&self, name: &str) -> StoreResult<u64> {
        self.con()
            .incr(self.key("generation", name), 1u64)
            .await
            .map_err(|e| self.err(e))
    }

    async fn generation(&self, name: &str) -> StoreResult<u64> {
        let v: Option<u64> = self
            .con()
            .get(self.key("generation", name))
            .await
            .map_err(|e| self.err(e))?;
        Ok(v.unwrap_or(0))
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn mint_playback_tokens(&self, tokens: &[NewToken], ttl_ms: i64) -> StoreResult<()> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for t in tokens {
            let value = serde_json::to_string(&(&t.record_id, &t.format))
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            pipe.cmd("SET")
                .arg(self.key("token", &t.hash))
                .arg(value)
                .arg("PX")
                .arg(ttl_ms.max(1))
                .ignore();
        }
        let () = pipe
            .query_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn consume_playback_token(&self, hash: &str) -> StoreResult<Option<(String, String)>> {
        let v: Option<String> = self
            .con()
            .get_del(self.key("token", hash))
            .await
            .map_err(|e| self.err(e))?;
        match v {
            None => Ok(None),
            Some(v) => serde_json::from_str(&v)
                .map(Some)
                .map_err(|e| StoreError::Backend(format!("a malformed token in Redis: {e}"))),
        }
    }
}
