//! Recordings end to end through the real binary: spool import, the recording API, files
//! on disk, hostile tarballs, crash recovery, HTTP upload and the recording-ready callback.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const PRES: &str = "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123";
const VIDEO: &str = "b1826d06111b3cdca1715fdd8108ecd05603d701-1715348128456";
const PODCAST: &str = "c2937e17222c4dedb2826aee9219fde16714e812-1715434528789";
const BREAKOUT: &str = "d3a48f28333d5efec3937bff0320aef27825f923-1715520928012";
const WAIT: Duration = Duration::from_secs(20);

struct Rec {
    lb: Lb,
    root: PathBuf,
}

impl Rec {
    fn start(extra: &[(&str, &str)]) -> Rec {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut env = recording_env(&dir);
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        Rec {
            lb: Lb::start_in(dir, env),
            root,
        }
    }

    fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// Copies a fixture into the spool the way rsync does: a hidden temp name, then a rename.
    fn drop_in(&self, fixture: &str) {
        let tmp = self.spool().join(format!(".{fixture}.XXXX"));
        std::fs::copy(fixtures().join("recordings").join(fixture), &tmp).unwrap();
        std::fs::rename(&tmp, self.spool().join(fixture)).unwrap();
    }

    async fn recordings(&self, query: &str) -> String {
        let (status, body) = self.lb.get("getRecordings", query).await;
        assert_eq!(status, 200);
        body
    }

    async fn wait_for(&self, query: &str, n: usize) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let body = self.recordings(query).await;
            if count(&body, "recording") == n {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} recordings for {query:?}, last answer: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn published(&self, format: &str, rid: &str) -> PathBuf {
        self.root.join("published").join(format).join(rid)
    }

    fn unpublished(&self, format: &str, rid: &str) -> PathBuf {
        self.root.join("unpublished").join(format).join(rid)
    }
}

fn tarballs_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn spooled_tarballs_are_imported_and_listed_as_scalelite_does() {
    let r = Rec::start(&[]);
    for f in [
        "presentation.tar",
        "video.tar",
        "podcast.tar",
        "breakout.tar",
    ] {
        r.drop_in(f);
    }
    let body = r.wait_for("", 4).await;
    assert!(
        eventually(WAIT, || async { tarballs_in(&r.spool()).is_empty() }).await,
        "imported tarballs are removed from the spool"
    );
    assert!(r
        .published("presentation", PRES)
        .join("metadata.xml")
        .is_file());
    assert!(r
        .published("presentation", PRES)
        .join("video/webcams.webm")
        .is_file());
    assert!(r.published("video", VIDEO).join("video-0.m4v").is_file());
    assert!(r.published("podcast", PODCAST).join("audio.ogg").is_file());
    assert_eq!(xml_field(&body, "returncode").as_deref(), Some("SUCCESS"));

    // One recording, by meetingID, with everything Scalelite emits.
    let body = r.recordings("meetingID=ext-meeting-1").await;
    assert_eq!(count(&body, "recording"), 1, "{body}");
    let host = r.lb.base.trim_start_matches("http://").to_string();
    for (field, value) in [
        ("recordID", PRES.to_string()),
        ("meetingID", "ext-meeting-1".to_string()),
        ("internalMeetingID", PRES.to_string()),
        ("name", "Anton G's Room".to_string()),
        ("published", "true".into()),
        ("state", "published".into()),
        ("startTime", "1715261728123".into()),
        ("endTime", "1715265330913".into()),
        ("participants", "14".into()),
        ("type", "presentation".into()),
        (
            "url",
            format!("http://{host}/playback/presentation/2.3/{PRES}"),
        ),
        ("length", "59".into()),
        ("processingTime", "93510".into()),
        ("bbb-origin", "greenlight".into()),
    ] {
        assert_eq!(
            xml_field(&body, field).as_deref(),
            Some(value.as_str()),
            "{field} in {body}"
        );
    }
    assert!(body.contains(&format!("<image alt=\"Welcome to\" width=\"176\" height=\"136\">http://{host}/presentation/{PRES}/presentation/")), "{body}");
    assert!(
        !body.contains("<meetingId>"),
        "internal meta keys are not listed"
    );

    // Two formats of one recording, video's `available` state, breakout, prefixes.
    let body = r.recordings(&format!("recordID={PODCAST}")).await;
    assert_eq!(count(&body, "format"), 2, "{body}");
    let body = r.recordings(&format!("recordID={}", &VIDEO[..20])).await;
    assert_eq!(xml_field(&body, "state").as_deref(), Some("published"));
    assert_eq!(
        xml_field(&body, "url").unwrap(),
        format!("http://{host}/playback/video/{VIDEO}/")
    );
    let body = r
        .recordings(&format!("recordID={}", BREAKOUT.to_uppercase()))
        .await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("noRecordings"),
        "prefixes are case-sensitive"
    );
    let body = r
        .recordings("meta_bbb-origin=greenlight,x&meta_nothing=1")
        .await;
    assert_eq!(
        count(&body, "recording"),
        4,
        "meta filters match (and are OR'ed)"
    );
    let body = r.recordings("meta_bbb-origin=moodle").await;
    assert_eq!(count(&body, "recording"), 0);
    let body = r.recordings("limit=2&offset=1").await;
    assert_eq!(count(&body, "recording"), 2);
    assert_eq!(xml_field(&body, "totalElements").as_deref(), Some("4"));
    assert_eq!(
        xml_field(&body, "recordID").as_deref(),
        Some(PODCAST),
        "newest first, offset 1"
    );

    // The CLI sees the same index.
    let out =
        r.lb.cli_ok(&["recordings", "list", "--meeting", "ext-meeting-2"]);
    assert!(out.contains(VIDEO) && !out.contains(PRES), "{out}");
}

