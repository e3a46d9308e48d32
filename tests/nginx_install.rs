//! `scripts/install.sh` in a temporary root: installs the binary, units, settings file and
//! the rendered nginx configuration (which real nginx accepts), keeps the settings on a
//! second run, and changes nothing with `--dry-run`.

mod common;

use std::path::Path;
use std::process::Command;

fn install(root: &Path, extra: &[&str]) -> std::process::Output {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"))
        .args([
            "--root",
            root.to_str().unwrap(),
            "--binary",
            env!("CARGO_BIN_EXE_ferrolite"),
            "--url-host",
            "lb.example.org",
        ])
        .args(extra)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "install.sh failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn install_script_is_safe_to_rerun_in_a_temp_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    install(&root.join("dry"), &["--dry-run"]);
    assert!(!root.join("dry").exists(), "--dry-run wrote files");

    install(root, &[]);
    for f in [
        "usr/local/bin/ferrolite",
        "usr/local/sbin/ferrolite-render-nginx",
        "usr/local/lib/ferrolite/envfile.sh",
        "etc/systemd/system/ferrolite.service",
        "etc/systemd/system/ferrolite-nginx.service",
        "var/lib/ferrolite/playback-links",
        "var/bigbluebutton/spool",
        "var/bigbluebutton/published",
        "var/bigbluebutton/unpublished",
    ] {
        assert!(root.join(f).exists(), "{f} missing");
    }
    let env_file = root.join("etc/default/ferrolite");
    let settings = std::fs::read_to_string(&env_file).unwrap();
    assert!(settings.contains("URL_HOST=lb.example.org"), "{settings}");
    let secret = settings
        .lines()
        .find(|l| l.starts_with("LOADBALANCER_SECRET="))
        .unwrap();
    assert!(secret.len() > "LOADBALANCER_SECRET=".len() + 32, "{secret}");
    let conf = std::fs::read_to_string(root.join("etc/nginx/sites-available/ferrolite")).unwrap();
    assert!(
        conf.contains("server_name lb.example.org;")
            && conf.contains("server unix:/run/ferrolite/ferrolite.sock;"),
        "{conf}"
    );

    // A second run keeps the settings (and their secret) and renders again.
    std::fs::write(&env_file, format!("{settings}NGINX_RECORDINGS_ONLY=true\n")).unwrap();
    install(root, &[]);
    let again = std::fs::read_to_string(&env_file).unwrap();
    assert_eq!(again, format!("{settings}NGINX_RECORDINGS_ONLY=true\n"));
    let conf = std::fs::read_to_string(root.join("etc/nginx/sites-available/ferrolite")).unwrap();
    assert!(conf.contains("(recordings-only)") && !conf.contains("location /bigbluebutton/"));

    // Real nginx accepts the rendered file.
    nginx_accepts(root, "ferrolite", conf.as_bytes());
}

/// `ferrolite-render-nginx` (installed, and from the source tree) reads the settings file
/// as systemd does: values with spaces, `$` and quotes reach the binary exactly as the
/// service gets them, and nothing in the file is run.
#[test]
fn render_nginx_reads_the_settings_file_as_systemd_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    install(&root, &[]);
    let env_file = dir.path().join("ferrolite.env");
    let ran = dir.path().join("ran");
    std::fs::write(
        &env_file,
        format!(
            "URL_HOST=lb.example.org\n\
             LOADBALANCER_SECRET=abc$notavar\n\
             DEFAULT_CREATE_PARAMS=welcome=Hello world\n\
             WELCOME=\"Say \\\"hi\\\" to $USER\"\n\
             LITERAL='$(touch {})'\n\
             BIND=unix:/run/ferrolite/other.sock\n",
            ran.display()
        ),
    )
    .unwrap();
    // The real binary, behind a wrapper that records the environment it was given.
    let spy = dir.path().join("spy.sh");
    std::fs::write(
        &spy,
        format!(
            "#!/bin/sh\nenv > \"$SPY_OUT\"\nexec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_ferrolite")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&spy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/render-nginx.sh");
    for script in [
        root.join("usr/local/sbin/ferrolite-render-nginx"),
        source_tree,
    ] {
        let out_file = dir.path().join("site.conf");
        let seen = dir.path().join("seen.env");
        let out = Command::new("bash")
            .arg(&script)
            .args(["--env", env_file.to_str().unwrap()])
            .args(["--out", out_file.to_str().unwrap(), "--no-reload"])
            .env("FERROLITE_BIN", &spy)
            .env("SPY_OUT", &seen)
            .env("FERROLITE_ENV_FILE", "")
            .env_remove("BIND")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let seen = std::fs::read_to_string(&seen).unwrap();
        let var = |k: &str| {
            seen.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
        };
        assert_eq!(var("LOADBALANCER_SECRET").as_deref(), Some("abc$notavar"));
        assert_eq!(
            var("DEFAULT_CREATE_PARAMS").as_deref(),
            Some("welcome=Hello world")
        );
        assert_eq!(var("WELCOME").as_deref(), Some("Say \"hi\" to $USER"));
        assert_eq!(var("LITERAL"), Some(format!("$(touch {})", ran.display())));
        assert!(!ran.exists(), "nothing in the settings file is run");
        let site = std::fs::read_to_string(&out_file).unwrap();
        assert!(
            site.contains("server_name lb.example.org;")
                && site.contains("server unix:/run/ferrolite/other.sock;"),
            "{site}"
        );
    }
}

