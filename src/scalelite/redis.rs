//! Reads Scalelite's Redis: every key under the namespace prefix (`scalelite:` unless
//! `REDIS_NAMESPACE` said otherwise), with read commands only (SMEMBERS, HGETALL, ZSCORE).

use std::collections::{HashMap, HashSet};

use redis::AsyncCommands;

use super::{redact_url, ImportError, RedisState, SlMeeting, SlServer, SlTenant, SlTenantSetting};

/// The tenant hash fields that make up its LRS settings.
const LRS_FIELDS: &[&str] = &[
    "lrs_endpoint",
    "lrs_username",
    "lrs_password",
    "kc_token_url",
    "kc_client_id",
    "kc_client_secret",
    "kc_username",
    "kc_password",
];

struct Reader {
    con: redis::aio::MultiplexedConnection,
    prefix: String,
    url: String,
}

impl Reader {
    fn err(&self, e: redis::RedisError) -> ImportError {
        ImportError::Redis {
            url: self.url.clone(),
            message: e.to_string(),
        }
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    async fn members(&mut self, k: &str) -> Result<Vec<String>, ImportError> {
        let key = self.key(k);
        let mut v: Vec<String> = self.con.smembers(&key).await.map_err(|e| self.err(e))?;
        v.sort();
        Ok(v)
    }

    async fn hash(&mut self, k: &str) -> Result<HashMap<String, String>, ImportError> {
        let key = self.key(k);
        self.con.hgetall(&key).await.map_err(|e| self.err(e))
    }

    async fn score(&mut self, set: &str, member: &str) -> Result<Option<f64>, ImportError> {
        let key = self.key(set);
        self.con.zscore(&key, member).await.map_err(|e| self.err(e))
    }
}

fn num(h: &HashMap<String, String>, k: &str) -> u32 {
    h.get(k).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn nonempty(h: &HashMap<String, String>, k: &str) -> Option<String> {
    h.get(k).filter(|v| !v.is_empty()).cloned()
}

/// Reads servers, tenants, tenant settings and running meetings.
pub async fn read(url: &str, namespace: &str) -> Result<RedisState, ImportError> {
    let shown = redact_url(url);
    let client = redis::Client::open(url).map_err(|e| ImportError::Redis {
        url: shown.clone(),
        message: format!("not a Redis URL: {e}"),
    })?;
    let con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| ImportError::Redis {
            url: shown.clone(),
            message: format!("cannot connect: {e}"),
        })?;
    let prefix = if namespace.is_empty() {
        String::new()
    } else {
        format!("{namespace}:")
    };
    let mut r = Reader {
        con,
        prefix,
        url: shown,
    };
    let mut state = RedisState::default();

    let enabled: HashSet<String> = r.members("server_enabled").await?.into_iter().collect();
    for id in r.members("servers").await? {
        let h = r.hash(&format!("server:{id}")).await?;
        if h.is_empty() {
            state.servers_without_hash.push(id);
            continue;
        }
        let server_state = nonempty(&h, "state");
        let load = if server_state.as_deref() == Some("cordoned") {
            r.score("cordoned_server_load", &id).await?
        } else {
            r.score("server_load", &id).await?
        };
        // Scalelite keeps the health counters under the bare server id.
        let counters = r.hash(&id).await?;
        state.servers.push(SlServer {
            url: h.get("url").cloned().unwrap_or_default(),
            secret: h.get("secret").cloned().unwrap_or_default(),
            tag: nonempty(&h, "tag"),
            state: server_state,
            enabled_member: enabled.contains(&id),
            online: h.get("online").map(|v| v == "true").unwrap_or(false),
            load_multiplier: nonempty(&h, "load_multiplier"),
            load,
            meetings: num(&h, "meetings"),
            users: num(&h, "users"),
            largest_meeting: num(&h, "largest_meeting"),
            videos: num(&h, "videos"),
            bbb_version: h.get("bbb_version").cloned().unwrap_or_default(),
            healthy_counter: num(&counters, "healthy_counter"),
            unhealthy_counter: num(&counters, "unhealthy_counter"),
            id,
        });
    }

    for id in r.members("tenants").await? {
        let h = r.hash(&format!("tenant:{id}")).await?;
        if h.is_empty() {
            state.tenants_without_hash.push(id);
            continue;
        }
        let lrs = LRS_FIELDS
            .iter()
            .filter_map(|f| nonempty(&h, f).map(|v| (f.to_string(), v)))
            .collect();
        for sid in r.members(&format!("tenant_settings:{id}")).await? {
            let s = r.hash(&format!("tenant_setting:{sid}")).await?;
            if s.is_empty() {
                continue;
            }
            state.settings.push(SlTenantSetting {
                tenant_id: s.get("tenant_id").cloned().unwrap_or_else(|| id.clone()),
                param: s.get("param").cloned().unwrap_or_default(),
                value: s.get("value").cloned().unwrap_or_default(),
                override_flag: s.get("override").cloned().unwrap_or_default(),
                id: sid,
            });
        }
        state.tenants.push(SlTenant {
            name: h.get("name").cloned().unwrap_or_default(),
            secrets: h.get("secrets").cloned().unwrap_or_default(),
            lrs,
            id,
        });
    }

    for id in r.members("meetings").await? {
        let h = r.hash(&format!("meeting:{id}")).await?;
        if h.is_empty() {
            state.meetings_without_hash.push(id);
            continue;
        }
        state.meetings.push(SlMeeting {
            server_id: nonempty(&h, "server_id"),
            moderator_pw: h.get("moderator_pw").cloned().unwrap_or_default(),
            voice_bridge: nonempty(&h, "voice_bridge"),
            tenant_id: h.get("tenant_id").cloned().unwrap_or_default(),
            id,
        });
    }
    Ok(state)
}
