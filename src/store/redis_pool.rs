//! [`PoolStore`] on Redis: servers, meetings and their indexes, tenants, their settings and
//! LRS, under `<REDIS_NAMESPACE>:`. Every write that must be atomic is one Lua script.
//!
//! Keys (`<ns>` omitted): `server:<id>` (hash) and `server-ids` (set); `meeting:<tenant>/<id>`
//! (hash; tenant ids never contain `/`) with the sets `meetings`, `server-meetings:<server>`,
//! `tenant-meetings:<tenant>` and the hash `voice-bridges` (bridge → meeting); `tenant:<id>`
//! (hash), `tenant-ids`, `tenant-names` (name → id), `tenant-settings:<tenant>` (list of
//! JSON), `setting-tenant` (setting id → tenant), `tenant-lrs:<tenant>` (JSON).

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;

use super::placement::{CommitOutcome, Conflict, PlacementCommit, PlacementSnapshot};
use super::redis::RedisStore;
use super::*;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

/// A fenced write's check (see `store::fence`), for the scripts below: ARGV[f] the epoch
/// (`0`: not fenced), ARGV[f + 1] the lease's name. Returns the newer epoch that refuses the
/// write, or nil after recording this one as the newest seen.
const FENCE_CHECK: &str = r"
local function fence_refused(ns, f)
  local epoch = tonumber(ARGV[f])
  if epoch == 0 then return nil end
  local fkey = ns .. ':fence:' .. ARGV[f + 1]
  local seen = tonumber(redis.call('GET', fkey)) or 0
  local held = tonumber(redis.call('HGET', ns .. ':lease:' .. ARGV[f + 1], 'epoch')) or 0
  local newest = math.max(seen, held)
  if epoch < newest then return newest end
  if epoch > seen then redis.call('SET', fkey, ARGV[f]) end
  return nil
end
";

/// A fence as a fenced script's two arguments ([`FENCE_CHECK`]): its epoch (`0`: not
/// fenced) and its lease's name.
fn fence_args(fence: Option<&Fence>) -> (String, &str) {
    fence.map_or(("0".to_string(), ""), |f| {
        (f.epoch.to_string(), f.lease.as_str())
    })
}

/// A fenced script's `{'fenced', newest}` reply as [`StoreError::Fenced`]; any other
/// reply passes.
fn refused_by(out: &[String], fence: Option<&Fence>) -> StoreResult<()> {
    match (out.first().map(String::as_str), fence) {
        (Some("fenced"), Some(f)) => {
            Err(f.refused(out.get(1).and_then(|n| n.parse().ok()).unwrap_or(0)))
        }
        _ => Ok(()),
    }
}

/// Writes a poll's fields (ARGV[5..], name/value pairs) to server ARGV[2] if it exists,
/// fenced by ARGV[3..4]. Returns `{'ok'}`, `{'absent'}` or `{'fenced', newest}`.
const SAVE_POLL: &str = r"
local ns = ARGV[1]
local newest = fence_refused(ns, 3)
if newest then return {'fenced', string.format('%d', newest)} end
local skey = ns .. ':server:' .. ARGV[2]
if redis.call('EXISTS', skey) == 0 then return {'absent'} end
redis.call('HSET', skey, unpack(ARGV, 5))
return {'ok'}
";

/// Records the meeting if absent, the server still matches the guard (state, health and the
/// load the decision saw, compared as numbers), the tenant is under
/// its limit and the voice bridge is free; raises the server's load. Returns
/// `{'placed', server fields…}`, `{'existing', meeting fields…}` or `{'conflict', what}`.
const COMMIT_PLACEMENT: &str = r"
local ns, mid = ARGV[1], ARGV[2]
local mkey = ns .. ':meeting:' .. mid
local skey = ns .. ':server:' .. ARGV[5]
local tset = ns .. ':tenant-meetings:' .. ARGV[3]
if redis.call('EXISTS', mkey) == 1 then
  local m = redis.call('HGETALL', mkey)
  table.insert(m, 1, 'existing')
  return m
end
local s = redis.call('HMGET', skey, 'state', 'online', 'load')
if not s[1] then return {'conflict', 'server'} end
local load = nil
if s[3] and s[3] ~= '' then load = tonumber(s[3]) end
local seen = nil
if ARGV[11] ~= '' then seen = tonumber(ARGV[11]) end
if s[1] ~= ARGV[9] or s[2] ~= ARGV[10] or load ~= seen then
  return {'conflict', 'server'}
end
local limit = tonumber(ARGV[12])
if limit >= 0 and redis.call('SCARD', tset) >= limit then return {'conflict', 'tenant'} end
if redis.call('HSETNX', ns .. ':voice-bridges', ARGV[7], mid) == 0 then
  return {'conflict', 'voice-bridge'}
end
redis.call('HSET', mkey, 'tenant_id', ARGV[3], 'meeting_id', ARGV[4], 'server_id', ARGV[5],
  'moderator_pw', ARGV[6], 'voice_bridge', ARGV[7], 'created_at', ARGV[8], 'participants', 0,
  'bbb_id', ARGV[13])
