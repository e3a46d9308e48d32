//! A real nginx (Debian's) in front of a real `ferrolite serve` on its Unix socket: a temp
//! prefix, the configuration rendered by `ferrolite nginx-config`, a loopback port, and a
//! non-daemon child killed when dropped. [`Stack`] is the whole thing with the fixture
//! recordings imported; [`Recorder`] optionally sits between nginx and the worker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{sign, xml_field, Lb, LB_SECRET};

pub struct Nginx {
    child: Child,
    pub port: u16,
    pub base: String,
    pub prefix: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn nginx_binary() -> String {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("nginx is not installed: run scripts/install-test-deps.sh (Debian's nginx-light)");
}

impl Nginx {
    /// Renders the config with `env` (the worker's environment plus NGINX_* settings) and
    /// starts nginx in `prefix`.
    pub fn start(prefix: &Path, env: &[(String, String)]) -> Nginx {
        Nginx::start_after(prefix, env, |_| String::new())
    }

    /// As [`Nginx::start`], with `before(port)` placed in `http {}` before the site (another
    /// site on the same port, as Debian's default one).
    pub fn start_after(
        prefix: &Path,
        env: &[(String, String)],
        before: impl Fn(u16) -> String,
    ) -> Nginx {
        let port = free_port();
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        std::fs::create_dir_all(prefix.join("tmp")).unwrap();
        let mut env = env.to_vec();
        env.retain(|(k, _)| k != "NGINX_LISTEN");
        env.push(("NGINX_LISTEN".into(), format!("127.0.0.1:{port}")));
        let out = super::cli_with(&env, prefix, &["nginx-config"]);
        assert!(
            out.status.success(),
            "nginx-config failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(prefix.join("ferrolite.conf"), &out.stdout).unwrap();
        let p = prefix.display();
        // As root, nginx's workers would run as `nobody` and could not read the tests'
        // private temp dirs; as another user the directive is ignored.
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let user = if is_root { "user root;\n" } else { "" };
        let main = format!(
            "{user}worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\ndaemon off;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n\
             fastcgi_temp_path {p}/tmp/fcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n\
             include /etc/nginx/mime.types;\n  {}\n  include {p}/ferrolite.conf;\n}}\n",
            before(port)
        );
        std::fs::write(prefix.join("nginx.conf"), main).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {port}: {}",
                std::fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            prefix: prefix.to_path_buf(),
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM first so nginx removes its pid file, then make sure.
        super::unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const PRES: &str = "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123";
pub const VIDEO: &str = "b1826d06111b3cdca1715fdd8108ecd05603d701-1715348128456";
pub const PODCAST: &str = "c2937e17222c4dedb2826aee9219fde16714e812-1715434528789";
pub const KEY: &str = "test-secret-key-base";

/// A worker on a Unix socket with protected recordings on, and nginx in front.
pub struct Stack {
    pub lb: Lb,
    pub nginx: Nginx,
    pub root: PathBuf,
    /// What nginx sent to the worker, per connection, when started with a recorder.
    pub upstream: Option<Recorder>,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_with(&[])
    }

    pub fn start_with(extra: &[(&str, &str)]) -> Stack {
        Stack::start_opts(extra, false)
    }

    /// With `record`, nginx talks to the worker through a [`Recorder`] that keeps every
    /// byte nginx sends upstream.
    pub fn start_opts(extra: &[(&str, &str)], record: bool) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut env = Lb::base_env(&dir);
        env.retain(|(k, _)| k != "PORT");
        env.push((
            "BIND".into(),
            format!("unix:{}", root.join("ferrolite.sock").display()),
        ));
        for (k, d) in [
            ("RECORDING_SPOOL_DIR", "spool"),
            ("RECORDING_WORK_DIR", "work"),
            ("RECORDING_PUBLISH_DIR", "published"),
            ("RECORDING_UNPUBLISH_DIR", "unpublished"),
            ("PLAYBACK_LINK_DIR", "links"),
            ("PLAYBACK_PLAYER_ROOT", "player"),
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
            env.push((k.into(), root.join(d).display().to_string()));
        }
        env.push(("PROTECTED_RECORDINGS_ENABLED".into(), "true".into()));
        env.push(("SECRET_KEY_BASE".into(), KEY.into()));
        env.push(("IMPORTER_ENABLED".into(), "false".into()));
        env.retain(|(k, _)| k != "LOG_LEVEL");
        env.push(("LOG_LEVEL".into(), "ferrolite=debug".into()));
        for (k, v) in extra {
            env.push((k.to_string(), v.to_string()));
        }
        // A stand-in for BBB's presentation player: loads one resource of the recording
        // named by its URL and reports the outcome in the title.
        let player = root.join("player/playback/presentation/2.3");
        std::fs::create_dir_all(&player).unwrap();
        std::fs::write(
            player.join("index.html"),
            "<!DOCTYPE html><html><head><title>player</title></head><body><script>\n\
             const rid = location.pathname.split('/').filter(Boolean).pop();\n\
             fetch('/presentation/' + rid + '/shapes.svg').then(r => r.text().then(t => {\n\
               document.title = 'status ' + r.status + ' bytes ' + t.length; }));\n\
             </script></body></html>",
        )
        .unwrap();
        // nginx's workers must reach the socket and the files.
        let _ = std::process::Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(&root)
            .status();
        let lb = Lb::start_in(dir, env);
        let _ = std::process::Command::new("chmod")
            .arg("a+rw")
            .arg(root.join("ferrolite.sock"))
            .status();
        let worker_sock = root.join("ferrolite.sock");
        let (nginx, upstream) = if record {
            let rec = Recorder::start(&root.join("recorder.sock"), &worker_sock);
            let mut env = lb.env.clone();
            env.push((
                "BIND".into(),
                format!("unix:{}", root.join("recorder.sock").display()),
            ));
            (Nginx::start(&root.join("nginx"), &env), Some(rec))
        } else {
            (Nginx::start(&root.join("nginx"), &lb.env), None)
        };
        let stack = Stack {
            lb,
            nginx,
            root,
            upstream,
        };
        for f in ["presentation.tar", "video.tar", "podcast.tar"] {
            stack.lb.cli_ok(&[
                "recordings",
                "import",
                &super::fixtures()
                    .join("recordings")
                    .join(f)
                    .display()
                    .to_string(),
            ]);
        }
        let _ = std::process::Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(&stack.root)
            .status();
        stack
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.nginx.base)
    }

