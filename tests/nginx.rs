//! nginx in front: the rendered configuration in a real nginx, in front of a real
//! `ferrolite serve` on its Unix socket. Walks the API, unprotected playback (served from
//! the public links, even with the worker down), and the protected-recording flow: token,
//! cookie, redirect, reuse, foreign and expired cookies, unpublished recordings, restart.

mod common;

use common::browser::Browser;
use common::nginx::Nginx;
use common::*;

use common::nginx::{Stack, KEY, PODCAST, PRES, VIDEO};

fn published_file(root: &std::path::Path, format: &str, rid: &str, file: &str) -> Vec<u8> {
    std::fs::read(root.join("published").join(format).join(rid).join(file)).unwrap()
}

#[tokio::test]
async fn nginx_serves_the_api_public_and_protected_playback() {
    let s = Stack::start();

    // The API and the probes through nginx, answered by the worker over its socket.
    let r = s.get("/bigbluebutton/api", None).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<returncode>SUCCESS</returncode>"));
    let r = s.get("/health_check", None).await;
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "success".to_string())
    );
    assert_eq!(
        s.get("/ferrolite/auth", None).await.status(),
        404,
        "the auth endpoint is internal"
    );

    // Imported while PROTECTED_RECORDINGS_ENABLED: protected. Make VIDEO public again.
    let body = s
        .api(
            "updateRecordings",
            &format!("recordID={VIDEO}&protect=false"),
        )
        .await;
    assert!(body.contains("<updated>true</updated>"), "{body}");
    let link = s.root.join("links/video").join(VIDEO);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!s.root.join("links/presentation").join(PRES).exists());

    // Unprotected playback: the player URL and the files, straight from nginx.
    let url = s.link(VIDEO).await;
    assert!(
        url.starts_with(&s.nginx.base) && !url.contains("token="),
        "{url}"
    );
    let r = s.get(&format!("/video/{VIDEO}/index.html"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        published_file(&s.root, "video", VIDEO, "index.html")
    );
    let r = s.get(&format!("/playback/video/{VIDEO}/"), None).await;
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.ends_with(&format!("/video/{VIDEO}/")),
        "{location}"
    );
    let r = s.get(&format!("/recording/{VIDEO}/video"), None).await;
    assert_eq!(r.status(), 307, "an unprotected play link needs no token");

    // Protected: no cookie, no file.
    let shapes = format!("/presentation/{PRES}/shapes.svg");
    let r = s.get(&shapes, None).await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("Recording not found"));
    // A link from getRecordings carries a 64-hex one-time token.
    let url = s.link(PRES).await;
    let (path, token) = url
        .strip_prefix(&s.nginx.base)
        .unwrap()
        .split_once("?token=")
        .unwrap_or_else(|| panic!("no token in {url}"));
    assert_eq!(path, format!("/recording/{PRES}/presentation"));
    assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(s.get(path, None).await.status(), 404, "no token");
    let forged = "0".repeat(64);
    assert_eq!(
        s.get(&format!("{path}?token={forged}"), None)
            .await
            .status(),
        404,
        "forged token"
    );
    assert_eq!(
        s.get(&format!("{path}?token=../../x"), None).await.status(),
        404,
        "malformed token"
    );
    // A token for another format or recording does not open this one.
    let other = s.link(PODCAST).await;
    let other_token = other.split_once("?token=").unwrap().1;
    assert_eq!(
        s.get(&format!("{path}?token={other_token}"), None)
            .await
            .status(),
        404,
        "foreign token"
    );

    // The token opens once: cookie scoped to the recording, then 307 to the player.
    let r = s.get(&format!("{path}?token={token}"), None).await;
    assert_eq!(r.status(), 307);
    assert_eq!(
        r.headers()["location"],
        format!("/playback/presentation/2.3/{PRES}")
    );
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.starts_with(&format!("recording_presentation_{PRES}=")),
        "{set_cookie}"
    );
    assert!(
        set_cookie.contains(&format!("Path=/presentation/{PRES}"))
            && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "plain http: not Secure ({set_cookie})"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert_eq!(
        s.get(&format!("{path}?token={token}"), None).await.status(),
        404,
        "reused token"
    );

    // With the cookie, every resource of that recording is served.
    let r = s.get(&shapes, Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        published_file(&s.root, "presentation", PRES, "shapes.svg")
    );
    let r = s
        .get(&format!("/presentation/{PRES}/panzooms.xml"), Some(&cookie))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.get(&format!("/presentation/{PRES}/missing.svg"), Some(&cookie))
            .await
            .status(),
        404
    );

    // The cookie's value under another recording's name: refused (sub is bound).
    let value = cookie.split_once('=').unwrap().1;
    let foreign = format!("recording_presentation_{PODCAST}={value}");
    assert_eq!(
        s.get(
            &format!("/presentation/{PODCAST}/shapes.svg"),
            Some(&foreign)
        )
        .await
        .status(),
        404
    );
    // Tampered and expired cookies: refused. A fresh one made with the key: accepted.
    let tampered = format!("{cookie}x");
    assert_eq!(s.get(&shapes, Some(&tampered)).await.status(), 404);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let name = format!("recording_presentation_{PRES}");
    let expired =
        ferrolite::playback::protect::mint_cookie(KEY.as_bytes(), "presentation", PRES, now - 5);
    assert_eq!(
        s.get(&shapes, Some(&format!("{name}={expired}")))
            .await
            .status(),
        404,
        "expired cookie"
    );
    let fresh =
        ferrolite::playback::protect::mint_cookie(KEY.as_bytes(), "presentation", PRES, now + 60);
    assert_eq!(
        s.get(&shapes, Some(&format!("{name}={fresh}")))
            .await
            .status(),
        200
    );

    // Unpublished: nothing, not even with a valid cookie or a fresh token.
    let link = s.link(PODCAST).await;
    let body = s
        .api(
            "publishRecordings",
            &format!("recordID={PODCAST}&publish=false"),
        )
        .await;
    assert!(body.contains("<published>false</published>"), "{body}");
    let c = ferrolite::playback::protect::mint_cookie(
        KEY.as_bytes(),
        "presentation",
        PODCAST,
        now + 60,
    );
    let c = format!("recording_presentation_{PODCAST}={c}");
    assert_eq!(
        s.get(&format!("/presentation/{PODCAST}/shapes.svg"), Some(&c))
            .await
            .status(),
        404
    );
    assert_eq!(
        s.get(link.strip_prefix(&s.nginx.base).unwrap(), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        s.get("/recording/invalid_recording_id/invalid_format", None)
            .await
            .status(),
        404
    );

    // Protecting a public recording removes its link at once.
    s.api(
        "updateRecordings",
        &format!("recordID={VIDEO}&protect=true"),
    )
    .await;
    assert!(std::fs::symlink_metadata(s.root.join("links/video").join(VIDEO)).is_err());
    assert_eq!(
        s.get(&format!("/video/{VIDEO}/index.html"), None)
            .await
            .status(),
        404
    );
    s.api(
        "updateRecordings",
        &format!("recordID={VIDEO}&protect=false"),
    )
    .await;
    assert!(nginx_log_clean(&s.nginx), "{}", s.nginx.error_log());
}

