//! A private, real `redis-server` (Debian's) for tests: a free loopback port, a temp
//! directory, no persistence; killed when dropped.

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
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(redis_binary())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
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

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
