//! The recording importer: tarballs from BBB servers into the index and the publish dirs.
//!
//! One tarball is imported by [`import_tarball`] as a sequence that is safe to interrupt:
//!
//! 1. extract into a fresh `RECORDING_WORK_DIR/import-…` directory ([`files::extract`]
//!    refuses anything unsafe);
//! 2. read each `<format>/<recordID>/metadata.xml` ([`metadata::parse`]); a broken format is
//!    set aside, the others go on;
//! 3. move each good format into place ([`files::place`], a replace);
//! 4. update the index in one transaction that also decides published/protected against
//!    the row there ([`RecordingStore::import_recording_decided`]);
//! 5. only then remove the other copy (publish vs unpublish dir), queue the recording-ready
//!    callback, and let the caller delete the tarball.
//!
//! A crash before 4 leaves the tarball in the spool: the next start cleans the work dir,
//! [`files::recover`]s interrupted swaps, and imports it again (every step is idempotent).
//! A tarball that cannot be imported is moved to `<spool>/failed/` with a `.reason` file. A
//! failure of the machine instead (full or read-only disk, permissions: [`ioerr`]) keeps it
//! in the spool, logged and counted, and [`run`] retries it with a per-file [`Backoff`].
//!
//! [`run`] is the importer role of `serve`: it holds the `importer` lease (one importer per
//! cluster), watches the spool with inotify (or scans it every interval), and skips files that
//! are hidden, `.tmp`/`.part`, or changed within `RECORDING_IMPORT_SETTLE`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{callback, files, ioerr, metadata};
use crate::app::App;
use crate::shutdown::Shutdown;
use crate::store::recordings::{ImportPolicy, PlaybackFormat, Recording};
use crate::store::{now_ms, Fence};

/// Why an import did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The tarball itself is unusable: it goes to `failed/`.
    #[error("{0}")]
    Refused(String),
    /// Something outside the tarball failed (store, disk): try again later.
    #[error("{0}")]
    Retry(String),
}

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The recordings updated, with the formats imported for each.
    pub imported: Vec<(String, Vec<String>)>,
    /// `(format/recordID, reason)` of the formats that could not be imported.
    pub failed: Vec<(String, String)>,
}

/// The meeting ID a recording is filed under: the front end's ID. With multitenancy the
/// ID BBB recorded is scoped to the tenant (`crate::tenant::scope`), and the recording's
/// `tenant-id` metadatum names the tenant, so it is unscoped here, in one place.
pub fn external_meeting_id(md: &metadata::FormatMetadata) -> String {
    let tenant = crate::tenant::TenantScope::from_option(
        md.meta
            .iter()
            .find(|(k, _)| k == "tenant-id")
            .map(|(_, v)| v.as_str()),
    )
    .stored();
    crate::tenant::unscope(tenant, &md.meeting_id).to_string()
}

/// Test hook: `FERROLITE_FAULT=<point>` aborts the process at that point (crash tests).
fn fault(point: &str) {
    if std::env::var("FERROLITE_FAULT").is_ok_and(|v| v == point) {
        eprintln!("ferrolite: fault injected at {point}");
        std::process::abort();
    }
}

/// Test hook: `FERROLITE_FAULT_DELAY=<point>:<ms>` pauses the import at that point (a long
/// import, for the lease tests).
async fn fault_delay(point: &str) {
    let Ok(v) = std::env::var("FERROLITE_FAULT_DELAY") else {
        return;
    };
    if let Some(ms) = v
        .strip_prefix(point)
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        eprintln!("ferrolite: import paused {ms} ms at {point}");
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn retry(e: impl std::fmt::Display) -> ImportError {
    ImportError::Retry(e.to_string())
}

/// A store failure: logged, counted, retried.
fn store_failed(app: &App, e: impl std::fmt::Display) -> ImportError {
    app.metrics.import_failed("index", "store");
    tracing::warn!(error = %e, "recording import: the store failed; will retry");
    retry(e)
}

/// An I/O failure at `stage` on `path`: the machine's fault (full or read-only disk,
/// permissions) → logged with the path and OS error, counted, and [`ImportError::Retry`];
/// otherwise `None` (the caller decides whether the tarball is at fault).
fn machine_failure(app: &App, stage: &str, path: &Path, e: &std::io::Error) -> Option<ImportError> {
    let cause = ioerr::machine_cause(e)?;
    let what = ioerr::describe(&path.display().to_string(), e);
    app.metrics.import_failed(stage, cause.label());
    tracing::warn!(stage, path = %path.display(), error = %what, "recording import failed: {cause}; the tarball is kept and retried");
    Some(retry(format!("{what} ({cause})")))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ImportError> {
    tokio::task::spawn_blocking(f).await.map_err(retry)
}

/// Who runs an import; names its work directory, so the spool importer's crash cleanup
/// ([`recover`]) only removes its own leftovers and not a concurrent upload's or CLI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Spool,
    Upload,
    Cli,
}

impl Origin {
    fn prefix(self) -> &'static str {
        match self {
            Origin::Spool => "import-",
            Origin::Upload => "upload-",
            Origin::Cli => "cli-",
        }
    }
}

