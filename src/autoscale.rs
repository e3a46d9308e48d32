//! The autoscaling signal: how many BBB servers the pool should have, which spares to add
//! back and which servers to drain first.
//!
//! [`decide`] is pure: from the pool (each server's state, health, load and meetings), the
//! configuration and the [`History`] of earlier decisions it computes a [`Decision`].
//! - pressure = total load of the serving (enabled, online) servers ÷ (serving × target);
//! - the count moves only when the load per server at the current count leaves the band
//!   `target × (1 ± AUTOSCALE_HYSTERESIS)`, and then to `ceil(total ÷ target)`, clamped to
//!   `AUTOSCALE_MIN_SERVERS..=AUTOSCALE_MAX_SERVERS`;
//! - scaling out is immediate (a class-start wave needs room now); scaling in waits
//!   `AUTOSCALE_COOLDOWN` after the last change.
//!
//! [`run`] (the `autoscaler` role of `serve`) evaluates every `POLL_INTERVAL`. When the
//! desired count changes it cordons the servers to drain (they keep their meetings and the
//! poller disables them once empty: scale-in never ends a running class), then runs
//! `AUTOSCALE_HOOK` with the decision as JSON on stdin; the hook may remove only servers
//! listed as `removable` (disabled and empty).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::app::App;
use crate::config::AutoscaleConfig;
use crate::shutdown::Shutdown;
use crate::store::{now_ms, Server, ServerState};

/// What earlier evaluations decided, kept between them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The desired count last decided.
    pub desired: Option<u32>,
    /// Unix ms of the last change of the desired count.
    pub changed_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Out,
    In,
    Hold,
}

/// A server as the decision names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    pub id: String,
    pub host: String,
    pub state: String,
    pub online: bool,
    pub meetings: u32,
    pub load: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The servers the pool should be serving with.
    pub desired: u32,
    /// The desired count before this decision (the serving count at the first one).
    pub previous: u32,
    /// Enabled and online servers now.
    pub serving: u32,
    /// Total load of the serving servers.
    pub total_load: f64,
    /// Load per serving server ÷ target (1.0 = exactly at target).
    pub pressure: f64,
    pub target_load: f64,
    pub direction: Direction,
    /// Why the count is what it is, for people.
    pub reason: String,
    /// True while a scale-in waits for the cool-down.
    pub cooling_down: bool,
    /// Cordoned or disabled spares to bring back (online first), when more are wanted.
    pub add_back: Vec<Pick>,
    /// Serving servers to drain first (fewest meetings, then least loaded), when fewer are wanted.
    pub drain: Vec<Pick>,
    /// Disabled servers without meetings: safe to stop or delete.
    pub removable: Vec<Pick>,
}

fn pick(s: &Server) -> Pick {
    Pick {
        id: s.id.clone(),
        host: s.hostname(),
        state: s.state.to_string(),
        online: s.online,
        meetings: s.stats.meetings,
        load: s.load,
    }
}

