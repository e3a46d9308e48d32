//! `ferrolite doctor`: checks a host the way an experienced operator would, and prints
//! each check as `ok`, `warn` or `fail` with what to do. Exit status 1 when any check fails.
//!
//! Checks: settings parse (or the command would not have started), the database takes a
//! write and the service user (`--service-user`, default `ferrolite`, the systemd unit's
//! `User=`) may write it, its side files and its directory, the recording directories
//! exist, the service user may write them (judged from owners and modes, `super::access`)
//! and they share a filesystem (so moves are renames), the spool is watched, the nginx site is installed and `nginx -t` passes, the
//! presentation player is present, every BBB server answers with its secret, the servers'
//! clocks agree with ours, and the TLS certificate is not about to expire.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::access::{perms_up, write_access, Identity};
use crate::app::App;
use crate::config::{Config, NginxVariant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One check's outcome: what was checked, and for warn/fail what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub level: Level,
    pub what: String,
    pub detail: String,
}

fn check(level: Level, what: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        level,
        what: what.into(),
        detail: detail.into(),
    }
}

/// Clock skew beyond this is a warning (tokens and callbacks carry expiry times).
pub const MAX_SKEW: Duration = Duration::from_secs(30);
/// A certificate expiring sooner than this is a warning.
pub const CERT_MARGIN_DAYS: u64 = 14;

/// The skew between our clock and a server's `Date` header (pure).
pub fn skew_check(server: &str, ours: SystemTime, theirs: SystemTime) -> Check {
    let skew = ours
        .duration_since(theirs)
        .or_else(|_| theirs.duration_since(ours))
        .unwrap_or_default();
    if skew <= MAX_SKEW {
        check(
            Level::Ok,
            format!("clock of {server}"),
            format!("{}s apart", skew.as_secs()),
        )
    } else {
        check(
            Level::Warn,
            format!("clock of {server}"),
            format!(
                "{}s apart: run NTP (systemd-timesyncd or chrony) on both hosts",
                skew.as_secs()
            ),
        )
    }
}

/// `ferrolite doctor`'s options.
#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// The user the service runs as (the systemd unit's `User=`): a name or `uid[:gid]`.
    #[arg(long, default_value = "ferrolite")]
    pub service_user: String,
}

/// Whether the service user may write `path` (a directory: create files in it); `None`
/// when it may, else what to do.
fn service_may_write(path: &Path, is_dir: bool, who: &Identity) -> Option<String> {
    let perms = match perms_up(path) {
        Ok(p) => p,
        Err(e) => return Some(format!("cannot read {}: {e}", path.display())),
    };
    write_access(&perms, who, is_dir).err().map(|d| {
        format!(
            "{} (uid {}) cannot write: {} (owned by {}:{}) lacks {} for it: chown it to {} or rerun the command that created it with --fix-ownership",
            who.name,
            who.uid,
            d.path.display(),
            d.owner.0,
            d.owner.1,
            d.missing,
            who.name
        )
    })
}

/// The database file, its side files and its directory, as the service user.
fn database_checks(db: &Path, who: &Identity, out: &mut Vec<Check>) {
    let what = format!("database {} for {}", db.display(), who.name);
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut targets = vec![(dir.to_path_buf(), true)];
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            targets.push((p, false));
        }
    }
    match targets
        .iter()
        .find_map(|(p, is_dir)| service_may_write(p, *is_dir, who))
    {
        None => out.push(check(
            Level::Ok,
            what,
            "the service user may write the file, its -wal/-shm and its directory",
        )),
        Some(why) => out.push(check(Level::Fail, what, why)),
    }
}

