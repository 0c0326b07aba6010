//! `hmac-sha256`, the default scheme (seed 001): `X-Webhook-Signature` carries the hex
//! HMAC-SHA256 of the raw body, keyed with the secret's UTF-8 bytes.
//!
//! `sha256=<hex>` is accepted as well, because senders built from GitHub examples write it that
//! way. This check runs on every request of most sources, so it allocates nothing.

use http::HeaderName;

use super::{
    any_key_signed, decode_hex_tag, header, hex_tag, HmacSha256, Inbound, SignatureError, Signed, Verified,
};

/// The header that carries the signature.
static SIGNATURE: HeaderName = HeaderName::from_static("x-webhook-signature");
/// How errors name that header.
const LABEL: &str = "X-Webhook-Signature header";

/// Checks `X-Webhook-Signature` against every key.
pub(super) fn verify(keys: &[HmacSha256], request: &Inbound<'_>) -> Result<Verified, SignatureError> {
    let value = header(request.headers, &[&SIGNATURE], LABEL)?;
    let hex_sig = value.strip_prefix("sha256=").map_or(value, str::trim_start);
    let expected = decode_hex_tag(hex_sig, LABEL)?;
    if any_key_signed(keys, &[request.body], &expected) {
        Ok(Verified::Intact)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs `body` with the bare hex form, as seed 001's senders do.
pub(super) fn sign(secret: &str, body: &[u8]) -> Signed {
    Signed {
        headers: vec![("X-Webhook-Signature".into(), hex_tag(secret, &[body]))],
        query: None,
        body: body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, headers, verifier};
    use super::super::{Scheme, SignatureError, Verified};

    const BODY: &[u8] = br#"{"type":"order.filled","orderId":"o-1"}"#;
    // Valid hex, but 16 bytes: a truncated tag is malformed, not a mismatch.
    const SHORT_HEX: &str = "9ebd1e0a0f8a5a9d3bbf1a0d0a1b1c3e";

    fn signature_of(secret: &str, body: &[u8]) -> String {
        super::hex_tag(secret, &[body])
    }

    #[test]
    fn valid_hex_signature_passes() {
        let v = verifier(Scheme::HmacSha256, &["s3cret"]);
        let h = headers(&[("X-Webhook-Signature", &signature_of("s3cret", BODY))]);
        assert_eq!(check(&v, &h, None, BODY, 0), Ok(Verified::Intact));
    }

    #[test]
    fn sha256_prefix_is_accepted() {
        let v = verifier(Scheme::HmacSha256, &["s3cret"]);
        let h = headers(&[("x-webhook-signature", &format!("sha256={}", signature_of("s3cret", BODY)))]);
        assert_eq!(check(&v, &h, None, BODY, 0), Ok(Verified::Intact));
    }

    #[test]
    fn uppercase_hex_and_surrounding_whitespace_are_accepted() {
        let v = verifier(Scheme::HmacSha256, &["s3cret"]);
        let value = format!("  {}\t", signature_of("s3cret", BODY).to_uppercase());
        let h = headers(&[("X-WEBHOOK-SIGNATURE", &value)]);
        assert_eq!(check(&v, &h, None, BODY, 0), Ok(Verified::Intact));
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let v = verifier(Scheme::HmacSha256, &["s3cret"]);
        let h = headers(&[("X-Webhook-Signature", &signature_of("s3cret", BODY))]);
        assert_eq!(check(&v, &h, None, b"{\"type\":\"order.filled\"}", 0), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_header_is_missing() {
        let v = verifier(Scheme::HmacSha256, &["s3cret"]);
        assert_eq!(
            check(&v, &headers(&[]), None, BODY, 0),
            Err(SignatureError::Missing("X-Webhook-Signature header"))
        );
    }

    #[test]
    fn garbage_header_is_malformed() {
        let v = verifier(Scheme::HmacSha256, &["s3cret"]);
        for garbage in ["not hex at all", SHORT_HEX, "sha256=", "", "zz"] {
            let h = headers(&[("X-Webhook-Signature", garbage)]);
            assert_eq!(
                check(&v, &h, None, BODY, 0),
                Err(SignatureError::Malformed("X-Webhook-Signature header")),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn second_secret_passes_during_rotation() {
        let v = verifier(Scheme::HmacSha256, &["new-secret", "old-secret"]);
        let h = headers(&[("X-Webhook-Signature", &signature_of("old-secret", BODY))]);
        assert_eq!(check(&v, &h, None, BODY, 0), Ok(Verified::Intact));
    }

    #[test]
    fn signature_from_an_unknown_secret_is_a_mismatch() {
        let v = verifier(Scheme::HmacSha256, &["s3cret"]);
        let h = headers(&[("X-Webhook-Signature", &signature_of("guess", BODY))]);
        assert_eq!(check(&v, &h, None, BODY, 0), Err(SignatureError::Mismatch));
    }
}
