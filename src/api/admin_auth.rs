//! Who may see and steer the pool: `ADMIN_PASSWORD` as HTTP Basic (any user name) or as a
//! signed session cookie from the status page's login form, and the CSRF rules for its
//! forms (pure functions; the handlers are in `api/ops.rs`).
//!
//! The session cookie is `<expiry>.<HMAC(key, "session|" expiry)>`; the key is derived from
//! the password and the cookie key, so changing `ADMIN_PASSWORD` ends every session. A form
//! carries a token bound to the credential that loaded the page (HMAC of the session, or
//! of the Basic credential), and a POST whose `Origin` (or `Referer`) names another site
//! is refused before the token is even looked at.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "ferrolite_admin";
/// How long a login lasts.
pub const SESSION_MS: i64 = 12 * 3_600_000;

/// The credential a request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Basic,
    /// The cookie value.
    Session(String),
}

/// The signing key of sessions and CSRF tokens.
pub fn key(password: &str, cookie_key: &[u8]) -> Vec<u8> {
    mac(cookie_key, &format!("ferrolite admin v1|{password}"))
}

fn mac(key: &[u8], msg: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A new session cookie value, valid until `now + SESSION_MS`.
pub fn new_session(key: &[u8], now_ms: i64) -> String {
    let exp = now_ms + SESSION_MS;
    format!("{exp}.{}", hex::encode(mac(key, &format!("session|{exp}"))))
}

fn session_ok(key: &[u8], value: &str, now_ms: i64) -> bool {
    let Some((exp, sig)) = value.split_once('.') else {
        return false;
    };
    let (Ok(exp), Ok(sig)) = (exp.parse::<i64>(), hex::decode(sig)) else {
        return false;
    };
    exp > now_ms && same(&sig, &mac(key, &format!("session|{exp}")))
}

/// The credential of a request, if it carries a valid one.
pub fn check(password: &str, key: &[u8], headers: &HeaderMap, now_ms: i64) -> Option<Credential> {
    use base64::Engine;
    let basic = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    if let Some(pair) = basic {
        let given = pair.split_once(':').map(|(_, p)| p).unwrap_or("");
        return same(given.as_bytes(), password.as_bytes()).then_some(Credential::Basic);
    }
    cookie_value(headers)
        .filter(|v| session_ok(key, v, now_ms))
        .map(Credential::Session)
}

/// The session cookie's value, if the request sent one.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| cookie::Cookie::parse(c.trim().to_string()).ok())
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

/// Whether the password typed into the login form is right.
pub fn password_ok(password: &str, given: &str) -> bool {
    same(password.as_bytes(), given.as_bytes())
}

/// The CSRF token of forms shown to this credential.
pub fn csrf_token(key: &[u8], cred: &Credential) -> String {
    let bound = match cred {
        Credential::Basic => "basic".to_string(),
        Credential::Session(v) => format!("session|{v}"),
    };
    hex::encode(mac(key, &format!("csrf|{bound}")))
}

pub fn csrf_ok(key: &[u8], cred: &Credential, given: &str) -> bool {
    same(csrf_token(key, cred).as_bytes(), given.as_bytes())
}

/// A state-changing request must come from this site: an `Origin` (else `Referer`) that
/// names another host, or the opaque `null` origin, is refused. Neither header (a script,
/// curl) is allowed: the CSRF token still has to match.
pub fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let header = |h: http::header::HeaderName| {
        headers
            .get(h)
            .map(|v| v.to_str().map(str::to_string).unwrap_or_default())
    };
    let source = header(http::header::ORIGIN).or_else(|| header(http::header::REFERER));
    match source {
        None => true,
        Some(s) => url::Url::parse(&s).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| {
                    let with_port = match u.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_string(),
                    };
                    with_port.eq_ignore_ascii_case(host)
                })
        }),
    }
}

/// The `Set-Cookie` value of a new session (`secure` behind HTTPS).
pub fn session_cookie(value: &str, secure: bool) -> String {
    let mut c = cookie::Cookie::new(COOKIE, value.to_string());
    c.set_path("/ferrolite/");
    c.set_http_only(true);
    c.set_same_site(cookie::SameSite::Strict);
    c.set_secure(secure);
    c.set_max_age(cookie::time::Duration::milliseconds(SESSION_MS));
    c.to_string()
}

/// The `Set-Cookie` value that ends the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/ferrolite/; Max-Age=0; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn basic_and_sessions() {
        let k = key("pw", b"ck");
        // "admin:pw", "x:pw", "admin:bad"
        assert_eq!(
            check(
                "pw",
                &k,
                &headers(&[("authorization", "Basic YWRtaW46cHc=")]),
                0
            ),
            Some(Credential::Basic)
        );
        assert_eq!(
            check(
                "pw",
                &k,
                &headers(&[("authorization", "Basic eDpwdw==")]),
                0
            ),
            Some(Credential::Basic)
        );
        assert_eq!(
            check(
                "pw",
                &k,
                &headers(&[("authorization", "Basic YWRtaW46YmFk")]),
                0
            ),
            None
        );
        assert_eq!(check("pw", &k, &headers(&[]), 0), None);
        let s = new_session(&k, 1000);
        let cookie = format!("other=1; {COOKIE}={s}");
        assert_eq!(
            check("pw", &k, &headers(&[("cookie", &cookie)]), 2000),
            Some(Credential::Session(s.clone()))
        );
        assert_eq!(
            check(
                "pw",
                &k,
                &headers(&[("cookie", &cookie)]),
                1000 + SESSION_MS
            ),
            None,
            "expired"
        );
        let other = key("new password", b"ck");
        assert_eq!(
            check(
                "new password",
                &other,
                &headers(&[("cookie", &cookie)]),
                2000
            ),
            None,
            "a new password ends sessions"
        );
        let forged = format!("{COOKIE}={}.{}", i64::MAX, &s[s.find('.').unwrap() + 1..]);
        assert_eq!(
            check("pw", &k, &headers(&[("cookie", &forged)]), 2000),
            None,
            "the expiry is signed"
        );
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_credential() {
        let k = key("pw", b"ck");
        let a = Credential::Session(new_session(&k, 0));
        let b = Credential::Session(new_session(&k, 1));
        let t = csrf_token(&k, &a);
        assert!(csrf_ok(&k, &a, &t));
        assert!(!csrf_ok(&k, &b, &t));
        assert!(!csrf_ok(&k, &Credential::Basic, &t));
        assert!(!csrf_ok(&k, &a, ""));
        assert!(!csrf_ok(&key("pw2", b"ck"), &a, &t));
    }

    #[test]
    fn only_this_site_may_post() {
        let host = "lb.example:8443";
        assert!(same_origin(&headers(&[]), host));
        assert!(same_origin(
            &headers(&[("origin", "https://lb.example:8443")]),
            host
        ));
        assert!(same_origin(
            &headers(&[("origin", "https://lb.example")]),
            "lb.example"
        ));
        assert!(same_origin(
            &headers(&[("referer", "https://lb.example:8443/ferrolite/status")]),
            host
        ));
        for bad in [
            "https://evil.example",
            "null",
            "https://lb.example.evil.example:8443",
            "https://lb.example:9999",
            "file:///x",
            "",
        ] {
            assert!(!same_origin(&headers(&[("origin", bad)]), host), "{bad}");
        }
        assert!(!same_origin(
            &headers(&[
                ("origin", "https://evil.example"),
                ("referer", "https://lb.example:8443/")
            ]),
            host
        ));
    }
}
