//! The CLI uses the service's settings file (FERROLITE_ENV_FILE, else /etc/default/ferrolite)
//! and, run as root, refuses to create database files the service user could not write
//! unless --fix-ownership hands them back.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

fn cli(env_file: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FERROLITE_ENV_FILE", env_file)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn the_cli_writes_the_services_database_named_in_its_settings_file() {
    let svc = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let env = svc.path().join("ferrolite.env");
    let db = svc.path().join("service db.sqlite");
    std::fs::write(
        &env,
        format!("# the service's settings\nLOADBALANCER_SECRET=\"a $ecret with spaces\"\nDATABASE_URL='{}'\n", db.display()),
    )
    .unwrap();
    let out = cli(
        &env,
        cwd.path(),
        &[
            "servers",
            "add",
            "https://bbb1.example.org/bigbluebutton/api",
            "s",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists(), "the service's database was written");
    assert!(
        !cwd.path().join("ferrolite.db").exists(),
        "no stray ./ferrolite.db"
    );
    let list = cli(&env, cwd.path(), &["servers"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("bbb1.example.org"));
    // An unreadable settings file is named.
    let missing = cli(&svc.path().join("nope"), cwd.path(), &["servers"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the settings file"));
}

#[test]
fn as_root_files_the_service_user_could_not_write_are_refused_or_handed_back() {
    let svc = tempfile::tempdir().unwrap();
    let data = svc.path().join("lib");
    std::fs::create_dir(&data).unwrap();
    let env = svc.path().join("ferrolite.env");
    let db = data.join("ferrolite.db");
    std::fs::write(
        &env,
        format!("LOADBALANCER_SECRET=x\nDATABASE_URL={}\n", db.display()),
    )
    .unwrap();
    if !is_root() {
        // Not root: the CLI creates files as the user it runs as; nothing to refuse.
        let out = cli(&env, svc.path(), &["servers"]);
        assert!(out.status.success());
        return;
    }
    // The service user's directory (nobody stands in for `ferrolite`).
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    let out = cli(&env, svc.path(), &["servers"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--fix-ownership") && err.contains("uid 65534"),
        "{err}"
    );
    assert!(!db.exists(), "nothing was created");
    let out = cli(
        &env,
        svc.path(),
        &[
            "--fix-ownership",
            "servers",
            "add",
            "https://bbb1.example.org/bigbluebutton/api",
            "s",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in std::fs::read_dir(&data).unwrap().flatten() {
        assert_eq!(
            f.metadata().unwrap().uid(),
            65534,
            "{} is not the service user's",
            f.path().display()
        );
    }
    assert!(db.exists());
}