/// `nginx -t` on `site` inside a minimal main configuration.
fn nginx_accepts(dir: &Path, name: &str, site: &[u8]) {
    let site_path = dir.join(format!("{name}.conf"));
    std::fs::write(&site_path, site).unwrap();
    let main = dir.join(format!("{name}-main.conf"));
    std::fs::write(
        &main,
        format!(
            "pid {0}/{name}.pid;\nerror_log {0}/{name}-error.log;\nevents {{}}\nhttp {{ include /etc/nginx/mime.types; include {1}; }}\n",
            dir.display(),
            site_path.display()
        ),
    )
    .unwrap();
    let t = Command::new(common::nginx::nginx_binary())
        .args([
            "-t",
            "-p",
            dir.to_str().unwrap(),
            "-c",
            main.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "nginx -t refused the {name} site: {}\n{}",
        String::from_utf8_lossy(&t.stderr),
        String::from_utf8_lossy(site)
    );
}

#[test]
fn every_variant_renders_and_passes_nginx_t() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A self-signed certificate for the TLS variant.
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        ])
        .arg("/CN=lb.example.org")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (scripts/install-test-deps.sh)");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let base = [
        ("URL_HOST", "lb.example.org"),
        ("BIND", "unix:/run/ferrolite/ferrolite.sock"),
        ("NGINX_SSL_CERT", cert.to_str().unwrap()),
        ("NGINX_SSL_KEY", key.to_str().unwrap()),
    ];
    let variants: [(&str, &[(&str, &str)]); 6] = [
        ("plain", &[]),
        ("ssl", &[("NGINX_SSL", "true")]),
        ("proxy", &[("NGINX_BEHIND_PROXY", "true")]),
        ("recordings-only", &[("NGINX_RECORDINGS_ONLY", "true")]),
        (
            "multitenant",
            &[
                ("MULTITENANCY_ENABLED", "true"),
                ("BASE_URL", "lb.example.org"),
            ],
        ),
        ("tcp-upstream", &[("BIND", "127.0.0.1:3000")]),
    ];
    for (name, extra) in variants {
        let env: Vec<(String, String)> = base
            .iter()
            .chain(extra.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let out = common::cli_with(&env, d, &["nginx-config"]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let site = String::from_utf8_lossy(&out.stdout);
        assert!(
            site.contains(&format!(
                "({})",
                if name == "multitenant" || name == "tcp-upstream" {
                    "plain"
                } else {
                    name
                }
            )),
            "{name}"
        );
        nginx_accepts(d, name, &out.stdout);
    }
    // The golden files themselves are valid nginx too (all but TLS, whose certificates
    // name the real host's paths).
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx/golden");
    for e in std::fs::read_dir(&golden).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "ssl.conf" {
            continue;
        }
        nginx_accepts(
            d,
            &format!("golden-{name}"),
            &std::fs::read(e.path()).unwrap(),
        );
    }
    // A value nginx would misread is refused with the variable's name.
    let out = common::cli_with(
        &[("URL_HOST".to_string(), "x; include /etc/shadow".to_string())],
        d,
        &["nginx-config"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("URL_HOST"));
}

#[test]
fn the_site_is_the_default_server_next_to_another_site() {
    // Another site on the same port declared first (as Debian's default site): requests for
    // any name (curl http://localhost/…) still reach Ferrolite's site.
    let dir = tempfile::tempdir().unwrap();
    let env = vec![("BIND".to_string(), "unix:/nonexistent.sock".to_string())];
    let n = common::nginx::Nginx::start_after(&dir.path().join("nginx"), &env, |port| {
        format!("server {{ listen 127.0.0.1:{port}; server_name other.example; return 418; }}")
    });
    for host in ["localhost", "127.0.0.1", "anything.example"] {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "%{http_code}", "-H"])
            .arg(format!("Host: {host}"))
            .arg(format!("{}/no-such-page", n.base))
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            body.ends_with("404") && body.contains("Recording not found"),
            "{host}: {body}"
        );
    }
}
