//! The [`RecordingStore`] half of the store contract (`contract.rs` calls [`all`] from its
//! `recordings` suite): what the importer, getRecordings, updateRecordings, the text-track
//! calls, recording-ready URLs and playback rely on, written once for every backend.

use super::recordings::{
    PlaybackFormat, Recording, RecordingQuery, RecordingState, RecordingStore, TextTrack, Thumbnail,
};

/// Every case, each on a fresh store from `make`.
pub async fn all<S: RecordingStore, F: Fn() -> S>(make: &F) {
    imports_merge_metadata_and_replace_only_the_listed_formats(&make()).await;
    get_recordings_filters_and_pages(&make()).await;
    lookups_by_id_and_all_or_nothing_updates(&make()).await;
    text_tracks_and_ready_urls(&make()).await;
    listings_and_retention(&make()).await;
    playback_access_facts(&make()).await;
}

fn format(name: &str, record_id: &str, thumbnails: Vec<Thumbnail>) -> PlaybackFormat {
    PlaybackFormat {
        format: name.into(),
        url: format!("/playback/{name}/2.3/{record_id}"),
        length: 3,
        processing_time: Some(1200),
        size: None,
        thumbnails,
    }
}

fn rec(id: &str, meeting: &str, start: i64, meta: &[(&str, &str)]) -> Recording {
    Recording {
        record_id: id.into(),
        meeting_id: meeting.into(),
        internal_meeting_id: id.into(),
        name: format!("name of {id}"),
        published: true,
        state: Some(RecordingState::Published),
        start_time: start,
        end_time: start + 1000,
        metadata: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        formats: vec![format("presentation", id, vec![])],
        ..Default::default()
    }
}

fn ids(recs: &[Recording]) -> Vec<&str> {
    recs.iter().map(|r| r.record_id.as_str()).collect()
}

async fn found<S: RecordingStore>(s: &S, q: RecordingQuery) -> Vec<String> {
    let page = s.find_recordings(&q).await.unwrap();
    ids(&page.recordings)
        .into_iter()
        .map(String::from)
        .collect()
}

