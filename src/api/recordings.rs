//! The recording calls: getRecordings, publishRecordings, updateRecordings,
//! deleteRecordings, getRecordingTextTracks, putRecordingTextTrack — answered from the index
//! and the recording directories, never from a BBB server — plus the tarball upload endpoint
//! and the caption files.
//!
//! Parameter handling is pure ([`query_from`], [`meta_changes`]); the answers follow
//! Scalelite's getRecordings builder (with BBB 2.6+ `offset`/`limit` and `<totalElements>`),
//! and the text-track calls answer JSON as BBB does. Playback and thumbnail URLs are built on
//! the scheme and host of the request, as Scalelite does.

use std::path::{Path, PathBuf};

use http::{header, Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use serde_json::json;
use sha2::Digest;

use super::call::{Call, CallBody};
use crate::app::App;
use crate::bbb::calls::ApiCall;
use crate::bbb::params::Params;
use crate::http::response::{self, answer, ApiError, ApiResult, HttpResponse};
use crate::recordings::actions::{publish_one, remove_everywhere};
use crate::recordings::{importer, upload};
use crate::store::claim::RecordingClaim;
use crate::store::recordings::{Recording, RecordingQuery, RecordingState, TextTrack};

pub async fn dispatch(app: &App, call: Call) -> HttpResponse {
    match call.kind {
        ApiCall::GetRecordings => answer(get_recordings(app, call).await),
        ApiCall::PublishRecordings => answer(publish_recordings(app, call).await),
        ApiCall::UpdateRecordings => answer(update_recordings(app, call).await),
        ApiCall::DeleteRecordings => answer(delete_recordings(app, call).await),
        ApiCall::GetRecordingTextTracks => get_text_tracks(app, call).await,
        ApiCall::PutRecordingTextTrack => put_text_track(app, call).await,
        _ => ApiError::unsupported_request().into_response(),
    }
}

/// Scalelite's answers while `RECORDING_DISABLED=true` (no checksum needed).
pub fn disabled_stub(call: ApiCall) -> HttpResponse {
    match call {
        ApiCall::GetRecordings => response::xml(no_recordings_xml()),
        _ => not_found().into_response(),
    }
}

fn no_recordings_xml() -> String {
    "<response><returncode>SUCCESS</returncode><recordings></recordings>\
     <messageKey>noRecordings</messageKey><message>There are not recordings for the meetings</message></response>"
        .into()
}

fn not_found() -> ApiError {
    ApiError::new("notFound", "We could not find recordings")
}

fn missing_record_id() -> ApiError {
    ApiError::new("missingParamRecordID", "You must specify a recordID.")
}

fn store_failed(e: crate::store::StoreError) -> HttpResponse {
    ApiError::from(e).into_response()
}

fn tenant(call: &Call) -> Option<&str> {
    (!call.tenant_id.is_empty()).then_some(call.tenant_id.as_str())
}

/// A comma list without empty items.
fn list(v: Option<&str>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// getRecordings parameters → query. `Err` is the FAILED answer to give.
pub fn query_from(
    params: &Params,
    tenant_id: Option<&str>,
    filtered: bool,
) -> Result<RecordingQuery, ApiError> {
    let meeting_ids = list(params.get("meetingID"));
    let record_id_prefixes = list(params.get("recordID"));
    if filtered && meeting_ids.is_empty() && record_id_prefixes.is_empty() {
        return Err(ApiError::new(
            "missingParameters",
            "param meetingID or recordID must be included.",
        ));
    }
    let states = match params.get("state") {
        None => Some(vec!["published".to_string(), "unpublished".to_string()]),
        Some(s) => {
            let l = list(Some(s));
            if l.iter().any(|x| x == "any") {
                None
            } else if l.is_empty() {
                Some(vec!["published".to_string(), "unpublished".to_string()])
            } else {
                Some(l)
            }
        }
    };
    let meta = params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("meta_")
                .filter(|k| !k.is_empty())
                .map(|k| (k.to_string(), v.split(',').map(str::to_string).collect()))
        })
        .collect();
    // BBB 2.6+: paginate only when limit is a valid integer; clamp it to 1..=100.
    let limit = params
        .get("limit")
        .and_then(|l| l.trim().parse::<i64>().ok())
        .map(|l| l.clamp(1, 100) as u64);
    let offset = match limit {
        Some(_) => params
            .get("offset")
            .and_then(|o| o.trim().parse::<i64>().ok())
            .filter(|o| *o >= 0)
            .unwrap_or(0) as u64,
        None => 0,
    };
    Ok(RecordingQuery {
        meeting_ids,
        record_id_prefixes,
        states,
        meta,
        tenant_id: tenant_id.map(str::to_string),
        offset,
        limit,
    })
}

