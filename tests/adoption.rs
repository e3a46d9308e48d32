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