fn dir_checks(app: &App, who: Option<&Identity>, out: &mut Vec<Check>) {
    let cfg = &app.config.recordings;
    let dirs = [
        ("RECORDING_SPOOL_DIR", &cfg.spool_dir),
        ("RECORDING_WORK_DIR", &cfg.work_dir),
        ("RECORDING_PUBLISH_DIR", &cfg.publish_dir),
        ("RECORDING_UNPUBLISH_DIR", &cfg.unpublish_dir),
    ];
    let mut devs = Vec::new();
    for (var, d) in dirs {
        match (std::fs::metadata(d), who) {
            (Ok(m), Some(who)) if m.is_dir() => {
                devs.push((var, m.dev()));
                match service_may_write(d, true, who) {
                    None => out.push(check(
                        Level::Ok,
                        format!("{var} {}", d.display()),
                        format!("exists and {} may write it", who.name),
                    )),
                    Some(why) => {
                        out.push(check(Level::Fail, format!("{var} {}", d.display()), why))
                    }
                }
            }
            (Ok(m), None) if m.is_dir() => {
                devs.push((var, m.dev()));
                let probe = d.join(format!(".ferrolite-doctor-{}", std::process::id()));
                match std::fs::write(&probe, b"") {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&probe);
                        out.push(check(
                            Level::Ok,
                            format!("{var} {}", d.display()),
                            "exists and is writable",
                        ));
                    }
                    Err(e) => out.push(check(
                        Level::Fail,
                        format!("{var} {}", d.display()),
                        format!("not writable ({e}): chown it to the service user (ferrolite)"),
                    )),
                }
            }
            _ => out.push(check(
                Level::Fail,
                format!("{var} {}", d.display()),
                "missing: create it (install -d -o ferrolite -g ferrolite …) or fix the setting",
            )),
        }
    }
    if let Some((_, first)) = devs.iter().find(|(v, _)| *v == "RECORDING_PUBLISH_DIR") {
        let apart: Vec<&str> = devs
            .iter()
            .filter(|(_, d)| d != first)
            .map(|(v, _)| *v)
            .collect();
        if apart.is_empty() {
            out.push(check(
                Level::Ok,
                "recording dirs on one filesystem",
                "moves are renames",
            ));
        } else {
            out.push(check(
                Level::Warn,
                "recording dirs on one filesystem",
                format!("{} on another filesystem than RECORDING_PUBLISH_DIR: every import and publish copies", apart.join(", ")),
            ));
        }
    }
    if cfg.importer_enabled && cfg.spool_dir.is_dir() {
        out.push(check(
            Level::Ok,
            "spool watched",
            format!("the importer watches {}", cfg.spool_dir.display()),
        ));
    } else {
        out.push(check(
            Level::Warn,
            "spool watched",
            "the importer is off (IMPORTER_ENABLED) or the spool is missing: tarballs from the BBB hooks stay there",
        ));
    }
}

