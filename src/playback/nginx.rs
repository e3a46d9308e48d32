//! The nginx configuration, rendered from the environment by a pure function
//! (`ferrolite nginx-config` prints it; `scripts/install.sh` installs it).
//!
//! Variants follow Scalelite's `nginx/start`: `NGINX_RECORDINGS_ONLY` (playback only, no
//! API), `NGINX_BEHIND_PROXY` (plain HTTP, trusting the proxy's `X-Forwarded-Proto`),
//! `NGINX_SSL` (port 80 redirects to 443, certificates at Scalelite's
//! `/etc/nginx/ssl/live/$URL_HOST/{fullchain,privkey}.pem`), else plain HTTP.
//!
//! Playback: each format's path is served from the public-link farm
//! (`PLAYBACK_LINK_DIR`) with no call to the worker; a path without a link falls back to
//! a named location that asks the worker (`auth_request`) and then serves the file from
//! `RECORDING_PUBLISH_DIR`. The auth subrequest carries nginx's normalized `$uri`, so the
//! decision is about exactly the file nginx serves.

use std::collections::HashMap;
use std::fmt::Write;

/// Formats without a player: their files download (`Content-Disposition: attachment`).
const DOWNLOAD_FORMATS: &[&str] = &["podcast", "notes", "capture"];

/// Everything the rendering reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxSettings {
    pub url_host: String,
    /// The worker: `unix:/path` or `host:port`.
    pub upstream: String,
    pub publish_dir: String,
    pub link_dir: String,
    /// Where `playback/presentation/2.3/` (the BBB player) lives.
    pub player_root: String,
    pub formats: Vec<String>,
    pub ssl: bool,
    pub behind_proxy: bool,
    pub recordings_only: bool,
    /// Plain HTTP listen address (`80`, `127.0.0.1:8080`).
    pub listen: String,
    pub ssl_listen: String,
    pub ssl_dhparam: Option<String>,
    /// `client_max_body_size` of the upload endpoint, in MiB.
    pub max_upload_mib: u64,
}

fn truthy(v: Option<&String>) -> bool {
    v.map(|s| {
        matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on"
        )
    })
    .unwrap_or(false)
}

impl NginxSettings {
    /// Reads the settings from a variable map (the environment), with Scalelite's defaults.
    pub fn from_map(m: &HashMap<String, String>) -> Result<NginxSettings, String> {
        let get = |k: &str| m.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        let upstream = match get("BIND") {
            Some(b) if b.starts_with("unix:") => format!(
                "unix:{}",
                b.trim_start_matches("unix://").trim_start_matches("unix:")
            ),
            Some(b) => b.trim_start_matches("tcp://").to_string(),
            None => "unix:/run/ferrolite/ferrolite.sock".to_string(),
        };
        let formats = crate::config::playback_formats(get("RECORDING_PLAYBACK_FORMATS"));
        for v in [&upstream, &formats.join("")].into_iter().chain(
            [
                "URL_HOST",
                "RECORDING_PUBLISH_DIR",
                "PLAYBACK_LINK_DIR",
                "NGINX_LISTEN",
            ]
            .iter()
            .filter_map(|k| m.get(*k)),
        ) {
            if v.chars().any(|c| {
                c.is_whitespace() && c != ' ' || matches!(c, ';' | '{' | '}' | '"' | '\'' | '$')
            }) {
                return Err(format!(
                    "{v:?} cannot be written into an nginx configuration (no ; {{ }} quotes or $)"
                ));
            }
        }
        let max_upload_mib = match get("RECORDING_MAX_SIZE") {
            Some(v) => v
                .parse()
                .map_err(|_| format!("RECORDING_MAX_SIZE: expected MiB, got {v:?}"))?,
            None => 20480,
        };
        let ssl = truthy(m.get("NGINX_SSL"));
        Ok(NginxSettings {
            url_host: get("URL_HOST").unwrap_or("_").to_string(),
            upstream,
            publish_dir: get("RECORDING_PUBLISH_DIR")
                .unwrap_or("/var/bigbluebutton/published")
                .trim_end_matches('/')
                .to_string(),
            link_dir: get("PLAYBACK_LINK_DIR")
                .unwrap_or("/var/lib/ferrolite/playback-links")
                .trim_end_matches('/')
                .to_string(),
            player_root: get("PLAYBACK_PLAYER_ROOT")
                .unwrap_or("/var/bigbluebutton")
                .trim_end_matches('/')
                .to_string(),
            formats,
            ssl,
            behind_proxy: truthy(m.get("NGINX_BEHIND_PROXY")) || m.contains_key("BEHIND_PROXY"),
            recordings_only: truthy(m.get("NGINX_RECORDINGS_ONLY")),
            listen: get("NGINX_LISTEN").unwrap_or("80").to_string(),
            ssl_listen: get("NGINX_SSL_LISTEN").unwrap_or("443").to_string(),
            ssl_dhparam: get("NGINX_DHPARAM").map(str::to_string),
            max_upload_mib,
        })
    }

