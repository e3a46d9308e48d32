//! The HTTP edge under hostile clients: idle and half-sent connections are closed by the
//! server, dribbled bodies are cut off, the connection limit holds while a normal call still
//! answers, methods the API does not use are 405, oversize headers and bodies are refused.
//! Timeouts here only bound how long a test may wait; what is asserted is the outcome.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous upper bound for the server to act (the configured timeouts are 1 s).
const PATIENCE: Duration = Duration::from_secs(20);

fn addr(lb: &Lb) -> String {
    lb.base.trim_start_matches("http://").to_string()
}

async fn connect(lb: &Lb) -> TcpStream {
    TcpStream::connect(addr(lb)).await.expect("connects")
}

/// Reads until the server closes; returns what it sent, or `None` if it kept the
/// connection open for all of `PATIENCE`.
async fn read_until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status of the first response in `bytes`.
fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn lb_with(extra: &[(&str, &str)]) -> Lb {
    let mut env = vec![
        ("HTTP_IDLE_TIMEOUT", "1"),
        ("HTTP_HEADER_TIMEOUT", "1"),
        ("HTTP_BODY_TIMEOUT", "1"),
    ];
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k, v));
    }
    Lb::start(&env)
}

#[tokio::test]
async fn idle_connections_are_closed_by_the_server() {
    let lb = lb_with(&[("HTTP_HEADER_TIMEOUT", "60")]);
    // Never a byte.
    let mut silent = connect(&lb).await;
    // One request answered, then kept alive with nothing more.
    let mut kept = connect(&lb).await;
    kept.write_all(b"GET /health_check HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (a, b) = tokio::join!(read_until_closed(&mut silent), read_until_closed(&mut kept));
    assert_eq!(
        a,
        Some(vec![]),
        "a silent connection was closed without an answer"
    );
    let b = b.expect("a kept-alive idle connection was closed");
    assert_eq!(status_of(&b), Some(200), "{}", String::from_utf8_lossy(&b));
}

#[tokio::test]
async fn half_sent_headers_are_closed_even_while_bytes_keep_coming() {
    // A long idle timeout: only the header timeout can close these.
    let lb = lb_with(&[("HTTP_IDLE_TIMEOUT", "120")]);
    let mut closed = 0;
    // The first request's head, and a second one after a complete request.
    for warm in [false, true] {
        let mut s = connect(&lb).await;
        if warm {
            s.write_all(b"GET /health_check HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(status_of(&buf[..n]), Some(200));
        }
        s.write_all(b"GET /bigbluebutton/api HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let (mut rd, mut wr) = s.into_split();
        let drip = tokio::spawn(async move {
            for i in 0..200 {
                if wr
                    .write_all(format!("X-Drip-{i}: y\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        });
        let mut buf = [0u8; 1024];
        let outcome = tokio::time::timeout(PATIENCE, async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert_eq!(
            outcome,
            Ok(true),
            "the server closed a dribbling header (warm: {warm})"
        );
        drip.abort();
        closed += 1;
    }
    assert_eq!(closed, 2);
}

#[tokio::test]
async fn dribbled_bodies_are_cut_off_with_408() {
    let lb = lb_with(&[("HTTP_IDLE_TIMEOUT", "120"), ("HTTP_HEADER_TIMEOUT", "120")]);
    for (path, ctype) in [
        (
            "/bigbluebutton/api/getMeetings",
            "application/x-www-form-urlencoded",
        ),
        (
            "/bigbluebutton/api/create",
            "application/x-www-form-urlencoded",
        ),
        ("/scalelite/api/getServers", "application/json"),
    ] {
        let mut s = connect(&lb).await;
        s.write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: 100000\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let (mut rd, mut wr) = s.into_split();
        let drip = tokio::spawn(async move {
            for _ in 0..400 {
                if wr.write_all(b"a").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = tokio::time::timeout(PATIENCE, async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        drip.abort();
        assert!(closed.is_ok(), "{path}: the server closed the connection");
        assert_eq!(
            status_of(&out),
            Some(408),
            "{path}: {}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[tokio::test]
async fn the_connection_limit_holds_and_a_normal_call_still_answers() {
    let lb = lb_with(&[
        ("HTTP_MAX_CONNECTIONS", "20"),
        ("HTTP_IDLE_TIMEOUT", "300"),
        ("HTTP_HEADER_TIMEOUT", "300"),
    ]);
    let mut held = Vec::new();
    for i in 0..60 {
        let mut s = connect(&lb).await;
        if i % 2 == 0 {
            // Half of them are slowloris heads, half silent.
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        }
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    for round in 0..3 {
        let (status, body) = lb.raw_get(&format!("{}/health_check", lb.base)).await;
        assert_eq!((status, body.as_str()), (200, "success"), "round {round}");
        let (status, body) = lb.get("getMeetings", "").await;
        assert_eq!(status, 200);
        assert!(body.contains("<returncode>SUCCESS</returncode>"), "{body}");
    }
    // Of 60 held connections at most 20 are open at once: the others were closed.
    let results = futures_util::future::join_all(held.iter_mut().map(|s| async move {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }))
    .await;
    let closed = results.iter().filter(|c| **c).count();
    assert!(closed >= 40, "only {closed} of 60 connections were closed");
}

#[tokio::test]
async fn methods_the_api_does_not_use_are_405() {
    let lb = lb_with(&[]);
    let paths = [
        "/bigbluebutton/api",
        "/bigbluebutton/api/create?meetingID=a&checksum=x",
        "/bigbluebutton/api/getMeetings",
        "/bigbluebutton/recording/upload",
        "/scalelite/api/getServers",
        "/recording/abc/presentation",
        "/health_check",
        "/metrics",
    ];
    for method in ["CONNECT", "TRACE", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in paths {
            let target = if method == "CONNECT" {
                addr(&lb)
            } else {
                path.to_string()
            };
            let mut s = connect(&lb).await;
            s.write_all(
                format!("{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let out = read_until_closed(&mut s)
                .await
                .expect("answered and closed");
            let text = String::from_utf8_lossy(&out);
            assert_eq!(status_of(&out), Some(405), "{method} {target}: {text}");
            assert!(
                text.to_ascii_lowercase().contains("allow: get, head, post"),
                "{method} {target}: {text}"
            );
            if method == "CONNECT" {
                break;
            }
        }
    }
}

#[tokio::test]
async fn oversize_headers_and_bodies_are_refused() {
    let lb = lb_with(&[("HTTP_IDLE_TIMEOUT", "120"), ("HTTP_HEADER_TIMEOUT", "120")]);
    // One huge header, many headers, a huge request line.
    let big = "a".repeat(40 * 1024);
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    for head in [
        format!("GET /bigbluebutton/api HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
        format!("GET /bigbluebutton/api HTTP/1.1\r\nHost: x\r\n{many}\r\n"),
        format!("GET /bigbluebutton/api/getMeetings?{big} HTTP/1.1\r\nHost: x\r\n\r\n"),
    ] {
        let mut s = connect(&lb).await;
        let _ = s.write_all(head.as_bytes()).await;
        let out = read_until_closed(&mut s)
            .await
            .expect("answered and closed");
        assert_eq!(
            status_of(&out),
            Some(431),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
    // Bodies over the route's limit: declared, or chunked without a length.
    let path_of = |url: String| url.trim_start_matches(&lb.base).to_string();
    let cases = [
        (
            "form",
            path_of(lb.api_url("getMeetings", "")),
            "application/x-www-form-urlencoded",
            5 << 20,
        ),
        (
            "form create",
            path_of(lb.api_url("create", "meetingID=m1")),
            "application/x-www-form-urlencoded",
            5 << 20,
        ),
        (
            "xml create",
            path_of(lb.api_url("create", "meetingID=m2")),
            "application/xml",
            65 << 20,
        ),
    ];
    for (name, path, ctype, len) in cases {
        for chunked in [false, true] {
            let s = connect(&lb).await;
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_string()
            } else {
                format!("Content-Length: {len}")
            };
            let (mut rd, mut wr) = s.into_split();
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n{framing}\r\n\r\n"
            );
            let send = tokio::spawn(async move {
                wr.write_all(head.as_bytes()).await?;
                let chunk = vec![b'a'; 65536];
                for _ in 0..len / 65536 + 1 {
                    if chunked {
                        wr.write_all(b"10000\r\n").await?;
                        wr.write_all(&chunk).await?;
                        wr.write_all(b"\r\n").await?;
                    } else {
                        wr.write_all(&chunk).await?;
                    }
                }
                Ok::<_, std::io::Error>(wr)
            });
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(PATIENCE, async {
                while !String::from_utf8_lossy(&out).contains("\r\n\r\n") {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            send.abort();
            assert_eq!(
                status_of(&out),
                Some(413),
                "{name} (chunked: {chunked}): {}",
                String::from_utf8_lossy(&out)
            );
        }
    }
    // The listener still answers.
    let (status, _) = lb.raw_get(&format!("{}/health_check", lb.base)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bodies_that_cannot_carry_the_checksum_are_not_read_for_a_bad_one() {
    let lb = lb_with(&[("HTTP_IDLE_TIMEOUT", "120"), ("HTTP_HEADER_TIMEOUT", "120")]);
    // Headers promise a large body that never comes: a handler that read it first would
    // answer 408 after the body timeout; a checksum check first answers checksumError.
    for (call, ctype) in [
        ("putRecordingTextTrack", "multipart/form-data; boundary=B"),
        ("create", "application/xml"),
    ] {
        let mut s = connect(&lb).await;
        s.write_all(
            format!("POST /bigbluebutton/api/{call}?recordID=r&checksum={} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: 3000000\r\n\r\n", "0".repeat(40))
                .as_bytes(),
        )
        .await
        .unwrap();
        let out = read_until_closed(&mut s).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&out);
        assert_eq!(status_of(&out), Some(200), "{call}: {text}");
        assert!(text.contains("checksumError"), "{call}: {text}");
    }
}
