//! The Debian package: built with `cargo deb` from the test build's binary, installed with
//! `dpkg -i` into this machine, upgraded (settings kept), and purged (nothing left behind).
//! Needs root, dpkg and cargo-deb (scripts/install-test-deps.sh installs it). No systemd
//! runs here, so the maintainer scripts must cope without it, as in a container.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `owner:group mode` of a path.
fn stat(path: &str) -> String {
    ok("stat", &["-c", "%U:%G %a", path]).trim().to_string()
}

fn installed() -> bool {
    run("dpkg-query", &["-W", "-f=${Status}", "ferrolite"])
        .stdout
        .starts_with(b"install ok installed")
}

/// Builds the package from the binary this test run built, as version `version`.
fn build(out: &Path, version: &str) -> PathBuf {
    let deb = out.join(format!("ferrolite_{version}.deb"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ferrolite"));
    assert!(bin.is_file());
    let o = Command::new("cargo")
        .args([
            "deb",
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "--deb-version",
            version,
            "-o",
        ])
        .arg(&deb)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        o.status.success(),
        "cargo deb failed (is cargo-deb installed? scripts/install-test-deps.sh): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    deb
}

/// Purges the package if the test stops half-way.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "ferrolite"]);
    }
}

const STATE_DIRS: [&str; 8] = [
    "/var/lib/ferrolite",
    "/var/lib/ferrolite/playback-links",
    "/var/bigbluebutton",
    "/var/bigbluebutton/spool",
    "/var/bigbluebutton/published",
    "/var/bigbluebutton/unpublished",
    "/var/bigbluebutton/recording",
    "/var/bigbluebutton/recording/scalelite",
];

