//! `standard-webhooks` (standardwebhooks.com, also sent by Svix): `webhook-id`,
//! `webhook-timestamp` and `webhook-signature`, signed content `"{id}.{timestamp}.{body}"`.
//!
//! The signature header is a space-separated list of `<version>,<base64>` entries; any one valid
//! entry passes, so a sender can sign with several keys while rotating. `v1` is HMAC-SHA256 keyed
//! with the base64 bytes after `whsec_`; `v1a` is Ed25519, checked against `whpk_` public keys.
//! Unknown versions are skipped so that newer senders still work. The `svix-*` header names are
//! accepted too. Keys are decoded once, when the verifier is built.

use std::time::Duration;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use http::HeaderName;

use super::{
    check_timestamp, header, invalid, keyed, tag, tags_equal, HmacSha256, Inbound, Scheme, SecretError,
    SignContext, SignatureError, Signed, Verified, MAX_SIGNATURES,
};

/// Standard base64 that takes values with or without `=` padding, as the reference libraries do.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

static WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
static WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
static WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
static SVIX_ID: HeaderName = HeaderName::from_static("svix-id");
static SVIX_TIMESTAMP: HeaderName = HeaderName::from_static("svix-timestamp");
static SVIX_SIGNATURE: HeaderName = HeaderName::from_static("svix-signature");

/// How errors name the three headers.
const ID: &str = "webhook-id header";
const TIMESTAMP: &str = "webhook-timestamp header";
const SIGNATURES: &str = "webhook-signature header";

/// One configured key of a source.
#[derive(Clone)]
pub(super) enum Key {
    /// `whsec_…`: checks `v1` entries.
    Hmac(HmacSha256),
    /// `whpk_…`: checks `v1a` entries.
    Ed25519(VerifyingKey),
}

/// A configured secret string, decoded.
enum Secret {
    /// `whsec_<base64>` or bare base64: an HMAC key.
    Hmac(Vec<u8>),
    /// `whpk_<base64>`: an Ed25519 public key.
    Public([u8; 32]),
    /// `whsk_<base64>`: an Ed25519 secret key, for signing only.
    Signing([u8; 32]),
}

/// Decodes a secret by its prefix. The error is a reason that never quotes the secret.
fn decode_secret(secret: &str) -> Result<Secret, &'static str> {
    if let Some(rest) = secret.strip_prefix("whpk_") {
        return decode_32(rest)
            .map(Secret::Public)
            .ok_or("`whpk_` must be followed by the base64 of 32 bytes");
    }
    if let Some(rest) = secret.strip_prefix("whsk_") {
        return decode_32(rest)
            .map(Secret::Signing)
            .ok_or("`whsk_` must be followed by the base64 of 32 bytes");
    }
    // The reference libraries accept the key without its prefix as well.
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    match BASE64.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(Secret::Hmac(key)),
        _ => Err("expected `whsec_` followed by base64 (or `whpk_` for an Ed25519 public key)"),
    }
}

/// Decodes base64 that must hold exactly 32 bytes.
fn decode_32(encoded: &str) -> Option<[u8; 32]> {
    decode_exact::<32>(encoded)
}

/// Decodes base64 into a stack buffer of exactly `N` bytes; any other length is `None`.
fn decode_exact<const N: usize>(encoded: &str) -> Option<[u8; N]> {
    // Room for the longest accepted value (64 bytes); longer input is an error, not a truncation.
    let mut buffer = [0u8; 96];
    let decoded = BASE64.decode_slice(encoded, &mut buffer).ok()?;
    if decoded != N {
        return None;
    }
    buffer.get(..N)?.try_into().ok()
}

/// Decodes a source's secrets (any mix of `whsec_` and `whpk_`).
pub(super) fn decode_keys(secrets: &[String]) -> Result<Vec<Key>, SecretError> {
    let scheme = Scheme::StandardWebhooks;
    secrets
        .iter()
        .enumerate()
        .map(|(i, secret)| match decode_secret(secret) {
            Ok(Secret::Hmac(key)) => Ok(Key::Hmac(keyed(&key))),
            Ok(Secret::Public(bytes)) => VerifyingKey::from_bytes(&bytes)
                .map(Key::Ed25519)
                .map_err(|_| invalid(scheme, i + 1, "`whpk_` does not hold a valid Ed25519 public key")),
            // A receiver never needs the private half; keeping it out of receiver config limits
            // what a leaked config file gives away.
            Ok(Secret::Signing(_)) => {
                Err(invalid(scheme, i + 1, "`whsk_` is a signing key; configure its `whpk_` public key"))
            }
            Err(reason) => Err(invalid(scheme, i + 1, reason)),
        })
        .collect()
}

