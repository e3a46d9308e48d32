//! The recording calls: getRecordings, publishRecordings, updateRecordings,
//! deleteRecordings — answered from the index, never from a BBB server. Each handler
//! parses its parameters, runs the action of `crate::recordings::actions`, and answers.
//!
//! Parameter handling is pure ([`query_from`], [`meta_changes`]); the answers follow
//! Scalelite's getRecordings builder (with BBB 2.6+ `offset`/`limit` and `<totalElements>`,
//! the `<recording>` element is `super::recording_xml`). Playback and thumbnail URLs are
//! built on the scheme and host of the request, as Scalelite does. The text-track calls are
//! `super::text_tracks`, the tarball upload `super::upload`.

use super::call::Call;
use super::recording_xml::{el, recording_xml};
use crate::app::App;
use crate::bbb::calls::ApiCall;
use crate::bbb::params::Params;
use crate::http::response::{self, answer, ApiError, ApiResult, HttpResponse};
use crate::recordings::actions::{self, ActionError};
use crate::store::recordings::{Recording, RecordingQuery, RecordingState};

pub async fn dispatch(app: &App, call: Call) -> HttpResponse {
    match call.kind {
        ApiCall::GetRecordings => answer(get_recordings(app, call).await),
        ApiCall::PublishRecordings => answer(publish_recordings(app, call).await),
        ApiCall::UpdateRecordings => answer(update_recordings(app, call).await),
        ApiCall::DeleteRecordings => answer(delete_recordings(app, call).await),
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

async fn get_recordings(app: &App, call: Call) -> ApiResult {
    let q = query_from(
        &call.params,
        call.scope().id(),
        app.config.recordings.api_filtered,
    )?;
    let prefix = call.url_prefix();
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
        return Err(ApiError::missing_record_id());
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
        .recordings_by_ids(&ids, call.scope().id())
        .await?;
    let recs: Vec<Recording> = recs
        .into_iter()
        .filter(|r| r.state.is_some_and(RecordingState::is_settled))
        .collect();
    if recs.is_empty() {
        return Err(not_found());
    }
    for rec in recs.iter().filter(|r| r.published != publish) {
        if let Err(e) = actions::publish_one(app, &rec.record_id, publish).await {
            tracing::warn!(record = %rec.record_id, error = %e, "publish/unpublish failed");
            return Err(ApiError::internal("Unable to publish/unpublish recording."));
        }
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
        return Err(ApiError::missing_record_id());
    }
    let changes = meta_changes(&call.params);
    let protect = call.params.get("protect").and_then(rails_bool);
    let updated = actions::update(app, &ids, call.scope().id(), &changes, protect).await?;
    Ok(response::xml(response::success(&[(
        "updated",
        if updated { "true" } else { "false" },
    )])))
}

async fn delete_recordings(app: &App, call: Call) -> ApiResult {
    let ids = list(call.params.get("recordID"));
    if ids.is_empty() {
        return Err(ApiError::missing_record_id());
    }
    let recs = app
        .recordings
        .recordings_by_ids(&ids, call.scope().id())
        .await?;
    if recs.is_empty() {
        return Err(not_found());
    }
    for rec in &recs {
        match actions::delete_one(app, &rec.record_id).await {
            Ok(()) => {}
            Err(ActionError::Files(e)) => {
                tracing::warn!(record = %rec.record_id, error = %e, "recording deleted from the index, but some files remain");
            }
            Err(ActionError::Store(e)) => return Err(e.into()),
        }
    }
    Ok(response::xml(response::success(&[("deleted", "true")])))
}

/// How many recordings an unpaged getRecordings reads from the index at once.
const GET_RECORDINGS_CHUNK: usize = 200;

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
}
