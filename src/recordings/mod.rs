//! Recordings: getting them from BBB servers into the index and the publish dirs.
//!
//! - [`metadata`] reads a `metadata.xml` (pure).
//! - [`files`] extracts tarballs safely and moves `<format>/<recordID>` trees.
//! - [`importer`] runs an import as an interruptible sequence, and is the importer role of
//!   `serve` (spool watch, `importer` lease).
//! - [`in_place`] indexes an extracted tree where it lies (migrations; never copies).
//! - [`upload`] checks the token of a tarball pushed over HTTP by a BBB server's hook.
//! - [`callback`] remembers recording-ready URLs at create and queues the callback after import.
//!
//! The recording API calls are in `crate::api::recordings`; the index is
//! `crate::store::RecordingStore`.

pub mod callback;
pub mod files;
pub mod importer;
pub mod in_place;
pub mod metadata;
pub mod upload;