async fn imports_merge_metadata_and_replace_only_the_listed_formats<S: RecordingStore>(s: &S) {
    let thumb = |sequence: i64| Thumbnail {
        width: Some(176),
        height: None,
        alt: format!("slide {sequence}"),
        url: format!("/t/{sequence}.png"),
        sequence,
    };
    let mut first = rec("r1", "m1", 10, &[("b", "2"), ("a", "1")]);
    first.raw_size = Some(4096);
    first.participants = Some(7);
    first.parent_meeting_id = Some("parent".into());
    first.is_breakout = true;
    first.formats = vec![
        format("video", "r1", vec![]),
        format("presentation", "r1", vec![thumb(2), thumb(0), thumb(1)]),
    ];
    let stored = s.import_recording(&first).await.unwrap();
    let names: Vec<&str> = stored.formats.iter().map(|f| f.format.as_str()).collect();
    assert_eq!(names, ["presentation", "video"], "formats by name");
    let seqs: Vec<i64> = stored.formats[0]
        .thumbnails
        .iter()
        .map(|t| t.sequence)
        .collect();
    assert_eq!(seqs, [0, 1, 2], "thumbnails by sequence");
    assert_eq!(stored.formats[0].thumbnails[1], thumb(1));
    assert_eq!(
        (
            stored.raw_size,
            stored.participants,
            stored.is_breakout,
            stored.parent_meeting_id.as_deref()
        ),
        (Some(4096), Some(7), true, Some("parent"))
    );
    assert!(stored.imported_at > 0, "the import time is stored");
    assert_eq!(
        s.recording("r1").await.unwrap().as_ref(),
        Some(&stored),
        "what an import returns is what is read back"
    );

    let mut again = rec("r1", "m1", 10, &[("c", "3"), ("a", "9")]);
    again.name = "renamed".into();
    again.raw_size = None;
    again.formats = vec![PlaybackFormat {
        url: "/playback/presentation/2.3/r1?v=2".into(),
        ..format("presentation", "r1", vec![thumb(5)])
    }];
    let r = s.import_recording(&again).await.unwrap();
    assert_eq!(
        r.metadata,
        [("b", "2"), ("a", "9"), ("c", "3")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .to_vec(),
        "a re-import updates listed keys in place, appends new ones and keeps the others"
    );
    assert_eq!(r.name, "renamed");
    assert_eq!(
        r.raw_size,
        Some(4096),
        "a re-import without a size keeps the old one"
    );
    let names: Vec<&str> = r.formats.iter().map(|f| f.format.as_str()).collect();
    assert_eq!(
        names,
        ["presentation", "video"],
        "unlisted formats are kept"
    );
    assert_eq!(r.formats[0].url, "/playback/presentation/2.3/r1?v=2");
    assert_eq!(
        r.formats[0].thumbnails,
        [thumb(5)],
        "a listed format's thumbnails are replaced"
    );

    let mut repeated = rec("r2", "m1", 11, &[("k", "first"), ("j", "x"), ("k", "last")]);
    repeated.state = None;
    let r = s.import_recording(&repeated).await.unwrap();
    assert_eq!(
        r.meta("k"),
        Some("last"),
        "a repeated key keeps its last value"
    );
    assert_eq!(r.metadata.len(), 2);
    assert_eq!(r.state, None, "a recording may have no state");
}

async fn get_recordings_filters_and_pages<S: RecordingStore>(s: &S) {
    let long = "v".repeat(5000);
    for r in [
        rec("abc-1", "m1", 1, &[("gl-listed", "true")]),
        rec("abc-2", "m1", 2, &[("tenant-id", "t1")]),
        rec("xyz-3", "m2", 3, &[("tenant-id", "t2"), ("long", &long)]),
        rec(
            "a%c_4",
            "m3",
            4,
            &[("tenant-id", "t1"), ("gl-listed", "false")],
        ),
        rec("tie-a", "m4", 5, &[]),
        rec("tie-b", "m4", 5, &[]),
    ] {
        s.import_recording(&r).await.unwrap();
    }
    s.set_published("abc-1", false).await.unwrap();
    let q = RecordingQuery::default;
    let all = found(s, q()).await;
    assert_eq!(
        all,
        ["tie-b", "tie-a", "a%c_4", "xyz-3", "abc-2", "abc-1"],
        "newest first; equal start times, the later import first"
    );
    let prefixes = |p: &[&str]| RecordingQuery {
        record_id_prefixes: p.iter().map(|p| p.to_string()).collect(),
        ..q()
    };
    assert_eq!(found(s, prefixes(&["abc"])).await, ["abc-2", "abc-1"]);
    assert!(
        found(s, prefixes(&["ABC"])).await.is_empty(),
        "prefixes are case-sensitive"
    );
    assert_eq!(
        found(s, prefixes(&["a%"])).await,
        ["a%c_4"],
        "a prefix is literal text, not a pattern"
    );
    assert!(found(s, prefixes(&["a_"])).await.is_empty());
    assert!(found(s, prefixes(&["abc-1x"])).await.is_empty());
    assert_eq!(
        found(s, prefixes(&["xyz", "abc-1"])).await,
        ["xyz-3", "abc-1"]
    );
    assert_eq!(
        found(
            s,
            RecordingQuery {
                meeting_ids: vec!["m2".into(), "m1".into()],
                ..q()
            }
        )
        .await,
        ["xyz-3", "abc-2", "abc-1"]
    );
    let states = |st: &[&str]| RecordingQuery {
        states: Some(st.iter().map(|s| s.to_string()).collect()),
        ..q()
    };
    assert_eq!(found(s, states(&["unpublished"])).await, ["abc-1"]);
    assert_eq!(found(s, states(&["unpublished", "published"])).await, all);
    assert!(
        found(s, states(&[])).await.is_empty(),
        "an empty state list matches nothing"
    );
    let meta = |m: &[(&str, &[&str])]| RecordingQuery {
        meta: m
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect(),
        ..q()
    };
    assert_eq!(
        found(s, meta(&[("gl-listed", &["true"]), ("tenant-id", &["t2"])])).await,
        ["xyz-3", "abc-1"],
        "meta filters are ORed"
    );
    assert_eq!(
        found(s, meta(&[("gl-listed", &["true", "false"])])).await,
        ["a%c_4", "abc-1"]
    );
    assert_eq!(
        found(s, meta(&[("long", &[long.as_str()])])).await,
        ["xyz-3"]
    );
    assert!(found(s, meta(&[("long", &["v"])])).await.is_empty());
    assert!(found(s, meta(&[("gl-listed", &[])])).await.is_empty());
    let tenant = |t: &str| RecordingQuery {
        tenant_id: Some(t.into()),
        ..q()
    };
    assert_eq!(found(s, tenant("t1")).await, ["a%c_4", "abc-2"]);
    assert!(found(s, tenant("t3")).await.is_empty());
    assert_eq!(
        found(
            s,
            RecordingQuery {
                record_id_prefixes: vec!["abc".into()],
                ..tenant("t1")
            }
        )
        .await,
        ["abc-2"],
        "the tenant scope narrows every other filter"
    );
    assert_eq!(
        found(
            s,
            RecordingQuery {
                meeting_ids: vec!["m1".into()],
                states: Some(vec!["published".into()]),
                ..q()
            }
        )
        .await,
        ["abc-2"]
    );

    let page = |offset: u64, limit: Option<u64>| RecordingQuery {
        offset,
        limit,
        ..q()
    };
    let p = s.find_recordings(&page(1, Some(2))).await.unwrap();
    assert_eq!(
        (ids(&p.recordings), p.total),
        (vec!["tie-a", "a%c_4"], Some(6))
    );
    let p = s.find_recordings(&page(4, Some(10))).await.unwrap();
    assert_eq!(
        (ids(&p.recordings), p.total),
        (vec!["abc-2", "abc-1"], Some(6)),
        "the last, short page"
    );
    let p = s.find_recordings(&page(0, Some(10))).await.unwrap();
    assert_eq!((p.recordings.len(), p.total), (6, Some(6)));
    let p = s
        .find_recordings(&RecordingQuery {
            limit: Some(5),
            ..tenant("t3")
        })
        .await
        .unwrap();
    assert_eq!(
        (p.recordings.len(), p.total),
        (0, Some(0)),
        "no match, no page"
    );
    let p = s.find_recordings(&page(10, Some(2))).await.unwrap();
    assert_eq!(
        (p.recordings.len(), p.total),
        (0, Some(6)),
        "a page past the end is empty but counts"
    );
    let p = s
        .find_recordings(&RecordingQuery {
            limit: Some(1),
            ..tenant("t1")
        })
        .await
        .unwrap();
    assert_eq!((ids(&p.recordings), p.total), (vec!["a%c_4"], Some(2)));
    assert_eq!(
        s.find_recordings(&q()).await.unwrap().total,
        None,
        "no count without a limit"
    );

    let whole = s.find_recordings(&tenant("t1")).await.unwrap().recordings;
    let row_ids = s
        .find_recording_row_ids(&RecordingQuery {
            limit: Some(1),
            ..tenant("t1")
        })
        .await
        .unwrap();
    assert_eq!(row_ids.len(), 2, "row ids ignore the page");
    let mut chunked = Vec::new();
    for c in row_ids.chunks(1) {
        chunked.extend(s.recordings_by_row_ids(c).await.unwrap());
    }
    assert_eq!(chunked, whole, "an answer read in chunks is the same");
    let mut reversed = row_ids.clone();
    reversed.reverse();
    let back = s.recordings_by_row_ids(&reversed).await.unwrap();
    assert_eq!(
        ids(&back),
        ["abc-2", "a%c_4"],
        "rows come in the order asked"
    );
    assert!(s.recordings_by_row_ids(&[]).await.unwrap().is_empty());
}

async fn lookups_by_id_and_all_or_nothing_updates<S: RecordingStore>(s: &S) {
    s.import_recording(&rec("r1", "m", 1, &[("tenant-id", "t1"), ("x", "1")]))
        .await
        .unwrap();
    s.import_recording(&rec("r2", "m", 2, &[("tenant-id", "t2")]))
        .await
        .unwrap();
    let both = ["r1".to_string(), "r2".into()];
    let got = s.recordings_by_ids(&both, None).await.unwrap();
    assert_eq!(ids(&got), ["r2", "r1"], "newest first");
    let got = s.recordings_by_ids(&both, Some("t1")).await.unwrap();
    assert_eq!(ids(&got), ["r1"], "scoped to the tenant");
    assert!(s
        .recordings_by_ids(&["nope".into()], None)
        .await
        .unwrap()
        .is_empty());
    assert!(s.recording("nope").await.unwrap().is_none());

    let set = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    assert_eq!(
        s.update_recordings(
            &["r1".into(), "nope".into()],
            None,
            &[set("x", "2")],
            Some(true)
        )
        .await
        .unwrap(),
        None,
        "an unknown id changes nothing"
    );
    assert_eq!(
        s.update_recordings(&both, Some("t1"), &[set("x", "2")], None)
            .await
            .unwrap(),
        None,
        "another tenant's recording changes nothing"
    );
    let r1 = s.recording("r1").await.unwrap().unwrap();
    assert_eq!((r1.meta("x"), r1.protected), (Some("1"), false));

    let long_key = "k".repeat(3000);
    assert_eq!(
        s.update_recordings(
            &both,
            None,
            &[set("x", "2"), set(&long_key, "long"), ("gone".into(), None)],
            Some(true)
        )
        .await
        .unwrap(),
        Some(true)
    );
    for id in ["r1", "r2"] {
        let r = s.recording(id).await.unwrap().unwrap();
        assert_eq!(
            (r.meta("x"), r.meta(&long_key), r.protected),
            (Some("2"), Some("long"), true),
            "{id}: every listed recording changes"
        );
    }
    let r1 = s.recording("r1").await.unwrap().unwrap();
    let keys: Vec<&str> = r1.metadata.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["tenant-id", "x", long_key.as_str()],
        "an updated key keeps its place"
    );
    assert_eq!(
        s.update_recordings(&["r1".into()], Some("t1"), &[("absent".into(), None)], None)
            .await
            .unwrap(),
        Some(false),
        "removing a missing key changes nothing"
    );
    assert_eq!(
        s.update_recordings(
            &["r1".into()],
            Some("t1"),
            &[("x".into(), None)],
            Some(false)
        )
        .await
        .unwrap(),
        Some(true)
    );
    let r1 = s.recording("r1").await.unwrap().unwrap();
    assert_eq!((r1.meta("x"), r1.protected), (None, false));
    assert_eq!(
        s.update_recordings(&[], None, &[set("x", "3")], None)
            .await
            .unwrap(),
        None,
        "no ids, no update"
    );
}

