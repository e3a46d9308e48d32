//! The JSON admin API (`/scalelite/api/…`) through the real binary: every call's round trip,
//! Scalelite's shapes, status codes and texts, checksum and content-type checks, bad payloads.

mod common;

use common::*;
use serde_json::{json, Value};

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn url(lb: &Lb, action: &str, query: &str, secret: &str, alg: &str) -> String {
    format!(
        "{}/scalelite/api/{action}?{}",
        lb.base,
        sign(action, query, secret, alg)
    )
}

async fn send(lb: &Lb, req: reqwest::RequestBuilder) -> Reply {
    let _ = lb;
    let r = req.send().await.expect("ferrolite answers");
    Reply {
        status: r.status().as_u16(),
        body: r.text().await.unwrap_or_default(),
    }
}

async fn get(lb: &Lb, action: &str, query: &str) -> Reply {
    send(lb, lb.http.get(url(lb, action, query, LB_SECRET, "sha1"))).await
}

async fn post(lb: &Lb, action: &str, body: Value) -> Reply {
    send(
        lb,
        lb.http
            .post(url(lb, action, "", LB_SECRET, "sha1"))
            .json(&body),
    )
    .await
}

async fn post_raw(lb: &Lb, action: &str, content_type: &str, body: &str) -> Reply {
    let req = lb
        .http
        .post(url(lb, action, "", LB_SECRET, "sha1"))
        .header("Content-Type", content_type)
        .body(body.to_string());
    send(lb, req).await
}

#[tokio::test]
async fn server_calls_round_trip() {
    let lb = Lb::start(&[]);
    let none = get(&lb, "getServers", "").await;
    assert_eq!(
        (none.status, none.json()),
        (404, json!({"error": "No servers are configured"}))
    );

    let added = post(&lb, "addServer", json!({"server": {"url": "https://example.com/bigbluebutton", "secret": "supersecret", "load_multiplier": 1.5, "tag": "test-tag"}})).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let s = added.json();
    let id = s["id"].as_str().expect("an id").to_string();
    assert_eq!(s["url"], "https://example.com/bigbluebutton");
    assert_eq!(s["secret"], "supersecret");
    assert_eq!(s["tag"], "test-tag");
    assert_eq!(s["load_multiplier"], "1.5");
    assert_eq!(
        (
            s["state"].as_str(),
            s["online"].as_str(),
            s["load"].as_str()
        ),
        (Some("disabled"), Some("offline"), Some("unavailable"))
    );

    // Parameter wrapping: the `server` object may be left out; no multiplier → 1.0.
    let plain = post(
        &lb,
        "addServer",
        json!({"url": "https://b.example.com/bigbluebutton/api", "secret": "s2"}),
    )
    .await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    assert_eq!(plain.json()["load_multiplier"], "1.0");
    assert_eq!(plain.json()["tag"], "");

    for bad in [
        json!({"server": {"url": "https://c.example.com"}}),
        json!({"server": {"secret": "x"}}),
    ] {
        let r = post(&lb, "addServer", bad).await;
        assert_eq!(
            (r.status, r.json()),
            (400, json!({"error": "Server needs a URL and a secret"}))
        );
    }
    let r = post(
        &lb,
        "addServer",
        json!({"server": {"url": "not a url", "secret": "x"}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("not a URL"),
        "{}",
        r.body
    );
    let r = post(&lb, "addServer", json!({})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("server"),
        "{}",
        r.body
    );
    let r = post_raw(&lb, "addServer", "application/json", "{\"server\": ").await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{}",
        r.body
    );

    let all = get(&lb, "getServers", "").await;
    assert_eq!(
        (all.status, all.json().as_array().map(Vec::len)),
        (200, Some(2))
    );
    let info = get(&lb, "getServerInfo", &format!("id={id}")).await;
    assert_eq!(
        (info.status, info.json()["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let missing = get(&lb, "getServerInfo", "id=nonexistent-id").await;
    assert_eq!(
        (missing.status, missing.json()),
        (
            404,
            json!({"error": "Couldn't find server with id=nonexistent-id"})
        )
    );

    for (state, want) in [
        ("enable", "enabled"),
        ("cordon", "cordoned"),
        ("disable", "disabled"),
    ] {
        let r = post(
            &lb,
            "updateServer",
            json!({"id": id, "server": {"state": state}}),
        )
        .await;
        assert_eq!(
            (r.status, r.json()["state"].as_str()),
            (200, Some(want)),
            "{}",
            r.body
        );
    }
    let r = post(
        &lb,
        "updateServer",
        json!({"id": id, "server": {"state": "invalid_state", "tag": "changed"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"error": "Invalid state parameter: invalid_state"})
        )
    );
    let r = post(
        &lb,
        "updateServer",
        json!({"id": id, "server": {"load_multiplier": "2.5"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["load_multiplier"].as_str()),
        (200, Some("2.5"))
    );
    assert_eq!(
        r.json()["tag"],
        "test-tag",
        "nothing is saved from a refused update"
    );
    for bad in [json!(0), json!("abc")] {
        let r = post(
            &lb,
            "updateServer",
            json!({"id": id, "server": {"load_multiplier": bad}}),
        )
        .await;
        assert_eq!(
            (r.status, r.json()),
            (
                400,
                json!({"error": "Load-multiplier must be a non-zero number"})
            )
        );
    }
    let r = post(
        &lb,
        "updateServer",
        json!({"id": id, "server": {"tag": ""}}),
    )
    .await;
    assert_eq!((r.status, r.json()["tag"].as_str()), (200, Some("")));
    let r = post(
        &lb,
        "updateServer",
        json!({"id": "nonexistent-id", "server": {"state": "enable"}}),
    )
    .await;
    assert_eq!(r.status, 404);

    let r = post(&lb, "deleteServer", json!({"id": id})).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"success": format!("Server id={id} was destroyed")})
        )
    );
    assert_eq!(
        get(&lb, "getServers", "")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let r = post(&lb, "deleteServer", json!({"id": "nonexistent-id"})).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error": "Couldn't find server with id=nonexistent-id"})
        )
    );
}

#[tokio::test]
async fn panic_server_ends_meetings_and_disables() {
    let lb = Lb::start(&[]);
    let fake = Fake::start(&["fake-secret"]);
    let added = post(
        &lb,
        "addServer",
        json!({"server": {"url": fake.servers[0].url, "secret": "fake-secret"}}),
    )
    .await;
    let id = added.json()["id"].as_str().unwrap().to_string();
    post(
        &lb,
        "updateServer",
        json!({"id": id, "server": {"state": "enable"}}),
    )
    .await;
    lb.cli_ok(&["poll"]);
    for m in ["m1", "m2"] {
        let (_, b) = lb
            .get("create", &format!("meetingID={m}&moderatorPW=pw"))
            .await;
        assert_eq!(
            xml_field(&b, "returncode").as_deref(),
            Some("SUCCESS"),
            "{b}"
        );
    }
    let r = post(&lb, "panicServer", json!({"id": id, "keep_state": true})).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"success": format!("Server id={id} has been disabled and the meetings have been destroyed")})
        )
    );
    assert_eq!(
        get(&lb, "getServerInfo", &format!("id={id}")).await.json()["state"],
        "enabled",
        "keep_state keeps it"
    );
    let ends = fake.calls_to(0, "end").await;
    assert_eq!(ends.len(), 2);
    assert!(ends.iter().all(|e| e["params"]["password"] == "pw"));

    lb.get("create", "meetingID=m3").await;
    let r = post(&lb, "panicServer", json!({"id": id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        get(&lb, "getServerInfo", &format!("id={id}")).await.json()["state"],
        "disabled"
    );
    let (_, b) = lb.get("getMeetingInfo", "meetingID=m3").await;
    assert_eq!(
        xml_field(&b, "messageKey").as_deref(),
        Some("notFound"),
        "the meeting was forgotten: {b}"
    );
    let r = post(&lb, "panicServer", json!({"id": "nonexistent_id"})).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error": "Couldn't find server with id=nonexistent_id"})
        )
    );
}

