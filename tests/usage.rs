//! Usage accounting through the real binary: meetings on fake-bbb seen across polls become
//! per-tenant and pool days (`ferrolite usage`, JSON, CSV, `/ferrolite/api/usage`), and
//! imported recordings are counted on the day they were made.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const BASE: &str = "lb.test";
const PASSWORD: &str = "usage-admin";

fn id_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("the command prints the id")
        .to_string()
}

fn usage_json(lb: &Lb, args: &[&str]) -> Value {
    let mut all = vec!["usage", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&lb.cli_ok(&all)).expect("usage --json prints JSON")
}

fn row<'a>(v: &'a Value, tenant: &str) -> &'a Value {
    v["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["tenant"] == tenant)
        .unwrap_or_else(|| panic!("no row for {tenant}: {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

#[tokio::test]
async fn meetings_seen_across_polls_become_usage_per_tenant_and_pool() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = recording_env(&dir);
    env.push(("MULTITENANCY_ENABLED".into(), "true".into()));
    env.push(("BASE_URL".into(), BASE.into()));
    env.push(("ADMIN_PASSWORD".into(), PASSWORD.into()));
    let lb = Lb::start_in(dir, env);
    let fake = Fake::start(&["server-secret-0"]);
    lb.add_fake_servers(&fake);
    let alpha = id_of(&lb.cli_ok(&["tenants", "add", "alpha", "alpha-secret"]));
    let beta = id_of(&lb.cli_ok(&["tenants", "add", "beta", "beta-secret"]));
    for (host, secret, room) in [
        ("alpha", "alpha-secret", "room1"),
        ("alpha", "alpha-secret", "room2"),
        ("beta", "beta-secret", "room1"),
    ] {
        let (_, body, _) = lb
            .get_as(
                &format!("{host}.{BASE}"),
                secret,
                "create",
                &format!("meetingID={room}&name=x"),
            )
            .await;
        assert!(body.contains("SUCCESS"), "{body}");
    }
    let set = |tenant: &str, room: &str, n: u32| {
        let id = format!("{room}~{tenant}");
        let fake = &fake;
        async move {
            fake.set_meeting(0, &id, json!({ "participants": n })).await;
        }
    };
    set(&alpha, "room1", 10).await;
    set(&alpha, "room2", 3).await;
    set(&beta, "room1", 5).await;
    // Three polls a little apart; alpha's room2 ends after the second, room1 grows at the third.
    lb.cli_ok(&["poll"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    lb.cli_ok(&["poll"]);
    fake.end_meeting(0, &format!("room2~{alpha}")).await;
    set(&alpha, "room1", 12).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    lb.cli_ok(&["poll"]);

    let v = usage_json(&lb, &[]);
    let a = row(&v, "alpha");
    let b = row(&v, "beta");
    assert_eq!(a["meetings"], 2, "{v}");
    assert_eq!(b["meetings"], 1, "{v}");
    assert_eq!(a["peak_participants"], 12, "{v}");
    assert_eq!(b["peak_participants"], 5);
    let b_min = b["meeting_minutes"].as_f64().unwrap();
    assert!(
        b_min > 2.0 / 60.0 && b_min < 1.0,
        "about two seconds: {b_min}"
    );
    assert!(
        close(b["participant_minutes"].as_f64().unwrap(), 5.0 * b_min),
        "five participants all along: {v}"
    );
    // alpha: room1 ran as long as beta's room (same polls), room2 only the first interval.
    let a_min = a["meeting_minutes"].as_f64().unwrap();
    assert!(a_min > b_min && a_min < 2.0 * b_min, "{v}");
    assert!(
        a["participant_minutes"].as_f64().unwrap() > 10.0 * b_min,
        "{v}"
    );
    let pool = &v["pool"][0];
    assert_eq!(pool["meetings"], 3);
    assert!(close(
        pool["participant_minutes"].as_f64().unwrap(),
        a["participant_minutes"].as_f64().unwrap() + b["participant_minutes"].as_f64().unwrap()
    ));

    // One tenant, by name; CSV; the admin API gives the same report.
    let only = usage_json(&lb, &["--tenant", "beta"]);
    assert_eq!(only["days"].as_array().unwrap().len(), 1);
    assert_eq!(only["tenant"], "beta");
    assert_eq!(only["pool"][0]["meetings"], 1);
    let csv = lb.cli_ok(&["usage", "--csv", "--tenant", "alpha"]);
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("scope,day,tenant_id,tenant,meetings,"));
    let first = lines.next().unwrap();
    assert!(
        first.starts_with("tenant,") && first.contains(",\"alpha\",2,"),
        "{csv}"
    );
    let api: Value = lb
        .http
        .get(format!("{}/ferrolite/api/usage?tenant=beta", lb.base))
        .basic_auth("ops", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["days"], only["days"]);
    let human = lb.cli_ok(&["usage"]);
    assert!(
        human.contains("alpha") && human.contains("(all)"),
        "{human}"
    );

    // Mistakes are clear messages, never a panic.
    for (args, says) in [
        (
            vec!["usage", "--tenant", "nosuch"],
            "no tenant named 'nosuch'",
        ),
        (vec!["usage", "--from", "yesterday"], "YYYY-MM-DD"),
        (
            vec!["usage", "--from", "2026-02-01", "--to", "2026-01-01"],
            "is after",
        ),
    ] {
        let out = lb.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let r = lb
        .http
        .get(format!("{}/ferrolite/api/usage?from=bad", lb.base))
        .basic_auth("ops", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A recording made on 2024-05-11 is counted on that day.
    lb.cli_ok(&[
        "recordings",
        "import",
        fixtures()
            .join("recordings/presentation.tar")
            .to_str()
            .unwrap(),
    ]);
    let day = usage_json(&lb, &["--from", "2000-01-01", "--to", "2100-01-01"]);
    let with_recordings: Vec<&Value> = day["pool"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["recordings"].as_u64().unwrap() > 0)
        .collect();
    assert_eq!(with_recordings.len(), 1, "{day}");
    assert_eq!(with_recordings[0]["recordings"], 1);
    assert_eq!(
        with_recordings[0]["recording_bytes"], 48213,
        "the playback format's size from metadata.xml"
    );
    assert!(with_recordings[0]["day"].as_str().unwrap() < "2026-01-01");
}
