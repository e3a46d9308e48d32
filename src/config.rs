//! Every environment variable Ferrolite reads, its default, and its validation.
//!
//! Names and defaults follow Scalelite's so an operator can reuse `/etc/default/scalelite`.
//! Parsing is a pure function of a variable map ([`Config::from_map`]) so it is unit-tested
//! without touching the process environment. A bad value produces one [`ConfigError`] that
//! names the variable, which `main` prints as a single line before exiting non-zero.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::bbb::checksum::Algorithm;

/// A configuration problem, always tied to the variable that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}: {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where `ferrolite serve` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Tcp(a) => write!(f, "http://{a}"),
            Bind::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// `k=v,k2=v2` lists as Scalelite parses them (split on `,`, then on the first `=`).
pub type ParamList = Vec<(String, String)>;

#[derive(Debug, Clone)]
pub struct Config {
    /// `LOADBALANCER_SECRET` followed by the items of `LOADBALANCER_SECRETS`.
    pub secrets: Vec<String>,
    /// Inbound algorithms accepted (`LOADBALANCER_CHECKSUM_ALGORITHM`).
    pub checksum_algorithms: Vec<Algorithm>,
    /// Algorithm for calls Ferrolite originates itself (poller, end on panic): the strongest
    /// listed one, SHA-256 when the variable is unset (as Scalelite).
    pub outbound_algorithm: Algorithm,
    pub bind: Bind,
    /// Path of the SQLite file.
    pub database_path: PathBuf,
    pub url_host: Option<String>,
    pub build_number: Option<String>,

    pub max_meeting_duration: u64,
    pub default_create_params: ParamList,
    pub override_create_params: ParamList,
    pub create_exclude_params: Vec<String>,
    pub default_join_params: ParamList,
    pub override_join_params: ParamList,
    pub join_exclude_params: Vec<String>,
    pub voice_bridge_len: usize,
    pub use_external_voice_bridge: bool,
    pub get_meetings_api_disabled: bool,
    /// Upper bound for the whole getMeetings fan-out, so one slow server cannot stall it.
    pub get_meetings_timeout: Duration,

    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub server_id_is_hostname: bool,

    pub poll_interval: Duration,
    pub server_healthy_threshold: u32,
    pub server_unhealthy_threshold: u32,
    pub poller_threads: usize,
    pub poller_wait_timeout: Duration,
    pub load_min_user_count: u32,
    pub load_join_buffer_time: Duration,
    pub load_model: LoadModel,
    pub weights: LoadWeights,
    /// Run the poller inside `serve` (`POLLER_ENABLED`, default true).
    pub poller_enabled: bool,

    // Outgoing callbacks (`crate::callbacks`).
    /// Allow callbacks to loopback and private addresses (`ALLOW_PRIVATE_CALLBACKS`).
    pub allow_private_callbacks: bool,
    /// First retry delay; doubles each attempt (`CALLBACK_RETRY_BASE`, seconds).
    pub callback_retry_base: Duration,
    /// Attempts before a callback is given up (`CALLBACK_MAX_ATTEMPTS`).
    pub callback_max_attempts: u32,
    /// How long finished callbacks (delivered, gone, failed) and recording-ready URLs are
    /// kept before they are pruned (`CALLBACK_RETENTION`, days, default 30).
    pub callback_retention: Duration,
    /// This node's stable name in role leases (`NODE_ID`; default: the host name). A
    /// restarted process on the same node takes its roles back at once.
    pub node_id: Option<String>,
    /// How long the importer's and the callback sender's leases last without renewal
    /// (`ROLE_LEASE_TTL`, seconds, default 15; renewed every third of it while held): a
    /// dead holder's role is taken over within this.
    pub role_lease_ttl: Duration,

    /// Recordings: import, index and API (`RECORDING_*`, see [`RecordingConfig`]).
    pub recordings: RecordingConfig,
    /// Multitenancy and dial-in (see [`Tenancy`]).
    pub tenancy: Tenancy,
    /// Playback behind nginx and protected recordings (see [`PlaybackConfig`]).
    pub playback: PlaybackConfig,
    /// Status page, metrics listener, autoscaling, usage accounting (see [`OpsConfig`]).
    pub ops: OpsConfig,
    /// The nginx site `ferrolite nginx-config` renders (see [`NginxConfig`]).
    pub nginx: NginxConfig,
    /// Limits of the HTTP listener (see [`HttpLimits`]).
    pub http: HttpLimits,
    /// Limits on what BBB servers send back (see [`BackendLimits`]).
    pub backend: BackendLimits,
    /// Shared-state backends: Redis and PostgreSQL (see [`Backends`]).
    pub backends: Backends,
}

// ---------------------------------------------------------------------------------------
// Playback and protected recordings (issue 4, `crate::playback`).
// ---------------------------------------------------------------------------------------

/// The playback formats nginx serves and the worker authorizes, Scalelite's default order.
pub const DEFAULT_PLAYBACK_FORMATS: &[&str] = &[
    "presentation",
    "video",
    "screenshare",
    "podcast",
    "notes",
    "capture",
];

/// Protected-recording links and cookies, and the public-link farm nginx serves from.
#[derive(Clone, PartialEq)]
pub struct PlaybackConfig {
    /// `PROTECTED_RECORDINGS_TOKEN_TIMEOUT` (minutes, default 60): life of a one-time link.
    pub token_timeout: Duration,
    /// `PROTECTED_RECORDINGS_TIMEOUT` (minutes, default 360): life of the playback cookie.
    pub cookie_timeout: Duration,
    /// HMAC key of the playback cookies: `SECRET_KEY_BASE` (Scalelite's), else derived from
    /// the first load balancer secret.
    pub cookie_key: Vec<u8>,
    /// `RECORDING_PLAYBACK_FORMATS` (colon list, Scalelite's default six).
    pub formats: Vec<String>,
    /// `PLAYBACK_LINK_DIR` (default `/var/lib/ferrolite/playback-links`): symlinks
    /// `<format>/<recordID>` to the published files of recordings anyone may play; nginx
    /// serves these without asking the worker.
    pub link_dir: PathBuf,
}

impl fmt::Debug for PlaybackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaybackConfig")
            .field("token_timeout", &self.token_timeout)
            .field("cookie_timeout", &self.cookie_timeout)
            .field("cookie_key", &"<redacted>")
            .field("formats", &self.formats)
            .field("link_dir", &self.link_dir)
            .finish()
    }
}

