//! The BBB API gateway end to end: the real `ferrolite serve` in front of `fake-bbb`
//! servers, spoken to over real sockets.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn failed_key(body: &str) -> Option<String> {
    (xml_field(body, "returncode").as_deref() == Some("FAILED"))
        .then(|| xml_field(body, "messageKey").unwrap_or_default())
}

#[tokio::test]
async fn index_answers_with_and_without_trailing_slash() {
    let lb = Lb::start(&[("BUILD_NUMBER", "ferro-7")]);
    for path in ["/bigbluebutton/api", "/bigbluebutton/api/"] {
        let (status, body) = lb.raw_get(&format!("{}{path}", lb.base)).await;
        assert_eq!(status, 200);
        assert_eq!(xml_field(&body, "returncode").as_deref(), Some("SUCCESS"));
        assert_eq!(xml_field(&body, "version").as_deref(), Some("2.0"));
        assert_eq!(xml_field(&body, "build").as_deref(), Some("ferro-7"));
    }
    let (status, body) = lb.raw_get(&format!("{}/health_check", lb.base)).await;
    assert_eq!((status, body.as_str()), (200, "success"));
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_unsupported_requests() {
    let lb = Lb::start(&[]);
    for url in [
        format!("{}/bigbluebutton/api/getDefaultConfigXML", lb.base),
        format!("{}/somewhere/else", lb.base),
        lb.api_url("insertDocument", "meetingID=x"),
        lb.api_url("create.xml", "meetingID=x"),
    ] {
        let (status, body) = lb.raw_get(&url).await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(
            failed_key(&body).as_deref(),
            Some("unsupportedRequest"),
            "{url}"
        );
    }
    let r = lb
        .http
        .post(lb.api_url("join", "meetingID=x&fullName=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        failed_key(&r.text().await.unwrap()).as_deref(),
        Some("unsupportedRequest")
    );
}

#[tokio::test]
async fn every_checksum_algorithm_is_accepted_and_bad_ones_are_refused() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    for alg in ["sha1", "sha256", "sha384", "sha512"] {
        let (_, body) = lb
            .raw_get(&lb.api_url_alg("create", &format!("meetingID=alg-{alg}&name=x"), alg))
            .await;
        assert_eq!(
            xml_field(&body, "returncode").as_deref(),
            Some("SUCCESS"),
            "{alg}: {body}"
        );
        // The forwarded call is signed with the server's secret and, as Scalelite does, the
        // strongest configured algorithm (SHA-256 when none is configured), whatever the
        // request used.
        let calls = fake.calls_to(0, "create").await;
        let last = calls.last().unwrap();
        assert_eq!(last["checksum_ok"], true);
        assert_eq!(last["algorithm"], "SHA256");
    }
    let wrong = format!(
        "{}/bigbluebutton/api/create?{}",
        lb.base,
        sign("create", "meetingID=x", "not-the-secret", "sha256")
    );
    let missing = format!("{}/bigbluebutton/api/create?meetingID=x", lb.base);
    let bad_length = format!(
        "{}/bigbluebutton/api/create?meetingID=x&checksum={}",
        lb.base,
        "x".repeat(40)
    );
    let other_call = format!(
        "{}/bigbluebutton/api/create?{}",
        lb.base,
        sign("join", "meetingID=x", LB_SECRET, "sha1")
    );
    for url in [wrong, missing, bad_length, other_call] {
        let (status, body) = lb.raw_get(&url).await;
        assert_eq!(status, 200);
        assert_eq!(failed_key(&body).as_deref(), Some("checksumError"), "{url}");
        assert_eq!(
            xml_field(&body, "message").as_deref(),
            Some("You did not pass the checksum security check")
        );
    }
}

#[tokio::test]
async fn extra_secrets_and_the_algorithm_list_are_honoured() {
    let lb = Lb::start(&[
        ("LOADBALANCER_SECRETS", "second:third"),
        ("LOADBALANCER_CHECKSUM_ALGORITHM", "SHA256:SHA512"),
    ]);
    let url = |secret: &str, alg: &str| {
        format!(
            "{}/bigbluebutton/api/isMeetingRunning?{}",
            lb.base,
            sign("isMeetingRunning", "meetingID=m", secret, alg)
        )
    };
    for secret in [LB_SECRET, "second", "third"] {
        let (_, body) = lb.raw_get(&url(secret, "sha256")).await;
        assert_eq!(
            xml_field(&body, "running").as_deref(),
            Some("false"),
            "{secret}"
        );
    }
    let (_, body) = lb.raw_get(&url("third", "sha1")).await;
    assert_eq!(
        failed_key(&body).as_deref(),
        Some("checksumError"),
        "SHA-1 is not in the allowed list"
    );
}

#[tokio::test]
async fn post_with_a_form_body_is_signed_over_the_query_only() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=posted&name=Posted").await;
    let checksum = sign("getMeetingInfo", "", LB_SECRET, "sha256");
    let r = lb
        .http
        .post(format!("{}/bigbluebutton/api/getMeetingInfo", lb.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("meetingID=posted&{checksum}"))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert_eq!(
        xml_field(&body, "meetingID").as_deref(),
        Some("posted"),
        "{body}"
    );

    let r = lb
        .http
        .post(lb.api_url("create", "meetingID=j"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        failed_key(&r.text().await.unwrap()).as_deref(),
        Some("unsupportedContentType")
    );
}

#[tokio::test]
async fn thirty_creates_spread_over_three_servers_by_load_and_multiplier() {
    let fake = Fake::start(&["s0", "s1", "s2"]);
    let lb = Lb::start(&[]);
    let ids = lb.add_fake_servers(&fake);
    // Server 2 counts double: it should get about half as many meetings as the others.
    lb.cli_ok(&["servers", "update", &ids[2], "--load-multiplier", "2"]);
    for n in 0..30 {
        let (_, body) = lb
            .get("create", &format!("meetingID=spread-{n}&name=Spread"))
            .await;
        assert_eq!(
            xml_field(&body, "returncode").as_deref(),
            Some("SUCCESS"),
            "{body}"
        );
    }
    let counts: Vec<usize> = futures_util::future::join_all((0..3).map(|i| fake.meetings(i)))
        .await
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 30);
    assert_eq!(
        counts,
        vec![12, 12, 6],
        "load 1 per meeting, server 2 costs 2 per meeting"
    );
}

#[tokio::test]
async fn create_is_idempotent_and_stays_on_one_server() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    let (_, first) = lb.get("create", "meetingID=same&name=Same").await;
    let holder = fake.holder("same").await.expect("created somewhere");
    for _ in 0..5 {
        let (_, again) = lb.get("create", "meetingID=same&name=Same").await;
        assert_eq!(
            xml_field(&again, "messageKey").as_deref(),
            Some("duplicateWarning"),
            "{again}"
        );
        assert_eq!(
            xml_field(&again, "internalMeetingID"),
            xml_field(&first, "internalMeetingID")
        );
    }
    assert_eq!(fake.calls_to(holder, "create").await.len(), 6);
    assert!(fake.calls_to(1 - holder, "create").await.is_empty());
}

