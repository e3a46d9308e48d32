//! The shared backends against private, real servers: the store contract's lease and token
//! suites on Redis and its outbox and recordings suites on PostgreSQL, fenced writes on
//! both, lease epochs, migrations, and
//! `serve` / `db migrate` configured with them.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::redis::{Redis, Sentinel};
use common::Lb;
use ferrolite::store::postgres::{PostgresStore, MIGRATIONS};
use ferrolite::store::recordings::{PlaybackFormat, Recording};
use ferrolite::store::redis::RedisStore;
use ferrolite::store::{contract, LeaseStore, RecordingState, RecordingStore};

async fn redis_connection(r: &Redis) -> redis::aio::ConnectionManager {
    let client = redis::Client::open(r.url.as_str()).unwrap();
    redis::aio::ConnectionManager::new(client).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_keeps_the_lease_and_token_contract() {
    let r = Redis::start();
    let con = redis_connection(&r).await;
    let n = AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, Ordering::Relaxed);
        RedisStore::with_connections(vec![con.clone(), con.clone()], &format!("contract{i}"))
    };
    contract::leases(&make).await;
    contract::tokens(&make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_keeps_the_pool_contract() {
    let r = Redis::start();
    let con = redis_connection(&r).await;
    let n = AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, Ordering::Relaxed);
        RedisStore::with_connections(vec![con.clone(), con.clone()], &format!("pool{i}"))
    };
    contract::pool(&make).await;
    contract::fenced_pool(&make).await;
    contract::fenced_by_the_lease(&make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lease_epochs_fence_take_overs() {
    let r = Redis::start();
    let s = RedisStore::with_connections(vec![redis_connection(&r).await], "fence");
    let e1 = s
        .take_lease_epoch("poller", "a", 200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.take_lease_epoch("poller", "a", 200).await.unwrap(),
        Some(e1),
        "a renewal keeps the epoch"
    );
    assert_eq!(s.take_lease_epoch("poller", "b", 200).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e2 = s
        .take_lease_epoch("poller", "b", 200)
        .await
        .unwrap()
        .unwrap();
    assert!(e2 > e1, "a take-over raises the epoch ({e1} -> {e2})");
    s.release_lease("poller", "b").await.unwrap();
    let e3 = s
        .take_lease_epoch("poller", "a", 200)
        .await
        .unwrap()
        .unwrap();
    assert!(e3 > e2, "the epoch survives a release ({e2} -> {e3})");
    // Namespaces keep stores apart on one Redis.
    let other = RedisStore::with_connections(vec![redis_connection(&r).await], "other");
    assert!(other.take_lease("poller", "z", 200).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_keeps_the_outbox_contract_and_migrates_once() {
    let pg = Postgres::start();
    let url = pg.create_database("contract").await;
    let store = PostgresStore::connect(&url, 4).await.unwrap();
    let make = || store.clone();
    contract::outbox(&make).await;
    contract::fenced_outbox(&make).await;

    assert!(
        store.migrate().await.unwrap().is_empty(),
        "a current schema applies nothing"
    );
    // Several nodes starting at once on a fresh database: each migration is applied once.
    let url = pg.create_database("racing").await;
    let racers = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PostgresStore::open(&url, 1).unwrap().migrate().await })
    });
    let mut applied = 0;
    for r in racers {
        applied += r
            .await
            .unwrap()
            .expect("a concurrent migrate succeeds")
            .len();
    }
    assert_eq!(
        applied,
        MIGRATIONS.len(),
        "each migration applied exactly once"
    );
}

/// Stores on fresh, migrated databases of `pg`, one per contract case (`make` is not async).
async fn fresh_postgres_stores(pg: &Postgres, prefix: &str, n: usize) -> Vec<PostgresStore> {
    let mut stores = Vec::with_capacity(n);
    for i in 0..n {
        let url = pg.create_database(&format!("{prefix}{i}")).await;
        stores.push(PostgresStore::connect(&url, 4).await.unwrap());
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_keeps_the_recordings_contract() {
    let pg = Postgres::start();
    let stores = fresh_postgres_stores(&pg, "recordings", 9).await;
    let n = AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, Ordering::Relaxed);
        stores
            .get(i)
            .expect("more recording cases than fresh databases")
            .clone()
    };
    contract::recordings(&make).await;
    contract::fenced_recordings(&make).await;
}