impl PlaybackConfig {
    fn from_vars(v: &Vars<'_>, secrets: &[String]) -> Result<PlaybackConfig, ConfigError> {
        let minutes = |k: &str, d: u64| -> Result<Duration, ConfigError> {
            let m: u64 = v.num(k, d)?;
            if m == 0 {
                return Err(Vars::err(k, "must be at least 1 (minutes)"));
            }
            Ok(Duration::from_secs(m * 60))
        };
        let cookie_key = match v.get("SECRET_KEY_BASE") {
            Some(k) => k.as_bytes().to_vec(),
            None => {
                use hmac::Mac;
                let seed = secrets.first().map(String::as_str).unwrap_or("");
                let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(seed.as_bytes())
                    .expect("HMAC takes any key length");
                mac.update(b"ferrolite playback cookie key v1");
                mac.finalize().into_bytes().to_vec()
            }
        };
        let formats = playback_formats(v.get("RECORDING_PLAYBACK_FORMATS"));
        if let Some(bad) = formats.iter().find(|f| {
            !f.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return Err(Vars::err(
                "RECORDING_PLAYBACK_FORMATS",
                format!(
                    "{bad:?} is not a format name (letters, digits, - and _; separate with ':')"
                ),
            ));
        }
        Ok(PlaybackConfig {
            token_timeout: minutes("PROTECTED_RECORDINGS_TOKEN_TIMEOUT", 60)?,
            cookie_timeout: minutes("PROTECTED_RECORDINGS_TIMEOUT", 360)?,
            cookie_key,
            formats,
            link_dir: PathBuf::from(
                v.get("PLAYBACK_LINK_DIR")
                    .unwrap_or("/var/lib/ferrolite/playback-links"),
            ),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Recordings (issue 3). Scalelite's names and defaults, plus Ferrolite's importer switches.
// ---------------------------------------------------------------------------------------

/// Everything the recording importer and the recording API read.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingConfig {
    /// `RECORDING_DISABLED`: recording calls answer Scalelite's stubs; the importer idles.
    pub disabled: bool,
    /// `GET_RECORDINGS_API_FILTERED`: getRecordings needs meetingID or recordID.
    pub api_filtered: bool,
    /// `RECORDING_IMPORT_UNPUBLISHED`: new imports are stored unpublished.
    pub import_unpublished: bool,
    /// `RECORDING_SPOOL_DIR` (default `/var/bigbluebutton/spool`).
    pub spool_dir: PathBuf,
    /// `RECORDING_WORK_DIR` (default `/var/bigbluebutton/recording/scalelite`); should be on
    /// the same filesystem as the publish dirs so the final moves are renames.
    pub work_dir: PathBuf,
    /// `RECORDING_PUBLISH_DIR` (default `/var/bigbluebutton/published`).
    pub publish_dir: PathBuf,
    /// `RECORDING_UNPUBLISH_DIR` (default `/var/bigbluebutton/unpublished`).
    pub unpublish_dir: PathBuf,
    /// `RECORDING_IMPORT_POLL`: true = scan the spool every interval only; false (default) =
    /// inotify, plus a scan every interval as a safety net (NFS does not deliver events).
    pub import_poll: bool,
    /// `RECORDING_IMPORT_POLL_INTERVAL` (seconds, default 60).
    pub import_poll_interval: Duration,
    /// `RECORDING_IMPORT_SETTLE` (seconds, default 2): a spool file must be unchanged this
    /// long before it is imported (it may still be arriving over rsync or NFS).
    pub import_settle: Duration,
    /// `PROTECTED_RECORDINGS_ENABLED`: recordings imported while on are protected.
    pub protected_enabled: bool,
    /// `IMPORTER_ENABLED` (default true): run the importer role inside `serve`.
    pub importer_enabled: bool,
    /// `RECORDING_MAX_SIZE` (MiB, default 20480): the largest tarball accepted, and the most
    /// its extraction may write.
    pub max_size_bytes: u64,
    /// `RECORDING_MAX_ENTRIES` (default 200000): the most members a tarball may hold.
    pub max_entries: usize,
}

impl RecordingConfig {
    fn from_vars(v: &Vars<'_>) -> Result<RecordingConfig, ConfigError> {
        let dir = |k: &str, d: &str| PathBuf::from(v.get(k).unwrap_or(d));
        let max_mib: u64 = v.num("RECORDING_MAX_SIZE", 20480)?;
        if max_mib == 0 {
            return Err(Vars::err("RECORDING_MAX_SIZE", "must be at least 1 (MiB)"));
        }
        let interval = v.secs("RECORDING_IMPORT_POLL_INTERVAL", 60.0)?;
        if interval.is_zero() {
            return Err(Vars::err(
                "RECORDING_IMPORT_POLL_INTERVAL",
                "must be more than 0 seconds",
            ));
        }
        Ok(RecordingConfig {
            disabled: v.bool("RECORDING_DISABLED", false)?,
            api_filtered: v.bool("GET_RECORDINGS_API_FILTERED", false)?,
            import_unpublished: v.bool("RECORDING_IMPORT_UNPUBLISHED", false)?,
            spool_dir: dir("RECORDING_SPOOL_DIR", "/var/bigbluebutton/spool"),
            work_dir: dir(
                "RECORDING_WORK_DIR",
                "/var/bigbluebutton/recording/scalelite",
            ),
            publish_dir: dir("RECORDING_PUBLISH_DIR", "/var/bigbluebutton/published"),
            unpublish_dir: dir("RECORDING_UNPUBLISH_DIR", "/var/bigbluebutton/unpublished"),
            import_poll: v.bool("RECORDING_IMPORT_POLL", false)?,
            import_poll_interval: interval,
            import_settle: v.secs("RECORDING_IMPORT_SETTLE", 2.0)?,
            protected_enabled: v.bool("PROTECTED_RECORDINGS_ENABLED", false)?,
            importer_enabled: v.bool("IMPORTER_ENABLED", true)?,
            max_size_bytes: max_mib.saturating_mul(1024 * 1024),
            max_entries: match v.num("RECORDING_MAX_ENTRIES", 200_000usize)? {
                0 => return Err(Vars::err("RECORDING_MAX_ENTRIES", "must be at least 1")),
                n => n,
            },
        })
    }
}

// ---------------------------------------------------------------------------------------
// Multitenancy and FreeSWITCH dial-in (`crate::tenant`, `crate::dialin`).
// ---------------------------------------------------------------------------------------

/// Multitenancy and dial-in settings.
#[derive(Debug, Clone, Default)]
pub struct Tenancy {
    /// `MULTITENANCY_ENABLED`: the tenant comes from the request's Host.
    pub enabled: bool,
    /// `BASE_URL`: tenants are `<name>.<BASE_URL>`; unset: the first DNS label (Scalelite).
    pub base_url: Option<String>,
    /// `FSAPI_PASSWORD` (user `fsapi`); default the first load balancer secret; set but
    /// empty: no authentication (as Scalelite).
    pub fsapi_password: Option<String>,
    /// `FSAPI_MAX_DURATION` in minutes (default `MAX_MEETING_DURATION`; 0: no limit).
    pub fsapi_max_duration: u64,
    /// `VOICE_BRIDGE_MIN` / `VOICE_BRIDGE_MAX`: PIN digits the dial-in prompt accepts.
    pub voice_bridge_min: u32,
    pub voice_bridge_max: u32,
}

impl Tenancy {
    fn from_vars(
        v: &Vars<'_>,
        secrets: &[String],
        max_duration: u64,
    ) -> Result<Tenancy, ConfigError> {
        let fsapi_password = match v.0.get("FSAPI_PASSWORD") {
            Some(p) if p.trim().is_empty() => None,
            Some(p) => Some(p.trim().to_string()),
            None => secrets.first().cloned(),
        };
        let voice_bridge_min: u32 = v.num("VOICE_BRIDGE_MIN", 5)?;
        let voice_bridge_max: u32 = v.num("VOICE_BRIDGE_MAX", 9)?;
        if voice_bridge_min == 0 || voice_bridge_min > voice_bridge_max {
            return Err(Vars::err(
                "VOICE_BRIDGE_MIN",
                format!("must be at least 1 and not above VOICE_BRIDGE_MAX ({voice_bridge_max})"),
            ));
        }
        let base_url = v
            .get("BASE_URL")
            .map(crate::tenant::normalize_host)
            .filter(|b| !b.is_empty());
        Ok(Tenancy {
            enabled: v.bool("MULTITENANCY_ENABLED", false)?,
            base_url,
            fsapi_password,
            fsapi_max_duration: v.num("FSAPI_MAX_DURATION", max_duration)?,
            voice_bridge_min,
            voice_bridge_max,
        })
    }
}

/// Which load formula the poller uses (`LOAD_MODEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadModel {
    /// Scalelite's: attendees per meeting, a floor for young meetings, times the multiplier.
    Scalelite,
    /// Users, voice and video streams weighted, plus a reservation that decays with age.
    Weighted,
}

/// Weights for [`LoadModel::Weighted`] (`LOAD_WEIGHT_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadWeights {
    pub meeting: f64,
    pub user: f64,
    pub voice: f64,
    pub video: f64,
}

impl Default for LoadWeights {
    fn default() -> Self {
        LoadWeights {
            meeting: 1.0,
            user: 1.0,
            voice: 0.5,
            video: 2.0,
        }
    }
}

struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    /// The value, with blank treated as unset.
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    fn err(k: &str, m: impl Into<String>) -> ConfigError {
        ConfigError {
            var: k.to_string(),
            message: m.into(),
        }
    }

    fn bool(&self, k: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(Self::err(k, format!("expected true or false, got {v:?}"))),
            },
        }
    }

    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, ConfigError> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| Self::err(k, format!("expected a number, got {v:?}"))),
        }
    }

    fn secs(&self, k: &str, default: f64) -> Result<Duration, ConfigError> {
        let v: f64 = self.num(k, default)?;
        if !v.is_finite() || v < 0.0 {
            return Err(Self::err(k, "expected a non-negative number of seconds"));
        }
        Ok(Duration::from_secs_f64(v))
    }

    fn list(&self, k: &str) -> Vec<String> {
        self.get(k)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn params(&self, k: &str) -> ParamList {
        self.get(k)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|item| match item.split_once('=') {
                        Some((a, b)) => (a.trim().to_string(), b.to_string()),
                        None => (item.trim().to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What the configuration is loaded for: `serve` needs the load balancer secret,
/// the admin CLI does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    Cli,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(purpose: Purpose) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = std::env::vars().collect();
        Config::from_map(&map, purpose)
    }

    pub fn from_map(
        map: &HashMap<String, String>,
        purpose: Purpose,
    ) -> Result<Config, ConfigError> {
        let v = Vars(map);

        let mut secrets = Vec::new();
        if let Some(s) = v.get("LOADBALANCER_SECRET") {
            secrets.push(s.to_string());
        }
        if let Some(s) = v.get("LOADBALANCER_SECRETS") {
            secrets.extend(s.split(':').filter(|x| !x.is_empty()).map(str::to_string));
        }
        if purpose == Purpose::Serve && secrets.is_empty() {
            return Err(Vars::err(
                "LOADBALANCER_SECRET",
                "is not set; set it to the shared secret your front ends (Moodle, Greenlight, ...) use",
            ));
        }

        let (checksum_algorithms, outbound_algorithm) = match v
            .get("LOADBALANCER_CHECKSUM_ALGORITHM")
        {
            None => (Algorithm::ALL.to_vec(), Algorithm::Sha256),
            Some(list) => {
                let mut algs = Vec::new();
                for name in list.split(':').filter(|s| !s.is_empty()) {
                    let a = Algorithm::from_name(name).ok_or_else(|| {
                        Vars::err(
                            "LOADBALANCER_CHECKSUM_ALGORITHM",
                            format!("unknown algorithm {name:?}; use SHA1, SHA256, SHA384 or SHA512, separated by ':'"),
                        )
                    })?;
                    if !algs.contains(&a) {
                        algs.push(a);
                    }
                }
                let strongest = *algs.iter().max().ok_or_else(|| {
                    Vars::err("LOADBALANCER_CHECKSUM_ALGORITHM", "lists no algorithm")
                })?;
                (algs, strongest)
            }
        };

        let bind = parse_bind(v.get("BIND"), v.get("PORT"))?;

        let backends = Backends::from_vars(&v, purpose)?;
        let database_path = match v.get("DATABASE_URL") {
            None => PathBuf::from("ferrolite.db"),
            Some(_) if backends.postgres_url.is_some() => {
                PathBuf::from(v.get("SQLITE_PATH").unwrap_or("ferrolite.db"))
            }
            Some(url) => parse_database_url(url)?,
        };

        let load_model = match v.get("LOAD_MODEL").map(|s| s.to_ascii_lowercase()) {
            None => LoadModel::Scalelite,
            Some(s) if s == "scalelite" => LoadModel::Scalelite,
            Some(s) if s == "weighted" => LoadModel::Weighted,
            Some(s) => {
                return Err(Vars::err(
                    "LOAD_MODEL",
                    format!("unknown load model {s:?}; use scalelite or weighted"),
                ))
            }
        };
        let d = LoadWeights::default();
        let weights = LoadWeights {
            meeting: v.num("LOAD_WEIGHT_MEETING", d.meeting)?,
            user: v.num("LOAD_WEIGHT_USER", d.user)?,
            voice: v.num("LOAD_WEIGHT_VOICE", d.voice)?,
            video: v.num("LOAD_WEIGHT_VIDEO", d.video)?,
        };

        let voice_bridge_len: usize = v.num("VOICE_BRIDGE_LEN", 9)?;
        if !(5..=18).contains(&voice_bridge_len) {
            return Err(Vars::err(
                "VOICE_BRIDGE_LEN",
                "must be between 5 and 18 digits",
            ));
        }
        let poller_threads: usize = v.num("POLLER_THREADS", 5)?;
        if poller_threads == 0 {
            return Err(Vars::err("POLLER_THREADS", "must be at least 1"));
        }

        let max_meeting_duration = v.num("MAX_MEETING_DURATION", 0)?;
        let tenancy = Tenancy::from_vars(&v, &secrets, max_meeting_duration)?;
        let playback = PlaybackConfig::from_vars(&v, &secrets)?;
        let nginx = NginxConfig::from_vars(&v)?;
        Ok(Config {
            nginx,
            playback,
            tenancy,
            secrets,
            checksum_algorithms,
            outbound_algorithm,
            bind,
            database_path,
            url_host: v.get("URL_HOST").map(str::to_string),
            build_number: v.get("BUILD_NUMBER").map(str::to_string),
            max_meeting_duration,
            default_create_params: v.params("DEFAULT_CREATE_PARAMS"),
            override_create_params: v.params("OVERRIDE_CREATE_PARAMS"),
            create_exclude_params: v.list("CREATE_EXCLUDE_PARAMS"),
            default_join_params: v.params("DEFAULT_JOIN_PARAMS"),
            override_join_params: v.params("OVERRIDE_JOIN_PARAMS"),
            join_exclude_params: v.list("JOIN_EXCLUDE_PARAMS"),
            voice_bridge_len,
            use_external_voice_bridge: v.bool("USE_EXTERNAL_VOICE_BRIDGE", false)?,
            get_meetings_api_disabled: v.bool("GET_MEETINGS_API_DISABLED", false)?,
            get_meetings_timeout: v.secs("GET_MEETINGS_TIMEOUT", 3.0)?,
            connect_timeout: v.secs("CONNECT_TIMEOUT", 5.0)?,
            response_timeout: v.secs("RESPONSE_TIMEOUT", 10.0)?,
            server_id_is_hostname: v.bool("SERVER_ID_IS_HOSTNAME", false)?,
            poll_interval: v.secs("POLL_INTERVAL", 60.0)?,
            server_healthy_threshold: v.num("SERVER_HEALTHY_THRESHOLD", 1)?,
            server_unhealthy_threshold: v.num("SERVER_UNHEALTHY_THRESHOLD", 2)?,
            poller_threads,
            poller_wait_timeout: v.secs("POLLER_WAIT_TIMEOUT", 10.0)?,
            load_min_user_count: v.num("LOAD_MIN_USER_COUNT", 15)?,
            load_join_buffer_time: Duration::from_secs_f64(
                60.0 * v.num::<f64>("LOAD_JOIN_BUFFER_TIME", 15.0)?,
            ),
            load_model,
            weights,
            poller_enabled: v.bool("POLLER_ENABLED", true)?,
            allow_private_callbacks: v.bool("ALLOW_PRIVATE_CALLBACKS", false)?,
            callback_retry_base: v.secs("CALLBACK_RETRY_BASE", 5.0)?,
            callback_max_attempts: v.num("CALLBACK_MAX_ATTEMPTS", 12)?,
            callback_retention: Duration::from_secs_f64(
                86_400.0 * v.num::<f64>("CALLBACK_RETENTION", 30.0)?.max(0.0),
            ),
            role_lease_ttl: v
                .secs("ROLE_LEASE_TTL", 15.0)?
                .max(Duration::from_millis(300)),
            node_id: v
                .get("NODE_ID")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            recordings: RecordingConfig::from_vars(&v)?,
            backends,
            ops: OpsConfig::from_vars(&v)?,
            http: HttpLimits::from_vars(&v)?,
            backend: BackendLimits::from_vars(&v)?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// The nginx site (`crate::playback::nginx`). Only nginx reads these; the renderer takes
// everything else (BIND, URL_HOST, the recording dirs, formats) from the rest of `Config`.
// ---------------------------------------------------------------------------------------

/// Which site is rendered: Scalelite's `nginx/start` templates, first match wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxVariant {
    /// `NGINX_RECORDINGS_ONLY`: playback only, no API.
    RecordingsOnly,
    /// `NGINX_BEHIND_PROXY` (or Scalelite's `BEHIND_PROXY`): plain HTTP behind a TLS proxy
    /// that sets `X-Forwarded-Proto`.
    Proxy,
    /// `NGINX_SSL`: port 80 redirects to 443, TLS with Let's Encrypt-layout certificates.
    Ssl,
    /// Plain HTTP.
    Plain,
}

impl NginxVariant {
    pub const ALL: [NginxVariant; 4] = [
        NginxVariant::Plain,
        NginxVariant::Ssl,
        NginxVariant::Proxy,
        NginxVariant::RecordingsOnly,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NginxVariant::RecordingsOnly => "recordings-only",
            NginxVariant::Proxy => "proxy",
            NginxVariant::Ssl => "ssl",
            NginxVariant::Plain => "plain",
        }
    }
}

/// `NGINX_*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxConfig {
    pub variant: NginxVariant,
    /// `NGINX_LISTEN` (default `80`): a bare port listens on every IPv4 and IPv6 address.
    pub listen: String,
    /// `NGINX_SSL_LISTEN` (default `443`).
    pub ssl_listen: String,
    /// `NGINX_SSL_CERT` / `NGINX_SSL_KEY`: certificate files; unset: Scalelite's
    /// `/etc/nginx/ssl/live/$URL_HOST/{fullchain,privkey}.pem` (or `/etc/letsencrypt/live/…`
    /// when only that exists, found by `ferrolite nginx-config`).
    pub ssl_cert: Option<String>,
    pub ssl_key: Option<String>,
    /// `NGINX_DHPARAM`: a dhparam file.
    pub ssl_dhparam: Option<String>,
    /// `PLAYBACK_PLAYER_ROOT` (default `/var/bigbluebutton`): where
    /// `playback/presentation/2.3/` (BBB's player) lives.
    pub player_root: String,
}

impl NginxConfig {
    fn from_vars(v: &Vars<'_>) -> Result<NginxConfig, ConfigError> {
        let flag = |k: &str| v.bool(k, false);
        let variant = if flag("NGINX_RECORDINGS_ONLY")? {
            NginxVariant::RecordingsOnly
        } else if flag("NGINX_BEHIND_PROXY")? || v.0.contains_key("BEHIND_PROXY") {
            NginxVariant::Proxy
        } else if flag("NGINX_SSL")? {
            NginxVariant::Ssl
        } else {
            NginxVariant::Plain
        };
        let owned = |k: &str| v.get(k).map(str::to_string);
        Ok(NginxConfig {
            variant,
            listen: v.get("NGINX_LISTEN").unwrap_or("80").to_string(),
            ssl_listen: v.get("NGINX_SSL_LISTEN").unwrap_or("443").to_string(),
            ssl_cert: owned("NGINX_SSL_CERT"),
            ssl_key: owned("NGINX_SSL_KEY"),
            ssl_dhparam: owned("NGINX_DHPARAM"),
            player_root: v
                .get("PLAYBACK_PLAYER_ROOT")
                .unwrap_or("/var/bigbluebutton")
                .trim_end_matches('/')
                .to_string(),
        })
    }
}

/// `RECORDING_PLAYBACK_FORMATS` (`:`-separated), or Scalelite's default list.
pub fn playback_formats(value: Option<&str>) -> Vec<String> {
    match value {
        Some(l) => l
            .split(':')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
        None => DEFAULT_PLAYBACK_FORMATS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

fn parse_bind(bind: Option<&str>, port: Option<&str>) -> Result<Bind, ConfigError> {
    if let Some(b) = bind {
        if let Some(path) = b
            .strip_prefix("unix://")
            .or_else(|| b.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(Vars::err(
                    "BIND",
                    "unix: needs a socket path, e.g. unix:/run/ferrolite/api.sock",
                ));
            }
            return Ok(Bind::Unix(PathBuf::from(path)));
        }
        let addr = b.strip_prefix("tcp://").unwrap_or(b);
        return addr.parse().map(Bind::Tcp).map_err(|_| {
            Vars::err(
                "BIND",
                format!("{b:?} is neither unix:/path nor host:port (e.g. 127.0.0.1:3000)"),
            )
        });
    }
    let port: u16 = match port {
        None => 3000,
        Some(p) => p
            .parse()
            .map_err(|_| Vars::err("PORT", format!("expected a port number, got {p:?}")))?,
    };
    Ok(Bind::Tcp(SocketAddr::from(([127, 0, 0, 1], port))))
}

// ---------------------------------------------------------------------------------------
// Operations (issue 12): status page, metrics listener, autoscaling signal, usage.
// ---------------------------------------------------------------------------------------

/// What operators configure to see and steer the pool.
#[derive(Clone, PartialEq)]
pub struct OpsConfig {
    /// `ADMIN_PASSWORD`: enables the status page and `/ferrolite/api/…` (HTTP Basic with
    /// any user name, or the page's login form). Unset: those paths answer 404.
    pub admin_password: Option<String>,
    /// `ADMIN_ALLOW` (comma list of addresses or CIDR networks): the networks nginx lets
    /// reach the status page and the admin JSON; empty: nginx renders no such location.
    pub admin_allow: Vec<String>,
    /// `METRICS_BIND` (e.g. `127.0.0.1:9187`): a listener serving only `/metrics`.
    pub metrics_bind: Option<SocketAddr>,
    /// `AUTOSCALE_*`: see [`AutoscaleConfig`].
    pub autoscale: AutoscaleConfig,
    /// `USAGE_RETENTION_DAYS` (default 400): usage days older than this are deleted.
    pub usage_retention_days: u32,
}

impl fmt::Debug for OpsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsConfig")
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .field("admin_allow", &self.admin_allow)
            .field("metrics_bind", &self.metrics_bind)
            .field("autoscale", &self.autoscale)
            .field("usage_retention_days", &self.usage_retention_days)
            .finish()
    }
}

/// The autoscaling signal (`crate::autoscale`).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleConfig {
    /// `AUTOSCALE_TARGET_LOAD`: the load per online server the pool should run at. Unset:
    /// no signal is computed.
    pub target_load: Option<f64>,
    /// `AUTOSCALE_MIN_SERVERS` (default 1).
    pub min_servers: u32,
    /// `AUTOSCALE_MAX_SERVERS` (default 100).
    pub max_servers: u32,
    /// `AUTOSCALE_HYSTERESIS` (fraction, default 0.2): no change while the load per
    /// server stays within this band around the target.
    pub hysteresis: f64,
    /// `AUTOSCALE_COOLDOWN` (seconds, default 600): after a change, no scale-in for this long.
    pub cooldown: Duration,
    /// `AUTOSCALE_HOOK`: a program run with the decision as JSON on stdin when the
    /// desired count changes.
    pub hook: Option<PathBuf>,
    /// `AUTOSCALE_HOOK_TIMEOUT` (seconds, default 60): the hook is killed after this long.
    pub hook_timeout: Duration,
}

impl OpsConfig {
    fn from_vars(v: &Vars<'_>) -> Result<OpsConfig, ConfigError> {
        let admin_allow = v.list("ADMIN_ALLOW");
        for net in &admin_allow {
            if !valid_cidr(net) {
                return Err(Vars::err(
                    "ADMIN_ALLOW",
                    format!("{net:?} is not an address or CIDR network (e.g. 10.0.0.0/8,::1)"),
                ));
            }
        }
        let metrics_bind = match v.get("METRICS_BIND") {
            None => None,
            Some(b) => Some(b.parse().map_err(|_| {
                Vars::err(
                    "METRICS_BIND",
                    format!("{b:?} is not host:port (e.g. 127.0.0.1:9187)"),
                )
            })?),
        };
        let target_load = match v.get("AUTOSCALE_TARGET_LOAD") {
            None => None,
            Some(_) => {
                let t: f64 = v.num("AUTOSCALE_TARGET_LOAD", 0.0)?;
                if !(t.is_finite() && t > 0.0) {
                    return Err(Vars::err(
                        "AUTOSCALE_TARGET_LOAD",
                        "must be a positive number",
                    ));
                }
                Some(t)
            }
        };
        let min_servers: u32 = v.num("AUTOSCALE_MIN_SERVERS", 1)?;
        let max_servers: u32 = v.num("AUTOSCALE_MAX_SERVERS", 100)?;
        if max_servers < min_servers.max(1) {
            return Err(Vars::err(
                "AUTOSCALE_MAX_SERVERS",
                format!("must be at least AUTOSCALE_MIN_SERVERS ({min_servers}) and 1"),
            ));
        }
        let hysteresis: f64 = v.num("AUTOSCALE_HYSTERESIS", 0.2)?;
        if !(0.0..1.0).contains(&hysteresis) {
            return Err(Vars::err(
                "AUTOSCALE_HYSTERESIS",
                "must be a fraction from 0 to below 1 (e.g. 0.2)",
            ));
        }
        Ok(OpsConfig {
            admin_password: v.get("ADMIN_PASSWORD").map(str::to_string),
            admin_allow,
            metrics_bind,
            autoscale: AutoscaleConfig {
                target_load,
                min_servers,
                max_servers,
                hysteresis,
                cooldown: v.secs("AUTOSCALE_COOLDOWN", 600.0)?,
                hook: v.get("AUTOSCALE_HOOK").map(PathBuf::from),
                hook_timeout: v.secs("AUTOSCALE_HOOK_TIMEOUT", 60.0)?,
            },
            usage_retention_days: v.num("USAGE_RETENTION_DAYS", 400)?,
        })
    }
}

/// An IP address or `address/prefix` network, as nginx's `allow` takes it.
pub fn valid_cidr(s: &str) -> bool {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    len.is_none_or(|l| l.parse::<u8>().is_ok_and(|n| n <= max))
}

fn parse_database_url(url: &str) -> Result<PathBuf, ConfigError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() {
        return Err(Vars::err("DATABASE_URL", "names no file"));
    }
    Ok(PathBuf::from(path))
}

