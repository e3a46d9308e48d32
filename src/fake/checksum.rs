//! The fake BBB server's own checksum check, written apart from the production code in
//! `bbb::checksum` on purpose: if both shared one implementation, a bug in it would sign
//! and verify every call the same wrong way and no test would notice. It follows BBB's
//! rule as BBB's Java code states it: drop the `checksum` pair from the query string,
//! then `hex(H(call + query + secret))`, with H picked by the length of the supplied value.
//! Checked against the published BBB documentation vectors below.

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// The name fake-bbb records for the algorithm a call was signed with (`SHA1`, `SHA256`, …).
pub fn verify(call: &str, raw_query: &str, secret: &str) -> Option<&'static str> {
    let supplied = raw_query
        .split('&')
        .find_map(|pair| pair.strip_prefix("checksum="))?
        .to_ascii_lowercase();
    let rest: Vec<&str> = raw_query
        .split('&')
        .filter(|pair| !pair.starts_with("checksum="))
        .collect();
    let input = format!("{call}{}{secret}", rest.join("&"));
    let (name, expected) = match supplied.len() {
        40 => ("SHA1", hex::encode(Sha1::digest(input.as_bytes()))),
        64 => ("SHA256", hex::encode(Sha256::digest(input.as_bytes()))),
        96 => ("SHA384", hex::encode(Sha384::digest(input.as_bytes()))),
        128 => ("SHA512", hex::encode(Sha512::digest(input.as_bytes()))),
        _ => return None,
    };
    (expected == supplied).then_some(name)
}

/// A stable SHA-1 hex digest, for the internal meeting IDs fake-bbb makes up.
pub fn sha1_hex(text: &str) -> String {
    hex::encode(Sha1::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "639259d4-9dd8-4b25-bf01-95f9567eaf4b";
    const QUERY: &str = "name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444";

    /// The example in BBB's API documentation, in each algorithm.
    #[test]
    fn accepts_the_bbb_documentation_vectors() {
        for (checksum, name) in [
            ("1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17", "SHA1"),
            ("da9185f7f333cfdfcd6eeac32dca3777510c4c436020d8b887ba5515bd1d189e", "SHA256"),
            ("891ac633df39d0a1b4f8d597f3e190833216c4b29c4fb51ea3ca72757eeb958d6e7b49a845cf29f5c6019c7d29d029d1", "SHA384"),
            ("de73ad61d11a5c801b68d4bd6ec5248546085cefb0b25c85f3c46249ea93a3a4b120f92c0a8a58d7512cb77821884951a3b01245f3435dbbef49fff3cc3988b4", "SHA512"),
        ] {
            let at_end = format!("{QUERY}&checksum={checksum}");
            assert_eq!(verify("create", &at_end, SECRET), Some(name));
            let first = format!("checksum={}&{QUERY}", checksum.to_ascii_uppercase());
            assert_eq!(verify("create", &first, SECRET), Some(name));
        }
        assert_eq!(
            verify(
                "getMeetings",
                "checksum=2027baa7771026e9e93392f55031535d1444c41f",
                SECRET
            ),
            Some("SHA1")
        );
    }

    #[test]
    fn refuses_a_wrong_call_secret_or_missing_checksum() {
        let q = format!("{QUERY}&checksum=1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17");
        assert_eq!(verify("join", &q, SECRET), None);
        assert_eq!(verify("create", &q, "other"), None);
        assert_eq!(verify("create", QUERY, SECRET), None);
        assert_eq!(verify("create", "checksum=abc", SECRET), None);
    }
}
