//! What ingest reads from a JSON payload: its type (`event`, else `type`) and the event id its
//! fields give, after checking that the whole body is JSON no deeper than [`MAX_JSON_DEPTH`].
//!
//! For the default id rule (`/id`, then `/eventId`) the body is read in one pass into a struct of
//! borrowed fields; the rest of the document is checked as `serde_json::Value` would check it and
//! dropped, never built into a tree (measured: about a third of the request path's CPU went to
//! building `serde_json::Value`). Configured JSON pointers, bodies that are not objects, and
//! anything that pass refuses take the general path, which also words the error of invalid JSON.
//! Both paths accept exactly the same bodies and read the same fields (`fuzz/fuzz_targets/payload.rs`).
//!
//! [`MAX_JSON_DEPTH`]: super::guard::MAX_JSON_DEPTH

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::event_id;
use super::guard::{self, refuse_key, refuse_nul, Checked, CheckedVisitor, JsonError};

/// Longest event type kept, in characters.
const MAX_EVENT_TYPE_CHARS: usize = 100;

/// What the payload says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    /// The `event` field, else the `type` field, when it is a string (truncated).
    pub event_type: Option<String>,
    /// The id the source's id fields give, bounded as [`event_id::body_text_id`] does.
    pub body_id: Option<String>,
}

/// Checks `body` is JSON no deeper than the limit and reads its type and id fields.
pub fn read(body: &[u8], id_fields: &[String]) -> Result<Payload, JsonError> {
    // Objects only (anything else fails the envelope anyway). UTF-8 is checked first: serde_json
    // reading bytes skips the strings of ignored values without validating them (found by
    // fuzz/payload).
    if is_default_id_rule(id_fields) && body.trim_ascii_start().first() == Some(&b'{') {
        guard::check_depth(body)?;
        if let Ok(text) = std::str::from_utf8(body) {
            if let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(text) {
                return Ok(envelope.into_payload());
            }
        }
    }
    let json = guard::parse_json(body)?;
    let event_type = ["event", "type"]
        .iter()
        .find_map(|key| json.get(key).and_then(|v| v.as_str()))
        .map(|s| truncate(s, MAX_EVENT_TYPE_CHARS).to_string());
    Ok(Payload { event_type, body_id: event_id::body_field_id(&json, id_fields) })
}

fn is_default_id_rule(id_fields: &[String]) -> bool {
    matches!(id_fields, [first, second] if first == "/id" && second == "/eventId")
}

/// Cuts `text` to at most `max` characters.
pub fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The top-level fields ingest looks at; every other field is validated and skipped. A repeated
/// key takes its last value, as `serde_json::Value` does.
#[derive(Default)]
struct Envelope<'a> {
    event: Option<Field<'a>>,
    kind: Option<Field<'a>>,
    id: Option<Field<'a>>,
    event_id: Option<Field<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor(PhantomData))
    }
}

struct EnvelopeVisitor<'a>(PhantomData<&'a str>);

impl<'de: 'a, 'a> Visitor<'de> for EnvelopeVisitor<'a> {
    type Value = Envelope<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::Event => &mut envelope.event,
                Key::Type => &mut envelope.kind,
                Key::Id => &mut envelope.id,
                Key::EventId => &mut envelope.event_id,
                Key::Other => {
                    map.next_value::<Checked>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(envelope)
    }
}

/// A top-level key, told apart without allocating.
enum Key {
    Event,
    Type,
    Id,
    EventId,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
        refuse_key(key)?;
        Ok(match key {
            "event" => Key::Event,
            "type" => Key::Type,
            "id" => Key::Id,
            "eventId" => Key::EventId,
            _ => Key::Other,
        })
    }
}

impl Envelope<'_> {
    fn into_payload(self) -> Payload {
        let text = |field: &Option<Field<'_>>| match field {
            Some(Field::Text(text)) => Some(truncate(text, MAX_EVENT_TYPE_CHARS).to_string()),
            _ => None,
        };
        let event_type = text(&self.event).or_else(|| text(&self.kind));
        let body_id = [self.id, self.event_id].into_iter().flatten().find_map(|field| match field {
            Field::Text(text) => event_id::body_text_id(&text),
            Field::Number(number) => event_id::body_number_id(&number),
            Field::Other => None,
        });
        Payload { event_type, body_id }
    }
}

/// One field's value, kept only when it can be a type or an id.
enum Field<'a> {
    /// A string, borrowed from the body unless it had escapes.
    Text(Cow<'a, str>),
    /// A number, exactly as `serde_json::Value` would hold it.
    Number(serde_json::Number),
    /// `true`, `false`, an object or an array: never an id nor a type.
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<'a>(PhantomData<&'a str>);

