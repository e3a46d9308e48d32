//! What BBB servers send back: oversize answers, DTDs and prologs, drip-feeding servers,
//! servers that fail every create or drop the connection after one, and the algorithm
//! forwarded calls are signed with. fake-bbb plays each hostile server (its modes).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(30);

/// Makes server `i` busier than the others, so placement prefers the others.
async fn make_busy(fake: &Fake, lb: &Lb, i: usize) {
    fake.set_meeting(i, "busy", json!({"participants": 40, "moderators": 1}))
        .await;
    lb.cli_ok(&["poll"]);
}

#[tokio::test]
async fn answers_over_the_size_cap_are_refused_by_the_poller_and_get_meetings() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[("BBB_MAX_ANSWER_SIZE", "1")]);
    let ids = lb.add_fake_servers(&fake);
    fake.set_meeting(1, "small", json!({"participants": 2}))
        .await;
    for bytes in [2 << 20, 20 << 20] {
        fake.mode(0, json!({"mode": "huge", "bytes": bytes})).await;
        let out = lb.cli_ok(&["poll", "--allow-offline"]);
        let line = out.lines().find(|l| l.contains(&ids[0])).unwrap_or("");
        assert!(out.contains("larger than 1048576 bytes"), "{out}");
        assert!(
            !line.contains(": online") || out.contains("poll failed"),
            "{out}"
        );
        let (status, body) = lb.get("getMeetings", "").await;
        assert_eq!(status, 200);
        assert!(body.contains("<meetingID>small</meetingID>"), "{body}");
        assert!(!body.contains("huge-"), "the oversize answer was left out");
    }
    // Under the cap the same kind of answer is read.
    fake.mode(0, json!({"mode": "huge", "bytes": 200 << 10}))
        .await;
    let out = lb.cli_ok(&["poll", "--allow-offline"]);
    assert!(!out.contains("larger than"), "{out}");
    let (_, body) = lb.get("getMeetings", "").await;
    assert!(body.contains("huge-1"), "an answer under the cap is merged");
}

#[tokio::test]
async fn dtds_and_backend_prologs_never_reach_the_front_end() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    // A normal answer is relayed under the load balancer's own declaration.
    let (_, body) = lb.get("create", "meetingID=m1&name=M").await;
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>"),
        "{body}"
    );
    fake.set_meeting(0, "m1", json!({"participants": 3})).await;
    fake.mode(0, json!({"mode": "dtd"})).await;
    for (call, query) in [
        ("create", "meetingID=m1&name=M"),
        ("create", "meetingID=m2&name=M"),
        ("isMeetingRunning", "meetingID=m1"),
        ("getMeetingInfo", "meetingID=m1"),
        ("getMeetings", ""),
        ("end", "meetingID=m1&password=mp"),
    ] {
        let (status, body) = lb.get(call, query).await;
        assert_eq!(status, 200, "{call}");
        let lower = body.to_ascii_lowercase();
        assert!(
            !lower.contains("<!doctype")
                && !lower.contains("<!entity")
                && !lower.contains("passwd"),
            "{call}: {body}"
        );
        assert!(
            body.contains("<returncode>"),
            "{call}: a BBB document: {body}"
        );
    }
    // The poller does not take a DTD-carrying answer as a health report either.
    let out = lb.cli_ok(&["poll", "--allow-offline"]);
    assert!(out.contains("not a BBB document"), "{out}");
}

#[tokio::test]
async fn a_drip_feeding_server_does_not_delay_the_other_servers_polls() {
    let fake = Fake::start(&["s0", "s1"]);
    let mut lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    fake.mode(
        0,
        json!({"mode": "drip", "delay_ms": 400, "chunk_bytes": 8}),
    )
    .await;
    lb.terminate();
    for (k, v) in [
        ("POLL_INTERVAL", "1"),
        ("POLLER_WAIT_TIMEOUT", "120"),
        ("RESPONSE_TIMEOUT", "120"),
    ] {
        lb.env.retain(|(ek, _)| ek != k);
        lb.env.push((k.into(), v.into()));
    }
    lb.spawn();
    fake.clear_calls(0).await;
    fake.clear_calls(1).await;
    // Server 1 is polled every second while server 0's answer takes tens of seconds.
    let polled = eventually(PATIENCE, || async {
        fake.calls_to(1, "getMeetings").await.len() >= 5
    })
    .await;
    let slow = fake.calls_to(0, "getMeetings").await.len();
    let healthy = fake.calls_to(1, "getMeetings").await.len();
    assert!(polled, "the healthy server was polled 5 times");
    // The slow server's one poll is still running: it is not asked again meanwhile (in one
    // shared cycle the healthy server would not have been polled again either).
    assert!(slow <= 1, "slow {slow}, healthy {healthy}");
}

