//! Tarballs pushed over HTTPS by a BBB server's post_publish hook: the token check and the
//! import action.
//!
//! `POST /bigbluebutton/recording/upload` carries `Authorization: Bearer <JWT>`, signed
//! (HS256/384/512) with the uploading BBB server's own secret — the one the load balancer
//! already has from `servers add` — so no NFS mount or ssh key is needed. Claims: `iss` = the
//! server's id or hostname, `sub` = the record id, `exp` (at most a day ahead), `sha256` = hex
//! SHA-256 of the body. [`verify`] is pure: it finds the server named by `iss` among the
//! registered ones and checks the signature and claims.
//!
//! [`accept`] is the whole upload as one action below the HTTP layer: check the token,
//! stream the body into the spool (hashing it), compare the digest, import, then delete the
//! file or set it aside in `failed/`. The handler only reads the headers and maps an
//! [`UploadError`] to a status code.

use std::path::{Path, PathBuf};

use hyper::body::Incoming;
use sha2::Digest;

use super::importer;
use crate::app::App;
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

/// A tarball that was imported whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub record_id: String,
    /// The formats imported.
    pub formats: Vec<String>,
    /// The BBB server that sent it.
    pub server: String,
}

/// Why an upload was not imported. Its text is the message the client gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("Recordings are disabled on this load balancer (RECORDING_DISABLED).")]
    Disabled,
    #[error("{0}")]
    Token(TokenError),
    #[error("{0}")]
    StoreUnavailable(String),
    /// `Content-Length` above `RECORDING_MAX_SIZE` (the limit).
    #[error("The tarball is larger than RECORDING_MAX_SIZE ({0} bytes).")]
    Declared(u64),
    #[error("cannot create RECORDING_SPOOL_DIR: {0}")]
    SpoolUnavailable(String),
    #[error("{0}")]
    Body(ReceiveError),
    #[error("The body's SHA-256 does not match the token's sha256 claim; send it again.")]
    ChecksumMismatch,
    /// Some formats failed; the tarball is kept in `failed/`.
    #[error("Some formats could not be imported (kept in the spool's failed/ folder): {0}")]
    Partial(String),
    /// The tarball was refused; kept in `failed/`.
    #[error("The tarball was refused (kept in the spool's failed/ folder): {0}")]
    Refused(String),
    /// Not the tarball's fault: retrying can help.
    #[error("The import could not complete; retry later: {0}")]
    Retry(String),
}

/// Why the body could not be written to the spool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    #[error("the upload was interrupted: {0}")]
    TimedOut(crate::http::body::BodyError),
    #[error("the upload was interrupted: {0}")]
    Interrupted(crate::http::body::BodyError),
    #[error("The tarball is larger than RECORDING_MAX_SIZE.")]
    TooLarge,
    #[error("cannot write to the spool: {0}")]
    Spool(String),
}

/// Receives and imports one pushed tarball. `token` is the bearer token, `declared` the
/// `Content-Length`. Returns only once the import committed (or failed for good).
pub async fn accept(
    app: &App,
    token: Option<&str>,
    declared: Option<u64>,
    body: Incoming,
) -> Result<Uploaded, UploadError> {
    let cfg = &app.config.recordings;
    if cfg.disabled {
        return Err(UploadError::Disabled);
    }
    let token = token.ok_or(UploadError::Token(TokenError::Missing))?;
    let servers = app
        .store
        .servers()
        .await
        .map_err(|e| UploadError::StoreUnavailable(e.to_string()))?;
    let now = crate::store::now_ms() as u64 / 1000;
    let (claims, server) = verify(token, &servers, now).map_err(UploadError::Token)?;
    if declared.is_some_and(|n| n > cfg.max_size_bytes) {
        return Err(UploadError::Declared(cfg.max_size_bytes));
    }
    crate::blocking::run(|| std::fs::create_dir_all(&cfg.spool_dir))
        .map_err(|e| UploadError::SpoolUnavailable(e.to_string()))?;
    let tmp = cfg.spool_dir.join(format!(
        ".{}.upload-{}.tmp",
        claims.sub,
        uuid::Uuid::new_v4().simple()
    ));
    let remove_tmp = || {
        let _ = crate::blocking::run(|| std::fs::remove_file(&tmp));
    };
    let digest = match receive(body, &tmp, cfg.max_size_bytes).await {
        Ok(d) => d,
        Err(e) => {
            remove_tmp();
            return Err(UploadError::Body(e));
        }
    };
    if !digest.eq_ignore_ascii_case(claims.sha256.trim()) {
        remove_tmp();
        return Err(UploadError::ChecksumMismatch);
    }
    let name = format!("{}.tar", claims.sub);
    let aside = |reason: &str| {
        if let Err(e) = crate::blocking::run(|| set_aside(app, &tmp, &name, reason)) {
            importer::aside_failed(app, &tmp, reason, &e);
        }
    };
    match importer::import_tarball(app, &tmp, Some(&claims.sub), importer::Origin::Upload).await {
        Ok(report) if report.failed.is_empty() => {
            remove_tmp();
            tracing::info!(record = %claims.sub, server = %server, "recording uploaded");
            Ok(Uploaded {
                record_id: claims.sub,
                formats: report.imported.into_iter().flat_map(|(_, f)| f).collect(),
                server,
            })
        }
        Ok(report) => {
            let reason = importer::failed_reason(&report);
            aside(&reason);
            Err(UploadError::Partial(reason))
        }
        Err(importer::ImportError::Refused(reason)) => {
            aside(&reason);
            Err(UploadError::Refused(reason))
        }
        Err(importer::ImportError::Retry(reason)) => {
            remove_tmp();
            Err(UploadError::Retry(reason))
        }
    }
}

/// Moves a refused upload to `failed/` under the recording's name (`<recordID>.tar`).
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
async fn receive(mut body: Incoming, path: &Path, max: u64) -> Result<String, ReceiveError> {
    use tokio::io::AsyncWriteExt;
    let spool = |e: std::io::Error| ReceiveError::Spool(e.to_string());
    let mut file = tokio::fs::File::create(path).await.map_err(spool)?;
    let mut hasher = sha2::Sha256::new();
    let mut total: u64 = 0;
    loop {
        let data = match crate::http::body::next_chunk(&mut body).await {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e @ crate::http::body::BodyError::TimedOut) => {
                return Err(ReceiveError::TimedOut(e))
            }
            Err(e) => return Err(ReceiveError::Interrupted(e)),
        };
        total += data.len() as u64;
        if total > max {
            return Err(ReceiveError::TooLarge);
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(spool)?;
    }
    file.sync_all().await.map_err(spool)?;
    Ok(hex::encode(hasher.finalize()))
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