fn nginx_log_clean(n: &Nginx) -> bool {
    !n.error_log().contains("[crit]") && !n.error_log().contains("[alert]")
}

#[tokio::test]
async fn tokens_survive_a_restart_and_public_files_need_no_worker() {
    let mut s = Stack::start();
    s.api(
        "updateRecordings",
        &format!("recordID={VIDEO}&protect=false"),
    )
    .await;
    let url = s.link(PRES).await;
    let path = url.strip_prefix(&s.nginx.base).unwrap().to_string();

    s.lb.kill();
    // No worker at all: the public recording is still served, the protected one is not.
    let r = s.get(&format!("/video/{VIDEO}/index.html"), None).await;
    assert_eq!(
        r.status(),
        200,
        "public files are served without the worker"
    );
    assert_ne!(
        s.get(&format!("/presentation/{PRES}/shapes.svg"), None)
            .await
            .status(),
        200
    );

    s.lb.spawn();
    let _ = std::process::Command::new("chmod")
        .arg("a+rw")
        .arg(s.root.join("ferrolite.sock"))
        .status();
    let r = s.get(&path, None).await;
    assert_eq!(
        r.status(),
        307,
        "a link minted before the restart still opens once"
    );
    assert_eq!(s.get(&path, None).await.status(), 404);
}

