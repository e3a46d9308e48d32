//! Ferrolite: a load balancer for BigBlueButton, a drop-in replacement for Scalelite.
//!
//! A tour from the ground up, in the layers ARCHITECTURE.md names (a module imports only
//! its own layer and those below; `tests/architecture.rs` checks it):
//!
//! - Primitives. [`bbb`] is the BBB protocol: checksums ([`bbb::checksum`]), ordered
//!   parameters and Scalelite's rewrite policy ([`bbb::params`]), the calls Ferrolite
//!   answers as one type ([`bbb::calls::ApiCall`]), XML reading, and the client for the
//!   backend servers. [`tenant`] scopes meeting IDs per tenant on the BBB side and unscopes
//!   answers; [`shutdown`], [`blocking`] and [`envfile`] are small shared helpers.
//! - [`config`] reads every environment variable (Scalelite's names and defaults), once.
//! - [`http`] is the listener with its edge limits, request helpers, bounded bodies and the
//!   BBB-style responses ([`http::response`]).
//! - [`store`] is the state behind one trait per concern: [`store::PoolStore`] (servers,
//!   meetings, tenants), [`store::Outbox`], [`store::LeaseStore`], [`store::TokenStore`],
//!   [`store::RecordingStore`] and [`store::OpsStore`]; SQLite is the embedded default, Redis
//!   and PostgreSQL the shared backends, and [`store::contract`] the suite all must pass.
//! - Decisions, pure: [`balancer`] (load models, server choice, voice bridges, create
//!   failure streaks), [`dialin`] (FreeSWITCH dialplans), [`autoscale`] (pool size).
//! - Domain: [`app`] ties configuration, stores and clients together; [`recordings`]
//!   imports, indexes and acts on recordings ([`recordings::actions`] is shared by the API
//!   and the CLI); [`playback`] decides protected access and keeps the public-link farm and
//!   the nginx site ([`playback::nginx`]); [`callbacks`] is the persisted outbox;
//!   [`lease`] names the holders of the roles; [`admin`] holds the actions behind the CLI
//!   and the admin API and the status [`admin::status::snapshot`]; [`metrics`], [`lrs`],
//!   [`adopt`], [`usage`] and [`scalelite`] (the one-command switch) sit here too.
//! - Roles: [`poller`] keeps health and load current and reconciles meetings;
//!   [`autoscaler`] acts on the autoscaling signal; the importer and the callback sender run
//!   beside their domain code.
//! - [`api`] routes every request ([`api::serve`], [`api::handle`]): the BBB calls
//!   ([`api::meetings`], [`api::recordings`]), the admin API, `/fsapi`, the callbacks relay,
//!   playback routes and the status page.
//! - Entry points: `main.rs` and the CLI ([`admin::cli`]); [`fake`] is the simulated BBB
//!   server used by tests, demos and benchmarks (with a checksum check of its own).

pub mod admin;
pub mod adopt;
pub mod api;
pub mod app;
pub mod autoscale;
pub mod autoscaler;
pub mod balancer;
pub mod bbb;
pub mod blocking;
pub mod callbacks;
pub mod config;
pub mod dialin;
pub mod envfile;
pub mod fake;
pub mod http;
pub mod lease;
pub mod lrs;
pub mod metrics;
pub mod playback;
pub mod poller;
pub mod recordings;
pub mod scalelite;
pub mod shutdown;
pub mod store;
pub mod tenant;
pub mod usage;