/// The pure decision; `target` is `AUTOSCALE_TARGET_LOAD`.
pub fn decide(
    cfg: &AutoscaleConfig,
    target: f64,
    servers: &[Server],
    history: &History,
    now_ms: i64,
) -> Decision {
    let serving: Vec<&Server> = servers
        .iter()
        .filter(|s| s.state == ServerState::Enabled && s.online)
        .collect();
    let n = serving.len() as u32;
    let total: f64 = serving.iter().filter_map(|s| s.load).sum();
    let (lo, hi) = (cfg.min_servers, cfg.max_servers.max(cfg.min_servers));
    let needed = ((total / target).ceil() as u32).clamp(lo, hi);
    let current = history.desired.unwrap_or(n).clamp(lo, hi);
    let per_server = if current == 0 {
        if total > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    } else {
        total / f64::from(current)
    };
    let pressure = if n == 0 {
        if total > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    } else {
        total / (f64::from(n) * target)
    };
    let upper = target * (1.0 + cfg.hysteresis);
    let lower = target * (1.0 - cfg.hysteresis);
    let cooling = history
        .changed_at
        .is_some_and(|t| now_ms - t < cfg.cooldown.as_millis() as i64);
    let (desired, direction, reason, cooling_down) = if per_server > upper && needed > current {
        (
            needed,
            Direction::Out,
            format!("load per server {per_server:.1} at {current} server(s) is above {upper:.1}"),
            false,
        )
    } else if per_server < lower && needed < current {
        if cooling {
            (
                current,
                Direction::Hold,
                "scale-in waits for AUTOSCALE_COOLDOWN".to_string(),
                true,
            )
        } else {
            (
                needed,
                Direction::In,
                format!(
                    "load per server {per_server:.1} at {current} server(s) is below {lower:.1}"
                ),
                false,
            )
        }
    } else {
        (
            current,
            Direction::Hold,
            format!("load per server {per_server:.1} is within {lower:.1}..{upper:.1}"),
            false,
        )
    };
    let mut spares: Vec<&Server> = servers
        .iter()
        .filter(|s| s.state != ServerState::Enabled)
        .collect();
    spares.sort_by_key(|s| (!s.online, s.state != ServerState::Cordoned, s.id.clone()));
    let add_back = spares
        .iter()
        .take(desired.saturating_sub(n) as usize)
        .map(|s| pick(s))
        .collect();
    let mut drainable = serving.clone();
    drainable.sort_by(|a, b| {
        a.stats
            .meetings
            .cmp(&b.stats.meetings)
            .then(a.load.unwrap_or(0.0).total_cmp(&b.load.unwrap_or(0.0)))
            .then(a.id.cmp(&b.id))
    });
    let drain = drainable
        .iter()
        .take(n.saturating_sub(desired) as usize)
        .map(|s| pick(s))
        .collect();
    let removable = servers
        .iter()
        .filter(|s| s.state == ServerState::Disabled && s.stats.meetings == 0)
        .map(pick)
        .collect();
    Decision {
        desired,
        previous: current,
        serving: n,
        total_load: total,
        pressure,
        target_load: target,
        direction,
        reason,
        cooling_down,
        add_back,
        drain,
        removable,
    }
}