#[tokio::test]
async fn checksum_and_content_type_are_checked() {
    let lb = Lb::start(&[]);
    let body = json!({"server": {"url": "https://example.com/bigbluebutton", "secret": "s"}});
    let wrong = send(
        &lb,
        lb.http
            .post(url(&lb, "addServer", "", "not-the-secret", "sha1"))
            .json(&body),
    )
    .await;
    assert_eq!(wrong.status, 200);
    assert_eq!(
        xml_field(&wrong.body, "messageKey").as_deref(),
        Some("checksumError"),
        "{}",
        wrong.body
    );
    let other_call = send(&lb, lb.http.post(other_call_url(&lb)).json(&body)).await;
    assert_eq!(
        xml_field(&other_call.body, "messageKey").as_deref(),
        Some("checksumError"),
        "a checksum is bound to its action"
    );
    let unsigned = send(
        &lb,
        lb.http.get(format!("{}/scalelite/api/getServers", lb.base)),
    )
    .await;
    assert_eq!(
        xml_field(&unsigned.body, "messageKey").as_deref(),
        Some("checksumError")
    );
    let form = post_raw(
        &lb,
        "addServer",
        "application/x-www-form-urlencoded",
        "url=x&secret=y",
    )
    .await;
    assert_eq!(
        xml_field(&form.body, "messageKey").as_deref(),
        Some("unsupportedContentType"),
        "{}",
        form.body
    );
    let sha256 = send(
        &lb,
        lb.http
            .post(url(&lb, "addServer", "", LB_SECRET, "sha256"))
            .json(&body),
    )
    .await;
    assert_eq!(sha256.status, 201, "{}", sha256.body);
    let unknown = get(&lb, "getSomething", "").await;
    assert_eq!(
        xml_field(&unknown.body, "messageKey").as_deref(),
        Some("unsupportedRequest")
    );
}

