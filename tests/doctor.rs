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