/// Whether `k` can be written as an XML element name (metadata keys become elements).
pub fn xml_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !k.to_ascii_lowercase().starts_with("xml")
}

/// The playback URL of one format. A protected recording links to the load balancer's play
/// route with a fresh one-time token instead of the files.
fn playback_url(
    prefix: &str,
    rec: &Recording,
    format: &str,
    url: &str,
    links: &crate::playback::Links,
) -> String {
    if rec.protected {
        let token = links
            .get(&(rec.record_id.clone(), format.to_string()))
            .map(String::as_str)
            .unwrap_or("");
        format!(
            "{prefix}/recording/{}/{format}?token={token}",
            rec.record_id
        )
    } else {
        format!("{prefix}{url}")
    }
}

/// Escapes element text as Ruby's Builder does (`&`, `<`, `>` only).
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::partial_escape(s)
}

/// Escapes an attribute value as Builder does (also `"`).
fn escape_attr(s: &str) -> String {
    quick_xml::escape::partial_escape(s).replace('"', "&quot;")
}

fn el(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let v = value.to_string();
    out.push_str(&format!("<{name}>{}</{name}>", escape(&v)));
}

/// One `<recording>` element, as Scalelite's builder writes it.
pub fn recording_xml(
    out: &mut String,
    rec: &Recording,
    prefix: &str,
    show_protected: bool,
    links: &crate::playback::Links,
) {
    out.push_str("<recording>");
    el(out, "recordID", &rec.record_id);
    el(out, "meetingID", &rec.meeting_id);
    el(out, "internalMeetingID", &rec.record_id);
    el(out, "name", &rec.name);
    el(out, "published", rec.published);
    if show_protected {
        el(out, "protected", rec.protected);
    }
    if let Some(s) = &rec.state {
        el(out, "state", s);
    }
    el(out, "startTime", rec.start_time);
    el(out, "endTime", rec.end_time);
    if let Some(p) = rec.participants {
        el(out, "participants", p);
    }
    if let Some(r) = rec.raw_size {
        el(out, "rawSize", r);
    }
    out.push_str("<metadata>");
    for (k, v) in &rec.metadata {
        if !xml_name(k) {
            continue;
        }
        if v.trim().is_empty() {
            out.push_str(&format!("<{k}><![CDATA[]]></{k}>"));
        } else {
            el(out, k, v);
        }
    }
    out.push_str("</metadata><playback>");
    for f in &rec.formats {
        out.push_str("<format>");
        el(out, "type", &f.format);
        el(
            out,
            "url",
            playback_url(prefix, rec, &f.format, &f.url, links),
        );
        el(out, "length", f.length);
        if let Some(p) = f.processing_time {
            el(out, "processingTime", p);
        }
        if let Some(s) = f.size {
            el(out, "size", s);
        }
        if !rec.protected && !f.thumbnails.is_empty() {
            out.push_str("<preview><images>");
            for t in &f.thumbnails {
                let attr = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
                out.push_str(&format!(
                    "<image alt=\"{}\" width=\"{}\" height=\"{}\">{}</image>",
                    escape_attr(&t.alt),
                    attr(t.width),
                    attr(t.height),
                    escape(&format!("{prefix}{}", t.url))
                ));
            }
            out.push_str("</images></preview>");
        }
        out.push_str("</format>");
    }
    out.push_str("</playback></recording>");
}

