//! Health polling and placement under faults: thresholds, reconciliation, draining, the
//! poller lease across processes, and the class-start burst.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::json;

/// `online`/`offline` and load of every server, from `ferrolite servers`.
fn states(lb: &Lb) -> HashMap<String, (String, String, String)> {
    let out = lb.cli_ok(&["servers"]);
    out.split("id: ")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let mut lines = b.lines();
            let id = lines.next().unwrap().trim().to_string();
            let rest: Vec<&str> = lines.map(str::trim).collect();
            let state = rest[1].to_string();
            let load = rest[2].trim_start_matches("load: ").to_string();
            let online = rest.last().unwrap().to_string();
            (id, (state, online, load))
        })
        .collect()
}

fn online(lb: &Lb, id: &str) -> bool {
    states(lb)[id].1 == "online"
}

#[tokio::test]
async fn a_flapping_server_crosses_the_thresholds_exactly() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[
        ("SERVER_HEALTHY_THRESHOLD", "2"),
        ("SERVER_UNHEALTHY_THRESHOLD", "3"),
    ]);
    let id = lb.add_fake_servers(&fake).remove(0); // one good poll
    assert!(
        !online(&lb, &id),
        "one good poll is not enough with a threshold of 2"
    );
    lb.cli_ok(&["poll", "--allow-offline"]);
    assert!(online(&lb, &id));
    let mut seen = Vec::new();
    for mode in [
        json!({"mode": "error", "status": 503}),
        json!({"mode": "garbage"}),
        json!({"mode": "normal"}),
        json!({"mode": "garbage"}),
        json!({"mode": "down"}),
        json!({"mode": "error", "status": 500}),
        json!({"mode": "normal"}),
        json!({"mode": "normal"}),
    ] {
        fake.mode(0, mode).await;
        let out = lb.cli_ok(&["poll", "--allow-offline"]);
        seen.push((online(&lb, &id), out.contains("poll failed")));
    }
    assert_eq!(
        seen,
        vec![(true, true), (true, true), (true, false), (true, true), (true, true), (false, true), (false, false), (true, false)],
        "three failures in a row take it offline, two successes bring it back; a success resets the count"
    );
}

#[tokio::test]
async fn failures_are_logged_with_their_reason() {
    let fake = Fake::start(&["s0", "s1", "s2"]);
    let lb = Lb::start(&[("SERVER_UNHEALTHY_THRESHOLD", "1")]);
    let ids = lb.add_fake_servers(&fake);
    fake.set_secret(0, "rotated").await;
    fake.mode(1, json!({"mode": "garbage"})).await;
    fake.mode(2, json!({"mode": "error", "status": 502})).await;
    let out = lb.cli_ok(&["poll", "--allow-offline"]);
    assert!(
        out.contains(&format!(
            "{}: offline (poll failed: BBB answered FAILED (checksumError",
            ids[0]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: offline (poll failed: the answer is not a BBB document",
            ids[1]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}: offline (poll failed: HTTP status 502",
            ids[2]
        )),
        "{out}"
    );
    let (_, body) = lb.get("create", "meetingID=x&name=x").await;
    assert_eq!(
        xml_field(&body, "message").as_deref(),
        Some("Could not find any available servers.")
    );
}

#[tokio::test]
async fn meetings_on_a_dead_server_go_only_after_the_threshold_and_re_create_goes_elsewhere() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[]);
    let ids = lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=room&name=x").await;
    let holder = fake.holder("room").await.unwrap();
    fake.mode(holder, json!({"mode": "down"})).await;

    lb.cli_ok(&["poll", "--allow-offline"]);
    assert!(online(&lb, &ids[holder]), "one failed poll is not enough");
    let r = lb
        .http
        .get(lb.api_url("join", "meetingID=room&fullName=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        302,
        "the meeting survives a single failed poll"
    );

    lb.cli_ok(&["poll", "--allow-offline"]);
    assert!(!online(&lb, &ids[holder]));
    let (_, body) = lb.get("join", "meetingID=room&fullName=a").await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("notFound"),
        "dropped once the server is offline"
    );
    lb.get("create", "meetingID=room&name=x").await;
    let healthy = fake.meetings(1 - holder).await;
    assert!(
        healthy.iter().any(|m| m["meeting_id"] == "room"),
        "re-created on the healthy server: {healthy:?}"
    );
}

