//! Recording administration: the actions behind `ferrolite recordings …`.
//!
//! `import` takes a tarball, a directory of tarballs, or an extracted
//! `<format>/<recordID>/` tree (the source is never removed); `publish`, `unpublish` and
//! `delete` do what the API calls do (files first, then the index); `prune` deletes
//! recordings older than a number of days (Scalelite had no retention job; operators wrote
//! psql scripts).

use std::path::{Path, PathBuf};

use super::progress::{Display, Progress, Summary};
use super::{AdminError, AdminResult};
use crate::api::recordings::{remove_everywhere, set_published};
use crate::app::App;
use crate::recordings::{files, importer};
use crate::store::now_ms;
use crate::store::recordings::Recording;

/// What an import did: one line per imported recording, one per problem, and the counts.
#[derive(Debug, Default)]
pub struct ImportResult {
    pub imported: Vec<String>,
    pub problems: Vec<String>,
    pub summary: Summary,
}

/// The work `path` names: itself (a tarball or an extracted tree), or the tarballs in it
/// (sorted) and how many other entries it holds.
fn work_items(path: &Path) -> AdminResult<(Vec<(PathBuf, bool)>, usize)> {
    let meta = std::fs::metadata(path)
        .map_err(|e| AdminError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_file() {
        return Ok((vec![(path.to_path_buf(), false)], 0));
    }
    if files::format_dirs(path)
        .map(|d| !d.is_empty())
        .unwrap_or(false)
    {
        return Ok((vec![(path.to_path_buf(), true)], 0));
    }
    let (tars, others): (Vec<_>, Vec<_>) = std::fs::read_dir(path)
        .map_err(|e| AdminError::Invalid(format!("cannot read {}: {e}", path.display())))?
        .flatten()
        .partition(|e| importer::is_tarball_name(&e.file_name().to_string_lossy()));
    let mut tars: Vec<_> = tars.into_iter().map(|e| (e.path(), false)).collect();
    tars.sort();
    if tars.is_empty() {
        return Err(AdminError::Invalid(format!(
            "{} holds neither tarballs nor <format>/<recordID>/metadata.xml",
            path.display()
        )));
    }
    Ok((tars, others.len()))
}

/// Imports `path` (the source is left alone), showing progress as `display` says and each
/// problem as it happens.
pub async fn import(app: &App, path: &Path, display: Display) -> AdminResult<ImportResult> {
    let (items, skipped) = work_items(path)?;
    let mut result = ImportResult::default();
    result.summary.skipped = skipped;
    let mut progress = Progress::new("importing", items.len() as u64, display);
    for (item, is_tree) in items {
        let outcome = if is_tree {
            importer::import_tree(app, &item).await
        } else {
            importer::import_tarball(app, &item, None, importer::Origin::Cli).await
        };
        let label = item.display();
        let mut problems = Vec::new();
        match outcome {
            Ok(rep) => {
                for (rid, formats) in &rep.imported {
                    result
                        .imported
                        .push(format!("imported {rid} ({})", formats.join(", ")));
                }
                for (f, why) in &rep.failed {
                    problems.push(format!("{label}: {f}: {why}"));
                }
            }
            Err(e) => problems.push(format!("{label}: {e}")),
        }
        if problems.is_empty() {
            result.summary.imported += 1;
        } else {
            result.summary.failed += 1;
        }
        for p in problems {
            progress.problem(&format!("could not import {p}"));
            result.problems.push(p);
        }
        progress.inc();
    }
    result.summary.seconds = progress.finish().as_secs_f64();
    Ok(result)
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
    if !matches!(rec.state.as_deref(), Some("published" | "unpublished")) {
        return Err(AdminError::Invalid(format!(
            "recording {id} is {}; only published or unpublished recordings can be (un)published",
            rec.state.as_deref().unwrap_or("in no state")
        )));
    }
    if rec.published == publish {
        return Ok(());
    }
    set_published(app, &rec, publish)
        .await
        .map_err(|e| AdminError::Invalid(format!("could not move the files of {id}: {e}")))
}

pub async fn delete(app: &App, id: &str) -> AdminResult<()> {
    let rec = existing(app, id).await?;
    app.recordings.tombstone_recording(&rec.record_id).await?;
    let cfg = &app.config.recordings;
    remove_everywhere(&[cfg.publish_dir.clone(), cfg.unpublish_dir.clone()], id).map_err(|e| {
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