fn url_prefix(call: &Call) -> String {
    format!("{}://{}", call.scheme, call.host)
}

async fn get_recordings(app: &App, call: Call) -> ApiResult {
    let q = query_from(
        &call.params,
        tenant(&call),
        app.config.recordings.api_filtered,
    )?;
    let prefix = url_prefix(&call);
    let mut out = String::with_capacity(4096);
    out.push_str("<response><returncode>SUCCESS</returncode><recordings>");
    let render = |out: &mut String, recs: &[Recording], links: &crate::playback::Links| {
        for rec in recs {
            recording_xml(
                out,
                rec,
                &prefix,
                app.config.recordings.protected_enabled,
                links,
            );
        }
    };
    let (empty, total) = if q.limit.is_some() {
        let page = app.recordings.find_recordings(&q).await?;
        let links = crate::playback::mint_links(app, &page.recordings).await?;
        render(&mut out, &page.recordings, &links);
        (page.recordings.is_empty(), page.total)
    } else {
        // Every match: read and render a chunk at a time, so only one chunk of recordings is
        // in memory besides the answer being written.
        let ids = app.recordings.find_recording_row_ids(&q).await?;
        for chunk in ids.chunks(GET_RECORDINGS_CHUNK) {
            let recs = app.recordings.recordings_by_row_ids(chunk).await?;
            let links = crate::playback::mint_links(app, &recs).await?;
            render(&mut out, &recs, &links);
        }
        (ids.is_empty(), None)
    };
    out.push_str("</recordings>");
    if empty {
        out.push_str("<messageKey>noRecordings</messageKey><message>There are not recordings for the meetings</message>");
    }
    if let Some(total) = total {
        el(&mut out, "totalElements", total);
    }
    out.push_str("</response>");
    Ok(response::xml(out))
}

async fn publish_recordings(app: &App, call: Call) -> ApiResult {
    let ids = list(call.params.get("recordID"));
    if ids.is_empty() {
        return Err(missing_record_id());
    }
    let Some(publish) = call.params.get("publish") else {
        return Err(ApiError::new(
            "missingParamPublish",
            "You must specify a publish value true or false.",
        ));
    };
    let publish = publish.eq_ignore_ascii_case("true");
    let recs = app
        .recordings
        .recordings_by_ids(&ids, tenant(&call))
        .await?;
    let recs: Vec<Recording> = recs
        .into_iter()
        .filter(|r| r.state.is_some_and(RecordingState::is_settled))
        .collect();
    if recs.is_empty() {
        return Err(not_found());
    }
    for rec in recs.iter().filter(|r| r.published != publish) {
        if let Err(e) = publish_one(app, &rec.record_id, publish).await {
            tracing::warn!(record = %rec.record_id, error = %e, "publish/unpublish failed");
            return Err(ApiError::internal("Unable to publish/unpublish recording."));
        }
        crate::playback::refresh(app, &rec.record_id).await;
    }
    if !publish {
        crate::playback::announce(app).await;
    }
    Ok(response::xml(response::success(&[(
        "published",
        if publish { "true" } else { "false" },
    )])))
}

/// updateRecordings' `meta_*` parameters: key lower-cased, empty value = remove.
pub fn meta_changes(params: &Params) -> Vec<(String, Option<String>)> {
    params
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("meta_").filter(|k| !k.is_empty()).map(|k| {
                (
                    k.to_ascii_lowercase(),
                    (!v.is_empty()).then(|| v.to_string()),
                )
            })
        })
        .collect()
}

/// Rails' boolean cast, as Scalelite applies it to `protect`.
pub fn rails_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "" => None,
        "0" | "f" | "F" | "false" | "FALSE" | "off" | "OFF" => Some(false),
        _ => Some(true),
    }
}

