//! A private, real `redis-server` (Debian's) for tests: a free loopback port, a temp
//! directory, no persistence; killed when dropped. Also a replica of one ([`Redis::replica_of`])
//! and a `redis-sentinel` watching a master ([`Sentinel`]), for the failover tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Child,
    pub port: u16,
    /// `redis://127.0.0.1:<port>/`.
    pub url: String,
    _dir: tempfile::TempDir,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn redis_binary() -> String {
    for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("redis-server is not installed: run scripts/install-test-deps.sh");
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// A replica of `master` (Sentinel may promote it), once its first sync is done.
    pub fn replica_of(master: &Redis) -> Redis {
        let port = master.port.to_string();
        let r = Redis::start_with(&["--replicaof", "127.0.0.1", &port]);
        let client = redis::Client::open(r.url.as_str()).unwrap();
        let mut con = client.get_connection().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut con)
                .unwrap_or_default();
            if info.contains("master_link_status:up") {
                return r;
            }
            assert!(Instant::now() < deadline, "the replica did not sync");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_with(extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(redis_binary())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            // A replica syncs at once (not after the default 5 s wait for more replicas).
            .args(["--repl-diskless-sync-delay", "0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis {
            child,
            port,
            url: format!("redis://127.0.0.1:{port}/"),
            _dir: dir,
        }
    }

    /// Runs one command through `redis-cli`-free RESP: the arguments are sent as they are.
    pub async fn cmd(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query_async(&mut con).await.expect("redis command")
    }
}

impl Redis {
    /// `kill -9`: the server vanishes without a word to its clients or replicas.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether this server answers `ROLE` as a master.
    pub async fn is_master(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return false;
        };
        let Ok(mut con) = client.get_multiplexed_async_connection().await else {
            return false;
        };
        let role: redis::RedisResult<redis::Value> = redis::cmd("ROLE").query_async(&mut con).await;
        matches!(role, Ok(redis::Value::Array(v)) if v.first() == Some(&redis::Value::BulkString(b"master".to_vec())))
    }
}

/// A private `redis-sentinel` watching `master` as `mymaster` (quorum 1, down after 1 s);
/// killed when dropped.
pub struct Sentinel {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    pub fn start(master: &Redis) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n",
                dir.path().display(),
                master.port
            ),
        )
        .unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-sentinel starts (scripts/install-test-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-sentinel did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Sentinel {
            child,
            port,
            _dir: dir,
        }
    }

    /// `redis+sentinel://127.0.0.1:<port>/mymaster`.
    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/mymaster", self.port)
    }

    /// Waits until the Sentinel knows `n` replicas of the master (it learns them from the
    /// master's INFO every few seconds), so a failover has somewhere to go.
    pub async fn wait_for_replicas(&self, n: usize) {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut con) = client.get_multiplexed_async_connection().await {
                let r: redis::RedisResult<Vec<redis::Value>> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg("mymaster")
                    .query_async(&mut con)
                    .await;
                if r.is_ok_and(|v| v.len() >= n) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the Sentinel found no replica");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