/// The history after acting on `d`.
pub fn remember(history: &History, d: &Decision, now_ms: i64) -> History {
    History {
        desired: Some(d.desired),
        changed_at: if d.desired != d.previous {
            Some(now_ms)
        } else {
            history.changed_at
        },
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AutoscaleConfig {
        AutoscaleConfig {
            target_load: Some(10.0),
            min_servers: 2,
            max_servers: 6,
            hysteresis: 0.2,
            cooldown: Duration::from_secs(600),
            hook: None,
            hook_timeout: Duration::from_secs(5),
        }
    }

    fn server(id: &str, state: ServerState, online: bool, load: f64, meetings: u32) -> Server {
        let mut s = Server::new(
            id.into(),
            format!("https://{id}.example/bigbluebutton/api"),
            "s".into(),
            1.0,
            None,
        );
        s.state = state;
        s.online = online;
        s.load = online.then_some(load);
        s.stats.meetings = meetings;
        s
    }

    fn pool(loads: &[(f64, u32)], spares: usize) -> Vec<Server> {
        let mut v: Vec<Server> = loads
            .iter()
            .enumerate()
            .map(|(i, (l, m))| server(&format!("bbb{i}"), ServerState::Enabled, true, *l, *m))
            .collect();
        for i in 0..spares {
            v.push(server(
                &format!("spare{i}"),
                ServerState::Disabled,
                true,
                0.0,
                0,
            ));
        }
        v
    }

    /// Replays pool states minute by minute through decide + remember.
    fn replay(states: &[Vec<Server>], step_ms: i64) -> Vec<Decision> {
        let mut h = History::default();
        states
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let now = i as i64 * step_ms;
                let d = decide(&cfg(), 10.0, p, &h, now);
                h = remember(&h, &d, now);
                d
            })
            .collect()
    }

    #[test]
    fn a_class_start_wave_scales_out_at_once_and_names_spares() {
        let ds = replay(
            &[
                pool(&[(8.0, 2), (9.0, 3)], 3),
                pool(&[(20.0, 6), (25.0, 7)], 3),
                pool(&[(30.0, 9), (31.0, 9)], 3),
            ],
            60_000,
        );
        assert_eq!(ds[0].desired, 2);
        assert_eq!(ds[0].direction, Direction::Hold);
        assert_eq!(ds[1].direction, Direction::Out);
        assert_eq!(ds[1].desired, 5, "ceil(45 / 10)");
        assert_eq!(ds[1].add_back.len(), 3);
        assert!(ds[1].drain.is_empty());
        assert_eq!(ds[2].desired, 6, "clamped to AUTOSCALE_MAX_SERVERS");
        assert!(ds[2].pressure > 3.0);
    }

    #[test]
    fn a_quiet_evening_scales_in_after_the_cooldown_draining_the_emptiest() {
        let busy = pool(&[(10.0, 3), (10.0, 3), (10.0, 3), (10.0, 3), (10.0, 3)], 0);
        let quiet = pool(&[(6.0, 2), (0.0, 0), (1.0, 1), (3.0, 1), (2.0, 1)], 0);
        let mut h = History::default();
        let d = decide(&cfg(), 10.0, &busy, &h, 0);
        h = remember(&h, &d, 0);
        assert_eq!(d.desired, 5);
        // A recent change (the wave) blocks scale-in.
        h.changed_at = Some(0);
        let d = decide(&cfg(), 10.0, &quiet, &h, 60_000);
        assert_eq!(
            (d.desired, d.direction, d.cooling_down),
            (5, Direction::Hold, true)
        );
        let d = decide(&cfg(), 10.0, &quiet, &h, 601_000);
        assert_eq!(d.direction, Direction::In);
        assert_eq!(
            d.desired, 2,
            "ceil(12 / 10), at least AUTOSCALE_MIN_SERVERS"
        );
        let drained: Vec<&str> = d.drain.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            drained,
            ["bbb1", "bbb2", "bbb4"],
            "no meetings first, then least loaded"
        );
    }

    #[test]
    fn hysteresis_holds_inside_the_band() {
        let mut h = History {
            desired: Some(4),
            changed_at: None,
        };
        // 44 over 4 = 11 per server: above target, inside the band (≤ 12).
        let d = decide(&cfg(), 10.0, &pool(&[(11.0, 1); 4], 2), &h, 0);
        assert_eq!((d.desired, d.direction), (4, Direction::Hold));
        // 34 over 4 = 8.5 per server: below target, inside the band (≥ 8).
        let d = decide(&cfg(), 10.0, &pool(&[(8.5, 1); 4], 2), &h, 0);
        assert_eq!((d.desired, d.direction), (4, Direction::Hold));
        // Just outside: 13 per server wants ceil(52 / 10) = 6.
        let d = decide(&cfg(), 10.0, &pool(&[(13.0, 1); 4], 2), &h, 0);
        assert_eq!((d.desired, d.direction), (6, Direction::Out));
        h = remember(&h, &d, 0);
        assert_eq!(
            h,
            History {
                desired: Some(6),
                changed_at: Some(0)
            }
        );
    }

    #[test]
    fn offline_servers_and_an_empty_pool() {
        let mut p = pool(&[(5.0, 1)], 0);
        p.push(server("down", ServerState::Enabled, false, 0.0, 0));
        p.push(server("cord", ServerState::Cordoned, true, 0.0, 0));
        let h = History {
            desired: Some(2),
            changed_at: None,
        };
        let d = decide(&cfg(), 10.0, &p, &h, 0);
        assert_eq!(d.serving, 1);
        assert_eq!(d.desired, 2);
        assert_eq!(d.add_back.len(), 1);
        assert_eq!(
            d.add_back[0].id, "cord",
            "an online cordoned spare comes first"
        );
        let d = decide(&cfg(), 10.0, &[], &History::default(), 0);
        assert_eq!((d.desired, d.pressure), (2, 0.0));
        assert!(d.removable.is_empty());
    }
}