#[tokio::test]
async fn headless_chromium_plays_a_protected_link_once() {
    let s = Stack::start();
    let Some(b) = Browser::start().await else {
        return;
    };
    let link = s.link(PRES).await;
    assert!(link.contains("?token="), "{link}");
    // The one-time link: consumed, cookie set, redirected to the player, which loads a
    // protected resource with the cookie.
    b.open(&link).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut title = b.title().await;
    while !title.starts_with("status ") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        title = b.title().await;
    }
    let loaded = title.starts_with("status ");
    let expected = published_file(&s.root, "presentation", PRES, "shapes.svg").len();
    assert!(loaded, "the player never reported; title {title:?}");
    assert_eq!(title, format!("status 200 bytes {expected}"));
    let at = b.cmd(reqwest::Method::GET, "/url", None).await;
    assert_eq!(
        at.as_str().unwrap(),
        s.url(&format!("/playback/presentation/2.3/{PRES}"))
    );
    // The cookie is scoped to the recording's files, so look from there.
    b.open(&s.url(&format!("/presentation/{PRES}/panzooms.xml")))
        .await;
    let cookies = b.cmd(reqwest::Method::GET, "/cookie", None).await;
    let c = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == format!("recording_presentation_{PRES}"))
        .unwrap_or_else(|| panic!("no playback cookie: {cookies}"));
    assert_eq!(c["path"], format!("/presentation/{PRES}"));
    assert_eq!(c["httpOnly"], true);

    // The same link in a fresh browser (a "private window"): refused.
    drop(b);
    let Some(b2) = Browser::start().await else {
        return;
    };
    b2.open(&link).await;
    assert_eq!(b2.title().await, "Recording not found");
    b2.open(&s.url(&format!("/presentation/{PRES}/shapes.svg")))
        .await;
    assert_eq!(b2.title().await, "Recording not found");
}

#[tokio::test]
async fn multitenant_playback_checks_the_hosts_tenant_on_every_file() {
    let s = Stack::start_with(&[("MULTITENANCY_ENABLED", "true"), ("BASE_URL", "lb.test")]);
    let id_of = |out: String| {
        out.lines()
            .find_map(|l| l.strip_prefix("id: "))
            .expect("the command prints the id")
            .to_string()
    };
    let alpha = id_of(s.lb.cli_ok(&["tenants", "add", "alpha", "alpha-secret"]));
    id_of(s.lb.cli_ok(&["tenants", "add", "beta", "beta-secret"]));
    // On the bare host (the load balancer's secret): tag VIDEO as alpha's, unprotected.
    let q = format!("recordID={VIDEO}&protect=false&meta_tenant-id={alpha}");
    let url = format!(
        "{}/bigbluebutton/api/updateRecordings?{}",
        s.nginx.base,
        sign("updateRecordings", &q, LB_SECRET, "sha1")
    );
    let body =
        s.lb.http
            .get(url)
            .header("Host", "lb.test")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(body.contains("<updated>true</updated>"), "{body}");
    assert!(
        std::fs::symlink_metadata(s.root.join("links/video").join(VIDEO)).is_err(),
        "no public links under multitenancy"
    );
    let file = format!("/video/{VIDEO}/index.html");
    let as_host = |host: &'static str| {
        let req = s.lb.http.get(s.url(&file)).header("Host", host);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(as_host("alpha.lb.test").await, 200);
    assert_eq!(as_host("beta.lb.test").await, 404, "another tenant's host");
    assert_eq!(as_host("gamma.lb.test").await, 404, "an unknown tenant");
    assert_eq!(
        as_host("lb.test").await,
        404,
        "the bare host plays no tenant's recording"
    );
    let play = |host: &'static str| {
        let req =
            s.lb.http
                .get(s.url(&format!("/recording/{VIDEO}/video")))
                .header("Host", host);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(play("alpha.lb.test").await, 307);
    assert_eq!(play("beta.lb.test").await, 404);
    assert_eq!(play("lb.test").await, 404, "not on the bare host either");
}
