//! A real nginx (Debian's) in front of a real `ferrolite serve` on its Unix socket: a temp
//! prefix, the configuration rendered by `ferrolite nginx-config`, a loopback port, and a
//! non-daemon child killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
             include /etc/nginx/mime.types;\n  include {p}/ferrolite.conf;\n}}\n"
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