#[tokio::test]
async fn a_server_that_fails_every_create_stops_attracting_creates() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[("CREATE_FAILURE_LIMIT", "3")]);
    lb.add_fake_servers(&fake);
    make_busy(&fake, &lb, 1).await;
    fake.mode(0, json!({"mode": "fail_creates"})).await;
    let mut ok = 0;
    for n in 0..30 {
        let (_, body) = lb.get("create", &format!("meetingID=c{n}&name=C")).await;
        if body.contains("<returncode>SUCCESS</returncode>") {
            ok += 1;
        }
    }
    let tried = fake.calls_to(0, "create").await.len();
    assert_eq!(
        tried, 3,
        "the failing server got only its streak of creates"
    );
    assert_eq!(ok, 27, "every other create succeeded elsewhere");
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_ended_on_that_server() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    make_busy(&fake, &lb, 1).await;
    fake.mode(0, json!({"mode": "drop_after_create"})).await;
    let (_, body) = lb.get("create", "meetingID=ghost&name=G").await;
    assert!(body.contains("<returncode>SUCCESS</returncode>"), "{body}");
    assert!(fake
        .meetings(1)
        .await
        .iter()
        .any(|m| m["meeting_id"] == "ghost"));
    let ended = eventually(PATIENCE, || async {
        !fake
            .meetings(0)
            .await
            .iter()
            .any(|m| m["meeting_id"] == "ghost")
    })
    .await;
    assert!(ended, "the ghost copy on the first server was ended");
    let ends = fake.calls_to(0, "end").await;
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["params"]["meetingID"], "ghost");
    // The meeting lives on the second server, and the store maps it there.
    let (_, info) = lb.get("getMeetingInfo", "meetingID=ghost").await;
    assert!(info.contains("<meetingID>ghost</meetingID>"), "{info}");
}

#[tokio::test]
async fn forwarded_calls_are_signed_with_the_strongest_configured_algorithm() {
    for (setting, expected, sig_len) in [
        (None, "SHA256", 64),
        (Some("SHA1:SHA512"), "SHA512", 128),
        (Some("SHA1"), "SHA1", 40),
    ] {
        let fake = Fake::start(&["s0"]);
        let mut env = vec![];
        if let Some(s) = setting {
            env.push(("LOADBALANCER_CHECKSUM_ALGORITHM", s));
        }
        let lb = Lb::start(&env);
        lb.add_fake_servers(&fake);
        fake.clear_calls(0).await;
        // The front end signs with SHA-1 (allowed inbound in every case here).
        for (call, query) in [
            ("create", "meetingID=a1&name=A"),
            ("isMeetingRunning", "meetingID=a1"),
            ("getMeetingInfo", "meetingID=a1"),
            ("getMeetings", ""),
            ("end", "meetingID=a1&password=mp"),
        ] {
            let (status, body) = lb.get(call, query).await;
            assert_eq!(status, 200, "{call}: {body}");
        }
        let calls = fake.calls(0).await;
        assert!(calls.len() >= 5);
        for c in &calls {
            assert_eq!(c["checksum_ok"], true, "{c}");
            assert_eq!(c["algorithm"], expected, "{setting:?}: {c}");
        }
        // join is a redirect the browser follows: its checksum has the same algorithm.
        lb.get("create", "meetingID=a2&name=A").await;
        let r = lb
            .http
            .get(lb.api_url("join", "meetingID=a2&fullName=U&role=VIEWER"))
            .send()
            .await
            .unwrap();
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let checksum = location.rsplit("checksum=").next().unwrap();
        assert_eq!(checksum.len(), sig_len, "{location}");
    }
}
