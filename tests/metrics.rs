//! `/metrics` on its own listener (`METRICS_BIND`) and the operations series: importer
//! backlog and set-aside tarballs, lease holders, the callback outbox, build info, server
//! series labelled with the host; HELP text on every family.

mod common;

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_metrics_listener_serves_operations_series() {
    let fake = Fake::start(&["s0"]);
    let dir = tempfile::tempdir().unwrap();
    let mut env = recording_env(&dir);
    let spool = dir.path().join("spool");
    // Two tarballs waiting (no importer runs here), one set aside with its reason.
    env.push(("IMPORTER_ENABLED".into(), "false".into()));
    std::fs::write(spool.join("r-1.tar"), vec![0u8; 1000]).unwrap();
    std::fs::write(spool.join("r-2.tar.gz"), vec![0u8; 24]).unwrap();
    std::fs::create_dir_all(spool.join("failed")).unwrap();
    std::fs::write(spool.join("failed/r-0.tar"), b"x").unwrap();
    std::fs::write(spool.join("failed/r-0.tar.reason"), "no metadata.xml\n").unwrap();
    let port = free_port();
    env.push(("METRICS_BIND".into(), format!("127.0.0.1:{port}")));
    env.push(("BUILD_NUMBER".into(), "b42".into()));
    let lb = Lb::start_in(dir, env);
    let ids = lb.add_fake_servers(&fake);
    let host = url::Url::parse(&fake.servers[0].url)
        .unwrap()
        .host_str()
        .unwrap()
        .to_string();
    let base = format!("http://127.0.0.1:{port}");
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let ready = eventually(std::time::Duration::from_secs(10), || {
        let (http, url, t) = (lb.http.clone(), format!("{base}/metrics"), text.clone());
        async move {
            match http.get(url).send().await {
                Ok(r) if r.status() == 200 => {
                    let body = r.text().await.unwrap();
                    let ok = body.contains("role=\"poller\"");
                    *t.lock().unwrap() = body;
                    ok
                }
                _ => false,
            }
        }
    })
    .await;
    let text = text.lock().unwrap().clone();
    assert!(
        ready,
        "the listener answers with the poller's lease: {text}"
    );
    for line in [
        "ferrolite_import_backlog 2".to_string(),
        "ferrolite_import_backlog_bytes 1024".to_string(),
        "ferrolite_import_set_aside 1".to_string(),
        "ferrolite_callback_outbox{outcome=\"pending\"} 0".to_string(),
        format!(
            "ferrolite_server_online{{server=\"{}\",host=\"{host}\"}} 1",
            ids[0]
        ),
        format!(
            "ferrolite_server_state{{server=\"{}\",host=\"{host}\",state=\"enabled\"}} 1",
            ids[0]
        ),
        format!(
            "ferrolite_build_info{{version=\"{}\",build=\"b42\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(text.contains(&line), "missing {line} in:\n{text}");
    }
    // Every family says what it is.
    for name in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
    {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {name} "))),
            "{name} has no HELP"
        );
    }
    // promtool, when installed, agrees.
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        let plain: String = text
            .lines()
            .filter(|l| *l != "# EOF")
            .map(|l| format!("{l}\n"))
            .collect();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(plain.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Only /metrics is served there; the main listener still has it too.
    let (status, _) = lb.raw_get(&format!("{base}/bigbluebutton/api")).await;
    assert_eq!(status, 404);
    let (status, main) = lb.raw_get(&format!("{}/metrics", lb.base)).await;
    assert_eq!(status, 200);
    assert!(main.contains("ferrolite_import_backlog 2"));
}

#[test]
fn a_bad_metrics_bind_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Lb::base_env(&dir);
    env.push(("METRICS_BIND".into(), "everywhere".into()));
    let out = cli_with(&env, dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("METRICS_BIND"));
}

#[tokio::test]
async fn a_tarball_that_cannot_be_set_aside_is_logged_with_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = recording_env(&dir);
    env.retain(|(k, _)| k != "LOG_LEVEL");
    env.push(("LOG_LEVEL".into(), "warn".into()));
    let spool = dir.path().join("spool");
    // `failed` is a file, so nothing can be moved into `failed/` (root ignores modes).
    std::fs::write(spool.join("failed"), b"not a folder").unwrap();
    std::fs::copy(
        fixtures().join("recordings/hostile-no-metadata.tar"),
        spool.join("r-9.tar"),
    )
    .unwrap();
    let lb = Lb::start_in(dir, env);
    let folder = spool.join("failed").display().to_string();
    assert!(
        eventually(std::time::Duration::from_secs(15), || async {
            let logs = lb.logs();
            logs.contains("cannot set the recording tarball aside") && logs.contains(&folder)
        })
        .await,
        "{}",
        lb.logs()
    );
    assert!(spool.join("r-9.tar").exists(), "nothing is lost");
    let metrics = lb.raw_get(&format!("{}/metrics", lb.base)).await.1;
    assert!(metrics.contains("ferrolite_import_backlog 1"), "{metrics}");
    assert!(
        metrics.contains("ferrolite_imports_total{outcome=\"refused\"}"),
        "{metrics}"
    );
}