#[tokio::test]
async fn a_meeting_is_forgotten_only_when_a_successful_poll_no_longer_lists_it() {
    let fake = Fake::start(&["s0"]);
    // Short BBB timeouts: a meeting is only forgotten once it is older than one create call.
    let lb = Lb::start(&[("CONNECT_TIMEOUT", "0.2"), ("RESPONSE_TIMEOUT", "0.3")]);
    lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=ends&name=x").await;
    lb.get("create", "meetingID=stays&name=x").await;
    fake.mode(0, json!({"mode": "error", "status": 500})).await;
    fake.end_meeting(0, "ends").await;
    lb.cli_ok(&["poll", "--allow-offline"]);
    assert!(
        lb.cli_ok(&["meetings", "list"]).contains("MeetingID: ends"),
        "a failed poll forgets nothing"
    );
    fake.mode(0, json!({"mode": "normal"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let out = lb.cli_ok(&["poll", "--allow-offline"]);
    assert!(out.contains("online"), "{out}");
    let list = lb.cli_ok(&["meetings", "list"]);
    assert!(
        !list.contains("MeetingID: ends") && list.contains("MeetingID: stays"),
        "{list}"
    );
}

#[tokio::test]
async fn load_follows_the_scalelite_formula_and_the_weighted_model() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    let id = lb.add_fake_servers(&fake).remove(0);
    let hour_ago = common_now_ms() - 3_600_000;
    fake.set_meeting(0, "old", json!({"participants": 10, "moderators": 2, "voice": 4, "video": 3, "create_time_ms": hour_ago})).await;
    fake.set_meeting(
        0,
        "young",
        json!({"participants": 2, "moderators": 1, "create_time_ms": common_now_ms()}),
    )
    .await;
    fake.set_meeting(
        0,
        "breakout",
        json!({"participants": 30, "is_breakout": true, "create_time_ms": hour_ago}),
    )
    .await;
    lb.cli_ok(&["servers", "update", &id, "--load-multiplier", "2"]);
    lb.cli_ok(&["poll", "--allow-offline"]);
    // (10 + 2) + max(2 + 1, 15) = 27, breakout skipped, times 2.
    assert_eq!(states(&lb)[&id].2, "54.0");
    let status = lb.cli_ok(&["status"]);
    assert!(
        status
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[3..7]
            == ["3", "42", "30", "3"],
        "meetings, users, largest, videos: {status}"
    );

    let weighted = Lb::start_in(tempfile::tempdir().unwrap(), {
        let d = tempfile::tempdir().unwrap();
        let mut env = Lb::base_env(&d);
        env.push(("LOAD_MODEL".into(), "weighted".into()));
        std::mem::forget(d);
        env
    });
    let wid = weighted.add_fake_servers(&fake).remove(0);
    // old: 1 + 10 + 4×0.5 + 3×2 = 19; young: 1 + 2 + reserved (15 − 2) ≈ 16; breakout: 1 + 30 = 31.
    let load: f64 = states(&weighted)[&wid].2.parse().unwrap();
    assert!((65.0..=66.0).contains(&load), "weighted load {load}");
}

fn common_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_cordoned_server_drains_to_disabled() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[]);
    let ids = lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=last-class&name=x").await;
    let holder = fake.holder("last-class").await.unwrap();
    lb.cli_ok(&["servers", "cordon", &ids[holder]]);
    lb.cli_ok(&["poll", "--allow-offline"]);
    assert_eq!(
        states(&lb)[&ids[holder]].0,
        "cordoned",
        "still has a meeting"
    );
    lb.get("create", "meetingID=new-class&name=x").await;
    assert_eq!(
        fake.holder("new-class").await,
        Some(1 - holder),
        "no new meetings on a cordoned server"
    );
    fake.end_meeting(holder, "last-class").await;
    lb.cli_ok(&["poll", "--allow-offline"]);
    assert_eq!(states(&lb)[&ids[holder]].0, "disabled");
}

#[tokio::test]
async fn a_slow_server_does_not_hold_up_the_others() {
    let fake = Fake::start(&["s0", "s1", "s2"]);
    let lb = Lb::start(&[
        ("POLLER_WAIT_TIMEOUT", "1"),
        ("RESPONSE_TIMEOUT", "10"),
        ("SERVER_UNHEALTHY_THRESHOLD", "1"),
    ]);
    let ids = lb.add_fake_servers(&fake);
    fake.mode(0, json!({"mode": "slow", "delay_ms": 8000}))
        .await;
    fake.set_meeting(
        1,
        "busy",
        json!({"participants": 20, "create_time_ms": common_now_ms() - 3_600_000}),
    )
    .await;
    let started = std::time::Instant::now();
    let out = lb.cli_ok(&["poll", "--allow-offline"]);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the cycle is bounded by POLLER_WAIT_TIMEOUT, not the slow server"
    );
    assert!(
        out.contains(&format!(
            "{}: offline (poll failed: no answer within POLLER_WAIT_TIMEOUT",
            ids[0]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}: online, load 20.0", ids[1])),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}: online, load 0.0", ids[2])),
        "{out}"
    );
}

