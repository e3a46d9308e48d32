//! Attacks on playback through the real nginx site (`ferrolite nginx-config`) in front of the
//! real worker: control characters in every position and encoding (with a recorder between
//! nginx and the worker to prove no request was ever split), headers planted through
//! redirects, hostile links in recording tarballs, links leaving a recording on disk,
//! foreign Host headers, and relative redirects behind a TLS proxy.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use common::nginx::{Stack, KEY, PRES, VIDEO};
use common::*;

/// One raw HTTP/1.1 request over a fresh connection; the whole raw answer.
fn raw(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn get_raw(port: u16, target: &[u8], headers: &[u8]) -> Vec<u8> {
    let mut r = b"GET ".to_vec();
    r.extend_from_slice(target);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    r.extend_from_slice(headers);
    r.extend_from_slice(b"\r\n");
    raw(port, &r)
}

fn status(resp: &[u8]) -> u16 {
    std::str::from_utf8(resp.get(9..12).unwrap_or(b"000"))
        .unwrap_or("000")
        .parse()
        .unwrap_or(0)
}

/// The header block of a raw answer (up to the blank line).
fn head(resp: &[u8]) -> &[u8] {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    &resp[..end]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every CR is followed by LF and every LF preceded by CR: no bare line break.
fn no_bare_line_breaks(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, &c)| match c {
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && b[i - 1] == b'\r',
        _ => true,
    })
}

/// Every control character (0x00–0x1f and 0x7f).
fn controls() -> Vec<u8> {
    (0u8..0x20).chain([0x7f]).collect()
}

/// The encodings of one byte a client can put into a request target, with whether nginx's
/// decoded `$uri` then holds the control character itself.
fn encodings(c: u8) -> Vec<(String, Vec<u8>, bool)> {
    let mut v = vec![
        (format!("%{c:02x}"), format!("%{c:02x}").into_bytes(), true),
        (format!("%{c:02X}"), format!("%{c:02X}").into_bytes(), true),
        (
            format!("%25{c:02x} (double)"),
            format!("%25{c:02x}").into_bytes(),
            false,
        ),
        (
            format!("%c0%{:02x} (overlong)", 0x80 | c),
            format!("%c0%{:02x}", 0x80 | c).into_bytes(),
            false,
        ),
    ];
    // Raw bytes, where a client can send them (CR and LF end the request line).
    if c != b'\r' && c != b'\n' {
        v.push((format!("raw 0x{c:02x}"), vec![c], true));
    }
    v
}

/// `e` in place of every control character of a smuggled second request.
fn smuggle(enc: &dyn Fn(u8) -> Vec<u8>, marker: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in format!("\r\n\r\nGET /{marker} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes() {
        if b < 0x20 {
            out.extend(enc(b));
        } else if b == b' ' {
            out.extend_from_slice(b"%20");
        } else {
            out.push(b);
        }
    }
    out
}

fn encoder(kind: usize) -> impl Fn(u8) -> Vec<u8> {
    move |b| match kind {
        0 => format!("%{b:02x}").into_bytes(),
        1 => format!("%{b:02X}").into_bytes(),
        2 => format!("%25{b:02x}").into_bytes(),
        _ => format!("%c0%{:02x}", 0x80 | b).into_bytes(),
    }
}