async fn text_tracks_and_ready_urls<S: RecordingStore>(s: &S) {
    let track = |kind: &str, lang: &str, label: &str| TextTrack {
        kind: kind.into(),
        lang: lang.into(),
        label: label.into(),
        source: "upload".into(),
        content: format!("WEBVTT\n\n{label}\n").into_bytes(),
    };
    assert!(
        !s.put_text_track("nope", &track("subtitles", "en", "x"))
            .await
            .unwrap(),
        "no track for an unknown recording"
    );
    s.import_recording(&rec("r1", "m", 1, &[])).await.unwrap();
    for t in [
        track("subtitles", "fr", "Français"),
        track("captions", "en", "English"),
        track("subtitles", "en", "English (subs)"),
        track("captions", "en", "English, again"),
    ] {
        assert!(s.put_text_track("r1", &t).await.unwrap());
    }
    let got = s.text_tracks("r1").await.unwrap();
    assert_eq!(
        got,
        [
            track("captions", "en", "English, again"),
            track("subtitles", "en", "English (subs)"),
            track("subtitles", "fr", "Français"),
        ],
        "one track per kind and language, the last put wins, by language then kind"
    );
    assert!(s.text_tracks("nope").await.unwrap().is_empty());
    assert!(s.tombstone_recording("r1").await.unwrap());
    assert!(
        s.text_tracks("r1").await.unwrap().is_empty(),
        "a deleted recording has no tracks"
    );

    s.set_ready_url("t1", "m", "https://a.example/1")
        .await
        .unwrap();
    s.set_ready_url("t1", "m", "https://a.example/2")
        .await
        .unwrap();
    s.set_ready_url("t2", "m", "https://b.example/")
        .await
        .unwrap();
    assert_eq!(
        s.ready_url("t1", "m").await.unwrap().as_deref(),
        Some("https://a.example/2"),
        "a later create replaces the URL"
    );
    assert_eq!(
        s.ready_url("t2", "m").await.unwrap().as_deref(),
        Some("https://b.example/"),
        "per tenant"
    );
    assert_eq!(s.ready_url("t1", "other").await.unwrap(), None);
    assert_eq!(
        s.prune_ready_urls(0).await.unwrap(),
        0,
        "nothing is that old"
    );
    assert_eq!(s.prune_ready_urls(i64::MAX).await.unwrap(), 2);
    assert_eq!(s.ready_url("t1", "m").await.unwrap(), None);
}

