//! Several `ferrolite serve` nodes on shared state, for the scale-out tests: one Redis (a
//! master, and with Sentinel a replica and a `redis-sentinel`), optionally one PostgreSQL,
//! shared recording directories and one SQLite recordings file on this host, and a fake BBB
//! pool. Plus a steady load of creates and joins from a few client tasks that counts the
//! API's answers per phase ([`Load`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::postgres::Postgres;
use super::redis::{Redis, Sentinel};
use super::{sign, Fake, Lb, LB_SECRET};

pub struct Options {
    pub nodes: usize,
    pub servers: usize,
    /// A replica and a Sentinel; the nodes use `redis+sentinel://`.
    pub sentinel: bool,
    /// The callback outbox in PostgreSQL (otherwise in the shared SQLite file).
    pub postgres: bool,
    /// `POLL_INTERVAL`, seconds.
    pub poll_interval: u32,
}

pub struct Cluster {
    /// The first master, and with Sentinel its replica (either may be the master later).
    pub redis: Vec<Redis>,
    pub sentinel: Option<Sentinel>,
    pub pg: Option<Postgres>,
    pub fake: Fake,
    pub nodes: Vec<Lb>,
    /// The nodes' base URLs while they run (`None` while killed), for the load clients.
    pub bases: Arc<Mutex<Vec<Option<String>>>>,
    /// Recording dirs (`spool`, `work`, `published`, `unpublished`) and `recordings.db`.
    pub shared: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(o: Options) -> Cluster {
        let mut redis = vec![Redis::start()];
        let sentinel = if o.sentinel {
            redis.push(Redis::replica_of(&redis[0]));
            let s = Sentinel::start(&redis[0]);
            s.wait_for_replicas(1).await;
            Some(s)
        } else {
            None
        };
        let (pg, pg_url) = if o.postgres {
            let pg = Postgres::start();
            let url = pg.create_database("cluster").await;
            (Some(pg), Some(url))
        } else {
            (None, None)
        };
        let secrets: Vec<String> = (0..o.servers).map(|i| format!("secret-{i}")).collect();
        let fake = Fake::start(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
        let shared = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(shared.path().join("spool")).unwrap();
        let redis_url = match &sentinel {
            Some(s) => s.url(),
            None => redis[0].url.clone(),
        };
        let nodes: Vec<Lb> = (0..o.nodes)
            .map(|i| {
                let dir = tempfile::tempdir().unwrap();
                let mut env = node_env(&dir, i, &shared, &redis_url, pg_url.as_deref());
                env.push(("POLL_INTERVAL".into(), o.poll_interval.to_string()));
                Lb::start_in(dir, env)
            })
            .collect();
        let bases = Arc::new(Mutex::new(
            nodes.iter().map(|n| Some(n.base.clone())).collect(),
        ));
        let c = Cluster {
            redis,
            sentinel,
            pg,
            fake,
            nodes,
            bases,
            shared,
        };
        c.nodes[0].add_fake_servers(&c.fake);
        c
    }

    pub fn spool(&self) -> PathBuf {
        self.shared.path().join("spool")
    }

    /// `kill -9` node `i`; the load clients stop sending to it.
    pub fn kill(&mut self, i: usize) {
        self.bases.lock().unwrap()[i] = None;
        // `Child::kill` is SIGKILL: no shutdown, no lease released.
        self.nodes[i].kill();
    }

    /// Starts node `i` again (same node id and environment).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].spawn();
        self.bases.lock().unwrap()[i] = Some(self.nodes[i].base.clone());
    }

    /// The Redis server that is master now.
    pub async fn master(&self) -> Option<&Redis> {
        for r in &self.redis {
            if r.is_master().await {
                return Some(r);
            }
        }
        None
    }

    /// The holder (`<node>:<pid>`) of a role's lease, read on the current master.
    pub async fn lease_holder(&self, role: &str) -> Option<String> {
        let master = self.master().await?;
        let client = redis::Client::open(master.url.as_str()).ok()?;
        let mut con = client.get_multiplexed_async_connection().await.ok()?;
        let holder: Option<String> = redis::cmd("HGET")
            .arg(format!("ferrolite:lease:{role}"))
            .arg("holder")
            .query_async(&mut con)
            .await
            .ok()?;
        holder.filter(|h| !h.is_empty())
    }

