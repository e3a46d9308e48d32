//! Protected-recording decisions, all pure: parsing playback URIs, one-time tokens, the
//! path-scoped playback cookie, and the allow/deny rule nginx's `auth_request` asks for.
//!
//! Scalelite's rules, kept: a token is 64 lower-case hex digits, used once, bound to one
//! recording and format; the cookie is `recording_<format>_<recordID>`, a JWT (HS256) whose
//! `sub` is `/<format>/<recordID>` and whose `exp` is required, scoped with
//! `Path=/<format>/<recordID>`. Binding `sub` is the fix for Scalelite's 2026 advisory (a
//! cookie for recording A unlocked recording B); it is checked here, not by a library option.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::store::playback::PlaybackAccess;

/// Whether `s` can be a record id or format path component: no separators, no dot-only names.
pub fn safe_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `/<format>/<recordID>[/<anything>][?query]` → `(format, recordID)` for a known format.
pub fn parse_resource<'a>(uri: &'a str, formats: &[String]) -> Option<(&'a str, &'a str)> {
    let path = uri.split(['?', '#']).next()?;
    let mut parts = path.strip_prefix('/')?.splitn(3, '/');
    let format = parts.next()?;
    let rid = parts.next()?;
    (formats.iter().any(|f| f == format) && safe_id(rid)).then_some((format, rid))
}

/// `/recording/<recordID>/<format>` → `(recordID, format)`.
pub fn parse_play(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/recording/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (rid, format) = rest.split_once('/')?;
    (safe_id(rid) && safe_id(format)).then_some((rid, format))
}

