//! A private, real PostgreSQL (Debian's) for tests: `initdb` into a temp directory and
//! `postgres` on a free loopback port, run as the `postgres` system user when the tests run
//! as root (PostgreSQL refuses to run as root); stopped when dropped. [`Postgres::start_tls`]
//! turns TLS on with a certificate from a throw-away CA made by `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Child,
    pub port: u16,
    /// With [`Postgres::start_tls`]: the PEM file of the CA that signed the server's
    /// certificate (for `localhost` and `127.0.0.1`).
    pub tls_ca: Option<PathBuf>,
    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication on loopback).
    pub url: String,
    _dir: tempfile::TempDir,
}

fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("PostgreSQL's {name} is not installed: run scripts/install-test-deps.sh")
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the `postgres` user when we are root (through `setpriv`, which keeps the
/// environment and needs no PAM), as ourselves otherwise.
fn as_pg_user(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throw-away CA (`ca.crt`) and a certificate it signed for `localhost` and `127.0.0.1`
/// (`server.crt`, `server.key`), in `dir`.
pub fn make_test_certificates(dir: &Path, ca_name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.crt",
    ];
    ca.extend(ec);
    let subject = format!("/CN={ca_name}");
    ca.extend([
        "-subj",
        &subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec![
        "req",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ];
    csr.extend(ec);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ],
    );
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// With `ssl=on`, its certificate signed by a CA of its own ([`Postgres::tls_ca`]);
    /// clients may still connect without TLS.
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(tls: bool) -> Postgres {
        let dir = tempfile::Builder::new().prefix("pg").tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let tls_ca = tls.then(|| {
            make_test_certificates(dir.path(), "ferrolite-test-ca");
            // PostgreSQL refuses a key others may read.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.path().join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            dir.path().join("ca.crt")
        });
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "cannot chown the PostgreSQL temp dir to the postgres user"
            );
        }
        let out = as_pg_user(&pg_bin("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .current_dir(dir.path())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::redis::free_port();
        let child = spawn(dir.path(), port, tls);
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Postgres {
            child,
            port,
            tls_ca,
            url,
            _dir: dir,
        }
    }

    /// Stops the server (a fast shutdown: every client connection is cut) and starts it
    /// again on the same port and data; returns once it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(self._dir.path(), self.port, self.tls_ca.is_some());
    }

    fn stop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        super::unsafe_kill(self.child.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A database of its own on this server (`CREATE DATABASE`); returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        self.batch(&format!("CREATE DATABASE {name}")).await;
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL statements on the `postgres` database.
    pub async fn batch(&self, sql: &str) {
        batch(&self.url, sql).await
    }
}

/// Runs SQL statements on the database at `url`.
pub async fn batch(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect("SQL runs");
    drop(client);
    let _ = task.await;
}

/// Starts `postgres` on the data under `dir` and waits until it is ready (the caller
/// keeps the child and waits for it in [`Postgres::stop`]).
#[allow(clippy::zombie_processes)]
fn spawn(dir: &Path, port: u16, tls: bool) -> Child {
    let child = as_pg_user(&pg_bin("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "fsync=off", "-c", "logging_collector=off"])
        .args(if tls {
            vec![
                "-c".to_string(),
                "ssl=on".into(),
                "-c".into(),
                format!("ssl_cert_file={}", dir.join("server.crt").display()),
                "-c".into(),
                format!("ssl_key_file={}", dir.join("server.key").display()),
            ]
        } else {
            vec![]
        })
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postgres starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(pg_bin("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            return child;
        }
        assert!(Instant::now() < deadline, "postgres did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
