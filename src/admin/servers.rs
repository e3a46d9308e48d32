//! Server actions: add, update, change state, panic, remove.

use crate::app::App;
use crate::store::{Meeting, Server, ServerPatch, ServerState};

use super::{AdminError, AdminResult};

/// Checks an API URL: http(s) with a host.
pub fn validate_url(raw: &str) -> AdminResult<url::Url> {
    let u = url::Url::parse(raw.trim()).map_err(|e| {
        AdminError::Invalid(format!("'{raw}' is not a URL ({e}); give the server's API URL, e.g. https://bbb1.example.com/bigbluebutton/api"))
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(AdminError::Invalid(format!(
            "server URL must start with http:// or https:// and name a host, got '{raw}'"
        )));
    }
    Ok(u)
}

/// The form two URLs are compared in (and stored in): what [`url::Url`] makes of it (scheme
/// and host lower-cased, default port dropped) without trailing slashes.
pub fn normalize_url(u: &url::Url) -> String {
    u.as_str().trim_end_matches('/').to_string()
}

/// The server already using `url` (compared in normal form), if any.
pub fn same_url<'a>(list: &'a [Server], url: &url::Url) -> Option<&'a Server> {
    let want = normalize_url(url);
    list.iter().find(|s| {
        url::Url::parse(&s.url)
            .map(|u| normalize_url(&u) == want)
            .unwrap_or(false)
    })
}

pub fn validate_multiplier(m: f64) -> AdminResult<f64> {
    if m.is_finite() && m > 0.0 {
        Ok(m)
    } else {
        Err(AdminError::Invalid(format!(
            "load multiplier must be a positive number, got {m}"
        )))
    }
}

fn normalize_tag(tag: Option<String>) -> Option<String> {
    tag.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Adds a server, disabled until enabled (as Scalelite).
pub async fn add(
    app: &App,
    url: &str,
    secret: &str,
    multiplier: Option<f64>,
    tag: Option<String>,
) -> AdminResult<Server> {
    let u = validate_url(url)?;
    if secret.trim().is_empty() {
        return Err(AdminError::Invalid(
            "the server's secret must not be empty (see `bbb-conf --secret` on the BBB server)"
                .into(),
        ));
    }
    let multiplier = validate_multiplier(multiplier.unwrap_or(1.0))?;
    if let Some(other) = same_url(&app.store.servers().await?, &u) {
        return Err(AdminError::Invalid(format!(
            "server '{}' already has the URL {}; change that one with `ferrolite servers update {}`",
            other.id, other.url, other.id
        )));
    }
    let id = if app.config.server_id_is_hostname {
        u.host_str().unwrap_or_default().to_ascii_lowercase()
    } else {
        uuid::Uuid::new_v4().to_string()
    };
    let server = Server::new(
        id,
        normalize_url(&u),
        secret.trim().to_string(),
        multiplier,
        normalize_tag(tag),
    );
    app.store.add_server(&server).await?;
    Ok(server)
}

pub async fn get(app: &App, id: &str) -> AdminResult<Server> {
    app.store.server(id).await?.ok_or_else(|| {
        AdminError::NotFound(format!(
            "no server with id '{id}' (see `ferrolite servers`)"
        ))
    })
}

/// Changes secret, multiplier or tag (`Some("")` removes the tag).
pub async fn update(
    app: &App,
    id: &str,
    secret: Option<String>,
    multiplier: Option<f64>,
    tag: Option<String>,
) -> AdminResult<Server> {
    if let Some(s) = &secret {
        if s.trim().is_empty() {
            return Err(AdminError::Invalid("the secret must not be empty".into()));
        }
    }
    let patch = ServerPatch {
        secret: secret.map(|s| s.trim().to_string()),
        load_multiplier: multiplier.map(validate_multiplier).transpose()?,
        tag: tag.map(|t| normalize_tag(Some(t))),
        state: None,
        url: None,
    };
    patch_server(app, id, &patch).await
}

async fn patch_server(app: &App, id: &str, patch: &ServerPatch) -> AdminResult<Server> {
    app.store.update_server(id, patch).await?.ok_or_else(|| {
        AdminError::NotFound(format!(
            "no server with id '{id}' (see `ferrolite servers`)"
        ))
    })
}

pub async fn set_state(app: &App, id: &str, state: ServerState) -> AdminResult<Server> {
    patch_server(
        app,
        id,
        &ServerPatch {
            state: Some(state),
            ..Default::default()
        },
    )
    .await
}

/// Disables a server. With meetings on it, refuses unless `force` (then ends them).
pub async fn disable(app: &App, id: &str, force: bool) -> AdminResult<(Server, Vec<Meeting>)> {
    let server = get(app, id).await?;
    let meetings = app.store.meetings_on(id).await?;
    if !meetings.is_empty() && !force {
        return Err(AdminError::Refused(format!(
            "server '{id}' still holds {} meeting(s); run `ferrolite servers cordon {id}` to let them finish, or add --yes to end them now",
            meetings.len()
        )));
    }
    let ended = clear_meetings(app, &server, true).await?;
    Ok((set_state(app, id, ServerState::Disabled).await?, ended))
}

/// Forgets every meeting of the server (ending them on BBB unless `skip_end_calls`) and
/// disables it unless `keep_state`.
pub async fn panic(
    app: &App,
    id: &str,
    keep_state: bool,
    skip_end_calls: bool,
) -> AdminResult<(Server, Vec<Meeting>)> {
    let server = get(app, id).await?;
    let ended = clear_meetings(app, &server, !skip_end_calls).await?;
    let server = if keep_state {
        server
    } else {
        set_state(app, id, ServerState::Disabled).await?
    };
    Ok((server, ended))
}

async fn clear_meetings(app: &App, server: &Server, end_calls: bool) -> AdminResult<Vec<Meeting>> {
    let gone = app
        .store
        .forget_meetings_except(&server.id, &[], i64::MAX)
        .await?;
    if end_calls {
        for m in &gone {
            if let Some(e) = super::meetings::end_on_server(app, server, m).await {
                tracing::warn!(server = %server.id, meeting = %m.meeting_id, error = %e, "end failed while clearing meetings");
            }
        }
    }
    Ok(gone)
}

/// Removes a server. With meetings on it, refuses unless `force` (then ends them first).
pub async fn remove(app: &App, id: &str, force: bool) -> AdminResult<Vec<Meeting>> {
    let server = get(app, id).await?;
    let meetings = app.store.meetings_on(id).await?;
    if !meetings.is_empty() && !force {
        return Err(AdminError::Refused(format!(
            "server '{id}' still holds {} meeting(s); run `ferrolite servers cordon {id}` to let them finish and remove it then, or add --force to end them now",
            meetings.len()
        )));
    }
    let ended = clear_meetings(app, &server, true).await?;
    forget(app, id).await?;
    Ok(ended)
}

/// Removes a server and forgets its meetings without asking or ending them (the admin
/// API's `deleteServer`, as Scalelite's).
pub async fn forget(app: &App, id: &str) -> AdminResult<()> {
    if app.store.remove_server(id).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "no server with id '{id}' (see `ferrolite servers`)"
        )))
    }
}