/// addServer's URL signed as if it were getServers: must not pass.
fn other_call_url(lb: &Lb) -> String {
    let signed = sign("getServers", "", LB_SECRET, "sha1");
    format!("{}/scalelite/api/addServer?{signed}", lb.base)
}

#[tokio::test]
async fn tenant_calls_need_multitenancy() {
    let lb = Lb::start(&[]);
    let r = get(&lb, "getTenants", "").await;
    assert_eq!(
        (r.status, r.json()),
        (412, json!({"message": "Multitenancy is disabled"}))
    );
}

#[tokio::test]
async fn tenant_calls_round_trip() {
    let lb = Lb::start(&[("MULTITENANCY_ENABLED", "true"), ("BASE_URL", "lb.test")]);
    let r = get(&lb, "getTenants", "").await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"message": "No tenants exist"}))
    );

    let r = post(
        &lb,
        "addTenant",
        json!({"tenant": {"name": "test-tenant", "secrets": "test-secret"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["tenant"]["id"]
        .as_str()
        .expect("tenant.id")
        .to_string();
    assert_eq!(r.json()["tenant"]["secrets"], "test-secret");
    for bad in [
        json!({"tenant": {"name": "x"}}),
        json!({"tenant": {"secrets": "x"}}),
        json!({}),
    ] {
        let r = post(&lb, "addTenant", bad).await;
        assert_eq!(
            (r.status, r.json()),
            (
                400,
                json!({"message": "Error: both name and secrets are required to create a Tenant"})
            )
        );
    }
    let r = post(
        &lb,
        "addTenant",
        json!({"name": "test-tenant", "secrets": "y"}),
    )
    .await;
    assert_eq!(r.status, 400, "duplicate names are refused: {}", r.body);
    let r = post(
        &lb,
        "addTenant",
        json!({"name": "two", "secrets": "y", "max_meetings": -1}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("max_meetings"), "{}", r.body);
    let r = post(
        &lb,
        "addTenant",
        json!({"name": "two", "secrets": "y", "max_meetings": 3}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["tenant"]["max_meetings"].as_u64()),
        (201, Some(3))
    );

    let all = get(&lb, "getTenants", "").await;
    let list = all.json();
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["id"].is_string() && t["name"].is_string() && t["secrets"].is_string()));
    let info = get(&lb, "getTenantInfo", &format!("id={id}")).await;
    assert_eq!(
        (info.status, info.json()["name"].as_str()),
        (200, Some("test-tenant"))
    );
    let r = get(&lb, "getTenantInfo", "id=nonexistent-id").await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error": "Couldn't find Tenant with id=nonexistent-id"})
        )
    );

    let r = post(
        &lb,
        "updateTenant",
        json!({"id": id, "tenant": {"name": "new-name"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["tenant"]["name"].as_str()),
        (200, Some("new-name"))
    );
    let r = post(
        &lb,
        "updateTenant",
        json!({"id": id, "tenant": {"secrets": "s1:s2"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["tenant"]["secrets"].as_str()),
        (200, Some("s1:s2"))
    );
    // The new name and secret answer BBB calls; the old name does not.
    let (_, ok, _) = lb.get_as("new-name.lb.test", "s2", "getMeetings", "").await;
    assert_eq!(
        xml_field(&ok, "returncode").as_deref(),
        Some("SUCCESS"),
        "{ok}"
    );
    let (_, old, _) = lb
        .get_as("test-tenant.lb.test", "s2", "getMeetings", "")
        .await;
    assert_eq!(
        xml_field(&old, "messageKey").as_deref(),
        Some("checksumError"),
        "{old}"
    );
    let r = post(
        &lb,
        "updateTenant",
        json!({"id": id, "tenant": {"name": "bad.name"}}),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = post(
        &lb,
        "updateTenant",
        json!({"id": "nonexistent-id", "tenant": {"name": "z"}}),
    )
    .await;
    assert_eq!(r.status, 404);

    let r = post(&lb, "deleteTenant", json!({"id": id})).await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"success": format!("Tenant id={id} was destroyed")})
        )
    );
    let r = post(&lb, "deleteTenant", json!({"id": "nonexistent-id"})).await;
    assert_eq!(
        (r.status, r.json()),
        (
            404,
            json!({"error": "Couldn't find Tenant with id=nonexistent-id"})
        )
    );
    let wrong = send(
        &lb,
        lb.http
            .post(url(&lb, "addTenant", "", "wrong", "sha1"))
            .json(&json!({"name": "q", "secrets": "q"})),
    )
    .await;
    assert_eq!(
        xml_field(&wrong.body, "messageKey").as_deref(),
        Some("checksumError")
    );
}