fn nginx_checks(config: &Config, out: &mut Vec<Check>) {
    let n = &config.nginx;
    let site = Path::new("/etc/nginx/sites-enabled/ferrolite");
    if site.exists() {
        out.push(check(Level::Ok, "nginx site", site.display().to_string()));
    } else {
        out.push(check(
            Level::Warn,
            "nginx site",
            "/etc/nginx/sites-enabled/ferrolite is missing: run ferrolite-render-nginx (scripts/install.sh installs it)",
        ));
    }
    match std::process::Command::new("nginx").arg("-t").output() {
        Ok(o) if o.status.success() => {
            out.push(check(Level::Ok, "nginx -t", "the configuration is valid"))
        }
        Ok(o) => out.push(check(
            Level::Fail,
            "nginx -t",
            format!(
                "{}: fix it before reloading nginx",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        )),
        Err(_) => out.push(check(
            Level::Warn,
            "nginx -t",
            "nginx is not installed (apt-get install nginx-light)",
        )),
    }
    let player = Path::new(&n.player_root).join("playback/presentation/2.3/index.html");
    if player.is_file() {
        out.push(check(
            Level::Ok,
            "presentation player",
            player.display().to_string(),
        ));
    } else {
        out.push(check(
            Level::Warn,
            "presentation player",
            format!("{} is missing: copy /var/bigbluebutton/playback/presentation/2.3/ from a BBB server (bbb-playback), or set PLAYBACK_PLAYER_ROOT", player.display()),
        ));
    }
    if n.variant == NginxVariant::Ssl {
        let cert = n.ssl_cert.clone().unwrap_or_else(|| {
            format!(
                "/etc/nginx/ssl/live/{}/fullchain.pem",
                config.url_host.as_deref().unwrap_or("localhost")
            )
        });
        let secs = (CERT_MARGIN_DAYS * 86_400).to_string();
        match std::process::Command::new("openssl")
            .args(["x509", "-noout", "-checkend", &secs, "-in", &cert])
            .output()
        {
            Ok(o) if o.status.success() => out.push(check(
                Level::Ok,
                "certificate",
                format!("{cert} valid for {CERT_MARGIN_DAYS}+ days"),
            )),
            Ok(_) if Path::new(&cert).exists() => out.push(check(
                Level::Warn,
                "certificate",
                format!("{cert} expires within {CERT_MARGIN_DAYS} days: renew it (certbot renew)"),
            )),
            _ => out.push(check(
                Level::Fail,
                "certificate",
                format!(
                    "{cert} is missing or unreadable (NGINX_SSL=true): put the certificate there"
                ),
            )),
        }
    }
}

async fn server_checks(app: &App, out: &mut Vec<Check>) {
    let servers = match app.store.servers().await {
        Ok(s) => s,
        Err(e) => {
            out.push(check(Level::Fail, "servers", e.to_string()));
            return;
        }
    };
    if servers.is_empty() {
        out.push(check(
            Level::Warn,
            "servers",
            "none registered: ferrolite servers add URL SECRET",
        ));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build();
    for s in servers {
        let what = format!("server {} ({})", s.id, s.hostname());
        let reply = super::meetings::get_meetings(app, &s, Some(Duration::from_secs(5))).await;
        match reply {
            Ok(r) if r.success() => out.push(check(Level::Ok, &what, "answers with its secret")),
            Ok(r) if r.head.message_key == "checksumError" => out.push(check(
                Level::Fail,
                &what,
                "refuses the secret: ferrolite servers update ID --secret $(bbb-conf --secret on that server)",
            )),
            Ok(r) => out.push(check(Level::Warn, &what, format!("answered {}: {}", r.head.message_key, r.head.message))),
            Err(e) => out.push(check(Level::Fail, &what, format!("unreachable ({e}): check the URL, DNS and firewall"))),
        }
        if let Ok(client) = &http {
            if let Ok(resp) = client.get(&s.url).send().await {
                let date = resp
                    .headers()
                    .get("date")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| httpdate::parse_http_date(v).ok());
                if let Some(theirs) = date {
                    out.push(skew_check(&s.id, SystemTime::now(), theirs));
                }
            }
        }
    }
}

/// Runs every check.
pub async fn run(app: &App, args: &DoctorArgs) -> Vec<Check> {
    let mut out = vec![check(Level::Ok, "settings", "parse")];
    let who = Identity::resolve(&args.service_user);
    match &who {
        Some(w) => out.push(check(
            Level::Ok,
            "service user",
            format!("{} (uid {}, groups {:?})", w.name, w.uid, w.groups),
        )),
        None => out.push(check(
            Level::Warn,
            "service user",
            format!(
                "no user {} on this host (the package and install.sh create it; --service-user names another): files are checked as the user running doctor",
                args.service_user
            ),
        )),
    }
    let db = app.config.database_path.display().to_string();
    match app.leases.take_lease("doctor", "doctor", 1).await {
        Ok(_) => {
            let _ = app.leases.release_lease("doctor", "doctor").await;
            out.push(check(Level::Ok, format!("database {db}"), "takes a write"));
        }
        Err(e) => out.push(check(
            Level::Fail,
            format!("database {db}"),
            format!("{e}: the service user must own the file and its directory"),
        )),
    }
    if let Some(w) = &who {
        database_checks(&app.config.database_path, w, &mut out);
    }
    dir_checks(app, who.as_ref(), &mut out);
    nginx_checks(&app.config, &mut out);
    server_checks(app, &mut out).await;
    out
}

/// The report as printed, one line per check.
pub fn render(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| format!("{:<5} {}: {}\n", c.level.label(), c.what, c.detail))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_beyond_thirty_seconds_warns() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            skew_check("a", t, t + Duration::from_secs(5)).level,
            Level::Ok
        );
        assert_eq!(
            skew_check("a", t + Duration::from_secs(31), t).level,
            Level::Warn
        );
    }
}