redis.call('SADD', ns .. ':meetings', mid)
redis.call('SADD', ns .. ':server-meetings:' .. ARGV[5], mid)
redis.call('SADD', tset, mid)
if load then
  local mult = redis.call('HGET', skey, 'load_multiplier')
  redis.call('HSET', skey, 'load', tostring(load + tonumber(mult)))
end
local out = redis.call('HGETALL', skey)
table.insert(out, 1, 'placed')
return out
";

/// Placement's read as one consistent view: `{'existing', meeting fields}` or
/// `{'snapshot', tenant meeting count, {id, server fields, …}, free voice bridges}`.
const SNAPSHOT: &str = r"
local ns, mid = ARGV[1], ARGV[2]
local mkey = ns .. ':meeting:' .. mid
if redis.call('EXISTS', mkey) == 1 then
  return {'existing', redis.call('HGETALL', mkey)}
end
local count = 0
if ARGV[4] == '1' then count = redis.call('SCARD', ns .. ':tenant-meetings:' .. ARGV[3]) end
local servers = {}
for _, id in ipairs(redis.call('SMEMBERS', ns .. ':server-ids')) do
  table.insert(servers, id)
  table.insert(servers, redis.call('HGETALL', ns .. ':server:' .. id))
end
local free = {}
for i = 5, #ARGV do
  if redis.call('HEXISTS', ns .. ':voice-bridges', ARGV[i]) == 0 then
    table.insert(free, ARGV[i])
  end
end
return {'snapshot', count, servers, free}
";

/// How long a placement may hold the lock (a dead holder frees it after this).
const PLACEMENT_LOCK_TTL_MS: u64 = 2_000;
/// How long a placement waits for the lock before answering busy.
const PLACEMENT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Deletes KEYS[1] if it still holds ARGV[1].
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Deletes meeting ARGV[2] (if its server is ARGV[3], when given) and its index entries;
/// returns its fields, or an empty list.
/// Deletes meeting `mid` (on `server` when it is not empty) and its index entries;
/// returns its fields, or `{}` when absent. Shared by the scripts below.
const DELETE_MEETING_FN: &str = r"
local function delete_meeting(ns, mid, server)
  local mkey = ns .. ':meeting:' .. mid
  local m = redis.call('HGETALL', mkey)
  if #m == 0 then return {} end
  local f = {}
  for i = 1, #m, 2 do f[m[i]] = m[i + 1] end
  if server ~= '' and f['server_id'] ~= server then return {} end
  redis.call('DEL', mkey)
  redis.call('SREM', ns .. ':meetings', mid)
  redis.call('SREM', ns .. ':server-meetings:' .. f['server_id'], mid)
  redis.call('SREM', ns .. ':tenant-meetings:' .. f['tenant_id'], mid)
  if redis.call('HGET', ns .. ':voice-bridges', f['voice_bridge']) == mid then
    redis.call('HDEL', ns .. ':voice-bridges', f['voice_bridge'])
  end
  return m
end
";

/// Deletes meeting ARGV[2] (on server ARGV[3] when not empty); its fields, or `{}`.
const DELETE_MEETING: &str = r"
return delete_meeting(ARGV[1], ARGV[2], ARGV[3])
";

/// The poll's forget of meeting ARGV[2] on server ARGV[3], fenced by ARGV[4..5], only if it
/// is still the one the poll judged (created at ARGV[6]). Returns `{'fenced', newest}`,
/// `{'kept'}` or `{'gone', fields…}`.
const FORGET_MEETING: &str = r"
local ns = ARGV[1]
local newest = fence_refused(ns, 4)
if newest then return {'fenced', string.format('%d', newest)} end
if redis.call('HGET', ns .. ':meeting:' .. ARGV[2], 'created_at') ~= ARGV[6] then return {'kept'} end
local m = delete_meeting(ns, ARGV[2], ARGV[3])
if #m == 0 then return {'kept'} end
return {'gone', unpack(m)}
";

/// The poll's participant count ARGV[5] for meeting ARGV[4], fenced by ARGV[2..3]; only
/// on an existing meeting (never resurrects a deleted one).
const SET_PARTICIPANTS: &str = r"
local ns = ARGV[1]
local newest = fence_refused(ns, 2)
if newest then return {'fenced', string.format('%d', newest)} end
local key = ns .. ':meeting:' .. ARGV[4]
if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'participants', ARGV[5]) end
return {'ok'}
";

/// Counts one join into meeting ARGV[2] if tenant ARGV[3] has fewer than ARGV[4]
/// participants over all its meetings; 1 if counted.
const ADMIT_PARTICIPANT: &str = r"
local ns, mid = ARGV[1], ARGV[2]
local mkey = ns .. ':meeting:' .. mid
if redis.call('EXISTS', mkey) == 0 then return 0 end
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', ns .. ':tenant-meetings:' .. ARGV[3])) do
  total = total + (tonumber(redis.call('HGET', ns .. ':meeting:' .. id, 'participants')) or 0)