// ---------------------------------------------------------------------------------------
// The HTTP edge and the BBB answers (issue 9).
// ---------------------------------------------------------------------------------------

/// What one client may hold of the HTTP listener (`crate::http`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// `HTTP_MAX_CONNECTIONS` (default 4096, capped by the file-descriptor limit): open
    /// connections; at the limit, idle ones are closed to make room, then new ones wait.
    pub max_connections: usize,
    /// `HTTP_HEADER_TIMEOUT` (seconds, default 10): a request's headers must arrive within it.
    pub header_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT` (seconds, default 75): a kept-alive connection with no request is
    /// closed after it (longer than nginx's 60 s upstream keep-alive, so nginx closes first).
    pub idle_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT` (seconds, default 30): a buffered request body must arrive within
    /// it; a streamed upload may not pause longer than it between reads.
    pub body_timeout: Duration,
    /// `HTTP_MAX_HEADER_SIZE` (bytes, default 32768): request line and headers together.
    pub max_header_bytes: usize,
}

impl HttpLimits {
    fn from_vars(v: &Vars<'_>) -> Result<HttpLimits, ConfigError> {
        let positive = |k: &str, d: f64| -> Result<Duration, ConfigError> {
            let t = v.secs(k, d)?;
            if t.is_zero() {
                return Err(Vars::err(k, "must be more than 0 seconds"));
            }
            Ok(t)
        };
        let max_connections: usize = v.num("HTTP_MAX_CONNECTIONS", 4096)?;
        if max_connections == 0 {
            return Err(Vars::err("HTTP_MAX_CONNECTIONS", "must be at least 1"));
        }
        let max_header_bytes: usize = v.num("HTTP_MAX_HEADER_SIZE", 32 * 1024)?;
        if max_header_bytes < 8192 {
            return Err(Vars::err(
                "HTTP_MAX_HEADER_SIZE",
                "must be at least 8192 bytes",
            ));
        }
        Ok(HttpLimits {
            max_connections,
            header_timeout: positive("HTTP_HEADER_TIMEOUT", 10.0)?,
            idle_timeout: positive("HTTP_IDLE_TIMEOUT", 75.0)?,
            body_timeout: positive("HTTP_BODY_TIMEOUT", 30.0)?,
            max_header_bytes,
        })
    }
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(30),
            max_header_bytes: 32 * 1024,
        }
    }
}

