//! `ferrolite recordings import DIR` on Scalelite's published and unpublished trees: the
//! recordings are indexed where they lie (or renamed into place on the same filesystem),
//! never copied (inode numbers stay), and the directory decides the state, whatever
//! metadata.xml and RECORDING_IMPORT_UNPUBLISHED say.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{count, xml_field, Lb};

/// Writes `<root>/presentation/<rid>/` as BBB publishes it; metadata.xml always says
/// published (Scalelite's unpublish only moves the folder). Returns the media file.
pub fn write_recording(root: &Path, rid: &str, meeting: &str) -> PathBuf {
    let dir = root.join("presentation").join(rid);
    std::fs::create_dir_all(dir.join("video")).unwrap();
    std::fs::write(
        dir.join("metadata.xml"),
        format!(
            r#"<?xml version="1.0"?>
<recording><id>{rid}</id><state>published</state><published>true</published>
<start_time>1715261728123</start_time><end_time>1715265330913</end_time><participants>3</participants>
<meeting id="{rid}" externalId="{meeting}" name="Room {meeting}" breakout="false"/>
<meta><bbb-origin>greenlight</bbb-origin><meetingId>{meeting}</meetingId></meta>
<playback><format>presentation</format><link>https://bbb1.example.org/playback/presentation/2.3/{rid}</link>
<processing_time>100</processing_time><duration>3544120</duration></playback></recording>"#
        ),
    )
    .unwrap();
    let media = dir.join("video").join("webcams.webm");
    std::fs::write(&media, vec![7u8; 4096]).unwrap();
    media
}

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

const PUB: &str = "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123";
const UNPUB: &str = "b1715c95000a2bcb90604ecc7097dbc94592c690-1715261728124";

fn lb_with(dirs: &Path) -> Lb {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Lb::base_env(&dir);
    for (k, d) in [
        ("RECORDING_PUBLISH_DIR", "published"),
        ("RECORDING_UNPUBLISH_DIR", "unpublished"),
        ("RECORDING_SPOOL_DIR", "spool"),
        ("RECORDING_WORK_DIR", "work"),
    ] {
        env.push((k.into(), dirs.join(d).display().to_string()));
    }
    env.push(("RECORDING_IMPORT_UNPUBLISHED".into(), "true".into()));
    env.push(("IMPORTER_ENABLED".into(), "false".into()));
    Lb::start_in(dir, env)
}

#[tokio::test]
async fn scalelite_dirs_are_indexed_where_they_lie_and_the_directory_decides_the_state() {
    let var = tempfile::tempdir().unwrap();
    let pub_media = write_recording(&var.path().join("published"), PUB, "room-1");
    let unpub_media = write_recording(&var.path().join("unpublished"), UNPUB, "room-2");
    let (i_pub, i_unpub) = (inode(&pub_media), inode(&unpub_media));
    let lb = lb_with(var.path());

    // A dry run changes nothing.
    let dry = lb.cli_ok(&[
        "recordings",
        "import",
        "--dry-run",
        &var.path().join("published").display().to_string(),
    ]);
    assert!(dry.contains("would index") && dry.contains(PUB), "{dry}");
    let (_, none) = lb.get("getRecordings", "").await;
    assert_eq!(count(&none, "recording"), 0, "{none}");

    for d in ["published", "unpublished"] {
        let out = lb.cli_ok(&[
            "recordings",
            "import",
            &var.path().join(d).display().to_string(),
        ]);
        assert!(
            out.contains("none copied") && out.contains("0 format dir(s) renamed"),
            "{out}"
        );
    }
    // Same files, same places (RECORDING_IMPORT_UNPUBLISHED=true moved nothing).
    assert_eq!(inode(&pub_media), i_pub);
    assert_eq!(inode(&unpub_media), i_unpub);
    let (_, one) = lb.get("getRecordings", &format!("recordID={PUB}")).await;
    assert_eq!(
        xml_field(&one, "published").as_deref(),
        Some("true"),
        "{one}"
    );
    let (_, two) = lb.get("getRecordings", &format!("recordID={UNPUB}")).await;
    assert_eq!(
        xml_field(&two, "published").as_deref(),
        Some("false"),
        "{two}"
    );
    assert_eq!(
        xml_field(&two, "state").as_deref(),
        Some("unpublished"),
        "{two}"
    );
    let listed = lb.cli_ok(&["recordings", "list"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");

    // Again: already indexed, nothing changes.
    let again = lb.cli_ok(&[
        "recordings",
        "import",
        &var.path().join("published").display().to_string(),
    ]);
    assert!(
        again.contains("indexed 0") && again.contains("1 already indexed"),
        "{again}"
    );
    assert_eq!(lb.cli_ok(&["recordings", "list"]), listed);
}

#[tokio::test]
async fn a_tree_elsewhere_is_renamed_into_place_never_copied() {
    let var = tempfile::tempdir().unwrap();
    let old = var.path().join("old");
    let pub_media = write_recording(&old.join("published"), PUB, "room-1");
    let unpub_media = write_recording(&old.join("unpublished"), UNPUB, "room-2");
    let (i_pub, i_unpub) = (inode(&pub_media), inode(&unpub_media));
    let lb = lb_with(var.path());
    for d in ["published", "unpublished"] {
        let out = lb.cli_ok(&["recordings", "import", &old.join(d).display().to_string()]);
        assert!(out.contains("1 format dir(s) renamed"), "{out}");
    }
    let moved_pub = var
        .path()
        .join("published/presentation")
        .join(PUB)
        .join("video/webcams.webm");
    let moved_unpub = var
        .path()
        .join("unpublished/presentation")
        .join(UNPUB)
        .join("video/webcams.webm");
    assert_eq!(inode(&moved_pub), i_pub, "renamed, not copied");
    assert_eq!(inode(&moved_unpub), i_unpub, "renamed, not copied");
    assert!(!pub_media.exists() && !unpub_media.exists());
    let (_, two) = lb.get("getRecordings", &format!("recordID={UNPUB}")).await;
    assert_eq!(
        xml_field(&two, "published").as_deref(),
        Some("false"),
        "{two}"
    );
}
