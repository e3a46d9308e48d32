//! The autoscaling signal on fake-bbb: a class-start wave asks for more servers at once
//! and names the spares to add back; a quiet evening, after the cool-down, drains the
//! emptiest servers through cordon (never ending a meeting) and tells the hook.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "autoscale-admin";

/// Every decision the hook received, in order (one JSON document per run).
fn hook_calls(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("the hook got JSON"))
        .collect()
}

fn state_of(lb: &Lb, id: &str) -> String {
    let out = lb.cli_ok(&["servers"]);
    let block = out.split("id: ").find(|b| b.starts_with(id)).unwrap();
    ["enabled", "cordoned", "disabled"]
        .into_iter()
        .find(|s| block.contains(&format!("\t{s}\n")))
        .unwrap()
        .to_string()
}

async fn capacity(lb: &Lb) -> Value {
    lb.http
        .get(format!("{}/ferrolite/api/capacity", lb.base))
        .basic_auth("ops", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_class_start_wave_and_a_quiet_evening() {
    let fake = Fake::start(&["s0", "s1", "s2", "s3"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let hook = dir.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >> '{}'\necho >> '{}'\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut env = Lb::base_env(&dir);
    for (k, v) in [
        ("POLL_INTERVAL", "1"),
        ("ADMIN_PASSWORD", PASSWORD),
        ("AUTOSCALE_TARGET_LOAD", "20"),
        ("AUTOSCALE_MIN_SERVERS", "2"),
        ("AUTOSCALE_MAX_SERVERS", "4"),
        ("AUTOSCALE_HYSTERESIS", "0.2"),
        ("AUTOSCALE_COOLDOWN", "3"),
        ("LOAD_MIN_USER_COUNT", "0"),
        ("LOAD_JOIN_BUFFER_TIME", "0"),
    ] {
        env.retain(|(ek, _)| ek != k);
        env.push((k.into(), v.into()));
    }
    env.push(("AUTOSCALE_HOOK".into(), hook.display().to_string()));
    let lb = Lb::start_in(dir, env);
    let ids = lb.add_fake_servers(&fake);
    lb.cli_ok(&["servers", "disable", &ids[2]]);
    lb.cli_ok(&["servers", "disable", &ids[3]]);

    // Steady: two serving servers, the minimum; nothing to do, the hook is not called.
    assert!(
        eventually(Duration::from_secs(10), || async {
            capacity(&lb).await["desired"] == 2
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(hook_calls(&log).is_empty(), "no change, no hook");

    // 08:00, classes start: 80 participants on two servers, 40 each (target 20).
    fake.set_meeting(0, "maths", json!({"participants": 40, "create_time_ms": 1}))
        .await;
    fake.set_meeting(
        1,
        "physics",
        json!({"participants": 40, "create_time_ms": 1}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            !hook_calls(&log).is_empty()
        })
        .await,
        "the hook is called when the desired count changes"
    );
    let out = &hook_calls(&log)[0];
    assert_eq!(out["direction"], "out", "{out}");
    assert_eq!(
        out["desired"], 4,
        "ceil(80 / 20), within AUTOSCALE_MAX_SERVERS: {out}"
    );
    assert_eq!(out["serving"], 2);
    let mut spares: Vec<&str> = out["add_back"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    spares.sort();
    let mut want = vec![ids[2].as_str(), ids[3].as_str()];
    want.sort();
    assert_eq!(spares, want, "the disabled spares are named: {out}");
    assert!(out["drain"].as_array().unwrap().is_empty());
    // The operator's hook would start them; here the test enables them.
    lb.cli_ok(&["servers", "enable", &ids[2]]);
    lb.cli_ok(&["servers", "enable", &ids[3]]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook_calls(&log).len(), 1, "one change, one hook run");

    // 19:00, a quiet evening: one small meeting left, on server 0.
    fake.end_meeting(1, "physics").await;
    fake.set_meeting(0, "maths", json!({"participants": 5, "create_time_ms": 1}))
        .await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            hook_calls(&log).len() >= 2
        })
        .await,
        "the hook is told about the scale-in"
    );
    let calls = hook_calls(&log);
    let quiet = &calls[1];
    assert_eq!(quiet["direction"], "in", "{quiet}");
    assert_eq!(quiet["desired"], 2, "AUTOSCALE_MIN_SERVERS: {quiet}");
    let drained: Vec<String> = quiet["drain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(drained.len(), 2, "{quiet}");
    assert!(
        !drained.contains(&ids[0]),
        "the server with a running class is not drained: {quiet}"
    );
    for id in &drained {
        assert!(
            eventually(Duration::from_secs(10), || async {
                state_of(&lb, id) != "enabled"
            })
            .await,
            "{id} is cordoned before the hook may remove it"
        );
    }
    assert_eq!(state_of(&lb, &ids[0]), "enabled");
    // Scale-in never ends a running class.
    assert!(fake
        .meetings(0)
        .await
        .iter()
        .any(|m| m["meeting_id"] == "maths"));
    for i in 0..4 {
        assert!(
            fake.calls_to(i, "end").await.is_empty(),
            "no end sent to {i}"
        );
    }
    // Empty cordoned servers become disabled: the next decisions list them as removable.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let c = capacity(&lb).await;
            c["removable"].as_array().is_some_and(|r| r.len() == 2)
        })
        .await,
        "{}",
        capacity(&lb).await
    );
    let metrics = lb.raw_get(&format!("{}/metrics", lb.base)).await.1;
    assert!(
        metrics.contains("ferrolite_autoscale_desired_servers 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferrolite_autoscale_hook_runs_total{outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ferrolite_role_holder{role=\"autoscaler\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn capacity_needs_the_password_and_the_target() {
    let lb = Lb::start(&[("ADMIN_PASSWORD", PASSWORD)]);
    let r = lb
        .http
        .get(format!("{}/ferrolite/api/capacity", lb.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = lb
        .http
        .get(format!("{}/ferrolite/api/capacity", lb.base))
        .basic_auth("ops", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("AUTOSCALE_TARGET_LOAD"));
    // A bad setting is a clear start-up error.
    let dir = tempfile::tempdir().unwrap();
    let mut env = Lb::base_env(&dir);
    env.push(("AUTOSCALE_TARGET_LOAD".into(), "-3".into()));
    let out = cli_with(&env, dir.path(), &["status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTOSCALE_TARGET_LOAD"));
}
