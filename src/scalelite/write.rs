//! Applies an import plan through Ferrolite's store traits, and gathers what the store
//! already holds (for the plan's idempotency). Progress goes to stdout, one line per step.

use std::collections::HashSet;

use super::plan::{Existing, Kind, Plan, Skip};
use super::ImportError;
use crate::app::App;
use crate::store::{ChoiceError, PlaceOutcome, PlaceRequest};

/// What the plan needs to know about Ferrolite's store.
pub async fn existing(app: &App, record_ids: &[String]) -> Result<Existing, ImportError> {
    let mut ex = Existing::default();
    for s in app.store.servers().await? {
        ex.server_urls.insert(s.url.clone(), s.id.clone());
        ex.servers.insert(s.id, s.url);
    }
    for t in app.store.tenants().await? {
        for s in app.store.tenant_settings(&t.id).await? {
            ex.setting_ids.insert(s.id);
        }
        if app.store.tenant_lrs(&t.id).await?.is_some() {
            ex.lrs_tenants.insert(t.id.clone());
        }
        ex.tenant_names
            .insert(t.name.to_ascii_lowercase(), t.id.clone());
        ex.tenant_ids.insert(t.id);
    }
    for m in app.store.meetings().await? {
        ex.voice_bridges.insert(m.voice_bridge.clone());
        if app
            .recordings
            .ready_url(&m.tenant_id, &m.meeting_id)
            .await?
            .is_some()
        {
            ex.ready_urls
                .insert((m.tenant_id.clone(), m.meeting_id.clone()));
        }
        ex.meetings.insert((m.tenant_id, m.meeting_id));
    }
    for chunk in record_ids.chunks(500) {
        for r in app.recordings.recordings_by_ids(chunk, None).await? {
            ex.recordings.insert(r.record_id);
        }
    }
    Ok(ex)
}

/// Ready URLs already stored for meetings that are not running (checked one by one, since
/// the store has no listing of them).
pub async fn existing_ready_urls(
    app: &App,
    wanted: &[(String, String, String)],
    ex: &mut Existing,
) -> Result<(), ImportError> {
    for (t, m, url) in wanted {
        if app.recordings.ready_url(t, m).await?.as_deref() == Some(url.as_str()) {
            ex.ready_urls.insert((t.clone(), m.clone()));
        }
    }
    Ok(())
}

fn progress(kind: Kind, done: usize, total: usize) {
    if total > 0 && (done == total || done.is_multiple_of(500)) {
        println!("{}: {done}/{total}", kind.label());
    }
}

/// Writes the plan; things that turn out not to fit (a voice bridge taken meanwhile) are
/// added to the plan's skips.
pub async fn apply(app: &App, plan: &mut Plan) -> Result<(), ImportError> {
    let mut late: Vec<Skip> = Vec::new();
    let mut late_skip = |kind, id: &str, reason: String| {
        late.push(Skip {
            kind,
            id: id.to_string(),
            reason,
            present: false,
        })
    };
    for (i, t) in plan.tenants.iter().enumerate() {
        app.store.add_tenant(t).await?;
        progress(Kind::Tenant, i + 1, plan.tenants.len());
    }
    for (i, (id, lrs)) in plan.lrs.iter().enumerate() {
        app.store.set_tenant_lrs(id, Some(lrs)).await?;
        progress(Kind::Lrs, i + 1, plan.lrs.len());
    }
    for (i, s) in plan.settings.iter().enumerate() {
        app.store.add_tenant_setting(s).await?;
        progress(Kind::TenantSetting, i + 1, plan.settings.len());
    }
    for (i, s) in plan.servers.iter().enumerate() {
        app.store.add_server(&s.server).await?;
        progress(Kind::Server, i + 1, plan.servers.len());
    }
    let mut placed = HashSet::new();
    for (i, m) in plan.meetings.iter().enumerate() {
        let server = m.server_id.clone();
        let choose =
            move |_: &[crate::store::Server]| -> Result<String, ChoiceError> { Ok(server.clone()) };
        let req = PlaceRequest {
            tenant_id: &m.tenant_id,
            meeting_id: &m.meeting_id,
            moderator_pw: &m.moderator_pw,
            voice_bridges: std::slice::from_ref(&m.voice_bridge),
            choose: std::sync::Arc::new(choose),
            now_ms: m.created_at,
            max_tenant_meetings: None,
            bbb_id: Some(&m.bbb_id),
            only_server: Some(&m.server_id),
        };
        match app.store.place_meeting(&req).await? {
            PlaceOutcome::Placed(..) => {
                placed.insert(m.meeting_id.clone());
            }
            PlaceOutcome::Existing(_) => late_skip(
                Kind::Meeting,
                &m.meeting_id,
                "created in Ferrolite meanwhile".into(),
            ),
            PlaceOutcome::NoVoiceBridge => late_skip(
                Kind::Meeting,
                &m.meeting_id,
                format!("voice bridge {} was taken meanwhile", m.voice_bridge),
            ),
            PlaceOutcome::Refused(_) | PlaceOutcome::TenantLimit(_) => late_skip(
                Kind::Meeting,
                &m.meeting_id,
                format!("server {} is not in Ferrolite's store", m.server_id),
            ),
        }
        progress(Kind::Meeting, i + 1, plan.meetings.len());
    }
    plan.meetings.retain(|m| placed.contains(&m.meeting_id));
    // Online state, load and counters last, so placing meetings did not raise the load.
    for s in &plan.servers {
        app.store.save_poll(&s.server.id, &s.poll).await?;
    }
    for (i, (t, m, url)) in plan.ready_urls.iter().enumerate() {
        app.recordings.set_ready_url(t, m, url).await?;
        progress(Kind::ReadyUrl, i + 1, plan.ready_urls.len());
    }
    for (i, r) in plan.recordings.iter().enumerate() {
        app.recordings.import_recording(r).await?;
        progress(Kind::Recording, i + 1, plan.recordings.len());
    }
    plan.skipped.extend(late);
    Ok(())
}
