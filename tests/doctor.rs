//! `ferrolite doctor` against a real host setup: a working and a mis-keyed BBB server,
//! recording directories present and missing; each line ok/warn/fail with what to do.

mod common;

use common::{recording_env, Fake, Lb};

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_what_works_and_what_to_fix() {
    let fake = Fake::start(&["good-secret", "real-secret"]);
    let dir = tempfile::tempdir().unwrap();
    let env = recording_env(&dir);
    std::fs::create_dir_all(dir.path().join("published")).unwrap();
    let lb = Lb::start_in(dir, env);
    let good = lb.cli_ok(&["servers", "add", &fake.servers[0].url, "good-secret"]);
    let bad = lb.cli_ok(&["servers", "add", &fake.servers[1].url, "stale-secret"]);
    let id = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("id: "))
            .unwrap()
            .to_string()
    };
    let (good, bad) = (id(&good), id(&bad));

    let out = lb.cli(&["doctor"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed check fails the command"
    );
    let report = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        report
            .lines()
            .find(|l| l.contains(prefix))
            .unwrap_or_else(|| panic!("no line with {prefix:?} in:\n{report}"))
            .to_string()
    };
    assert!(line("database").starts_with("ok "), "{report}");
    assert!(
        line(&format!("server {good}")).starts_with("ok "),
        "{report}"
    );
    let b = line(&format!("server {bad}"));
    assert!(
        b.starts_with("fail") && b.contains("refuses the secret"),
        "{report}"
    );
    assert!(line("RECORDING_PUBLISH_DIR").starts_with("ok "), "{report}");
    let u = line("RECORDING_UNPUBLISH_DIR");
    assert!(u.starts_with("fail") && u.contains("missing"), "{report}");
    assert!(
        line(&format!("clock of {good}")).starts_with("ok "),
        "{report}"
    );
    assert!(
        line("presentation player").starts_with("warn") && report.contains("bbb-playback"),
        "{report}"
    );
    for l in report.lines() {
        assert!(
            l.starts_with("ok ") || l.starts_with("warn ") || l.starts_with("fail "),
            "every line is a check: {l}"
        );
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The database and recording dirs are judged for the service user, not for whoever runs
/// doctor (root writes anywhere): a directory the service user cannot write fails, with
/// the path, its owner and what to do; handed to that user, it passes.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_writes_as_the_service_user() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let env = recording_env(&dir);
    for d in ["published", "unpublished", "work"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let lb = Lb::start_in(dir, env);
    lb.cli_ok(&["servers"]);
    let line = |report: &str, prefix: &str| {
        report
            .lines()
            .find(|l| l.contains(prefix))
            .unwrap_or_else(|| panic!("no line with {prefix:?} in:\n{report}"))
            .to_string()
    };
    let doctor = |extra: &[&str], user: &str| {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["doctor", "--service-user", user]);
        String::from_utf8_lossy(&lb.cli(&args).stdout).into_owned()
    };
    if !is_root() {
        // Not root: the service user stands for ourselves, who made every file.
        let me = std::fs::metadata(&root).map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}", m.uid(), m.gid())
        });
        let report = doctor(&[], &me.unwrap());
        assert!(line(&report, "for ").starts_with("ok "), "{report}");
        return;
    }
    let svc = "54321:54321";
    // Everything belongs to root (who runs the tests): the service user may write nothing.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = doctor(&[], svc);
    assert!(
        line(&report, "service user").starts_with("ok ") && report.contains("uid 54321"),
        "{report}"
    );
    let db = line(&report, &format!("for {svc}"));
    assert!(
        db.starts_with("fail")
            && db.contains(&format!("{} (owned by 0:0) lacks write", root.display()))
            && db.contains("--fix-ownership"),
        "{report}"
    );
    let p = line(&report, "RECORDING_PUBLISH_DIR");
    assert!(
        p.starts_with("fail") && p.contains("owned by 0:0"),
        "{report}"
    );
    // A database line ok as root (it takes a write) is no proof for the service.
    assert!(
        line(&report, "takes a write").starts_with("ok "),
        "{report}"
    );

    // Handed to the service user, everything passes.
    for d in ["", "published", "unpublished", "work", "spool"] {
        chown(root.join(d), Some(54321), Some(54321)).unwrap();
    }
    for f in std::fs::read_dir(&root).unwrap() {
        chown(f.unwrap().path(), Some(54321), Some(54321)).unwrap();
    }
    let report = doctor(&["--fix-ownership"], svc);
    assert!(
        line(&report, &format!("for {svc}")).starts_with("ok "),
        "{report}"
    );
    for var in [
        "RECORDING_SPOOL_DIR",
        "RECORDING_WORK_DIR",
        "RECORDING_PUBLISH_DIR",
        "RECORDING_UNPUBLISH_DIR",
    ] {
        assert!(line(&report, var).starts_with("ok "), "{var}: {report}");
    }

    // The database file itself taken by root (a root CLI run without the guard): named.
    let file = root.join("ferrolite.db");
    chown(&file, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = doctor(&["--fix-ownership"], svc);
    let db = line(&report, &format!("for {svc}"));
    assert!(
        db.starts_with("fail") && db.contains(&format!("{} (owned by 0:0)", file.display())),
        "{report}"
    );
    // Group write is enough for a member of the files' group.
    for f in std::fs::read_dir(&root).unwrap() {
        let f = f.unwrap().path();
        if f.to_string_lossy().contains("ferrolite.db") {
            chown(&f, Some(0), Some(54321)).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        }
    }
    let report = doctor(&["--fix-ownership"], svc);
    assert!(
        line(&report, &format!("for {svc}")).starts_with("ok "),
        "{report}"
    );
}
