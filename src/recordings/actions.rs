//! Domain actions on recordings, shared by the API calls and the CLI: publish, unpublish
//! (files first, then the index, under the recording's claim), delete (index tombstone
//! first, then the files) and metadata/protection updates, each keeping the playback links
//! in step. No HTTP here: handlers parse, call one of these, answer.

use std::path::PathBuf;

use super::files;
use crate::app::App;
use crate::store::claim::RecordingClaim;
use crate::store::recordings::{Recording, RecordingState};
use crate::store::{StoreError, StoreResult};

/// Why an action on one recording did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The files could not be moved or removed (the index says what happened).
    #[error("{0}")]
    Files(String),
}

/// Publishes or unpublishes one recording under its claim: re-read, then (if it still
/// needs it) its files moved and its index row changed together, then its playback links
/// brought in line.
pub async fn publish_one(app: &App, record_id: &str, publish: bool) -> Result<(), ActionError> {
    let claim = RecordingClaim::take(&app.leases, record_id).await?;
    let result = match app.recordings.recording(record_id).await {
        Ok(Some(rec)) if rec.state.is_some_and(RecordingState::is_settled) => {
            if rec.published == publish {
                Ok(false)
            } else {
                set_published(app, &rec, publish).await.map(|()| true)
            }
        }
        Ok(_) => Ok(false),
        Err(e) => Err(e.into()),
    };
    claim.release().await;
    if result? {
        crate::playback::refresh(app, record_id).await;
        if !publish {
            // Other nodes drop their public links too, within seconds.
            crate::playback::announce(app).await;
        }
    }
    Ok(())
}

/// Moves every format, then updates the index; a failed move puts back the ones already
/// moved, so files and index always agree. The caller holds the recording's claim.
pub async fn set_published(app: &App, rec: &Recording, publish: bool) -> Result<(), ActionError> {
    let cfg = &app.config.recordings;
    let (from, to) = if publish {
        (cfg.unpublish_dir.clone(), cfg.publish_dir.clone())
    } else {
        (cfg.publish_dir.clone(), cfg.unpublish_dir.clone())
    };
    let rid = rec.record_id.clone();
    let formats: Vec<String> = rec.formats.iter().map(|f| f.format.clone()).collect();
    tokio::task::spawn_blocking(move || {
        let mut moved: Vec<&String> = Vec::new();
        for f in &formats {
            if let Err(e) = files::relocate(&from, &to, f, &rid) {
                for m in moved {
                    let _ = files::relocate(&to, &from, m, &rid);
                }
                return Err(format!("{f}: {e}"));
            }
            moved.push(f);
        }
        Ok(())
    })
    .await
    .map_err(|e| ActionError::Files(e.to_string()))?
    .map_err(ActionError::Files)?;
    Ok(app
        .recordings
        .set_published(&rec.record_id, publish)
        .await?)
}

/// Deletes one recording under its claim: its links removed (fail closed), its index row
/// tombstoned, then its files removed. [`ActionError::Files`]: the recording is deleted
/// from the index but some files remain.
pub async fn delete_one(app: &App, record_id: &str) -> Result<(), ActionError> {
    let claim = RecordingClaim::take(&app.leases, record_id).await?;
    crate::playback::unlink(app, record_id);
    let tombstoned = app.recordings.tombstone_recording(record_id).await;
    crate::playback::unlink(app, record_id);
    if let Err(e) = tombstoned {
        claim.release().await;
        return Err(e.into());
    }
    crate::playback::announce(app).await;
    let cfg = &app.config.recordings;
    let (roots, rid) = (
        [cfg.publish_dir.clone(), cfg.unpublish_dir.clone()],
        record_id.to_string(),
    );
    let removed = tokio::task::spawn_blocking(move || remove_everywhere(&roots, &rid)).await;
    claim.release().await;
    match removed {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ActionError::Files(e.to_string())),
        Err(e) => Err(ActionError::Files(e.to_string())),
    }
}

/// Changes metadata (`None` removes a key) and protection of the recordings `ids` (of
/// `tenant`, when given). Protecting removes the public links before the index says so;
/// every link is brought in line afterwards. `Ok(false)`: nothing was updated.
pub async fn update(
    app: &App,
    ids: &[String],
    tenant: Option<&str>,
    changes: &[(String, Option<String>)],
    protect: Option<bool>,
) -> StoreResult<bool> {
    if protect == Some(true) {
        for id in ids {
            crate::playback::unlink(app, id);
        }
    }
    let result = app
        .recordings
        .update_recordings(ids, tenant, changes, protect)
        .await;
    for id in ids {
        crate::playback::refresh(app, id).await;
    }
    if protect == Some(true) {
        crate::playback::announce(app).await;
    }
    Ok(result?.unwrap_or(false))
}

/// Removes `<root>/<any format>/<record_id>` under each root.
pub fn remove_everywhere(roots: &[PathBuf], record_id: &str) -> std::io::Result<()> {
    if !files::safe_component(record_id) {
        return Ok(());
    }
    for root in roots {
        let Ok(formats) = std::fs::read_dir(root) else {
            continue;
        };
        for f in formats.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if files::safe_component(&name) {
                files::remove(root, &name, record_id)?;
            }
        }
    }
    Ok(())
}
