//! The event id: the key that de-duplicates an event within its source.
//!
//! First that applies (SPEC §1): the `webhook-id` header, the `X-Event-Id` header, the source's
//! configured JSON fields (default `/id`, then `/eventId`), otherwise the SHA-256 of the raw body —
//! TradingView resends a failed alert byte for byte, so the body hash catches its retries.

use http::HeaderMap;
use sha2::{Digest, Sha256};

/// Longest event id kept; longer ids from senders are hashed so the key stays bounded.
pub const MAX_EVENT_ID_LEN: usize = 200;

/// Where the event id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrigin {
    /// `webhook-id` / `svix-id` header.
    WebhookIdHeader,
    /// `X-Event-Id` header.
    EventIdHeader,
    /// A JSON field of the body.
    BodyField,
    /// SHA-256 of the raw body.
    BodyHash,
}

/// Derives the de-duplication key of an event; `body_id` is what the payload's id fields give
/// ([`body_field_id`], or the one-pass reader in `payload.rs`). `headers` is `None` for a source
/// whose id headers are not trusted (`id_headers = false`).
pub fn event_id(headers: Option<&HeaderMap>, body_id: Option<String>, raw: &[u8]) -> (String, IdOrigin) {
    let header = |name: &str| {
        headers?.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
    };
    if let Some(id) = header("webhook-id").or_else(|| header("svix-id")) {
        return (bounded(id), IdOrigin::WebhookIdHeader);
    }
    if let Some(id) = header("x-event-id") {
        return (bounded(id), IdOrigin::EventIdHeader);
    }
    if let Some(id) = body_id {
        return (id, IdOrigin::BodyField);
    }
    (derived(raw), IdOrigin::BodyHash)
}

/// The id the first of `id_fields` (JSON pointers) that holds a non-blank string or an integer
/// gives.
pub fn body_field_id(json: &serde_json::Value, id_fields: &[String]) -> Option<String> {
    id_fields.iter().find_map(|pointer| match json.pointer(pointer) {
        Some(serde_json::Value::String(s)) => body_text_id(s),
        Some(serde_json::Value::Number(n)) => body_number_id(n),
        _ => None,
    })
}

/// A number id field as a key: an integer (64-bit, signed or not) as written; `None` for any
/// other number. Those are read as binary floats, so two different ids (`30000000000000000001`
/// and `30000000000000000002`, or `0.1000000000000000001` and `0.1`) would become one key and the
/// second event would be answered as a duplicate and never stored; without an id the event is
/// known by the next id field or its body's hash, which tells them apart.
pub fn body_number_id(number: &serde_json::Number) -> Option<String> {
    (number.is_i64() || number.is_u64()).then(|| number.to_string())
}

/// A string id field as a key: trimmed, `None` when blank, hashed when too long.
pub fn body_text_id(text: &str) -> Option<String> {
    Some(text.trim()).filter(|id| !id.is_empty()).map(bounded)
}

/// How the keys the gateway derives begin (a body's hash, a long id's hash).
const DERIVED: &str = "sha256:";

/// A sender's id as a key: as sent, unless it is too long or looks like a derived key. Those are
/// hashed, so no sender can name another event's derived key (`{"id": "sha256:<hash of some
/// other body>"}` would otherwise be answered as that event's duplicate and never stored).
fn bounded(id: &str) -> String {
    if id.len() <= MAX_EVENT_ID_LEN && !id.starts_with(DERIVED) {
        id.to_string()
    } else {
        derived(id.as_bytes())
    }
}

