//! Domain actions on one recording, shared by the API calls and the CLI: publish,
//! unpublish (files first, then the index, under the recording's claim) and the removal
//! of its files on delete. No HTTP here: handlers parse, call one of these, answer.

use std::path::PathBuf;

use super::files;
use crate::app::App;
use crate::store::claim::RecordingClaim;
use crate::store::recordings::{Recording, RecordingState};

/// Publishes or unpublishes one recording under its claim: re-read, then (if it still
/// needs it) its files moved and its index row changed together.
pub async fn publish_one(app: &App, record_id: &str, publish: bool) -> Result<(), String> {
    let claim = RecordingClaim::take(&app.leases, record_id)
        .await
        .map_err(|e| e.to_string())?;
    let result = match app.recordings.recording(record_id).await {
        Ok(Some(rec)) if rec.state.is_some_and(RecordingState::is_settled) => {
            if rec.published == publish {
                Ok(())
            } else {
                set_published(app, &rec, publish).await
            }
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    claim.release().await;
    result
}

/// Moves every format, then updates the index; a failed move puts back the ones already
/// moved, so files and index always agree. The caller holds the recording's claim.
pub async fn set_published(app: &App, rec: &Recording, publish: bool) -> Result<(), String> {
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
    .map_err(|e| e.to_string())??;
    app.recordings
        .set_published(&rec.record_id, publish)
        .await
        .map_err(|e| e.to_string())
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