async fn update_recordings(app: &App, call: Call) -> ApiResult {
    let ids = list(call.params.get("recordID"));
    if ids.is_empty() {
        return Err(missing_record_id());
    }
    let changes = meta_changes(&call.params);
    let protect = call.params.get("protect").and_then(rails_bool);
    if protect == Some(true) {
        // Fail closed: nginx stops serving the files directly before the store says so.
        for id in &ids {
            crate::playback::unlink(app, id);
        }
    }
    let result = app
        .recordings
        .update_recordings(&ids, tenant(&call), &changes, protect)
        .await;
    for id in &ids {
        crate::playback::refresh(app, id).await;
    }
    if protect == Some(true) {
        crate::playback::announce(app).await;
    }
    let updated = result?.unwrap_or(false);
    Ok(response::xml(response::success(&[(
        "updated",
        if updated { "true" } else { "false" },
    )])))
}

async fn delete_recordings(app: &App, call: Call) -> ApiResult {
    let ids = list(call.params.get("recordID"));
    if ids.is_empty() {
        return Err(missing_record_id());
    }
    let recs = app
        .recordings
        .recordings_by_ids(&ids, tenant(&call))
        .await?;
    if recs.is_empty() {
        return Err(not_found());
    }
    for rec in &recs {
        let claim = RecordingClaim::take(&app.leases, &rec.record_id).await?;
        crate::playback::unlink(app, &rec.record_id);
        app.recordings.tombstone_recording(&rec.record_id).await?;
        crate::playback::unlink(app, &rec.record_id);
        let (a, b, rid) = (
            app.config.recordings.publish_dir.clone(),
            app.config.recordings.unpublish_dir.clone(),
            rec.record_id.clone(),
        );
        let removed = tokio::task::spawn_blocking(move || remove_everywhere(&[a, b], &rid)).await;
        claim.release().await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(record = %rec.record_id, error = %e, "recording deleted from the index, but some files remain");
        }
    }
    crate::playback::announce(app).await;
    Ok(response::xml(response::success(&[("deleted", "true")])))
}

// --- text tracks (JSON, as BBB) ---------------------------------------------------------

fn json_response(v: serde_json::Value) -> HttpResponse {
    response::with_status(
        StatusCode::OK,
        "application/json; charset=utf-8",
        v.to_string(),
    )
}

fn json_failed(key: &str, message: impl Into<String>) -> HttpResponse {
    json_response(
        json!({"response": {"returncode": "FAILED", "messageKey": key, "message": message.into()}}),
    )
}

/// The URL a caption file is served at.
pub fn text_track_path(record_id: &str, kind: &str, lang: &str) -> String {
    format!("/bigbluebutton/textTrack/{record_id}/{kind}_{lang}.vtt")
}

async fn get_text_tracks(app: &App, call: Call) -> HttpResponse {
    let Some(rid) = call.params.non_empty("recordID").map(str::to_string) else {
        return missing_record_id().into_response();
    };
    match app
        .recordings
        .recordings_by_ids(std::slice::from_ref(&rid), tenant(&call))
        .await
    {
        Ok(r) if r.iter().any(|r| r.state != Some(RecordingState::Deleted)) => {}
        Ok(_) => return json_failed("noRecordings", format!("No recording found for {rid}")),
        Err(e) => return store_failed(e),
    }
    let tracks = match app.recordings.text_tracks(&rid).await {
        Ok(t) => t,
        Err(e) => return store_failed(e),
    };
    if tracks.is_empty() {
        return json_failed("noCaptionsFound", format!("No captions found for {rid}"));
    }
    let prefix = url_prefix(&call);
    let list: Vec<_> = tracks
        .iter()
        .map(|t| {
            json!({"kind": t.kind, "lang": t.lang, "label": t.label, "source": t.source,
                   "href": format!("{prefix}{}", text_track_path(&rid, &t.kind, &t.lang))})
        })
        .collect();
    json_response(json!({"response": {"returncode": "SUCCESS", "tracks": list}}))
}

