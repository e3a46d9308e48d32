//! BBB API checksums: `hex(H(callName + query-without-checksum + secret))`.
//!
//! The algorithm is chosen by the length of the supplied checksum (40, 64, 96, 128 hex
//! digits for SHA-1/256/384/512) and must be one the operator allows. The query string is
//! hashed exactly as received: the `checksum=` pair is removed textually, never decoded and
//! re-encoded, because clients encode spaces, `*` and UTF-8 differently and BBB hashes the
//! bytes it received. Everything here is a pure function.

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Sha1,
        Algorithm::Sha256,
        Algorithm::Sha384,
        Algorithm::Sha512,
    ];

    /// `SHA1`, `sha256`, … as written in `LOADBALANCER_CHECKSUM_ALGORITHM`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name.trim().to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA384" => Some(Algorithm::Sha384),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// The algorithm a checksum of this many hex digits was made with.
    pub fn from_hex_len(len: usize) -> Option<Algorithm> {
        match len {
            40 => Some(Algorithm::Sha1),
            64 => Some(Algorithm::Sha256),
            96 => Some(Algorithm::Sha384),
            128 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn hex_digest(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            hex::encode(d.finalize())
        }
        match self {
            Algorithm::Sha1 => run::<Sha1>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Sha384 => run::<Sha384>(parts),
            Algorithm::Sha512 => run::<Sha512>(parts),
        }
    }
}

/// The checksum for `call` with the already-encoded `query` under `secret`.
pub fn sign(alg: Algorithm, call: &str, query: &str, secret: &str) -> String {
    alg.hex_digest(&[call.as_bytes(), query.as_bytes(), secret.as_bytes()])
}

/// Removes every `checksum=<value>` pair from a raw query string, textually, the way BBB
/// does: `&checksum=V`, then `checksum=V&`, then `checksum=V`.
pub fn strip_checksum(raw_query: &str, value: &str) -> String {
    let a = format!("&checksum={value}");
    let b = format!("checksum={value}&");
    let c = format!("checksum={value}");
    raw_query.replace(&a, "").replace(&b, "").replace(&c, "")
}

/// Checks `supplied` for `call` against every secret. Returns the algorithm that matched,
/// so calls forwarded to a BBB server can be signed the same way.
pub fn verify(
    call: &str,
    raw_query: &str,
    supplied: &str,
    secrets: &[String],
    allowed: &[Algorithm],
) -> Option<Algorithm> {
    let supplied = supplied.trim();
    let alg = Algorithm::from_hex_len(supplied.len())?;
    if !allowed.contains(&alg) || !supplied.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let query = strip_checksum(raw_query, supplied);
    let wanted = supplied.to_ascii_lowercase();
    let mut ok = false;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let expected = sign(alg, call, &query, secret);
        // Constant-time per comparison; every secret is tried so timing does not reveal which matched.
        ok |= bool::from(expected.as_bytes().ct_eq(wanted.as_bytes()));
    }
    ok.then_some(alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "639259d4-9dd8-4b25-bf01-95f9567eaf4b";
    const QUERY: &str = "name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444";

    #[test]
    fn matches_the_bbb_documentation_vectors() {
        assert_eq!(
            sign(Algorithm::Sha1, "create", QUERY, SECRET),
            "1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17"
        );
        assert_eq!(
            sign(Algorithm::Sha256, "create", QUERY, SECRET),
            "da9185f7f333cfdfcd6eeac32dca3777510c4c436020d8b887ba5515bd1d189e"
        );
        assert_eq!(
            sign(Algorithm::Sha384, "create", QUERY, SECRET),
            "891ac633df39d0a1b4f8d597f3e190833216c4b29c4fb51ea3ca72757eeb958d6e7b49a845cf29f5c6019c7d29d029d1"
        );
        assert_eq!(
            sign(Algorithm::Sha512, "create", QUERY, SECRET),
            "de73ad61d11a5c801b68d4bd6ec5248546085cefb0b25c85f3c46249ea93a3a4b120f92c0a8a58d7512cb77821884951a3b01245f3435dbbef49fff3cc3988b4"
        );
        assert_eq!(
            sign(Algorithm::Sha1, "getMeetings", "", SECRET),
            "2027baa7771026e9e93392f55031535d1444c41f"
        );
    }

    #[test]
    fn every_algorithm_verifies_when_allowed() {
        let secrets = vec!["other".to_string(), SECRET.to_string()];
        for alg in Algorithm::ALL {
            let sum = sign(alg, "create", QUERY, SECRET);
            let raw = format!("{QUERY}&checksum={sum}");
            assert_eq!(
                verify("create", &raw, &sum, &secrets, &Algorithm::ALL),
                Some(alg)
            );
            assert_eq!(verify("create", &raw, &sum, &secrets, &[]), None);
        }
    }

    #[test]
    fn checksum_may_stand_anywhere_in_the_query() {
        let sum = sign(Algorithm::Sha256, "join", "a=1&b=2", "s");
        let secrets = vec!["s".to_string()];
        for raw in [
            format!("checksum={sum}&a=1&b=2"),
            format!("a=1&checksum={sum}&b=2"),
        ] {
            assert!(
                verify("join", &raw, &sum, &secrets, &Algorithm::ALL).is_some(),
                "{raw}"
            );
        }
    }

    #[test]
    fn rejects_wrong_call_secret_length_and_non_hex() {
        let secrets = vec!["s".to_string()];
        let sum = sign(Algorithm::Sha1, "end", "", "s");
        assert!(verify("end", "", &sum, &secrets, &Algorithm::ALL).is_some());
        assert!(verify("create", "", &sum, &secrets, &Algorithm::ALL).is_none());
        assert!(verify("end", "", &sum, &["t".to_string()], &Algorithm::ALL).is_none());
        assert!(verify("end", "", &sum[..39], &secrets, &Algorithm::ALL).is_none());
        assert!(verify("end", "", &"x".repeat(40), &secrets, &Algorithm::ALL).is_none());
        assert!(verify("end", "", "", &secrets, &Algorithm::ALL).is_none());
    }

    #[test]
    fn upper_case_hex_is_accepted_as_bbb_does() {
        let sum = sign(Algorithm::Sha256, "end", "", "s").to_ascii_uppercase();
        assert!(verify("end", "", &sum, &["s".to_string()], &Algorithm::ALL).is_some());
    }
}
