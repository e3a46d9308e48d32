//! Tenants as the API sees them: which tenant a request's Host names, and how a tenant's
//! meeting IDs are kept apart on the shared BBB servers.
//!
//! Everything here is pure, so the meetings, recordings and dial-in code share one rule.
//!
//! - [`host_tenant`]: with `BASE_URL` the tenant is the single label before it
//!   (`bn.lb.example.com` with `BASE_URL=lb.example.com` → `bn`); the bare `BASE_URL` host
//!   names no tenant. Without `BASE_URL` the tenant is the first DNS label, as Scalelite does.
//! - [`scope`] / [`unscope`] / [`unscope_text`]: two tenants may both use meetingID `room1`;
//!   BBB sees `room1~<tenant uuid>` and `room1~<other uuid>`, and every answer is unscoped
//!   before it reaches the front end. Without a tenant the ID is unchanged, so a
//!   single-tenant Ferrolite sends exactly what Scalelite sends. The tenant's UUID (not its
//!   name) is used because names can be changed while meetings and recordings live on.

use std::borrow::Cow;

/// What the request's Host says about the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTenant {
    /// The host names this tenant (lower-cased name).
    Named(String),
    /// The host is `BASE_URL` itself: no tenant; the load balancer's own secrets apply.
    Bare,
    /// The host is not under `BASE_URL` (or is empty): no tenant can be resolved.
    Unknown,
}

/// The host part of a `Host` header or `BASE_URL` value: no scheme, path, port or trailing
/// dot, lower-cased.
pub fn normalize_host(raw: &str) -> String {
    let s = raw.trim();
    let s = s.split_once("://").map(|(_, rest)| rest).unwrap_or(s);
    let s = s.split('/').next().unwrap_or("");
    let s = if s.starts_with('[') {
        // An IPv6 literal: keep the brackets, drop the port.
        s.split_once(']').map(|(a, _)| a).unwrap_or(s).to_string() + "]"
    } else {
        s.split(':').next().unwrap_or("").to_string()
    };
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// Resolves the tenant named by `host` (see the module documentation).
pub fn host_tenant(host: &str, base_url: Option<&str>) -> HostTenant {
    let host = normalize_host(host);
    if host.is_empty() {
        return HostTenant::Unknown;
    }
    match base_url.map(normalize_host).filter(|b| !b.is_empty()) {
        Some(base) => {
            if host == base {
                return HostTenant::Bare;
            }
            match host.strip_suffix(&base).and_then(|p| p.strip_suffix('.')) {
                Some(label) if !label.is_empty() && !label.contains('.') => {
                    HostTenant::Named(label.to_string())
                }
                _ => HostTenant::Unknown,
            }
        }
        None => match host.split('.').next() {
            Some(label) if !label.is_empty() => HostTenant::Named(label.to_string()),
            _ => HostTenant::Unknown,
        },
    }
}

/// Scalelite's host authorization: with `URL_HOST` set, only that host is served, and under
/// multitenancy its subdomains (and `BASE_URL` with its subdomains, Ferrolite's tenant
/// hosts); every other Host is answered 403. Unset `URL_HOST`: every Host. Paths holding
/// `health_check` are exempt (probes use any name), as in Scalelite.
pub fn host_allowed(
    host: &str,
    path: &str,
    url_host: Option<&str>,
    base_url: Option<&str>,
    multitenant: bool,
) -> bool {
    let Some(allowed) = url_host.map(normalize_host).filter(|h| !h.is_empty()) else {
        return true;
    };
    if path.contains("health_check") {
        return true;
    }
    let host = normalize_host(host);
    let under = |base: &str| {
        host == base
            || (multitenant
                && host
                    .strip_suffix(base)
                    .is_some_and(|p| p.len() > 1 && p.ends_with('.')))
    };
    under(&allowed) || (multitenant && base_url.map(normalize_host).is_some_and(|b| under(&b)))
}

/// The tenant a meeting, a setting, a recording or a call belongs to. The store keeps a
/// tenant's id as a string and "no tenant" (multitenancy off, or a request to the bare
/// `BASE_URL` host) as the empty string; this type is how code builds and asks that, so
/// nothing compares a tenant id with `""` by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantScope<'a> {
    #[default]
    None,
    Tenant(&'a str),
}

impl<'a> TenantScope<'a> {
    /// The scope a stored tenant id names.
    pub fn from_stored(tenant_id: &'a str) -> TenantScope<'a> {
        if tenant_id.is_empty() {
            TenantScope::None
        } else {
            TenantScope::Tenant(tenant_id)
        }
    }

    /// `None` (or an empty id) is no tenant.
    pub fn from_option(tenant_id: Option<&'a str>) -> TenantScope<'a> {
        tenant_id.map_or(TenantScope::None, TenantScope::from_stored)
    }

    /// The tenant id as the store keeps it.
    pub const fn stored(self) -> &'a str {
        match self {
            TenantScope::None => "",
            TenantScope::Tenant(id) => id,
        }
    }

    /// The tenant's id, `None` without one.
    pub fn id(self) -> Option<&'a str> {
        match self {
            TenantScope::None => None,
            TenantScope::Tenant(id) => Some(id),
        }
    }

    pub fn is_none(self) -> bool {
        self == TenantScope::None
    }
}

/// What joins a meeting ID to its tenant's ID on the BBB side.
pub const SCOPE_SEPARATOR: char = '~';

/// The meeting ID as BBB knows it: unchanged without a tenant.
pub fn scope(tenant_id: &str, meeting_id: &str) -> String {
    match TenantScope::from_stored(tenant_id) {
        TenantScope::None => meeting_id.to_string(),
        TenantScope::Tenant(t) => format!("{meeting_id}{SCOPE_SEPARATOR}{t}"),
    }
}

/// The front end's meeting ID for an ID BBB reported: the tenant's suffix removed. An ID
/// without the suffix is returned unchanged.
pub fn unscope<'a>(tenant_id: &str, bbb_id: &'a str) -> &'a str {
    if TenantScope::from_stored(tenant_id).is_none() {
        return bbb_id;
    }
    bbb_id
        .strip_suffix(tenant_id)
        .and_then(|s| s.strip_suffix(SCOPE_SEPARATOR))
        .unwrap_or(bbb_id)
}

