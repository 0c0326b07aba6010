//! `github`: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw body keyed with the
//! secret's UTF-8 bytes, as GitHub (and many services that copied it) sends.

use http::HeaderName;

use super::{
    any_key_signed, decode_hex_tag, header, hex_tag, HmacSha256, Inbound, SignatureError, Signed, Verified,
};

/// The header that carries the signature.
static SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature-256");
/// How errors name that header.
const LABEL: &str = "X-Hub-Signature-256 header";

/// Checks `X-Hub-Signature-256` against every key.
pub(super) fn verify(keys: &[HmacSha256], request: &Inbound<'_>) -> Result<Verified, SignatureError> {
    let value = header(request.headers, &[&SIGNATURE], LABEL)?;
    // The prefix names the algorithm; without it the value could be GitHub's legacy SHA-1 form.
    let hex_sig = value.strip_prefix("sha256=").ok_or(SignatureError::Malformed(LABEL))?;
    let expected = decode_hex_tag(hex_sig.trim_start(), LABEL)?;
    if any_key_signed(keys, &[request.body], &expected) {
        Ok(Verified::Intact)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs `body` as GitHub does.
pub(super) fn sign(secret: &str, body: &[u8]) -> Signed {
    Signed {
        headers: vec![("X-Hub-Signature-256".into(), format!("sha256={}", hex_tag(secret, &[body])))],
        query: None,
        body: body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, headers, verifier};
    use super::super::{Scheme, SignatureError, Verified};

    // GitHub's published example (docs: "Validating webhook deliveries").
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn published_github_vector_passes() {
        let v = verifier(Scheme::Github, &[SECRET]);
        let h = headers(&[("X-Hub-Signature-256", SIG)]);
        assert_eq!(check(&v, &h, None, BODY, 0), Ok(Verified::Intact));
    }

    #[test]
    fn sign_reproduces_the_published_vector() {
        let signed = super::sign(SECRET, BODY);
        assert_eq!(signed.headers, vec![("X-Hub-Signature-256".to_owned(), SIG.to_owned())]);
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let v = verifier(Scheme::Github, &[SECRET]);
        let h = headers(&[("X-Hub-Signature-256", SIG)]);
        assert_eq!(check(&v, &h, None, b"Hello, World?", 0), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_header_is_missing() {
        let v = verifier(Scheme::Github, &[SECRET]);
        let h = headers(&[("X-Webhook-Signature", SIG)]);
        assert_eq!(check(&v, &h, None, BODY, 0), Err(SignatureError::Missing("X-Hub-Signature-256 header")));
    }

    #[test]
    fn value_without_sha256_prefix_is_malformed() {
        let v = verifier(Scheme::Github, &[SECRET]);
        let bare = SIG.trim_start_matches("sha256=");
        for garbage in [bare, "sha1=0123", "sha256=xyz", "garbage"] {
            let h = headers(&[("X-Hub-Signature-256", garbage)]);
            assert_eq!(
                check(&v, &h, None, BODY, 0),
                Err(SignatureError::Malformed("X-Hub-Signature-256 header")),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn second_secret_passes_during_rotation() {
        let v = verifier(Scheme::Github, &["rotated-in", SECRET]);
        let h = headers(&[("X-Hub-Signature-256", SIG)]);
        assert_eq!(check(&v, &h, None, BODY, 0), Ok(Verified::Intact));
    }
}
