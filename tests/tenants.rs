//! Multitenancy through the real binary: tenants chosen by Host, secrets per tenant, meeting
//! IDs scoped on BBB and unscoped in answers, tenant settings and limits, CLI removal rules.

mod common;

use common::*;

const BASE: &str = "lb.test";

struct Tenancy {
    lb: Lb,
    fake: Fake,
    alpha: String,
    beta: String,
}

fn id_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("the command prints the id")
        .to_string()
}

/// One fake server (so both tenants' meetings land on the same BBB) and two tenants.
fn start(extra: &[(&str, &str)]) -> Tenancy {
    let mut env = vec![("MULTITENANCY_ENABLED", "true"), ("BASE_URL", BASE)];
    env.extend_from_slice(extra);
    let lb = Lb::start(&env);
    let fake = Fake::start(&["server-secret-0"]);
    lb.add_fake_servers(&fake);
    let alpha = id_of(&lb.cli_ok(&["tenants", "add", "alpha", "alpha-secret:alpha-old"]));
    let beta = id_of(&lb.cli_ok(&["tenants", "add", "beta", "beta-secret"]));
    Tenancy {
        lb,
        fake,
        alpha,
        beta,
    }
}

fn alpha_host() -> String {
    format!("alpha.{BASE}")
}
fn beta_host() -> String {
    format!("beta.{BASE}")
}