    /// The index of the running node whose process holds a role's lease.
    pub async fn holder_node(&self, role: &str) -> Option<usize> {
        let holder = self.lease_holder(role).await?;
        self.nodes
            .iter()
            .position(|n| n.pid() != 0 && holder.ends_with(&format!(":{}", n.pid())))
    }
}

/// A node's environment: its own temp dir as working directory, everything shared that a
/// cluster shares, short leases and a one-second poll.
fn node_env(
    dir: &tempfile::TempDir,
    i: usize,
    shared: &tempfile::TempDir,
    redis_url: &str,
    pg_url: Option<&str>,
) -> Vec<(String, String)> {
    let root = shared.path();
    let sqlite = root.join("recordings.db").display().to_string();
    let mut env = Lb::base_env(dir);
    env.retain(|(k, _)| !matches!(k.as_str(), "DATABASE_URL" | "POLL_INTERVAL" | "LOG_LEVEL"));
    let dirs = [
        ("RECORDING_SPOOL_DIR", "spool"),
        ("RECORDING_WORK_DIR", "work"),
        ("RECORDING_PUBLISH_DIR", "published"),
        ("RECORDING_UNPUBLISH_DIR", "unpublished"),
    ];
    for (k, d) in dirs {
        env.push((k.into(), root.join(d).display().to_string()));
    }
    let db = match pg_url {
        Some(u) => {
            env.push(("SQLITE_PATH".into(), sqlite));
            u.to_string()
        }
        None => sqlite,
    };
    for (k, v) in [
        ("DATABASE_URL", db.as_str()),
        ("REDIS_URL", redis_url),
        ("NODE_ID", &format!("node{i}")),
        ("POLLER_WAIT_TIMEOUT", "1"),
        ("ROLE_LEASE_TTL", "2"),
        ("RECORDING_IMPORT_SETTLE", "0.2"),
        ("RECORDING_IMPORT_POLL_INTERVAL", "0.5"),
        ("ALLOW_PRIVATE_CALLBACKS", "true"),
        ("CALLBACK_RETRY_BASE", "0.2"),
        ("LOG_LEVEL", "info"),
        // Each node's own link farm, in its working directory.
        ("PLAYBACK_LINK_DIR", "links"),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    env
}

/// A signed API URL on a node's base URL.
pub fn api_url_at(base: &str, call: &str, query: &str) -> String {
    format!(
        "{base}/bigbluebutton/api/{call}?{}",
        sign(call, query, LB_SECRET, "sha1")
    )
}

/// The answers of one phase: every request, and the failed ones with their first reasons.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub requests: u64,
    pub errors: u64,
    pub reasons: BTreeMap<String, u64>,
}

impl Tally {
    pub fn rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

#[derive(Default)]
pub struct LoadState {
    pub phase: String,
    pub phases: Vec<(String, Tally)>,
    /// Meetings whose create answered SUCCESS.
    pub created: Vec<String>,
}

impl LoadState {
    fn tally(&mut self) -> &mut Tally {
        if self.phases.last().is_none_or(|(p, _)| *p != self.phase) {
            self.phases.push((self.phase.clone(), Tally::default()));
        }
        &mut self.phases.last_mut().unwrap().1
    }

    fn record(&mut self, ok: bool, reason: impl FnOnce() -> String) {
        let t = self.tally();
        t.requests += 1;
        if !ok {
            t.errors += 1;
            *t.reasons.entry(reason()).or_insert(0) += 1;
        }
    }
}

/// Client tasks sending creates (new rooms, and now and then one already created) and
/// joins of created rooms, in turn through every running node.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub state: Arc<Mutex<LoadState>>,
}

