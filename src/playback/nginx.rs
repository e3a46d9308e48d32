//! The nginx site, rendered from [`Config`] by a pure function (`ferrolite nginx-config`
//! prints it; `scripts/install.sh` installs it).
//!
//! The site is written as template files an operator can read, in the repository's
//! top-level `nginx/` folder (compiled in with `include_str!`): `ferrolite.conf.tmpl` (the
//! upstreams and maps), `server.conf.tmpl`, and one file per concern (`api`, `protected`,
//! `legacy`, `playback`, `format`, the TLS parts). `{{name}}` is replaced by a value; nothing
//! else is interpreted. `nginx/golden/*.conf` hold the output of every variant and a test
//! compares them (`FERROLITE_BLESS=1 cargo test --lib playback::nginx` rewrites them).
//!
//! Variants ([`NginxVariant`]) follow Scalelite's `nginx/start`: `NGINX_RECORDINGS_ONLY`
//! (playback only, no API), `NGINX_BEHIND_PROXY` (plain HTTP, trusting the proxy's
//! `X-Forwarded-Proto`), `NGINX_SSL` (port 80 redirects to 443), else plain HTTP.
//!
//! Playback: each format's path is served from the public-link farm (`PLAYBACK_LINK_DIR`)
//! with no call to the worker; a path without a link falls back to a named location that asks
//! the worker (`auth_request`) and then serves the file from `RECORDING_PUBLISH_DIR`. The
//! auth subrequest carries nginx's normalized `$uri`, so the decision is about exactly the
//! file nginx serves; a path with control characters never gets that far (400), and below
//! `/<format>/<recordID>` nginx follows no symbolic link to a file of another owner.
//! docs/nginx.md explains each refusal.

use std::fmt;
use std::path::Path;

use crate::config::{Bind, Config, NginxVariant};

/// Where `include` looks for an operator's own additions to the server block.
pub const LOCAL_DIR: &str = "/etc/ferrolite/nginx.d";

/// Formats without a player: their files download (`Content-Disposition: attachment`).
const DOWNLOAD_FORMATS: &[&str] = &["podcast", "notes", "capture"];

mod tmpl {
    pub const SITE: &str = include_str!("../../nginx/ferrolite.conf.tmpl");
    pub const SERVER: &str = include_str!("../../nginx/server.conf.tmpl");
    pub const PROXY_HEADERS: &str = include_str!("../../nginx/proxy-headers.conf.tmpl");
    pub const API: &str = include_str!("../../nginx/api.conf.tmpl");
    pub const PROTECTED: &str = include_str!("../../nginx/protected.conf.tmpl");
    pub const LEGACY: &str = include_str!("../../nginx/legacy.conf.tmpl");
    pub const PLAYBACK: &str = include_str!("../../nginx/playback.conf.tmpl");
    pub const FORMAT: &str = include_str!("../../nginx/format.conf.tmpl");
    pub const SSL_REDIRECT: &str = include_str!("../../nginx/ssl-redirect.conf.tmpl");
    pub const TLS: &str = include_str!("../../nginx/tls.conf.tmpl");
    pub const ADMIN: &str = include_str!("../../nginx/admin.conf.tmpl");
}

/// A value that cannot be written into an nginx configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    pub var: &'static str,
    pub value: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?} cannot be written into an nginx configuration (no spaces, control characters, ; {{ }} quotes or $)",
            self.var, self.value
        )
    }
}

impl std::error::Error for RenderError {}

/// Replaces every `{{name}}` of `t` by its value. Templates are compiled in, so a
/// placeholder without a value is a bug (the golden test renders every template).
fn fill(t: &str, vars: &[(&str, &str)]) -> String {
    let mut out = t.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    debug_assert!(!out.contains("{{"), "unfilled placeholder in {out}");
    out
}