/// The holder of the poller lease, read straight from the SQLite file.
fn lease_holder(db: &std::path::Path) -> Option<String> {
    let c = rusqlite::Connection::open(db).ok()?;
    c.query_row(
        "SELECT holder FROM leases WHERE name = 'poller' AND expires_at > ?1",
        [common_now_ms()],
        |r| r.get(0),
    )
    .ok()
}

#[tokio::test]
async fn two_serve_processes_share_one_poller_and_the_second_takes_over() {
    let fake = Fake::start(&["s0"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferrolite.db");
    let mut env = Lb::base_env(&dir);
    env.retain(|(k, _)| k != "POLL_INTERVAL" && k != "LOG_LEVEL");
    env.push(("POLL_INTERVAL".into(), "0.5".into()));
    env.push(("LOG_LEVEL".into(), "info".into()));
    env.push(("POLLER_WAIT_TIMEOUT".into(), "1".into()));
    let mut a = Lb::start_in(dir, env.clone());
    let b_dir = tempfile::tempdir().unwrap();
    let mut b = Lb::start_in(b_dir, env);
    a.add_fake_servers(&fake);

    // Holders are `<node id>:<pid>`.
    let pid_of = |h: &str| h.rsplit(':').next().unwrap().parse::<u32>().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || {
            let h = lease_holder(&db);
            async move { h.is_some() }
        })
        .await
    );
    let first = pid_of(&lease_holder(&db).unwrap());
    assert!(first == a.pid() || first == b.pid());
    // Over several intervals the lease never changes hands while its holder lives.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(lease_holder(&db).map(|h| pid_of(&h)), Some(first));
    }
    let (dead, survivor) = if first == a.pid() {
        (&mut a, b.pid())
    } else {
        (&mut b, a.pid())
    };
    dead.kill();
    assert!(
        eventually(Duration::from_secs(15), || {
            let h = lease_holder(&db).map(|h| pid_of(&h));
            async move { h == Some(survivor) }
        })
        .await,
        "the survivor takes the poller lease once the first holder's lease expires"
    );
    let survivor_lb = if a.pid() == survivor { &a } else { &b };
    assert!(
        eventually(Duration::from_secs(5), || async {
            survivor_lb
                .logs()
                .contains("this process is now the poller")
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_class_start_burst_spreads_evenly_and_never_splits_a_room() {
    let secrets: Vec<String> = (0..22).map(|i| format!("s{i}")).collect();
    let fake = Fake::start(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    // 200 new rooms; each of the first 20 rooms is created by two clients at once.
    let mut requests: Vec<String> = (0..200).map(|n| format!("class-{n}")).collect();
    requests.extend((0..20).map(|n| format!("class-{n}")));
    let urls: Vec<String> = requests
        .iter()
        .map(|r| lb.api_url("create", &format!("meetingID={r}&name={r}")))
        .collect();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(urls));
    let mut clients = Vec::new();
    for _ in 0..32 {
        let queue = queue.clone();
        let http = lb.http.clone();
        clients.push(tokio::spawn(async move {
            let mut bodies = Vec::new();
            loop {
                let Some(url) = queue.lock().await.pop() else {
                    break;
                };
                bodies.push(http.get(url).send().await.unwrap().text().await.unwrap());
            }
            bodies
        }));
    }
    for c in clients {
        for body in c.await.unwrap() {
            assert_eq!(
                xml_field(&body, "returncode").as_deref(),
                Some("SUCCESS"),
                "{body}"
            );
        }
    }
    let mut per_server = Vec::new();
    let mut holders: HashMap<String, usize> = HashMap::new();
    for i in 0..22 {
        let ms = fake.meetings(i).await;
        per_server.push(ms.len());
        for m in ms {
            *holders
                .entry(m["meeting_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(holders.len(), 200);
    assert!(holders.values().all(|&n| n == 1), "no room on two servers");
    let (min, max) = (
        *per_server.iter().min().unwrap(),
        *per_server.iter().max().unwrap(),
    );
    assert!(
        max as f64 <= 1.5 * min as f64,
        "busiest {max} vs least busy {min}: {per_server:?}"
    );
}
