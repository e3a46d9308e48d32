//! The BBB post_publish hook refuses at once, with one clear line and exit status 1 (no Ruby
//! backtrace, no retries holding up BBB's publish queue), whatever is wrong with its
//! configuration: missing, not YAML, no delivery chosen, the shipped example host, no secret.

use std::path::{Path, PathBuf};
use std::process::Command;

fn hooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bbb-hooks")
}

fn run_hook(config: &Path) -> (i32, String) {
    let out = Command::new("ruby")
        .arg(hooks().join("ferrolite_post_publish.rb"))
        .args([
            "-m",
            "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123",
            "-f",
            "presentation",
        ])
        .env("FERROLITE_HOOK_CONFIG", config)
        .output()
        .expect("ruby runs (scripts/install-test-deps.sh)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_broken_configuration_is_refused_at_once_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let published = dir
        .path()
        .join("published/presentation/a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123");
    std::fs::create_dir_all(&published).unwrap();
    let base = format!(
        "published_dir: {}\nrecording_dir: {}\nwork_dir: {}\n",
        dir.path().join("published").display(),
        dir.path().join("recording").display(),
        dir.path().join("work").display()
    );
    // The shipped example, unedited, with only the paths pointed at the temp dir.
    let shipped =
        std::fs::read_to_string(hooks().join("ferrolite.yml")).unwrap() + "\nsecret: s\n" + &base;
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "is missing or unreadable"),
        (
            "not yaml",
            Some("upload_url: [unclosed\n".into()),
            "is not valid YAML",
        ),
        ("a list", Some("- a\n- b\n".into()), "must be a mapping"),
        (
            "no delivery",
            Some(base.clone()),
            "set upload_url (HTTPS push) or spool_dir",
        ),
        (
            "shipped example",
            Some(shipped),
            "still names the example host",
        ),
        (
            "not a URL",
            Some(format!("{base}upload_url: lb.local/upload\nsecret: s\n")),
            "is not an http(s) URL",
        ),
        (
            "no secret",
            Some(format!("{base}upload_url: https://127.0.0.1:9/upload\n")),
            "no secret",
        ),
    ];
    for (what, text, expect) in cases {
        let path = dir.path().join(format!("{}.yml", what.replace(' ', "-")));
        if let Some(t) = &text {
            std::fs::write(&path, t).unwrap();
        }
        let (code, err) = run_hook(&path);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(expect), "{what}: {err}");
        assert!(
            !err.contains(".rb:") && !err.contains("(RuntimeError)"),
            "{what}: a backtrace: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
    }
    assert!(!dir.path().join("work").exists(), "nothing was packed");
}

#[test]
fn the_batch_import_stops_clearly_without_its_hook() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(hooks().join("ferrolite_batch_import.sh"))
        .env("RECORDING_DIR", dir.path())
        .env("HOOK", dir.path().join("nope.rb"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no hook at"));
}