#[tokio::test]
async fn create_rewrites_parameters_as_scalelite_does() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[
        ("MAX_MEETING_DURATION", "3600"),
        ("DEFAULT_CREATE_PARAMS", "param1=not-param1,param2=param2"),
        ("OVERRIDE_CREATE_PARAMS", "forced=yes"),
        ("CREATE_EXCLUDE_PARAMS", "test4,test2"),
    ]);
    lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=rw&name=R&param1=param1&forced=no&test4=&test2=&duration=5000&voiceBridge=12345&moderatorPW=mp").await;
    let call = fake.calls_to(0, "create").await.pop().unwrap();
    let p = &call["params"];
    assert_eq!(p["param1"], "param1");
    assert_eq!(p["param2"], "param2");
    assert_eq!(p["forced"], "yes");
    assert_eq!(p["duration"], "3600");
    assert_eq!(p["moderatorPW"], "mp");
    assert!(p.get("test4").is_none() && p.get("test2").is_none());
    let vb = p["voiceBridge"].as_str().unwrap();
    assert!(
        vb.len() == 9 && vb != "12345",
        "the voice bridge is Ferrolite's own: {vb}"
    );
    assert_eq!(call["checksum_ok"], true);
}

#[tokio::test]
async fn voice_bridges_are_unique_and_external_ones_are_used_when_allowed() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[
        ("USE_EXTERNAL_VOICE_BRIDGE", "true"),
        ("VOICE_BRIDGE_LEN", "5"),
    ]);
    lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=a&name=A&voiceBridge=77777")
        .await;
    lb.get("create", "meetingID=b&name=B&voiceBridge=77777")
        .await;
    let calls = fake.calls_to(0, "create").await;
    assert_eq!(calls[0]["params"]["voiceBridge"], "77777");
    let second = calls[1]["params"]["voiceBridge"].as_str().unwrap();
    assert_ne!(second, "77777");
    assert_eq!(second.len(), 5);
}