end
if total >= tonumber(ARGV[4]) then return 0 end
redis.call('HINCRBY', mkey, 'participants', 1)
return 1
";

/// Adds ARGV[3] to server ARGV[2]'s load if it has one and is enabled.
const ADD_LOAD: &str = r"
local skey = ARGV[1] .. ':server:' .. ARGV[2]
local s = redis.call('HMGET', skey, 'state', 'load')
if s[1] == 'enabled' and s[2] and s[2] ~= '' then
  redis.call('HSET', skey, 'load', tostring(tonumber(s[2]) + tonumber(ARGV[3])))
end
return {}
";

/// The scripts as they are run, each hashed once: `redis::Script` computes the SHA-1 that
/// `EVALSHA` names it by, which per call (once per meeting in a reconciliation) cost more
/// than building the call.
macro_rules! scripts {
    ($($name:ident = $($part:ident)+;)+) => {
        $(static $name: LazyLock<::redis::Script> =
            LazyLock::new(|| ::redis::Script::new(&[$($part),+].concat()));)+
    };
}

scripts! {
    SAVE_POLL_SCRIPT = FENCE_CHECK SAVE_POLL;
    COMMIT_PLACEMENT_SCRIPT = COMMIT_PLACEMENT;
    SNAPSHOT_SCRIPT = SNAPSHOT;
    UNLOCK_SCRIPT = UNLOCK;
    DELETE_MEETING_SCRIPT = DELETE_MEETING_FN DELETE_MEETING;
    FORGET_MEETING_SCRIPT = FENCE_CHECK DELETE_MEETING_FN FORGET_MEETING;
    SET_PARTICIPANTS_SCRIPT = FENCE_CHECK SET_PARTICIPANTS;
    ADMIT_PARTICIPANT_SCRIPT = ADMIT_PARTICIPANT;
    ADD_LOAD_SCRIPT = ADD_LOAD;
}

fn mid(tenant_id: &str, meeting_id: &str) -> String {
    format!("{tenant_id}/{meeting_id}")
}

fn fields(flat: &[String]) -> HashMap<&str, &str> {
    flat.chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].as_str(), c[1].as_str()))
        .collect()
}

fn opt(s: Option<&&str>) -> Option<String> {
    s.filter(|v| !v.is_empty()).map(|v| v.to_string())
}

fn num<T: std::str::FromStr + Default>(f: &HashMap<&str, &str>, k: &str) -> T {
    f.get(k).and_then(|v| v.parse().ok()).unwrap_or_default()
}

fn server_of(id: &str, f: &HashMap<&str, &str>) -> StoreResult<Server> {
    let state = f.get("state").copied().unwrap_or_default();
    Ok(Server {
        id: id.to_string(),
        url: f.get("url").copied().unwrap_or_default().to_string(),
        secret: f.get("secret").copied().unwrap_or_default().to_string(),
        tag: opt(f.get("tag")),
        state: ServerState::parse(state)
            .ok_or_else(|| backend(format!("server {id} has state {state:?}")))?,
        online: f.get("online") == Some(&"1"),
        load: opt(f.get("load")).and_then(|v| v.parse().ok()),
        load_multiplier: num(f, "load_multiplier"),
        stats: ServerStats {
            meetings: num(f, "meetings"),
            users: num(f, "users"),
            largest_meeting: num(f, "largest_meeting"),
            videos: num(f, "videos"),
        },
        bbb_version: f
            .get("bbb_version")
            .copied()
            .unwrap_or_default()
            .to_string(),
        healthy_counter: num(f, "healthy_counter"),
        unhealthy_counter: num(f, "unhealthy_counter"),
    })
}

fn server_fields(s: &Server) -> Vec<(&'static str, String)> {
    vec![
        ("url", s.url.clone()),
        ("secret", s.secret.clone()),
        ("tag", s.tag.clone().unwrap_or_default()),
        ("state", s.state.as_str().to_string()),
        ("online", if s.online { "1" } else { "0" }.to_string()),
        ("load", s.load.map(|l| l.to_string()).unwrap_or_default()),
        ("load_multiplier", s.load_multiplier.to_string()),
        ("meetings", s.stats.meetings.to_string()),
        ("users", s.stats.users.to_string()),
        ("largest_meeting", s.stats.largest_meeting.to_string()),
        ("videos", s.stats.videos.to_string()),
        ("bbb_version", s.bbb_version.clone()),
        ("healthy_counter", s.healthy_counter.to_string()),
        ("unhealthy_counter", s.unhealthy_counter.to_string()),
    ]
}

fn meeting_of(f: &HashMap<&str, &str>) -> Meeting {
    let s = |k: &str| f.get(k).copied().unwrap_or_default().to_string();
    let (tenant_id, meeting_id) = (s("tenant_id"), s("meeting_id"));
    Meeting {
        bbb_id: super::bbb_id_or_scoped(f.get("bbb_id").copied(), &tenant_id, &meeting_id),
        tenant_id,
        meeting_id,
        server_id: s("server_id"),
        moderator_pw: s("moderator_pw"),
        voice_bridge: s("voice_bridge"),
        created_at: num(f, "created_at"),
    }
}

