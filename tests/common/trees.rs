//! Recording trees on disk as BBB publishes them (`<root>/<format>/<recordID>/`), for the
//! in-place import tests, and tarballs as BBB servers send them ([`tarball_for`]).

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

/// The record id of `fixtures/recordings/presentation.tar`.
pub use super::nginx::PRES;

/// presentation.tar with its record id replaced by `rid` (paths and metadata.xml).
pub fn tarball_for(rid: &str, dest: &Path) {
    let src = std::fs::File::open(super::fixtures().join("recordings/presentation.tar")).unwrap();
    let mut input = tar::Archive::new(src);
    let tmp = dest.with_file_name(format!(
        ".{}.tmp",
        dest.file_name().unwrap().to_string_lossy()
    ));
    let mut out = tar::Builder::new(std::fs::File::create(&tmp).unwrap());
    for e in input.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().replace(PRES, rid);
        let mut header = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if path.ends_with("metadata.xml") {
            data = String::from_utf8(data)
                .unwrap()
                .replace(PRES, rid)
                .into_bytes();
        }
        header.set_size(data.len() as u64);
        if header.entry_type() == tar::EntryType::Symlink {
            let target = e.link_name().unwrap().unwrap().into_owned();
            out.append_link(&mut header, &path, target).unwrap();
        } else {
            out.append_data(&mut header, &path, &data[..]).unwrap();
        }
    }
    out.finish().unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}