#[tokio::test]
async fn create_with_an_xml_body_is_passed_through_intact() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    let slides = r#"<?xml version="1.0" encoding="UTF-8"?><modules><module name="presentation"><document url="https://example.com/a.pdf" filename="a.pdf"/></module></modules>"#;
    let r = lb
        .http
        .post(lb.api_url("create", "meetingID=slides&name=Slides"))
        .header("Content-Type", "text/xml")
        .body(slides)
        .send()
        .await
        .unwrap();
    assert_eq!(
        xml_field(&r.text().await.unwrap(), "returncode").as_deref(),
        Some("SUCCESS")
    );
    let call = fake.calls_to(0, "create").await.pop().unwrap();
    assert_eq!(call["method"], "POST");
    assert_eq!(call["content_type"], "application/xml");
    assert_eq!(call["body"], slides);
}

#[tokio::test]
async fn no_available_server_and_strict_tags_give_scalelite_errors() {
    let lb = Lb::start(&[]);
    let (_, body) = lb.get("create", "meetingID=x&name=x").await;
    assert_eq!(failed_key(&body).as_deref(), Some("internalError"));
    assert_eq!(
        xml_field(&body, "message").as_deref(),
        Some("Could not find any available servers.")
    );

    let fake = Fake::start(&["s0", "s1"]);
    let ids = lb.add_fake_servers(&fake);
    lb.cli_ok(&["servers", "update", &ids[1], "--tag", "gpu"]);
    let (_, body) = lb
        .get("create", "meetingID=t1&name=x&meta_server-tag=test-tag!")
        .await;
    assert_eq!(failed_key(&body).as_deref(), Some("serverTagUnavailable"));
    assert_eq!(
        xml_field(&body, "message").as_deref(),
        Some("There is no available server with the required tag=test-tag.")
    );
    lb.get("create", "meetingID=t2&name=x&meta_server-tag=gpu!")
        .await;
    assert_eq!(fake.holder("t2").await, Some(1));
    assert_eq!(
        fake.calls_to(1, "create").await[0]["params"]["meta_server-tag"],
        "gpu"
    );
    lb.get("create", "meetingID=t3&name=x&meta_server-tag=other")
        .await;
    assert_eq!(
        fake.holder("t3").await,
        Some(0),
        "optional tag falls back to untagged servers"
    );
    assert!(fake.calls_to(0, "create").await[0]["params"]
        .get("meta_server-tag")
        .is_none());
}

#[tokio::test]
async fn a_failing_server_is_skipped_for_a_new_meeting() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    // Server 0 has the lower id order only by chance; make both candidates fail in turn.
    fake.mode(0, json!({"mode": "error", "status": 500})).await;
    for n in 0..4 {
        let (_, body) = lb.get("create", &format!("meetingID=fo-{n}&name=x")).await;
        assert_eq!(
            xml_field(&body, "returncode").as_deref(),
            Some("SUCCESS"),
            "{body}"
        );
        assert_eq!(fake.holder(&format!("fo-{n}")).await, Some(1));
    }
    fake.mode(1, json!({"mode": "down"})).await;
    let (_, body) = lb.get("create", "meetingID=nowhere&name=x").await;
    assert_eq!(
        xml_field(&body, "message").as_deref(),
        Some("Unable to create meeting on server.")
    );
    let out = lb.cli_ok(&["meetings", "list"]);
    assert!(
        !out.contains("nowhere"),
        "a failed create leaves no mapping behind: {out}"
    );
}

