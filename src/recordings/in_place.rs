//! Indexing a recording tree where it lies (`ferrolite recordings import DIR` on a
//! `<format>/<recordID>/metadata.xml` tree, e.g. Scalelite's published or unpublished dir).
//!
//! Files are never copied: a tree that already is `RECORDING_PUBLISH_DIR` or
//! `RECORDING_UNPUBLISH_DIR` is indexed as it is, and a tree elsewhere is moved into place
//! with one rename per recording format (same filesystem only; another filesystem is refused
//! with a message instead of copying terabytes). The directory a recording is found in
//! decides its state (the unpublish dir, or a tree named `unpublished`, means unpublished,
//! whatever metadata.xml says, since Scalelite's unpublish only moves folders);
//! `RECORDING_IMPORT_UNPUBLISHED` does not apply to such a migration, and no recording-ready
//! callback is sent (Scalelite sent them). A recording the index already holds (e.g. carried
//! over by `ferrolite scalelite import`, with its later renames and protection) is left as
//! indexed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{files, importer, metadata};
use crate::app::App;
use crate::config::RecordingConfig;

/// Where a tree's recordings end up and in which state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub published: bool,
    /// The recording root the formats must be in.
    pub root: PathBuf,
    /// Whether the tree already is that root (nothing is moved).
    pub in_place: bool,
}

/// Decides a tree's state and destination from its (canonical) path.
pub fn destination(tree: &Path, publish: &Path, unpublish: &Path) -> Destination {
    if tree == unpublish {
        return Destination {
            published: false,
            root: unpublish.to_path_buf(),
            in_place: true,
        };
    }
    if tree == publish {
        return Destination {
            published: true,
            root: publish.to_path_buf(),
            in_place: true,
        };
    }
    let published = tree.file_name().and_then(|n| n.to_str()) != Some("unpublished");
    Destination {
        published,
        root: if published { publish } else { unpublish }.to_path_buf(),
        in_place: false,
    }
}

/// What an in-place import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InPlaceReport {
    pub published: bool,
    /// `(record id, formats)` newly indexed.
    pub indexed: Vec<(String, Vec<String>)>,
    /// Record ids the index already held.
    pub already: Vec<String>,
    /// Format directories renamed into the recording root.
    pub moved: usize,
    /// `(format/recordID, reason)`.
    pub failed: Vec<(String, String)>,
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn same_filesystem(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // The target root may not exist yet: compare with its nearest existing ancestor.
    let existing = |p: &Path| {
        p.ancestors()
            .find_map(|a| std::fs::metadata(a).ok())
            .map(|m| m.dev())
    };
    existing(a).is_some() && existing(a) == existing(b)
}

/// Indexes (and if needed renames into place) every recording of `tree`. `progress` gets
/// one line per recording.
pub async fn import(
    app: &App,
    tree: &Path,
    dry_run: bool,
    mut progress: impl FnMut(&str),
) -> Result<InPlaceReport, String> {
    let cfg: &RecordingConfig = &app.config.recordings;
    let tree_c = canonical(tree);
    let dest = destination(
        &tree_c,
        &canonical(&cfg.publish_dir),
        &canonical(&cfg.unpublish_dir),
    );
    if !dest.in_place && !same_filesystem(&tree_c, &dest.root) {
        return Err(format!(
            "{} is on another filesystem than {}; recordings are never copied: set \
             RECORDING_PUBLISH_DIR/RECORDING_UNPUBLISH_DIR to Scalelite's directories, or \
             move the tree onto that filesystem first",
            tree.display(),
            dest.root.display()
        ));
    }
    let dirs =
        files::format_dirs(&tree_c).map_err(|e| format!("cannot read {}: {e}", tree.display()))?;
    let mut report = InPlaceReport {
        published: dest.published,
        ..InPlaceReport::default()
    };
    let mut by_record: BTreeMap<String, Vec<(String, metadata::FormatMetadata)>> = BTreeMap::new();
    for (format, rid) in dirs {
        let label = format!("{format}/{rid}");
        if !files::safe_component(&format) || !files::safe_component(&rid) {
            report.failed.push((label, "unsafe directory name".into()));
            continue;
        }
        let md = std::fs::read(tree_c.join(&format).join(&rid).join("metadata.xml"))
            .map_err(|e| e.to_string())
            .and_then(|b| metadata::parse(&b).map_err(|e| e.to_string()));
        match md {
            Ok(md) if md.record_id == rid && md.format == format => {
                by_record.entry(rid).or_default().push((format, md))
            }
            Ok(md) => report.failed.push((
                label,
                format!("metadata.xml names {}/{}", md.format, md.record_id),
            )),
            Err(e) => report.failed.push((label, e)),
        }
    }
    let total = by_record.len();
    for (n, (rid, formats)) in by_record.into_iter().enumerate() {
        let existing = app
            .recordings
            .recording(&rid)
            .await
            .map_err(|e| e.to_string())?;
        if existing.is_some() {
            progress(&format!(
                "[{}/{total}] {rid}: already indexed, left as it is",
                n + 1
            ));
            report.already.push(rid);
            continue;
        }
        let mut placed = Vec::new();
        for (format, md) in formats {
            if !dest.in_place {
                let to = files::format_path(&dest.root, &format, &rid);
                if to.exists() {
                    report.failed.push((
                        format!("{format}/{rid}"),
                        format!("{} already exists", to.display()),
                    ));
                    continue;
                }
                if !dry_run {
                    let from = files::format_path(&tree_c, &format, &rid);
                    let moved = std::fs::create_dir_all(dest.root.join(&format))
                        .and_then(|()| std::fs::rename(&from, &to));
                    if let Err(e) = moved {
                        report.failed.push((
                            format!("{format}/{rid}"),
                            format!("cannot rename it to {}: {e}", to.display()),
                        ));
                        continue;
                    }
                }
                report.moved += 1;
            }
            placed.push((format, md));
        }
        if placed.is_empty() {
            continue;
        }
        let rec = importer::recording_from(&placed, None, dest.published, cfg.protected_enabled);
        if !dry_run {
            app.recordings
                .import_recording(&rec)
                .await
                .map_err(|e| e.to_string())?;
            crate::playback::refresh(app, &rid).await;
        }
        let formats: Vec<String> = placed.into_iter().map(|(f, _)| f).collect();
        progress(&format!(
            "[{}/{total}] {rid}: {} {} ({})",
            n + 1,
            if dry_run { "would index" } else { "indexed" },
            if dest.published {
                "published"
            } else {
                "unpublished"
            },
            formats.join(", ")
        ));
        report.indexed.push((rid, formats));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_decides_the_state() {
        let (p, u) = (Path::new("/srv/pub"), Path::new("/srv/unpub"));
        assert_eq!(
            destination(u, p, u),
            Destination {
                published: false,
                root: u.into(),
                in_place: true
            }
        );
        assert_eq!(
            destination(p, p, u),
            Destination {
                published: true,
                root: p.into(),
                in_place: true
            }
        );
        let old = destination(Path::new("/var/bigbluebutton/unpublished"), p, u);
        assert!(!old.published && !old.in_place && old.root == u);
        let pubd = destination(Path::new("/var/bigbluebutton/published"), p, u);
        assert!(pubd.published && pubd.root == p);
    }
}
