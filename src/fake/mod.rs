//! `fake-bbb`: simulated BigBlueButton servers for tests, demos and benchmarks.
//!
//! One process runs any number of BBB API servers on loopback ports, each with its own
//! secret, plus a control port. Each server verifies the checksum of every call (answering
//! `checksumError` as BBB does), keeps meetings, and records the calls it received. The
//! control API (JSON over HTTP) lets a test add attendees and streams, make a server slow,
//! failing (HTTP 500), garbled or down, change its secret, and read back the calls.
//!
//! Control API (`http://127.0.0.1:<control>`):
//! - `GET /servers` — every server: index, url, secret, mode.
//! - `POST /servers/<i>/mode` — `{"mode":"normal|slow|error|garbage|down","delay_ms":…,"status":…}`;
//!   hostile answers: `{"mode":"drip","delay_ms":…,"chunk_bytes":…}` (every answer trickles
//!   out), `{"mode":"huge","bytes":…}` (getMeetings streams a valid answer of that size),
//!   `{"mode":"dtd"}` (a DTD with entity declarations before `<response>`),
//!   `{"mode":"fail_creates"}` (create answers FAILED), `{"mode":"drop_after_create"}` (create
//!   records the meeting, then drops the connection unanswered).
//! - `POST /servers/<i>/secret` — `{"secret":"…"}`.
//! - `GET|DELETE /servers/<i>/calls` — the calls received (api, method, query, params,
//!   content_type, body, checksum_ok), or clear them.
//! - `GET /servers/<i>/meetings` — the meetings.
//! - `POST /servers/<i>/meetings/<meetingID>` — create or update a meeting directly:
//!   `{"participants","moderators","voice","video","create_time_ms","is_breakout","name"}`.
//! - `DELETE /servers/<i>/meetings/<meetingID>` — the meeting ends by itself.

pub mod checksum;
pub mod server;

pub use server::{run, FakeConfig};