#[tokio::test]
async fn join_redirects_to_the_owning_server_signed_with_its_secret() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[
        ("DEFAULT_JOIN_PARAMS", "param1=not-param1,param2=param2"),
        ("OVERRIDE_JOIN_PARAMS", "userdata-bbb_skip=true"),
        ("JOIN_EXCLUDE_PARAMS", "test1"),
    ]);
    let ids = lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=j1&name=J").await;
    let holder = fake.holder("j1").await.unwrap();
    let r = lb.http.get(lb.api_url("join", "meetingID=j1&fullName=Ann+B&role=MODERATOR&param1=param1&test1=x&userdata-bbb_skip=false")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let server_url = &fake.servers[holder].url;
    assert!(
        location.starts_with(&format!("{server_url}/join?")),
        "{location}"
    );
    let query = location.split_once('?').unwrap().1;
    let (unsigned, checksum) = query.rsplit_once("&checksum=").unwrap();
    assert_eq!(
        sign("join", unsigned, &fake.servers[holder].secret, "sha256"),
        query
    );
    assert!(!checksum.is_empty());
    assert!(
        unsigned.contains("param1=param1")
            && unsigned.contains("param2=param2")
            && unsigned.contains("userdata-bbb_skip=true")
    );
    assert!(!unsigned.contains("test1"));
    // Following the redirect joins on the backend.
    let joined = lb.http.get(&location).send().await.unwrap();
    assert_eq!(joined.status().as_u16(), 302);
    assert_eq!(fake.meetings(holder).await[0]["participants"], 1);
    // The load rose by one for the join (flushed to the store within a fraction of a second).
    let load_of = |out: String, id: &str| -> f64 {
        let block = out
            .split("id: ")
            .find(|b| b.starts_with(id))
            .unwrap()
            .to_string();
        block
            .lines()
            .find_map(|l| l.trim().strip_prefix("load: "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let id = ids[holder].clone();
    assert!(
        eventually(Duration::from_secs(5), || async {
            load_of(lb.cli_ok(&["servers"]), &id) == 2.0
        })
        .await,
        "create + join = 2"
    );

    let (_, body) = lb.get("join", "meetingID=unknown&fullName=x").await;
    assert_eq!(failed_key(&body).as_deref(), Some("notFound"));
    lb.cli_ok(&["servers", "disable", &ids[holder], "--yes"]);
    lb.get("create", "meetingID=j2&name=J").await;
    lb.cli_ok(&["servers", "cordon", &ids[1 - holder]]);
    let (_, body) = lb.get("join", "meetingID=j2&fullName=x").await;
    assert!(
        body.is_empty(),
        "cordoned servers still accept joins: {body}"
    );
    lb.cli_ok(&["servers", "disable", &ids[1 - holder], "--yes"]);
    let (_, body) = lb.get("join", "meetingID=j2&fullName=x").await;
    assert_eq!(
        failed_key(&body).as_deref(),
        Some("notFound"),
        "disabling with --yes ended the meeting"
    );
}

#[tokio::test]
async fn meeting_calls_go_to_the_owning_server() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=m1&name=M").await;
    let holder = fake.holder("m1").await.unwrap();

    let (_, body) = lb.get("getMeetingInfo", "meetingID=m1").await;
    assert_eq!(xml_field(&body, "meetingID").as_deref(), Some("m1"));
    let (_, body) = lb.get("isMeetingRunning", "meetingID=m1").await;
    assert_eq!(xml_field(&body, "running").as_deref(), Some("false"));
    fake.set_meeting(holder, "m1", json!({"participants": 3}))
        .await;
    let (_, body) = lb.get("isMeetingRunning", "meetingID=m1").await;
    assert_eq!(xml_field(&body, "running").as_deref(), Some("true"));
    let (_, body) = lb
        .get("sendChatMessage", "meetingID=m1&message=hello&userName=LB")
        .await;
    assert_eq!(
        xml_field(&body, "returncode").as_deref(),
        Some("SUCCESS"),
        "{body}"
    );
    let chat = fake.calls_to(holder, "sendChatMessage").await;
    assert_eq!(chat[0]["params"]["message"], "hello");

    // Unknown meetings are answered locally, as Scalelite does.
    fake.clear_calls(holder).await;
    let (_, body) = lb.get("isMeetingRunning", "meetingID=ghost").await;
    assert_eq!(xml_field(&body, "running").as_deref(), Some("false"));
    for call in ["getMeetingInfo", "end", "sendChatMessage"] {
        let (_, body) = lb.get(call, "meetingID=ghost").await;
        assert_eq!(failed_key(&body).as_deref(), Some("notFound"), "{call}");
    }
    for call in [
        "getMeetingInfo",
        "end",
        "isMeetingRunning",
        "create",
        "join",
    ] {
        let (_, body) = lb.get(call, "meetingID=").await;
        assert_eq!(
            failed_key(&body).as_deref(),
            Some("missingParamMeetingID"),
            "{call}"
        );
    }
    assert!(
        fake.calls(holder).await.is_empty(),
        "no BBB call for unknown meetings"
    );

    let (_, body) = lb.get("end", "meetingID=m1&password=pw").await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("sentEndMeetingRequest")
    );
    assert_eq!(
        fake.calls_to(holder, "end").await[0]["params"]["password"],
        "pw"
    );
    let (_, body) = lb.get("getMeetingInfo", "meetingID=m1").await;
    assert_eq!(
        failed_key(&body).as_deref(),
        Some("notFound"),
        "end forgets the meeting"
    );
}

#[tokio::test]
async fn insert_document_streams_a_large_body_to_the_owner() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=doc&name=D").await;
    let big = format!("<modules><module name=\"presentation\"><document name=\"a.pdf\">{}</document></module></modules>", "A".repeat(5 * 1024 * 1024));
    let r = lb
        .http
        .post(lb.api_url("insertDocument", "meetingID=doc"))
        .header("Content-Type", "application/xml")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        xml_field(&r.text().await.unwrap(), "returncode").as_deref(),
        Some("SUCCESS")
    );
    let call = fake.calls_to(0, "insertDocument").await.pop().unwrap();
    assert_eq!(call["body_len"], big.len());
    assert_eq!(call["content_type"], "application/xml");
    assert_eq!(
        call["params"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["checksum", "meetingID"]
    );
    let r = lb
        .http
        .post(lb.api_url("insertDocument", "meetingID=doc"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        failed_key(&r.text().await.unwrap()).as_deref(),
        Some("unsupportedContentType")
    );
}

#[tokio::test]
async fn get_meetings_merges_servers_and_survives_dead_and_slow_ones() {
    let fake = Fake::start(&["s0", "s1", "s2"]);
    let lb = Lb::start(&[("GET_MEETINGS_TIMEOUT", "1")]);
    lb.add_fake_servers(&fake);
    let (_, body) = lb.get("getMeetings", "").await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("noMeetings")
    );
    for n in 0..6 {
        lb.get("create", &format!("meetingID=gm-{n}&name=G")).await;
    }
    let (_, body) = lb.get("getMeetings", "").await;
    assert_eq!(count(&body, "meeting"), 6, "{body}");
    fake.mode(0, json!({"mode": "down"})).await;
    fake.mode(1, json!({"mode": "slow", "delay_ms": 5000}))
        .await;
    let started = std::time::Instant::now();
    let (status, body) = lb.get("getMeetings", "").await;
    assert_eq!(status, 200);
    assert_eq!(xml_field(&body, "returncode").as_deref(), Some("SUCCESS"));
    assert_eq!(
        count(&body, "meeting"),
        2,
        "only the healthy server's meetings: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the slow server did not hold the call for its full delay"
    );
}