/// A fresh one-time token: 32 random bytes as 64 hex digits.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Scalelite's token shape: `^[0-9a-f]{64}$`.
pub fn token_shape_ok(t: &str) -> bool {
    t.len() == 64
        && t.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What the store keeps of a token.
pub fn token_hash(t: &str) -> String {
    hex::encode(sha2::Sha256::digest(t.as_bytes()))
}

pub fn cookie_name(format: &str, rid: &str) -> String {
    format!("recording_{format}_{rid}")
}

pub fn cookie_path(format: &str, rid: &str) -> String {
    format!("/{format}/{rid}")
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// The cookie value: a JWT for `/<format>/<rid>` expiring at `exp` (Unix seconds).
pub fn mint_cookie(key: &[u8], format: &str, rid: &str, exp: u64) -> String {
    let claims = Claims {
        sub: cookie_path(format, rid),
        exp,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap_or_default()
}

/// Whether `jwt` is a valid, unexpired cookie for exactly this recording and format.
pub fn cookie_ok(key: &[u8], jwt: &str, format: &str, rid: &str, now: u64) -> bool {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.validate_exp = false; // checked below against `now`, so tests can move the clock
    v.set_required_spec_claims(&["sub", "exp"]);
    match jsonwebtoken::decode::<Claims>(jwt, &DecodingKey::from_secret(key), &v) {
        Ok(d) => d.claims.sub == cookie_path(format, rid) && d.claims.exp > now,
        Err(_) => false,
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn find_cookie<'a>(headers: impl Iterator<Item = &'a str>, name: &str) -> Option<String> {
    headers
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// The `Set-Cookie` value. Over HTTPS: `Secure; SameSite=None` (players embedded in an LMS
/// frame need it, as Scalelite sets). Over plain HTTP browsers refuse `SameSite=None`
/// without `Secure`, so the cookie is `SameSite=Lax` (top-level playback still works).
pub fn set_cookie(
    format: &str,
    rid: &str,
    value: String,
    max_age_secs: u64,
    https: bool,
) -> String {
    let c = cookie::Cookie::build((cookie_name(format, rid), value))
        .path(cookie_path(format, rid))
        .http_only(true)
        .max_age(cookie::time::Duration::seconds(max_age_secs as i64))
        .secure(https)
        .same_site(if https {
            cookie::SameSite::None
        } else {
            cookie::SameSite::Lax
        })
        .build();
    c.to_string()
}

/// Why a request is refused (every refusal is a 404 to the user, as Scalelite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    UnknownRecording,
    UnknownFormat,
    Unpublished,
    OtherTenant,
    NoValidCookie,
    BadToken,
}

/// Whose recordings a request's Host may play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostScope {
    /// Multitenancy is off: every recording.
    Everyone,
    /// A tenant's host: that tenant's recordings only.
    Tenant(String),
    /// The bare `BASE_URL` host under multitenancy: recordings of no tenant only (never
    /// every tenant's).
    NoTenant,
}

/// The resource rule: the recording exists with this format, is published, belongs to the
/// Host's scope ([`HostScope`]), and — when protection is on and the
/// recording is protected — the request carries a valid cookie for it.
pub fn resource_decision(
    access: Option<&PlaybackAccess>,
    format: &str,
    scope: &HostScope,
    protection_enabled: bool,
    cookie_valid: impl FnOnce() -> bool,
) -> Result<(), Deny> {
    let a = access.ok_or(Deny::UnknownRecording)?;
    base_checks(a, format, scope)?;
    if protection_enabled && a.protected && !cookie_valid() {
        return Err(Deny::NoValidCookie);
    }
    Ok(())
}

/// Checks shared by the resource and play routes.
pub fn base_checks(a: &PlaybackAccess, format: &str, scope: &HostScope) -> Result<(), Deny> {
    if !a.formats.iter().any(|(f, _)| f == format) {
        return Err(Deny::UnknownFormat);
    }
    if !a.published {
        return Err(Deny::Unpublished);
    }
    let own = match scope {
        HostScope::Everyone => true,
        HostScope::Tenant(t) => a.tenant_id.as_deref() == Some(t.as_str()),
        HostScope::NoTenant => a.tenant_id.as_deref().is_none_or(str::is_empty),
    };
    if !own {
        return Err(Deny::OtherTenant);
    }
    Ok(())
}

/// Whether nginx may serve this recording's files without asking the worker: published,
/// and either unprotected or protection switched off. Never under multitenancy (the Host's
/// tenant must be checked on every request).
pub fn publicly_servable(a: &PlaybackAccess, protection_enabled: bool, multitenant: bool) -> bool {
    !multitenant && a.published && (!a.protected || !protection_enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formats() -> Vec<String> {
        crate::config::DEFAULT_PLAYBACK_FORMATS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn resource_uris_name_a_known_format_and_a_safe_id() {
        let f = formats();
        assert_eq!(
            parse_resource("/presentation/abc-123/slides/1.svg?x=1", &f),
            Some(("presentation", "abc-123"))
        );
        assert_eq!(parse_resource("/video/r1", &f), Some(("video", "r1")));
        assert_eq!(parse_resource("/video/r1/", &f), Some(("video", "r1")));
        assert_eq!(parse_resource("/other/r1/x", &f), None);
        assert_eq!(parse_resource("/presentation/../etc", &f), None);
        assert_eq!(parse_resource("/presentation/", &f), None);
        assert_eq!(parse_resource("presentation/r1", &f), None);
        assert_eq!(parse_resource("/presentation/a%2Fb/x", &f), None);
        assert_eq!(
            parse_play("/recording/r1/presentation"),
            Some(("r1", "presentation"))
        );
        assert_eq!(parse_play("/recording/r1/"), None);
        assert_eq!(parse_play("/recording/../x"), None);
    }

    #[test]
    fn tokens_are_64_hex_and_hashed() {
        let t = new_token();
        assert!(token_shape_ok(&t));
        assert_ne!(t, new_token());
        assert!(!token_shape_ok(
            &t.to_uppercase().replace(char::is_numeric, "A")
        ));
        assert!(!token_shape_ok("abc"));
        assert_eq!(token_hash(&t).len(), 64);
        assert_ne!(token_hash(&t), t);
    }

    #[test]
    fn cookies_are_bound_to_recording_format_key_and_time() {
        let k = b"key";
        let c = mint_cookie(k, "presentation", "A", 1000);
        assert!(cookie_ok(k, &c, "presentation", "A", 999));
        assert!(!cookie_ok(k, &c, "presentation", "A", 1000), "expired");
        assert!(
            !cookie_ok(k, &c, "presentation", "B", 999),
            "other recording"
        );
        assert!(!cookie_ok(k, &c, "video", "A", 999), "other format");
        assert!(
            !cookie_ok(b"other", &c, "presentation", "A", 999),
            "other key"
        );
        let mut tampered = c.clone();
        tampered.pop();
        assert!(!cookie_ok(k, &tampered, "presentation", "A", 999));
        assert!(!cookie_ok(k, "garbage", "presentation", "A", 999));
        // A token without exp is refused.
        let no_exp = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "/presentation/A"}),
            &EncodingKey::from_secret(k),
        )
        .unwrap();
        assert!(!cookie_ok(k, &no_exp, "presentation", "A", 1));
    }

    #[test]
    fn set_cookie_is_scoped_and_secure_over_https() {
        let s = set_cookie("presentation", "A", "v".into(), 60, true);
        assert!(s.starts_with("recording_presentation_A=v"), "{s}");
        for part in [
            "Path=/presentation/A",
            "HttpOnly",
            "Secure",
            "SameSite=None",
            "Max-Age=60",
        ] {
            assert!(s.contains(part), "{s} lacks {part}");
        }
        let s = set_cookie("presentation", "A", "v".into(), 60, false);
        assert!(!s.contains("Secure") && s.contains("SameSite=Lax"), "{s}");
        assert_eq!(
            find_cookie(
                ["a=1; recording_video_A=xyz", "b=2"].into_iter(),
                "recording_video_A"
            ),
            Some("xyz".into())
        );
        assert_eq!(find_cookie(["a=1"].into_iter(), "recording_video_A"), None);
    }

    #[test]
    fn the_resource_rule_follows_scalelite() {
        let a = PlaybackAccess {
            published: true,
            protected: true,
            tenant_id: Some("t1".into()),
            formats: vec![("presentation".into(), "/playback/presentation/2.3/A".into())],
        };
        let yes = || true;
        let no = || false;
        let all = HostScope::Everyone;
        assert_eq!(
            resource_decision(None, "presentation", &all, true, yes),
            Err(Deny::UnknownRecording)
        );
        assert_eq!(
            resource_decision(Some(&a), "video", &all, true, yes),
            Err(Deny::UnknownFormat)
        );
        assert_eq!(
            resource_decision(Some(&a), "presentation", &all, true, no),
            Err(Deny::NoValidCookie)
        );
        assert_eq!(
            resource_decision(Some(&a), "presentation", &all, false, no),
            Ok(())
        );
        assert_eq!(
            resource_decision(
                Some(&a),
                "presentation",
                &HostScope::Tenant("t2".into()),
                true,
                yes
            ),
            Err(Deny::OtherTenant)
        );
        assert_eq!(
            resource_decision(
                Some(&a),
                "presentation",
                &HostScope::Tenant("t1".into()),
                true,
                yes
            ),
            Ok(())
        );
        let un = PlaybackAccess {
            published: false,
            ..a.clone()
        };
        assert_eq!(
            resource_decision(Some(&un), "presentation", &all, false, yes),
            Err(Deny::Unpublished)
        );
        // The bare host under multitenancy plays no tenant's recordings.
        assert_eq!(
            resource_decision(Some(&a), "presentation", &HostScope::NoTenant, false, yes),
            Err(Deny::OtherTenant)
        );
        let untagged = PlaybackAccess {
            tenant_id: None,
            ..a.clone()
        };
        assert_eq!(
            resource_decision(
                Some(&untagged),
                "presentation",
                &HostScope::NoTenant,
                false,
                yes
            ),
            Ok(())
        );
        assert!(!publicly_servable(&a, true, false));
        assert!(publicly_servable(&a, false, false));
        assert!(!publicly_servable(&a, false, true));
        assert!(!publicly_servable(&un, false, false));
    }
}