#[tokio::test]
async fn publish_update_and_delete_move_files_and_keep_the_index_in_step() {
    let r = Rec::start(&[]);
    r.drop_in("podcast.tar");
    r.wait_for("", 1).await;
    let id = format!("recordID={PODCAST}");

    let (_, body) =
        r.lb.get("publishRecordings", &format!("{id}&publish=false"))
            .await;
    assert_eq!(
        xml_field(&body, "published").as_deref(),
        Some("false"),
        "{body}"
    );
    for f in ["presentation", "podcast"] {
        assert!(
            r.unpublished(f, PODCAST).join("metadata.xml").is_file(),
            "{f} moved to unpublished"
        );
        assert!(!r.published(f, PODCAST).exists());
    }
    let body = r.recordings(&id).await;
    assert_eq!(xml_field(&body, "published").as_deref(), Some("false"));
    assert_eq!(xml_field(&body, "state").as_deref(), Some("unpublished"));
    let (_, body) =
        r.lb.get("publishRecordings", &format!("{id}&publish=TRUE"))
            .await;
    assert_eq!(xml_field(&body, "published").as_deref(), Some("true"));
    assert!(r.published("podcast", PODCAST).join("audio.ogg").is_file());
    assert!(!r.unpublished("podcast", PODCAST).exists());

    let (_, body) =
        r.lb.get(
            "publishRecordings",
            "recordID=not-a-real-record-id&publish=true",
        )
        .await;
    assert_eq!(xml_field(&body, "messageKey").as_deref(), Some("notFound"));
    let (_, body) = r.lb.get("publishRecordings", "publish=true").await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("missingParamRecordID")
    );
    let (_, body) = r.lb.get("publishRecordings", &id).await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("missingParamPublish")
    );
    let resp =
        r.lb.http
            .post(r.lb.api_url("publishRecordings", &format!("{id}&publish=true")))
            .send()
            .await
            .unwrap();
    assert_eq!(
        xml_field(&resp.text().await.unwrap(), "messageKey").as_deref(),
        Some("unsupportedRequest")
    );

    // A failed move leaves files and index as they were.
    std::fs::remove_dir_all(r.published("podcast", PODCAST)).unwrap();
    let (_, body) =
        r.lb.get("publishRecordings", &format!("{id}&publish=false"))
            .await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("internalError"),
        "{body}"
    );
    assert!(
        r.published("presentation", PODCAST).is_dir(),
        "the moved format was put back"
    );
    assert_eq!(
        xml_field(&r.recordings(&id).await, "published").as_deref(),
        Some("true")
    );

    // updateRecordings: add, change, remove; all ids must exist.
    let (_, body) =
        r.lb.get(
            "updateRecordings",
            &format!("{id}&meta_newparam=newvalue&meta_gl-listed=true"),
        )
        .await;
    assert_eq!(
        xml_field(&body, "updated").as_deref(),
        Some("true"),
        "{body}"
    );
    let body = r.recordings(&id).await;
    assert_eq!(xml_field(&body, "newparam").as_deref(), Some("newvalue"));
    assert_eq!(xml_field(&body, "gl-listed").as_deref(), Some("true"));
    let (_, body) =
        r.lb.get("updateRecordings", &format!("{id}&meta_newparam="))
            .await;
    assert_eq!(xml_field(&body, "updated").as_deref(), Some("true"));
    assert!(!r.recordings(&id).await.contains("<newparam>"));
    let (_, body) =
        r.lb.get(
            "updateRecordings",
            &format!("recordID={PODCAST},unknown&meta_x=y"),
        )
        .await;
    assert_eq!(xml_field(&body, "updated").as_deref(), Some("false"));
    assert!(!r.recordings(&id).await.contains("<x>"), "nothing changed");
    let resp =
        r.lb.http
            .post(r.lb.api_url("updateRecordings", ""))
            .form(&[("recordID", PODCAST), ("meta_viaform", "1")])
            .send()
            .await
            .unwrap();
    assert_eq!(
        xml_field(&resp.text().await.unwrap(), "updated").as_deref(),
        Some("true")
    );

    // deleteRecordings: tombstone + files gone from both dirs.
    let (_, body) = r.lb.get("deleteRecordings", "recordID=123").await;
    assert_eq!(xml_field(&body, "messageKey").as_deref(), Some("notFound"));
    std::fs::create_dir_all(r.unpublished("podcast", PODCAST)).unwrap();
    let (_, body) = r.lb.get("deleteRecordings", &id).await;
    assert_eq!(
        xml_field(&body, "deleted").as_deref(),
        Some("true"),
        "{body}"
    );
    assert!(
        !r.published("presentation", PODCAST).exists()
            && !r.unpublished("podcast", PODCAST).exists()
    );
    assert_eq!(count(&r.recordings(&id).await, "recording"), 0);
    let body = r.recordings(&format!("{id}&state=deleted")).await;
    assert_eq!(xml_field(&body, "state").as_deref(), Some("deleted"));
    assert_eq!(count(&body, "format"), 0);
}

