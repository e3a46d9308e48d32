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
    let main = root.join("nginx-test.conf");
    std::fs::write(
        &main,
        format!(
            "pid {0}/nginx.pid;\nerror_log {0}/error.log;\nevents {{}}\nhttp {{ include /etc/nginx/mime.types; include {0}/etc/nginx/sites-available/ferrolite; }}\n",
            root.display()
        ),
    )
    .unwrap();
    let t = Command::new(common::nginx::nginx_binary())
        .args([
            "-t",
            "-p",
            root.to_str().unwrap(),
            "-c",
            main.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );
}