/// One entry of the signature header.
enum Entry {
    /// A well-formed `v1` HMAC tag.
    V1([u8; 32]),
    /// A well-formed `v1a` Ed25519 signature.
    V1a(Signature),
    /// A version this gateway does not know; skipped.
    Unknown,
    /// A known version whose value cannot be decoded, or no `,` at all.
    Broken,
}

/// The entries of the signature header, in order.
fn entries(value: &str) -> impl Iterator<Item = Entry> + '_ {
    value.split_ascii_whitespace().map(|entry| match entry.split_once(',') {
        Some(("v1", sig)) => decode_exact::<32>(sig).map_or(Entry::Broken, Entry::V1),
        Some(("v1a", sig)) => {
            decode_exact::<64>(sig).map_or(Entry::Broken, |bytes| Entry::V1a(Signature::from_bytes(&bytes)))
        }
        Some(_) => Entry::Unknown,
        None => Entry::Broken,
    })
}

/// Checks the three headers: the timestamp is within `tolerance` and an entry matches a key.
pub(super) fn verify(
    keys: &[Key],
    request: &Inbound<'_>,
    now: i64,
    tolerance: Duration,
) -> Result<Verified, SignatureError> {
    let headers = request.headers;
    let id = header(headers, &[&WEBHOOK_ID, &SVIX_ID], ID)?;
    let timestamp = header(headers, &[&WEBHOOK_TIMESTAMP, &SVIX_TIMESTAMP], TIMESTAMP)?;
    let signatures = header(headers, &[&WEBHOOK_SIGNATURE, &SVIX_SIGNATURE], SIGNATURES)?;
    check_timestamp(timestamp, now, tolerance, TIMESTAMP)?;

    // Parsed once, and only so many: checking a `v1a` entry is costly (see MAX_SIGNATURES).
    let entries: Vec<Entry> = entries(signatures).take(MAX_SIGNATURES + 1).collect();
    if entries.len() > MAX_SIGNATURES {
        return Err(SignatureError::TooMany(SIGNATURES));
    }
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", request.body];
    // Ed25519 needs the message in one piece; build it only if a `v1a` entry meets a `whpk_` key.
    let mut joined: Option<Vec<u8>> = None;
    for key in keys {
        let matched = match key {
            Key::Hmac(key) => {
                let computed = tag(key, &parts);
                entries
                    .iter()
                    .any(|entry| matches!(entry, Entry::V1(expected) if tags_equal(&computed, expected)))
            }
            Key::Ed25519(public) => entries.iter().any(|entry| match entry {
                Entry::V1a(signature) => {
                    let message = joined.get_or_insert_with(|| parts.concat());
                    public.verify_strict(message, signature).is_ok()
                }
                _ => false,
            }),
        };
        if matched {
            return Ok(Verified::Intact);
        }
    }

    let usable = entries.iter().any(|entry| matches!(entry, Entry::V1(_) | Entry::V1a(_)));
    let broken = entries.iter().any(|entry| matches!(entry, Entry::Broken));
    if !usable && (broken || signatures.is_empty()) {
        Err(SignatureError::Malformed(SIGNATURES))
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs `body`: `v1` with a `whsec_` secret, `v1a` with a `whsk_` Ed25519 secret key.
pub(super) fn sign(secret: &str, body: &[u8], context: &SignContext) -> Result<Signed, SecretError> {
    let scheme = Scheme::StandardWebhooks;
    let timestamp = context.timestamp.to_string();
    let id = context.message_id.as_str();
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    let entry = match decode_secret(secret).map_err(|reason| invalid(scheme, 1, reason))? {
        Secret::Hmac(key) => format!("v1,{}", BASE64.encode(tag(&keyed(&key), &parts))),
        Secret::Signing(bytes) => {
            let signature = SigningKey::from_bytes(&bytes).sign(&parts.concat());
            format!("v1a,{}", BASE64.encode(signature.to_bytes()))
        }
        Secret::Public(_) => {
            return Err(invalid(scheme, 1, "a `whpk_` public key cannot sign; use its `whsk_` secret key"));
        }
    };
    Ok(Signed {
        headers: vec![
            ("webhook-id".into(), id.to_owned()),
            ("webhook-timestamp".into(), timestamp),
            ("webhook-signature".into(), entry),
        ],
        query: None,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use ed25519_dalek::SigningKey;

    use super::super::tests::{check, headers, verifier};
    use super::super::{
        sign, Scheme, SecretError, SignContext, SignatureError, Verified, Verifier, VerifyOptions,
        MAX_SIGNATURES,
    };
    use super::{BASE64, SIGNATURES};

    // The published example of the Standard Webhooks specification.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn spec_headers(signature: &str) -> http::HeaderMap {
        headers(&[
            ("webhook-id", ID),
            ("webhook-timestamp", &TS.to_string()),
            ("webhook-signature", signature),
        ])
    }

    fn ed25519_pair(seed: u8) -> (String, String) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        (
            format!("whsk_{}", BASE64.encode(key.to_bytes())),
            format!("whpk_{}", BASE64.encode(key.verifying_key().to_bytes())),
        )
    }

    fn context() -> SignContext {
        SignContext { timestamp: TS, message_id: ID.into(), token_field: None }
    }

    #[test]
    fn published_vector_passes() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        assert_eq!(check(&v, &spec_headers(SIG), None, BODY, TS), Ok(Verified::Intact));
    }

    #[test]
    fn sign_reproduces_the_published_vector() {
        let signed = sign(Scheme::StandardWebhooks, SECRET, BODY, &context()).unwrap();
        assert_eq!(
            signed.headers,
            vec![
                ("webhook-id".to_owned(), ID.to_owned()),
                ("webhook-timestamp".to_owned(), TS.to_string()),
                ("webhook-signature".to_owned(), SIG.to_owned()),
            ]
        );
    }

    #[test]
    fn secret_without_whsec_prefix_is_accepted() {
        let v = verifier(Scheme::StandardWebhooks, &["C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]);
        assert_eq!(check(&v, &spec_headers(SIG), None, BODY, TS), Ok(Verified::Intact));
    }

    #[test]
    fn timestamp_tolerance_applies_both_ways() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        let h = spec_headers(SIG);
        assert_eq!(check(&v, &h, None, BODY, TS + 299), Ok(Verified::Intact));
        assert_eq!(check(&v, &h, None, BODY, TS - 299), Ok(Verified::Intact));
        assert_eq!(check(&v, &h, None, BODY, TS + 300), Ok(Verified::Intact));
        assert_eq!(
            check(&v, &h, None, BODY, TS + 301),
            Err(SignatureError::Stale { age_secs: -301, tolerance_secs: 300 })
        );
        assert_eq!(
            check(&v, &h, None, BODY, TS - 301),
            Err(SignatureError::Stale { age_secs: 301, tolerance_secs: 300 })
        );
    }

    #[test]
    fn non_numeric_timestamp_is_malformed() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        for ts in ["soon", "-1649367553", "1649367553.0", "99999999999999999999999"] {
            let h = headers(&[("webhook-id", ID), ("webhook-timestamp", ts), ("webhook-signature", SIG)]);
            assert_eq!(
                check(&v, &h, None, BODY, TS),
                Err(SignatureError::Malformed("webhook-timestamp header")),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        let body = br#"{"email":"evil@example.com","username":"test_user"}"#;
        assert_eq!(check(&v, &spec_headers(SIG), None, body, TS), Err(SignatureError::Mismatch));
    }

    #[test]
    fn each_missing_header_is_named() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        let ts = TS.to_string();
        let cases = [
            (headers(&[("webhook-timestamp", &ts), ("webhook-signature", SIG)]), "webhook-id header"),
            (headers(&[("webhook-id", ID), ("webhook-signature", SIG)]), "webhook-timestamp header"),
            (headers(&[("webhook-id", ID), ("webhook-timestamp", &ts)]), "webhook-signature header"),
        ];
        for (h, name) in cases {
            assert_eq!(check(&v, &h, None, BODY, TS), Err(SignatureError::Missing(name)));
        }
    }

    #[test]
    fn garbage_signature_header_is_malformed() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        for garbage in ["garbage", "v1,not-base64!", "v1,AAAA", "v1a,AAAA", ""] {
            assert_eq!(
                check(&v, &spec_headers(garbage), None, BODY, TS),
                Err(SignatureError::Malformed("webhook-signature header")),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn only_unknown_versions_is_a_mismatch() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        let h = spec_headers("v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert_eq!(check(&v, &h, None, BODY, TS), Err(SignatureError::Mismatch));
    }

    #[test]
    fn second_of_several_signatures_passes() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        let value = format!("v1,{} v2,unknown-version {SIG}", BASE64.encode([7u8; 32]));
        assert_eq!(check(&v, &spec_headers(&value), None, BODY, TS), Ok(Verified::Intact));
    }

    #[test]
    fn a_header_with_more_signatures_than_any_sender_needs_is_refused_before_any_is_checked() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        let filler = format!("v1,{} ", BASE64.encode([7u8; 32]));
        // The right one among MAX_SIGNATURES passes; one more and the header is refused unchecked.
        let fits = format!("{}{SIG}", filler.repeat(MAX_SIGNATURES - 1));
        assert_eq!(check(&v, &spec_headers(&fits), None, BODY, TS), Ok(Verified::Intact));
        let over = format!("{}{SIG}", filler.repeat(MAX_SIGNATURES));
        let refused = check(&v, &spec_headers(&over), None, BODY, TS);
        assert_eq!(refused, Err(SignatureError::TooMany(SIGNATURES)));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "webhook-signature header holds more than 16 signatures"
        );
    }

    #[test]
    fn second_secret_passes_during_rotation() {
        let v = verifier(Scheme::StandardWebhooks, &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SECRET]);
        assert_eq!(check(&v, &spec_headers(SIG), None, BODY, TS), Ok(Verified::Intact));
    }

    #[test]
    fn svix_header_names_are_accepted() {
        let v = verifier(Scheme::StandardWebhooks, &[SECRET]);
        let h = headers(&[("svix-id", ID), ("svix-timestamp", &TS.to_string()), ("svix-signature", SIG)]);
        assert_eq!(check(&v, &h, None, BODY, TS), Ok(Verified::Intact));
    }

    #[test]
    fn v1a_ed25519_round_trip_passes() {
        let (signing, public) = ed25519_pair(42);
        let signed = sign(Scheme::StandardWebhooks, &signing, BODY, &context()).unwrap();
        let (_, signature) = signed.headers.iter().find(|(name, _)| name == "webhook-signature").unwrap();
        assert!(signature.starts_with("v1a,"));
        let v = verifier(Scheme::StandardWebhooks, &[SECRET, &public]);
        assert_eq!(check(&v, &spec_headers(signature), None, BODY, TS), Ok(Verified::Intact));
    }

    #[test]
    fn v1a_signature_from_another_key_is_a_mismatch() {
        let (signing, _) = ed25519_pair(42);
        let (_, other_public) = ed25519_pair(43);
        let signed = sign(Scheme::StandardWebhooks, &signing, BODY, &context()).unwrap();
        let (_, signature) = signed.headers.iter().find(|(name, _)| name == "webhook-signature").unwrap();
        let v = verifier(Scheme::StandardWebhooks, &[&other_public]);
        assert_eq!(check(&v, &spec_headers(signature), None, BODY, TS), Err(SignatureError::Mismatch));
    }

    #[test]
    fn v1a_signature_over_a_tampered_body_is_a_mismatch() {
        let (signing, public) = ed25519_pair(42);
        let signed = sign(Scheme::StandardWebhooks, &signing, BODY, &context()).unwrap();
        let (_, signature) = signed.headers.iter().find(|(name, _)| name == "webhook-signature").unwrap();
        let v = verifier(Scheme::StandardWebhooks, &[&public]);
        assert_eq!(check(&v, &spec_headers(signature), None, b"{}", TS), Err(SignatureError::Mismatch));
    }

    #[test]
    fn invalid_secrets_name_their_index_but_not_their_value() {
        let cases = [
            "whsec_!!!not*base64!!!",
            "whpk_c2hvcnQ=",
            "whpk_!!!!",
            "whsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "whsec_",
        ];
        for secret in cases {
            let secrets = vec![SECRET.to_owned(), secret.to_owned()];
            let error =
                Verifier::new(Scheme::StandardWebhooks, &secrets, VerifyOptions::default()).unwrap_err();
            assert!(
                matches!(error, SecretError::Invalid { scheme: Scheme::StandardWebhooks, index: 2, .. }),
                "{secret}: {error:?}"
            );
            let message = error.to_string();
            let payload = secret.split_once('_').map_or(secret, |(_, rest)| rest);
            assert!(payload.is_empty() || !message.contains(payload), "{message}");
        }
    }

    #[test]
    fn public_key_cannot_sign() {
        let (_, public) = ed25519_pair(1);
        assert!(matches!(
            sign(Scheme::StandardWebhooks, &public, BODY, &context()),
            Err(SecretError::Invalid { index: 1, .. })
        ));
    }
}
