//! Ferrolite: a load balancer for BigBlueButton, a drop-in replacement for Scalelite.
//!
//! A tour, in the order a request meets the code:
//!
//! - [`config`] reads every environment variable (Scalelite's names and defaults).
//! - [`http`] listens on TCP or a Unix socket and hands each request to [`api::handle`].
//! - [`api`] routes BBB calls, checks content types and checksums ([`api::checksum`]),
//!   and runs the handlers ([`api::meetings`]); [`api::params`] holds the parameter
//!   rewrite policy and [`api::response`] the XML answers and error catalogue.
//! - [`balancer`] is pure: the load models, the choice of server, voice bridges.
//! - [`store`] is the state behind one trait per concern: [`store::PoolStore`] (servers,
//!   meetings, tenants), [`store::Outbox`], [`store::LeaseStore`], [`store::TokenStore`]
//!   (playback tokens) and [`store::RecordingStore`] (recordings and the playback access
//!   lookup); [`store::SqliteStore`] is the embedded default and implements them all.
//! - [`recordings`] brings recordings in: [`recordings::importer`] (spool watch, safe
//!   extraction in [`recordings::files`], [`recordings::metadata`] parsing), tarballs pushed
//!   over HTTP ([`recordings::upload`]), and the recording-ready callback
//!   ([`recordings::callback`]); [`api::recordings`] answers the recording calls.
//! - [`bbb`] calls the backend BBB servers with timeouts and reads their XML.
//! - [`poller`] keeps health and load current and reconciles meetings.
//! - [`callbacks`] is the persisted outbox for callbacks to front ends (retries, SSRF guard).
//! - [`tenant`] resolves the tenant from the Host and scopes meeting IDs per tenant on the
//!   BBB side (and unscopes every answer); [`api::admin`] is the JSON admin API and
//!   [`api::callbacks`] relays BBB's analytics and meeting-ended callbacks through
//!   [`callbacks`]' outbox.
//! - [`dialin`] builds FreeSWITCH dialplans (pure); [`api::fsapi`] answers `POST /fsapi`.
//! - [`lrs`] seals a tenant's xAPI/LRS credentials into `meta_secret-lrs-payload` at create.
//! - [`lease`] lets only one process run a role (poller, importer, callbacks) at a time.
//! - [`metrics`] is the Prometheus endpoint (`GET /metrics`).
//! - [`playback`] is what nginx asks for: one-time links and cookies of protected
//!   recordings, the `auth_request` decision, the public-link farm nginx serves unprotected
//!   recordings from, and the rendered nginx configuration ([`playback::nginx`]).
//! - [`admin`] holds the actions behind the CLI and the admin API (servers, tenants).
//! - [`fake`] is the simulated BBB server used by tests, demos and benchmarks.
//! - [`app`] ties configuration, store and client together; [`shutdown`] stops it cleanly.

pub mod admin;
pub mod api;
pub mod app;
pub mod balancer;
pub mod bbb;
pub mod blocking;
pub mod callbacks;
pub mod config;
pub mod dialin;
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