#[tokio::test]
async fn control_characters_never_reach_an_upstream_and_open_nothing() {
    let s = Stack::start_opts(&[], true);
    let port = s.nginx.port;
    let secret = std::fs::read(
        s.root
            .join("published/presentation")
            .join(PRES)
            .join("shapes.svg"),
    )
    .unwrap();
    let probe = secret[..secret.len().min(64)].to_vec();
    let file = format!("/presentation/{PRES}/shapes.svg");
    // Baseline: protected, no cookie → refused.
    assert_eq!(status(&get_raw(port, file.as_bytes(), b"")), 404);

    let mut tried = 0;
    for c in controls() {
        for (name, e, decoded_is_control) in encodings(c) {
            let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
                ("path end", [file.as_bytes(), &e].concat(), vec![]),
                (
                    "path middle",
                    format!("/presentation/{PRES}")
                        .into_bytes()
                        .into_iter()
                        .chain(e.clone())
                        .chain(b"/shapes.svg".iter().copied())
                        .collect(),
                    vec![],
                ),
                (
                    "query",
                    [file.as_bytes(), b"?x=", &e, b"y"].concat(),
                    vec![],
                ),
                (
                    "header",
                    file.as_bytes().to_vec(),
                    [b"X-Probe: a".as_slice(), &e, b"b\r\n"].concat(),
                ),
                (
                    "cookie",
                    file.as_bytes().to_vec(),
                    [
                        format!("Cookie: recording_presentation_{PRES}=").as_bytes(),
                        &e,
                        b"\r\n",
                    ]
                    .concat(),
                ),
            ];
            for (at, target, headers) in cases {
                let resp = get_raw(port, &target, &headers);
                let st = status(&resp);
                assert_ne!(st, 200, "0x{c:02x} {name} in the {at}: served");
                assert!(
                    !contains(&resp, &probe),
                    "0x{c:02x} {name} in the {at}: protected bytes served"
                );
                if decoded_is_control && at.starts_with("path") {
                    assert_eq!(st, 400, "0x{c:02x} {name} in the {at}: not refused");
                }
                tried += 1;
            }
        }
    }
    // Smuggling attempts: a whole second request after the path, in each encoding,
    // interleaved with clean requests that must each get their own (refused) answer.
    for kind in 0..4 {
        let marker = format!("smuggled-{kind}");
        let target = [file.as_bytes(), &smuggle(&encoder(kind), &marker)].concat();
        for _ in 0..5 {
            let resp = get_raw(port, &target, b"");
            assert_ne!(status(&resp), 200);
            assert!(!contains(&resp, &probe));
            let clean = get_raw(port, file.as_bytes(), b"");
            assert_eq!(status(&clean), 404, "a clean request got another's answer");
            assert!(!contains(&clean, &probe));
        }
        tried += 10;
    }
    // The API keeps answering its own requests on the kept-alive upstream.
    let (st, body) = s.lb.raw_get(&s.url("/bigbluebutton/api")).await;
    assert_eq!(st, 200);
    assert!(body.contains("<version>2.0</version>"), "{body}");

    // What nginx sent the worker: never a bare line break, never a smuggled request line.
    let streams = s.upstream.as_ref().unwrap().bytes();
    assert!(!streams.is_empty(), "the recorder saw nginx's connections");
    for st in &streams {
        assert!(
            no_bare_line_breaks(st),
            "a bare CR or LF reached the worker: {:?}",
            String::from_utf8_lossy(st)
        );
        assert!(
            !contains(st, b"\r\nGET /smuggled") && !contains(st, b"\r\nX-Probe: a\r"),
            "a split request reached the worker: {:?}",
            String::from_utf8_lossy(st)
        );
    }
    // Each auth subrequest has a connection of its own, closed after its one answer.
    let auth: Vec<&Vec<u8>> = streams
        .iter()
        .filter(|st| contains(st, b"GET /ferrolite/auth "))
        .collect();
    assert!(!auth.is_empty());
    for st in auth {
        // Request lines: at the start, or right after a line break.
        let requests = usize::from(st.starts_with(b"GET "))
            + st.windows(6).filter(|w| w == b"\r\nGET ").count();
        assert_eq!(requests, 1, "{:?}", String::from_utf8_lossy(st));
        assert!(contains(st, b"\r\nConnection: close\r\n"));
    }
    // With a valid cookie the same file still opens (the checks refuse only the hostile).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt =
        ferrolite::playback::protect::mint_cookie(KEY.as_bytes(), "presentation", PRES, now + 60);
    let ok = get_raw(
        port,
        file.as_bytes(),
        format!("Cookie: recording_presentation_{PRES}={jwt}\r\n").as_bytes(),
    );
    assert_eq!(status(&ok), 200);
    assert!(contains(&ok, &probe));
    assert!(tried > 32 * 5 * 4, "{tried} requests tried");
}