fn derived(bytes: &[u8]) -> String {
    format!("{DERIVED}{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Vec<String> {
        vec!["/id".into(), "/eventId".into()]
    }

    /// The id as ingest derives it with the general (tree) reading of the body.
    fn id_of(
        headers: &HeaderMap,
        json: Option<&serde_json::Value>,
        id_fields: &[String],
        raw: &[u8],
    ) -> (String, IdOrigin) {
        event_id(Some(headers), json.and_then(|json| body_field_id(json, id_fields)), raw)
    }

    #[test]
    fn untrusted_id_headers_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("x-event-id", "evt_2".parse().unwrap());
        let body = json!({"id": "body_3"});
        let from_body = event_id(None, body_field_id(&body, &fields()), b"{}");
        assert_eq!(from_body, ("body_3".into(), IdOrigin::BodyField));
        assert_eq!(event_id(None, None, b"{}").1, IdOrigin::BodyHash);
    }

    #[test]
    fn webhook_id_header_wins_over_everything() {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("x-event-id", "evt_2".parse().unwrap());
        let body = json!({"id": "body_3"});
        assert_eq!(
            id_of(&headers, Some(&body), &fields(), b"{}"),
            ("msg_1".into(), IdOrigin::WebhookIdHeader)
        );
    }

    #[test]
    fn svix_id_header_counts_as_webhook_id() {
        let mut headers = HeaderMap::new();
        headers.insert("svix-id", "msg_9".parse().unwrap());
        assert_eq!(id_of(&headers, None, &fields(), b"{}").0, "msg_9");
    }

    #[test]
    fn x_event_id_header_before_body_fields() {
        let mut headers = HeaderMap::new();
        headers.insert("x-event-id", "evt_2".parse().unwrap());
        let body = json!({"id": "body_3"});
        assert_eq!(id_of(&headers, Some(&body), &fields(), b"{}").1, IdOrigin::EventIdHeader);
    }

    #[test]
    fn body_fields_tried_in_order() {
        let headers = HeaderMap::new();
        let body = json!({"eventId": "e1"});
        assert_eq!(id_of(&headers, Some(&body), &fields(), b"{}").0, "e1");
        let body = json!({"id": 42, "eventId": "e1"});
        assert_eq!(id_of(&headers, Some(&body), &fields(), b"{}").0, "42");
        let body = json!({"id": -42});
        assert_eq!(id_of(&headers, Some(&body), &fields(), b"{}").0, "-42");
        let body = json!({"id": u64::MAX});
        assert_eq!(id_of(&headers, Some(&body), &fields(), b"{}").0, u64::MAX.to_string());
        let nested = vec!["/data/orderId".to_string()];
        let body = json!({"data": {"orderId": "o-1"}});
        assert_eq!(id_of(&headers, Some(&body), &nested, b"{}").0, "o-1");
    }

    #[test]
    fn body_hash_when_nothing_else_identical_bytes_same_id() {
        let headers = HeaderMap::new();
        let body = json!({"ticker": "BTCUSD"});
        let (a, origin) = id_of(&headers, Some(&body), &fields(), br#"{"ticker":"BTCUSD"}"#);
        let (b, _) = id_of(&headers, Some(&body), &fields(), br#"{"ticker":"BTCUSD"}"#);
        let (c, _) = id_of(&headers, Some(&body), &fields(), br#"{"ticker": "BTCUSD"}"#);
        assert_eq!(origin, IdOrigin::BodyHash);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64);
    }

    #[test]
    fn number_ids_beyond_64_bit_integers_do_not_merge_different_events() {
        // Read as floats these are one value: the second event was answered as a duplicate.
        let first = br#"{"id":30000000000000000001,"order":"first"}"#;
        let second = br#"{"id":30000000000000000002,"order":"second"}"#;
        let key = |raw: &[u8]| {
            let json: serde_json::Value = serde_json::from_slice(raw).unwrap();
            id_of(&HeaderMap::new(), Some(&json), &fields(), raw)
        };
        let (a, origin) = key(first);
        assert_eq!(origin, IdOrigin::BodyHash);
        assert_ne!(a, key(second).0);
        assert_eq!(a, key(first).0, "a retry of the same bytes is still a duplicate");
        for raw in [&br#"{"id":0.1000000000000000001}"#[..], br#"{"id":1.5}"#, br#"{"id":1e3}"#] {
            assert_eq!(key(raw).1, IdOrigin::BodyHash, "{}", String::from_utf8_lossy(raw));
        }
        // The next id field still counts.
        assert_eq!(key(br#"{"id":1.5,"eventId":"e-7"}"#).0, "e-7");
    }

    #[test]
    fn a_sender_cannot_name_a_key_the_gateway_derives() {
        let other_body = br#"{"ticker":"BTCUSD"}"#;
        let (derived_key, origin) = id_of(&HeaderMap::new(), None, &fields(), other_body);
        assert_eq!(origin, IdOrigin::BodyHash);
        let long = "J".repeat(MAX_EVENT_ID_LEN + 1);
        let (long_key, _) = id_of(&HeaderMap::new(), Some(&json!({ "id": long })), &fields(), b"{}");
        for taken in [&derived_key, &long_key] {
            let (key, origin) = id_of(&HeaderMap::new(), Some(&json!({ "id": taken })), &fields(), b"{}");
            assert_eq!(origin, IdOrigin::BodyField);
            assert_ne!(&key, taken, "a sent id equal to a derived key must not de-duplicate against it");
            let mut headers = HeaderMap::new();
            headers.insert("webhook-id", taken.parse().unwrap());
            assert_ne!(&id_of(&headers, None, &fields(), b"{}").0, taken);
        }
        // The same sent id is still the same key: its resends are duplicates.
        let twice = |id: &str| id_of(&HeaderMap::new(), Some(&json!({ "id": id })), &fields(), b"{}").0;
        assert_eq!(twice("sha256:abc"), twice("sha256:abc"));
        assert_eq!(twice("ord-1"), "ord-1");
    }

    #[test]
    fn empty_or_huge_ids_are_not_used_verbatim() {
        let mut headers = HeaderMap::new();
        headers.insert("x-event-id", "   ".parse().unwrap());
        assert_eq!(id_of(&headers, None, &fields(), b"x").1, IdOrigin::BodyHash);
        let huge = "a".repeat(1000);
        let body = json!({ "id": huge });
        let (id, _) = id_of(&HeaderMap::new(), Some(&body), &fields(), b"{}");
        assert!(id.len() <= MAX_EVENT_ID_LEN);
    }
}
