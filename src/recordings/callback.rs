//! The recording-ready callback: remembered at `create`, sent once after the import.
//!
//! A front end passes `meta_bbb-recording-ready-url` (or the `bn-`/`canvas-` variants) to
//! `create`. BBB would call it itself, signed with the BBB server's secret that the front end
//! does not know, so — as Scalelite — the load balancer strips the URL before forwarding,
//! remembers it for the meeting, and after importing the recording POSTs
//! `signed_parameters=<JWT {meeting_id, record_id}>` signed with its own secret(s).
//!
//! Delivery goes through the persisted outbox (`crate::callbacks`): retried with back-off,
//! each attempt trying the secrets in order. The outbox id is derived from the record id, so
//! however many times a recording is (re-)imported — BBB's hook ships a tarball once per
//! format — it is queued once. Delivery is at least once (a sender killed mid-attempt sends
//! it again); the JWT's `jti` is that outbox id, the same in every repeat.

use jsonwebtoken::{Algorithm as JwtAlg, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::bbb::checksum::Algorithm;
use crate::bbb::params::Params;
use crate::store::recordings::Recording;
use crate::store::CallbackVariant;

/// The create parameters that carry a recording-ready URL, in order of preference.
pub const READY_URL_PARAMS: &[&str] = &[
    "meta_bbb-recording-ready-url",
    "meta_bn-recording-ready-url",
    "meta_canvas-recording-ready-url",
];

/// Removes every recording-ready parameter, in any spelling of its key (BBB lower-cases
/// `meta_` keys, so `meta_BBB-Recording-Ready-Url` is the same parameter to it); returns the
/// preferred non-empty URL.
pub fn take_ready_url(params: &mut Params) -> Option<String> {
    let mut found = None;
    for key in READY_URL_PARAMS {
        for v in params.remove_ignore_case(key) {
            let v = v.trim().to_string();
            if found.is_none() && !v.is_empty() {
                found = Some(v);
            }
        }
    }
    found
}

/// The one call `create` makes: strips the URL from the forwarded parameters and remembers
/// it. A store failure is logged, never fails the create.
pub async fn remember_at_create(app: &App, tenant_id: &str, meeting_id: &str, params: &mut Params) {
    if let Some(url) = take_ready_url(params) {
        if let Err(e) = app
            .recordings
            .set_ready_url(tenant_id, meeting_id, &url)
            .await
        {
            tracing::warn!(meeting = %meeting_id, error = %e, "could not remember the recording-ready URL");
        }
    }
}

/// Scalelite's choice (fix #1250): HS256 if SHA256 is accepted, else HS512 if SHA512 is,
/// else HS256.
pub fn jwt_algorithm(accepted: &[Algorithm]) -> JwtAlg {
    if accepted.contains(&Algorithm::Sha256) {
        JwtAlg::HS256
    } else if accepted.contains(&Algorithm::Sha512) {
        JwtAlg::HS512
    } else {
        JwtAlg::HS256
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadyClaims {
    pub meeting_id: String,
    pub record_id: String,
    /// A stable id ([`outbox_id`]): the same in every attempt and every repeat, so a front
    /// end can drop a callback it has already handled (delivery is at least once).
    #[serde(default)]
    pub jti: String,
}

/// The `signed_parameters` JWT (no `exp`, as Scalelite and BBB; plus a stable `jti`).
pub fn signed_parameters(meeting_id: &str, record_id: &str, secret: &str, alg: JwtAlg) -> String {
    let claims = ReadyClaims {
        meeting_id: meeting_id.to_string(),
        record_id: record_id.to_string(),
        jti: outbox_id(record_id),
    };
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

/// The outbox id of a recording's ready callback.
pub fn outbox_id(record_id: &str) -> String {
    format!("recording-ready:{record_id}")
}

/// Queues the callback for a freshly imported recording, if its meeting asked for one and it
/// is not already queued or sent. A store error is returned (the import is then retried, so
/// an outbox that is down for a moment loses no callback).
pub async fn enqueue_ready(app: &App, rec: &Recording) -> Result<(), crate::store::StoreError> {
    let tenant = crate::tenant::TenantScope::from_option(rec.meta("tenant-id")).stored();
    let url = match app.recordings.ready_url(tenant, &rec.meeting_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::warn!(record = %rec.record_id, error = %e, "could not read the recording-ready URL");
            return Err(e);
        }
    };
    let alg = jwt_algorithm(&app.config.checksum_algorithms);
    // A tenant's front end knows its tenant's secrets, not the load balancer's (Scalelite).
    let secrets = match tenant {
        "" => app.config.secrets.clone(),
        id => match app.store.tenant(id).await {
            Ok(Some(t)) => t.secrets,
            Ok(None) => {
                tracing::warn!(record = %rec.record_id, tenant = id, "recording of an unknown tenant; its ready callback is not sent");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(record = %rec.record_id, error = %e, "could not read the recording's tenant");
                return Err(e);
            }
        },
    };
    let variants = secrets
        .iter()
        .map(|secret| CallbackVariant {
            body: form_urlencoded::Serializer::new(String::new())
                .append_pair(
                    "signed_parameters",
                    &signed_parameters(&rec.meeting_id, &rec.record_id, secret, alg),
                )
                .finish(),
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
        })
        .collect();
    // One callback per recording, however many tarballs of it are imported.
    match crate::callbacks::enqueue_once(
        app,
        &outbox_id(&rec.record_id),
        "recording-ready",
        &url,
        variants,
    )
    .await
    {
        Ok(true) => {
            tracing::info!(record = %rec.record_id, "recording-ready callback queued");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            tracing::warn!(record = %rec.record_id, error = %e, "could not queue the recording-ready callback");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn ready_urls_are_stripped_and_the_bbb_one_preferred() {
        let mut p = Params::parse(
            b"meetingID=m&meta_bn-recording-ready-url=https://a/&meta_bbb-recording-ready-url=https://b/&meta_canvas-recording-ready-url=",
        );
        assert_eq!(take_ready_url(&mut p).as_deref(), Some("https://b/"));
        assert_eq!(p.encode(), "meetingID=m");
        let mut p = Params::parse(b"meta_canvas-recording-ready-url=https://c/");
        assert_eq!(take_ready_url(&mut p).as_deref(), Some("https://c/"));
        // Every spelling of the key is the same parameter to BBB: all are taken out.
        let mut p = Params::parse(
            b"meta_BBB-Recording-Ready-Url=https://d/&META_bn-recording-ready-URL=https://e/&x=1",
        );
        assert_eq!(take_ready_url(&mut p).as_deref(), Some("https://d/"));
        assert_eq!(p.encode(), "x=1");
    }

    #[test]
    fn signs_like_scalelite() {
        assert_eq!(jwt_algorithm(&Algorithm::ALL), JwtAlg::HS256);
        assert_eq!(
            jwt_algorithm(&[Algorithm::Sha1, Algorithm::Sha512]),
            JwtAlg::HS512
        );
        assert_eq!(jwt_algorithm(&[Algorithm::Sha1]), JwtAlg::HS256);
        let t = signed_parameters("m", "r", "s", JwtAlg::HS512);
        let mut v = Validation::new(JwtAlg::HS512);
        v.required_spec_claims.clear();
        let got = jsonwebtoken::decode::<ReadyClaims>(&t, &DecodingKey::from_secret(b"s"), &v)
            .unwrap()
            .claims;
        assert_eq!(
            got,
            ReadyClaims {
                meeting_id: "m".into(),
                record_id: "r".into(),
                jti: "recording-ready:r".into(),
            }
        );
    }
}
