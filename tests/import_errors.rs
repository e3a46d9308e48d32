//! Imports when the machine, not the tarball, fails: a full work disk, a read-only publish
//! dir, through the real binary on real (tiny tmpfs) filesystems. The tarball is kept and
//! retried, an upload is answered 503 so the hook retries, every failure is logged with its
//! path and OS error and counted; a tarball with too many members is set aside.
//!
//! The tests mount tmpfs filesystems, so they run as root (as CI does).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const PRES: &str = "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123";
const VIDEO: &str = "b1826d06111b3cdca1715fdd8108ecd05603d701-1715348128456";
const WAIT: Duration = Duration::from_secs(30);

/// A tmpfs mounted on a directory for the test's lifetime.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, opts: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "these tests mount a tmpfs (run them as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(dir.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Fills the filesystem until a write fails with "no space".
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
                    break;
                }
            }
        }
        path
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn start(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Lb {
    let mut env = recording_env(&dir);
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    }
    Lb::start_in(dir, env)
}

fn drop_in(spool: &Path, fixture: &str) {
    let tmp = spool.join(format!(".{fixture}.XXXX"));
    std::fs::copy(fixtures().join("recordings").join(fixture), &tmp).unwrap();
    std::fs::rename(&tmp, spool.join(fixture)).unwrap();
}

async fn metric(lb: &Lb, stage: &str, reason: &str) -> u64 {
    let (_, text) = lb.raw_get(&format!("{}/metrics", lb.base)).await;
    let want = format!(
        "ferrolite_recording_import_failures_total{{stage=\"{stage}\",reason=\"{reason}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn recordings(lb: &Lb) -> usize {
    count(&lb.get("getRecordings", "").await.1, "recording")
}

fn upload_token(rid: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let claims = serde_json::json!({"iss": "bbb1.example.org", "sub": rid, "exp": exp,
        "sha256": hex::encode(sha2::Sha256::digest(body))});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"bbb1-secret"),
    )
    .unwrap()
}

async fn upload(lb: &Lb, rid: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let resp = lb
        .http
        .post(format!("{}/bigbluebutton/recording/upload", lb.base))
        .bearer_auth(upload_token(rid, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_full_work_disk_keeps_the_tarball_answers_503_and_imports_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let work = Mount::tmpfs(&root.join("work"), "size=256k");
    let filler = work.fill();
    let lb = start(dir, &[]);
    lb.cli_ok(&[
        "servers",
        "add",
        "https://bbb1.example.org/bigbluebutton/api",
        "bbb1-secret",
    ]);
    let spool = root.join("spool");

    // An HTTPS upload: 503 (the hook retries), not 422 (the hook would give up).
    let body = std::fs::read(fixtures().join("recordings/presentation.tar")).unwrap();
    let (status, v) = upload(&lb, PRES, &body).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["messageKey"], "importUnavailable", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("disk is full"),
        "{v}"
    );

    // A spooled tarball: kept in the spool (not failed/), counted, logged with the OS error.
    drop_in(&spool, "video.tar");
    assert!(
        eventually(WAIT, || async {
            metric(&lb, "extract", "no_space").await >= 3
        })
        .await,
        "two uploads' worth of failures and retries are counted: {}",
        lb.logs()
    );
    assert!(spool.join("video.tar").is_file(), "kept in the spool");
    assert!(!spool.join("failed/video.tar").exists(), "not set aside");
    assert!(
        lb.logs().contains("os error 28"),
        "the OS error is logged: {}",
        lb.logs()
    );
    assert_eq!(recordings(&lb).await, 0);

    // Space returns: the spooled tarball is imported on a later retry, the upload succeeds.
    std::fs::remove_file(filler).unwrap();
    assert!(
        eventually(WAIT, || async { recordings(&lb).await == 1 }).await,
        "the retried import succeeds: {}",
        lb.logs()
    );
    assert!(eventually(WAIT, || async { !spool.join("video.tar").exists() }).await);
    assert!(root.join("published/video").join(VIDEO).is_dir());
    let (status, v) = upload(&lb, PRES, &body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(recordings(&lb).await, 2);
}

#[tokio::test]
async fn an_unwritable_publish_dir_is_logged_counted_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let publish = Mount::tmpfs(&root.join("published"), "size=4m,ro");
    let lb = start(dir, &[]);
    let spool = root.join("spool");
    drop_in(&spool, "presentation.tar");
    assert!(
        eventually(WAIT, || async {
            metric(&lb, "place", "read_only").await >= 2
        })
        .await,
        "the failure is counted, and retried: {}",
        lb.logs()
    );
    let logs = lb.logs();
    assert!(
        logs.contains("os error 30")
            && logs.contains(&root.join("published").display().to_string()),
        "logged with the path and the OS error: {logs}"
    );
    assert!(
        spool.join("presentation.tar").is_file(),
        "kept in the spool"
    );
    assert!(!spool.join("failed").join("presentation.tar").exists());
    assert_eq!(recordings(&lb).await, 0);

    publish.remount("rw");
    assert!(
        eventually(WAIT, || async { recordings(&lb).await == 1 }).await,
        "imported once the dir is writable: {}",
        lb.logs()
    );
    assert!(eventually(WAIT, || async { !spool.join("presentation.tar").exists() }).await);
    assert!(root
        .join("published/presentation")
        .join(PRES)
        .join("metadata.xml")
        .is_file());
}

#[tokio::test]
async fn a_tarball_with_too_many_members_is_set_aside_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let lb = start(dir, &[("RECORDING_MAX_ENTRIES", "3")]);
    let spool = root.join("spool");
    drop_in(&spool, "presentation.tar");
    let reason = spool.join("failed/presentation.tar.reason");
    assert!(
        eventually(WAIT, || async { reason.is_file() }).await,
        "set aside: {}",
        lb.logs()
    );
    let text = std::fs::read_to_string(&reason).unwrap();
    assert!(text.contains("RECORDING_MAX_ENTRIES"), "{text}");
    assert!(spool.join("failed/presentation.tar").is_file());
    assert!(!spool.join("presentation.tar").exists());
    assert_eq!(metric(&lb, "import", "tarball").await, 1);
    assert_eq!(recordings(&lb).await, 0);
    assert!(
        std::fs::read_dir(root.join("published"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "nothing published"
    );
}
