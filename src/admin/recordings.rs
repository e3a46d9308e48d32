//! Recording administration: the actions behind `ferrolite recordings …`.
//!
//! `import` takes a tarball, a directory of tarballs, or an extracted
//! `<format>/<recordID>/` tree (tarballs are kept; a tree is indexed in place, see
//! `crate::recordings::in_place`); `publish`, `unpublish` and
//! `delete` do what the API calls do (files first, then the index); `prune` deletes
//! recordings older than a number of days (Scalelite had no retention job; operators wrote
//! psql scripts).

use std::path::Path;

use super::{AdminError, AdminResult};
use crate::api::recordings::{publish_one, remove_everywhere};
use crate::app::App;
use crate::recordings::{files, importer, in_place};
use crate::store::now_ms;
use crate::store::recordings::{Recording, RecordingState};

/// Imports `path`; returns one line per imported recording. `dry_run` (trees only) changes
/// nothing.
pub async fn import(app: &App, path: &Path, dry_run: bool) -> AdminResult<Vec<String>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| AdminError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut one = |label: String, r: Result<importer::ImportReport, importer::ImportError>| match r
    {
        Ok(rep) => {
            for (rid, formats) in &rep.imported {
                lines.push(format!("imported {rid} ({})", formats.join(", ")));
            }
            for (f, why) in &rep.failed {
                failures.push(format!("{label}: {f}: {why}"));
            }
        }
        Err(e) => failures.push(format!("{label}: {e}")),
    };
    if dry_run
        && files::format_dirs(path)
            .map(|d| d.is_empty())
            .unwrap_or(true)
    {
        return Err(AdminError::Invalid(
            "--dry-run applies to a <format>/<recordID>/ tree, not to tarballs".into(),
        ));
    }
    if meta.is_file() {
        one(
            path.display().to_string(),
            importer::import_tarball(app, path, None, importer::Origin::Cli).await,
        );
    } else if files::format_dirs(path)
        .map(|d| !d.is_empty())
        .unwrap_or(false)
    {
        return import_in_place(app, path, dry_run).await;
    } else {
        let mut tars: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| AdminError::Invalid(format!("cannot read {}: {e}", path.display())))?
            .flatten()
            .filter(|e| importer::is_tarball_name(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        tars.sort();
        if tars.is_empty() {
            return Err(AdminError::Invalid(format!(
                "{} holds neither tarballs nor <format>/<recordID>/metadata.xml",
                path.display()
            )));
        }
        for t in tars {
            let r = importer::import_tarball(app, &t, None, importer::Origin::Cli).await;
            one(t.display().to_string(), r);
        }
    }
    if !failures.is_empty() {
        for l in &lines {
            println!("{l}");
        }
        return Err(AdminError::Invalid(format!(
            "could not import:\n  {}",
            failures.join("\n  ")
        )));
    }
    Ok(lines)
}

/// A tree indexed where it lies; progress lines are printed as they happen.
async fn import_in_place(app: &App, path: &Path, dry_run: bool) -> AdminResult<Vec<String>> {
    let r = in_place::import(app, path, dry_run, |line| println!("{line}"))
        .await
        .map_err(AdminError::Invalid)?;
    let mut lines = vec![format!(
        "{} {} recording(s) as {}, {} already indexed, {} format dir(s) renamed, none copied",
        if dry_run { "would index" } else { "indexed" },
        r.indexed.len(),
        if r.published {
            "published"
        } else {
            "unpublished"
        },
        r.already.len(),
        r.moved
    )];
    if dry_run {
        lines.push("dry run: nothing was changed".into());
    }
    if !r.failed.is_empty() {
        for l in &lines {
            println!("{l}");
        }
        let f: Vec<String> = r
            .failed
            .iter()
            .map(|(l, why)| format!("{l}: {why}"))
            .collect();
        return Err(AdminError::Invalid(format!(
            "could not import:\n  {}",
            f.join("\n  ")
        )));
    }
    Ok(lines)
}

pub async fn list(app: &App, meeting_id: Option<&str>) -> AdminResult<Vec<Recording>> {
    Ok(app.recordings.list_recordings(meeting_id).await?)
}

async fn existing(app: &App, id: &str) -> AdminResult<Recording> {
    match app.recordings.recording(id).await? {
        Some(r) => Ok(r),
        None => Err(AdminError::NotFound(format!(
            "no recording has the id {id:?}; `ferrolite recordings list` shows them"
        ))),
    }
}

pub async fn publish(app: &App, id: &str, publish: bool) -> AdminResult<()> {
    let rec = existing(app, id).await?;
    if !rec.state.is_some_and(RecordingState::is_settled) {
        return Err(AdminError::Invalid(format!(
            "recording {id} is {}; only published or unpublished recordings can be (un)published",
            rec.state.map_or("in no state", RecordingState::as_str)
        )));
    }
    if rec.published == publish {
        return Ok(());
    }
    publish_one(app, id, publish)
        .await
        .map_err(|e| AdminError::Invalid(format!("could not move the files of {id}: {e}")))
}

pub async fn delete(app: &App, id: &str) -> AdminResult<()> {
    let rec = existing(app, id).await?;
    let claim = crate::store::claim::RecordingClaim::take(&app.leases, &rec.record_id).await?;
    app.recordings.tombstone_recording(&rec.record_id).await?;
    let cfg = &app.config.recordings;
    let removed = crate::blocking::run(|| {
        remove_everywhere(&[cfg.publish_dir.clone(), cfg.unpublish_dir.clone()], id)
    });
    claim.release().await;
    removed.map_err(|e| {
        AdminError::Invalid(format!(
            "{id} is deleted from the index, but files remain: {e}"
        ))
    })
}

/// Recordings that started more than `days` ago; deleted unless `dry_run`.
pub async fn prune(app: &App, days: u64, dry_run: bool) -> AdminResult<Vec<Recording>> {
    let before = now_ms() - (days as i64) * 86_400_000;
    let old = app.recordings.recordings_started_before(before).await?;
    if !dry_run {
        for r in &old {
            delete(app, &r.record_id).await?;
        }
    }
    Ok(old)
}
