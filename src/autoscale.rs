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
//! The `autoscaler` role that acts on it (cordon, then the hook) is `crate::autoscaler`.

use serde::Serialize;

use crate::config::AutoscaleConfig;
use crate::store::{Server, ServerState};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