/// What a BBB server may send back (`crate::bbb`) and how create failures count.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendLimits {
    /// `BBB_MAX_ANSWER_SIZE` (MiB, default 64): a longer answer is a failed call.
    pub max_answer_bytes: usize,
    /// `CREATE_FAILURE_LIMIT` (default 3): failed creates in a row that take a server out
    /// of placement until its next successful poll or `CREATE_FAILURE_COOLDOWN`.
    pub create_failure_limit: u32,
    /// `CREATE_FAILURE_COOLDOWN` (seconds, default 60).
    pub create_failure_cooldown: Duration,
}

impl BackendLimits {
    fn from_vars(v: &Vars<'_>) -> Result<BackendLimits, ConfigError> {
        let mib: usize = v.num("BBB_MAX_ANSWER_SIZE", 64)?;
        if mib == 0 {
            return Err(Vars::err("BBB_MAX_ANSWER_SIZE", "must be at least 1 (MiB)"));
        }
        Ok(BackendLimits {
            max_answer_bytes: mib.saturating_mul(1024 * 1024),
            create_failure_limit: v.num("CREATE_FAILURE_LIMIT", 3)?,
            create_failure_cooldown: v.secs("CREATE_FAILURE_COOLDOWN", 60.0)?,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Shared-state backends (issue 10, `crate::store::redis`, `crate::store::postgres`).
// ---------------------------------------------------------------------------------------

/// Where the state shared between processes and hosts lives. Both `None`: the embedded
/// SQLite file holds everything (the default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Backends {
    /// `REDIS_URL` / `REDIS_SENTINELS`: leases and one-time playback tokens.
    pub redis: Option<RedisConfig>,
    /// `DATABASE_URL` when it names PostgreSQL: the callback outbox and the recordings index.
    pub postgres_url: Option<String>,
}

/// How to reach Redis, and under which key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub target: RedisTarget,
    /// `REDIS_NAMESPACE` (default `ferrolite`): every key starts with `<namespace>:`.
    pub namespace: String,
    /// `REDIS_POOL` (default 4): multiplexed connections shared by the process.
    pub pool: usize,
}

/// One Redis server (`redis://`, `rediss://` for TLS), or the master a set of Sentinels names.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    Url(String),
    Sentinel {
        /// `redis://host:port` (or `rediss://`) of each Sentinel.
        sentinels: Vec<String>,
        /// The master's name (`REDIS_SENTINEL_MASTER`).
        master: String,
        /// Credentials and database for the master, as a URL whose host is unused.
        auth_url: Option<String>,
    },
}

impl fmt::Debug for RedisTarget {
    /// Never prints a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Url(u) => write!(f, "{}", redact_url(u)),
            RedisTarget::Sentinel {
                sentinels,
                master,
                auth_url,
            } => write!(
                f,
                "sentinel master {master} via {} ({})",
                sentinels.join(","),
                auth_url.as_deref().map(redact_url).unwrap_or_default()
            ),
        }
    }
}