#[tokio::test]
async fn two_tenants_share_a_meeting_id_without_colliding() {
    let t = start(&[]);
    let (lb, fake) = (&t.lb, &t.fake);
    for (host, secret) in [(alpha_host(), "alpha-secret"), (beta_host(), "beta-secret")] {
        let (_, body, _) = lb
            .get_as(&host, secret, "create", "meetingID=room1&name=Room")
            .await;
        assert_eq!(
            xml_field(&body, "returncode").as_deref(),
            Some("SUCCESS"),
            "{body}"
        );
        assert_eq!(
            xml_field(&body, "meetingID").as_deref(),
            Some("room1"),
            "the answer is unscoped: {body}"
        );
        assert!(!body.contains('~'), "no scoped ID leaks: {body}");
    }
    // BBB saw two different meetings, tagged with their tenants.
    let creates = fake.calls_to(0, "create").await;
    assert_eq!(creates.len(), 2);
    let sent: Vec<String> = creates
        .iter()
        .map(|c| c["params"]["meetingID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent[0], format!("room1~{}", t.alpha));
    assert_eq!(sent[1], format!("room1~{}", t.beta));
    assert_eq!(creates[0]["params"]["meta_tenant-id"], t.alpha.as_str());
    assert_eq!(creates[0]["params"]["meta_tenant-name"], "alpha");
    assert_eq!(creates[1]["params"]["meta_tenant-id"], t.beta.as_str());
    assert!(creates.iter().all(|c| c["checksum_ok"] == true));
    assert_eq!(fake.meetings(0).await.len(), 2);

    // Each tenant sees only its own meeting, unscoped.
    let (_, info, _) = lb
        .get_as(
            &alpha_host(),
            "alpha-secret",
            "getMeetingInfo",
            "meetingID=room1",
        )
        .await;
    assert_eq!(
        xml_field(&info, "meetingID").as_deref(),
        Some("room1"),
        "{info}"
    );
    assert!(info.contains(&t.alpha) && !info.contains(&t.beta), "{info}");
    let (_, list, _) = lb
        .get_as(&beta_host(), "beta-secret", "getMeetings", "")
        .await;
    assert_eq!(count(&list, "meeting"), 1, "{list}");
    assert!(
        list.contains("<meetingID>room1</meetingID>")
            && list.contains(&t.beta)
            && !list.contains(&t.alpha),
        "{list}"
    );

    // The join redirect carries the ID BBB knows.
    let (status, _, location) = lb
        .get_as(
            &beta_host(),
            "beta-secret",
            "join",
            "meetingID=room1&fullName=Bo&role=VIEWER",
        )
        .await;
    assert_eq!(status, 302);
    assert!(
        location.contains(&format!("meetingID=room1%7E{}", t.beta)),
        "{location}"
    );

    // Ending alpha's room leaves beta's running.
    let (_, end, _) = lb
        .get_as(&alpha_host(), "alpha-secret", "end", "meetingID=room1")
        .await;
    assert_eq!(
        xml_field(&end, "returncode").as_deref(),
        Some("SUCCESS"),
        "{end}"
    );
    let left = fake.meetings(0).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["meeting_id"], format!("room1~{}", t.beta).as_str());
    let (_, gone, _) = lb
        .get_as(
            &alpha_host(),
            "alpha-secret",
            "getMeetingInfo",
            "meetingID=room1",
        )
        .await;
    assert_eq!(
        xml_field(&gone, "messageKey").as_deref(),
        Some("notFound"),
        "{gone}"
    );
    let (_, still, _) = lb
        .get_as(
            &beta_host(),
            "beta-secret",
            "getMeetingInfo",
            "meetingID=room1",
        )
        .await;
    assert_eq!(
        xml_field(&still, "returncode").as_deref(),
        Some("SUCCESS"),
        "{still}"
    );
    let listed = lb.cli_ok(&["meetings"]);
    assert!(
        listed.contains("MeetingID: room1") && listed.contains(&format!("Tenant ID: {}", t.beta)),
        "{listed}"
    );
}

#[tokio::test]
async fn secrets_are_valid_only_on_their_own_host() {
    let t = start(&[]);
    let lb = &t.lb;
    let key = |b: &str| xml_field(b, "messageKey").unwrap_or_default();
    // Every secret of a tenant works on its host.
    for secret in ["alpha-secret", "alpha-old"] {
        let (_, b, _) = lb.get_as(&alpha_host(), secret, "getMeetings", "").await;
        assert_eq!(
            xml_field(&b, "returncode").as_deref(),
            Some("SUCCESS"),
            "{b}"
        );
    }
    for (host, secret) in [
        (beta_host(), "alpha-secret"),                // another tenant's secret
        (alpha_host(), LB_SECRET),                    // the global secret on a tenant host
        (BASE.to_string(), "alpha-secret"),           // a tenant secret on the bare host
        (format!("gamma.{BASE}"), "alpha-secret"),    // an unknown tenant
        ("elsewhere.example".to_string(), LB_SECRET), // not under BASE_URL
    ] {
        let (status, b, _) = lb.get_as(&host, secret, "getMeetings", "").await;
        assert_eq!(
            (status, key(&b).as_str()),
            (200, "checksumError"),
            "{host} with {secret}: {b}"
        );
    }
    // The bare BASE_URL host takes the load balancer's secret and has no tenant.
    let (_, b, _) = lb.get_as(BASE, LB_SECRET, "getMeetings", "").await;
    assert_eq!(
        xml_field(&b, "returncode").as_deref(),
        Some("SUCCESS"),
        "{b}"
    );
}

#[tokio::test]
async fn tenant_settings_layer_over_create_and_join() {
    let t = start(&[("DEFAULT_CREATE_PARAMS", "record=false")]);
    let (lb, fake) = (&t.lb, &t.fake);
    lb.cli_ok(&["tenant-settings", "add", &t.alpha, "record", "true"]);
    lb.cli_ok(&[
        "tenant-settings",
        "add",
        &t.alpha,
        "welcome",
        "forced",
        "--override",
    ]);
    let listed = lb.cli_ok(&["tenant-settings", "list", &t.alpha]);
    assert!(
        listed.contains("param: welcome") && listed.contains("override: true"),
        "{listed}"
    );

    lb.get_as(
        &alpha_host(),
        "alpha-secret",
        "create",
        "meetingID=a&welcome=mine",
    )
    .await;
    lb.get_as(
        &alpha_host(),
        "alpha-secret",
        "create",
        "meetingID=b&record=false",
    )
    .await;
    lb.get_as(
        &beta_host(),
        "beta-secret",
        "create",
        "meetingID=c&welcome=mine",
    )
    .await;
    let creates = fake.calls_to(0, "create").await;
    let p = |i: usize, k: &str| creates[i]["params"][k].as_str().unwrap_or("").to_string();
    assert_eq!(
        (p(0, "record"), p(0, "welcome")),
        ("true".into(), "forced".into()),
        "tenant default and override"
    );
    assert_eq!(
        p(1, "record"),
        "false",
        "the request beats a tenant default"
    );
    assert_eq!(
        (p(2, "record"), p(2, "welcome")),
        ("false".into(), "mine".into()),
        "another tenant is untouched"
    );

    let (_, _, location) = lb
        .get_as(
            &alpha_host(),
            "alpha-secret",
            "join",
            "meetingID=a&fullName=X&welcome=no",
        )
        .await;
    assert!(
        location.contains("welcome=forced"),
        "settings apply to join too: {location}"
    );

    // Removing a setting stops it.
    let id = listed
        .split("id: ")
        .nth(2)
        .map(|s| s.lines().next().unwrap().to_string())
        .expect("two settings listed");
    lb.cli_ok(&["tenant-settings", "remove", &id]);
    assert_eq!(
        lb.cli_ok(&["tenant-settings", "list", &t.alpha])
            .matches("id: ")
            .count(),
        1
    );
}

#[tokio::test]
async fn tenant_limits_refuse_with_clear_errors() {
    let t = start(&[]);
    let lb = &t.lb;
    lb.cli_ok(&[
        "tenants",
        "update",
        &t.alpha,
        "--max-meetings",
        "1",
        "--max-participants",
        "2",
    ]);
    let list = lb.cli_ok(&["tenants", "list"]);
    assert!(
        list.contains("max meetings: 1") && list.contains("max participants: 2"),
        "{list}"
    );
    assert!(
        !list.contains("alpha-secret"),
        "secrets are not printed by default: {list}"
    );

    let (_, ok, _) = lb
        .get_as(&alpha_host(), "alpha-secret", "create", "meetingID=one")
        .await;
    assert_eq!(
        xml_field(&ok, "returncode").as_deref(),
        Some("SUCCESS"),
        "{ok}"
    );
    let (_, again, _) = lb
        .get_as(&alpha_host(), "alpha-secret", "create", "meetingID=one")
        .await;
    assert_eq!(
        xml_field(&again, "returncode").as_deref(),
        Some("SUCCESS"),
        "re-creating a running meeting is not a new one: {again}"
    );
    let (_, refused, _) = lb
        .get_as(&alpha_host(), "alpha-secret", "create", "meetingID=two")
        .await;
    assert_eq!(
        xml_field(&refused, "messageKey").as_deref(),
        Some("maxMeetingsReached"),
        "{refused}"
    );
    assert!(
        xml_field(&refused, "message")
            .unwrap()
            .contains("maximum of 1"),
        "{refused}"
    );
    // Beta has no limit.
    let (_, other, _) = lb
        .get_as(&beta_host(), "beta-secret", "create", "meetingID=two")
        .await;
    assert_eq!(
        xml_field(&other, "returncode").as_deref(),
        Some("SUCCESS"),
        "{other}"
    );

    for _ in 0..2 {
        let (status, b, _) = lb
            .get_as(
                &alpha_host(),
                "alpha-secret",
                "join",
                "meetingID=one&fullName=X",
            )
            .await;
        assert_eq!(status, 302, "{b}");
    }
    let (status, full, _) = lb
        .get_as(
            &alpha_host(),
            "alpha-secret",
            "join",
            "meetingID=one&fullName=X",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        xml_field(&full, "messageKey").as_deref(),
        Some("maxParticipantsReached"),
        "{full}"
    );

    // Raising the limit (0 removes it) lets the next meeting in.
    lb.cli_ok(&["tenants", "update", &t.alpha, "--max-meetings", "0"]);
    let (_, now, _) = lb
        .get_as(&alpha_host(), "alpha-secret", "create", "meetingID=two")
        .await;
    assert_eq!(
        xml_field(&now, "returncode").as_deref(),
        Some("SUCCESS"),
        "{now}"
    );
}

#[tokio::test]
async fn tenants_cli_round_trip_and_removal_rules() {
    let t = start(&[]);
    let lb = &t.lb;
    let bad = lb.cli(&["tenants", "add", "alpha", "x"]);
    assert!(!bad.status.success(), "names are unique");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("already exists"));
    let bad = lb.cli(&["tenants", "add", "no.dots", "x"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("host label"));

    lb.cli_ok(&[
        "tenants",
        "update",
        &t.beta,
        "--name",
        "gamma",
        "--secrets",
        "g1:g2",
    ]);
    let shown = lb.cli_ok(&["tenants", "list", "--show-secrets"]);
    assert!(
        shown.contains("name: gamma") && shown.contains("secrets: g1:g2"),
        "{shown}"
    );
    let (_, b, _) = lb
        .get_as(&format!("gamma.{BASE}"), "g2", "getMeetings", "")
        .await;
    assert_eq!(
        xml_field(&b, "returncode").as_deref(),
        Some("SUCCESS"),
        "renamed tenant answers: {b}"
    );
    let (_, b, _) = lb.get_as(&beta_host(), "g2", "getMeetings", "").await;
    assert_eq!(
        xml_field(&b, "messageKey").as_deref(),
        Some("checksumError"),
        "the old name is gone: {b}"
    );

    lb.get_as(&alpha_host(), "alpha-secret", "create", "meetingID=busy")
        .await;
    let refused = lb.cli(&["tenants", "remove", &t.alpha]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("running meeting") && err.contains("--force"),
        "{err}"
    );
    lb.cli_ok(&["tenants", "remove", &t.alpha, "--force"]);
    lb.cli_ok(&["tenants", "remove", &t.beta]);
    let missing = lb.cli(&["tenants", "remove", &t.beta]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("Couldn't find Tenant"));
    assert!(!lb.cli_ok(&["tenants"]).contains("id: "));
}

#[tokio::test]
async fn a_tenant_server_tag_setting_picks_the_servers() {
    let lb = Lb::start(&[("MULTITENANCY_ENABLED", "true"), ("BASE_URL", BASE)]);
    let fake = Fake::start(&["s0", "s1"]);
    let ids = lb.add_fake_servers(&fake);
    lb.cli_ok(&["servers", "update", &ids[1], "--tag", "gold"]);
    let alpha = id_of(&lb.cli_ok(&["tenants", "add", "alpha", "alpha-secret"]));
    lb.cli_ok(&["tenant-settings", "add", &alpha, "meta_server-tag", "gold"]);

    lb.get_as(&alpha_host(), "alpha-secret", "create", "meetingID=tagged")
        .await;
    assert_eq!(
        fake.holder(&format!("tagged~{alpha}")).await,
        Some(1),
        "the tenant default tag"
    );
    lb.get_as(
        &alpha_host(),
        "alpha-secret",
        "create",
        "meetingID=plain&meta_server-tag=none",
    )
    .await;
    assert_eq!(
        fake.holder(&format!("plain~{alpha}")).await,
        Some(0),
        "the request beats a tenant default"
    );

    lb.cli_ok(&[
        "tenant-settings",
        "add",
        &alpha,
        "meta_server-tag",
        "silver!",
        "--override",
    ]);
    let (_, refused, _) = lb
        .get_as(
            &alpha_host(),
            "alpha-secret",
            "create",
            "meetingID=forced&meta_server-tag=gold",
        )
        .await;
    assert_eq!(
        xml_field(&refused, "messageKey").as_deref(),
        Some("serverTagUnavailable"),
        "a tenant override wins: {refused}"
    );
}

#[tokio::test]
async fn nobody_can_claim_another_tenant() {
    let t = start(&[]);
    let (lb, fake) = (&t.lb, &t.fake);
    // From the bare host and from beta, both claiming to be alpha in two spellings.
    let spoof = format!(
        "meetingID=intruder&meta_tenant-id={}&meta_TENANT-NAME=alpha",
        t.alpha
    );
    lb.get_as(BASE, LB_SECRET, "create", &spoof).await;
    lb.get_as(&beta_host(), "beta-secret", "create", &spoof)
        .await;
    let creates = fake.calls_to(0, "create").await;
    assert_eq!(creates.len(), 2);
    assert!(
        creates[0]["params"].get("meta_tenant-id").is_none(),
        "{:?}",
        creates[0]
    );
    assert!(creates[0]["params"].get("meta_TENANT-NAME").is_none());
    assert_eq!(creates[1]["params"]["meta_tenant-id"], t.beta.as_str());
    assert!(creates[1]["params"].get("meta_TENANT-NAME").is_none());
    let (_, list, _) = lb
        .get_as(&alpha_host(), "alpha-secret", "getMeetings", "")
        .await;
    assert_eq!(
        xml_field(&list, "messageKey").as_deref(),
        Some("noMeetings"),
        "alpha sees neither: {list}"
    );
    let (_, bare, _) = lb.get_as(BASE, LB_SECRET, "getMeetings", "").await;
    assert_eq!(
        count(&bare, "meeting"),
        1,
        "the bare host sees its own meeting only: {bare}"
    );
}

/// A one-shot-per-connection token endpoint: answers `status` with `body`, records requests.
async fn token_server(
    status: u16,
    body: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/realms/school/protocol/openid-connect/token?ignored=1",
        l.local_addr().unwrap()
    );
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = c.read(&mut buf).await.unwrap_or(0);
            s2.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).to_string());
            let reply = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = c.write_all(reply.as_bytes()).await;
        }
    });
    (url, seen)
}