/// A BCP 47-looking language tag (`en`, `en-US`, `pt-BR`, `zh-Hant-TW`).
pub fn valid_lang(lang: &str) -> bool {
    let mut parts = lang.split('-');
    let first = parts.next().unwrap_or("");
    (2..=3).contains(&first.len())
        && first.chars().all(|c| c.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The largest text track accepted (a caption file of a long recording is a few hundred KB).
pub const MAX_TEXT_TRACK: u64 = 2 * 1024 * 1024;

/// Why the `file` part of a multipart body could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartError {
    /// No part is named `file` (by its `name` parameter, not its `filename`).
    Missing,
    TooLarge,
    /// Not a multipart body (no boundary, broken framing).
    Malformed,
}

/// The content of the part named `file` of a multipart body (parsed by `multer`: the part's
/// `name` parameter exactly, never a `filename` that happens to read `file`), at most `max`
/// bytes.
pub async fn multipart_file(
    body: bytes::Bytes,
    content_type: &str,
    max: u64,
) -> Result<Vec<u8>, PartError> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| PartError::Malformed)?;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().for_field("file", max));
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::with_constraints(stream, boundary, constraints);
    let refused = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            PartError::TooLarge
        }
        _ => PartError::Malformed,
    };
    while let Some(mut field) = parts.next_field().await.map_err(refused)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut content = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(refused)? {
            if content.len() as u64 + chunk.len() as u64 > max {
                return Err(PartError::TooLarge);
            }
            content.extend_from_slice(&chunk);
        }
        return Ok(content);
    }
    Err(PartError::Missing)
}

async fn put_text_track(app: &App, mut call: Call) -> HttpResponse {
    let p = &call.params;
    let Some(rid) = p.non_empty("recordID").map(str::to_string) else {
        return json_failed("paramError", "Missing param recordID.");
    };
    let Some(kind) = p.non_empty("kind").map(str::to_string) else {
        return json_failed("paramError", "Missing param kind.");
    };
    let Some(lang) = p.non_empty("lang").map(str::to_string) else {
        return json_failed("paramError", "Missing param lang.");
    };
    if kind != "subtitles" && kind != "captions" {
        return json_failed(
            "invalidKind",
            format!("Invalid kind parameter, expected='subtitles|captions' actual={kind}"),
        );
    }
    if !valid_lang(&lang) {
        return json_failed(
            "invalidLang",
            format!("Malformed lang param, received={lang}"),
        );
    }
    let label = p
        .non_empty("label")
        .map(str::to_string)
        .unwrap_or_else(|| lang.clone());
    match app
        .recordings
        .recordings_by_ids(std::slice::from_ref(&rid), tenant(&call))
        .await
    {
        Ok(r) if r.iter().any(|r| r.state != Some(RecordingState::Deleted)) => {}
        Ok(_) => return json_failed("noRecordings", format!("No recording was found for {rid}")),
        Err(e) => return store_failed(e),
    }
    let content = match std::mem::replace(&mut call.body, CallBody::None) {
        CallBody::Multipart { body, content_type } => {
            multipart_file(body, &content_type, MAX_TEXT_TRACK).await
        }
        _ => Err(PartError::Missing),
    };
    let content = match content {
        Ok(c) => c,
        Err(PartError::TooLarge) => {
            return json_failed(
                "upload_text_track_failed",
                format!("The text track is larger than {MAX_TEXT_TRACK} bytes."),
            )
        }
        Err(_) => Vec::new(),
    };
    if content.iter().all(|b| b.is_ascii_whitespace()) {
        return json_failed("empty_uploaded_text_track", "Empty uploaded text track.");
    }
    let track = TextTrack {
        kind,
        lang,
        label,
        source: "upload".into(),
        content,
    };
    match app.recordings.put_text_track(&rid, &track).await {
        Ok(true) => json_response(
            json!({"response": {"returncode": "SUCCESS", "recordId": rid,
            "messageKey": "upload_text_track_success", "message": "Text track uploaded successfully"}}),
        ),
        Ok(false) => json_failed("noRecordings", format!("No recording was found for {rid}")),
        Err(e) => {
            tracing::warn!(error = %e, "could not store a text track");
            json_failed("upload_text_track_failed", "Text track upload failed.")
        }
    }
}