fn tenant_of(id: &str, f: &HashMap<&str, &str>) -> Tenant {
    Tenant {
        id: id.to_string(),
        name: f.get("name").copied().unwrap_or_default().to_string(),
        secrets: f
            .get("secrets")
            .copied()
            .unwrap_or_default()
            .split(':')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        max_meetings: opt(f.get("max_meetings")).and_then(|v| v.parse().ok()),
        max_participants: opt(f.get("max_participants")).and_then(|v| v.parse().ok()),
    }
}

type SettingDoc = (String, String, String, String, bool);
type LrsDoc = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl RedisStore {
    async fn q<T: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> StoreResult<T> {
        cmd.query_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))
    }

    async fn script(&self, script: &::redis::Script, args: &[&str]) -> StoreResult<Vec<String>> {
        let mut inv = script.prepare_invoke();
        inv.arg(self.namespace());
        for a in args {
            inv.arg(*a);
        }
        inv.invoke_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))
    }

    async fn hgetall_many(&self, keys: &[String]) -> StoreResult<Vec<Vec<String>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for k in keys {
            pipe.cmd("HGETALL").arg(k);
        }
        pipe.query_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))
    }

    async fn meetings_in(&self, set: &str) -> StoreResult<Vec<Meeting>> {
        let ids: Vec<String> = self.q(::redis::cmd("SMEMBERS").arg(self.k(set))).await?;
        let keys: Vec<String> = ids
            .iter()
            .map(|i| self.k(&format!("meeting:{i}")))
            .collect();
        let mut out: Vec<Meeting> = self
            .hgetall_many(&keys)
            .await?
            .iter()
            .filter(|f| !f.is_empty())
            .map(|f| meeting_of(&fields(f)))
            .collect();
        out.sort_by(|a, b| (&a.tenant_id, &a.meeting_id).cmp(&(&b.tenant_id, &b.meeting_id)));
        Ok(out)
    }

    async fn delete_mid(&self, mid: &str, server: &str) -> StoreResult<Option<Meeting>> {
        let f = self.script(&DELETE_MEETING_SCRIPT, &[mid, server]).await?;
        Ok((!f.is_empty()).then(|| meeting_of(&fields(&f))))
    }
}

