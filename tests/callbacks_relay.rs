//! BBB's analytics and meeting-ended callbacks relayed to the front end, through the real
//! binary: rewritten at create, verified when BBB calls, delivered exactly once to a loopback
//! receiver (the private-address guard opened), refused to loopback when it is closed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
struct Received {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback HTTP receiver that records every request and answers 200.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head_end, len) = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let mut lines = head.lines();
                    let mut first = lines.next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_string();
                    let target = first.next().unwrap_or("").to_string();
                    let headers = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .collect();
                    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                    sink.lock().unwrap().push(Received {
                        method,
                        target,
                        headers,
                        body,
                    });
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Receiver { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn to(&self, path_prefix: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.target.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    async fn wait_for(&self, path_prefix: &str) -> Vec<Received> {
        assert!(
            eventually(Duration::from_secs(20), || async {
                !self.to(path_prefix).is_empty()
            })
            .await,
            "nothing arrived at {path_prefix}"
        );
        self.to(path_prefix)
    }
}

fn bbb_token(secret: &str) -> String {
    #[derive(serde::Serialize)]
    struct Claims {
        exp: i64,
    }
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &Claims { exp },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The path and query of a rewritten callback URL, to send to the test's ferrolite.
fn local(lb: &Lb, rewritten: &str) -> String {
    let u = url::Url::parse(rewritten).expect("a URL");
    format!("{}{}?{}", lb.base, u.path(), u.query().unwrap_or(""))
}

#[tokio::test]
async fn callbacks_are_relayed_exactly_once_with_front_end_ids() {
    let receiver = Receiver::start().await;
    let lb = Lb::start(&[
        ("ALLOW_PRIVATE_CALLBACKS", "true"),
        ("MULTITENANCY_ENABLED", "true"),
        ("BASE_URL", "lb.test"),
    ]);
    let fake = Fake::start(&["srv-secret"]);
    lb.add_fake_servers(&fake);
    let out = lb.cli_ok(&["tenants", "add", "alpha", "a1:a2"]);
    let tenant = out
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_string();
    let host = "alpha.lb.test";

    let query = format!(
        "meetingID=room&meta_analytics-callback-url={}&meta_endCallbackUrl={}",
        urlencode(&receiver.url("/analytics")),
        urlencode(&receiver.url("/ended?x=1"))
    );
    let (_, body, _) = lb.get_as(host, "a1", "create", &query).await;
    assert_eq!(
        xml_field(&body, "returncode").as_deref(),
        Some("SUCCESS"),
        "{body}"
    );

    // BBB was given Ferrolite's URLs, not the front end's.
    let sent = &fake.calls_to(0, "create").await[0]["params"];
    let analytics_url = sent["meta_analytics-callback-url"]
        .as_str()
        .unwrap()
        .to_string();
    let ended_url = sent["meta_endCallbackUrl"].as_str().unwrap().to_string();
    assert!(
        analytics_url.starts_with("http://alpha.lb.test/bigbluebutton/api/analytics_callback?"),
        "{analytics_url}"
    );
    assert!(
        ended_url.starts_with("http://alpha.lb.test/ferrolite/callbacks/meeting-ended?"),
        "{ended_url}"
    );

    // Analytics: a bad token is ignored (204, nothing queued); a server-signed one is relayed.
    let payload = serde_json::json!({"version": "1.0", "meeting_id": format!("room~{tenant}"), "data": {"duration": 42}});
    let post = |token: String| {
        lb.http
            .post(local(&lb, &analytics_url))
            .header("Host", host)
            .header("Authorization", format!("Bearer {token}"))
            .json(&payload)
            .send()
    };
    assert_eq!(
        post(bbb_token("not-a-server-secret"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        post(bbb_token("srv-secret"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    let got = receiver.wait_for("/analytics").await;
    let doc: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(got[0].method, "POST");
    assert_eq!(
        doc["meeting_id"], "room",
        "the front end sees its own meeting ID"
    );
    assert_eq!(doc["customer"], "alpha");
    assert_eq!(doc["data"]["duration"], 42);
    assert_eq!(
        got[0].header("user-agent"),
        Some("BigBlueButton Analytics Callback")
    );
    let jwt = got[0]
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS512);
    v.validate_exp = true;
    assert!(
        jsonwebtoken::decode::<serde_json::Value>(
            jwt,
            &jsonwebtoken::DecodingKey::from_secret(b"a1"),
            &v
        )
        .is_ok(),
        "re-signed with the tenant's secret"
    );

    // A forged meeting-ended URL is refused; the genuine one is relayed with the front end's ID.
    let forged = local(&lb, &ended_url).replace("%2Fended", "%2Fevil");
    let r = lb.http.get(&forged).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let bbb_call = format!(
        "{}&meetingID={}&recordingmarks=false",
        local(&lb, &ended_url),
        urlencode(&format!("room~{tenant}"))
    );
    assert_eq!(
        lb.http
            .get(&bbb_call)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let ended = receiver.wait_for("/ended").await;
    assert_eq!(ended[0].method, "GET");
    assert_eq!(
        ended[0].target,
        "/ended?x=1&meetingID=room&recordingmarks=false"
    );

    // A sentinel sent last: once it has arrived, the earlier callbacks have had their chance
    // to be repeated. Each arrived once; the forged one never.
    let query = format!(
        "meetingID=sentinel&meta_endCallbackUrl={}",
        urlencode(&receiver.url("/sentinel"))
    );
    lb.get_as(host, "a1", "create", &query).await;
    let creates = fake.calls_to(0, "create").await;
    let sentinel_url = creates.last().unwrap()["params"]["meta_endCallbackUrl"]
        .as_str()
        .unwrap()
        .to_string();
    lb.http
        .get(format!("{}&meetingID=x", local(&lb, &sentinel_url)))
        .send()
        .await
        .unwrap();
    receiver.wait_for("/sentinel").await;
    assert_eq!(
        receiver.to("/analytics").len(),
        1,
        "analytics delivered exactly once"
    );
    assert_eq!(
        receiver.to("/ended").len(),
        1,
        "meeting-ended delivered exactly once"
    );
    assert!(receiver.to("/evil").is_empty());
}

#[tokio::test]
async fn loopback_receivers_are_refused_unless_allowed() {
    let receiver = Receiver::start().await;
    let lb = Lb::start(&[]);
    let fake = Fake::start(&["srv-secret"]);
    lb.add_fake_servers(&fake);
    let query = format!(
        "meetingID=m&meta_endCallbackUrl={}",
        urlencode(&receiver.url("/ended"))
    );
    lb.get("create", &query).await;
    let rewritten = fake.calls_to(0, "create").await[0]["params"]["meta_endCallbackUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        rewritten.contains("/ferrolite/callbacks/meeting-ended?"),
        "{rewritten}"
    );
    let r = lb
        .http
        .get(format!("{}&meetingID=m", local(&lb, &rewritten)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // The outbox gives the callback up with the reason; the receiver never hears of it.
    let db = lb.dir.path().join("ferrolite.db");
    let status = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT status, last_error FROM callbacks WHERE kind = 'meeting-ended'",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(20), || async { status().0 == "failed" }).await,
        "{:?}",
        status()
    );
    assert!(
        status().1.contains("ALLOW_PRIVATE_CALLBACKS"),
        "{:?}",
        status()
    );
    assert!(receiver.to("/").is_empty());
}