#[tokio::test]
async fn hostile_tarballs_are_set_aside_and_write_nothing_outside() {
    let r = Rec::start(&[]);
    let hostile = [
        "hostile-traversal.tar",
        "hostile-absolute.tar",
        "hostile-symlink.tar",
        "hostile-no-metadata.tar",
        "hostile-wrong-id.tar",
        "hostile-device.tar",
        "hostile-truncated.tar",
        "hostile-empty.tar",
    ];
    let _ = std::fs::remove_file("/tmp/ferrolite-absolute-escape.txt");
    for f in hostile {
        r.drop_in(f);
    }
    let failed = r.spool().join("failed");
    assert!(
        eventually(WAIT, || async {
            hostile
                .iter()
                .all(|f| failed.join(format!("{f}.reason")).is_file())
        })
        .await,
        "every hostile tarball is moved to failed/ with a reason; failed/ holds {:?}",
        tarballs_in(&failed)
    );
    for f in hostile {
        assert!(failed.join(f).is_file(), "{f} is kept, not deleted");
        let why = std::fs::read_to_string(failed.join(format!("{f}.reason"))).unwrap();
        assert!(!why.trim().is_empty(), "{f} has a reason");
    }
    let why = std::fs::read_to_string(failed.join("hostile-symlink.tar.reason")).unwrap();
    assert!(why.contains("outside"), "{why}");
    assert!(
        std::fs::read_to_string(failed.join("hostile-wrong-id.tar.reason"))
            .unwrap()
            .contains("names recording")
    );
    assert!(tarballs_in(&r.spool()).is_empty());
    assert!(!Path::new("/tmp/ferrolite-absolute-escape.txt").exists());
    assert!(
        !r.root.join("ferrolite-escape.txt").exists()
            && !r.root.join("work/ferrolite-escape.txt").exists()
    );
    assert!(!r
        .root
        .join("published")
        .join("presentation")
        .join("f5c6a14a555f7a1ae5b59d1152c2c0149a47b145-1715600000000")
        .join("passwd")
        .exists());
    let body = r.recordings("state=any").await;
    assert_eq!(count(&body, "recording"), 0, "{body}");
    let leftovers: Vec<_> = std::fs::read_dir(r.root.join("work"))
        .unwrap()
        .flatten()
        .collect();
    assert!(leftovers.is_empty(), "work dir cleaned");
}