/// Removes the tenant's scope suffix wherever it occurs in a BBB answer (meeting IDs in
/// elements, in messages, in URLs). The suffix is `~<uuid>`, which needs no XML or URL
/// escaping and does not occur in BBB's own text, so a plain byte replacement is exact.
pub fn unscope_text<'a>(tenant_id: &str, body: &'a [u8]) -> Cow<'a, [u8]> {
    if TenantScope::from_stored(tenant_id).is_none() {
        return Cow::Borrowed(body);
    }
    let suffix = format!("{SCOPE_SEPARATOR}{tenant_id}");
    let pat = suffix.as_bytes();
    if !body.windows(pat.len()).any(|w| w == pat) {
        return Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(pat) {
            i += pat.len();
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Checks a tenant name: one DNS label (letters, digits, `-`), so it can be a host prefix.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Splits a `:`-separated secret list (Scalelite's format), dropping blanks.
pub fn parse_secrets(raw: &str) -> Vec<String> {
    raw.split(':')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tenant_is_stored_as_the_empty_id() {
        assert_eq!(TenantScope::from_stored(""), TenantScope::None);
        assert_eq!(TenantScope::from_option(Some("")), TenantScope::None);
        assert_eq!(TenantScope::from_option(None), TenantScope::None);
        assert_eq!(TenantScope::None.stored(), crate::store::NO_TENANT);
        let t = TenantScope::from_stored("0b6f");
        assert_eq!(
            (t.id(), t.stored(), t.is_none()),
            (Some("0b6f"), "0b6f", false)
        );
        assert_eq!(TenantScope::None.id(), None);
    }

    #[test]
    fn the_host_names_the_tenant() {
        let base = Some("lb.example.com");
        assert_eq!(
            host_tenant("BN.lb.example.com:443", base),
            HostTenant::Named("bn".into())
        );
        assert_eq!(host_tenant("lb.example.com", base), HostTenant::Bare);
        assert_eq!(
            host_tenant("lb.example.com", Some("https://lb.example.com/")),
            HostTenant::Bare
        );
        assert_eq!(host_tenant("a.b.lb.example.com", base), HostTenant::Unknown);
        assert_eq!(host_tenant("evil.com", base), HostTenant::Unknown);
        assert_eq!(host_tenant("xlb.example.com", base), HostTenant::Unknown);
        assert_eq!(host_tenant("", base), HostTenant::Unknown);
        // Without BASE_URL: the first label, as Scalelite.
        assert_eq!(
            host_tenant("bn.api.rna1.blindside-dev.com", None),
            HostTenant::Named("bn".into())
        );
        assert_eq!(
            host_tenant("localhost:3000", None),
            HostTenant::Named("localhost".into())
        );
        assert_eq!(normalize_host("[::1]:3000"), "[::1]");
    }

    #[test]
    fn only_url_host_is_served_when_it_is_set() {
        let u = Some("lb.example.com");
        assert!(host_allowed(
            "evil.com",
            "/bigbluebutton/api",
            None,
            None,
            false
        ));
        assert!(host_allowed("LB.example.com:443", "/x", u, None, false));
        assert!(!host_allowed(
            "evil.com",
            "/bigbluebutton/api",
            u,
            None,
            false
        ));
        assert!(!host_allowed("", "/bigbluebutton/api", u, None, false));
        assert!(host_allowed("evil.com", "/health_check", u, None, false));
        assert!(!host_allowed("bn.lb.example.com", "/x", u, None, false));
        assert!(host_allowed("bn.lb.example.com", "/x", u, None, true));
        assert!(!host_allowed("xlb.example.com", "/x", u, None, true));
        assert!(!host_allowed(".lb.example.com", "/x", u, None, true));
        let b = Some("rooms.example.net");
        assert!(host_allowed("bn.rooms.example.net", "/x", u, b, true));
        assert!(!host_allowed("bn.rooms.example.net", "/x", u, b, false));
    }

    #[test]
    fn scoping_round_trips_and_is_a_no_op_without_a_tenant() {
        let t = "0b5c4f3e-8f4a-4c1d-9a57-1d2e3f4a5b6c";
        assert_eq!(scope("", "room1"), "room1");
        assert_eq!(unscope("", "room1"), "room1");
        let s = scope(t, "room1");
        assert_eq!(s, format!("room1~{t}"));
        assert_eq!(unscope(t, &s), "room1");
        assert_ne!(scope(t, "room1"), scope("other", "room1"));
        // Another tenant's ID is not unscoped.
        assert_eq!(unscope("other", &s), s);
        // An ID that itself ends with the suffix loses only one.
        let twice = scope(t, &s);
        assert_eq!(unscope(t, &twice), s);
    }

    #[test]
    fn answers_are_unscoped_everywhere() {
        let t = "tid";
        let body = b"<response><meetingID>a~tid</meetingID><message>Meeting with id [a~tid] not found</message><metadata><tenant-id>tid</tenant-id></metadata></response>";
        assert_eq!(
            unscope_text(t, body).as_ref(),
            &b"<response><meetingID>a</meetingID><message>Meeting with id [a] not found</message><metadata><tenant-id>tid</tenant-id></metadata></response>"[..]
        );
        assert!(matches!(unscope_text("", body), Cow::Borrowed(_)));
        assert!(matches!(unscope_text("zzz", body), Cow::Borrowed(_)));
    }

    #[test]
    fn names_and_secrets() {
        assert!(valid_name("bn"));
        assert!(valid_name("uni-x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a.b"));
        assert!(!valid_name("-a"));
        assert!(!valid_name("a b"));
        assert_eq!(parse_secrets("a: b::c"), vec!["a", "b", "c"]);
    }
}
