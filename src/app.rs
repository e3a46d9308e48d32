//! The shared state of a running `ferrolite` process: configuration, store, BBB client,
//! and the coalesced load bumps.
//!
//! Scalelite raises a server's load by its multiplier on every `join` so a burst spreads
//! out before the next poll. Writing that to the store on every join would make the busiest
//! call the most expensive one, so joins add to an in-memory tally that a background task
//! flushes to the store in one transaction every [`LOAD_FLUSH_INTERVAL`]. Placement itself
//! (create) raises the load inside its own store transaction, so it is never deferred.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::bbb::params::Params;
use crate::bbb::{BbbClient, CallError, Reply};
use crate::config::Config;
use crate::http::response::ApiError;
use crate::store::{
    LeaseStore, Meeting, Outbox, PoolStore, RecordingStore, Server, ServerState, Stores, TokenStore,
};

pub const LOAD_FLUSH_INTERVAL: Duration = Duration::from_millis(200);

pub struct App {
    pub config: Config,
    /// Pool state: servers, meetings, tenants (`crate::store::PoolStore`).
    pub store: Arc<dyn PoolStore>,
    /// The callback outbox.
    pub outbox: Arc<dyn Outbox>,
    /// The roles' leases.
    pub leases: Arc<dyn LeaseStore>,
    /// The recordings index with the playback access lookup (same SQLite file by default;
    /// PostgreSQL later).
    pub recordings: Arc<dyn RecordingStore>,
    /// One-time playback tokens (same SQLite file by default).
    pub tokens: Arc<dyn TokenStore>,
    /// Recently read playback access facts (`playback::cache`).
    pub playback_cache: crate::playback::cache::AccessCache,
    pub bbb: BbbClient,
    /// The poller's client (no idle connections kept between cycles).
    pub poll_bbb: BbbClient,
    pub metrics: crate::metrics::Metrics,
    /// Woken when a callback is queued, so the delivery worker does not wait for its tick.
    pub callbacks_due: tokio::sync::Notify,
    /// Lease holders, poll results, meetings with participants, the usage ledger.
    pub ops: Arc<dyn crate::store::OpsStore>,
    /// The autoscaling signal's memory between evaluations (`crate::autoscale`).
    pub autoscale: Mutex<crate::autoscale::History>,
    pending_load: Mutex<HashMap<String, f64>>,
    /// The client for tenants' LRS token requests at create (`crate::lrs`), built once.
    pub lrs_http: reqwest::Client,
    /// Failed creates in a row per server (`balancer::CreateHealth`).
    pub create_health: crate::balancer::CreateHealth,
}

impl App {
    pub fn new(config: Config, stores: Stores) -> Arc<App> {
        let max_answer = config.backend.max_answer_bytes;
        let bbb =
            BbbClient::new(config.connect_timeout, config.response_timeout).max_answer(max_answer);
        let poll_bbb = BbbClient::unpooled(config.connect_timeout, config.response_timeout)
            .max_answer(max_answer);
        let config_timeouts = (config.connect_timeout, config.response_timeout);
        Arc::new(App {
            config,
            store: stores.pool,
            outbox: stores.outbox,
            leases: stores.leases,
            recordings: stores.recordings,
            tokens: stores.tokens,
            playback_cache: Default::default(),
            bbb,
            poll_bbb,
            callbacks_due: tokio::sync::Notify::new(),
            metrics: crate::metrics::Metrics::new(),
            ops: stores.ops,
            autoscale: Mutex::new(Default::default()),
            pending_load: Mutex::new(HashMap::new()),
            lrs_http: crate::lrs::client(config_timeouts.0, config_timeouts.1),
            create_health: Default::default(),
        })
    }

    /// Notes one join on `server` (only enabled servers carry a load to raise).
    pub fn bump_load(&self, server: &Server) {
        if server.state != ServerState::Enabled || server.load.is_none() {
            return;
        }
        let mut pending = self.pending_load.lock().unwrap_or_else(|p| p.into_inner());
        *pending.entry(server.id.clone()).or_insert(0.0) += server.load_multiplier;
    }

    /// Sends BBB `end` for a meeting the load balancer is dropping (panic, an offline
    /// server, `meetings end`): the meeting ID as BBB knows it and the stored moderator
    /// password, with the outbound algorithm.
    pub async fn end_on_bbb(
        &self,
        server: &Server,
        m: &Meeting,
        limit: Option<Duration>,
    ) -> Result<Reply, CallError> {
        let mut p: Params = [("meetingID", m.bbb_id.as_str())].into_iter().collect();
        if !m.moderator_pw.is_empty() {
            p.set("password", m.moderator_pw.clone());
        }
        self.bbb
            .call(
                server,
                "end",
                &p,
                self.config.outbound_algorithm,
                None,
                limit,
            )
            .await
    }

    /// Writes the pending bumps to the store.
    pub async fn flush_load(&self) {
        let deltas: Vec<(String, f64)> = {
            let mut pending = self.pending_load.lock().unwrap_or_else(|p| p.into_inner());
            pending.drain().collect()
        };
        if deltas.is_empty() {
            return;
        }
        if let Err(e) = self.store.add_load(&deltas).await {
            tracing::warn!(error = %e, "could not record load bumps");
        }
    }

    /// The tenant a request's Host names: `Ok(None)` when multitenancy is off or the Host
    /// is the bare `BASE_URL`; `checksumError` when the Host names no known tenant
    /// (Scalelite). Shared by the API and playback routes.
    pub async fn host_tenant(&self, host: &str) -> Result<Option<crate::store::Tenant>, ApiError> {
        let t = &self.config.tenancy;
        if !t.enabled {
            return Ok(None);
        }
        match crate::tenant::host_tenant(host, t.base_url.as_deref()) {
            crate::tenant::HostTenant::Bare => Ok(None),
            crate::tenant::HostTenant::Unknown => Err(ApiError::checksum()),
            crate::tenant::HostTenant::Named(name) => {
                match self.store.tenant_by_name(&name).await {
                    Ok(Some(tenant)) => Ok(Some(tenant)),
                    Ok(None) => Err(ApiError::checksum()),
                    Err(e) => {
                        tracing::error!(error = %e, "store error while resolving a tenant");
                        Err(ApiError::internal(
                            "The load balancer's store is unavailable.",
                        ))
                    }
                }
            }
        }
    }
}
