//! A meeting running on a BBB server that the store never saw (created before the switch
//! from Scalelite, or lost with a restored backup) is adopted by the next successful poll:
//! joins reach it, `end` ends it, and a new create of the same room goes to the same server.

mod common;

use common::{Fake, Lb};

#[tokio::test(flavor = "multi_thread")]
async fn a_poll_adopts_meetings_the_store_does_not_know() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[("LOG_LEVEL", "info")]);
    lb.add_fake_servers(&fake);
    // Created on server 1 behind Ferrolite's back (the store holds nothing).
    fake.set_meeting(
        1,
        "before-switch",
        serde_json::json!({"participants": 2, "moderators": 1}),
    )
    .await;
    let (_, unknown) = lb.get("isMeetingRunning", "meetingID=before-switch").await;
    assert!(unknown.contains("<running>false</running>"), "{unknown}");

    lb.cli_ok(&["poll"]);
    let meetings = lb.cli_ok(&["meetings"]);
    assert!(meetings.contains("before-switch"), "{meetings}");

    // A join is redirected to the server that holds the meeting.
    let r = lb
        .http
        .get(lb.api_url("join", "meetingID=before-switch&fullName=Ann&role=VIEWER"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let host = url::Url::parse(&fake.servers[1].url).unwrap();
    assert!(
        loc.contains(&format!(":{}/", host.port().unwrap())),
        "{loc}"
    );

    // A create of the same room goes to that server, not to the emptier one.
    let (_, created) = lb.get("create", "meetingID=before-switch&name=Again").await;
    assert!(created.contains("SUCCESS"), "{created}");
    assert_eq!(fake.calls_to(0, "create").await.len(), 0);
    assert_eq!(fake.calls_to(1, "create").await.len(), 1);

    // Polling again adopts nothing twice; end works.
    lb.cli_ok(&["poll"]);
    let (_, ended) = lb.get("end", "meetingID=before-switch").await;
    assert!(ended.contains("SUCCESS"), "{ended}");
    assert_eq!(fake.holder("before-switch").await, None);
}

/// Scalelite sends a tenant's meeting ID to BBB unchanged and tags it with `tenant-id`
/// metadata; Ferrolite scopes the IDs of the tenant meetings it creates. A Scalelite
/// tenant meeting running at the switch is adopted under its tenant with the plain ID BBB
/// knows, and every later call about it uses that ID.
#[tokio::test(flavor = "multi_thread")]
async fn a_scalelite_tenant_meeting_is_adopted_under_its_tenant_with_its_plain_id() {
    const BASE: &str = "lb.test";
    let lb = Lb::start(&[
        ("LOG_LEVEL", "info"),
        ("MULTITENANCY_ENABLED", "true"),
        ("BASE_URL", BASE),
    ]);
    let fake = Fake::start(&["s0", "s1"]);
    lb.add_fake_servers(&fake);
    let id_of = |out: String| {
        out.lines()
            .find_map(|l| l.strip_prefix("id: "))
            .expect("the command prints the id")
            .to_string()
    };
    let alpha = id_of(lb.cli_ok(&["tenants", "add", "alpha", "alpha-secret"]));
    id_of(lb.cli_ok(&["tenants", "add", "beta", "beta-secret"]));
    lb.cli_ok(&["tenants", "update", &alpha, "--max-participants", "3"]);
    let (alpha_host, beta_host) = (format!("alpha.{BASE}"), format!("beta.{BASE}"));
    // As Scalelite created it on server 1: plain ID, the tenant in the metadata.
    fake.set_meeting(
        1,
        "class-a",
        serde_json::json!({
            "participants": 3,
            "voice_bridge": "71234",
            "metadata": {"tenant-id": alpha, "tenant-name": "alpha"},
        }),
    )
    .await;

    // The first poll adopts it; polling again keeps it (the poll's keep list and
    // participant counts go by BBB's ID).
    let log = |o: std::process::Output| {
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let first = log(lb.cli(&["poll"]));
    assert!(first.contains("adopted a meeting"), "{first}");
    let second = log(lb.cli(&["poll"]));
    assert!(
        !second.contains("adopted a meeting"),
        "adopted once, then kept: {second}"
    );
    let meetings = lb.cli_ok(&["meetings"]);
    assert!(
        meetings.contains("MeetingID: class-a") && meetings.contains(&alpha),
        "{meetings}"
    );

    // The participant count the poll read for it counts against the tenant's limit.
    let (_, full, _) = lb
        .get_as(
            &alpha_host,
            "alpha-secret",
            "join",
            "meetingID=class-a&fullName=Ann&role=VIEWER",
        )
        .await;
    assert!(full.contains("maxParticipantsReached"), "{full}");
    fake.set_meeting(1, "class-a", serde_json::json!({"participants": 1}))
        .await;
    lb.cli_ok(&["poll"]);

    // A join with the tenant's secret is sent to server 1 under the plain ID.
    let (status, _, loc) = lb
        .get_as(
            &alpha_host,
            "alpha-secret",
            "join",
            "meetingID=class-a&fullName=Ann&role=VIEWER",
        )
        .await;
    assert_eq!(status, 302, "{loc}");
    let s1 = url::Url::parse(&fake.servers[1].url).unwrap();
    assert!(
        loc.contains(&format!(":{}/", s1.port().unwrap())) && loc.contains("meetingID=class-a&"),
        "{loc}"
    );
    for call in ["getMeetingInfo", "isMeetingRunning"] {
        let (_, body, _) = lb
            .get_as(&alpha_host, "alpha-secret", call, "meetingID=class-a")
            .await;
        assert!(body.contains("SUCCESS"), "{call}: {body}");
        let sent = fake.calls_to(1, call).await;
        assert_eq!(
            sent.last().map(|c| c["params"]["meetingID"].clone()),
            Some(serde_json::json!("class-a")),
            "{call} asks BBB by the plain ID"
        );
    }
    // Another tenant does not see it.
    let (_, other, _) = lb
        .get_as(
            &beta_host,
            "beta-secret",
            "join",
            "meetingID=class-a&fullName=Eve&role=VIEWER",
        )
        .await;
    assert!(other.contains("notFound"), "{other}");

    // The front end's next create of the room goes to server 1, under the plain ID: the
    // class is not split.
    let (_, created, _) = lb
        .get_as(
            &alpha_host,
            "alpha-secret",
            "create",
            "meetingID=class-a&name=Again",
        )
        .await;
    assert!(created.contains("SUCCESS"), "{created}");
    assert_eq!(fake.calls_to(0, "create").await.len(), 0);
    let creates = fake.calls_to(1, "create").await;
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0]["params"]["meetingID"], "class-a");
    assert_eq!(
        fake.meetings(1).await.len(),
        1,
        "no second copy of the room"
    );

    let (_, ended, _) = lb
        .get_as(&alpha_host, "alpha-secret", "end", "meetingID=class-a")
        .await;
    assert!(ended.contains("SUCCESS"), "{ended}");
    assert_eq!(fake.holder("class-a").await, None);
}