fn process_alive(pid: u32) -> bool {
    std::process::Command::new("kill")
        .arg("-0")
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
}

#[tokio::test]
async fn a_crash_at_any_step_is_finished_by_the_next_start() {
    for point in ["import-after-files", "import-after-commit"] {
        let mut r = Rec::start(&[("FERROLITE_FAULT", point)]);
        let pid = r.lb.pid();
        r.drop_in("presentation.tar");
        assert!(
            eventually(WAIT, || async { !process_alive(pid) }).await,
            "the fault at {point} stops the process"
        );
        r.lb.kill();
        assert!(
            r.spool().join("presentation.tar").is_file(),
            "{point}: the tarball is still in the spool"
        );
        r.lb.env.retain(|(k, _)| k != "FERROLITE_FAULT");
        r.lb.spawn();
        // The dead importer's lease must expire first (LEASE_TTL, 15 s).
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        while count(&r.recordings("").await, "recording") != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "{point}: the restarted importer finishes the import"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            eventually(WAIT, || async { tarballs_in(&r.spool()).is_empty() }).await,
            "{point}: the tarball is removed after the import"
        );
        assert!(r
            .published("presentation", PRES)
            .join("video/webcams.webm")
            .is_file());
        let names: Vec<String> = std::fs::read_dir(r.root.join("published/presentation"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![PRES.to_string()],
            "{point}: no half-moved copies left"
        );
        assert!(
            std::fs::read_dir(r.root.join("work"))
                .unwrap()
                .next()
                .is_none(),
            "{point}: work dir cleaned"
        );
    }
}

#[tokio::test]
async fn reimport_replaces_formats_and_keeps_an_api_unpublish_and_api_metadata() {
    let r = Rec::start(&[]);
    r.drop_in("presentation.tar");
    r.wait_for("", 1).await;
    let id = format!("recordID={PRES}");
    r.lb.get("publishRecordings", &format!("{id}&publish=false"))
        .await;
    r.lb.get("updateRecordings", &format!("{id}&meta_description=kept"))
        .await;
    std::fs::write(r.unpublished("presentation", PRES).join("stale.txt"), "old").unwrap();
    r.drop_in("presentation.tar.gz");
    assert!(
        eventually(WAIT, || async {
            tarballs_in(&r.spool()).is_empty()
                && !r
                    .unpublished("presentation", PRES)
                    .join("stale.txt")
                    .exists()
        })
        .await
    );
    let body = r.recordings(&id).await;
    assert_eq!(
        xml_field(&body, "published").as_deref(),
        Some("false"),
        "an API unpublish survives a re-import"
    );
    assert_eq!(xml_field(&body, "description").as_deref(), Some("kept"));
    assert!(r
        .unpublished("presentation", PRES)
        .join("metadata.xml")
        .is_file());
    assert!(!r.published("presentation", PRES).exists());
}

