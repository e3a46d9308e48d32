//! Test harness: starts the real `ferrolite` and `fake-bbb` binaries and talks to them over
//! real sockets. Every process is killed when its handle is dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub mod browser;
pub mod cluster;
pub mod nginx;
pub mod postgres;
pub mod redis;
pub mod trees;

pub const LB_SECRET: &str = "lb-secret-for-tests";

/// Reads the first stdout line of a child (the line both binaries print when ready).
fn first_line(child: &mut Child) -> String {
    let out = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("child printed its ready line");
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    line.trim().to_string()
}

pub struct FakeServer {
    pub url: String,
    pub secret: String,
}

/// A running `fake-bbb` process.
pub struct Fake {
    child: Child,
    pub control: String,
    pub servers: Vec<FakeServer>,
    http: reqwest::Client,
}

impl Fake {
    pub fn start(secrets: &[&str]) -> Fake {
        Fake::start_with(secrets, &[])
    }

    pub fn start_with(secrets: &[&str], extra: &[&str]) -> Fake {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fake-bbb"))
            .arg("--secrets")
            .arg(secrets.join(","))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fake-bbb starts");
        let v: Value = serde_json::from_str(&first_line(&mut child))
            .expect("fake-bbb describes itself in JSON");
        let servers = v["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| FakeServer {
                url: s["url"].as_str().unwrap().to_string(),
                secret: s["secret"].as_str().unwrap().to_string(),
            })
            .collect();
        Fake {
            child,
            control: v["control"].as_str().unwrap().to_string(),
            servers,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.control));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
            .await
            .expect("control API answers")
            .json()
            .await
            .expect("control API speaks JSON")
    }

    /// Sets a server's mode: `{"mode":"slow","delay_ms":…}`, `{"mode":"down"}`, …
    pub async fn mode(&self, i: usize, mode: Value) {
        self.send(
            reqwest::Method::POST,
            &format!("/servers/{i}/mode"),
            Some(mode),
        )
        .await;
    }

    pub async fn set_secret(&self, i: usize, secret: &str) {
        self.send(
            reqwest::Method::POST,
            &format!("/servers/{i}/secret"),
            Some(serde_json::json!({ "secret": secret })),
        )
        .await;
    }

    pub async fn calls(&self, i: usize) -> Vec<Value> {
        self.send(reqwest::Method::GET, &format!("/servers/{i}/calls"), None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The calls of one API name received by server `i`.
    pub async fn calls_to(&self, i: usize, api: &str) -> Vec<Value> {
        self.calls(i)
            .await
            .into_iter()
            .filter(|c| c["api"] == api)
            .collect()
    }

    pub async fn clear_calls(&self, i: usize) {
        self.send(
            reqwest::Method::DELETE,
            &format!("/servers/{i}/calls"),
            None,
        )
        .await;
    }

    pub async fn meetings(&self, i: usize) -> Vec<Value> {
        self.send(
            reqwest::Method::GET,
            &format!("/servers/{i}/meetings"),
            None,
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// Creates or updates a meeting on server `i` directly (attendees, streams, age).
    pub async fn set_meeting(&self, i: usize, id: &str, fields: Value) -> Value {
        let path = format!("/servers/{i}/meetings/{}", urlencode(id));
        self.send(reqwest::Method::POST, &path, Some(fields)).await
    }

    pub async fn end_meeting(&self, i: usize, id: &str) {
        let path = format!("/servers/{i}/meetings/{}", urlencode(id));
        self.send(reqwest::Method::DELETE, &path, None).await;
    }

    /// Which fake server (index) holds a meeting, if any.
    pub async fn holder(&self, id: &str) -> Option<usize> {
        for i in 0..self.servers.len() {
            if self.meetings(i).await.iter().any(|m| m["meeting_id"] == id) {
                return Some(i);
            }
        }
        None
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Signs a query for `call` with `secret` using the named algorithm (sha1, sha256, …).
pub fn sign(call: &str, query: &str, secret: &str, alg: &str) -> String {
    use sha2::Digest;
    let input = format!("{call}{query}{secret}");
    let sum = match alg {
        "sha1" => hex::encode(sha1::Sha1::digest(input.as_bytes())),
        "sha256" => hex::encode(sha2::Sha256::digest(input.as_bytes())),
        "sha384" => hex::encode(sha2::Sha384::digest(input.as_bytes())),
        "sha512" => hex::encode(sha2::Sha512::digest(input.as_bytes())),
        other => panic!("unknown algorithm {other}"),
    };
    if query.is_empty() {
        format!("checksum={sum}")
    } else {
        format!("{query}&checksum={sum}")
    }
}

/// A running `ferrolite serve` with its own temporary directory and database.
pub struct Lb {
    child: Option<Child>,
    /// The serve process's stderr (logs), one file per start.
    pub log: PathBuf,
    starts: usize,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    pub http: reqwest::Client,
}

impl Lb {
    /// The environment every test starts from: a temp database, a random port, and a
    /// poller that only runs when the test asks (`ferrolite poll`).
    pub fn base_env(dir: &tempfile::TempDir) -> Vec<(String, String)> {
        vec![
            ("LOADBALANCER_SECRET".into(), LB_SECRET.into()),
            (
                "DATABASE_URL".into(),
                dir.path().join("ferrolite.db").display().to_string(),
            ),
            ("PORT".into(), "0".into()),
            ("POLL_INTERVAL".into(), "3600".into()),
            ("CONNECT_TIMEOUT".into(), "1".into()),
            ("RESPONSE_TIMEOUT".into(), "2".into()),
            ("LOG_LEVEL".into(), "warn".into()),
        ]
    }

    pub fn start(extra: &[(&str, &str)]) -> Lb {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Lb::base_env(&dir);
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        Lb::start_in(dir, env)
    }

    pub fn start_in(dir: tempfile::TempDir, env: Vec<(String, String)>) -> Lb {
        let log = dir.path().join("serve-0.log");
        let mut lb = Lb {
            child: None,
            log,
            starts: 0,
            base: String::new(),
            dir,
            env,
            http: http_client(),
        };
        lb.spawn();
        lb
    }

    /// (Re)starts the serve process with the current environment.
    pub fn spawn(&mut self) {
        self.log = self.dir.path().join(format!("serve-{}.log", self.starts));
        self.starts += 1;
        let stderr = std::fs::File::create(&self.log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferrolite"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("ferrolite starts");
        let line = first_line(&mut child);
        let addr = line.rsplit(' ').next().unwrap_or_default().to_string();
        assert!(
            line.starts_with("ferrolite: listening on"),
            "unexpected first line: {line:?}; log: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        self.base = addr;
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_kill(child.id(), "TERM");
        child.wait().unwrap()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `ferrolite <args>` with the same environment and database.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_with(&self.env, self.dir.path(), args)
    }

    /// Runs the CLI and returns stdout, failing the test if it exits non-zero.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "ferrolite {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds every fake server, enables it, polls once; returns the ids in fake order.
    pub fn add_fake_servers(&self, fake: &Fake) -> Vec<String> {
        let ids: Vec<String> = fake
            .servers
            .iter()
            .map(|s| {
                let out = self.cli_ok(&["servers", "add", &s.url, &s.secret]);
                let id = out
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .expect("servers add prints the id")
                    .to_string();
                self.cli_ok(&["servers", "enable", &id]);
                id
            })
            .collect();
        self.cli_ok(&["poll", "--allow-offline"]);
        ids
    }

    /// A signed API URL (SHA-1 unless `alg` says otherwise).
    pub fn api_url(&self, call: &str, query: &str) -> String {
        self.api_url_alg(call, query, "sha1")
    }

    pub fn api_url_alg(&self, call: &str, query: &str, alg: &str) -> String {
        format!(
            "{}/bigbluebutton/api/{call}?{}",
            self.base,
            sign(call, query, LB_SECRET, alg)
        )
    }

    /// GET a signed call; returns status and body.
    pub async fn get(&self, call: &str, query: &str) -> (u16, String) {
        self.raw_get(&self.api_url(call, query)).await
    }

    /// GET a call signed with `secret` and sent with `Host: <host>` (a tenant's host);
    /// returns status, body and the Location header.
    pub async fn get_as(
        &self,
        host: &str,
        secret: &str,
        call: &str,
        query: &str,
    ) -> (u16, String, String) {
        let url = format!(
            "{}/bigbluebutton/api/{call}?{}",
            self.base,
            sign(call, query, secret, "sha256")
        );
        let r = self
            .http
            .get(url)
            .header("Host", host)
            .send()
            .await
            .expect("ferrolite answers");
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, r.text().await.unwrap_or_default(), location)
    }

    pub async fn raw_get(&self, url: &str) -> (u16, String) {
        let r = self.http.get(url).send().await.expect("ferrolite answers");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }
}

impl Lb {
    /// Everything the current serve process logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- ferrolite log ({}) ---\n{}",
                self.log.display(),
                self.logs()
            );
        }
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub fn cli_with(env: &[(String, String)], dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("ferrolite CLI runs")
}

pub fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// The text of the first `<name>` element.
pub fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

pub fn count(xml: &str, element: &str) -> usize {
    xml.matches(&format!("<{element}>")).count()
}

/// Polls `check` until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The base environment plus recording directories under `dir` (spool, work, published,
/// unpublished; the spool is created) and a quick importer.
pub fn recording_env(dir: &tempfile::TempDir) -> Vec<(String, String)> {
    let root = dir.path();
    let mut env = Lb::base_env(dir);
    for (k, d) in [
        ("RECORDING_SPOOL_DIR", "spool"),
        ("RECORDING_WORK_DIR", "work"),
        ("RECORDING_PUBLISH_DIR", "published"),
        ("RECORDING_UNPUBLISH_DIR", "unpublished"),
    ] {
        env.push((k.into(), root.join(d).display().to_string()));
    }
    env.push(("RECORDING_IMPORT_SETTLE".into(), "0.2".into()));
    env.push(("RECORDING_IMPORT_POLL_INTERVAL".into(), "1".into()));
    std::fs::create_dir_all(root.join("spool")).unwrap();
    env
}

/// A loopback HTTP receiver that records every request body.
pub async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/recording_ready", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16384];
            let mut got = Vec::new();
            loop {
                let n = sock.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(h) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if got.len() >= h + 4 + len {
                        s.lock().unwrap().push(text[h + 4..].to_string());
                        break;
                    }
                }
            }
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (url, seen)
}
