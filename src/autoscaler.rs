//! The `autoscaler` role of `serve`: every `POLL_INTERVAL` it asks the pure
//! [`crate::autoscale::decide`] for the pool's desired size. When the desired count changes
//! it cordons the servers to drain (they keep their meetings and the poller disables them
//! once empty: scale-in never ends a running class), then runs `AUTOSCALE_HOOK` with the
//! decision as JSON on stdin; the hook may remove only servers listed as `removable`
//! (disabled and empty).

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::autoscale::{decide, remember, Decision};
use crate::shutdown::Shutdown;
use crate::store::{now_ms, Server, ServerState};

/// The current decision without acting on it (`/ferrolite/api/capacity`, metrics);
/// `None` when `AUTOSCALE_TARGET_LOAD` is unset.
pub fn current(app: &App, servers: &[Server]) -> Option<Decision> {
    let cfg = &app.config.ops.autoscale;
    let target = cfg.target_load?;
    let history = app
        .autoscale
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Some(decide(cfg, target, servers, &history, now_ms()))
}

/// Runs the hook with `json` on stdin; kills it after `timeout`.
pub async fn run_hook(hook: &std::path::Path, json: &str, timeout: Duration) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(hook)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", hook.display()))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let body = json.to_string();
    let write = async move {
        let _ = stdin.write_all(body.as_bytes()).await;
        let _ = stdin.shutdown().await;
    };
    match tokio::time::timeout(timeout, async {
        write.await;
        child.wait_with_output().await
    })
    .await
    {
        Err(_) => Err(format!(
            "no exit within AUTOSCALE_HOOK_TIMEOUT ({}s); killed",
            timeout.as_secs_f64()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// One evaluation: decide, cordon what to drain, run the hook when the count changed.
pub async fn evaluate(app: &App) {
    let cfg = &app.config.ops.autoscale;
    let Some(target) = cfg.target_load else {
        return;
    };
    let servers = match app.store.servers().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "autoscaler cannot read the pool");
            return;
        }
    };
    let now = now_ms();
    let history = app
        .autoscale
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let d = decide(cfg, target, &servers, &history, now);
    let changed = d.desired != d.previous;
    *app.autoscale.lock().unwrap_or_else(|p| p.into_inner()) = remember(&history, &d, now);
    if !changed {
        return;
    }
    tracing::info!(desired = d.desired, serving = d.serving, direction = ?d.direction, reason = %d.reason, "autoscale: desired server count changed");
    for s in &d.drain {
        match crate::admin::servers::set_state(app, &s.id, ServerState::Cordoned).await {
            Ok(_) => tracing::info!(server = %s.id, host = %s.host, "autoscale: cordoned to drain"),
            Err(e) => tracing::warn!(server = %s.id, error = %e, "autoscale: could not cordon"),
        }
    }
    let Some(hook) = &cfg.hook else {
        return;
    };
    let json = serde_json::to_string(&d).unwrap_or_default();
    let outcome = run_hook(hook, &json, cfg.hook_timeout).await;
    app.metrics.autoscale_hook(outcome.is_ok());
    if let Err(e) = outcome {
        tracing::warn!(hook = %hook.display(), error = %e, "autoscale hook failed");
    }
}

/// The `autoscaler` role of `serve`, under its lease; idle unless `AUTOSCALE_TARGET_LOAD`.
pub async fn run(app: Arc<App>, mut shutdown: Shutdown) {
    if app.config.ops.autoscale.target_load.is_none() {
        return;
    }
    let interval = app.config.poll_interval.max(Duration::from_millis(200));
    let ttl = (interval * 3).max(Duration::from_secs(3));
    let mut lease = crate::lease::Lease::new(app.clone(), crate::store::LeaseRole::Autoscaler, ttl);
    loop {
        if lease.acquire().await {
            evaluate(&app).await;
        }
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    lease.release().await;
}
