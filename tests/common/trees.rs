//! Recording trees on disk as BBB publishes them (`<root>/<format>/<recordID>/`), for the
//! in-place import tests.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

/// The inode number of a file: unchanged by a rename, new for a copy.
pub fn inode(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}