    /// Which of Scalelite's templates this is (first match wins, as `nginx/start`).
    pub fn variant(&self) -> &'static str {
        if self.recordings_only {
            "recordings-only"
        } else if self.behind_proxy {
            "proxy"
        } else if self.ssl {
            "ssl"
        } else {
            "plain"
        }
    }
}

/// The nginx page for refused and missing recordings (an escaped nginx string).
fn not_found_page() -> String {
    super::NOT_FOUND_HTML
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Renders the configuration: an `upstream`, a `map` and the `server` blocks, to be
/// included in nginx's `http {}` context (Debian: `/etc/nginx/sites-enabled/`).
pub fn render(s: &NginxSettings) -> String {
    let mut o = String::new();
    let v = s.variant();
    let _ = writeln!(
        o,
        "# Ferrolite nginx configuration ({v}), rendered by `ferrolite nginx-config`."
    );
    let _ = writeln!(
        o,
        "# Do not edit: change /etc/default/ferrolite and render it again.\n"
    );
    let _ = writeln!(
        o,
        "upstream ferrolite {{\n    server {};\n    keepalive 64;\n}}\n",
        s.upstream
    );
    let proto = if v == "proxy" {
        "map $http_x_forwarded_proto $ferrolite_proto {\n    default $http_x_forwarded_proto;\n    \"\" $scheme;\n}\n"
    } else {
        "map $scheme $ferrolite_proto {\n    default $scheme;\n}\n"
    };
    o.push_str(proto);
    o.push('\n');

    let body = server_body(s);
    if v == "ssl" {
        let _ = writeln!(
            o,
            "server {{\n    listen {};\n    server_name {};",
            s.listen, s.url_host
        );
        o.push_str("    location = /health_check {\n        proxy_pass http://ferrolite;\n        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n        proxy_set_header Host $http_host;\n    }\n");
        o.push_str("    location / {\n        return 301 https://$host$request_uri;\n    }\n}\n\n");
        let _ = writeln!(
            o,
            "server {{\n    listen {} ssl http2;\n    server_name {};",
            s.ssl_listen, s.url_host
        );
        let _ = writeln!(
            o,
            "    ssl_certificate /etc/nginx/ssl/live/{}/fullchain.pem;",
            s.url_host
        );
        let _ = writeln!(
            o,
            "    ssl_certificate_key /etc/nginx/ssl/live/{}/privkey.pem;",
            s.url_host
        );
        o.push_str("    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_prefer_server_ciphers off;\n    ssl_session_timeout 1d;\n    ssl_session_cache shared:FerroliteSSL:10m;\n    ssl_session_tickets off;\n");
        if let Some(d) = &s.ssl_dhparam {
            let _ = writeln!(o, "    ssl_dhparam {d};");
        }
        o.push_str(&body);
        o.push_str("}\n");
    } else {
        let _ = writeln!(
            o,
            "server {{\n    listen {};\n    server_name {};",
            s.listen, s.url_host
        );
        o.push_str(&body);
        o.push_str("}\n");
    }
    o
}

const PROXY_HEADERS: &str = "        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
        proxy_set_header Host $http_host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $ferrolite_proto;
";

fn to_worker(o: &mut String, location: &str, extra: &str) {
    let _ = writeln!(o, "    location {location} {{\n        proxy_pass http://ferrolite;\n{PROXY_HEADERS}{extra}    }}");
}

fn server_body(s: &NginxSettings) -> String {
    let mut o = String::new();
    o.push_str(
        "    server_tokens off;\n    client_max_body_size 64m;\n    proxy_read_timeout 60s;\n",
    );
    let _ = writeln!(o, "    error_page 403 404 =404 @ferrolite_not_found;");
    let _ = writeln!(o, "    location @ferrolite_not_found {{\n        types {{ }}\n        default_type \"text/html; charset=utf-8\";\n        add_header Cache-Control no-store always;\n        return 404 \"{}\";\n    }}\n", not_found_page());

    o.push_str("    # --- the worker (over its socket)\n");
    to_worker(&mut o, "= /health_check", "");
    to_worker(&mut o, "= /", "");
    if !s.recordings_only {
        to_worker(&mut o, "/bigbluebutton/", "");
        to_worker(&mut o, "/scalelite/", "");
        to_worker(&mut o, "= /fsapi", "");
        to_worker(
            &mut o,
            "= /bigbluebutton/recording/upload",
            &format!("        client_max_body_size {}m;\n        proxy_request_buffering off;\n        proxy_read_timeout 3600s;\n", s.max_upload_mib),
        );
    }
    // One-time links of protected recordings, and plain player redirects.
    to_worker(&mut o, "/recording/", "");
    o.push_str("    location = /_ferrolite_auth {\n        internal;\n        proxy_pass http://ferrolite/ferrolite/auth;\n        proxy_pass_request_body off;\n        proxy_set_header Content-Length \"\";\n        proxy_set_header X-Original-URI $ferrolite_uri;\n");
    o.push_str("        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n        proxy_set_header Host $http_host;\n        proxy_set_header X-Forwarded-Proto $ferrolite_proto;\n    }\n\n");

    o.push_str("    # --- legacy player URLs\n");
    o.push_str("    location = /playback/presentation/playback.html {\n        return 301 /playback/presentation/0.81/playback.html?$query_string;\n    }\n");
    o.push_str("    location = /playback/presentation/2.0/playback.html {\n        return 301 /playback/presentation/2.3/$arg_meetingId?$query_string;\n    }\n");
    o.push_str("    location ~ ^/playback/video/(.*)$ {\n        return 307 /video/$1;\n    }\n");
    o.push_str("    location ~ ^/recording/screenshare/(.*)$ {\n        return 307 /screenshare/$1;\n    }\n");
    let _ = writeln!(
        o,
        "    # --- the presentation player (BBB's, installed under {}/playback)",
        s.player_root
    );
    let _ = writeln!(o, "    location /playback/presentation/2.3 {{\n        root {};\n        try_files $uri /playback/presentation/2.3/index.html;\n    }}\n", s.player_root);

    o.push_str(
        "    # --- recording files: public links first (no worker call), else ask the worker\n",
    );
    for f in &s.formats {
        let download = if DOWNLOAD_FORMATS.contains(&f.as_str()) {
            "        add_header Content-Disposition attachment;\n"
        } else {
            ""
        };
        let _ = writeln!(o, "    location /{f}/ {{\n        root {};\n        try_files $uri $uri/ @ferrolite_protected_{f};\n{download}    }}", s.link_dir);
        let _ = writeln!(o, "    location @ferrolite_protected_{f} {{\n        set $ferrolite_uri $uri;\n        auth_request /_ferrolite_auth;\n        error_page 401 403 404 =404 @ferrolite_not_found;\n        root {};\n        add_header Cache-Control private;\n{download}    }}", s.publish_dir);
    }
    o.push_str("\n    location / {\n        return 404;\n    }\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> NginxSettings {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NginxSettings::from_map(&m).unwrap()
    }

    #[test]
    fn variants_follow_scalelite_precedence() {
        assert_eq!(settings(&[]).variant(), "plain");
        assert_eq!(settings(&[("NGINX_SSL", "true")]).variant(), "ssl");
        assert_eq!(
            settings(&[("NGINX_SSL", "true"), ("NGINX_BEHIND_PROXY", "true")]).variant(),
            "proxy"
        );
        assert_eq!(settings(&[("BEHIND_PROXY", "")]).variant(), "proxy");
        assert_eq!(
            settings(&[("NGINX_RECORDINGS_ONLY", "true"), ("NGINX_SSL", "true")]).variant(),
            "recordings-only"
        );
    }

    #[test]
    fn plain_config_routes_the_api_and_every_format() {
        let c = render(&settings(&[
            ("URL_HOST", "lb.example.org"),
            ("BIND", "unix:/run/f.sock"),
        ]));
        assert!(c.contains("server unix:/run/f.sock;"), "{c}");
        assert!(c.contains("server_name lb.example.org;"));
        for f in crate::config::DEFAULT_PLAYBACK_FORMATS {
            assert!(c.contains(&format!("location /{f}/ {{")), "{f}");
            assert!(
                c.contains(&format!("location @ferrolite_protected_{f} {{")),
                "{f}"
            );
        }
        for l in [
            "location /bigbluebutton/",
            "location /scalelite/",
            "location = /fsapi",
            "location = /bigbluebutton/recording/upload",
            "location = /health_check",
            "location /recording/",
            "X-Original-URI $ferrolite_uri;",
        ] {
            assert!(c.contains(l), "missing {l}");
        }
        assert!(c.contains("client_max_body_size 20480m;"));
        assert!(!c.contains("ssl_certificate"));
    }

    #[test]
    fn ssl_proxy_and_recordings_only_differ_where_they_should() {
        let c = render(&settings(&[
            ("URL_HOST", "lb.example.org"),
            ("NGINX_SSL", "true"),
        ]));
        assert!(c.contains("/etc/nginx/ssl/live/lb.example.org/fullchain.pem"));
        assert!(c.contains("return 301 https://$host$request_uri;"));
        let c = render(&settings(&[("NGINX_BEHIND_PROXY", "true")]));
        assert!(c.contains("default $http_x_forwarded_proto;"));
        let c = render(&settings(&[("NGINX_RECORDINGS_ONLY", "true")]));
        assert!(!c.contains("location /bigbluebutton/") && c.contains("location /recording/"));
    }

    #[test]
    fn values_that_would_break_the_config_are_refused() {
        let m: HashMap<String, String> =
            [("URL_HOST".to_string(), "x; include /etc/passwd".to_string())].into();
        assert!(NginxSettings::from_map(&m).is_err());
    }
}
