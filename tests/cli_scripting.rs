//! The CLI as scripts use it: `--json` on every listing (parsed here, field by field), exit
//! codes, and the fixes for what operators tripped over (duplicate URLs, removing a busy
//! server, the yaml → sync round trip, `status` ids, `meetings end` with nothing running).

mod common;

use common::*;
use serde_json::{json, Value};

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the CLI, expects success, parses stdout as JSON.
fn cli_json(lb: &Lb, args: &[&str]) -> Value {
    let out = lb.cli_ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn every_listing_prints_json_with_stable_fields() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[("MULTITENANCY_ENABLED", "true"), ("BASE_URL", "lb.example")]);
    assert_eq!(cli_json(&lb, &["servers", "--json"]), json!([]));
    let ids = lb.add_fake_servers(&fake);
    lb.cli_ok(&["servers", "update", &ids[1], "--tag", "gpu"]);

    let servers = cli_json(&lb, &["servers", "--json"]);
    assert_eq!(servers, cli_json(&lb, &["servers", "list", "--json"]));
    let list = servers.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let s1 = list.iter().find(|s| s["id"] == ids[1].as_str()).unwrap();
    assert_eq!(
        keys(s1),
        sorted(&[
            "id",
            "url",
            "hostname",
            "state",
            "online",
            "load",
            "load_multiplier",
            "tag",
            "bbb_version"
        ])
    );
    assert_eq!(s1["url"], fake.servers[1].url.as_str());
    assert_eq!(
        (&s1["state"], &s1["online"], &s1["tag"], &s1["hostname"]),
        (
            &json!("enabled"),
            &json!(true),
            &json!("gpu"),
            &json!("127.0.0.1")
        )
    );
    assert_eq!(s1["load"], json!(0.0));
    let with_secret = cli_json(&lb, &["servers", "--json", "--show-secrets"]);
    assert!(with_secret
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["secret"] == "s1"));

    let poll = cli_json(&lb, &["poll", "--json"]);
    let p = poll.as_array().unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(
        keys(&p[0]),
        sorted(&["id", "online", "load", "error", "forgotten_meetings"])
    );
    assert!(p
        .iter()
        .all(|r| r["online"] == true && r["error"].is_null()));

    // A tenant and a meeting on its host.
    let t = lb.cli_ok(&["tenants", "add", "acme", "acme-secret"]);
    let tenant_id = t.lines().find_map(|l| l.strip_prefix("id: ")).unwrap();
    lb.cli_ok(&["tenants", "update", tenant_id, "--max-meetings", "5"]);
    let (_, body, _) = lb
        .get_as(
            "acme.lb.example",
            "acme-secret",
            "create",
            "meetingID=room1&name=x",
        )
        .await;
    assert_eq!(
        xml_field(&body, "returncode").as_deref(),
        Some("SUCCESS"),
        "{body}"
    );

    let tenants = cli_json(&lb, &["tenants", "--json"]);
    assert_eq!(tenants, cli_json(&lb, &["tenants", "list", "--json"]));
    assert_eq!(
        keys(&tenants[0]),
        sorted(&[
            "id",
            "name",
            "max_meetings",
            "max_participants",
            "lrs_endpoint",
            "lrs_auth"
        ])
    );
    assert_eq!(
        (
            &tenants[0]["name"],
            &tenants[0]["max_meetings"],
            &tenants[0]["max_participants"]
        ),
        (&json!("acme"), &json!(5), &Value::Null)
    );
    let secret_list = cli_json(&lb, &["tenants", "list", "--json", "--show-secrets"]);
    assert_eq!(secret_list[0]["secrets"], json!(["acme-secret"]));

    let meetings = cli_json(&lb, &["meetings", "list", "--json"]);
    assert_eq!(meetings, cli_json(&lb, &["meetings", "--json"]));
    let m = &meetings[0];
    assert_eq!(
        keys(m),
        sorted(&[
            "meeting_id",
            "tenant_id",
            "server_id",
            "server_url",
            "voice_bridge",
            "created_at",
            "bbb_id"
        ])
    );
    assert_eq!(m["meeting_id"], "room1");
    assert_eq!(m["tenant_id"], tenant_id);
    assert_eq!(
        m["bbb_id"],
        format!("room1~{}", m["tenant_id"].as_str().unwrap())
    );
    let holder = ids
        .iter()
        .position(|i| m["server_id"] == i.as_str())
        .unwrap();
    assert_eq!(m["server_url"], fake.servers[holder].url.as_str());
    assert!(m["created_at"].as_i64().unwrap() > 1_600_000_000_000);

    // `status --json` carries the same data as the table, with the id.
    let status = cli_json(&lb, &["status", "--json"]);
    let rows = status.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        keys(&rows[0]),
        sorted(&[
            "id",
            "hostname",
            "state",
            "online",
            "meetings",
            "users",
            "largest_meeting",
            "videos",
            "load",
            "bbb_version",
            "tag"
        ])
    );
    let table = lb.cli_ok(&["status"]);
    for r in rows {
        let line = table
            .lines()
            .find(|l| l.ends_with(r["id"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(line.starts_with("127.0.0.1  enabled  online"), "{line}");
    }
}

#[tokio::test]
async fn recordings_list_prints_a_dated_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = recording_env(&dir);
    env.push(("IMPORTER_ENABLED".into(), "false".into()));
    let lb = Lb::start_in(dir, env);
    assert_eq!(cli_json(&lb, &["recordings", "list", "--json"]), json!([]));
    let fixture = fixtures().join("recordings/video.tar");
    lb.cli_ok(&["recordings", "import", fixture.to_str().unwrap()]);
    let list = cli_json(&lb, &["recordings", "list", "--json"]);
    let r = &list[0];
    assert_eq!(
        keys(r),
        sorted(&[
            "record_id",
            "meeting_id",
            "name",
            "state",
            "published",
            "start_time",
            "end_time",
            "participants",
            "formats",
            "protected",
            "metadata"
        ])
    );
    assert_eq!(r["formats"], json!(["video"]));
    assert_eq!(r["published"], true);
    let start = r["start_time"].as_i64().unwrap();
    let table = lb.cli_ok(&["recordings", "list"]);
    let mut lines = table.lines();
    assert!(
        lines.next().unwrap().starts_with("RECORD ID  ") && table.contains("STARTED"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with(r["record_id"].as_str().unwrap()), "{row}");
    assert!(
        !row.split_whitespace().any(|c| c == start.to_string()),
        "a date, not milliseconds: {row}"
    );
    // The fixture's start time (2024-05-10 UTC) as a date.
    assert!(row.contains(" 2024-05-") && row.contains(" UTC"), "{row}");
}

#[tokio::test]
async fn poll_exits_3_when_a_polled_server_is_offline_unless_told_not_to() {
    let fake = Fake::start(&["s0", "s1"]);
    let lb = Lb::start(&[("SERVER_UNHEALTHY_THRESHOLD", "2")]);
    let ids = lb.add_fake_servers(&fake);
    assert_eq!(code(&lb.cli(&["poll"])), Some(0), "all online");
    fake.mode(1, json!({"mode": "error", "status": 500})).await;
    let o = lb.cli(&["poll"]);
    assert_eq!(code(&o), Some(3), "a failed poll needs a look");
    assert!(
        text(&o.stderr).contains("failures=1"),
        "the warning counts this failure: {}",
        text(&o.stderr)
    );
    let o = lb.cli(&["poll", "--json"]);
    assert_eq!(code(&o), Some(3));
    assert!(
        text(&o.stderr).contains("failures=2"),
        "{}",
        text(&o.stderr)
    );
    let reports: Value = serde_json::from_slice(&o.stdout).unwrap();
    let bad = reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == ids[1].as_str())
        .unwrap();
    assert_eq!(bad["online"], false, "two failures take it offline");
    assert!(bad["error"].as_str().unwrap().contains("500"), "{bad}");
    let o = lb.cli(&["poll", "--allow-offline"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("{}: offline", ids[1])));
    // Disabled servers are not polled, so they do not count.
    lb.cli_ok(&["servers", "disable", &ids[1]]);
    assert_eq!(code(&lb.cli(&["poll"])), Some(0));
}

#[tokio::test]
async fn the_same_url_cannot_be_added_twice_in_any_spelling() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    let url = fake.servers[0].url.clone();
    lb.cli_ok(&["servers", "add", &url, "s0"]);
    let upper = url.replace("http://", "HTTP://");
    for spelling in [
        url.clone(),
        format!("{url}/"),
        format!("{url}//"),
        format!("  {url} "),
        upper,
    ] {
        let o = lb.cli(&["servers", "add", &spelling, "s0"]);
        assert_eq!(code(&o), Some(1), "{spelling}");
        assert!(
            text(&o.stderr).contains("already has the URL"),
            "{spelling}: {}",
            text(&o.stderr)
        );
    }
    assert_eq!(
        cli_json(&lb, &["servers", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The stored URL is the normal form: no trailing slash.
    let other = url.replace("/bigbluebutton/api", "/other/api/");
    lb.cli_ok(&["servers", "add", &other, "s0"]);
    let list = cli_json(&lb, &["servers", "--json"]);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["url"] == other.trim_end_matches('/')));
    // A sync file naming one URL twice is refused whole.
    let file = lb.dir.path().join("dup.yml");
    std::fs::write(
        &file,
        format!(
            "servers:\n  a:\n    secret: s\n    url: {url}\n  b:\n    secret: s\n    url: {url}/\n"
        ),
    )
    .unwrap();
    let o = lb.cli(&["servers", "sync", file.to_str().unwrap()]);
    assert_eq!(code(&o), Some(1));
    assert!(text(&o.stderr).contains("same URL"), "{}", text(&o.stderr));
}

#[tokio::test]
async fn remove_refuses_a_server_with_meetings_unless_forced() {
    let fake = Fake::start(&["s0"]);
    let lb = Lb::start(&[]);
    let ids = lb.add_fake_servers(&fake);
    lb.get("create", "meetingID=busy&name=x").await;
    let o = lb.cli(&["servers", "remove", &ids[0]]);
    assert_eq!(code(&o), Some(1));
    assert!(
        text(&o.stderr).contains("still holds 1 meeting(s)") && text(&o.stderr).contains("--force"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        cli_json(&lb, &["meetings", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(fake.meetings(0).await.len(), 1, "nothing ended");
    let out = lb.cli_ok(&["servers", "remove", &ids[0], "--force"]);
    assert!(
        out.contains("Clearing Meeting id=busy") && out.ends_with("OK\n"),
        "{out}"
    );
    assert!(
        fake.meetings(0).await.is_empty(),
        "--force ends them on BBB"
    );
    assert_eq!(cli_json(&lb, &["servers", "--json"]), json!([]));
    assert_eq!(cli_json(&lb, &["meetings", "--json"]), json!([]));
}

#[tokio::test]
async fn yaml_then_sync_gives_back_the_same_pool() {
    let fake = Fake::start(&["s0", "s1", "s2"]);
    let lb = Lb::start(&[]);
    let ids = lb.add_fake_servers(&fake);
    lb.cli_ok(&["servers", "disable", &ids[0]]);
    lb.cli_ok(&["servers", "cordon", &ids[1]]);
    let before: Vec<(String, String)> = states(&lb);
    let yaml = lb.cli_ok(&["servers", "yaml"]);
    let file = lb.dir.path().join("pool.yml");
    std::fs::write(&file, &yaml).unwrap();
    let out = lb.cli_ok(&["servers", "sync", file.to_str().unwrap()]);
    assert!(out.contains("nothing to change"), "{out}\n{yaml}");
    assert_eq!(states(&lb), before);
    // Into an empty pool too.
    let fresh = Lb::start(&[]);
    let o = fresh.cli(&["servers", "sync", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("syncing: 1/3 (33%)"),
        "progress lines off a terminal: {}",
        text(&o.stderr)
    );
    assert_eq!(states(&fresh), before, "{yaml}");
}

fn states(lb: &Lb) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = cli_json(lb, &["servers", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn meetings_end_with_nothing_running_says_so_and_succeeds() {
    let lb = Lb::start(&[]);
    let o = lb.cli(&["meetings", "end"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("No meetings are running"),
        "{}",
        text(&o.stdout)
    );
    assert!(!text(&o.stderr).contains("all 0"), "no question asked");
}