/// The URL without its password.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut p) if p.password().is_some() => {
            let _ = p.set_password(Some("***"));
            p.to_string()
        }
        Ok(p) => p.to_string(),
        Err(_) => "(unparsable URL)".to_string(),
    }
}

impl Backends {
    fn from_vars(v: &Vars, purpose: Purpose) -> Result<Backends, ConfigError> {
        let postgres_url = match v.get("DATABASE_URL") {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                postgres_target(u).map_err(|e| Vars::err("DATABASE_URL", e))?;
                Some(u.to_string())
            }
            _ => None,
        };
        let namespace = v.get("REDIS_NAMESPACE").unwrap_or("ferrolite").to_string();
        if namespace.contains(char::is_whitespace) {
            return Err(Vars::err("REDIS_NAMESPACE", "must not contain spaces"));
        }
        let pool: usize = v.num("REDIS_POOL", 4)?;
        if pool == 0 {
            return Err(Vars::err("REDIS_POOL", "must be at least 1"));
        }
        let target = redis_target(v)?;
        let backends = Backends {
            redis: target.map(|target| RedisConfig {
                target,
                namespace,
                pool,
            }),
            postgres_url,
        };
        if purpose == Purpose::Serve {
            backends
                .check_serve()
                .map_err(|m| Vars::err("DATABASE_URL", m))?;
        }
        Ok(backends)
    }

    /// Refuses (one line) a combination that cannot be safe when several processes or hosts
    /// share it: a shared outbox in PostgreSQL with the callback sender's lease in a local
    /// SQLite file would let every host send the same callbacks.
    pub fn check_serve(&self) -> Result<(), String> {
        if self.postgres_url.is_some() && self.redis.is_none() {
            return Err("PostgreSQL needs REDIS_URL too: leases in a local SQLite file cannot keep two hosts from sending the same callback".into());
        }
        Ok(())
    }
}