/// A value that goes into the configuration as one nginx word.
fn word(var: &'static str, v: &str) -> Result<String, RenderError> {
    let bad = v.is_empty()
        || v.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '$')
        });
    if bad {
        return Err(RenderError {
            var,
            value: v.to_string(),
        });
    }
    Ok(v.to_string())
}

fn path_word(var: &'static str, p: &Path) -> Result<String, RenderError> {
    let s = p.to_string_lossy();
    let s = s.trim_end_matches('/');
    word(var, if s.is_empty() { "/" } else { s })
}

/// The TLS certificate and key: `NGINX_SSL_CERT`/`NGINX_SSL_KEY`, else Scalelite's
/// `/etc/nginx/ssl/live/<URL_HOST>/…` (the docker layout mounts `/etc/letsencrypt` there),
/// else `/etc/letsencrypt/live/<URL_HOST>/…` when only that one `exists`.
pub fn certificates(cfg: &Config, exists: &dyn Fn(&Path) -> bool) -> (String, String) {
    let host = cfg.url_host.as_deref().unwrap_or("_");
    let in_dir = |d: &str| {
        (
            format!("{d}/live/{host}/fullchain.pem"),
            format!("{d}/live/{host}/privkey.pem"),
        )
    };
    let (mut cert, mut key) = in_dir("/etc/nginx/ssl");
    if !exists(Path::new(&cert)) {
        let (c, k) = in_dir("/etc/letsencrypt");
        if exists(Path::new(&c)) {
            (cert, key) = (c, k);
        }
    }
    (
        cfg.nginx.ssl_cert.clone().unwrap_or(cert),
        cfg.nginx.ssl_key.clone().unwrap_or(key),
    )
}

/// `listen` lines: a bare port listens on every IPv4 and IPv6 address, as Scalelite's site.
fn listen_lines(listen: &str, flags: &str) -> String {
    if !listen.is_empty() && listen.bytes().all(|b| b.is_ascii_digit()) {
        format!("    listen {listen}{flags} default_server;\n    listen [::]:{listen}{flags} default_server;\n")
    } else {
        format!("    listen {listen}{flags} default_server;\n")
    }
}

