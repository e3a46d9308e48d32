//! The status page and the admin JSON, through the real binary: off without
//! `ADMIN_PASSWORD`, the password (Basic or the login form's cookie), CSRF and Origin on
//! the server actions, hostile strings escaped, and headless Chromium watching a server
//! go offline and cordoning one from the page.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

fn start(extra: &[(&str, &str)]) -> Lb {
    let dir = tempfile::tempdir().unwrap();
    let mut env = recording_env(&dir);
    env.push(("ADMIN_PASSWORD".into(), PASSWORD.into()));
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    }
    Lb::start_in(dir, env)
}

fn status_url(lb: &Lb) -> String {
    format!("{}/ferrolite/status", lb.base)
}

/// The CSRF token of the page's forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("the page has a form with a CSRF token")
        + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

async fn page_basic(lb: &Lb) -> (u16, String) {
    let r = lb
        .http
        .get(status_url(lb))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post_action(lb: &Lb, origin: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
    let mut r = lb
        .http
        .post(format!("{}/ferrolite/status/action", lb.base))
        .basic_auth("admin", Some(PASSWORD))
        .form(form);
    if let Some(o) = origin {
        r = r.header("Origin", o);
    }
    r.send().await.unwrap()
}

fn state_of(lb: &Lb, id: &str) -> String {
    let out = lb.cli_ok(&["servers"]);
    let block = out
        .split("id: ")
        .find(|b| b.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not listed: {out}"));
    ["enabled", "cordoned", "disabled"]
        .into_iter()
        .find(|s| block.contains(&format!("\t{s}\n")))
        .unwrap_or("?")
        .to_string()
}

#[tokio::test]
async fn everything_is_404_without_an_admin_password() {
    let lb = Lb::start(&[]);
    for path in [
        "/ferrolite/status",
        "/ferrolite/api/status",
        "/ferrolite/api/capacity",
        "/ferrolite/api/usage",
    ] {
        let r = lb
            .http
            .get(format!("{}{path}", lb.base))
            .basic_auth("admin", Some("anything"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_password_is_required_and_wrong_ones_are_refused() {
    let lb = start(&[]);
    let (status, body) = lb.raw_get(&status_url(&lb)).await;
    assert_eq!(status, 401);
    assert!(body.contains("id=\"login\""), "a login form: {body}");
    assert!(!body.contains("id=\"servers\""));
    for wrong in ["", "correct horse", "Correct horse battery staple"] {
        let r = lb
            .http
            .get(status_url(&lb))
            .basic_auth("admin", Some(wrong))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{wrong:?}");
        let r = lb
            .http
            .get(format!("{}/ferrolite/api/status", lb.base))
            .basic_auth("admin", Some(wrong))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{wrong:?}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let (status, body) = page_basic(&lb).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"servers\""));
    // The login form: a wrong password sets no cookie; the right one a HttpOnly session.
    let r = lb
        .http
        .post(format!("{}/ferrolite/status/login", lb.base))
        .form(&[("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.headers().contains_key("set-cookie"));
    let r = lb
        .http
        .post(format!("{}/ferrolite/status/login", lb.base))
        .header("Origin", "https://evil.example")
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "login from another site");
    let r = lb
        .http
        .post(format!("{}/ferrolite/status/login", lb.base))
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let r = lb
        .http
        .get(status_url(&lb))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A tampered session is no session.
    let tampered = format!("{}0", session);
    let r = lb
        .http
        .get(status_url(&lb))
        .header("Cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn actions_need_the_csrf_token_and_this_origin_and_run_the_cli_code() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = start(&[]);
    let ids = lb.add_fake_servers(&fake);
    let (_, page) = page_basic(&lb).await;
    let token = csrf_of(&page);
    // Forged or missing tokens, foreign origins: refused, nothing changes.
    for (origin, csrf) in [
        (None, ""),
        (None, "00"),
        (None, &token[..token.len() - 1]),
        (Some("https://evil.example"), token.as_str()),
        (Some("null"), token.as_str()),
    ] {
        let r = post_action(
            &lb,
            origin,
            &[("csrf", csrf), ("server", &ids[0]), ("action", "cordon")],
        )
        .await;
        assert_eq!(r.status(), 403, "{origin:?} {csrf:?}");
        assert_eq!(state_of(&lb, &ids[0]), "enabled");
    }
    // A session's token does not work with Basic credentials, nor the other way round.
    let login = lb
        .http
        .post(format!("{}/ferrolite/status/login", lb.base))
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let session = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = lb
        .http
        .post(format!("{}/ferrolite/status/action", lb.base))
        .header("Cookie", &session)
        .form(&[
            ("csrf", token.as_str()),
            ("server", &ids[0]),
            ("action", "cordon"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(state_of(&lb, &ids[0]), "enabled");
    // The right token, from this site: the same action as `ferrolite servers cordon`.
    let origin = lb.base.clone();
    let r = post_action(
        &lb,
        Some(&origin),
        &[("csrf", &token), ("server", &ids[0]), ("action", "cordon")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(state_of(&lb, &ids[0]), "cordoned");
    // The CLI's rules hold: disable is refused while the server holds a meeting.
    let (_, body) = lb.get("create", "meetingID=busy&name=x").await;
    assert!(body.contains("SUCCESS"), "{body}");
    let busy = fake.holder("busy").await.unwrap();
    let r = post_action(
        &lb,
        None,
        &[
            ("csrf", &token),
            ("server", &ids[busy]),
            ("action", "disable"),
        ],
    )
    .await;
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(text.contains("still holds 1 meeting"), "{text}");
    assert_ne!(state_of(&lb, &ids[busy]), "disabled");
    let r = post_action(
        &lb,
        None,
        &[
            ("csrf", &token),
            ("server", "no-such-id"),
            ("action", "enable"),
        ],
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = post_action(
        &lb,
        None,
        &[("csrf", &token), ("server", &ids[0]), ("action", "explode")],
    )
    .await;
    assert_eq!(r.status(), 400);
}

/// Strings a hostile BBB server, front end or tarball name could plant.
const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "' onmouseover='alert(1)' x='",
];

#[tokio::test]
async fn hostile_strings_from_the_pool_are_escaped_on_the_page() {
    let fake = Fake::start(&["s0"]);
    let lb = start(&[]);
    let ids = lb.add_fake_servers(&fake);
    let failed = lb.dir.path().join("spool/failed");
    std::fs::create_dir_all(&failed).unwrap();
    for (i, h) in HOSTILE.iter().enumerate() {
        // Meeting IDs come from front ends, tags from operators' YAML, tarball names and
        // reasons from BBB servers.
        let (_, body) = lb
            .get("create", &format!("meetingID={}&name=x", urlencode(h)))
            .await;
        assert!(body.contains("SUCCESS"), "{body}");
        let name = format!("{}-{i}.tar", h.replace('/', "_"));
        std::fs::write(
            failed.join(format!("{name}.reason")),
            format!("bad metadata: {h}"),
        )
        .unwrap();
    }
    lb.cli_ok(&["servers", "update", &ids[0], "--tag", HOSTILE[1]]);
    let (status, page) = page_basic(&lb).await;
    assert_eq!(status, 200);
    let lower = page.to_lowercase();
    assert_eq!(
        lower.matches("<script").count(),
        1,
        "only the refresh script"
    );
    for bad in ["<img", "onerror=alert(1)>", "' onmouseover='alert(1)'"] {
        assert!(!lower.contains(bad), "{bad} unescaped in the page");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(page.contains("&#39; onmouseover=&#39;alert(1)&#39; x=&#39;"));
    assert!(
        page.contains("bad metadata: &lt;script&gt;"),
        "set-aside reasons are shown"
    );
    // The search box reflects its query escaped.
    let r = lb
        .http
        .get(format!("{}?q={}", status_url(&lb), urlencode(HOSTILE[1])))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    let filtered = r.text().await.unwrap();
    assert!(!filtered.to_lowercase().contains("<img"));
    assert!(
        filtered.contains("1 of 3 shown"),
        "the filter narrows the meetings"
    );
    // The JSON carries the raw strings, as JSON.
    let v: Value = lb
        .http
        .get(format!("{}/ferrolite/api/status", lb.base))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seen: Vec<&str> = v["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["meeting_id"].as_str().unwrap())
        .collect();
    seen.sort();
    let mut want = HOSTILE.to_vec();
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(v["set_aside"].as_array().unwrap().len(), 3);
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let poller = v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "poller")
        .expect("the poller role is listed");
    assert!(
        poller["holder"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:", node.trim())),
        "the holder names its host: {poller}"
    );
    assert_eq!(poller["held"], true);
    assert_eq!(v["servers"][0]["tag"], json!(HOSTILE[1]));
}

#[tokio::test]
async fn chromium_sees_a_server_go_offline_and_cordons_one_from_the_page() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = start(&[("POLL_INTERVAL", "1"), ("SERVER_UNHEALTHY_THRESHOLD", "1")]);
    let ids = lb.add_fake_servers(&fake);
    let Some(b) = Browser::start().await else {
        return;
    };
    b.open(&format!("{}?refresh=1", status_url(&lb))).await;
    assert!(b.find("#login").await.is_some(), "asked to log in first");
    b.type_into("input[name=password]", PASSWORD).await;
    b.click("#login button").await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            b.title().await == "Ferrolite status"
        })
        .await
    );
    let health = |i: usize| format!("tr[data-server=\"{}\"] [data-field=health]", ids[i]);
    assert_eq!(b.text(&health(0)).await, "online");
    assert_eq!(b.text(&health(1)).await, "online");

    // Server 1 stops answering: within one poll (1 s) and one reload the page says so.
    fake.mode(1, json!({"mode": "down"})).await;
    b.open(&format!("{}?refresh=1", status_url(&lb))).await;
    let went_offline = eventually(Duration::from_secs(10), || async {
        b.text(&health(1)).await == "offline"
    })
    .await;
    assert!(went_offline, "the page shows server 1 offline");
    let row = b.text(&format!("tr[data-server=\"{}\"]", ids[1])).await;
    assert!(
        row.contains("failed"),
        "the last poll's failure is shown: {row}"
    );
    assert_eq!(b.text(&health(0)).await, "online");

    if let Ok(path) = std::env::var("FERROLITE_SCREENSHOT") {
        let (_, body) = lb.get("create", "meetingID=Maths-101&name=Maths").await;
        assert!(body.contains("SUCCESS"));
        let at = fake.holder("Maths-101").await.unwrap();
        fake.set_meeting(at, "Maths-101", json!({"participants": 23, "video": 4}))
            .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        b.open(&status_url(&lb)).await;
        std::fs::write(&path, b.screenshot().await).unwrap();
    }

    // Cordon server 0 from the page: the store has it, `ferrolite servers` says so. A class
    // runs there, so it stays cordoned (drains) instead of being disabled by the next poll.
    fake.set_meeting(0, "running-class", json!({"participants": 7}))
        .await;
    b.open(&status_url(&lb)).await;
    b.click(&format!(
        "button[data-action=cordon][data-server=\"{}\"]",
        ids[0]
    ))
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            b.text("#notice").await.contains("cordoned")
        })
        .await,
        "the page confirms"
    );
    assert_eq!(state_of(&lb, &ids[0]), "cordoned");
    assert!(fake
        .meetings(0)
        .await
        .iter()
        .any(|m| m["meeting_id"] == "running-class"));
    assert_eq!(
        b.text(&format!(
            "tr[data-server=\"{}\"] [data-field=state]",
            ids[0]
        ))
        .await,
        "cordoned"
    );
}
