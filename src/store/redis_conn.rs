//! The Redis backends' connections: `REDIS_POOL` multiplexed [`ConnectionManager`]s used in
//! turn, and, with Sentinel, a watcher that follows the master at run time.
//!
//! A `ConnectionManager` reconnects to the address it was built for; after a Sentinel
//! failover that address is a dead or demoted (read-only) server. So for a Sentinel target
//! [`Connections::open`] starts a task that asks the Sentinels which server is the master
//! every [`WATCH_EVERY`] — and at once when a command failed with a dropped connection or a
//! `READONLY` reply ([`Connections::failed`]) — and, when the answer changed, connects to the
//! new master and swaps the whole set in. Commands in flight during the swap fail (the
//! API answers them with its store error, like any other Redis outage); the next ones go
//! to the new master.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{StoreError, StoreResult};
use crate::config::{RedisConfig, RedisTarget};

/// How often the Sentinel watcher asks who the master is when nothing failed.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

fn backend(e: redis::RedisError) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

pub struct Connections {
    set: RwLock<Arc<Vec<ConnectionManager>>>,
    next: AtomicUsize,
    /// Woken by [`Connections::failed`] so the Sentinel watcher asks now.
    recheck: tokio::sync::Notify,
}

impl Connections {
    /// A set over existing connections (tests), not following any Sentinel.
    pub fn fixed(conns: Vec<ConnectionManager>) -> Arc<Connections> {
        assert!(!conns.is_empty(), "at least one connection");
        Arc::new(Connections {
            set: RwLock::new(Arc::new(conns)),
            next: AtomicUsize::new(0),
            recheck: tokio::sync::Notify::new(),
        })
    }

    /// Connects `config.pool` connections to the target (the master the Sentinels name, then
    /// followed through failovers).
    pub async fn open(config: &RedisConfig) -> StoreResult<Arc<Connections>> {
        let client = client_for(&config.target).await?;
        let conns = Connections::fixed(connect(&client, config.pool).await?);
        if matches!(config.target, RedisTarget::Sentinel { .. }) {
            let addr = client.get_connection_info().addr.clone();
            tokio::spawn(watch(Arc::downgrade(&conns), config.clone(), addr));
        }
        Ok(conns)
    }

    /// The next connection, in turn.
    pub fn get(&self) -> ConnectionManager {
        let set = self.set.read().unwrap_or_else(|p| p.into_inner()).clone();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % set.len();
        set[i].clone()
    }

    /// Tells the watcher about a failed command: a dropped connection or a read-only
    /// replica's answer make it ask the Sentinels now.
    pub fn failed(&self, e: &redis::RedisError) {
        if e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_io_error()
            || e.is_timeout()
            || e.kind() == redis::ErrorKind::ReadOnly
        {
            self.recheck.notify_one();
        }
    }
}

/// Short timeouts, so a command to a master that vanished fails fast instead of hanging.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(5))
        .set_number_of_retries(2)
        .set_max_delay(500)
}

async fn connect(client: &redis::Client, n: usize) -> StoreResult<Vec<ConnectionManager>> {
    let mut conns = Vec::with_capacity(n.max(1));
    for _ in 0..n.max(1) {
        conns.push(
            ConnectionManager::new_with_config(client.clone(), manager_config())
                .await
                .map_err(backend)?,
        );
    }
    Ok(conns)
}

/// Follows the master the Sentinels name until the connection set is dropped.
async fn watch(conns: Weak<Connections>, config: RedisConfig, mut current: redis::ConnectionAddr) {
    loop {
        // Holding the set while waiting only delays the watcher's end by one wait.
        let Some(c) = conns.upgrade() else { return };
        let woken = tokio::time::timeout(WATCH_EVERY, c.recheck.notified())
            .await
            .is_ok();
        drop(c);
        let client = match client_for(&config.target).await {
            Ok(client) => client,
            Err(e) => {
                if woken {
                    tracing::warn!(error = %e, "the Redis Sentinels named no master");
                }
                // Do not spin on a burst of failures while no master is known.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let addr = client.get_connection_info().addr.clone();
        if addr == current {
            continue;
        }
        match connect(&client, config.pool).await {
            Ok(fresh) => {
                let Some(c) = conns.upgrade() else { return };
                *c.set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
                tracing::warn!(previous = %current, master = %addr, "the Redis master changed (Sentinel failover); reconnected");
                current = addr;
            }
            Err(e) => {
                tracing::warn!(master = %addr, error = %e, "cannot connect to the new Redis master yet")
            }
        }
    }
}

/// The client of the configured target; for Sentinel, of the master they name now.
pub(super) async fn client_for(target: &RedisTarget) -> StoreResult<redis::Client> {
    match target {
        RedisTarget::Url(u) => redis::Client::open(u.as_str()).map_err(backend),
        RedisTarget::Sentinel {
            sentinels,
            master,
            auth_url,
        } => {
            use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
            use redis::IntoConnectionInfo;
            let mut s = Sentinel::build(sentinels.clone()).map_err(backend)?;
            let info = match auth_url {
                Some(u) => {
                    let ci = u.as_str().into_connection_info().map_err(backend)?;
                    let tls = matches!(ci.addr, redis::ConnectionAddr::TcpTls { .. });
                    SentinelNodeConnectionInfo {
                        tls_mode: tls.then_some(redis::TlsMode::Secure),
                        redis_connection_info: Some(ci.redis),
                    }
                }
                None => SentinelNodeConnectionInfo::default(),
            };
            s.async_master_for(master, Some(&info))
                .await
                .map_err(backend)
        }
    }
}