fn with_backends(redis: Option<&Redis>, pg_url: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![];
    if let Some(r) = redis {
        env.push(("REDIS_URL".to_string(), r.url.clone()));
    }
    if let Some(u) = pg_url {
        env.push(("DATABASE_URL".to_string(), u.to_string()));
    }
    env
}

fn start_lb(extra: Vec<(String, String)>) -> Lb {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Lb::base_env(&dir);
    for (k, v) in extra {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    }
    Lb::start_in(dir, env)
}

async fn lease_holder(r: &Redis, name: &str) -> Option<String> {
    match r
        .cmd(&["HGET", &format!("ferrolite:lease:{name}"), "holder"])
        .await
    {
        redis::Value::BulkString(b) if !b.is_empty() => Some(String::from_utf8(b).unwrap()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_one_redis_and_postgres() {
    let r = Redis::start();
    let pg = Postgres::start();
    let url = pg.create_database("lb").await;

    // `db migrate` before anything ran: applies the schema, then reports it current.
    let dir = tempfile::tempdir().unwrap();
    let mut env = Lb::base_env(&dir);
    env.retain(|(k, _)| k != "DATABASE_URL");
    env.extend(with_backends(Some(&r), Some(&url)));
    let out = common::cli_with(&env, dir.path(), &["db", "migrate"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("applied 1 callback outbox"), "{stdout}");
    let out = common::cli_with(&env, dir.path(), &["db", "migrate"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));

    let mut a = start_lb(with_backends(Some(&r), Some(&url)));
    let mut b = start_lb(with_backends(Some(&r), Some(&url)));
    // The callback sender runs once across both: one holder, which is one of the two.
    let deadline = Instant::now() + Duration::from_secs(20);
    let holder = loop {
        if let Some(h) = lease_holder(&r, "callbacks").await {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "no node took the callbacks lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pids = [a.pid().to_string(), b.pid().to_string()];
    assert!(
        // Holders are `<node>:<pid>`.
        pids.iter().any(|p| holder.ends_with(&format!(":{p}"))),
        "the holder {holder} is one of {pids:?}"
    );
    // Both answer the API.
    for lb in [&a, &b] {
        let (status, body) = lb.get("getMeetings", "").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("<returncode>SUCCESS</returncode>"), "{body}");
    }
    // One recordings index: a recording in PostgreSQL is listed through both nodes, and
    // updateRecordings through one is seen through the other.
    let index = PostgresStore::open(&url, 1).unwrap();
    index
        .import_recording(&Recording {
            record_id: "rec-shared".into(),
            meeting_id: "shared-room".into(),
            internal_meeting_id: "rec-shared".into(),
            name: "Shared".into(),
            published: true,
            state: Some(RecordingState::Published),
            start_time: 1_700_000_000_000,
            end_time: 1_700_000_060_000,
            metadata: vec![("gl-listed".into(), "false".into())],
            formats: vec![PlaybackFormat {
                format: "presentation".into(),
                url: "/playback/presentation/2.3/rec-shared".into(),
                length: 1,
                processing_time: None,
                size: None,
                thumbnails: vec![],
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    for lb in [&a, &b] {
        let (_, body) = lb.get("getRecordings", "meetingID=shared-room").await;
        assert!(body.contains("<recordID>rec-shared</recordID>"), "{body}");
    }
    let (_, body) = b
        .get(
            "updateRecordings",
            "recordID=rec-shared&meta_gl-listed=true&meta_course=math",
        )
        .await;
    assert!(body.contains("<updated>true</updated>"), "{body}");
    let (_, body) = a.get("getRecordings", "recordID=rec-shared").await;
    assert!(
        body.contains("<course>math</course>") && body.contains("<gl-listed>true</gl-listed>"),
        "{body}"
    );
    a.terminate();
    b.terminate();
}

#[test]
fn serve_refuses_postgres_without_redis_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Lb::base_env(&dir);
    env.retain(|(k, _)| k != "DATABASE_URL");
    env.push((
        "DATABASE_URL".into(),
        "postgres://postgres@127.0.0.1:9/ferrolite".into(),
    ));
    let stderr = refused(&env, dir.path());
    assert!(
        stderr.contains("DATABASE_URL") && stderr.contains("REDIS_URL"),
        "{stderr}"
    );
}

/// Runs `serve` with `env`, expecting a refusal: exit status 1 and one line on stderr,
/// which is returned.
fn refused(env: &[(String, String)], dir: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .arg("serve")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_second_sqlite_file_on_one_redis_in_one_line() {
    let r = Redis::start();
    let mut a = start_lb(with_backends(Some(&r), None));
    let a_file = (
        "DATABASE_URL".to_string(),
        a.dir.path().join("ferrolite.db").display().to_string(),
    );
    // Another SQLite file (another host's) on the same namespace would split the recordings
    // index and strand its callbacks: refused.
    let dir = tempfile::tempdir().unwrap();
    let mut env = Lb::base_env(&dir);
    env.extend(with_backends(Some(&r), None));
    env.push(("NODE_ID".into(), "host-2".into()));
    let stderr = refused(&env, dir.path());
    assert!(
        stderr.contains("another SQLite file")
            && stderr.contains("DATABASE_URL=postgres://")
            && stderr.contains("ferrolite:lease:sqlite-file"),
        "{stderr}"
    );
    // The same file, another process (even under another node name): served.
    let mut same = with_backends(Some(&r), None);
    same.extend([a_file.clone(), ("NODE_ID".into(), "container-2".into())]);
    let mut b = start_lb(same);
    let (status, _) = b.get("getMeetings", "").await;
    assert_eq!(status, 200);
    // The first file's processes restart freely; another namespace binds its own file.
    a.terminate();
    b.terminate();
    a.spawn();
    let mut other = with_backends(Some(&r), None);
    other.push(("REDIS_NAMESPACE".into(), "other".into()));
    let mut c = start_lb(other);
    a.terminate();
    c.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_configuration_reaches_the_master() {
    use ferrolite::config::{Config, Purpose};
    let master = Redis::start();
    let sentinel = Sentinel::start(&master);
    for env in [
        vec![
            ("REDIS_SENTINELS", format!("127.0.0.1:{}", sentinel.port)),
            ("REDIS_SENTINEL_MASTER", "mymaster".to_string()),
        ],
        vec![(
            "REDIS_URL",
            format!("redis+sentinel://127.0.0.1:{}/mymaster", sentinel.port),
        )],
    ] {
        let map = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain([("REDIS_NAMESPACE".to_string(), "ha".to_string())])
            .collect();
        let config = Config::from_map(&map, Purpose::Cli).unwrap();
        let store = RedisStore::connect(config.backends.redis.as_ref().unwrap())
            .await
            .unwrap_or_else(|e| panic!("{env:?}: {e}"));
        assert!(store
            .take_lease("poller", "via-sentinel", 60_000)
            .await
            .unwrap());
        assert_eq!(
            master.cmd(&["HGET", "ha:lease:poller", "holder"]).await,
            redis::Value::BulkString(b"via-sentinel".to_vec()),
            "{env:?}: the lease was written on the master the Sentinel named"
        );
        store.release_lease("poller", "via-sentinel").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_created_through_one_node_is_joined_through_another() {
    let r = Redis::start();
    let fake = common::Fake::start(&["s0", "s1"]);
    let a = start_lb(with_backends(Some(&r), None));
    // Redis with the recordings index and the outbox in SQLite: processes of one host
    // sharing its file.
    let mut b_env = with_backends(Some(&r), None);
    b_env.push((
        "DATABASE_URL".into(),
        a.dir.path().join("ferrolite.db").display().to_string(),
    ));
    let b = start_lb(b_env);
    // Servers added and polled through node A's CLI are node B's servers too.
    let ids = a.add_fake_servers(&fake);
    assert!(b.cli_ok(&["servers"]).contains(&ids[0]));
    let (_, body) = a.get("create", "meetingID=shared&name=Shared").await;
    assert!(body.contains("<returncode>SUCCESS</returncode>"), "{body}");
    let holder = fake.holder("shared").await.unwrap();
    // A create of the same room through B lands on the same server.
    let (_, again) = b.get("create", "meetingID=shared&name=Shared").await;
    assert!(
        again.contains("<returncode>SUCCESS</returncode>"),
        "{again}"
    );
    assert_eq!(fake.calls_to(1 - holder, "create").await.len(), 0);
    let r2 = b
        .http
        .get(b.api_url("join", "meetingID=shared&fullName=Ann&role=MODERATOR"))
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status().as_u16(), 302);
    let location = r2.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/join?", fake.servers[holder].url)),
        "{location}"
    );
    let (_, info) = b.get("isMeetingRunning", "meetingID=shared").await;
    assert!(info.contains("<returncode>SUCCESS</returncode>"), "{info}");
    // Ended through B: gone for A as well.
    let (_, end) = b.get("end", "meetingID=shared").await;
    assert!(end.contains("<returncode>SUCCESS</returncode>"), "{end}");
    assert!(!a.cli_ok(&["meetings", "list"]).contains("shared"));
}

/// Whether the server sees the connection named `app` (`application_name`) over TLS.
async fn uses_tls(pg: &Postgres, app: &str) -> Option<bool> {
    let (client, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let row = client
        .query_opt(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = $1 LIMIT 1",
            &[&app],
        )
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    row.map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_checks_the_server_as_the_url_asks() {
    let pg = Postgres::start_tls();
    pg.batch("CREATE DATABASE tls").await;
    let ca = pg.tls_ca.clone().unwrap().display().to_string();
    let other_ca_dir = tempfile::tempdir().unwrap();
    common::postgres::make_test_certificates(other_ca_dir.path(), "some-other-ca");
    let other_ca = other_ca_dir.path().join("ca.crt").display().to_string();
    let url = |host: &str, app: &str, params: &str| {
        format!(
            "postgres://postgres@{host}:{}/tls?hostaddr=127.0.0.1&application_name={app}&{params}",
            pg.port
        )
    };
    // Accepted: the connection is then encrypted (the pool keeps it open to look at).
    for (app, u) in [
        (
            "full-ip",
            url(
                "127.0.0.1",
                "full-ip",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
        ),
        (
            "full-name",
            url(
                "localhost",
                "full-name",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
        ),
        (
            "ca-only",
            url(
                "db.example",
                "ca-only",
                &format!("sslmode=verify-ca&sslrootcert={ca}"),
            ),
        ),
        ("require", url("db.example", "require", "sslmode=require")),
        ("prefer", url("127.0.0.1", "prefer", "")),
    ] {
        let store = PostgresStore::connect(&u, 1)
            .await
            .unwrap_or_else(|e| panic!("{app}: {e}"));
        assert_eq!(uses_tls(&pg, app).await, Some(true), "{app}: TLS in use");
        drop(store);
    }
    let store = PostgresStore::connect(&url("127.0.0.1", "plain", "sslmode=disable"), 1)
        .await
        .unwrap();
    assert_eq!(uses_tls(&pg, "plain").await, Some(false), "sslmode=disable");
    drop(store);

    // Refused, through the CLI as an operator sees it: one line that says why.
    let dir = tempfile::tempdir().unwrap();
    for (case, u, says) in [
        (
            "another CA",
            url(
                "127.0.0.1",
                "x",
                &format!("sslmode=verify-full&sslrootcert={other_ca}"),
            ),
            "not signed by a CA DATABASE_URL trusts",
        ),
        (
            "another host name",
            url(
                "db.example",
                "x",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "is not for the host DATABASE_URL names",
        ),
        (
            "a private CA not named",
            url("localhost", "x", "sslmode=verify-full"),
            "not signed by a CA DATABASE_URL trusts",
        ),
        (
            "another CA, even for require",
            url(
                "localhost",
                "x",
                &format!("sslmode=require&sslrootcert={other_ca}"),
            ),
            "not signed by a CA DATABASE_URL trusts",
        ),
        (
            "no such CA file",
            url(
                "localhost",
                "x",
                "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            ),
            "cannot read the CA certificates of sslrootcert=/nonexistent/ca.pem",
        ),
        (
            "an unknown sslmode",
            url("localhost", "x", "sslmode=verify-everything"),
            "sslmode=verify-everything is not one of",
        ),
    ] {
        let mut env = Lb::base_env(&dir);
        env.retain(|(k, _)| k != "DATABASE_URL");
        env.push(("DATABASE_URL".into(), u));
        let out = common::cli_with(&env, dir.path(), &["db", "migrate"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{case}: {stderr}");
        assert!(stderr.contains(says), "{case}: {stderr}");
        eprintln!("{case}: {}", stderr.trim());
    }
}
