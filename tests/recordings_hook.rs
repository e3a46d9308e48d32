//! The BBB-side hook (`bbb-hooks/`, plain Ruby) against a fake BBB published directory and a
//! running `ferrolite serve`: HTTP push, spool delivery, retries, and the batch script.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const PRES: &str = "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123";
const VIDEO: &str = "b1826d06111b3cdca1715fdd8108ecd05603d701-1715348128456";
const PODCAST: &str = "c2937e17222c4dedb2826aee9219fde16714e812-1715434528789";

fn hooks() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bbb-hooks")
}

fn ruby_available() -> bool {
    Command::new("ruby")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

struct Setup {
    lb: Lb,
    root: PathBuf,
}

fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut env = Lb::base_env(&dir);
    for (k, d) in [
        ("RECORDING_SPOOL_DIR", "lb/spool"),
        ("RECORDING_WORK_DIR", "lb/work"),
        ("RECORDING_PUBLISH_DIR", "lb/published"),
        ("RECORDING_UNPUBLISH_DIR", "lb/unpublished"),
    ] {
        env.push((k.into(), root.join(d).display().to_string()));
    }
    env.push(("RECORDING_IMPORT_SETTLE".into(), "0.2".into()));
    env.push(("RECORDING_IMPORT_POLL_INTERVAL".into(), "1".into()));
    let lb = Lb::start_in(dir, env);
    lb.cli_ok(&[
        "servers",
        "add",
        "https://bbb-test.example.org/bigbluebutton/api",
        "hook-secret",
    ]);
    // A BBB server's published directory, from the fixtures.
    let published = root.join("bbb/published");
    std::fs::create_dir_all(&published).unwrap();
    for f in ["presentation.tar", "video.tar", "podcast.tar"] {
        let ok = Command::new("tar")
            .arg("-xf")
            .arg(fixtures().join("recordings").join(f))
            .arg("-C")
            .arg(&published)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    Setup { lb, root }
}

impl Setup {
    fn config(&self, name: &str, delivery: &str) -> PathBuf {
        let path = self.root.join(name);
        let text = format!(
            "published_dir: {}\nrecording_dir: {}\nwork_dir: {}\nserver_id: bbb-test.example.org\nsecret: hook-secret\nmax_attempts: 3\nretry_delay: 0.1\n{delivery}\n",
            self.root.join("bbb/published").display(),
            self.root.join("bbb/recording").display(),
            self.root.join("bbb/work").display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn hook(&self, config: &Path, rid: &str) -> std::process::Output {
        Command::new("ruby")
            .arg(hooks().join("ferrolite_post_publish.rb"))
            .args(["-m", rid, "-f", "presentation"])
            .env("FERROLITE_HOOK_CONFIG", config)
            .output()
            .unwrap()
    }

    async fn formats_of(&self, rid: &str) -> usize {
        let (_, body) = self
            .lb
            .get("getRecordings", &format!("recordID={rid}"))
            .await;
        count(&body, "format")
    }

    fn sender_done(&self, rid: &str) -> PathBuf {
        self.root
            .join("bbb/recording/status/published")
            .join(format!("{rid}-sender.done"))
    }
}

#[tokio::test]
async fn the_hook_pushes_every_published_format_over_http() {
    if !ruby_available() {
        panic!("ruby is required: run scripts/install-test-deps.sh");
    }
    let s = start();
    let url = format!("{}/bigbluebutton/recording/upload", s.lb.base);
    let cfg = s.config("http.yml", &format!("upload_url: {url}"));
    let out = s.hook(&cfg, PODCAST);
    assert!(
        out.status.success(),
        "hook failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.formats_of(PODCAST).await,
        2,
        "presentation and podcast arrived in one tarball"
    );
    assert!(s
        .root
        .join("lb/published/podcast")
        .join(PODCAST)
        .join("audio.ogg")
        .is_file());
    assert!(
        !s.root
            .join("bbb/work")
            .join(format!("{PODCAST}.tar"))
            .exists(),
        "the local tar is removed once the LB confirmed"
    );
    assert_eq!(
        std::fs::read_to_string(s.sender_done(PODCAST)).unwrap(),
        format!("Published {PODCAST}")
    );

    // Nothing published: nothing to do, success.
    let out = s.hook(
        &cfg,
        "0000000000000000000000000000000000000000-1700000000000",
    );
    assert!(out.status.success());

    // The wrong secret: refused (4xx) at once, the tar is kept for an operator.
    let bad = s.root.join("bad.yml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("secret: hook-secret", "secret: wrong"),
    )
    .unwrap();
    let out = s.hook(&bad, VIDEO);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"));
    assert!(
        s.root
            .join("bbb/work")
            .join(format!("{VIDEO}.tar"))
            .is_file(),
        "kept after a refusal"
    );

    // The load balancer unreachable: retried with back-off, then kept.
    let down = s.config(
        "down.yml",
        "upload_url: http://127.0.0.1:9/bigbluebutton/recording/upload",
    );
    let out = s.hook(&down, PRES);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("attempt 3/3"), "{err}");
    assert!(s
        .root
        .join("bbb/work")
        .join(format!("{PRES}.tar"))
        .is_file());
    assert!(!s.sender_done(PRES).exists());
}

#[tokio::test]
async fn the_hook_delivers_to_the_spool_and_the_batch_script_ships_old_recordings() {
    if !ruby_available() {
        panic!("ruby is required: run scripts/install-test-deps.sh");
    }
    let s = start();
    let spool = s.root.join("lb/spool");
    let cfg = s.config("spool.yml", &format!("spool_dir: {}", spool.display()));
    let out = s.hook(&cfg, PRES);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = eventually(Duration::from_secs(20), || async {
        s.formats_of(PRES).await == 1
    })
    .await;
    assert!(ok, "the spooled tarball is imported");

    // Old recordings: status/published/<rid>-<format>.done written by BBB's publish step.
    let status = s.root.join("bbb/recording/status/published");
    std::fs::create_dir_all(&status).unwrap();
    for f in [
        format!("{VIDEO}-video.done"),
        format!("{PODCAST}-presentation.done"),
        format!("{PODCAST}-podcast.done"),
    ] {
        std::fs::write(status.join(f), "").unwrap();
    }
    let http = s.config(
        "batch.yml",
        &format!("upload_url: {}/bigbluebutton/recording/upload", s.lb.base),
    );
    let out = Command::new("bash")
        .arg(hooks().join("ferrolite_batch_import.sh"))
        .env("RECORDING_DIR", s.root.join("bbb/recording"))
        .env("HOOK", hooks().join("ferrolite_post_publish.rb"))
        .env("FERROLITE_HOOK_CONFIG", &http)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shipped = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        shipped.matches("shipping").count(),
        2,
        "each recording once, already-sent ones skipped: {shipped}"
    );
    assert_eq!(s.formats_of(VIDEO).await, 1);
    assert_eq!(s.formats_of(PODCAST).await, 2);
}
