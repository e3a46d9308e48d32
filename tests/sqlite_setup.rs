//! The SQLite file under concurrency: a fresh database is set up without lock errors;
//! while another process holds the file locked, writers fail fast with a clear error (not
//! one busy timeout after another) and reads go on answering.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A write lock on the database file held by another connection, as another process (a
/// long CLI command, a backup) would hold it, until released.
struct OtherProcessLock {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<()>,
}

impl OtherProcessLock {
    fn take(db: &std::path::Path) -> OtherProcessLock {
        let db = db.to_path_buf();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let c = rusqlite::Connection::open(db).unwrap();
            c.execute_batch("BEGIN EXCLUSIVE").unwrap();
            locked_tx.send(()).unwrap();
            let _ = released.recv();
            c.execute_batch("COMMIT").unwrap();
        });
        locked_rx.recv().unwrap();
        OtherProcessLock { release, holder }
    }

    fn release(self) {
        self.release.send(()).unwrap();
        self.holder.join().unwrap();
    }
}

#[tokio::test]
async fn fresh_databases_start_without_lock_errors() {
    for _ in 0..8 {
        let lb = Lb::start(&[("LOG_LEVEL", "info")]);
        let (status, body) = lb.get("getMeetings", "").await;
        assert_eq!(status, 200);
        assert_eq!(xml_field(&body, "returncode").as_deref(), Some("SUCCESS"));
        let logs = lb.logs();
        assert!(!logs.contains("database is locked"), "{logs}");
        assert!(!logs.contains("ERROR"), "{logs}");
    }
}

#[tokio::test]
async fn writers_fail_fast_while_another_process_holds_the_file() {
    let fake = Fake::start(&["fake-secret"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    // Another process's write lock (a long CLI command, a backup).
    let lock = OtherProcessLock::take(&lb.dir.path().join("ferrolite.db"));
    let started = Instant::now();
    let creates = (0..5).map(|i| {
        let url = lb.api_url("create", &format!("meetingID=locked-{i}&name=x"));
        let http = lb.http.clone();
        async move {
            let body = http.get(url).send().await.unwrap().text().await.unwrap();
            (body, started.elapsed())
        }
    });
    let answers = futures_util::future::join_all(creates).await;
    for (body, elapsed) in &answers {
        assert_eq!(
            xml_field(body, "returncode").as_deref(),
            Some("FAILED"),
            "{body}"
        );
        assert_eq!(
            xml_field(body, "messageKey").as_deref(),
            Some("internalError")
        );
        eprintln!("answered after {elapsed:?}");
        // Each write waits one busy timeout (5 s) at most in all; queued behind each other
        // they used to wait 5, 10, 15, 20, 25 s.
        assert!(*elapsed < Duration::from_secs(15), "{elapsed:?}");
    }
    assert!(
        lb.logs().contains("locked by another process"),
        "a clear error in the log: {}",
        lb.logs()
    );
    lock.release();
    let (_, body) = lb.get("create", "meetingID=after&name=x").await;
    assert_eq!(
        xml_field(&body, "returncode").as_deref(),
        Some("SUCCESS"),
        "{body}"
    );
}

#[tokio::test]
async fn joins_answer_while_creates_wait_for_another_process() {
    let fake = Fake::start(&["fake-secret"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    let (_, body) = lb.get("create", "meetingID=room&name=x").await;
    assert_eq!(
        xml_field(&body, "returncode").as_deref(),
        Some("SUCCESS"),
        "{body}"
    );
    let lock = OtherProcessLock::take(&lb.dir.path().join("ferrolite.db"));
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // More waiting writes than the store has threads of any kind.
    let creates = (0..12).map(|i| {
        let (url, http, done) = (
            lb.api_url("create", &format!("meetingID=locked-{i}&name=x")),
            lb.http.clone(),
            done.clone(),
        );
        async move {
            let body = http.get(url).send().await.unwrap().text().await.unwrap();
            done.lock().unwrap().push(("create", body));
        }
    });
    let joins = (0..20).map(|i| {
        let (url, http, done) = (
            lb.api_url("join", &format!("meetingID=room&fullName=u{i}&role=VIEWER")),
            lb.http.clone(),
            done.clone(),
        );
        async move {
            // After the creates are queued.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let answer = http.get(url).send().await.unwrap();
            let location = answer
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            done.lock()
                .unwrap()
                .push(("join", location.unwrap_or_default()));
        }
    });
    futures_util::future::join(
        futures_util::future::join_all(creates),
        futures_util::future::join_all(joins),
    )
    .await;
    lock.release();
    let done = done.lock().unwrap();
    let order: Vec<&str> = done.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(order.len(), 32);
    assert!(
        order[..20].iter().all(|k| *k == "join"),
        "every join answered before the first create gave up: {order:?}"
    );
    for (kind, answer) in done.iter() {
        match *kind {
            "join" => assert!(
                answer.contains("/bigbluebutton/api/join?"),
                "a redirect to the server: {answer:?}"
            ),
            _ => assert_eq!(
                xml_field(answer, "messageKey").as_deref(),
                Some("internalError"),
                "{answer}"
            ),
        }
    }
}