/// `GET /bigbluebutton/textTrack/<recordID>/<kind>_<lang>.vtt`: a caption file of a
/// published, unprotected recording.
pub async fn serve_text_track(app: &App, rest: &str) -> HttpResponse {
    let nf = || response::text(StatusCode::NOT_FOUND, "Not Found");
    let Some((rid, file)) = rest.split_once('/') else {
        return nf();
    };
    let Some((kind, lang)) = file.strip_suffix(".vtt").and_then(|f| f.split_once('_')) else {
        return nf();
    };
    match app.recordings.recording(rid).await {
        Ok(Some(r)) if r.published && !r.protected => {}
        _ => return nf(),
    }
    match app.recordings.text_tracks(rid).await {
        Ok(t) => match t.into_iter().find(|t| t.kind == kind && t.lang == lang) {
            Some(t) => response::with_status(StatusCode::OK, "text/vtt; charset=utf-8", t.content),
            None => nf(),
        },
        Err(_) => nf(),
    }
}

/// How many recordings an unpaged getRecordings reads from the index at once.
const GET_RECORDINGS_CHUNK: usize = 200;

// --- upload -----------------------------------------------------------------------------

fn upload_answer(status: StatusCode, v: serde_json::Value) -> HttpResponse {
    response::with_status(status, "application/json; charset=utf-8", v.to_string())
}

fn upload_failed(status: StatusCode, key: &str, message: impl Into<String>) -> HttpResponse {
    upload_answer(
        status,
        json!({"returncode": "FAILED", "messageKey": key, "message": message.into()}),
    )
}

/// `POST /bigbluebutton/recording/upload`: a tarball pushed by a BBB server's hook. Answers
/// 2xx only once the import committed; 4xx when retrying cannot help (bad token, bad
/// tarball — then kept in `failed/`); 503 when it can.
pub async fn upload(app: &App, req: Request<Incoming>) -> HttpResponse {
    if req.method() != Method::POST {
        return upload_failed(
            StatusCode::METHOD_NOT_ALLOWED,
            "methodNotAllowed",
            "Use POST with the tarball as the body.",
        );
    }
    let cfg = &app.config.recordings;
    if cfg.disabled {
        return upload_failed(
            StatusCode::NOT_FOUND,
            "recordingDisabled",
            "Recordings are disabled on this load balancer (RECORDING_DISABLED).",
        );
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let Some(token) = token else {
        return upload_failed(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            upload::TokenError::Missing.to_string(),
        );
    };
    let servers = match app.store.servers().await {
        Ok(s) => s,
        Err(e) => {
            return upload_failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "storeUnavailable",
                e.to_string(),
            )
        }
    };
    let now = crate::store::now_ms() as u64 / 1000;
    let (claims, server) = match upload::verify(&token, &servers, now) {
        Ok(c) => c,
        Err(e) => return upload_failed(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()),
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cfg.max_size_bytes) {
        return upload_failed(
            StatusCode::PAYLOAD_TOO_LARGE,
            "requestTooLarge",
            format!(
                "The tarball is larger than RECORDING_MAX_SIZE ({} bytes).",
                cfg.max_size_bytes
            ),
        );
    }
    if let Err(e) = crate::blocking::run(|| std::fs::create_dir_all(&cfg.spool_dir)) {
        return upload_failed(
            StatusCode::SERVICE_UNAVAILABLE,
            "spoolUnavailable",
            format!("cannot create RECORDING_SPOOL_DIR: {e}"),
        );
    }
    let tmp = cfg.spool_dir.join(format!(
        ".{}.upload-{}.tmp",
        claims.sub,
        uuid::Uuid::new_v4().simple()
    ));
    let digest = match receive(req.into_body(), &tmp, cfg.max_size_bytes).await {
        Ok(d) => d,
        Err((status, msg)) => {
            let _ = crate::blocking::run(|| std::fs::remove_file(&tmp));
            return upload_failed(status, "uploadFailed", msg);
        }
    };
    if !digest.eq_ignore_ascii_case(claims.sha256.trim()) {
        let _ = crate::blocking::run(|| std::fs::remove_file(&tmp));
        return upload_failed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "checksumMismatch",
            "The body's SHA-256 does not match the token's sha256 claim; send it again.",
        );
    }
    let name = format!("{}.tar", claims.sub);
    match importer::import_tarball(app, &tmp, Some(&claims.sub), importer::Origin::Upload).await {
        Ok(report) if report.failed.is_empty() => {
            let _ = crate::blocking::run(|| std::fs::remove_file(&tmp));
            tracing::info!(record = %claims.sub, server = %server, "recording uploaded");
            let formats: Vec<&String> = report.imported.iter().flat_map(|(_, f)| f).collect();
            upload_answer(
                StatusCode::OK,
                json!({"returncode": "SUCCESS", "recordID": claims.sub, "formats": formats}),
            )
        }
        Ok(report) => {
            let reason = importer::failed_reason(&report);
            if let Err(e) = crate::blocking::run(|| set_aside(app, &tmp, &name, &reason)) {
                importer::aside_failed(app, &tmp, &reason, &e);
            }
            upload_failed(StatusCode::UNPROCESSABLE_ENTITY, "importFailed", format!("Some formats could not be imported (kept in the spool's failed/ folder): {reason}"))
        }
        Err(importer::ImportError::Refused(reason)) => {
            if let Err(e) = crate::blocking::run(|| set_aside(app, &tmp, &name, &reason)) {
                importer::aside_failed(app, &tmp, &reason, &e);
            }
            upload_failed(
                StatusCode::UNPROCESSABLE_ENTITY,
                "importFailed",
                format!("The tarball was refused (kept in the spool's failed/ folder): {reason}"),
            )
        }
        Err(importer::ImportError::Retry(reason)) => {
            let _ = crate::blocking::run(|| std::fs::remove_file(&tmp));
            upload_failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "importUnavailable",
                format!("The import could not complete; retry later: {reason}"),
            )
        }
    }
}

