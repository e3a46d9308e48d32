//! The xAPI/LRS payload a tenant's meetings carry (`meta_secret-lrs-payload`), as Scalelite's
//! LrsPayloadService makes it for bbb-webhooks' xAPI module.
//!
//! A tenant with an LRS endpoint gets, at every create, a payload naming the endpoint and how
//! to authenticate to it: basic credentials, or an access token fetched from the tenant's
//! Keycloak/OIDC token URL (password grant). The JSON is encrypted with the chosen BBB
//! server's secret — PBKDF2-HMAC-SHA256 (10,000 iterations) gives the AES-256-CBC key and IV —
//! and sent as `base64("Salted__" ‖ salt ‖ ciphertext)`, OpenSSL's layout. (Scalelite puts 8
//! random bytes where OpenSSL puts the magic; readers skip those 8 bytes either way.) Any
//! failure leaves the payload out and never fails the create, as in Scalelite.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::store::TenantLrs;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

const ITERATIONS: u32 = 10_000;

fn key_iv(secret: &str, salt: &[u8]) -> ([u8; 32], [u8; 16]) {
    let mut out = [0u8; 48];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(secret.as_bytes(), salt, ITERATIONS, &mut out);
    let mut key = [0u8; 32];
    let mut iv = [0u8; 16];
    key.copy_from_slice(&out[..32]);
    iv.copy_from_slice(&out[32..]);
    (key, iv)
}

/// Encrypts `plain` for a BBB server holding `secret`, with the given 8-byte salt.
pub fn encrypt(secret: &str, plain: &[u8], salt: [u8; 8]) -> String {
    let (key, iv) = key_iv(secret, &salt);
    let cipher = Encryptor::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
    let mut out = Vec::with_capacity(16 + cipher.len());
    out.extend_from_slice(b"Salted__");
    out.extend_from_slice(&salt);
    out.extend_from_slice(&cipher);
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// The inverse of [`encrypt`] (what bbb-webhooks does); `None` if it does not decrypt.
pub fn decrypt(secret: &str, payload: &str) -> Option<Vec<u8>> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    if raw.len() < 32 {
        return None;
    }
    let (key, iv) = key_iv(secret, &raw[8..16]);
    Decryptor::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&raw[16..])
        .ok()
}

/// What the payload says, before encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Payload {
    Basic {
        lrs_endpoint: String,
        lrs_username: String,
        lrs_password: String,
    },
    Token {
        lrs_endpoint: String,
        lrs_token: String,
    },
}

/// The one client for LRS token requests (kept in `App`, so connections are reused rather
/// than a client built for every create).
pub fn client(connect: std::time::Duration, response: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(response)
        .build()
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// Fetches a token with the password grant (Scalelite posts to the URL's path, without its
/// query). `None` on any failure, logged.
async fn fetch_token(http: &reqwest::Client, lrs: &TenantLrs) -> Option<String> {
    let mut url = url::Url::parse(lrs.kc_token_url.as_deref()?).ok()?;
    url.set_query(None);
    let form = [
        ("client_id", lrs.kc_client_id.as_deref().unwrap_or("")),
        (
            "client_secret",
            lrs.kc_client_secret.as_deref().unwrap_or(""),
        ),
        ("username", lrs.kc_username.as_deref().unwrap_or("")),
        ("password", lrs.kc_password.as_deref().unwrap_or("")),
        ("grant_type", "password"),
    ];
    let resp = match http.post(url).form(&form).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "could not reach the LRS token URL");
            return None;
        }
    };
    if resp.status().as_u16() != 200 {
        tracing::warn!(
            status = resp.status().as_u16(),
            "the LRS token URL refused the credentials"
        );
        return None;
    }
    match resp.json::<TokenAnswer>().await {
        Ok(t) => Some(t.access_token),
        Err(_) => {
            tracing::warn!("the LRS token answer has no access_token");
            None
        }
    }
}

/// The payload for this tenant: basic credentials when set, otherwise a fetched token.
pub async fn payload(http: &reqwest::Client, lrs: &TenantLrs) -> Option<Payload> {
    let endpoint = lrs.endpoint.clone();
    match (&lrs.username, &lrs.password) {
        (Some(u), Some(p)) => Some(Payload::Basic {
            lrs_endpoint: endpoint,
            lrs_username: u.clone(),
            lrs_password: p.clone(),
        }),
        _ => Some(Payload::Token {
            lrs_endpoint: endpoint,
            lrs_token: fetch_token(http, lrs).await?,
        }),
    }
}

/// The `meta_secret-lrs-payload` value for a server with `secret`.
pub fn seal(payload: &Payload, secret: &str) -> Option<String> {
    let json = serde_json::to_vec(payload).ok()?;
    let mut salt = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut salt);
    Some(encrypt(secret, &json, salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_servers_secret_only() {
        let p = Payload::Token {
            lrs_endpoint: "https://lrs.example.org/xapi".into(),
            lrs_token: "tok".into(),
        };
        let sealed = seal(&p, "server-secret").unwrap();
        let plain = decrypt("server-secret", &sealed).unwrap();
        assert_eq!(serde_json::from_slice::<Payload>(&plain).unwrap(), p);
        assert!(decrypt("other-secret", &sealed)
            .map(|d| d != plain)
            .unwrap_or(true));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        assert_eq!(&raw[..8], b"Salted__");
    }

    #[test]
    fn matches_openssl_for_a_fixed_salt() {
        // OpenSSL 3.0: `printf '{"a":1}' | openssl enc -aes-256-cbc -pbkdf2 -iter 10000 -md sha256
        //   -S 0102030405060708 -k s -base64` prints the ciphertext (no header with -S).
        let openssl = base64::engine::general_purpose::STANDARD
            .decode("LW05PobpmqqCr2n3O6wReA==")
            .unwrap();
        let sealed = encrypt("s", br#"{"a":1}"#, [1, 2, 3, 4, 5, 6, 7, 8]);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        assert_eq!(&raw[..16], b"Salted__\x01\x02\x03\x04\x05\x06\x07\x08");
        assert_eq!(&raw[16..], openssl.as_slice());
        assert_eq!(decrypt("s", &sealed).unwrap(), br#"{"a":1}"#);
    }
}
