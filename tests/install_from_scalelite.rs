//! `scripts/install.sh --from-scalelite` in a temporary root: it stops before installing
//! anything when Scalelite's settings are missing (never inventing a new secret), reads
//! /etc/default/scalelite as systemd does (spaces and `$` kept, nothing run), maps the docker
//! layout's SCALELITE_RECORDING_DIR, and names the Scalelite settings it leaves out.

use std::path::Path;
use std::process::{Command, Output};

fn install(root: &Path) -> Output {
    Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"))
        .arg("--root")
        .arg(root)
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_ferrolite"),
            "--from-scalelite",
            "--no-nginx",
        ])
        .output()
        .expect("bash runs")
}

fn parse(file: &Path) -> String {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/envfile.sh"))
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_missing_scalelite_env_file_stops_the_install_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = install(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("etc/default/scalelite is missing") && err.contains("LOADBALANCER_SECRET"),
        "{err}"
    );
    assert!(!dir.path().join("etc/default/ferrolite").exists());
    assert!(!dir.path().join("usr/local/bin/ferrolite").exists());
}

#[test]
fn scalelite_settings_are_carried_as_systemd_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    std::fs::create_dir_all(dir.path().join("etc/default")).unwrap();
    std::fs::write(
        dir.path().join("etc/default/scalelite"),
        format!(
            "URL_HOST=sl.example.org\nLOADBALANCER_SECRET=kept-secret\n\
             DEFAULT_CREATE_PARAMS=\"welcome=Hello $USER and friends\"\n\
             RAILS_ENV=production\nREDIS_URL=redis://redis:6379\nDATABASE_URL=postgres://x@db/sl\n\
             SCALELITE_RECORDING_DIR=/mnt/scalelite-recordings/var/bigbluebutton\n\
             NOT_RUN=$(touch {})\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = install(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists(), "the settings file was executed");
    assert!(
        stdout.contains(
            "does not use (left out): RAILS_ENV REDIS_URL DATABASE_URL SCALELITE_RECORDING_DIR"
        ),
        "{stdout}"
    );
    let env = parse(&dir.path().join("etc/default/ferrolite"));
    assert!(env.contains("LOADBALANCER_SECRET\tkept-secret\n"), "{env}");
    assert!(
        env.contains("DEFAULT_CREATE_PARAMS\twelcome=Hello $USER and friends\n"),
        "{env}"
    );
    assert!(
        env.contains(
            "RECORDING_PUBLISH_DIR\t/mnt/scalelite-recordings/var/bigbluebutton/published\n"
        ),
        "{env}"
    );
    assert!(
        env.contains(
            "RECORDING_UNPUBLISH_DIR\t/mnt/scalelite-recordings/var/bigbluebutton/unpublished\n"
        ),
        "{env}"
    );
    assert!(
        env.contains("RECORDING_SPOOL_DIR\t/mnt/scalelite-recordings/var/bigbluebutton/spool\n"),
        "{env}"
    );
    assert!(
        !env.contains("REDIS_URL") && !env.contains("RAILS_ENV"),
        "{env}"
    );
    assert!(
        env.contains("DATABASE_URL\t/var/lib/ferrolite/ferrolite.db\n"),
        "{env}"
    );
}