#[tokio::test]
async fn redirects_plant_no_header() {
    let s = Stack::start();
    let port = s.nginx.port;
    let prefixes: [&[u8]; 4] = [
        b"/playback/video/x",
        b"/recording/screenshare/x",
        b"/playback/presentation/2.0/playback.html?meetingId=x",
        b"/playback/presentation/playback.html?x",
    ];
    for c in controls() {
        for (name, e, _) in encodings(c) {
            for p in prefixes {
                let target = [p, &e, b"Set-Cookie:%20planted=1", &e, b"X-Planted:%201"].concat();
                let resp = get_raw(port, &target, b"");
                let h = head(&resp);
                let text = String::from_utf8_lossy(h).to_ascii_lowercase();
                assert!(
                    !text.contains("\nset-cookie") && !text.contains("\nx-planted"),
                    "0x{c:02x} {name} after {}: {text}",
                    String::from_utf8_lossy(p)
                );
                assert!(no_bare_line_breaks(h), "0x{c:02x} {name}: {text:?}");
                if let Some(loc) = text.lines().find(|l| l.starts_with("location:")) {
                    assert!(
                        !loc.trim_end_matches('\r')
                            .bytes()
                            .any(|b| b < 0x20 || b == 0x7f),
                        "0x{c:02x} {name}: control character in {loc:?}"
                    );
                }
            }
        }
    }
    // The safe redirects still work.
    let r = get_raw(port, format!("/playback/video/{VIDEO}/").as_bytes(), b"");
    assert_eq!(status(&r), 307);
    assert!(String::from_utf8_lossy(head(&r)).contains(&format!("Location: /video/{VIDEO}/")));
}

/// A tarball of the presentation fixture under a new record id, plus `extra` entries.
fn hostile_tarball(path: &Path, rid: &str, extra: &dyn Fn(&mut tar::Builder<std::fs::File>, &str)) {
    let mut src = tar::Archive::new(
        std::fs::File::open(fixtures().join("recordings/presentation.tar")).unwrap(),
    );
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for e in src.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().replace(PRES, rid);
        let mut h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if p.ends_with("metadata.xml") {
            data = String::from_utf8(data)
                .unwrap()
                .replace(PRES, rid)
                .into_bytes();
            h.set_size(data.len() as u64);
        }
        if h.entry_type() == tar::EntryType::Symlink {
            let target = e.link_name().unwrap().unwrap().into_owned();
            b.append_link(&mut h, &p, target).unwrap();
        } else {
            b.append_data(&mut h, &p, data.as_slice()).unwrap();
        }
    }
    extra(&mut b, &format!("presentation/{rid}"));
    b.finish().unwrap();
}

fn link(b: &mut tar::Builder<std::fs::File>, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, path, target).unwrap();
}

fn hard(b: &mut tar::Builder<std::fs::File>, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_link(&mut h, path, target).unwrap();
}

fn dir(b: &mut tar::Builder<std::fs::File>, path: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    b.append_data(&mut h, path, std::io::empty()).unwrap();
}

fn file(b: &mut tar::Builder<std::fs::File>, path: &str, body: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, path, body).unwrap();
}

type Extra = Box<dyn Fn(&mut tar::Builder<std::fs::File>, &str)>;