fn lrs_payload_of(call: &serde_json::Value, server_secret: &str) -> Option<serde_json::Value> {
    let sealed = call["params"]["meta_secret-lrs-payload"].as_str()?;
    let plain =
        ferrolite::lrs::decrypt(server_secret, sealed).expect("sealed with the server's secret");
    Some(serde_json::from_slice(&plain).unwrap())
}

#[tokio::test]
async fn lrs_credentials_are_sealed_for_the_chosen_server() {
    let t = start(&[]);
    let o = t.lb.cli(&[
        "tenants",
        "update-lrs-basic",
        "nope",
        "https://lrs.example.org/xapi",
        "u",
        "p",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let o = t.lb.cli(&[
        "tenants",
        "update-lrs-basic",
        &t.alpha,
        "not a url",
        "u",
        "p",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("http"));

    t.lb.cli_ok(&[
        "tenants",
        "update-lrs-basic",
        &t.alpha,
        "https://lrs.example.org/xapi",
        "lrs-user",
        "lrs-pass",
    ]);
    assert!(t
        .lb
        .cli_ok(&["tenants"])
        .contains("lrs: https://lrs.example.org/xapi (basic)"));
    t.lb.get_as(
        &alpha_host(),
        "alpha-secret",
        "create",
        "meetingID=a1&name=x",
    )
    .await;
    let create = t.fake.calls_to(0, "create").await.pop().unwrap();
    let payload =
        lrs_payload_of(&create, "server-secret-0").expect("alpha's meetings carry the payload");
    assert_eq!(
        payload,
        serde_json::json!({"lrs_endpoint": "https://lrs.example.org/xapi", "lrs_username": "lrs-user", "lrs_password": "lrs-pass"})
    );

    t.lb.get_as(&beta_host(), "beta-secret", "create", "meetingID=b1&name=x")
        .await;
    assert!(
        lrs_payload_of(
            &t.fake.calls_to(0, "create").await.pop().unwrap(),
            "server-secret-0"
        )
        .is_none(),
        "beta has no LRS"
    );

    let (url, seen) = token_server(200, r#"{"access_token":"tok-123","expires_in":300}"#).await;
    t.lb.cli_ok(&[
        "tenants",
        "update-lrs-kc",
        &t.beta,
        "https://lrs.beta.org/xapi",
        &url,
        "bbb",
        "client-secret",
        "svc",
        "svc-pass",
    ]);
    t.lb.get_as(&beta_host(), "beta-secret", "create", "meetingID=b2&name=x")
        .await;
    let payload = lrs_payload_of(
        &t.fake.calls_to(0, "create").await.pop().unwrap(),
        "server-secret-0",
    )
    .expect("token payload");
    assert_eq!(
        payload,
        serde_json::json!({"lrs_endpoint": "https://lrs.beta.org/xapi", "lrs_token": "tok-123"})
    );
    let request = seen.lock().unwrap()[0].clone();
    assert!(
        request.starts_with("POST /realms/school/protocol/openid-connect/token HTTP/1.1"),
        "the path, without its query: {request}"
    );
    assert!(
        request.contains("grant_type=password")
            && request.contains("client_id=bbb")
            && request.contains("username=svc"),
        "{request}"
    );

    // A refused token request leaves the payload out; the create still works.
    let (bad, _) = token_server(401, r#"{"error":"invalid_grant"}"#).await;
    t.lb.cli_ok(&[
        "tenants",
        "update-lrs-kc",
        &t.beta,
        "https://lrs.beta.org/xapi",
        &bad,
        "bbb",
        "x",
        "svc",
        "wrong",
    ]);
    let (_, body, _) =
        t.lb.get_as(&beta_host(), "beta-secret", "create", "meetingID=b3&name=x")
            .await;
    assert_eq!(
        xml_field(&body, "returncode").as_deref(),
        Some("SUCCESS"),
        "{body}"
    );
    assert!(lrs_payload_of(
        &t.fake.calls_to(0, "create").await.pop().unwrap(),
        "server-secret-0"
    )
    .is_none());

    t.lb.cli_ok(&["tenants", "remove-lrs", &t.alpha]);
    t.lb.get_as(
        &alpha_host(),
        "alpha-secret",
        "create",
        "meetingID=a2&name=x",
    )
    .await;
    assert!(lrs_payload_of(
        &t.fake.calls_to(0, "create").await.pop().unwrap(),
        "server-secret-0"
    )
    .is_none());
}