async fn listings_and_retention<S: RecordingStore>(s: &S) {
    for r in [
        rec("old", "m1", 100, &[]),
        rec("older", "m1", 50, &[]),
        rec("new", "m2", 300, &[]),
        rec("gone", "m1", 10, &[]),
    ] {
        s.import_recording(&r).await.unwrap();
    }
    s.tombstone_recording("gone").await.unwrap();
    assert_eq!(
        ids(&s.list_recordings(Some("m1")).await.unwrap()),
        ["old", "older", "gone"],
        "a meeting's recordings, newest first, tombstones too"
    );
    assert_eq!(
        ids(&s.list_recordings(None).await.unwrap()),
        ["new", "old", "older", "gone"]
    );
    assert_eq!(
        ids(&s.recordings_started_before(200).await.unwrap()),
        ["older", "old"],
        "retention: oldest first, never a tombstone"
    );
    assert!(s.recordings_started_before(10).await.unwrap().is_empty());
}

async fn playback_access_facts<S: RecordingStore>(s: &S) {
    let mut r = rec("r1", "m", 1, &[("tenant-id", "t1")]);
    r.formats.push(format("video", "r1", vec![]));
    r.protected = true;
    s.import_recording(&r).await.unwrap();
    let mut bare = rec("r2", "m", 2, &[]);
    bare.formats.clear();
    bare.published = false;
    s.import_recording(&bare).await.unwrap();
    s.import_recording(&rec("r3", "m", 3, &[])).await.unwrap();
    s.tombstone_recording("r3").await.unwrap();

    let sorted = |mut f: Vec<(String, String)>| {
        f.sort();
        f
    };
    let a = s.playback_access("r1").await.unwrap().unwrap();
    assert_eq!(
        (a.published, a.protected, a.tenant_id.as_deref()),
        (true, true, Some("t1"))
    );
    assert_eq!(
        sorted(a.formats),
        [
            (
                "presentation".to_string(),
                "/playback/presentation/2.3/r1".to_string()
            ),
            ("video".to_string(), "/playback/video/2.3/r1".to_string()),
        ]
    );
    let b = s.playback_access("r2").await.unwrap().unwrap();
    assert_eq!(
        (b.published, b.protected, b.tenant_id, b.formats.len()),
        (false, false, None, 0),
        "a recording without formats is known, and plays nothing"
    );
    let every = s.playback_all().await.unwrap();
    let names: Vec<&str> = every.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        names,
        ["r1", "r2"],
        "every recording but the deleted, by id"
    );
    assert_eq!(
        every[0].1.formats.len(),
        2,
        "one entry per recording, with all its formats"
    );
}