#[tokio::test]
async fn hostile_links_in_tarballs_are_set_aside_and_nothing_outside_is_served() {
    let s = Stack::start_with(&[
        ("IMPORTER_ENABLED", "true"),
        ("RECORDING_IMPORT_SETTLE", "0"),
        ("RECORDING_IMPORT_POLL_INTERVAL", "1"),
    ]);
    let secret_path = s.root.join("env-secret.txt");
    std::fs::write(&secret_path, "LOADBALANCER_SECRET=do-not-serve-me").unwrap();
    let secret = secret_path.display().to_string();
    let mut cases: Vec<(String, Extra)> = Vec::new();
    for n in 2..=6usize {
        // d1/up -> .. ; d2/up -> ../d1/up/.. ; …: each link looks harmless on its own.
        cases.push((
            format!("chain-{n}"),
            Box::new(move |b, r| {
                for i in 1..=n {
                    let t = if i == 1 {
                        "..".to_string()
                    } else {
                        format!("../d{}/up/..", i - 1)
                    };
                    link(b, &format!("{r}/d{i}/up"), &t);
                }
                link(
                    b,
                    &format!("{r}/leak"),
                    &format!("d{n}/up/../../{PRES}/shapes.svg"),
                );
            }),
        ));
        // l1 -> l2 -> … -> ln -> outside.
        cases.push((
            format!("links-to-links-{n}"),
            Box::new(move |b, r| {
                for i in 1..n {
                    link(b, &format!("{r}/l{i}"), &format!("l{}", i + 1));
                }
                link(b, &format!("{r}/l{n}"), "../../../../../../etc/passwd");
            }),
        ));
    }
    let s2 = secret.clone();
    cases.push((
        "absolute".into(),
        Box::new(move |b, r| link(b, &format!("{r}/leak"), &s2)),
    ));
    cases.push((
        "absolute-root".into(),
        Box::new(|b, r| link(b, &format!("{r}/root"), "/")),
    ));
    cases.push((
        "dir-then-link".into(),
        Box::new(|b, r| {
            dir(b, &format!("{r}/d"));
            file(b, &format!("{r}/d/f.txt"), b"x");
            link(b, &format!("{r}/d"), "/etc");
        }),
    ));
    cases.push((
        "link-then-dir".into(),
        Box::new(|b, r| {
            link(b, &format!("{r}/d"), &format!("../{PRES}"));
            dir(b, &format!("{r}/d"));
            file(b, &format!("{r}/d/f.txt"), b"x");
        }),
    ));
    cases.push((
        "hard-inside".into(),
        Box::new(|b, r| hard(b, &format!("{r}/h.xml"), &format!("{r}/metadata.xml"))),
    ));
    let s3 = secret.clone();
    cases.push((
        "hard-outside".into(),
        Box::new(move |b, r| hard(b, &format!("{r}/h"), &s3)),
    ));
    cases.push((
        "hard-other-recording".into(),
        Box::new(|b, r| {
            hard(
                b,
                &format!("{r}/h"),
                &format!("presentation/{PRES}/shapes.svg"),
            )
        }),
    ));

    let staging = s.root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mut names = Vec::new();
    for (i, (name, extra)) in cases.iter().enumerate() {
        let rid = format!("e{:039x}-17156{:08}", i, i);
        let tarball = staging.join(format!("{name}.tar"));
        hostile_tarball(&tarball, &rid, extra.as_ref());
        std::fs::rename(&tarball, s.root.join("spool").join(format!("{name}.tar"))).unwrap();
        names.push((name.clone(), rid));
    }
    let failed = s.root.join("spool/failed");
    let all_set_aside = eventually(std::time::Duration::from_secs(60), || {
        let names = names.clone();
        let failed = failed.clone();
        async move {
            names
                .iter()
                .all(|(n, _)| failed.join(format!("{n}.tar.reason")).is_file())
        }
    })
    .await;
    assert!(
        all_set_aside,
        "every hostile tarball is set aside with a reason; failed/ holds {:?}",
        std::fs::read_dir(&failed)
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            .unwrap_or_default()
    );
    for (name, rid) in &names {
        let why = std::fs::read_to_string(failed.join(format!("{name}.tar.reason"))).unwrap();
        assert!(
            why.contains("link") || why.contains("Link"),
            "{name}: the reason names the link: {why}"
        );
        assert!(
            !s.root.join("published/presentation").join(rid).exists(),
            "{name}: nothing published"
        );
        for f in [
            "leak",
            "l1",
            "root/etc/passwd",
            "h",
            "d/f.txt",
            "metadata.xml",
        ] {
            let r = s.get(&format!("/presentation/{rid}/{f}"), None).await;
            assert_eq!(r.status(), 404, "{name}: /{f}");
            let body = r.text().await.unwrap();
            assert!(!body.contains("do-not-serve-me") && !body.contains("root:"));
        }
    }
    let list = s.api("getRecordings", "").await;
    for (name, rid) in &names {
        assert!(!list.contains(rid.as_str()), "{name} was indexed");
    }

    // Not a blanket refusal: a chain of links that only point down is imported and served.
    let rid = "f0000000000000000000000000000000000000ab-1715699999999";
    let tarball = staging.join("benign.tar");
    hostile_tarball(&tarball, rid, &|b, r| {
        file(
            b,
            &format!("{r}/deep/a/b/target.txt"),
            b"benign chain target",
        );
        link(b, &format!("{r}/deep/a/c3"), "b/target.txt");
        link(b, &format!("{r}/deep/c2"), "a/c3");
        link(b, &format!("{r}/c1"), "deep/c2");
    });
    std::fs::rename(&tarball, s.root.join("spool/benign.tar")).unwrap();
    let published = s.root.join("published/presentation").join(rid);
    assert!(
        eventually(std::time::Duration::from_secs(60), || {
            let p = published.clone();
            async move { p.join("metadata.xml").is_file() }
        })
        .await,
        "the benign tarball was not imported: {:?}",
        std::fs::read_to_string(failed.join("benign.tar.reason")).ok()
    );
    let _ = std::process::Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(&s.root)
        .status();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt =
        ferrolite::playback::protect::mint_cookie(KEY.as_bytes(), "presentation", rid, now + 60);
    let cookie = format!("recording_presentation_{rid}={jwt}");
    let r = s
        .get(&format!("/presentation/{rid}/c1"), Some(&cookie))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "benign chain target");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test]
