//! `recordings import` as cron runs it: one run at a time (a lock; a second run exits 75 or
//! waits with --wait), `--quiet` prints only problems, the summary and the exit code say
//! what happened, and progress shows on stderr when the work is long.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const VIDEO: &str = "b1826d06111b3cdca1715fdd8108ecd05603d701-1715348128456";
const PODCAST: &str = "c2937e17222c4dedb2826aee9219fde16714e812-1715434528789";
const PRES: &str = "a0715c95000a2bcb90604ecc7097dbc94592c690-1715261728123";

fn start() -> Lb {
    let dir = tempfile::tempdir().unwrap();
    let mut env = recording_env(&dir);
    env.push(("IMPORTER_ENABLED".into(), "false".into()));
    Lb::start_in(dir, env)
}

/// A directory under the test's temp dir holding copies of the named fixtures.
fn batch(lb: &Lb, name: &str, fixtures_in: &[&str]) -> PathBuf {
    let dir = lb.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in fixtures_in {
        std::fs::copy(fixtures().join("recordings").join(f), dir.join(f)).unwrap();
    }
    dir
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn import(lb: &Lb, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["recordings", "import", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    lb.cli(&args)
}

fn spawn_import(lb: &Lb, dir: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferrolite"))
        .args(["recordings", "import", dir.to_str().unwrap()])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(lb.env.iter().map(|(k, v)| (k, v)))
        .current_dir(lb.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn recorded(lb: &Lb) -> Vec<String> {
    let list: Value = serde_json::from_str(&lb.cli_ok(&["recordings", "list", "--json"])).unwrap();
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn lock_file(lb: &Lb) -> PathBuf {
    lb.dir.path().join("ferrolite.db.import.lock")
}

#[test]
fn the_summary_progress_quiet_mode_and_exit_codes_tell_what_happened() {
    let lb = start();
    let good = batch(&lb, "good", &["video.tar", "podcast.tar"]);
    std::fs::write(good.join("README.txt"), "not a tarball").unwrap();
    let o = import(&lb, &good, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains(&format!("imported {VIDEO} (video)"))
            && out.contains(&format!("imported {PODCAST} (podcast, presentation)")),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("imported 2, skipped 1, set aside 0, failed 0 in "),
        "{out}"
    );
    assert!(
        text(&o.stderr).contains("importing: 1/2 (50%)"),
        "progress lines when stderr is not a terminal: {}",
        text(&o.stderr)
    );

    // Quiet and all well: not a byte (cron mails nothing).
    let o = import(&lb, &good, &["--quiet"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        (text(&o.stdout), text(&o.stderr)),
        (String::new(), String::new())
    );

    // Quiet with a bad tarball: only the problem and the summary, exit 3.
    let mixed = batch(&lb, "mixed", &["presentation.tar", "hostile-symlink.tar"]);
    let o = import(&lb, &mixed, &["-q"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "");
    let err = text(&o.stderr);
    assert!(
        err.contains("hostile-symlink.tar") && err.contains("outside"),
        "{err}"
    );
    assert!(
        err.contains("imported 1, skipped 0, set aside 0, failed 1"),
        "{err}"
    );
    assert!(!err.contains("imported a07"), "no success lines: {err}");
    assert_eq!(recorded(&lb), vec![PRES, VIDEO, PODCAST]);

    // The same as JSON for scripts.
    let o = import(&lb, &mixed, &["--json"]);
    assert_eq!(o.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            &doc["summary"]["imported"],
            &doc["summary"]["failed"],
            &doc["summary"]["skipped"],
            &doc["summary"]["set_aside"]
        ),
        (
            &Value::from(1),
            &Value::from(1),
            &Value::from(0),
            &Value::from(0)
        )
    );
    assert!(doc["summary"]["seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        doc["imported"],
        serde_json::json!([format!("imported {PRES} (presentation)")])
    );
    assert!(doc["problems"][0]
        .as_str()
        .unwrap()
        .contains("hostile-symlink.tar"));

    // Nothing importable: exit 1.
    let bad = batch(&lb, "bad", &["hostile-traversal.tar", "hostile-empty.tar"]);
    let o = import(&lb, &bad, &["--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("error: nothing could be imported"));
    let empty = lb.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_eq!(import(&lb, &empty, &[]).status.code(), Some(1));
}

#[test]
fn overlapping_runs_do_not_collide() {
    let lb = start();
    let dir = batch(
        &lb,
        "drop",
        &["video.tar", "podcast.tar", "presentation.tar"],
    );

    // Another run holds the lock: a second exits 75 at once, quietly with --quiet.
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_file(&lb))
        .unwrap();
    held.lock().unwrap();
    let o = import(&lb, &dir, &["--quiet"]);
    assert_eq!(o.status.code(), Some(75));
    assert_eq!(
        (text(&o.stdout), text(&o.stderr)),
        (String::new(), String::new())
    );
    let o = import(&lb, &dir, &[]);
    assert_eq!(o.status.code(), Some(75));
    assert!(
        text(&o.stderr).contains("another import is running"),
        "{}",
        text(&o.stderr)
    );
    assert!(recorded(&lb).is_empty(), "nothing imported meanwhile");

    // --wait waits for the holder, then runs.
    let mut waiting = spawn_import(&lb, &dir, &["--wait", "--quiet"]);
    std::thread::sleep(Duration::from_millis(800));
    assert!(waiting.try_wait().unwrap().is_none(), "still waiting");
    assert!(recorded(&lb).is_empty());
    held.unlock().unwrap();
    let o = waiting.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(recorded(&lb).len(), 3);

    // Two real runs at once: each either runs or steps aside, never both at once.
    for _ in 0..3 {
        let runs: Vec<Child> = (0..2).map(|_| spawn_import(&lb, &dir, &[])).collect();
        let codes: Vec<Option<i32>> = runs
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().status.code())
            .collect();
        assert!(
            codes.iter().all(|c| matches!(c, Some(0) | Some(75))) && codes.contains(&Some(0)),
            "{codes:?}"
        );
    }
    let runs: Vec<Child> = (0..2)
        .map(|_| spawn_import(&lb, &dir, &["--wait", "--quiet"]))
        .collect();
    for c in runs {
        let o = c.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert_eq!(text(&o.stdout), "");
    }
    assert_eq!(recorded(&lb), {
        let mut v = vec![PRES.to_string(), VIDEO.to_string(), PODCAST.to_string()];
        v.sort();
        v
    });
}