#[tokio::test]
async fn get_meetings_relays_a_server_with_thousands_of_meetings_whole() {
    // Large enough that Ferrolite reads the answer off the async worker.
    let fake = Fake::start_with(&["s0", "s1"], &["--seed-meetings", "1500"]);
    let direct = reqwest::get(format!(
        "{}/getMeetings?{}",
        fake.servers[0].url,
        sign("getMeetings", "", "s0", "sha256")
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(
        count(&direct, "meeting"),
        1500,
        "{}",
        &direct[..direct.len().min(300)]
    );
    assert!(direct.len() > 256 * 1024, "{} bytes only", direct.len());
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    let (status, body) = lb.get("getMeetings", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        count(&body, "meeting"),
        3000,
        "both servers' meetings, every one"
    );
    assert!(body.contains("<meetingID>seed-0-1499</meetingID>"));
    assert!(body.contains("<meetingID>seed-1-0</meetingID>"));
}

#[tokio::test]
async fn get_meetings_can_be_disabled() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[("GET_MEETINGS_API_DISABLED", "true")]);
    lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=hidden&name=H").await;
    let (_, body) = lb
        .raw_get(&format!("{}/bigbluebutton/api/getMeetings", lb.base))
        .await;
    assert_eq!(
        xml_field(&body, "messageKey").as_deref(),
        Some("noMeetings")
    );
}