    /// A signed API call through nginx.
    pub async fn api(&self, call: &str, query: &str) -> String {
        let url = format!(
            "{}/bigbluebutton/api/{call}?{}",
            self.nginx.base,
            sign(call, query, LB_SECRET, "sha1")
        );
        let (status, body) = self.lb.raw_get(&url).await;
        assert_eq!(status, 200, "{call}: {body}");
        body
    }

    /// getRecordings' playback URL of one recording's format.
    pub async fn link(&self, rid: &str) -> String {
        let body = self.api("getRecordings", &format!("recordID={rid}")).await;
        xml_field(&body, "url").unwrap_or_else(|| panic!("no url in {body}"))
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut r = self.lb.http.get(self.url(path));
        if let Some(c) = cookie {
            r = r.header("Cookie", c);
        }
        r.send().await.expect("nginx answers")
    }
}

/// A Unix-socket relay between nginx and the worker that records, per connection, every
/// byte nginx sends: the tests read it to prove no client byte ever split a request.
pub struct Recorder {
    pub streams: Shared<Vec<Shared<Vec<u8>>>>,
}

type Shared<T> = std::sync::Arc<std::sync::Mutex<T>>;

impl Recorder {
    pub fn start(listen: &Path, worker: &Path) -> Recorder {
        use std::os::unix::net::{UnixListener, UnixStream};
        let _ = std::fs::remove_file(listen);
        let l = UnixListener::bind(listen).expect("recorder binds");
        let _ = Command::new("chmod").arg("a+rw").arg(listen).status();
        let streams: Shared<Vec<_>> = Default::default();
        let all = streams.clone();
        let worker = worker.to_path_buf();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut from_nginx) = c else { break };
                let Ok(mut to_worker) = UnixStream::connect(&worker) else {
                    continue;
                };
                let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                all.lock().unwrap().push(log.clone());
                let mut back_nginx = from_nginx.try_clone().unwrap();
                let mut back_worker = to_worker.try_clone().unwrap();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut back_worker, &mut back_nginx);
                    let _ = back_nginx.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    loop {
                        use std::io::{Read, Write};
                        match from_nginx.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                log.lock().unwrap().extend_from_slice(&buf[..n]);
                                if to_worker.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = to_worker.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Recorder { streams }
    }

    /// Every connection's bytes so far.
    pub fn bytes(&self) -> Vec<Vec<u8>> {
        self.streams
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.lock().unwrap().clone())
            .collect()
    }
}
