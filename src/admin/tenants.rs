//! Tenant and tenant-setting actions, shared by the CLI (`tenants …`, `tenant-settings …`)
//! and the admin REST API (`getTenants`, `addTenant`, …).

use crate::app::App;
use crate::store::{Tenant, TenantPatch, TenantSetting};
use crate::tenant::{parse_secrets, valid_name};

use super::{AdminError, AdminResult};

fn not_found(id: &str) -> AdminError {
    AdminError::NotFound(format!("Couldn't find Tenant with id={id}"))
}

fn check_name(name: &str) -> AdminResult<String> {
    let name = name.trim().to_ascii_lowercase();
    if !valid_name(&name) {
        return Err(AdminError::Invalid(format!(
            "'{name}' cannot be a tenant name: use one host label (letters, digits, '-'), as the tenant is chosen by the host <name>.<BASE_URL>"
        )));
    }
    Ok(name)
}

fn check_secrets(raw: &str) -> AdminResult<Vec<String>> {
    let secrets = parse_secrets(raw);
    if secrets.is_empty() {
        return Err(AdminError::Invalid(
            "give at least one secret (several are separated by ':')".into(),
        ));
    }
    Ok(secrets)
}

pub async fn add(app: &App, name: &str, secrets: &str) -> AdminResult<Tenant> {
    let tenant = Tenant {
        id: uuid::Uuid::new_v4().to_string(),
        name: check_name(name)?,
        secrets: check_secrets(secrets)?,
        max_meetings: None,
        max_participants: None,
    };
    app.store.add_tenant(&tenant).await?;
    Ok(tenant)
}

pub async fn get(app: &App, id: &str) -> AdminResult<Tenant> {
    app.store.tenant(id).await?.ok_or_else(|| not_found(id))
}

pub async fn list(app: &App) -> AdminResult<Vec<Tenant>> {
    Ok(app.store.tenants().await?)
}

/// What `update` may change; a limit of `Some(0)` removes the limit.
#[derive(Debug, Default, Clone)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub secrets: Option<String>,
    pub max_meetings: Option<u32>,
    pub max_participants: Option<u32>,
}

impl TenantChanges {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.secrets.is_none()
            && self.max_meetings.is_none()
            && self.max_participants.is_none()
    }
}

pub async fn update(app: &App, id: &str, c: TenantChanges) -> AdminResult<Tenant> {
    let limit = |n: Option<u32>| n.map(|n| (n > 0).then_some(n));
    let patch = TenantPatch {
        name: c.name.as_deref().map(check_name).transpose()?,
        secrets: c.secrets.as_deref().map(check_secrets).transpose()?,
        max_meetings: limit(c.max_meetings),
        max_participants: limit(c.max_participants),
    };
    app.store
        .update_tenant(id, &patch)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Removes a tenant and its settings; refused while it has meetings unless `force`.
/// Sets the tenant's LRS (`None` removes it). The endpoint and a token URL must be http(s).
pub async fn set_lrs(app: &App, id: &str, lrs: Option<crate::store::TenantLrs>) -> AdminResult<()> {
    if let Some(l) = &lrs {
        for (what, u) in [
            ("the LRS endpoint", Some(&l.endpoint)),
            ("the token URL", l.kc_token_url.as_ref()),
        ] {
            if let Some(u) = u {
                crate::admin::servers::validate_url(u).map_err(|_| {
                    AdminError::Invalid(format!(
                        "{what} must be an http:// or https:// URL, got '{u}'"
                    ))
                })?;
            }
        }
    }
    if app.store.set_tenant_lrs(id, lrs.as_ref()).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "no tenant with id '{id}' (see `ferrolite tenants`)"
        )))
    }
}

pub async fn remove(app: &App, id: &str, force: bool) -> AdminResult<()> {
    get(app, id).await?;
    let (meetings, _) = app.store.tenant_usage(id).await?;
    if meetings > 0 && !force {
        return Err(AdminError::Refused(format!(
            "tenant id={id} has {meetings} running meeting(s); end them first (`ferrolite meetings end …`) or force the removal"
        )));
    }
    if app.store.remove_tenant(id).await? {
        Ok(())
    } else {
        Err(not_found(id))
    }
}

pub async fn add_setting(
    app: &App,
    tenant_id: &str,
    param: &str,
    value: &str,
    is_override: bool,
) -> AdminResult<TenantSetting> {
    get(app, tenant_id).await?;
    let param = param.trim();
    if param.is_empty() || param == "checksum" || param == "meetingID" {
        return Err(AdminError::Invalid(format!(
            "'{param}' cannot be a tenant setting; give a BBB create or join parameter such as record or meta_server-tag"
        )));
    }
    let setting = TenantSetting {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant_id.to_string(),
        param: param.to_string(),
        value: value.to_string(),
        is_override,
    };
    app.store.add_tenant_setting(&setting).await?;
    Ok(setting)
}

pub async fn settings(app: &App, tenant_id: &str) -> AdminResult<Vec<TenantSetting>> {
    get(app, tenant_id).await?;
    Ok(app.store.tenant_settings(tenant_id).await?)
}

pub async fn remove_setting(app: &App, id: &str) -> AdminResult<()> {
    if app.store.remove_tenant_setting(id).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!(
            "no tenant setting with id '{id}' (see `ferrolite tenant-settings list <tenant id>`)"
        )))
    }
}