#[tokio::test]
async fn hostile_input_never_breaks_the_service() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    lb.add_fake_servers(&fake);
    let long = "x".repeat(60 * 1024);
    let urls = vec![
        format!("{}/bigbluebutton/api/create?%%%&&==&checksum=%zz", lb.base),
        format!(
            "{}/bigbluebutton/api/create?meetingID=%ff%fe&name=%c3",
            lb.base
        ),
        lb.api_url("create", "meetingID=%ff%fe%80&name=bad+utf8"),
        lb.api_url("create", "meetingID=rep&meetingID=other&name=a&name=b"),
        lb.api_url("create", &format!("meetingID=big&name={long}")),
        lb.api_url("getMeetingInfo", &format!("meetingID={long}")),
        lb.api_url("create", "meetingID=&name=empty"),
        lb.api_url("create", "name=missing"),
        format!("{}/bigbluebutton/api/{}", lb.base, "a".repeat(5000)),
        format!(
            "{}/bigbluebutton/api/create?checksum=&checksum=&meetingID=x",
            lb.base
        ),
    ];
    for url in &urls {
        let r = lb.http.get(url).send().await.expect("answered");
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert!(status < 500, "{status} for {}", &url[..url.len().min(120)]);
        if status == 200 {
            assert!(
                xml_field(&body, "returncode").is_some(),
                "BBB-style answer: {}",
                &body[..body.len().min(200)]
            );
        }
    }
    // A repeated key keeps its first value.
    assert!(fake.holder("rep").await.is_some());
    // A 1 MB parameter in a form body is read and forwarded like any other.
    let huge = "y".repeat(1024 * 1024);
    let r = lb
        .http
        .post(format!("{}/bigbluebutton/api/create", lb.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "meetingID=huge&name=h&welcome={huge}&{}",
            sign("create", "", LB_SECRET, "sha256")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        xml_field(&r.text().await.unwrap(), "returncode").as_deref(),
        Some("SUCCESS")
    );
    let call = fake.calls_to(0, "create").await.pop().unwrap();
    assert_eq!(
        call["params"]["welcome"].as_str().map(str::len),
        Some(huge.len())
    );
    // A 1 MB request line is refused by the HTTP layer, not by a crash.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = lb.base.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let line =
            format!("GET /bigbluebutton/api/create?meetingID={huge} HTTP/1.1\r\nHost: lb\r\n\r\n");
        let _ = s.write_all(line.as_bytes()).await;
        let mut resp = vec![0u8; 64];
        let n = s.read(&mut resp).await.unwrap_or(0);
        let head = String::from_utf8_lossy(&resp[..n]).to_string();
        assert!(
            n == 0 || head.starts_with("HTTP/1.1 4"),
            "refused with a 4xx or closed: {head:?}"
        );
    }
    // A 5 MB form body is refused from its declared length, before it is read. Over a raw
    // connection: a client still writing the body when the 413 and the close arrive may
    // see its write fail (a broken pipe) before it reads the answer.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let url = lb.api_url("getMeetingInfo", "");
        let target = &url[url.find("/bigbluebutton").unwrap()..];
        let addr = lb.base.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: lb\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            5 * 1024 * 1024
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&[b'a'; 4096]).await.unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("requestTooLarge"), "{answer}");
    }
    // Still serving (on a new connection: the server closes one after a 413).
    let fresh = http_client();
    let body = fresh
        .get(lb.api_url("create", "meetingID=after&name=ok"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(xml_field(&body, "returncode").as_deref(), Some("SUCCESS"));
}

#[tokio::test]
async fn serves_on_a_unix_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let mut env = Lb::base_env(&dir);
    env.push(("BIND".into(), format!("unix:{}", sock.display())));
    let lb = Lb::start_in(dir, env);
    assert!(lb.base.starts_with("unix:"), "{}", lb.base);
    let query = sign("isMeetingRunning", "meetingID=sock", LB_SECRET, "sha256");
    let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
    s.write_all(format!("GET /bigbluebutton/api/isMeetingRunning?{query} HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("<running>false</running>"), "{resp}");
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let fake = Fake::start(&["s0"]);
    let mut lb = Lb::start(&[("RESPONSE_TIMEOUT", "5")]);
    lb.add_fake_servers(&fake);
    fake.mode(0, json!({"mode": "slow", "delay_ms": 1500}))
        .await;
    let url = lb.api_url("create", "meetingID=inflight&name=x");
    let http = lb.http.clone();
    let pending =
        tokio::spawn(async move { http.get(url).send().await.unwrap().text().await.unwrap() });
    assert!(
        eventually(Duration::from_secs(3), || async {
            !fake.calls_to(0, "create").await.is_empty()
        })
        .await
    );
    let status = tokio::task::spawn_blocking(move || {
        let s = lb.terminate();
        (s, lb)
    });
    let body = pending.await.unwrap();
    assert_eq!(
        xml_field(&body, "returncode").as_deref(),
        Some("SUCCESS"),
        "{body}"
    );
    let (status, _lb) = status.await.unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
}

#[tokio::test]
async fn secrets_and_passwords_never_reach_the_logs() {
    let fake = Fake::start(&["backend-secret-xyz"]);
    let lb = Lb::start(&[("LOG_LEVEL", "trace")]);
    lb.add_fake_servers(&fake);
    lb.get(
        "create",
        "meetingID=private&name=x&moderatorPW=mod-pass-123&attendeePW=att-pass-456",
    )
    .await;
    lb.http
        .get(lb.api_url("join", "meetingID=private&fullName=a&password=mod-pass-123"))
        .send()
        .await
        .unwrap();
    lb.get("end", "meetingID=private&password=mod-pass-123")
        .await;
    fake.mode(0, json!({"mode": "error", "status": 500})).await;
    lb.get(
        "create",
        "meetingID=failing&name=x&moderatorPW=mod-pass-123",
    )
    .await;
    lb.cli_ok(&["poll", "--allow-offline"]);
    let logs = lb.logs();
    assert!(logs.len() > 200, "trace logging produced output");
    for secret in [
        LB_SECRET,
        "backend-secret-xyz",
        "mod-pass-123",
        "att-pass-456",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the log");
    }
}

#[tokio::test]
async fn metrics_show_calls_servers_polls_and_placements() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    let ids = lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=metered&name=x").await;
    lb.http
        .get(lb.api_url("join", "meetingID=metered&fullName=a"))
        .send()
        .await
        .unwrap();
    lb.get("bogus", "").await;
    let (status, text) = lb.raw_get(&format!("{}/metrics", lb.base)).await;
    assert_eq!(status, 200);
    for line in [
        "ferrolite_requests_total{call=\"create\",status=\"200\"} 1".to_string(),
        "ferrolite_requests_total{call=\"join\",status=\"302\"} 1".to_string(),
        "ferrolite_requests_total{call=\"unknown\",status=\"200\"} 1".to_string(),
        format!(
            "ferrolite_server_online{{server=\"{}\",host=\"{}\"}} 1",
            ids[0],
            url::Url::parse(&fake.servers[0].url)
                .unwrap()
                .host_str()
                .unwrap()
        ),
        format!("ferrolite_placements_total{{server=\"{}\"}} 1", ids[0]),
    ] {
        assert!(text.contains(&line), "missing {line} in:\n{text}");
    }
    assert!(
        text.contains("ferrolite_request_duration_seconds_bucket{le="),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn a_bad_checksum_is_refused_before_an_xml_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let lb = Lb::start(&[]);
    let addr = lb.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let query = sign("create", "meetingID=x&name=x", "not-the-secret", "sha256");
    // Announce 50 MB of slides but send none: the answer must not wait for them.
    s.write_all(
        format!("POST /bigbluebutton/api/create?{query} HTTP/1.1\r\nHost: lb\r\nContent-Type: application/xml\r\nContent-Length: 50000000\r\n\r\n<modules>").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("<messageKey>checksumError</messageKey>"),
        "{answer}"
    );
}
