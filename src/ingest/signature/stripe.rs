//! `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, the HMAC-SHA256 of `"{t}.{body}"`.
//!
//! The key is the whole endpoint secret string (`whsec_…`) as UTF-8, not its base64 decoding —
//! unlike Standard Webhooks. Stripe sends several `v1` entries while a secret is being rolled, and
//! may add other items (`v0=` for test mode); those are ignored. The timestamp is checked against
//! the tolerance before any hashing, so replays are turned away cheaply.

use std::time::Duration;

use http::HeaderName;

use super::{
    check_timestamp, decode_hex_tag, header, hex_tag, tag, tags_equal, HmacSha256, Inbound, SignatureError,
    Signed, Verified,
};

/// The header that carries timestamp and signatures.
static SIGNATURE: HeaderName = HeaderName::from_static("stripe-signature");
/// How errors name that header.
const LABEL: &str = "Stripe-Signature header";

/// The `key=value` items of the header, trimmed; items without `=` are skipped.
fn items(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(',').filter_map(|item| item.split_once('=')).map(|(key, value)| (key.trim(), value.trim()))
}

/// Checks `Stripe-Signature`: the timestamp is within `tolerance` and a `v1` entry matches a key.
pub(super) fn verify(
    keys: &[HmacSha256],
    request: &Inbound<'_>,
    now: i64,
    tolerance: Duration,
) -> Result<Verified, SignatureError> {
    let value = header(request.headers, &[&SIGNATURE], LABEL)?;
    let timestamp = items(value)
        .find_map(|(key, value)| (key == "t").then_some(value))
        .ok_or(SignatureError::Malformed(LABEL))?;
    if !items(value).any(|(key, _)| key == "v1") {
        return Err(SignatureError::Malformed(LABEL));
    }
    check_timestamp(timestamp, now, tolerance, LABEL)?;
    // One HMAC per key, compared against every `v1` entry; the header is re-split per key rather
    // than collected, so nothing is allocated.
    for key in keys {
        let computed = tag(key, &[timestamp.as_bytes(), b".", request.body]);
        let matched = items(value)
            .filter(|(key, _)| *key == "v1")
            .filter_map(|(_, hex_sig)| decode_hex_tag(hex_sig, LABEL).ok())
            .any(|expected| tags_equal(&computed, &expected));
        if matched {
            return Ok(Verified::Intact);
        }
    }
    Err(SignatureError::Mismatch)
}

/// Signs `body` at `timestamp` as Stripe does.
pub(super) fn sign(secret: &str, body: &[u8], timestamp: i64) -> Signed {
    let t = timestamp.to_string();
    let v1 = hex_tag(secret, &[t.as_bytes(), b".", body]);
    Signed {
        headers: vec![("Stripe-Signature".into(), format!("t={t},v1={v1}"))],
        query: None,
        body: body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, headers, verifier};
    use super::super::{hex_tag, Scheme, SignatureError, Verified};

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    const NOW: i64 = 1_700_000_000;

    fn v1(secret: &str, t: i64, body: &[u8]) -> String {
        hex_tag(secret, &[t.to_string().as_bytes(), b".", body])
    }

    #[test]
    fn valid_signature_passes() {
        let v = verifier(Scheme::Stripe, &[SECRET]);
        let h = headers(&[("Stripe-Signature", &format!("t={NOW},v1={}", v1(SECRET, NOW, BODY)))]);
        assert_eq!(check(&v, &h, None, BODY, NOW), Ok(Verified::Intact));
    }

    #[test]
    fn key_is_the_whole_secret_string_not_its_base64() {
        // Keyed with the bytes after `whsec_` would be Standard Webhooks' rule, not Stripe's.
        let v = verifier(Scheme::Stripe, &[SECRET]);
        let wrong = v1("test_secret", NOW, BODY);
        let h = headers(&[("Stripe-Signature", &format!("t={NOW},v1={wrong}"))]);
        assert_eq!(check(&v, &h, None, BODY, NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn second_of_two_v1_entries_passes_and_v0_is_ignored() {
        let v = verifier(Scheme::Stripe, &[SECRET]);
        let value = format!(
            "t={NOW}, v1={}, v0=deadbeef, v1={}",
            v1("an-old-secret", NOW, BODY),
            v1(SECRET, NOW, BODY)
        );
        let h = headers(&[("Stripe-Signature", &value)]);
        assert_eq!(check(&v, &h, None, BODY, NOW), Ok(Verified::Intact));
    }

    #[test]
    fn second_secret_passes_during_rotation() {
        let v = verifier(Scheme::Stripe, &["whsec_new", SECRET]);
        let h = headers(&[("Stripe-Signature", &format!("t={NOW},v1={}", v1(SECRET, NOW, BODY)))]);
        assert_eq!(check(&v, &h, None, BODY, NOW), Ok(Verified::Intact));
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let v = verifier(Scheme::Stripe, &[SECRET]);
        let h = headers(&[("Stripe-Signature", &format!("t={NOW},v1={}", v1(SECRET, NOW, BODY)))]);
        assert_eq!(check(&v, &h, None, b"{}", NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn changed_timestamp_is_a_mismatch() {
        let v = verifier(Scheme::Stripe, &[SECRET]);
        let h = headers(&[("Stripe-Signature", &format!("t={},v1={}", NOW + 1, v1(SECRET, NOW, BODY)))]);
        assert_eq!(check(&v, &h, None, BODY, NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn stale_timestamp_is_rejected_even_with_a_valid_signature() {
        let v = verifier(Scheme::Stripe, &[SECRET]);
        let t = NOW - 301;
        let h = headers(&[("Stripe-Signature", &format!("t={t},v1={}", v1(SECRET, t, BODY)))]);
        assert_eq!(
            check(&v, &h, None, BODY, NOW),
            Err(SignatureError::Stale { age_secs: -301, tolerance_secs: 300 })
        );
    }

    #[test]
    fn missing_header_is_missing() {
        let v = verifier(Scheme::Stripe, &[SECRET]);
        assert_eq!(
            check(&v, &headers(&[]), None, BODY, NOW),
            Err(SignatureError::Missing("Stripe-Signature header"))
        );
    }

    #[test]
    fn garbage_header_is_malformed() {
        let v = verifier(Scheme::Stripe, &[SECRET]);
        let sig = v1(SECRET, NOW, BODY);
        for garbage in [
            "garbage".to_owned(),
            format!("v1={sig}"),
            format!("t={NOW}"),
            format!("t=soon,v1={sig}"),
            String::new(),
        ] {
            let h = headers(&[("Stripe-Signature", &garbage)]);
            assert_eq!(
                check(&v, &h, None, BODY, NOW),
                Err(SignatureError::Malformed("Stripe-Signature header")),
                "{garbage:?}"
            );
        }
    }
}