/// The nginx page for refused and missing recordings (an escaped nginx string).
fn not_found_page() -> String {
    super::NOT_FOUND_HTML
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// The `map` of Hosts the public links answer on (with `URL_HOST`): that host, and its
/// subdomains under multitenancy, as Scalelite's host authorization.
fn host_map(cfg: &Config) -> Result<Option<String>, RenderError> {
    let Some(h) = cfg.url_host.as_deref() else {
        return Ok(None);
    };
    let host = crate::tenant::normalize_host(h);
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
    {
        return Err(RenderError {
            var: "URL_HOST",
            value: h.to_string(),
        });
    }
    let mut m = format!(
        "\n# With URL_HOST, files served straight from the public links answer only on that host\n\
         # (the worker checks the Host of everything else).\n\
         map $host $ferrolite_foreign_host {{\n    default 1;\n    \"{host}\" 0;\n"
    );
    if cfg.tenancy.enabled {
        let escaped = host.replace('.', "\\.");
        m.push_str(&format!("    \"~\\.{escaped}$\" 0;\n"));
    }
    m.push_str("}\n");
    Ok(Some(m))
}

/// Renders the site: `upstream`s, `map`s and the `server` blocks, to be included in nginx's
/// `http {}` context (Debian: `/etc/nginx/sites-enabled/`). `exists` tells where
/// certificates are (`Path::exists` in `ferrolite nginx-config`).
pub fn render(cfg: &Config, exists: &dyn Fn(&Path) -> bool) -> Result<String, RenderError> {
    let n = &cfg.nginx;
    let variant = n.variant;
    let upstream = match &cfg.bind {
        Bind::Unix(p) => format!("unix:{}", path_word("BIND", p)?),
        Bind::Tcp(a) => a.to_string(),
    };
    let url_host = match cfg.url_host.as_deref() {
        Some(h) => word("URL_HOST", h)?,
        None => "_".to_string(),
    };
    let publish_dir = path_word("RECORDING_PUBLISH_DIR", &cfg.recordings.publish_dir)?;
    let link_dir = path_word("PLAYBACK_LINK_DIR", &cfg.playback.link_dir)?;
    let player_root = word("PLAYBACK_PLAYER_ROOT", &n.player_root)?;
    let listen = word("NGINX_LISTEN", &n.listen)?;
    let ssl_listen = word("NGINX_SSL_LISTEN", &n.ssl_listen)?;
    let host_map = host_map(cfg)?;
    let proxy_headers = tmpl::PROXY_HEADERS;
    let ph = [("proxy_headers", proxy_headers)];

    let host_check = if host_map.is_some() {
        "        if ($ferrolite_foreign_host) {\n            return 404;\n        }\n"
    } else {
        ""
    };
    let mut formats = String::new();
    for f in &cfg.playback.formats {
        let download = if DOWNLOAD_FORMATS.contains(&f.as_str()) {
            "        add_header Content-Disposition attachment;\n"
        } else {
            ""
        };
        formats.push_str(&fill(
            tmpl::FORMAT,
            &[
                ("format", &word("RECORDING_PLAYBACK_FORMATS", f)?),
                ("host_check", host_check),
                ("link_dir", &link_dir),
                ("publish_dir", &publish_dir),
                ("download", download),
            ],
        ));
    }
    let api = if variant == NginxVariant::RecordingsOnly {
        String::new()
    } else {
        let max = (cfg.recordings.max_size_bytes / (1024 * 1024)).to_string();
        fill(
            tmpl::API,
            &[("proxy_headers", proxy_headers), ("max_upload_mib", &max)],
        )
    };
    // The status page and admin JSON, only for ADMIN_ALLOW's networks (and only then).
    let admin = if variant == NginxVariant::RecordingsOnly || cfg.ops.admin_allow.is_empty() {
        String::new()
    } else {
        let mut allow = String::new();
        for net in &cfg.ops.admin_allow {
            allow.push_str(&format!("        allow {};\n", word("ADMIN_ALLOW", net)?));
        }
        fill(
            tmpl::ADMIN,
            &[("allow", &allow), ("proxy_headers", proxy_headers)],
        )
    };
    let tls = if variant == NginxVariant::Ssl {
        let (cert, key) = certificates(cfg, exists);
        let mut t = fill(
            tmpl::TLS,
            &[
                ("ssl_cert", &word("NGINX_SSL_CERT", &cert)?),
                ("ssl_key", &word("NGINX_SSL_KEY", &key)?),
            ],
        );
        if let Some(d) = &n.ssl_dhparam {
            t.push_str(&format!("    ssl_dhparam {};\n", word("NGINX_DHPARAM", d)?));
        }
        t
    } else {
        String::new()
    };
    let main_listen = if variant == NginxVariant::Ssl {
        listen_lines(&ssl_listen, " ssl http2")
    } else {
        listen_lines(&listen, "")
    };
    let not_found = not_found_page();
    let server = fill(
        tmpl::SERVER,
        &[
            ("listen", &main_listen),
            ("server_name", &url_host),
            ("tls", &tls),
            ("not_found_page", &not_found),
            ("local_dir", LOCAL_DIR),
            ("api", &api),
            ("admin", &admin),
            ("protected", &fill(tmpl::PROTECTED, &ph)),
            ("legacy", tmpl::LEGACY),
            (
                "playback",
                &fill(
                    tmpl::PLAYBACK,
                    &[("player_root", &player_root), ("formats", &formats)],
                ),
            ),
            ("proxy_headers", proxy_headers),
        ],
    );
    let servers = if variant == NginxVariant::Ssl {
        let redirect = fill(
            tmpl::SSL_REDIRECT,
            &[
                ("listen", &listen_lines(&listen, "")),
                ("server_name", &url_host),
                ("proxy_headers", proxy_headers),
            ],
        );
        format!("{redirect}{server}")
    } else {
        server
    };
    let proto_map = if variant == NginxVariant::Proxy {
        "# The TLS proxy in front says which scheme the client used.\nmap $http_x_forwarded_proto $ferrolite_proto {\n    default $http_x_forwarded_proto;\n    \"\" $scheme;\n}\n"
    } else {
        "map $scheme $ferrolite_proto {\n    default $scheme;\n}\n"
    };
    Ok(fill(
        tmpl::SITE,
        &[
            ("variant", variant.name()),
            ("local_dir", LOCAL_DIR),
            ("upstream", &word("BIND", &upstream)?),
            ("proto_map", proto_map),
            ("host_map", host_map.as_deref().unwrap_or("")),
            ("servers", &servers),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&m, crate::config::Purpose::Cli).unwrap()
    }

    fn render_with(pairs: &[(&str, &str)]) -> String {
        render(&config(pairs), &|_| false).unwrap()
    }

    #[test]
    fn the_status_page_location_exists_only_for_admin_allow_networks() {
        let location = "location ~ ^/ferrolite/(status(/|$)|api/) {";
        assert!(!render_with(&[]).contains(location));
        let site = render_with(&[("ADMIN_ALLOW", "10.0.0.0/8, ::1"), ("ADMIN_PASSWORD", "pw")]);
        let at = site.find(location).expect("the admin location is rendered");
        let block = &site[at..at + site[at..].find("\n    }\n").unwrap()];
        let first = block.find("allow 10.0.0.0/8;").expect("first network");
        assert!(first < block.find("allow ::1;").expect("second network"));
        assert!(block.find("deny all;").unwrap() > first, "{block}");
        assert!(!block.contains("/ferrolite/auth"), "{block}");
        assert!(!render_with(&[
            ("ADMIN_ALLOW", "10.0.0.0/8"),
            ("NGINX_RECORDINGS_ONLY", "true")
        ])
        .contains(location));
    }

    /// The settings of each golden file (`nginx/golden/<name>.conf`).
    fn golden_cases() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
        let base = vec![
            ("URL_HOST", "lb.example.org"),
            ("BIND", "unix:/run/ferrolite/ferrolite.sock"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v = base.clone();
            v.extend_from_slice(extra);
            v
        };
        vec![
            ("plain", with(&[])),
            ("ssl", with(&[("NGINX_SSL", "true")])),
            ("proxy", with(&[("NGINX_BEHIND_PROXY", "true")])),
            (
                "recordings-only",
                with(&[("NGINX_RECORDINGS_ONLY", "true")]),
            ),
            (
                "multitenant",
                with(&[
                    ("MULTITENANCY_ENABLED", "true"),
                    ("BASE_URL", "lb.example.org"),
                ]),
            ),
            ("defaults", vec![]),
        ]
    }

    #[test]
    fn every_variant_matches_its_golden_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx/golden");
        let bless = std::env::var_os("FERROLITE_BLESS").is_some();
        for (name, pairs) in golden_cases() {
            let got = render_with(&pairs);
            assert!(!got.contains("{{"), "{name}: unfilled placeholder");
            let path = dir.join(format!("{name}.conf"));
            if bless {
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                got == want,
                "{name}: the rendered site differs from {}; if the change is intended, run \
                 `FERROLITE_BLESS=1 cargo test --lib playback::nginx` and review the diff",
                path.display()
            );
        }
    }

    #[test]
    fn variants_follow_scalelite_precedence() {
        let v = |p: &[(&str, &str)]| config(p).nginx.variant;
        assert_eq!(v(&[]), NginxVariant::Plain);
        assert_eq!(v(&[("NGINX_SSL", "true")]), NginxVariant::Ssl);
        assert_eq!(
            v(&[("NGINX_SSL", "true"), ("NGINX_BEHIND_PROXY", "true")]),
            NginxVariant::Proxy
        );
        assert_eq!(v(&[("BEHIND_PROXY", "")]), NginxVariant::Proxy);
        assert_eq!(
            v(&[("NGINX_RECORDINGS_ONLY", "true"), ("NGINX_SSL", "true")]),
            NginxVariant::RecordingsOnly
        );
    }

    #[test]
    fn the_upstream_is_where_serve_listens() {
        // One table: BIND's default is config.rs's, not a second one here.
        let c = render_with(&[]);
        assert!(c.contains("server 127.0.0.1:3000;"), "{c}");
        let c = render_with(&[("BIND", "unix:/run/f.sock")]);
        assert!(c.contains("server unix:/run/f.sock;"), "{c}");
        let c = render_with(&[("PORT", "4000")]);
        assert!(c.contains("server 127.0.0.1:4000;"), "{c}");
    }

    #[test]
    fn the_site_routes_the_api_and_every_format_on_every_name() {
        let c = render_with(&[("URL_HOST", "lb.example.org")]);
        assert!(c.contains("server_name lb.example.org;"));
        assert!(
            c.contains("listen 80 default_server;") && c.contains("listen [::]:80 default_server;")
        );
        for f in crate::config::DEFAULT_PLAYBACK_FORMATS {
            assert!(c.contains(&format!("location /{f}/ {{")), "{f}");
            assert!(
                c.contains(&format!("location @ferrolite_protected_{f} {{")),
                "{f}"
            );
        }
        assert_eq!(
            c.matches("disable_symlinks if_not_owner from=$document_root$ferrolite_recording;")
                .count(),
            2 * crate::config::DEFAULT_PLAYBACK_FORMATS.len()
        );
        assert!(c.contains("client_max_body_size 20480m;"));
        assert!(c.contains(&format!("include {LOCAL_DIR}/*.conf;")));
        assert!(c.contains("absolute_redirect off;"));
        assert!(!c.contains("ssl_certificate"));
        let c = render_with(&[("NGINX_RECORDINGS_ONLY", "true")]);
        assert!(!c.contains("location /bigbluebutton/") && c.contains("location /recording/"));
    }

    #[test]
    fn certificates_are_named_or_found() {
        let c = config(&[("URL_HOST", "lb.example.org"), ("NGINX_SSL", "true")]);
        assert_eq!(
            certificates(&c, &|_| false).0,
            "/etc/nginx/ssl/live/lb.example.org/fullchain.pem"
        );
        let le = |p: &Path| p.starts_with("/etc/letsencrypt");
        assert_eq!(
            certificates(&c, &le),
            (
                "/etc/letsencrypt/live/lb.example.org/fullchain.pem".to_string(),
                "/etc/letsencrypt/live/lb.example.org/privkey.pem".to_string()
            )
        );
        let c = config(&[
            ("URL_HOST", "lb.example.org"),
            ("NGINX_SSL", "true"),
            ("NGINX_SSL_CERT", "/srv/c.pem"),
            ("NGINX_SSL_KEY", "/srv/k.pem"),
        ]);
        let out = render(&c, &le).unwrap();
        assert!(
            out.contains("ssl_certificate /srv/c.pem;")
                && out.contains("ssl_certificate_key /srv/k.pem;")
        );
        assert!(out.contains("listen 443 ssl http2 default_server;"));
    }

    #[test]
    fn values_that_would_break_the_config_are_refused() {
        for (k, v) in [
            ("URL_HOST", "x; include /etc/passwd"),
            ("RECORDING_PUBLISH_DIR", "/a b"),
            ("PLAYBACK_LINK_DIR", "/a$b"),
            ("NGINX_LISTEN", "80;"),
            ("PLAYBACK_PLAYER_ROOT", "/x}"),
        ] {
            let e = render(&config(&[(k, v)]), &|_| false).unwrap_err();
            assert_eq!(e.var, k);
        }
    }
}