fn redis_target(v: &Vars) -> Result<Option<RedisTarget>, ConfigError> {
    let url = v.get("REDIS_URL");
    if let Some(list) = v.get("REDIS_SENTINELS") {
        let master = v.get("REDIS_SENTINEL_MASTER").ok_or_else(|| {
            Vars::err(
                "REDIS_SENTINEL_MASTER",
                "is not set; REDIS_SENTINELS needs the master's name",
            )
        })?;
        let tls = url.is_some_and(|u| u.starts_with("rediss://"));
        let sentinels = sentinel_nodes(list, tls).map_err(|m| Vars::err("REDIS_SENTINELS", m))?;
        if let Some(u) = url {
            check_redis_url(u)?;
        }
        return Ok(Some(RedisTarget::Sentinel {
            sentinels,
            master: master.to_string(),
            auth_url: url.map(str::to_string),
        }));
    }
    let Some(u) = url else { return Ok(None) };
    if let Some(rest) = u
        .strip_prefix("redis+sentinel://")
        .or_else(|| u.strip_prefix("rediss+sentinel://"))
    {
        let tls = u.starts_with("rediss+");
        // [user:password@]host:port[,host:port...]/master[/db]
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let master = parts.next().ok_or_else(|| {
            Vars::err(
                "REDIS_URL",
                "a redis+sentinel:// URL names the master after the hosts: redis+sentinel://h1:26379,h2:26379/mymaster",
            )
        })?;
        let db = parts.next().unwrap_or("0");
        let sentinels = sentinel_nodes(hosts, tls).map_err(|m| Vars::err("REDIS_URL", m))?;
        let scheme = if tls { "rediss" } else { "redis" };
        let auth_url = format!(
            "{scheme}://{}localhost/{db}",
            auth.map(|a| format!("{a}@")).unwrap_or_default()
        );
        check_redis_url(&auth_url)?;
        return Ok(Some(RedisTarget::Sentinel {
            sentinels,
            master: master.to_string(),
            auth_url: Some(auth_url),
        }));
    }
    check_redis_url(u)?;
    Ok(Some(RedisTarget::Url(u.to_string())))
}

