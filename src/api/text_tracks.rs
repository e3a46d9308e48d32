//! The text-track calls (getRecordingTextTracks, putRecordingTextTrack: JSON, as BBB),
//! the multipart parsing of an uploaded caption file, and the caption files served at
//! `/bigbluebutton/textTrack/<recordID>/<kind>_<lang>.vtt`.

use http::StatusCode;
use serde_json::json;

use super::call::{Call, CallBody};
use crate::app::App;
use crate::http::response::{self, ApiError, HttpResponse};
use crate::store::recordings::{RecordingState, TextTrack};
use crate::store::{StoreError, StoreResult};

/// A refused text-track call: BBB's JSON `FAILED` answer, or the XML error of the API
/// (a missing recordID, the store failing).
#[derive(Debug)]
enum Refusal {
    Json(&'static str, String),
    Bbb(ApiError),
}

fn refused(key: &'static str, message: impl Into<String>) -> Refusal {
    Refusal::Json(key, message.into())
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Bbb(e.into())
    }
}

impl Refusal {
    fn into_response(self) -> HttpResponse {
        match self {
            Refusal::Json(key, message) => json_failed(key, message),
            Refusal::Bbb(e) => e.into_response(),
        }
    }
}

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

/// Whether the call's tenant has a recording `rid` that is not deleted.
async fn live(app: &App, call: &Call, rid: &str) -> StoreResult<bool> {
    let recs = app
        .recordings
        .recordings_by_ids(&[rid.to_string()], call.scope().id())
        .await?;
    Ok(recs
        .iter()
        .any(|r| r.state != Some(RecordingState::Deleted)))
}

pub async fn get_text_tracks(app: &App, call: Call) -> HttpResponse {
    get_tracks(app, call)
        .await
        .unwrap_or_else(Refusal::into_response)
}

async fn get_tracks(app: &App, call: Call) -> Result<HttpResponse, Refusal> {
    let rid = call
        .params
        .non_empty("recordID")
        .map(str::to_string)
        .ok_or(Refusal::Bbb(ApiError::missing_record_id()))?;
    if !live(app, &call, &rid).await? {
        return Err(refused(
            "noRecordings",
            format!("No recording found for {rid}"),
        ));
    }
    let tracks = app.recordings.text_tracks(&rid).await?;
    if tracks.is_empty() {
        return Err(refused(
            "noCaptionsFound",
            format!("No captions found for {rid}"),
        ));
    }
    let prefix = call.url_prefix();
    let list: Vec<_> = tracks
        .iter()
        .map(|t| {
            json!({"kind": t.kind, "lang": t.lang, "label": t.label, "source": t.source,
                   "href": format!("{prefix}{}", text_track_path(&rid, &t.kind, &t.lang))})
        })
        .collect();
    Ok(json_response(
        json!({"response": {"returncode": "SUCCESS", "tracks": list}}),
    ))
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

pub async fn put_text_track(app: &App, call: Call) -> HttpResponse {
    put_track(app, call)
        .await
        .unwrap_or_else(Refusal::into_response)
}

async fn put_track(app: &App, mut call: Call) -> Result<HttpResponse, Refusal> {
    let p = &call.params;
    let param = |name: &str| {
        p.non_empty(name)
            .map(str::to_string)
            .ok_or_else(|| refused("paramError", format!("Missing param {name}.")))
    };
    let rid = param("recordID")?;
    let kind = param("kind")?;
    let lang = param("lang")?;
    if kind != "subtitles" && kind != "captions" {
        return Err(refused(
            "invalidKind",
            format!("Invalid kind parameter, expected='subtitles|captions' actual={kind}"),
        ));
    }
    if !valid_lang(&lang) {
        return Err(refused(
            "invalidLang",
            format!("Malformed lang param, received={lang}"),
        ));
    }
    let label = p
        .non_empty("label")
        .map(str::to_string)
        .unwrap_or_else(|| lang.clone());
    let no_recording = || refused("noRecordings", format!("No recording was found for {rid}"));
    if !live(app, &call, &rid).await? {
        return Err(no_recording());
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
            return Err(refused(
                "upload_text_track_failed",
                format!("The text track is larger than {MAX_TEXT_TRACK} bytes."),
            ))
        }
        Err(_) => Vec::new(),
    };
    if content.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(refused(
            "empty_uploaded_text_track",
            "Empty uploaded text track.",
        ));
    }
    let track = TextTrack {
        kind,
        lang,
        label,
        source: "upload".into(),
        content,
    };
    let stored = app
        .recordings
        .put_text_track(&rid, &track)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "could not store a text track");
            refused("upload_text_track_failed", "Text track upload failed.")
        })?;
    if !stored {
        return Err(no_recording());
    }
    Ok(json_response(
        json!({"response": {"returncode": "SUCCESS", "recordId": rid,
        "messageKey": "upload_text_track_success", "message": "Text track uploaded successfully"}}),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

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
