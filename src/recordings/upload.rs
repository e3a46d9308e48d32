//! The token of a tarball pushed over HTTP by a BBB server's post_publish hook.
//!
//! `POST /bigbluebutton/recording/upload` carries `Authorization: Bearer <JWT>`, signed
//! (HS256/384/512) with the uploading BBB server's own secret — the one the load balancer
//! already has from `servers add` — so no NFS mount or ssh key is needed. Claims: `iss` = the
//! server's id or hostname, `sub` = the record id, `exp` (at most a day ahead), `sha256` = hex
//! SHA-256 of the body. [`verify`] is pure: it finds the server named by `iss` among the
//! registered ones and checks the signature and claims; the handler checks the body digest.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::store::Server;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadClaims {
    pub iss: String,
    pub sub: String,
    pub exp: u64,
    pub sha256: String,
}

/// The longest lifetime a token may claim.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("missing Authorization: Bearer token")]
    Missing,
    #[error("the token is not a JWT")]
    Malformed,
    #[error(
        "no registered BBB server is named {0:?} (the token's iss must be a server id or hostname)"
    )]
    UnknownServer(String),
    #[error("the token's signature does not match that server's secret, or it expired")]
    BadSignature,
    #[error("the token claims a lifetime over a day")]
    TooLong,
    #[error("the token's sub is not a valid record id")]
    BadRecordId,
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    v.leeway = 60;
    v
}

/// Checks `token` against the registered `servers`; returns its claims and the server id.
pub fn verify(
    token: &str,
    servers: &[Server],
    now_secs: u64,
) -> Result<(UploadClaims, String), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !matches!(
        header.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(TokenError::Malformed);
    }
    let mut unverified = validation(header.alg);
    unverified.insecure_disable_signature_validation();
    unverified.validate_exp = false;
    let claims =
        jsonwebtoken::decode::<UploadClaims>(token, &DecodingKey::from_secret(b""), &unverified)
            .map_err(|_| TokenError::Malformed)?
            .claims;
    let candidates: Vec<&Server> = servers
        .iter()
        .filter(|s| s.id == claims.iss || s.hostname() == claims.iss)
        .collect();
    if candidates.is_empty() {
        return Err(TokenError::UnknownServer(claims.iss));
    }
    for s in candidates {
        if let Ok(d) = jsonwebtoken::decode::<UploadClaims>(
            token,
            &DecodingKey::from_secret(s.secret.as_bytes()),
            &validation(header.alg),
        ) {
            if d.claims.exp > now_secs + MAX_TOKEN_LIFETIME_SECS {
                return Err(TokenError::TooLong);
            }
            if !super::files::safe_component(&d.claims.sub) {
                return Err(TokenError::BadRecordId);
            }
            return Ok((d.claims, s.id.clone()));
        }
    }
    Err(TokenError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn token(iss: &str, secret: &str, exp: u64) -> String {
        let c = UploadClaims {
            iss: iss.into(),
            sub: "r-1".into(),
            exp,
            sha256: "00".into(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn tokens_are_checked_against_the_named_servers_secret() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let servers = vec![Server::new(
            "s1".into(),
            "https://bbb1.example.org/bigbluebutton/api".into(),
            "sec1".into(),
            1.0,
            None,
        )];
        assert_eq!(
            verify(&token("s1", "sec1", now + 60), &servers, now)
                .unwrap()
                .1,
            "s1"
        );
        assert_eq!(
            verify(&token("bbb1.example.org", "sec1", now + 60), &servers, now)
                .unwrap()
                .1,
            "s1"
        );
        assert_eq!(
            verify(&token("s1", "other", now + 60), &servers, now).unwrap_err(),
            TokenError::BadSignature
        );
        assert_eq!(
            verify(&token("s1", "sec1", now - 3600), &servers, now).unwrap_err(),
            TokenError::BadSignature
        );
        assert_eq!(
            verify(&token("s1", "sec1", now + 90_000), &servers, now).unwrap_err(),
            TokenError::TooLong
        );
        assert!(matches!(
            verify(&token("zz", "sec1", now + 60), &servers, now),
            Err(TokenError::UnknownServer(_))
        ));
        assert_eq!(
            verify("nope", &servers, now).unwrap_err(),
            TokenError::Malformed
        );
    }
}