fn check_redis_url(u: &str) -> Result<(), ConfigError> {
    let parsed =
        url::Url::parse(u).map_err(|e| Vars::err("REDIS_URL", format!("is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "redis" | "rediss") {
        return Err(Vars::err(
            "REDIS_URL",
            "use redis://, rediss:// (TLS) or redis+sentinel://",
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Vars::err("REDIS_URL", "names no host"));
    }
    Ok(())
}

/// `host:port,host:port` as Sentinel URLs.
fn sentinel_nodes(list: &str, tls: bool) -> Result<Vec<String>, String> {
    let scheme = if tls { "rediss" } else { "redis" };
    let nodes: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            let (host, port) = h
                .rsplit_once(':')
                .ok_or_else(|| format!("{h:?} is not host:port"))?;
            port.parse::<u16>()
                .map_err(|_| format!("{h:?} has no valid port"))?;
            if host.is_empty() {
                return Err(format!("{h:?} names no host"));
            }
            Ok(format!("{scheme}://{host}:{port}"))
        })
        .collect::<Result<_, _>>()?;
    if nodes.is_empty() {
        return Err("lists no Sentinel (host:port,host:port)".into());
    }
    Ok(nodes)
}

/// How a PostgreSQL connection is secured: libpq's `sslmode` and `sslrootcert`, read from
/// `DATABASE_URL` ([`postgres_target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgSslMode {
    Disable,
    /// TLS when the server offers it (libpq's default); the certificate is checked only
    /// against a given `sslrootcert`.
    Prefer,
    /// TLS or no connection; the certificate is checked only against a given `sslrootcert`.
    Require,
    /// TLS with a certificate signed by a trusted CA, whatever name it carries.
    VerifyCa,
    /// TLS with a certificate signed by a trusted CA, for the host connected to.
    VerifyFull,
}

/// A parsed `DATABASE_URL=postgres://…`.
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    /// Everything but the TLS parameters tokio-postgres does not know.
    pub config: tokio_postgres::Config,
    pub ssl_mode: PgSslMode,
    /// `sslrootcert=<PEM file>`: the CAs to trust instead of the public (Mozilla) ones.
    pub root_cert: Option<PathBuf>,
}

