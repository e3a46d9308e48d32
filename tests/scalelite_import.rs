//! `ferrolite scalelite import` against a real Redis seeded in Scalelite's key layout and a
//! real PostgreSQL holding Scalelite's recordings tables, in both flavours (built from
//! `db/schema.rb`, and upgraded by migrations: nullable flags, NULLs in old rows). After the
//! import, Ferrolite answers what Scalelite would: getRecordings per tenant, joins of the
//! running meetings on their servers; re-running changes nothing; --dry-run writes nothing;
//! Scalelite's stores are left exactly as they were.

mod common;

use common::postgres::{batch, Postgres};
use common::redis::Redis;
use common::{count, xml_field, Fake, Lb};

const T1: &str = "9d1d8b0a-5d4c-4a0e-8d5e-1b2f3c4d5e61";
const T2: &str = "2f6a7c3e-0b1d-4e8f-9a2b-3c4d5e6f7a82";

/// Scalelite's tables as `db:schema:load` builds them (db/schema.rb).
const SCHEMA_RB: &str = "
CREATE TABLE callback_data (id bigserial PRIMARY KEY, meeting_id varchar, recording_id integer,
  callback_attributes text, created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
CREATE TABLE metadata (id bigserial PRIMARY KEY, recording_id bigint, key varchar, value varchar);
CREATE UNIQUE INDEX index_metadata_on_recording_id_and_key ON metadata (recording_id, key);
CREATE TABLE playback_formats (id bigserial PRIMARY KEY, recording_id bigint, format varchar,
  url varchar, length integer, processing_time integer);
CREATE UNIQUE INDEX index_playback_formats_on_recording_id_and_format ON playback_formats (recording_id, format);
CREATE TABLE recordings (id bigserial PRIMARY KEY, record_id varchar, meeting_id varchar, name varchar,
  published boolean DEFAULT false NOT NULL, participants integer, state varchar,
  starttime timestamp, endtime timestamp, deleted_at timestamp,
  protected boolean DEFAULT false NOT NULL, publish_updated boolean DEFAULT false NOT NULL);
CREATE INDEX index_recordings_on_meeting_id ON recordings (meeting_id);
CREATE UNIQUE INDEX index_recordings_on_record_id ON recordings (record_id);
CREATE TABLE thumbnails (id bigserial PRIMARY KEY, playback_format_id bigint, width integer,
  height integer, alt varchar, url varchar, sequence integer);
CREATE INDEX index_thumbnails_on_playback_format_id ON thumbnails (playback_format_id);
CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
CREATE TABLE ar_internal_metadata (key varchar PRIMARY KEY, value varchar,
  created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
";

/// The same tables as years of `db:migrate` leave them: the init migration's nullable
/// `published`, `protected` added later without default, `publish_updated` with a default
/// but nullable, a tenants table created and dropped, the migration bookkeeping.
const MIGRATED: &str = "
CREATE TABLE metadata (id bigserial PRIMARY KEY, recording_id bigint, key varchar, value varchar);
CREATE UNIQUE INDEX index_metadata_on_recording_id_and_key ON metadata (recording_id, key);
CREATE TABLE playback_formats (id bigserial PRIMARY KEY, recording_id bigint, format varchar,
  url varchar, length integer, processing_time integer);
CREATE TABLE recordings (id bigserial PRIMARY KEY, record_id varchar, meeting_id varchar, name varchar,
  published boolean, participants integer, state varchar, starttime timestamp, endtime timestamp,
  deleted_at timestamp);
CREATE UNIQUE INDEX index_recordings_on_record_id ON recordings (record_id);
CREATE TABLE thumbnails (id bigserial PRIMARY KEY, playback_format_id bigint, width integer,
  height integer, alt varchar, url varchar, sequence integer);
CREATE TABLE callback_data (id bigserial PRIMARY KEY, meeting_id varchar, recording_id integer,
  callback_attributes text, created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
ALTER TABLE recordings ADD COLUMN protected boolean;
ALTER TABLE recordings ADD COLUMN publish_updated boolean DEFAULT false;
CREATE TABLE tenants (id bigserial PRIMARY KEY, name varchar, secrets varchar);
DROP TABLE tenants;
CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('20181123180008'), ('20210425184558'), ('20210630205630'),
  ('20210725200414'), ('20221111194252'), ('20230627141045');
CREATE TABLE ar_internal_metadata (key varchar PRIMARY KEY, value varchar,
  created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
";

/// Realistic rows: two tenants' recordings (one renamed through updateRecordings, with odd
/// metadata), an unpublished protected one, a tombstone, one without a tenant, an old row
/// with NULL flags (migrated flavour only), callback data in Scalelite's YAML.
fn rows(migrated: bool) -> String {
    let old_row = if migrated {
        "INSERT INTO recordings (id, record_id, meeting_id, name, published, participants, state, starttime, endtime, protected, publish_updated)
         VALUES (5, 'rec-old-0000000000000000000000000000000000000-1500000000000', 'old-room', 'Before 2021', true, 2, 'published', '2017-07-14 02:40:00', '2017-07-14 03:40:00', NULL, NULL);
         INSERT INTO playback_formats (id, recording_id, format, url, length) VALUES (50, 5, 'presentation', '/playback/presentation/0.9.0/playback.html?meetingId=rec-old', 60);"
    } else {
        ""
    };
    format!(
        "
INSERT INTO recordings (id, record_id, meeting_id, name, published, participants, state, starttime, endtime, protected, publish_updated) VALUES
 (1, 'rec-t1-a-1700000000000', 'room-a', 'Renamed by the front end', true, 7, 'published', '2023-11-14 22:13:20', '2023-11-14 23:13:20', false, false),
 (2, 'rec-t2-b-1700000100000', 'room-b', 'Hidden lecture', false, 3, 'unpublished', '2023-11-14 22:15:00', '2023-11-14 22:45:00', true, true),
 (3, 'rec-t1-c-1700000200000', 'room-c', 'Deleted one', false, 1, 'deleted', '2023-11-14 22:16:40', '2023-11-14 22:30:00', false, false),
 (4, 'rec-none-1700000300000', 'plain-room', 'No tenant', true, 4, 'published', '2023-11-14 22:18:20', '2023-11-14 22:48:20', false, false);
INSERT INTO metadata (recording_id, key, value) VALUES
 (1, 'tenant-id', '{T1}'), (1, 'bbb-context-name', 'Maths & <Physics>'), (1, 'gl-listed', 'true'),
 (1, 'empty-one', ''), (1, 'null-one', NULL), (1, 'bbb-origin-server-name', 'naïve — ✓'),
 (2, 'tenant-id', '{T2}'), (2, 'bbb-origin', 'Moodle'),
 (4, 'isBreakout', 'false');
INSERT INTO playback_formats (id, recording_id, format, url, length, processing_time) VALUES
 (10, 1, 'presentation', '/playback/presentation/2.3/rec-t1-a-1700000000000', 60, NULL),
 (11, 1, 'video', '/presentation/rec-t1-a-1700000000000/video/webcams.mp4', 59, 1200),
 (20, 2, 'presentation', '/playback/presentation/2.3/rec-t2-b-1700000100000', 30, NULL),
 (40, 4, 'presentation', '/playback/presentation/2.3/rec-none-1700000300000', 30, NULL);
INSERT INTO thumbnails (playback_format_id, width, height, alt, url, sequence) VALUES
 (10, 176, 136, 'Slide 2', '/presentation/rec-t1-a-1700000000000/presentation/x/thumbnails/thumb-2.png', 1),
 (10, 176, 136, 'Slide 1', '/presentation/rec-t1-a-1700000000000/presentation/x/thumbnails/thumb-1.png', 0);
INSERT INTO callback_data (meeting_id, recording_id, callback_attributes, created_at, updated_at) VALUES
 ('room-a', 1, E'---\\n:recording_ready_url: https://lms.example/done-a\\n', now(), now()),
 ('plain-room', NULL, E'---\\n:recording_ready_url: https://lms.example/pending\\n:analytics_callback_url: https://lms.example/analytics\\n', now(), now());
{old_row}
"
    )
}

/// Seeds a Redis exactly as Scalelite's models write it, under `ns:`.
async fn seed_redis(redis: &Redis, ns: &str, fake: &Fake) {
    let k = |s: &str| format!("{ns}:{s}");
    let s0 = &fake.servers[0];
    let s1 = &fake.servers[1];
    for args in [
        vec![
            "SADD".to_string(),
            k("servers"),
            "srv-one".into(),
            "srv-legacy".into(),
        ],
        vec![
            "HSET".into(),
            k("server:srv-one"),
            "url".into(),
            s0.url.clone(),
            "secret".into(),
            s0.secret.clone(),
            "online".into(),
            "true".into(),
            "load_multiplier".into(),
            "2.5".into(),
            "state".into(),
            "enabled".into(),
            "tag".into(),
            "big".into(),
            "meetings".into(),
            "1".into(),
            "users".into(),
            "3".into(),
            "bbb_version".into(),
            "2.7.3".into(),
        ],
        // Written before states and load multipliers existed: enabled via the legacy set.
        vec![
            "HSET".into(),
            k("server:srv-legacy"),
            "url".into(),
            s1.url.clone(),
            "secret".into(),
            s1.secret.clone(),
            "online".into(),
            "true".into(),
        ],
        vec![
            "SADD".into(),
            k("server_enabled"),
            "srv-one".into(),
            "srv-legacy".into(),
        ],
        vec![
            "ZADD".into(),
            k("server_load"),
            "2.5".into(),
            "srv-one".into(),
            "0".into(),
            "srv-legacy".into(),
        ],
        vec![
            "HSET".into(),
            k("srv-one"),
            "healthy_counter".into(),
            "1".into(),
            "unhealthy_counter".into(),
            "0".into(),
        ],
        vec!["SADD".into(), k("tenants"), T1.into(), T2.into()],
        vec![
            "HSET".into(),
            k(&format!("tenant:{T1}")),
            "name".into(),
            "bn".into(),
            "secrets".into(),
            "bn-secret-1:bn-secret-2".into(),
            "lrs_endpoint".into(),
            "https://lrs.example/xapi".into(),
            "lrs_username".into(),
            "u".into(),
            "lrs_password".into(),
            "p".into(),
        ],
        vec!["HSET".into(), k("tenant_name:bn"), "id".into(), T1.into()],
        vec![
            "HSET".into(),
            k(&format!("tenant:{T2}")),
            "name".into(),
            "uni".into(),
            "secrets".into(),
            "uni-secret".into(),
        ],
        vec!["HSET".into(), k("tenant_name:uni"), "id".into(), T2.into()],
        vec![
            "SADD".into(),
            k(&format!("tenant_settings:{T1}")),
            "set-1".into(),
            "set-2".into(),
        ],
        vec![
            "HSET".into(),
            k("tenant_setting:set-1"),
            "param".into(),
            "record".into(),
            "value".into(),
            "false".into(),
            "override".into(),
            "true".into(),
            "tenant_id".into(),
            T1.into(),
        ],
        vec![
            "HSET".into(),
            k("tenant_setting:set-2"),
            "param".into(),
            "welcome".into(),
            "value".into(),
            "Hello $name".into(),
            "override".into(),
            "True".into(),
            "tenant_id".into(),
            T1.into(),
        ],
        vec![
            "SADD".into(),
            k("meetings"),
            "plain-room".into(),
            "expired-room".into(),
            "room-a".into(),
        ],
        vec![
            "HSET".into(),
            k("meeting:plain-room"),
            "server_id".into(),
            "srv-one".into(),
            "moderator_pw".into(),
            "mod-pw-1".into(),
            "voice_bridge".into(),
            "71234".into(),
            "tenant_id".into(),
            "".into(),
        ],
        vec![
            "HSET".into(),
            k("meeting:room-a"),
            "server_id".into(),
            "srv-legacy".into(),
            "moderator_pw".into(),
            "mod-pw-a".into(),
            "voice_bridge".into(),
            "75555".into(),
            "tenant_id".into(),
            T1.into(),
        ],
        vec!["EXPIRE".into(), k("meeting:plain-room"), "86400".into()],
        vec![
            "HSET".into(),
            k("voice_bridges"),
            "71234".into(),
            "plain-room".into(),
            "75555".into(),
            "room-a".into(),
        ],
        vec!["SET".into(), k("__health_check_set__"), "ok".into()],
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        redis.cmd(&a).await;
    }
}

/// Every key of the Redis with its type and content, to prove nothing was written.
async fn redis_snapshot(redis: &Redis) -> Vec<String> {
    let keys = match redis.cmd(&["KEYS", "*"]).await {
        ::redis::Value::Array(v) => v,
        other => panic!("KEYS answered {other:?}"),
    };
    let mut out = Vec::new();
    for k in keys {
        let ::redis::Value::BulkString(k) = k else {
            continue;
        };
        let k = String::from_utf8(k).unwrap();
        let t = format!("{:?}", redis.cmd(&["TYPE", &k]).await);
        let body = if t.contains("hash") {
            redis.cmd(&["HGETALL", &k]).await
        } else if t.contains("zset") {
            redis.cmd(&["ZRANGE", &k, "0", "-1", "WITHSCORES"]).await
        } else if t.contains("set") {
            redis.cmd(&["SORT", &k, "ALPHA"]).await
        } else {
            redis.cmd(&["GET", &k]).await
        };
        out.push(format!("{k} {t} {body:?}"));
    }
    out.sort();
    out
}

async fn pg_snapshot(url: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut out = Vec::new();
    for t in [
        "recordings",
        "metadata",
        "playback_formats",
        "thumbnails",
        "callback_data",
    ] {
        let rows = client
            .query(&format!("SELECT t::text FROM {t} t ORDER BY id"), &[])
            .await
            .unwrap();
        out.extend(rows.iter().map(|r| r.get::<_, String>(0)));
    }
    out
}

async fn del_of(lb: &Lb) -> String {
    lb.get_as(
        "bn.lb.example",
        "bn-secret-1",
        "getRecordings",
        "state=deleted",
    )
    .await
    .1
}

struct Scalelite {
    _pg: Postgres,
    redis: Redis,
    db_url: String,
}

async fn scalelite(fake: &Fake, migrated: bool) -> Scalelite {
    let pg = Postgres::start();
    let db_url = pg.create_database("scalelite_production").await;
    batch(&db_url, if migrated { MIGRATED } else { SCHEMA_RB }).await;
    batch(&db_url, &rows(migrated)).await;
    let redis = Redis::start();
    seed_redis(&redis, "scalelite", fake).await;
    // Another namespace in the same Redis must not leak into the import.
    redis
        .cmd(&["SADD", "scalelite_staging:servers", "stranger"])
        .await;
    redis
        .cmd(&[
            "HSET",
            "scalelite_staging:server:stranger",
            "url",
            "https://stranger/bigbluebutton/api",
            "secret",
            "x",
        ])
        .await;
    Scalelite {
        _pg: pg,
        redis,
        db_url,
    }
}

fn import(lb: &Lb, sl: &Scalelite, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "scalelite",
        "import",
        "--redis-url",
        &sl.redis.url,
        "--database-url",
        &sl.db_url,
    ];
    args.extend_from_slice(extra);
    lb.cli(&args)
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "import failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The table row of one kind: `(carried, present, skipped)`.
fn row(summary: &str, label: &str) -> (usize, usize, usize) {
    let line = summary
        .lines()
        .find(|l| l.starts_with(label) && l[label.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no {label} row in:\n{summary}"));
    let n: Vec<usize> = line[label.len()..]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_rb_scalelite_carries_over_with_tenants_and_nothing_is_written_back() {
    let fake = Fake::start(&["bbb-secret-0", "bbb-secret-1"]);
    fake.set_meeting(0, "plain-room", serde_json::json!({"participants": 3}))
        .await;
    tenant_meeting_on_bbb(&fake).await;
    let sl = scalelite(&fake, false).await;
    let redis_before = redis_snapshot(&sl.redis).await;
    let pg_before = pg_snapshot(&sl.db_url).await;
    let lb = Lb::start(&[
        ("MULTITENANCY_ENABLED", "true"),
        ("PROTECTED_RECORDINGS_ENABLED", "true"),
    ]);

    // A dry run writes nothing.
    let dry = ok(&import(&lb, &sl, &["--dry-run"]));
    assert!(dry.contains("dry run: nothing was written"), "{dry}");
    assert_eq!(row(&dry, "recordings").0, 4);
    let none = lb.cli(&["servers"]);
    assert!(String::from_utf8_lossy(&none.stdout).trim().is_empty());
    // Scalelite's `rake tenants` ends with the count, also when there are none.
    assert_eq!(
        lb.cli_ok(&["tenants", "list"]),
        "Total number of tenants: 0\n"
    );

    let out = ok(&import(&lb, &sl, &[]));
    assert_eq!(row(&out, "servers"), (2, 0, 0), "{out}");
    assert_eq!(row(&out, "tenants"), (2, 0, 0), "{out}");
    assert_eq!(row(&out, "tenant settings"), (2, 0, 0), "{out}");
    assert_eq!(row(&out, "tenant LRS settings"), (1, 0, 0), "{out}");
    assert_eq!(row(&out, "recordings"), (4, 0, 0), "{out}");
    // plain-room and room-a (bn's meeting, plain ID on BBB) carried; the expired one skipped.
    assert_eq!(row(&out, "running meetings"), (2, 0, 1), "{out}");
    assert!(out.contains("expired-room: its mapping expired"), "{out}");
    assert!(!out.contains("stranger"), "another namespace leaked: {out}");

    // Ids, states, multipliers, tags kept.
    let servers = lb.cli_ok(&["servers"]);
    assert!(
        servers.contains("id: srv-one") && servers.contains("id: srv-legacy"),
        "{servers}"
    );
    assert!(
        servers.contains("load multiplier: 2.5") && servers.contains("tag: big"),
        "{servers}"
    );
    assert!(!servers.contains("disabled"), "{servers}");
    let tenants = lb.cli_ok(&["tenants", "list"]);
    assert!(
        tenants.ends_with("Total number of tenants: 2\n"),
        "{tenants}"
    );
    assert!(tenants.contains(T1) && tenants.contains(T2), "{tenants}");
    let settings = lb.cli_ok(&["tenant-settings", "list", T1]);
    assert!(
        settings.contains("record") && settings.contains("Hello $name"),
        "{settings}"
    );

    // getRecordings per tenant, as Scalelite answers: t1 sees its published one (renamed,
    // metadata as stored), not the tombstone; t2 sees its unpublished, protected one.
    let (_, bn, _) = lb
        .get_as("bn.lb.example", "bn-secret-1", "getRecordings", "")
        .await;
    assert_eq!(count(&bn, "recording"), 1, "{bn}");
    assert_eq!(
        xml_field(&bn, "recordID").as_deref(),
        Some("rec-t1-a-1700000000000")
    );
    assert!(bn.contains("Renamed by the front end"), "{bn}");
    assert!(
        bn.contains("naïve — ✓") && bn.contains("Maths &amp; &lt;Physics&gt;")
            || bn.contains("<![CDATA[Maths & <Physics>]]>"),
        "{bn}"
    );
    assert_eq!(count(&bn, "format"), 2, "{bn}");
    assert!(
        bn.find("thumb-1.png").unwrap() < bn.find("thumb-2.png").unwrap(),
        "{bn}"
    );
    assert_eq!(
        xml_field(&bn, "startTime").as_deref(),
        Some("1700000000000")
    );
    let (_, uni, _) = lb
        .get_as("uni.lb.example", "uni-secret", "getRecordings", "")
        .await;
    assert_eq!(count(&uni, "recording"), 1, "{uni}");
    assert_eq!(
        xml_field(&uni, "published").as_deref(),
        Some("false"),
        "{uni}"
    );
    assert_eq!(
        xml_field(&uni, "state").as_deref(),
        Some("unpublished"),
        "{uni}"
    );
    assert_eq!(
        xml_field(&uni, "protected").as_deref(),
        Some("true"),
        "{uni}"
    );
    // The tombstone is kept (its metadata went with the deletion, so no tenant sees it,
    // as in Scalelite).
    assert_eq!(count(&del_of(&lb).await, "recording"), 0);
    let listed = lb.cli_ok(&["recordings", "list", "--meeting", "room-c"]);
    assert!(
        listed.contains("rec-t1-c-1700000200000") && listed.contains("deleted"),
        "{listed}"
    );
    let (_, cross, _) = lb
        .get_as(
            "uni.lb.example",
            "uni-secret",
            "getRecordings",
            "recordID=rec-t1",
        )
        .await;
    assert_eq!(count(&cross, "recording"), 0, "{cross}");

    // Scalelite's stores are untouched.
    assert_eq!(redis_snapshot(&sl.redis).await, redis_before);
    assert_eq!(pg_snapshot(&sl.db_url).await, pg_before);

    // Idempotent: a re-run carries nothing and changes nothing.
    let recs_before = lb.cli_ok(&["recordings", "list"]);
    let again = ok(&import(&lb, &sl, &[]));
    for label in [
        "servers",
        "tenants",
        "tenant settings",
        "recordings",
        "recording-ready URLs",
    ] {
        assert_eq!(row(&again, label).0, 0, "{label} carried twice: {again}");
    }
    assert_eq!(row(&again, "recordings").1, 4, "{again}");
    assert_eq!(lb.cli_ok(&["servers"]), servers);
    assert_eq!(lb.cli_ok(&["recordings", "list"]), recs_before);
    // bn's running meeting is reached with bn's secret on its server, by its plain ID;
    // another tenant does not see it.
    tenant_meeting_keeps_its_server(&lb, &fake, "bn.lb.example").await;
    let (_, other, _) = lb
        .get_as(
            "uni.lb.example",
            "uni-secret",
            "getMeetingInfo",
            "meetingID=room-a",
        )
        .await;
    assert!(other.contains("notFound"), "{other}");
    let (_, ended, _) = lb
        .get_as("bn.lb.example", "bn-secret-2", "end", "meetingID=room-a")
        .await;
    assert!(ended.contains("SUCCESS"), "{ended}");
    assert_eq!(fake.holder("room-a").await, None, "ended on BBB");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migrated_scalelite_imports_and_running_meetings_keep_their_servers() {
    let fake = Fake::start(&["bbb-secret-0", "bbb-secret-1"]);
    fake.set_meeting(0, "plain-room", serde_json::json!({"participants": 3}))
        .await;
    fake.set_meeting(1, "room-a", serde_json::json!({"participants": 1}))
        .await;
    let sl = scalelite(&fake, true).await;
    let lb = Lb::start(&[("PROTECTED_RECORDINGS_ENABLED", "true")]);
    let out = ok(&import(&lb, &sl, &[]));
    assert!(out.contains("built by migrations"), "{out}");
    // Without multitenancy both meetings are plain and carried over.
    assert_eq!(row(&out, "running meetings"), (2, 0, 1), "{out}");
    assert_eq!(row(&out, "recordings"), (5, 0, 0), "{out}");
    assert!(out.contains("already sent by Scalelite"), "{out}");

    // The old row with NULL flags: published as stored, not protected.
    let (_, old) = lb.get("getRecordings", "meetingID=old-room").await;
    assert_eq!(
        xml_field(&old, "published").as_deref(),
        Some("true"),
        "{old}"
    );
    assert_eq!(
        xml_field(&old, "protected").as_deref(),
        Some("false"),
        "{old}"
    );
    let (_, all) = lb.get("getRecordings", "").await;
    assert_eq!(
        count(&all, "recording"),
        4,
        "published and unpublished, no tombstone: {all}"
    );

    // Joins go to the meeting's server; a create of the same room lands there too.
    for (room, i) in [("plain-room", 0), ("room-a", 1)] {
        let r = lb
            .http
            .get(lb.api_url(
                "join",
                &format!("meetingID={room}&fullName=Ann&role=MODERATOR"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 302, "join {room}");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let host = url::Url::parse(&fake.servers[i].url).unwrap();
        let want = format!("{}:{}", host.host_str().unwrap(), host.port().unwrap());
        assert!(loc.contains(&want), "{room} joined at {loc}, not on {want}");
    }
    let (_, created) = lb.get("create", "meetingID=plain-room&name=Again").await;
    assert!(created.contains("SUCCESS"), "{created}");
    assert_eq!(fake.calls_to(0, "create").await.len(), 1);
    assert_eq!(fake.calls_to(1, "create").await.len(), 0);

    // A poll keeps both meetings (BBB reports them as they are mapped).
    lb.cli_ok(&["poll"]);
    let meetings = lb.cli_ok(&["meetings"]);
    assert!(
        meetings.contains("plain-room") && meetings.contains("room-a"),
        "{meetings}"
    );
}

/// The switch exactly as docs/switch-from-scalelite.md describes it, on the docker layout:
/// `install.sh --from-scalelite` writes Ferrolite's settings from Scalelite's (the recording
/// dirs from `SCALELITE_RECORDING_DIR`, `RECORDING_IMPORT_UNPUBLISHED=true` carried over),
/// `scalelite import` (dry run, then for real), `recordings import` of the published and the
/// unpublished tree, then Ferrolite starts and polls. Every recording of Scalelite's database
/// keeps its state, protection, tenant and metadata; a recording only on disk is indexed in
/// the state of its directory; both running meetings (one without a tenant, one of tenant
/// bn) keep their servers; no file is copied or moved.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_switch_keeps_everything_and_copies_no_file() {
    use common::trees::{inode, write_recording};
    let fake = Fake::start(&["bbb-secret-0", "bbb-secret-1"]);
    fake.set_meeting(0, "plain-room", serde_json::json!({"participants": 3}))
        .await;
    tenant_meeting_on_bbb(&fake).await;
    let sl = scalelite(&fake, true).await;
    let var = tempfile::tempdir().unwrap();
    let (published, unpublished) = (var.path().join("published"), var.path().join("unpublished"));
    std::fs::create_dir_all(var.path().join("spool")).unwrap();
    let files = [
        write_recording(&published, "rec-t1-a-1700000000000", "room-a"),
        write_recording(&unpublished, "rec-t2-b-1700000100000", "room-b"),
        write_recording(&unpublished, "rec-disk-only-1700000400000", "room-d"),
    ];
    let inodes: Vec<u64> = files.iter().map(|f| inode(f)).collect();

    // 1. install.sh --from-scalelite, from Scalelite's settings (docker layout).
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(host.path().join("etc/default")).unwrap();
    std::fs::write(
        host.path().join("etc/default/scalelite"),
        format!(
            "URL_HOST=lb.example\nLOADBALANCER_SECRET={}\nMULTITENANCY_ENABLED=true\n\
             PROTECTED_RECORDINGS_ENABLED=true\nRECORDING_IMPORT_UNPUBLISHED=true\n\
             SECRET_KEY_BASE=k3y$with$dollars\nREDIS_URL={}\nDATABASE_URL={}\n\
             SCALELITE_RECORDING_DIR={}\n",
            common::LB_SECRET,
            sl.redis.url,
            sl.db_url,
            var.path().display()
        ),
    )
    .unwrap();
    let install = std::process::Command::new("bash")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"))
        .arg("--root")
        .arg(host.path())
        .args(["--binary", env!("CARGO_BIN_EXE_ferrolite")])
        .args(["--from-scalelite", "--no-nginx"])
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    // The service's environment is what systemd reads from that file; only the service's
    // own host paths (database, socket, link dir, work dir) are moved into the test's dir.
    let parsed = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/envfile.sh"),
    )
    .arg(host.path().join("etc/default/ferrolite"))
    .output()
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env = Lb::base_env(&dir);
    let harness: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
    for line in String::from_utf8(parsed.stdout).unwrap().lines() {
        let (k, v) = line.split_once('\t').unwrap();
        if !harness.iter().any(|h| h == k) && k != "BIND" {
            env.push((k.to_string(), v.to_string()));
        }
    }
    for (k, v) in [
        ("PLAYBACK_LINK_DIR", dir.path().join("links")),
        ("RECORDING_WORK_DIR", var.path().join("work")),
    ] {
        env.retain(|(e, _)| e != k);
        env.push((k.into(), v.display().to_string()));
    }
    let setting = |k: &str| env.iter().find(|(e, _)| e == k).map(|(_, v)| v.clone());
    assert_eq!(
        setting("RECORDING_UNPUBLISH_DIR"),
        Some(unpublished.display().to_string())
    );
    assert_eq!(
        setting("SECRET_KEY_BASE").as_deref(),
        Some("k3y$with$dollars")
    );
    let cli = |args: &[&str]| {
        let out = common::cli_with(&env, dir.path(), args);
        assert!(
            out.status.success(),
            "ferrolite {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // 2. Carry Scalelite's state over (Ferrolite not started yet).
    let (redis, db) = (sl.redis.url.as_str(), sl.db_url.as_str());
    let import = [
        "scalelite",
        "import",
        "--redis-url",
        redis,
        "--database-url",
        db,
    ];
    let dry = cli(&[&import[..], &["--dry-run"]].concat());
    assert!(dry.contains("dry run: nothing was written"), "{dry}");
    let out = cli(&import);
    assert_eq!(row(&out, "running meetings"), (2, 0, 1), "{out}");

    // 3. Index the recording files where they lie.
    let tree = published.display().to_string();
    let before = cli(&["recordings", "list", "--json"]);
    cli(&["recordings", "import", "--dry-run", &tree]);
    assert_eq!(
        cli(&["recordings", "list", "--json"]),
        before,
        "a dry run indexes nothing"
    );
    for d in [&published, &unpublished] {
        let out = cli(&["recordings", "import", &d.display().to_string()]);
        assert!(
            out.contains("0 format dir(s) renamed, none copied"),
            "{out}"
        );
    }
    let now: Vec<u64> = files.iter().map(|f| inode(f)).collect();
    assert_eq!(now, inodes, "no file copied or moved");

    // Every recording of Scalelite's database as Scalelite had it.
    let listed: serde_json::Value =
        serde_json::from_str(&cli(&["recordings", "list", "--json"])).unwrap();
    let ours = |rid: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["record_id"] == rid)
            .unwrap_or_else(|| panic!("{rid} is not in Ferrolite's index: {listed}"))
            .clone()
    };
    let theirs = scalelite_recordings(&sl.db_url).await;
    assert_eq!(theirs.len(), 5);
    for (rid, state, published, protected, metadata) in &theirs {
        let r = ours(rid);
        assert_eq!(r["state"], state.as_str(), "{rid}");
        assert_eq!(r["published"], *published, "{rid}");
        assert_eq!(r["protected"], *protected, "{rid}");
        for (k, v) in metadata {
            assert_eq!(r["metadata"][k], v.as_str(), "{rid} metadata {k}");
        }
        assert_eq!(
            r["metadata"].get("tenant-id"),
            metadata
                .iter()
                .find(|(k, _)| k == "tenant-id")
                .map(|(_, v)| serde_json::json!(v))
                .as_ref(),
            "{rid} keeps its tenant"
        );
    }
    // The one only on disk: unpublished, like its directory (RECORDING_IMPORT_UNPUBLISHED
    // does not apply to a migration), and protected as Scalelite's importer marks a new
    // recording under PROTECTED_RECORDINGS_ENABLED.
    let disk = ours("rec-disk-only-1700000400000");
    assert_eq!(
        (&disk["state"], &disk["published"], &disk["protected"]),
        (
            &serde_json::json!("unpublished"),
            &serde_json::json!(false),
            &serde_json::json!(true)
        ),
        "{disk}"
    );

    // 5. Switch: Ferrolite starts and polls.
    let lb = Lb::start_in(dir, env.clone());
    lb.cli_ok(&["poll"]);
    let (_, bn, _) = lb
        .get_as("bn.lb.example", "bn-secret-1", "getRecordings", "")
        .await;
    assert_eq!(count(&bn, "recording"), 1, "{bn}");
    assert!(
        bn.contains("Renamed by the front end") && bn.contains("<gl-listed>true</gl-listed>"),
        "{bn}"
    );
    let (_, uni, _) = lb
        .get_as("uni.lb.example", "uni-secret", "getRecordings", "")
        .await;
    assert_eq!(
        (
            xml_field(&uni, "published").as_deref(),
            xml_field(&uni, "protected").as_deref()
        ),
        (Some("false"), Some("true")),
        "{uni}"
    );

    // The running meetings keep their servers: the one without a tenant on srv-one (fake
    // 0), bn's on srv-legacy (fake 1), reached with bn's secret under its plain ID.
    let meetings: serde_json::Value =
        serde_json::from_str(&lb.cli_ok(&["meetings", "--json"])).unwrap();
    let server_of = |id: &str| {
        meetings
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["meeting_id"] == id)
            .map(|m| m["server_id"].clone())
    };
    assert_eq!(
        server_of("plain-room"),
        Some(serde_json::json!("srv-one")),
        "{meetings}"
    );
    assert_eq!(
        server_of("room-a"),
        Some(serde_json::json!("srv-legacy")),
        "{meetings}"
    );
    tenant_meeting_keeps_its_server(&lb, &fake, "bn.lb.example").await;
    lb.cli_ok(&["poll"]);
    let meetings = lb.cli_ok(&["meetings"]);
    assert!(
        meetings.contains("plain-room") && meetings.contains("room-a"),
        "{meetings}"
    );
}

/// Scalelite's recordings as its database holds them: (record_id, state, published,
/// protected, metadata), NULL flags read as false and NULL values as empty, as Scalelite's
/// API answers them.
async fn scalelite_recordings(
    url: &str,
) -> Vec<(String, String, bool, bool, Vec<(String, String)>)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut out = Vec::new();
    for r in client
        .query(
            "SELECT id, record_id, state, COALESCE(published, false), COALESCE(protected, false)
             FROM recordings ORDER BY id",
            &[],
        )
        .await
        .unwrap()
    {
        let id: i64 = r.get(0);
        let meta = client
            .query(
                "SELECT key, COALESCE(value, '') FROM metadata WHERE recording_id = $1 AND key <> 'isBreakout' ORDER BY key",
                &[&id],
            )
            .await
            .unwrap()
            .iter()
            .map(|m| (m.get(0), m.get(1)))
            .collect();
        out.push((r.get(1), r.get(2), r.get(3), r.get(4), meta));
    }
    out
}

/// `room-a` as Scalelite created it for tenant bn on the server it mapped it to (fake 1):
/// the plain meeting ID, the tenant in the metadata.
async fn tenant_meeting_on_bbb(fake: &Fake) {
    fake.set_meeting(
        1,
        "room-a",
        serde_json::json!({
            "participants": 1,
            "voice_bridge": "75555",
            "metadata": {"tenant-id": T1, "tenant-name": "bn"},
        }),
    )
    .await;
}

/// After the import, bn's `room-a` is joined on fake 1 under its plain ID, and a create of
/// the same room goes there too (no second copy elsewhere).
async fn tenant_meeting_keeps_its_server(lb: &Lb, fake: &Fake, host: &str) {
    let (status, body, loc) = lb
        .get_as(
            host,
            "bn-secret-1",
            "join",
            "meetingID=room-a&fullName=Bo&role=VIEWER",
        )
        .await;
    assert_eq!(status, 302, "{body}");
    let port = url::Url::parse(&fake.servers[1].url)
        .unwrap()
        .port()
        .unwrap();
    assert!(
        loc.contains(&format!(":{port}/")) && loc.contains("meetingID=room-a&"),
        "{loc}"
    );
    let (_, created, _) = lb
        .get_as(host, "bn-secret-1", "create", "meetingID=room-a&name=Again")
        .await;
    assert!(created.contains("SUCCESS"), "{created}");
    let creates = fake.calls_to(1, "create").await;
    assert_eq!(
        creates.last().map(|c| c["params"]["meetingID"].clone()),
        Some(serde_json::json!("room-a")),
        "the create reached fake 1 under the plain ID"
    );
    assert_eq!(fake.calls_to(0, "create").await.len(), 0);
    assert_eq!(fake.meetings(1).await.len(), 1, "no second copy of room-a");
}
