//! The signature headers of an outbound delivery.
//!
//! Every delivery carries two signatures so either kind of receiver can check it:
//! `X-Webhook-Signature` (hex HMAC-SHA256 of the body keyed with the secret's UTF-8 bytes, as
//! seed 001's receiver computes it) and the Standard Webhooks headers (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64>`). The Standard Webhooks key is read as
//! the reference libraries (and tradehook's ingest) read it: the base64 after `whsec_` (the form
//! tradehook generates), or the whole secret when it is base64, so a receiver given the same
//! secret verifies. Any other secret is keyed by its UTF-8 bytes: a Standard Webhooks receiver
//! verifies with `whsec_` and the base64 of the secret. The id stays the same across retries of
//! one delivery so receivers can de-duplicate.

use crate::ingest::signature::{sign, Scheme, SignContext};

/// The headers to add to a delivery of `body` with message id `message_id`, signed at
/// `timestamp` (unix seconds).
pub fn delivery_headers(
    secret: &str,
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let context = SignContext { timestamp, message_id: message_id.to_owned(), token_field: None };
    let mut headers = sign(Scheme::HmacSha256, secret, body, &context).map(|s| s.headers).unwrap_or_default();
    let standard = sign(Scheme::StandardWebhooks, secret, body, &context)
        .or_else(|_| sign(Scheme::StandardWebhooks, &standard_form(secret), body, &context))
        .ok();
    match standard {
        Some(signed) => headers.extend(signed.headers),
        None => {
            headers.push(("webhook-id".into(), message_id.to_owned()));
            headers.push(("webhook-timestamp".into(), timestamp.to_string()));
        }
    }
    headers
}

/// The Standard Webhooks form of a secret that is not one: `whsec_` and the base64 of its bytes.
fn standard_form(secret: &str) -> String {
    use base64::Engine as _;
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    #[test]
    fn seed_001_receivers_verify_the_hex_signature() {
        let headers = delivery_headers("It's a Secret to Everybody", "evt_1", 1, b"Hello, World!");
        assert_eq!(
            get(&headers, "X-Webhook-Signature"),
            Some("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        );
    }

    #[test]
    fn whsec_secrets_also_sign_the_standard_webhooks_way() {
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let headers = delivery_headers(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            body,
        );
        assert_eq!(
            get(&headers, "webhook-signature"),
            Some("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
        );
        assert_eq!(get(&headers, "webhook-id"), Some("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"));
        assert_eq!(get(&headers, "webhook-timestamp"), Some("1649367553"));
        assert!(get(&headers, "X-Webhook-Signature").is_some());
    }

    #[test]
    fn a_secret_that_is_not_base64_is_keyed_by_its_bytes_even_after_whsec() {
        // Subscriptions accept any 8–256 characters; `whsec_test_secret` decodes as no key.
        let headers = delivery_headers("whsec_test_secret", "evt_9", 5, b"{}");
        assert!(get(&headers, "webhook-signature").is_some_and(|s| s.starts_with("v1,")), "{headers:?}");
        let receiver_key = standard_form("whsec_test_secret");
        let context = SignContext { timestamp: 5, message_id: "evt_9".into(), token_field: None };
        let by_bytes = sign(Scheme::StandardWebhooks, &receiver_key, b"{}", &context).unwrap();
        assert_eq!(get(&headers, "webhook-signature"), get(&by_bytes.headers, "webhook-signature"));
    }

    #[test]
    fn other_secrets_sign_the_standard_way_with_their_own_bytes_as_the_key() {
        let body = b"{}";
        let headers = delivery_headers("your_webhook_secret", "evt_9", 5, body);
        assert_eq!(get(&headers, "webhook-id"), Some("evt_9"));
        assert_eq!(get(&headers, "webhook-timestamp"), Some("5"));
        // A receiver given whsec_ + base64("your_webhook_secret") verifies it.
        let receiver = crate::ingest::signature::Verifier::new(
            Scheme::StandardWebhooks,
            &["whsec_eW91cl93ZWJob29rX3NlY3JldA==".to_owned()],
            crate::ingest::signature::VerifyOptions::default(),
        )
        .unwrap();
        let headers: http::HeaderMap = headers
            .iter()
            .map(|(n, v)| (http::HeaderName::try_from(n.as_str()).unwrap(), v.parse().unwrap()))
            .collect();
        let inbound = crate::ingest::signature::Inbound { headers: &headers, query: None, body };
        assert!(receiver.verify(&inbound, 5).is_ok());
    }
}