/// Parses a PostgreSQL URL with libpq's TLS parameters: `sslmode` (`disable`, `prefer`,
/// `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file; `system`: the
/// public CAs); the message says what is wrong.
pub fn postgres_target(url: &str) -> Result<PostgresTarget, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept: Vec<&str> = Vec::new();
    let mut ssl_mode = PgSslMode::Prefer;
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
        match k {
            "sslmode" => {
                ssl_mode = match v.as_ref() {
                    "disable" => PgSslMode::Disable,
                    "allow" | "prefer" => PgSslMode::Prefer,
                    "require" => PgSslMode::Require,
                    "verify-ca" => PgSslMode::VerifyCa,
                    "verify-full" => PgSslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                        ))
                    }
                }
            }
            "sslrootcert" if v.is_empty() => return Err("sslrootcert= names no file".into()),
            "sslrootcert" if v == "system" => root_cert = None,
            "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| format!("is not a PostgreSQL URL: {e}"))?;
    config.ssl_mode(match ssl_mode {
        PgSslMode::Disable => tokio_postgres::config::SslMode::Disable,
        PgSslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    Ok(PostgresTarget {
        config,
        ssl_mode,
        root_cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map, Purpose::Serve)
    }

    #[test]
    fn serve_requires_a_secret_and_names_the_variable() {
        let e = cfg(&[]).unwrap_err();
        assert_eq!(e.var, "LOADBALANCER_SECRET");
        assert!(cfg(&[("LOADBALANCER_SECRETS", "a:b")]).is_ok());
    }

    #[test]
    fn secrets_are_the_secret_then_the_list() {
        let c = cfg(&[
            ("LOADBALANCER_SECRET", "one"),
            ("LOADBALANCER_SECRETS", "two:three"),
        ])
        .unwrap();
        assert_eq!(c.secrets, vec!["one", "two", "three"]);
    }

    #[test]
    fn defaults_match_scalelite() {
        let c = cfg(&[("LOADBALANCER_SECRET", "s")]).unwrap();
        assert_eq!(c.bind, Bind::Tcp("127.0.0.1:3000".parse().unwrap()));
        assert_eq!(c.outbound_algorithm, Algorithm::Sha256);
        assert_eq!(c.checksum_algorithms.len(), 4);
        assert_eq!(c.voice_bridge_len, 9);
        assert_eq!(c.server_unhealthy_threshold, 2);
        assert_eq!(c.load_join_buffer_time, Duration::from_secs(900));
        assert_eq!(c.database_path, PathBuf::from("ferrolite.db"));
    }

    #[test]
    fn bind_accepts_unix_sockets_and_addresses() {
        let c = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("BIND", "unix:/run/f/api.sock"),
        ])
        .unwrap();
        assert_eq!(c.bind, Bind::Unix("/run/f/api.sock".into()));
        let c = cfg(&[("LOADBALANCER_SECRET", "s"), ("BIND", "tcp://0.0.0.0:80")]).unwrap();
        assert_eq!(c.bind, Bind::Tcp("0.0.0.0:80".parse().unwrap()));
        assert_eq!(
            cfg(&[("LOADBALANCER_SECRET", "s"), ("PORT", "x")])
                .unwrap_err()
                .var,
            "PORT"
        );
        assert_eq!(
            cfg(&[("LOADBALANCER_SECRET", "s"), ("BIND", "nonsense")])
                .unwrap_err()
                .var,
            "BIND"
        );
    }

    #[test]
    fn algorithm_list_limits_and_picks_the_strongest_for_outbound() {
        let c = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("LOADBALANCER_CHECKSUM_ALGORITHM", "SHA1:sha512"),
        ])
        .unwrap();
        assert_eq!(
            c.checksum_algorithms,
            vec![Algorithm::Sha1, Algorithm::Sha512]
        );
        assert_eq!(c.outbound_algorithm, Algorithm::Sha512);
        let e = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("LOADBALANCER_CHECKSUM_ALGORITHM", "MD5"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "LOADBALANCER_CHECKSUM_ALGORITHM");
    }

    #[test]
    fn param_lists_split_on_comma_then_first_equals() {
        let c = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("DEFAULT_CREATE_PARAMS", "a=1,b=x=y,c"),
        ])
        .unwrap();
        assert_eq!(
            c.default_create_params,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x=y".into()),
                ("c".into(), "".into())
            ]
        );
    }

    #[test]
    fn bad_numbers_name_their_variable() {
        let e = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("MAX_MEETING_DURATION", "ten"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "MAX_MEETING_DURATION");
        let e = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("DATABASE_URL", "postgres://x:notaport/db"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
    }

    #[test]
    fn recording_settings_default_to_scalelite_and_validate() {
        let c = cfg(&[("LOADBALANCER_SECRET", "s")]).unwrap().recordings;
        assert!(!c.disabled && !c.api_filtered && !c.import_unpublished && !c.import_poll);
        assert!(c.importer_enabled && !c.protected_enabled);
        assert_eq!(c.spool_dir, PathBuf::from("/var/bigbluebutton/spool"));
        assert_eq!(
            c.work_dir,
            PathBuf::from("/var/bigbluebutton/recording/scalelite")
        );
        assert_eq!(c.publish_dir, PathBuf::from("/var/bigbluebutton/published"));
        assert_eq!(
            c.unpublish_dir,
            PathBuf::from("/var/bigbluebutton/unpublished")
        );
        assert_eq!(c.import_poll_interval, Duration::from_secs(60));
        assert_eq!(c.max_size_bytes, 20480 * 1024 * 1024);
        let c = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("RECORDING_DISABLED", "TRUE"),
            ("RECORDING_IMPORT_POLL", "true"),
            ("RECORDING_IMPORT_POLL_INTERVAL", "5"),
            ("RECORDING_SPOOL_DIR", "/srv/spool"),
            ("PROTECTED_RECORDINGS_ENABLED", "true"),
            ("IMPORTER_ENABLED", "false"),
            ("RECORDING_MAX_SIZE", "10"),
        ])
        .unwrap()
        .recordings;
        assert!(c.disabled && c.import_poll && c.protected_enabled && !c.importer_enabled);
        assert_eq!(c.import_poll_interval, Duration::from_secs(5));
        assert_eq!(c.spool_dir, PathBuf::from("/srv/spool"));
        assert_eq!(c.max_size_bytes, 10 * 1024 * 1024);
        for (k, v) in [
            ("RECORDING_MAX_SIZE", "0"),
            ("RECORDING_IMPORT_POLL_INTERVAL", "0"),
            ("RECORDING_DISABLED", "maybe"),
        ] {
            assert_eq!(
                cfg(&[("LOADBALANCER_SECRET", "s"), (k, v)])
                    .unwrap_err()
                    .var,
                k
            );
        }
    }

    #[test]
    fn tenancy_and_dial_in_follow_scalelite_defaults() {
        let c = cfg(&[("LOADBALANCER_SECRET", "s"), ("MAX_MEETING_DURATION", "90")]).unwrap();
        let t = &c.tenancy;
        assert!(!t.enabled);
        assert_eq!(t.base_url, None);
        assert_eq!(
            t.fsapi_password.as_deref(),
            Some("s"),
            "the first LB secret"
        );
        assert_eq!(t.fsapi_max_duration, 90, "MAX_MEETING_DURATION");
        assert_eq!((t.voice_bridge_min, t.voice_bridge_max), (5, 9));
        let c = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("MULTITENANCY_ENABLED", "TRUE"),
            ("BASE_URL", "https://LB.example.com/"),
            ("FSAPI_PASSWORD", ""),
        ])
        .unwrap();
        assert!(c.tenancy.enabled);
        assert_eq!(c.tenancy.base_url.as_deref(), Some("lb.example.com"));
        assert_eq!(
            c.tenancy.fsapi_password, None,
            "set but empty: no authentication"
        );
        let e = cfg(&[("LOADBALANCER_SECRET", "s"), ("VOICE_BRIDGE_MIN", "10")]).unwrap_err();
        assert_eq!(e.var, "VOICE_BRIDGE_MIN");
    }

    #[test]
    fn backends_default_to_sqlite_alone() {
        let c = cfg(&[("LOADBALANCER_SECRET", "s")]).unwrap();
        assert_eq!(c.backends, Backends::default());
        assert_eq!(c.database_path, PathBuf::from("ferrolite.db"));
    }

    #[test]
    fn redis_urls_with_tls_auth_and_sentinels_parse() {
        let b = |pairs: &[(&str, &str)]| {
            let mut all = vec![("LOADBALANCER_SECRET", "s")];
            all.extend_from_slice(pairs);
            cfg(&all).map(|c| c.backends)
        };
        let r = b(&[("REDIS_URL", "rediss://user:pw@cache.example:6380/2")])
            .unwrap()
            .redis
            .unwrap();
        assert_eq!(
            r.target,
            RedisTarget::Url("rediss://user:pw@cache.example:6380/2".into())
        );
        assert_eq!((r.namespace.as_str(), r.pool), ("ferrolite", 4));
        assert!(!format!("{r:?}").contains("pw"), "Debug hides the password");

        let r = b(&[
            ("REDIS_SENTINELS", "s1:26379, s2:26379"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
            ("REDIS_NAMESPACE", "lb"),
            ("REDIS_POOL", "8"),
        ])
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(
            r.target,
            RedisTarget::Sentinel {
                sentinels: vec!["redis://s1:26379".into(), "redis://s2:26379".into()],
                master: "mymaster".into(),
                auth_url: None,
            }
        );
        assert_eq!((r.namespace.as_str(), r.pool), ("lb", 8));

        let r = b(&[(
            "REDIS_URL",
            "redis+sentinel://:pw@s1:26379,s2:26380/mymaster/3",
        )])
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(
            r.target,
            RedisTarget::Sentinel {
                sentinels: vec!["redis://s1:26379".into(), "redis://s2:26380".into()],
                master: "mymaster".into(),
                auth_url: Some("redis://:pw@localhost/3".into()),
            }
        );

        for (k, bad) in [
            ("REDIS_URL", "http://cache:6379"),
            ("REDIS_URL", "not a url"),
            ("REDIS_URL", "redis+sentinel://s1:26379"),
            ("REDIS_URL", "redis+sentinel://s1:nope/m"),
            ("REDIS_POOL", "0"),
            ("REDIS_SENTINELS", "s1:26379"),
        ] {
            let mut pairs = vec![(k, bad)];
            if k == "REDIS_POOL" {
                pairs.push(("REDIS_URL", "redis://c"));
            }
            assert!(b(&pairs).is_err(), "{k}={bad} is refused");
        }
    }

    #[test]
    fn postgres_needs_redis_to_serve() {
        let e = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("DATABASE_URL", "postgres://u@db.example/ferrolite"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        assert!(e.message.contains("REDIS_URL"), "{}", e.message);
        let c = cfg(&[
            ("LOADBALANCER_SECRET", "s"),
            ("DATABASE_URL", "postgres://u@db.example/ferrolite"),
            ("REDIS_URL", "redis://cache.example/"),
        ])
        .unwrap();
        assert_eq!(
            c.backends.postgres_url.as_deref(),
            Some("postgres://u@db.example/ferrolite")
        );
        let cli = Config::from_map(
            &[("DATABASE_URL", "postgres://u@db.example/ferrolite")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Purpose::Cli,
        )
        .unwrap();
        assert!(
            cli.backends.postgres_url.is_some(),
            "the CLI may migrate alone"
        );
    }

    #[test]
    fn postgres_urls_carry_libpq_tls_parameters() {
        let t = postgres_target(
            "postgres://u:pw@db.example:5433/f?sslmode=verify-full&application_name=lb&sslrootcert=%2Fetc%2Fca%20x.pem",
        )
        .unwrap();
        assert_eq!(t.ssl_mode, PgSslMode::VerifyFull);
        assert_eq!(t.root_cert, Some(PathBuf::from("/etc/ca x.pem")));
        assert_eq!(t.config.get_application_name(), Some("lb"));
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let t = postgres_target("postgresql://db/f").unwrap();
        assert_eq!((t.ssl_mode, t.root_cert), (PgSslMode::Prefer, None));
        let t = postgres_target("postgres://db/f?sslmode=disable&sslrootcert=system").unwrap();
        assert_eq!((t.ssl_mode, t.root_cert), (PgSslMode::Disable, None));
        assert!(postgres_target("postgres://db/f?sslmode=on")
            .unwrap_err()
            .contains("sslmode=on"));
        assert!(postgres_target("postgres://db/f?sslrootcert=").is_err());
        assert!(postgres_target("postgres://db/f?nonsense=1").is_err());
    }
}
