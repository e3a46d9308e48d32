//! Recording administration: the actions behind `ferrolite recordings …`.
//!
//! `import` takes a tarball, a directory of tarballs, or an extracted
//! `<format>/<recordID>/` tree (tarballs are kept; a tree is indexed where it lies, see
//! `crate::recordings::in_place`); `publish`, `unpublish` and
//! `delete` do what the API calls do (files first, then the index); `prune` deletes
//! recordings older than a number of days (Scalelite had no retention job; operators wrote
//! psql scripts).

use std::path::{Path, PathBuf};

use super::progress::{Display, Progress, Summary};
use super::{AdminError, AdminResult};
use crate::app::App;
use crate::recordings::actions::{self, ActionError};
use crate::recordings::{files, importer, in_place};
use crate::store::now_ms;
use crate::store::recordings::{Recording, RecordingState};

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

/// Imports `path` (tarballs are left alone, a tree is indexed where it lies), showing
/// progress as `display` says and each problem as it happens. `dry_run` (trees only)
/// changes nothing.
pub async fn import(
    app: &App,
    path: &Path,
    dry_run: bool,
    display: Display,
) -> AdminResult<ImportResult> {
    let (items, skipped) = work_items(path)?;
    if dry_run && !items.iter().all(|(_, is_tree)| *is_tree) {
        return Err(AdminError::Invalid(
            "--dry-run applies to a <format>/<recordID>/ tree, not to tarballs".into(),
        ));
    }
    let mut result = ImportResult::default();
    result.summary.skipped = skipped;
    let mut progress = Progress::new("importing", items.len() as u64, display);
    for (item, is_tree) in items {
        if is_tree {
            import_in_place(app, &item, dry_run, &mut progress, &mut result).await?;
            continue;
        }
        let outcome = { importer::import_tarball(app, &item, None, importer::Origin::Cli).await };
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

/// A tree indexed where it lies (never copied): each recording counts as one item.
async fn import_in_place(
    app: &App,
    tree: &Path,
    dry_run: bool,
    progress: &mut Progress,
    result: &mut ImportResult,
) -> AdminResult<()> {
    let r = in_place::import(app, tree, dry_run, |line| progress.note(line))
        .await
        .map_err(AdminError::Invalid)?;
    let verb = if dry_run { "would index" } else { "indexed" };
    let state = if r.published {
        "published"
    } else {
        "unpublished"
    };
    for (rid, formats) in &r.indexed {
        result
            .imported
            .push(format!("{verb} {rid} ({}) as {state}", formats.join(", ")));
    }
    result.summary.imported += r.indexed.len();
    result.summary.skipped += r.already.len();
    result.summary.failed += r.failed.len();
    for (label, why) in &r.failed {
        let p = format!("{}: {label}: {why}", tree.display());
        progress.problem(&format!("could not import {p}"));
        result.problems.push(p);
    }
    result.imported.push(format!(
        "{verb} {} recording(s) as {state}, {} already indexed, {} format dir(s) renamed, none copied{}",
        r.indexed.len(),
        r.already.len(),
        r.moved,
        if dry_run { "; dry run: nothing was changed" } else { "" }
    ));
    progress.inc();
    Ok(())
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
    actions::publish_one(app, id, publish)
        .await
        .map_err(|e| AdminError::Invalid(format!("could not move the files of {id}: {e}")))
}

pub async fn delete(app: &App, id: &str) -> AdminResult<()> {
    let rec = existing(app, id).await?;
    match actions::delete_one(app, &rec.record_id).await {
        Ok(()) => Ok(()),
        Err(ActionError::Store(e)) => Err(e.into()),
        Err(ActionError::Files(e)) => Err(AdminError::Invalid(format!(
            "{id} is deleted from the index, but files remain: {e}"
        ))),
    }
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
