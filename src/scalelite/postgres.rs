//! Reads Scalelite's PostgreSQL: recordings with their metadata, playback formats and
//! thumbnails, and callback data. The session is read-only
//! (`default_transaction_read_only`) and everything is read in one `READ ONLY` transaction,
//! so the import sees one consistent snapshot and cannot write.
//!
//! Both flavours import: a database built from `db/schema.rb` (NOT NULL booleans) and one
//! upgraded by migrations over the years (nullable booleans; very old ones lack the
//! `protected`/`publish_updated` columns or the `callback_data` table entirely).

use std::collections::{HashMap, HashSet};

use super::{redact_url, ImportError, PgState, SlCallbackData, SlFormat, SlRecording, SlThumbnail};

fn err(url: &str) -> impl Fn(tokio_postgres::Error) -> ImportError + '_ {
    move |e| ImportError::Postgres {
        url: url.to_string(),
        message: match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        },
    }
}

/// Reads the whole recordings index.
pub async fn read(url: &str) -> Result<PgState, ImportError> {
    let shown = redact_url(url);
    let e = err(&shown);
    let mut config: tokio_postgres::Config = url.parse().map_err(&e)?;
    config.options("-c default_transaction_read_only=on");
    let (mut client, conn) = config.connect(tokio_postgres::NoTls).await.map_err(&e)?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = read_all(&mut client, &e).await;
    drop(client);
    let _ = task.await;
    result
}

async fn read_all(
    client: &mut tokio_postgres::Client,
    e: &impl Fn(tokio_postgres::Error) -> ImportError,
) -> Result<PgState, ImportError> {
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(e)?;
    let columns: HashMap<(String, String), bool> = tx
        .query(
            "SELECT table_name::text, column_name::text, is_nullable = 'YES'
             FROM information_schema.columns WHERE table_schema = current_schema()",
            &[],
        )
        .await
        .map_err(e)?
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    let has = |t: &str, c: &str| columns.contains_key(&(t.to_string(), c.to_string()));
    let tables: HashSet<&str> = ["recordings", "metadata", "playback_formats", "thumbnails"]
        .into_iter()
        .filter(|t| has(t, "id"))
        .collect();
    if !tables.contains("recordings") {
        return Err(ImportError::Postgres {
            url: String::new(),
            message: "no `recordings` table: is this Scalelite's database?".into(),
        });
    }
    let nullable = columns
        .get(&("recordings".to_string(), "published".to_string()))
        .copied()
        .unwrap_or(true);
    let flavour = if nullable { "migrations" } else { "schema.rb" }.to_string();
    let opt_col = |c: &str| {
        if has("recordings", c) {
            c.to_string()
        } else {
            format!("NULL::boolean AS {c}")
        }
    };

    let sql = format!(
        "SELECT id::bigint, record_id::text, meeting_id::text, name::text, published,
                participants::bigint, state::text,
                (EXTRACT(EPOCH FROM starttime) * 1000)::bigint,
                (EXTRACT(EPOCH FROM endtime) * 1000)::bigint, {}, {}
         FROM recordings ORDER BY id",
        opt_col("protected"),
        opt_col("publish_updated")
    );
    let mut order = Vec::new();
    let mut recs: HashMap<i64, SlRecording> = HashMap::new();
    for r in tx.query(sql.as_str(), &[]).await.map_err(e)? {
        let id: i64 = r.get(0);
        order.push(id);
        recs.insert(
            id,
            SlRecording {
                record_id: r.get(1),
                meeting_id: r.get(2),
                name: r.get(3),
                published: r.get(4),
                participants: r.get(5),
                state: r.get(6),
                start_ms: r.get(7),
                end_ms: r.get(8),
                protected: r.get(9),
                publish_updated: r.get(10),
                ..SlRecording::default()
            },
        );
    }
    if tables.contains("metadata") {
        let rows = tx
            .query(
                "SELECT recording_id::bigint, key::text, value::text FROM metadata
                 WHERE key IS NOT NULL ORDER BY recording_id, id",
                &[],
            )
            .await
            .map_err(e)?;
        for r in rows {
            let rid: Option<i64> = r.get(0);
            if let Some(rec) = rid.and_then(|id| recs.get_mut(&id)) {
                rec.metadata.push((r.get(1), r.get(2)));
            }
        }
    }
    let mut format_owner: HashMap<i64, (i64, usize)> = HashMap::new();
    if tables.contains("playback_formats") {
        let rows = tx
            .query(
                "SELECT id::bigint, recording_id::bigint, format::text, url::text,
                        length::bigint, processing_time::bigint
                 FROM playback_formats ORDER BY recording_id, format, id",
                &[],
            )
            .await
            .map_err(e)?;
        for r in rows {
            let rid: Option<i64> = r.get(1);
            if let Some((rid, rec)) = rid.and_then(|id| recs.get_mut(&id).map(|rec| (id, rec))) {
                format_owner.insert(r.get(0), (rid, rec.formats.len()));
                rec.formats.push(SlFormat {
                    format: r.get(2),
                    url: r.get(3),
                    length: r.get(4),
                    processing_time: r.get(5),
                    thumbnails: Vec::new(),
                });
            }
        }
    }
    if tables.contains("thumbnails") {
        let rows = tx
            .query(
                "SELECT playback_format_id::bigint, width::bigint, height::bigint, alt::text,
                        url::text, sequence::bigint
                 FROM thumbnails ORDER BY playback_format_id, sequence, id",
                &[],
            )
            .await
            .map_err(e)?;
        for r in rows {
            let fid: Option<i64> = r.get(0);
            let Some((rid, idx)) = fid.and_then(|f| format_owner.get(&f).copied()) else {
                continue;
            };
            if let Some(f) = recs.get_mut(&rid).and_then(|rec| rec.formats.get_mut(idx)) {
                f.thumbnails.push(SlThumbnail {
                    width: r.get(1),
                    height: r.get(2),
                    alt: r.get(3),
                    url: r.get(4),
                    sequence: r.get(5),
                });
            }
        }
    }
    let mut callback_data = Vec::new();
    if has("callback_data", "id") {
        let rows = tx
            .query(
                "SELECT meeting_id::text, recording_id::bigint, callback_attributes::text
                 FROM callback_data ORDER BY id",
                &[],
            )
            .await
            .map_err(e)?;
        for r in rows {
            callback_data.push(SlCallbackData {
                meeting_id: r.get(0),
                recording_id: r.get(1),
                attributes: r.get(2),
            });
        }
    }
    tx.rollback().await.map_err(e)?;
    Ok(PgState {
        recordings: order
            .into_iter()
            .filter_map(|id| recs.remove(&id))
            .collect(),
        callback_data,
        flavour,
    })
}