#[tokio::test]
async fn recording_disabled_answers_scalelites_stubs_without_a_checksum() {
    let r = Rec::start(&[("RECORDING_DISABLED", "true")]);
    let (_, body) =
        r.lb.raw_get(&format!("{}/bigbluebutton/api/getRecordings", r.lb.base))
            .await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("noRecordings"),
        "{body}"
    );
    assert_eq!(
        xml_field(&body, "message").as_deref(),
        Some("There are not recordings for the meetings")
    );
    for call in ["publishRecordings", "updateRecordings", "deleteRecordings"] {
        let (_, body) =
            r.lb.raw_get(&format!(
                "{}/bigbluebutton/api/{call}?recordID=x",
                r.lb.base
            ))
            .await;
        assert_eq!(
            xml_field(&body, "messageKey").as_deref(),
            Some("notFound"),
            "{call}: {body}"
        );
    }
    let (_, body) = r.lb.get("getRecordings", "").await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("noRecordings")
    );
}

#[tokio::test]
async fn filtered_get_recordings_needs_an_id_and_checksums_are_checked() {
    let r = Rec::start(&[("GET_RECORDINGS_API_FILTERED", "true")]);
    let (_, body) = r.lb.get("getRecordings", "").await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("missingParameters")
    );
    let (_, body) = r.lb.get("getRecordings", "meetingID=x").await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("noRecordings")
    );
    let (_, body) =
        r.lb.raw_get(&format!(
            "{}/bigbluebutton/api/getRecordings?checksum={}",
            r.lb.base,
            "x".repeat(40)
        ))
        .await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("checksumError")
    );
}