fn set_aside(app: &App, tmp: &Path, name: &str, reason: &str) -> std::io::Result<PathBuf> {
    let named = tmp.with_file_name(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
    std::fs::rename(tmp, &named)?;
    let dest = importer::set_aside(app, &named, reason)?;
    let clean = dest.with_file_name(name);
    if !clean.exists() {
        std::fs::rename(&dest, &clean)?;
        let _ = std::fs::rename(
            format!("{}.reason", dest.display()),
            format!("{}.reason", clean.display()),
        );
        return Ok(clean);
    }
    Ok(dest)
}

/// Streams the body to `path`; returns its hex SHA-256.
async fn receive(
    mut body: Incoming,
    path: &Path,
    max: u64,
) -> Result<String, (StatusCode, String)> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(path).await.map_err(|e| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot write to the spool: {e}"),
        )
    })?;
    let mut hasher = sha2::Sha256::new();
    let mut total: u64 = 0;
    loop {
        let data = match crate::http::body::next_chunk(&mut body).await {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => {
                let status = match e {
                    crate::http::body::BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
                    _ => StatusCode::BAD_REQUEST,
                };
                return Err((status, format!("the upload was interrupted: {e}")));
            }
        };
        total += data.len() as u64;
        if total > max {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "The tarball is larger than RECORDING_MAX_SIZE.".into(),
            ));
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot write to the spool: {e}"),
            )
        })?;
    }
    file.sync_all().await.map_err(|e| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot write to the spool: {e}"),
        )
    })?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_follow_scalelite_and_bbb_paging() {
        let q = query_from(
            &Params::parse(
                b"meetingID=a,b&recordID=r1&meta_gl-listed=true,false&state=published,deleted",
            ),
            None,
            false,
        )
        .unwrap();
        assert_eq!(q.meeting_ids, vec!["a", "b"]);
        assert_eq!(q.record_id_prefixes, vec!["r1"]);
        assert_eq!(q.states, Some(vec!["published".into(), "deleted".into()]));
        assert_eq!(
            q.meta,
            vec![(
                "gl-listed".to_string(),
                vec!["true".to_string(), "false".to_string()]
            )]
        );
        assert_eq!(q.limit, None);
        let q = query_from(
            &Params::parse(b"state=any&limit=500&offset=-3"),
            Some("t"),
            false,
        )
        .unwrap();
        assert_eq!((q.states, q.limit, q.offset), (None, Some(100), 0));
        assert_eq!(q.tenant_id.as_deref(), Some("t"));
        let q = query_from(&Params::parse(b""), None, false).unwrap();
        assert_eq!(
            q.states,
            Some(vec!["published".into(), "unpublished".into()])
        );
        assert_eq!(
            query_from(&Params::parse(b"state=any"), None, true)
                .unwrap_err()
                .key,
            "missingParameters"
        );
    }

    #[test]
    fn update_params_lower_case_keys_and_empty_means_remove() {
        let c = meta_changes(&Params::parse(b"recordID=r&meta_Gl-Listed=&meta_new=v"));
        assert_eq!(
            c,
            vec![
                ("gl-listed".to_string(), None),
                ("new".to_string(), Some("v".to_string()))
            ]
        );
        assert_eq!(rails_bool("false"), Some(false));
        assert_eq!(rails_bool("1"), Some(true));
        assert_eq!(rails_bool(""), None);
    }

    #[test]
    fn metadata_keys_that_are_not_xml_names_are_left_out() {
        assert!(xml_name("gl-listed") && xml_name("bbb-origin-server-name"));
        assert!(!xml_name("a b") && !xml_name("<x>") && !xml_name("1a") && !xml_name(""));
        let rec = Recording {
            record_id: "r".into(),
            metadata: vec![("ok".into(), "".into()), ("bad key".into(), "x".into())],
            ..Default::default()
        };
        let mut s = String::new();
        recording_xml(&mut s, &rec, "https://lb", false, &Default::default());
        assert!(
            s.contains("<metadata><ok><![CDATA[]]></ok></metadata>"),
            "{s}"
        );
    }

    fn part(body: &[u8], max: u64) -> Result<Vec<u8>, PartError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(multipart_file(
            bytes::Bytes::copy_from_slice(body),
            "multipart/form-data; boundary=XX",
            max,
        ))
    }

    #[test]
    fn multipart_file_part_is_found_by_its_name_only() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.vtt\"\r\nContent-Type: text/vtt\r\n\r\nWEBVTT\n\n1\r\n--XX--\r\n";
        assert_eq!(part(body, 1024).unwrap(), b"WEBVTT\n\n1");
        // Parts whose headers contain `name="file"` without being named `file`.
        for decoy in [
            "name=\"notes\"; filename=\"file\"",
            "name=\"decoy\"; filename=\"x\"; x-name=\"file\"",
            "name=\"file2\"",
            "name=\"FILE\"",
            "name=\"decoy\"; filename=\"name=\\\"file\\\"\"",
        ] {
            let body = format!("--XX\r\nContent-Disposition: form-data; {decoy}\r\n\r\nWRONG\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.vtt\"\r\n\r\nRIGHT\r\n--XX--\r\n");
            assert_eq!(part(body.as_bytes(), 1024).unwrap(), b"RIGHT", "{decoy}");
            let only = format!(
                "--XX\r\nContent-Disposition: form-data; {decoy}\r\n\r\nWRONG\r\n--XX--\r\n"
            );
            assert_eq!(
                part(only.as_bytes(), 1024),
                Err(PartError::Missing),
                "{decoy}"
            );
        }
        let big = format!(
            "--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n{}\r\n--XX--\r\n",
            "a".repeat(5000)
        );
        assert_eq!(part(big.as_bytes(), 4096), Err(PartError::TooLarge));
        assert_eq!(part(b"no boundary here", 10), Err(PartError::Malformed));
        assert!(
            valid_lang("en-US") && valid_lang("pt") && !valid_lang("english!") && !valid_lang("e")
        );
    }
}