impl Load {
    pub fn start(bases: Arc<Mutex<Vec<Option<String>>>>, clients: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(LoadState {
            phase: "steady".into(),
            ..Default::default()
        }));
        let turn = Arc::new(AtomicUsize::new(0));
        let tasks = (0..clients)
            .map(|c| {
                let (stop, state, bases, turn) =
                    (stop.clone(), state.clone(), bases.clone(), turn.clone());
                tokio::spawn(async move {
                    let http = super::http_client();
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let Some(base) = next_base(&bases, &turn) else {
                            tokio::time::sleep(pause).await;
                            continue;
                        };
                        let room = if n.is_multiple_of(5) {
                            // A repeated create of an earlier room: must land where it is.
                            let s = state.lock().unwrap();
                            s.created.get(n * 7 % s.created.len().max(1)).cloned()
                        } else {
                            None
                        }
                        .unwrap_or_else(|| format!("load-{c}-{n}"));
                        let q = format!("meetingID={room}&name=Load");
                        let r = http.get(api_url_at(&base, "create", &q)).send().await;
                        let ok = answer_ok(r).await;
                        {
                            let mut s = state.lock().unwrap();
                            if ok.is_ok() && !s.created.contains(&room) {
                                s.created.push(room.clone());
                            }
                            let why = ok.clone().err().unwrap_or_default();
                            s.record(ok.is_ok(), || format!("create: {why}"));
                        }
                        let join = state.lock().unwrap().created.last().cloned();
                        if let Some(room) = join {
                            let Some(base) = next_base(&bases, &turn) else {
                                continue;
                            };
                            let q = format!("meetingID={room}&fullName=U{c}&role=VIEWER");
                            let r = http.get(api_url_at(&base, "join", &q)).send().await;
                            let ok = match r {
                                Ok(r) if r.status().as_u16() == 302 => Ok(()),
                                Ok(r) => answer_ok(Ok(r)).await.and(Err("not redirected".into())),
                                Err(e) => Err(connect_error(&e)),
                            };
                            state
                                .lock()
                                .unwrap()
                                .record(ok.is_ok(), || format!("join: {}", ok.unwrap_err()));
                        }
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load { stop, tasks, state }
    }

    /// Names the phase the next answers are counted under.
    pub fn phase(&self, name: &str) {
        self.state.lock().unwrap().phase = name.to_string();
    }

    pub async fn stop(self) -> LoadState {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        Arc::try_unwrap(self.state)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_default()
    }
}

fn next_base(bases: &Mutex<Vec<Option<String>>>, turn: &AtomicUsize) -> Option<String> {
    let b = bases.lock().unwrap();
    let up: Vec<&String> = b.iter().flatten().collect();
    if up.is_empty() {
        return None;
    }
    Some(up[turn.fetch_add(1, Ordering::Relaxed) % up.len()].clone())
}

fn connect_error(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timeout".into()
    } else {
        "transport error".into()
    }
}

/// `Ok` for an HTTP 200 SUCCESS answer; otherwise the messageKey (or what failed).
async fn answer_ok(r: reqwest::Result<reqwest::Response>) -> Result<(), String> {
    let r = r.map_err(|e| connect_error(&e))?;
    let status = r.status().as_u16();
    let body = r.text().await.map_err(|e| connect_error(&e))?;
    if status == 200 && body.contains("<returncode>SUCCESS</returncode>") {
        Ok(())
    } else {
        Err(super::xml_field(&body, "messageKey").unwrap_or(format!("HTTP {status}")))
    }
}

/// Prints each phase's error rate (the test output is the report).
pub fn print_phases(state: &LoadState) {
    for (phase, t) in &state.phases {
        println!(
            "phase {phase:<28} requests {:>5}  errors {:>4}  error rate {:>5.1}%  {:?}",
            t.requests,
            t.errors,
            100.0 * t.rate(),
            t.reasons
        );
    }
}

/// The claims of a recording-ready callback's body (`signed_parameters=<JWT>`, signed with
/// the load balancer's secret).
pub fn ready_claims(body: &str) -> serde_json::Value {
    let token = body
        .strip_prefix("signed_parameters=")
        .expect("a signed_parameters form body");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(LB_SECRET.as_bytes()),
        &v,
    )
    .expect("signed with the LB secret")
    .claims
}

/// A receiver that takes `delay` to answer each request and records every body.
pub async fn slow_receiver(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/recording_ready", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 16384];
                loop {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    let Some(h) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if got.len() >= h + 4 + len {
                        // Received: counted now, even if the sender dies before the answer.
                        s.lock().unwrap().push(text[h + 4..].to_string());
                        break;
                    }
                }
                tokio::time::sleep(delay).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, seen)
}