#[test]
fn the_package_installs_upgrades_keeping_settings_and_purges_clean() {
    assert_eq!(
        ok("id", &["-u"]).trim(),
        "0",
        "dpkg -i needs root (the test suite runs as root)"
    );
    assert!(
        !installed(),
        "a ferrolite package is installed on this machine already; not touching it"
    );
    assert!(
        run("getent", &["passwd", "ferrolite"]).stdout.is_empty(),
        "a ferrolite user exists already (scripts/install.sh?); this test needs a machine without it"
    );
    let tmp = tempfile::tempdir().unwrap();
    let deb1 = build(tmp.path(), "0.1.0-1");
    let contents = ok("dpkg-deb", &["-c", deb1.to_str().unwrap()]);
    assert!(
        !contents.contains("fake-bbb"),
        "only the product binary ships: {contents}"
    );
    // What existed before (other runs may have made some of these): left alone.
    let before: Vec<(&str, Option<String>)> = STATE_DIRS
        .iter()
        .map(|d| (*d, Path::new(d).is_dir().then(|| stat(d))))
        .collect();
    let nginx_sites = Path::new("/etc/nginx/sites-available").is_dir();

    let _purge = Purge;
    let out = ok("dpkg", &["-i", deb1.to_str().unwrap()]);
    assert!(out.contains("Ferrolite is installed. Next:"), "{out}");
    assert!(installed());

    // Files, owners, modes.
    assert_eq!(stat("/usr/bin/ferrolite"), "root:root 755");
    assert!(ok("/usr/bin/ferrolite", &["--version"]).starts_with("ferrolite 0.1.0"));
    assert_eq!(stat("/usr/sbin/ferrolite-render-nginx"), "root:root 755");
    assert_eq!(stat("/usr/lib/ferrolite/envfile.sh"), "root:root 644");
    for unit in ["ferrolite.service", "ferrolite-nginx.service"] {
        let path = format!("/lib/systemd/system/{unit}");
        assert_eq!(stat(&path), "root:root 644");
        assert!(
            Path::new("/etc/systemd/system/multi-user.target.wants")
                .join(unit)
                .exists(),
            "{unit} is enabled for the next boot"
        );
    }
    let unit = std::fs::read_to_string("/lib/systemd/system/ferrolite.service").unwrap();
    assert!(
        unit.contains("ExecStart=ferrolite serve")
            && unit.contains("EnvironmentFile=-/etc/ferrolite/secret.env")
            && unit.contains("User=ferrolite"),
        "{unit}"
    );
    assert_eq!(stat("/etc/default/ferrolite"), "root:ferrolite 640");
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", "ferrolite"]);
    assert!(conffiles.contains("/etc/default/ferrolite"), "{conffiles}");
    assert_eq!(stat("/etc/ferrolite"), "root:ferrolite 750");
    assert_eq!(stat("/etc/ferrolite/secret.env"), "root:ferrolite 640");
    let secret_env = std::fs::read_to_string("/etc/ferrolite/secret.env").unwrap();
    let secret = secret_env
        .lines()
        .find_map(|l| l.strip_prefix("LOADBALANCER_SECRET="))
        .expect("a generated secret")
        .to_string();
    assert!(
        secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()),
        "{secret}"
    );
    let user = ok("getent", &["passwd", "ferrolite"]);
    let fields: Vec<&str> = user.trim().split(':').collect();
    assert_eq!(
        (fields[5], fields[6]),
        ("/var/lib/ferrolite", "/usr/sbin/nologin"),
        "{user}"
    );
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "a system user: {user}"
    );
    for (dir, was) in &before {
        match was {
            None => assert_eq!(stat(dir), "ferrolite:ferrolite 755", "{dir} is made"),
            Some(was) => assert_eq!(&stat(dir), was, "{dir} existed: left as it was"),
        }
    }
    if nginx_sites {
        let site = std::fs::read_to_string("/etc/nginx/sites-available/ferrolite")
            .expect("the nginx site is rendered");
        assert!(
            site.contains("unix:/run/ferrolite/ferrolite.sock"),
            "it proxies to the service's socket: {site}"
        );
        assert!(
            !Path::new("/etc/nginx/sites-enabled/ferrolite").exists(),
            "not enabled behind the operator's back"
        );
    }

    // An upgrade keeps the operator's settings and the generated secret, and applies them.
    let mut settings = std::fs::read_to_string("/etc/default/ferrolite").unwrap();
    settings.push_str("URL_HOST=deb-test.example\n");
    std::fs::write("/etc/default/ferrolite", &settings).unwrap();
    let deb2 = build(tmp.path(), "0.1.0-2");
    let out = ok(
        "dpkg",
        &[
            "--force-confdef",
            "--force-confold",
            "-i",
            deb2.to_str().unwrap(),
        ],
    );
    assert!(!out.contains("Ferrolite is installed. Next:"), "{out}");
    assert_eq!(
        ok("dpkg-query", &["-W", "-f=${Version}", "ferrolite"]),
        "0.1.0-2"
    );
    assert_eq!(
        std::fs::read_to_string("/etc/default/ferrolite").unwrap(),
        settings
    );
    assert_eq!(stat("/etc/default/ferrolite"), "root:ferrolite 640");
    assert_eq!(
        std::fs::read_to_string("/etc/ferrolite/secret.env").unwrap(),
        secret_env
    );
    if nginx_sites {
        let site = std::fs::read_to_string("/etc/nginx/sites-available/ferrolite").unwrap();
        assert!(site.contains("deb-test.example"), "re-rendered: {site}");
    }

    // Purge leaves the machine as it was.
    ok("dpkg", &["--purge", "ferrolite"]);
    assert!(!installed());
    for gone in [
        "/usr/bin/ferrolite",
        "/usr/sbin/ferrolite-render-nginx",
        "/usr/lib/ferrolite/envfile.sh",
        "/lib/systemd/system/ferrolite.service",
        "/etc/systemd/system/multi-user.target.wants/ferrolite.service",
        "/etc/default/ferrolite",
        "/etc/ferrolite",
        "/etc/nginx/sites-available/ferrolite",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is removed");
    }
    assert!(run("getent", &["passwd", "ferrolite"]).stdout.is_empty());
    assert!(run("getent", &["group", "ferrolite"]).stdout.is_empty());
    for (dir, was) in &before {
        match was {
            None => assert!(!Path::new(dir).exists(), "{dir} was made and is removed"),
            Some(was) => assert_eq!(&stat(dir), was, "{dir} existed and stays"),
        }
    }
}