impl<'de: 'a, 'a> Visitor<'de> for FieldVisitor<'a> {
    type Value = Field<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        refuse_nul(text)?;
        Ok(Field::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        refuse_nul(text)?;
        Ok(Field::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
        refuse_nul(&text)?;
        Ok(Field::Text(Cow::Owned(text)))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Field::Number(n.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Field::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Field::Other, Field::Number))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        CheckedVisitor.visit_seq(seq).map(|_| Field::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        CheckedVisitor.visit_map(map).map(|_| Field::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        vec!["/id".into(), "/eventId".into()]
    }

    /// The general path, for comparison with the one-pass reader.
    fn general(body: &str, fields: &[String]) -> Result<Payload, JsonError> {
        let json = guard::parse_json(body.as_bytes())?;
        let event_type = ["event", "type"]
            .iter()
            .find_map(|key| json.get(key).and_then(|v| v.as_str()))
            .map(|s| truncate(s, MAX_EVENT_TYPE_CHARS).to_string());
        Ok(Payload { event_type, body_id: event_id::body_field_id(&json, fields) })
    }

    #[test]
    fn one_pass_reader_agrees_with_the_general_path() {
        let long = "x".repeat(500);
        let bodies = [
            r#"{"event":"order.updated","id":"evt-1","data":{"orderId":"o-1","qty":[1,2,{"a":null}]}}"#
                .to_string(),
            r#"{"type":"alert","eventId":"  e-2  "}"#.to_string(),
            r#"{"event":5,"type":"fallback","id":42,"eventId":"ignored"}"#.to_string(),
            r#"{"id":"   ","eventId":-7}"#.to_string(),
            r#"{"id":1.5e3}"#.to_string(),
            r#"{"id":30000000000000000001,"eventId":"e-1"}"#.to_string(),
            r#"{"id":-9223372036854775808}"#.to_string(),
            r#"{"id":null,"eventId":true}"#.to_string(),
            r#"{"id":{"nested":"x"},"eventId":["y"]}"#.to_string(),
            r#"{"event":"with \"escapes\" \u00e9","id":"a\\b"}"#.to_string(),
            format!(r#"{{"id":"{long}","event":"{long}"}}"#),
            r#"{"id":"dup","id":"last"}"#.to_string(),
            r#"[{"id":"in-array"}]"#.to_string(),
            r#"["order.created","alert","evt-by-position","e-4"]"#.to_string(),
            " [\"x\"]".to_string(),
            r#""just a string""#.to_string(),
            "{}".to_string(),
        ];
        for body in &bodies {
            assert_eq!(read(body.as_bytes(), &defaults()), general(body, &defaults()), "{body}");
        }
    }

    #[test]
    fn repeated_key_takes_the_last_value_like_the_general_path() {
        let payload = read(br#"{"id":"dup","id":"last"}"#, &defaults()).unwrap();
        assert_eq!(payload.body_id.as_deref(), Some("last"));
    }

    #[test]
    fn invalid_or_too_deep_bodies_are_refused() {
        assert!(matches!(read(b"{\"id\":\"x\"", &defaults()), Err(JsonError::Invalid(_))));
        assert!(matches!(read(b"{\"id\":\"x\"} trailing", &defaults()), Err(JsonError::Invalid(_))));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(read(deep.as_bytes(), &defaults()), Err(JsonError::TooDeep));
        // A number out of range in a field the one-pass reader skips (found by fuzz/payload).
        assert!(matches!(read(br#"{"bd":-7e99999,"id":"x"}"#, &defaults()), Err(JsonError::Invalid(_))));
        assert!(matches!(read(br#"{"id":[1e400]}"#, &defaults()), Err(JsonError::Invalid(_))));
        // serde_json's raw-value key (the general path would parse its string as the object):
        // refused anywhere, in any spelling, by both paths alike (found in review).
        for body in [
            r#"{"$serde_json::private::RawValue":"x"}"#,
            r#"{"\u0024serde_json::private::RawValue":"{\"id\":\"evt-9\"}"}"#,
            r#"{"id":"a","data":{"$serde_json::private::RawValue":"1"}}"#,
            r#"{"id":{"$serde_json::private::RawValue":"1"}}"#,
        ] {
            for fields in [defaults(), vec!["/id".to_owned()]] {
                let refused = read(body.as_bytes(), &fields);
                assert!(
                    matches!(&refused, Err(JsonError::Invalid(r)) if r.contains("reserved")),
                    "{body}: {refused:?}"
                );
            }
        }
        // NUL anywhere: refused by both paths alike.
        for body in [r#"{"id":"a\u0000"}"#, r#"{"x":{"k\u0000":1},"id":"a"}"#, r#"{"x":["\u0000"]}"#] {
            assert_eq!(read(body.as_bytes(), &defaults()), Err(JsonError::Nul), "{body}");
            assert_eq!(read(body.as_bytes(), &["/id".to_owned()]), Err(JsonError::Nul), "{body}");
        }
        // Invalid UTF-8 in a field the one-pass reader skips (found by fuzz/payload).
        let skipped = b"{\"id\":\"e-1\",\"data\":{\"orderId\":\"12\xcc\xd43\"}}";
        assert!(matches!(read(skipped, &defaults()), Err(JsonError::Invalid(_))));
    }

    #[test]
    fn configured_pointers_use_the_general_path() {
        let fields = vec!["/data/orderId".to_string()];
        let payload = read(br#"{"event":"order.created","data":{"orderId":"o-9"}}"#, &fields).unwrap();
        assert_eq!(payload.body_id.as_deref(), Some("o-9"));
        assert_eq!(payload.event_type.as_deref(), Some("order.created"));
    }
}