/// Work directories whose owner cannot be checked (another node's, or named by an older
/// version) older than this are crash leftovers.
const STALE_WORK: Duration = Duration::from_secs(6 * 3600);

/// `<prefix><node>.<pid>.<uuid>`: names its owner, so crash recovery removes only the work
/// dirs of processes that are gone ([`work_dir_owner`]).
fn work_dir(app: &App, origin: Origin) -> PathBuf {
    app.config.recordings.work_dir.join(format!(
        "{}{}.{}.{}",
        origin.prefix(),
        crate::lease::node_label(&crate::lease::node_id(&app.config)),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// The `(node, pid)` a work dir's name gives as its owner (see [`work_dir`]).
pub fn work_dir_owner(name: &str) -> Option<(&str, u32)> {
    let rest = [Origin::Spool, Origin::Upload, Origin::Cli]
        .iter()
        .find_map(|o| name.strip_prefix(o.prefix()))?;
    let mut parts = rest.rsplitn(3, '.');
    let _uuid = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    let node = parts.next()?;
    Some((node, pid))
}

/// Whether a work dir may be removed by crash recovery: its owner is a process of this node
/// that is gone, or it cannot be checked and the dir is older than [`STALE_WORK`]. Pure.
pub fn work_dir_abandoned(
    name: &str,
    this_node: &str,
    alive: impl Fn(u32) -> bool,
    age: Option<Duration>,
) -> bool {
    match work_dir_owner(name) {
        Some((node, pid)) if node == this_node => pid != std::process::id() && !alive(pid),
        _ => age.is_some_and(|a| a > STALE_WORK),
    }
}

/// Imports one tarball (`.tar` or `.tar.gz`). The caller decides what happens to the file.
/// With `expect`, only that record id is accepted (an upload names its recording).
pub async fn import_tarball(
    app: &App,
    tarball: &Path,
    expect: Option<&str>,
    origin: Origin,
) -> Result<ImportReport, ImportError> {
    import_tarball_fenced(app, tarball, expect, origin, None).await
}

/// [`import_tarball`] under the importer role's fence: its index commit is refused once
/// another process took the role over (the tarball then stays for the new holder).
async fn import_tarball_fenced(
    app: &App,
    tarball: &Path,
    expect: Option<&str>,
    origin: Origin,
    fence: Option<&Fence>,
) -> Result<ImportReport, ImportError> {
    let work = work_dir(app, origin);
    crate::blocking::run(|| std::fs::create_dir_all(&work)).map_err(|e| {
        machine_failure(app, "extract", &work, &e).unwrap_or_else(|| {
            app.metrics.import_failed("extract", "system");
            retry(format!(
                "cannot create {} (RECORDING_WORK_DIR): {e}",
                work.display()
            ))
        })
    })?;
    let result = import_in(app, tarball, &work, expect, fence).await;
    let w = work.clone();
    let _ = blocking(move || std::fs::remove_dir_all(w)).await;
    result
}

/// Imports an already extracted tree holding `<format>/<recordID>/metadata.xml` (copied, the
/// source is left alone).
pub async fn import_tree(app: &App, tree: &Path) -> Result<ImportReport, ImportError> {
    let work = work_dir(app, Origin::Cli);
    let (src, dst) = (tree.to_path_buf(), work.clone());
    blocking(move || copy_dir(&src, &dst)).await?.map_err(|e| {
        retry(format!(
            "cannot copy {} into the work dir: {e}",
            tree.display()
        ))
    })?;
    let result = import_extracted(app, &work, None, None).await;
    let w = work.clone();
    let _ = blocking(move || std::fs::remove_dir_all(w)).await;
    result
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else if t.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

async fn import_in(
    app: &App,
    tarball: &Path,
    work: &Path,
    expect: Option<&str>,
    fence: Option<&Fence>,
) -> Result<ImportReport, ImportError> {
    let (max, max_entries) = (
        app.config.recordings.max_size_bytes,
        app.config.recordings.max_entries,
    );
    let (t, w) = (tarball.to_path_buf(), work.to_path_buf());
    blocking(move || files::extract(&t, &w, max, max_entries))
        .await?
        .map_err(|e| match e {
            // A full or read-only disk is the machine's fault, not the tarball's: keep it
            // and retry.
            files::ExtractError::Machine {
                context,
                cause,
                source,
            } => {
                let what = ioerr::describe(&context, &source);
                app.metrics.import_failed("extract", cause.label());
                tracing::warn!(tarball = %tarball.display(), work = %work.display(), error = %what, "recording import failed: {cause}; the tarball is kept and retried");
                retry(format!("{what} ({cause})"))
            }
            files::ExtractError::Refused(r) => ImportError::Refused(r.0),
        })?;
    fault_delay("import-after-extract").await;
    import_extracted(app, work, expect, fence).await
}

/// Steps 2–5 over an extracted work directory.
async fn import_extracted(
    app: &App,
    work: &Path,
    expect: Option<&str>,
    fence: Option<&Fence>,
) -> Result<ImportReport, ImportError> {
    let cfg = &app.config.recordings;
    let w = work.to_path_buf();
    let dirs = blocking(move || files::format_dirs(&w))
        .await?
        .map_err(|e| {
            machine_failure(app, "extract", work, &e).unwrap_or_else(|| {
                ImportError::Refused(format!("cannot read the extracted tarball: {e}"))
            })
        })?;
    if dirs.is_empty() {
        return Err(ImportError::Refused(
            "no <format>/<recordID>/metadata.xml in the tarball".into(),
        ));
    }
    let mut report = ImportReport::default();
    let mut by_record: BTreeMap<String, Vec<(String, metadata::FormatMetadata)>> = BTreeMap::new();
    for (format, rid) in dirs {
        let label = format!("{format}/{rid}");
        if !files::safe_component(&format) || !files::safe_component(&rid) {
            report.failed.push((label, "unsafe directory name".into()));
            continue;
        }
        if expect.is_some_and(|e| e != rid) {
            report
                .failed
                .push((label, "not the recording named in the upload token".into()));
            continue;
        }
        let md = match crate::blocking::run(|| {
            std::fs::read(work.join(&format).join(&rid).join("metadata.xml"))
        })
        .map_err(|e| e.to_string())
        .and_then(|b| metadata::parse(&b).map_err(|e| e.to_string()))
        {
            Ok(md) => md,
            Err(e) => {
                report.failed.push((label, e));
                continue;
            }
        };
        if md.record_id != rid {
            report.failed.push((
                label,
                format!(
                    "metadata.xml names recording {:?}, not {rid:?}",
                    md.record_id
                ),
            ));
            continue;
        }
        if md.format != format {
            report.failed.push((
                label,
                format!("metadata.xml names format {:?}, not {format:?}", md.format),
            ));
            continue;
        }
        by_record.entry(rid).or_default().push((format, md));
    }
    if by_record.is_empty() {
        let why = report
            .failed
            .iter()
            .map(|(l, r)| format!("{l}: {r}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ImportError::Refused(format!(
            "no format could be imported: {why}"
        )));
    }
    for (rid, formats) in by_record {
        let existing = app
            .recordings
            .recording(&rid)
            .await
            .map_err(|e| store_failed(app, e))?;
        let policy = ImportPolicy {
            from_metadata: formats[0].1.published,
            import_unpublished: cfg.import_unpublished,
            protect_new: cfg.protected_enabled,
        };
        // Where the files go: the decision as the index reads now. The store decides again,
        // in the commit itself; should a publish land in between, the files follow it.
        let published = policy.published(existing.as_ref());
        let (mut root, mut other) = if published {
            (&cfg.publish_dir, &cfg.unpublish_dir)
        } else {
            (&cfg.unpublish_dir, &cfg.publish_dir)
        };
        let mut placed: Vec<(String, metadata::FormatMetadata)> = Vec::new();
        for (format, md) in formats {
            let (staged, root2, f2, r2) = (
                work.join(&format).join(&rid),
                root.clone(),
                format.clone(),
                rid.clone(),
            );
            match blocking(move || files::place(&staged, &root2, &f2, &r2)).await? {
                Ok(()) => placed.push((format, md)),
                Err(e) => {
                    // The publish dir full, read-only or not writable: retry the whole
                    // tarball later (what is placed already is placed again, idempotently).
                    let target = files::format_path(root, &format, &rid);
                    if let Some(err) = machine_failure(app, "place", &target, &e) {
                        return Err(err);
                    }
                    app.metrics.import_failed("place", "tarball");
                    report.failed.push((
                        format!("{format}/{rid}"),
                        format!("cannot move it into {}: {e}", root.display()),
                    ))
                }
            }
        }
        if placed.is_empty() {
            continue;
        }
        fault("import-after-files");
        let rec = recording_from(&placed, existing.as_ref(), published, cfg.protected_enabled);
        // Durable (a FULL-synchronous commit): the caller deletes the tarball after this.
        let stored = app
            .recordings
            .import_recording_decided(&rec, policy, fence)
            .await
            .map_err(|e| store_failed(app, e))?;
        fault("import-after-commit");
        if stored.published != published {
            for (format, _) in &placed {
                let (from, to, f, r) = (root.clone(), other.clone(), format.clone(), rid.clone());
                if let Ok(Err(e)) = blocking(move || files::relocate(&from, &to, &f, &r)).await {
                    tracing::warn!(record = %rid, format = %format, error = %e, "could not move the files after a concurrent publish/unpublish");
                }
            }
            std::mem::swap(&mut root, &mut other);
        }
        let published = stored.published;
        for (format, _) in &placed {
            let (o, f, r) = (other.clone(), format.clone(), rid.clone());
            if let Ok(Err(e)) = blocking(move || files::remove(&o, &f, &r)).await {
                tracing::warn!(record = %rid, format = %format, error = %e, "could not remove the stale copy");
            }
        }
        // Before the tarball goes: an outbox that cannot take the callback now keeps the
        // tarball for a retry (the re-import is idempotent, the callback queued once).
        callback::enqueue_ready(app, &stored)
            .await
            .map_err(|e| store_failed(app, e))?;
        crate::playback::refresh(app, &rid).await;
        tracing::info!(record = %rid, formats = placed.len(), published, "recording imported");
        report
            .imported
            .push((rid, placed.into_iter().map(|(f, _)| f).collect()));
    }
    Ok(report)
}

/// The index row for an import: recording fields from the first format's metadata.xml,
/// one playback format per placed directory.
pub(crate) fn recording_from(
    placed: &[(String, metadata::FormatMetadata)],
    existing: Option<&Recording>,
    published: bool,
    protect_new: bool,
) -> Recording {
    let md = &placed[0].1;
    let state = match md.state.as_deref() {
        Some("published") | None if !published => Some("unpublished".to_string()),
        Some("unpublished") if published => Some("published".to_string()),
        s => s.map(str::to_string),
    };
    let mut meta: Vec<(String, String)> = Vec::new();
    for (_, m) in placed {
        for (k, v) in &m.meta {
            if !meta.iter().any(|(mk, _)| mk == k) {
                meta.push((k.clone(), v.clone()));
            }
        }
    }
    Recording {
        record_id: md.record_id.clone(),
        meeting_id: external_meeting_id(md),
        internal_meeting_id: md.internal_meeting_id.clone(),
        name: md.name.clone(),
        published,
        state: state
            .as_deref()
            .and_then(crate::store::RecordingState::parse),
        start_time: md.start_time_ms,
        end_time: md.end_time_ms,
        participants: placed.iter().find_map(|(_, m)| m.participants),
        raw_size: placed.iter().find_map(|(_, m)| m.raw_size),
        is_breakout: md.is_breakout,
        parent_meeting_id: md.parent_meeting_id.clone(),
        protected: protect_new || existing.is_some_and(|e| e.protected),
        publish_updated: existing.is_some_and(|e| e.publish_updated),
        metadata: meta,
        formats: placed
            .iter()
            .map(|(format, m)| PlaybackFormat {
                format: format.clone(),
                url: m.url.clone(),
                length: m.length_minutes,
                processing_time: m.processing_time,
                size: m.size,
                thumbnails: m.thumbnails.clone(),
            })
            .collect(),
        imported_at: now_ms(),
    }
}

/// `<spool>/failed/`.
pub fn failed_dir(app: &App) -> PathBuf {
    app.config.recordings.spool_dir.join("failed")
}

/// Moves a refused tarball to `<spool>/failed/` with `<name>.reason` next to it; when it
/// cannot, warns with the folder and the error (the tarball stays where it was).
pub fn set_aside(app: &App, tarball: &Path, reason: &str) -> std::io::Result<PathBuf> {
    let result = move_aside(app, tarball, reason);
    if let Err(e) = &result {
        tracing::warn!(tarball = %tarball.display(), folder = %failed_dir(app).display(), error = %e, reason, "cannot set the recording tarball aside; check that the folder exists and is writable");
    }
    result
}

fn move_aside(app: &App, tarball: &Path, reason: &str) -> std::io::Result<PathBuf> {
    let dir = failed_dir(app);
    std::fs::create_dir_all(&dir)?;
    let name = tarball
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upload.tar".into());
    let name = name.trim_start_matches('.').to_string();
    let mut dest = dir.join(&name);
    if dest.exists() {
        dest = dir.join(format!("{}-{name}", now_ms()));
    }
    std::fs::rename(tarball, &dest).or_else(|_| {
        std::fs::copy(tarball, &dest)?;
        std::fs::remove_file(tarball)
    })?;
    let reason_path = PathBuf::from(format!("{}.reason", dest.display()));
    std::fs::write(&reason_path, format!("{reason}\n"))?;
    tracing::warn!(tarball = %dest.display(), reason, "recording tarball set aside");
    Ok(dest)
}

/// The reason text for a partly failed import.
pub fn failed_reason(report: &ImportReport) -> String {
    report
        .failed
        .iter()
        .map(|(l, r)| format!("{l}: {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Imports a spool file and disposes of it: deleted when fully imported, set aside when
/// refused or partly failed, left in place when the failure is worth retrying.
/// With the importer role's `fence`, the index commit is refused once another process
/// took the role over.
pub async fn import_spool_file(
    app: &App,
    path: &Path,
    fence: Option<&Fence>,
) -> Result<ImportReport, ImportError> {
    let result = import_tarball_fenced(app, path, None, Origin::Spool, fence).await;
    app.metrics.observe_import(match &result {
        Ok(rep) if rep.failed.is_empty() => "imported",
        Ok(_) => "partial",
        Err(ImportError::Refused(_)) => "refused",
        Err(ImportError::Retry(_)) => "retry",
    });
    let reason = match &result {
        Ok(report) if report.failed.is_empty() => {
            if let Err(e) = crate::blocking::run(|| std::fs::remove_file(path)) {
                let cause = ioerr::machine_cause(&e).map_or("system", |c| c.label());
                app.metrics.import_failed("remove", cause);
                tracing::error!(file = %path.display(), error = %ioerr::describe("remove", &e), "imported, but the tarball could not be removed; it will be imported again");
            }
            return result;
        }
        Ok(report) => failed_reason(report),
        Err(ImportError::Refused(why)) => {
            app.metrics.import_failed("import", "tarball");
            why.clone()
        }
        Err(ImportError::Retry(why)) => {
            tracing::warn!(file = %path.display(), error = %why, "import failed; will retry");
            return result;
        }
    };
    match crate::blocking::run(|| set_aside(app, path, &reason)) {
        Ok(_) => result,
        // The tarball stays in the spool and is retried with back-off.
        Err(e) => Err(aside_failed(app, path, &reason, &e)),
    }
}

/// A refused tarball that could not be moved to `failed/`: logged with the path and OS
/// error, counted, and turned into a [`ImportError::Retry`].
pub fn aside_failed(app: &App, path: &Path, reason: &str, e: &std::io::Error) -> ImportError {
    let cause = ioerr::machine_cause(e).map_or("system", |c| c.label());
    app.metrics.import_failed("set_aside", cause);
    let what = ioerr::describe(&failed_dir(app).display().to_string(), e);
    tracing::error!(file = %path.display(), error = %what, reason = %reason, "a refused tarball could not be set aside in failed/");
    retry(format!("cannot set it aside: {what}"))
}

/// Whether a spool entry's name is one the importer takes.
pub fn is_tarball_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.ends_with(".tmp")
        && !name.ends_with(".part")
        && (name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz"))
}

/// Spool files ready to import (stable for `settle`), and whether others are still settling.
fn ready_files(spool: &Path, settle: Duration) -> (Vec<PathBuf>, bool) {
    let mut ready = Vec::new();
    let mut settling = false;
    let Ok(entries) = std::fs::read_dir(spool) else {
        return (ready, false);
    };
    let now = SystemTime::now();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_tarball_name(&name) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if age >= settle {
            ready.push(e.path());
        } else {
            settling = true;
        }
    }
    ready.sort();
    (ready, settling)
}

/// Cleans what a crashed importer left: work directories and interrupted swaps.
pub fn recover(app: &App) {
    let cfg = &app.config.recordings;
    let node = crate::lease::node_label(&crate::lease::node_id(&app.config));
    if let Ok(entries) = std::fs::read_dir(&cfg.work_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok());
            if work_dir_abandoned(&name, &node, crate::lease::process_alive, age) {
                match std::fs::remove_dir_all(e.path()) {
                    Ok(()) => {
                        tracing::info!(dir = %e.path().display(), "removed an abandoned import work dir")
                    }
                    Err(err) => {
                        tracing::warn!(dir = %e.path().display(), error = %err, "could not remove an abandoned import work dir")
                    }
                }
            }
        }
    }
    for root in [&cfg.publish_dir, &cfg.unpublish_dir] {
        match files::recover(root) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(dir = %root.display(), n, "recovered interrupted recording moves")
            }
            Err(e) => {
                tracing::warn!(dir = %root.display(), error = %e, "could not recover recording moves")
            }
        }
    }
}

/// Per-file retry back-off for tarballs whose import failed for a reason outside them.
#[derive(Debug, Default)]
pub struct Backoff {
    files: std::collections::HashMap<PathBuf, (u32, std::time::Instant)>,
}

/// The first retry delay; doubles per failure up to [`RETRY_MAX`].
pub const RETRY_BASE: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(300);

impl Backoff {
    /// Whether `path` may be tried at `now`.
    pub fn due(&self, path: &Path, now: std::time::Instant) -> bool {
        self.files.get(path).is_none_or(|(_, at)| *at <= now)
    }

    /// Records a failure; returns the wait before the next try.
    pub fn failed(&mut self, path: &Path, now: std::time::Instant) -> Duration {
        let n = self.files.get(path).map_or(0, |(n, _)| *n);
        let wait = crate::callbacks::backoff(RETRY_BASE, n).min(RETRY_MAX);
        self.files.insert(path.to_path_buf(), (n + 1, now + wait));
        wait
    }

    pub fn done(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// The soonest retry still pending, if any.
    pub fn next_due(&self) -> Option<std::time::Instant> {
        self.files.values().map(|(_, at)| *at).min()
    }

    /// Forgets files no longer in the spool.
    pub fn retain(&mut self, present: &[PathBuf]) {
        self.files.retain(|p, _| present.contains(p));
    }
}

/// The importer role of `serve`.
pub async fn run(app: Arc<App>, mut shutdown: Shutdown) {
    let cfg = app.config.recordings.clone();
    if cfg.disabled {
        return;
    }
    if let Err(e) = crate::blocking::run(|| std::fs::create_dir_all(&cfg.spool_dir)) {
        tracing::warn!(dir = %cfg.spool_dir.display(), error = %e, "cannot create RECORDING_SPOOL_DIR; the importer waits for it");
    }
    let wake = Arc::new(tokio::sync::Notify::new());
    let _watcher = if cfg.import_poll {
        None
    } else {
        watch(&cfg.spool_dir, wake.clone())
    };
    let mut lease = crate::lease::Lease::new(
        app.clone(),
        crate::store::LeaseRole::Importer,
        app.config.role_lease_ttl,
    );
    let mut backoff = Backoff::default();
    loop {
        let mut settling = false;
        let was_held = lease.held();
        if lease.acquire().await {
            // Renewed from now until the batch ends, so a long first import keeps the lease.
            let heartbeat = lease.heartbeat();
            if !was_held {
                crate::blocking::run(|| recover(&app));
            }
            let (ready, s) =
                crate::blocking::run(|| ready_files(&cfg.spool_dir, cfg.import_settle));
            settling = s;
            backoff.retain(&ready);
            for path in ready {
                if shutdown.is_shutdown() || !heartbeat.held() {
                    break;
                }
                if !backoff.due(&path, std::time::Instant::now()) {
                    continue;
                }
                match import_spool_file(&app, &path, lease.fence().as_ref()).await {
                    Err(ImportError::Retry(_)) => {
                        let wait = backoff.failed(&path, std::time::Instant::now());
                        tracing::info!(file = %path.display(), wait_s = wait.as_secs_f64(), "next import attempt after back-off");
                    }
                    _ => backoff.done(&path),
                }
            }
            heartbeat.stop().await;
        }
        let mut wait = if settling {
            cfg.import_settle.max(Duration::from_millis(200))
        } else {
            cfg.import_poll_interval
        };
        if let Some(at) = backoff.next_due() {
            wait = wait.min(at.saturating_duration_since(std::time::Instant::now()));
        }
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = wake.notified() => {
                // Let a burst of events (a file being written) pass before scanning.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = tokio::time::sleep(wait.max(Duration::from_millis(100))) => {}
        }
    }
    lease.release().await;
}

fn watch(dir: &Path, wake: Arc<tokio::sync::Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
        wake.notify_one();
    })
    .map_err(|e| tracing::warn!(error = %e, "inotify unavailable; scanning the spool instead"))
    .ok()?;
    match w.watch(dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the spool; scanning it instead");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_scoped_meeting_ids_are_filed_under_the_front_ends_id() {
        let mut md = metadata::FormatMetadata {
            meeting_id: "room~0b6f".into(),
            meta: vec![("tenant-id".into(), "0b6f".into())],
            ..Default::default()
        };
        assert_eq!(external_meeting_id(&md), "room");
        md.meta.clear();
        assert_eq!(
            external_meeting_id(&md),
            "room~0b6f",
            "no tenant: kept as recorded"
        );
    }

    #[test]
    fn only_work_dirs_of_gone_processes_are_abandoned() {
        let me = std::process::id();
        let name = |node: &str, pid: u32| format!("import-{node}.{pid}.0123abcd");
        let young = Some(Duration::from_secs(5));
        let old = Some(STALE_WORK + Duration::from_secs(1));
        assert_eq!(work_dir_owner(&name("n1", 42)), Some(("n1", 42)));
        assert_eq!(work_dir_owner("upload-a.b.7.ff"), Some(("a.b", 7)));
        assert!(work_dir_abandoned(&name("n1", 42), "n1", |_| false, young));
        assert!(
            !work_dir_abandoned(&name("n1", 42), "n1", |_| true, old),
            "alive: kept"
        );
        assert!(
            !work_dir_abandoned(&name("n1", me), "n1", |_| false, old),
            "ours: kept"
        );
        assert!(
            !work_dir_abandoned(&name("n2", 42), "n1", |_| false, young),
            "another node's"
        );
        assert!(
            work_dir_abandoned(&name("n2", 42), "n1", |_| true, old),
            "stale"
        );
        assert!(!work_dir_abandoned(
            "import-0123abcd",
            "n1",
            |_| false,
            young
        ));
        assert!(work_dir_abandoned("import-0123abcd", "n1", |_| false, old));
    }

    #[test]
    fn retries_back_off_per_file() {
        let mut b = Backoff::default();
        let (p, now) = (PathBuf::from("/s/a.tar"), std::time::Instant::now());
        assert!(b.due(&p, now));
        assert_eq!(b.failed(&p, now), RETRY_BASE);
        assert!(!b.due(&p, now));
        assert_eq!(b.failed(&p, now), RETRY_BASE * 2);
        assert_eq!(b.next_due(), Some(now + RETRY_BASE * 2));
        b.done(&p);
        assert!(b.due(&p, now) && b.next_due().is_none());
    }

    #[test]
    fn only_finished_tarballs_are_taken() {
        assert!(is_tarball_name("r-1.tar"));
        assert!(is_tarball_name("r-1.tar.gz"));
        assert!(!is_tarball_name(".r-1.tar"));
        assert!(!is_tarball_name("r-1.tar.tmp"));
        assert!(!is_tarball_name("r-1.tar.part"));
        assert!(!is_tarball_name("r-1.reason"));
    }
}