async fn nginx_follows_no_link_that_leaves_a_recording_on_disk() {
    let s = Stack::start();
    s.api(
        "updateRecordings",
        &format!("recordID={VIDEO}&protect=false"),
    )
    .await;
    // Links planted on disk past the importer (another tool, an old Scalelite tree).
    let secret = s.root.join("env-secret.txt");
    std::fs::write(&secret, "LOADBALANCER_SECRET=do-not-serve-me").unwrap();
    let root_run = is_root();
    if root_run {
        // Owned by someone else than the recordings, like /etc/default/ferrolite.
        std::os::unix::fs::chown(&secret, Some(65534), Some(65534)).unwrap();
    }
    let video_dir = s.root.join("published/video").join(VIDEO);
    let pres_dir = s.root.join("published/presentation").join(PRES);
    std::os::unix::fs::symlink(&secret, video_dir.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(&secret, pres_dir.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(s.root.join("spool"), video_dir.join("spooldir")).unwrap();

    // The farm's own hop still works, and so does a link inside a recording.
    let r = s.get(&format!("/video/{VIDEO}/index.html"), None).await;
    assert_eq!(r.status(), 200, "public file through the link farm");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt =
        ferrolite::playback::protect::mint_cookie(KEY.as_bytes(), "presentation", PRES, now + 60);
    let cookie = format!("recording_presentation_{PRES}={jwt}");
    let inner = s
        .get(
            &format!("/presentation/{PRES}/video/latest.webm"),
            Some(&cookie),
        )
        .await;
    assert_eq!(inner.status(), 200, "a link inside the recording is served");

    if !root_run {
        assert!(
            std::env::var_os("CI").is_none(),
            "the owner check needs root (to give the secret another owner)"
        );
        eprintln!("owner-based nginx link test NOT RUN: not root");
        return;
    }
    for (path, cookie) in [
        (format!("/video/{VIDEO}/leak.txt"), None),
        (
            format!("/presentation/{PRES}/leak.txt"),
            Some(cookie.as_str()),
        ),
        (format!("/video/{VIDEO}/spooldir/"), None),
    ] {
        let r = s.get(&path, cookie).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(
            !r.text().await.unwrap().contains("do-not-serve-me"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn with_url_host_other_hosts_are_refused() {
    let s = Stack::start_with(&[("URL_HOST", "lb.test")]);
    let call = |host: &'static str, path: String| {
        let req = s.lb.http.get(s.url(&path)).header("Host", host);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let api = format!(
        "/bigbluebutton/api/getRecordings?{}",
        sign("getRecordings", "", LB_SECRET, "sha1")
    );
    let q = format!("recordID={VIDEO}&protect=false");
    let unprotect = format!(
        "/bigbluebutton/api/updateRecordings?{}",
        sign("updateRecordings", &q, LB_SECRET, "sha1")
    );
    assert_eq!(call("evil.example", unprotect.clone()).await.0, 403);
    let (st, body) = call("lb.test", unprotect).await;
    assert!(
        st == 200 && body.contains("<updated>true</updated>"),
        "{body}"
    );
    assert_eq!(call("lb.test", api.clone()).await.0, 200);
    assert_eq!(call("LB.test:80", api.clone()).await.0, 200);
    for host in ["evil.example", "sub.lb.test", "lb.test.evil", "127.0.0.1"] {
        assert_eq!(call(host, api.clone()).await.0, 403, "{host}");
        assert_eq!(
            call(host, "/bigbluebutton/api".into()).await.0,
            403,
            "{host}"
        );
        // Probes may use any name, as Scalelite's.
        assert_eq!(call(host, "/health_check".into()).await.0, 200, "{host}");
        let file = format!("/video/{VIDEO}/index.html");
        assert_eq!(call(host, file.clone()).await.0, 404, "{host}: public file");
        let play = format!("/recording/{VIDEO}/video");
        assert_ne!(call(host, play).await.0, 307, "{host}: play link");
    }
    assert_eq!(
        call("lb.test", format!("/video/{VIDEO}/index.html"))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn behind_a_proxy_nginx_redirects_relatively() {
    let s = Stack::start_with(&[("NGINX_BEHIND_PROXY", "true")]);
    s.api(
        "updateRecordings",
        &format!("recordID={VIDEO}&protect=false"),
    )
    .await;
    for (path, want) in [
        (
            format!("/playback/video/{VIDEO}/"),
            format!("/video/{VIDEO}/"),
        ),
        (
            "/playback/presentation/playback.html?meetingId=m1".to_string(),
            "/playback/presentation/0.81/playback.html?meetingId=m1".to_string(),
        ),
        (
            "/playback/presentation/2.0/playback.html?meetingId=m1".to_string(),
            "/playback/presentation/2.3/m1?meetingId=m1".to_string(),
        ),
        // nginx's own directory redirect.
        (format!("/video/{VIDEO}"), format!("/video/{VIDEO}/")),
    ] {
        let r =
            s.lb.http
                .get(s.url(&path))
                .header("Host", "lb.example.org")
                .header("X-Forwarded-Proto", "https")
                .send()
                .await
                .unwrap();
        assert!(r.status().is_redirection(), "{path}: {}", r.status());
        assert_eq!(r.headers()["location"], want.as_str(), "{path}");
    }
}

#[tokio::test]
async fn the_worker_refuses_a_bare_cr_and_answers_nothing_after_it() {
    let s = Stack::start();
    use std::os::unix::net::UnixStream;
    for bad in [&b"a\rb"[..], b"a\r", b"\rGET /health_check HTTP/1.1"] {
        let mut c = UnixStream::connect(s.root.join("ferrolite.sock")).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut req = b"GET /ferrolite/auth HTTP/1.1\r\nHost: x\r\nX-Original-URI: ".to_vec();
        req.extend_from_slice(bad);
        req.extend_from_slice(b"\r\n\r\nGET /health_check HTTP/1.1\r\nHost: x\r\n\r\n");
        c.write_all(&req).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        assert_eq!(status(&out), 400, "{:?}", String::from_utf8_lossy(&out));
        assert_eq!(
            out.windows(9).filter(|w| w == b"HTTP/1.1 ").count(),
            1,
            "only one answer, then the connection closes: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}