#[async_trait]
impl PoolStore for RedisStore {
    async fn add_server(&self, server: &Server) -> StoreResult<()> {
        let added: i64 = self
            .q(::redis::cmd("SADD")
                .arg(self.k("server-ids"))
                .arg(&server.id))
            .await?;
        if added == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a server with id '{}'",
                server.id
            )));
        }
        let () = self
            .q(::redis::cmd("HSET")
                .arg(self.k(&format!("server:{}", server.id)))
                .arg(server_fields(server)))
            .await?;
        Ok(())
    }

    async fn server(&self, id: &str) -> StoreResult<Option<Server>> {
        let f: Vec<String> = self
            .q(::redis::cmd("HGETALL").arg(self.k(&format!("server:{id}"))))
            .await?;
        if f.is_empty() {
            return Ok(None);
        }
        server_of(id, &fields(&f)).map(Some)
    }

    async fn servers(&self) -> StoreResult<Vec<Server>> {
        let mut ids: Vec<String> = self
            .q(::redis::cmd("SMEMBERS").arg(self.k("server-ids")))
            .await?;
        ids.sort();
        let keys: Vec<String> = ids.iter().map(|i| self.k(&format!("server:{i}"))).collect();
        let rows = self.hgetall_many(&keys).await?;
        ids.iter()
            .zip(rows.iter())
            .filter(|(_, f)| !f.is_empty())
            .map(|(id, f)| server_of(id, &fields(f)))
            .collect()
    }

    async fn update_server(&self, id: &str, p: &ServerPatch) -> StoreResult<Option<Server>> {
        let Some(mut s) = self.server(id).await? else {
            return Ok(None);
        };
        let mut set: Vec<(&str, String)> = Vec::new();
        if let Some(url) = &p.url {
            s.url = url.clone();
            set.push(("url", url.clone()));
        }
        if let Some(secret) = &p.secret {
            s.secret = secret.clone();
            set.push(("secret", secret.clone()));
        }
        if let Some(m) = p.load_multiplier {
            s.load_multiplier = m;
            set.push(("load_multiplier", m.to_string()));
        }
        if let Some(tag) = &p.tag {
            s.tag = tag.clone();
            set.push(("tag", tag.clone().unwrap_or_default()));
        }
        if let Some(state) = p.state {
            s.state = state;
            set.push(("state", state.as_str().to_string()));
            if state == ServerState::Disabled {
                s.load = None;
                set.push(("load", String::new()));
            }
        }
        if !set.is_empty() {
            let () = self
                .q(::redis::cmd("HSET")
                    .arg(self.k(&format!("server:{id}")))
                    .arg(set))
                .await?;
        }
        Ok(Some(s))
    }

    async fn remove_server(&self, id: &str) -> StoreResult<bool> {
        for m in self.meetings_on(id).await? {
            self.delete_mid(&mid(&m.tenant_id, &m.meeting_id), id)
                .await?;
        }
        let n: i64 = self
            .q(::redis::cmd("SREM").arg(self.k("server-ids")).arg(id))
            .await?;
        let () = self
            .q(::redis::cmd("DEL").arg(self.k(&format!("server:{id}"))))
            .await
            .map(|_: i64| ())?;
        Ok(n > 0)
    }

    async fn add_load(&self, deltas: &[(String, f64)]) -> StoreResult<()> {
        for (id, d) in deltas {
            self.script(&ADD_LOAD_SCRIPT, &[id, &d.to_string()]).await?;
        }
        Ok(())
    }

    async fn save_poll_fenced(
        &self,
        id: &str,
        u: &PollUpdate,
        fence: Option<&Fence>,
    ) -> StoreResult<()> {
        let Some(s) = self.server(id).await? else {
            return Ok(());
        };
        let mut set: Vec<(&str, String)> = vec![
            ("online", if u.online { "1" } else { "0" }.to_string()),
            (
                "load",
                if s.state == ServerState::Disabled {
                    String::new()
                } else {
                    u.load.map(|l| l.to_string()).unwrap_or_default()
                },
            ),
            ("meetings", u.stats.meetings.to_string()),
            ("users", u.stats.users.to_string()),
            ("largest_meeting", u.stats.largest_meeting.to_string()),
            ("videos", u.stats.videos.to_string()),
            ("healthy_counter", u.healthy_counter.to_string()),
            ("unhealthy_counter", u.unhealthy_counter.to_string()),
        ];
        if let Some(v) = &u.bbb_version {
            set.push(("bbb_version", v.clone()));
        }
        if let Some(st) = u.state {
            set.push(("state", st.as_str().to_string()));
        }
        let (epoch, lease) = fence_args(fence);
        let mut args: Vec<&str> = vec![id, &epoch, lease];
        for (k, v) in &set {
            args.push(k);
            args.push(v);
        }
        let out = self.script(&SAVE_POLL_SCRIPT, &args).await?;
        refused_by(&out, fence)
    }

    async fn meeting(
        &self,
        tenant_id: &str,
        meeting_id: &str,
    ) -> StoreResult<Option<(Meeting, Option<Server>)>> {
        let f: Vec<String> = self
            .q(::redis::cmd("HGETALL")
                .arg(self.k(&format!("meeting:{}", mid(tenant_id, meeting_id)))))
            .await?;
        if f.is_empty() {
            return Ok(None);
        }
        let m = meeting_of(&fields(&f));
        let server = self.server(&m.server_id).await?;
        Ok(Some((m, server)))
    }

    /// [`placement::place`] under a short cluster-wide placement lock. The commit's load
    /// guard alone keeps the spread even, but over Redis's round trips a burst of creates
    /// (32 at once) keeps conflicting until the retries run out; queueing them on the lock
    /// (one Redis round trip each) lets every one commit on the first try.
    async fn place_meeting(&self, req: &PlaceRequest<'_>) -> StoreResult<PlaceOutcome> {
        let key = self.k("placement-lock");
        let token = uuid::Uuid::new_v4().to_string();
        let deadline = std::time::Instant::now() + PLACEMENT_LOCK_WAIT;
        loop {
            let got: Option<String> = self
                .q(::redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(PLACEMENT_LOCK_TTL_MS))
                .await?;
            if got.is_some() {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(StoreError::Busy("the placement lock is held".into()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let out = placement::place(self, req).await;
        let _: i64 = UNLOCK_SCRIPT
            .key(&key)
            .arg(&token)
            .invoke_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        out
    }

    async fn placement_snapshot(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        count_tenant: bool,
        voice_bridges: &[String],
    ) -> StoreResult<PlacementSnapshot> {
        let mut inv = SNAPSHOT_SCRIPT.prepare_invoke();
        inv.arg(self.namespace())
            .arg(mid(tenant_id, meeting_id))
            .arg(tenant_id)
            .arg(if count_tenant { "1" } else { "0" });
        for vb in voice_bridges {
            inv.arg(vb);
        }
        let out: Vec<::redis::Value> = inv
            .invoke_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        let strings = |v: &::redis::Value| -> StoreResult<Vec<String>> {
            ::redis::from_redis_value(v).map_err(|e| self.err(e))
        };
        let tag: String = out
            .first()
            .map(::redis::from_redis_value)
            .transpose()
            .map_err(|e| self.err(e))?
            .unwrap_or_default();
        if tag == "existing" {
            let f = strings(&out[1])?;
            return Ok(PlacementSnapshot {
                existing: Some(meeting_of(&fields(&f))),
                ..Default::default()
            });
        }
        if tag != "snapshot" || out.len() != 4 {
            return Err(backend("the placement snapshot script answered oddly"));
        }
        let tenant_meetings: u32 = ::redis::from_redis_value(&out[1]).map_err(|e| self.err(e))?;
        let ::redis::Value::Array(pairs) = &out[2] else {
            return Err(backend("the placement snapshot has no server list"));
        };
        let mut servers = Vec::new();
        for pair in pairs.chunks(2) {
            let id: String = ::redis::from_redis_value(&pair[0]).map_err(|e| self.err(e))?;
            let f = strings(&pair[1])?;
            if !f.is_empty() {
                servers.push(server_of(&id, &fields(&f))?);
            }
        }
        servers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(PlacementSnapshot {
            existing: None,
            servers,
            tenant_meetings,
            free_voice_bridges: strings(&out[3])?,
        })
    }

    async fn commit_placement(&self, commit: &PlacementCommit) -> StoreResult<CommitOutcome> {
        let m = &commit.meeting;
        let id = mid(&m.tenant_id, &m.meeting_id);
        let created = m.created_at.to_string();
        let seen_load = commit.guard.load.map(|l| l.to_string()).unwrap_or_default();
        let limit = commit
            .max_tenant_meetings
            .map(|l| l as i64)
            .unwrap_or(-1)
            .to_string();
        let out = self
            .script(
                &COMMIT_PLACEMENT_SCRIPT,
                &[
                    &id,
                    &m.tenant_id,
                    &m.meeting_id,
                    &m.server_id,
                    &m.moderator_pw,
                    &m.voice_bridge,
                    &created,
                    commit.guard.state.as_str(),
                    if commit.guard.online { "1" } else { "0" },
                    &seen_load,
                    &limit,
                    &m.bbb_id,
                ],
            )
            .await?;
        match out.first().map(String::as_str) {
            Some("placed") => Ok(CommitOutcome::Placed(server_of(
                &m.server_id,
                &fields(&out[1..]),
            )?)),
            Some("existing") => Ok(CommitOutcome::Existing(meeting_of(&fields(&out[1..])))),
            Some("conflict") => Ok(CommitOutcome::Conflict(
                match out.get(1).map(String::as_str) {
                    Some("tenant") => Conflict::TenantLimit,
                    Some("voice-bridge") => Conflict::VoiceBridge,
                    _ => Conflict::Server,
                },
            )),
            other => Err(backend(format!("placement script answered {other:?}"))),
        }
    }

    async fn delete_meeting(
        &self,
        tenant_id: &str,
        meeting_id: &str,
    ) -> StoreResult<Option<Meeting>> {
        self.delete_mid(&mid(tenant_id, meeting_id), "").await
    }

    async fn delete_meeting_on(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        server_id: &str,
    ) -> StoreResult<bool> {
        if server_id.is_empty() {
            return Ok(false);
        }
        Ok(self
            .delete_mid(&mid(tenant_id, meeting_id), server_id)
            .await?
            .is_some())
    }

    async fn meetings(&self) -> StoreResult<Vec<Meeting>> {
        self.meetings_in("meetings").await
    }

    async fn meetings_on(&self, server_id: &str) -> StoreResult<Vec<Meeting>> {
        self.meetings_in(&format!("server-meetings:{server_id}"))
            .await
    }

    async fn forget_meetings_except_fenced(
        &self,
        server_id: &str,
        keep: &[String],
        created_before_ms: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<Meeting>> {
        let keep: std::collections::HashSet<&str> = keep.iter().map(String::as_str).collect();
        let (epoch, lease) = fence_args(fence);
        let mut gone = Vec::new();
        for m in self.meetings_on(server_id).await? {
            if m.created_at >= created_before_ms || keep.contains(m.bbb_id.as_str()) {
                continue;
            }
            let id = mid(&m.tenant_id, &m.meeting_id);
            let created = m.created_at.to_string();
            let out = self
                .script(
                    &FORGET_MEETING_SCRIPT,
                    &[&id, server_id, &epoch, lease, &created],
                )
                .await?;
            refused_by(&out, fence)?;
            if out.first().map(String::as_str) == Some("gone") {
                gone.push(meeting_of(&fields(&out[1..])));
            }
        }
        Ok(gone)
    }

    async fn meeting_by_voice_bridge(&self, voice_bridge: &str) -> StoreResult<Option<Meeting>> {
        let id: Option<String> = self
            .q(::redis::cmd("HGET")
                .arg(self.k("voice-bridges"))
                .arg(voice_bridge))
            .await?;
        let Some(id) = id else { return Ok(None) };
        let f: Vec<String> = self
            .q(::redis::cmd("HGETALL").arg(self.k(&format!("meeting:{id}"))))
            .await?;
        Ok((!f.is_empty()).then(|| meeting_of(&fields(&f))))
    }

    async fn add_tenant(&self, t: &Tenant) -> StoreResult<()> {
        let claimed: i64 = self
            .q(::redis::cmd("HSETNX")
                .arg(self.k("tenant-names"))
                .arg(&t.name)
                .arg(&t.id))
            .await?;
        if claimed == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "a tenant named '{}'",
                t.name
            )));
        }
        self.write_tenant(t).await?;
        let _: i64 = self
            .q(::redis::cmd("SADD").arg(self.k("tenant-ids")).arg(&t.id))
            .await?;
        Ok(())
    }

    async fn tenant(&self, id: &str) -> StoreResult<Option<Tenant>> {
        let f: Vec<String> = self
            .q(::redis::cmd("HGETALL").arg(self.k(&format!("tenant:{id}"))))
            .await?;
        Ok((!f.is_empty()).then(|| tenant_of(id, &fields(&f))))
    }

    async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
        let id: Option<String> = self
            .q(::redis::cmd("HGET").arg(self.k("tenant-names")).arg(name))
            .await?;
        match id {
            Some(id) => self.tenant(&id).await,
            None => Ok(None),
        }
    }

    async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        let ids: Vec<String> = self
            .q(::redis::cmd("SMEMBERS").arg(self.k("tenant-ids")))
            .await?;
        let keys: Vec<String> = ids.iter().map(|i| self.k(&format!("tenant:{i}"))).collect();
        let rows = self.hgetall_many(&keys).await?;
        let mut out: Vec<Tenant> = ids
            .iter()
            .zip(rows.iter())
            .filter(|(_, f)| !f.is_empty())
            .map(|(id, f)| tenant_of(id, &fields(f)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn update_tenant(&self, id: &str, p: &TenantPatch) -> StoreResult<Option<Tenant>> {
        let Some(mut t) = self.tenant(id).await? else {
            return Ok(None);
        };
        if let Some(n) = &p.name {
            if *n != t.name {
                let claimed: i64 = self
                    .q(::redis::cmd("HSETNX")
                        .arg(self.k("tenant-names"))
                        .arg(n)
                        .arg(id))
                    .await?;
                if claimed == 0 {
                    return Err(StoreError::AlreadyExists(format!("a tenant named '{n}'")));
                }
                let _: i64 = self
                    .q(::redis::cmd("HDEL")
                        .arg(self.k("tenant-names"))
                        .arg(&t.name))
                    .await?;
                t.name = n.clone();
            }
        }
        if let Some(s) = &p.secrets {
            t.secrets = s.clone();
        }
        if let Some(m) = p.max_meetings {
            t.max_meetings = m;
        }
        if let Some(m) = p.max_participants {
            t.max_participants = m;
        }
        self.write_tenant(&t).await?;
        Ok(Some(t))
    }

    async fn remove_tenant(&self, id: &str) -> StoreResult<bool> {
        let Some(t) = self.tenant(id).await? else {
            return Ok(false);
        };
        for s in self.tenant_settings(id).await? {
            self.remove_tenant_setting(&s.id).await?;
        }
        let mut pipe = ::redis::pipe();
        pipe.cmd("HDEL")
            .arg(self.k("tenant-names"))
            .arg(&t.name)
            .ignore()
            .cmd("SREM")
            .arg(self.k("tenant-ids"))
            .arg(id)
            .ignore()
            .cmd("DEL")
            .arg(self.k(&format!("tenant:{id}")))
            .arg(self.k(&format!("tenant-lrs:{id}")))
            .arg(self.k(&format!("tenant-settings:{id}")))
            .ignore();
        let () = pipe
            .query_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok(true)
    }

    async fn add_tenant_setting(&self, s: &TenantSetting) -> StoreResult<()> {
        let doc: SettingDoc = (
            s.id.clone(),
            s.tenant_id.clone(),
            s.param.clone(),
            s.value.clone(),
            s.is_override,
        );
        let json = serde_json::to_string(&doc).map_err(backend)?;
        let mut pipe = ::redis::pipe();
        pipe.cmd("HSET")
            .arg(self.k("setting-tenant"))
            .arg(&s.id)
            .arg(&s.tenant_id)
            .ignore()
            .cmd("RPUSH")
            .arg(self.k(&format!("tenant-settings:{}", s.tenant_id)))
            .arg(json)
            .ignore();
        let () = pipe
            .query_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn tenant_settings(&self, tenant_id: &str) -> StoreResult<Vec<TenantSetting>> {
        let docs: Vec<String> = self
            .q(::redis::cmd("LRANGE")
                .arg(self.k(&format!("tenant-settings:{tenant_id}")))
                .arg(0)
                .arg(-1))
            .await?;
        docs.iter()
            .map(|d| {
                let (id, tenant_id, param, value, is_override): SettingDoc =
                    serde_json::from_str(d).map_err(backend)?;
                Ok(TenantSetting {
                    id,
                    tenant_id,
                    param,
                    value,
                    is_override,
                })
            })
            .collect()
    }

    async fn remove_tenant_setting(&self, id: &str) -> StoreResult<bool> {
        let tenant: Option<String> = self
            .q(::redis::cmd("HGET").arg(self.k("setting-tenant")).arg(id))
            .await?;
        let Some(tenant) = tenant else {
            return Ok(false);
        };
        let key = self.k(&format!("tenant-settings:{tenant}"));
        let docs: Vec<String> = self
            .q(::redis::cmd("LRANGE").arg(&key).arg(0).arg(-1))
            .await?;
        for d in docs {
            if let Ok(doc) = serde_json::from_str::<SettingDoc>(&d) {
                if doc.0 == id {
                    let _: i64 = self
                        .q(::redis::cmd("LREM").arg(&key).arg(0).arg(&d))
                        .await?;
                }
            }
        }
        let n: i64 = self
            .q(::redis::cmd("HDEL").arg(self.k("setting-tenant")).arg(id))
            .await?;
        Ok(n > 0)
    }

    async fn set_tenant_lrs(&self, tenant_id: &str, lrs: Option<&TenantLrs>) -> StoreResult<bool> {
        if self.tenant(tenant_id).await?.is_none() {
            return Ok(false);
        }
        let key = self.k(&format!("tenant-lrs:{tenant_id}"));
        match lrs {
            None => {
                let _: i64 = self.q(::redis::cmd("DEL").arg(key)).await?;
            }
            Some(l) => {
                let doc: LrsDoc = (
                    l.endpoint.clone(),
                    l.username.clone(),
                    l.password.clone(),
                    l.kc_token_url.clone(),
                    l.kc_client_id.clone(),
                    l.kc_client_secret.clone(),
                    l.kc_username.clone(),
                    l.kc_password.clone(),
                );
                let json = serde_json::to_string(&doc).map_err(backend)?;
                let () = self.q(::redis::cmd("SET").arg(key).arg(json)).await?;
            }
        }
        Ok(true)
    }

    async fn tenant_lrs(&self, tenant_id: &str) -> StoreResult<Option<TenantLrs>> {
        let json: Option<String> = self
            .q(::redis::cmd("GET").arg(self.k(&format!("tenant-lrs:{tenant_id}"))))
            .await?;
        let Some(json) = json else { return Ok(None) };
        let d: LrsDoc = serde_json::from_str(&json).map_err(backend)?;
        Ok(Some(TenantLrs {
            endpoint: d.0,
            username: d.1,
            password: d.2,
            kc_token_url: d.3,
            kc_client_id: d.4,
            kc_client_secret: d.5,
            kc_username: d.6,
            kc_password: d.7,
        }))
    }

    async fn tenant_usage(&self, tenant_id: &str) -> StoreResult<(u32, u32)> {
        let ids: Vec<String> = self
            .q(::redis::cmd("SMEMBERS").arg(self.k(&format!("tenant-meetings:{tenant_id}"))))
            .await?;
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let mut pipe = ::redis::pipe();
        for i in &ids {
            pipe.cmd("HGET")
                .arg(self.k(&format!("meeting:{i}")))
                .arg("participants");
        }
        let counts: Vec<Option<u32>> = pipe
            .query_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok((ids.len() as u32, counts.into_iter().flatten().sum()))
    }

    async fn add_participant(&self, tenant_id: &str, meeting_id: &str) -> StoreResult<()> {
        self.admit_participant(tenant_id, meeting_id, u32::MAX)
            .await
            .map(|_| ())
    }

    async fn admit_participant(
        &self,
        tenant_id: &str,
        meeting_id: &str,
        limit: u32,
    ) -> StoreResult<bool> {
        let out: i64 = ADMIT_PARTICIPANT_SCRIPT
            .arg(self.namespace())
            .arg(mid(tenant_id, meeting_id))
            .arg(tenant_id)
            .arg(limit)
            .invoke_async(&mut self.con())
            .await
            .map_err(|e| self.err(e))?;
        Ok(out == 1)
    }

    async fn set_participants_fenced(
        &self,
        server_id: &str,
        counts: &[(String, u32)],
        fence: Option<&Fence>,
    ) -> StoreResult<()> {
        let counts: std::collections::HashMap<&str, u32> =
            counts.iter().map(|(id, n)| (id.as_str(), *n)).collect();
        let (epoch, lease) = fence_args(fence);
        for m in self.meetings_on(server_id).await? {
            let Some(n) = counts.get(m.bbb_id.as_str()) else {
                continue;
            };
            let id = mid(&m.tenant_id, &m.meeting_id);
            let out = self
                .script(
                    &SET_PARTICIPANTS_SCRIPT,
                    &[&epoch, lease, &id, &n.to_string()],
                )
                .await?;
            refused_by(&out, fence)?;
        }
        Ok(())
    }
}

impl RedisStore {
    async fn write_tenant(&self, t: &Tenant) -> StoreResult<()> {
        let set: Vec<(&str, String)> = vec![
            ("name", t.name.clone()),
            ("secrets", t.secrets.join(":")),
            (
                "max_meetings",
                t.max_meetings.map(|m| m.to_string()).unwrap_or_default(),
            ),
            (
                "max_participants",
                t.max_participants
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            ),
        ];
        let () = self
            .q(::redis::cmd("HSET")
                .arg(self.k(&format!("tenant:{}", t.id)))
                .arg(set))
            .await?;
        Ok(())
    }
}
