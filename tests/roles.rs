//! The background roles under real process deaths: callbacks claimed and delivered at least
//! once with a stable id through 20 `kill -9`s, a long import that keeps its lease and its
//! work dir while a second `serve` waits, and a restarted node that takes its roles back at
//! once (no waiting for its dead predecessor's lease to expire).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{ready_claims, slow_receiver};
use common::trees::{tarball_for, PRES};
use common::*;

fn env_with(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = recording_env(dir);
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

#[tokio::test]
async fn callbacks_survive_twenty_kill_9s_delivered_at_least_once_with_a_stable_jti() {
    const RECORDINGS: usize = 24;
    const KILLS: usize = 20;
    let fake = Fake::start(&["fake-secret"]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let env = env_with(
        &dir,
        &[
            ("ALLOW_PRIVATE_CALLBACKS", "true"),
            ("CALLBACK_RETRY_BASE", "0.2"),
            ("NODE_ID", "node-a"),
            ("LOG_LEVEL", "info"),
        ],
    );
    let mut lb = Lb::start_in(dir, env);
    lb.add_fake_servers(&fake);
    let (url, seen) = slow_receiver(Duration::from_millis(300)).await;
    let q = format!(
        "meetingID=ext-meeting-1&name=Room&meta_bbb-recording-ready-url={}",
        urlencode(&url)
    );
    let (_, body) = lb.get("create", &q).await;
    assert_eq!(xml_field(&body, "returncode").as_deref(), Some("SUCCESS"));
    let rids: Vec<String> = (0..RECORDINGS)
        .map(|i| format!("{:040x}-17152617{i:05}", i + 1))
        .collect();
    for rid in &rids {
        tarball_for(rid, &root.join("spool").join(format!("{rid}.tar")));
    }
    // Kill the process again and again while it imports and sends.
    for i in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(250 + 50 * (i as u64 % 7))).await;
        unsafe_kill(lb.pid(), "KILL");
        lb.kill();
        lb.spawn();
    }
    let all_seen = || {
        let seen = seen.clone();
        let rids = rids.clone();
        async move {
            let got: Vec<String> = seen
                .lock()
                .unwrap()
                .iter()
                .map(|b| {
                    ready_claims(b)["record_id"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            rids.iter().all(|r| got.contains(r))
        }
    };
    assert!(
        eventually(Duration::from_secs(120), all_seen).await,
        "every recording's callback arrives: {} deliveries, log: {}",
        seen.lock().unwrap().len(),
        lb.logs()
    );
    // Let any claim left by a killed sender expire and be retried, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bodies = seen.lock().unwrap().clone();
    let mut per_record: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in &bodies {
        let c = ready_claims(b);
        assert_eq!(c["meeting_id"], "ext-meeting-1");
        let rid = c["record_id"].as_str().unwrap().to_string();
        let jti = c["jti"]
            .as_str()
            .expect("every callback has a jti")
            .to_string();
        per_record.entry(rid).or_default().push(jti);
    }
    assert_eq!(per_record.len(), RECORDINGS, "no callback lost");
    for (rid, jtis) in &per_record {
        assert!(rids.contains(rid));
        // At least once: a repeat (a sender killed between the receiver's read and the
        // recorded outcome) carries the same id, so the front end can drop it.
        assert!(
            jtis.iter().all(|j| *j == format!("recording-ready:{rid}")),
            "{rid}: {jtis:?}"
        );
    }
    let repeats = bodies.len() - RECORDINGS;
    eprintln!(
        "{} deliveries for {RECORDINGS} callbacks over {KILLS} kills ({repeats} repeats)",
        bodies.len()
    );
    assert!(
        repeats <= KILLS * 8,
        "a kill repeats at most the callbacks in flight: {repeats}"
    );
}

#[tokio::test]
async fn a_long_first_import_keeps_its_lease_and_its_work_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let env_a = env_with(
        &dir,
        &[
            ("NODE_ID", "node-a"),
            ("LOG_LEVEL", "info"),
            // Longer than the importer lease's TTL (15 s).
            ("FERROLITE_FAULT_DELAY", "import-after-extract:22000"),
        ],
    );
    let mut env_b = env_a.clone();
    env_b.retain(|(k, _)| k != "NODE_ID" && k != "FERROLITE_FAULT_DELAY");
    env_b.push(("NODE_ID".into(), "node-b".into()));
    let a = Lb::start_in(dir, env_a);
    std::fs::copy(
        fixtures().join("recordings/presentation.tar"),
        root.join("spool/presentation.tar"),
    )
    .unwrap();
    let work_dirs = || -> Vec<String> {
        std::fs::read_dir(root.join("work"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(20), || async {
            a.logs().contains("import paused")
        })
        .await,
        "{}",
        a.logs()
    );
    let during = work_dirs();
    assert_eq!(during.len(), 1, "{during:?}");
    assert!(during[0].starts_with("import-node-a."), "{during:?}");
    // A second serve (another node) while the import runs past the lease's TTL.
    let b_dir = tempfile::tempdir().unwrap();
    let b = Lb::start_in(b_dir, env_b);
    let mut checks = 0;
    while !a.logs().contains("recording imported") {
        assert!(checks < 400, "the import finishes: {}", a.logs());
        assert!(
            !b.logs().contains("now the recording importer"),
            "the second process took the importer role during the import: {}",
            b.logs()
        );
        assert!(
            work_dirs().contains(&during[0]) || a.logs().contains("recording imported"),
            "the work dir in use was removed"
        );
        checks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !b.logs().contains("now the recording importer"),
        "{}",
        b.logs()
    );
    assert!(a.logs().contains("now the recording importer"));
    assert_eq!(count(&a.get("getRecordings", "").await.1, "recording"), 1);
    assert!(root
        .join("published/presentation")
        .join(PRES)
        .join("metadata.xml")
        .is_file());
}

#[tokio::test]
async fn a_restarted_node_takes_its_roles_back_at_once() {
    let fake = Fake::start(&["fake-secret"]);
    let mut lb = Lb::start(&[
        ("POLL_INTERVAL", "60"),
        ("NODE_ID", "node-a"),
        ("LOG_LEVEL", "info"),
    ]);
    lb.add_fake_servers(&fake);
    assert!(
        eventually(Duration::from_secs(20), || async {
            !fake.calls_to(0, "getMeetings").await.is_empty()
        })
        .await,
        "the first process polls"
    );
    lb.kill();
    fake.clear_calls(0).await;
    lb.spawn();
    // Without taking its lease back, the new process would wait for the dead one's lease
    // (3 × POLL_INTERVAL + wait timeout, over three minutes) before polling.
    assert!(
        eventually(Duration::from_secs(60), || async {
            !fake.calls_to(0, "getMeetings").await.is_empty()
        })
        .await,
        "the restarted process polls without waiting for the old lease: {}",
        lb.logs()
    );
    assert!(
        lb.logs().contains("took the poller lease back"),
        "{}",
        lb.logs()
    );
}