#[tokio::test]
async fn text_tracks_are_stored_with_the_recording_and_served() {
    let r = Rec::start(&[]);
    r.drop_in("presentation.tar");
    r.wait_for("", 1).await;
    let url = r.lb.api_url(
        "putRecordingTextTrack",
        &format!("recordID={PRES}&kind=subtitles&lang=en-US&label=English"),
    );
    let v: serde_json::Value =
        multipart(&r.lb, &url, b"WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n").await;
    assert_eq!(v["response"]["returncode"], "SUCCESS", "{v}");
    assert_eq!(v["response"]["messageKey"], "upload_text_track_success");
    let (_, body) =
        r.lb.get("getRecordingTextTracks", &format!("recordID={PRES}"))
            .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let track = &v["response"]["tracks"][0];
    assert_eq!(
        (
            track["kind"].as_str(),
            track["lang"].as_str(),
            track["label"].as_str()
        ),
        (Some("subtitles"), Some("en-US"), Some("English"))
    );
    let (status, vtt) = r.lb.raw_get(track["href"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(vtt.contains("hello"));
    let (_, body) =
        r.lb.get("getRecordingTextTracks", &format!("recordID={VIDEO}"))
            .await;
    assert!(body.contains("noRecordings"), "{body}");
    let url = r.lb.api_url(
        "putRecordingTextTrack",
        &format!("recordID={PRES}&kind=bad&lang=en"),
    );
    let v: serde_json::Value = multipart(&r.lb, &url, b"x").await;
    assert_eq!(v["response"]["messageKey"], "invalidKind");
}

async fn multipart(lb: &Lb, url: &str, file: &[u8]) -> serde_json::Value {
    let mut body = b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.vtt\"\r\nContent-Type: text/vtt\r\n\r\n".to_vec();
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--BOUNDARY--\r\n");
    lb.http
        .post(url)
        .header("content-type", "multipart/form-data; boundary=BOUNDARY")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn upload_token(iss: &str, secret: &str, rid: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let claims = serde_json::json!({"iss": iss, "sub": rid, "exp": exp, "sha256": hex::encode(sha2::Sha256::digest(body))});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_bbb_server_can_push_a_tarball_over_http() {
    let r = Rec::start(&[]);
    r.lb.cli_ok(&[
        "servers",
        "add",
        "https://bbb1.example.org/bigbluebutton/api",
        "bbb1-secret",
    ]);
    let body = std::fs::read(fixtures().join("recordings/presentation.tar")).unwrap();
    let url = format!("{}/bigbluebutton/recording/upload", r.lb.base);
    let post = |token: String, body: Vec<u8>| {
        let req = r.lb.http.post(&url).bearer_auth(token).body(body);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, v) = post(
        upload_token("bbb1.example.org", "wrong", PRES, &body),
        body.clone(),
    )
    .await;
    assert_eq!(status, 401, "{v}");
    let (status, v) = post(
        upload_token("bbb9.example.org", "bbb1-secret", PRES, &body),
        body.clone(),
    )
    .await;
    assert_eq!(status, 401);
    assert!(v["message"].as_str().unwrap().contains("bbb9.example.org"));
    let (status, _) = post(
        upload_token("bbb1.example.org", "bbb1-secret", PRES, b"other"),
        body.clone(),
    )
    .await;
    assert_eq!(
        status, 422,
        "a body that does not match the token's digest is refused"
    );
    assert_eq!(count(&r.recordings("").await, "recording"), 0);

    let (status, v) = post(
        upload_token("bbb1.example.org", "bbb1-secret", PRES, &body),
        body.clone(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["returncode"], "SUCCESS");
    assert_eq!(
        count(&r.recordings("").await, "recording"),
        1,
        "2xx only after the import committed"
    );
    assert!(r
        .published("presentation", PRES)
        .join("metadata.xml")
        .is_file());

    let hostile = std::fs::read(fixtures().join("recordings/hostile-traversal.tar")).unwrap();
    let rid = "f5c6a14a555f7a1ae5b59d1152c2c0149a47b145-1715600000000";
    let (status, v) = post(
        upload_token("bbb1.example.org", "bbb1-secret", rid, &hostile),
        hostile,
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(
        r.spool()
            .join("failed")
            .join(format!("{rid}.tar"))
            .is_file(),
        "kept aside"
    );
    let (status, _) = post(
        upload_token("bbb1.example.org", "bbb1-secret", VIDEO, &body),
        body.clone(),
    )
    .await;
    assert_eq!(
        status, 422,
        "a tarball must hold the recording its token names"
    );
}

#[tokio::test]
async fn the_recording_ready_callback_is_stripped_at_create_and_sent_once() {
    let fake = Fake::start(&["fake-secret"]);
    let r = Rec::start(&[
        ("ALLOW_PRIVATE_CALLBACKS", "true"),
        ("CALLBACK_RETRY_BASE", "0.2"),
    ]);
    r.lb.add_fake_servers(&fake);
    let (url, seen) = receiver().await;
    // BBB lower-cases meta keys: any spelling of the key is the recording-ready URL, is
    // taken out of the create, and is the one called (the fixture's meeting is
    // ext-meeting-1, created with a mixed-case key).
    for (meeting, key) in [
        ("ext-meeting-0", "meta_bbb-recording-ready-url"),
        ("ext-meeting-2", "META_bn-Recording-Ready-URL"),
        ("ext-meeting-1", "meta_BBB-Recording-Ready-Url"),
    ] {
        let q = format!("meetingID={meeting}&name=Room&{key}={}", urlencode(&url));
        let (_, body) = r.lb.get("create", &q).await;
        assert_eq!(
            xml_field(&body, "returncode").as_deref(),
            Some("SUCCESS"),
            "{body}"
        );
    }
    let creates = fake.calls_to(0, "create").await;
    assert_eq!(creates.len(), 3, "{creates:?}");
    assert!(
        !creates.iter().any(|c| c
            .to_string()
            .to_ascii_lowercase()
            .contains("recording-ready-url")),
        "no spelling of the URL is forwarded to BBB: {creates:?}"
    );

    r.drop_in("presentation.tar");
    r.wait_for("", 1).await;
    assert!(
        eventually(WAIT, || async { seen.lock().unwrap().len() == 1 }).await,
        "the callback arrives"
    );
    // Re-import (the hook ships a tarball once per format): no second callback.
    r.drop_in("presentation.tar.gz");
    assert!(eventually(WAIT, || async { tarballs_in(&r.spool()).is_empty() }).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "delivered exactly once: {bodies:?}");
    let token = bodies[0]
        .strip_prefix("signed_parameters=")
        .expect("form body with signed_parameters");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(LB_SECRET.as_bytes()),
        &v,
    )
    .expect("signed with the LB secret, HS256")
    .claims;
    assert_eq!(claims["meeting_id"], "ext-meeting-1");
    assert_eq!(claims["record_id"], PRES);
    assert_eq!(
        claims["jti"],
        format!("recording-ready:{PRES}"),
        "a stable id the front end can deduplicate on"
    );
}

#[tokio::test]
async fn cli_imports_publishes_deletes_and_prunes() {
    let r = Rec::start(&[("IMPORTER_ENABLED", "false")]);
    let out = r.lb.cli_ok(&[
        "recordings",
        "import",
        fixtures().join("recordings/video.tar").to_str().unwrap(),
    ]);
    assert!(out.contains(&format!("imported {VIDEO} (video)")), "{out}");
    assert!(
        fixtures().join("recordings/video.tar").is_file(),
        "the source is left alone"
    );
    let bad = r.lb.cli(&[
        "recordings",
        "import",
        fixtures()
            .join("recordings/hostile-symlink.tar")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("outside"));
    r.lb.cli_ok(&["recordings", "unpublish", VIDEO]);
    assert!(r.unpublished("video", VIDEO).is_dir());
    r.lb.cli_ok(&["recordings", "publish", VIDEO]);
    assert!(r.published("video", VIDEO).is_dir());
    let missing = r.lb.cli(&["recordings", "delete", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no recording has the id"));
    let out =
        r.lb.cli_ok(&["recordings", "prune", "--older-than", "30", "--dry-run"]);
    assert!(out.contains(&format!("would delete {VIDEO}")), "{out}");
    assert!(
        r.published("video", VIDEO).is_dir(),
        "a dry run deletes nothing"
    );
    let out = r.lb.cli_ok(&["recordings", "prune", "--older-than", "30"]);
    assert!(out.contains("1 recording(s) deleted"), "{out}");
    assert!(!r.published("video", VIDEO).exists());
    let out = r.lb.cli_ok(&["recordings", "list"]);
    assert!(out.contains("deleted"), "{out}");
}

#[tokio::test]
async fn text_track_uploads_take_the_part_named_file_only() {
    let r = Rec::start(&[]);
    r.drop_in("presentation.tar");
    r.wait_for("", 1).await;
    let url = r.lb.api_url(
        "putRecordingTextTrack",
        &format!("recordID={PRES}&kind=captions&lang=de&label=Deutsch"),
    );
    let send = |body: Vec<u8>| {
        let (http, url) = (r.lb.http.clone(), url.clone());
        async move {
            http.post(url)
                .header("content-type", "multipart/form-data; boundary=BOUNDARY")
                .body(body)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    // A decoy whose filename is `file` comes first; the real part is named `file`.
    let body = b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"notes\"; filename=\"file\"\r\n\r\nWEBVTT\n\nDECOY\r\n--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.vtt\"\r\n\r\nWEBVTT\n\n00:00.000 --> 00:01.000\nreal\r\n--BOUNDARY--\r\n".to_vec();
    let v = send(body).await;
    assert_eq!(v["response"]["returncode"], "SUCCESS", "{v}");
    let (_, body) =
        r.lb.get("getRecordingTextTracks", &format!("recordID={PRES}"))
            .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (_, vtt) =
        r.lb.raw_get(v["response"]["tracks"][0]["href"].as_str().unwrap())
            .await;
    assert!(vtt.contains("real") && !vtt.contains("DECOY"), "{vtt}");
    // Only decoys: nothing named `file` is an empty track, refused.
    let v = send(b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"x\"; filename=\"file\"\r\n\r\nWEBVTT\r\n--BOUNDARY--\r\n".to_vec()).await;
    assert_eq!(
        v["response"]["messageKey"], "empty_uploaded_text_track",
        "{v}"
    );
    // A file part over the text-track limit is refused.
    let mut big = b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 3 * 1024 * 1024));
    big.extend_from_slice(b"\r\n--BOUNDARY--\r\n");
    let v = send(big).await;
    assert_eq!(
        v["response"]["messageKey"], "upload_text_track_failed",
        "{v}"
    );
}
