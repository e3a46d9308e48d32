//! Recordings: getting them from BBB servers into the index and the publish dirs.
//!
//! - [`actions`] publishes, unpublishes, deletes and updates recordings (API and CLI alike).
//! - [`metadata`] reads a `metadata.xml` (pure).
//! - [`files`] extracts tarballs safely and moves `<format>/<recordID>` trees.
//! - [`importer`] runs an import as an interruptible sequence, and is the importer role of
//!   `serve` (spool watch, `importer` lease).
//! - [`ioerr`] tells a machine failure (full or read-only disk, permissions) from a bad
//!   tarball, by OS error (pure).
//! - [`in_place`] indexes an extracted tree where it lies (migrations; never copies).
//! - [`upload`] takes a tarball pushed over HTTP by a BBB server's hook: token, spool,
//!   digest, import, set-aside, as one action.
//! - [`callback`] remembers recording-ready URLs at create and queues the callback after import.
//!
//! The recording API calls are in `crate::api::recordings` (and `text_tracks`, `upload`),
//! which parse, call one of these actions and answer; the index is
//! `crate::store::RecordingStore`.

pub mod actions;
pub mod callback;
pub mod files;
pub mod importer;
pub mod in_place;
pub mod ioerr;
pub mod metadata;
pub mod upload;
